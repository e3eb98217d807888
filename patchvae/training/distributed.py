"""Multi-process training with ``torch.distributed``: launched by ``torchrun``, gloo on CPU, NCCL on GPU."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["World", "broadcast_buffers", "init_world", "wrap_ddp"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device) -> World:
    """Join the process group if launched by ``torchrun`` (``WORLD_SIZE`` > 1), else a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    world = World(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size())
    if device.type == "cpu":
        # share the cores between the processes instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world.size))
    log.info("process %d/%d joined the %s process group", world.rank, world.size, dist.get_backend())
    return world


def wrap_ddp(module: nn.Module, world: World, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``module`` when training with several processes."""
    if not world.distributed:
        return module
    device_ids = [device.index if device.index is not None else world.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


@torch.no_grad()
def broadcast_buffers(module: nn.Module, world: World) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, so all ranks hold the same state."""
    if world.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)
