"""Resampling to a spacing and back, against scipy and the grid's geometry; prepare_cases."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from svldrl.config import DataConfig
from svldrl.data import load_dataset, prepare_cases, resample_case, resample_to_shape


def test_trilinear_matches_scipy_zoom_on_the_voxel_grid():
    data = np.random.default_rng(0).random((2, 6, 7, 5)).astype(np.float32)
    ours = resample_to_shape(data, (12, 14, 10), "trilinear")
    # align_corners=False sampling == scipy's grid_mode with edge clamping
    reference = np.stack([ndimage.zoom(c, 2.0, order=1, grid_mode=True, mode="nearest") for c in data])
    assert ours.shape == (2, 12, 14, 10) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_nearest_upsampling_repeats_voxels_and_keeps_the_dtype():
    label = np.random.default_rng(1).integers(0, 3, size=(4, 5, 3)).astype(np.uint8)
    up = resample_to_shape(label, (8, 10, 6), "nearest")
    assert up.dtype == np.uint8
    expected = label.repeat(2, axis=0).repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_array_equal(up, expected)
    np.testing.assert_array_equal(resample_to_shape(up, (4, 5, 3), "nearest"), label)


def test_torch_input_stays_torch():
    probs = torch.rand(3, 4, 4, 4, dtype=torch.float64)
    out = resample_to_shape(probs, (8, 8, 8))
    assert isinstance(out, torch.Tensor) and type(out) is torch.Tensor and out.dtype == torch.float32
    assert out.shape == (3, 8, 8, 8) and out.device == probs.device


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be one of"):
        resample_to_shape(np.zeros((2, 2, 2)), (4, 4, 4), "cubic")
    with pytest.raises(ValueError, match="3 positive ints"):
        resample_to_shape(np.zeros((2, 2, 2)), (4, 4), "nearest")


def _corner(affine: np.ndarray, voxel) -> np.ndarray:
    return (affine @ np.array([*voxel, 1.0]))[:3]


def test_resample_case_keeps_the_world_extent_and_records_the_original(msd_dataset):
    case = load_dataset(msd_dataset)[0]  # (20, 18, 16) at (0.8, 0.9, 2.5) mm, x flipped
    out = resample_case(case, (1.6, 1.8, 2.5))
    assert out.shape == (10, 9, 16) and out.image.shape == (1, 10, 9, 16) and out.label.shape == (10, 9, 16)
    assert out.spacing == pytest.approx((1.6, 1.8, 2.5))
    # the outer faces of the voxel grid stay where they were in world space
    np.testing.assert_allclose(_corner(out.affine, (-0.5,) * 3), _corner(case.affine, (-0.5,) * 3), atol=1e-6)
    np.testing.assert_allclose(
        _corner(out.affine, np.array(out.shape) - 0.5), _corner(case.affine, np.array(case.shape) - 0.5), atol=1e-6
    )
    assert out.meta["original_shape"] == (20, 18, 16)
    assert out.meta["original_spacing"] == pytest.approx(case.spacing)
    np.testing.assert_allclose(out.meta["original_affine"], case.affine)
    assert 0.0 <= out.image.min() and out.image.max() <= 1.0
    assert out.label.dtype == np.uint8 and abs(out.label.mean() - case.label.mean()) < 0.02
    twice = resample_case(out, (0.8, 0.9, 2.5))  # the first original is kept
    assert twice.meta["original_shape"] == (20, 18, 16) and twice.shape == (20, 18, 16)
    back = resample_to_shape(out.label, out.meta["original_shape"], "nearest")  # exactly 2 x 2 x 1 blocks
    np.testing.assert_array_equal(back, out.label.repeat(2, axis=0).repeat(2, axis=1))


def test_resample_case_regions_and_no_op(brats_dataset):
    case = load_dataset(brats_dataset)[0]
    out = resample_case(case, (2.0, 2.0, 2.0))
    assert out.label.shape == (3, 10, 9, 8) and out.image.shape == (4, 10, 9, 8)
    same = resample_case(case, case.spacing)
    assert same.image is case.image and same.meta["original_shape"] == case.shape
    with pytest.raises(ValueError, match="3 positive numbers"):
        resample_case(case, (1.0, 0.0, 1.0))


def test_prepare_cases_resamples_only_when_asked(la_dataset):
    ds = load_dataset(la_dataset)
    native = prepare_cases(ds, DataConfig(spacing=None))
    assert [c.case_id for c in native] == list(ds.case_ids) and native[0] is ds.get(ds.case_ids[0])
    coarse = prepare_cases(ds, DataConfig(spacing=(1.25, 1.25, 1.25)))
    assert all(c.shape == (10, 9, 8) and c.spacing == pytest.approx((1.25,) * 3) for c in coarse)
    from_list = prepare_cases(native, DataConfig(spacing=(1.25, 1.25, 1.25)))
    np.testing.assert_array_equal(from_list[1].image, coarse[1].image)
