"""Soak test: a long real training run with its emulator workers killed at random, and a SIGTERM + resume.

``pokerl-train`` runs as a child process (tinyquest, ``small``, 2 worker processes besides the
trainer's own group: ``pool.mode=workers``). Every ``--kill-every`` seconds a random worker process
is sent SIGKILL; halfway the trainer gets SIGTERM, must exit 143 with a checkpoint, and is started
again with ``resume=``, which must continue from that checkpoint's step. RSS of the trainer and of
its workers is sampled every few seconds. Reported (``--json``): ``worker_restarts`` (restarts the
trainers logged) against ``workers_killed``, ``steps_lost`` (steps between the SIGTERM checkpoint and
the last update trained before it: 0 when nothing was lost), ``checkpoints_ok`` / ``checkpoints`` (every
checkpoint written loads), and ``rss_growth_trainer`` / ``rss_growth_workers``: RSS at the end of
each run over its RSS after warm-up (the larger of the two runs).

  pokerl-bench soak [--minutes 20] [--kill-every 150] [--json] [hydra overrides...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pokerl.checkpoint import load_checkpoint
from pokerl.logger import read_scalar_tags

TRAIN = ["model=small", "pool.mode=workers", "pool.workers=2", "num_envs=8", "total_steps=1_000_000_000",
         "log.progress=false", "log.checkpoint_every=5", "log.keep_checkpoints=1000"]


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """The env worker processes of the trainer ``pid``: its children started by multiprocessing's
    spawn (not its resource tracker, a child too)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))
    return sorted(found)


def run_phase(args: list[str], seconds: float, kill_every: float, warmup: float, rng: random.Random,
              log: Any) -> dict[str, Any]:
    """Train for ``seconds`` with workers killed every ``kill_every`` s, then SIGTERM; what happened."""
    proc = subprocess.Popen([sys.executable, "-m", "pokerl.cli.train", *args], stdout=log, stderr=log,
                            start_new_session=True)
    start = time.monotonic()
    next_kill = start + kill_every
    killed = 0
    first: tuple[float, float] | None = None
    last = (0.0, 0.0)
    timeline: list[list[float]] = []  # [seconds, trainer MB, workers MB] about once a minute
    try:
        while time.monotonic() - start < seconds:
            time.sleep(2.0)
            if proc.poll() is not None:
                raise RuntimeError(f"pokerl-train ended early with exit code {proc.returncode}")
            workers = children(proc.pid)
            last = (rss_mb(proc.pid), sum(rss_mb(w) for w in workers))
            if not timeline or time.monotonic() - start - timeline[-1][0] >= 60:
                timeline.append([round(time.monotonic() - start), round(last[0]), round(last[1])])
            if first is None and time.monotonic() - start >= warmup:
                first = last
            if time.monotonic() >= next_kill and workers:
                os.kill(rng.choice(workers), signal.SIGKILL)
                killed += 1
                next_kill += kill_every
        proc.send_signal(signal.SIGTERM)  # the trainer only: it closes its own workers
        code = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    first = first or last
    return {"exit_code": code, "killed": killed, "rss_timeline": timeline,
            "rss_growth_trainer": last[0] / first[0] if first[0] else float("nan"),
            "rss_growth_workers": last[1] / first[1] if first[1] else float("nan")}


def soak(minutes: float, kill_every: float, overrides: list[str], run_dir: Path, log: Any) -> dict[str, Any]:
    rng = random.Random(0)
    half, warmup = 30.0 * minutes, min(120.0, 15.0 * minutes)
    first = run_phase([*TRAIN, *overrides, f"run_dir={run_dir}"], half, kill_every, warmup, rng, log)
    stopped_at = load_checkpoint(run_dir)["global_step"]
    trained = max(s for s, _ in read_scalar_tags(run_dir / "tb")["loss/policy"])  # before the resume purges
    second = run_phase([f"resume={run_dir}"], half, kill_every, warmup, rng, log)
    tags = read_scalar_tags(run_dir / "tb")
    steps = [s for s, _ in tags["loss/policy"]]
    restarts = tags.get("fault/worker_restarts", [])
    # each run counts its own restarts from 0: the last value before the resume plus the last one after it
    before = [v for s, v in restarts if s <= stopped_at]
    after = [v for s, v in restarts if s > stopped_at]
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))
    ok = 0
    for path in ckpts:
        try:
            load_checkpoint(path)
            ok += 1
        except Exception:  # noqa: BLE001 — counted, not raised: this is what the soak measures
            pass
    return {
        "minutes": minutes,
        "exit_codes": [first["exit_code"], second["exit_code"]],
        "workers_killed": first["killed"] + second["killed"],
        "worker_restarts": int((before[-1] if before else 0) + (after[-1] if after else 0)),
        "steps_lost": int(trained - stopped_at),  # trained before the SIGTERM but not in its checkpoint
        "steps": steps[-1] if steps else 0,
        "checkpoints": len(ckpts),
        "checkpoints_ok": ok,
        "rss_growth_trainer": max(first["rss_growth_trainer"], second["rss_growth_trainer"]),
        "rss_growth_workers": max(first["rss_growth_workers"], second["rss_growth_workers"]),
        "rss_timeline": [first["rss_timeline"], second["rss_timeline"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pokerl-bench soak", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the training run")
    parser.add_argument("--minutes", type=float, default=20.0, help="the whole soak (two runs of half each)")
    parser.add_argument("--kill-every", type=float, default=150.0, help="seconds between worker kills")
    parser.add_argument("--run-dir", default=None, help="keep the run here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run_dir or Path(tmp) / "run")
        with open(Path(tmp) / "train.log", "w") as log:
            result = soak(args.minutes, args.kill_every, args.overrides, run_dir, log)
    result["targets"] = {"checkpoints_ok": "= checkpoints", "worker_restarts": "= workers_killed",
                         "rss_growth_trainer": "<= 1.05", "rss_growth_workers": "<= 1.05", "steps_lost": "0"}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0
