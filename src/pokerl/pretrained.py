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
# Run-config keys about the machine a run was made on (where its folder was, what it started from, whether to
# replace it): left out of shipped weights and cards, which would otherwise carry that machine's paths.
MACHINE_LOCAL = ("run_dir", "resume", "init", "overwrite")


def portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run config without its :data:`MACHINE_LOCAL` keys: the recipe, not where it was cooked."""
    return {key: value for key, value in config.items() if key not in MACHINE_LOCAL}


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
    """Write a loaded training checkpoint's policy, in half precision and nothing else, to ``out`` (atomic),
    with its run config less the machine's paths (:func:`portable_config`); returns what was written."""
    from pokerl.checkpoint import save_checkpoint  # torch: not needed to find or describe an agent

    weights = {
        "model": {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()},
        "config": yaml.safe_dump(portable_config(yaml.safe_load(ckpt["config"])), sort_keys=False),
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


def card_text(weights: str | os.PathLike[str], full: bool = False) -> str:
    """The model card beside ``weights`` as ``--info`` prints it: a summary (:func:`card_summary`), or with
    ``full`` the whole card."""
    if not card_path(weights).is_file():
        raise PokerlError(f"{weights} has no model card ({card_path(weights).name}): --info is for shipped agents "
                          f"(--pretrained NAME) and weights exported with one")
    card = read_card(weights)  # a one-line error when not a card
    if full:
        return f"# {card_path(weights)}\n{card_path(weights).read_text()}"
    return card_summary(card, card_path(weights))


def card_summary(card: dict[str, Any], path: Path) -> str:
    """What a model card says first: the agent, how long it trained, how far it gets from power-on (the
    card's measured rates), and where the whole card is. Parts a card lacks are left out."""
    lines = [str(card.get("agent", path.name)).removesuffix(" (config below)")]
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    if isinstance(training.get("env_steps"), int):
        seconds = training.get("wall_time_s")
        took = f" in {seconds / 3600:.1f} h" if isinstance(seconds, (int, float)) else ""
        stages = len(training.get("stages") or [])
        lines.append(f"trained: {training['env_steps']:,} env steps{took}"
                     + (f" in {stages} stages" if stages > 1 else "")
                     + (f" (pokerl {card['pokerl_version']})" if "pokerl_version" in card else ""))
    evaluation = card.get("evaluation") if isinstance(card.get("evaluation"), dict) else {}
    rates = evaluation.get("milestone_rates")
    if isinstance(rates, dict) and rates:
        steps = evaluation.get("median_steps_to_milestone") or {}
        said = [f"{evaluation['episodes']} episodes" if "episodes" in evaluation else "episodes", "from power-on"]
        if isinstance(evaluation.get("max_steps"), int):
            said.append(f"of up to {evaluation['max_steps']:,} steps")
        if isinstance(evaluation.get("mean_return"), (int, float)):
            said.append(f"mean return {evaluation['mean_return']:.2f}")
        lines.append(f"measured on {' '.join(said[:3])}{', ' + said[3] if len(said) > 3 else ''}:")
        lines.append(f"  {'milestone':<14} {'episodes':>8}   median steps to it")
        for name, rate in rates.items():
            at = steps.get(name)
            lines.append(f"  {name:<14} {rate:>8.0%}   {'-' if at is None else f'{at:,.0f}'}")
    lines.append(f"the whole card (training config, stages, weights): {path} (--info --full prints it)")
    return "\n".join(lines) + "\n"
