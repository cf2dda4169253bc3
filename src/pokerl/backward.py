"""The backward curriculum: episodes start along a chain the run's own exploration found, near its end
first, and the start moves back toward power-on as the policy succeeds from there.

This is the backward algorithm of Salimans & Chen 2018 ("Learning Montezuma's Revenge from a Single
Demonstration"), which Go-Explore (Ecoffet et al. 2021) uses to make its found trajectories robust;
here the trajectory is pokerl's own (:mod:`pokerl.chain`), so the agent stays pure RL. With
``reset.mode=backward``:

- a frontier index t over the chain's steps starts at its last point;
- a reset starts from power-on with ``reset.fresh_share``, from a chain point anywhere past t with
  ``reset.later_share`` (Salimans & Chen: 20%), and otherwise from a point in the window
  [t, t + ``reset.window``] (their window: 320 steps; Go-Explore's 160);
- an episode from chain step i has ``reset.time_factor`` x (the chain's steps - i) steps, at most
  ``env.max_steps`` (it is truncated there), and succeeds when it holds every milestone of the chain's
  end. The cap is ours: a chain found by exploration wanders (tinyquest's first to complete: 22,046 steps,
  the scripted walkthrough 765), so twice its remaining steps would let a failing episode from early
  on run 44,000 steps, where the policy is judged from power-on in episodes of ``env.max_steps``.
  ``reset.min_steps`` is a floor, ours too: the chain's last steps are a direct walk (the committed
  tinyquest chain's last point is 13 steps from the final room's door), too few for a policy that has
  not found the door yet (random actions from there: 1 of 16 episodes in 512 steps, none in 26);
- when ``reset.threshold`` (Salimans & Chen: 20%; Go-Explore: 10%) of the last ``reset.history``
  episodes from the window succeeded, t moves back by ``reset.step_back`` and the count starts
  again; at t = 0 every episode starts at power-on (with the chain's whole length times the factor,
  at most ``env.max_steps``, to finish).

``reset.follow`` (ours, off by default) pays for getting ahead along the chain: each chain step is a
mark (the map and tile the chain stood on, the milestones it held), and an episode earns ``follow`` for
every chain step it gets ahead by when it stands within ``reset.follow_radius`` tiles of a later mark on
its map holding its milestones (:class:`Marks`). Its progress only goes forward, so the most an episode
from chain step i earns is ``follow`` x (the chain's steps - i). This is policy-based Go-Explore's
reward for each cell of the chain reached in order (Ecoffet et al. 2021): the milestones alone leave
thousands of steps unrewarded (the committed tinyquest chain: 3,294 steps from `route2` to `gym2`,
185 from the second badge to the final room's door, whose last 13 lie between two saved points).

An episode started on the chain gets a new seed in the game's RNG, as any reset does, unless
``reset.exact_starts``: then it starts as the chain stood there, its RNG too (no seed, no boot writes, no
frame: tinyquest's RNG ticks every frame), as Salimans & Chen restore the demonstration's emulator state.
The chain's own way then succeeds again from every point, and a policy learns the luck of its battles
and grass; with a new seed (ours) the way from a point may need more HP than the chain had there (the
committed tinyquest chain crosses Route 2's grass with 31 of 66 HP and beats Mira with 25 left).

Each env draws its start (:func:`draw_start`) with its own RNG from the t it was last told; the
trainer holds t (:class:`Frontier`), counts the outcomes at update boundaries (every rank's, under
torchrun, so all ranks move t alike) and saves t and the count in checkpoints. The recurrent state of
an episode started on the chain is zeros, as for any episode start.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pokerl.archive import Entry, ResetConfig
from pokerl.chain import Chain, Point


@dataclass
class Start:
    """Where a backward reset put an episode: a chain point (None: power-on), whether it was drawn from
    the window (its outcome moves t), and the episode's step limit."""

    point: Point | None
    window: bool
    limit: int


def draw_start(chain: Chain, t: int, cfg: ResetConfig, rng: np.random.Generator, max_steps: int) -> Start:
    """A reset's start for frontier index ``t`` (one draw of ``rng``, two when the start is a point)."""
    def remaining(step: int) -> int:
        return min(max_steps, max(cfg.min_steps, math.ceil(cfg.time_factor * (chain.steps - step))))

    if t <= 0:
        return Start(None, True, remaining(0))
    u = rng.random()
    if u < cfg.fresh_share:
        return Start(None, False, max_steps)
    window = u >= cfg.fresh_share + cfg.later_share
    # Not the end itself while there is another point: an episode started there holds the end's milestones at
    # once and counts as a success. With the defaults (window 256, step back 64, a point every 32 steps) the end
    # was a third, then a fifth of the window's points, over the threshold of 0.2: t moved with nothing learnt.
    points = window_points(chain, t, cfg) if window else [p for p in chain.points[:-1] if p.step > t]
    points = points or [chain.end]  # t past the last point but the end: it starts there
    point = points[int(rng.integers(len(points)))]
    return Start(point, window, max(1, remaining(point.step)))


