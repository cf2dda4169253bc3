"""Pokémon Red/Blue profiles. Tests that need a ROM run only when the user points
POKERL_POKEMON_RED_ROM / POKERL_POKEMON_BLUE_ROM at their own cartridge dump; CI has none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import pokerl  # noqa: F401  (registers the ids)
from pokerl.errors import RomError
from pokerl.profile import load_profile

RED_SHA1 = "ea9bcae617fdf159b045185467ae58b2e4a48b9a"
BLUE_SHA1 = "d7037c83e1ae5b39bde3c30787637ba1d4c48ce2"
RED_ROM = os.environ.get("POKERL_POKEMON_RED_ROM")
BLUE_ROM = os.environ.get("POKERL_POKEMON_BLUE_ROM")
TINYQUEST = Path(__file__).resolve().parent.parent / "src" / "pokerl" / "games" / "tinyquest.gb"
ROMS = {"pokerl/PokemonRed-v0": RED_ROM, "pokerl/PokemonBlue-v0": BLUE_ROM}
A = {"down": 0, "left": 1, "right": 2, "up": 3, "a": 4, "b": 5}

# Bedroom → stairs → Pallet Town → north edge (Oak stops you and walks you to his lab) → face the
# first Poké Ball on the table and take it. Alternating right/A both reads Oak's text and, once
# control returns, turns to the ball and picks it (YES is the default answer); then B declines
# the nickname.
TO_STAIRS = "right:1,up:5,right:3,down:1"
TO_OAK = "down:6,left:4,down:2,left:3,down:2,right:5,up:6,right:1,up:3,a:60"


def play(env: gym.Env, script: str) -> dict:
    info: dict = {}
    for item in script.split(","):
        button, count = item.split(":")
        for _ in range(int(count)):
            _, _, _, _, info = env.step(A[button])
    return info


def take_starter(env: gym.Env) -> dict:
    """In Oak's lab: read his text, turn to the first Poké Ball and take it, decline the nickname."""
    for _ in range(80):
        info = play(env, "right:1,a:1")
        if info["party_count"]:
            break
    return play(env, "b:12")


def needs(rom: str | None, name: str) -> None:
    if not rom:
        pytest.skip(f"set POKERL_POKEMON_{name}_ROM to your own Pokémon {name.title()} ROM to run this test")


@pytest.mark.parametrize("name,sha1", [("pokemon_red", RED_SHA1), ("pokemon_blue", BLUE_SHA1)])
def test_profiles_load(name: str, sha1: str) -> None:
    profile = load_profile(name)
    assert profile.sha1 == (sha1,)
    assert profile.actions == ("down", "left", "right", "up", "a", "b")
    assert profile.ram["map_id"].addr == 0xD35E and profile.ram["badges"].addr == 0xD356
    assert profile.boot.check["map_id"] == 38


@pytest.mark.parametrize("env_id,sha1", [("pokerl/PokemonRed-v0", RED_SHA1), ("pokerl/PokemonBlue-v0", BLUE_SHA1)])
def test_wrong_rom_names_the_expected_sha1(env_id: str, sha1: str, tmp_path: Path) -> None:
    fake = tmp_path / "pokered.gb"
    fake.write_bytes(TINYQUEST.read_bytes())  # a real Game Boy ROM, but not Pokémon
    with pytest.raises(RomError) as err:
        gym.make(env_id, rom=str(fake))
    assert sha1 in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(RomError, match="not found"):
        gym.make(env_id, rom=str(tmp_path / "missing.gb"))


