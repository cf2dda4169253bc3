"""Worker faults survived: a killed or stopped emulator worker is restarted and the run goes on.

Real runs on the real ROM; the faults come from the test (the trainer's ``after_update`` callback or
a signal), not from a hook in the product. Nothing here waits longer than the configured timeout.
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pytest

from conftest import tiny_run, torchrun
from pokerl.checkpoint import load_checkpoint
from pokerl.config import compose_train_config
from pokerl.errors import PokerlError
from pokerl.logger import read_scalar_tags
from pokerl.trainer import Trainer

SMALL = tiny_run("num_envs=4", "ppo.num_minibatches=2", "env.max_steps=24", "pool.start_timeout_s=120",
                 drop=("pool.mode", "pool.workers"))


def worker_pid(trainer: Trainer, w: int) -> int:
    return trainer.pool.worker_pids()[w]


@pytest.mark.parametrize("layout", [["pool.mode=inline", "pool.workers=2"], ["pool.mode=async", "pool.workers=2"]],
                         ids=["inline", "async"])
def test_killed_worker_is_restarted_and_the_run_finishes(tmp_path: Path, layout: list[str]) -> None:
    trainer = Trainer(compose_train_config([*SMALL, *layout, "total_steps=320", f"run_dir={tmp_path}"]))
    killed: list[int] = []
    masked: list[float] = []

    def kill_once(t: Trainer) -> None:
        masked.append(float(t.buffer.valid.mean()))
        if t.update == 2:
            killed.append(worker_pid(t, 1))
            os.kill(killed[0], signal.SIGKILL)  # dies between two steps of the next rollout

    trainer.run(after_update=kill_once)
    tags = read_scalar_tags(tmp_path / "tb")
    assert [v for _, v in tags["fault/worker_restarts"]] == [0, 0, 1, 1, 1]
    assert all(math.isfinite(v) for key in ("loss/policy", "loss/value", "loss/entropy") for _, v in tags[key])
    assert masked[2] == 0.5 and masked[3] == 1.0  # the lost envs' columns left update 3's losses only
    assert worker_pid(trainer, 1) != killed[0]
    ckpt = load_checkpoint(tmp_path)
    assert len(ckpt["carry"]["envs"]) == 4  # the restarted worker's envs are in the checkpoint too


def test_stopped_worker_is_restarted_after_the_timeout(tmp_path: Path) -> None:
    trainer = Trainer(compose_train_config([*SMALL, "pool.mode=inline", "pool.workers=2", "pool.step_timeout_s=5",
                                            "total_steps=192", f"run_dir={tmp_path}"]))
    stopped: list[int] = []

    def stop_once(t: Trainer) -> None:
        if t.update == 1:
            stopped.append(worker_pid(t, 1))
            os.kill(stopped[0], signal.SIGSTOP)  # hangs: never answers

    trainer.run(after_update=stop_once)
    assert trainer.pool.restarts == 1  # the stopped worker only: 5 s is far beyond a healthy step
    with pytest.raises(ProcessLookupError):
        os.kill(stopped[0], 0)  # the stopped process was killed, not left behind


def test_too_many_restarts_stop_the_run_after_a_checkpoint(tmp_path: Path) -> None:
    trainer = Trainer(compose_train_config([*SMALL, "pool.mode=inline", "pool.workers=2", "pool.max_restarts=0",
                                            "total_steps=10_000", "log.checkpoint_every=1000", f"run_dir={tmp_path}"]))

    def kill(t: Trainer) -> None:
        os.kill(worker_pid(t, 1), signal.SIGKILL)

    with pytest.raises(PokerlError, match="1 worker restarts in a row") as err:
        trainer.run(after_update=kill)
    assert "\n" not in str(err.value) and f"resume={tmp_path}" in str(err.value)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["update"] == 2 and len(ckpt["carry"]["envs"]) == 4


def test_a_checkpoint_that_restarts_a_worker_starts_its_fresh_envs_episodes(tmp_path: Path) -> None:
    """A worker lost just as the trainer checkpoints: the call for the envs' states restarts it, and the checkpoint says
    its fresh envs are at an episode start (not mid-episode beside the old LSTM state)."""
    trainer = Trainer(compose_train_config([*SMALL, "pool.mode=inline", "pool.workers=2", "total_steps=64",
                                            "log.checkpoint_every=1000", f"run_dir={tmp_path}"]))
    carried: list[list[float]] = []

    def kill_then_checkpoint(t: Trainer) -> None:
        if t.update == 1:  # 16 steps into 24-step episodes: every env is mid-episode
            assert t.starts.tolist() == [0.0] * 4
            os.kill(worker_pid(t, 1), signal.SIGKILL)
            carried.append(t.checkpoint_payload()["carry"]["starts"].tolist())

    trainer.run(after_update=kill_then_checkpoint)
    assert carried == [[0.0, 0.0, 1.0, 1.0]] and trainer.pool.restarts == 1


RESTARTS_ON_RANK_1 = """
import os, signal, sys, torch.distributed as dist
from pokerl.config import compose_train_config
from pokerl.errors import PokerlError
from pokerl.trainer import Trainer

