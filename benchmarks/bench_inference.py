"""Time an inference pass of ``ThreeHeadNet.segment`` against the plain MONAI backbone on the same input.

Run: ``python benchmarks/bench_inference.py [--sizes 64 96] [--unet-sizes 48 96] [--repeats 7] [--wall]``.

method.md: at inference only the segmentation decoder runs, so a deployed SVL-DRL model must cost no
more than the plain backbone (target: ratio <= 1.05). References, in the same process:
  - swin-unetr: ``monai.networks.nets.SwinUNETR`` with the same ``feature_size``;
  - unet: ``monai.networks.nets.DynUNet`` with the same channels, kernel 3, strides (1, 2, 2, ...)
    and one decoder (the layout our 'unet' backbone copies).
Both networks run under ``torch.no_grad`` in eval mode, one torch thread by default. After warm-up
the two are timed in alternation (the order flips each round), in CPU seconds of the process
unless ``--wall``. Printed: the median times, the median of the per-round ratios (robust to load
changes on a shared machine) and the ratio of the fastest runs. For swin-unetr the MONAI weights
are copied into our network first and the largest absolute difference of the two outputs is
printed (0 means the same computation).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import torch
from monai.networks.nets import DynUNet, SwinUNETR

from svldrl.config import ModelConfig
from svldrl.models import build_network, load_swin_unetr_weights


class PairTiming(NamedTuple):
    """Seconds of each timed round of the two functions."""

    ours: list[float]
    reference: list[float]

    def ratio(self) -> float:
        """Median over rounds of ours / reference: each pair ran back to back, so a load change on the
        shared machine affects both sides of a ratio, unlike the ratio of two medians."""
        return statistics.median(o / r for o, r in zip(self.ours, self.reference, strict=True))


class Settings(NamedTuple):
    """How to time: calls before timing, timed rounds, and the clock."""

    warmup: int
    repeats: int
    clock: Callable[[], float]
    """``time.process_time`` by default: CPU seconds of this process. On a shared machine wall time
    also counts the waits for a core, which differ between two back-to-back runs."""


def add_timing_arguments(parser: argparse.ArgumentParser, warmup: int = 1, repeats: int = 5) -> None:
    """``--warmup``, ``--repeats`` and ``--threads``, the options every paired timing here takes."""
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")


def timing_settings(args: argparse.Namespace) -> Settings:
    """Set torch's thread count from ``add_timing_arguments``' options; the CPU-time settings they give."""
    torch.set_num_threads(args.threads)
    return Settings(args.warmup, args.repeats, time.process_time)


def time_pair(
    ours: Callable[[], torch.Tensor], reference: Callable[[], torch.Tensor], settings: Settings
) -> PairTiming:
    """Seconds per call of ``ours`` and ``reference``, timed in alternation after the warm-up calls."""
    for _ in range(settings.warmup):
        ours()
        reference()
    timing = PairTiming([], [])
    for i in range(settings.repeats):
        order = [(timing.ours, ours), (timing.reference, reference)]
        for times, fn in order if i % 2 == 0 else order[::-1]:
            start = settings.clock()
            fn()
            times.append(settings.clock() - start)
    return timing


def bench_swin(side: int, feature_size: int, settings: Settings) -> None:
    torch.manual_seed(0)
    reference = SwinUNETR(in_channels=1, out_channels=2, feature_size=feature_size).eval()
    net = build_network(ModelConfig(backbone="swin-unetr", feature_size=feature_size), 1, 2).eval()
    load_swin_unetr_weights(net, reference.state_dict())
    x = torch.rand(1, 1, side, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (net.segment(x) - reference(x)).abs().max().item()
        timing = time_pair(lambda: net.segment(x), lambda: reference(x), settings)
    report(f"swin-unetr fs={feature_size} {side}^3", timing, f"max |diff| {diff:.1e}")


def bench_unet(side: int, channels: tuple[int, ...], batch: int, settings: Settings) -> None:
    torch.manual_seed(0)
    levels = len(channels)
    reference = DynUNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=2,
        kernel_size=[3] * levels,
        strides=[1] + [2] * (levels - 1),
        upsample_kernel_size=[2] * (levels - 1),
        filters=list(channels),
        norm_name=("instance", {"affine": True}),
    ).eval()
    net = build_network(ModelConfig(backbone="unet", channels=channels), 1, 2).eval()
    params = (sum(p.numel() for p in net.seg_parameters()), sum(p.numel() for p in reference.parameters()))
    x = torch.rand(batch, 1, side, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        timing = time_pair(lambda: net.segment(x), lambda: reference(x), settings)
    report(f"unet {channels} B={batch} {side}^3", timing, f"params seg path/DynUNet {params[0]}/{params[1]}")


def report(name: str, timing: PairTiming, note: str) -> None:
    ours, ref = statistics.median(timing.ours), statistics.median(timing.reference)
    fastest = min(timing.ours) / min(timing.reference)
    print(
        f"{name:<34} segment {ours * 1e3:7.1f} ms  MONAI {ref * 1e3:7.1f} ms (medians)  "
        f"ratio: paired {timing.ratio():5.3f}, of minima {fastest:5.3f}  ({note})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 96], help="swin-unetr cube sides")
    parser.add_argument("--feature-size", type=int, default=48)
    parser.add_argument("--unet-sizes", type=int, nargs="*", default=[48, 96], help="unet cube sides")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    parser.add_argument("--wall", action="store_true", help="time wall-clock seconds instead of CPU seconds")
    args = parser.parse_args()
    settings = Settings(args.warmup, args.repeats, time.perf_counter if args.wall else time.process_time)
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {'wall' if args.wall else 'CPU'} time, "
        f"median of {args.repeats} after {args.warmup} warm-up"
    )
    for side in args.unet_sizes:
        bench_unet(side, (16, 32, 64, 128), 1, settings)
    for side in args.sizes:
        bench_swin(side, args.feature_size, settings)


if __name__ == "__main__":
    main()
