"""CLCS: the curriculum thresholds by hand, the learning effect, the clean split, the noise balance loss
and the masked Dice on toys, the weight discrepancy, the two-decoder network, and two epochs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from baseline_helpers import first_batch, region_cases
from torch import nn

from svldrl.baselines.clcs import (
    CLCSTrainer,
    DualDecoderNet,
    convex_mapping,
    curriculum_thresholds,
    masked_dice_loss,
    noise_balance_voxel_loss,
    select_clean,
    update_learning_effect,
    weight_discrepancy,
    where_unselected,
)
from svldrl.baselines.common import label_boundary_band
from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.models import build_network
from svldrl.training import METHODS, read_log


def test_thresholds_by_hand():
    effect = torch.tensor([[0.8, 0.4]])  # background learned twice as well as the organ
    # p = 0.5: 0.9 * 0.25 = 0.225; beta = (1, 0.5), M = (1, 0.5 / 1.5 = 1/3)
    torch.testing.assert_close(curriculum_thresholds(0.5, effect), torch.tensor([[0.225, 0.075]]))
    torch.testing.assert_close(curriculum_thresholds(0.0, effect), torch.zeros(1, 2))
    torch.testing.assert_close(curriculum_thresholds(1.0, effect), torch.tensor([[0.9, 0.3]]))
    assert convex_mapping(torch.tensor(0.5)).item() == pytest.approx(1 / 3)


def test_thresholds_are_convex_in_progress_and_lower_for_classes_learned_less_well():
    effect = torch.tensor([[0.9, 0.6, 0.3]])
    tau = torch.stack([curriculum_thresholds(p / 10, effect)[0] for p in range(11)])  # (11, 3)
    steps = tau.diff(dim=0)
    assert (steps >= 0).all() and (steps.diff(dim=0) >= -1e-7).all()  # rising, and rising faster
    assert (tau[1:, 0] > tau[1:, 1]).all() and (tau[1:, 1] > tau[1:, 2]).all()


def test_learning_effect_is_a_running_mean_over_labelled_voxels():
    voted = torch.tensor([[0.9, 0.7, 0.2], [0.1, 0.3, 0.8]])[None, None]  # (1, 1, n=2, 3 voxels)
    onehot = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])[None, None]
    new = update_learning_effect(torch.tensor([[1.0, 1.0]]), voted, onehot, momentum=0.9)
    torch.testing.assert_close(new, torch.tensor([[0.9 + 0.1 * 0.8, 0.9 + 0.1 * 0.8]]))
    only_background = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])[None, None]
    kept = update_learning_effect(torch.tensor([[0.5, 0.4]]), voted, only_background, momentum=0.5)
    torch.testing.assert_close(kept, torch.tensor([[0.5 * 0.5 + 0.5 * 0.6, 0.4]]))  # the absent organ keeps 0.4


def test_clean_split_compares_the_label_probability_with_its_class_threshold():
    voted = torch.tensor([[0.6, 0.4, 0.95, 0.3], [0.4, 0.6, 0.05, 0.7]])[None, None]  # (1, 1, 2, 4)
    labels = torch.tensor([0, 0, 1, 1])
    onehot = nn.functional.one_hot(labels, 2).T.float()[None, None]
    clean = select_clean(voted, onehot, torch.tensor([[0.5, 0.2]]))
    assert clean[0, 0].tolist() == [True, False, False, True]  # 0.6 >= .5, 0.4 < .5, 0.05 < .2, 0.7 >= .2


def test_noise_balance_loss_on_a_toy():
    p = torch.tensor([[0.8, 0.4], [0.2, 0.6]])  # (n=2, 2 voxels), both labelled background
    onehot = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    clean = torch.tensor([True, False])
    confidence = torch.tensor([0.7, 0.25])  # voted probability of the label
    loss = noise_balance_voxel_loss(p.log()[None, None], onehot[None, None], clean[None, None], confidence[None, None])
    # clean: CE = -log 0.8; noisy: 0.25 * (-log 0.4) + 0.75 * RCE, RCE = -(-4) * (1 - 0.4) = 2.4
    expected = [-math.log(0.8), 0.25 * -math.log(0.4) + 0.75 * 2.4]
    assert loss[0, 0].tolist() == pytest.approx(expected, rel=1e-6)


def test_masked_dice_counts_only_masked_voxels():
    prob = torch.tensor([[0.9, 0.8, 0.1, 0.6], [0.1, 0.2, 0.9, 0.4]])[None]  # (1, 2 classes, 4 voxels)
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])[None]
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])[None, None]  # the last voxel is noisy
    smooth = 1e-5
    d0 = (2 * 1.7 + smooth) / (1.8 + 2 + smooth)
    d1 = (2 * 0.9 + smooth) / (1.2 + 1 + smooth)
    loss = masked_dice_loss(prob[..., None, None], target[..., None, None], mask[..., None, None])
    assert loss.item() == pytest.approx(1 - (d0 + d1) / 2, rel=1e-6)


def test_weight_discrepancy_is_one_plus_the_cosine_of_the_weights():
    a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[1.0, 0.0]]))
        a.bias.fill_(0.0)
        b.weight.copy_(torch.tensor([[1.0, 1.0]]))
        b.bias.fill_(1.0)
    # (1, 0, 0) . (1, 1, 1) / (1 * sqrt 3)
    assert weight_discrepancy(a, b).item() == pytest.approx(1 + 1 / math.sqrt(3))
    assert weight_discrepancy(a, a).item() == pytest.approx(2.0)


def test_dual_decoder_net_votes_two_distinct_decoders():
    torch.manual_seed(0)
    cfg = merge(CPU, {"model": {"channels": [4, 8]}})
    net = DualDecoderNet(build_network(cfg.model, 1, 2), "classes")
    first, second = net.decoders["seg"], net.decoders["seg2"]
    assert not torch.equal(first.out.conv.conv.weight, second.out.conv.conv.weight)
    x = torch.rand(2, 1, 16, 16, 16)
    l1, l2 = net(x)
    voted = 0.5 * (torch.softmax(l1, dim=1) + torch.softmax(l2, dim=1))
    torch.testing.assert_close(torch.softmax(net.segment(x), dim=1), voted)
    regions = DualDecoderNet(build_network(cfg.model, 1, 3), "regions")
    r1, r2 = regions(x)
    torch.testing.assert_close(torch.sigmoid(regions.segment(x)), 0.5 * (torch.sigmoid(r1) + torch.sigmoid(r2)))


def test_both_names_select_clcs():
    assert METHODS.get("clcs") is CLCSTrainer and METHODS.get("clcl") is CLCSTrainer
    assert "reconstruction" in CLCSTrainer.DESCRIPTION and CLCSTrainer.FOOTNOTE
    assert CLCSTrainer.table_label() == "CLCS"


def test_boundary_band_is_the_border_shell_of_the_label_and_not_the_patch_edge():
    onehot = torch.zeros(1, 1, 2, 12, 12, 12)
    onehot[0, 0, 1, 2:8, 2:8, 2:8] = 1.0  # a 6^3 cube
    onehot[0, 0, 0] = 1.0 - onehot[0, 0, 1]
    band = label_boundary_band(onehot, radius=1)[0, 0]
    assert band.shape == (12, 12, 12)
    assert band.sum().item() == 8**3 - 4**3  # the dilated 8^3 cube less the eroded 4^3 core
    assert not band[0, 0, 0] and not band[11, 11, 11] and not band[4, 4, 4]  # far background, deep inside
    full = torch.zeros(1, 1, 2, 6, 6, 6)
    full[:, :, 1] = 1.0  # foreground fills the patch: its edge is no border
    assert not label_boundary_band(full, radius=2).any()


def test_where_unselected_splits_left_out_voxels_by_label_class_and_border_band():
    onehot = torch.zeros(1, 1, 2, 4, 4, 4)
    onehot[0, 0, 1, :2] = 1.0  # half the patch foreground
    onehot[0, 0, 0] = 1.0 - onehot[0, 0, 1]
    band = torch.zeros(1, 1, 4, 4, 4, dtype=torch.bool)
    band[0, 0, 1:3] = True  # the two middle slices
    clean = torch.ones(1, 1, 4, 4, 4, dtype=torch.bool)
    clean[0, 0, 1, 0, :] = False  # 4 foreground voxels in the band left out
    clean[0, 0, 3, 0, :2] = False  # 2 background voxels outside it
    where = where_unselected(clean, onehot, band)
    assert where == pytest.approx({"label_fg_fraction": 0.5, "band_fraction": 0.5, "unselected_label_fg": 4 / 64,
                                   "unselected_label_bg": 2 / 64, "unselected_in_band": 4 / 64})
    onehot[0, 0, :, 1] = 0.0  # padding: no class, counted nowhere
    assert where_unselected(clean, onehot, band)["unselected_in_band"] == 0.0


def test_one_step_with_overlapping_regions(tmp_path: Path):
    cases, labels = region_cases()
    cfg = merge(CPU, {"method": "clcs", "data": {"patch_size": [16, 16, 16]}, "model": {"channels": [4, 8]},
                      "optim": {"epochs": 2, "iters_per_epoch": 1}, "num_threads": 1})
    trainer = CLCSTrainer(cfg, cases, [], labels, tmp_path, progress=False)
    assert trainer.effect.shape == (3, 2)
    scalars = trainer.train_step(first_batch(trainer, 1), epoch=1)  # p = 0.5: some voxels may be noisy
    assert all(math.isfinite(v) for v in scalars.values())


@pytest.mark.slow
def test_two_epochs_on_phantoms(tmp_path: Path):
    cases = make_phantoms(3, 32, seed=0)
    cfg = merge(CPU, {"method": "clcs", "optim": {"epochs": 2, "iters_per_epoch": 2},
                      "data": {"patch_size": [32, 32, 32]}, "val_every": 2, "num_threads": 1})
    trainer = CLCSTrainer(cfg, cases[:2], cases[2:], PHANTOM_LABELS, tmp_path, progress=False)
    result = trainer.fit()
    rows = read_log(tmp_path)
    keys = ("loss", "loss_ce", "loss_dice", "loss_discrepancy", "clean_fraction", "threshold_mean",
            "label_fg_fraction", "band_fraction", "unselected_label_fg", "unselected_label_bg", "unselected_in_band")
    assert all(math.isfinite(float(r[k])) for r in rows for k in keys)
    assert float(rows[0]["clean_fraction"]) == 1.0 and float(rows[0]["threshold_mean"]) == 0.0  # p = 0
    assert float(rows[0]["unselected_label_fg"]) == float(rows[0]["unselected_in_band"]) == 0.0
    assert 0.0 < float(rows[1]["band_fraction"]) < 1.0
    assert float(rows[1]["threshold_mean"]) > 0.0  # p = 0.5
    assert 0.0 <= result["val_dice"] <= 1.0 and (trainer.effect > 0).all()
    payload = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)
    resumed = CLCSTrainer(cfg, cases[:2], cases[2:], PHANTOM_LABELS, tmp_path, progress=False)
    resumed.load_checkpoint_state(payload)
    torch.testing.assert_close(resumed.effect, trainer.effect)
    CLCSTrainer.inference_network(cfg, 1, PHANTOM_LABELS).load_state_dict(payload["model"])  # what inference rebuilds
