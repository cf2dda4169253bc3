"""Does pokerl learn? Train several seeds for a budget of env steps and count the steps each milestone costs.

Each seed trains the ``small`` policy on tinyquest for ``--steps`` env steps (one seed after another,
so each gets the whole machine), with 2,048-step episodes (``env.max_steps=2048``; tinyquest's
walkthrough completes the game in 765 steps). Steps, not minutes, are the budget: machines differ
in speed (2x on this one from day to day), the step count a milestone costs does not. Wall-clock
seconds are reported beside.

Per seed: the run's global step at which each milestone was first reached (any env). Across seeds:
the share of seeds that reached each milestone and the median of those steps. ``--results FILE``
appends each finished seed as one JSON line and reuses lines already there for the same seed and
composed config (``config``: a hash, so an edited reward file is a new setting), so a benchmark of
many hours can be run a few seeds at a time. ``--reset fresh,frontier`` compares reset modes
(``reset.mode=...`` added to the overrides); each trained policy is also
evaluated from power-on (``--eval-episodes``, default 8).

The seeds are 1, 2, 3 by default; ``--seeds 5`` trains 1 to 5, ``--seeds 7,8,9`` those three, ``--first-seed 7
--seeds 3`` 7 to 9. The bench sets each run's seed, budget and run dir itself: ``seed=``, ``total_steps=``,
``run_dir=`` (and ``overwrite=``, ``resume=``) among the overrides are refused, with the flag to use instead.

  pokerl-bench learning [--steps 1_000_000] [--seeds 3|7,8,9] [--first-seed 1] [--results FILE] [--json]
                        [hydra overrides...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from pokerl.atomic import write_text_atomically
from pokerl.cli import at_least
from pokerl.config import check_train_config, compose_mapping, compose_train_config
from pokerl.errors import ConfigError, exit_on_error
from pokerl.evaluate import evaluate, load_agent
from pokerl.trainer import Trainer

# Every seed's settings on top of configs/train.yaml (then the overrides, then seed, budget and run dir).
BENCH = ["model=small", "log.progress=false", "env.max_steps=2048", "eval.every=250"]


# Config keys pokerl gained after seeds had been recorded, with their defaults: left out of the hash when they
# hold them, so adding a key does not make every recorded seed a new setting.
ADDED_KEYS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("init",), None), (("archive", "by_map"), False), (("reset", "frontier_weight"), "milestones"),
    *((("reset", key), value) for key, value in (("chain", None), ("target", None), ("window", 256), ("step_back", 64),
                                                 ("threshold", 0.2), ("history", 32), ("later_share", 0.2),
                                                 ("time_factor", 2.0), ("min_steps", 0), ("follow", 0.0),
                                                 ("follow_radius", 2), ("imitate", 0.0),
                                                 ("imitate_steps", 256), ("exact_starts", False),
                                                 ("imitate_later", 0), ("imitate_own", 0))),
)


def fingerprint(overrides: list[str]) -> str:
    """The composed config a seed trains with, as a short hash: overrides in any order, or a changed
    config file (a reward edit), give the same or a different one. Seed, budget and logging are left out,
    and for power-on resets (``reset.mode=fresh``) the archive's and the other resets' settings, which
    such a run never reads: changing how the frontier archives does not make fresh seeds run again. A chain
    (``reset.chain``) counts by its content, not its path."""
    cfg = compose_mapping([*BENCH, *overrides])  # the YAML files' key order: the hashes of seeds run stay
    check_train_config(cfg, "train config")
    for key in ("seed", "run_dir", "total_steps", "overwrite", "resume", "log", "eval"):  # eval: RNG left alone
        cfg.pop(key, None)
    (cfg["game"].get("world_map") or {}).pop("names", None)  # what reports call the maps: no part of training
    for path, default in ADDED_KEYS:  # as before the key existed: the hashes of seeds already run stay the same
        *parents, key = path
        section = cfg
        for parent in parents:
            section = section.get(parent) or {}
        if key in section and section[key] == default:
            del section[key]
    if cfg["reset"].get("chain"):
        path = Path(cfg["reset"]["chain"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"reset.chain={path}: no such chain file (pokerl-chain writes one)")
        cfg["reset"]["chain"] = hashlib.sha1(path.read_bytes()).hexdigest()
    if cfg["reset"]["mode"] == "fresh":
        cfg["reset"] = {"mode": "fresh"}
        cfg.pop("archive")
    return hashlib.sha1(yaml.safe_dump(cfg, sort_keys=False).encode()).hexdigest()[:10]


def seed_dir(run_root: Path, seed: int, overrides: list[str]) -> Path:
    """Where a seed's run lives: one folder per composed config (:func:`fingerprint`) and seed."""
    return run_root / fingerprint(overrides) / f"seed{seed}"


