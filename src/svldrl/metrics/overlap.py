"""Overlap metrics on boolean masks: Dice and IoU, as fractions in [0, 1].

Empty-mask rules (method.md "Metrics"): both masks empty -> 1 (nothing to find, nothing found);
exactly one empty -> 0. Tables multiply by 100 when they report percentages.
"""

from __future__ import annotations

import numpy as np


def as_mask(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as a boolean mask; rejects float arrays so probabilities are never binarised silently."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(array).__name__}")
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.integer):
        return array != 0
    raise TypeError(
        f"{name}: expected a boolean or integer mask, got dtype {array.dtype} (threshold probabilities first)"
    )


def check_same_shape(pred: np.ndarray, ref: np.ndarray) -> None:
    """Raise early when prediction and reference do not live on the same grid."""
    if pred.shape != ref.shape:
        raise ValueError(f"pred and ref must have the same shape, got pred {pred.shape} and ref {ref.shape}")


def _counts(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int]:
    """(|pred & ref|, |pred|, |ref|) after validating both masks."""
    p = as_mask(pred, "pred")
    r = as_mask(ref, "ref")
    check_same_shape(p, r)
    return int(np.count_nonzero(p & r)), int(np.count_nonzero(p)), int(np.count_nonzero(r))


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice coefficient ``2|P & R| / (|P| + |R|)`` in [0, 1].

    Empty masks: both empty -> 1.0; one empty, the other not -> 0.0.
    """
    inter, n_pred, n_ref = _counts(pred, ref)
    if n_pred + n_ref == 0:
        return 1.0
    return 2.0 * inter / (n_pred + n_ref)


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    """Intersection over union (Jaccard) ``|P & R| / |P | R|`` in [0, 1].

    Empty masks: both empty -> 1.0; one empty, the other not -> 0.0.
    """
    inter, n_pred, n_ref = _counts(pred, ref)
    union = n_pred + n_ref - inter
    if union == 0:
        return 1.0
    return inter / union
