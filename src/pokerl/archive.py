"""The milestone state archive: one saved game state per cell (a set of milestones held, a level and,
optionally, a map), the fewest steps in.

A cell is Go-Explore's: the milestones held (those at the episode's start plus those reached since)
and, with ``archive.level_step`` n > 0, the reward's level sum (capped as the reward caps it) in
steps of n. When an env first reaches a cell the archive lacks, or a known cell in fewer env steps
from power-on, its emulator state becomes that cell's entry. Levels split cells because the fewest
steps alone keeps the states that trained least: in tinyquest every "fought Rocko" entry of the
first frontier seed was in town at level 1, after the lost fight, and it needs level 2-3 to win.
With ``archive.by_map``, the map the player stands on (the profile's ``coords.map``) splits cells too:
stepping stones between milestones far apart. In tinyquest the pretrained run's only state holding both
badges stood beside Rocko (gym 1), the town between it and the trophy room; no milestone lies on that
way, so the archive kept no state nearer the end, and 51 episodes started from it never got there.

Envs then start episodes from entries (``reset.mode=frontier``: sampled, weighted toward the
largest sets and the least used entries) or jump to the best one (``swarm``), so progress one env
made is shared by all: the idea behind the swarm of the agent that beat Pokémon Red
(pokemonred_puffer). States where the player is busy (battle, text) are not archived: the env waits
for the next free step. Where the game ends (``done_when``) the state is archived as ``terminal``:
never a start (frontier, swarm, ``--from-milestone``), only the end of a chain to the game's last
milestone (:mod:`pokerl.chain`).

Lineage: every entry records the cell it was found from (``parent``; None: power-on) and its whole
``trajectory`` from power-on, one segment per episode on the way (the seed that episode's reset wrote
into the game's RNG field and its actions), so :meth:`pokerl.env.GameBoyEnv.replay` plays it again
from power-on to the same emulator state: the chain a backward curriculum walks (issue 35).

The archive is bounded (``archive.max_states``). Eviction: the best entry (the largest set) and the
best where play goes on are never evicted; otherwise the most used entry of the set size that has
the most entries goes first, so each stage of the game keeps some states. It is saved in every
checkpoint (plain types) and restored exactly; an entry whose state is corrupt is skipped with a
one-line warning.

Two views of it move through a run: :class:`RunArchive`, the trainer's (rollouts' candidates offered,
ranks' new entries exchanged, the envs' copies refreshed, swarm jumps, use counts), and
:class:`EnvArchive`, each env's copy (frontier draws, which candidates are worth offering). Uses are
counted on both sides on purpose: an env weighs its draws by its own starts, so its draws depend on its
own history alone and a resumed env draws exactly as it would have; the run's counts pick eviction victims.
"""

from __future__ import annotations

import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MilestoneSet = tuple[str, ...]  # sorted
Cell = tuple[MilestoneSet, int, int]  # (milestone set, level bucket, map: -1 when maps do not split cells)
# The way from power-on to a state, one segment per episode on it: the seed its reset wrote into the
# game's RNG field (0 when the profile names none) and its actions, one byte each (action indices).
Trajectory = tuple[tuple[int, bytes], ...]


