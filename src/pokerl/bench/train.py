"""Training throughput against its unavoidable costs, all measured in one run on the same cores.

- ``raw_sps`` (Rk): env steps/s of k independent processes each stepping its own envs with
  random actions, no pool, no learner (the emulator work that cannot be avoided);
- ``learner_samples_per_s`` (L): rollout inference plus the configured PPO epochs on one
  rollout's worth of samples, measured alone in this process;
- ``ideal_sps``: synchronous PPO cannot beat ``1 / (1/Rk + 1/L)`` on a CPU-only machine (envs
  and learner take turns on the same cores), or ``min(Rk, L)`` with the learner on a GPU;
- ``train_sps``: the real trainer (pool + policy + PPO + logging), timed after its first update.

``train_over_ideal`` says how much the pipeline wastes beyond that work (target >= 0.85).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from typing import Any

import numpy as np
import torch

from pokerl.config import compose_train_config, from_mapping
from pokerl.env import make_env
from pokerl.policy import Policy, PolicyConfig
from pokerl.ppo import PPOConfig, RolloutBuffer, compute_gae, ppo_update
from pokerl.trainer import Trainer, select_device


def _raw_worker(cfg: dict[str, Any], envs: int, seconds: float, seed: int, out: Any) -> None:
    """Step ``envs`` envs round-robin with random actions for ``seconds``; report steps/s."""
    made = [make_env(game=cfg["game"], reward=cfg["reward"], env=cfg["env"], rom=cfg.get("rom")) for _ in range(envs)]
    rng = np.random.default_rng(seed)
    for i, env in enumerate(made):
        env.reset(seed=seed + i)
    n_actions = int(made[0].action_space.n)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for env in made:
            _, _, term, trunc, _ = env.step(int(rng.integers(n_actions)))
            if term or trunc:
                env.reset()
            steps += 1
    out.put(steps / (time.perf_counter() - start))
    for env in made:
        env.close()


def raw_sps(cfg: dict[str, Any], processes: int, envs_per_process: int, seconds: float) -> float:
    """Rk: summed env steps/s of ``processes`` independent processes."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_raw_worker, args=(cfg, envs_per_process, seconds, 100 * i, out))
             for i in range(processes)]
    for p in procs:
        p.start()
    rates = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return float(sum(rates))


def learner_samples_per_s(cfg: dict[str, Any], repeats: int) -> float:
    """L: samples/s of rollout inference + PPO update for one rollout of ``num_envs`` envs."""
    env = make_env(game=cfg["game"], reward=cfg["reward"], env=cfg["env"], rom=cfg.get("rom"))
    space, n_actions = env.observation_space, int(env.action_space.n)
    env.close()
    ppo = from_mapping(PPOConfig, cfg["ppo"], "ppo")
    model_cfg = from_mapping(PolicyConfig, cfg["model"], "model")
    device = select_device(cfg["device"])
    policy = Policy(space, n_actions, model_cfg).to(device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=ppo.learning_rate, eps=1e-5)
    n, T = cfg["num_envs"], ppo.num_steps
    buffer = RolloutBuffer(T, n, space, ppo.bptt, model_cfg.hidden, device)
    gen = torch.Generator().manual_seed(0)
    obs = {k: (torch.randint(0, 256, (n, *sp.shape), generator=gen, dtype=torch.uint8) if sp.dtype == np.uint8
               else torch.rand((n, *sp.shape), generator=gen)).to(device) for k, sp in space.spaces.items()}
    times = []
    for _ in range(repeats + 1):  # the first round warms up
        start = time.perf_counter()
        state, starts = policy.initial_state(n, device), torch.zeros(n, device=device)
        for t in range(T):
            before = state
            action, logprob, value, state = policy.act(obs, state, starts)
            buffer.add(t, obs, action, logprob, value, starts, before)
            buffer.rewards[t] = torch.rand(n, device=device)
        _, _, next_value, _ = policy.act(obs, state, starts)
        buffer.advantages, buffer.returns = compute_gae(buffer.rewards, buffer.values, buffer.episode_starts,
                                                        next_value, starts, ppo.gamma, ppo.gae_lambda)
        ppo_update(policy, optimizer, buffer, ppo)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return n * T / float(np.median(times[1:]))


def train_sps(cfg: dict[str, Any], updates: int) -> float:
    """The real trainer's env steps/s over ``updates`` updates, timed from the end of its first."""
    with tempfile.TemporaryDirectory() as run_dir:
        log = {**cfg["log"], "progress": False, "checkpoint_every": 10**9, "video_every": 0, "heatmap_every": 10**9}
        trainer = Trainer({**cfg, "run_dir": run_dir, "log": log, "total_steps": 10**12})
        trainer.run(stop_at_update=updates + 1)
        (step0, t0), (step1, t1) = trainer.progress[0], trainer.progress[-1]
        return (step1 - step0) / (t1 - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pokerl-bench train", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (default: model=small)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of raw env stepping")
    parser.add_argument("--updates", type=int, default=6, help="trainer updates timed")
    parser.add_argument("--repeats", type=int, default=3, help="learner rounds timed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    cfg = compose_train_config(["model=small", "log.progress=false", *args.overrides])
    workers = max(cfg["num_workers"], 1)
    rk = raw_sps(cfg, workers, cfg["num_envs"] // workers, args.seconds)
    learner = learner_samples_per_s(cfg, args.repeats)
    on_gpu = select_device(cfg["device"]).type == "cuda"
    ideal = min(rk, learner) if on_gpu else 1.0 / (1.0 / rk + 1.0 / learner)
    real = train_sps(cfg, args.updates)
    result = {
        "train_sps": real, "raw_sps": rk, "learner_samples_per_s": learner, "ideal_sps": ideal,
        "train_over_ideal": real / ideal, "train_over_raw": real / rk,
        "num_envs": cfg["num_envs"], "num_workers": cfg["num_workers"], "device": "cuda" if on_gpu else "cpu",
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value:,.3f}" if isinstance(value, float) else f"{key:>24}: {value}")
    return 0