def test_pokemon_rom_required(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("POKERL_ROM", "POKERL_POKEMON_RED_ROM"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RomError, match="no pokemon_red ROM given"):
        gym.make("pokerl/PokemonRed-v0")


def test_train_with_wrong_rom_is_one_line_error(tmp_path: Path) -> None:
    fake = tmp_path / "red.gb"
    fake.write_bytes(TINYQUEST.read_bytes())
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.train", "game=pokemon_red", "reward=pokemon",
                          "env=pokemon", f"rom={fake}", "pool.mode=serial", "pool.workers=1",
                          f"run_dir={tmp_path / 'r'}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("pokerl: error:") and RED_SHA1 in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr


def test_blue_rom_given_to_red_profile() -> None:
    needs(BLUE_ROM, "BLUE")
    with pytest.raises(RomError, match=RED_SHA1):
        gym.make("pokerl/PokemonRed-v0", rom=BLUE_ROM)


@pytest.mark.parametrize("env_id", list(ROMS))
def test_boot_stairs_oak_and_starter(env_id: str) -> None:
    needs(ROMS[env_id], "RED" if "Red" in env_id else "BLUE")
    env = gym.make(env_id, rom=ROMS[env_id], env="pokemon").unwrapped
    try:
        obs, info = env.reset(seed=0)
        assert (info["map_id"], info["x"], info["y"]) == (38, 3, 6)  # bedroom, by the SNES
        assert info["party_count"] == 0 and info["badges"] == 0 and info["in_battle"] == 0
        assert obs["screen"].shape == (72, 80, 3) and obs["screen"].std() > 10
        info = play(env, "right:1")
        assert info["x"] == 4  # control: the player walks
        info = play(env, TO_STAIRS[len("right:1,"):])
        assert info["map_id"] == 37 and "left_bedroom" in info["milestones"]  # downstairs
        info = play(env, TO_OAK)
        assert info["map_id"] == 40 and "oaks_lab" in info["milestones"]  # Oak took us to his lab
        info = take_starter(env)
        assert info["party_count"] == 1 and "got_starter" in info["milestones"]
        assert 1 <= info["level1"] <= 10 and 0 < info["hp1"] <= info["max_hp1"]
        obs, *_ = env.step(A["b"])
        assert obs["vector"][0] > 0  # HP fraction of the starter
        assert np.isfinite(obs["vector"]).all() and (obs["visited"] > 0).any()
    finally:
        env.close()


def test_check_env_red() -> None:
    needs(RED_ROM, "RED")
    env = gym.make("pokerl/PokemonRed-v0", rom=RED_ROM)
    assert env.unwrapped.config.max_steps == 20480  # the id composes configs/env/pokemon.yaml
    check_env(env.unwrapped)
    env.close()


def test_train_logs_milestones_on_red(tmp_path: Path) -> None:
    needs(RED_ROM, "RED")
    from pokerl.config import compose_train_config
    from pokerl.logger import read_scalar_tags
    from pokerl.trainer import train

    train(compose_train_config([
        "game=pokemon_red", "reward=pokemon", "env=pokemon", f"rom={RED_ROM}", "model=small", "num_envs=2",
        "pool.mode=serial", "pool.workers=1", "total_steps=64", "ppo.num_steps=16", "ppo.bptt=8", "env.max_steps=16",
        "log.progress=false", f"run_dir={tmp_path}",
    ]))
    tags = read_scalar_tags(tmp_path / "tb")
    assert {"milestone/got_starter", "milestone/badge1", "milestone/oaks_lab"} <= set(tags)
    # the start state was made once at run time and cached in the run dir (never in the repo)
    assert len(list((tmp_path / "cache").glob("pokemon_red-*.state"))) == 1


def test_kanto_world_map_follows_map_connections() -> None:
    """Offsets in player steps (2 per map block): Route 1 sits right above Pallet Town, Viridian
    City above Route 1 (shifted 5 blocks west, pret's `connection north, ..., -5`)."""
    wm = load_profile("pokemon_red").world_map
    pallet, route1, viridian = wm.offsets[0], wm.offsets[12], wm.offsets[1]
    assert route1 == (pallet[0], pallet[1] - 36)  # ROUTE_1 is 18 blocks tall
    assert viridian == (route1[0] - 10, route1[1] - 36)  # VIRIDIAN_CITY is 18 blocks tall
    assert load_profile("pokemon_blue").world_map.offsets == wm.offsets
    assert all(0 <= x < wm.width and 0 <= y < wm.height for x, y in wm.offsets.values())


def test_auto_text_helper_is_off_by_default_and_advances_text_when_on() -> None:
    needs(RED_ROM, "RED")
    walk = TO_STAIRS + "," + TO_OAK.replace(",a:60", "") + ",left:40"  # no A press after Oak appears
    reached = {}
    for helpers in ([], ["auto_text"]):
        env = gym.make("pokerl/PokemonRed-v0", rom=RED_ROM, env="pokemon", helpers=helpers).unwrapped
        try:
            env.reset(seed=0)
            reached[bool(helpers)] = play(env, walk)["map_id"]
        finally:
            env.close()
    assert reached == {False: 0, True: 40}  # only the helper reads Oak's text and reaches his lab


def test_auto_text_helper_leaves_battles_to_the_agent() -> None:
    """The battle's move list has a text box's corner too: the helper must not pick moves for the agent."""
    needs(RED_ROM, "RED")
    env = gym.make("pokerl/PokemonRed-v0", rom=RED_ROM, env="pokemon").unwrapped
    try:
        env.reset(seed=0)
        play(env, TO_STAIRS + "," + TO_OAK)
        take_starter(env)
        for _ in range(120):  # walk to the lab's door: the rival stops you and fights
            info = play(env, "down:1,a:1")
            if info["in_battle"]:
                break
        assert info["in_battle"] == 2
        battle = env.session.save_state()
    finally:
        env.close()
    screens = {}
    for helpers in ([], ["auto_text"]):
        env = gym.make("pokerl/PokemonRed-v0", rom=RED_ROM, env="pokemon", helpers=helpers).unwrapped
        try:
            env.reset(seed=0, options={"state": battle})
            # open FIGHT now and then, B otherwise: with no one to choose a move, no turn is played
            steps = [env.step(A["a" if i % 10 == 0 else "b"]) for i in range(60)]
            assert all(info["in_battle"] == 2 for *_, info in steps)
            screens[bool(helpers)] = np.stack([obs["screen"] for obs, *_ in steps])
        finally:
            env.close()
    assert np.array_equal(screens[True], screens[False])


def test_unknown_helper_is_a_config_error() -> None:
    from pokerl.errors import ConfigError

    with pytest.raises(ConfigError, match="no helper 'auto_txt'"):
        gym.make("pokerl/TinyQuest-v0", helpers=["auto_txt"])


def offers(env: gym.Env, script: str) -> list:
    """Play ``script``; the archive entries the env offered on the way."""
    out = []
    for item in script.split(","):
        button, count = item.split(":")
        for _ in range(int(count)):
            info = env.step(A[button])[4]
            if "archive_entry" in info:
                out.append(info["archive_entry"])
    return out


def test_a_chain_replays_on_red_from_power_on() -> None:
    """Lineage and chains work for any profile: on Pokémon Red, the state found downstairs, then (an
    episode started there) Pallet Town (maps split cells), replays from power-on to the same state."""
    needs(RED_ROM, "RED")
    import zlib

    from pokerl.chain import make_chain

    env = gym.make("pokerl/PokemonRed-v0", rom=RED_ROM, env="pokemon", archive=True, by_map=True).unwrapped
    try:
        env.reset(seed=0)
        downstairs = next(e for e in offers(env, TO_STAIRS + ",b:4") if e.map == 37)
        env.reset(seed=1, options={"entry": downstairs})
        town = next(e for e in offers(env, TO_OAK) if e.map == 0)  # Pallet Town, on the way to Oak
        assert town.parent == downstairs.cell and len(town.trajectory) == 2
    finally:
        env.close()
    fresh = gym.make("pokerl/PokemonRed-v0", rom=RED_ROM, env="pokemon").unwrapped
    try:
        chain = make_chain(fresh, town, every=8)  # checks each milestone's step and the end state
    finally:
        fresh.close()
    assert zlib.decompress(chain.end.state) == zlib.decompress(town.state)
    assert "left_bedroom" in chain.end.milestones and chain.steps == town.steps
