"""MT noise: cube filters against scipy's binary morphology, direction, k range, erosion fallbacks,
multi-class priority, region stacks, seeding."""

import numpy as np
import pytest
from scipy import ndimage

from svldrl.noise import (
    apply_operation,
    cube_dilation,
    cube_erosion,
    morphological_noise,
    morphological_noise_with_record,
)


def _ball(shape=(40, 40, 40), radius=12.0, centre=None) -> np.ndarray:
    centre = np.array(shape) / 2 if centre is None else np.array(centre)
    grid = np.indices(shape).astype(float)
    return (((grid - centre[:, None, None, None]) ** 2).sum(axis=0) <= radius**2).astype(np.uint8)


def _scipy_op(mask: np.ndarray, operation: str, k: int) -> np.ndarray:
    """The brief's reference: scipy binary morphology with a k^3 cube (erosion: edge extends the mask)."""
    cube = np.ones((k, k, k), bool)
    if operation == "dilation":
        return ndimage.binary_dilation(mask, structure=cube)
    return ndimage.binary_erosion(mask, structure=cube, border_value=1)


@pytest.mark.parametrize("k", [3, 4, 5, 6, 7, 8])
def test_cube_filters_equal_scipy_binary_morphology(k: int) -> None:
    rng = np.random.default_rng(k)
    sparse = rng.random((23, 19, 21)) > 0.97  # isolated voxels show any offset of the cube
    dense = ndimage.gaussian_filter(rng.random((23, 19, 21)), 2) > 0.5
    dense[0, :, :] = True  # touches the edge: erosion must not eat in from the edge
    for mask in (sparse, dense):
        np.testing.assert_array_equal(cube_dilation(mask, k), _scipy_op(mask, "dilation", k))
        np.testing.assert_array_equal(cube_erosion(mask, k), _scipy_op(mask, "erosion", k))


def test_same_generator_state_gives_the_same_result() -> None:
    label = _ball()
    for seed in range(6):
        a, rec_a = morphological_noise_with_record(label, np.random.default_rng(seed))
        b, rec_b = morphological_noise_with_record(label, np.random.default_rng(seed))
        np.testing.assert_array_equal(a, b)
        assert rec_a == rec_b
        np.testing.assert_array_equal(morphological_noise(label, np.random.default_rng(seed)), a)
    records = {morphological_noise_with_record(label, np.random.default_rng(s))[1] for s in range(10)}
    assert len(records) > 3  # different seeds really give different noise


def test_operations_move_the_mask_in_the_right_direction_by_the_recorded_k() -> None:
    label = _ball()
    clean = label.astype(bool)
    seen = set()
    for seed in range(12):
        noisy, record = morphological_noise_with_record(label, np.random.default_rng(seed))
        assert 3 <= record.k <= 15 and record.fallback is None
        assert noisy.dtype == label.dtype and noisy.shape == label.shape
        mask = noisy.astype(bool)
        if record.operation == "dilation":
            assert (mask | clean).sum() == mask.sum() and mask.sum() > clean.sum()  # noisy strictly contains clean
        else:
            assert (mask & clean).sum() == mask.sum() and 0 < mask.sum() < clean.sum()  # strictly inside
        np.testing.assert_array_equal(mask, _scipy_op(clean, record.operation, record.k))
        seen.add(record.operation)
    assert seen == {"dilation", "erosion"}


def test_k_is_uniform_on_3_to_15_and_operations_are_even() -> None:
    label = np.zeros((8, 8, 8), np.uint8)
    label[:, :, :] = 1  # a full volume never empties (the edge extends the mask), so no redraws
    records = [morphological_noise_with_record(label, np.random.default_rng(s))[1] for s in range(400)]
    ks = [r.k for r in records]
    assert set(ks) == set(range(3, 16))
    assert all(r.draws == 1 for r in records)
    n_dilation = sum(r.operation == "dilation" for r in records)
    assert 160 <= n_dilation <= 240  # p = 0.5: 200 +- 4 standard deviations


def test_erosion_never_empties_a_thin_structure() -> None:
    label = np.zeros((30, 30, 30), np.uint8)
    label[5:25, 5:25, 13:17] = 1  # a slab 4 voxels thick: cubes of side 5..15 would erase it
    erosions = 0
    for seed in range(40):
        noisy, record = morphological_noise_with_record(label, np.random.default_rng(seed))
        assert noisy.any()
        if record.operation == "erosion":
            erosions += 1
            assert record.k in (3, 4)
            assert (noisy.astype(bool) & ~label.astype(bool)).sum() == 0
    assert erosions >= 10


