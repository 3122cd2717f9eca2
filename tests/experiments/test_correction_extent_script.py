"""experiments/la/correction_extent.py: the per-case direction rule swept over confidence, on made-up teachers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cli_helpers import load_script

SCRIPT = Path(__file__).parents[2] / "experiments" / "la" / "correction_extent.py"


@pytest.fixture(scope="module")
def extent():
    return load_script(SCRIPT, "la_correction_extent")


def cube(lo: int, hi: int, size: int = 12) -> np.ndarray:
    mask = np.zeros((size, size, size), dtype=bool)
    mask[lo:hi, lo:hi, lo:hi] = True
    return mask


def view(extent, case_id: str, group: str, clean: np.ndarray, noisy: np.ndarray, teacher_fg: np.ndarray):
    """A case whose teacher gives foreground probability ``teacher_fg`` (as log-probabilities)."""
    onehot = torch.from_numpy(np.stack([~noisy, noisy]).astype(np.float32))[None]
    prob = np.stack([1 - teacher_fg, teacher_fg]).astype(np.float32)
    logits = torch.from_numpy(np.log(np.clip(prob, 1e-6, 1.0)))[None]
    return extent.TeacherView(case_id, group, clean, onehot, logits)


def test_a_right_teacher_corrects_a_dilated_case_and_leaves_clean_ones(extent) -> None:
    clean = cube(3, 8)
    right = np.where(clean, 0.95, 0.05)
    views = [view(extent, "t", "trusted", clean, clean, right),
             view(extent, "d", "corrupted", clean, cube(2, 9), right),  # dilated: every edit is to background
             view(extent, "u", "untouched", clean, clean, right)]  # fmt: skip
    labels, directions, threshold = extent.labels_at(views, 0.8)
    assert directions == {"d": "background", "u": "none"} and threshold == 0.0
    assert np.array_equal(labels["d"], clean) and np.array_equal(labels["u"], clean)
    report = extent.extent_report(views, [0.8])
    assert report["noisy labels"]["corrupted"] < 0.7
    assert report["confidence 0.8"]["corrupted"] == pytest.approx(1.0)
    assert report["ideal one-direction edit"]["corrupted"] == pytest.approx(1.0)


def test_an_unsure_teacher_corrects_only_below_its_confidence(extent) -> None:
    clean, noisy = cube(3, 8), cube(2, 9)
    unsure = np.where(clean, 0.95, 0.3)  # the teacher says background at 0.7 on the dilated rim
    views = [view(extent, "t", "trusted", clean, clean, np.where(clean, 0.95, 0.05)),
             view(extent, "d", "corrupted", clean, noisy, unsure)]  # fmt: skip
    assert np.array_equal(extent.labels_at(views, 0.6)[0]["d"], clean)
    assert np.array_equal(extent.labels_at(views, 0.8)[0]["d"], noisy)  # not confident enough: kept


def test_the_ideal_edit_grows_an_eroded_label(extent) -> None:
    clean = cube(2, 9)
    v = view(extent, "e", "corrupted", clean, cube(3, 8), np.full(clean.shape, 0.5))
    assert np.array_equal(extent.ideal_one_direction(v), clean)


def test_the_depth_cut_erodes_a_grown_label_to_the_teachers_volume(extent) -> None:
    clean = cube(3, 8)
    v = view(extent, "d", "corrupted", clean, cube(2, 9), np.where(clean, 0.9, 0.1))  # teacher: the clean volume
    assert np.array_equal(extent.depth_cut(v), clean)  # a uniform band: the deepest voxels are the clean cube
    nothing = view(extent, "n", "corrupted", clean, cube(2, 9), np.full(clean.shape, 0.1))
    assert not extent.depth_cut(nothing).any()


def test_flip_averaging_undoes_each_flip(extent, monkeypatch) -> None:
    """A 'teacher' whose output is its input, shifted: with every flip undone, the average equals one pass."""
    image = np.random.default_rng(0).random((1, 6, 5, 4)).astype(np.float32)

    def echo(net, img, patch_size, overlap, mode):
        fg = np.asarray(img[0]) * 0.5 + np.linspace(0, 0.1, img.shape[1])[:, None, None]
        return np.stack([1 - fg, fg]).astype(np.float32)

    monkeypatch.setattr(extent, "predict_probabilities", echo)
    cfg = SimpleNamespace(data=SimpleNamespace(patch_size=(4, 4, 4)), sw_overlap=0.5)
    once = extent.teacher_probabilities(None, image, cfg, tta=False)
    assert not np.allclose(extent.teacher_probabilities(None, image, cfg, tta=True), once, atol=1e-6)
    # the flips are applied (the position term above is not flip-invariant), and each is undone exactly:
    monkeypatch.setattr(extent, "predict_probabilities",
                        lambda net, img, patch_size, overlap, mode: np.stack([1 - img[0], img[0]]))  # fmt: skip
    assert np.allclose(extent.teacher_probabilities(None, image, cfg, tta=True), np.stack([1 - image[0], image[0]]))
