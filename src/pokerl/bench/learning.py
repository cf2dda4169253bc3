"""Does pokerl learn? Train several seeds for a fixed wall-clock budget and count milestones.

Each seed trains the ``small`` policy on tinyquest for ``--minutes`` (one seed after another, so
each gets the whole machine), with 2,048-step episodes (``env.max_steps=2048``; tinyquest's
walkthrough completes the game in ~900 steps). Reported: the share of seeds whose agent got past the first badge
(``badge1`` reached in any finished episode) and the mean number of distinct milestones reached.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from pokerl.config import compose_train_config
from pokerl.trainer import Trainer


def run_seed(seed: int, minutes: float, overrides: list[str], run_root: Path) -> dict[str, Any]:
    """Train one seed for ``minutes``; return what it reached."""
    cfg = compose_train_config([
        "model=small", "log.progress=false", f"seed={seed}", f"run_dir={run_root / f'seed{seed}'}",
        "total_steps=1_000_000_000", "env.max_steps=2048", *overrides,
    ])
    trainer = Trainer(cfg)
    trainer.run(time_limit_s=60.0 * minutes)
    reached = sorted(trainer.milestones_ever)
    return {"seed": seed, "steps": trainer.global_step, "milestones": reached, "past_first_badge": "badge1" in reached}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pokerl-bench learning", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock training per seed")
    parser.add_argument("--run-root", default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.run_root or tmp)
        seeds = [run_seed(s, args.minutes, args.overrides, root) for s in range(1, args.seeds + 1)]
    result = {
        "seeds": seeds,
        "minutes_per_seed": args.minutes,
        "share_past_first_badge": sum(s["past_first_badge"] for s in seeds) / len(seeds),
        "mean_milestones": sum(len(s["milestones"]) for s in seeds) / len(seeds),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for s in seeds:
            print(f"seed {s['seed']}: {s['steps']:,} steps, milestones: {', '.join(s['milestones']) or '-'}")
        print(f"share past first badge: {result['share_past_first_badge']:.2f}; "
              f"mean milestones: {result['mean_milestones']:.2f}")
    return 0
