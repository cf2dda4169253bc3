"""The policy: a segment forward equals the per-step loop, the presets' sizes, and a memory task that the
LSTM policy solves and a memoryless policy cannot (trained with the real rollout buffer and PPO update)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
import yaml

from conftest import CueEnvs, tiny_config, tiny_space
from pokerl.config import PolicyConfig, PPOConfig
from pokerl.policy import Policy
from pokerl.ppo import RolloutBuffer, compute_gae, ppo_update
from pokerl.schema import config_path


def test_segment_forward_equals_per_step_loop() -> None:
    torch.manual_seed(0)
    policy = Policy(tiny_space(3), 4, tiny_config(True))
    T, B = 12, 3
    obs = {
        "screen": torch.randint(0, 255, (T, B, 4, 4, 1), dtype=torch.uint8),
        "visited": torch.randint(0, 255, (T, B, 4, 4, 1), dtype=torch.uint8),
        "vector": torch.randn(T, B, 3),
    }
    starts = torch.zeros(T, B)
    starts[0, :] = 1
    starts[4, 1] = 1
    starts[9, 0] = 1
    state = (torch.randn(1, B, 32), torch.randn(1, B, 32))
    logits, values, (h, c) = policy(obs, state, starts)
    step_state = state
    for t in range(T):
        lt, vt, step_state = policy({k: v[t : t + 1] for k, v in obs.items()}, step_state, starts[t : t + 1])
        torch.testing.assert_close(lt[0], logits[t])
        torch.testing.assert_close(vt[0], values[t])
    torch.testing.assert_close(step_state[0], h)
    torch.testing.assert_close(step_state[1], c)


def test_preset_parameter_counts() -> None:
    space = gym.spaces.Dict({
        "screen": gym.spaces.Box(0, 255, (72, 80, 3), np.uint8),
        "visited": gym.spaces.Box(0, 255, (72, 80, 1), np.uint8),
        "vector": gym.spaces.Box(-10, 10, (25,), np.float32),
    })
    counts = {}
    for name in ("default", "small"):
        cfg = PolicyConfig(**yaml.safe_load(config_path("model", name).read_text()))
        counts[name] = Policy(space, 6, cfg).count_parameters()
    assert 8e6 <= counts["default"] <= 12e6
    assert 0.7e6 <= counts["small"] <= 1.5e6


def train_cue_task(recurrent: bool, updates: int = 60, seed: int = 0) -> float:
    """Train on the cue task with the real rollout buffer and PPO update; return final success rate."""
    torch.manual_seed(seed)
    n, T, delay = 16, 20, 4
    cfg = PPOConfig(learning_rate=3e-3, anneal_lr=False, num_steps=T, bptt=10, num_minibatches=2, update_epochs=4,
                    gamma=0.9, gae_lambda=0.95, ent_coef=0.01, clip_coef=0.2, vf_clip_coef=10.0)
    space = tiny_space()
    policy = Policy(space, 2, tiny_config(recurrent))
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate, eps=1e-5)
    buffer = RolloutBuffer(T, n, space, cfg.bptt, 32, "cpu")
    envs = CueEnvs(n, delay, seed)
    state = policy.initial_state(n)
    starts = torch.ones(n)
    successes: list[float] = []
    for _ in range(updates):
        for t in range(T):
            obs = envs.obs()
            before = state
            action, logprob, value, state = policy.act(obs, state, starts)
            final = envs.t == delay
            reward, done = envs.step(action.numpy())
            successes.extend(reward[final].tolist())
            buffer.add(t, obs, action, logprob, value, starts, before)
            buffer.rewards[t] = torch.from_numpy(reward)
            starts = torch.from_numpy(done.astype(np.float32))
        _, _, next_value, _ = policy.act(envs.obs(), state, starts)
        buffer.advantages, buffer.returns = compute_gae(buffer.rewards, buffer.values, buffer.episode_starts,
                                                        next_value, starts, cfg.gamma, cfg.gae_lambda)
        ppo_update(policy, optimizer, buffer, cfg)
    return float(np.mean(successes[-200:]))


def test_lstm_policy_solves_memory_task_and_memoryless_does_not() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recurrent = train_cue_task(recurrent=True)
        memoryless = train_cue_task(recurrent=False)
    finally:
        torch.set_num_threads(threads)  # process-wide: later tests get the default back
    assert recurrent > 0.9, recurrent
    assert memoryless < 0.65, memoryless
