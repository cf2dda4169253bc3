"""Milestone statistics from real episode summaries on the real ROM: rates, median steps, first reached;
and in a run: episode summaries, TensorBoard and eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import make_tq, press, tiny_run, walk_town_to_route1
from pokerl.config import compose_train_config
from pokerl.env import GameBoyEnv
from pokerl.logger import read_scalar_tags
from pokerl.milestones import first_reached, median_steps, reach_rates
from pokerl.trainer import Trainer


def finish(env: GameBoyEnv) -> dict:
    """Step in place (B) until the episode ends; its summary."""
    while True:
        _, _, terminated, truncated, info = env.step(5)
        if terminated or truncated:
            return info["episode"]


def test_stats_of_a_walk_to_route1_and_of_an_episode_started_there() -> None:
    env = make_tq(archive=True, max_steps=20)
    try:
        env.reset(seed=1)
        offered = [info["archive_entry"] for _, info in walk_town_to_route1(env) if "archive_entry" in info]
        walked = finish(env)  # route1 at step 12 of 20
        env.reset(seed=2)
        stayed = finish(env)  # never left the town
    finally:
        env.close()
    assert reach_rates([walked, stayed], ["route1", "gym1"]) == {"route1": 0.5, "gym1": 0.0}
    assert median_steps([walked, stayed], ["route1", "gym1"]) == {"route1": 12.0}
    # ended at global step 1,000 with 4 global steps per env step: route1 was 8 env steps earlier
    assert first_reached(walked, 1000, 4) == {"route1": 1000 - (20 - 12) * 4}

    env = make_tq(start=offered[0], max_steps=6)  # started holding route1 (reached 12 steps from power-on)
    try:
        env.reset(seed=3)
        for _ in range(3):
            press(env, "left")  # back into the town
        resumed = finish(env)
    finally:
        env.close()
    assert "route1" in resumed["milestones"] and resumed["milestone_steps"]["route1"] == 12
    assert first_reached(resumed, 1000, 4) == {}  # held from the start: reached in another episode
    assert median_steps([walked, resumed], ["route1"]) == {"route1": 12.0}


def test_milestone_steps_in_summaries_tensorboard_and_eval(tmp_path: Path) -> None:
    """Leaving the start tile is a milestone every episode reaches early: its step count from the
    episode's start is in the summary, its first global step in TensorBoard, its median in eval."""
    moved = "+reward.milestones.moved={when: 'x != 9 or y != 9', reward: 0.0}"
    trainer = Trainer(compose_train_config([*tiny_run("env.max_steps=10", "seed=5"), "total_steps=64", moved,
                                            "env.max_steps=16", f"run_dir={tmp_path}"]))
    episodes: list[dict] = []
    trainer.logger.add_episode = episodes.append  # type: ignore[method-assign, union-attr]
    trainer.run()
    ep = next(e for e in episodes if "moved" in e["milestones"])
    assert 1 <= ep["milestone_steps"]["moved"] <= ep["length"]
    first = trainer.tally.first["moved"]
    tags = read_scalar_tags(tmp_path / "tb")
    assert tags["milestone_first/moved"] == [(first, float(first))]
    # the earliest episode's step, counted in steps of both envs from the run's start
    earliest = min(e["milestone_steps"]["moved"] for e in episodes[:2] if "moved" in e["milestones"])
    assert first == 2 * earliest
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.eval", str(tmp_path), "--episodes", "3", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    steps = result["milestone_steps"]
    assert set(steps) == {m for m, rate in result["milestone_rates"].items() if rate > 0}
    assert all(1 <= v <= 16 for v in steps.values())
