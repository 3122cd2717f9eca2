"""How wide a band filter's bands are, against the margin the MT noise planted in each case.

``case-filter`` with ``method_options.leave_out=band`` leaves out, in each one-sided case, a band
along the label border as deep as the teacher's one-sided edits reach (``case_filter.json``:
``band_widths``, voxels of the training grid; docs/method.md, C7). MT noise dilates or erodes a case
with a k x k x k cube on the original grid (``noise_manifest.json``: ``operation``, ``k``), which moves
the border by about k / 2 original voxels. This script prints, per operation, the band width over
that margin depth (both in mm), and the band widths of the flagged cases the noise left untouched
(whose labels are right on both sides). What it answers: does the band cover the planted margin
(ratio >= 1), and how much right label it leaves out with it. The manifest is read after the fact;
the run never reads it.

    python experiments/la/band_report.py --original-spacing 0.625 \
        /work/runs/la2018/band-filter-per-case-direction__mt-0.5__seed*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from svldrl.config import load_config


def band_over_margin(width_voxels: float, k: int, train_spacing: float, original_spacing: float) -> float:
    """Band width (training voxels) over the margin a k-cube dilation or erosion plants (k / 2 original voxels)."""
    return width_voxels * train_spacing / (k / 2.0 * original_spacing)


def run_ratios(run_dir: Path, original_spacing: float) -> tuple[dict[str, list[float]], list[float]]:
    """({operation: band / margin per flagged corrupted case}, band widths in mm of the flagged untouched cases)."""
    report = json.loads((run_dir / "case_filter.json").read_text())
    if report.get("leave_out") != "band":
        raise ValueError(f"{run_dir / 'case_filter.json'}: not a leave_out=band run")
    cases = {c["case_id"]: c for c in json.loads((run_dir / "noise_manifest.json").read_text())["cases"]}
    train_spacing = float(np.atleast_1d(load_config(run_dir / "config.yaml").data.spacing)[0])
    ratios: dict[str, list[float]] = {}
    untouched = []
    for case_id, width in report["band_widths"].items():
        case = cases[case_id]
        if case["corrupted"] and case.get("k"):
            ratios.setdefault(case["operation"], []).append(
                band_over_margin(width, int(case["k"]), train_spacing, original_spacing))
        elif not case["corrupted"]:
            untouched.append(width * train_spacing)
    return ratios, untouched


def describe(values: list[float]) -> str:
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    return f"median {median:.2f} (quartiles {q1:.2f}-{q3:.2f}, {len(values)} cases)"


def patch_leak(label: torch.Tensor, direction: str, width: float, patch: int, n: int, rng: np.random.Generator,
               pos_fraction: float = 0.5) -> tuple[int, int]:
    """(band voxels of the whole case that fall in ``n`` patches, those of them a patch's own band misses).

    Patches are centred on a foreground voxel with probability ``pos_fraction``, else on any voxel, and
    kept inside the volume, as the training sampler draws them (without its padding and flips).
    """
    from svldrl.baselines.teacher_edits import band_weights

    whole = band_weights(label, "classes", direction, width)[0, 0] == 0  # (H, W, D) the case's band
    shape = np.array(label.shape[2:])
    foreground = np.argwhere((label[0, 1:].amax(0) > 0.5).numpy())
    in_band = missed = 0
    for _ in range(n):
        if len(foreground) and rng.random() < pos_fraction:
            centre = foreground[rng.integers(len(foreground))]
        else:
            centre = np.array([rng.integers(s) for s in shape])
        start = np.clip(centre - patch // 2, 0, np.maximum(shape - patch, 0))
        window = tuple(slice(a, a + patch) for a in start)
        crop = label[(slice(None), slice(None), *window)]
        own = band_weights(crop, "classes", direction, width)[0, 0] == 0
        truth = whole[window]
        in_band += int(truth.sum())
        missed += int((truth & ~own).sum())
    return in_band, missed


def run_leak(run_dir: Path, data: Path, patches: int) -> tuple[int, int]:
    """``patch_leak`` summed over a band run's flagged cases, on its noisy labels at its training grid."""
    from svldrl.data import load_dataset, prepare_cases

    report = json.loads((run_dir / "case_filter.json").read_text())
    cfg = load_config(run_dir / "config.yaml")  # the run's grid and patch size; no network needed
    noisy = np.load(json.loads((run_dir / "noisy_labels.json").read_text())["path"])
    dataset = load_dataset(data)
    labels = dataset.labels
    rng = np.random.default_rng(0)
    in_band = missed = 0
    for case_id, direction in report["sides"].items():
        case = prepare_cases([dataset.get(case_id).with_label(noisy[case_id])], cfg.data)[0]
        label = torch.from_numpy(labels.target_channels(case.label).astype(np.float32))[None]
        a, b = patch_leak(label, direction, report["band_widths"][case_id], int(cfg.data.patch_size[0]), patches, rng,
                          cfg.data.pos_fraction)  # fmt: skip
        in_band, missed = in_band + a, missed + b
    return in_band, missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of case-filter runs with leave_out=band")
    parser.add_argument("--original-spacing", type=float, required=True, help="mm per voxel of the original grid")
    parser.add_argument("--leak", type=Path, metavar="DATA", help="also: the band voxels that patches miss (the LA "
                        "folder the runs trained on; patches computing their band from their own crop)")
    parser.add_argument("--patches", type=int, default=20, help="--leak: patches drawn per flagged case")
    args = parser.parse_args()
    pooled: dict[str, list[float]] = {}
    untouched: list[float] = []
    for run in args.runs:
        ratios, widths = run_ratios(run, args.original_spacing)
        for operation, values in ratios.items():
            pooled.setdefault(operation, []).extend(values)
        untouched.extend(widths)
    for operation, values in sorted(pooled.items()):
        print(f"{operation}: band / planted margin {describe(values)}")
    if untouched:
        print(f"flagged untouched cases: band width in mm {describe(untouched)}")
    for run in args.runs if args.leak else []:
        in_band, missed = run_leak(run, args.leak, args.patches)
        print(f"{run.name}: patches miss {100.0 * missed / max(in_band, 1):.1f} % of the whole-case band voxels "
              f"they hold ({missed} of {in_band})", flush=True)


if __name__ == "__main__":
    main()
