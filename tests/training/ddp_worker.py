"""Run under torchrun by test_distributed.py: train a tiny baseline with the Trainer API, save each rank's weights.

    torchrun --standalone --nproc_per_node=2 tests/training/ddp_worker.py OUT straight|resume
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.training import Trainer


def main(out: Path, mode: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    cfg = merge(CPU, {"data": {"patch_size": [32, 32, 32]}, "model": {"channels": [4, 8]}, "num_threads": 1,
                      "val_every": 0, "optim": {"epochs": 3, "iters_per_epoch": 2, "batch_size": 2}})  # fmt: skip
    cases = make_phantoms(4, 32, seed=5)
    run_dir = out / "run"

    def trainer() -> Trainer:
        return Trainer(cfg, cases, [], PHANTOM_LABELS, run_dir, progress=False)

    if mode == "resume":
        trainer().fit(stop_after=1)
        dist.barrier()  # rank 0's checkpoint is on disk before anyone reads it
        net = trainer()
        net.fit(resume=True)
    else:
        net = trainer()
        net.fit()
    torch.save({name: p.detach().clone() for name, p in net.module.named_parameters()}, out / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
