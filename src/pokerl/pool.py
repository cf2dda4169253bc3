"""The vector pool: many envs stepped in groups, by worker processes and this one, through shared memory.

Envs are split into ``num_workers`` equal groups. With ``inline=True`` group 0 is stepped by this
process and the others by worker processes; with ``inline=False`` every group has a process of its
own; one group, inline, is the serial pool (no process at all, for debugging and evaluation).
Observations, rewards, done flags and final observations live in shared memory that workers write
and the trainer reads as NumPy views; actions go the other way. A step is one small message per
worker over a pipe (blocking, so an idle process sleeps instead of spinning: this matters on
2-core machines). Only episode summaries, at the end of an episode, and what :meth:`VectorPool.call`
and its kin return travel as pickled messages. The worker side (an env group, a worker's main loop)
is :mod:`pokerl.worker`.

The vocabulary is Gymnasium's vector API: ``single_observation_space``, ``single_action_space``,
``reset() -> (obs, infos)``, ``step(actions) -> (obs, rewards, terminated, truncated, infos)``.
Envs reset themselves when an episode ends, in the same step (Gymnasium's same-step autoreset):
the observation returned for that env is the first of its next episode, and ``infos["final_obs"]``
holds the last one, valid where ``infos["_final_obs"]`` is set. ``infos["episodes"]`` lists
``(env index, summary)`` for each finished episode, ``infos["archive_entries"]`` ``(env index,
entry)`` for each state offered to the milestone archive. :meth:`VectorPool.call` and
:meth:`VectorPool.get_attr` reach every env's own methods and attributes (handing them the archive,
snapshots for exact resume), :meth:`VectorPool.call_at` one method on chosen envs with arguments
of their own (restoring snapshots, swarm jumps).

Inline stepping saves a process, its wake-ups and a core left idle while this process would only
wait (measured with 8 envs on 2 cores: ~7% more env steps/s than two worker processes in
lockstep). :meth:`VectorPool.send` / :meth:`VectorPool.recv` step worker groups independently so
the trainer can act for whichever half is ready (every group in a process of its own).

Arrays returned by ``reset``/``step`` are views of buffers that the next call overwrites: copy what
you keep.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import multiprocessing as mp
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import gymnasium as gym
import numpy as np

from pokerl.errors import PokerlError
from pokerl.spec import GameSpec
from pokerl.worker import EnvFn, EnvGroup, Episodes, Obs, Offers, allocate, array_specs, prefixed, serve, views

StepResult = tuple[Obs, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]

MODES = ("serial", "inline", "workers", "async")


@dataclass
class PoolConfig:
    """``pool:`` in ``configs/train.yaml``: where envs are stepped (see the module docstring).

    ``serial``: every env in the trainer process (``workers: 1``); ``inline``: ``workers`` groups,
    group 0 in the trainer process; ``workers``: one process per group, the trainer only waits;
    ``async``: one process per group, the policy acts for the half that is ready (``workers >= 2``).
    """

    mode: str = "inline"
    workers: int = 2
    step_timeout_s: float = 120.0  # a worker that does not answer a step this long is restarted
    start_timeout_s: float = 900.0  # ... or does not finish starting (a Pokémon start state takes seconds)
    max_restarts: int = 3  # restarts in a row (updates with one) before the run stops

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        if self.workers < 1:
            raise ValueError(f"workers: must be >= 1, got {self.workers}")
        if self.step_timeout_s <= 0 or self.start_timeout_s <= 0 or self.max_restarts < 0:
            raise ValueError("step_timeout_s and start_timeout_s must be > 0, max_restarts >= 0")
        if self.mode == "serial" and self.workers != 1:
            raise ValueError(f"mode=serial steps every env in the trainer process: it takes workers=1, "
                             f"got {self.workers}")
        if self.mode == "async" and self.workers < 2:
            raise ValueError(f"mode=async steps half of the worker groups at a time: it needs workers >= 2, "
                             f"got {self.workers}")

    @property
    def inline(self) -> bool:
        return self.mode in ("serial", "inline")


class WorkerError(RuntimeError):
    """A worker process failed with an unexpected error (its traceback is in the message)."""


class WorkerLost(Exception):
    """A worker process died or did not answer in time; the pool restarts it."""


class VectorPool:
    """``num_envs`` envs in ``num_workers`` groups; see the module docstring."""

    def __init__(self, env_fns: Sequence[EnvFn], spec: GameSpec, num_workers: int = 1, inline: bool = True,
                 context: str = "spawn", step_timeout_s: float | None = None, start_timeout_s: float | None = None
                 ) -> None:
        """``env_fns`` build the envs (each must have ``spec``'s spaces); ``inline``: group 0 in this
        process. With ``step_timeout_s`` a worker process that dies or does not answer a step in time
        is killed and started again with fresh envs (``infos["restarted"]``); group 0 in this process
        cannot be timed out from inside, so a watchdog dumps every thread's stack and ends the
        process (exit 1) when its step takes longer: ``resume=`` continues from the last checkpoint."""
        n = len(env_fns)
        if num_workers < 1 or n % num_workers:
            raise ValueError(f"num_envs ({n}) must be a positive multiple of the pool's workers ({num_workers})")
        self.num_envs, self.num_workers = n, num_workers
        self.per_worker = per = n // num_workers
        self.single_observation_space: gym.spaces.Dict = spec.observation_space
        self.single_action_space: gym.spaces.Discrete = spec.action_space
        self._ctx = ctx = mp.get_context(context)
        self._specs = specs = array_specs(self.single_observation_space, n)
        self._env_fns = list(env_fns)
        self.step_timeout_s, self.start_timeout_s = step_timeout_s, start_timeout_s
        self.restarts = 0  # worker processes restarted so far
        # the watchdog of the group stepped in this process: a SIGALRM dumps the stacks (C-level, so
        # even with the interpreter stuck in the emulator) and then, as by default, ends the process
        # (to the real stderr: a replaced sys.stderr, as under pytest, has no file descriptor)
        self._watchdog = (inline and step_timeout_s is not None and sys.__stderr__ is not None
                          and threading.current_thread() is threading.main_thread())
        if self._watchdog:
            faulthandler.register(signal.SIGALRM, file=sys.__stderr__, all_threads=True, chain=True)
        # the envs' seeds as of the last reset: a restarted worker's fresh envs get seeds after them (a
        # caller that restores envs by set_state instead of a reset sets it to what the reset would have had)
        self.seed: int | None = None
        self._restarted_between: list[int] = []  # workers restarted outside a step: reported by the next
        self._replayed: dict[str, tuple[Any, ...]] = {}  # call(..., replay=True) by method: a restart repeats it
        remote = range(1 if inline else 0, num_workers)  # groups stepped by worker processes
        alloc = (lambda size: ctx.RawArray(ctypes.c_uint8, size)) if len(remote) else bytearray
        self._raw = allocate(specs, alloc)
        self._arrays = views(self._raw, specs)
        self._remote = remote
        self._local: EnvGroup | None = None  # group 0 when this process steps it
        self._conns: dict[int, Connection] = {}
        self._procs: dict[int, Any] = {}
        self._busy = [False] * num_workers
        self._closed = False
        try:
            for w in self._remote:
                self._start(w)
            if inline:  # built while the worker processes boot theirs
                self._local = EnvGroup([fn() for fn in env_fns[:per]], 0, self._arrays, self.single_observation_space)
            for w in self._remote:
                self._ready(w)
        except BaseException:
            self.close()
            raise

    def _start(self, w: int) -> None:
        """Start worker process ``w`` (it builds its envs; :meth:`_ready` waits for them)."""
        per = self.per_worker
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=serve, daemon=True, name=f"pokerl-worker-{w}",
            args=(child, self._env_fns[w * per : (w + 1) * per], w * per, self._raw, self._specs,
                  self.single_observation_space),
        )
        proc.start()
        child.close()
        self._conns[w] = parent
        self._procs[w] = proc

    def _ready(self, w: int) -> None:
        try:
            self._reply(w, self.start_timeout_s)
        except WorkerLost as err:
            raise WorkerError(f"{err} while starting") from None

    def _restart(self, w: int, why: WorkerLost) -> None:
        """Kill worker ``w`` (dead, hung or stopped) and start it again with fresh envs, reset with
        seeds no env has had; its envs' results this step are a reset, not a transition."""
        proc = self._procs[w]
        proc.kill()  # SIGKILL ends a process stopped by SIGSTOP too
        proc.join(timeout=10)
        self._conns[w].close()
        self._start(w)
        self._ready(w)
        self.restarts += 1
        for name, args in self._replayed.items():  # before the reset: it may depend on them (the archive)
            self._conns[w].send(("call", (name, args)))
            self._reply(w, self.start_timeout_s)
        seed = None if self.seed is None else self.seed + self.num_envs * (1000 + self.restarts)
        self._conns[w].send(("reset", seed))
        self._reply(w, self.start_timeout_s)
        print(f"pokerl: warning: {why}: restarted it with fresh envs (restart {self.restarts} of this run)",
              file=sys.stderr, flush=True)

    # ---------------------------------------------------------------- messaging
    def _reply(self, w: int, timeout: float | None = None) -> Any:
        """Wait for worker ``w``'s answer (:class:`WorkerLost` when it died or ``timeout`` passed);
        turn its failure into an exception here."""
        conn = self._conns[w]
        try:
            if timeout is not None and not conn.poll(timeout):
                raise WorkerLost(f"worker {w} did not answer within {timeout:g} s")
            status, payload = conn.recv()
        except (EOFError, OSError):
            self._procs[w].join(timeout=1)
            raise WorkerLost(f"worker {w} died (exit code {self._procs[w].exitcode})") from None
        if status == "pokerl_error":
            raise PokerlError(payload)
        if status == "error":
            raise WorkerError(f"worker {w}: {payload}")
        return payload

    def _command(self, cmd: str, args: Sequence[Any] | None = None) -> None:
        """Send ``cmd`` to every worker process (``args[w]`` to worker ``w`` when given)."""
        for w in self._remote:
            self._send(w, (cmd, None if args is None else args[w]))

    def _send(self, w: int, message: tuple[str, Any]) -> None:
        """Send to worker ``w``; a dead one is noticed by its reply (:meth:`_reply`), not here."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._conns[w].send(message)

    def _replies(self, cmd: str, args: Sequence[Any] | None = None) -> list[Any]:
        """Every worker's answer to ``cmd`` (sent by :meth:`_command`); a worker lost meanwhile is
        restarted and asked again (its envs are fresh: the next step reports them restarted)."""
        out = []
        for w in self._remote:
            try:
                out.append(self._reply(w, self.step_timeout_s))
            except WorkerLost as lost:
                self._restart(w, lost)
                self._restarted_between.append(w)
                self._send(w, (cmd, None if args is None else args[w]))
                out.append(self._reply(w, self.start_timeout_s))
        return out

    def _everywhere(self, cmd: str, args: Sequence[Any]) -> list[Any]:
        """Every group's answer to ``cmd`` with ``args[w]``, in group order; the worker processes work
        on theirs while this process runs group 0."""
        self._command(cmd, args)
        local = [self._local.handle(cmd, args[0])] if self._local is not None else []
        return local + self._replies(cmd, args)

    def _infos(self, episodes: Episodes, offers: Offers, index: Any = slice(None)) -> dict[str, Any]:
        a = self._arrays
        done = a["terminated"][index] | a["truncated"][index]
        # views for the whole pool; for a group (fancy index: a copy) only when one of its envs ended
        final = prefixed(a, "final/", index) if isinstance(index, slice) or done.any() else {}
        return {"episodes": episodes, "final_obs": final, "_final_obs": done, "archive_entries": offers}

    # ---------------------------------------------------------------- synchronous API
    def reset(self, seed: int | None = None) -> tuple[Obs, dict[str, Any]]:
        """Reset every env (env i with ``seed + i``); returns the observations (views) and infos."""
        self.seed = seed
        self._everywhere("reset", [seed] * self.num_workers)
        self._busy = [False] * self.num_workers
        return prefixed(self._arrays, "obs/"), {}

    def step(self, actions: np.ndarray) -> StepResult:
        """Step every env with ``actions`` (num_envs,); autoreset; returns views and infos."""
        self._arrays["actions"][:] = actions
        self._command("step")
        episodes, offers = self._step_local()
        restarted, self._restarted_between = self._restarted_between, []
        for w in self._remote:
            try:
                finished, offered = self._reply(w, self.step_timeout_s)
            except WorkerLost as lost:
                self._restart(w, lost)
                restarted.append(w)
                continue
            episodes.extend(finished)
            offers.extend(offered)
        lost = self._mark_restarted(restarted)
        a = self._arrays
        infos = self._infos(episodes, offers)
        infos["restarted"] = lost
        return prefixed(a, "obs/"), a["rewards"], a["terminated"], a["truncated"], infos

    def _step_local(self) -> tuple[Episodes, Offers]:
        if self._local is None:
            return [], []
        if not self._watchdog:
            return self._local.step()
        # An emulator stuck in this process cannot be recovered from here: SIGALRM after the timeout
        # makes faulthandler dump every stack, then ends the process. Two setitimer calls cost ~2 µs
        # (arming faulthandler's own timer starts a thread each time: ~86 µs, measured here).
        signal.setitimer(signal.ITIMER_REAL, float(self.step_timeout_s or 0))
        try:
            return self._local.step()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0.0)

    def _mark_restarted(self, workers: list[int], index: np.ndarray | None = None) -> np.ndarray:
        """The restarted workers' env indices (into ``index`` when given); their step is no transition:
        reward 0, no episode end, no final observation."""
        per, a = self.per_worker, self._arrays
        envs = np.array([i for w in workers for i in range(w * per, (w + 1) * per)], np.int64)
        a["rewards"][envs] = 0.0
        a["terminated"][envs] = False
        a["truncated"][envs] = False
        if index is None:
            return envs
        return np.flatnonzero(np.isin(index, envs))

    # ---------------------------------------------------------------- the envs' own methods and attributes
    def call(self, name: str, *args: Any, replay: bool = False) -> tuple[Any, ...]:
        """``env.unwrapped.<name>(*args)`` on every env; the results in env order (Gymnasium's ``call``).

        ``replay``: the fresh envs of a worker restarted later get this call too, before their reset
        (the last such call of each method is kept): what every env must hold for the whole run,
        such as the archive frontier resets start from.
        """
        if replay:
            self._replayed[name] = args
        return tuple(r for group in self._everywhere("call", [(name, args)] * self.num_workers) for r in group)

    def call_at(self, name: str, env_ids: Sequence[int], *args: Sequence[Any]) -> tuple[Any, ...]:
        """``env.unwrapped.<name>(args[0][j], args[1][j], ...)`` on env ``env_ids[j]``; the results in
        that order. For what takes an argument of each env's own (a snapshot, an archive entry).

        Methods that move an env elsewhere (``set_state``, ``jump``) return its new observation: the
        caller keeps it where it keeps the observations of the last ``reset``/``step``. The pool's
        buffers are written by ``reset`` and ``step`` only: a generic call cannot know which results
        are observations, and the next step overwrites the buffers anyway.
        """
        if any(len(a) != len(env_ids) for a in args):
            raise ValueError(f"{name}: {[len(a) for a in args]} arguments for {len(env_ids)} envs")
        calls: list[list[tuple[int, tuple[Any, ...]]]] = [[] for _ in range(self.num_workers)]
        order: list[list[int]] = [[] for _ in range(self.num_workers)]  # positions in env_ids, by group
        for j, i in enumerate(env_ids):
            calls[int(i) // self.per_worker].append((int(i), tuple(a[j] for a in args)))
            order[int(i) // self.per_worker].append(j)
        results: list[Any] = [None] * len(env_ids)
        for positions, out in zip(order, self._everywhere("call_at", [(name, c) for c in calls]), strict=True):
            for j, r in zip(positions, out, strict=True):
                results[j] = r
        return tuple(results)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """``env.unwrapped.<name>`` of every env, in env order (Gymnasium's ``get_attr``); from a worker
        process it arrives as a pickled copy."""
        return tuple(r for group in self._everywhere("get_attr", [name] * self.num_workers) for r in group)

    def worker_pids(self) -> dict[int, int]:
        """The process id of each worker group stepped by a process of its own (group 0 is absent
        when this process steps it); a restarted worker has a new one."""
        return {w: int(proc.pid) for w, proc in self._procs.items()}

    # ---------------------------------------------------------------- asynchronous API
    def send(self, actions: np.ndarray, env_ids: np.ndarray) -> None:
        """Start stepping the workers that own ``env_ids`` (whole worker groups) with ``actions``."""
        if self._local is not None:
            raise RuntimeError("asynchronous stepping needs every worker group in its own process (inline=False)")
        env_ids = np.asarray(env_ids)
        self._arrays["actions"][env_ids] = actions
        for w in sorted({int(i) // self.per_worker for i in env_ids}):
            if self._busy[w]:
                raise RuntimeError(f"worker {w} is already stepping; recv() it first")
            self._busy[w] = True
            self._send(w, ("step", None))

    def recv(self, min_workers: int = 1) -> tuple[np.ndarray, Obs, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Wait until at least ``min_workers`` busy workers are done; returns their envs' results.

        Returns (env_ids, obs, rewards, terminated, truncated, infos) for those envs (copies).
        """
        pending = {self._conns[w]: w for w in range(self.num_workers) if self._busy[w]}
        if not pending:
            raise RuntimeError("recv() with no worker stepping: send() first")
        done: list[int] = []
        restarted: list[int] = []
        episodes: Episodes = []
        offers: Offers = []
        while len(done) < min(min_workers, len(pending) + len(done)) and pending:
            ready = wait(list(pending), self.step_timeout_s)
            if not ready:  # none answered in time: every pending one is lost
                ready = list(pending)
            for conn in ready:
                w = pending.pop(conn)  # type: ignore[call-overload]
                try:
                    finished, offered = self._reply(w, 0 if self.step_timeout_s is not None else None)
                except WorkerLost as lost:
                    self._restart(w, lost)
                    restarted.append(w)
                    finished, offered = [], []
                episodes.extend(finished)
                offers.extend(offered)
                self._busy[w] = False
                done.append(w)
        done.sort()
        # workers restarted by a call, call_at or get_attr since their last step
        restarted += [w for w in done if w in self._restarted_between and w not in restarted]
        self._restarted_between = [w for w in self._restarted_between if w not in done]
        env_ids = np.concatenate([np.arange(w * self.per_worker, (w + 1) * self.per_worker) for w in done])
        lost_rows = self._mark_restarted(restarted, env_ids)
        a = self._arrays
        infos = self._infos(episodes, offers, env_ids)
        infos["restarted"] = lost_rows
        return (env_ids, prefixed(a, "obs/", env_ids), a["rewards"][env_ids], a["terminated"][env_ids],
                a["truncated"][env_ids], infos)

    # ---------------------------------------------------------------- shutdown
    def close(self) -> None:
        """Stop the workers (politely, then by force) and release the shared memory."""
        if self._closed:
            return
        self._closed = True
        for conn in self._conns.values():
            with contextlib.suppress(Exception):
                conn.send(("close", None))
        for proc in self._procs.values():
            proc.join(timeout=5)
            if proc.is_alive():  # workers ignore SIGTERM: kill
                proc.kill()
                proc.join(timeout=5)
        for conn in self._conns.values():
            conn.close()
        if self._local is not None:
            self._local.close()
        if self._watchdog:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            faulthandler.unregister(signal.SIGALRM)

    def __enter__(self) -> VectorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def make_pool(env_fns: Sequence[EnvFn], spec: GameSpec, cfg: PoolConfig) -> VectorPool:
    """The pool a :class:`PoolConfig` describes."""
    return VectorPool(env_fns, spec, cfg.workers, inline=cfg.inline, step_timeout_s=cfg.step_timeout_s,
                      start_timeout_s=cfg.start_timeout_s)
