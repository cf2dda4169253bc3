"""The run configuration's checks: a bad value, a contradiction, an unknown option or a config that is its own
base is one line, said before anything is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli, refused, tiny_run
from pokerl.config import PolicyConfig, PPOConfig, TrainConfig, compose_train_config
from pokerl.errors import ConfigError
from pokerl.spec import load_spec
from pokerl.trainer import Trainer

CLI_RUN = tiny_run("ppo.num_steps=8", "env.max_steps=12", drop=("num_envs", "pool.mode", "pool.workers"))


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["pool.mode=serial", "pool.workers=2"], "workers=1"),
        (["pool.mode=async", "pool.workers=1"], "workers >= 2"),
        (["pool.mode=threads"], "pool.mode"),
        (["num_envs=3", "pool.workers=2"], "multiple of pool.workers"),
        (["ppo.bptt=10"], "multiple of bptt"),
        (["ppo.num_steps=0"], "positive multiple of bptt"),
        (["total_steps=0"], "total_steps: must be >= 1"),
        (["seed=-1"], "seed: must be >= 0"),
        (["device=gpu"], "device=gpu: not a device"),
        (["model.channels=[32,64]"], "same length"),
        (["model.kernels=[30,30,30]"], "do not fit"),
        (["+game.ram.hp.adr=5"], "ram.hp.adr"),
        (["reset.imitate=0.1"], "walks no chain to imitate"),  # mode=fresh: would be silently unused
        (["reset.mode=backward", "reset.chain=x.pt", "reset.imitate=0.1", "reset.imitate_steps=0"],
         "leave nothing to imitate"),
    ],
)
def test_contradictions_and_bad_values_are_one_line_errors(tmp_path: Path, overrides: list[str], words: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pokerl.cli.train", *CLI_RUN, *overrides, f"run_dir={tmp_path / 'r'}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("pokerl: error:") and proc.stderr.count("\n") == 1, proc.stderr
    assert words in proc.stderr
    assert not (tmp_path / "r").exists()  # nothing was written


def test_base_cycle_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(f"base: {path}\nname: loop\n")
    with pytest.raises(ConfigError, match="its own base"):
        load_spec(str(path))


def test_an_unknown_config_group_option_lists_the_options() -> None:
    with pytest.raises(ConfigError, match=r"no model config 'huge' \(model/huge.yaml\); "
                                          r"the model configs: default, small$"):
        compose_train_config(["model=huge"])
    line = refused(cli("pokerl.cli.train", "game=nethack"))
    assert line.endswith("the game configs: pokemon_blue, pokemon_red, tinyquest"), line


def test_typo_in_config_key_is_one_line_error() -> None:
    with pytest.raises(ConfigError, match="nmu_envs"):
        compose_train_config(["nmu_envs=3"])
    with pytest.raises(ConfigError, match=r"unknown key 'ppo.gama' \(known keys: anneal_lr, "):
        compose_train_config([*CLI_RUN, "+ppo.gama=0.9"])
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.train", "model.hiden=3"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("pokerl: error:"), out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("override,message", [
    ("log.checkpoint_every=0", "log.checkpoint_every: must be >= 1"),  # was a ZeroDivisionError after a rollout
    ("log.scalars_every=0", "log.scalars_every: must be >= 1"),
    ("log.keep_checkpoints=0", "log.keep_checkpoints: must be >= 1"),  # was quietly 1
    ("log.video_every=-1", "log.video_every: must be >= 0"),
    ("game.visited_cell=0", "visited_cell: must be >= 1"),  # was a ZeroDivisionError in the env
])
def test_out_of_range_values_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Trainer(compose_train_config([*CLI_RUN, override]))


def test_the_typed_defaults_are_the_shipped_yaml_files() -> None:
    """One source of defaults: a key the YAML leaves out (a run saved before it existed) gets what the YAML says."""
    composed = compose_train_config([])
    assert composed.model == PolicyConfig() and composed.ppo == PPOConfig()
    typed = TrainConfig(game={}, reward={}, env={})
    for key in ("num_envs", "pool", "reset", "archive", "total_steps", "seed", "device", "log", "eval"):
        assert getattr(composed, key) == getattr(typed, key), key


def test_resume_with_another_config_dir_is_refused(tmp_path: Path) -> None:
    """A resumed run keeps the config it started with: a config folder beside resume= would be ignored."""
    with pytest.raises(ConfigError, match=f"resume={tmp_path} continues that run with its own config"):
        compose_train_config([f"resume={tmp_path}"], config_dir=tmp_path)
