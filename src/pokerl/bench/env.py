"""Environment overhead benchmark: GameBoyEnv steps/s over bare PyBoy steps/s, and RSS per extra env.

Both sides run the same ROM, booted the same way (the profile's boot script), with the same boot writes
and the same RNG seed, and take the same random button sequence, so they emulate exactly the same
game. The bare side does per step what the env's emulator session does (``pyboy.button(b, hold)``,
``tick(step - 1, False)``, ``tick(1, True)``) and nothing else; the env side adds reading RAM,
rewards and observations. The two sides alternate in chunks of 16 steps (tens of milliseconds),
timed in CPU seconds of this process (``time.process_time``), so a slow spell of the shared
machine lands on both alike; chunks are summed into rounds and a run's figures are medians over
its rounds (steps per CPU second, i.e. per core). One run says little about a goal like ">= 0.95":
runs on one commit read 0.906 to 0.970. So ``--runs`` runs, each in a fresh process one after the
other, are summarised by their median and spread, with the env's own cost per step in CPU µs
(env time minus bare time), which says what moved when the ratio did (see docs/benchmarks.md).

Memory: N envs are created in one process; (RSS with N) - (RSS with 1), divided by N - 1, is the
cost of each extra env (read from ``/proc/self/statm``).

  pokerl-bench env [--runs 5] [--seconds 10] [--envs 9] [--json]
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from pokerl.emulator import read_rom
from pokerl.env import GameBoyEnv
from pokerl.errors import exit_on_error


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RawPyBoy:
    """Bare PyBoy on the env's ROM, booted and seeded like the env, stepping like its session."""

    def __init__(self, env: GameBoyEnv, seed_value: int) -> None:
        """Boot like ``env`` (script, writes); ``seed_value``: the RNG state the env holds after reset."""
        from pyboy import PyBoy

        profile = env.profile
        rom = read_rom(profile.rom_path(), profile.sha1)
        self.pyboy = PyBoy(io.BytesIO(rom), window="null", sound_emulated=False, log_level="ERROR")
        self.pyboy.set_emulation_speed(0)
        self.hold = env.config.hold_frames
        self.rest = env.config.step_frames - 1
        boot = profile.boot
        if boot.ticks:
            self.pyboy.tick(boot.ticks, False)
        for step in boot.sequence:
            if step.button is not None:
                self.pyboy.button(step.button, step.hold)
            self.pyboy.tick(step.frames, False)
        self.pyboy.tick(1, True)
        for name, value in env.writes.items():
            profile.ram[name].write(self.pyboy.memory, value)
        self.pyboy.tick(1, True)  # the env ticks once after its reset writes too
        if boot.seed_field:  # then both sides hold the same RNG state on the same frame
            profile.ram[boot.seed_field].write(self.pyboy.memory, seed_value)
        self.buttons = [None if a == "noop" else a for a in profile.actions]

    def run(self, actions: Sequence[int]) -> None:
        """One step per action: press for ``hold`` frames, run to the step's end, render the last frame."""
        pyboy, buttons, hold, rest = self.pyboy, self.buttons, self.hold, self.rest
        for a in actions:
            button = buttons[a]
            if button is not None:
                pyboy.button(button, hold)
            pyboy.tick(rest, False)
            pyboy.tick(1, True)

    def close(self) -> None:
        self.pyboy.stop(save=False)


CLOCK = time.process_time  # CPU seconds of this process: other load on the machine does not count


def run_env(env: GameBoyEnv, actions: Sequence[int]) -> float:
    """CPU seconds spent in ``env.step`` for these actions (resets at episode ends are not counted)."""
    step = env.step
    in_reset = 0.0
    t0 = CLOCK()
    for a in actions:
        _, _, terminated, truncated, _ = step(a)
        if terminated or truncated:
            t1 = CLOCK()
            env.reset()
            in_reset += CLOCK() - t1
    return CLOCK() - t0 - in_reset


def run_raw(raw: RawPyBoy, actions: Sequence[int]) -> float:
    """CPU seconds the bare PyBoy takes for these actions."""
    t0 = CLOCK()
    raw.run(actions)
    return CLOCK() - t0


