"""PPO pieces against hand-computed values, GAE against a reference loop and by hand, and the update's
minibatches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import CueEnvs, tiny_config, tiny_space
from pokerl.policy import Policy
from pokerl.ppo import (
    PPOConfig,
    RolloutBuffer,
    compute_gae,
    explained_variance,
    policy_loss,
    ppo_update,
    value_loss,
)


def test_policy_loss_matches_hand_computation() -> None:
    # ratios: e^0.5 ≈ 1.6487 (clipped to 1.1), e^-0.5 ≈ 0.6065 (clipped to 0.9), 1.0
    new = torch.tensor([0.5, -0.5, 0.0])
    old = torch.zeros(3)
    adv = torch.tensor([1.0, 1.0, -2.0])
    # per sample: max(-A r, -A clip(r)):
    #  A=1, r=1.6487: max(-1.6487, -1.1) = -1.1
    #  A=1, r=0.6065: max(-0.6065, -0.9) = -0.6065
    #  A=-2, r=1:     max(2, 2) = 2
    expected = (-1.1 - math.exp(-0.5) + 2.0) / 3
    assert policy_loss(new, old, adv, clip=0.1).item() == pytest.approx(expected, rel=1e-6)


def test_value_loss_clipped_and_unclipped() -> None:
    new = torch.tensor([1.0, 0.0])
    old = torch.tensor([0.5, 0.0])
    ret = torch.tensor([2.0, 1.0])
    # unclipped: 0.5 * mean((1-2)^2, (0-1)^2) = 0.5
    assert value_loss(new, old, ret, clip=None).item() == pytest.approx(0.5)
    # clipped value for sample 0: 0.5 + clamp(0.5, ±0.2) = 0.7 → (0.7-2)^2 = 1.69 > 1 → taken
    expected = 0.5 * (1.69 + 1.0) / 2
    assert value_loss(new, old, ret, clip=0.2).item() == pytest.approx(expected, rel=1e-6)


def test_explained_variance() -> None:
    target = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(target, target) == pytest.approx(1.0)
    assert explained_variance(torch.full_like(target, target.mean().item()), target) == pytest.approx(0.0)


def reference_gae(rewards, values, starts, next_value, next_start, gamma, lam):
    """GAE by its definition, not by the recursion: A_t = sum over k of (γλ)^k δ_{t+k}, summed forward
    until the episode ends (a start flag) or the rollout does; δ_t = r_t + γ V(next obs) - V_t, where
    V(next obs) is 0 when the next obs starts a new episode."""
    T, N = rewards.shape
    values_next = np.concatenate([values[1:], next_value[None]])
    starts_next = np.concatenate([starts[1:], next_start[None]])
    delta = rewards + gamma * values_next * (1.0 - starts_next) - values
    adv = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            total, k = 0.0, 0
            while t + k < T:
                total += (gamma * lam) ** k * delta[t + k, n]
                if starts_next[t + k, n]:  # step t+k ended the episode
                    break
                k += 1
            adv[t, n] = total
    return adv, adv + values


def test_gae_matches_reference_loop() -> None:
    rng = np.random.default_rng(0)
    T, N = 37, 5
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    starts = (rng.random((T, N)) < 0.1).astype(np.float64)
    next_value = rng.normal(size=N)
    next_start = (rng.random(N) < 0.5).astype(np.float64)
    adv, ret = compute_gae(*(torch.tensor(x) for x in (rewards, values, starts, next_value, next_start)), 0.99, 0.9)
    ref_adv, ref_ret = reference_gae(rewards, values, starts, next_value, next_start, 0.99, 0.9)
    np.testing.assert_allclose(adv.numpy(), ref_adv, rtol=1e-10)
    np.testing.assert_allclose(ret.numpy(), ref_ret, rtol=1e-10)


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


def test_minibatches_are_as_many_as_configured_when_sequences_do_not_divide() -> None:
    """10 sequences (5 envs x 2 of 10 steps) in 4 minibatches: 4 optimiser steps per epoch, not 5."""
    torch.manual_seed(0)
    n, T = 5, 20
    cfg = PPOConfig(num_steps=T, bptt=10, num_minibatches=4, update_epochs=2)
    space = tiny_space()
    policy = Policy(space, 2, tiny_config(recurrent=True))
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    buffer = RolloutBuffer(T, n, space, cfg.bptt, 32, "cpu")
    envs, state, starts = CueEnvs(n, 4, 0), policy.initial_state(n), torch.ones(n)
    for t in range(T):
        obs = envs.obs()
        action, logprob, value, new_state = policy.act(obs, state, starts)
        reward, done = envs.step(action.numpy())
        buffer.add(t, obs, action, logprob, value, starts, state)
        buffer.rewards[t] = torch.from_numpy(reward)
        state, starts = new_state, torch.from_numpy(done.astype(np.float32))
    _, _, next_value, _ = policy.act(envs.obs(), state, starts)
    buffer.advantages, buffer.returns = compute_gae(buffer.rewards, buffer.values, buffer.episode_starts,
                                                    next_value, starts, cfg.gamma, cfg.gae_lambda)
    steps: list[int] = []
    ppo_update(policy, optimizer, buffer, cfg, before_step=lambda: steps.append(1))
    assert len(steps) == 2 * 4