@dataclass
class Entry:
    """One archived state: the milestones held there and what it took to get there."""

    milestones: MilestoneSet  # the milestones held, sorted
    state: bytes  # the emulator state (zlib-compressed PyBoy state)
    steps: int  # env steps from power-on that led here
    milestone_steps: dict[str, int]  # each held milestone's env step from power-on
    rng: int = 0  # the game's RNG field when it was saved (0 when the profile names none)
    time: float = 0.0  # wall-clock time (s since the epoch) it was saved at
    uses: int = 0  # episodes started from it
    level: int = 0  # the level bucket (0 when levels do not split cells)
    map: int = -1  # the map it stands on when maps split cells (archive.by_map), else -1
    # lineage: the entry the episode that found it started from (None: power-on), and the whole way
    # from power-on (empty when unknown: an entry saved before lineage, or found from one)
    parent: Cell | None = None
    trajectory: Trajectory = ()
    terminal: bool = False  # the game ended here (done_when): kept as the end of a chain, never a start

    @property
    def cell(self) -> Cell:
        return self.milestones, self.level, self.map

    def as_dict(self) -> dict[str, Any]:
        return {"milestones": list(self.milestones), "state": self.state, "steps": self.steps,
                "milestone_steps": dict(self.milestone_steps), "rng": self.rng, "time": self.time, "uses": self.uses,
                "level": self.level, "map": self.map,
                "parent": None if self.parent is None else [list(self.parent[0]), self.parent[1], self.parent[2]],
                "trajectory": [[seed, actions] for seed, actions in self.trajectory], "terminal": self.terminal}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Entry:
        # "level" and "map" are absent from archives saved before they split cells (level 0, map -1);
        # "parent" and "trajectory" from archives saved before lineage (unknown); "key" is the milestones'
        # name in archives saved before the rename
        parent = data.get("parent")
        return Entry(tuple(data.get("milestones", data.get("key", ()))), bytes(data["state"]), int(data["steps"]),
                     {str(k): int(v) for k, v in data["milestone_steps"].items()}, int(data["rng"]),
                     float(data["time"]), int(data["uses"]), int(data.get("level", 0)), int(data.get("map", -1)),
                     None if parent is None else (tuple(parent[0]), int(parent[1]), int(parent[2])),
                     tuple((int(seed), bytes(actions)) for seed, actions in data.get("trajectory", [])),
                     bool(data.get("terminal", False)))


def extend_trajectory(start: Entry | None, seed: int, actions: bytes) -> Trajectory:
    """The way to a state found ``actions`` into an episode whose reset wrote ``seed``, started at
    ``start`` (None: power-on); empty when the start's own way is unknown."""
    if start is not None and not start.trajectory:
        return ()
    return (*(start.trajectory if start is not None else ()), (seed, actions))


