"""Make the agent shipped in the package: train one seed, export half-precision weights, measure them
and write the model card beside them.

The training is one seed trained like the learning benchmark's (``pokerl.bench.learning.run_seed``) with
the method it found best and what the pretrained run added (``METHOD``; the benchmark's table is in
docs/learning-benchmark.md), plus ``EXTRA``, and for longer (``--steps``): the benchmark's seeds won the
first badge at about 610k of their 1M steps, and five milestones follow it. Its run folder is
``--run-root``/<overrides hash>/seed<N>, so a stopped run (SIGTERM) continues where it stopped when the
same command runs again on the same machine.

Training longer than a working session lasts, on machines that keep nothing but the repository: stop
it, ``--export-only`` ships what the run has learnt so far (the card says how far: steps against the
budget), and the next session goes on from the shipped weights with ``--init`` (``init=``: a new run
from those weights; the optimiser and the archive start afresh). The card lists every such stage.
``--set KEY=VALUE`` changes the run's config from now on without making it another run (a resumed run
goes on with it; the archive and the optimiser stay); the card's stage lists each change with the step
it took effect at. The card's figures are measured on the shipped half-precision weights, from power-on,
over ``--episodes`` seeded episodes.

  python scripts/train_pretrained.py [--seed 1] [--steps 5_000_000] [--run-root runs/pretrained]
                                     [--episodes 32] [--out src/pokerl/pretrained]
                                     [--init src/pokerl/pretrained/tinyquest.pt] [--set KEY=VALUE ...]
                                     [--export-only]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
from pathlib import Path

import yaml

from pokerl import __version__
from pokerl.atomic import write_atomically, write_text_atomically
from pokerl.bench.learning import run_seed, seed_dir
from pokerl.checkpoint import load_checkpoint
from pokerl.cli import at_least
from pokerl.errors import exit_on_error
from pokerl.evaluate import evaluate, load_agent
from pokerl.pretrained import (
    card_path,
    count_parameters,
    export_weights,
    portable_config,
    pretrained_dir,
    read_card,
)

# The best method measured by the learning benchmark so far (docs/learning-benchmark.md). At 1M steps no
# method finishes tinyquest from power-on. Fresh resets play the early game best from power-on (three
# seeds fight Rocko in 5-8 of 8 episodes) but nothing after the badge was ever trained; frontier resets
# train the late game (seed 2's archive held both the first badge and Route 2 at levels 6-8, Mira's
# levels) but their policies, trained from power-on in a quarter of episodes, reach the gym from
# power-on in 0-2 of 8. So: frontier resets, with half the episodes from power-on. Stage 1's run (not the
# benchmark) then added maps to the archive's cells and weighed sets by their reward (archive.py, ``weights``):
# joined at 8.44M and 9.19M steps, they gave the run its first completion at 9.74M, 6M steps after its first
# second badge (docs/shipped-agent.md).
METHOD = ["ppo.bootstrap_truncated=true", "reset.mode=frontier", "reset.fresh_share=0.5",
          "archive.by_map=true", "archive.max_states=128", "reset.frontier_weight=reward"]
# On top of the benchmark's setup: the same game in distribution, trained 1.4-1.6x faster (the ROM's
# busy-wait ballast only costs lag frames, which shift the RNG after the first battle turn:
# roms/tinyquest/README.md, "Ballast"); and the env config's own 4,096-step episodes instead of the
# benchmark's 2,048, room for detours on the way to the end (the scripted walkthrough needs ~880 steps).
EXTRA = ["game.boot.writes.ballast=0", "env.max_steps=4096"]
CHANGES = "config_changes.yaml"  # in the run folder: each --set and the step it took effect at


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=lambda s: int(s.replace("_", "")), default=5_000_000)
    parser.add_argument("--run-root", type=Path, default=Path("runs/pretrained"))
    parser.add_argument("--episodes", type=int, default=32, help="seeded episodes from power-on for the card")
    parser.add_argument("--out", type=Path, default=pretrained_dir(), help="where the weights and card go")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from these weights (e.g. the shipped ones): a new stage, listed in the card")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config change from now on, a resumed run's included (listed in the card)")
    parser.add_argument("--export-only", action="store_true",
                        help="ship the run's latest checkpoint as it stands (a run stopped before --steps)")
    args = parser.parse_args(argv)
    at_least(1, episodes=args.episodes, steps=args.steps)

    overrides, stages, init_sha = [*METHOD, *EXTRA], [], None
    if args.init is not None:
        load_checkpoint(args.init)  # a one-line error when the file is not weights
        data = args.init.read_bytes()
        init_sha = hashlib.sha256(data).hexdigest()
        # A copy named by its content: the run keeps its start when the shipped file is replaced, and other
        # weights give another run folder (the init= path is part of the overrides hash).
        init = args.run_root / f"init-{init_sha[:10]}.pt"
        if not init.is_file():
            write_atomically(init, data)
        overrides.append(f"init={init.resolve()}")
        if card_path(args.init).is_file():
            stages = list(read_card(args.init)["training"]["stages"])
    run_dir = seed_dir(args.run_root, args.seed, overrides)
    changes_path = run_dir / CHANGES
    changes = yaml.safe_load(changes_path.read_text()) if changes_path.is_file() else []
    if not args.export_only:
        if args.set and (not changes or changes[-1]["set"] != args.set):
            latest = run_dir / "checkpoints" / "latest.pt"
            at_step = int(load_checkpoint(latest)["global_step"]) if latest.is_file() else 0
            changes.append({"at_step": at_step, "set": list(args.set)})
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomically(changes_path, yaml.safe_dump(changes, sort_keys=False))
        run_seed(args.seed, args.steps, overrides, args.run_root, eval_episodes=0, later=args.set)
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    # Where this machine kept the run and what it started from are no part of the recipe a card gives (a
    # stage's start is its init_sha256): the card would otherwise show this machine's paths.
    config = portable_config(config)
    weights_path = args.out / f"{config['game']['name']}.pt"
    weights = export_weights(checkpoint, weights_path)
    stages.append({
        "method": [o for o in overrides if not o.startswith("init=")], "seed": args.seed, "budget_steps": args.steps,
        "env_steps": int(checkpoint["global_step"]),
        "wall_time_s": round(float((run_dir / "bench_seconds.txt").read_text()), 1),
        "init_sha256": init_sha,
        **({"changes": changes} if changes else {}),  # --set: config changes from a step on
        "milestone_first_step": dict(sorted(checkpoint["milestone_first"].items(), key=lambda kv: kv[1])),
    })

    agent = load_agent(weights_path)  # the shipped file, half precision, loaded as users will
    result = evaluate(agent, args.episodes, envs_per_worker=4, seed=0, progress=True)
    card = {
        "agent": f"{config['game']['name']}: a CNN-LSTM policy trained by PPO, no demonstrations",
        "pokerl_version": __version__,
        "made": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "training": {
            "script": "scripts/train_pretrained.py",
            "env_steps": sum(stage["env_steps"] for stage in stages),
            "wall_time_s": round(sum(stage["wall_time_s"] for stage in stages), 1),
            "stages": stages,  # in order; each after the first starts from the weights its predecessor shipped
            "config": config,  # the last stage's
        },
        "weights": {
            "file": weights_path.name, "dtype": "float16", "bytes": weights_path.stat().st_size,
            "sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
            "parameters": count_parameters(weights["model"]),
        },
        "evaluation": {
            "what": "the shipped float16 weights, sampled actions, episodes from power-on",
            "episodes": result.episodes, "seed": 0, "max_steps": agent.spec.env.max_steps,
            "milestone_rates": result.milestone_rates, "median_steps_to_milestone": result.milestone_steps,
            "mean_return": round(result.mean_return, 3), "mean_length": round(result.mean_length, 1),
        },
    }
    path = card_path(weights_path)
    write_text_atomically(path, yaml.safe_dump(card, sort_keys=False, width=110))
    for shipped in (weights_path, path):
        shipped.chmod(0o644)  # package data: readable by everyone, whatever this process's umask
    print(f"{weights_path} ({weights_path.stat().st_size / 1e6:.1f} MB) and {path}: "
          f"complete in {result.milestone_rates.get('complete', 0.0):.2f} of {result.episodes} episodes")
    return 0


if __name__ == "__main__":  # worker processes are spawned: keep the guard
    raise SystemExit(main())
