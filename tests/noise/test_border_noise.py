"""Border noise: the border moves both ways within one case, by a bounded amount, through corrupt_labels."""

import numpy as np
import pytest
from scipy import ndimage

from svldrl.data import Case
from svldrl.noise import border_noise_with_record, corrupt_labels, label_dice
from svldrl.noise.border import MAX_HALVINGS, grown_share, move_border, shift_field, signed_distance


def _sphere(size: int = 48, radius: float = 14.0) -> np.ndarray:
    grid = np.indices((size,) * 3) - (size - 1) / 2
    return ((grid**2).sum(axis=0) <= radius**2).astype(np.uint8)


def test_the_border_moves_out_in_some_places_and_in_in_others() -> None:
    clean = _sphere()
    noisy, record = border_noise_with_record(clean, np.random.default_rng(0), k_range=(6, 6), smoothness=4.0)
    added = (noisy == 1) & (clean == 0)
    removed = (clean == 1) & (noisy == 0)
    assert added.sum() > 100 and removed.sum() > 100  # MT would leave one of them empty
    assert 0.2 < record.grown_share < 0.8
    assert record.grown_share == pytest.approx(added.sum() / (added.sum() + removed.sum()))
    assert (record.k, record.halvings) == (6, 0)


def test_no_voxel_moves_farther_than_k_from_the_clean_border() -> None:
    clean = _sphere()
    noisy, record = border_noise_with_record(clean, np.random.default_rng(1), k_range=(4, 4), smoothness=3.0)
    distance = np.abs(signed_distance(clean == 1))
    changed = noisy != clean
    assert changed.any()
    assert distance[changed].max() <= record.k  # |s| <= k, and a changed voxel has |d| < |s|


def test_a_constant_field_is_a_euclidean_dilation_or_erosion_and_zero_changes_nothing() -> None:
    clean = _sphere(32, 9.0)
    np.testing.assert_array_equal(move_border(clean, np.zeros(clean.shape, np.float32)), clean)
    ball = (np.indices((3, 3, 3)) - 1) ** 2
    within = ball.sum(axis=0) <= 2  # the 18 neighbours at distance 1 and sqrt(2), not the corners
    grown = move_border(clean, np.full(clean.shape, 1.5, np.float32))
    np.testing.assert_array_equal(grown.astype(bool), ndimage.binary_dilation(clean.astype(bool), within))
    shrunk = move_border(clean, np.full(clean.shape, -1.5, np.float32))
    np.testing.assert_array_equal(shrunk.astype(bool), ndimage.binary_erosion(clean.astype(bool), within))


def test_the_shift_field_has_the_documented_scale_and_bound() -> None:
    field = shift_field((40, 40, 40), 8.0, np.random.default_rng(2), smoothness=3.0)
    assert field.dtype == np.float32 and np.abs(field).max() <= 8.0
    assert np.abs(field).mean() == pytest.approx(4.0, rel=0.1)  # k/2, less the clipped tails
    assert abs(field.mean()) < 1.0  # no direction of its own


