"""Time ADELE's label-correction prediction per training volume: one scale (defaults v4) against three scales and flips.

Run: ``python benchmarks/bench_adele_correction.py [--shape 76 50 28] [--repeats 3]``.

Why: a correction predicts every training volume. With the VOC script's views (scales 0.7, 1.0, 1.5,
each also flipped) that is sum(s^3) x 2 = 9.4 whole volumes per case, and it made ADELE 12-16x a
baseline epoch on LA (docs/results.md, "Cost of each method"). The 3D reference (SegTHOR) corrects
from one single-scale prediction, today's default. Both forms run in the same process, in
alternation, on the cpu preset's unet and the 2 mm LA volume size (76 x 50 x 28), through
``ADELETrainer.multiscale_probs``, the function the correction calls.
Reference: ``correction_scales=null, flips=true`` (defaults v3 and before).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_inference import Settings, time_pair

from svldrl.baselines.adele import ADELETrainer
from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms


def trainer(options: dict, folder: Path, threads: int, overlap: float) -> ADELETrainer:
    """An ADELE trainer of the cpu preset (32^3 windows) whose correction options are ``options``."""
    cfg = merge(CPU, {"method": "adele", "data": {"patch_size": [32, 32, 32]}, "num_threads": threads,
                      "sw_overlap": overlap, "method_options": options})
    return ADELETrainer(cfg, make_phantoms(1, 32, seed=0), [], PHANTOM_LABELS, folder, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[76, 50, 28], help="volume size in voxels")
    parser.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap (the LA grids': 0.25)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    args = parser.parse_args()
    settings = Settings(args.warmup, args.repeats, time.process_time)
    image = np.random.default_rng(1).random((1, *args.shape), dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        ours = trainer({}, Path(folder) / "ours", args.threads, args.overlap)
        legacy = trainer({"correction_scales": None, "flips": True}, Path(folder) / "legacy", args.threads,
                         args.overlap)
        legacy.net.load_state_dict(ours.net.state_dict())
        timing = time_pair(lambda: ours.multiscale_probs(image), lambda: legacy.multiscale_probs(image), settings)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU time, unet {CPU.model.channels}, "
          f"volume {tuple(args.shape)}, windows 32^3, overlap {args.overlap}")
    print(f"one scale: {statistics.median(timing.ours):6.2f} s  vs 3 scales + flips: "
          f"{statistics.median(timing.reference):6.2f} s per volume (medians)  ratio, paired {timing.ratio():5.3f}")


if __name__ == "__main__":
    main()
