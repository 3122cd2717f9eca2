"""Dice and IoU against hand-counted voxels, the empty-mask rules and input checks."""

import numpy as np
import pytest

from svldrl.metrics import dice, iou


def _two_boxes() -> tuple[np.ndarray, np.ndarray]:
    """Box A 4x4x4 = 64 voxels, box B 4x4x2 = 32 voxels, overlapping in 4x4x1 = 16 voxels."""
    a = np.zeros((10, 10, 10), bool)
    b = np.zeros((10, 10, 10), bool)
    a[2:6, 2:6, 2:6] = True
    b[2:6, 2:6, 5:7] = True
    return a, b


def test_dice_and_iou_match_hand_counts() -> None:
    a, b = _two_boxes()
    assert dice(a, b) == pytest.approx(2 * 16 / (64 + 32))
    assert iou(a, b) == pytest.approx(16 / (64 + 32 - 16))


def test_identical_masks_score_one_and_disjoint_zero() -> None:
    a, _ = _two_boxes()
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0
    assert dice(a, ~a) == 0.0 and iou(a, ~a) == 0.0


def test_integer_masks_are_accepted() -> None:
    a, b = _two_boxes()
    assert dice(a.astype(np.uint8), b.astype(np.int64)) == pytest.approx(dice(a, b))


@pytest.mark.parametrize("metric", [dice, iou])
def test_empty_mask_rules(metric) -> None:
    empty = np.zeros((5, 5, 5), bool)
    full = np.zeros((5, 5, 5), bool)
    full[1:3, 1:3, 1:3] = True
    assert metric(empty, empty) == 1.0
    assert metric(empty, full) == 0.0
    assert metric(full, empty) == 0.0


def test_symmetry_on_random_masks() -> None:
    rng = np.random.default_rng(3)
    a = rng.random((12, 13, 14)) > 0.6
    b = rng.random((12, 13, 14)) > 0.4
    assert dice(a, b) == pytest.approx(dice(b, a))
    assert iou(a, b) == pytest.approx(iou(b, a))
    # Dice and IoU are tied by D = 2J / (1 + J).
    j = iou(a, b)
    assert dice(a, b) == pytest.approx(2 * j / (1 + j))


def test_bad_inputs_are_rejected_with_clear_messages() -> None:
    a = np.zeros((4, 4, 4), bool)
    with pytest.raises(ValueError, match="same shape"):
        dice(a, np.zeros((4, 4, 5), bool))
    with pytest.raises(TypeError, match="threshold probabilities"):
        iou(a.astype(np.float32), a)
    with pytest.raises(TypeError, match="pred: expected a numpy array"):
        dice([[0]], a)
