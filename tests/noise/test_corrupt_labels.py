"""corrupt_labels with MT noise on small synthetic cases: counts, manifest content, seeding, registry."""

import numpy as np
import pytest
from scipy import ndimage

from svldrl.data import Case
from svldrl.metrics import dice
from svldrl.noise import NOISES, corrupt_labels, label_dice, mt_noise
from svldrl.registry import UnknownNameError


def _cases(n: int = 9, size: int = 28) -> list[Case]:
    """Ellipsoids of varying size and position, one per case."""
    rng = np.random.default_rng(123)
    grid = np.indices((size, size, size)).astype(float)
    cases = []
    for i in range(n):
        centre = rng.uniform(11, size - 11, 3)[:, None, None, None]
        radii = rng.uniform(6, 9, 3)[:, None, None, None]
        label = ((((grid - centre) / radii) ** 2).sum(axis=0) <= 1).astype(np.uint8)
        image = np.clip(0.3 + 0.4 * label + 0.05 * rng.standard_normal(label.shape), 0, 1).astype(np.float32)
        cases.append(Case(image[None], label, (1.0, 1.0, 1.5), f"case_{i:02d}"))
    return cases


def test_exactly_round_ratio_n_cases_are_corrupted_and_the_rest_kept() -> None:
    cases = _cases()
    labels, manifest = corrupt_labels(cases, "mt", 0.5, seed=0)
    assert manifest.n_cases == 9 and manifest.n_corrupted == 5  # 4.5 rounds up
    assert (manifest.kind, manifest.ratio, manifest.seed) == ("mt", 0.5, 0)
    assert set(labels) == {c.case_id for c in cases}
    for case in cases:
        entry = manifest.case(case.case_id)
        if not entry.corrupted:
            assert labels[case.case_id] is case.label
            assert (entry.kind, entry.operation, entry.k, entry.dice_noisy_vs_clean) == ("none", None, None, 1.0)


def test_manifest_records_what_was_done_and_the_dice_of_the_result() -> None:
    cases = {c.case_id: c for c in _cases()}
    labels, manifest = corrupt_labels(list(cases.values()), "mt", 1.0, seed=3)
    assert manifest.n_corrupted == 9
    for entry in manifest.cases:
        clean = cases[entry.case_id].label.astype(bool)
        noisy = labels[entry.case_id].astype(bool)
        assert entry.kind == "mt" and 3 <= entry.k <= 15
        assert entry.dice_noisy_vs_clean == pytest.approx(dice(noisy, clean))
        assert entry.dice_noisy_vs_clean < 1.0
        cube = np.ones((entry.k,) * 3, bool)
        if entry.operation == "dilation":
            expected = ndimage.binary_dilation(clean, structure=cube)
        else:
            expected = ndimage.binary_erosion(clean, structure=cube, border_value=1)
        np.testing.assert_array_equal(noisy, expected)


def test_one_seed_gives_one_result_and_another_seed_another() -> None:
    cases = _cases()
    labels_a, manifest_a = corrupt_labels(cases, "mt", 0.5, seed=7)
    labels_b, manifest_b = corrupt_labels(cases, "mt", 0.5, seed=7)
    assert manifest_a.to_dict() == manifest_b.to_dict()
    for case_id in labels_a:
        np.testing.assert_array_equal(labels_a[case_id], labels_b[case_id])
    _, manifest_c = corrupt_labels(cases, "mt", 0.5, seed=8)
    assert manifest_c.to_dict() != manifest_a.to_dict()


def test_a_case_keeps_its_noise_when_other_cases_are_dropped() -> None:
    cases = _cases()
    labels_all, manifest_all = corrupt_labels(cases, "mt", 1.0, seed=2)
    labels_few, _ = corrupt_labels(cases[3:6], "mt", 1.0, seed=2)
    for case in cases[3:6]:
        np.testing.assert_array_equal(labels_few[case.case_id], labels_all[case.case_id])


def test_registry_names_aliases_and_typos() -> None:
    assert NOISES.names() == ["mt", "sfda", "border", "border-onesided"]
    assert NOISES.get("morphological") is mt_noise
    with pytest.raises(UnknownNameError, match="Did you mean 'sfda'"):
        corrupt_labels(_cases(2), "sdfa", 0.5, seed=0)
    with pytest.raises(ValueError, match="train_source"):
        corrupt_labels(_cases(2), "sfda", 0.5, seed=0)


def test_bad_arguments_are_rejected_before_any_work() -> None:
    cases = _cases(2)
    with pytest.raises(ValueError, match="ratio"):
        corrupt_labels(cases, "mt", -0.1, seed=0)
    with pytest.raises(ValueError, match="seed"):
        corrupt_labels(cases, "mt", 0.5, seed=1.5)  # type: ignore[arg-type]
    unlabelled = [cases[0].with_label(None)]
    with pytest.raises(ValueError, match="case_00.*no label"):
        corrupt_labels(unlabelled, "mt", 1.0, seed=0)


def test_label_dice_averages_over_the_structures_present() -> None:
    clean = np.zeros((6, 6, 6), np.uint8)
    clean[0:2, 0:2, 0:2] = 1  # 8 voxels
    clean[4:6, 4:6, 4:6] = 3  # 8 voxels; class 2 is absent from both labels
    noisy = clean.copy()
    noisy[0:2, 0:2, 0:1] = 0  # class 1 keeps 4 of 8 voxels: Dice 2 * 4 / 12
    assert label_dice(noisy, clean) == pytest.approx((8 / 12 + 1.0) / 2)
    regions = np.zeros((3, 6, 6, 6), np.uint8)
    regions[0] = clean > 0
    noisy_regions = regions.copy()
    noisy_regions[1, 0, 0, 0] = 1  # channel 1: empty in the clean label, one voxel in the noisy one
    assert label_dice(noisy_regions, regions) == pytest.approx((1.0 + 0.0) / 2)
    assert label_dice(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 2), np.uint8)) == 1.0
