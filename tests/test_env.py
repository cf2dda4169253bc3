"""GameBoyEnv on the real tinyquest ROM: Gymnasium API, determinism, observations, info, bad ROMs and
keywords, and the start-state cache."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from conftest import TQ_ROM, make_tq, one_line, press, profile_with
from pokerl.env import GameBoyEnv
from pokerl.errors import ConfigError, RomError


@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
def test_check_env_passes_for_registered_id(render_mode: str | None) -> None:
    env = gym.make("pokerl/TinyQuest-v0", writes={"ballast": 0}, render_mode=render_mode).unwrapped
    try:
        assert isinstance(env, GameBoyEnv)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env)
        # the checker reports soft problems as warnings: there must be none (PyBoy's SDL2 notice aside)
        assert [str(w.message) for w in caught if "SDL2" not in str(w.message)] == []
    finally:
        env.close()


def test_registered_id_works_with_no_arguments() -> None:
    env = gym.make("pokerl/TinyQuest-v0")
    try:
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        assert info["ballast"] == 125  # the profile's default ROM speed
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and isinstance(reward, float)
        # Gymnasium's own `spec` (the registration) and the game's spec live side by side
        assert env.spec is not None and env.spec.id == "pokerl/TinyQuest-v0" and "TinyQuest" in str(env)
        assert env.unwrapped.game_spec.profile.name == "tinyquest"
    finally:
        env.close()
    plain = make_tq()
    try:
        assert plain.spec is None and str(plain) == "<GameBoyEnv instance>"  # made without gym.make
    finally:
        plain.close()


def _rollout(seed: int, actions: list[int]) -> list[tuple]:
    env = make_tq()
    try:
        out = [env.reset(seed=seed)]
        out += [env.step(a) for a in actions]
        return out
    finally:
        env.close()


def _same(a: object, b: object) -> bool:
    """Deep equality over obs dicts, infos, numpy arrays and plain values."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def test_same_seed_same_actions_same_run() -> None:
    rng = np.random.default_rng(0)
    # walk east into Route 1's grass first, then act at random (battles, text, walking)
    actions = [2] * 9 + [3, 2, 2] + [2] * 5 + [int(a) for a in rng.integers(0, 6, 250)]
    one, two = _rollout(11, actions), _rollout(11, actions)
    assert _same(one, two)
    maps = {step[-1]["map_id"] for step in one}
    assert 1 in maps  # the run got out of town, so the grass RNG mattered
    assert any(step[-1]["in_battle"] for step in one[1:])


def test_different_seeds_diverge() -> None:
    rng = np.random.default_rng(0)
    # the same actions as above: east into Route 1's grass, then at random (encounters, battles)
    actions = [2] * 9 + [3, 2, 2] + [2] * 5 + [int(a) for a in rng.integers(0, 6, 250)]
    one, two = _rollout(1, actions), _rollout(2, actions)
    assert one[0][1]["rng"] != two[0][1]["rng"]  # the seed is written into tq_rng
    # ... and the game then goes differently: the grass's encounters and battles (the RNG byte left out)
    def path(run: list[tuple]) -> list[tuple]:
        return [(i["map_id"], i["x"], i["y"], i["in_battle"], i["hp"], i["xp"]) for *_, i in run]
    assert path(one) != path(two)


def test_reset_restores_boot_state(tq_env: GameBoyEnv) -> None:
    for _ in range(4):
        press(tq_env, "right")
    obs, info = tq_env.reset(seed=7)
    assert (info["map_id"], info["x"], info["y"]) == (0, 9, 9)
    assert info["milestones"] == [] and all(v == 0.0 for v in info["reward_terms"].values())
    assert tq_env.observation_space.contains(obs)


def test_observation_shapes_dtypes_and_ranges(tq_env: GameBoyEnv) -> None:
    space = tq_env.observation_space
    assert space["screen"].shape == (72, 80, 3) and space["screen"].dtype == np.uint8
    assert space["visited"].shape == (72, 80, 1) and space["visited"].dtype == np.uint8
    assert space["vector"].dtype == np.float32 and space["vector"].shape == (tq_env.profile.vector_size,)
    assert isinstance(tq_env.action_space, gym.spaces.Discrete) and tq_env.action_space.n == 6
    for button in ["right"] * 9 + ["up", "right", "right"] + ["right"] * 5 + ["a"] * 4:
        obs, *_ = tq_env.step(["down", "left", "right", "up", "a", "b"].index(button))
        assert space.contains(obs)
        assert obs["screen"].dtype == np.uint8 and obs["screen"].shape == (72, 80, 3)
        assert np.all(np.abs(obs["vector"]) <= 10.0)
    vec = obs["vector"]
    assert vec[0] == pytest.approx(obs_hp_fraction(tq_env))  # first feature: hp / max_hp
    assert vec[0] <= 1.0 and vec[1] == pytest.approx(0.05 * tq_env.session.memory[0xC004])


