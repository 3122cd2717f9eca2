"""Phantoms: seeded, exact labels, an unlabelled distractor, not solvable by a threshold, fast."""

import json

import numpy as np
import pytest
from scipy import ndimage

from svldrl.data import load_dataset, make_phantom, make_phantoms


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _best_threshold_dice(image: np.ndarray, target: np.ndarray) -> float:
    return max(_dice(image > t, target) for t in np.linspace(0.05, 0.95, 37))


def test_same_seed_same_arrays_different_seed_different():
    a = make_phantom(32, np.random.default_rng(7))
    b = make_phantom(32, np.random.default_rng(7))
    c = make_phantom(32, np.random.default_rng(8))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert not np.array_equal(a.label, c.label) and not np.allclose(a.image, c.image)


def test_make_phantoms_case_i_does_not_depend_on_n():
    three, five = make_phantoms(3, 24, seed=4), make_phantoms(5, 24, seed=4)
    assert [c.case_id for c in five] == ["phantom_000", "phantom_001", "phantom_002", "phantom_003", "phantom_004"]
    for x, y in zip(three, five[:3], strict=True):
        np.testing.assert_array_equal(x.image, y.image)
    assert not np.array_equal(five[0].label, five[1].label)


def test_image_range_label_binary_and_a_reasonable_share():
    shares = []
    for case in make_phantoms(12, 40, seed=1):
        assert case.image.shape == (1, 40, 40, 40) and case.image.dtype == np.float32
        assert case.image.min() == 0.0 and case.image.max() == 1.0
        assert case.label.dtype == np.uint8 and set(np.unique(case.label).tolist()) == {0, 1}
        shares.append(case.label.mean())
    assert 0.05 <= min(shares) and max(shares) <= 0.25, shares


def test_label_is_one_object_and_distractor_is_separate_and_unlabelled():
    for case in make_phantoms(6, 40, seed=2):
        organ, distractor = case.label.astype(bool), case.meta["distractor"]
        assert distractor.sum() > 0.2 * organ.sum()  # a real competitor, not a speck
        assert not np.any(organ & distractor)
        assert not np.any(ndimage.binary_dilation(organ) & distractor)  # at least a voxel apart
        _, n_objects = ndimage.label(organ)
        assert n_objects >= 1
        largest = np.bincount(ndimage.label(organ)[0].ravel())[1:].max()
        assert largest > 0.95 * organ.sum()  # the vessel stays attached (pieces cut by the border aside)


def test_bright_regions_are_organ_plus_distractor_so_thresholding_fails():
    """A threshold finds organ + distractor well but the organ alone poorly: shape/context needed."""
    organ_scores, both_scores = [], []
    for case in make_phantoms(6, 40, seed=3):
        organ = case.label.astype(bool)
        organ_scores.append(_best_threshold_dice(case.image[0], organ))
        both_scores.append(_best_threshold_dice(case.image[0], organ | case.meta["distractor"]))
    assert np.mean(both_scores) > 0.85  # the structures are visible (contrast)
    assert np.mean(organ_scores) < 0.85  # but brightness alone cannot tell them apart
    assert np.mean(both_scores) - np.mean(organ_scores) > 0.08


def test_vessels_and_branches_occur():
    cases = make_phantoms(20, 32, seed=5)
    vessels = sum(c.meta["vessel"] for c in cases)
    branches = sum(c.meta["branch"] for c in cases)
    assert 5 <= vessels <= 19 and 1 <= branches <= vessels


def test_bad_size_is_rejected():
    with pytest.raises(ValueError, match="size must be"):
        make_phantom(8, np.random.default_rng(0))


def test_write_phantom_dataset_is_an_msd_data_set(phantom_dataset):
    description = json.loads((phantom_dataset / "dataset.json").read_text())
    assert description["modality"] == {"0": "MRI"}
    assert description["labels"] == {"0": "background", "1": "organ"}
    ds = load_dataset(phantom_dataset)
    assert ds.case_ids == ("phantom_000", "phantom_001", "phantom_002")
    expected = make_phantoms(3, 32, seed=0)
    for case, original in zip(ds, expected, strict=True):
        np.testing.assert_array_equal(case.label, original.label)
        np.testing.assert_allclose(case.image, original.image, atol=0.02)  # re-normalised on load: near identity
        assert case.spacing == (1.0, 1.0, 1.0)
