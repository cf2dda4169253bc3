"""Training throughput against its unavoidable costs, all measured in one run on the same cores.

- ``raw_sps`` (Rk): env steps/s of k independent processes each stepping its own envs with
  random actions, no pool, no learner (the emulator work that cannot be avoided);
- ``learner_samples_per_s`` (L): rollout inference plus the configured PPO epochs on one
  rollout's worth of samples, measured alone in this process;
- ``ideal_sps``: synchronous PPO cannot beat ``1 / (1/Rk + 1/L)`` on a CPU-only machine (envs
  and learner take turns on the same cores), or ``min(Rk, L)`` with the learner on a GPU;
- ``train_sps``: the real trainer (pool + policy + PPO + logging), one update at a time.

The three are measured interleaved: after every trainer update the raw processes step for a few
seconds and the learner does one round (a probe), and each update is compared with the mean of the
probes on either side of it, so a slow spell of the shared machine lands on all three alike. Each
update gives one ``train / ideal``; the figures are medians over updates (the trainer's first
update, which warms up, is not counted). ``train_over_ideal`` says how much the
pipeline wastes beyond that work (target >= 0.85).

  pokerl-bench train [--rounds 8] [--raw-seconds 3] [--json] [hydra overrides...]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from pokerl.config import TrainConfig, compose_train_config
from pokerl.distributed import select_device
from pokerl.env import make_env
from pokerl.errors import ConfigError, exit_on_error
from pokerl.policy import Policy
from pokerl.ppo import RolloutBuffer, compute_gae, ppo_update
from pokerl.spec import run_spec
from pokerl.trainer import Trainer


def _raw_worker(cfg: TrainConfig, envs: int, seed: int, commands: Any, out: Any) -> None:
    """Own ``envs`` envs; for each number of seconds received, step them round-robin with random
    actions for that long and report steps/s (``None`` ends the worker)."""
    spec = run_spec(cfg)
    made = [make_env(spec=spec, rom=cfg.rom) for _ in range(envs)]
    rng = np.random.default_rng(seed)
    for i, env in enumerate(made):
        env.reset(seed=seed + i)
    n_actions = int(made[0].action_space.n)
    out.put(0.0)  # ready
    while (seconds := commands.get()) is not None:
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


class RawEnvs:
    """Rk: ``processes`` independent processes stepping their own envs, on demand."""

    def __init__(self, cfg: TrainConfig, processes: int, envs_per_process: int) -> None:
        ctx = mp.get_context("spawn")
        self.commands = [ctx.Queue() for _ in range(processes)]
        self.out = ctx.Queue()
        self.procs = [ctx.Process(target=_raw_worker, args=(cfg, envs_per_process, 100 * i, q, self.out), daemon=True)
                      for i, q in enumerate(self.commands)]
        for p in self.procs:
            p.start()
        for _ in self.procs:
            self.out.get()

    def sps(self, seconds: float) -> float:
        """Summed env steps/s of all processes stepping for ``seconds`` at the same time."""
        for q in self.commands:
            q.put(seconds)
        return float(sum(self.out.get() for _ in self.procs))

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for p in self.procs:
            p.join(timeout=30)


class Learner:
    """L: rollout inference + PPO update on random observations, one rollout of ``num_envs`` envs."""

    def __init__(self, cfg: TrainConfig) -> None:
        spec = run_spec(cfg)
        space, n_actions = spec.observation_space, int(spec.action_space.n)
        self.ppo, model_cfg = cfg.ppo, cfg.model
        self.device = device = select_device(cfg.device)
        self.policy = Policy(space, n_actions, model_cfg).to(device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.ppo.learning_rate, eps=1e-5)
        self.n, self.T = cfg.num_envs, self.ppo.num_steps
        self.buffer = RolloutBuffer(self.T, self.n, space, self.ppo.bptt, model_cfg.hidden, device)
        gen = torch.Generator().manual_seed(0)
        self.obs = {k: (torch.randint(0, 256, (self.n, *sp.shape), generator=gen, dtype=torch.uint8)
                        if sp.dtype == np.uint8 else torch.rand((self.n, *sp.shape), generator=gen)).to(device)
                    for k, sp in space.spaces.items()}

    def samples_per_s(self) -> float:
        """One round: T inference steps of n envs, GAE, the PPO epochs; samples/s."""
        policy, buffer, obs, n, device, ppo = self.policy, self.buffer, self.obs, self.n, self.device, self.ppo
        start = time.perf_counter()
        state, starts = policy.initial_state(n, device), torch.zeros(n, device=device)
        with torch.no_grad():
            for t in range(self.T):
                before = state
                action, logprob, value, state = policy.act(obs, state, starts)
                buffer.add(t, obs, action, logprob, value, starts, before)
                buffer.rewards[t] = torch.rand(n, device=device)
            _, _, next_value, _ = policy.act(obs, state, starts)
        buffer.advantages, buffer.returns = compute_gae(buffer.rewards, buffer.values, buffer.episode_starts,
                                                        next_value, starts, ppo.gamma, ppo.gae_lambda)
        ppo_update(policy, self.optimizer, buffer, ppo)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return n * self.T / (time.perf_counter() - start)


def measure(cfg: TrainConfig, rounds: int, raw_seconds: float) -> dict[str, Any]:
    """``rounds`` trainer updates, each between two probes (raw envs for ``raw_seconds``, then one
    learner round). An update's ideal time uses the mean of the probes on either side of it, so a
    steady drift of the machine's speed cancels; medians and per-round ratios are returned."""
    workers = cfg.pool.workers
    on_gpu = select_device(cfg.device).type == "cuda"
    if cfg.torch_threads > 0:  # as the trainer will: the learner probe runs with the same threads
        torch.set_num_threads(cfg.torch_threads)
    raw = RawEnvs(cfg, workers, cfg.num_envs // workers)
    learner = Learner(cfg)
    learner.samples_per_s()  # warm-up
    probes: list[tuple[float, float]] = []  # (raw env steps/s, learner samples/s) after each update
    update_seconds: list[float] = []  # each timed update, from the end of one probe to the next probe
    last_end = 0.0

    def between_updates(trainer: Trainer) -> None:
        nonlocal last_end
        if probes:  # the trainer's first update warms up and is not timed
            update_seconds.append(time.perf_counter() - last_end)
        probes.append((raw.sps(raw_seconds), learner.samples_per_s()))
        last_end = time.perf_counter()

    try:
        with tempfile.TemporaryDirectory() as run_dir:
            log = replace(cfg.log, progress=False, checkpoint_every=10**9, video_every=0, heatmap_every=10**9)
            trainer = Trainer(replace(cfg, run_dir=run_dir, log=log, total_steps=10**12))
            samples = trainer.ppo_cfg.num_steps * trainer.num_envs
            trainer.run(stop_at_update=rounds + 1, after_update=between_updates)
    finally:
        raw.close()
    rows = []
    for k, seconds in enumerate(update_seconds):
        (r0, l0), (r1, l1) = probes[k], probes[k + 1]
        env_s, learn_s = samples * (1 / r0 + 1 / r1) / 2, samples * (1 / l0 + 1 / l1) / 2  # seconds per update
        ideal_s = max(env_s, learn_s) if on_gpu else env_s + learn_s
        rows.append({"train": samples / seconds, "raw": samples / env_s, "learner": samples / learn_s,
                     "ideal": samples / ideal_s})
    ratios = [r["train"] / r["ideal"] for r in rows]
    return {
        "train_sps": statistics.median(r["train"] for r in rows),
        "raw_sps": statistics.median(r["raw"] for r in rows),
        "learner_samples_per_s": statistics.median(r["learner"] for r in rows),
        "ideal_sps": statistics.median(r["ideal"] for r in rows),
        "train_over_ideal": statistics.median(ratios),
        "train_over_raw": statistics.median(r["train"] / r["raw"] for r in rows),
        "ratio_per_round": ratios,
        "rounds": len(rows),
        "num_envs": cfg.num_envs, "workers": workers, "device": "cuda" if on_gpu else "cpu",
        "steps_trained": trainer.global_step, "raw_processes": len(raw.procs),
    }


# What measure() sets itself on the trainer it times: an override of these would be dropped, so it is refused.
OWN_KEYS = ("run_dir", "resume", "total_steps", "log.progress", "log.checkpoint_every", "log.video_every",
            "log.heatmap_every")


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    """Command-line entry (``pokerl-bench train``, ``scripts/bench_train.py``)."""
    parser = argparse.ArgumentParser(prog="pokerl-bench train", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (default: model=small)")
    parser.add_argument("--rounds", type=int, default=8, help="trainer updates timed, each between two probes")
    parser.add_argument("--raw-seconds", type=float, default=3.0, help="seconds of raw env stepping per round")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.raw_seconds <= 0:
        parser.error("need --rounds >= 1 and --raw-seconds > 0")
    for override in args.overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in OWN_KEYS:
            raise ConfigError(f"pokerl-bench train: {key}= is the benchmark's own (a temporary run of --rounds "
                              "updates, logs quiet); leave it out")
    cfg = compose_train_config(["model=small", "log.progress=false", *args.overrides])
    result = measure(cfg, args.rounds, args.raw_seconds)
    result["targets"] = {"train_over_ideal": ">= 0.85"}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if isinstance(value, float):
                print(f"{key:>24}: {value:,.3f}")
            elif key == "ratio_per_round":
                print(f"{key:>24}: {' '.join(f'{r:.3f}' for r in value)}")
            else:
                print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
