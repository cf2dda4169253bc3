"""Turning a checkpoint back into a playing agent, and measuring it.

``load_agent`` rebuilds the env settings and the policy from a checkpoint's saved config and
loads the weights (one-line :class:`~pokerl.errors.CheckpointError` when they do not fit).
``evaluate`` runs episodes through the vector pool with the recurrent state carried along and
aggregates milestone rates, returns, lengths, maps visited and tile visits; ``save_heatmap`` draws
them on the world map, over screens the evaluated envs captured (no extra emulator).
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pokerl.archive import Archive
from pokerl.checkpoint import check_compatible, load_checkpoint, load_weights, resolve_checkpoint
from pokerl.config import PolicyConfig, TrainConfig, checkpoint_config
from pokerl.env import make_env
from pokerl.errors import PokerlError
from pokerl.heatmap import Backdrop, VisitMap, draw_heatmap, readable, world_scale
from pokerl.milestones import median_steps, reach_rates
from pokerl.policy import Policy
from pokerl.pool import VectorPool
from pokerl.spec import GameSpec, run_spec


@dataclass
class Agent:
    """A policy with the run config it was trained with."""

    policy: Policy
    config: TrainConfig
    checkpoint: str
    global_step: int
    archive: Archive = field(default_factory=Archive)

    @cached_property
    def spec(self) -> GameSpec:
        """The game, rewards and env settings the run trained with."""
        return run_spec(self.config)

    def env_kwargs(self, rom: str | None = None, from_milestone: str | None = None) -> dict[str, Any]:
        """Keyword arguments for :func:`pokerl.env.make_env` matching the training run; episodes start
        at power-on, or at the run's archived state holding milestone ``from_milestone``."""
        kwargs = {"spec": self.spec, "rom": rom or self.config.rom}
        if from_milestone is not None:
            entry = self.archive.for_milestone(from_milestone, startable=True)
            if entry is None:
                held = sorted({m for e in self.archive.entries.values() for m in e.milestones})
                raise PokerlError(f"{self.checkpoint}: no archived state holds milestone {from_milestone!r} "
                                  f"(archived: {', '.join(held) or 'none'})")
            kwargs["start"] = entry
        return kwargs


def load_agent(path: str | os.PathLike[str], rom: str | None = None, model: PolicyConfig | None = None,
               device: str | torch.device = "cpu") -> Agent:
    """Load a run dir or checkpoint; ``model`` replaces the saved model config (must still fit)."""
    ckpt_path = resolve_checkpoint(path)
    ckpt = load_checkpoint(ckpt_path, map_location=device)
    config = checkpoint_config(ckpt, str(ckpt_path))
    if model is not None:
        config.model = model
    spec = run_spec(config)
    check_compatible(ckpt, str(ckpt_path), spec, config.model)
    policy = Policy(spec.observation_space, int(spec.action_space.n), config.model)
    load_weights(policy, ckpt)
    policy.to(device).eval()
    archive = Archive()
    archive.load_state_dict(ckpt.get("archive", {}), str(ckpt_path))
    agent = Agent(policy, config, str(ckpt_path), int(ckpt.get("global_step", 0)), archive)
    agent.spec = spec  # type: ignore[misc]  # the cached property's value, already made
    return agent


@dataclass
class EvalResult:
    """What ``pokerl-eval`` reports."""

    episodes: int
    mean_return: float
    mean_length: float
    milestone_rates: dict[str, float]
    milestone_steps: dict[str, float]  # median env steps from an episode's start, over episodes that reached it
    maps_visited: dict[int, float]  # map id → share of episodes that entered it
    returns: list[float] = field(default_factory=list)
    visits: VisitMap | None = None
    backdrop: Backdrop | None = None  # the screens the envs saw, painted on the world map (capture_screens)

    def as_dict(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "mean_return": self.mean_return,
            "mean_length": self.mean_length,
            "milestone_rates": self.milestone_rates,
            "milestone_steps": self.milestone_steps,
            "maps_visited": {str(k): v for k, v in sorted(self.maps_visited.items())},
            "returns": self.returns,
        }


