"""The vector pool on the real tinyquest ROM: serial, inline and worker layouts agree step for step."""

from __future__ import annotations

import functools
import multiprocessing as mp
import os

import numpy as np
import pytest

from pokerl.env import make_env
from pokerl.errors import PokerlError
from pokerl.pool import VectorPool
from pokerl.spec import load_spec

# Fast ROM (no ballast) and short episodes so autoreset happens inside the test.
SPEC = load_spec("tinyquest", max_steps=20)
ENV_FN = functools.partial(make_env, spec=SPEC, writes={"ballast": 0})


def make_pool(n: int, workers: int = 1, inline: bool = True) -> VectorPool:
    return VectorPool([ENV_FN] * n, SPEC, workers, inline=inline)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a child not yet joined counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def rollout(workers: int, actions: np.ndarray, seed: int = 3,
            inline: bool = True) -> tuple[list[tuple[np.ndarray, ...]], list]:
    steps, episodes = [], []
    with make_pool(4, workers, inline) as pool:
        obs, _ = pool.reset(seed=seed)
        steps.append((obs["screen"].copy(), obs["visited"].copy(), obs["vector"].copy()))
        for a in actions:
            obs, rew, term, trunc, infos = pool.step(a)
            steps.append((obs["screen"].copy(), obs["visited"].copy(), obs["vector"].copy(), rew.copy(),
                          term.copy(), trunc.copy()))
            episodes.extend(infos["episodes"])
    return steps, episodes


