"""Inference: sliding-window shapes and blending, the way back to the original grid, greedy refinement,
NIfTI writing."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from svldrl.config import CPU, ModelConfig, merge
from svldrl.data import PHANTOM_LABELS, LabelSpec, make_phantoms, resample_case
from svldrl.inference import (
    labels_from_probabilities,
    predict_case,
    predict_probabilities,
    refine_state,
    write_prediction,
)
from svldrl.models import NetOutput, build_network
from svldrl.rl import ENHANCE, KEEP

torch.set_num_threads(1)  # shared machine: one thread runs these tiny convolutions fastest

TINY_MODEL = ModelConfig(backbone="unet", channels=(4, 8))


def tiny_net(n_outputs: int = 2, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_network(TINY_MODEL, 1, n_outputs)


def force_policy(net: nn.Module, action: int) -> nn.Module:
    """Make the policy decoder pick ``action`` at every voxel (zero weights, a dominant bias)."""
    conv = net.decoders["policy"].out.conv.conv
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.bias[action] = 10.0
    return net


class ConstantLogits(nn.Module):
    """A 'network' whose segmentation logits are the same vector at every voxel."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.view(1, -1, 1, 1, 1).expand(x.shape[0], -1, *x.shape[2:]).clone()

    def forward(self, x: torch.Tensor, heads=("seg",)) -> NetOutput:
        return NetOutput(self.segment(x), None, None)


def test_sliding_window_on_a_volume_larger_than_the_patch_gives_the_volume_shape():
    image = np.random.default_rng(0).random((1, 40, 36, 20), dtype=np.float32)
    prob = predict_probabilities(tiny_net(), image, (16, 16, 16), overlap=0.5)
    assert prob.shape == (2, 40, 36, 20)
    assert prob.dtype == np.float32
    np.testing.assert_allclose(prob.sum(axis=0), 1.0, atol=1e-5)


@pytest.mark.parametrize("refine_steps", [0, 1])
def test_windows_per_forward_pass_change_speed_not_results(refine_steps):
    """sw_batch_size is an execution setting (config.EXECUTION_KEYS): batching windows must not change
    the prediction beyond float rounding, with or without policy refinement (per-window, per-sample)."""
    image = np.random.default_rng(1).random((1, 40, 36, 20), dtype=np.float32)
    one, four = (
        predict_probabilities(tiny_net(), image, (16, 16, 16), overlap=0.25, sw_batch_size=b, refine_steps=refine_steps)
        for b in (1, 4)
    )
    np.testing.assert_allclose(one, four, atol=1e-5)


def test_blended_probabilities_are_the_activation_of_the_logits():
    image = np.zeros((1, 24, 20, 17), dtype=np.float32)  # 17: last window padded
    prob = predict_probabilities(ConstantLogits([0.0, 1.0, -1.0]), image, (8, 8, 8), device="cpu")
    expected = np.exp([0.0, 1.0, -1.0]) / np.exp([0.0, 1.0, -1.0]).sum()
    np.testing.assert_allclose(prob, np.broadcast_to(expected[:, None, None, None], prob.shape), rtol=1e-5)
    regions = predict_probabilities(ConstantLogits([0.0, 2.0]), image, (8, 8, 8), mode="regions")
    np.testing.assert_allclose(regions[1], 1 / (1 + np.exp(-2.0)), rtol=1e-5)


def test_prediction_restores_the_training_mode():
    net = tiny_net()
    net.train()
    predict_probabilities(net, np.zeros((1, 16, 16, 16), np.float32), (16, 16, 16))
    assert net.training


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="image"):
        predict_probabilities(tiny_net(), np.zeros((16, 16, 16), np.float32), (16, 16, 16))
    with pytest.raises(ValueError, match="mode"):
        predict_probabilities(tiny_net(), np.zeros((1, 16, 16, 16), np.float32), (16, 16, 16), mode="softmax")
    with pytest.raises(ValueError, match="refine_steps"):
        predict_probabilities(tiny_net(), np.zeros((1, 16, 16, 16), np.float32), (16, 16, 16), refine_steps=-1)


