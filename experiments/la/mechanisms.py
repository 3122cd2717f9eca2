"""Each run's mechanism state at the end of training, read from its log.csv (issue 16, point 3).

Why: a method's Dice alone cannot say whether its mechanism worked. Every trainer logs its own
state per epoch (JCAS's transition off-diagonals, MTCL's flipped fraction and the share of it set to
background, Co-Teaching's kept fraction per class, CLCS's selected fraction, RSF-assisted MTCL's
share of the flips RSF kept, SVL-DRL's reward and policy entropy); this prints the last epoch's
values of those columns for a set of runs, one line per run, so that a row of a table can be
checked against what its mechanism did. ADELE's correction epochs come from its adele.json, with
each foreground class's IoU curve summed up (``adele_curve_state``: points, first and last IoU, the
largest rise between two points, and how many points the reference's flat-start drop leaves: one
means the start rule cannot fire), Loss Correction's estimated matrix from transition_matrix.json.
CLCS's shares of all voxels are turned into the shares a reader asks for (``clcs_shares``): of the
voxels labelled foreground (background), how many it left out of its clean set, and how many of the
left-out voxels lie in the label's border band, against the band's share of all voxels.

    python experiments/la/mechanisms.py /work/runs/la2018 'jcas__mt-0.5__seed*' 'co-teaching__mt-0.5__seed*'
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from svldrl.baselines.adele_curve import FLAT_RISE, leading_flat_points
from svldrl.training import read_log

GENERIC = {"epoch", "stage", "lr", "epoch_time"}
"""Columns every trainer writes; the rest of a log's columns (but losses and validation) are its mechanism."""


def mechanism_columns(header: list[str]) -> list[str]:
    """The columns of a log that describe the method's mechanism rather than its losses or validation."""
    return [c for c in header if c not in GENERIC and not c.startswith(("loss", "val_"))]


def final_state(run_dir: Path, window: int = 0) -> dict[str, str]:
    """Column -> formatted value at the last logged epoch (empty cells skipped), plus the run's json state.

    ``window > 0``: each column as "mean of the first ``window`` epochs -> mean of the last ``window``"
    (empty and NaN cells skipped), to show how a mechanism moved over the run, not one noisy epoch.
    """
    rows = read_log(run_dir)
    state = {"epochs": str(len(rows))}
    for column in mechanism_columns(list(rows[0])) if rows else []:
        if window > 0:
            first, last = window_mean(rows[:window], column), window_mean(rows[-window:], column)
            if not (np.isnan(first) and np.isnan(last)):
                state[column] = f"{first:.3g}->{last:.3g}"
        elif rows[-1][column] != "":
            state[column] = f"{float(rows[-1][column]):.4g}"
    state.update(clcs_shares(rows[-1]) if rows else {})
    adele = run_dir / "adele.json"
    if adele.exists():
        history = json.loads(adele.read_text())
        state["corrections"] = str(history["corrections"])
        state.update(adele_curve_state(history["iou"]))
    transition = run_dir / "transition_matrix.json"
    if transition.exists():
        matrices = json.loads(transition.read_text())["T"]
        state["T"] = str([[[round(v, 4) for v in row] for row in m] for m in matrices])
    return state


def window_mean(rows: list[dict[str, str]], column: str) -> float:
    """Mean of a column over some log rows, empty and NaN cells skipped (NaN if none is left)."""
    values = [float(r[column]) for r in rows if r.get(column, "") != ""]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def adele_curve_state(iou: list) -> dict[str, str]:
    """Per foreground class of ADELE's IoU history (points x groups x classes): why its start rule did or did not fire.

    The reference's ``if_update`` drops the leading points whose rise to the next is under ``FLAT_RISE``
    (0.1) before it fits the curve; a curve that never rises that much between two points keeps one
    point and never starts, however far it climbs in all.
    """
    curves = np.asarray(iou, dtype=np.float64)
    if curves.ndim != 3 or len(curves) == 0:
        return {}
    state: dict[str, str] = {}
    for g in range(curves.shape[1]):
        for c in range(1, curves.shape[2]):
            curve = curves[:, g, c]
            rises = np.diff(curve)
            tag = f"class{c}" if curves.shape[1] == 1 else f"group{g}_class{c}"
            state[f"{tag}_iou_points"] = str(len(curve))
            state[f"{tag}_iou_first_last"] = f"{curve[0]:.3f}->{curve[-1]:.3f}"
            state[f"{tag}_largest_rise"] = f"{np.nanmax(rises):.3f}" if len(rises) else "nan"
            state[f"{tag}_points_after_flat_drop"] = str(len(curve) - leading_flat_points(curve, FLAT_RISE))
    return state


def clcs_shares(row: dict[str, str]) -> dict[str, str]:
    """CLCS's left-out shares from one log row (empty when the row lacks the columns, as older runs do)."""
    keys = ("label_fg_fraction", "band_fraction", "unselected_label_fg", "unselected_label_bg", "unselected_in_band")
    if any(row.get(k, "") == "" for k in keys):
        return {}
    fg, band, out_fg, out_bg, out_band = (float(row[k]) for k in keys)
    out = out_fg + out_bg
    shares = {
        "left_out_of_fg_label": out_fg / fg if fg > 0 else float("nan"),
        "left_out_of_bg_label": out_bg / (1.0 - fg) if fg < 1 else float("nan"),
        "left_out_in_band": out_band / out if out > 0 else float("nan"),
    }
    return {k: f"{v:.4g}" for k, v in shares.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a runs folder, e.g. runs/la2018")
    parser.add_argument("patterns", nargs="+", help="run-folder name patterns, e.g. 'jcas__mt-0.5__seed*'")
    parser.add_argument("--window", type=int, default=0,
                        help="report each column as the mean of the first K epochs -> the mean of the last K")
    args = parser.parse_args()
    for pattern in args.patterns:
        for run_dir in sorted(p.parent for p in args.root.glob(f"{pattern}/log.csv")):
            items = ", ".join(f"{k} {v}" for k, v in final_state(run_dir, args.window).items())
            print(f"{run_dir.name}: {items}")


if __name__ == "__main__":
    main()
