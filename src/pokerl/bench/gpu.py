"""The GPU box, measured in one command under a deadline: CUDA checks, learner, raw emulators, training.

``pokerl-bench gpu [--quick] [--device auto|cuda|cpu] [--budget S] OUT_DIR`` (also
``scripts/gpu_check.sh``) runs these stages, rewriting ``OUT_DIR/gpu_check.json`` after each one so
a run cut short still leaves the figures it has, logging to ``OUT_DIR/gpu_check.log``, and printing
a table and then the JSON as its last line:

- ``cuda_tests``: policy forward/backward on cuda, bf16 autocast, a 256-step training run on cuda,
  and ``compile=true`` (a compiled training update plus compiled == eager); each ``passed``,
  ``failed`` or ``skipped`` with its reason (without CUDA they are skipped, never passed);
- ``learner_samples_per_s``: rollout inference + GAE + the PPO epochs on one rollout of
  ``learner_rollout`` (128 steps x 64 envs; ``--quick``: 32 x 4) for ``small`` and ``default``
  (``--quick``: ``small``) in fp32, bf16 autocast, and bf16 with ``torch.compile``;
- ``autotune``: a few layouts (envs, emulator processes, sync or async) each trained for a few
  updates; the fastest is ``layout``;
- ``raw_sps``: R1 and Rk, env steps/s of 1 and of k independent processes stepping their share of
  the envs with random actions, k = the training run's emulator processes;
- ``train_sps``: the trainer with the default model (bf16 on cuda; ``--quick``: ``small``) and
  ``layout``; Rk is probed between updates, ``train_over_raw`` = training SPS / Rk (median over
  updates) and ``time_shares`` says where the trainer process's time went: ``rollout`` (waiting
  for the emulators, its own inline share included), ``inference`` (the policy acting),
  ``update`` (the rest: GAE, PPO epochs, buffer copies, logging).

Targets on a 16-core machine with one modern GPU: train_over_raw >= 0.85 and the default model's
learner >= 250k samples/s in bf16.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from pokerl.atomic import write_text_atomically
from pokerl.bench.train import Learner, RawEnvs
from pokerl.config import TrainConfig, compose_train_config
from pokerl.errors import PokerlError, exit_on_error
from pokerl.policy import Policy
from pokerl.trainer import Trainer

JSON_NAME, LOG_NAME = "gpu_check.json", "gpu_check.log"
# Logging off except what the trainer cannot skip (a checkpoint at its last update).
QUIET = ["log.progress=false", "log.checkpoint_every=1000000", "log.heatmap_every=1000000",
         "log.video_every=0"]
TARGETS = {"train_over_raw": ">= 0.85 (default model, 16 cores + one GPU)",
           "learner_default_bf16": ">= 250000 samples/s"}


@dataclass(frozen=True)
class Layout:
    """How the training run spreads its envs: ``workers`` emulator processes (the trainer process is
    one of them when synchronous), or ``async_envs`` (the trainer acts for whichever half is ready)."""

    num_envs: int
    workers: int
    async_envs: bool

    @property
    def emulator_processes(self) -> int:
        """k: the processes that step emulators in this layout (the raw probe runs that many)."""
        return self.workers


def layout_overrides(num_envs: int, workers: int, async_envs: bool) -> list[str]:
    """The Hydra overrides for a layout: the one place that knows the pool's config keys."""
    mode = "async" if async_envs else "inline"
    return [f"num_envs={num_envs}", f"pool.workers={workers}", f"pool.mode={mode}"]


def compose(layout: Layout, *overrides: str) -> TrainConfig:
    """The training config for ``layout`` with logging quiet and ``overrides`` on top."""
    pool = layout_overrides(layout.num_envs, layout.workers, layout.async_envs)
    return compose_train_config([*QUIET, *pool, *overrides])


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def autocast(device: torch.device, bf16: bool) -> Any:
    """bf16 autocast on ``device`` as the trainer uses it, or nothing."""
    if bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work (nothing on a CPU), so timings hold the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------- CUDA checks