def test_labels_from_probabilities():
    prob = np.zeros((3, 2, 1, 1), np.float32)
    prob[:, 0, 0, 0] = [0.2, 0.5, 0.3]
    prob[:, 1, 0, 0] = [0.1, 0.2, 0.7]
    assert labels_from_probabilities(prob, LabelSpec(("bg", "a", "b"))).ravel().tolist() == [1, 2]
    regions = labels_from_probabilities(prob, LabelSpec(("wt", "tc", "et"), mode="regions"))
    assert regions.shape == (3, 2, 1, 1)
    assert regions[:, :, 0, 0].T.tolist() == [[0, 0, 0], [0, 0, 1]]


def test_predict_case_returns_the_original_grid_after_resampling():
    case = make_phantoms(1, 24, seed=1)[0]
    resampled = resample_case(case, (1.5, 1.5, 2.0))  # 24^3 -> 16 x 16 x 12
    assert resampled.shape == (16, 16, 12)
    cfg = merge(CPU, {"data": {"patch_size": [16, 16, 16]}})
    labels = predict_case(tiny_net(), resampled, PHANTOM_LABELS, cfg)
    assert labels.shape == (24, 24, 24)
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1}


def test_predict_case_resamples_probabilities_before_the_argmax():
    """A prediction split in two halves of the 8^3 grid is split between voxels 7 and 8 of the 16^3 grid."""
    case = make_phantoms(1, 16, seed=1)[0]
    small = resample_case(case, (2.0, 2.0, 2.0))  # 16^3 -> 8^3

    class LeftHalf(ConstantLogits):
        def segment(self, x):
            logits = torch.zeros(x.shape[0], 2, *x.shape[2:])
            half = x.shape[2] // 2
            logits[:, 1, :half] = 5.0  # organ in the first half along H, background in the second
            logits[:, 0, half:] = 5.0
            return logits

    cfg = merge(CPU, {"data": {"patch_size": [8, 8, 8]}})
    labels = predict_case(LeftHalf([0.0, 0.0]), small, PHANTOM_LABELS, cfg)
    assert labels.shape == (16, 16, 16)
    assert (labels[:8] == 1).all() and (labels[8:] == 0).all()


def test_refinement_with_a_keep_policy_changes_nothing():
    image = np.random.default_rng(2).random((1, 24, 24, 24), dtype=np.float32)
    net = force_policy(tiny_net(seed=3), KEEP)
    plain = predict_probabilities(net, image, (16, 16, 16))
    refined = predict_probabilities(net, image, (16, 16, 16), refine_steps=2)
    np.testing.assert_array_equal(plain, refined)


def test_refinement_with_an_enhance_policy_changes_the_input_as_eq10_says():
    state = torch.full((1, 1, 8, 8, 8), 0.5)
    refined = refine_state(force_policy(tiny_net(), ENHANCE), state, steps=2)
    np.testing.assert_allclose(refined.numpy(), 0.5 * 1.15**2, rtol=1e-6)  # e = 0.5: x (1 + 0.3 * 0.5) per step
    image = np.random.default_rng(2).random((1, 24, 24, 24), dtype=np.float32)
    net = force_policy(tiny_net(seed=3), ENHANCE)
    plain = predict_probabilities(net, image, (16, 16, 16))
    assert not np.allclose(plain, predict_probabilities(net, image, (16, 16, 16), refine_steps=1))


def test_write_prediction_keeps_the_input_geometry(tmp_path):
    case = make_phantoms(1, 16, seed=1, spacing=(0.8, 0.9, 1.2))[0]
    mask = (np.arange(16**3).reshape(16, 16, 16) % 3 == 0).astype(np.uint8)
    path = write_prediction(mask, case, tmp_path / "pred.nii.gz")
    img = nib.load(path)
    np.testing.assert_array_equal(np.asarray(img.dataobj), mask)
    np.testing.assert_allclose(img.affine, case.affine)
    with pytest.raises(ValueError, match="label map"):
        write_prediction(mask.astype(np.float32), case, tmp_path / "p.nii.gz")
    with pytest.raises(ValueError, match=".nii"):
        write_prediction(mask, case, tmp_path / "pred.npy")
