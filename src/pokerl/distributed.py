"""Many learners under ``torchrun``: each rank runs its own envs on its own device and gradients are
averaged across ranks.

``init_distributed`` joins the process group when ``WORLD_SIZE`` > 1 (NCCL on GPU, Gloo on CPU);
run directly, it returns a world of one and every collective here is a no-op (``select_device`` still
sets cuDNN's autotuner and TF32 on CUDA).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from pokerl.errors import ConfigError


def _device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name}: not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: CUDA is not available on this machine (use device=auto or cpu)")
    return device


def select_device(name: str) -> torch.device:
    """``auto`` → CUDA when available (this rank's GPU under torchrun), else CPU; on a GPU, set up for a
    few fixed shapes: cuDNN picks its fastest kernels, fp32 matmuls use TF32."""
    device = _device(name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    return device


@dataclass
class Dist:
    """This process's place under torchrun (world_size 1 when run directly) and what ranks do together.

    Each collective is a no-op in a world of one, so the trainer reads the same either way."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def decide(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (e.g. "stop after this update"), so all ranks act alike."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.broadcast(t, src=0)
        return bool(t.item())

    def agree(self, flag: bool) -> bool:
        """True on every rank only when ``flag`` is true on every rank."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def largest(self, value: int) -> int:
        """The largest ``value`` over the ranks, on every rank."""
        if self.world_size == 1:
            return value
        t = torch.tensor([float(value)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def from_main(self, item: Any) -> Any:
        """Rank 0's ``item`` (picklable) on every rank."""
        if self.world_size == 1:
            return item
        box = [item]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def exchange(self, items: list[Any]) -> list[list[Any]]:
        """Every rank's ``items`` (picklable), on every rank, in rank order."""
        if self.world_size == 1:
            return [items]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, items)
        return gathered

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        """Every rank starts from rank 0's weights."""
        if self.world_size > 1:
            for param in model.parameters():
                dist.broadcast(param.data, src=0)

    def average_gradients(self, model: torch.nn.Module) -> None:
        """All-reduce and average gradients across ranks (called between backward and step)."""
        if self.world_size > 1:
            for p in model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                    p.grad /= self.world_size

    def leave(self) -> None:
        """Leave the process group at the end of a run, every rank together: a barrier, then
        ``destroy_process_group``. A rank that simply exits can close its Gloo connections while a
        peer still reads from them, and the peer aborts (SIGABRT, once in a CI run of the torchrun
        resume test). Only on the normal path: after an error the other ranks may be mid-collective."""
        if self.world_size > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def init_distributed(device: torch.device) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPU, Gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)
