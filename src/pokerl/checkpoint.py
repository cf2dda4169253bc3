"""Checkpoints: written atomically, loaded safely, kept a few at a time, with the RNG states they need.

A checkpoint is a plain dict of tensors, numbers and strings, so it loads with
``torch.load(..., weights_only=True)`` and never runs pickled code. It is written to a temporary
file in the same directory, flushed to disk and renamed over the target (:mod:`pokerl.atomic`), so
a crash mid-write never leaves a half-written ``latest.pt``. :func:`rng_state` / :func:`set_rng_state` carry Python's,
NumPy's and torch's RNGs in those types; :func:`save_numbered` keeps ``latest.pt`` and the last
few numbered checkpoints. Every checkpoint says what it holds (:func:`describe`: schema version,
pokerl version, game, model config, observation shapes), and :func:`check_compatible` turns a
checkpoint loaded into another game, model or frame stack into one line naming the difference.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pokerl import __version__
from pokerl.atomic import write_atomically
from pokerl.errors import CheckpointError
from pokerl.rundir import LATEST, resolve_checkpoint, run_dir_of  # noqa: F401 - their home before rundir

SCHEMA = 2  # the checkpoint layout's version: 2 = this one (with "schema"); none = older pokerl


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (:func:`~pokerl.atomic.write_atomically`)."""
    try:
        return write_atomically(path, lambda f: torch.save(payload, f))
    except OSError as err:  # a full disk, a read-only or vanished run dir: the user's to fix
        raise CheckpointError(f"cannot write checkpoint {path}: {err.strerror or err} "
                              f"(the previous {LATEST} is intact)") from None


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file or run directory with ``weights_only=True``; one-line error if corrupt."""
    path = resolve_checkpoint(path)
    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle protocol before it refuses it
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated/garbled files
        raise unreadable(path, err) from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise CheckpointError(f"{path} is not a pokerl checkpoint (no 'model' entry)")
    return payload


def unreadable(path: Path, err: BaseException) -> CheckpointError:
    """The one line for a checkpoint torch cannot load safely: what is wrong with the file and what to use
    instead. Never torch's own advice to load it with ``weights_only=False``: for a damaged file or one
    from a stranger, that would run whatever code it holds."""
    foreign = re.search(r"GLOBAL (\S+)", str(err))
    if foreign:
        what = (f"it holds a Python object pokerl never saves ({foreign.group(1)}), and loading that "
                f"could run code from the file: it is not loaded")
    else:
        what = "it is truncated, damaged or not a checkpoint file"
    others = sorted(p.name for p in path.parent.glob("ckpt_*.pt") if p.name != path.name)
    if others:
        instead = f"use another checkpoint beside it (newest: {path.parent / others[-1]})"
    else:
        instead = "use another checkpoint (a run keeps its last few in RUN/checkpoints/ckpt_*.pt)"
    return CheckpointError(f"corrupt or unreadable checkpoint {path}: {what}; {instead}")


def load_weights(module: torch.nn.Module, ckpt: dict[str, Any]) -> None:
    """Load checkpoint ``ckpt``'s policy weights into ``module`` (half-precision ones are cast up); one-line
    :class:`CheckpointError` when they do not fit it."""
    try:
        module.load_state_dict(ckpt["model"])
    except RuntimeError as err:  # torch lists every missing, unexpected or misshapen key: the first says enough
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise CheckpointError(f"checkpoint does not match the model config: {(lines[1:] or lines)[0]}") from None


def save_numbered(ckpt_dir: str | os.PathLike[str], number: int, payload: dict[str, Any], keep: int) -> Path:
    """Write ``ckpt_<number>.pt`` and ``latest.pt``; delete all but the ``keep`` newest numbered ones."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    ckpt_dir = Path(ckpt_dir)
    numbered = save_checkpoint(ckpt_dir / f"ckpt_{number:06d}.pt", payload)
    save_checkpoint(ckpt_dir / LATEST, payload)
    for path in sorted(ckpt_dir.glob("ckpt_*.pt"))[:-keep]:
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


def describe(spec: Any, model: Any) -> dict[str, Any]:
    """What a checkpoint holds, in plain types: ``spec`` a :class:`~pokerl.spec.GameSpec`, ``model``
    a :class:`~pokerl.config.PolicyConfig`."""
    return {
        "schema": SCHEMA,
        "pokerl_version": __version__,
        "game": spec.profile.name,
        "model": dataclasses.asdict(model),
        "observation": {k: [list(sp.shape), str(sp.dtype)] for k, sp in spec.observation_space.spaces.items()},
        "actions": int(spec.action_space.n),
    }


def check_compatible(ckpt: dict[str, Any], source: str, spec: Any, model: Any) -> None:
    """One-line :class:`CheckpointError` when checkpoint ``ckpt`` (from ``source``) was made for
    another game, model or observation than ``spec`` and ``model`` describe."""
    saved, here = ckpt.get("about"), describe(spec, model)
    if not isinstance(saved, dict) or saved.get("schema") != SCHEMA:
        version = saved.get("pokerl_version", "?") if isinstance(saved, dict) else "an older pokerl"
        raise CheckpointError(f"{source}: checkpoint schema {saved.get('schema') if isinstance(saved, dict) else 1} "
                              f"(written by {version}) is not this pokerl's ({SCHEMA}): train again")
    if saved["game"] != here["game"]:
        raise CheckpointError(f"{source} was trained on game {saved['game']}, not {here['game']}")
    for key, value in here["model"].items():
        if saved["model"].get(key) != value:
            raise CheckpointError(f"{source} has model.{key}={saved['model'].get(key)}, this config {value}")
    for key, value in here["observation"].items():
        if saved["observation"].get(key) != value:
            hint = " (env.frame_stack)" if key == "screen" else ""
            raise CheckpointError(f"{source} saw observation {key} {saved['observation'].get(key)}, "
                                  f"this config gives {value}{hint}")
    if saved["actions"] != here["actions"]:
        raise CheckpointError(f"{source} has {saved['actions']} actions, this game {here['actions']}")
