"""Turning a checkpoint back into a playing agent, and measuring it.

``load_agent`` rebuilds the env settings and the policy from a checkpoint's saved config and
loads the weights (one-line :class:`~pokerl.errors.CheckpointError` when they do not fit).
``evaluate`` runs episodes through the vector pool with the recurrent state carried along and
aggregates milestone rates, returns, lengths, maps visited and tile visits.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import yaml

from pokerl.checkpoint import load_checkpoint, resolve_checkpoint
from pokerl.config import from_mapping
from pokerl.env import make_env
from pokerl.errors import CheckpointError
from pokerl.logger import VisitMap
from pokerl.policy import Policy, PolicyConfig
from pokerl.pool import make_pool


@dataclass
class Agent:
    """A policy with the run config it was trained with."""

    policy: Policy
    config: dict[str, Any]
    checkpoint: str
    global_step: int

    def env_kwargs(self, rom: str | None = None) -> dict[str, Any]:
        """Keyword arguments for :func:`pokerl.env.make_env` matching the training run."""
        return env_kwargs(self.config, rom)


def env_kwargs(config: Mapping[str, Any], rom: str | None = None) -> dict[str, Any]:
    """The env a run trained on (game, reward, env settings), optionally with another ROM path."""
    return {"game": config["game"], "reward": config["reward"], "env": config["env"], "rom": rom or config.get("rom")}


def load_agent(path: str | os.PathLike[str], rom: str | None = None, model: Mapping[str, Any] | None = None,
               device: str | torch.device = "cpu") -> Agent:
    """Load a run dir or checkpoint; ``model`` replaces the saved model config (must still fit)."""
    ckpt_path = resolve_checkpoint(path)
    ckpt = load_checkpoint(ckpt_path, map_location=device)
    try:
        config = yaml.safe_load(ckpt["config"])
    except (KeyError, yaml.YAMLError):
        raise CheckpointError(f"{ckpt_path} has no readable training config") from None
    if model is not None:
        config["model"] = dict(model)
    env = make_env(**env_kwargs(config, rom))
    try:
        policy = Policy(env.observation_space, int(env.action_space.n), from_mapping(PolicyConfig, config["model"], "model"))
    finally:
        env.close()
    try:
        policy.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        first = next((ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()), str(err).splitlines()[0])
        raise CheckpointError(f"checkpoint does not match the model config: {first}") from None
    policy.to(device).eval()
    return Agent(policy, config, str(ckpt_path), int(ckpt.get("global_step", 0)))


@dataclass
class EvalResult:
    """What ``pokerl-eval`` reports."""

    episodes: int
    mean_return: float
    mean_length: float
    milestone_rates: dict[str, float]
    maps_visited: dict[int, float]  # map id → share of episodes that entered it
    returns: list[float] = field(default_factory=list)
    visits: VisitMap | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "mean_return": self.mean_return,
            "mean_length": self.mean_length,
            "milestone_rates": self.milestone_rates,
            "maps_visited": {str(k): v for k, v in sorted(self.maps_visited.items())},
            "returns": self.returns,
        }


def evaluate(agent: Agent, episodes: int, workers: int = 1, envs_per_worker: int = 1, seed: int = 0,
             deterministic: bool = False, rom: str | None = None, max_steps: int | None = None) -> EvalResult:
    """Run ``episodes`` episodes headless and aggregate them."""
    overrides = {"max_steps": max_steps} if max_steps else {}
    env_fn = functools.partial(make_env, **agent.env_kwargs(rom), **overrides)
    n = max(1, workers) * max(1, envs_per_worker)
    policy, device = agent.policy, next(agent.policy.parameters()).device
    summaries: list[dict[str, Any]] = []
    pool = make_pool([env_fn] * n, backend="shared" if workers > 1 else "serial", num_workers=max(1, workers))
    try:
        obs = pool.reset(seed=seed)
        state = policy.initial_state(n, device)
        starts = torch.ones(n, device=device)
        while len(summaries) < episodes:
            obs_t = {k: torch.as_tensor(v, device=device) for k, v in obs.items()}
            action, _, _, state = policy.act(obs_t, state, starts, deterministic=deterministic)
            obs, _, terminated, truncated, finished = pool.step(action.cpu().numpy())
            starts = torch.as_tensor(terminated | truncated, dtype=torch.float32, device=device)
            summaries.extend(summary for _, summary in finished)
    finally:
        pool.close()
    summaries = summaries[:episodes]
    milestones = _milestone_names(agent)
    for s in summaries:
        milestones += [m for m in s["milestones"] if m not in milestones]
    wm = _world(agent)
    visits = VisitMap((wm["map_size"][1], wm["map_size"][0]))
    maps: dict[int, float] = {}
    for s in summaries:
        visits.add(s["visits"])
        for m in s["maps_visited"]:
            maps[int(m)] = maps.get(int(m), 0) + 1 / len(summaries)
    return EvalResult(
        episodes=len(summaries),
        mean_return=float(np.mean([s["return"] for s in summaries])),
        mean_length=float(np.mean([s["length"] for s in summaries])),
        milestone_rates={m: float(np.mean([m in s["milestones"] for s in summaries])) for m in milestones},
        maps_visited=maps,
        returns=[float(s["return"]) for s in summaries],
        visits=visits,
    )


def _milestone_names(agent: Agent) -> list[str]:
    env = make_env(**agent.env_kwargs())
    try:
        return list(env.unwrapped.rewards.milestone_names)
    finally:
        env.close()


def _world(agent: Agent) -> dict[str, Any]:
    from pokerl.profile import load_profile

    wm = load_profile(agent.config["game"]).world_map
    return {"map_size": (wm.map_width, wm.map_height), "size": (wm.width, wm.height), "offsets": dict(wm.offsets)}


def draw_heatmap(agent: Agent, result: EvalResult, path: str | os.PathLike[str], rom: str | None = None,
                 scale: int = 8) -> None:
    """Save a PNG: every map's look (a screenshot of the game with the player there), placed on the
    world grid, with the visit heat map blended over it."""
    from PIL import Image

    from pokerl.logger import heat_to_rgb

    wm = _world(agent)
    width, height = wm["size"]
    tile = scale
    canvas = np.zeros((height * tile, width * tile, 3), np.float32)
    backgrounds = _map_backgrounds(agent, rom, set(wm["offsets"]), tile)
    for map_id, (ox, oy) in wm["offsets"].items():
        bg = backgrounds.get(map_id)
        if bg is not None:
            h, w = bg.shape[:2]
            y0, x0 = oy * tile, ox * tile
            canvas[y0 : y0 + h, x0 : x0 + w] = bg[: max(0, height * tile - y0), : max(0, width * tile - x0)]
    assert result.visits is not None
    world = result.visits.world(wm["offsets"], wm["size"])
    heat = heat_to_rgb(world).repeat(tile, 0).repeat(tile, 1).astype(np.float32)
    mask = (world > 0).repeat(tile, 0).repeat(tile, 1)[..., None]
    image = np.where(mask, 0.35 * canvas + 0.65 * heat, 0.6 * canvas)
    Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(path)


def _map_backgrounds(agent: Agent, rom: str | None, map_ids: set[int], tile: int) -> dict[int, np.ndarray]:
    """Screenshots of maps the boot state reaches by walking: only the start map is guaranteed, the
    others stay dark. The tile grid of the screen (8 px per tile) is scaled to ``tile`` px."""
    from PIL import Image

    from pokerl.profile import load_profile

    if load_profile(agent.config["game"]).visited_cell != 4:
        # Only a game whose screen shows a map from its origin, one 8-px tile per map tile
        # (tinyquest), can be pasted as the map's picture; scrolling games (Pokémon) get none.
        return {}
    env = make_env(**agent.env_kwargs(rom))
    try:
        env.reset(seed=0)
        wm = _world(agent)
        frame = env.unwrapped.session.rgb()  # (144, 160, 3): the start map as the player sees it
        start_map = int(env.unwrapped.profile.ram[env.unwrapped.profile.coords[0]].read(env.unwrapped.session.memory))
    finally:
        env.close()
    w, h = wm["map_size"]
    crop = frame[: min(h * 8, 144), : min(w * 8, 160)]
    img = Image.fromarray(crop).resize((crop.shape[1] * tile // 8, crop.shape[0] * tile // 8), Image.NEAREST)
    return {start_map: np.asarray(img, np.float32)} if start_map in map_ids else {}
