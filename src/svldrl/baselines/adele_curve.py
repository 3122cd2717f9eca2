"""When ADELE starts correcting a class: the early-learning curve fit and the reference's start rule.

Kangningthu/ADELE @ 7195bd0, ``SegThor/brat/label_correction.py`` (``curve_func``, ``fit``,
``label_update_epoch``, ``if_update``); the rules and where ours differ are in ``adele.py``'s docstring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import curve_fit

FLAT_RISE = 0.1
"""The reference's ``if_update`` drops leading points whose rise to the next is below this."""


def iou_curve(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """The early-learning curve ``a (1 - exp(-x^b / c))``."""
    return a * (1.0 - np.exp(-np.power(x, b) / c))


def iou_curve_slope(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """d/dx of ``iou_curve`` (x shifted by 1e-6, as the reference)."""
    x = np.asarray(x, dtype=np.float64) + 1e-6
    return a * b / c * np.exp(-np.power(x, b) / c) * np.power(x, b - 1.0)


def fit_iou_curve(x: np.ndarray, iou: np.ndarray) -> tuple[float, float, float]:
    """(a, b, c) fitted as the reference: start (1, 1, 1), bounds a, b in [0, 1], c >= 0, later points weighted more."""
    sigma = np.geomspace(1.0, 0.1, len(iou))
    params, _ = curve_fit(
        iou_curve, x, iou, p0=(1.0, 1.0, 1.0), method="trf", sigma=sigma, absolute_sigma=True,
        bounds=([0.0, 0.0, 0.0], [1.0, 1.0, np.inf]),
    )
    return tuple(float(p) for p in params)  # type: ignore[return-value]


def correction_start_epoch(
    a: float, b: float, c: float, n_epochs: int, r: float = 0.9, *, horizon_inclusive: bool = True
) -> int:
    """1 + the number of epochs 1..n_epochs (1..n_epochs-1 unless ``horizon_inclusive``, the reference's
    ``arange(1, n_epoch)``) whose relative slope change ``| |f'(e)| - |f'(1)| | / |f'(1)|`` is at most r
    (changes above 1 count as 0, as the reference)."""
    epochs = np.arange(1, n_epochs + (1 if horizon_inclusive else 0), dtype=np.float64)
    first = abs(float(iou_curve_slope(np.array([1.0]), a, b, c)[0]))
    change = np.abs(np.abs(iou_curve_slope(epochs, a, b, c)) - first) / first
    change[change > 1] = 0.0
    return int(np.sum(change <= r)) + 1


def leading_flat_points(iou: np.ndarray, rise: float = FLAT_RISE) -> int:
    """How many leading points the reference's ``if_update`` drops: while the next point rises by less than
    ``rise`` (a NaN stops the count, as its comparison is false there)."""
    count = 0
    for k in range(len(iou) - 1):
        if not iou[k + 1] - iou[k] < rise:
            break
        count = k + 1
    return count


def should_start_correction(
    history: Sequence[float], n_epochs: int, r: float, min_points: int = 3, rule: str = "reference",
    skip_flat_start: bool = False,
) -> bool:
    """Whether a class with this per-point IoU history should be corrected from now on (``rule``: see the
    module docstring; ``reference`` with ``skip_flat_start`` is the reference's ``if_update``).

    Points without the class (NaN IoU) are left out of the fit, at their places on the x axis; a fit
    that does not converge, or fewer than ``min_points`` points after the dropped flat start, says no.
    The reference fits whatever is left, down to one point, but cannot fire with fewer than three
    either: the slope change at epoch 1 is 0, so its start count is at least 2 and the newest point's
    index must reach it; the guard changes nothing at ``min_points=3``. A fit that ends on a bound
    (a, b or c = 0) says no here, where the reference divides 0 by 0, counts a start of 1 and fires.
    With ``skip_flat_start`` a curve that rises by less than 0.1 at every step keeps one point and
    never starts, as in the reference; the 0.1 is per point, so it is stricter the more points a run has.
    """
    iou = np.asarray(history, dtype=np.float64)
    n = len(iou)
    reference = rule == "reference"
    skipped = leading_flat_points(iou) if reference and skip_flat_start else 0
    iou = iou[skipped:]
    kept = len(iou)
    x = np.linspace(0.0, kept, kept) if reference else np.arange(1, kept + 1, dtype=np.float64)
    seen = np.isfinite(iou)
    if seen.sum() < min_points:
        return False
    try:
        a, b, c = fit_iou_curve(x[seen], iou[seen])
    except (RuntimeError, ValueError):
        return False
    if a <= 0 or b <= 0 or c <= 0:
        return False
    start = skipped + correction_start_epoch(a, b, c, n_epochs, r, horizon_inclusive=not reference)
    return (n - 1 if reference else n) >= start
