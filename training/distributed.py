"""Several processes training one model (``torchrun``): which rank this is, its device, and the summed gradients.

With ``WORLD_SIZE`` > 1 each rank trains on its slice of every global batch (see :mod:`training.data`), the loss
gathers the other ranks' vectors (see :mod:`training.loss`), and :func:`all_reduce_gradients` sums the gradients, so
several ranks train like one process holding the whole batch. A single process is rank 0 of 1 and never touches
``torch.distributed``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from reasonembed_rag.encoder import resolve_device


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this rank writes the shared files (log, checkpoints, model)."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in a single process)."""
        if self.world_size > 1:
            torch.distributed.barrier()


def setup_distributed(device: str | None) -> Ranks:
    """Join the process group that ``torchrun`` describes in the environment (NCCL on CUDA, else gloo)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Ranks()
    if not torch.distributed.is_initialized():
        cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    return Ranks(
        rank=torch.distributed.get_rank(),
        world_size=torch.distributed.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def rank_device(ranks: Ranks, device: str | None) -> torch.device:
    """The device this rank trains on: its own GPU (``LOCAL_RANK``) when several ranks share CUDA, else ``device``."""
    if ranks.world_size > 1 and torch.cuda.is_available() and (device or "cuda").startswith("cuda"):
        chosen = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(chosen)
        return chosen
    return resolve_device(device)


def all_reduce_gradients(parameters: Sequence[torch.nn.Parameter]) -> None:
    """Sum gradients over ranks (each rank holds the gradient of the global loss through its own rows)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()
