"""Throughput of one run over two processes (torchrun, gloo on CPU) against one process (issue 17).

Both train the same configuration (the baseline on phantoms, the global batch ``--batch-size``):
one process with all ``--threads`` threads, or torchrun with ``--nproc`` processes of
``threads / nproc`` threads each, DistributedDataParallel averaging their gradients. The figure is
the mean ``epoch_time`` of log.csv over the epochs after the first (data loading, warm-up), the
ratio DDP / single (below 1: faster). On one CPU, DDP splits the same cores between processes,
so it shows the overhead of the gradient all-reduce rather than a speed-up; on several GPUs or
machines it is what adds devices.

    python benchmarks/bench_ddp.py                         # 2 processes x 1 thread vs 1 x 2, baseline, 48^3
    python benchmarks/bench_ddp.py --method svl-drl --size 32 --epochs 4
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def train(out: Path, data: Path, args: argparse.Namespace, processes: int) -> float:
    """Train one run; returns the mean epoch time after the first epoch, in seconds."""
    threads = max(1, args.threads // processes)
    settings = ["--set", f"data.patch_size={args.size}", "--set", f"optim.epochs={args.epochs}",
                "--set", f"optim.iters_per_epoch={args.iters}", "--set", f"optim.batch_size={args.batch_size}",
                "--set", f"num_threads={threads}", "--set", "val_every=0",
                "--set", "stages.warmup_epochs=1", "--set", "stages.transition_epochs=0"]  # fmt: skip
    train = ["-m", "svldrl", "train", str(data), "--method", args.method, "--out", str(out), "-q", *settings]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   *train]  # fmt: skip
    else:
        command = [sys.executable, *train]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    subprocess.run(command, check=True, capture_output=True, env=env)
    with (out / "log.csv").open() as handle:
        times = [float(row["epoch_time"]) for row in csv.DictReader(handle)]
    return statistics.mean(times[1:])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="baseline", choices=["baseline", "svl-drl"])
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=2, help="the global batch")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="threads in all, shared by the processes")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "ph"
        subprocess.run([sys.executable, "-m", "svldrl", "phantom", str(data), "--n", "6", "--size", str(args.size),
                        "--seed", "0"], check=True, capture_output=True)  # fmt: skip
        single, ddp = [], []
        for r in range(args.repeats):  # interleaved: load changes hit both alike
            single.append(train(Path(tmp) / f"one{r}", data, args, 1))
            ddp.append(train(Path(tmp) / f"ddp{r}", data, args, args.nproc))
    result = {"method": args.method, "size": args.size, "global_batch": args.batch_size, "nproc": args.nproc,
              "threads": args.threads, "epoch_seconds_single": single, "epoch_seconds_ddp": ddp,
              "ratio_median": statistics.median(ddp) / statistics.median(single)}  # fmt: skip
    print(f"{args.method} {args.size}^3, global batch {args.batch_size}, {args.threads} threads: one process "
          f"{statistics.median(single):.2f} s/epoch, {args.nproc} processes {statistics.median(ddp):.2f} s/epoch; "
          f"DDP / single {result['ratio_median']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