def run_seed(seed: int, steps: int, overrides: list[str], run_root: Path, eval_episodes: int,
             later: Sequence[str] = ()) -> dict[str, Any]:
    """Train one seed for ``steps`` env steps; return when each milestone was first reached and, over
    ``eval_episodes`` seeded episodes from power-on, how often its policy reaches each milestone.
    ``later``: overrides outside the seed's fingerprint, applied to a resumed run's config too.

    A seed stopped before its budget (SIGTERM, the end of a working session) continues from its last
    checkpoint the next time (``resume=``), its wall-clock seconds added up; nothing is recorded
    for it until it has finished.
    """
    run_dir = seed_dir(run_root, seed, overrides)
    done_before = run_dir / "bench_seconds.txt"
    if (run_dir / "checkpoints" / "latest.pt").is_file() and done_before.is_file():
        cfg = compose_train_config([f"resume={run_dir}", f"run_dir={run_dir}", f"total_steps={steps}", *later])
        seconds = _float_file(done_before)
    else:
        cfg = compose_train_config([*BENCH, *overrides, f"seed={seed}", f"run_dir={run_dir}", f"total_steps={steps}",
                                    "overwrite=true", *later])
        seconds = 0.0
    start = time.perf_counter()
    trainer = Trainer(cfg)
    try:
        trainer.run()
    finally:
        seconds += time.perf_counter() - start
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(done_before, f"{seconds:.1f}")  # read back when the seed continues
    if trainer.stop_signal is not None:  # stopped with a checkpoint: continued next time
        raise SystemExit(128 + trainer.stop_signal)
    rates = {}
    if eval_episodes:  # from power-on, whatever the training resets were
        agent = load_agent(trainer.run_dir)
        result = evaluate(agent, eval_episodes, workers=1, envs_per_worker=4, seed=seed)
        rates = result.milestone_rates
    return {
        "seed": seed, "overrides": overrides, "config": fingerprint(overrides), "budget": steps,
        "steps": trainer.global_step,
        "seconds": round(seconds, 1),
        "milestone_first": dict(sorted(trainer.tally.first.items(), key=lambda kv: kv[1])),
        "eval_from_power_on": rates,
    }


def summarize(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Across seeds: per milestone, the share of seeds that reached it and the median first step."""
    names = sorted({m for s in seeds for m in s["milestone_first"]})
    milestones = {}
    for name in names:
        steps = [s["milestone_first"][name] for s in seeds if name in s["milestone_first"]]
        milestones[name] = {"share": len(steps) / len(seeds), "median_step": statistics.median(steps)}
    return {"seeds": seeds, "milestones": milestones}


def load_results(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            raise ConfigError(f"{path}: line {n} is not JSON (a results file of pokerl-bench learning)") from None
    return out


def _float_file(path: Path) -> float:
    try:
        return float(path.read_text())
    except ValueError:
        raise ConfigError(f"{path}: not a number of seconds (delete it to count from 0)") from None


# What run_seed() sets itself on every seed's run, each with the flag that chooses it: an override of one
# would be dropped (the bench's own comes after the overrides), so it is refused.
OWN_KEYS = {"seed": "choose the seeds with --seeds 7,8,9 or --first-seed 7", "run_dir": "the runs go under --run-root",
            "total_steps": "the budget is --steps", "overwrite": "each seed's run dir is the bench's",
            "resume": "a stopped seed resumes by itself"}


def parse_seeds(text: str, first: int) -> list[int]:
    """``--seeds``: a count (that many seeds from ``first``) or a comma list of seeds (``7,8,9``)."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()] if "," in text else list(range(first, first + int(text)))
    except ValueError:
        raise ConfigError(f"--seeds {text}: expected a count (3) or a comma list of seeds (7,8,9)") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds {text} (--first-seed {first}): expected at least one seed, each >= 0 and "
                          f"named once")
    return seeds


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pokerl-bench learning", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every seed")
    parser.add_argument("--seeds", default="3", help="how many seeds (from --first-seed), or which: 7,8,9")
    parser.add_argument("--first-seed", type=int, default=1, help="the first seed of a --seeds count")
    parser.add_argument("--steps", type=lambda s: int(s.replace("_", "")), default=1_000_000,
                        help="env steps per seed")
    parser.add_argument("--reset", default=None, help="reset modes to compare, e.g. fresh,frontier "
                        "(each adds reset.mode=MODE to the overrides)")
    parser.add_argument("--eval-episodes", type=int, default=8, help="episodes from power-on per trained seed")
    parser.add_argument("--results", type=Path, default=None, help="JSON lines of finished seeds: reused, appended")
    parser.add_argument("--run-root", default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    at_least(1, steps=args.steps)
    at_least(0, eval_episodes=args.eval_episodes)
    for override in args.overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in OWN_KEYS:
            raise ConfigError(f"pokerl-bench learning: {key}= is the benchmark's own ({OWN_KEYS[key]}); leave it out")
    seed_list = parse_seeds(args.seeds, args.first_seed)
    # a seed run is known by its seed, budget and composed config (so that e.g. `--reset fresh,frontier` reuses
    # the runs of an earlier `--reset fresh`, and runs made before a config file changed are not reused)
    done = {(r["seed"], r.get("config"), r["budget"]): r for r in load_results(args.results)}
    settings = {mode: [*args.overrides, f"reset.mode={mode}"] for mode in args.reset.split(",")} if args.reset \
        else {"default": args.overrides}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in settings.items():
            root = Path(args.run_root or tmp)
            seeds = []
            for seed in seed_list:
                result = done.get((seed, fingerprint(overrides), args.steps))
                if result is None:
                    result = run_seed(seed, args.steps, overrides, root, args.eval_episodes)
                    if args.results is not None:  # the whole file, atomically: a kill mid-write loses no seed
                        lines = [json.dumps(r) for r in load_results(args.results)]
                        write_text_atomically(args.results, "\n".join([*lines, json.dumps(result)]) + "\n")
                seeds.append(result)
            out[name] = {**summarize(seeds), "steps_per_seed": args.steps, "overrides": overrides}
    result = out["default"] if list(out) == ["default"] else out
    if args.json:
        print(json.dumps(result))
        return 0
    for name, res in out.items():
        print(f"== {name}: {' '.join(res['overrides']) or '(defaults)'}")
        for s in res["seeds"]:
            firsts = ", ".join(f"{m} {step:,}" for m, step in s["milestone_first"].items()) or "-"
            print(f"seed {s['seed']}: {s['steps']:,} steps in {s['seconds']:,.0f} s; first reached: {firsts}")
        for milestone, m in res["milestones"].items():
            print(f"{milestone:<14} share {m['share']:.2f}  median first step {m['median_step']:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