@dataclass
class ResetConfig:
    """``reset:`` in ``configs/train.yaml``: where episodes start."""

    mode: str = "fresh"  # fresh: power-on | frontier: sampled archive entries | swarm: jumps to the best
    #   | backward: along a chain (pokerl.backward) | goexplore: frontier until the archive holds
    #   `target`, then backward along the chain to it from the run's own archive
    fresh_share: float = 0.25  # frontier, backward: the share of resets that start from power-on all the same
    swarm_every: int = 10  # swarm: updates between jumps
    swarm_share: float = 0.25  # swarm: the share of envs that jump to the best entry
    frontier_weight: str = "milestones"  # frontier: entries doubled per milestone held | per unit of its reward
    #   | depth: every count of milestones held alike, shared by its entries (a shorter way at any depth is drawn on)
    # backward (see pokerl.backward for the published settings these follow)
    chain: str | None = None  # backward: the chain file (pokerl-chain)
    target: str | None = None  # goexplore: the milestone whose chain ends the frontier phase (None: the last one)
    settle: int = 0  # goexplore: env steps the target's shortest entry must stand unbeaten before the switch
    window: int = 256  # starts drawn from chain steps [t, t + window]
    step_back: int = 64  # t moves back this many steps ...
    threshold: float = 0.2  # ... when this share of the last `history` window episodes succeeded
    history: int = 32
    later_share: float = 0.2  # the share of starts anywhere past t
    time_factor: float = 2.0  # from chain step i: time_factor x (the chain's steps - i) steps, at most env.max_steps
    min_steps: int = 0  # ... and at least this many (a fresh policy finds no door in the few steps the chain took)
    follow: float = 0.0  # the reward for each chain step an episode gets ahead by (pokerl.backward.Marks) ...
    follow_radius: int = 2  # ... standing this many tiles (Manhattan) from where the chain stood, with its milestones
    imitate: float = 0.0  # self-imitation on the chain's way from t: the loss's coefficient (pokerl.imitation) ...
    imitate_steps: int = 256  # ... over this many chain steps from each saved point of the window (0: none)
    imitate_later: int = 0  # ... and from this many saved points past the window, drawn afresh at every update
    imitate_own: int = 0  # ... and the last this many of the run's own episodes that held the chain's end (Oh et
    #   al.'s SIL proper: their way plays as it is; the chain's holds with its own luck only)
    exact_starts: bool = False  # a chain start as the chain stood there, its RNG too (false: a new seed, as any reset)

    def __post_init__(self) -> None:
        if self.mode not in ("fresh", "frontier", "swarm", "backward", "goexplore"):
            raise ValueError(f"mode: expected fresh, frontier, swarm, backward or goexplore, got {self.mode!r}")
        if self.frontier_weight not in ("milestones", "reward", "depth"):
            raise ValueError(f"frontier_weight: expected milestones, reward or depth, got {self.frontier_weight!r}")
        if not all(0.0 <= x <= 1.0 for x in (self.fresh_share, self.swarm_share, self.threshold, self.later_share)):
            raise ValueError("fresh_share, swarm_share, threshold and later_share must lie in [0, 1]")
        if self.fresh_share + self.later_share > 1.0:
            raise ValueError(f"fresh_share + later_share must be <= 1, got {self.fresh_share + self.later_share:g}")
        if min(self.swarm_every, self.window, self.step_back, self.history) < 1 or self.time_factor <= 0:
            raise ValueError("swarm_every, window, step_back and history must be >= 1, time_factor > 0")
        if min(self.settle, self.min_steps, self.follow, self.follow_radius, self.imitate) < 0:
            raise ValueError("settle, min_steps, follow, follow_radius and imitate must be >= 0")
        if min(self.imitate_steps, self.imitate_later, self.imitate_own) < 0:
            raise ValueError(f"imitate_steps, imitate_later and imitate_own must be >= 0, got {self.imitate_steps}, "
                             f"{self.imitate_later} and {self.imitate_own}")
        if self.imitate > 0 and not self.imitate_steps and not self.imitate_own:
            raise ValueError("imitate: imitate_steps=0 and imitate_own=0 leave nothing to imitate")
        if self.imitate > 0 and self.mode not in ("backward", "goexplore"):
            raise ValueError(f"imitate: mode={self.mode} walks no chain to imitate (backward or goexplore do)")
        if self.mode == "backward" and not self.chain:
            raise ValueError("mode=backward starts episodes along a chain: set reset.chain=PATH (see pokerl-chain)")


@dataclass
class ArchiveConfig:
    """``archive:`` in ``configs/train.yaml``."""

    max_states: int = 64  # entries kept (0: no archive)
    level_step: int = 1  # > 0: cells split by the reward's level sum in steps of this (0: milestones only)
    by_map: bool = False  # cells split by the map the player stands on too

    def __post_init__(self) -> None:
        if self.max_states < 0:
            raise ValueError(f"max_states: must be >= 0, got {self.max_states}")
        if self.level_step < 0:
            raise ValueError(f"level_step: must be >= 0, got {self.level_step}")


def better(new: Entry, old: Entry | None) -> bool:
    """Does ``new`` replace ``old`` (the entry for the same cell, if any)? Fewer steps win."""
    return old is None or new.steps < old.steps


def weights(entries: Sequence[Entry], uses: Mapping[Cell, int], by: str = "milestones",
            value: Mapping[str, float] | None = None) -> np.ndarray:
    """Sampling weights for frontier resets (``by``: ``reset.frontier_weight``): doubled per milestone in the
    set (the frontier first), per unit of the set's reward (``value``: each milestone's), or (``depth``) each
    count of milestones held weighing alike, shared by the entries holding that many; divided by 1 + the
    times this env started from the entry (the least used first).

    Counting milestones treats them alike; where the game's order is loose they are not. In tinyquest's
    pretrained run, after by_map joined at 8.44M steps, the one state holding both badges (a badge pays 5)
    and eight new ones that held the first badge and had seen the trophy room (it pays 1) all held 11
    milestones; the new ones, unused, drew the resets: from 8.44M to 9.15M steps at most 2 episodes
    started from the two-badge state. By reward it weighs 16 times more than each of them.
    Milestones the reward no longer names (an edited config) count 0.

    By milestones or reward the deepest entries draw nearly every reset, so an entry reached in fewer steps
    at a shallower depth is seldom started from, and the deeper entries found through its longer predecessor
    keep their long way from power-on; ``depth`` gives every depth its share (docs/archive.md)."""
    if by == "depth":
        per_depth = Counter(len(e.milestones) for e in entries)
        base = np.array([1.0 / per_depth[len(e.milestones)] for e in entries], np.float64)
    else:
        sizes = np.array([sum(value.get(m, 0.0) for m in e.milestones) if value is not None else len(e.milestones)
                          for e in entries], np.float64)
        base = 2.0 ** (sizes - sizes.max())
    w = base / (1.0 + np.array([uses.get(e.cell, 0) for e in entries], np.float64))
    return w / w.sum()


