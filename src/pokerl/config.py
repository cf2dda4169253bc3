"""The run configuration: Hydra composes ``configs/train.yaml`` with its groups, we check it.

``compose_train_config(overrides)`` returns a plain nested dict (what a run dir's ``config.yaml``
holds) after checking every top-level, ``pool`` and ``log`` key against :class:`TrainConfig`
through the one typed loader (:mod:`pokerl.schema`). Group contents (game, reward, env, model,
ppo) are checked by the same loader against their modules' dataclasses when they are turned into
objects. Any mistake becomes a one-line :class:`~pokerl.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pokerl.archive import ArchiveConfig, ResetConfig
from pokerl.errors import ConfigError
from pokerl.pool import PoolConfig
from pokerl.schema import from_mapping


@dataclass
class LogConfig:
    """What the trainer writes and how often (counts are PPO updates)."""

    progress: bool = True
    scalars_every: int = 1
    checkpoint_every: int = 10
    keep_checkpoints: int = 3
    heatmap_every: int = 10
    video_every: int = 50
    video_steps: int = 200

    def __post_init__(self) -> None:
        for key in ("scalars_every", "checkpoint_every", "keep_checkpoints", "video_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("heatmap_every", "video_every"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be >= 0 (0 = never), got {getattr(self, key)}")


@dataclass
class EvalConfig:
    """A periodic evaluation from power-on during training (``power_on/<milestone>`` in TensorBoard)."""

    every: int = 0  # updates between evaluations (0 = never)
    episodes: int = 8  # seeded episodes each time, sampled actions, the run's episode length

    def __post_init__(self) -> None:
        if self.every < 0 or self.episodes < 1:
            raise ValueError(f"every must be >= 0 (0 = never) and episodes >= 1, got {self.every} and {self.episodes}")


@dataclass
class TrainConfig:
    """Top-level keys of ``configs/train.yaml``; the groups stay mappings owned by their modules."""

    game: dict[str, Any]
    reward: dict[str, Any]
    env: dict[str, Any]
    model: dict[str, Any]
    ppo: dict[str, Any]
    rom: str | None = None
    num_envs: int = 8
    pool: PoolConfig = field(default_factory=PoolConfig)
    reset: ResetConfig = field(default_factory=ResetConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    total_steps: int = 2_000_000
    seed: int = 1
    device: str = "auto"
    bf16: bool = False
    compile: bool = False
    torch_threads: int = 0
    run_dir: str | None = None
    init: str | None = None
    resume: str | None = None
    overwrite: bool = False
    log: LogConfig = field(default_factory=LogConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs: must be >= 1, got {self.num_envs}")
        if self.total_steps < 1:
            raise ValueError(f"total_steps: must be >= 1, got {self.total_steps}")
        if self.seed < 0:
            raise ValueError(f"seed: must be >= 0 (Gymnasium's seeds are), got {self.seed}")
        if self.num_envs % self.pool.workers:
            raise ValueError(f"num_envs ({self.num_envs}) must be a multiple of pool.workers ({self.pool.workers})")


def compose_train_config(
    overrides: Sequence[str] = (), config_dir: str | os.PathLike[str] | None = None, config_name: str = "train"
) -> dict[str, Any]:
    """Compose the training config with Hydra and return it as a checked plain dict.

    ``config_dir`` points at a user's own config folder (it must hold ``<config_name>.yaml`` and may
    hold its own groups); by default the configs shipped with pokerl are used.
    """
    from hydra import compose, initialize_config_dir, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    resume = [o.split("=", 1)[1] for o in overrides if o.startswith("resume=")]
    if resume and resume[-1] not in ("", "null"):
        return resume_config(resume[-1], [o for o in overrides if not o.startswith("resume=")])
    try:
        if config_dir is None:
            ctx = initialize_config_module(config_module="pokerl.configs", version_base="1.3")
        else:
            path = Path(config_dir).resolve()
            if not path.is_dir():
                raise ConfigError(f"config dir not found: {path}")
            ctx = initialize_config_dir(config_dir=str(path), version_base="1.3")
        with ctx:
            cfg = compose(config_name=config_name, overrides=list(overrides))
        data = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        unknown = re.match(r"Could not override '([^']+)'", lines[0]) if lines else None
        if unknown:
            raise ConfigError(f"config: unknown key '{unknown.group(1)}' in the overrides") from None
        missing = re.search(r"Could not (?:find|load) '([^'/]+)/([^']*)'", lines[0]) if lines else None
        if missing:  # Hydra lists the options on lines of their own: keep them on this one
            group, name = missing.groups()
            options = getattr(err, "options", None)
            known = f"; the {group} configs: {', '.join(options)}" if options else ""
            raise ConfigError(f"config: no {group} config {name!r} ({group}/{name}.yaml){known}") from None
        raise ConfigError("config: " + (" ".join(lines[:2]) if lines else type(err).__name__)) from None
    assert isinstance(data, dict)
    check_train_config(data, "train config")
    return data


def resume_config(path: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A run's own config (its ``config.yaml``, else the copy inside the checkpoint) with ``overrides``
    (``key=value``, existing keys only: the run's, and the typed ones of this pokerl) on top, e.g.
    ``total_steps=`` to train longer."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from pokerl.checkpoint import load_checkpoint, resolve_checkpoint, run_dir_of

    ckpt = resolve_checkpoint(path)
    run_dir = run_dir_of(ckpt)
    saved = run_dir / "config.yaml"
    data = load_run_config(saved) if saved.is_file() else yaml.safe_load(load_checkpoint(ckpt)["config"])
    # typed keys pokerl gained after the run started, at their defaults (what the run used), so they can be set
    data = dataclasses.asdict(check_train_config(data, str(saved)))
    conf = OmegaConf.create(data)
    OmegaConf.set_struct(conf, True)
    try:
        conf = OmegaConf.merge(conf, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or " ".join(str(err).split()[:12])
        raise ConfigError(f"config: unknown key '{key}' in the overrides") from None
    merged = OmegaConf.to_container(conf, resolve=True)
    assert isinstance(merged, dict)
    merged["resume"] = str(path)
    if merged.get("run_dir") is None:
        merged["run_dir"] = str(run_dir)
    check_train_config(merged, "train config")
    return merged


def check_train_config(data: Mapping[str, Any], where: str) -> TrainConfig:
    """Check the top-level, ``pool`` and ``log`` keys of a composed config; return them typed."""
    return from_mapping(TrainConfig, data, where)


def load_run_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a run dir's saved ``config.yaml`` (or a config file) back into a checked dict."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"run config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    check_train_config(data, str(path))
    return data


def dump_config(data: Mapping[str, Any]) -> str:
    """The YAML text saved as a run dir's ``config.yaml`` and inside checkpoints."""
    return yaml.safe_dump(dict(data), sort_keys=False)
