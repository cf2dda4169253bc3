"""The run configuration: Hydra composes ``configs/train.yaml`` with its groups into one typed :class:`TrainConfig`.

``compose_train_config(overrides)`` returns the :class:`TrainConfig` the trainer runs, checked key by key
through the one typed loader (:mod:`pokerl.schema`); ``TrainConfig.as_dict()`` is what a run dir's
``config.yaml`` and checkpoints hold, and reads back to the same config. The model and PPO groups are typed
here (torch-free, so a bad key or ROM is refused before torch loads); the game, reward and env groups stay
mappings that :func:`pokerl.spec.run_spec` turns into a typed game spec. The dataclasses' defaults are the
shipped YAML files' (a test holds them equal). Any mistake becomes a one-line
:class:`~pokerl.errors.ConfigError`.
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
from pokerl.schema import from_mapping, load_yaml, read_yaml


@dataclass
class PolicyConfig:
    """``model``: sizes of the network (``configs/model/*.yaml``); defaults: ``default.yaml``'s (~10M parameters)."""

    channels: list[int] = field(default_factory=lambda: [64, 128, 128])
    kernels: list[int] = field(default_factory=lambda: [8, 4, 3])
    strides: list[int] = field(default_factory=lambda: [4, 2, 1])
    cnn_out: int = 768  # linear layer after the convolutions
    vector_hidden: int = 128  # MLP width for the RAM features
    hidden: int = 896  # fused width = LSTM input and hidden size
    recurrent: bool = True

    def __post_init__(self) -> None:
        if not (len(self.channels) == len(self.kernels) == len(self.strides)):
            raise ValueError("channels, kernels and strides must have the same length")
        if min([*self.channels, *self.kernels, *self.strides, self.cnn_out, self.vector_hidden, self.hidden]) < 1:
            raise ValueError("every size must be >= 1")


@dataclass
class PPOConfig:
    """``ppo``: ``configs/ppo/*.yaml``; defaults follow pokemonred_puffer's published train settings."""

    learning_rate: float = 2.0e-4
    anneal_lr: bool = True
    num_steps: int = 128  # T: rollout steps per env per update
    bptt: int = 16  # L: sequence length for truncated BPTT
    num_minibatches: int = 4
    update_epochs: int = 3
    gamma: float = 0.998
    gae_lambda: float = 0.95
    norm_adv: bool = True
    clip_coef: float = 0.1
    clip_vloss: bool = True
    vf_clip_coef: float = 0.1
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    bootstrap_truncated: bool = True  # add γ·V(final obs) to the last reward of a truncated episode
    max_nonfinite: int = 8  # optimiser steps in a row skipped for a non-finite loss/gradient before the run stops

    def __post_init__(self) -> None:
        if self.bptt < 1 or self.num_steps < 1 or self.num_steps % self.bptt:
            raise ValueError(f"num_steps ({self.num_steps}) must be a positive multiple of bptt ({self.bptt})")
        if self.num_minibatches < 1 or self.update_epochs < 1:
            raise ValueError("num_minibatches and update_epochs must be >= 1")


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
    """A training run's whole config (``configs/train.yaml`` with its groups composed)."""

    game: dict[str, Any]  # the game profile, reward and env groups: typed by pokerl.spec.run_spec
    reward: dict[str, Any]
    env: dict[str, Any]
    model: PolicyConfig = field(default_factory=PolicyConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
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

    def as_dict(self) -> dict[str, Any]:
        """Plain mappings and lists: what ``config.yaml`` and checkpoints hold (:func:`dump_config`)."""
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_model_config(name_or_path: str | os.PathLike[str]) -> PolicyConfig:
    """A model config by name (``configs/model/<name>.yaml``) or path; its mistakes name its file."""
    data, source = load_yaml("model", name_or_path)
    return from_mapping(PolicyConfig, data, source)


def compose_train_config(
    overrides: Sequence[str] = (), config_dir: str | os.PathLike[str] | None = None, config_name: str = "train"
) -> TrainConfig:
    """Compose the training config with Hydra and return it typed.

    ``config_dir`` points at a user's own config folder (it must hold ``<config_name>.yaml`` and may
    hold its own groups); by default the configs shipped with pokerl are used. ``resume=RUN`` among the
    overrides: that run's own config (:func:`resume_config`) with the others on top.
    """
    resume = [o.split("=", 1)[1] for o in overrides if o.startswith("resume=")]
    if resume and resume[-1] not in ("", "null"):
        if config_dir is not None or config_name != "train":  # the run's config is the one it was started with
            raise ConfigError(f"resume={resume[-1]} continues that run with its own config: leave out "
                              "--config-dir/--config-name")
        return resume_config(resume[-1], [o for o in overrides if not o.startswith("resume=")])
    return check_train_config(compose_mapping(overrides, config_dir, config_name), "train config")


def compose_mapping(
    overrides: Sequence[str] = (), config_dir: str | os.PathLike[str] | None = None, config_name: str = "train"
) -> dict[str, Any]:
    """Hydra's composition as plain mappings, in the YAML files' key order, unchecked (see
    :func:`compose_train_config`)."""
    from hydra import compose, initialize_config_dir, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

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
    return data


def resume_config(path: str, overrides: Sequence[str] = ()) -> TrainConfig:
    """A run's own config (its ``config.yaml``, else the copy inside the checkpoint) with ``overrides``
    (``key=value``, existing keys only: the run's, and the typed ones of this pokerl) on top, e.g.
    ``total_steps=`` to train longer."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from pokerl.checkpoint import load_checkpoint, resolve_checkpoint, run_dir_of

    ckpt = resolve_checkpoint(path)
    run_dir = run_dir_of(ckpt)
    saved = run_dir / "config.yaml"
    config = load_run_config(saved) if saved.is_file() else checkpoint_config(load_checkpoint(ckpt), str(ckpt))
    # typed keys pokerl gained after the run started, at their defaults (what the run used), so they can be set
    conf = OmegaConf.create(config.as_dict())
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
    return check_train_config(merged, "train config")


def check_train_config(data: Mapping[str, Any], where: str) -> TrainConfig:
    """A composed config (plain mappings) checked key by key and typed; ``where`` names its source."""
    return from_mapping(TrainConfig, data, where)


def checkpoint_config(ckpt: Mapping[str, Any], source: str) -> TrainConfig:
    """The training config saved inside checkpoint ``ckpt`` (from ``source``), typed."""
    from pokerl.errors import CheckpointError

    try:
        data = yaml.safe_load(ckpt["config"])
    except (KeyError, yaml.YAMLError):
        raise CheckpointError(f"{source} has no readable training config") from None
    return check_train_config(data, f"config of {source}")


def load_run_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Read a run dir's saved ``config.yaml`` (or a config file) back into its typed config."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"run config not found: {path}")
    return check_train_config(read_yaml(path), str(path))


def dump_config(config: TrainConfig) -> str:
    """The YAML text saved as a run dir's ``config.yaml`` and inside checkpoints."""
    return yaml.safe_dump(config.as_dict(), sort_keys=False)
