"""experiments/la/mechanisms.py: the last epoch's mechanism columns of a run, losses and validation left out."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "mechanisms.py"


def test_final_state_keeps_the_mechanism_columns_of_the_last_epoch(tmp_path: Path) -> None:
    module = load_script(SCRIPT, "la_mechanisms")
    (tmp_path / "log.csv").write_text(
        "epoch,stage,loss,loss_sup,flipped_fraction,kept_fraction_fg,val_dice,lr,epoch_time\n"
        "0,supervised,0.5,0.4,0.16,,,0.003,8.0\n"
        "1,supervised,0.2,0.1,0.0155,0.92,0.8,0.002,8.1\n"
    )
    (tmp_path / "adele.json").write_text(json.dumps({"iou": [], "start_epoch": [], "corrections": [79, 159]}))
    state = module.final_state(tmp_path)
    assert state == {"epochs": "2", "flipped_fraction": "0.0155", "kept_fraction_fg": "0.92",
                     "corrections": "[79, 159]"}


def test_window_reports_first_and_last_means_skipping_empty_and_nan(tmp_path: Path) -> None:
    module = load_script(SCRIPT, "la_mechanisms")
    (tmp_path / "log.csv").write_text(
        "epoch,stage,loss,weight_zero_fraction,weight_foreground_corrupted,lr,epoch_time\n"
        "0,supervised,0.5,0.1,,0.003,8.0\n"
        "1,supervised,0.4,0.3,nan,0.003,8.0\n"
        "2,supervised,0.3,0.5,2.0,0.003,8.0\n"
        "3,supervised,0.2,0.7,3.0,0.003,8.0\n"
    )
    state = module.final_state(tmp_path, window=2)
    assert state == {"epochs": "4", "weight_zero_fraction": "0.2->0.6", "weight_foreground_corrupted": "nan->2.5"}


def test_adele_curve_state_says_how_many_points_the_flat_start_drop_leaves() -> None:
    module = load_script(SCRIPT, "la_mechanisms")
    slow = [[[0.9, v]] for v in (0.40, 0.45, 0.48, 0.55, 0.60)]  # climbs 0.2, never 0.1 between two points
    assert module.adele_curve_state(slow) == {
        "class1_iou_points": "5", "class1_iou_first_last": "0.400->0.600", "class1_largest_rise": "0.070",
        "class1_points_after_flat_drop": "1"}
    fast = [[[0.9, v]] for v in (0.10, 0.15, 0.40, 0.60, 0.62)]  # the first 0.1 rise ends the drop at point 1
    assert module.adele_curve_state(fast)["class1_points_after_flat_drop"] == "4"
    assert module.adele_curve_state([]) == {}


def test_clcs_left_out_shares_are_pooled_from_the_logged_shares_of_all_voxels(tmp_path: Path) -> None:
    module = load_script(SCRIPT, "la_mechanisms")
    row = {"label_fg_fraction": "0.2", "band_fraction": "0.1", "unselected_label_fg": "0.05",
           "unselected_label_bg": "0.02", "unselected_in_band": "0.035"}
    assert module.clcs_shares(row) == {"left_out_of_fg_label": "0.25", "left_out_of_bg_label": "0.025",
                                       "left_out_in_band": "0.5"}
    assert module.clcs_shares({"clean_fraction": "0.9"}) == {}  # a run logged before these columns
