"""The trainer's wiring on the real ROM: what each stored reward, return and gradient is made of.

The pieces (GAE, the masked losses, the env's rewards) are tested alone elsewhere; these tests check
how the trainer joins them, against a lone env replaying the buffer's actions and a policy copied
before the update. Each one fails with a planted bug of ``scripts/mutants.py``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from conftest import TQ_PROFILE, make_tq, tiny_run
from pokerl.config import compose_train_config
from pokerl.policy import Policy
from pokerl.ppo import RolloutBuffer, ppo_update
from pokerl.rollout import Collector
from pokerl.trainer import Trainer

GAMMA = 0.5  # far from 1, so a bootstrap without γ differs from one with it by half of V
TINY = tiny_run(f"ppo.gamma={GAMMA}", drop=("num_envs", "pool.mode", "pool.workers", "ppo.num_steps"))
SERIAL = ["pool.mode=serial", "pool.workers=1"]
ASYNC = ["pool.mode=async", "pool.workers=2"]


def first_rollout(tmp: Path, *overrides: str) -> tuple[Trainer, Policy, dict[str, torch.Tensor]]:
    """Train one update; return the trainer, its policy as it acted in the rollout, and the buffer's
    rewards, returns and actions of that rollout."""
    trainer = Trainer(compose_train_config([*TINY, *overrides, f"run_dir={tmp}"]))
    acting = copy.deepcopy(trainer.policy)
    seen: dict[str, torch.Tensor] = {}

    def keep(t: Trainer) -> None:
        seen.update({k: getattr(t.buffer, k).clone() for k in ("rewards", "returns", "actions", "episode_starts")})

    trainer.run(stop_at_update=1, after_update=keep)
    return trainer, acting, seen


def replay(actions: list[int], seed: int, max_steps: int, done_when: str | None) -> list[dict[str, Any]]:
    """Env column ``seed``'s steps on a lone env: reward, how each step ended, the obs before it and
    the final obs (the pool seeds env i with seed + i at the first reset and never again)."""
    kwargs: dict[str, Any] = {"max_steps": max_steps}
    if done_when is not None:
        kwargs["game"] = {**yaml.safe_load(TQ_PROFILE.read_text()), "done_when": done_when}
    env = make_tq(**kwargs)
    steps = []
    try:
        obs, _ = env.reset(seed=seed)
        for a in actions:
            next_obs, reward, terminated, truncated, _ = env.step(a)
            steps.append({"obs": obs, "reward": reward, "terminated": terminated, "truncated": truncated,
                          "final": next_obs})
            obs = env.reset()[0] if terminated or truncated else next_obs
    finally:
        env.close()
    return steps


def value_after(policy: Policy, episode: list[dict[str, Any]]) -> float:
    """V(final obs of the episode's last step), the LSTM run over the episode's observations first."""
    state = policy.initial_state(1)
    with torch.no_grad():
        for k, step in enumerate(episode):
            obs = {key: torch.as_tensor(v[None]) for key, v in step["obs"].items()}
            _, _, _, state = policy.act(obs, state, torch.tensor([1.0 if k == 0 else 0.0]))
        final = {key: torch.as_tensor(v[None]) for key, v in episode[-1]["final"].items()}
        _, _, value, _ = policy.act(final, state, torch.zeros(1))
    return float(value[0])


DONE_WHEN = "x >= 11"  # two tiles east of the start: some episodes get there (terminated), some not


@pytest.mark.parametrize("layout", [SERIAL, ASYNC], ids=["sync", "async"])
def test_only_truncations_are_bootstrapped_and_by_gamma_times_v(tmp_path: Path, layout: list[str]) -> None:
    """Each env's stored rewards are the env's own, except at a truncation: there they grew by exactly
    γ·V(final obs) under the policy that acted. A terminated episode (``done_when``) gets nothing.
    (The async pool acts for whichever worker is ready first, so its actions vary from run to run.)"""
    max_steps = 10
    _, acting, seen = first_rollout(
        tmp_path, *layout, "num_envs=2", "ppo.num_steps=64", "total_steps=128", f"env.max_steps={max_steps}",
        "seed=3", f"game.done_when='{DONE_WHEN}'")
    kinds = set()
    for col in range(2):
        steps = replay(seen["actions"][:, col].tolist(), 3 + col, max_steps, DONE_WHEN)
        episode: list[dict[str, Any]] = []
        for t, step in enumerate(steps):
            episode.append(step)
            stored = float(seen["rewards"][t, col])
            if step["truncated"]:
                v = value_after(acting, episode)
                assert abs(v) > 1e-3
                assert stored - step["reward"] == pytest.approx(GAMMA * v, rel=1e-4, abs=1e-6), f"env {col} step {t}"
            else:
                assert stored == pytest.approx(step["reward"], abs=1e-6), f"env {col} step {t}: {step['terminated']=}"
            if step["terminated"] or step["truncated"]:
                episode = []
                kinds.add("terminated" if step["terminated"] else "truncated")
    assert kinds == {"terminated", "truncated"}, "the rollout must hold both ends"


def test_an_episode_ending_on_the_rollouts_last_step_does_not_bootstrap_into_the_next(tmp_path: Path) -> None:
    """Episodes of 16 steps in rollouts of 16: every one ends on the last step, so its return there is
    its (bootstrapped) reward alone, not plus γ·V of the next episode's first observation."""
    _, _, seen = first_rollout(tmp_path, *SERIAL, "num_envs=2", "ppo.num_steps=16", "total_steps=32",
                               "env.max_steps=16", "seed=4")
    starts = seen["episode_starts"]
    assert starts[0].tolist() == [1.0, 1.0] and not starts[1:].any()  # one episode per env, ending at T-1
    torch.testing.assert_close(seen["returns"][-1], seen["rewards"][-1], rtol=0, atol=1e-6)


def masked_update(policy: Policy, buffer: RolloutBuffer, trainer: Trainer) -> tuple[dict[str, torch.Tensor],
                                                                                  dict[str, float]]:
    """One ``ppo_update`` of a copy of ``policy`` on ``buffer``, with the trainer's PPO settings and a
    fixed minibatch order; returns the new weights and the statistics."""
    policy = copy.deepcopy(policy)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3, eps=1e-5)
    torch.manual_seed(0)
    stats = ppo_update(policy, optimizer, buffer, trainer.ppo_cfg)
    return {k: v.clone() for k, v in policy.state_dict().items()}, stats


