"""The training loop: envs → pool → policy → PPO → logs, checkpoints and resume.

``train(cfg)`` takes the composed config (a plain dict, see :mod:`pokerl.config`) and runs
synchronous PPO: collect ``ppo.num_steps`` steps from every env with the recurrent policy
(:mod:`pokerl.rollout`), compute GAE, update, log, checkpoint. Under ``torchrun`` each rank runs
its own envs and gradients are averaged across ranks (DDP), so the same command scales from a
laptop to many GPUs.
"""

from __future__ import annotations

import functools
import signal
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pokerl.archive import Archive, Entry
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
from pokerl.config import check_train_config, dump_config
from pokerl.curriculum import Curriculum
from pokerl.distributed import (
    all_ranks_agree,
    average_gradients,
    broadcast_parameters,
    exchange,
    init_distributed,
    largest,
    leave_together,
    rank0_decides,
    select_device,
)
from pokerl.env import make_env
from pokerl.errors import CheckpointError, ConfigError, PokerlError
from pokerl.evaluate import evaluate_from_power_on
from pokerl.interrupt import StopOnSignal
from pokerl.logger import TrainLogger
from pokerl.milestones import first_reached
from pokerl.policy import Policy, PolicyConfig
from pokerl.pool import make_pool
from pokerl.ppo import PPOConfig, RolloutBuffer, compute_gae, ppo_update
from pokerl.rollout import Collector, Rollout
from pokerl.rundir import claim_run_dir, default_run_dir
from pokerl.schema import from_mapping
from pokerl.spec import load_spec


