"""``pokerl-chain RUN_DIR_OR_CHECKPOINT``: replay the way to an archived state from power-on and save it as a chain.

``pokerl-chain CHAIN.pt --shorten`` erases the loops of a chain made before (with its own game and boot writes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pokerl.cli import at_least, output_file
from pokerl.errors import PokerlError, exit_on_error

if TYPE_CHECKING:
    from pokerl.chain import Chain
    from pokerl.env import GameBoyEnv


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pokerl-chain", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a run dir (uses checkpoints/latest.pt) or a checkpoint file; with "
                        "--shorten also a chain file")
    parser.add_argument("--to", default=None, metavar="MILESTONE",
                        help="the archived state holding this milestone in the fewest steps (default: the best)")
    parser.add_argument("--every", type=int, default=32, help="env steps between the chain's saved states "
                        "(a chain file shortened again keeps its own)")
    parser.add_argument("--shorten", action="store_true",
                        help="erase the way's loops (where it stands again in a state it stood in) before saving")
    parser.add_argument("-o", "--out", default="chain.pt", help="the chain file to write")
    parser.add_argument("--rom", default=None, help="ROM path (for games whose ROM you supply)")
    return parser.parse_args(argv)


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pokerl-chain``."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    at_least(1, every=args.every)
    output_file("--out", args.out, (".pt",))
    from pokerl.archive import Archive
    from pokerl.chain import ChainError, load_chain, make_chain
    from pokerl.checkpoint import load_checkpoint, resolve_checkpoint
    from pokerl.config import checkpoint_config
    from pokerl.env import make_env
    from pokerl.spec import run_spec

    if args.shorten and Path(args.checkpoint).is_file():
        try:
            chain = load_chain(args.checkpoint)
        except ChainError:
            pass  # a checkpoint file: its archive's way below
        else:
            if args.to is not None:
                raise PokerlError(f"{args.checkpoint} is a chain: it has one way, to "
                                  f"{'+'.join(chain.end.milestones)}; leave out --to")
            return _shorten_again(chain, args)
    path = resolve_checkpoint(args.checkpoint)
    ckpt = load_checkpoint(path)
    config = checkpoint_config(ckpt, str(path))
    archive = Archive()
    archive.load_state_dict(ckpt.get("archive", {}), f"checkpoint {path}")
    entry = archive.best() if args.to is None else archive.for_milestone(args.to)
    if entry is None:
        held = sorted({m for e in archive.entries.values() for m in e.milestones})
        want = "any state" if args.to is None else f"a state holding {args.to!r}"
        raise PokerlError(f"{path}: the archive has no {want} (archived milestones: {', '.join(held) or 'none'})")
    env = make_env(spec=run_spec(config), rom=args.rom or config.rom)
    try:
        chain = make_chain(env, entry, args.every)
        if args.shorten:
            chain = _shortened(env, chain)
    finally:
        env.close()
    return _saved(chain, args.out)


def _shorten_again(chain: Chain, args: argparse.Namespace) -> int:
    """A chain file's loops erased, on its game with the boot writes it was replayed with."""
    from pokerl.env import make_env

    env = make_env(game=chain.game, writes=chain.writes, rom=args.rom)
    try:
        return _saved(_shortened(env, chain), args.out)
    finally:
        env.close()


def _shortened(env: GameBoyEnv, chain: Chain) -> Chain:
    from pokerl.shorten import shorten

    found = chain.steps
    short, put_back = shorten(env, chain)
    print(f"pokerl: loops erased: {found:,} -> {short.steps:,} steps ({put_back} cuts put back: the way "
          "left the long chain's after them)")
    return short


def _saved(chain: Chain, out_path: str) -> int:
    from pokerl.chain import save_chain

    out = save_chain(out_path, chain)
    size = out.stat().st_size
    print(f"pokerl: chain to {'+'.join(chain.end.milestones) or 'power-on'}: {chain.steps:,} steps in "
          f"{len(chain.trajectory)} episodes, {len(chain.points)} states every {chain.every}, "
          f"{size / 1e6:.2f} MB -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