def obs_hp_fraction(env: GameBoyEnv) -> float:
    """hp / max_hp read straight from RAM (u16 big-endian at 0xC005 and 0xC007)."""
    mem = env.session.memory
    return ((mem[0xC005] << 8) | mem[0xC006]) / ((mem[0xC007] << 8) | mem[0xC008])


def test_screen_stack_shifts_and_shows_the_game(tq_env: GameBoyEnv) -> None:
    obs, _ = tq_env.reset(seed=7)
    assert obs["screen"].std() > 0  # a drawn map, not a blank frame
    assert np.array_equal(obs["screen"][..., 0], obs["screen"][..., 2])  # reset fills the stack
    new, *_ = tq_env.step(2)
    assert np.array_equal(new["screen"][..., 1], obs["screen"][..., 2])
    assert not np.array_equal(new["screen"][..., 2], obs["screen"][..., 2])  # the player moved


def test_visited_crop_grows_as_the_player_walks(tq_env: GameBoyEnv) -> None:
    obs, _ = tq_env.reset(seed=7)
    counts = [int(np.count_nonzero(obs["visited"]))]
    assert counts[0] == 4 * 4  # one tile = 4x4 pixels of the 72x80 crop
    assert set(np.unique(obs["visited"])) == {0, 255}
    for _ in range(4):
        obs, *_ = tq_env.step(2)
        counts.append(int(np.count_nonzero(obs["visited"])))
    assert counts == [16, 32, 48, 64, 80]
    # the crop is centred on the player: the current tile is at the middle cell
    th, tw = 72 // 4, 80 // 4
    assert obs["visited"][(th // 2) * 4, (tw // 2) * 4, 0] == 255
    # walking back over old tiles adds nothing
    obs, *_ = tq_env.step(1)
    assert int(np.count_nonzero(obs["visited"])) == 80


def test_render_rgb_array() -> None:
    env = make_tq(render_mode="rgb_array")
    try:
        env.reset(seed=1)
        frame = env.render()
        assert frame.shape == (144, 160, 3) and frame.dtype == np.uint8 and frame.std() > 0
    finally:
        env.close()
    env = make_tq()
    try:
        env.reset(seed=1)
        assert env.render() is None
    finally:
        env.close()


def test_info_fields_and_episode_summary_at_truncation() -> None:
    env = make_tq(max_steps=14)
    try:
        _, info = env.reset(seed=5)
        for name in env.profile.ram:
            assert name in info
        assert "episode" not in info
        for button in ["right"] * 9 + ["up", "right", "right", "left"]:
            _, info = press(env, button)
            assert "episode" not in info
        _, _, terminated, truncated, info = env.step(5)  # the 14th step: "b"
        assert not terminated and truncated
        ep = info["episode"]
        assert set(ep) >= {"return", "length", "reward_terms", "milestones", "maps_visited", "visits"}
        assert ep["length"] == 14
        assert ep["milestones"] == ["route1"]
        assert ep["maps_visited"] == [0, 1]
        assert set(ep["reward_terms"]) == set(env.rewards.term_names)
        assert ep["return"] == pytest.approx(sum(ep["reward_terms"].values()))
        town = {(x, y): n for x, y, n in ep["visits"][0]}  # steps spent on each tile
        assert town[(9, 9)] == 1 and town[(19, 8)] == 3 and (10, 8) not in town
        assert ep["reward_terms"]["exploration"] == pytest.approx(0.02 * (len(town) - 1 + len(ep["visits"][1])))
    finally:
        env.close()


def test_truncation_flag_and_step_count() -> None:
    env = make_tq(max_steps=3)
    try:
        env.reset(seed=5)
        flags = [env.step(5)[2:4] for _ in range(3)]
        assert flags == [(False, False), (False, False), (False, True)]
    finally:
        env.close()


# ---------------------------------------------------------------- bad inputs: one-line errors


def test_missing_rom(tmp_path: Path) -> None:
    with pytest.raises(RomError) as err:
        make_tq(rom=tmp_path / "nope.gb")
    assert "not found" in one_line(err)


def test_wrong_sha1(tmp_path: Path) -> None:
    data = bytearray(TQ_ROM.read_bytes())
    data[0x7FF0] ^= 0xFF  # outside the header: still a bootable ROM, different SHA-1
    rom = tmp_path / "tinyquest-modified.gb"
    rom.write_bytes(bytes(data))
    with pytest.raises(RomError) as err:
        make_tq(rom=rom)
    text = one_line(err)
    assert "SHA-1" in text and "bff380b5847bb87cf303b0501173d2c0d01bd49f" in text


def test_not_a_rom(tmp_path: Path) -> None:
    rom = tmp_path / "short.gb"
    rom.write_bytes(b"\0" * 1000)
    with pytest.raises(RomError) as err:
        make_tq(rom=rom)
    assert "not a Game Boy ROM" in one_line(err)


def test_unknown_write_and_env_override() -> None:
    with pytest.raises(ConfigError) as err:
        make_tq(writes={"balast": 0})
    assert "balast" in one_line(err)
    with pytest.raises(ConfigError) as err:
        make_tq(hold_frames=30)
    one_line(err)


def test_boot_cache_is_made_once_reused_and_remade_when_corrupt(tmp_path: Path) -> None:
    from pokerl.env import make_env

    first = make_env(game="tinyquest", boot_cache=tmp_path, writes={"ballast": 0})
    files = list(tmp_path.glob("tinyquest-*.state"))
    assert len(files) == 1
    obs_a, _ = first.reset(seed=4)
    first.close()
    stamp = files[0].stat().st_mtime_ns
    second = make_env(game="tinyquest", boot_cache=tmp_path, writes={"ballast": 0})
    obs_b, _ = second.reset(seed=4)
    second.close()
    assert files[0].stat().st_mtime_ns == stamp  # reused, not rewritten
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
    files[0].write_bytes(b"garbage")
    third = make_env(game="tinyquest", boot_cache=tmp_path, writes={"ballast": 0})
    obs_c, _ = third.reset(seed=4)
    third.close()
    np.testing.assert_array_equal(obs_a["screen"], obs_c["screen"])
    assert files[0].read_bytes() != b"garbage"


def test_a_long_boot_says_what_it_is_doing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tq().close()
    assert "making the start state" not in capsys.readouterr().err  # 120 frames: nothing to say
    path = profile_with(tmp_path, lambda d: d["boot"].__setitem__("ticks", 1200))  # as long as an intro
    env = make_tq(game=str(path))
    env.close()
    err = capsys.readouterr().err  # not a terminal: one line when done, no bar redrawn with carriage returns
    assert err.count("tinyquest: made the start state") == 1 and "1,200 frames" in err and "\r" not in err, err


def test_outside_a_run_the_start_state_is_made_once_in_the_user_cache(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """gym.make and scripts (no run dir): the start state is kept in the user's cache folder, keyed by the ROM
    and the boot procedure, and the next env loads it instead of booting."""
    from pokerl import boot as boot_module

    monkeypatch.setenv("POKERL_CACHE_DIR", str(tmp_path))
    boots: list[int] = []
    real_boot = boot_module.boot
    monkeypatch.setattr(boot_module, "boot", lambda *a, **k: (boots.append(1), real_boot(*a, **k))[1])
    first = gym.make("pokerl/TinyQuest-v0", writes={"ballast": 0})
    obs_a, _ = first.reset(seed=3)
    first.close()
    (state,) = (tmp_path / "start-states").glob("tinyquest-*.state")
    second = gym.make("pokerl/TinyQuest-v0", writes={"ballast": 0})
    obs_b, _ = second.reset(seed=3)
    second.close()
    assert boots == [1]  # the second env loaded the first one's state
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
    path = profile_with(tmp_path, lambda d: d["boot"].__setitem__("ticks", 121))  # another boot procedure
    make_tq(game=str(path)).close()
    assert boots == [1, 1] and len(list((tmp_path / "start-states").glob("tinyquest-*.state"))) == 2


def test_envs_starting_together_make_the_start_state_once_and_say_it_once_in_a_pipe(tmp_path: Path) -> None:
    """A run's workers start at the same time: one makes the (long) start state, the others wait and load
    it; in a pipe the one that made it says so in one line, with no progress bar's carriage returns."""
    path = profile_with(tmp_path, lambda d: d["boot"].__setitem__("ticks", 3000))  # as long as an intro
    code = (f"import pokerl.env\nenv = pokerl.env.GameBoyEnv(game={str(path)!r}, writes={{'ballast': 0}}, "
            f"boot_cache={str(tmp_path / 'cache')!r})\nenv.reset(seed=0)\nenv.close()\nprint('ok')")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    err = "".join(err for _, err in outs)
    assert err.count("tinyquest: made the start state") == 1 and "\r" not in err, err
    assert len(list((tmp_path / "cache").glob("tinyquest-*.state"))) == 1
