"""Shortening a chain by loop erasure: where its way comes back to a state it stood in, the steps between go.

Exploration finds its way to the game's end with detours: the chain pokerl's goexplore run found to
tinyquest's end took 16,813 steps where the walkthrough takes 765, and a backward curriculum has to walk
every one of them back (issue 35). Its loops erased, it takes 1,716 (the committed chain).
:func:`shorten` replays the chain from power-on and keys each step's state by what the game shows and
holds: every profile RAM field but the RNG (the ``boot.seed_field``), the screen and the milestones held.
Wherever the replay stands again in a state it stood in before, the loop between the two goes (a
loop-erased walk: the first visit kept, the way on from the last). Busy states count as any other: a text
box or a battle menu waiting while the run pressed buttons that do nothing there stands still (the RNG
aside), and each such press is a loop of one step. Erasing loops in free steps only took the found chain
to 4,254 steps, 2,456 of them such waits (a text box or a battle menu as it stood the step before); busy
states closing loops too, 1,716 steps.

What the key leaves out must not change the way on. The frame and step counters do not; the RNG does, as
it ticks every frame: a cut starts a new segment (a new episode in the chain's trajectory, as the chain's
run began each of its own) whose seed makes the RNG, after the frame a segment's start runs, what it was
where the loop ended. That seed comes from a table of the RNG field's values over idle frames: the game's
RNG must step by itself there (tinyquest's xorshift ticks once a frame). The short chain is then replayed
from power-on like any other, and every step must stand in the state the long chain stood in (its key).
Where one does not, what the key missed changed the way on (tinyquest's facing is in no profile field: A on
the north gate opens it only facing up), and the latest cut before that step is put back; the replay is
tried again until it holds (each cut put back at most once). On the 16,813-step chain one of 450 cuts was
put back (loops closed in free steps only, as it was then); keying on the facing as well kept 4,640
steps, not 4,254.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import TYPE_CHECKING

import numpy as np

from pokerl.archive import Trajectory
from pokerl.chain import Chain, ChainError, take_point

if TYPE_CHECKING:
    from pokerl.env import GameBoyEnv


def shorten(env: GameBoyEnv, chain: Chain) -> tuple[Chain, int]:
    """``chain`` with its loops erased, replayed on ``env`` (the chain's game and boot writes); and how many
    cuts were put back because the way left the long chain's after them (what the key does not show, or a
    seed that did not give the RNG back)."""
    keys, rngs, held = _walk(env, chain.trajectory)
    missing = sorted(set(chain.end.milestones) - held)
    if missing:
        raise ChainError(f"the chain's replay on this env ends without {', '.join(missing)}: shorten it with the "
                         "config of the run that found it (its boot writes included)")
    seeds = _predecessors(env)
    kept: set[int] = set()  # states where a loop may not end: cutting there left the way
    while True:
        path = _erase_loops(keys, kept)
        trajectory = _splice(chain.game, chain.trajectory, path, rngs, seeds)
        left = _replay_checked(env, trajectory, [keys[first] for first, _ in path])
        if left is None:
            return _as_chain(env, trajectory, chain.every), len(kept)
        cuts = [last for first, last in path[:left] if first != last]
        if not cuts:
            raise ChainError(f"the chain's replay on this env is not the same twice (step {left:,})")
        kept.add(cuts[-1])  # the latest cut before the step: put it back and try again


def _walk(env: GameBoyEnv, trajectory: Trajectory) -> tuple[list[bytes], list[int], set[str]]:
    """Each state from power-on (0, as the first segment began it) to the end: its key and the RNG field's
    value; and the milestones held at the end."""
    held: set[str] = set()
    env.reset(seed=0)
    env._begin(None, env._boot_state, (), trajectory[0][0])
    keys, rngs = [], []
    for info in itertools.chain([None], (info for _, _, info in env.replay(trajectory))):
        if info is not None:
            held.update(info["milestones"])
        key, rng = _key(env, held)
        keys.append(key)
        rngs.append(rng)
    return keys, rngs, held


def _key(env: GameBoyEnv, held: set[str]) -> tuple[bytes, int]:
    """What the state shows and holds (every RAM field but the RNG, the screen, the milestones held)."""
    profile = env.profile
    ram = profile.read_ram(env.session.memory)
    seed_field = profile.boot.seed_field
    fields = [(name, int(value)) for name, value in ram.items() if name != seed_field]
    digest = hashlib.sha1(repr((fields, sorted(held))).encode())
    digest.update(env.session.gray_half().tobytes())
    return digest.digest(), int(ram[seed_field]) if seed_field else 0


def _erase_loops(keys: list[bytes], kept: set[int]) -> list[tuple[int, int]]:
    """The loop-erased walk over the states: (first visit, last visit) of each state kept, in order.
    The states in ``kept`` close no loop."""
    path: list[tuple[int, int]] = []
    where: dict[bytes, int] = {}
    for k, key in enumerate(keys):
        at = where.get(key) if k not in kept else None
        if at is None:
            where[key] = len(path)
            path.append((k, k))
            continue
        for dropped, _ in path[at + 1:]:
            where.pop(keys[dropped], None)
        del path[at + 1:]
        path[at] = (path[at][0], k)
    return path


def _segment_starts(trajectory: Trajectory) -> dict[int, int]:
    """The state where each segment after the first begins -> the seed its run wrote there."""
    ends = np.cumsum([len(actions) for _, actions in trajectory])
    return {int(end): seed for end, (seed, _) in zip(ends[:-1], trajectory[1:], strict=True)}


def _predecessors(env: GameBoyEnv) -> dict[int, int]:
    """Each value of the RNG field -> the seed whose idle frame makes the field that value: read off the field
    over idle frames from power-on until it comes round again (a segment's start writes its seed, then runs
    one frame). Empty where the profile names no RNG field."""
    seed_field = env.profile.boot.seed_field
    if seed_field is None:
        return {}
    env.session.load_state(env._boot_state)
    read = env.profile.read_ram
    first = before = int(read(env.session.memory)[seed_field])
    found: dict[int, int] = {}
    for _ in range(1 << 17):
        env.session.tick(1, False)
        now = int(read(env.session.memory)[seed_field])
        found[now] = before
        if now == first:
            break
        before = now
    return found


def _splice(game: str, trajectory: Trajectory, path: list[tuple[int, int]], rngs: list[int],
            seeds: dict[int, int]) -> Trajectory:
    """The actions from each kept state to the next, a new segment wherever a loop went (its seed from
    ``seeds``) or the chain's run began one (its own seed)."""
    actions = b"".join(segment for _, segment in trajectory)
    starts = _segment_starts(trajectory)
    out: list[tuple[int, bytearray]] = [(trajectory[0][0], bytearray())]
    for first, last in path[:-1]:
        if last in starts:
            out.append((starts[last], bytearray()))
        elif first != last:
            if rngs[last] not in seeds:
                raise ChainError(f"{game}'s RNG did not come to {rngs[last]} over idle frames: it does not step "
                                 "by itself, so a cut cannot give it back")
            out.append((seeds[rngs[last]], bytearray()))
        out[-1][1].append(actions[last])
    return tuple((seed, bytes(segment)) for seed, segment in out if segment)


def _replay_checked(env: GameBoyEnv, trajectory: Trajectory, want: list[bytes]) -> int | None:
    """Replay the short chain from power-on: the first step not in the long chain's state there (``want``,
    by key), or None."""
    env.reset(seed=0)
    held: set[str] = set()
    for step, (_, _, info) in enumerate(env.replay(trajectory), start=1):
        held.update(info["milestones"])
        if _key(env, held)[0] != want[step]:
            return step
    return None


def _as_chain(env: GameBoyEnv, trajectory: Trajectory, every: int) -> Chain:
    """The short chain's points every ``every`` steps and at its end, replayed from power-on."""
    env.reset(seed=0)
    points = [take_point(env, 0, ())]
    held: set[str] = set()
    reached: dict[str, int] = {}
    steps = sum(len(actions) for _, actions in trajectory)
    for step, (_, _, info) in enumerate(env.replay(trajectory), start=1):
        for name in info["milestones"]:
            reached.setdefault(name, step)
        held.update(info["milestones"])
        if step % every == 0 or step == steps:
            points.append(take_point(env, step, tuple(sorted(held))))
    return Chain(env.profile.name, trajectory, every, points, reached, dict(env.writes))