def window_points(chain: Chain, t: int, cfg: ResetConfig) -> list[Point]:
    """The saved points a window start is drawn from: in [t, t + ``reset.window``], the end excluded."""
    return [p for p in chain.points[:-1] if t <= p.step <= t + cfg.window]


def start_entry(chain: Chain, point: Point) -> Entry:
    """A chain point as the start of an episode, in the archive's terms (what the env's bookkeeping of
    milestones and steps from power-on reads)."""
    return Entry(point.milestones, point.state, point.step,
                 {m: chain.milestone_steps[m] for m in point.milestones if m in chain.milestone_steps})


@dataclass
class Marks:
    """Where the chain stood at each of its steps (0: power-on): the map and tile, and the milestones
    held; what ``reset.follow`` pays for reaching."""

    map: np.ndarray  # (steps + 1,)
    x: np.ndarray
    y: np.ndarray
    milestone_steps: Mapping[str, int]  # the chain's: held from that step on
    on_map: dict[int, np.ndarray] = field(init=False)  # each map's chain steps, ascending

    def __post_init__(self) -> None:
        self.on_map = {int(m): np.flatnonzero(self.map == m) for m in np.unique(self.map)}

    def furthest(self, after: int, pos: tuple[int, int, int], held: Iterable[str], radius: int) -> int:
        """The last chain step past ``after`` within ``radius`` tiles (Manhattan) of ``pos`` (map, x, y) on
        its map whose milestones are all held; ``after`` when there is none."""
        steps = self.on_map.get(int(pos[0]), np.empty(0, np.int64))
        steps = steps[np.searchsorted(steps, after, side="right"):]
        near = steps[np.abs(self.x[steps] - pos[1]) + np.abs(self.y[steps] - pos[2]) <= radius]
        held = set(held)
        before = min((at for m, at in self.milestone_steps.items() if m not in held), default=len(self.map))
        near = near[near < before]  # the chain did not hold yet what this episode does not
        return int(near[-1]) if len(near) else after


@dataclass
class Frontier:
    """The trainer's side: t, and the outcomes of the window episodes since t last moved."""

    cfg: ResetConfig
    steps: int  # the chain's length
    t: int = -1  # -1: the chain's last point (set in __post_init__)
    outcomes: deque[bool] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.t < 0:
            self.t = self.steps
        self.outcomes = deque(self.outcomes, maxlen=self.cfg.history)

    def record(self, outcomes: Iterable[tuple[int, bool]]) -> bool:
        """Count window episodes' successes, each with the t its start was drawn for, in order; True when t
        moved. Only the current t's count: the episodes still running when t moves started in the old window
        (at the chain's end, 1,024 one-step successes in the first update once moved t 52 times)."""
        moved = False
        for drawn_for, success in outcomes:
            if self.t <= 0:
                break
            if drawn_for != self.t:
                continue
            self.outcomes.append(bool(success))
            if len(self.outcomes) == self.cfg.history and np.mean(self.outcomes) >= self.cfg.threshold:
                self.t = max(0, self.t - self.cfg.step_back)
                self.outcomes.clear()
                moved = True
        return moved

    def scalars(self) -> dict[str, float]:
        return {"backward/frontier": self.t / self.steps,
                "backward/success": float(np.mean(self.outcomes)) if self.outcomes else float("nan")}

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "outcomes": list(self.outcomes)}

    def load_state_dict(self, data: Mapping[str, Any]) -> None:
        self.t = int(data["t"])
        self.outcomes = deque((bool(x) for x in data["outcomes"]), maxlen=self.cfg.history)


def window_outcomes(summaries: Sequence[Mapping[str, Any]]) -> list[tuple[int, bool]]:
    """The episodes among ``summaries`` that started in the window (they move t): the t each was drawn for, and
    whether it succeeded."""
    return [(int(s["chain_t"]), bool(s["chain_success"])) for s in summaries if s.get("chain_window")]
