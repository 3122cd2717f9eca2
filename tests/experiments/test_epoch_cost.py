"""The cost of a run (``seconds_per_epoch``) is training time: a paused process is not a cost."""

import csv
from pathlib import Path

from svldrl.experiments.pipeline import PAUSED_EPOCH_FACTOR, epoch_cost


def write_log(run_dir: Path, times: list[float], validated: set[int] = frozenset()) -> None:
    with (run_dir / "log.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["epoch", "loss", "val_dice", "epoch_time"])
        writer.writeheader()
        for epoch, seconds in enumerate(times):
            val_dice = 0.8 if epoch in validated else ""
            writer.writerow({"epoch": epoch, "loss": 0.5, "val_dice": val_dice, "epoch_time": seconds})


def test_a_paused_epoch_is_left_out_and_counted(tmp_path):
    """Session 36's case: one epoch of ~1,510 s among epochs of ~25 s (the run was stopped during CI)."""
    write_log(tmp_path, [25.0, 24.0, 26.0, 1510.0, 25.0])
    assert epoch_cost(tmp_path) == {"seconds_per_epoch": 25.0, "paused_epochs_left_out_of_cost": 1}


def test_slow_epochs_below_the_factor_are_real_cost(tmp_path):
    times = [10.0, 10.0, 10.0, 10.0 * PAUSED_EPOCH_FACTOR * 0.9]
    write_log(tmp_path, times)
    assert epoch_cost(tmp_path) == {"seconds_per_epoch": round(sum(times) / 4, 3), "paused_epochs_left_out_of_cost": 0}


def test_validation_epochs_are_kept_however_long(tmp_path):
    """A validation pass over many full-resolution cases can take far longer than a training epoch."""
    times = [10.0, 10.0, 10.0 * PAUSED_EPOCH_FACTOR * 5, 10.0]
    write_log(tmp_path, times, validated={2})
    assert epoch_cost(tmp_path) == {"seconds_per_epoch": round(sum(times) / 4, 3), "paused_epochs_left_out_of_cost": 0}


def test_an_empty_log_has_no_cost(tmp_path):
    write_log(tmp_path, [])
    assert epoch_cost(tmp_path) == {"seconds_per_epoch": None, "paused_epochs_left_out_of_cost": 0}