def test_same_generator_same_label_and_the_input_is_untouched() -> None:
    clean = _sphere()
    before = clean.copy()
    a, ra = border_noise_with_record(clean, np.random.default_rng(5))
    b, rb = border_noise_with_record(clean, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert ra == rb and a.dtype == clean.dtype and a.shape == clean.shape
    np.testing.assert_array_equal(clean, before)


def test_class_maps_keep_every_class_and_regions_stay_nested() -> None:
    outer = _sphere(40, 13.0)
    inner = _sphere(40, 6.0)
    classes = outer + inner  # 1 = shell, 2 = core
    noisy, _ = border_noise_with_record(classes, np.random.default_rng(3), k_range=(4, 4), smoothness=3.0)
    assert set(np.unique(noisy)) == {0, 1, 2}
    regions = np.stack([outer, inner]).astype(bool)
    noisy_regions, _ = border_noise_with_record(regions, np.random.default_rng(3), k_range=(6, 6), smoothness=3.0)
    assert noisy_regions.dtype == bool and noisy_regions[1].any()
    assert not (noisy_regions[1] & ~noisy_regions[0]).any()


def test_a_field_that_would_empty_a_structure_is_halved() -> None:
    tiny = np.zeros((24, 24, 24), np.uint8)
    tiny[11:13, 11:13, 11:13] = 1  # 2 voxels thick: any inward shift above 1 voxel empties it
    # one-sided and inward (pinned by the seed), mean |s| 6 voxels: unhalved it surely empties the cube
    noisy, record = border_noise_with_record(
        tiny, np.random.default_rng(0), k_range=(12, 12), smoothness=40.0, sides="one"
    )
    assert record.direction == "inward"
    assert 0 < record.halvings <= MAX_HALVINGS  # halved, and not given up (that records MAX_HALVINGS + 1)
    assert noisy.any() and not (noisy.astype(bool) & ~tiny.astype(bool)).any()  # kept, and only shrunk
    outward, outward_record = border_noise_with_record(
        tiny, np.random.default_rng(1), k_range=(12, 12), smoothness=40.0, sides="one"
    )
    assert outward_record.direction == "outward" and outward_record.halvings == 0  # growing never empties
    assert label_dice(outward, tiny) > 0


def test_grown_share_is_nan_when_nothing_changed() -> None:
    clean = _sphere(16, 4.0)
    assert np.isnan(grown_share(clean, clean))


def test_corrupt_labels_border_picks_the_same_cases_as_mt_and_records_each() -> None:
    rng = np.random.default_rng(9)
    cases = []
    for i in range(6):
        label = _sphere(32, float(rng.uniform(7, 10)))
        cases.append(Case(label[None].astype(np.float32), label, (1.0, 1.0, 1.0), f"case_{i}"))
    labels, manifest = corrupt_labels(cases, "border", 0.5, seed=1, k_range=(3, 5), smoothness=3.0)
    _, mt_manifest = corrupt_labels(cases, "mt", 0.5, seed=1)
    assert manifest.kind == "border" and manifest.options["smoothness"] == 3.0
    assert manifest.corrupted_ids == mt_manifest.corrupted_ids
    for entry in manifest.cases:
        if entry.corrupted:
            assert entry.operation == "border" and 3 <= entry.k <= 5
            assert 0.0 < entry.details["grown_share"] < 1.0
            clean = cases[int(entry.case_id[-1])].label
            assert entry.dice_noisy_vs_clean == pytest.approx(label_dice(labels[entry.case_id], clean))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="k_range"):
        border_noise_with_record(_sphere(16, 4.0), np.random.default_rng(0), k_range=(0, 3))
    with pytest.raises(ValueError, match="smoothness"):
        border_noise_with_record(_sphere(16, 4.0), np.random.default_rng(0), smoothness=0)


def test_the_onesided_control_moves_each_case_one_way_by_the_same_magnitudes() -> None:
    clean = _sphere()
    both, _ = border_noise_with_record(clean, np.random.default_rng(6), k_range=(6, 6), smoothness=4.0)
    directions = set()
    for seed in range(6):
        one, record = border_noise_with_record(
            clean, np.random.default_rng(seed), k_range=(6, 6), smoothness=4.0, sides="one"
        )
        directions.add(record.direction)
        grown, shrunk = (one == 1) & (clean == 0), (clean == 1) & (one == 0)
        assert (grown.any(), shrunk.any()) == ((True, False) if record.direction == "outward" else (False, True))
        assert record.grown_share == (1.0 if record.direction == "outward" else 0.0)
    assert directions == {"outward", "inward"}
    same, _ = border_noise_with_record(clean, np.random.default_rng(6), k_range=(6, 6), smoothness=4.0, sides="both")
    np.testing.assert_array_equal(both, same)  # the control's extra draw comes after the field: "both" unchanged


def test_the_onesided_kind_is_registered_and_records_the_direction() -> None:
    label = _sphere(32, 9.0)
    cases = [Case(label[None].astype(np.float32), label, (1.0, 1.0, 1.0), f"c{i}") for i in range(4)]
    _, manifest = corrupt_labels(cases, "border-onesided", 1.0, seed=0, k_range=(3, 3), smoothness=3.0)
    assert manifest.kind == "border-onesided"
    assert {e.operation for e in manifest.cases} <= {"border-outward", "border-inward"}
    with pytest.raises(ValueError, match="sides"):
        border_noise_with_record(_sphere(16, 4.0), np.random.default_rng(0), sides="out")


def test_regions_that_were_not_nested_are_not_forced_to_nest() -> None:
    left = np.zeros((32, 32, 32), bool)
    right = np.zeros((32, 32, 32), bool)
    left[6:14, 8:24, 8:24] = True
    right[18:26, 8:24, 8:24] = True
    noisy = move_border(np.stack([left, right]), np.full(left.shape, 1.5, np.float32))
    assert noisy[1].any() and not (noisy[0] & noisy[1]).any()
