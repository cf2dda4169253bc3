"""The agents shipped inside the package: where their weights and model cards are, and how a run becomes one.

A shipped agent is a checkpoint of the usual schema holding weights only (no optimiser, env or archive
state) in half precision, as ``pokerl/pretrained/<name>.pt``, beside a model card ``<name>.card.yaml``:
the exact training config, seed, pokerl version, steps and wall time, and figures measured on the
shipped weights (``scripts/train_pretrained.py`` makes both). ``pokerl-play --pretrained NAME`` and
``pokerl-eval --pretrained NAME`` load it like any checkpoint.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pokerl.errors import PokerlError

if TYPE_CHECKING:
    import torch

CARD_SUFFIX = ".card.yaml"


def pretrained_dir() -> Path:
    """The package folder of shipped agents."""
    return Path(str(importlib.resources.files("pokerl") / "pretrained"))


def available() -> list[str]:
    """Names of the shipped agents."""
    folder = pretrained_dir()
    return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []


def pretrained_path(name: str) -> Path:
    """The weights of shipped agent ``name``, or a one-line error naming those there are."""
    path = pretrained_dir() / f"{name}.pt"
    if not path.is_file():
        raise PokerlError(f"no pretrained agent {name!r} in this pokerl (shipped: {', '.join(available()) or 'none'})")
    return path


def card_path(weights: str | os.PathLike[str]) -> Path:
    """The model card beside a weights file."""
    weights = Path(weights)
    return weights.with_name(weights.stem + CARD_SUFFIX)


def read_card(weights: str | os.PathLike[str]) -> dict[str, Any]:
    """The model card beside ``weights``, as data."""
    path = card_path(weights)
    try:
        card = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise PokerlError(f"cannot read the model card {path}: {' '.join(str(err).split())}") from None
    if not isinstance(card, dict):
        raise PokerlError(f"{path}: not a model card (expected a mapping)")
    return card


def export_weights(ckpt: dict[str, Any], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write a loaded training checkpoint's policy, in half precision and nothing else, to ``out`` (atomic);
    returns what was written."""
    from pokerl.checkpoint import save_checkpoint  # torch: not needed to find or describe an agent

    weights = {
        "model": {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()},
        "config": ckpt["config"],
        "about": ckpt["about"],
        "global_step": int(ckpt["global_step"]),
    }
    save_checkpoint(out, weights)
    return weights


def count_parameters(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() for t in state.values())


def agent_source(checkpoint: str | None, pretrained: str | None) -> str:
    """What ``pokerl-play``/``pokerl-eval`` load: a run dir or checkpoint, or a shipped agent's weights."""
    if (checkpoint is None) == (pretrained is None):
        raise PokerlError("give a run dir or checkpoint, or --pretrained NAME (one of them)")
    return str(pretrained_path(pretrained)) if pretrained is not None else str(checkpoint)


def card_text(weights: str | os.PathLike[str]) -> str:
    """The model card beside ``weights`` as ``--info`` prints it."""
    if not card_path(weights).is_file():
        raise PokerlError(f"{weights} has no model card ({card_path(weights).name}): --info is for shipped agents "
                          f"(--pretrained NAME) and weights exported with one")
    read_card(weights)  # a one-line error when not a card
    return f"# {card_path(weights)}\n{card_path(weights).read_text()}"
