"""Each reward term fires in a scripted scenario on the real ROM, driven through GameBoyEnv.step.

Level-ups, heals and blackouts are done by the ROM's own logic; the tests only write WRAM to set up
a situation (XP just under a threshold, low HP) as the README allows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import (
    ROOT,
    TQ_HP,
    TQ_LEVEL,
    TQ_PROFILE,
    TQ_STATE,
    TQ_XP,
    battle_button,
    make_tq,
    one_line,
    position,
    press,
    walk_route1_to_grass,
    walk_town_to_route1,
    write_u16,
)
from pokerl.env import GameBoyEnv
from pokerl.errors import ConfigError
from pokerl.predicate import Predicate
from pokerl.profile import load_profile
from pokerl.ram import Flags
from pokerl.rewards import RewardTracker, load_reward

REWARD_YAML = ROOT / "configs" / "reward" / "tinyquest.yaml"


def grind(env: GameBoyEnv, until: Callable[[dict[str, Any]], bool], max_steps: int = 1500,
          on_menu: Callable[[GameBoyEnv], None] | None = None) -> list[dict[str, Any]]:
    """Walk up and down on Route 1's grass at (5, 7)/(5, 8), fighting every battle with HIT.

    Stops when ``until(info)`` holds; ``on_menu`` runs whenever the battle move menu is open.
    Returns every step's info.
    """
    infos: list[dict[str, Any]] = []
    toggle = 0
    for _ in range(max_steps):
        button = battle_button(env)
        if button is None:
            toggle ^= 1
            button = "up" if toggle else "down"
        elif on_menu is not None and env.session.memory[TQ_STATE] == 2:
            on_menu(env)
        _, info = press(env, button)
        infos.append(info)
        if until(info):
            return infos
    raise AssertionError(f"condition not reached in {max_steps} steps")


def test_exploration_pays_each_new_tile_once(tq_env: GameBoyEnv) -> None:
    reward, info = press(tq_env, "right")
    assert (info["x"], info["y"]) == (10, 9)
    assert info["reward_terms"]["exploration"] == pytest.approx(0.02)
    _, info = press(tq_env, "left")  # back to the start tile: already visited at reset
    assert info["reward_terms"]["exploration"] == 0.0
    _, info = press(tq_env, "right")  # (10, 9) again
    assert info["reward_terms"]["exploration"] == 0.0


def test_milestone_paid_once_per_episode(tq_env: GameBoyEnv) -> None:
    steps = walk_town_to_route1(tq_env)
    reward, info = steps[-1]
    assert position(tq_env) == (1, 0, 8)
    assert info["reward_terms"]["milestones"] == pytest.approx(0.5)
    assert info["milestones"] == ["route1"]
    assert sum(i["reward_terms"]["milestones"] for _, i in steps) == pytest.approx(0.5)
    # back to town and in again: not paid a second time
    _, info = press(tq_env, "left")
    assert info["map_id"] == 0
    _, info = press(tq_env, "right")
    assert info["map_id"] == 1
    assert info["reward_terms"]["milestones"] == 0.0
    assert info["milestones"] == ["route1"]
    # a new episode pays it again
    tq_env.reset(seed=7)
    steps = walk_town_to_route1(tq_env)
    assert steps[-1][1]["reward_terms"]["milestones"] == pytest.approx(0.5)


def test_level_up_by_winning_a_battle(tq_env: GameBoyEnv) -> None:
    walk_town_to_route1(tq_env)
    walk_route1_to_grass(tq_env)
    write_u16(tq_env, TQ_XP, 9)  # level 2 at 10 XP; any win gives >= 6

    def full_hp(env: GameBoyEnv) -> None:  # so the level-1 player never faints
        write_u16(env, TQ_HP, 18)

    infos = grind(tq_env, lambda i: i["level"] == 2, on_menu=full_hp)
    last = infos[-1]
    assert last["reward_terms"]["level"] == pytest.approx(0.5)
    assert last["xp"] >= 10 and last["max_hp"] == 24  # the ROM's level-up: max HP 12 + 6L
    assert sum(i["reward_terms"]["level"] for i in infos) == pytest.approx(0.5)
    assert last["reward_terms"]["heal"] == 0.0  # HP rising with a level-up is not healing


def level_up_from_power_on(env: GameBoyEnv, level: int = 2) -> list[dict[str, Any]]:
    """Walk to Route 1's grass with XP one short of ``level`` and fight at full HP until reaching it."""
    env.reset(seed=3)
    walk_town_to_route1(env)
    walk_route1_to_grass(env)
    write_u16(env, TQ_XP, 9)
    return grind(env, lambda i: i["level"] == level, on_menu=lambda e: write_u16(e, TQ_HP, 18))


