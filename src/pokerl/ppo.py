"""PPO for a recurrent policy: rollout storage, GAE, the clipped losses and the update.

Read it top to bottom like CleanRL's ``ppo_atari_lstm.py``. Shapes: T = rollout steps per env,
N = envs, L = ``bptt`` (steps per training sequence), S = T / L segments per env; a training
sequence is one (segment, env) pair, and a minibatch is a set of sequences whose LSTM is re-run
from the state stored at the start of its segment (truncated BPTT over L steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from pokerl.config import PPOConfig
from pokerl.errors import PokerlError
from pokerl.policy import LSTMState

if TYPE_CHECKING:  # the self-imitation loss uses masked_mean from here
    from pokerl.imitation import SelfImitation


def autocast(device_type: str, bf16: bool) -> AbstractContextManager[Any]:
    """The policy's forward pass in bf16 (``bf16: true``; a GPU's tensor cores), else in fp32."""
    if bf16:
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return torch.autocast(device_type=device_type, enabled=False)


TORCH_DTYPES = {np.dtype(np.uint8): torch.uint8, np.dtype(np.float32): torch.float32}  # observation dtypes


class RolloutBuffer:
    """Preallocated (T, N, ...) storage for one rollout, plus the LSTM state at each segment start."""

    def __init__(self, num_steps: int, num_envs: int, obs_space: gym.spaces.Dict, bptt: int, hidden: int,
                 device: torch.device | str) -> None:
        T, N = num_steps, num_envs
        self.T, self.N, self.bptt, self.device = T, N, bptt, torch.device(device)
        self.obs = {
            k: torch.zeros((T, N, *sp.shape), dtype=TORCH_DTYPES[np.dtype(sp.dtype)], device=device)
            for k, sp in obs_space.spaces.items()
        }
        self.actions = torch.zeros((T, N), dtype=torch.long, device=device)
        self.logprobs = torch.zeros((T, N), device=device)
        self.values = torch.zeros((T, N), device=device)
        self.rewards = torch.zeros((T, N), device=device)
        self.episode_starts = torch.zeros((T, N), device=device)  # 1 where obs[t] begins an episode
        self.advantages = torch.zeros((T, N), device=device)
        self.returns = torch.zeros((T, N), device=device)
        self.valid = torch.ones((T, N), device=device)  # 0: masked out of the losses (an env lost mid-rollout)
        S = T // bptt
        self.segment_h = torch.zeros((S, 1, N, hidden), device=device)
        self.segment_c = torch.zeros((S, 1, N, hidden), device=device)

    def add(self, t: int, obs: dict[str, torch.Tensor], action: torch.Tensor, logprob: torch.Tensor,
            value: torch.Tensor, episode_start: torch.Tensor, state: LSTMState, envs: slice = slice(None)) -> None:
        """Store what the policy saw and did at step ``t`` for ``envs`` (all by default).

        ``state`` is the LSTM state the policy was given at step t. The reward of step t is
        written to ``rewards[t]`` once the envs have stepped.
        """
        for k, v in obs.items():
            self.obs[k][t, envs] = v
        self.actions[t, envs] = action
        self.logprobs[t, envs] = logprob
        self.values[t, envs] = value
        self.episode_starts[t, envs] = episode_start
        if t % self.bptt == 0:
            self.segment_h[t // self.bptt, :, envs] = state[0]
            self.segment_c[t // self.bptt, :, envs] = state[1]


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, episode_starts: torch.Tensor, next_value: torch.Tensor,
                next_start: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over (T, N); returns (advantages, returns).

    ``episode_starts[t]`` is 1 when obs t begins a new episode (so step t-1 ended one);
    ``next_value``/``next_start`` describe the observation after the last stored step.
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(next_value)
    for t in reversed(range(T)):
        if t == T - 1:
            next_nonterminal, next_values = 1.0 - next_start, next_value
        else:
            next_nonterminal, next_values = 1.0 - episode_starts[t + 1], values[t + 1]
        delta = rewards[t] + gamma * next_values * next_nonterminal - values[t]
        last_gae = delta + gamma * lam * next_nonterminal * last_gae
        advantages[t] = last_gae
    return advantages, advantages + values


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The mean of ``x``, or of its entries where ``mask`` is 1."""
    return x.mean() if mask is None else (x * mask).sum() / mask.sum().clamp(min=1.0)


