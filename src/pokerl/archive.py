"""The milestone state archive: one saved game state per set of milestones held, the fewest steps in.

When an env first holds a set of milestones the archive lacks (those held at its episode's start
plus those reached since), or holds a known set in fewer env steps from power-on, its emulator
state becomes that set's entry. Envs then start episodes from entries (``reset.mode=frontier``:
sampled, weighted toward the largest sets and the least used entries) or jump to the best one
(``swarm``), so progress one env made is shared by all: the idea behind the swarm of the agent that
beat Pokémon Red (pokemonred_puffer). States where the episode ends or the player is busy (battle,
text) are not archived: the env waits for the next free step.

The archive is bounded (``archive.max_states``). Eviction: the best entry (the largest set) is never
evicted; otherwise the most used entry of the set size that has the most entries goes first, so
each stage of the game keeps some states. It is saved in every checkpoint (plain types) and
restored exactly; an entry whose state is corrupt is skipped with a one-line warning.
"""

from __future__ import annotations

import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Key = tuple[str, ...]  # a milestone set, sorted


@dataclass
class Entry:
    """One archived state: the milestones held there and what it took to get there."""

    key: Key  # the milestones held, sorted
    state: bytes  # the emulator state (zlib-compressed PyBoy state)
    steps: int  # env steps from power-on that led here
    milestone_steps: dict[str, int]  # each held milestone's env step from power-on
    rng: int = 0  # the game's RNG field when it was saved (0 when the profile names none)
    time: float = 0.0  # wall-clock time (s since the epoch) it was saved at
    uses: int = 0  # episodes started from it

    def as_dict(self) -> dict[str, Any]:
        return {"key": list(self.key), "state": self.state, "steps": self.steps,
                "milestone_steps": dict(self.milestone_steps), "rng": self.rng, "time": self.time, "uses": self.uses}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Entry:
        return Entry(tuple(data["key"]), bytes(data["state"]), int(data["steps"]),
                     {str(k): int(v) for k, v in data["milestone_steps"].items()}, int(data["rng"]),
                     float(data["time"]), int(data["uses"]))


@dataclass
class ResetConfig:
    """``reset:`` in ``configs/train.yaml``: where episodes start."""

    mode: str = "fresh"  # fresh: power-on | frontier: sampled archive entries | swarm: jumps to the best
    fresh_share: float = 0.25  # frontier: the share of resets that start from power-on all the same
    swarm_every: int = 10  # swarm: updates between jumps
    swarm_share: float = 0.25  # swarm: the share of envs that jump to the best entry

    def __post_init__(self) -> None:
        if self.mode not in ("fresh", "frontier", "swarm"):
            raise ValueError(f"mode: expected fresh, frontier or swarm, got {self.mode!r}")
        if not (0.0 <= self.fresh_share <= 1.0 and 0.0 <= self.swarm_share <= 1.0):
            raise ValueError("fresh_share and swarm_share must lie in [0, 1]")
        if self.swarm_every < 1:
            raise ValueError(f"swarm_every: must be >= 1, got {self.swarm_every}")


@dataclass
class ArchiveConfig:
    """``archive:`` in ``configs/train.yaml``."""

    max_states: int = 64  # entries kept (0: no archive)

    def __post_init__(self) -> None:
        if self.max_states < 0:
            raise ValueError(f"max_states: must be >= 0, got {self.max_states}")


def better(new: Entry, old: Entry | None) -> bool:
    """Does ``new`` replace ``old`` (the entry for the same set, if any)? Fewer steps win."""
    return old is None or new.steps < old.steps


def weights(entries: Sequence[Entry], uses: Mapping[Key, int]) -> np.ndarray:
    """Sampling weights for frontier resets: doubled per milestone in the set (the frontier first),
    divided by 1 + the times this env started from the entry (the least used first)."""
    sizes = np.array([len(e.key) for e in entries], np.float64)
    w = 2.0 ** (sizes - sizes.max()) / (1.0 + np.array([uses.get(e.key, 0) for e in entries], np.float64))
    return w / w.sum()


@dataclass
class Archive:
    """Entries by milestone set; see the module docstring."""

    max_states: int = 64
    entries: dict[Key, Entry] = field(default_factory=dict)
    version: int = 0  # counts changes, so copies elsewhere know when to refresh

    def offer(self, entry: Entry) -> bool:
        """Add or replace ``entry``'s set if it is new or reached in fewer steps; True when kept."""
        if not better(entry, self.entries.get(entry.key)):
            return False
        old = self.entries.get(entry.key)
        entry.uses = old.uses if old is not None else 0
        self.entries[entry.key] = entry
        while len(self.entries) > self.max_states:
            self._evict()
        self.version += 1
        return entry.key in self.entries

    def _evict(self) -> None:
        best = self.best()
        by_size = Counter(len(k) for k in self.entries if best is None or k != best.key)
        size = max(by_size, key=lambda s: (by_size[s], -s))  # the fullest bucket; the smaller sets first
        victims = [e for k, e in self.entries.items() if len(k) == size and (best is None or k != best.key)]
        del self.entries[max(victims, key=lambda e: (e.uses, e.steps)).key]

    def best(self) -> Entry | None:
        """The entry with the most milestones (fewest steps among equals)."""
        return min(self.entries.values(), key=lambda e: (-len(e.key), e.steps), default=None)

    def for_milestone(self, name: str) -> Entry | None:
        """The entry holding ``name`` reached in the fewest steps (``--from-milestone``)."""
        return min((e for e in self.entries.values() if name in e.key), key=lambda e: e.steps, default=None)

    def count_uses(self, started: Iterable[Key]) -> None:
        for key in started:
            if key in self.entries:
                self.entries[key].uses += 1

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
                warnings.warn(f"pokerl: {source}: archive entry {'+'.join(entry.key) or 'start'} has a corrupt "
                              "state: skipped", stacklevel=2)
                continue
            self.entries[entry.key] = entry
        self.version = int(data.get("version", 0))
