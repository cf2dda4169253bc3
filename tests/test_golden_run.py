"""A pinned 4,096-step training run: refactors must keep its actions, rewards and losses.

``tests/data/golden_run.json`` was recorded before the architecture redesign (issue 13) by running
this file with ``POKERL_RECORD_GOLDEN=1``. The run has truncations and several PPO updates, so it
covers env stepping and autoreset, the rollout, GAE and the update. Actions and rewards must match
exactly; losses within a relative 0.1 (absolute 1e-4 near zero): on another CPU (2026-11-29) the actions and rewards
were identical and the float rounding of 16 updates moved the losses by up to 4.8% (value), 9e-6 (entropy) and
1.2e-5 absolute (policy, whose values are 6e-6 to 5e-4); a refactor that changes the update changes later actions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pokerl.config import compose_train_config
from pokerl.logger import read_scalar_tags
from pokerl.trainer import Trainer

GOLDEN = Path(__file__).parent / "data" / "golden_run.json"

# 4 envs x 64 steps = 256 env steps per update, 16 updates = 4,096 steps; 300-step episodes.
OVERRIDES = [
    "model=small", "num_envs=4", "ppo.num_steps=64", "ppo.bptt=16", "ppo.num_minibatches=4",
    "ppo.update_epochs=2", "env.max_steps=300", "game.boot.writes.ballast=0", "total_steps=4096",
    "log.progress=false", "log.checkpoint_every=1000", "log.heatmap_every=0", "log.video_every=0",
    "torch_threads=1", "seed=11", "ppo.bootstrap_truncated=false",  # recorded before bootstrapping existed
    "~reward.milestones.final_room",  # recorded before it existed (a milestone more: another observation vector)
]
LAYOUT = ["pool.mode=serial", "pool.workers=1"]
LOSSES = ("loss/policy", "loss/value", "loss/entropy")


def record_run(run_dir: Path) -> dict[str, list]:
    """Train the pinned run; return every action and reward (update-major) and the losses per update."""
    actions: list[list[list[int]]] = []
    rewards: list[list[list[float]]] = []

    def keep(trainer: Trainer) -> None:
        actions.append(trainer.buffer.actions.tolist())
        rewards.append(trainer.buffer.rewards.tolist())

    trainer = Trainer(compose_train_config([*OVERRIDES, *LAYOUT, f"run_dir={run_dir}"]))
    trainer.run(after_update=keep)
    tags = read_scalar_tags(run_dir / "tb")
    return {"actions": actions, "rewards": rewards, **{k: [v for _, v in tags[k]] for k in LOSSES}}


def test_pinned_run_is_unchanged(tmp_path: Path) -> None:
    got = record_run(tmp_path)
    if os.environ.get("POKERL_RECORD_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got))
        pytest.skip(f"recorded {GOLDEN.name}: a recording run compares nothing")
    want = json.loads(GOLDEN.read_text())
    assert len(got["actions"]) == 16
    assert got["actions"] == want["actions"]
    assert got["rewards"] == want["rewards"]
    for key in LOSSES:
        assert got[key] == pytest.approx(want[key], rel=0.1, abs=1e-4), key
