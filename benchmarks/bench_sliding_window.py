"""Time sliding-window inference with several windows per forward pass against one window per pass.

Run: ``python benchmarks/bench_sliding_window.py [--shape 114 75 42] [--batch 4] [--repeats 5]``.

Why: every run is scored by sliding-window inference over whole volumes, and ADELE, RSF and the
SFDA source model predict every training volume several times. On CPU ``sw_batch_size`` (an execution
setting: the results are the same up to float rounding, tests/inference) decides much of the cost:
torch 2.13 on CPU runs a 3D convolution of a batch of one through ``slow_conv3d`` (im2col) and a
batch of two or more through oneDNN (see ``torch.profiler`` on ``net.segment``).
Reference: ``sw_batch_size=1``, MONAI's default. Both run in the same process, in alternation,
on the cpu preset's unet and the 2 mm LA volume size (default: 114 x 75 x 42, the largest of
ADELE's three scales; 76 x 50 x 28 is scale 1).
"""

from __future__ import annotations

import argparse
import statistics

import torch
from bench_inference import add_timing_arguments, time_pair, timing_settings

from svldrl.config import CPU
from svldrl.inference import predict_probabilities
from svldrl.models import build_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[114, 75, 42], help="volume size in voxels")
    parser.add_argument("--patch", type=int, default=32, help="window side")
    parser.add_argument("--batch", type=int, nargs="*", default=[2, 4, 8], help="windows per pass to compare with 1")
    parser.add_argument("--overlap", type=float, default=0.25)
    add_timing_arguments(parser)
    args = parser.parse_args()
    settings = timing_settings(args)
    torch.manual_seed(0)
    net = build_network(CPU.model, 1, 2).eval()
    image = torch.rand(1, *args.shape, generator=torch.Generator().manual_seed(1))
    patch = (args.patch,) * 3

    def predict(windows: int):
        return lambda: predict_probabilities(net, image, patch, overlap=args.overlap, sw_batch_size=windows)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU time, unet {CPU.model.channels}, "
          f"volume {tuple(args.shape)}, windows {args.patch}^3, overlap {args.overlap}")
    for windows in args.batch:
        timing = time_pair(predict(windows), predict(1), settings)
        print(f"sw_batch_size {windows}: {statistics.median(timing.ours):6.2f} s  vs 1: "
              f"{statistics.median(timing.reference):6.2f} s (medians)  ratio, paired {timing.ratio():5.3f}")


if __name__ == "__main__":
    main()