@pytest.mark.parametrize(("cap", "paid"), [(1, 0.0), (2, 0.5)])
def test_level_cap_stops_paying_levels_above_it(cap: int, paid: float) -> None:
    env = make_tq(reward={"name": "capped", "level": {"weight": 0.5, "fields": ["level"], "cap": cap}})
    try:
        infos = level_up_from_power_on(env)
        assert infos[-1]["level"] == 2  # the ROM levelled up: level 2 pays only under a cap of 2 or more
        assert sum(i["reward_terms"]["level"] for i in infos) == pytest.approx(paid)
    finally:
        env.close()


def test_a_level_lost_and_regained_is_not_paid_again() -> None:
    """Only new highs of the level sum pay (in Pokémon a party member deposited and withdrawn
    lowers and raises it); here the level is written down, as a deposit would lower the sum."""
    env = make_tq(reward={"name": "levels", "level": {"weight": 0.5, "fields": ["level"]}})
    try:
        infos = level_up_from_power_on(env)
        assert sum(i["reward_terms"]["level"] for i in infos) == pytest.approx(0.5)
        while battle_button(env) is not None:  # finish the battle's text before changing RAM
            press(env, battle_button(env))
        env.unwrapped.session.memory[TQ_LEVEL] = 1
        write_u16(env, TQ_XP, 9)
        infos = grind(env, lambda i: i["level"] == 2, on_menu=lambda e: write_u16(e, TQ_HP, 18))
        assert infos[-1]["level"] == 2 and sum(i["reward_terms"]["level"] for i in infos) == 0.0
        write_u16(env, TQ_XP, 29)  # level 3 at 30 XP: a new high pays again
        infos = grind(env, lambda i: i["level"] == 3, on_menu=lambda e: write_u16(e, TQ_HP, 24))
        assert sum(i["reward_terms"]["level"] for i in infos) == pytest.approx(0.5)
    finally:
        env.close()


def test_heal_is_the_party_hp_fraction_and_reordering_the_party_pays_nothing() -> None:
    """Pokémon's heal sums the party's slots (tinyquest has one, so RAM snapshots stand in for a
    party): a switch moves HP between slots and pays nothing, a new member is not a heal, a
    Pokémon Center is."""
    fields = ["hp1", "hp2", "max_hp1", "max_hp2", "in_battle"]
    cfg = load_reward({"heal": {"weight": 1.0, "hp": ["hp1", "hp2"], "max_hp": ["max_hp1", "max_hp2"],
                                "in_battle": "in_battle"}}, fields)
    tracker = RewardTracker(cfg)

    def ram(hp1: int, hp2: int, max1: int, max2: int) -> dict[str, int]:
        return {"hp1": hp1, "hp2": hp2, "max_hp1": max1, "max_hp2": max2, "in_battle": 0}

    tracker.reset(ram(5, 0, 20, 0))
    assert tracker.step(ram(5, 30, 20, 30), False, False, False)["heal"] == 0.0  # caught: a new member
    assert tracker.step(ram(30, 5, 30, 20), False, False, False)["heal"] == 0.0  # the healthy one put first
    assert tracker.step(ram(30, 20, 30, 20), False, False, False)["heal"] == pytest.approx(15 / 50)  # healed
    tracker.step(ram(0, 0, 30, 20), False, False, False)
    assert tracker.step(ram(30, 20, 30, 20), False, False, False)["heal"] == 0.0  # blacked out: restored
    with pytest.raises(ConfigError, match="one max HP field per HP field"):
        load_reward({"heal": {"weight": 1.0, "hp": ["hp1", "hp2"], "max_hp": "max_hp1"}}, fields)


