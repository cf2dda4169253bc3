"""Command-line entry points (pokerl-train, -play, -eval, -bench), the flags that choose an agent and
the checks their flags share.

Flags are checked before any work starts, so a bad value costs the user one line, not an
evaluation's minutes followed by a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pokerl.errors import PokerlError


def at_least(low: int, **flags: int | None) -> None:
    """Each given flag (``max_steps=...`` for ``--max-steps``) is unset or >= ``low``."""
    for name, value in flags.items():
        if value is not None and value < low:
            raise PokerlError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")


def output_file(flag: str, path: str | None, suffixes: tuple[str, ...] = ()) -> None:
    """An output file named by ``flag`` has a folder to go in (and one of ``suffixes``, if given)."""
    if path is None:
        return
    if suffixes and Path(path).suffix.lower() not in suffixes:
        raise PokerlError(f"{flag} must end in {' or '.join(suffixes)}, got {path}")
    if not Path(path).resolve().parent.is_dir():
        raise PokerlError(f"{flag} {path}: the folder {Path(path).parent} does not exist")


def check_agent(args: argparse.Namespace) -> str:
    """What the agent flags name, checked before anything is imported or opened (a window, torch): the run
    dir or checkpoint is there, the shipped agent exists, ``--rom`` is a Game Boy ROM. Returns the
    checkpoint file to load."""
    from pokerl.emulator import read_rom
    from pokerl.pretrained import agent_source
    from pokerl.rundir import resolve_checkpoint

    if args.full and not args.info:
        raise PokerlError("--full goes with --info (it prints the whole model card)")
    source = str(resolve_checkpoint(agent_source(args.checkpoint, args.pretrained)))
    if args.rom is not None:
        read_rom(Path(args.rom).expanduser(), what="ROM (--rom)")  # its SHA-1 is checked once the agent says its game
    return source


def agent_flags() -> argparse.ArgumentParser:
    """The flags of pokerl-play and pokerl-eval that choose the agent and how it acts, as an argparse
    parent parser (``parents=[agent_flags()]``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("checkpoint", nargs="?", help="a run dir (uses checkpoints/latest.pt) or a checkpoint file")
    parser.add_argument("--pretrained", default=None, metavar="NAME",
                        help="the agent shipped with pokerl for game NAME (e.g. tinyquest) instead of a checkpoint")
    parser.add_argument("--info", action="store_true", help="print a summary of the agent's model card and exit")
    parser.add_argument("--full", action="store_true", help="with --info: print the whole model card")
    parser.add_argument("--deterministic", action="store_true", help="argmax actions instead of sampling")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first episode (the emulator's and the sampled actions'); N+1 the next")
    parser.add_argument("--rom", default=None, help="ROM path (for games whose ROM you supply)")
    parser.add_argument("--model", default=None, help="use configs/model/NAME.yaml instead of the run's model config")
    return parser
