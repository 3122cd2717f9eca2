"""Time ``step_reward`` (global and voxel) against a forward pass of the 'unet' network on the same patch.

Run: ``python benchmarks/bench_reward.py [--repeats 7] [--threads 1]``.

The question is the share of an SVL-DRL step spent on the reward: each of the K steps of an episode
runs the network on the new state and scores it. Cases: a 96^3 patch with batch 1 (the paper's
setting) and 48^3 with batch 2 (the "cpu" preset). The label is a ball; the prediction is the ball
blurred by smoothed noise, with tens of small false components (an early-training prediction).
Reported per case, median CPU seconds of the process (one torch thread by default):
  - step_reward "global" and "voxel" with ``prev_penalty`` passed (what a rollout does: each
    state's penalty computed once) and "global" without it (both penalties computed);
  - the parts: ``anatomical_penalty`` of one state (cc3d + TV) and ``soft_dice``;
  - the unet (channels 16, 32, 64, 128) three-head forward under no_grad, and forward + backward;
and the ratio reward / forward.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from svldrl.config import ModelConfig
from svldrl.models import build_network
from svldrl.rl import anatomical_penalty, soft_dice, step_reward


def median_seconds(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median CPU seconds of the process per call (wall time on a shared machine counts waits for a core)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def fake_prediction(batch: int, side: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(prob, target), both (B, 1, side, side, side): a noisy smooth blob around a ball label."""
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, side)] * 3, indexing="ij"))
    target = (grid.square().sum(0) < 0.5**2).float().expand(batch, 1, side, side, side).contiguous()
    noise = torch.randn(batch, 1, side, side, side, generator=generator)
    smooth_noise = F.avg_pool3d(noise, 5, stride=1, padding=2) * 12  # ~30 specks at 96^3
    prob = torch.sigmoid(8 * (target - 0.5) + smooth_noise)
    return prob, target


def bench_case(side: int, batch: int, warmup: int, repeats: int) -> None:
    g = torch.Generator().manual_seed(0)
    prev, target = fake_prediction(batch, side, g)
    prob, _ = fake_prediction(batch, side, g)
    prev_penalty = anatomical_penalty(prev)
    torch.manual_seed(0)
    net = build_network(ModelConfig(backbone="unet", channels=(16, 32, 64, 128)), 1, 2)
    x = torch.rand(batch, 1, side, side, side, generator=g)

    def forward_backward() -> None:
        out = net(x)
        (out.seg.mean() + out.value.mean() + out.policy.mean()).backward()
        net.zero_grad(set_to_none=True)

    def forward_no_grad() -> None:
        with torch.no_grad():
            net(x)

    timings = {
        "reward global": lambda: step_reward(prev, prob, target, prev_penalty=prev_penalty),
        "reward voxel": lambda: step_reward(prev, prob, target, granularity="voxel", prev_penalty=prev_penalty),
        "reward global, both penalties": lambda: step_reward(prev, prob, target),
        "  anatomical_penalty (1 state)": lambda: anatomical_penalty(prob),
        "  soft_dice (1 state)": lambda: soft_dice(prob, target),
        "unet forward, 3 heads, no_grad": forward_no_grad,
        "unet forward + backward, 3 heads": forward_backward,
    }
    seconds = {name: median_seconds(fn, warmup, repeats) for name, fn in timings.items()}
    forward = seconds["unet forward, 3 heads, no_grad"]
    print(f"\n{side}^3, batch {batch}: penalty of the state {prev_penalty.tolist()}")
    for name, sec in seconds.items():
        print(f"  {name:<36} {sec * 1e3:9.1f} ms   {sec / forward:6.3f} x forward")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {args.repeats}")
    bench_case(96, 1, args.warmup, args.repeats)
    bench_case(48, 2, args.warmup, args.repeats)


if __name__ == "__main__":
    main()
