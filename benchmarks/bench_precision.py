"""Cost of a training step in bf16 autocast relative to float32, on this machine's CPU (issue 17).

A step is the trainers' own ``train_step`` on one fixed phantom batch, inside the autocast the
Trainer uses (``training/precision.py``); fp32 and bf16 steps are interleaved so a change of load
hits both alike; the minimum and the median over the repeats are reported, with their ratio
(bf16 / fp32: below 1 is faster). oneDNN runs bf16 convolutions natively where the CPU has
AVX512-BF16 or AMX (``lscpu`` flags ``avx512_bf16``, ``amx_bf16``); elsewhere it converts, and
bf16 is slower. Whether it is worth making the CPU default also needs the LA Dice paired over
seeds (docs/results.md), which a timing cannot say.

    python benchmarks/bench_precision.py --threads 1                 # unet, 48^3 and 64^3, baseline and svl-drl
    python benchmarks/bench_precision.py --sizes 64 --methods baseline --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.training import METHODS
from svldrl.training.precision import autocast


def step_timer(method: str, size: int, batch_size: int, precision: str, run_dir: Path):
    cfg = merge(CPU, {"method": method, "precision": precision, "data": {"patch_size": [size] * 3},
                      "optim": {"batch_size": batch_size, "epochs": 10}, "rl": {"episode_length": 3},
                      "stages": {"skip_warmup": True, "skip_transition": True}})  # fmt: skip
    trainer = METHODS.get(method)(cfg, make_phantoms(2, size, seed=0), [], PHANTOM_LABELS, run_dir, progress=False)
    batch = trainer.batch_to_device(next(trainer.sampler.epoch(0, 1, batch_size)))
    trainer.net.train()

    def run() -> float:
        start = time.perf_counter()
        with autocast(trainer.precision, trainer.device):
            trainer.train_step(batch, 0)
        return time.perf_counter() - start

    run()  # warm-up: allocator, oneDNN kernels
    return run


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx2"))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 64])
    parser.add_argument("--methods", nargs="+", default=["baseline", "svl-drl"])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for method in args.methods:
                timers = {p: step_timer(method, size, args.batch_size, p, Path(tmp) / f"{method}{size}{p}")
                          for p in ("fp32", "bf16")}  # fmt: skip
                times: dict[str, list[float]] = {p: [] for p in timers}
                for _ in range(args.repeats):
                    for p, timer in timers.items():
                        times[p].append(timer())
                row = {"method": method, "size": size, "batch_size": args.batch_size,
                       "min": {p: min(v) for p, v in times.items()},
                       "median": {p: statistics.median(v) for p, v in times.items()}}  # fmt: skip
                row["ratio_min"] = row["min"]["bf16"] / row["min"]["fp32"]
                row["ratio_median"] = row["median"]["bf16"] / row["median"]["fp32"]
                results.append(row)
                print(f"{method:9s} {size}^3 batch {args.batch_size}: fp32 {row['min']['fp32']:.3f} s, bf16 "
                      f"{row['min']['bf16']:.3f} s (min); bf16/fp32 {row['ratio_min']:.2f} (min), "
                      f"{row['ratio_median']:.2f} (median)", flush=True)
    record = {"machine": platform.processor() or platform.machine(), "cpu_flags": cpu_flags(),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}  # fmt: skip
    print(json.dumps({k: record[k] for k in ("cpu_flags", "torch", "threads")}))
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
