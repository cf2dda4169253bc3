"""User-facing errors: bad input becomes one clear line and a non-zero exit, never a traceback.

Library code raises :class:`PokerlError` (or a subclass) with a message that names the file, key
or value at fault. Command-line entry points wrap their body in :func:`exit_on_error`, which prints
``pokerl: <message>`` on stderr and exits with status 2.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class PokerlError(Exception):
    """An error caused by the user's input (ROM, config, checkpoint, savestate), not by a bug."""


class RomError(PokerlError):
    """A missing, unreadable or unexpected ROM file."""


class ConfigError(PokerlError):
    """An unknown key, a wrong type or an out-of-range value in a YAML config or game profile."""


class CheckpointError(PokerlError):
    """A missing, corrupt or mismatched checkpoint or savestate."""


def one_line(err: BaseException) -> str:
    """An exception's message on one line (white space folded), or its type's name when it has none."""
    return " ".join(str(err).split()) or type(err).__name__


def exit_on_error(main: Callable[..., T]) -> Callable[..., T]:
    """Decorate a CLI entry point so a :class:`PokerlError` prints one line and exits with 2."""

    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> T:
        try:
            return main(*args, **kwargs)
        except PokerlError as err:
            print(f"pokerl: error: {one_line(err)}", file=sys.stderr)
            raise SystemExit(2) from None
        except BrokenPipeError:  # `pokerl-eval ... | head`: the reader left; as other Unix tools, stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            raise SystemExit(141) from None  # 128 + SIGPIPE, as a shell reports it

    return wrapper