class Trainer:
    """Owns the pool, the policy, the optimiser, the rollout buffer and the logger of one run."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        resume_from = cfg.get("resume")
        checkpoint: dict[str, Any] | None = None
        if resume_from:  # the config is the run's own (see pokerl.config.resume_config)
            ckpt_path = resolve_checkpoint(resume_from)
            checkpoint = load_checkpoint(ckpt_path)
            if cfg.get("run_dir") is None:
                cfg = {**cfg, "run_dir": str(run_dir_of(ckpt_path))}
        self.cfg = cfg
        self.tc = check_train_config(cfg, "train config")
        self.ppo_cfg = from_mapping(PPOConfig, cfg["ppo"], "ppo")
        self.model_cfg = from_mapping(PolicyConfig, cfg["model"], "model")
        if self.tc.torch_threads > 0:
            torch.set_num_threads(self.tc.torch_threads)

        self.device = select_device(self.tc.device)
        self.dist = init_distributed(self.device)
        self.seed = self.tc.seed + 1_000_003 * self.dist.rank
        seed_everything(self.seed)

        self.run_dir = Path(self.tc.run_dir) if self.tc.run_dir else default_run_dir(cfg)
        if self.dist.world_size > 1 and self.tc.run_dir is None:
            raise ConfigError("under torchrun set run_dir= explicitly so every rank writes to the same run")
        self.cfg["run_dir"] = str(self.run_dir)
        self.spec = load_spec(cfg["game"], cfg["reward"], cfg["env"])
        self.spec.profile.check_rom(self.tc.rom)  # a bad ROM is refused before an earlier run is overwritten
        if checkpoint is None:  # before anything (the start-state cache too) is written
            refused = None
            if self.dist.is_main:
                try:
                    claim_run_dir(self.run_dir, self.tc.overwrite)
                except ConfigError as err:
                    refused = err
            stop = refused is not None
            if self.dist.world_size > 1:  # rank 0 decides for all (and no rank writes before it cleared the dir)
                stop = rank0_decides(stop, self.device)
            if stop:
                raise refused or ConfigError(f"run_dir {self.run_dir}: refused by rank 0 (its error says why)")

        if checkpoint is not None:  # before any env or worker starts
            check_compatible(checkpoint, f"checkpoint of {self.run_dir}", self.spec, self.model_cfg)
            if "optimizer" not in checkpoint:  # exported weights (pokerl.pretrained): no run to continue
                raise CheckpointError(f"{resume_from} holds weights only (no optimiser, steps or envs to continue): "
                                      f"start a new run from them with init={resume_from}")
        # envs share the start state made once per run (run_dir/cache)
        env_fn = functools.partial(make_env, spec=self.spec, rom=self.tc.rom, boot_cache=str(self.run_dir / "cache"),
                                   reset=self.tc.reset, archive=self.tc.archive.max_states > 0,
                                   level_step=self.tc.archive.level_step, by_map=self.tc.archive.by_map,
                                   capture_screens=(self.dist.is_main and self.tc.log.heatmap_every > 0
                                                    and bool(self.spec.world_map.offsets)))
        self.archive = Archive(self.tc.archive.max_states)
        self._archive_sent = 0  # the archive version the envs hold
        self._archive_new: list[Entry] = []  # kept since the last exchange between ranks
        self.async_envs = self.tc.pool.mode == "async"
        self.num_envs = self.tc.num_envs
        obs_space = self.spec.observation_space
        self.policy = Policy(obs_space, int(self.spec.action_space.n), self.model_cfg).to(self.device)
        if checkpoint is None and self.tc.init:  # fine-tuning: the weights only; steps, optimiser, archive are new
            init = load_checkpoint(self.tc.init, map_location=self.device)
            check_compatible(init, f"init={self.tc.init}", self.spec, self.model_cfg)
            load_weights(self.policy, init)
        on_gpu = self.device.type == "cuda"
        if on_gpu:  # a few fixed shapes: let cuDNN pick its fastest kernels; TF32 for fp32 matmuls
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.ppo_cfg.learning_rate, eps=1e-5,
                                          fused=on_gpu or None)
        self.forward_policy = torch.compile(self.policy) if self.tc.compile else self.policy
        self.buffer = RolloutBuffer(
            self.ppo_cfg.num_steps, self.num_envs, obs_space, self.ppo_cfg.bptt, self.model_cfg.hidden, self.device
        )
        self.curriculum = Curriculum(self.tc.reset, self.spec, self.run_dir, self.tc.rom,
                                     checkpoint.get("backward") if checkpoint is not None else None)
        self.pool = make_pool([env_fn] * self.num_envs, self.spec, self.tc.pool)  # last: it starts processes
        self.curriculum.attach(self.pool)  # before any reset draws a start
        self.collector = Collector(self.pool, self.policy, self.ppo_cfg, self.device, obs_space, self._autocast,
                                   asynchronous=self.async_envs)

        self.global_step = 0
        self.update = 0
        self.stop_signal: int | None = None  # set when SIGINT/SIGTERM ended run() early (after a checkpoint)
        self.milestone_first: dict[str, int] = {}  # milestone -> the global step it was first reached at
        self.nonfinite_streak = 0  # optimiser steps skipped in a row (non-finite loss or gradient)
        self.nonfinite_total = 0  # ... and in the whole run
        self.restart_streak = 0  # ... in updates in a row that had one
        # The rollout's carried state: observations, LSTM state and episode-start flags.
        self.state = self.policy.initial_state(self.num_envs, self.device)
        self.starts = torch.ones(self.num_envs, device=self.device)
        carried = checkpoint is not None and self._restore(checkpoint)  # sets self.obs when it carries
        if self.dist.world_size > 1:  # every rank starts from rank 0's weights
            broadcast_parameters(self.policy)
        self.share_archive()
        if not carried:
            # New episodes: a new run's, or a resumed run's whose episodes cannot continue (torchrun,
            # another env count). After the archive reached the envs (frontier starts); a resumed
            # run's seeds are ones its first reset did not use.
            self.obs, _ = self.pool.reset(seed=self.seed + self.update * self.num_envs)

        self.logger: TrainLogger | None = None
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config_yaml = dump_config(self.cfg)
            write_text_atomically(self.run_dir / "config.yaml", config_yaml)
            # resumed after a kill: TensorBoard drops what the lost updates wrote past the checkpoint
            self.logger = TrainLogger(self.run_dir / "tb", self.spec,
                                      purge_step=self.global_step if checkpoint is not None else None)
            if checkpoint is None:  # a resumed run described itself when it started
                self.logger.describe_run(self.cfg, config_yaml)

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
        self.global_step = int(ckpt["global_step"])
        self.update = int(ckpt["update"])
        if self.dist.world_size == 1:
            set_rng_state(ckpt["rng"])
        else:  # the checkpoint holds rank 0's RNGs: each rank draws its own stream again
            seed_everything(self.seed + self.update)
        self.milestone_first = {str(k): int(v) for k, v in ckpt.get("milestone_first", {}).items()}
        self.nonfinite_total = int(ckpt.get("nonfinite_total", 0))
        self.nonfinite_streak = int(ckpt.get("nonfinite_streak", 0))
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
            "model": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "global_step": self.global_step,
            "update": self.update,
            "rng": rng_state(),
            "config": dump_config(self.cfg),
            "about": describe(self.spec, self.model_cfg),
            "milestone_first": dict(self.milestone_first),
            "nonfinite_total": self.nonfinite_total,
            "nonfinite_streak": self.nonfinite_streak,
            "archive": self.archive.state_dict(),
            "backward": self.curriculum.state_dict(),
            "carry": {"envs": envs, "h": self.state[0].cpu(), "c": self.state[1].cpu(), "starts": starts},
        }

    def save(self) -> Path:
        """A numbered checkpoint and ``latest.pt`` (the last ``log.keep_checkpoints`` numbered ones kept)."""
        return save_numbered(self.run_dir / "checkpoints", self.update, self.checkpoint_payload(),
                             self.tc.log.keep_checkpoints)

    # ------------------------------------------------------------------ the loop
    @property
    def total_updates(self) -> int:
        per_update = self.ppo_cfg.num_steps * self.num_envs * self.dist.world_size
        return max(1, -(-self.tc.total_steps // per_update))

    def run(self, stop_at_update: int | None = None,
            after_update: Callable[[Trainer], None] | None = None) -> dict[str, float]:
        """Train until ``total_steps``; returns the last logged scalars.

        ``stop_at_update`` ends the run earlier, after that update, with a final checkpoint.
        ``after_update`` is called with the trainer at the end of every update (benchmarks measure
        between updates).
        A first Ctrl-C or SIGTERM ends the run after the update in progress, with a checkpoint, and
        sets ``stop_signal``; under torchrun rank 0's signal decides, so every rank stops at the
        same update.
        """
        self.stop_signal = None
        with StopOnSignal() as stop:
            return self._run(stop, stop_at_update, after_update)

    def _run(self, stop: StopOnSignal, stop_at_update: int | None,
             after_update: Callable[[Trainer], None] | None) -> dict[str, float]:
        tc, ppo = self.tc, self.ppo_cfg
        device, n, T = self.device, self.num_envs, ppo.num_steps
        if self.dist.is_main:
            print(f"pokerl: {self.policy.count_parameters():,} parameters · {n} envs · device {device} · "
                  f"run dir {self.run_dir}", flush=True)
        self.returns_window: deque[float] = deque(maxlen=100)
        self.episodes_done = 0  # episodes ended in this run() (the progress bar's eps)
        last: dict[str, float] = {}
        bar = self._progress_bar()
        start_time = time.perf_counter()
        start_step = self.global_step
        finished = False  # the loop ended by itself (budget, stop_at_update, a stop signal), not by an error
        try:
            last_update = min(self.total_updates, stop_at_update or self.total_updates)
            first_update = self.update + 1  # its video is written at once, not video_every updates in
            while self.update < last_update:
                self.update += 1
                lr = ppo.learning_rate
                if ppo.anneal_lr:
                    lr *= 1.0 - (self.update - 1) / self.total_updates
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                record_video = (self.logger is not None and tc.log.video_every > 0
                                and (self.update % tc.log.video_every == 0 or self.update == first_update))

                # ---- rollout: T steps of every env with the recurrent policy
                t_rollout = time.perf_counter()
                self.policy.eval()
                rollout, self.obs, self.state, self.starts = self.collector.collect(
                    self.buffer, self.obs, self.state, self.starts, tc.log.video_steps if record_video else 0)
                self._absorb(rollout)
                self.global_step += T * n * self.dist.world_size
                rollout_time = time.perf_counter() - t_rollout
                env_time = rollout.env_time

                # ---- advantages and the PPO update
                t_learn = time.perf_counter()
                next_value = self.collector.value(self.obs, self.state, self.starts)
                self.buffer.advantages, self.buffer.returns = compute_gae(
                    self.buffer.rewards, self.buffer.values, self.buffer.episode_starts, next_value,
                    self.starts,
                    ppo.gamma, ppo.gae_lambda,
                )
                self.policy.train()
                grad_hook = (functools.partial(average_gradients, self.policy, self.dist.world_size)
                             if self.dist.world_size > 1 else None)
                agree = (functools.partial(all_ranks_agree, device=self.device) if self.dist.world_size > 1 else None)
                stats = ppo_update(self.forward_policy, self.optimizer, self.buffer, ppo, before_step=grad_hook,
                                   agree=agree, streak=self.nonfinite_streak, autocast=self._autocast)
                self.nonfinite_streak = int(stats.pop("fault/nonfinite_streak"))
                self.nonfinite_total += int(stats.pop("fault/nonfinite_steps"))
                stats["fault/nonfinite_updates"] = self.nonfinite_total
                stats["fault/worker_restarts"] = self.pool.restarts
                restarted = rollout.restarts
                self.restart_streak = self.restart_streak + restarted if restarted else 0
                # under torchrun one rank's streak stops every rank, at this update
                streak = largest(self.restart_streak, device) if self.dist.world_size > 1 else self.restart_streak
                if streak > tc.pool.max_restarts:
                    if self.dist.is_main:
                        self.save()  # the envs' states as they are now (the restarted ones fresh)
                    raise PokerlError(f"{streak} worker restarts in a row (pool.max_restarts="
                                      f"{tc.pool.max_restarts}): the run stopped after a checkpoint; "
                                      f"continue with resume={self.run_dir}")
                learn_time = time.perf_counter() - t_learn

                # ---- logs, checkpoints, progress
                elapsed = time.perf_counter() - start_time
                sps = (self.global_step - start_step) / max(elapsed, 1e-9)
                scalars = {
                    **stats,
                    "perf/sps": sps,
                    "perf/env_sps": T * n / max(env_time, 1e-9),
                    # per update: the rollout's time outside the pool (policy inference, buffer
                    # writes), and GAE plus the PPO epochs
                    "perf/inference_ms": 1000.0 * (rollout_time - env_time),
                    "perf/update_ms": 1000.0 * learn_time,
                    "ppo/learning_rate": lr,
                }
                self.share_archive()
                scalars.update(self.curriculum.at_boundary(self.archive, self.pool, self.global_step, self.dist))
                if tc.eval.every and self.update % tc.eval.every == 0 and self.logger is not None:  # rank 0
                    self.logger.scalars(evaluate_from_power_on(self.policy, self.cfg, tc.eval.episodes,
                                                               seed=self.update, run_dir=self.run_dir),
                                        self.global_step)
                if tc.reset.mode == "swarm" and self.update % tc.reset.swarm_every == 0:
                    self._swarm()
                if self.archive.max_states:
                    best = self.archive.best()
                    scalars["archive/size"] = len(self.archive.entries)
                    scalars["archive/best_milestones"] = len(best.key) if best is not None else 0
                stopping = stop.requested
                if self.dist.world_size > 1:
                    stopping = rank0_decides(stopping, self.device)
                if stopping:  # this update is the last: it checkpoints below
                    last_update, self.stop_signal = self.update, stop.signal or signal.SIGTERM
                if self.logger is not None:
                    if self.update % tc.log.scalars_every == 0 or self.update == self.total_updates:
                        self.logger.scalars(scalars, self.global_step)
                        scalars.update(self.logger.flush_episodes(self.global_step))
                    if tc.log.heatmap_every > 0 and (self.update % tc.log.heatmap_every == 0
                                                     or not self.logger.heatmaps_written):  # the first: at once
                        self.logger.heatmaps(self.global_step)
                    if rollout.video:
                        self.logger.video([np.repeat(f[..., None], 3, axis=-1) for f in rollout.video],
                                          self.global_step)
                    if self.update % tc.log.checkpoint_every == 0 or self.update == last_update:
                        self.save()
                last = scalars
                if bar is not None:  # before the first episode ends (minutes: 4,096 steps an env): how far it got
                    best = self.archive.best()
                    held = set(self.milestone_first) | set(best.key if best is not None else ())
                    bar.update(T * n * self.dist.world_size)
                    bar.set_postfix(sps=f"{sps:,.0f}", eps=self.episodes_done,
                                    ret=f"{np.mean(self.returns_window):.2f}" if self.returns_window else "-",
                                    milestones=f"{len(held)}/{len(self.spec.milestone_names)}", upd=self.update,
                                    refresh=False)
                if after_update is not None:
                    after_update(self)
            finished = True
        finally:
            if bar is not None:
                bar.close()
            self.close(leave_group=finished)
        return last

    def _absorb(self, rollout: Rollout) -> None:
        """A rollout's archive candidates and finished episodes: into the archive, the logs and the bar."""
        for entry in rollout.offers:
            self.offer(entry)
        per_env_step = self.num_envs * self.dist.world_size
        for at, summary in rollout.episodes:
            self._finished(summary, self.global_step + at * per_env_step)

    def _finished(self, summary: dict[str, Any], now: int) -> None:
        """Record a finished episode's summary for the progress bar, the logger and benchmarks;
        ``now``: the run's global step at the env step that ended it."""
        self.episodes_done += 1
        self.returns_window.append(float(summary["return"]))
        if summary.get("start") == "archive":
            self.archive.count_uses([(tuple(sorted(summary.get("start_milestones", ()))),
                                      int(summary.get("start_level", 0)), int(summary.get("start_map", -1)))])
        for name, step in first_reached(summary, now, self.num_envs * self.dist.world_size).items():
            if step < self.milestone_first.get(name, step + 1):
                self.milestone_first[name] = step
                if self.logger is not None:
                    self.logger.scalars({f"milestone_first/{name}": step}, step)
        self.curriculum.episode(summary)
        if self.logger is not None:
            self.logger.add_episode(summary)

    def offer(self, entry: Entry) -> None:
        """An archive candidate from an env: kept when new or reached in fewer steps."""
        if self.archive.offer(entry) and self.dist.world_size > 1:
            self._archive_new.append(entry)

    def share_archive(self) -> None:
        """At an update boundary: ranks swap their new entries; envs get the archive when it changed."""
        if self.dist.world_size > 1:
            for entries in exchange(self._archive_new):
                for entry in entries:
                    self.archive.offer(entry)
            self._archive_new = []
        if self.archive.version != self._archive_sent:
            self.pool.call("set_archive", list(self.archive.entries.values()), replay=True)
            self._archive_sent = self.archive.version

    def _swarm(self) -> None:
        """A share of envs ends its episodes (as truncations) and starts at the archive's best entry."""
        best = self.archive.best(startable=True)
        if best is None:
            return
        k = max(1, round(self.tc.reset.swarm_share * self.num_envs))
        envs = sorted(int(i) for i in np.random.choice(self.num_envs, size=k, replace=False))
        summaries, first = zip(*self.pool.call_at("jump", envs, [best] * len(envs)), strict=True)
        for key, rows in self.obs.items():
            rows[envs] = np.stack([o[key] for o in first])
        self.starts[torch.as_tensor(envs, device=self.device)] = 1.0  # the LSTM state starts afresh there
        for summary in summaries:
            self._finished(summary, self.global_step)

    def _progress_bar(self) -> Any:
        if not (self.tc.log.progress and self.dist.is_main):
            return None
        from tqdm import tqdm

        return tqdm(total=self.total_updates * self.ppo_cfg.num_steps * self.num_envs * self.dist.world_size,
                    initial=self.global_step, unit="step", unit_scale=True, dynamic_ncols=True, desc="pokerl")

    def _autocast(self) -> Any:
        if self.tc.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return torch.autocast(device_type=self.device.type, enabled=False)

    def close(self, leave_group: bool = True) -> None:
        """Stop the workers and flush the logs; under torchrun, leave the process group with the
        other ranks (``leave_group=False`` after an error, when they may be mid-collective)."""
        self.pool.close()
        if self.logger is not None:
            self.logger.close()
            self.logger = None
        if leave_group:
            leave_together(self.dist)


def train(cfg: dict[str, Any]) -> dict[str, float]:
    """Run one training job from a composed config; returns the last logged scalars."""
    trainer = Trainer(cfg)
    return trainer.run()