if __name__ == "__main__":  # the workers are spawned: they import this file
    trainer = Trainer(compose_train_config(sys.argv[1:]))
    rank = dist.get_rank()
    try:
        trainer.run(after_update=lambda t: rank == 1 and os.kill(t.pool.worker_pids()[1], signal.SIGKILL))
    except PokerlError as err:
        print(f"rank{rank}: {err}", flush=True)
"""


def test_too_many_restarts_on_one_rank_stop_every_rank(tmp_path: Path) -> None:
    """torchrun, two ranks: only rank 1 loses workers, yet both stop at the same update (none is left
    waiting in a collective) and rank 0 writes the checkpoint."""
    script = tmp_path / "restarts.py"
    script.write_text(RESTARTS_ON_RANK_1)
    run_dir = tmp_path / "run"
    out = torchrun(str(script), *SMALL, "pool.mode=inline", "pool.workers=2", "pool.max_restarts=0",
                   "total_steps=10_000", "log.checkpoint_every=1000", f"run_dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank{rank}: 1 worker restarts in a row" in out.stdout, out.stdout
    assert load_checkpoint(run_dir)["update"] == 2


def test_masked_columns_leave_the_losses() -> None:
    """A column marked invalid changes nothing: the loss equals the loss over the other columns."""
    import torch

    from pokerl.ppo import kl_and_clipfrac, policy_loss, value_loss

    new, old = torch.randn(8, 4), torch.randn(8, 4)
    adv, ret = torch.randn(8, 4), torch.randn(8, 4)
    mask = torch.ones(8, 4)
    mask[:, 1] = 0
    keep = [0, 2, 3]
    assert policy_loss(new, old, adv, 0.1, mask).item() == pytest.approx(
        policy_loss(new[:, keep], old[:, keep], adv[:, keep], 0.1).item(), rel=1e-6)
    assert value_loss(new, old, ret, 0.1, mask).item() == pytest.approx(
        value_loss(new[:, keep], old[:, keep], ret[:, keep], 0.1).item(), rel=1e-6)
    for masked, kept in zip(kl_and_clipfrac(new, old, 0.1, mask), kl_and_clipfrac(new[:, keep], old[:, keep], 0.1),
                            strict=True):
        assert masked.item() == pytest.approx(kept.item(), rel=1e-6)


HANG_SCRIPT = """
import functools, time
import numpy as np
from pokerl.env import GameBoyEnv
from pokerl.pool import VectorPool
from pokerl.spec import load_spec

class Hangs(GameBoyEnv):
    def step(self, action):
        if self._steps == 3:
            time.sleep(600)  # an emulator stuck in the trainer's own process
        return super().step(action)

spec = load_spec("tinyquest")
pool = VectorPool([functools.partial(Hangs, spec=spec, writes={"ballast": 0})], spec, 1, inline=True,
                  step_timeout_s=2)
pool.reset(seed=0)
for _ in range(10):
    pool.step(np.zeros(1, np.int64))
print("not reached")
"""


def test_a_hang_in_the_trainer_process_dumps_the_stacks_and_exits(tmp_path: Path) -> None:
    """The inline group cannot be timed out from inside: the watchdog dumps every thread's stack
    and ends the process, so the run resumes from its last checkpoint instead of hanging forever."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", HANG_SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == -14 and "not reached" not in out.stdout  # ended by SIGALRM
    assert "most recent call first" in out.stderr and "in step" in out.stderr  # faulthandler's dump


