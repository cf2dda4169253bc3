"""Truncated episodes are bootstrapped with V(final observation), and milestones carry their step counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_tq
from pokerl.config import compose_train_config
from pokerl.logger import read_scalar_tags
from pokerl.ppo import compute_gae
from pokerl.rollout import Collector
from pokerl.trainer import Trainer

GAMMA, LAM = 0.9, 0.5


def test_gae_with_a_truncation_and_a_termination_by_hand() -> None:
    """One env, T = 4: the episode is truncated after step 1 (obs 2 starts a new one) and terminated
    after step 3 (the next obs starts one). V(final obs of the truncated episode) = 4."""
    rewards = torch.tensor([[1.0], [2.0], [0.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [2.0], [1.5]])
    starts = torch.tensor([[0.0], [0.0], [1.0], [0.0]])
    next_value, next_start = torch.tensor([7.0]), torch.tensor([1.0])
    adv, ret = compute_gae(rewards, values, starts, next_value, next_start, GAMMA, LAM)
    # by hand, backwards: step 3 ends the game, step 2 continues into it, step 1 is cut, step 0 continues
    d3 = 3.0 - 1.5
    d2 = 0.0 + GAMMA * 1.5 - 2.0
    d1 = 2.0 - 1.0
    d0 = 1.0 + GAMMA * 1.0 - 0.5
    a3, a2, a1 = d3, d2 + GAMMA * LAM * d3, d1
    a0 = d0 + GAMMA * LAM * a1
    assert adv[:, 0].tolist() == pytest.approx([a0, a1, a2, a3], abs=1e-6)
    # bootstrapping the truncation adds γ·V(final) to step 1's reward: step 1's return grows by exactly
    # that, step 0's by γλ times it, the next episode's not at all
    boot = rewards.clone()
    boot[1] += GAMMA * 4.0
    _, ret_boot = compute_gae(boot, values, starts, next_value, next_start, GAMMA, LAM)
    diff = (ret_boot - ret)[:, 0].tolist()
    assert diff == pytest.approx([GAMMA * LAM * GAMMA * 4.0, GAMMA * 4.0, 0.0, 0.0], abs=1e-6)


TINY = ["model=small", "model.hidden=32", "model.vector_hidden=16", "num_envs=2", "ppo.num_steps=16", "ppo.bptt=8",
        "ppo.num_minibatches=1", "ppo.update_epochs=1", "env.max_steps=10", "game.boot.writes.ballast=0",
        "log.progress=false", "log.heatmap_every=0", "log.video_every=0", "torch_threads=1", "seed=5"]


@pytest.mark.parametrize("layout", [["pool.mode=serial", "pool.workers=1"], ["pool.mode=async", "pool.workers=2"]],
                         ids=["sync", "async"])
def test_bootstrap_sees_the_last_frame_not_the_reset_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         layout: list[str]) -> None:
    """The final observation the trainer bootstraps from is env 0's own last frame: the frame a lone
    env shows after the same seed and actions; its reward grew by exactly γ·V."""
    seen: list[tuple[int, list[int], dict[str, np.ndarray], torch.Tensor]] = []
    real = Collector._bootstrap

    def spy(self, buffer, t, envs, final_obs, state):  # type: ignore[no-untyped-def]
        before = buffer.rewards[t].clone()
        real(self, buffer, t, envs, final_obs, state)
        seen.append((t, list(envs), {k: v.copy() for k, v in final_obs.items()}, buffer.rewards[t] - before))

    monkeypatch.setattr(Collector, "_bootstrap", spy)
    trainer = Trainer(compose_train_config([*TINY, *layout, "total_steps=32", f"run_dir={tmp_path}"]))
    trainer.run(stop_at_update=1)
    actions = trainer.buffer.actions[:, 0].tolist()
    starts = trainer.buffer.episode_starts[:, 0]
    assert torch.nonzero(starts).flatten().tolist() == [0, 10]  # truncated after step 9
    t, envs, final, grew = next(s for s in seen if 0 in s[1])
    assert t == 9
    env = make_tq(max_steps=10)
    try:
        obs, _ = env.reset(seed=5)  # the pool seeds env i with seed + i
        for a in actions[:10]:
            obs, *_ = env.step(a)
    finally:
        env.close()
    row = envs.index(0)
    np.testing.assert_array_equal(final["screen"][row], obs["screen"])
    np.testing.assert_array_equal(final["visited"][row], obs["visited"])
    assert (final["visited"][row] > 0).sum() > 16  # not the reset frame (one visited tile)
    assert grew[0].item() != 0.0


def test_no_bootstrap_when_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(Collector, "_bootstrap", lambda self, buffer, t, *a: calls.append(t))
    Trainer(compose_train_config([*TINY, "pool.mode=serial", "pool.workers=1", "total_steps=32",
                                  "ppo.bootstrap_truncated=false", f"run_dir={tmp_path}"])).run()
    assert calls == []


def test_milestone_steps_in_summaries_tensorboard_and_eval(tmp_path: Path) -> None:
    """Leaving the start tile is a milestone every episode reaches early: its step count from the
    episode's start is in the summary, its first global step in TensorBoard, its median in eval."""
    moved = "+reward.milestones.moved={when: 'x != 9 or y != 9', reward: 0.0}"
    trainer = Trainer(compose_train_config([*TINY, "pool.mode=serial", "pool.workers=1", "total_steps=64", moved,
                                            "env.max_steps=16", f"run_dir={tmp_path}"]))
    episodes: list[dict] = []
    trainer.logger.add_episode = episodes.append  # type: ignore[method-assign, union-attr]
    trainer.run()
    ep = next(e for e in episodes if "moved" in e["milestones"])
    assert 1 <= ep["milestone_steps"]["moved"] <= ep["length"]
    first = trainer.milestone_first["moved"]
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