def test_slots_past_the_party_size_are_not_counted() -> None:
    """Pokémon leaves a stale copy in the last slot when a party member leaves (pokered
    _RemovePokemon): with ``party_size`` it is not counted, so depositing pays no levels."""
    fields = ["level1", "level2", "level3", "party_count"]
    reward = {"level": {"weight": 1.0, "fields": ["level1", "level2", "level3"]}}
    full = {"level1": 10, "level2": 5, "level3": 20, "party_count": 3}
    deposited = {"level1": 10, "level2": 20, "level3": 20, "party_count": 2}  # slot 3: the stale copy
    counted = RewardTracker(load_reward({**reward, "party_size": "party_count"}, fields))
    counted.reset(full)
    assert counted.step(deposited, False, False, False)["level"] == 0.0
    assert counted.step({**deposited, "level2": 21}, False, False, False)["level"] == 0.0  # 31 < 35
    stale = RewardTracker(load_reward(reward, fields))  # what counting every slot would pay
    stale.reset(full)
    assert stale.step(deposited, False, False, False)["level"] == 15.0
    with pytest.raises(ConfigError, match="party_size: no such RAM field"):
        load_reward({**reward, "party_size": "party_cnt"}, fields)


def test_heal_on_the_heal_pad(tq_env: GameBoyEnv) -> None:
    write_u16(tq_env, TQ_HP, 5)
    _, info = press(tq_env, "right")  # (10, 9)
    assert info["hp"] == 5 and info["reward_terms"]["heal"] == 0.0
    _, info = press(tq_env, "up")  # onto the heal pad (10, 8)
    assert (info["map_id"], info["x"], info["y"]) == (0, 10, 8)
    assert info["hp"] == info["max_hp"] == 18
    assert info["events"][4] == 1  # the ROM's "healed" event
    assert info["reward_terms"]["heal"] == pytest.approx(0.1 * (18 - 5) / 18)


def test_heal_is_not_paid_in_battle(tq_env: GameBoyEnv) -> None:
    """HP rising on Route 1's path pays a heal; the same rise while a battle is on (its menu open) does not."""
    walk_town_to_route1(tq_env)  # (0, 8)
    write_u16(tq_env, TQ_HP, 5)
    press(tq_env, "right")
    write_u16(tq_env, TQ_HP, 15)
    _, info = press(tq_env, "right")  # (2, 8), before the grass
    assert info["in_battle"] == 0 and info["hp"] == 15
    assert info["reward_terms"]["heal"] == pytest.approx(0.1 * 10 / info["max_hp"])
    for _ in range(3):
        press(tq_env, "right")  # onto the grass at (5, 8)
    toggle = 0
    for _ in range(1500):  # up and down in the grass until a wild battle's move menu opens
        if tq_env.session.memory[TQ_STATE] == 2:
            break
        press(tq_env, battle_button(tq_env) or ("up" if (toggle := toggle ^ 1) else "down"))
    write_u16(tq_env, TQ_HP, 5)
    _, info = press(tq_env, "down")  # the menu cursor moves; the battle goes on
    assert info["in_battle"] == 1 and info["hp"] == 5
    write_u16(tq_env, TQ_HP, 15)
    _, info = press(tq_env, "up")
    assert info["in_battle"] == 1 and info["hp"] == 15 and info["reward_terms"]["heal"] == 0.0


