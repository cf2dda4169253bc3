"""``pokerl-eval RUN_DIR_OR_CHECKPOINT``: run episodes headless and report what the agent reaches."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from pokerl.cli import agent_flags, at_least, check_agent, output_file
from pokerl.errors import PokerlError, exit_on_error

if TYPE_CHECKING:
    from pokerl.profile import GameProfile, WorldMap


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pokerl-eval", description=__doc__.splitlines()[0],
                                     parents=[agent_flags()])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1 = in this process)")
    parser.add_argument("--envs-per-worker", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None, help="episode length (default: the run's)")
    parser.add_argument("--from-milestone", default=None, metavar="NAME",
                        help="start every episode at the run's archived state holding this milestone")
    parser.add_argument("--heatmap", default=None, metavar="PNG", help="save where the agent went, on the world map")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (they go to stderr)")
    return parser.parse_args(argv)


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pokerl-eval``."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    at_least(1, episodes=args.episodes, workers=args.workers, envs_per_worker=args.envs_per_worker,
             max_steps=args.max_steps)
    output_file("--heatmap", args.heatmap, (".png",))
    source = check_agent(args)
    from pokerl.config import load_model_config
    from pokerl.evaluate import evaluate, load_agent, save_heatmap
    from pokerl.pretrained import card_text

    if args.info:
        print(card_text(source, full=args.full), end="")
        return 0
    model = load_model_config(args.model) if args.model else None
    agent = load_agent(source, rom=args.rom, model=model)
    agent.spec.profile.check_rom(args.rom or agent.config.rom)  # its game's SHA-1, before any env starts
    result = evaluate(agent, args.episodes, args.workers, args.envs_per_worker, args.seed, args.deterministic,
                      args.rom, args.max_steps, capture_screens=bool(args.heatmap), from_milestone=args.from_milestone,
                      progress=not args.quiet)
    if args.heatmap:
        save_heatmap(agent, result, args.heatmap)
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    print(f"checkpoint {agent.checkpoint} ({agent.global_step:,} training steps), {result.episodes} episodes")
    print(f"  mean return {result.mean_return:.3f}   mean length {result.mean_length:.1f}")
    print("  milestone            rate   median steps to it")
    for name, rate in result.milestone_rates.items():
        steps = result.milestone_steps.get(name)
        print(f"  {name:<20} {rate:5.2f}   {'-' if steps is None else f'{steps:,.0f}'}")
    world = map_names(agent.spec.profile)
    maps = ", ".join(f"{world.map_name(m)} {share:.2f}" for m, share in sorted(result.maps_visited.items()))
    print(f"  maps visited (share of episodes): {maps}")
    return 0


def map_names(profile: GameProfile) -> WorldMap:
    """The world map whose names a report uses: the run's, or when the run's profile predates map names, the
    bundled profile of the same game (with the same maps)."""
    from pokerl.profile import load_profile

    world = profile.world_map
    if world.names:
        return world
    try:
        bundled = load_profile(profile.name).world_map
    except PokerlError:  # a game of the user's own
        return world
    return bundled if bundled.offsets == world.offsets else world


if __name__ == "__main__":
    raise SystemExit(main())
