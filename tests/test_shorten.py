"""Loop erasure on a chain (``pokerl-chain --shorten``) on the real ROM: the loops go, waits in a battle go
too, the short chain ends where the long one did, and a cut that does not give the RNG back is caught and
put back.

The long chain here is the scripted walkthrough's first 400 steps (town, Route 1's grass and its wild
battles) with a loop put in while the player is still in the town: 24 steps walking left and right. After
the loop the grass starts its battles on the game's RNG, which ticks every frame, so a cut must give the
RNG back for the short chain to meet the same battles.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import ACTION, load_walkthrough, make_tq
from pokerl import shorten as shorten_module
from pokerl.archive import Trajectory
from pokerl.chain import Chain, Point
from pokerl.env import GameBoyEnv
from pokerl.shorten import shorten

STEPS, LOOP_AT, LOOP = 400, 4, 12  # the loop: LOOP times left then right, after the walkthrough's 4th step
WAIT = 6  # presses of a button that does nothing in the walkthrough's first battle menu


@pytest.fixture(scope="module")
def walkthrough() -> tuple[int, bytes, int, int]:
    """The walkthrough's first STEPS steps (its seed and actions), the first step that waits in a battle
    menu, and a button that does nothing there (the game stands as it stood, its RNG aside)."""
    wt = load_walkthrough()
    env = make_tq()
    try:
        env.reset(seed=1)
        game = wt.Game(env.session.pyboy, wt.read_symbols(wt.ROM.with_suffix(".sym")))
        world = wt.World(game)
        actions, wait = bytearray(), None
        for _ in range(STEPS):
            button = ACTION[wt.next_button(game, world)]
            if wait is None and env.profile.read_ram(env.session.memory)["in_battle"]:
                wait = next(((len(actions), b) for b in range(len(ACTION)) if b != button and _no_op(env, b)), None)
            actions.append(button)
            env.step(button)
    finally:
        env.close()
    assert wait is not None
    return env._seed_written, bytes(actions), *wait


def _no_op(env: GameBoyEnv, button: int) -> bool:
    """Whether ``button`` leaves the game as it stands (the RNG aside): tried on a saved state, put back."""
    saved = env.session.save_state()
    before = shorten_module._key(env, set())[0]
    env._press(button)
    after = shorten_module._key(env, set())[0]
    env.session.load_state(saved)
    return after == before


@pytest.fixture(scope="module")
def loopy(walkthrough: tuple[int, bytes, int, int]) -> Chain:
    """The walkthrough's first STEPS steps, with the loop put in, as a chain (its end and what it holds)."""
    seed, actions, _, _ = walkthrough
    loop = bytes([ACTION["left"], ACTION["right"]] * LOOP)
    return as_chain(((seed, actions[:LOOP_AT] + loop + actions[LOOP_AT:]),))


def as_chain(trajectory: Trajectory) -> Chain:
    """A chain of ``trajectory`` with only its end as a point (what :func:`shorten` reads)."""
    env = make_tq()
    try:
        env.reset(seed=0)
        held: set[str] = set()
        for _, _, info in env.replay(trajectory):
            held.update(info["milestones"])
        end = Point(sum(len(a) for _, a in trajectory), env.session.save_state(), tuple(sorted(held)), 0)
    finally:
        env.close()
    return Chain("tinyquest", trajectory, 32, [end], {})


@pytest.fixture
def env() -> Iterator[GameBoyEnv]:
    env = make_tq()
    yield env
    env.close()


def replayed(env: GameBoyEnv, trajectory: Trajectory) -> tuple[list[dict[str, int]], bytes]:
    """Every step's RAM fields (the RNG left out) and the last screen."""
    env.reset(seed=0)
    rams = []
    for _ in env.replay(trajectory):
        ram = env.profile.read_ram(env.session.memory)
        rams.append({k: int(v) for k, v in ram.items() if k != "rng"})
    return rams, env.session.gray_half().tobytes()


def test_the_loops_go_and_the_short_chain_ends_where_the_long_one_did(loopy: Chain, env: GameBoyEnv) -> None:
    long_rams, long_screen = replayed(env, loopy.trajectory)
    assert any(r["in_battle"] for r in long_rams[LOOP_AT + 2 * LOOP:])  # the grass's battles came after the loop
    short, put_back = shorten(env, loopy)
    assert short.steps <= loopy.steps - 2 * LOOP + 2 and put_back == 0
    short_rams, short_screen = replayed(env, short.trajectory)
    assert short_rams[-1] == long_rams[-1] and short_screen == long_screen
    assert short.end.milestones == loopy.end.milestones and "route1" in short.end.milestones
    assert [p.step for p in short.points] == [*range(0, short.steps, 32), short.steps]
    # every state of the short chain is one of the long chain's, in the long chain's order
    at = 0
    for ram in short_rams:
        at = long_rams.index(ram, at)


def test_a_cut_that_does_not_give_the_rng_back_is_caught_and_put_back(
        loopy: Chain, env: GameBoyEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeds that leave the RNG a frame ahead after every cut: the grass's battles would come elsewhere, so the
    replay's check puts cuts back until the way holds, and the chain still ends where the long one did."""
    long_rams, long_screen = replayed(env, loopy.trajectory)
    monkeypatch.setattr(shorten_module, "_predecessors", lambda _env: {v: v for v in range(1 << 16)})
    short, put_back = shorten(env, loopy)
    assert put_back >= 1 and short.steps < loopy.steps
    short_rams, short_screen = replayed(env, short.trajectory)
    assert short_rams[-1] == long_rams[-1] and short_screen == long_screen


def test_a_wait_in_a_battle_menu_goes(walkthrough: tuple[int, bytes, int, int], env: GameBoyEnv) -> None:
    """A button that does nothing in a battle menu (a busy state), pressed WAIT times there, leaves the game
    as it stood but for the RNG: each press is a loop of one step. They go, the cuts give the RNG back, and
    the battle and the rest go on as the walkthrough's did."""
    seed, actions, at, button = walkthrough
    waity = as_chain(((seed, actions[:at] + bytes([button]) * WAIT + actions[at:]),))
    long_rams, long_screen = replayed(env, waity.trajectory)
    assert long_rams[at]["in_battle"] and long_rams[at + WAIT - 1] == long_rams[at]  # stood still, WAIT steps
    short, put_back = shorten(env, waity)
    assert short.steps <= waity.steps - WAIT and put_back == 0
    keys, _, _ = shorten_module._walk(env, short.trajectory)
    assert len(set(keys)) == len(keys)  # no state twice: no wait left, the walkthrough's own neither
    short_rams, short_screen = replayed(env, short.trajectory)
    assert short_rams[-1] == long_rams[-1] and short_screen == long_screen
    assert short.end.milestones == waity.end.milestones
