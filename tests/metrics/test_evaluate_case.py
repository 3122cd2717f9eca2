"""evaluate_case rows and summarise over cases: values, means, empty-prediction counts, errors."""

import numpy as np
import pytest

from svldrl.metrics import METRICS, asd, dice, evaluate_case, hd95, iou, summarise, volume_diagonal

SPACING = (0.8, 0.8, 1.6)
NAMES = ("atrium", "vessel")


def _stacks() -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros((2, 20, 20, 12), bool)
    ref[0, 4:12, 4:12, 2:8] = True
    ref[1, 14:18, 2:6, 3:9] = True
    pred = np.zeros_like(ref)
    pred[0, 5:13, 4:12, 2:9] = True
    pred[1, 14:17, 2:6, 3:9] = True
    return pred, ref


def test_rows_hold_each_metric_per_class_and_the_class_mean() -> None:
    pred, ref = _stacks()
    row = evaluate_case(pred, ref, SPACING, NAMES)
    assert list(row) == [*NAMES, "mean"]
    for c, name in enumerate(NAMES):
        assert row[name]["dice"] == pytest.approx(dice(pred[c], ref[c]))
        assert row[name]["iou"] == pytest.approx(iou(pred[c], ref[c]))
        assert row[name]["hd95"] == pytest.approx(hd95(pred[c], ref[c], SPACING))
        assert row[name]["asd"] == pytest.approx(asd(pred[c], ref[c], SPACING))
        assert row[name]["empty_pred"] == 0.0
    for metric in METRICS:
        assert row["mean"][metric] == pytest.approx((row["atrium"][metric] + row["vessel"][metric]) / 2)


def test_an_empty_prediction_is_scored_worst_and_flagged() -> None:
    pred, ref = _stacks()
    pred[1] = False
    row = evaluate_case(pred, ref, SPACING, NAMES)
    diagonal = volume_diagonal(ref.shape[1:], SPACING)
    worst = {"dice": 0.0, "iou": 0.0, "hd95": diagonal, "asd": diagonal, "empty_pred": 1.0}
    assert row["vessel"] == pytest.approx(worst)
    assert row["mean"]["hd95"] == pytest.approx((row["atrium"]["hd95"] + diagonal) / 2)


def test_summarise_gives_mean_std_over_cases_and_counts_empty_predictions() -> None:
    pred, ref = _stacks()
    rows = [evaluate_case(pred, ref, SPACING, NAMES)]
    pred_missing = pred.copy()
    pred_missing[1] = False
    rows.append(evaluate_case(pred_missing, ref, SPACING, NAMES))
    rows.append(evaluate_case(ref, ref, SPACING, NAMES))
    summary = summarise(rows)
    assert summary.n_cases == 3
    vessel_dice = [r["vessel"]["dice"] for r in rows]
    assert summary.mean["vessel"]["dice"] == pytest.approx(np.mean(vessel_dice))
    # population std, computed by hand: sqrt(mean((x - mean)^2))
    m = sum(vessel_dice) / 3
    assert summary.std["vessel"]["dice"] == pytest.approx((sum((x - m) ** 2 for x in vessel_dice) / 3) ** 0.5)
    assert summary.mean["mean"]["asd"] == pytest.approx(np.mean([r["mean"]["asd"] for r in rows]))
    assert summary.empty_pred == {"atrium": 0, "vessel": 1}
    assert summary.n_empty_pred == 1
    assert "empty_pred" not in summary.mean["vessel"]
    assert summary.to_dict()["n_empty_pred"] == 1


def test_bad_arguments_are_rejected() -> None:
    pred, ref = _stacks()
    with pytest.raises(ValueError, match="names"):
        evaluate_case(pred, ref, SPACING, ("atrium",))
    with pytest.raises(ValueError, match="unique"):
        evaluate_case(pred, ref, SPACING, ("mean", "vessel"))
    with pytest.raises(ValueError, match=r"\(F, H, W, D\)"):
        evaluate_case(pred[0], ref[0], SPACING, NAMES)
    with pytest.raises(ValueError, match="F = 0"):
        evaluate_case(pred[:0], ref[:0], SPACING, ())
    with pytest.raises(ValueError, match="no case rows"):
        summarise([])
    row = evaluate_case(pred, ref, SPACING, NAMES)
    with pytest.raises(ValueError, match="row 1"):
        summarise([row, {"atrium": row["atrium"], "mean": row["mean"]}])