def measure_speed(seconds: float, rounds: int, seed: int = 0, chunk: int = 16) -> dict[str, Any]:
    """Env and bare PyBoy steps on the same action sequence, alternating every ``chunk`` steps.

    Returns the median steps/s of each side over ``rounds`` rounds and ``env_over_raw``, the median
    of the per-round ratios (within a round the sides interleave finely, so drifts in machine load
    cancel).
    """
    env = GameBoyEnv()
    _, info = env.reset(seed=seed)
    seed_field = env.profile.boot.seed_field
    raw = RawPyBoy(env, int(info[seed_field]) if seed_field else 0)
    rng = np.random.default_rng(seed)
    try:
        # calibrate the round length on the bare side (a short warm-up for both)
        warm = [int(a) for a in rng.integers(0, env.action_space.n, 100)]
        raw_rate = len(warm) / max(run_raw(raw, warm), 1e-6)
        run_env(env, warm)
        # the premise of the comparison: both sides emulate the same game, frame for frame
        same_frames = bool(np.array_equal(env.session.rgb(), raw.pyboy.screen.ndarray[:, :, :3]))
        per_round = max(50, int(raw_rate * seconds / (2 * rounds)))
        env_rates, raw_rates = [], []
        for _ in range(rounds):
            # Within a round the two sides alternate in chunks of a few steps (tens of ms), so a
            # slow spell of the shared machine lands on both sides alike.
            env_spent = raw_spent = 0.0
            for start in range(0, per_round, chunk):
                actions = [int(a) for a in rng.integers(0, env.action_space.n, min(chunk, per_round - start))]
                if (start // chunk) % 2:  # alternate which side goes first, so order effects cancel
                    raw_spent += run_raw(raw, actions)
                    env_spent += run_env(env, actions)
                else:
                    env_spent += run_env(env, actions)
                    raw_spent += run_raw(raw, actions)
            env_rates.append(per_round / max(env_spent, 1e-6))
            raw_rates.append(per_round / max(raw_spent, 1e-6))
        ratios = [e / r for e, r in zip(env_rates, raw_rates, strict=True)]
        env_sps, raw_sps = statistics.median(env_rates), statistics.median(raw_rates)
        return {
            "env_sps": env_sps,
            "raw_sps": raw_sps,
            "env_over_raw": statistics.median(ratios),
            "overhead_us": 1e6 * (1 / env_sps - 1 / raw_sps),  # the env's own CPU time per step
            "ratio_per_round": ratios,
            "rounds": rounds,
            "steps_per_round": per_round,
            "steps_per_chunk": chunk,
            "writes": dict(env.writes),  # the profile's boot writes both sides ran with (a ROM's speed knobs)
            "same_frames": same_frames,
        }
    finally:
        env.close()
        raw.close()


def measure_memory(n_envs: int, steps: int = 50) -> dict[str, Any]:
    """RSS with 1 env and with ``n_envs`` envs in this process; MB per extra env."""
    envs = []

    def add() -> None:
        env = GameBoyEnv()
        env.reset(seed=len(envs))
        for a in np.random.default_rng(len(envs)).integers(0, env.action_space.n, steps):
            env.step(int(a))
        envs.append(env)

    try:
        add()
        gc.collect()
        first = rss_mb()
        while len(envs) < n_envs:
            add()
        gc.collect()
        last = rss_mb()
        return {"envs": n_envs, "rss_mb_one_env": first, "rss_mb_all_envs": last,
                "rss_mb_per_env": (last - first) / max(n_envs - 1, 1)}
    finally:
        for env in envs:
            env.close()


def _run_in_child(seconds: float, rounds: int, seed: int, out: Any) -> None:
    out.put(measure_speed(seconds, rounds, seed))


def measure_runs(runs: int, seconds: float, rounds: int, seed: int) -> dict[str, Any]:
    """``runs`` runs of :func:`measure_speed`, one after the other, each in a fresh process (a run's
    process state, such as where its memory lies, is part of the spread); their median and range."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    per_run = []
    for k in range(runs):
        out = ctx.Queue()
        proc = ctx.Process(target=_run_in_child, args=(seconds, rounds, seed + k, out))
        proc.start()
        per_run.append(out.get())
        proc.join()
    summary: dict[str, Any] = {"runs": runs, "per_run": per_run}
    for key in ("env_over_raw", "env_sps", "raw_sps", "overhead_us"):
        values = sorted(r[key] for r in per_run)
        summary[key] = statistics.median(values)
        summary[f"{key}_range"] = [values[0], values[-1]]
    summary["same_frames"] = all(r["same_frames"] for r in per_run)
    summary["writes"] = per_run[0]["writes"]
    return summary


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    """Command-line entry (``pokerl-bench env``, ``scripts/bench_env.py``)."""
    parser = argparse.ArgumentParser(prog="pokerl-bench env", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs, each in a fresh process; median and range")
    parser.add_argument("--seconds", type=float, default=10.0, help="a run's time in speed rounds (both sides)")
    parser.add_argument("--rounds", type=int, default=10, help="a run's rounds of each side, alternating")
    parser.add_argument("--envs", type=int, default=9, help="envs created in one process for the RSS figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.seconds <= 0 or args.rounds < 1 or args.envs < 2:
        parser.error("need --runs >= 1, --seconds > 0, --rounds >= 1 and --envs >= 2")
    result = measure_memory(args.envs)
    result.update(measure_runs(args.runs, args.seconds, args.rounds, args.seed))
    result["targets"] = {"env_over_raw": ">= 0.95", "rss_mb_per_env": "<= 15"}
    if args.json:
        print(json.dumps(result))
        return 0
    def spread(key: str, fmt: str) -> str:
        low, high = result[f"{key}_range"]
        return f"{result[key]:{fmt}}   (runs: {low:{fmt}} to {high:{fmt}})"

    first = result["per_run"][0]
    rows = [
        ("env / raw (median over runs)", f"{spread('env_over_raw', '.3f')}   target >= 0.95"),
        ("env / raw per run", " ".join(f"{r['env_over_raw']:.3f}" for r in result["per_run"])),
        ("env steps/s per core (GameBoyEnv.step)", spread("env_sps", ".0f")),
        ("bare PyBoy steps/s per core (same ticks)", spread("raw_sps", ".0f")),
        ("env's own CPU time per step (us)", spread("overhead_us", ".0f")),
        ("runs x rounds x steps per round", f"{result['runs']} x {first['rounds']} x {first['steps_per_round']}"),
        ("boot writes", " ".join(f"{k}={v}" for k, v in result["writes"].items()) or "none"),
        (f"RSS with 1 / {result['envs']} envs (MB)",
         f"{result['rss_mb_one_env']:.1f} / {result['rss_mb_all_envs']:.1f}"),
        ("RSS per extra env (MB)", f"{result['rss_mb_per_env']:.2f}   (target <= 15)"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
