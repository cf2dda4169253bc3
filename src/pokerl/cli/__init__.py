"""Command-line entry points (pokerl-train, -play, -eval, -bench) and the checks their flags share.

Flags are checked before any work starts, so a bad value costs the user one line, not an
evaluation's minutes followed by a traceback.
"""

from __future__ import annotations

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
