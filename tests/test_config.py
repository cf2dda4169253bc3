"""The run configuration's checks: a bad value, a contradiction, an unknown option or a config that is its own
base is one line, said before anything is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli, refused, tiny_run
from pokerl.config import compose_train_config
from pokerl.errors import ConfigError
from pokerl.spec import load_spec

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
