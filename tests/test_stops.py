"""A run is never lost to a stop: SIGTERM, kill -9, non-finite losses, a full disk, a reused run dir,
a checkpoint of another game or model. Real runs on the real ROM; nothing here asserts on time."""

from __future__ import annotations

import errno
import hashlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

import pytest
import torch

from conftest import tiny_run
from pokerl import ppo
from pokerl.atomic import write_atomically, write_text_atomically
from pokerl.checkpoint import load_checkpoint
from pokerl.config import compose_train_config
from pokerl.errors import CheckpointError
from pokerl.logger import read_scalar_tags
from pokerl.trainer import Trainer, train

SMALL = tiny_run("model.hidden=64", "model.vector_hidden=32", "ppo.num_minibatches=2", "env.max_steps=24",
                 drop=("pool.mode", "pool.workers"))


def start(run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    """pokerl-train in a process group of its own, its worker included (pool.mode=inline, 2 workers)."""
    args = [*SMALL, "pool.mode=inline", "pool.workers=2", "total_steps=10_000_000", f"run_dir={run_dir}", *extra]
    return subprocess.Popen([sys.executable, "-m", "pokerl.cli.train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_sigterm_to_the_group_checkpoints_and_exits_143(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start(run_dir, "log.checkpoint_every=1000")
    assert "parameters" in proc.stdout.readline()  # printed once the signal handlers are in place
    os.killpg(proc.pid, signal.SIGTERM)  # as Slurm, Kubernetes or `timeout` send it: to every process
    _, err = finish(proc)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and f"resume={run_dir}" in err and "Traceback" not in err
    ckpt = load_checkpoint(run_dir)
    assert ckpt["update"] >= 1
    assert len(ckpt["carry"]["envs"]) == 2  # the worker ignored SIGTERM: its envs' states were saved
    target = ckpt["global_step"] + 32
    train(compose_train_config([f"resume={run_dir}", f"total_steps={target}"]))
    assert load_checkpoint(run_dir)["global_step"] == target


def test_kill_9_resumes_from_the_last_checkpoint_without_temp_files_or_double_counted_curves(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start(run_dir, "log.checkpoint_every=2")
    latest = run_dir / "checkpoints" / "latest.pt"
    deadline = time.monotonic() + 300  # a bound on a hang, not a timing assertion
    try:
        while not (latest.is_file() and load_checkpoint(latest)["update"] >= 4):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no 4th checkpoint in 300 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        finish(proc)
    (run_dir / "checkpoints" / ".latest.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # as if killed mid-write
    (run_dir / ".config.yaml.x1y2.tmp").write_text("seed: ")  # ... or mid-way through config.yaml
    saved = load_checkpoint(latest)
    target = saved["global_step"] + 64
    train(compose_train_config([f"resume={run_dir}", f"total_steps={target}"]))
    resumed = load_checkpoint(latest)
    assert resumed["global_step"] == target and resumed["update"] == saved["update"] + 2
    assert not list((run_dir / "checkpoints").glob(".*.tmp")) and not list(run_dir.glob(".*.tmp"))
    steps = [step for step, _ in read_scalar_tags(run_dir / "tb")["loss/policy"]]
    assert steps == sorted(set(steps))  # the killed run's updates past the checkpoint were purged
    assert steps[-1] == target


def test_non_finite_losses_are_skipped_counted_and_stop_the_run(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = ppo.value_loss
    calls = {"n": 0}
    bad_from = {"n": 10**9}

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * math.nan if calls["n"] == 2 or calls["n"] >= bad_from["n"] else loss

    monkeypatch.setattr(ppo, "value_loss", flaky)
    run_dir = tmp_path / "run"
    trainer = Trainer(compose_train_config([*SMALL, "pool.mode=serial", "pool.workers=1", "total_steps=10_000",
                                            "log.checkpoint_every=1", "ppo.max_nonfinite=3", f"run_dir={run_dir}"]))
    trainer.run(stop_at_update=2)  # 2 minibatches per update: the second of update 1 is skipped
    tags = read_scalar_tags(run_dir / "tb")
    assert [v for _, v in tags["fault/nonfinite_updates"]] == [1.0, 1.0]
    assert all(math.isfinite(v) for _, v in tags["loss/value"])
    assert all(torch.isfinite(p).all() for p in trainer.policy.parameters())
    saved = load_checkpoint(run_dir)
    good = saved["update"]
    bad_from["n"] = calls["n"] + 1  # from now on every step is non-finite: 4 in a row > 3
    trainer = Trainer(compose_train_config([f"resume={run_dir}", "total_steps=10_000"]))
    assert saved["nonfinite_total"] == trainer.nonfinite_total == 1  # the run's count survives a resume
    with pytest.raises(ppo.NonFiniteError, match="4 optimiser steps in a row") as err:
        trainer.run()
    assert "\n" not in str(err.value)
    # latest.pt is the last update that finished: its steps were skipped, its weights are the good ones
    last = load_checkpoint(run_dir)
    assert last["update"] == good + 1
    assert all(torch.isfinite(t).all() for t in last["model"].values())


def test_full_disk_while_checkpointing_is_one_line_and_keeps_latest(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import pokerl.checkpoint as checkpoint

    run_dir = tmp_path / "run"
    real, saves = checkpoint.torch.save, {"n": 0}

    def full_disk(obj, f, *args, **kwargs):  # type: ignore[no-untyped-def]
        saves["n"] += 1
        if saves["n"] == 4:  # update 1's checkpoints and update 2's numbered one fit, its latest.pt does not
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    trainer = Trainer(compose_train_config([*SMALL, "pool.mode=serial", "pool.workers=1", "total_steps=10_000",
                                            "log.checkpoint_every=1", f"run_dir={run_dir}"]))
    with pytest.raises(CheckpointError, match="No space left on device") as err:
        trainer.run()
    assert "\n" not in str(err.value) and "latest.pt is intact" in str(err.value)
    monkeypatch.setattr(checkpoint.torch, "save", real)
    assert load_checkpoint(run_dir)["update"] == 1
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def test_files_are_replaced_whole_with_the_usual_permissions(tmp_path: Path) -> None:
    """config.yaml, model cards, start states: the new bytes or the old, never half; the mode a plain write gives."""
    path = tmp_path / "config.yaml"
    path.write_text("seed: 1\n")
    plain = path.stat().st_mode & 0o777
    write_text_atomically(path, "seed: 2\n")
    assert path.read_text() == "seed: 2\n" and path.stat().st_mode & 0o777 == plain

    def dies_halfway(f: BinaryIO) -> None:
        f.write(b"seed: ")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, dies_halfway)
    assert path.read_text() == "seed: 2\n" and [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def test_reused_run_dir_is_refused_and_left_untouched(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(compose_train_config([*SMALL, "pool.mode=serial", "pool.workers=1", "total_steps=32", f"run_dir={run_dir}"]))
    before = tree_digest(run_dir)
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.train", *SMALL, "total_steps=32", f"run_dir={run_dir}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"resume={run_dir}" in out.stderr and "overwrite=true" in out.stderr
    assert tree_digest(run_dir) == before
    out = subprocess.run([sys.executable, "-m", "pokerl.cli.train", *SMALL, "pool.mode=serial", "pool.workers=1",
                          "total_steps=64", f"run_dir={run_dir}", "overwrite=true"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "removed the earlier run's config.yaml, checkpoints, tb" in out.stderr
    assert load_checkpoint(run_dir)["global_step"] == 64
    assert len(list((run_dir / "tb").iterdir())) == 1  # the earlier run's event file went with it
