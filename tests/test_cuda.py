"""The GPU code paths on CUDA: the same checks ``pokerl-bench gpu`` reports as ``cuda_tests``.

Policy forward/backward on cuda, bf16 autocast, ``compile=true`` and a 256-step training run. Each
is skipped, with its reason, where torch sees no CUDA device (as on CPU-only CI).
"""

from __future__ import annotations

import pytest
import torch

from pokerl.bench import gpu

NO_CUDA = "no CUDA device: the GPU checks need one (scripts/gpu_check.sh runs them too)"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
CUDA = torch.device("cuda")


@needs_cuda
@pytest.mark.parametrize("name", list(gpu.CHECKS))
def test_cuda_check(name: str) -> None:
    """Each check of ``gpu.CHECKS``, the table ``pokerl-bench gpu`` runs, so none is left untested."""
    gpu.CHECKS[name](CUDA)
