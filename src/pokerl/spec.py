"""The game spec: everything known about an env from its YAML alone, with no emulator booted.

A :class:`GameSpec` holds the game profile, the reward config and the env config, and from them the
observation and action spaces, the milestone and reward-term names and the world map. The env,
the pool, the logger and evaluation all take it, so none of them boots an emulator to learn what
shape the data has. It pickles (worker processes receive it).
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from pokerl.codegen import VECTOR_LIMIT
from pokerl.errors import ConfigError
from pokerl.profile import GameProfile, WorldMap, load_profile
from pokerl.rewards import RewardConfig, load_reward
from pokerl.schema import config_path, from_mapping, load_yaml, plain

if TYPE_CHECKING:
    from pokerl.config import TrainConfig

OBS_H, OBS_W = 72, 80  # the observation's screen: the 144x160 frame, every second pixel

ConfigSource = str | os.PathLike[str] | Mapping[str, Any]


@dataclass
class EnvConfig:
    """``configs/env/*.yaml``: how actions map to frames, the frame stack and the episode length."""

    hold_frames: int = 8
    step_frames: int = 24
    frame_stack: int = 3
    max_steps: int = 4096
    helpers: list[str] = field(default_factory=list)  # profile helpers to switch on (off by default)

    def __post_init__(self) -> None:
        if not 1 <= self.hold_frames < self.step_frames:
            raise ValueError(f"need 1 <= hold_frames < step_frames, got {self.hold_frames}, {self.step_frames}")
        if self.frame_stack < 1 or self.max_steps < 1:
            raise ValueError("frame_stack and max_steps must be >= 1")


def load_env_config(env: ConfigSource | None, overrides: Mapping[str, Any] | None = None) -> EnvConfig:
    """Env config from a name, a path or a mapping, with keyword overrides on top."""
    env = plain(env)
    if env is None:
        data, source = load_yaml("env", "default")
    elif isinstance(env, Mapping):
        data, source = dict(env), "env config"
    else:
        data, source = load_yaml("env", env)
    return from_mapping(EnvConfig, {**data, **(overrides or {})}, source)


@dataclass(frozen=True)
class GameSpec:
    """A game profile with its reward and env configs, and what follows from them."""

    profile: GameProfile
    rewards: RewardConfig
    env: EnvConfig

    @property
    def observation_space(self) -> gym.spaces.Dict:
        """One env's observation: ``screen`` (72, 80, frame_stack) and ``visited`` (72, 80, 1) uint8
        images, channel-last, and ``vector`` (D,) float32 RAM features."""
        return gym.spaces.Dict({
            "screen": gym.spaces.Box(0, 255, (OBS_H, OBS_W, self.env.frame_stack), np.uint8),
            "visited": gym.spaces.Box(0, 255, (OBS_H, OBS_W, 1), np.uint8),
            "vector": gym.spaces.Box(-VECTOR_LIMIT, VECTOR_LIMIT, (max(self.profile.vector_size, 1),), np.float32),
        })

    @property
    def action_space(self) -> gym.spaces.Discrete:
        return gym.spaces.Discrete(len(self.profile.actions))

    @property
    def milestone_names(self) -> list[str]:
        return self.rewards.milestone_names

    @property
    def term_names(self) -> tuple[str, ...]:
        return self.rewards.term_names

    @property
    def world_map(self) -> WorldMap:
        return self.profile.world_map


def default_game() -> str:
    """The game ``configs/train.yaml`` trains by default (the bundled one): what :func:`load_spec`
    and the env play when given none."""
    train, _ = load_yaml("train", Path(str(importlib.resources.files("pokerl.configs") / "train.yaml")))
    return next(entry["game"] for entry in train["defaults"] if isinstance(entry, dict) and "game" in entry)


def load_spec(game: ConfigSource | None = None, reward: ConfigSource | None = None, env: ConfigSource | None = None,
              **env_overrides: Any) -> GameSpec:
    """The spec of a game (name, path or mapping; default :func:`default_game`) with its reward config
    (default: the one named like the game) and env config (default: ``configs/env/default.yaml``),
    keyword overrides of the env config on top."""
    profile = load_profile(default_game() if game is None else plain(game))
    reward = plain(reward)
    if reward is None:
        if not config_path("reward", profile.name).is_file():
            raise ConfigError(f"no reward config given and configs/reward/{profile.name}.yaml does not exist")
        reward = profile.name
    config = load_env_config(env, env_overrides)
    for name in config.helpers:
        if name not in profile.helpers:
            raise ConfigError(f"env.helpers: {profile.source} has no helper {name!r} "
                              f"(it has: {', '.join(profile.helpers) or 'none'})")
    return GameSpec(profile, load_reward(reward, profile.ram), config)


def run_spec(config: TrainConfig, **env_overrides: Any) -> GameSpec:
    """The spec of a run config's game, reward and env groups (env settings overridden by keywords)."""
    return load_spec(config.game, config.reward, config.env, **env_overrides)
