"""experiments/la/label_agents_policy.py: what a label policy changed, on made-up labels and probabilities."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import load_script
from svldrl.rl.mask_actions import KEEP, SET_BACKGROUND, SET_FOREGROUND

SCRIPT = Path(__file__).parents[2] / "experiments" / "la" / "label_agents_policy.py"


@pytest.fixture(scope="module")
def policy():
    return load_script(SCRIPT, "la_label_agents_policy")


def cube(shape: int, lo: int, hi: int) -> np.ndarray:
    out = np.zeros((shape,) * 3, bool)
    out[lo:hi, lo:hi, lo:hi] = True
    return out


def probabilities(edit: np.ndarray, action: int, p: float = 0.8) -> np.ndarray:
    """Policy output that takes ``action`` with probability ``p`` where ``edit`` and keeps elsewhere."""
    probs = np.zeros((3, *edit.shape), np.float32)
    probs[KEEP] = 1.0
    probs[KEEP][edit] = 1.0 - p
    probs[action][edit] = p
    return probs


def test_a_policy_that_erodes_a_dilated_label_back_gets_it_right_and_only_sets_background(policy) -> None:
    clean, dilated = cube(16, 4, 12), cube(16, 3, 13)
    row = policy.case_row(dilated, clean, probabilities(dilated & ~clean, SET_BACKGROUND), threshold=0.5)
    assert row["dice_noisy"] < 1.0 and row["dice_corrected"] == pytest.approx(1.0)
    assert row["changed_toward_clean"] == 1.0 and row["changed_to_foreground"] == 0.0
    assert row["changed_band"] > 10 * row["changed_outside"]  # the cube's corners lie beyond the band


def test_the_same_policy_on_an_eroded_label_moves_it_away_from_clean(policy) -> None:
    """Setting background on an eroded case is the wrong way: the report must show it, not average it away."""
    clean, eroded = cube(16, 4, 12), cube(16, 5, 11)
    row = policy.case_row(eroded, clean, probabilities(eroded & ~cube(16, 6, 10), SET_BACKGROUND), threshold=0.5)
    assert row["dice_corrected"] < row["dice_noisy"]
    assert row["changed_toward_clean"] == 0.0 and row["changed_to_foreground"] == 0.0
    fix = policy.case_row(eroded, clean, probabilities(clean & ~eroded, SET_FOREGROUND), threshold=0.5)
    assert fix["dice_corrected"] == pytest.approx(1.0) and fix["changed_to_foreground"] == 1.0


def test_edits_below_the_threshold_change_nothing(policy) -> None:
    clean, dilated = cube(16, 4, 12), cube(16, 3, 13)
    row = policy.case_row(dilated, clean, probabilities(dilated & ~clean, SET_BACKGROUND, p=0.4), 0.5, (0.3,))
    assert row["dice_corrected"] == row["dice_noisy"] and math.isnan(row["changed_to_foreground"])
    assert row["dice_corrected@0.3"] == pytest.approx(1.0)


def test_mt_corrupted_cases_are_reported_by_operation_and_others_by_group(policy) -> None:
    assert policy.report_group("corrupted", "dilation") == "corrupted, dilation"
    assert policy.report_group("corrupted", "erosion") == "corrupted, erosion"
    assert policy.report_group("corrupted", "source-model") == "corrupted"
    assert policy.report_group("untouched", None) == "untouched"
    rows = {"a": [{"x": 1.0}, {"x": float("nan")}], "b": [{"x": float("nan")}]}
    summary = policy.summarise(rows)
    assert summary["a"] == {"n": 2, "x": 1.0} and summary["b"]["n"] == 1 and math.isnan(summary["b"]["x"])