def test_gain_pays_new_highs_of_xp_and_event_flags() -> None:
    env = make_tq(reward={"name": "gain-only", "gain": {"xp": 0.1, "events": 2.0}})
    try:
        env.reset(seed=3)
        write_u16(env, TQ_HP, 5)
        press(env, "right")
        _, info = press(env, "up")  # the heal pad sets the ROM's "healed" event flag: one more flag
        assert info["events"][4] == 1 and info["reward_terms"]["gain"] == pytest.approx(2.0)

        env.reset(seed=3)
        walk_town_to_route1(env)
        walk_route1_to_grass(env)
        flags0 = int(env.unwrapped.get_state()["rewards"]["highs"]["events"])
        infos = grind(env, lambda i: i["xp"] > 0)
        xp, flags = infos[-1]["xp"], infos[-1]["events"].count()
        paid = sum(i["reward_terms"]["gain"] for i in infos)
        assert xp > 0 and paid == pytest.approx(0.1 * xp + 2.0 * (flags - flags0))
        write_u16(env, TQ_XP, 0)  # XP falls: the next win pays only what passes the old high
        infos = grind(env, lambda i: i["xp"] > 0)
        xp2, flags2 = infos[-1]["xp"], infos[-1]["events"].count()
        paid = sum(i["reward_terms"]["gain"] for i in infos)
        assert paid == pytest.approx(0.1 * max(0, xp2 - xp) + 2.0 * (flags2 - flags))
    finally:
        env.close()


def test_blackout_penalty(tq_env: GameBoyEnv) -> None:
    walk_town_to_route1(tq_env)
    walk_route1_to_grass(tq_env)

    def one_hp(env: GameBoyEnv) -> None:
        write_u16(env, TQ_HP, 1)

    infos = grind(tq_env, lambda i: i["blackouts"] == 1, on_menu=one_hp)
    last = infos[-1]
    assert last["reward_terms"]["blackout"] == pytest.approx(-0.5)
    assert sum(i["reward_terms"]["blackout"] for i in infos) == pytest.approx(-0.5)
    assert (last["map_id"], last["x"], last["y"]) == (0, 10, 8)  # back at the heal spot
    assert last["hp"] == last["max_hp"]
    assert sum(i["reward_terms"]["heal"] for i in infos) == 0.0  # the ROM restored a fainted player: no heal


def test_stuck_penalty_after_standing_still(tq_env: GameBoyEnv) -> None:
    after = tq_env.rewards.stuck_after
    terms = [press(tq_env, "b")[1]["reward_terms"]["stuck"] for _ in range(after + 3)]
    assert terms[: after] == [0.0] * after
    assert terms[after:] == [pytest.approx(-0.001)] * 3
    _, info = press(tq_env, "right")  # moving resets the counter
    assert info["reward_terms"]["stuck"] == 0.0
    assert press(tq_env, "b")[1]["reward_terms"]["stuck"] == 0.0


def test_no_stuck_penalty_while_the_profile_says_busy() -> None:
    game = yaml.safe_load(TQ_PROFILE.read_text())
    assert game["busy_when"] == "in_battle or text"
    game["busy_when"] = "map_id == 0"  # the whole start town counts as busy
    env = make_tq(game=game)
    try:
        env.reset(seed=7)
        terms = [press(env, "b")[1]["reward_terms"]["stuck"] for _ in range(env.rewards.stuck_after + 3)]
        assert terms == [0.0] * len(terms)
    finally:
        env.close()


def test_terms_sum_to_reward_and_episode_totals(tq_env: GameBoyEnv) -> None:
    total = 0.0
    for button in ["right"] * 9 + ["up", "right", "right"]:
        reward, info = press(tq_env, button)
        assert reward == pytest.approx(sum(info["reward_terms"].values()))
        total += reward
    tq_env.config.max_steps = 13
    _, _, _, truncated, info = tq_env.step(5)
    assert truncated
    episode = info["episode"]
    assert episode["return"] == pytest.approx(total)
    assert episode["reward_terms"]["milestones"] == pytest.approx(0.5)
    assert episode["milestones"] == ["route1"]


