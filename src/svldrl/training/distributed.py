"""One run on several processes: PyTorch DistributedDataParallel under torchrun (issue 17).

    torchrun --nproc_per_node=N -m svldrl train DATA --method baseline ...
    torchrun --nnodes=2 --nproc_per_node=4 --rdzv-backend=c10d --rdzv-endpoint=HOST:29400 -m svldrl train ...

torchrun starts N processes and sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
``process_group`` joins them (NCCL on GPUs, gloo on CPUs) and PyTorch's
``DistributedDataParallel`` averages the gradients: nothing here sums a gradient. What svldrl adds,
as nnU-Net does: the global batch (``optim.batch_size``) is split evenly over the ranks; each rank
draws its patches from a stream of its own, a pure function of (seed, epoch, batch, rank); rank 0
alone prepares the run folder and writes config, logs, checkpoints and metrics, and validates; a
resumed run reloads the same checkpoint on every rank. Rank 0 with one process is exactly the
single-process run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

RANK_STREAM = 1_000_003
"""Rank r's patch stream and action sampler start at ``seed + r * RANK_STREAM``: rank 0 keeps the run's seed."""


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a distributed run (rank 0 of 1 when there is none)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run folder."""
        return self.rank == 0

    def rank_seed(self, seed: int) -> int:
        """This rank's seed for its patch stream and sampling (``seed`` itself on rank 0)."""
        return seed + self.rank * RANK_STREAM

    def epoch_seed(self, seed: int, epoch: int) -> int:
        """A seed for this rank and epoch: ranks > 0 reseed every epoch so a resumed run draws what an
        uninterrupted one would (a checkpoint holds rank 0's generator only)."""
        return int(np.random.SeedSequence([seed, self.rank, epoch]).generate_state(1)[0])

    def rank_batch(self, batch_size: int) -> int:
        """The patches each rank draws per step: the global batch split evenly."""
        if batch_size % self.world_size:
            raise ValueError(
                f"optim.batch_size {batch_size} is the global batch and must split evenly over {self.world_size} "
                f"processes; set it to a multiple of {self.world_size}"
            )
        return batch_size // self.world_size


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by torchrun (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> Distributed:
    """This process's place: from the initialised process group, else a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return Distributed()
    rank = dist.get_rank()
    return Distributed(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank)))


def planned() -> Distributed:
    """``current()``, or, before the group is joined, the size torchrun announced (checks before any work)."""
    if dist.is_available() and dist.is_initialized():
        return current()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0")) if world > 1 else 0
    return Distributed(rank, world, int(os.environ.get("LOCAL_RANK", rank)))


def rank_gpu(device: torch.device, local_rank: int, gpus: int | None = None) -> int:
    """The GPU of a rank under torchrun: the one of its ``LOCAL_RANK``, as PyTorch's DDP examples do.

    Refuses (ValueError: the CLI's one-line error, exit 2), before the group is joined, what would
    otherwise stop later in a long trace: a device naming one GPU for every rank (NCCL 2.28.9 refuses
    two ranks on one GPU, "Duplicate GPU detected", seen on an H200: benchmarks/README.md), or a rank
    with no GPU of its own (CUDA's "invalid device ordinal").
    """
    if device.index is not None:
        raise ValueError(
            f"--device {device} names one GPU for every rank, and NCCL refuses two ranks on one GPU; use "
            f"--device cuda (each rank takes the GPU of its LOCAL_RANK) with --nproc_per_node at most the GPU count"
        )
    gpus = torch.cuda.device_count() if gpus is None else gpus
    if local_rank >= gpus:
        raise ValueError(
            f"torchrun started local rank {local_rank} but this machine has {gpus} GPU(s): use "
            f"--nproc_per_node={max(gpus, 1)}, one process per GPU"
        )
    return local_rank


def backend() -> str | None:
    """The process group's backend (``nccl`` or ``gloo``), or None in a single process; env.json records it."""
    return dist.get_backend() if dist.is_available() and dist.is_initialized() else None


@contextmanager
def process_group(device: str) -> Iterator[Distributed]:
    """Join the processes torchrun started (NCCL for CUDA devices, gloo otherwise); nothing without torchrun.

    The group is left when the block ends, however it ends, if this block made it.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        yield current()
        return
    if not dist.is_available():
        raise RuntimeError("torchrun started several processes but this torch has no torch.distributed")
    cuda = str(device).startswith("cuda")
    if cuda:
        torch.cuda.set_device(rank_gpu(torch.device(device), int(os.environ.get("LOCAL_RANK", "0"))))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object; no-op in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def device_for(device: torch.device, ctx: Distributed) -> torch.device:
    """A CUDA device without an index becomes this rank's GPU (``LOCAL_RANK``), or in one process the
    current GPU (as tensors report it); a device with an index, or the CPU, stays as it is."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", ctx.local_rank if ctx.enabled else torch.cuda.current_device())
    return device


def wrap(module: torch.nn.Module, ctx: Distributed, device: torch.device) -> torch.nn.Module:
    """``module`` in DistributedDataParallel when the run is distributed, else as it is.

    ``find_unused_parameters``: a stage may leave decoders out of the loss (the value and policy
    heads in Warmup), which DDP must know to finish its gradient reduction.
    """
    if not ctx.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return getattr(module, "module", module) if type(module).__name__ == "DistributedDataParallel" else module
