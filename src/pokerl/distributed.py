"""Many learners under ``torchrun``: each rank runs its own envs on its own device and gradients are
averaged across ranks.

``init_distributed`` joins the process group when ``WORLD_SIZE`` > 1 (NCCL on GPU, Gloo on CPU);
run directly, it returns a world of one and nothing here does any work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from pokerl.errors import ConfigError


def select_device(name: str) -> torch.device:
    """``auto`` → CUDA when available (this rank's GPU under torchrun), else CPU."""
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



@dataclass
class Dist:
    """This process's place under torchrun (world_size 1 when run directly)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPU, Gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size())


def leave_together(d: Dist) -> None:
    """Leave the process group at the end of a run, every rank together: a barrier, then
    ``destroy_process_group``. A rank that simply exits can close its Gloo connections while a
    peer still reads from them, and the peer aborts (SIGABRT, once in a CI run of the torchrun
    resume test). Only on the normal path: after an error the other ranks may be mid-collective."""
    if d.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Every rank starts from rank 0's weights."""
    for param in model.parameters():
        dist.broadcast(param.data, src=0)


def average_gradients(model: torch.nn.Module, world_size: int) -> None:
    """All-reduce and average gradients across ranks (called between backward and step)."""
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world_size


def rank0_decides(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. "stop after this update"), so all ranks act alike."""
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def all_ranks_agree(flag: bool, device: torch.device) -> bool:
    """True on every rank only when ``flag`` is true on every rank."""
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def largest(value: int, device: torch.device) -> int:
    """The largest ``value`` over the ranks, on every rank."""
    t = torch.tensor([float(value)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def exchange(items: list[Any]) -> list[list[Any]]:
    """Every rank's ``items`` (picklable), on every rank, in rank order."""
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, items)
    return gathered
