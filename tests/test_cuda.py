"""The GPU code paths on CUDA: the same checks ``pokerl-bench gpu`` reports as ``cuda_tests``.

Policy forward/backward on cuda, bf16 autocast, ``compile=true`` and a 256-step training run. Each
is skipped, with its reason, where torch sees no CUDA device (as on CPU-only CI).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pokerl.bench import gpu

NO_CUDA = "no CUDA device: the GPU checks need one (scripts/gpu_check.sh runs them too)"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
CUDA = torch.device("cuda")


@needs_cuda
def test_policy_forward_backward_on_cuda() -> None:
    gpu.check_policy_fwd_bwd(CUDA)


@needs_cuda
def test_bf16_autocast_keeps_fp32_weights_and_grads() -> None:
    gpu.check_bf16_autocast(CUDA)


@needs_cuda
def test_compile_matches_eager_and_trains(tmp_path: Path) -> None:
    gpu.check_compile(CUDA, str(tmp_path / "run"))


@needs_cuda
def test_training_run_of_256_steps_on_cuda(tmp_path: Path) -> None:
    gpu.check_training_run(CUDA, str(tmp_path / "run"))


def test_every_cuda_check_has_a_test() -> None:
    assert set(gpu.CHECKS) == set(gpu.CUDA_TESTS)
