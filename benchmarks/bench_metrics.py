"""Time ``svldrl.metrics.hd95`` against medpy's recipe on the full volume (scipy, uncropped).

Run: ``python benchmarks/bench_metrics.py [--repeats 5]``. Prints the median time of each and their
ratio on a 160x160x96 pair of LA-sized blobs (about 8 % of the volume, irregular surface). The two
values are printed too, so a speed-up that changed the answer would show.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from svldrl.metrics import hd95

SHAPE = (160, 160, 96)
SPACING = (0.625, 0.625, 1.25)


def realistic_blob(rng: np.random.Generator, shift: tuple[int, int, int]) -> np.ndarray:
    """An ellipsoid with a smoothly perturbed surface, moved by ``shift`` voxels."""
    grid = np.indices(SHAPE, dtype=np.float32)
    centre = np.array(SHAPE, dtype=np.float32)[:, None, None, None] / 2 + np.array(shift)[:, None, None, None]
    radii = np.array([45.0, 38.0, 22.0], dtype=np.float32)[:, None, None, None]
    radius = np.sqrt((((grid - centre) / radii) ** 2).sum(axis=0))
    bumps = ndimage.gaussian_filter(rng.standard_normal(SHAPE).astype(np.float32), sigma=6) * 4
    return radius + bumps < 1.0


def hd95_uncropped_scipy(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> float:
    """medpy.metric.binary.hd95 as medpy computes it: full-volume erosion and scipy EDT."""
    cross = ndimage.generate_binary_structure(3, 1)
    sp = pred ^ ndimage.binary_erosion(pred, structure=cross, iterations=1)
    sr = ref ^ ndimage.binary_erosion(ref, structure=cross, iterations=1)
    d_pr = ndimage.distance_transform_edt(~sr, sampling=spacing)[sp]
    d_rp = ndimage.distance_transform_edt(~sp, sampling=spacing)[sr]
    return float(np.percentile(np.hstack((d_pr, d_rp)), 95))


def median_time(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    """(median seconds, value) over ``repeats`` calls."""
    times, value = [], 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ref = realistic_blob(rng, (0, 0, 0))
    pred = realistic_blob(rng, (3, -2, 1))
    print(f"volume {SHAPE}, spacing {SPACING}, ref {ref.mean():.1%} / pred {pred.mean():.1%} of voxels")
    t_fast, v_fast = median_time(lambda: hd95(pred, ref, SPACING), args.repeats)
    t_ref, v_ref = median_time(lambda: hd95_uncropped_scipy(pred, ref, SPACING), args.repeats)
    print(f"svldrl hd95 (crop + edt):     {t_fast * 1000:8.1f} ms  -> {v_fast:.4f} mm")
    print(f"uncropped scipy (medpy way):  {t_ref * 1000:8.1f} ms  -> {v_ref:.4f} mm")
    print(f"speed-up: {t_ref / t_fast:.1f}x")


if __name__ == "__main__":
    main()
