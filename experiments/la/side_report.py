"""What a side filter left out, over runs: how many of the label errors, and how many right voxels with them.

``case-filter`` with ``method_options.leave_out=side`` keeps every case and weighs out of the Dice
loss one side of each one-sided label (``case_filter.json``: ``sides``, case -> the direction of the
teacher's edits; docs/method.md, C6). This script compares, after the fact, each run's left-out
voxels with the clean labels (what the run never reads): of the voxels its noisy labels have wrong,
the share left out; of the voxels left out, the share that were right (all of them, and of the
labelled foreground left out: an over-segmented label's foreground is partly true foreground, lost
to the loss); and the true foreground that stays in the loss, against what the drop filter (the same
cases dropped whole) keeps. Everything is on the
original grid of the LA volumes, as the noise folders are; trusted cases are not counted (their
labels are clean).

    python experiments/la/side_report.py ../shared/data/la2018 \
        /work/runs/la2018/side-filter-per-case-direction__mt-0.5__seed*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from svldrl.data import load_dataset

BACKGROUND, FOREGROUND = "background", "foreground"
COUNTS = ("wrong", "wrong_left_out", "left_out", "right_left_out", "left_out_fg", "right_left_out_fg",
          "wrong_in_flagged", "right_fg", "right_fg_kept", "right_fg_kept_by_drop")  # fmt: skip


def side_counts(noisy: np.ndarray, clean: np.ndarray, direction: str | None) -> dict[str, int]:
    """Voxel counts of one case: wrong voxels, those left out, the left-out ones that were right, and the
    true foreground the loss keeps (side filter) or would keep (drop filter: none of a flagged case).

    ``direction`` is the case's side entry (``background``: its label foreground is left out;
    ``foreground``: its label background), or None when the case is not one-sided (nothing left out).
    """
    noisy, clean = noisy > 0, clean > 0
    wrong = noisy != clean
    if direction is None:
        left = np.zeros_like(noisy)
    elif direction == BACKGROUND:
        left = noisy
    elif direction == FOREGROUND:
        left = ~noisy
    else:
        raise ValueError(f"side_counts: direction must be {BACKGROUND!r}, {FOREGROUND!r} or None, got {direction!r}")
    right_fg = noisy & clean  # labelled foreground and truly so: what the loss can learn foreground from
    return {"wrong": int(wrong.sum()), "wrong_left_out": int((wrong & left).sum()), "left_out": int(left.sum()),
            "right_left_out": int((~wrong & left).sum()), "left_out_fg": int((left & noisy).sum()),
            "right_left_out_fg": int((left & noisy & clean).sum()),
            "wrong_in_flagged": int(wrong.sum()) if direction is not None else 0,
            "right_fg": int(right_fg.sum()), "right_fg_kept": int((right_fg & ~left).sum()),
            "right_fg_kept_by_drop": int(right_fg.sum()) if direction is None else 0}  # fmt: skip


def run_counts(run_dir: Path, data: Path) -> dict[str, int]:
    """``side_counts`` summed over the non-trusted training cases of a side-filter run, and how many cases."""
    report = json.loads((run_dir / "case_filter.json").read_text())
    if report.get("leave_out") != "side":
        raise ValueError(f"{run_dir / 'case_filter.json'}: not a leave_out=side run (leave_out "
                         f"{report.get('leave_out', 'case')!r})")
    sides = report["sides"]
    noisy = np.load(json.loads((run_dir / "noisy_labels.json").read_text())["path"])
    dataset = load_dataset(data)
    total = dict.fromkeys(COUNTS, 0)
    for case_id in report["scores"]:  # the non-trusted training cases the rule scored
        for key, value in side_counts(noisy[case_id], dataset.get(case_id).label, sides.get(case_id)).items():
            total[key] += value
    total["cases"], total["one_sided"] = len(report["scores"]), len(sides)
    return total


def format_line(name: str, c: dict[str, int]) -> str:
    share = lambda a, b: 100.0 * c[a] / max(c[b], 1)  # noqa: E731
    return (f"{name}: {c['one_sided']} of {c['cases']} cases one-sided; "
            f"left out {share('wrong_left_out', 'wrong'):.0f} % of the wrong voxels "
            f"({share('wrong_in_flagged', 'wrong'):.0f} % are in one-sided cases); "
            f"{share('right_left_out', 'left_out'):.0f} % of the left-out voxels were right "
            f"({share('right_left_out_fg', 'left_out_fg'):.0f} % of the left-out labelled foreground); "
            f"true foreground in the loss: {share('right_fg_kept', 'right_fg'):.0f} % (dropping the cases: "
            f"{share('right_fg_kept_by_drop', 'right_fg'):.0f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the LA folder the runs trained on (clean labels)")
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of case-filter runs with leave_out=side")
    args = parser.parse_args()
    totals = {run.name: run_counts(run, args.data) for run in args.runs}
    for name, counts in totals.items():
        print(format_line(name, counts), flush=True)
    if len(totals) > 1:
        pooled = {k: sum(c[k] for c in totals.values()) for k in next(iter(totals.values()))}
        print(format_line(f"all {len(totals)} runs (voxels pooled)", pooled))


if __name__ == "__main__":
    main()