def evaluate(agent: Agent, episodes: int, workers: int = 1, envs_per_worker: int = 1, seed: int = 0,
             deterministic: bool = False, rom: str | None = None, max_steps: int | None = None,
             capture_screens: bool = False, from_milestone: str | None = None,
             progress: bool = False, boot_cache: str | None = None) -> EvalResult:
    """Run ``episodes`` episodes headless (each env its share; ``seed`` seeds the envs and torch's RNG, so
    sampled actions repeat) and aggregate them; ``capture_screens``: keep screenshots of
    what the agent saw (heat-map backgrounds); ``from_milestone``: start every episode at the run's
    archived state that holds it (milestones count from power-on); ``progress``: tqdm bars over
    episodes and env steps on stderr (a Pokémon episode is minutes long); ``boot_cache``: a folder
    holding the game's start state (a run's; default: a new one, made once for these envs)."""
    if min(episodes, workers, envs_per_worker, 1 if max_steps is None else max_steps) < 1:
        raise ValueError(f"evaluate: episodes {episodes}, workers {workers}, envs_per_worker {envs_per_worker} "
                         f"and max_steps {max_steps} must be >= 1")
    spec = run_spec(agent.config, max_steps=max_steps) if max_steps is not None else agent.spec
    kwargs = {**agent.env_kwargs(rom, from_milestone), "spec": spec}
    # the envs share one start state (Pokémon's intro is made once, not once per env)
    own = tempfile.TemporaryDirectory(prefix="pokerl-eval-") if boot_cache is None else None
    env_fn = functools.partial(make_env, **kwargs, capture_screens=capture_screens,
                               boot_cache=boot_cache if own is None else own.name)
    # no env without an episode of its own: envs step together, so a spare one costs as much as a playing one
    workers = min(workers, episodes)
    envs_per_worker = min(envs_per_worker, math.ceil(episodes / workers))
    n = workers * envs_per_worker
    policy, device = agent.policy, next(agent.policy.parameters()).device
    summaries: list[dict[str, Any]] = []
    wm = spec.world_map
    visits = VisitMap((wm.map_height, wm.map_width))
    backdrop = Backdrop(wm, spec.profile.screen) if capture_screens else None
    # env steps at most: every round of n episodes runs to max_steps (early ends finish the bar early)
    most_steps = math.ceil(episodes / n) * n * spec.env.max_steps
    ep_bar = tqdm(total=episodes, desc="episodes", unit="ep", disable=not progress, position=0)
    step_bar = tqdm(total=most_steps, desc="env steps", unit="step", unit_scale=True, disable=not progress,
                    position=1, leave=False)
    # each env plays its share of the episodes: the first `episodes` to finish would favour envs whose
    # episodes end early (a game completed before the step limit), overstating the rates
    quota = [episodes // n + (i < episodes % n) for i in range(n)]
    torch.manual_seed(seed)  # sampled actions too: the same seed, the same episodes
    with own or nullcontext(), VectorPool([env_fn] * n, spec, workers, inline=workers == 1) as pool, ep_bar, step_bar:
        obs, _ = pool.reset(seed=seed)
        state = policy.initial_state(n, device)
        starts = torch.ones(n, device=device)
        while len(summaries) < episodes:
            obs_t = {k: torch.as_tensor(v, device=device) for k, v in obs.items()}
            action, _, _, state = policy.act(obs_t, state, starts, deterministic=deterministic)
            obs, _, terminated, truncated, infos = pool.step(action.cpu().numpy())
            starts = torch.as_tensor(terminated | truncated, dtype=torch.float32, device=device)
            for i, summary in infos["episodes"]:
                if not quota[i]:
                    continue
                quota[i] -= 1
                visits.add(summary.pop("visits"))  # aggregated now: a Pokémon episode's screens are MBs
                if backdrop is not None:
                    backdrop.add(summary.pop("screens"))
                summaries.append(summary)
                ep_bar.update(1)
            step_bar.update(n)
    milestones = list(spec.milestone_names)
    entered: dict[int, int] = {}  # counted, then divided once: a sum of 1/n shares drifts (0.30000000000000004)
    for s in summaries:
        for m in s["maps_visited"]:
            entered[int(m)] = entered.get(int(m), 0) + 1
    maps = {m: count / len(summaries) for m, count in entered.items()}
    return EvalResult(
        episodes=len(summaries),
        mean_return=float(np.mean([s["return"] for s in summaries])),
        mean_length=float(np.mean([s["length"] for s in summaries])),
        milestone_rates=reach_rates(summaries, milestones),
        milestone_steps=median_steps(summaries, milestones),
        maps_visited=maps,
        returns=[float(s["return"]) for s in summaries],
        visits=visits,
        backdrop=backdrop,
    )


def save_heatmap(agent: Agent, result: EvalResult, path: str | os.PathLike[str]) -> None:
    """Save :func:`pokerl.heatmap.draw_heatmap` of an evaluation as a PNG (over the screens its envs
    captured when run with ``capture_screens``), a small one scaled up to be read (:func:`~pokerl.heatmap.readable`)."""
    from PIL import Image

    assert result.visits is not None
    scale = world_scale(agent.spec.world_map, agent.spec.profile.screen)
    Image.fromarray(readable(draw_heatmap(agent.spec.world_map, result.visits, scale, result.backdrop))).save(path)


def evaluate_from_power_on(policy: Policy, config: TrainConfig, episodes: int, seed: int,
                           run_dir: str | os.PathLike[str]) -> dict[str, float]:
    """A training run's periodic measure (``eval.every``): ``episodes`` seeded episodes of ``policy``
    as it is, from power-on, as ``power_on/<milestone>`` (the share reaching each) and
    ``power_on/return``. Torch's RNG is left as it was, so a run with evaluations trains exactly as one
    without; the envs share the run's start state (``run_dir/cache``)."""
    device = next(policy.parameters()).device
    policy.eval()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        result = evaluate(Agent(policy, config, str(run_dir), 0), episodes, seed=seed, rom=config.rom,
                          boot_cache=str(Path(run_dir) / "cache"))
    return {**{f"power_on/{m}": rate for m, rate in result.milestone_rates.items()},
            "power_on/return": result.mean_return}