def _one_line(err: BaseException) -> str:
    """An exception as one short line for the JSON."""
    return f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"


class CheckFailed(AssertionError):
    """A CUDA check found wrong results (not a crash)."""


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)


def _policy_and_batch(device: torch.device, model: str = "default", T: int = 4, B: int = 8,
                      ) -> tuple[Policy, dict[str, torch.Tensor], torch.Tensor]:
    """The configured policy on ``device`` (the learner probe's) and a random (T, B) batch shaped like
    the env's observations, with an episode start at t = 0."""
    torch.manual_seed(0)
    learner = Learner(compose(Layout(B, 1, False), f"model={model}", f"device={device}", "ppo.num_steps=16"))
    obs = {k: (torch.randint(0, 256, (T, *v.shape), dtype=v.dtype) if v.dtype == torch.uint8
               else torch.rand((T, *v.shape))).to(device) for k, v in learner.obs.items()}
    starts = torch.zeros(T, B, device=device)
    starts[0] = 1.0
    return learner.policy, obs, starts


def _loss_and_grads(policy: torch.nn.Module, module: Policy, obs: dict[str, torch.Tensor],
                    starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward a batch through ``policy``, back-propagate a loss over both heads; returns (logits, values)."""
    T, B = starts.shape
    logits, values, _ = policy(obs, module.initial_state(B, starts.device), starts)
    loss = torch.log_softmax(logits.float(), -1).mean() + values.float().pow(2).mean()
    module.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in module.parameters()]
    _expect(all(g is not None for g in grads), "some parameters got no gradient")
    _expect(all(g.device == starts.device for g in grads if g is not None), "gradients are not on the device")
    _expect(all(bool(torch.isfinite(g).all()) for g in grads if g is not None), "non-finite gradients")
    return logits.detach(), values.detach()


def check_policy_fwd_bwd(device: torch.device) -> str:
    """The default policy's forward and backward on ``device``: shapes, finite gradients on the device."""
    policy, obs, starts = _policy_and_batch(device)
    logits, values = _loss_and_grads(policy, policy, obs, starts)
    _expect(logits.device.type == device.type and logits.shape[:2] == starts.shape, "logits shape/device")
    _expect(values.shape == starts.shape and bool(torch.isfinite(values).all()), "values shape or not finite")
    action, logprob, value, _ = policy.act({k: v[0] for k, v in obs.items()},
                                           policy.initial_state(starts.shape[1], device), starts[0])
    _expect(action.device.type == device.type and bool(torch.isfinite(logprob).all()), "act() on the device")
    return f"{policy.count_parameters():,} parameters"


def check_bf16_autocast(device: torch.device) -> str:
    """Under bf16 autocast the network computes in bf16, keeps fp32 weights and gradients, and
    gives values close to fp32."""
    policy, obs, starts = _policy_and_batch(device)
    with torch.no_grad():
        ref_logits, ref_values, _ = policy(obs, policy.initial_state(starts.shape[1], device), starts)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        logits, values = _loss_and_grads(policy, policy, obs, starts)
        _, _, act_value, _ = policy.act({k: v[0] for k, v in obs.items()},
                                        policy.initial_state(starts.shape[1], device), starts[0])
    _expect(logits.dtype == torch.bfloat16, f"logits are {logits.dtype} under bf16 autocast")
    _expect(all(p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
                for p in policy.parameters()), "weights or gradients are not fp32")
    _expect(act_value.dtype == torch.float32, "act() values are not fp32")
    err = float((values.float() - ref_values).abs().max())
    _expect(err < 0.05 * (1.0 + float(ref_values.abs().max())), f"bf16 values differ from fp32 by {err:.3g}")
    return f"max |value bf16 - fp32| = {err:.2g}"


def _short_run(device: torch.device, run_dir: str, total_steps: int, *overrides: str) -> Trainer:
    """Train ``total_steps`` env steps (4 envs over 2 worker processes) on ``device``; returns the trainer."""
    num_steps = total_steps // 4
    cfg = compose(Layout(4, 2, False), f"device={device}", f"total_steps={total_steps}",
                  f"ppo.num_steps={num_steps}", f"ppo.bptt={min(16, num_steps)}", f"run_dir={run_dir}",
                  *overrides)
    trainer = Trainer(cfg)
    trainer.run()
    _expect(trainer.global_step == total_steps, f"trained {trainer.global_step} steps, wanted {total_steps}")
    params = list(trainer.policy.parameters())
    _expect(all(p.device.type == device.type and bool(torch.isfinite(p).all()) for p in params),
            "weights left the device or are not finite")
    _expect((Path(run_dir) / "checkpoints" / "latest.pt").is_file(), "no checkpoint written")
    return trainer


def check_training_run(device: torch.device, run_dir: str | None = None) -> str:
    """A 256-step training run of the default model in bf16 on ``device`` (worker processes, PPO
    update, checkpoint)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        _short_run(device, run_dir or tmp, 256, "model=default", "bf16=true")
        return f"256 steps in {time.perf_counter() - start:.1f} s"


def check_compile(device: torch.device, run_dir: str | None = None) -> str:
    """``compile=true``: a compiled forward/backward matches eager, and a training run with it works."""
    policy, obs, starts = _policy_and_batch(device)
    eager_logits, eager_values = _loss_and_grads(policy, policy, obs, starts)
    compiled = torch.compile(policy)
    logits, values = _loss_and_grads(compiled, policy, obs, starts)
    err = max(float((logits - eager_logits).abs().max()), float((values - eager_values).abs().max()))
    _expect(err < 1e-2 * (1.0 + float(eager_values.abs().max())), f"compiled differs from eager by {err:.3g}")
    with tempfile.TemporaryDirectory() as tmp:
        _short_run(device, run_dir or tmp, 128, "model=default", "compile=true")
    return f"max |compiled - eager| = {err:.2g}"


CHECKS: dict[str, Callable[[torch.device], str]] = {
    "policy_fwd_bwd": check_policy_fwd_bwd, "bf16_autocast": check_bf16_autocast,
    "training_run_256": check_training_run, "compile": check_compile,
}


# ---------------------------------------------------------------------------------------- the run
class Stopped(Exception):
    """SIGTERM or Ctrl-C arrived: stop where we are and report what was measured."""


class Report:
    """The JSON being built, the deadline, and the log; the JSON file is rewritten after each stage."""

    def __init__(self, out_dir: Path, budget_s: float, quick: bool, device: torch.device) -> None:
        self.out_dir, self.start, self.budget_s = out_dir, time.perf_counter(), budget_s
        self.log_file = (out_dir / LOG_NAME).open("a", encoding="utf-8")
        self.data: dict[str, Any] = {
            "device": device.type, "quick": quick, "complete": False, "budget_s": budget_s, "elapsed_s": 0.0,
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "cpu_cores": usable_cores(), "python": platform.python_version(),
            "stages": {}, "cuda_tests": {},
            "learner_rollout": None, "learner_samples_per_s": {},
            "autotune": [], "layout": None, "raw_sps": None,
            "train": None, "train_sps": None, "train_over_raw": None, "time_shares": None,
            "targets": TARGETS,
        }

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)

    def log(self, message: str) -> None:
        line = f"[{time.perf_counter() - self.start:6.1f}s] {message}"
        print(line, file=self.log_file, flush=True)
        print(f"gpu_check {line}", flush=True)

    def save(self) -> None:
        """Rewrite the JSON file (atomically: a reader never sees half of it)."""
        self.data["elapsed_s"] = round(time.perf_counter() - self.start, 1)
        write_text_atomically(self.out_dir / JSON_NAME, json.dumps(self.data, indent=1) + "\n")

    @contextlib.contextmanager
    def stage(self, name: str, needs_s: float) -> Iterator[bool]:
        """Run a stage if ``needs_s`` seconds are left (yields False otherwise); errors are recorded, not
        raised, and the JSON is saved after it either way."""
        if self.left() < needs_s:
            left = self.left()
            self.data["stages"][name] = f"skipped: out of time ({left:.0f} s left, needs {needs_s:.0f})"
            self.log(f"{name}: {self.data['stages'][name]}")
            self.save()
            yield False
            return
        self.log(f"{name}: start ({self.left():.0f} s left)")
        started = time.perf_counter()
        try:
            yield True
            self.data["stages"].setdefault(name, "done")
        except (Stopped, KeyboardInterrupt):
            self.data["stages"][name] = "stopped (SIGTERM or Ctrl-C)"
            raise Stopped from None
        except Exception as err:  # noqa: BLE001 - one stage's failure must not lose the others' figures
            self.data["stages"][name] = f"error: {_one_line(err)}"
        finally:
            self.log(f"{name}: {self.data['stages'].get(name)} in {time.perf_counter() - started:.1f} s")
            self.save()


@dataclass(frozen=True)
class Plan:
    """Sizes and per-stage time caps for a full or a ``--quick`` run."""

    models: tuple[str, ...]  # learner stage
    learner_steps: int
    learner_envs: int
    learner_rounds: int
    train_model: str
    num_steps: int  # rollout steps per env in autotune and the training run
    tune_updates: int  # per autotune candidate, the first (warm-up) included
    train_updates: int
    raw_seconds: float
    compile_on_cpu: bool

    @staticmethod
    def make(quick: bool, device: torch.device) -> Plan:
        if quick:
            return Plan(("small",), 32, 4, 2, "small", 32, 3, 5, 1.0, False)
        return Plan(("small", "default"), 128, 64, 3, "default", 128, 3, 12, 2.0, True)

    def candidates(self, quick: bool, cores: int) -> list[Layout]:
        """The layouts autotune tries: every core steps emulators (the trainer process is one of them
        when synchronous); 4 or 8 envs per process; async with the trainer process apart."""
        if quick:
            return [Layout(4, 2, False), Layout(4, 2, True)]
        workers = max(cores, 2)
        apart = workers - 1 if workers > 2 else workers  # async: the trainer process needs a core of its own
        return [Layout(4 * workers, workers, False), Layout(8 * workers, workers, False),
                Layout(8 * apart, apart, True)]


def run_cuda_tests(report: Report, device: torch.device, names: list[str]) -> None:
    """Each named check passes, fails or is skipped (no CUDA / --device cpu)."""
    tests = report.data["cuda_tests"]
    for name in names:
        if not torch.cuda.is_available():
            tests[name] = {"status": "skipped", "reason": "CUDA is not available"}
        elif device.type != "cuda":
            tests[name] = {"status": "skipped", "reason": f"--device {device.type}"}
        else:
            started = time.perf_counter()
            try:
                detail = CHECKS[name](device)
                tests[name] = {"status": "passed", "detail": detail}
            except (Stopped, KeyboardInterrupt):
                raise Stopped from None
            except Exception as err:  # noqa: BLE001 - a failed check is a result
                tests[name] = {"status": "failed", "error": _one_line(err)}
            tests[name]["seconds"] = round(time.perf_counter() - started, 1)
        report.log(f"cuda test {name}: {tests[name]}")
        report.save()


def run_learner(report: Report, plan: Plan, device: torch.device, variants: tuple[str, ...],
                cap_s: float) -> None:
    """Learner samples/s per model and variant (fp32, bf16, bf16_compile), median of a few rounds."""
    report.data["learner_rollout"] = {"num_steps": plan.learner_steps, "num_envs": plan.learner_envs}
    table = report.data["learner_samples_per_s"]
    stop_at = time.perf_counter() + cap_s
    for model in plan.models:
        cfg = compose(Layout(plan.learner_envs, 1, False), f"model={model}", f"device={device}",
                      f"ppo.num_steps={plan.learner_steps}")
        learner = Learner(cfg)
        for variant in variants:
            needs_s = 45 if variant.endswith("compile") else 5  # a compilation cannot be cut short
            if time.perf_counter() > stop_at or report.left() < needs_s:
                table.setdefault(model, {})[variant] = None
                continue
            if variant.endswith("compile"):
                learner.policy = torch.compile(learner.policy)  # as the trainer: compiled forward in PPO
            with autocast(device, variant.startswith("bf16")):
                learner.samples_per_s()  # warm-up (and compilation)
                rounds = [learner.samples_per_s() for _ in range(plan.learner_rounds)]
            table.setdefault(model, {})[variant] = round(statistics.median(rounds), 1)
            report.log(f"learner {model} {variant}: {table[model][variant]:,.0f} samples/s")
            report.save()
        del learner
        if device.type == "cuda":
            torch.cuda.empty_cache()


class UpdateTimer:
    """Times a trainer's updates from its ``after_update`` callback, and the time its process spends
    stepping emulators (the pool's step/send/recv) and acting (``policy.act``), by wrapping those
    methods on this trainer's own objects."""

    def __init__(self, trainer: Trainer) -> None:
        self.device = trainer.device
        self.totals = {"rollout": 0.0, "inference": 0.0}
        for name in ("step", "send", "recv"):
            self._wrap(trainer.pool, name, "rollout")
        self._wrap(trainer.policy, "act", "inference", sync_after=True)
        self.rows: list[dict[str, float]] = []  # per update: seconds, steps and time per part
        self._last: tuple[float, int, dict[str, float]] | None = None

    def _wrap(self, obj: Any, name: str, key: str, sync_after: bool = False) -> None:
        inner = getattr(obj, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                out = inner(*args, **kwargs)
                if sync_after:
                    sync(self.device)
                return out
            finally:
                self.totals[key] += time.perf_counter() - start

        setattr(obj, name, timed)  # shadows the method on this object only

    def mark(self, trainer: Trainer) -> None:
        """Close the update that just ended (call first thing in ``after_update``)."""
        now = time.perf_counter()
        if self._last is not None:
            t0, step0, totals0 = self._last
            row = {"seconds": now - t0, "steps": float(trainer.global_step - step0)}
            row.update({k: v - totals0[k] for k, v in self.totals.items()})
            self.rows.append(row)

    def restart(self, trainer: Trainer) -> None:
        """The next update starts now (call last thing in ``after_update``, after any probe)."""
        self._last = (time.perf_counter(), trainer.global_step, dict(self.totals))

    def shares(self, rows: list[dict[str, float]]) -> dict[str, float] | None:
        if not rows:
            return None
        total = sum(r["seconds"] for r in rows)
        rollout, inference = sum(r["rollout"] for r in rows), sum(r["inference"] for r in rows)
        return {"rollout": round(rollout / total, 3), "inference": round(inference / total, 3),
                "update": round(max(total - rollout - inference, 0.0) / total, 3)}


class _Enough(Exception):
    """Raised from ``after_update`` to end a timed run early (the deadline is near)."""


def train_for(cfg: TrainConfig, updates: int, report: Report, reserve_s: float,
              between: Callable[[Trainer], None] | None = None) -> UpdateTimer:
    """Train up to ``updates`` updates (the first warms up), stopping early when the next one
    would cut into the last ``reserve_s`` seconds; ``between`` runs between updates, untimed."""
    with tempfile.TemporaryDirectory(dir=report.out_dir) as run_dir:
        trainer = Trainer(replace(cfg, run_dir=run_dir, total_steps=10**12))
        timer = UpdateTimer(trainer)

        def after(t: Trainer) -> None:
            timer.mark(t)
            if between is not None:
                between(t)
            slowest = max((r["seconds"] for r in timer.rows), default=0.0)
            if report.left() - reserve_s < 1.5 * slowest + 5:
                raise _Enough
            timer.restart(t)

        timer.restart(trainer)
        with contextlib.suppress(_Enough):
            trainer.run(stop_at_update=updates, after_update=after)
        if trainer.stop_signal is not None:
            raise Stopped  # the trainer took the SIGTERM/Ctrl-C itself and stopped after an update
    return timer


def run_autotune(report: Report, plan: Plan, device: torch.device, quick: bool, overrides: list[str],
                 cap_s: float) -> Layout:
    """Train each candidate layout for a few updates; the fastest (median SPS after warm-up) wins."""
    stop_at = time.perf_counter() + cap_s
    best: tuple[float, Layout] | None = None
    for layout in plan.candidates(quick, usable_cores()):
        if best is not None and time.perf_counter() > stop_at:
            break
        cfg = compose(layout, *overrides)
        timer = train_for(cfg, plan.tune_updates, report, reserve_s=0.0)
        rows = timer.rows[1:] or timer.rows  # the first update warms up
        sps = statistics.median(r["steps"] / r["seconds"] for r in rows) if rows else 0.0
        report.data["autotune"].append({**asdict(layout), "sps": round(sps, 1), "updates": len(rows)})
        report.log(f"autotune {layout}: {sps:,.0f} SPS")
        report.save()
        if best is None or sps > best[0]:
            best = (sps, layout)
    assert best is not None
    return best[1]


def run_train(report: Report, plan: Plan, layout: Layout, overrides: list[str], reserve_s: float) -> None:
    """R1, then the training run with Rk probed after every update; train_over_raw per update is its
    SPS over the mean of the probes on either side of it, and the figures are medians."""
    cfg = compose(layout, *overrides)
    k = layout.emulator_processes
    per = max(layout.num_envs // k, 1)
    raw: dict[str, Any] = {"k": k, "envs_per_process": per, "R1": None, "Rk": None}
    report.data["raw_sps"] = raw
    one = RawEnvs(cfg, 1, per)
    try:
        one.sps(0.5)
        raw["R1"] = round(one.sps(2 * plan.raw_seconds), 1)
    finally:
        one.close()
    report.log(f"raw R1: {raw['R1']:,.0f} steps/s")
    report.save()
    rawk = RawEnvs(cfg, k, per)
    probes: list[float] = []
    try:
        rawk.sps(0.5)
        timer = train_for(cfg, plan.train_updates, report, reserve_s,
                          between=lambda t: probes.append(rawk.sps(plan.raw_seconds)))
    finally:
        rawk.close()
    rows = timer.rows[1:]  # the first update warms up; probes[i] follows update i + 1
    if not rows:
        raise RuntimeError("no timed training update fitted in the time left")
    train = [r["steps"] / r["seconds"] for r in rows]
    ratios = [s / ((probes[i] + probes[i + 1]) / 2) for i, s in enumerate(train)]
    raw["Rk"] = round(statistics.median(probes), 1)
    report.data.update({
        "train": {"model": plan.train_model, "overrides": overrides, "updates_timed": len(rows),
                  "steps_per_update": rows[0]["steps"], "sps_per_update": [round(s, 1) for s in train]},
        "train_sps": round(statistics.median(train), 1),
        "train_over_raw": round(statistics.median(ratios), 3),
        "time_shares": timer.shares(rows),
    })


def table(data: dict[str, Any]) -> str:
    """The readable summary printed before the JSON line."""

    def num(x: Any, fmt: str = ",.0f") -> str:
        return "-" if x is None else format(x, fmt)

    incomplete = "" if data["complete"] else " (INCOMPLETE)"
    lines = [f"pokerl gpu_check: device {data['device']} ({data['gpu'] or 'no GPU'}), torch {data['torch']}, "
             f"{data['cpu_cores']} cores, {data['elapsed_s']:.0f} s{incomplete}"]
    for name, result in data["cuda_tests"].items():
        why = result.get("detail") or result.get("reason") or result.get("error") or ""
        lines.append(f"  cuda test {name:<18} {result['status']:<8} {why}")
    rollout = data["learner_rollout"]
    for model, variants in data["learner_samples_per_s"].items():
        size = f"{rollout['num_steps']} steps x {rollout['num_envs']} envs" if rollout else ""
        cells = "  ".join(f"{v} {num(s)}" for v, s in variants.items())
        lines.append(f"  learner {model:<8} samples/s ({size}): {cells}")
    for row in data["autotune"]:
        lines.append(f"  autotune {row['num_envs']} envs, {row['workers']} workers, "
                     f"{'async' if row['async_envs'] else 'sync'}: {num(row['sps'])} SPS")
    raw = data["raw_sps"] or {}
    lines.append(f"  raw SPS: R1 {num(raw.get('R1'))}, Rk {num(raw.get('Rk'))} (k = {raw.get('k', '-')})")
    lines.append(f"  train SPS {num(data['train_sps'])}, train_over_raw {num(data['train_over_raw'], '.3f')}"
                 f" (target {TARGETS['train_over_raw']})")
    shares = data["time_shares"]
    if shares:
        lines.append("  time shares: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    for name, status in data["stages"].items():
        if status != "done":
            lines.append(f"  stage {name}: {status}")
    return "\n".join(lines)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Stopped


def run(out_dir: Path, quick: bool, device: torch.device, budget_s: float) -> dict[str, Any]:
    """All stages under the deadline; returns the report's data (also in ``out_dir``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir, budget_s, quick, device)
    plan = Plan.make(quick, device)
    report.save()
    train_overrides = [f"device={device}", f"model={plan.train_model}", f"ppo.num_steps={plan.num_steps}"]
    if device.type == "cuda":
        train_overrides.append("bf16=true")
    # Seconds each stage may take at most (the global deadline cuts in first), and a reserve kept
    # for the stages after the training run.
    scale = 0.4 if quick else 1.0
    compiled = device.type == "cuda" or plan.compile_on_cpu
    main_thread = threading.current_thread() is threading.main_thread()  # where signal handlers live
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        with report.stage("cuda_tests", 5) as go:
            if go:
                run_cuda_tests(report, device, [name for name in CHECKS if name != "compile"])
        with report.stage("learner", 10 * scale) as go:
            if go:
                run_learner(report, plan, device, ("fp32", "bf16"), 60 * scale)
        layout = None
        with report.stage("autotune", 30 * scale) as go:
            if go:
                layout = run_autotune(report, plan, device, quick, train_overrides, 100 * scale)
                report.data["layout"] = {**asdict(layout), "emulator_processes": layout.emulator_processes}
        with report.stage("train", 30 * scale) as go:
            if go:
                run_train(report, plan, layout or plan.candidates(quick, usable_cores())[0], train_overrides,
                          reserve_s=60 if compiled else 0)
        with report.stage("compile", 60) as go:
            if go:
                run_cuda_tests(report, device, ["compile"])
                if compiled:
                    run_learner(report, plan, device, ("bf16_compile",), 120)
                else:
                    report.data["stages"]["compile"] = "skipped: torch.compile on a CPU (--quick)"
                    for variants in report.data["learner_samples_per_s"].values():
                        variants["bf16_compile"] = None
        report.data["complete"] = all(s == "done" or s.startswith("skipped: torch.compile")
                                      for s in report.data["stages"].values())
    except Stopped:
        report.log("stopped (SIGTERM or Ctrl-C) with the figures measured so far")
    finally:
        if main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)
        report.save()
        report.log_file.close()
    return report.data


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    """Command-line entry (``pokerl-bench gpu``, ``scripts/gpu_check.sh``)."""
    parser = argparse.ArgumentParser(prog="pokerl-bench gpu", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for gpu_check.json, gpu_check.log and the runs")
    parser.add_argument("--quick", action="store_true", help="small sizes and budget (the CPU test in CI)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                        help="where the learner and training run go (auto: cuda when available)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole run (default 450, --quick 150)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise PokerlError("--device cuda: CUDA is not available to this torch "
                          f"({torch.__version__}); install a CUDA build of torch or use --device cpu")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    budget = args.budget if args.budget is not None else (150.0 if args.quick else 450.0)
    if budget <= 0:
        raise PokerlError(f"--budget must be > 0 seconds, got {budget}")
    data = run(Path(args.out_dir), args.quick, device, budget)
    print(table(data), flush=True)
    print(json.dumps(data), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
