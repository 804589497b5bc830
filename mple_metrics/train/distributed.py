"""torch.distributed setup for ``torchrun``: reads RANK/WORLD_SIZE/LOCAL_RANK from the
environment, uses gloo on the CPU and nccl on CUDA.  One process (no environment) is the default."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``cpu`` or ``cuda`` (``cuda:LOCAL_RANK`` under torchrun); a clear error without a GPU."""
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available "
                               f"(torch {torch.__version__}, cuda build: {torch.version.cuda})")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    raise ValueError(f"device must be 'cpu' or 'cuda', got {name!r}")


def setup_distributed(device: str = "cpu") -> DistributedContext:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if torch_device.type == "cuda":
            torch.cuda.set_device(torch_device)
        dist.init_process_group("nccl" if torch_device.type == "cuda" else "gloo")
    if world_size > 1:
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistributedContext(rank, world_size, local_rank, torch_device)