def test_lost_columns_contribute_nothing_to_the_update(tmp_path: Path) -> None:
    """A worker restarted mid-rollout leaves its columns with ``valid = 0``: whatever they hold (here:
    garbage), the update, and its advantage normalisation, are those of the other columns alone."""
    trainer, _, _ = first_rollout(tmp_path, *SERIAL, "num_envs=4", "ppo.num_steps=16", "total_steps=64",
                                  "env.max_steps=12", "seed=6", "ppo.update_epochs=2", "ppo.num_minibatches=2")
    policy, clean = trainer.policy, trainer.buffer
    lost = [1, 3]
    clean.valid.fill_(1.0)
    clean.valid[:, lost] = 0.0
    garbled = copy.deepcopy(clean)
    g = torch.Generator().manual_seed(1)
    for key, x in garbled.obs.items():
        noise = torch.randint(0, 256, x[:, lost].shape, generator=g).to(x.dtype) if key != "vector" else \
            torch.rand(x[:, lost].shape, generator=g)
        x[:, lost] = noise
    garbled.actions[:, lost] = torch.randint(0, 6, garbled.actions[:, lost].shape, generator=g)
    for x, scale in ((garbled.advantages, 100.0), (garbled.returns, 50.0), (garbled.values, 10.0),
                     (garbled.logprobs, 1.0)):
        x[:, lost] = scale * (1.0 + torch.rand(x[:, lost].shape, generator=g))
    weights_clean, stats_clean = masked_update(policy, clean, trainer)
    weights_garbled, stats_garbled = masked_update(policy, garbled, trainer)
    before = policy.state_dict()
    assert any(not torch.equal(before[k], weights_clean[k]) for k in before)  # the update did change the weights
    for key in weights_clean:
        torch.testing.assert_close(weights_garbled[key], weights_clean[key], rtol=1e-5, atol=1e-6, msg=key)
    for key in ("loss/policy", "loss/value", "loss/entropy"):
        assert stats_garbled[key] == pytest.approx(stats_clean[key], rel=1e-5, abs=1e-7), key
    np.testing.assert_array_equal(clean.valid[:, lost].numpy(), 0.0)


# Episodes of 10 steps (truncated) in rollouts of 16, seed 5; the pool layout is each test's.
BOOT_RUN = tiny_run("env.max_steps=10", "seed=5", drop=("pool.mode", "pool.workers"))


@pytest.mark.parametrize("layout", [["pool.mode=serial", "pool.workers=1"], ["pool.mode=async", "pool.workers=2"]],
                         ids=["sync", "async"])
def test_bootstrap_sees_the_last_frame_not_the_reset_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         layout: list[str]) -> None:
    """The final observation the trainer bootstraps from is env 0's own last frame: the frame a lone
    env shows after the same seed and actions; its reward grew by exactly γ·V."""
    seen: list[tuple[int, list[int], dict[str, np.ndarray], torch.Tensor]] = []
    real = Collector.bootstrap

    def spy(self, buffer, t, envs, final_obs, state):  # type: ignore[no-untyped-def]
        before = buffer.rewards[t].clone()
        real(self, buffer, t, envs, final_obs, state)
        seen.append((t, list(envs), {k: v.copy() for k, v in final_obs.items()}, buffer.rewards[t] - before))

    monkeypatch.setattr(Collector, "bootstrap", spy)
    trainer = Trainer(compose_train_config([*BOOT_RUN, *layout, "total_steps=32", f"run_dir={tmp_path}"]))
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
    monkeypatch.setattr(Collector, "bootstrap", lambda self, buffer, t, *a: calls.append(t))
    Trainer(compose_train_config([*BOOT_RUN, "pool.mode=serial", "pool.workers=1", "total_steps=32",
                                  "ppo.bootstrap_truncated=false", f"run_dir={tmp_path}"])).run()
    assert calls == []
