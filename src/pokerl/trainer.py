"""The training loop: envs → pool → policy → PPO → logs, checkpoints and resume.

``train(cfg)`` takes the composed :class:`~pokerl.config.TrainConfig` and runs synchronous PPO:
collect ``ppo.num_steps`` steps from every env with the recurrent policy (:mod:`pokerl.rollout`),
compute GAE, update, log, checkpoint. Under ``torchrun`` each rank runs its own envs and gradients
are all-reduced and averaged across ranks (:class:`~pokerl.distributed.Dist`), so the same command
scales from a laptop to many GPUs.
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pokerl.archive import Archive, RunArchive
from pokerl.atomic import remove_temp_files, write_text_atomically
from pokerl.checkpoint import (
    check_compatible,
    describe,
    load_checkpoint,
    load_weights,
    resolve_checkpoint,
    rng_state,
    run_dir_of,
    save_numbered,
    seed_everything,
    set_rng_state,
)
from pokerl.config import TrainConfig, dump_config
from pokerl.curriculum import Curriculum
from pokerl.distributed import init_distributed, select_device
from pokerl.env import make_env
from pokerl.errors import CheckpointError, ConfigError, PokerlError
from pokerl.evaluate import evaluate_from_power_on
from pokerl.interrupt import StopOnSignal
from pokerl.logger import ProgressBar, TrainLogger
from pokerl.milestones import Tally
from pokerl.policy import Policy
from pokerl.pool import make_pool
from pokerl.ppo import RolloutBuffer, autocast, compute_gae, ppo_update
from pokerl.rollout import Collector, Rollout
from pokerl.rundir import claim_run_dir, default_run_dir
from pokerl.spec import run_spec


class Trainer:
    """Owns the pool, the policy, the optimiser, the rollout buffer and the logger of one run."""

    def __init__(self, cfg: TrainConfig) -> None:
        cfg = dataclasses.replace(cfg)  # the caller's config stays as it was (run_dir is filled in below)
        checkpoint: dict[str, Any] | None = None
        if cfg.resume:  # the config is the run's own (see pokerl.config.resume_config)
            ckpt_path = resolve_checkpoint(cfg.resume)
            checkpoint = load_checkpoint(ckpt_path)
            cfg.run_dir = cfg.run_dir or str(run_dir_of(ckpt_path))
        self.cfg, self.ppo_cfg, self.num_envs = cfg, cfg.ppo, cfg.num_envs
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)

        self.device = select_device(cfg.device)
        self.dist = init_distributed(self.device)
        self.seed = cfg.seed + 1_000_003 * self.dist.rank
        seed_everything(self.seed)
        if self.dist.world_size > 1 and cfg.run_dir is None:
            raise ConfigError("under torchrun set run_dir= explicitly so every rank writes to the same run")
        self.run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg.game.get("name", "run"))
        cfg.run_dir = str(self.run_dir)
        self.spec = run_spec(cfg)
        self.spec.profile.check_rom(cfg.rom)  # a bad ROM is refused before an earlier run is overwritten
        if checkpoint is None:  # before anything (the start-state cache too) is written
            claim_run_dir(self.run_dir, cfg.overwrite, self.dist.is_main, self.dist.decide)
        else:  # before any env or worker starts
            check_compatible(checkpoint, f"checkpoint of {self.run_dir}", self.spec, cfg.model)
            if "optimizer" not in checkpoint:  # exported weights (pokerl.pretrained): no run to continue
                raise CheckpointError(f"{cfg.resume} holds weights only (no optimiser, steps or envs to continue): "
                                      f"start a new run from them with init={cfg.resume}")

        obs_space = self.spec.observation_space
        self.policy = Policy(obs_space, int(self.spec.action_space.n), cfg.model).to(self.device)
        if checkpoint is None and cfg.init:  # fine-tuning: the weights only; steps, optimiser, archive are new
            init = load_checkpoint(cfg.init, map_location=self.device)
            check_compatible(init, f"init={cfg.init}", self.spec, cfg.model)
            load_weights(self.policy, init)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.ppo.learning_rate, eps=1e-5,
                                          fused=self.device.type == "cuda" or None)
        self._autocast = functools.partial(autocast, self.device.type, cfg.bf16)
        self.forward_policy = torch.compile(self.policy) if cfg.compile else self.policy
        self.buffer = RolloutBuffer(cfg.ppo.num_steps, self.num_envs, obs_space, cfg.ppo.bptt, cfg.model.hidden,
                                    self.device)
        self.curriculum = Curriculum(cfg.reset, self.spec, self.run_dir, cfg.rom,
                                     checkpoint.get("backward") if checkpoint is not None else None)
        # envs share the start state made once per run (run_dir/cache)
        env_fn = functools.partial(make_env, spec=self.spec, rom=cfg.rom, boot_cache=str(self.run_dir / "cache"),
                                   reset=cfg.reset, archive=cfg.archive.max_states > 0,
                                   level_step=cfg.archive.level_step, by_map=cfg.archive.by_map,
                                   capture_screens=(self.dist.is_main and cfg.log.heatmap_every > 0
                                                    and bool(self.spec.world_map.offsets)))
        self.pool = make_pool([env_fn] * self.num_envs, self.spec, cfg.pool)  # last: it starts processes
        self.archive = Archive(cfg.archive.max_states)
        self.run_archive = RunArchive(self.archive, self.pool, self.dist.exchange if self.dist.world_size > 1 else None)
        self.curriculum.attach(self.pool)  # before any reset draws a start
        self.collector = Collector(self.pool, self.policy, cfg.ppo, self.device, obs_space, self._autocast,
                                   asynchronous=cfg.pool.mode == "async")

        self.global_step = self.update = 0
        self.stop_signal: int | None = None  # set when SIGINT/SIGTERM ended run() early (after a checkpoint)
        self.nonfinite_streak = self.nonfinite_total = 0  # optimiser steps skipped (non-finite): in a row, in all
        self.restart_streak = 0  # updates in a row that had a worker restart
        self.tally = Tally(self.num_envs * self.dist.world_size)  # episodes, returns, milestones' first steps
        self.state = self.policy.initial_state(self.num_envs, self.device)  # carried across rollouts: the LSTM
        self.starts = torch.ones(self.num_envs, device=self.device)  # state, episode-start flags (and self.obs)
        carried = checkpoint is not None and self._restore(checkpoint)  # sets self.obs when it carries
        self.dist.broadcast_parameters(self.policy)  # every rank starts from rank 0's weights
        self.run_archive.share()
        if not carried:
            # New episodes: a new run's, or a resumed run's that cannot continue them (torchrun, another env count),
            # after the archive reached the envs (frontier starts); a resumed run's seeds are new ones.
            self.obs, _ = self.pool.reset(seed=self.seed + self.update * self.num_envs)

        self.logger: TrainLogger | None = None
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config_yaml = dump_config(cfg)
            write_text_atomically(self.run_dir / "config.yaml", config_yaml)
            # resumed after a kill: TensorBoard drops what the lost updates wrote past the checkpoint
            self.logger = TrainLogger(self.run_dir / "tb", self.spec,
                                      purge_step=self.global_step if checkpoint is not None else None)
            if checkpoint is None:  # a resumed run described itself when it started
                self.logger.describe_run(cfg.as_dict(), config_yaml)

    # ------------------------------------------------------------------ checkpoints
    def _restore(self, ckpt: dict[str, Any]) -> bool:
        """Continue the checkpointed run; True when every env continues its episode exactly."""
        if self.dist.is_main:
            for folder in (self.run_dir, self.run_dir / "checkpoints"):  # left by a run killed while saving
                remove_temp_files(folder)
        load_weights(self.policy, ckpt)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except ValueError as err:
            raise CheckpointError(f"checkpoint's optimiser state does not match the model: {err}") from None
        self.global_step, self.update = int(ckpt["global_step"]), int(ckpt["update"])
        if self.dist.world_size == 1:
            set_rng_state(ckpt["rng"])
        else:  # the checkpoint holds rank 0's RNGs: each rank draws its own stream again
            seed_everything(self.seed + self.update)
        self.tally.first = Tally.read_first(ckpt.get("milestone_first", {}))
        self.nonfinite_total, self.nonfinite_streak = int(ckpt.get("nonfinite_total", 0)), int(ckpt.get(
            "nonfinite_streak", 0))
        self.archive.load_state_dict(ckpt["archive"], f"checkpoint of {self.run_dir}")
        carry = ckpt.get("carry")
        if carry is not None and self.dist.world_size == 1 and len(carry["envs"]) == self.num_envs:
            # Continue every episode exactly where it stopped.
            self.pool.seed = self.seed + self.update * self.num_envs  # as a reset here would: restarts seed after it
            obs = self.pool.call_at("set_state", range(self.num_envs), carry["envs"])
            self.obs = {key: np.stack([o[key] for o in obs]) for key in obs[0]}
            self.state = (carry["h"].to(self.device), carry["c"].to(self.device))
            self.starts = carry["starts"].to(self.device)
            return True
        return False

    def checkpoint_payload(self) -> dict[str, Any]:
        envs = self.pool.call("get_state")
        # an env at its episode's first step starts one: so are the fresh envs of a worker restarted
        # by this call itself (their LSTM state is zeroed when the policy next acts)
        starts = self.starts.cpu().clone()
        starts[[i for i, env in enumerate(envs) if env["steps"] == 0]] = 1.0
        return {
            "model": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
            "global_step": self.global_step, "update": self.update, "rng": rng_state(),
            "config": dump_config(self.cfg), "about": describe(self.spec, self.cfg.model),
            "milestone_first": dict(self.tally.first),
            "nonfinite_total": self.nonfinite_total, "nonfinite_streak": self.nonfinite_streak,
            "archive": self.archive.state_dict(), "backward": self.curriculum.state_dict(),
            "carry": {"envs": envs, "h": self.state[0].cpu(), "c": self.state[1].cpu(), "starts": starts},
        }

    def save(self) -> Path:
        """A numbered checkpoint and ``latest.pt`` (the last ``log.keep_checkpoints`` numbered ones kept)."""
        return save_numbered(self.run_dir / "checkpoints", self.update, self.checkpoint_payload(),
                             self.cfg.log.keep_checkpoints)

    # ------------------------------------------------------------------ the loop
    @property
    def total_updates(self) -> int:
        return max(1, -(-self.cfg.total_steps // (self.ppo_cfg.num_steps * self.num_envs * self.dist.world_size)))

    def run(self, stop_at_update: int | None = None,
            after_update: Callable[[Trainer], None] | None = None) -> dict[str, float]:
        """Train until ``total_steps`` (or ``stop_at_update``, with a final checkpoint); returns the last logged
        scalars. ``after_update(trainer)`` ends every update (benchmarks measure between updates). A first Ctrl-C
        or SIGTERM ends the run after the update in progress, with a checkpoint, and sets ``stop_signal``; under
        torchrun rank 0's signal decides, so every rank stops at the same update."""
        with StopOnSignal() as stop:  # before the first line is printed: a Ctrl-C from then on is handled
            cfg, ppo, log = self.cfg, self.ppo_cfg, self.cfg.log
            n, T, steps_per_update = self.num_envs, ppo.num_steps, ppo.num_steps * self.num_envs * self.dist.world_size
            if self.dist.is_main:
                print(f"pokerl: {self.policy.count_parameters():,} parameters · {n} envs · device {self.device} · "
                      f"run dir {self.run_dir}", flush=True)
            self.stop_signal = None
            last: dict[str, float] = {}
            bar = (ProgressBar(self.total_updates * steps_per_update, self.global_step, len(self.spec.milestone_names))
                   if log.progress and self.dist.is_main else None)
            start_time, start_step = time.perf_counter(), self.global_step
            finished = False  # the loop ended by itself (budget, stop_at_update, a stop signal), not by an error
            try:
                last_update = min(self.total_updates, stop_at_update or self.total_updates)
                first_update = self.update + 1  # its video is written at once, not video_every updates in
                while self.update < last_update:
                    self.update += 1
                    lr = ppo.learning_rate * (1.0 - (self.update - 1) / self.total_updates if ppo.anneal_lr else 1.0)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    record_video = (self.logger is not None and log.video_every > 0
                                    and (self.update % log.video_every == 0 or self.update == first_update))

                    # ---- rollout: T steps of every env with the recurrent policy
                    t_rollout = time.perf_counter()
                    rollout, self.obs, self.state, self.starts = self.collector.collect(
                        self.buffer, self.obs, self.state, self.starts, log.video_steps if record_video else 0)
                    self._absorb(rollout)
                    self.global_step += steps_per_update
                    rollout_time = time.perf_counter() - t_rollout

                    # ---- advantages and the PPO update
                    t_learn = time.perf_counter()
                    scalars = self._learn()
                    self._check_restarts(rollout.restarts)
                    learn_time = time.perf_counter() - t_learn

                    # ---- the archive, the curriculum, evaluation, logs, checkpoints, progress
                    sps = (self.global_step - start_step) / max(time.perf_counter() - start_time, 1e-9)
                    scalars.update({
                        "perf/sps": sps, "perf/env_sps": T * n / max(rollout.env_time, 1e-9),
                        # per update: the rollout's time outside the pool (policy inference, buffer
                        # writes), and GAE plus the PPO epochs
                        "perf/inference_ms": 1000.0 * (rollout_time - rollout.env_time),
                        "perf/update_ms": 1000.0 * learn_time, "ppo/learning_rate": lr,
                    })
                    self.run_archive.share()
                    scalars.update(self.curriculum.at_boundary(self.archive, self.pool, self.global_step, self.dist))
                    if cfg.eval.every and self.update % cfg.eval.every == 0 and self.logger is not None:  # rank 0
                        self.logger.scalars(evaluate_from_power_on(self.policy, cfg, cfg.eval.episodes,
                                                                   seed=self.update, run_dir=self.run_dir),
                                            self.global_step)
                    if cfg.reset.mode == "swarm" and self.update % cfg.reset.swarm_every == 0:
                        for summary in self.run_archive.swarm(cfg.reset.swarm_share, self.obs, self.starts):
                            self._finished(summary, self.global_step)
                    best = self.archive.best()
                    if self.archive.max_states:
                        scalars["archive/size"] = len(self.archive.entries)
                        scalars["archive/best_milestones"] = len(best.milestones) if best is not None else 0
                    if self.dist.decide(stop.requested):  # this update is the last: it checkpoints below
                        last_update, self.stop_signal = self.update, stop.signal or signal.SIGTERM
                    if self.logger is not None:
                        self._log(self.logger, scalars, rollout, last_update)
                    last = scalars
                    if bar is not None:  # before the first episode ends (minutes: 4,096 steps an env): how far
                        bar.update(steps_per_update, sps=sps, episodes=self.tally.episodes, update=self.update,
                                   returns=self.tally.returns,
                                   held=set(self.tally.first) | set(best.milestones if best is not None else ()))
                    if after_update is not None:
                        after_update(self)
                finished = True
            finally:
                if bar is not None:
                    bar.close()
                self.close(leave_group=finished)
        return last

    def _learn(self) -> dict[str, float]:
        """GAE over the rollout just collected, then the PPO epochs; returns their statistics."""
        ppo = self.ppo_cfg
        next_value = self.collector.value(self.obs, self.state, self.starts)
        self.buffer.advantages, self.buffer.returns = compute_gae(
            self.buffer.rewards, self.buffer.values, self.buffer.episode_starts, next_value, self.starts,
            ppo.gamma, ppo.gae_lambda,
        )
        self.policy.train()
        stats = ppo_update(self.forward_policy, self.optimizer, self.buffer, ppo,
                           before_step=functools.partial(self.dist.average_gradients, self.policy),
                           agree=self.dist.agree,
                           streak=self.nonfinite_streak, autocast=self._autocast,
                           imitation=self.curriculum.imitation(ppo.gamma, ppo.bptt, self.device))
        self.nonfinite_streak = int(stats.pop("fault/nonfinite_streak"))
        self.nonfinite_total += int(stats.pop("fault/nonfinite_steps"))
        return {**stats, "fault/nonfinite_updates": self.nonfinite_total, "fault/worker_restarts": self.pool.restarts}

    def _check_restarts(self, restarted: int) -> None:
        """Too many updates in a row with a worker restart: checkpoint and stop (under torchrun: every rank)."""
        self.restart_streak = self.restart_streak + restarted if restarted else 0
        streak = self.dist.largest(self.restart_streak)
        if streak > self.cfg.pool.max_restarts:
            if self.dist.is_main:
                self.save()  # the envs' states as they are now (the restarted ones fresh)
            raise PokerlError(f"{streak} worker restarts in a row (pool.max_restarts={self.cfg.pool.max_restarts}): "
                              f"the run stopped after a checkpoint; continue with resume={self.run_dir}")

    def _log(self, logger: TrainLogger, scalars: dict[str, float], rollout: Rollout, last_update: int) -> None:
        """Rank 0: scalars, episode means, heat maps and video to TensorBoard; checkpoints."""
        log = self.cfg.log
        if self.update % log.scalars_every == 0 or self.update == self.total_updates:
            logger.scalars(scalars, self.global_step)
            scalars.update(logger.flush_episodes(self.global_step))
        if log.heatmap_every > 0 and (self.update % log.heatmap_every == 0 or not logger.heatmaps_written):
            logger.heatmaps(self.global_step)  # the first: at once
        if rollout.video:
            logger.video([np.repeat(f[..., None], 3, axis=-1) for f in rollout.video], self.global_step)
        if self.update % log.checkpoint_every == 0 or self.update == last_update:
            self.save()

    def _absorb(self, rollout: Rollout) -> None:
        """A rollout's archive candidates and finished episodes: into the archive, the logs and the bar."""
        for entry in rollout.offers:
            self.run_archive.offer(entry)
        for at, summary in rollout.episodes:
            self._finished(summary, self.global_step + at * self.num_envs * self.dist.world_size)

    def _finished(self, summary: dict[str, Any], now: int) -> None:
        """Record a finished episode's summary for the progress bar, the logger and benchmarks;
        ``now``: the run's global step at the env step that ended it."""
        self.run_archive.started(summary)
        self.curriculum.episode(summary)
        first = self.tally.add(summary, now)
        if self.logger is not None:
            for name, step in first.items():
                self.logger.scalars({f"milestone_first/{name}": step}, step)
            self.logger.add_episode(summary)

    def close(self, leave_group: bool = True) -> None:
        """Stop the workers and flush the logs; under torchrun, leave the process group with the
        other ranks (``leave_group=False`` after an error, when they may be mid-collective)."""
        self.pool.close()
        self.curriculum.close()
        if self.logger is not None:
            self.logger.close()
            self.logger = None
        if leave_group:
            self.dist.leave()


def train(cfg: TrainConfig) -> dict[str, float]:
    """Run one training job from a composed config; returns the last logged scalars."""
    return Trainer(cfg).run()
