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
import yaml


def band_over_margin(width_voxels: float, k: int, train_spacing: float, original_spacing: float) -> float:
    """Band width (training voxels) over the margin a k-cube dilation or erosion plants (k / 2 original voxels)."""
    return width_voxels * train_spacing / (k / 2.0 * original_spacing)


def run_ratios(run_dir: Path, original_spacing: float) -> tuple[dict[str, list[float]], list[float]]:
    """({operation: band / margin per flagged corrupted case}, band widths in mm of the flagged untouched cases)."""
    report = json.loads((run_dir / "case_filter.json").read_text())
    if report.get("leave_out") != "band":
        raise ValueError(f"{run_dir / 'case_filter.json'}: not a leave_out=band run")
    cases = {c["case_id"]: c for c in json.loads((run_dir / "noise_manifest.json").read_text())["cases"]}
    spacing = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["spacing"]
    train_spacing = float(spacing if np.isscalar(spacing) else spacing[0])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of case-filter runs with leave_out=band")
    parser.add_argument("--original-spacing", type=float, required=True, help="mm per voxel of the original grid")
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


if __name__ == "__main__":
    main()
