"""Loss Correction: forward/backward corrected CE by hand, anchor estimation of T, the diag > 0.5 guard,
and two epochs on phantoms (warmup, estimate, corrected loss, resume)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from svldrl.baselines.loss_correction import (
    LossCorrectionTrainer,
    anchor_transition_matrix,
    backward_corrected_ce,
    check_transition_matrix,
    forward_corrected_ce,
    sample_voxels,
)
from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.noise import mt_noise
from svldrl.training import read_log

T2 = torch.tensor([[[0.9, 0.1], [0.2, 0.8]]])  # (G=1, 2, 2): P(noisy j | clean i)


def two_voxels(p_organ: tuple[float, float], noisy: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 1, 2, 2) log-probabilities and one-hot noisy labels of two voxels (classes background, organ)."""
    p = torch.tensor([[1 - p_organ[0], 1 - p_organ[1]], [p_organ[0], p_organ[1]]])  # (n, voxels)
    onehot = torch.nn.functional.one_hot(torch.tensor(noisy), 2).T.float()  # (n, voxels)
    return p.log()[None, None], onehot[None, None]


def test_forward_correction_matches_hand_computation():
    # clean p = (0.8, 0.2) -> T^T p = (0.8*0.9 + 0.2*0.2, 0.8*0.1 + 0.2*0.8) = (0.76, 0.24)
    log_p, y = two_voxels((0.2, 0.2), (1, 0))
    loss = forward_corrected_ce(log_p, y, T2)  # (1, 1, 2)
    assert loss[0, 0].tolist() == pytest.approx([-math.log(0.24), -math.log(0.76)], rel=1e-6)


def test_forward_correction_with_identity_is_plain_cross_entropy():
    log_p, y = two_voxels((0.3, 0.9), (1, 0))
    loss = forward_corrected_ce(log_p, y, torch.eye(2)[None])
    assert loss[0, 0].tolist() == pytest.approx([-math.log(0.3), -math.log(0.1)], rel=1e-6)


def test_backward_correction_matches_hand_computation():
    # T^-1 = [[0.8, -0.1], [-0.2, 0.9]] / 0.7; noisy label 1 -> weights (-0.2, 0.9) / 0.7
    log_p, y = two_voxels((0.2, 0.2), (1, 1))
    expected = (0.2 * math.log(0.8) - 0.9 * math.log(0.2)) / 0.7
    loss = backward_corrected_ce(log_p, y, T2)
    assert loss[0, 0].tolist() == pytest.approx([expected, expected], rel=1e-5)


def test_anchor_is_the_largest_value_below_the_97th_percentile():
    # p(background) = 0.00 .. 0.99: the 97th percentile ("higher") is 0.97, so the anchor is 0.96.
    # p(organ) = 1.00 .. 0.01: the 97th percentile is 0.98, the anchor 0.97 (the voxel with p0 = 0.03).
    p0 = np.arange(100) / 100
    t = anchor_transition_matrix(np.stack([p0, 1 - p0], axis=1))
    np.testing.assert_allclose(t, [[0.96, 0.04], [0.03, 0.97]], atol=1e-12)


