"""Self-imitation on the chain (``reset.imitate``): the chain's own way from the frontier, learnt beside PPO.

The backward curriculum (:mod:`pokerl.backward`) moves its start back only once the policy succeeds from
the window, and PPO learns only from successes it finds itself. Go-Explore's robustification (Ecoffet et
al. 2021) adds self-imitation learning (SIL; Oh et al. 2018, "Self-Imitation Learning") on the
trajectories being robustified: 2 of its 32 envs per worker replay them, with a loss coefficient of 0.1.
Here the chain's way from each saved point of the window (the points window episodes start at), up to
``reset.imitate_steps`` long, is replayed (:meth:`pokerl.env.GameBoyEnv.demonstrate`: exact, its observations
as an episode started at the point sees them, with the rewards they earn), and every PPO minibatch adds

    imitate x [ mean(-log pi(a_chain | s) x (R - V(s))+) + VALUE_WEIGHT x 0.5 x mean((R - V(s))+ ^ 2) ]

over a share of its sequences, where R is the chain's discounted return from s to the demonstration's end.
Where the policy already expects more than the chain got (R < V), nothing is imitated: the chain found by
exploration wanders, and the policy need not copy its detours once it does better. The recurrent state at
each sequence's start is the policy's own over the demonstration from zeros at the point, rerun at every
update (as a rollout's segments keep the state the policy had).

Why from every window point, each as an episode of its own: what the policy does depends on what its
episode has seen, not only on the state. Its observation holds the episode's visited map and frame stack.
Measured on the 1,716-step chain (the policy of a run held at t = 0.925, ~250k steps): after Mira's badge
(chain step 1,664, a text box) the chain's A had probability 0.95 in the demonstration from the point
before t (1,568), and 0.03-0.04 in an episode started at 1,664, where window episodes start. Those
episodes pressed down and up in the text box for hundreds of steps. Carrying the LSTM state over from
1,568 instead of zeros at 1,664 changed nothing (argmax the chain's action on 46 and 47 of 52 steps).
The demonstration from t's point alone taught the way as seen from there only.

Why from points past the window too (``reset.imitate_later``, drawn afresh at every update): the window's
way is not the whole way. Measured (learning benchmark, seed 1, 1.82M steps, window from chain step 1,268):
while the window's episodes learnt their way to the second badge (`badge2` in 4% of logged episodes at 700k
steps, 78% at 1.6M), `final_room` stayed at 0-4%. The end's 53 steps after the badge had been learnt while
the window held them (t = 0.925) and were lost once it left; from the badge (chain step 1,664) the final
policy reached the final room in 0 of 6 episodes of 512 steps, so no window episode succeeded and t stayed.
Salimans & Chen's starts past t (``reset.later_share``, 20%) had not kept it.

What it teaches is the chain's way with the chain's luck. The demonstration gets the seed the chain's run
wrote at each segment boundary; an episode playing on from a start does not. Measured on the committed
tinyquest chain: its actions played plainly from each saved point to the next (32 steps) end where its next
point stands in 29 of 54 stretches. From the second badge (chain step 1,664) they leave its way at step 1,699,
in a battle on Route 2's grass. A policy that had cloned those 52 steps (the chain's action likeliest at
each) reached the final room from there in 0 of 6 free episodes (docs/learning-benchmark.md).

Hence ``reset.imitate_own`` (Oh et al.'s SIL proper, on the run's own episodes): beside the chain's way, the
last K episodes that reached the chain's end, each played again from its start with its seed and actions
(:meth:`pokerl.env.GameBoyEnv.play_way`; a success's summary carries them). Their way needed no luck but the one
they had under the game's own RNG. The chain's way is still what teaches the window: alone
(``reset.imitate_steps=0``), the run's own successes came only from starts past the window (the end's walk), and
the window's way was lost (learning benchmark seed 1, 4e0110a: t at 0.888 by 150k steps, as with the chain's
way, then `gym2` fell from 56% to 4% of logged episodes by 340k, none of the window's episodes a success).
Without any imitation the policy still finds the badge: a run held at t = 0.888, resumed with no imitation,
brought `badge2` from 9% to 71% of its episodes in 560k steps, but `final_room` stayed at 0-5%. From the badge
its policy walked Mira's gym for 200 steps in each of 3 episodes and never took the door (the gym has no grass:
no luck involved), so the rare episodes that did are what there is to imitate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from pokerl.chain import Chain, Point
from pokerl.ppo import masked_mean

VALUE_WEIGHT = 0.01  # beta_sil, the SIL value loss weight (Oh et al. 2018, appendix: A2C+SIL hyperparameters)


@dataclass
class Demonstration:
    """The chain's way from some of its points, one episode each: D steps of observations, actions, returns
    and episode starts."""

    steps: list[int]  # the chain step each episode starts at
    obs: dict[str, np.ndarray]  # (D, ...)
    actions: np.ndarray  # (D,)
    returns: np.ndarray  # (D,) the discounted sum of the rewards from each step to its episode's end
    starts: np.ndarray  # (D,) 1 at each episode's first step


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """R_k = r_k + gamma R_{k+1}, nothing after the last reward (the chain's end, or as far as it was replayed)."""
    returns = np.zeros(len(rewards), np.float32)
    following = 0.0
    for k in range(len(rewards) - 1, -1, -1):
        following = float(rewards[k]) + gamma * following
        returns[k] = following
    return returns


def demonstrate(env: Any, chain: Chain, points: list[Point], steps: int, gamma: float) -> Demonstration | None:
    """The chain's way from each of ``points`` for ``steps`` steps (to the chain's end at most), each an episode
    of its own, played on ``env`` (a :class:`~pokerl.env.GameBoyEnv` holding ``chain``); None without a point
    short of the end."""
    return join([demonstrate_from(env, point, steps, gamma) for point in points if point.step < chain.steps])


def demonstrate_from(env: Any, point: Point, steps: int, gamma: float) -> Demonstration:
    """The chain's way from one ``point`` short of its end, as :func:`demonstrate`."""
    return episode(point.step, *env.demonstrate(point, steps), gamma)


def demonstrate_way(env: Any, way: Mapping[str, Any], gamma: float) -> Demonstration | None:
    """One of the run's own successful episodes (its summary's ``chain_way``), played again on ``env`` (a
    :class:`~pokerl.env.GameBoyEnv` holding the run's chain): ``reset.imitate_own``. None if it did not hold
    the chain's end again (the emulator is deterministic: not expected)."""
    seen, taken, rewards, success = env.play_way(way)
    return episode(int(way["point"]), seen, taken, rewards, gamma) if success and taken else None


def episode(step: int, seen: list[dict[str, np.ndarray]], taken: list[int], rewards: list[float], gamma: float
            ) -> Demonstration:
    """One episode from chain ``step`` as a demonstration: what it saw, did and earned."""
    return Demonstration([step], {k: np.stack([o[k] for o in seen]) for k in seen[0]},
                         np.asarray(taken, np.int64), discounted_returns(np.asarray(rewards, np.float32), gamma),
                         np.eye(1, len(taken), dtype=np.float32)[0])  # 1 at the episode's first step


def join(demos: list[Demonstration]) -> Demonstration | None:
    """Demonstrations one after the other (their episodes kept apart by ``starts``); None for none."""
    if not demos:
        return None
    return Demonstration([s for d in demos for s in d.steps],
                         {k: np.concatenate([d.obs[k] for d in demos]) for k in demos[0].obs},
                         *(np.concatenate([getattr(d, f) for d in demos]) for f in ("actions", "returns", "starts")))


class SelfImitation:
    """A demonstration as sequences of ``bptt`` steps (the last one padded and masked) and its SIL loss."""

    def __init__(self, demo: Demonstration, coef: float, bptt: int, device: torch.device | str) -> None:
        self.demo, self.coef, self.L = demo, coef, bptt
        D = len(demo.actions)
        self.S = math.ceil(D / bptt)

        def sequences(x: np.ndarray) -> torch.Tensor:  # (D, ...) -> (L, S, ...): column s is steps s*L .. s*L+L-1
            padded = np.zeros((self.S * bptt, *x.shape[1:]), x.dtype)
            padded[:D] = x
            shaped = torch.from_numpy(padded).reshape(self.S, bptt, *x.shape[1:]).transpose(0, 1)
            return shaped.contiguous().to(device)

        self.obs = {k: sequences(v) for k, v in demo.obs.items()}
        self.actions, self.returns = sequences(demo.actions), sequences(demo.returns)
        self.starts, self.valid = sequences(demo.starts), sequences(np.ones(D, np.float32))
        self.h0 = self.c0 = torch.zeros(0)

    @torch.no_grad()
    def prepare(self, policy: nn.Module, autocast: Callable[[], AbstractContextManager[Any]]) -> None:
        """The recurrent state at each sequence's start: the policy run over the demonstration from zeros."""
        state = policy.initial_state(1, self.actions.device)
        hs, cs = [], []
        for s in range(self.S):
            hs.append(state[0])
            cs.append(state[1])
            with autocast():
                _, _, state = policy({k: v[:, s:s + 1] for k, v in self.obs.items()}, state, self.starts[:, s:s + 1])
        self.h0, self.c0 = torch.cat(hs, dim=1), torch.cat(cs, dim=1)  # (1, S, hidden)

    def minibatches(self, n: int) -> list[torch.Tensor]:
        """The sequences in ``n`` random shares, one per PPO minibatch of an epoch (some empty when S < n)."""
        return list(torch.randperm(self.S, device=self.actions.device).tensor_split(n))

    def loss(self, policy: nn.Module, idx: torch.Tensor, autocast: Callable[[], AbstractContextManager[Any]]
             ) -> torch.Tensor:
        """The SIL loss over sequences ``idx`` (after :meth:`prepare`)."""
        with autocast():
            logits, values, _ = policy({k: v[:, idx] for k, v in self.obs.items()}, (self.h0[:, idx], self.c0[:, idx]),
                                       self.starts[:, idx])
        log_prob = Categorical(logits=logits.float()).log_prob(self.actions[:, idx])
        gap = (self.returns[:, idx] - values.float()).clamp(min=0.0)  # (R - V)+: where the chain did better
        valid = self.valid[:, idx]
        policy_loss = masked_mean(-log_prob * gap.detach(), valid)
        value_loss = 0.5 * masked_mean(gap.pow(2), valid)
        return self.coef * (policy_loss + VALUE_WEIGHT * value_loss)
