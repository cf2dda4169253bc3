"""Checkpoints that cannot be used: unreadable or unsafe files, and a checkpoint of another game, model or
frame stack, each one line naming what is wrong."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import cli, refused, tiny_run
from pokerl.checkpoint import check_compatible, load_checkpoint
from pokerl.config import PolicyConfig, compose_train_config
from pokerl.errors import CheckpointError
from pokerl.spec import load_spec
from pokerl.trainer import train

RUN = tiny_run("model.hidden=64", "model.vector_hidden=32", "ppo.num_minibatches=2", "env.max_steps=24",
               drop=("pool.mode", "pool.workers"))


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


def test_checkpoint_of_another_game_model_or_frame_stack_is_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(compose_train_config([*RUN, "pool.mode=serial", "pool.workers=1", "total_steps=32", f"run_dir={run_dir}"]))
    for override, words in (("model.hidden=32", "has model.hidden=64, this config 32"),
                            ("env.frame_stack=2", "(env.frame_stack)")):
        out = subprocess.run([sys.executable, "-m", "pokerl.cli.train", f"resume={run_dir}", override],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert words in out.stderr, out.stderr
    ckpt = load_checkpoint(run_dir)
    model = PolicyConfig(**ckpt["about"]["model"])
    with pytest.raises(CheckpointError, match="trained on game tinyquest, not pokemon_red"):
        check_compatible(ckpt, "ckpt", load_spec("pokemon_red", "pokemon", "pokemon"), model)
    old = {k: v for k, v in ckpt.items() if k != "about"}
    with pytest.raises(CheckpointError, match="schema"):
        check_compatible(old, "ckpt", load_spec("tinyquest"), model)


def test_corrupt_checkpoint_resume_is_one_line_error(tmp_path: Path) -> None:
    train(compose_train_config([*RUN, "pool.mode=serial", "pool.workers=1", "total_steps=32",
                                f"run_dir={tmp_path / 'a'}"]))
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "a", bad)
    latest = bad / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.train", f"resume={bad}"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2
    assert out.stderr.startswith("pokerl: error: corrupt or unreadable checkpoint"), out.stderr
    assert out.stderr.strip().count("\n") == 0
    # the good run's files are untouched
    assert load_checkpoint(tmp_path / "a")["update"] == 1