def test_a_worker_lost_between_steps_is_restarted_by_the_next_command() -> None:
    """A worker killed while the trainer checkpoints: the call for the envs' states restarts it and returns its fresh
    envs' states; the next step reports its envs as restarted."""
    import functools

    import numpy as np

    from pokerl.env import make_env
    from pokerl.pool import VectorPool
    from pokerl.spec import load_spec

    spec = load_spec("tinyquest")
    fn = functools.partial(make_env, spec=spec, writes={"ballast": 0})
    with VectorPool([fn] * 4, spec, 2, inline=True, step_timeout_s=60, start_timeout_s=120) as pool:
        pool.reset(seed=0)
        pool.step(np.zeros(4, np.int64))
        os.kill(pool.worker_pids()[1], signal.SIGKILL)
        states = pool.call("get_state")
        assert len(states) == 4 and pool.restarts == 1 and states[2]["steps"] == 0  # fresh envs
        *_, infos = pool.step(np.zeros(4, np.int64))
        assert infos["restarted"].tolist() == [2, 3]
        *_, infos = pool.step(np.zeros(4, np.int64))
        assert infos["restarted"].tolist() == []


def test_a_restarted_worker_gets_the_archive_and_async_recv_reports_it() -> None:
    """A worker killed between rollouts (async pool): the command that finds it dead restarts it, its
    fresh envs start from the run's archive like the others, and its next recv reports them restarted."""
    import functools

    import numpy as np

    from conftest import make_tq, walk_town_to_route1
    from pokerl.archive import ResetConfig
    from pokerl.env import make_env
    from pokerl.pool import VectorPool
    from pokerl.spec import load_spec

    walker = make_tq(archive=True)
    try:
        walker.reset(seed=1)
        (entry,) = [info["archive_entry"] for _, info in walk_town_to_route1(walker) if "archive_entry" in info]
    finally:
        walker.close()
    spec = load_spec("tinyquest")
    fn = functools.partial(make_env, spec=spec, writes={"ballast": 0},
                           reset=ResetConfig(mode="frontier", fresh_share=0.0))
    with VectorPool([fn] * 4, spec, 2, inline=False, step_timeout_s=60, start_timeout_s=120) as pool:
        pool.call("set_archive", [entry], replay=True)
        pool.reset(seed=0)
        os.kill(pool.worker_pids()[1], signal.SIGKILL)
        states = pool.call("get_state")
        assert pool.restarts == 1 and states[2]["steps"] == 0  # fresh envs ...
        assert [s["start"] is not None for s in states] == [True] * 4  # ... started from the archive
        pool.send(np.zeros(4, np.int64), np.arange(4))
        env_ids, *_, infos = pool.recv(min_workers=2)
        assert env_ids[infos["restarted"]].tolist() == [2, 3]


def test_a_worker_restarted_after_restored_snapshots_seeds_its_fresh_envs() -> None:
    """A resumed run gets its envs back by set_state, not reset: a worker restarted later still seeds
    its fresh envs from the run's seed, so two resumes of one checkpoint play alike."""
    import functools

    import numpy as np

    from pokerl.env import make_env
    from pokerl.pool import VectorPool
    from pokerl.spec import load_spec

    spec = load_spec("tinyquest")
    fn = functools.partial(make_env, spec=spec, writes={"ballast": 0})
    saved: list[dict] = []
    fresh = []
    for _ in range(2):  # two resumes of the same snapshots
        with VectorPool([fn] * 4, spec, 2, inline=True, step_timeout_s=60, start_timeout_s=120) as pool:
            if not saved:
                pool.reset(seed=0)
                pool.step(np.ones(4, np.int64))
                saved = pool.call("get_state")
            pool.seed = 4
            pool.call_at("set_state", range(4), saved)
            os.kill(pool.worker_pids()[1], signal.SIGKILL)
            states = pool.call("get_state")
            assert pool.restarts == 1 and states[2]["steps"] == 0 and states[0]["steps"] == 1
            fresh.append([(s["np_random"], s["emulator"]) for s in states[2:]])
    assert fresh[0] == fresh[1]
