"""Where a run keeps its checkpoints, and what a path a user names points at.

No torch here: the command-line tools check the path they are given before they import it, so a
mistyped path costs the user one line at once, not seconds of imports first.
"""

from __future__ import annotations

import os
from pathlib import Path

from pokerl.errors import CheckpointError

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
