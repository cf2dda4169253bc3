"""A chain: an archive entry's trajectory replayed from power-on, with the emulator state every K steps.

It is where a backward curriculum starts episodes (issue 35): the states along one way the run's own
exploration found from power-on to a milestone. :func:`make_chain` replays the entry's trajectory on
the real emulator (:meth:`pokerl.env.GameBoyEnv.replay`) and checks it against the archive's record:
each milestone must be reached at the env step the entry says, and the last state must be the
archived one; a replay that leaves the record is a one-line :class:`ChainError` naming the step. A
chain file is a plain dict (``torch.load(..., weights_only=True)``), written atomically and versioned
with the checkpoints' schema.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pokerl.archive import Entry, Trajectory
from pokerl.atomic import write_atomically
from pokerl.checkpoint import SCHEMA
from pokerl.errors import PokerlError

if TYPE_CHECKING:  # the env imports the backward curriculum, which reads chains
    from pokerl.env import GameBoyEnv


class ChainError(PokerlError):
    """A replay that left the archive's record, or a chain file that cannot be used."""


@dataclass
class Point:
    """The chain at one env step from power-on: the emulator state and what is held there."""

    step: int
    state: bytes  # zlib-compressed PyBoy state (as archived states)
    milestones: tuple[str, ...]  # held, sorted
    level: int  # the reward's level sum, capped


@dataclass
class Chain:
    """The trajectory to an archived state and its points every ``every`` steps (step 0: power-on)."""

    game: str
    trajectory: Trajectory
    every: int
    points: list[Point]
    milestone_steps: dict[str, int]  # each milestone's env step from power-on, as replayed
    # The boot writes it was replayed with (tinyquest's ballast changes its frames' timing, so its way): a
    # run must write the same. Empty in a chain file saved before they were recorded.
    writes: dict[str, int] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return sum(len(actions) for _, actions in self.trajectory)

    @property
    def end(self) -> Point:
        return self.points[-1]

    def as_dict(self) -> dict[str, Any]:
        # The states as one uint8 tensor, not a list of bytes: torch.save pickles bytes with protocol 2, as
        # latin-1 text, where every byte over 127 takes two (tinyquest's chain to complete: 2.60 MB that way,
        # 1.72 MB as a tensor), and weights_only loads refuse the protocols that store bytes as they are.
        return {"schema": SCHEMA, "game": self.game, "every": self.every,
                "trajectory": [[seed, actions] for seed, actions in self.trajectory],
                "states": torch.frombuffer(bytearray(b"".join(p.state for p in self.points)), dtype=torch.uint8),
                "points": [[p.step, len(p.state), list(p.milestones), p.level] for p in self.points],
                "milestone_steps": dict(self.milestone_steps), "writes": dict(self.writes)}

    @staticmethod
    def from_dict(data: Mapping[str, Any], source: str) -> Chain:
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            schema = data.get("schema") if isinstance(data, Mapping) else None
            raise ChainError(f"{source}: chain schema {schema} is not this pokerl's ({SCHEMA}): make it again "
                             "with pokerl-chain")
        try:
            states = data["states"].numpy().tobytes()
            points, at = [], 0
            for step, size, held, level in data["points"]:
                points.append(Point(int(step), states[at:at + size], tuple(held), int(level)))
                at += size
            if at != len(states):
                raise ValueError(f"the points hold {at:,} bytes of states, the file {len(states):,}")
            return Chain(str(data["game"]), tuple((int(s), bytes(a)) for s, a in data["trajectory"]),
                         int(data["every"]), points, {str(k): int(v) for k, v in data["milestone_steps"].items()},
                         {str(k): int(v) for k, v in data.get("writes", {}).items()})
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ChainError(f"{source}: not a pokerl chain ({type(err).__name__}: {err})") from None


def make_chain(env: GameBoyEnv, entry: Entry, every: int = 32) -> Chain:
    """Replay ``entry``'s trajectory from power-on on ``env`` (the run's game, rewards and writes);
    keep a point every ``every`` steps and at the end. :class:`ChainError` where the replay leaves the
    entry's record: a milestone reached at another step, or the end not the archived state."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if not entry.trajectory:
        raise ChainError(f"archived state {'+'.join(entry.milestones) or 'start'} has no trajectory (saved before "
                         "lineage, or found from such a state): train with this pokerl to find one")
    env.reset(seed=0)
    points = [take_point(env, 0, ())]
    held: tuple[str, ...] = ()
    reached: dict[str, int] = {}
    step = 0
    for segment, i, info in env.replay(entry.trajectory):
        step += 1
        now = tuple(sorted({*held, *info["milestones"]}))
        for name in now:
            if name not in reached:
                reached[name] = step
                recorded = entry.milestone_steps.get(name)
                if recorded != step:
                    where = "is not in the record" if recorded is None else f"was recorded at step {recorded:,}"
                    raise ChainError(f"the replay diverged at step {step:,}: milestone {name} was reached there and "
                                     f"{where}")
        late = sorted(name for name, at in entry.milestone_steps.items() if at == step and name not in now)
        if late:
            raise ChainError(f"the replay diverged at step {step:,}: {', '.join(late)} recorded there, not held")
        if i == len(entry.trajectory[segment][1]) - 1:  # the segment's end: the next starts holding these
            held = now
        if step % every == 0 or step == entry.steps:
            points.append(take_point(env, step, now))
    missing = sorted(set(entry.milestones) - set(points[-1].milestones))
    if missing:
        raise ChainError(f"the replay diverged by step {step:,}: it ends without {', '.join(missing)}, which the "
                         "archived state holds")
    if zlib.decompress(points[-1].state) != zlib.decompress(entry.state):
        raise ChainError(f"the replay diverged by step {step:,}: its last state is not the archived one")
    return Chain(env.profile.name, entry.trajectory, every, points, reached, dict(env.writes))


def take_point(env: GameBoyEnv, step: int, held: tuple[str, ...]) -> Point:
    ram = env.profile.read_ram(env.session.memory)
    return Point(step, zlib.compress(zlib.decompress(env.session.save_state()), 9), held,
                 env.rewards.capped_level(ram))


def save_chain(path: str | os.PathLike[str], chain: Chain) -> Path:
    """Write ``chain`` atomically."""
    return write_atomically(path, lambda f: torch.save(chain.as_dict(), f))


def load_chain(path: str | os.PathLike[str]) -> Chain:
    """Load a chain file safely (``weights_only``); one-line :class:`ChainError` when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ChainError(f"chain file not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise ChainError(f"{path} is not a readable chain file ({type(err).__name__}); make it again with "
                         "pokerl-chain") from None
    return Chain.from_dict(data, str(path))
