"""What a newcomer meets first: the one-line refusals of bad input, said at once and honestly (issue 36).

Each refusal is checked where the user meets it, the command line, and on the real bundled ROM where a
ROM is involved. "At once" is checked by what was built before the refusal (torch never imported, an
earlier run never touched), not by a clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pokerl.checkpoint import load_checkpoint
from pokerl.config import compose_train_config
from pokerl.errors import CheckpointError, ConfigError


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def refused(out: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command printed (asserting it was one line, exit status 2)."""
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert out.stderr.startswith("pokerl: error: ") and out.stderr.strip().count("\n") == 0, out.stderr[-2000:]
    return out.stderr.strip()


class Foreign:
    """A class no pokerl checkpoint holds: unpickling it could run code."""


def test_unreadable_checkpoint_says_what_is_wrong_and_never_to_load_it_unsafely(tmp_path: Path) -> None:
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / "latest.pt").write_bytes(os.urandom(5000))  # a damaged file
    (ckpts / "ckpt_000010.pt").write_bytes(b"an older checkpoint")
    (ckpts / "ckpt_000020.pt").write_bytes(b"the newest older checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "run")
    message = str(err.value)
    assert "weights_only" not in message and "trusted source" not in message  # torch's advice, dangerous here
    assert "not a checkpoint file" in message and str(ckpts / "ckpt_000020.pt") in message, message
    stranger = tmp_path / "stranger.pt"
    torch.save({"model": {}, "payload": Foreign()}, stranger)  # a file that unpickles a class: code could run
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(stranger)
    message = str(err.value)
    assert "weights_only" not in message and "Foreign" in message and "not loaded" in message, message
    line = refused(cli("pokerl.cli.eval", str(tmp_path / "run"), "--quiet"))
    assert "weights_only" not in line and "ckpt_000020.pt" in line, line


def test_an_unknown_config_group_option_lists_the_options() -> None:
    with pytest.raises(ConfigError, match=r"no model config 'huge' \(model/huge.yaml\); "
                                          r"the model configs: default, small$"):
        compose_train_config(["model=huge"])
    line = refused(cli("pokerl.cli.train", "game=nethack"))
    assert line.endswith("the game configs: pokemon_blue, pokemon_red, tinyquest"), line
