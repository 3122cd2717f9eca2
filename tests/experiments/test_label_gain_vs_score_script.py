"""experiments/la/label_gain_vs_score.py: label Dice before/after and score gain per seed, on made-up reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import load_script

SCRIPT = Path(__file__).parents[2] / "experiments" / "la" / "label_gain_vs_score.py"


@pytest.fixture(scope="module")
def script():
    return load_script(SCRIPT, "la_label_gain_vs_score")


def group(n: int, noisy: float, corrected: float) -> dict:
    return {"n": n, "dice_noisy": noisy, "dice_corrected": corrected}


def test_rows_weight_groups_by_cases_and_leave_out_trusted_cases(script):
    run = "agent__mt-0.5__seed3"
    reports = {run: {"corrupted, dilation": group(1, 0.6, 0.9), "corrupted, erosion": group(3, 0.5, 0.7),
                     "untouched": group(4, 1.0, 0.8), "trusted": group(6, 1.0, 0.1)}}
    scores = {run: {"a": 0.80, "b": 0.90}, "baseline__mt-0.5__seed3": {"a": 0.84, "b": 0.84}}
    (row,) = script.seed_rows(reports, scores, "baseline")
    assert row["seed"] == 3
    assert row["corrupted"] == pytest.approx((52.5, 75.0))
    assert row["untouched"] == pytest.approx(80.0)
    assert row["all"] == pytest.approx((76.25, 77.5))  # (4*52.5 + 4*100) / 8, (4*75 + 4*80) / 8: trusted left out
    assert row["score_gain"] == pytest.approx(1.0)
