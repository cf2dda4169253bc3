"""Files written whole or not at all: a temp file beside the target, flushed to disk, renamed over it.

A kill or a full disk mid-write leaves the old file or the new one, never half of one, and the
half-written temp file is removed (or, after a kill, matches ``.<name>.<random>.tmp`` so the next
run can clear it). Checkpoints, a run's ``config.yaml``, model cards, cached start states and the
GPU check's JSON all go through :func:`write_atomically`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

UMASK = os.umask(0)  # the process's file-creation mask, read once (setting it is the only way) ...
os.umask(UMASK)  # ... and put back at once, at import
TEMP_GLOB = ".*.tmp"  # what a killed write leaves behind


def write_atomically(path: str | os.PathLike[str], data: bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` (bytes, or a function that writes to a binary file) to ``path`` atomically.

    The file gets the permissions a plain ``open(path, "wb")`` would give (mkstemp makes 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes):
                f.write(data)
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`write_atomically` for text, in UTF-8 (a run's ``config.yaml``: resume reads it first)."""
    return write_atomically(path, text.encode("utf-8"))


def remove_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the half-written files a killed run left in ``folder``."""
    gone = sorted(Path(folder).glob(TEMP_GLOB))
    for path in gone:
        path.unlink(missing_ok=True)
    return gone
