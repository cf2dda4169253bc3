"""The game spec comes from YAML alone: no emulator is booted to learn spaces, names or the world map."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import make_tq, tiny_run
from pokerl import boot as boot_module
from pokerl import emulator
from pokerl.config import compose_train_config
from pokerl.env import GameBoyEnv
from pokerl.evaluate import evaluate, load_agent, save_heatmap
from pokerl.spec import default_game, load_spec
from pokerl.trainer import Trainer

TINY = tiny_run("ppo.num_steps=8", "env.max_steps=12", drop=("num_envs", "pool.mode", "pool.workers"))


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the emulators started in this process from now on."""
    started: list[int] = []
    real = emulator.EmulatorSession.__init__

    def counting(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        started.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(emulator.EmulatorSession, "__init__", counting)
    return started


def test_spec_matches_what_the_env_has(sessions: list[int]) -> None:
    spec = load_spec("tinyquest", env="default", frame_stack=2)
    assert not sessions
    env = make_tq(spec=spec)
    try:
        obs, info = env.reset(seed=0)
        assert spec.observation_space.contains(obs)
        assert set(info["reward_terms"]) == set(spec.term_names)
    finally:
        env.close()
    assert spec.observation_space["screen"].shape == (72, 80, 2)
    assert spec.milestone_names[0] == "route1" and spec.world_map.offsets[3] == (40, 16)


def test_with_no_game_the_env_plays_the_one_pokerl_train_trains() -> None:
    """The default game lives in configs/train.yaml only; the env and load_spec read it there."""
    trained = compose_train_config([]).game["name"]
    env = GameBoyEnv()
    try:
        assert env.profile.name == load_spec().profile.name == trained == default_game()
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_training_and_evaluation_boot_only_the_envs_they_step(tmp_path: Path, sessions: list[int],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = compose_train_config([*TINY, "num_envs=2", "pool.mode=serial", "pool.workers=1", "total_steps=16",
                                f"run_dir={tmp_path}"])
    Trainer(cfg).run()
    assert len(sessions) == 2  # the two envs; the logger and the policy read the spec
    sessions.clear()
    agent = load_agent(tmp_path)
    assert not sessions
    boots: list[int] = []
    real_boot = boot_module.boot
    monkeypatch.setattr(boot_module, "boot", lambda *a, **k: (boots.append(1), real_boot(*a, **k))[1])
    result = evaluate(agent, episodes=2, envs_per_worker=2, capture_screens=True)
    assert len(sessions) == 2 and len(boots) == 1  # the second env loaded the first one's start state
    save_heatmap(agent, result, tmp_path / "heat.png")
    assert len(sessions) == 2  # the background came from the evaluated envs' screens
    assert result.backdrop is not None and result.backdrop.painted.any()


def test_blue_is_red_with_another_rom() -> None:
    red, blue = load_spec("pokemon_red", "pokemon", "pokemon"), load_spec("pokemon_blue", "pokemon", "pokemon")
    assert blue.profile.name == "pokemon_blue" and blue.profile.sha1 != red.profile.sha1
    assert blue.profile.ram == red.profile.ram and blue.profile.boot == red.profile.boot
    assert blue.observation_space == red.observation_space
