"""tinyquest on the real ROM through PyBoy: boot, WRAM fields, walkthrough, determinism,
random-policy difficulty and byte-identical rebuilds."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ACTION, load_walkthrough, make_tq

ROOT = Path(__file__).resolve().parent.parent
ROM = ROOT / "src" / "pokerl" / "games" / "tinyquest.gb"


wt = load_walkthrough()


@pytest.fixture
def game():
    """A booted game with seed 7 and no ballast (fast)."""
    g = wt.open_game(seed=7, ballast=0)
    yield g
    g.pyboy.stop(save=False)


def here(g) -> tuple[int, int, int]:
    return (g.u8("tq_map"), g.u8("tq_x"), g.u8("tq_y"))


def test_rom_header_and_boot_to_control():
    from pyboy import PyBoy

    rom = ROM.read_bytes()
    assert len(rom) == 32768
    assert rom[0x134:0x13D] == b"TINYQUEST"
    assert rom[0x147] == 0x00 and rom[0x149] == 0x00  # ROM only: no battery, no cartridge RAM
    sym = wt.read_symbols(ROM.with_suffix(".sym"))
    assert sym["tq_map"] == 0xC000 and sym["tq_frame"] == 0xC017 and sym["tq_ballast"] == 0xC016
    pyboy = PyBoy(str(ROM), window="null", sound_emulated=False)
    try:
        pyboy.set_emulation_speed(0)
        pyboy.tick(120, True)
        mem = pyboy.memory
        assert pyboy.cartridge_title == "TINYQUEST"
        assert mem[0xFF26] & 0x80 == 0  # sound off
        assert mem[0xFF40] & 0x80  # LCD on
        assert (mem[0xC000], mem[0xC001], mem[0xC002]) == (0, 9, 9)
        assert mem[0xC004] == 1 and mem[0xC006] == 18 and mem[0xC008] == 18
        assert mem[0xC016] > 0  # ROM default ballast
        frame = mem[0xC017] * 256 + mem[0xC018]
        assert frame > 0  # the game loop is running within 120 frames
        # control within the first 120 frames: a press moves the player
        pyboy.button_press("right")
        pyboy.tick(8, False)
        pyboy.button_release("right")
        pyboy.tick(16, False)
        assert mem[0xC001] == 10
    finally:
        pyboy.stop(save=False)


def test_walking_and_door_change_map(game):
    world = wt.World(game)
    game.press("up")
    assert here(game) == (0, 9, 8) and game.u8("tq_facing") == 1
    game.press("left")
    assert here(game) == (0, 8, 8)
    # east edge of the town leads to Route 1
    assert wt.drive_to(game, world, (0, 19, 7))
    game.press("right")
    assert here(game) == (1, 0, 7)
    # the gym door at (14, 12) of Route 1 leads into gym 1
    assert wt.drive_to(game, world, (1, 14, 13))
    game.press("up")
    assert here(game) == (3, 9, 14)
    game.press("down")  # the gym's exit door
    assert here(game) == (1, 14, 13)


def test_grass_battle_xp_and_level(game):
    world = wt.World(game)
    assert wt.drive_to(game, world, (1, 6, 7))
    toggle = 0
    for _ in range(200):
        if game.u8("tq_in_battle"):
            break
        toggle ^= 1
        game.press("down" if toggle else "up")
    assert game.u8("tq_in_battle") == 1
    assert game.u8("tq_text") == 1 and game.u8("tq_enemy_hp") > 0 and game.u8("tq_enemy_level") >= 1
    game.press("a")  # close "A WILD MONSTER JUMPS OUT!"
    assert game.u8("tq_text") == 0 and game.u8("tq_state") == 2  # move menu
    game.press("down")
    assert game.u8("tq_menu") == 1
    game.press("up")
    hp_before = game.u8("tq_enemy_hp")
    game.press("a")  # HIT
    assert game.u8("tq_text") == 1 and game.u8("tq_enemy_hp") < hp_before
    # fight and heal until level 2
    plan = wt.Plan(level_for_boss1=2)
    for _ in range(3000):
        if game.u8("tq_level") >= 2 and not game.u8("tq_in_battle"):
            break
        game.press(wt.next_button(game, world, plan))
    assert game.u8("tq_level") == 2
    assert game.u16("tq_xp") >= 10
    assert game.u16("tq_max_hp") == 24


def test_heal_pad_restores_hp(game):
    mem, sym = game.pyboy.memory, game.sym
    mem[sym["tq_hp"]], mem[sym["tq_hp"] + 1] = 0, 5
    game.press("right")
    assert game.u16("tq_hp") == 5 and not game.event(4)
    game.press("up")  # onto the heal pad at (10, 8)
    assert here(game) == (0, 10, 8)
    assert game.u16("tq_hp") == game.u16("tq_max_hp") == 18
    assert game.event(4) and game.u8("tq_text") == 1
    game.press("left")  # a text box blocks walking until A closes it
    assert here(game) == (0, 10, 8) and game.u8("tq_text") == 1
    game.press("a")
    assert game.u8("tq_text") == 0
    game.press("left")
    assert here(game) == (0, 9, 8)


def test_frame_counter_and_ballast(game):
    start = game.u16("tq_frame")
    game.tick(240)
    assert game.u16("tq_frame") - start == 240  # no ballast: one game frame per video frame
    game.pyboy.memory[game.sym["tq_ballast"]] = 255  # more busy-wait than a frame holds
    start = game.u16("tq_frame")
    game.tick(240)
    assert 0 < game.u16("tq_frame") - start < 240


def test_blackout_returns_to_heal_spot(game):
    world = wt.World(game)
    assert wt.drive_to(game, world, (1, 6, 7))
    toggle = 0
    for _ in range(600):
        if game.u8("tq_map") == 0:
            break
        if not game.u8("tq_in_battle"):
            toggle ^= 1
            game.press("down" if toggle else "up")
            continue
        if game.u8("tq_state") == 2:  # move menu: leave the player one HP
            game.pyboy.memory[game.sym["tq_hp"]] = 0
            game.pyboy.memory[game.sym["tq_hp"] + 1] = 1
        game.press(wt.battle_or_text_button(game))
    assert game.u8("tq_blackouts") == 1
    assert here(game) == (0, 10, 8)  # the heal spot
    assert game.u8("tq_in_battle") == 0 and game.u8("tq_enemy_hp") == 0
    assert game.u16("tq_hp") == game.u16("tq_max_hp")


def test_key_opens_locked_gate(game):
    world = wt.World(game)
    # without the key the gate stays shut
    assert wt.drive_to(game, world, (0, 9, 1))
    game.press("up")
    assert game.u8("tq_text") == 1 and not game.event(1)
    game.press("a")
    assert here(game) == (0, 9, 1)
    # the key lies in the forest's north-west corner
    assert wt.drive_to(game, world, (2, 2, 1))
    assert game.event(5)  # entered_forest
    game.press("left")
    assert game.event(0) and game.u8("tq_text") == 1
    game.press("a")
    assert wt.drive_to(game, world, (0, 9, 1))
    game.press("up")
    assert game.event(1) and game.u8("tq_text") == 1
    game.press("a")
    game.press("up")
    assert here(game) == (4, 9, 14) and game.event(6)


def test_walkthrough_completes_the_game():
    result = wt.play(seed=1, ballast=0)
    assert result["complete"] is True
    assert result["badges"] == 2
    assert result["maps_visited"] == [0, 1, 2, 3, 4, 5, 6]
    assert result["events"] == list(range(8))
    assert result["level"] >= 7  # boss 2 needs levelling
    assert result["frames"] > 0


def test_same_seed_same_run():
    a = wt.play(seed=5, ballast=0)
    b = wt.play(seed=5, ballast=0)
    assert a == b and a["complete"]


def test_boss2_beats_a_level3_player():
    g = wt.open_game(seed=2, ballast=0)
    try:
        world = wt.World(g)
        plan = wt.Plan(level_for_boss1=3, level_for_boss2=3)
        for _ in range(5000):
            idle = not g.u8("tq_in_battle") and not g.u8("tq_text")
            if idle and here(g) == (5, 9, 3):
                break
            g.press(wt.next_button(g, world, plan))
        assert here(g) == (5, 9, 3) and g.u8("tq_badges") == 1
        # the game reads level and HP from WRAM: make this a fresh level-3 player
        mem, sym = g.pyboy.memory, g.sym
        mem[sym["tq_level"]] = 3
        for field in ("tq_hp", "tq_max_hp"):
            mem[sym[field]], mem[sym[field] + 1] = 0, 30
        blackouts = g.u8("tq_blackouts")
        g.press("up")  # talk to the leader
        for _ in range(300):
            if g.u8("tq_in_battle") == 2 or not g.u8("tq_text"):
                break
            g.press("a")
        assert g.u8("tq_in_battle") == 2
        for _ in range(300):
            if not g.u8("tq_in_battle"):
                break
            g.press(wt.battle_or_text_button(g))
        assert g.u8("tq_blackouts") == blackouts + 1
        assert g.u8("tq_badges") == 1 and here(g) == (0, 10, 8)
    finally:
        g.pyboy.stop(save=False)


def test_random_policy_reaches_no_badge():
    g = wt.open_game(seed=1234, ballast=0)
    try:
        rng = random.Random(1234)
        buttons = ["down", "left", "right", "up", "a", "b"]
        pyboy = g.pyboy
        for _ in range(20000):
            b = buttons[rng.randrange(6)]
            pyboy.button_press(b)
            pyboy.tick(8, False)
            pyboy.button_release(b)
            pyboy.tick(16, False)
        assert g.u8("tq_badges") == 0
        assert g.u16("tq_frame") > 0
    finally:
        pyboy.stop(save=False)


def test_build_check_is_byte_identical():
    if shutil.which("sdcc") is None:
        pytest.skip("sdcc is not installed (apt-get install sdcc)")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_tinyquest.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr


def test_the_walkthrough_in_the_env_is_paid_every_milestone_once_in_game_order():
    """configs/reward/tinyquest.yaml's milestones are all reachable in play, each paid once, in the order
    a player meets them: a predicate that never holds, or holds early, shows here."""
    env = make_tq(max_steps=5000)
    try:
        env.reset(seed=1)
        game = wt.Game(env.session.pyboy, wt.read_symbols(ROM.with_suffix(".sym")))
        world = wt.World(game)
        order, paid, terminated = [], 0.0, False
        while not terminated:
            _, _, terminated, truncated, info = env.step(ACTION[wt.next_button(game, world)])
            assert not truncated, info["milestones"]
            order += [m for m in info["milestones"] if m not in order]
            paid += info["reward_terms"]["milestones"]
        rewards = {m.name: m.reward for m in env.rewards.milestones}
        assert order == ["route1", "gym1", "leader1", "badge1", "forest", "got_key", "door_opened", "route2",
                         "gym2", "leader2", "badge2", "final_room", "complete"]
        assert sorted(order) == sorted(rewards) and paid == pytest.approx(sum(rewards.values()))
    finally:
        env.close()
