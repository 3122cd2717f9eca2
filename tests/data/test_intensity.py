"""Intensity normalisation to [0, 1] (method.md): CT window, MRI body percentiles, per channel."""

import numpy as np
import pytest

from svldrl.data import CT_WINDOW, normalise_image
from svldrl.data.intensity import body_voxels


def test_ct_is_clipped_to_the_window_then_scaled():
    hu = np.array([-1000, -125, 0, 75, 275, 3000], dtype=np.int16).reshape(1, 1, 2, 3)
    out, windows = normalise_image(hu, ("CT",))
    assert windows == (CT_WINDOW,)
    np.testing.assert_allclose(out.ravel(), [0.0, 0.0, 125 / 400, 200 / 400, 1.0, 1.0], atol=1e-6)
    assert out.dtype == np.float32


def test_mri_with_zero_background_uses_percentiles_of_the_nonzero_voxels():
    rng = np.random.default_rng(0)
    channel = np.zeros((20, 20, 20), dtype=np.float32)
    channel[5:15, 5:15, 5:15] = rng.gamma(2.0, 50.0, size=(10, 10, 10))
    out, ((low, high),) = normalise_image(channel[None], ("MRI",))
    body = channel[channel > 0]
    assert (low, high) == pytest.approx(tuple(np.percentile(body, [0.5, 99.5])), rel=1e-6)
    expected = np.clip((channel - low) / (high - low), 0, 1)
    np.testing.assert_allclose(out[0], expected, atol=1e-6)
    assert out[0][channel == 0].max() == 0.0  # background stays at 0


def test_mri_without_zero_background_uses_the_whole_volume():
    z = np.random.default_rng(1).normal(size=(10, 10, 10)).astype(np.float32)  # z-scored, like LA
    assert body_voxels(z).size == z.size
    _, ((low, high),) = normalise_image(z[None], ("MRI",))
    assert (low, high) == pytest.approx(tuple(np.percentile(z, [0.5, 99.5])), rel=1e-6)


def test_each_channel_gets_its_own_window():
    rng = np.random.default_rng(2)
    image = np.stack([rng.uniform(0, 10, (8, 8, 8)), rng.uniform(-2000, 2000, (8, 8, 8))]).astype(np.float32)
    out, windows = normalise_image(image, ("T2", "CT"))
    assert windows[1] == CT_WINDOW and windows[0][1] < 10.0
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[0].max() == 1.0 and out[0].min() == 0.0  # the percentile window spans the channel


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="x.nii.gz: image holds NaN"):
        normalise_image(np.full((1, 2, 2, 2), np.nan, dtype=np.float32), ("MRI",), source="x.nii.gz")
    with pytest.raises(ValueError, match="2 channels but 1 modality"):
        normalise_image(np.zeros((2, 2, 2, 2), dtype=np.float32), ("MRI",))
