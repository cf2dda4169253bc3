"""``scripts/gpu_check.sh --quick --device cpu`` runs end to end and reports every documented figure.

The GPU benchmark cannot rot on CPU-only CI: this runs the real script (real emulators, the real
trainer) with the quick budget, checks the printed JSON line against the JSON file, every documented
key, and that the CUDA checks are reported as skipped (never passed) when they did not run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
CUDA_TESTS = {"policy_fwd_bwd", "bf16_autocast", "training_run_256", "compile"}
DOCUMENTED = {"device", "quick", "complete", "budget_s", "elapsed_s", "torch", "cuda", "gpu", "cpu_cores",
              "stages", "cuda_tests", "learner_rollout", "learner_samples_per_s", "autotune", "layout",
              "raw_sps", "train", "train_sps", "train_over_raw", "time_shares", "targets"}


def run_check(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    # longer than any --budget below, so the script's own deadline always answers first
    return subprocess.run(["bash", str(SCRIPT), *args, str(out)], capture_output=True, text=True, env=env,
                          timeout=1500, cwd=ROOT)


def last_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def quick_cpu(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("gpu_check")
    # a deadline far beyond what --quick needs: whether every stage finishes must not depend on how
    # busy the machine is (the cut-short test below covers the deadline)
    return run_check(out, "--quick", "--device", "cpu", "--budget", "1200"), out


def test_json_line_matches_the_file_and_the_log_is_written(quick_cpu: tuple[Any, Path]) -> None:
    proc, out = quick_cpu
    data = last_json(proc)
    assert data == json.loads((out / "gpu_check.json").read_text())
    assert "learner small fp32" in (out / "gpu_check.log").read_text()
    assert "train_over_raw" in proc.stdout and "time shares" in proc.stdout  # the readable table
    assert not [p for p in out.iterdir() if p.is_dir()], "the training runs' temporary dirs are left behind"


def test_every_documented_key_is_measured(quick_cpu: tuple[Any, Path]) -> None:
    data = last_json(quick_cpu[0])
    assert set(data) >= DOCUMENTED
    assert data["device"] == "cpu" and data["quick"] is True and data["complete"] is True
    assert data["stages"].keys() == {"cuda_tests", "learner", "autotune", "train", "compile"}
    assert all(s == "done" for name, s in data["stages"].items() if name != "compile"), data["stages"]
    assert data["stages"]["compile"].startswith("skipped: ")

    small = data["learner_samples_per_s"]["small"]
    assert small["fp32"] > 0 and small["bf16"] > 0 and small["bf16_compile"] is None
    assert data["learner_rollout"] == {"num_steps": 32, "num_envs": 4}

    assert len(data["autotune"]) >= 2 and all(row["sps"] > 0 for row in data["autotune"])
    layout = data["layout"]
    assert {k: layout[k] for k in ("num_envs", "workers", "async_envs")} in [
        {k: row[k] for k in ("num_envs", "workers", "async_envs")} for row in data["autotune"]]

    raw = data["raw_sps"]
    assert raw["R1"] > 0 and raw["Rk"] > 0 and raw["k"] >= 1
    assert data["train_sps"] > 0 and data["train_over_raw"] > 0
    assert data["train"]["model"] == "small" and data["train"]["updates_timed"] >= 1
    shares = data["time_shares"]
    assert shares.keys() == {"rollout", "inference", "update"}
    assert all(v > 0 for v in shares.values()), shares  # each part was timed


def test_cuda_checks_are_skipped_with_a_reason_never_passed(quick_cpu: tuple[Any, Path]) -> None:
    tests = last_json(quick_cpu[0])["cuda_tests"]
    assert tests.keys() == CUDA_TESTS
    for name, result in tests.items():
        assert result["status"] == "skipped" and result["reason"], (name, result)


def test_a_run_cut_short_keeps_the_figures_it_has(tmp_path: Path) -> None:
    data = last_json(run_check(tmp_path, "--quick", "--device", "cpu", "--budget", "15"))
    assert data == json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["complete"] is False
    # how far 15 s get depends on the machine: every stage is either done (with its figures) or
    # marked out of time, and at least one is out of time
    assert any("out of time" in s for s in data["stages"].values()), data["stages"]
    if data["stages"].get("learner") == "done":
        assert data["learner_samples_per_s"]["small"]["fp32"] > 0
    assert "INCOMPLETE" in run_table(data)


def run_table(data: dict[str, Any]) -> str:
    from pokerl.bench.gpu import table

    return table(data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_device_cuda_without_cuda_is_a_one_line_error(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pokerl.cli.bench", "gpu", "--device", "cuda", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "CUDA is not available" in proc.stderr
