"""Checkpoints: written atomically, loaded safely, kept a few at a time, with the RNG states they need.

A checkpoint is a plain dict of tensors, numbers and strings, so it loads with
``torch.load(..., weights_only=True)`` and never runs pickled code. It is written to a temporary
file in the same directory, flushed to disk and renamed over the target, so a crash mid-write never
leaves a half-written ``latest.pt``. :func:`rng_state` / :func:`set_rng_state` carry Python's,
NumPy's and torch's RNGs in those types; :func:`save_numbered` keeps ``latest.pt`` and the last
few numbered checkpoints.
"""

from __future__ import annotations

import ast
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pokerl.errors import CheckpointError

LATEST = "latest.pt"


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file + fsync + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Accept a checkpoint file or a run directory (its ``checkpoints/latest.pt``)."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / LATEST
        if not candidate.is_file():
            candidate = path / LATEST
        path = candidate
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file or run directory with ``weights_only=True``; one-line error if corrupt."""
    path = resolve_checkpoint(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated/garbled files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"corrupt or unreadable checkpoint {path}: {first}") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise CheckpointError(f"{path} is not a pokerl checkpoint (no 'model' entry)")
    return payload


def save_numbered(ckpt_dir: str | os.PathLike[str], number: int, payload: dict[str, Any], keep: int) -> Path:
    """Write ``ckpt_<number>.pt`` and ``latest.pt``; delete all but the ``keep`` newest numbered ones."""
    ckpt_dir = Path(ckpt_dir)
    numbered = save_checkpoint(ckpt_dir / f"ckpt_{number:06d}.pt", payload)
    save_checkpoint(ckpt_dir / LATEST, payload)
    for path in sorted(ckpt_dir.glob("ckpt_*.pt"))[: -max(keep, 1)]:
        path.unlink(missing_ok=True)
    return numbered


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The RNG states a checkpoint needs to continue exactly (weights_only-safe types)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": repr(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(ast.literal_eval(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