def test_after_max_draws_the_largest_keeping_erosion_is_used() -> None:
    label = np.zeros((30, 30, 30), np.uint8)
    label[5:25, 5:25, 13:17] = 1
    fallbacks = []
    for seed in range(60):
        noisy, record = morphological_noise_with_record(label, np.random.default_rng(seed), max_draws=1)
        if record.fallback == "largest-erosion":
            fallbacks.append(record)
            np.testing.assert_array_equal(noisy.astype(bool), _scipy_op(label.astype(bool), "erosion", 4))
    assert fallbacks and all(r.k == 4 and r.operation == "erosion" for r in fallbacks)


def test_when_no_erosion_keeps_the_structure_the_case_is_dilated() -> None:
    label = np.zeros((20, 20, 20), np.uint8)
    label[5:15, 5:15, 9:11] = 1  # 2 voxels thick: even k = 3 erases it
    for seed in range(20):
        noisy, record = morphological_noise_with_record(label, np.random.default_rng(seed))
        assert record.operation == "dilation"
        assert record.fallback in (None, "dilation")
        assert noisy.sum() > label.sum() and np.all(noisy[label == 1] == 1)


def test_multiclass_dilation_keeps_classes_and_gives_contested_voxels_to_the_lower_class() -> None:
    label = np.zeros((12, 12, 12), np.uint8)
    label[2:6, 3:9, 3:9] = 1
    label[7:10, 3:9, 3:9] = 2  # one background layer (x = 6) between the two classes
    noisy = apply_operation(label, "dilation", 3)
    assert np.all(noisy[label == 1] == 1) and np.all(noisy[label == 2] == 2)
    assert np.all(noisy[6, 3:9, 3:9] == 1)  # reached by both dilations: class 1 has priority
    # each class's noisy mask is its own dilation minus what the original or the priority class took
    grown2 = _scipy_op(label == 2, "dilation", 3) & (label == 0) & ~_scipy_op(label == 1, "dilation", 3)
    np.testing.assert_array_equal(noisy == 2, (label == 2) | grown2)


def test_multiclass_erosion_shrinks_every_class_and_never_drops_a_small_one() -> None:
    label = _ball((36, 36, 36), 13.0)
    label[2:5, 2:5, 2:5] = 2  # a 3-voxel cube: any erosion with k >= 4 erases class 2
    for seed in range(30):
        noisy, record = morphological_noise_with_record(label, np.random.default_rng(seed))
        assert set(np.unique(noisy)) == {0, 1, 2}
        if record.operation == "erosion":
            assert record.k == 3
            for c in (1, 2):
                np.testing.assert_array_equal(noisy == c, _scipy_op(label == c, "erosion", 3))


def test_region_stacks_are_handled_channel_by_channel_and_stay_nested() -> None:
    wt = _ball((32, 32, 32), 11.0).astype(bool)
    tc = _ball((32, 32, 32), 7.0).astype(bool)
    et = _ball((32, 32, 32), 4.0).astype(bool)
    regions = np.stack([wt, tc, et]).astype(np.uint8)
    for seed in range(8):
        noisy, record = morphological_noise_with_record(regions, np.random.default_rng(seed))
        assert noisy.shape == regions.shape and noisy.dtype == regions.dtype
        for c in range(3):
            np.testing.assert_array_equal(
                noisy[c].astype(bool), _scipy_op(regions[c].astype(bool), record.operation, record.k)
            )
        assert np.all(noisy[1] <= noisy[0]) and np.all(noisy[2] <= noisy[1])
        assert all(noisy[c].any() for c in range(3))


def test_the_input_is_not_modified() -> None:
    label = _ball()
    before = label.copy()
    for seed in range(4):
        morphological_noise(label, np.random.default_rng(seed))
    np.testing.assert_array_equal(label, before)


def test_bad_inputs_are_rejected() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="dtype float"):
        morphological_noise(np.zeros((4, 4, 4), np.float32), rng)
    with pytest.raises(ValueError, match="shape"):
        morphological_noise(np.zeros((4, 4), np.uint8), rng)
    with pytest.raises(TypeError, match="Generator"):
        morphological_noise(np.zeros((4, 4, 4), np.uint8), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="operation"):
        apply_operation(np.zeros((4, 4, 4), np.uint8), "opening", 3)
