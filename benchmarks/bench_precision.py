"""Cost of a training step under autocast (bf16, fp16) relative to float32, on a CPU or a GPU (issue 17).

A step is the trainers' own ``train_step`` on one fixed phantom batch, inside the autocast the
Trainer uses (``training/precision.py``), timed by ``bench_training.step_timer`` (which waits for
CUDA's kernels); the precisions are interleaved so a change of load hits all alike; the minimum and
the median over the repeats are reported, with their ratio to fp32 (below 1 is faster). On CPUs,
oneDNN runs bf16 convolutions natively where the CPU has AVX512-BF16 or AMX (``lscpu`` flags
``avx512_bf16``, ``amx_bf16``); elsewhere it converts, and bf16 is slower. fp16 needs CUDA. Whether
a precision is worth a default also needs the LA Dice paired over seeds (docs/results.md), which a
timing cannot say.

    python benchmarks/bench_precision.py --threads 1                 # unet, 48^3 and 64^3, baseline and svl-drl
    python benchmarks/bench_precision.py --sizes 64 --methods baseline --repeats 5
    python benchmarks/bench_precision.py --device cuda --preset paper --backbone swin-unetr --sizes 96 \\
        --batch-size 1 --precisions fp32 bf16 fp16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from bench_training import make_config, step_timer

from svldrl.training import precision


def cpu_flags() -> list[str]:
    """The CPU flags that decide bf16's speed (read by the Trainer's own ``precision.cpu_flags``)."""
    return sorted(precision.cpu_flags() & {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx2"})


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 64])
    parser.add_argument("--methods", nargs="+", default=["baseline", "svl-drl"])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "paper"])
    parser.add_argument("--backbone", default="unet", choices=["unet", "swin-unetr"])
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"],
                        help="fp32 is always timed: it is the reference")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = ["fp32"] + [p for p in args.precisions if p != "fp32"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for method in args.methods:
                timers = {p: step_timer(method, make_config(args.backbone, size, args.batch_size, preset=args.preset,
                                                            device=args.device, precision=p),
                                        Path(tmp) / f"{method}{size}{p}", warmups=3 if p == "fp16" else 1)
                          for p in precisions}  # fmt: skip
                times: dict[str, list[float]] = {p: [] for p in timers}
                for _ in range(args.repeats):
                    for p, timer in timers.items():
                        times[p].append(timer())
                row = {"method": method, "size": size, "batch_size": args.batch_size,
                       "min": {p: min(v) for p, v in times.items()},
                       "median": {p: statistics.median(v) for p, v in times.items()}}  # fmt: skip
                row["ratio_min"] = {p: row["min"][p] / row["min"]["fp32"] for p in precisions}
                row["ratio_median"] = {p: row["median"][p] / row["median"]["fp32"] for p in precisions}
                results.append(row)
                print(f"{method:9s} {size}^3 batch {args.batch_size}: " + ", ".join(
                    f"{p} {row['min'][p]:.3f} s (x{row['ratio_min'][p]:.2f} min, x{row['ratio_median'][p]:.2f} median)"
                    for p in precisions), flush=True)  # fmt: skip
    record = {"machine": device_name(args.device), "device": args.device, "preset": args.preset,
              "backbone": args.backbone, "cpu_flags": cpu_flags(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "results": results}  # fmt: skip
    print(json.dumps({k: record[k] for k in ("machine", "cpu_flags", "torch", "threads")}))
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
