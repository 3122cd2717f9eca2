"""Snapshots of a run's training: train a copy of a finished run's configuration and keep its network at
chosen epochs (the schedule still spans the whole run, as ``train_run(stop_after=...)`` does).

Why: a label-correcting method (ADELE) acts on the network as it is at one epoch; to see what a
correction at epoch e would do, one needs the network at epoch e of the same schedule. Each snapshot
is ``checkpoints/latest.pt`` copied after that epoch.

    python experiments/la/snapshots.py ../shared/data/la2018 runs/la2018/baseline-dice-ce__mt-0.5__seed0 \\
        runs/probe/base --epochs 32 40 48 56 64 80 96 128
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from svldrl.config import load_config
from svldrl.experiments.pipeline import train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the data folder the run was trained on")
    parser.add_argument("run", type=Path, help="the finished run whose config.yaml is copied")
    parser.add_argument("out", type=Path, help="the copy's run folder; snapshots go to OUT/snapshots/eN.pt")
    parser.add_argument("--epochs", type=int, nargs="+", required=True, help="epochs after which to keep a snapshot")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.run / "config.yaml")
    snapshots = args.out / "snapshots"
    for epoch in sorted(args.epochs):
        train_run(args.data, cfg, out=args.out, runs_root=args.out.parent, resume=args.out.exists(), progress=False,
                  stop_after=epoch)  # fmt: skip
        snapshots.mkdir(exist_ok=True)
        shutil.copyfile(args.out / "checkpoints" / "latest.pt", snapshots / f"e{epoch}.pt")
        print(f"epoch {epoch}: {snapshots / f'e{epoch}.pt'}", flush=True)


if __name__ == "__main__":
    main()