def test_milestone_defined_only_in_a_yaml_fixture(tmp_path: Path) -> None:
    data = yaml.safe_load(REWARD_YAML.read_text())
    data["milestones"] = {"east_of_the_pad": {"when": "map_id == 0 and x >= 12 and y == 9", "reward": 7.0}}
    path = tmp_path / "my_reward.yaml"
    path.write_text(yaml.safe_dump(data))
    env = make_tq(reward=str(path))
    try:
        env.reset(seed=3)
        paid = [press(env, "right")[1] for _ in range(5)]  # x = 10 .. 14
        assert [i["reward_terms"]["milestones"] for i in paid] == [0.0, 0.0, 7.0, 0.0, 0.0]
        assert paid[-1]["milestones"] == ["east_of_the_pad"]
        assert paid[2]["x"] == 12
    finally:
        env.close()


def test_milestone_from_a_mapping_and_one_term_only() -> None:
    reward = {"name": "only-events", "milestones": {"moved_down": {"when": "y >= 10", "reward": 2}}}
    env = make_tq(reward=reward)
    try:
        env.reset(seed=3)
        r, info = press(env, "down")
        assert info["y"] == 10 and r == pytest.approx(2.0)
        assert info["reward_terms"] == {"exploration": 0.0, "milestones": 2.0, "level": 0.0, "gain": 0.0,
                                        "heal": 0.0, "blackout": 0.0, "stuck": 0.0}
    finally:
        env.close()


def test_predicate_whitelist() -> None:
    names = {"badges", "events", "map_id"}
    assert Predicate("badges & 1", names, "t")({"badges": 3})
    assert not Predicate("map_id == 5", names, "t")({"map_id": 4})
    assert Predicate("events[2] and not badges", names, "t")({"events": [0, 0, 1], "badges": 0})
    for bad in ("__import__('os')", "map_id.__class__", "[x for x in events]", "lambda: 1", "map_id == 'a'",
                "open", "map_id ==", "events[0] if badges else 1"):
        with pytest.raises(ConfigError) as err:
            Predicate(bad, names, "reward.yaml: milestones.x.when")
        assert "\n" not in str(err.value)


def test_flag_numbers_are_checked_against_the_profile() -> None:
    ram = load_profile("tinyquest").ram  # events: 4 bytes, flags 0..31
    assert Predicate("events[31]", ram, "t")({"events": Flags(1 << 31)})
    for bad in ("events[32]", "events[-1]", "events[map_id]"):
        with pytest.raises(ConfigError, match=r"events\[\.\.\.\] needs a flag number 0\.\.31"):
            Predicate(bad, ram, "reward.yaml: milestones.x.when")
    for bad in ("level[0] > 2", "(level + 1)[0]"):  # a u8 is no flag array: this failed at reset, not here
        with pytest.raises(ConfigError, match=r"only flags fields take \[n\]"):
            Predicate(bad, ram, "reward.yaml: milestones.x.when")
    with pytest.raises(ConfigError, match="flag number"):
        load_reward({"milestones": {"x": {"when": "events[99]"}}}, ram)


def test_shipped_reward_config_parses() -> None:
    cfg = load_reward("tinyquest", ["map_id", "x", "y", "badges", "level", "hp", "max_hp", "xp", "in_battle",
                                    "events", "blackouts", "complete"])
    assert "route1" in cfg.milestone_names and cfg.stuck_after == 64


def test_unknown_reward_key() -> None:
    with pytest.raises(ConfigError) as err:
        make_tq(reward={"name": "typo", "exploraton": {"weight": 1.0}})
    assert "exploraton" in one_line(err)
    with pytest.raises(ConfigError) as err:
        make_tq(reward={"name": "typo", "stuck": {"wieght": -1.0}})
    assert "stuck.wieght" in one_line(err)


def test_bad_predicate_is_rejected() -> None:
    for when, words in [("__import__('os')", "Call"), ("hp.real", "Attribute"), ("level >", "parse"),
                        ("gold > 3", "gold")]:
        with pytest.raises(ConfigError) as err:
            make_tq(reward={"name": "bad", "milestones": {"m": {"when": when, "reward": 1.0}}})
        text = one_line(err)
        assert "milestones.m.when" in text and words in text
