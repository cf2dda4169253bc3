"""Milestone statistics over finished episodes: how often each was reached, in how many steps, and
when a run first reached it. One place for the logger, the trainer, evaluation and benchmarks.

Episodes are the env's summaries (:meth:`pokerl.env.GameBoyEnv.episode_summary`): ``milestones``
held at the end, ``milestone_steps`` (each one's env step from power-on), ``start_milestones``
(held when the episode started from an archived state), ``start_steps`` and ``length``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Summary = Mapping[str, Any]


def reach_rates(episodes: Sequence[Summary], names: Sequence[str]) -> dict[str, float]:
    """The share of ``episodes`` holding each milestone: ``names`` in their order (0.0 when never
    reached), then any other milestone an episode held, sorted."""
    names = [*names, *sorted({m for e in episodes for m in e.get("milestones", ())} - set(names))]
    return {name: float(np.mean([name in e.get("milestones", ()) for e in episodes])) for name in names}


def median_steps(episodes: Sequence[Summary], names: Sequence[str]) -> dict[str, float]:
    """The median env step (from power-on) at which each of ``names`` was reached, over the episodes
    that reached it; milestones no episode reached are left out."""
    out = {}
    for name in names:
        steps = [e["milestone_steps"][name] for e in episodes if name in e.get("milestone_steps", {})]
        if steps:
            out[name] = float(np.median(steps))
    return out


def first_reached(episode: Summary, ended_at: int, per_env_step: int) -> dict[str, int]:
    """The run's global step at which ``episode`` reached each milestone it did not start with.

    ``ended_at``: the global step at the env step that ended the episode; ``per_env_step``: global
    steps per env step (every env of every rank steps together), so a milestone reached k env steps
    before the end was reached k * per_env_step global steps earlier.
    """
    held = set(episode.get("start_milestones", ()))
    start = int(episode.get("start_steps", 0))
    length = int(episode["length"])
    return {name: ended_at - (length - (int(at) - start)) * per_env_step
            for name, at in episode.get("milestone_steps", {}).items() if name not in held}


class Tally:
    """A run's finished episodes so far: how many, the last 100 returns, each milestone's first global step."""

    def __init__(self, per_env_step: int) -> None:
        self.per_env_step = per_env_step  # global steps per env step (see first_reached)
        self.episodes = 0  # ended in this process (the progress bar's eps)
        self.returns: deque[float] = deque(maxlen=100)
        self.first: dict[str, int] = {}  # milestone -> its first global step

    @staticmethod
    def read_first(saved: Mapping[str, Any]) -> dict[str, int]:
        """``first`` as a checkpoint holds it."""
        return {str(k): int(v) for k, v in saved.items()}

    def add(self, episode: Summary, ended_at: int) -> dict[str, int]:
        """Count ``episode`` (ended at global step ``ended_at``); returns the milestones it reached first."""
        self.episodes += 1
        self.returns.append(float(episode["return"]))
        new = {name: step for name, step in first_reached(episode, ended_at, self.per_env_step).items()
               if step < self.first.get(name, step + 1)}
        self.first.update(new)
        return new