def test_bench_learning_counts_steps_and_reuses_finished_seeds(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from pokerl.bench.learning import main

    results = tmp_path / "results.jsonl"
    args = ["--steps", "64", "--seeds", "2", "--results", str(results), "--run-root", str(tmp_path / "runs"),
            "--eval-episodes", "2", "--json",
            *[o for o in TINY if not o.startswith("seed=")], "pool.mode=serial", "pool.workers=1", "env.max_steps=16",
            "+reward.milestones.moved={when: 'x != 9 or y != 9', reward: 0.0}"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [s["seed"] for s in first["seeds"]] == [1, 2] and all(s["steps"] == 64 for s in first["seeds"])
    assert first["milestones"]["moved"]["share"] == 1.0
    assert all(set(s["eval_from_power_on"]) >= {"moved", "complete"} for s in first["seeds"])
    assert len(results.read_text().splitlines()) == 2
    assert main(args) == 0  # both seeds are in the results file: nothing is trained again
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["seeds"] == first["seeds"]
    assert len(results.read_text().splitlines()) == 2
    assert len(list((tmp_path / "runs").glob("*/seed*"))) == 2
    assert main([*args[:-2], args[-1], args[-2]]) == 0  # the same config, overrides in another order: reused
    assert len(results.read_text().splitlines()) == 2
    edited = [*args[:-1], "+reward.milestones.moved={when: 'x != 9 or y != 9', reward: 0.1}"]  # another config
    assert main(edited) == 0
    assert len(results.read_text().splitlines()) == 4  # trained again, as a new setting
    assert len(list((tmp_path / "runs").glob("*/seed*"))) == 4
    kept = results.read_text()
    results.write_text(kept + '{"seed": 3, "overr')  # a line cut short (by hand, or an older pokerl killed mid-write)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and f"{results}: line 5 is not JSON" in err
    assert results.read_text().startswith(kept)  # nothing was lost


def test_bench_learning_keys_fresh_seeds_without_the_archive_settings_they_never_read() -> None:
    from pokerl.bench.learning import fingerprint

    fresh, frontier = ["reset.mode=fresh"], ["reset.mode=frontier"]
    assert fingerprint(fresh) == fingerprint([*fresh, "archive.level_step=3", "reset.fresh_share=0.5"])
    assert fingerprint(frontier) != fingerprint([*frontier, "archive.level_step=3"])
    assert fingerprint(frontier) != fingerprint([*frontier, "archive.by_map=true"])  # left out only at its default
    assert fingerprint(frontier) != fingerprint([*frontier, "reset.frontier_weight=reward"])
    assert fingerprint(fresh) != fingerprint([*fresh, "ppo.bootstrap_truncated=false"])
