"""Where a run keeps its files, and what a path a user names points at.

No torch here: the command-line tools check the path they are given before they import it, so a
mistyped path costs the user one line at once, not seconds of imports first.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pokerl.errors import CheckpointError, ConfigError

LATEST = "latest.pt"


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Accept a checkpoint file or a run directory (its ``checkpoints/latest.pt``)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / LATEST, path / LATEST):
            if candidate.is_file():
                return candidate
        if (path / "config.yaml").is_file():
            raise CheckpointError(f"run dir {path} has no checkpoint yet (checkpoints/{LATEST}): a run saves one "
                                  f"every log.checkpoint_every updates and when it stops")
        raise CheckpointError(f"{path} is not a run directory (no checkpoints/{LATEST} in it): "
                              f"give a run dir (runs/NAME) or a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def run_dir_of(checkpoint: Path) -> Path:
    """The run dir a checkpoint file belongs to (``RUN/checkpoints/x.pt`` or ``RUN/latest.pt``)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


RUN_FILES = ("config.yaml", "checkpoints", "tb", "cache", "chain.pt")  # what a run writes into its run dir
CHAIN_FILE = "chain.pt"  # goexplore: the chain the run found


def claim_run_dir(run_dir: Path, overwrite: bool, is_main: bool, decide: Callable[[bool], bool]) -> None:
    """Refuse a run dir that holds an earlier run (``config.yaml`` or ``checkpoints/``), unless
    ``overwrite``: then that run's files are removed, and said so. Only rank 0 (``is_main``) looks and
    clears, and ``decide`` hands its verdict to every rank (a rank 0 that failed alone would leave the
    others waiting in the next collective)."""
    refused = None
    if is_main:
        try:
            _clear(run_dir, overwrite)
        except ConfigError as err:
            refused = err
        except OSError as err:  # e.g. a file there that is not ours to remove
            refused = ConfigError(f"run_dir {run_dir}: cannot clear the earlier run ({err})")
    if decide(refused is not None):
        raise refused or ConfigError(f"run_dir {run_dir}: refused by rank 0 (its error says why)")


def _clear(run_dir: Path, overwrite: bool) -> None:
    if not ((run_dir / "config.yaml").exists() or (run_dir / "checkpoints").exists()):
        return
    if not overwrite:
        raise ConfigError(f"run_dir {run_dir} holds an earlier run: continue it with resume={run_dir}, "
                          f"or start afresh there with overwrite=true")
    gone = [name for name in RUN_FILES if (run_dir / name).exists()]
    for name in gone:
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    print(f"pokerl: overwrite=true: removed the earlier run's {', '.join(gone)} from {run_dir}", file=sys.stderr)


def default_run_dir(game: str) -> Path:
    """``runs/<game>-<date>-<time>``: a run dir no earlier run holds."""
    return Path("runs") / f"{game}-{time.strftime('%Y%m%d-%H%M%S')}"