def kl_and_clipfrac(new_logprob: torch.Tensor, old_logprob: torch.Tensor, clip: float,
                    mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The approximate KL (http://joschu.net/blog/kl-approx.html, k3) and the share of clipped ratios,
    over the valid steps (``target_kl`` stops on the first: lost envs' steps must not count)."""
    logratio = new_logprob - old_logprob
    ratio = logratio.exp()
    return masked_mean((ratio - 1) - logratio, mask), masked_mean(((ratio - 1).abs() > clip).float(), mask)


def policy_loss(new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor,
                clip: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The clipped surrogate objective, as a loss: mean of max(-A·r, -A·clip(r, 1±ε))."""
    ratio = (new_logprob - old_logprob).exp()
    return masked_mean(torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)), mask)


def value_loss(new_value: torch.Tensor, old_value: torch.Tensor, returns: torch.Tensor,
               clip: float | None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """0.5 · mean squared error, with the PPO2 clipped variant when ``clip`` is given."""
    unclipped = (new_value - returns) ** 2
    if clip is None:
        return 0.5 * masked_mean(unclipped, mask)
    clipped = (old_value + (new_value - old_value).clamp(-clip, clip) - returns) ** 2
    return 0.5 * masked_mean(torch.max(unclipped, clipped), mask)


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var(target - predicted) / Var(target); nan when the target is constant."""
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - predicted).var() / var)


def _sequences(x: torch.Tensor, L: int) -> torch.Tensor:
    """(T, N, ...) → (L, S·N, ...): column s·N + n is segment s of env n."""
    T, N = x.shape[:2]
    S = T // L
    return x.reshape(S, L, N, *x.shape[2:]).transpose(0, 1).reshape(L, S * N, *x.shape[2:])


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")  # nan: every optimiser step was skipped


class NonFiniteError(PokerlError):
    """Too many optimiser steps in a row had a non-finite loss or gradient: the run diverged."""


def ppo_update(policy: nn.Module, optimizer: torch.optim.Optimizer, buffer: RolloutBuffer, cfg: PPOConfig,
               before_step: Callable[[], None] | None = None, agree: Callable[[bool], bool] | None = None,
               streak: int = 0, autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
               imitation: SelfImitation | None = None) -> dict[str, float]:
    """``update_epochs`` passes of minibatch PPO over the buffer; returns the logged statistics.

    ``before_step`` runs between ``backward`` and the optimiser step (gradient all-reduce under
    torchrun); ``autocast`` wraps the policy's forward pass (bf16). A minibatch whose loss or
    gradient norm is not finite skips its optimiser step (``fault/nonfinite_steps`` counts them;
    ``agree`` makes every rank skip alike); more than
    ``cfg.max_nonfinite`` skipped in a row, counting the ``streak`` of earlier updates, raise
    :class:`NonFiniteError`. ``fault/nonfinite_streak`` is the streak at the end, for the next call.
    ``imitation`` adds its self-imitation loss on the chain (:mod:`pokerl.imitation`) to every minibatch,
    over a share of its sequences.
    """
    L = buffer.bptt
    obs = {k: _sequences(v, L) for k, v in buffer.obs.items()}  # (L, S·N, ...)
    actions, old_logprobs, old_values = (_sequences(x, L) for x in (buffer.actions, buffer.logprobs, buffer.values))
    advantages, returns = _sequences(buffer.advantages, L), _sequences(buffer.returns, L)
    starts = _sequences(buffer.episode_starts, L)
    # columns of envs lost mid-rollout are left out (one read: the usual all-valid case stays plain)
    valid = None if bool(buffer.valid.all()) else _sequences(buffer.valid, L)
    S, N = buffer.segment_h.shape[0], buffer.N
    h0 = buffer.segment_h.permute(1, 0, 2, 3).reshape(1, S * N, -1)  # (1, S·N, hidden)
    c0 = buffer.segment_c.permute(1, 0, 2, 3).reshape(1, S * N, -1)

    num_seq = S * N
    if imitation is not None:
        imitation.prepare(policy, autocast)
    stats: dict[str, list[float]] = {k: [] for k in ("policy", "value", "entropy", "approx_kl", "clipfrac",
                                                     "imitation")}
    skipped = 0
    for _epoch in range(cfg.update_epochs):
        order = torch.randperm(num_seq, device=buffer.device)
        # num_minibatches minibatches of sequences, sizes within one of each other
        minibatches = order.tensor_split(min(cfg.num_minibatches, num_seq))
        demo_shares = imitation.minibatches(len(minibatches)) if imitation is not None else [None] * len(minibatches)
        for idx, demo_idx in zip(minibatches, demo_shares, strict=True):
            mb_obs = {k: v[:, idx] for k, v in obs.items()}
            with autocast():  # the forward only (bf16 on a GPU); losses, backward and the step in fp32
                logits, new_values, _ = policy(mb_obs, (h0[:, idx], c0[:, idx]), starts[:, idx])
            dist = Categorical(logits=logits.float())
            new_logprobs = dist.log_prob(actions[:, idx])
            mb_valid = None if valid is None else valid[:, idx]
            entropy = masked_mean(dist.entropy(), mb_valid)
            mb_adv = advantages[:, idx]
            if cfg.norm_adv and mb_valid is None:
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
            elif cfg.norm_adv:  # statistics over the valid steps only
                kept = mb_adv[mb_valid.bool()]
                mb_adv = (mb_adv - kept.mean()) / (kept.std() + 1e-8) if kept.numel() > 1 else mb_adv * 0

            pg_loss = policy_loss(new_logprobs, old_logprobs[:, idx], mb_adv, cfg.clip_coef, mb_valid)
            v_loss = value_loss(new_values.float(), old_values[:, idx], returns[:, idx],
                                cfg.vf_clip_coef if cfg.clip_vloss else None, mb_valid)
            loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
            sil_loss = torch.zeros((), device=loss.device)
            if imitation is not None and len(demo_idx):
                sil_loss = imitation.loss(policy, demo_idx, autocast)
                loss = loss + sil_loss

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if before_step is not None:
                before_step()
            grad_norm = nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            with torch.no_grad():
                approx_kl, clipfrac = kl_and_clipfrac(new_logprobs, old_logprobs[:, idx], cfg.clip_coef, mb_valid)
                # one device-to-host read per minibatch for every figure (each .item() is a GPU sync)
                figures = torch.stack([loss, grad_norm.float(), pg_loss, v_loss, entropy, approx_kl, clipfrac,
                                       sil_loss])
            loss_v, norm_v, pg_v, value_v, entropy_v, kl_v, clip_v, sil_v = figures.tolist()
            finite = math.isfinite(loss_v) and math.isfinite(norm_v)
            if agree is not None:
                finite = agree(finite)
            if not finite:
                skipped, streak = skipped + 1, streak + 1
                optimizer.zero_grad(set_to_none=True)
                if streak > cfg.max_nonfinite:
                    raise NonFiniteError(f"{streak} optimiser steps in a row had a non-finite loss or gradient "
                                         f"(ppo.max_nonfinite={cfg.max_nonfinite}): the run stopped; its last good "
                                         "checkpoint is checkpoints/latest.pt")
                continue
            streak = 0
            optimizer.step()
            for key, value in (("approx_kl", kl_v), ("clipfrac", clip_v), ("policy", pg_v), ("value", value_v),
                               ("entropy", entropy_v), ("imitation", sil_v)):
                stats[key].append(value)
        if cfg.target_kl is not None and stats["approx_kl"] and stats["approx_kl"][-1] > cfg.target_kl:
            break
    return {
        "loss/policy": _mean(stats["policy"]),
        "loss/value": _mean(stats["value"]),
        "loss/entropy": _mean(stats["entropy"]),
        "ppo/approx_kl": _mean(stats["approx_kl"]),
        "ppo/clipfrac": _mean(stats["clipfrac"]),
        "ppo/explained_variance": explained_variance(buffer.values.flatten(), buffer.returns.flatten()),
        **({"loss/imitation": _mean(stats["imitation"])} if imitation is not None else {}),
        "fault/nonfinite_steps": float(skipped),
        "fault/nonfinite_streak": float(streak),
    }