@pytest.mark.parametrize("inline", [False, True], ids=["workers", "inline"])
def test_shared_and_serial_give_identical_trajectories(inline: bool) -> None:
    actions = np.random.default_rng(0).integers(0, 6, size=(45, 4))
    serial, serial_eps = rollout(1, actions)
    shared, shared_eps = rollout(2, actions, inline=inline)
    assert len(serial) == len(shared) == 46
    for a, b in zip(serial, shared, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    # two autoresets per env happened (45 steps, episodes of 20), with the same summaries
    assert [i for i, _ in serial_eps] == [i for i, _ in shared_eps] and len(serial_eps) == 8
    assert [e["return"] for _, e in serial_eps] == [e["return"] for _, e in shared_eps]
    assert all(e["length"] == 20 for _, e in shared_eps)
    # after an autoreset the observation is the new episode's first: the visited mask is tiny again
    at_end = serial[20]  # after step 20
    assert at_end[5].all()  # truncated at step 20 for every env
    for env in range(4):  # one visited tile = one 4x4 block of the 72x80 mask
        assert (at_end[1][env] > 0).sum() == 16


def test_different_seeds_give_different_games() -> None:
    # env i is seeded seed+i: the RNG field written into the game differs between envs
    with make_pool(2) as pool:
        assert pool.worker_pids() == {}  # serial: one inline group, no process
        pool.reset(seed=11)
        rngs = [profile.ram["rng"].read(session.memory)
                for profile, session in zip(pool.get_attr("profile"), pool.get_attr("session"), strict=True)]
    assert rngs[0] != rngs[1]


def test_async_send_recv_covers_every_env() -> None:
    with make_pool(4, 2, inline=False) as pool:
        pool.reset(seed=0)
        pool.send(np.zeros(4, dtype=np.int64), np.arange(4))
        seen: list[int] = []
        while len(seen) < 4:
            env_ids, obs, rew, term, trunc, _infos = pool.recv(min_workers=1)
            assert obs["screen"].shape[0] == len(env_ids) == len(rew)
            seen.extend(env_ids.tolist())
        assert sorted(seen) == [0, 1, 2, 3]
        # a group can be sent again as soon as it is received
        pool.send(np.ones(2, dtype=np.int64), np.array([2, 3]))
        env_ids, *_ = pool.recv()
        assert env_ids.tolist() == [2, 3]


@pytest.mark.parametrize("inline", [False, True], ids=["workers", "inline"])
def test_snapshots_restore_envs_exactly(inline: bool) -> None:
    actions = np.random.default_rng(2).integers(0, 6, size=(12, 4))
    with make_pool(4, 2, inline) as pool:
        pool.reset(seed=5)
        for a in actions[:6]:
            before = pool.step(a)[0]["screen"].copy()
        states = pool.call("get_state")
        after = [pool.step(a)[0]["screen"].copy() for a in actions[6:]]
        restored = pool.call_at("set_state", range(4), states)
        np.testing.assert_array_equal(np.stack([obs["screen"] for obs in restored]), before)
        again = [pool.step(a)[0]["screen"].copy() for a in actions[6:]]
    for x, y in zip(after, again, strict=True):
        np.testing.assert_array_equal(x, y)


def test_call_at_gives_each_chosen_env_its_own_arguments_across_workers() -> None:
    """Envs 3 and 2 (worker 1) and 0 (worker 0) get each other's snapshots, in the order asked; env 1 is
    left alone. The results come back in that order too."""
    with make_pool(4, 2, inline=False) as pool:
        pool.reset(seed=5)
        for _ in range(8):  # each env walks its own way: four different screens
            obs, *_ = pool.step(np.array([0, 1, 2, 3]))
        screens = obs["screen"].copy()
        assert len({screen.tobytes() for screen in screens}) == 4
        states = pool.call("get_state")
        pool.step(np.ones(4, np.int64))
        with pytest.raises(ValueError, match="arguments for 3 envs"):
            pool.call_at("set_state", [3, 0, 2], states[:2])
        restored = pool.call_at("set_state", [3, 0, 2], [states[0], states[3], states[1]])
        np.testing.assert_array_equal(np.stack([r["screen"] for r in restored]), screens[[0, 3, 1]])
        now = pool.call("get_state")
        assert [s["steps"] for s in now] == [8, 9, 8, 8]  # env 1 stepped on; the others are back
        assert [now[i]["np_random"] for i in (0, 2, 3)] == [states[i]["np_random"] for i in (3, 1, 0)]
        assert [w["ballast"] for w in pool.get_attr("writes")] == [0] * 4


def test_inline_pool_steps_worker_0_in_this_process() -> None:
    with make_pool(4, 2, inline=True) as pool:
        assert list(pool.worker_pids()) == [1]  # group 0 has no process: this one steps it
        pool.reset(seed=0)
        # the group-wise asynchronous API needs every group in a process of its own
        with pytest.raises(RuntimeError, match="inline=False"):
            pool.send(np.zeros(4, dtype=np.int64), np.arange(4))


@pytest.mark.parametrize("inline", [False, True], ids=["workers", "inline"])
def test_bad_rom_in_worker_is_a_clear_error_and_no_process_is_left(tmp_path, inline: bool) -> None:
    bad = functools.partial(make_env, spec=SPEC, rom=str(tmp_path / "missing.gb"))
    before = set(mp.active_children())
    with pytest.raises(PokerlError, match="ROM not found"):
        VectorPool([bad] * 2, SPEC, 2, inline=inline)
    assert set(mp.active_children()) <= before


@pytest.mark.parametrize("inline", [False, True], ids=["workers", "inline"])
def test_close_stops_workers(inline: bool) -> None:
    pool = make_pool(4, 2, inline)
    pids = list(pool.worker_pids().values())
    assert len(pids) == (1 if inline else 2)
    assert all(alive(pid) for pid in pids)
    pool.close()
    assert not any(alive(pid) for pid in pids)


@pytest.mark.parametrize(("workers", "inline"), [(1, True), (2, True), (2, False)], ids=["serial", "inline", "workers"])
def test_final_obs_is_the_last_frame_of_the_ended_episode(workers: int, inline: bool) -> None:
    """At a truncation the pool returns the next episode's first observation and, in infos, the ended
    episode's last one: the same frame a lone env shows after the same actions."""
    actions = np.random.default_rng(4).integers(0, 6, size=(20, 4))
    solo = ENV_FN()
    solo.reset(seed=3)
    for a in actions[:, 0]:
        last, *_ = solo.step(a)
    solo.close()
    with make_pool(4, workers, inline) as pool:
        pool.reset(seed=3)
        for a in actions:
            obs, _, _, trunc, infos = pool.step(a)
        assert trunc.all() and infos["_final_obs"].all()
        np.testing.assert_array_equal(infos["final_obs"]["screen"][0], last["screen"])
        np.testing.assert_array_equal(infos["final_obs"]["visited"][0], last["visited"])
        assert (obs["visited"][0] > 0).sum() == 16  # the new episode: one visited tile
        assert not np.array_equal(obs["visited"][0], infos["final_obs"]["visited"][0])
