"""One rollout: every env stepped ``num_steps`` times by the recurrent policy, into the PPO buffer.

:class:`Collector` steps the pool in lockstep (``step``) or, in ``async`` mode, acts for whichever
workers are ready (``send``/``recv``); both write the same buffer columns, bootstrap truncated
episodes (γ·V of their final observation, as sb3-contrib's RecurrentPPO does) and mask the columns
of envs whose worker was restarted. What the trainer does with the rest (finished episodes,
archive candidates, restarts) comes back in a :class:`Rollout`; nothing calls back into it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pokerl.archive import Entry
from pokerl.config import PPOConfig
from pokerl.policy import LSTMState, Policy
from pokerl.pool import VectorPool
from pokerl.ppo import TORCH_DTYPES, RolloutBuffer

Obs = dict[str, np.ndarray]


@dataclass
class Rollout:
    """What one rollout produced besides the buffer; ``at`` counts env steps of each env since its start."""

    episodes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (at, episode summary)
    offers: list[Entry] = field(default_factory=list)  # archive candidates, in the order they came
    restarts: int = 0  # worker processes restarted
    env_time: float = 0.0  # seconds spent waiting on the pool
    video: list[np.ndarray] = field(default_factory=list)  # env 0's last frames, when asked for


class Collector:
    """Fills a :class:`RolloutBuffer` from the pool with the policy; carries nothing between rollouts
    (the observations, LSTM state and episode starts are the caller's, passed in and returned)."""

    def __init__(self, pool: VectorPool, policy: Policy, ppo: PPOConfig, device: torch.device,
                 obs_space: Any, autocast: Callable[[], AbstractContextManager[Any]], asynchronous: bool) -> None:
        self.pool, self.policy, self.ppo, self.device, self.autocast = pool, policy, ppo, device, autocast
        self.asynchronous = asynchronous
        n = pool.num_envs
        # observations go to the GPU through pinned host buffers (an asynchronous copy; a pageable
        # one is staged by the driver through a pinned buffer of its own)
        on_gpu = device.type == "cuda"
        self._pinned = ({k: torch.empty((n, *sp.shape), dtype=TORCH_DTYPES[np.dtype(sp.dtype)], pin_memory=True)
                         for k, sp in obs_space.spaces.items()} if on_gpu else None)
        self._uploaded = torch.cuda.Event() if on_gpu else None  # recorded after each upload's copies

    def collect(self, buffer: RolloutBuffer, obs: Obs, state: LSTMState, starts: torch.Tensor,
                video_steps: int = 0) -> tuple[Rollout, Obs, LSTMState, torch.Tensor]:
        """Fill ``buffer`` (its ``valid`` mask reset); returns the rollout and the carried state after it.
        ``video_steps`` > 0: keep that many of env 0's frames."""
        self.policy.eval()
        buffer.valid.fill_(1.0)
        out = Rollout()
        collect = self._collect_async if self.asynchronous else self._collect_sync
        obs, state, starts = collect(buffer, obs, state, starts, out, video_steps)
        return out, obs, state, starts

    def upload(self, obs: Obs) -> dict[str, torch.Tensor]:
        """Observations (NumPy, up to num_envs rows) as tensors on the policy's device. On a GPU they
        are copied into pinned buffers first and on to the device asynchronously; the next upload
        waits for those copies before it writes the buffers again."""
        if self._pinned is None or self._uploaded is None:
            return {k: torch.as_tensor(v, device=self.device) for k, v in obs.items()}
        self._uploaded.synchronize()
        out = {}
        for k, v in obs.items():
            staged = self._pinned[k][: len(v)]
            staged.numpy()[...] = v
            out[k] = staged.to(self.device, non_blocking=True)
        self._uploaded.record()
        return out

    def value(self, obs: Obs, state: LSTMState, starts: torch.Tensor) -> torch.Tensor:
        """V(obs) under the policy (fp32), for GAE's last step and the bootstrap."""
        with torch.no_grad(), self.autocast():
            _, _, value, _ = self.policy.act(self.upload(obs), state, starts)
        return value.float()

    # ------------------------------------------------------------------ pieces of a step
    def _act(self, obs: Obs, state: LSTMState, starts: torch.Tensor) -> tuple[Any, ...]:
        obs_t = self.upload(obs)
        with torch.no_grad(), self.autocast():
            action, logprob, value, new_state = self.policy.act(obs_t, state, starts)
        return obs_t, action, logprob, value, new_state

    def _truncations(self, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
        """Indices (into these arrays) of envs to bootstrap: truncated, not terminated."""
        if not self.ppo.bootstrap_truncated:
            return np.empty(0, np.int64)
        return np.flatnonzero(truncated & ~terminated)

    def bootstrap(self, buffer: RolloutBuffer, t: int, envs: np.ndarray, final_obs: Obs, state: LSTMState) -> None:
        """Truncated episodes did not end in the game: add γ·V(final obs) to their last reward.
        ``envs``: buffer columns; ``state``: the LSTM state after their last step, before it is zeroed
        for the next episode."""
        value = self.value(final_obs, state, torch.zeros(len(envs), device=self.device))
        buffer.rewards[t, torch.as_tensor(envs, device=self.device)] += self.ppo.gamma * value

    def _lost(self, buffer: RolloutBuffer, envs: np.ndarray, starts: torch.Tensor, out: Rollout) -> None:
        """Envs whose worker was restarted: their columns leave this update's losses (their earlier
        steps' advantages would lean on values after the loss), and they start new episodes."""
        if len(envs):
            cols = torch.as_tensor(envs, device=self.device)
            buffer.valid[:, cols] = 0.0
            starts[cols] = 1.0
            out.restarts += len(envs) // self.pool.per_worker

    # ------------------------------------------------------------------ the two modes
    def _collect_sync(self, buffer: RolloutBuffer, obs: Obs, state: LSTMState, starts: torch.Tensor,
                      out: Rollout, video_steps: int) -> tuple[Obs, LSTMState, torch.Tensor]:
        """Every env steps in lockstep."""
        for t in range(self.ppo.num_steps):
            obs_t, action, logprob, value, new_state = self._act(obs, state, starts)
            buffer.add(t, obs_t, action, logprob, value, starts, state)
            if len(out.video) < video_steps:
                out.video.append(obs["screen"][0, :, :, -1].copy())
            t_env = time.perf_counter()
            obs, reward, terminated, truncated, infos = self.pool.step(action.cpu().numpy())
            out.env_time += time.perf_counter() - t_env
            buffer.rewards[t] = torch.as_tensor(reward, device=self.device)
            if len(ended := self._truncations(terminated, truncated)):
                final = {k: v[ended] for k, v in infos["final_obs"].items()}
                rows = torch.as_tensor(ended, device=self.device)
                self.bootstrap(buffer, t, ended, final, (new_state[0][:, rows], new_state[1][:, rows]))
            starts = torch.as_tensor(terminated | truncated, dtype=torch.float32, device=self.device)
            self._lost(buffer, infos["restarted"], starts, out)
            state = new_state
            out.offers.extend(entry for _, entry in infos["archive_entries"])
            out.episodes.extend((t + 1, summary) for _, summary in infos["episodes"])
        return obs, state, starts

    def _collect_async(self, buffer: RolloutBuffer, obs: Obs, state: LSTMState, starts: torch.Tensor,
                       out: Rollout, video_steps: int) -> tuple[Obs, LSTMState, torch.Tensor]:
        """Each worker's envs advance on their own: the policy acts for whichever workers are ready
        (at least half) while the others are still stepping."""
        pool, T, device = self.pool, self.ppo.num_steps, self.device
        per, workers = pool.per_worker, pool.num_workers
        obs = {k: v.copy() for k, v in obs.items()}
        h, c = state[0].clone(), state[1].clone()
        starts = starts.clone()
        t_of = [0] * workers

        def act_and_send(w: int) -> None:
            envs = slice(w * per, (w + 1) * per)
            group_state = (h[:, envs], c[:, envs])
            group_obs = {k: v[envs] for k, v in obs.items()}
            if w == 0 and len(out.video) < video_steps:
                out.video.append(obs["screen"][0, :, :, -1].copy())  # env 0, as the synchronous rollout records
            obs_t, action, logprob, value, (h_new, c_new) = self._act(group_obs, group_state, starts[envs])
            buffer.add(t_of[w], obs_t, action, logprob, value, starts[envs], group_state, envs=envs)
            h[:, envs], c[:, envs] = h_new, c_new
            pool.send(action.cpu().numpy(), np.arange(envs.start, envs.stop))

        for w in range(workers):
            act_and_send(w)
        while min(t_of) < T:
            t_env = time.perf_counter()
            env_ids, new_obs, reward, terminated, truncated, infos = pool.recv(min_workers=max(1, workers // 2))
            out.env_time += time.perf_counter() - t_env
            out.offers.extend(entry for _, entry in infos["archive_entries"])
            out.episodes.extend((min(t_of) + 1, summary) for _, summary in infos["episodes"])
            for k, v in new_obs.items():
                obs[k][env_ids] = v
            starts[env_ids] = torch.as_tensor(terminated | truncated, dtype=torch.float32, device=device)
            self._lost(buffer, env_ids[infos["restarted"]], starts, out)
            ended = self._truncations(terminated, truncated)  # positions in env_ids
            for w in sorted({int(i) // per for i in env_ids}):
                envs = slice(w * per, (w + 1) * per)
                mine = (env_ids >= envs.start) & (env_ids < envs.stop)
                buffer.rewards[t_of[w], envs] = torch.as_tensor(reward[mine], device=device)
                here = ended[mine[ended]]
                if len(here):
                    cols = torch.as_tensor(env_ids[here], device=device)
                    self.bootstrap(buffer, t_of[w], env_ids[here],
                                    {k: v[here] for k, v in infos["final_obs"].items()}, (h[:, cols], c[:, cols]))
                t_of[w] += 1
                if t_of[w] < T:
                    act_and_send(w)
        return obs, (h, c), starts