@dataclass
class Archive:
    """Entries by cell; see the module docstring."""

    max_states: int = 64
    entries: dict[Cell, Entry] = field(default_factory=dict)
    version: int = 0  # counts changes, so copies elsewhere know when to refresh

    def offer(self, entry: Entry) -> bool:
        """Add or replace ``entry``'s cell if it is new or reached in fewer steps; True when kept."""
        old = self.entries.get(entry.cell)
        if not better(entry, old):
            return False
        entry.uses = old.uses if old is not None else 0
        self.entries[entry.cell] = entry
        while len(self.entries) > self.max_states:
            self._evict()
        self.version += 1
        return entry.cell in self.entries

    def _evict(self) -> None:
        kept = {e.cell for e in (self.best(), self.best(startable=True)) if e is not None}  # the ends: never
        by_size = Counter(len(c[0]) for c in self.entries if c not in kept)
        size = max(by_size, key=lambda s: (by_size[s], -s))  # the fullest bucket; the smaller sets first
        victims = [e for c, e in self.entries.items() if len(c[0]) == size and c not in kept]
        del self.entries[max(victims, key=lambda e: (e.uses, e.steps)).cell]

    def best(self, startable: bool = False) -> Entry | None:
        """The entry with the most milestones (then the highest level, then the fewest steps); with
        ``startable``, of those where play can go on (not where the game ended)."""
        return min((e for e in self.entries.values() if not (startable and e.terminal)),
                   key=lambda e: (-len(e.milestones), -e.level, e.steps), default=None)

    def for_milestone(self, name: str, startable: bool = False) -> Entry | None:
        """The entry holding ``name`` reached in the fewest steps (``--from-milestone``: ``startable``)."""
        return min((e for e in self.entries.values() if name in e.milestones and not (startable and e.terminal)),
                   key=lambda e: e.steps, default=None)

    def count_uses(self, started: Iterable[Cell]) -> None:
        for cell in started:
            if cell in self.entries:
                self.entries[cell].uses += 1

    def state_dict(self) -> dict[str, Any]:
        return {"max_states": self.max_states, "version": self.version,
                "entries": [e.as_dict() for e in self.entries.values()]}

    def load_state_dict(self, data: Mapping[str, Any], source: str = "checkpoint") -> None:
        """Restore :meth:`state_dict` output; entries whose state does not decompress are skipped."""
        self.entries = {}
        for raw in data.get("entries", []):
            entry = Entry.from_dict(raw)
            try:
                zlib.decompress(entry.state)
            except zlib.error:
                warnings.warn(f"pokerl: {source}: archive entry {'+'.join(entry.milestones) or 'start'} has a corrupt "
                              "state: skipped", stacklevel=2)
                continue
            self.entries[entry.cell] = entry
        self.version = int(data.get("version", 0))