def planted_probabilities(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Voxels whose noisy-class probabilities are ``w @ T`` for clean-class mixtures w: per class, 20 %
    anchors (w = e_i, jittered by 1e-3), 78 % random mixtures and 2 % overconfident outliers above T[i, i]."""
    n, rows = len(t), []
    for i in range(n):
        anchors = t[i] + rng.normal(0.0, 1e-3, size=(2000, n))
        mixtures = rng.dirichlet(np.ones(n), size=7800) @ t
        top = rng.uniform(0.95, 0.99, size=200)
        outliers = np.repeat(((1 - top) / (n - 1))[:, None], n, axis=1)
        outliers[:, i] = top
        rows += [anchors, mixtures, outliers]
    probs = np.clip(np.concatenate(rows), 1e-6, None)
    return probs / probs.sum(axis=1, keepdims=True)


def test_estimation_recovers_a_planted_transition_matrix():
    t = np.array([[0.80, 0.15, 0.05], [0.10, 0.85, 0.05], [0.05, 0.10, 0.85]])
    probs = planted_probabilities(t, np.random.default_rng(0))
    np.testing.assert_allclose(anchor_transition_matrix(probs, 97.0), t, atol=0.01)
    # Without the outlier cut the overconfident voxels become the anchors: T is badly overestimated.
    assert not np.allclose(anchor_transition_matrix(probs, 100.0), t, atol=0.05)


def test_transition_with_diagonal_at_most_half_is_refused():
    with pytest.raises(ValueError, match=r"T\[background, background\] = 0.400 <= 0.5"):
        check_transition_matrix(np.array([[0.4, 0.6], [0.1, 0.9]]), ["background", "organ"], "estimated T")
    with pytest.raises(ValueError, match="row-stochastic"):
        check_transition_matrix(np.array([[0.9, 0.2], [0.1, 0.9]]), ["background", "organ"], "estimated T")
    ok = check_transition_matrix(np.array([[0.9, 0.1], [0.3, 0.7]]), ["background", "organ"], "estimated T")
    assert ok.dtype == np.float64


def test_sample_voxels_draws_without_replacement():
    prob = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(1, 2, 3, 4, 5)  # (G, n, 3, 4, 5)
    picked = sample_voxels(prob, 10, np.random.default_rng(1))
    assert picked.shape == (1, 2, 10)
    assert len(set(picked[0, 0].tolist())) == 10
    np.testing.assert_array_equal(picked[0, 1] - picked[0, 0], 60)  # both classes of the same voxels
    assert sample_voxels(prob, 1000, np.random.default_rng(1)).shape == (1, 2, 60)


def tiny_trainer(tmp_path: Path, options: dict) -> LossCorrectionTrainer:
    cfg = merge(CPU, {"method": "loss-correction", "data": {"patch_size": [16, 16, 16]}, "model": {"channels": [4, 8]},
                      "optim": {"epochs": 4}, "num_threads": 1, "method_options": options})
    return LossCorrectionTrainer(cfg, make_phantoms(1, 16, seed=3), [], PHANTOM_LABELS, tmp_path, progress=False)


def test_given_transition_is_checked_and_used_from_the_start(tmp_path):
    with pytest.raises(ValueError, match=r"T\[organ, organ\] = 0.500"):
        tiny_trainer(tmp_path, {"transition_matrix": [[0.9, 0.1], [0.5, 0.5]]})
    trainer = tiny_trainer(tmp_path, {"transition_matrix": [[0.9, 0.1], [0.2, 0.8]], "dice_weight": 0.0})
    logits = torch.tensor([0.0, math.log(0.25)]).view(1, 2, 1, 1, 1)  # p = (0.8, 0.2)
    target = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1, 1)
    assert trainer.compute_loss(logits, target).item() == pytest.approx(-math.log(0.24), rel=1e-6)


def test_unknown_option_is_rejected_with_the_valid_names(tmp_path):
    with pytest.raises(ValueError, match="unknown option 'warmup_fractoin'.*did you mean 'warmup_fraction'"):
        tiny_trainer(tmp_path, {"warmup_fractoin": 0.3})


@pytest.mark.slow
def test_two_epochs_on_phantoms_estimate_t_and_resume(tmp_path):
    cases = make_phantoms(3, 32, seed=0)
    noisy, manifest = mt_noise(cases[:2], 0.5, seed=0)
    train = [c.with_label(noisy[c.case_id]) for c in cases[:2]]
    cfg = merge(CPU, {"method": "loss-correction", "optim": {"epochs": 2, "iters_per_epoch": 2},
                      "data": {"patch_size": [32, 32, 32]}, "val_every": 2, "num_threads": 1})

    def make() -> LossCorrectionTrainer:
        return LossCorrectionTrainer(cfg, train, cases[2:], PHANTOM_LABELS, tmp_path, progress=False,
                                     noise_manifest=manifest)

    first = make()
    assert first.warmup_epochs == 1 and first.transition is None
    first.fit(stop_after=1)  # warmup epoch, then T is estimated
    assert first.transition is not None and (first.transition.diagonal(dim1=1, dim2=2) > 0.5).all()
    assert (tmp_path / "transition_matrix.json").is_file()
    second = make()
    second.fit(resume=True)
    torch.testing.assert_close(second.transition, first.transition)
    losses = [float(row["loss"]) for row in read_log(tmp_path)]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
