"""Per-case evaluation over foreground classes, and the summary over cases that tables report.

A case row is a plain nested dict, ``row[class_name][metric]``, JSON- and CSV-friendly:
``{"left_atrium": {"dice": .., "iou": .., "hd95": .., "asd": .., "empty_pred": 0.0}, "mean": {...}}``.
``"mean"`` averages the four metrics over the classes (every class counts, empty predictions with
their worst-case values included, so a missed structure is not hidden by the average).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from svldrl.metrics.overlap import as_mask, dice, iou
from svldrl.metrics.surface import check_spacing, hd95_and_asd

METRICS: tuple[str, ...] = ("dice", "iou", "hd95", "asd")
"""The metrics of every class row, in table order (Dice and IoU as fractions, distances in mm)."""

MEAN = "mean"
"""Key of the row averaged over classes."""

EMPTY_PRED = "empty_pred"
"""Per-class flag: 1.0 when the prediction is empty while the reference is not (method.md 'Metrics')."""


def _check_stacks(pred_masks: np.ndarray, ref_masks: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, ...]:
    """Boolean (F, H, W, D) stacks matching each other and ``names``, or a clear error."""
    pred = as_mask(pred_masks, "pred_masks")
    ref = as_mask(ref_masks, "ref_masks")
    if pred.ndim != 4 or pred.shape != ref.shape:
        raise ValueError(
            f"pred_masks and ref_masks must both be (F, H, W, D) with the same shape, got {pred.shape} and {ref.shape}"
        )
    if pred.shape[0] == 0:
        raise ValueError("pred_masks: no class masks (F = 0); pass LabelSpec.foreground_masks(label)")
    if len(names) != pred.shape[0]:
        raise ValueError(f"names: {len(names)} names for {pred.shape[0]} masks ({list(names)})")
    if len(set(names)) != len(names) or MEAN in names:
        raise ValueError(f"names: must be unique and must not be {MEAN!r}, got {list(names)}")
    return pred, ref


def evaluate_case(
    pred_masks: np.ndarray, ref_masks: np.ndarray, spacing: Sequence[float], names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Dice, IoU, HD95 and ASD per foreground class, and their mean over classes.

    Args:
        pred_masks: boolean ``(F, H, W, D)``, one predicted mask per foreground class or region.
        ref_masks: boolean ``(F, H, W, D)``, the clean reference masks.
        spacing: voxel size in mm along (H, W, D).
        names: the F class names (``LabelSpec.foreground_names``).

    Returns:
        ``row[name][metric]`` for every class, plus ``row["mean"]``. Empty-mask rules are those of
        ``dice``/``iou``/``hd95``/``asd``; ``row[name]["empty_pred"]`` is 1.0 when the prediction is
        empty and the reference is not (counted by ``summarise``).
    """
    pred, ref = _check_stacks(pred_masks, ref_masks, names)
    sp = check_spacing(spacing, 3)
    row: dict[str, dict[str, float]] = {}
    for name, p, r in zip(names, pred, ref, strict=True):
        distance_hd95, distance_asd = hd95_and_asd(p, r, sp)
        row[name] = {
            "dice": dice(p, r),
            "iou": iou(p, r),
            "hd95": distance_hd95,
            "asd": distance_asd,
            EMPTY_PRED: float(not p.any() and r.any()),
        }
    row[MEAN] = {m: float(np.mean([row[name][m] for name in names])) for m in METRICS}
    return row


@dataclass(frozen=True)
class Summary:
    """Mean and standard deviation over cases, per class and metric, and the empty-prediction count.

    ``std`` is the population standard deviation over cases (``ddof=0``, numpy's default, what most
    published evaluation scripts use); tables must say it is over cases.
    """

    n_cases: int
    mean: dict[str, dict[str, float]]
    std: dict[str, dict[str, float]]
    empty_pred: dict[str, int]

    @property
    def n_empty_pred(self) -> int:
        """Empty predictions with a non-empty reference, summed over cases and classes."""
        return int(sum(self.empty_pred.values()))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict for JSON."""
        return {
            "n_cases": self.n_cases,
            "mean": self.mean,
            "std": self.std,
            "empty_pred": self.empty_pred,
            "n_empty_pred": self.n_empty_pred,
        }


def summarise(rows: Sequence[Mapping[str, Mapping[str, float]]]) -> Summary:
    """Summarise ``evaluate_case`` rows of several cases (same classes in every row)."""
    if len(rows) == 0:
        raise ValueError("summarise: no case rows given")
    classes = list(rows[0])
    for i, row in enumerate(rows):
        if list(row) != classes:
            raise ValueError(f"summarise: row {i} has classes {list(row)}, row 0 has {classes}")
    mean: dict[str, dict[str, float]] = {}
    std: dict[str, dict[str, float]] = {}
    empty: dict[str, int] = {}
    for name in classes:
        metrics = [m for m in rows[0][name] if m != EMPTY_PRED]
        values = {m: np.array([row[name][m] for row in rows], dtype=np.float64) for m in metrics}
        mean[name] = {m: float(v.mean()) for m, v in values.items()}
        std[name] = {m: float(v.std()) for m, v in values.items()}
        if EMPTY_PRED in rows[0][name]:
            empty[name] = int(sum(row[name][EMPTY_PRED] for row in rows))
    return Summary(n_cases=len(rows), mean=mean, std=std, empty_pred=empty)
