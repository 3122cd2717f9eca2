"""Time RSF-assisted MTCL's extra work per step: one RSF vetting of a 32^3 patch against one training step.

Run: ``python benchmarks/bench_rsf.py [--iterations 200] [--repeats 5]``.

Why: with base ``mtcl`` every batch's noisy patch is vetted by an RSF evolution (200 steps, each
four separable Gaussian blurs), so RSF sets the cost of the row (``experiments/la/rsf_mtcl.yaml``).
Two pairs, each timed in alternation in CPU seconds of this process:
1. the blur: ``separable_blur`` (a matrix product per axis, bands made once per evolution) against
   the same zero-padded Gaussian by ``torch.nn.functional.conv3d``, three 1D kernels: the tool a
   reader would reach for first;
2. the vetting (``rsf_regions`` of one phantom patch, from its dilated label) against one training
   step of the cpu preset's network (forward, Dice + CE, backward, Adam) on a batch of two 32^3
   patches, the step it is added to.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from bench_inference import Settings, add_timing_arguments, time_pair, timing_settings
from scipy import ndimage

from svldrl.baselines.rsf import RSFParameters, blur_bands, gaussian_kernel, rsf_regions, separable_blur
from svldrl.config import CPU
from svldrl.data import make_phantoms
from svldrl.models import build_network


def conv3d_blur(volume: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """The same Gaussian by ``conv3d``: one 1D kernel per axis, zero padding (channels blurred apart)."""
    b, c = volume.shape[:2]
    out = volume.reshape(b * c, 1, *volume.shape[2:])
    r = kernel.numel() // 2
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = kernel.numel()
        padding = [0, 0, 0]
        padding[axis] = r
        out = F.conv3d(out, kernel.view(shape), padding=tuple(padding))
    return out.reshape(volume.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200, help="RSF steps of a vetting (the default: 200)")
    add_timing_arguments(parser)
    args = parser.parse_args()
    settings = timing_settings(args)

    case = make_phantoms(1, 32, seed=0)[0]
    image = torch.as_tensor(case.image)[None].float()  # (1, 1, 32, 32, 32)
    kernel = gaussian_kernel(3.0)
    bands = blur_bands(kernel, image.shape[2:], image.dtype)
    torch.testing.assert_close(separable_blur(image, bands), conv3d_blur(image, kernel), rtol=1e-4, atol=1e-5)
    blur = time_pair(lambda: separable_blur(image, bands), lambda: conv3d_blur(image, kernel),
                     Settings(args.warmup, 50 * args.repeats, time.process_time))

    pred = torch.as_tensor(ndimage.binary_dilation(case.label > 0, iterations=2)).long()[None, None]
    params = RSFParameters(iterations=args.iterations)
    net = build_network(CPU.model, 1, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    batch = torch.cat([image, image.flip(-1)])  # (2, 1, 32, 32, 32)
    target = torch.cat([pred, pred.flip(-1)])[:, 0]  # (2, 32, 32, 32)

    def train_step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        logits = net(batch, heads=("seg",)).seg
        prob = logits.softmax(dim=1)[:, 1]
        dice = 1 - 2 * (prob * target).sum() / (prob.sum() + target.sum() + 1e-5)
        loss = F.cross_entropy(logits, target) + dice
        loss.backward()
        optimizer.step()
        return loss

    vetting = time_pair(lambda: rsf_regions(image, pred, 2, params), train_step, settings)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU time, phantom 32^3, sigma 3")
    print(f"blur: separable_blur {statistics.median(blur.ours) * 1e3:6.2f} ms vs conv3d "
          f"{statistics.median(blur.reference) * 1e3:6.2f} ms (medians)  ratio, paired {blur.ratio():5.3f}")
    print(f"RSF vetting ({args.iterations} steps) {statistics.median(vetting.ours):6.2f} s vs a training step "
          f"(unet {CPU.model.channels}, batch 2) {statistics.median(vetting.reference):6.2f} s  "
          f"ratio, paired {vetting.ratio():5.2f}")


if __name__ == "__main__":
    main()