class EnvArchive:
    """An env's copy of the run's archive: where its frontier resets start, which candidates to offer."""

    def __init__(self, cfg: ResetConfig, value: Mapping[str, float] | None = None) -> None:
        self.cfg, self.value = cfg, value  # value: each milestone's reward (frontier_weight=reward), else None
        self.starts: list[Entry] = []  # the run's entries where play goes on
        self.steps: dict[Cell, int] = {}  # each cell's entry's steps: a candidate must beat it
        self.uses: dict[Cell, int] = {}  # episodes this env started from each entry

    def set(self, entries: Sequence[Entry]) -> None:
        self.starts = [e for e in entries if not e.terminal]  # where the game ended: no start
        self.steps = {e.cell: e.steps for e in entries}

    def worth_offering(self, candidate: Entry) -> bool:
        """A cell the run lacks, or one reached in fewer steps from power-on."""
        return candidate.steps < self.steps.get(candidate.cell, candidate.steps + 1)

    def draw(self, rng: np.random.Generator) -> Entry | None:
        """A frontier reset's start (None: power-on), drawn with the env's RNG (so resume is exact)."""
        cfg = self.cfg
        if cfg.mode not in ("frontier", "goexplore") or not self.starts or rng.random() < cfg.fresh_share:
            return None
        p = weights(self.starts, self.uses, cfg.frontier_weight, self.value)
        entry = self.starts[int(rng.choice(len(self.starts), p=p))]
        self.uses[entry.cell] = self.uses.get(entry.cell, 0) + 1
        return entry

    def uses_state(self) -> list[list[Any]]:
        return [[list(k), level, cell_map, n] for (k, level, cell_map), n in self.uses.items()]

    def load_uses(self, rows: Iterable[Sequence[Any]]) -> None:
        # [set, n] in snapshots saved before levels split cells (level 0), [set, level, n] before maps did
        self.uses = {(tuple(u[0]), int(u[1]) if len(u) >= 3 else 0, int(u[2]) if len(u) == 4 else -1): int(u[-1])
                     for u in rows}


class RunArchive:
    """The trainer's side of the run's archive: rollouts' candidates in, ranks in step, envs' copies fresh.

    ``pool``: the envs (``call``/``call_at``); ``exchange``: under torchrun, swaps each rank's list of new
    entries for every rank's (None on one process)."""

    def __init__(self, archive: Archive, pool: Any,
                 exchange: Callable[[list[Entry]], list[list[Entry]]] | None = None) -> None:
        self.archive, self.pool, self.exchange = archive, pool, exchange
        self.sent = 0  # the archive version the envs hold
        self.new: list[Entry] = []  # kept since the last exchange between ranks

    def offer(self, entry: Entry) -> None:
        """An env's candidate: kept when its cell is new or reached in fewer steps."""
        if self.archive.offer(entry) and self.exchange is not None:
            self.new.append(entry)

    def started(self, summary: Mapping[str, Any]) -> None:
        """A finished episode: counts a use of the entry it started from."""
        if summary.get("start") == "archive":
            self.archive.count_uses([(tuple(sorted(summary.get("start_milestones", ()))),
                                      int(summary.get("start_level", 0)), int(summary.get("start_map", -1)))])

    def share(self) -> None:
        """At an update boundary: ranks swap their new entries; envs get the archive when it changed."""
        if self.exchange is not None:
            for entries in self.exchange(self.new):
                for entry in entries:
                    self.archive.offer(entry)
            self.new = []
        if self.archive.version != self.sent:
            self.pool.call("set_archive", list(self.archive.entries.values()), replay=True)
            self.sent = self.archive.version

    def swarm(self, share: float, obs: dict[str, np.ndarray], starts: Any) -> list[dict[str, Any]]:
        """A ``share`` of the envs (drawn with numpy's global RNG, which checkpoints keep) ends its episodes, as
        truncations, and starts at the best startable entry: their rows of ``obs`` become the new first
        observations and their ``starts`` flags (a tensor) 1, so the policy's state starts afresh there.
        Returns the ended episodes' summaries."""
        best = self.archive.best(startable=True)
        if best is None:
            return []
        n = self.pool.num_envs
        envs = sorted(int(i) for i in np.random.choice(n, size=max(1, round(share * n)), replace=False))
        summaries, first = zip(*self.pool.call_at("jump", envs, [best] * len(envs)), strict=True)
        for key, rows in obs.items():
            rows[envs] = np.stack([o[key] for o in first])
        starts[envs] = 1.0
        return list(summaries)
