"""The pool's worker side: a group of envs stepping into shared arrays, and the process loop that serves one.

The pool lays out one set of arrays for all its envs (:func:`array_specs`): observations, final
observations, rewards, done flags and actions. An :class:`EnvGroup` owns the rows of envs
[start, start + len(envs)): it reads its actions there and writes what its envs return, so a step
needs only a small message. :func:`serve` is a worker process's main loop; the pool's own group
(``inline``) is the same class stepped by the trainer's process.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np

from pokerl.archive import Entry
from pokerl.errors import PokerlError, one_line
from pokerl.interrupt import ignore_stop_signals

EnvFn = Callable[[], gym.Env]
Episodes = list[tuple[int, dict[str, Any]]]  # (env index, episode summary)
Offers = list[tuple[int, Entry]]  # (env index, archive entry offered)
Obs = dict[str, np.ndarray]
Specs = dict[str, tuple[tuple[int, ...], str]]


def array_specs(obs_space: gym.spaces.Dict, n: int) -> Specs:
    """Shape and dtype of every shared array: observations, final observations, rewards, flags, actions."""
    specs: Specs = {}
    for prefix in ("obs/", "final/"):
        specs.update({prefix + k: ((n, *sp.shape), np.dtype(sp.dtype).str) for k, sp in obs_space.spaces.items()})
    specs.update({
        "rewards": ((n,), np.dtype(np.float32).str),
        "terminated": ((n,), np.dtype(np.bool_).str),
        "truncated": ((n,), np.dtype(np.bool_).str),
        "actions": ((n,), np.dtype(np.int64).str),
    })
    return specs


def allocate(specs: Specs, alloc: Callable[[int], Any]) -> dict[str, Any]:
    """One raw buffer per array of ``specs``, from ``alloc(size in bytes)``."""
    return {name: alloc(max(int(np.prod(shape)) * np.dtype(dt).itemsize, 1)) for name, (shape, dt) in specs.items()}


def views(raw: dict[str, Any], specs: Specs) -> dict[str, np.ndarray]:
    """NumPy views of raw buffers laid out by ``specs``."""
    return {name: np.frombuffer(raw[name], dtype=np.dtype(dt)).reshape(shape) for name, (shape, dt) in specs.items()}


def prefixed(arrays: dict[str, np.ndarray], prefix: str, index: Any = slice(None)) -> Obs:
    """The observation arrays under ``prefix`` (``obs/`` or ``final/``), keyed by observation name, at ``index``."""
    return {k[len(prefix):]: v[index] for k, v in arrays.items() if k.startswith(prefix)}


class EnvGroup:
    """Envs [start, start + len(envs)) writing into a set of (shared) arrays."""

    def __init__(self, envs: list[gym.Env], start: int, arrays: dict[str, np.ndarray],
                 space: gym.spaces.Dict) -> None:
        for env in envs:
            if env.observation_space != space:
                raise RuntimeError(f"an env's observation space {env.observation_space} is not the pool's {space}")
        self.envs, self.start = envs, start
        rows = slice(start, start + len(envs))
        self.obs, self.final = prefixed(arrays, "obs/", rows), prefixed(arrays, "final/", rows)
        self.rewards, self.actions = arrays["rewards"][rows], arrays["actions"][rows]
        self.terminated, self.truncated = arrays["terminated"][rows], arrays["truncated"][rows]

    @staticmethod
    def _write(dst: Obs, i: int, obs: Obs) -> None:
        for k, v in obs.items():
            dst[k][i] = v

    def handle(self, cmd: str, arg: Any) -> Any:
        """Run one of the pool's commands (``reset``, ``step``, ``call``, ``call_at``, ``get_attr``) on this group."""
        if cmd == "reset":
            return self.reset(arg)
        if cmd == "step":
            return self.step()
        if cmd == "call":
            name, args = arg
            return [getattr(env.unwrapped, name)(*args) for env in self.envs]
        if cmd == "call_at":
            name, calls = arg
            return [getattr(self.envs[i - self.start].unwrapped, name)(*args) for i, args in calls]
        if cmd == "get_attr":
            return [getattr(env.unwrapped, arg) for env in self.envs]
        raise ValueError(f"unknown pool command {cmd!r}")

    def reset(self, seed: int | None) -> None:
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=None if seed is None else seed + self.start + i)
            self._write(self.obs, i, obs)
        self.rewards[:] = 0
        self.terminated[:] = False
        self.truncated[:] = False

    def step(self) -> tuple[Episodes, Offers]:
        episodes: Episodes = []
        offers: Offers = []
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, info = env.step(self.actions[i])
            if "archive_entry" in info:
                offers.append((self.start + i, info["archive_entry"]))
            if terminated or truncated:
                episodes.append((self.start + i, info.get("episode", {})))
                self._write(self.final, i, obs)
                obs, _ = env.reset()
            self._write(self.obs, i, obs)
            self.rewards[i] = reward
            self.terminated[i] = terminated
            self.truncated[i] = truncated
        return episodes, offers

    def close(self) -> None:
        for env in self.envs:
            with contextlib.suppress(Exception):
                env.close()


def serve(conn: Connection, env_fns: Sequence[EnvFn], start: int, raw: dict[str, Any], specs: Specs,
          space: gym.spaces.Dict) -> None:
    """Worker process main loop: build the envs, answer ``("ok", None)``, then answer each command
    ``(cmd, arg)`` with ``("ok", result)`` until ``close``; a failure is answered with its message."""
    # Ctrl-C and SIGTERM may reach every process of the group: the trainer decides what they mean
    # (finish the update, checkpoint, then close the workers), so workers ignore them.
    ignore_stop_signals()
    group = None
    try:
        group = EnvGroup([fn() for fn in env_fns], start, views(raw, specs), space)
        conn.send(("ok", None))
        while True:
            cmd, arg = conn.recv()
            if cmd == "close":
                break
            conn.send(("ok", group.handle(cmd, arg)))
    except KeyboardInterrupt:
        pass
    except PokerlError as err:
        with contextlib.suppress(Exception):
            conn.send(("pokerl_error", one_line(err)))
    except Exception as err:  # report anything else with its traceback
        with contextlib.suppress(Exception):
            conn.send(("error", f"{one_line(err)}\n{traceback.format_exc()}"))
    finally:
        if group is not None:
            group.close()
        conn.close()
