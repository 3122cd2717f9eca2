"""experiments/la/noise_errors.py: the direction of a noisy label's errors, by hand-counted voxels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "noise_errors.py"


@pytest.fixture(scope="module")
def noise_errors():
    return load_script(SCRIPT, "la_noise_errors")


def test_a_dilated_label_is_all_false_positives_and_an_ideal_erosion_undoes_it(noise_errors):
    clean = np.zeros((10, 10, 10), np.uint8)
    clean[3:7, 3:7, 3:7] = 1  # 64 voxels
    noisy = np.zeros_like(clean)
    noisy[2:8, 2:8, 2:8] = 1  # 216 voxels: the clean cube and a one-voxel shell of 152
    e = noise_errors.CaseErrors.of(noisy, clean)
    assert (e.true_positive, e.false_positive, e.false_negative) == (64, 152, 0)
    assert e.dice() == pytest.approx(2 * 64 / (216 + 64))
    assert e.false_positive_share() == 1.0
    assert e.dice_after_removing_false_positives() == 1.0
    assert e.dice_after_adding_false_negatives() == pytest.approx(e.dice())


def test_a_shifted_label_needs_both_actions(noise_errors):
    clean = np.zeros((10, 10, 10), np.uint8)
    clean[2:6, 2:6, 2:6] = 1
    noisy = np.roll(clean, 2, axis=0)  # half of the cube moved out, half of a new one in
    e = noise_errors.CaseErrors.of(noisy, clean)
    assert (e.true_positive, e.false_positive, e.false_negative) == (32, 32, 32)
    assert e.false_positive_share() == 0.5
    assert e.dice_after_removing_false_positives() == pytest.approx(2 * 32 / (2 * 32 + 32))
    assert e.dice_after_adding_false_negatives() == pytest.approx(2 * 64 / (2 * 64 + 32))


def test_voxel_transition_rates_pool_every_case_of_the_folder(noise_errors, tmp_path, monkeypatch):
    """A dilated case and an untouched one: the rates are hand-counted voxels over both."""
    from types import SimpleNamespace

    clean = np.zeros((10, 10, 10), np.uint8)
    clean[3:7, 3:7, 3:7] = 1  # 64 foreground voxels, 936 background
    dilated = np.zeros_like(clean)
    dilated[2:8, 2:8, 2:8] = 1  # 152 background voxels labelled foreground
    eroded = np.zeros_like(clean)
    eroded[4:6, 4:6, 4:6] = 1  # 56 foreground voxels labelled background
    np.savez(tmp_path / "labels.npz", a=dilated, b=clean, c=eroded)
    monkeypatch.setattr(noise_errors, "load_dataset", lambda data: SimpleNamespace(
        get=lambda case_id: SimpleNamespace(label=clean)))
    fg_to_bg, bg_to_fg = noise_errors.voxel_transition_rates(tmp_path, tmp_path)
    assert fg_to_bg == pytest.approx(56 / (3 * 64))
    assert bg_to_fg == pytest.approx(152 / (3 * 936))
    wrong_fg, wrong_bg = noise_errors.label_error_shares(tmp_path, tmp_path)
    assert wrong_fg == pytest.approx(152 / (216 + 64 + 8))  # labelled foreground: 216, 64 and 8 voxels
    assert wrong_bg == pytest.approx(56 / (784 + 936 + 992))
