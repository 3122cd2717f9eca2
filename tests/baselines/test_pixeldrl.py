"""PixelDRL-MG: the mask transition on hand-made actions, the proposal and the start mask, the reward
sign of an edit toward (or away from) the label, the mask-state network, the rollout's bookkeeping,
and two epochs on phantoms."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from baseline_helpers import first_batch, region_cases

from svldrl.baselines.pixeldrl import (
    SET_BACKGROUND,
    SET_FOREGROUND,
    MaskStateNet,
    PixelDRLTrainer,
    apply_mask_actions,
    foreground_proposal,
    initial_mask,
    mask_agreement_reward,
    mask_logits,
)
from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.inference import predict_probabilities
from svldrl.models import build_network
from svldrl.training import METHODS, gradient_plan, read_log


def test_mask_transition_on_hand_made_actions():
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])[None]  # (B=1, F=2, 4 voxels)
    proposal = torch.tensor([[0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])[None]
    actions = torch.tensor([[0, SET_FOREGROUND, SET_BACKGROUND, SET_FOREGROUND]])
    new = apply_mask_actions(mask, actions, proposal)[0]
    # voxel 0 kept, 1 takes the proposal, 2 cleared, 3 switched from class 2 to class 1
    assert new.tolist() == [[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="integers in"):
        apply_mask_actions(mask, torch.tensor([[0, 1, 3, 0]]), proposal)
    with pytest.raises(ValueError, match="one per voxel"):
        apply_mask_actions(mask, torch.tensor([[0, 1, 2]]), proposal)


def test_start_mask_and_proposal_follow_the_segmentation():
    logits = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.5, 3.0], [0.0, 3.0, 2.0]])[None]  # (1, 3 classes, 3 voxels)
    assert initial_mask(logits, "classes")[0].tolist() == [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]  # argmax 0, 2, 1
    assert foreground_proposal(logits, "classes")[0].tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    regions = torch.tensor([[-1.0, 2.0], [-3.0, 1.0]])[None]  # (1, 2 regions, 2 voxels)
    assert initial_mask(regions, "regions")[0].tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert foreground_proposal(regions, "regions")[0].tolist() == [[1.0, 1.0], [0.0, 1.0]]  # none above: the best


def test_refined_mask_logits_give_the_mask_back():
    mask = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])[None]
    prob = torch.softmax(mask_logits(mask, "classes"), dim=1)[0]
    assert prob.argmax(dim=0).tolist() == [1, 2, 0]
    assert torch.sigmoid(mask_logits(mask, "regions")).round().tolist() == mask.tolist()


def tiny_trainer(tmp_path: Path, epochs: int = 2) -> PixelDRLTrainer:
    cases = make_phantoms(2, 16, seed=3)
    cfg = merge(CPU, {"method": "pixeldrl-mg", "data": {"patch_size": [16, 16, 16]}, "model": {"channels": [4, 8]},
                      "optim": {"epochs": epochs, "iters_per_epoch": 1, "batch_size": 1}, "num_threads": 1})
    return PixelDRLTrainer(cfg, cases, [], PHANTOM_LABELS, tmp_path, progress=False)


def test_an_edit_toward_the_label_is_rewarded_and_one_away_is_penalised(tmp_path: Path):
    trainer = tiny_trainer(tmp_path)
    label = torch.zeros(1, 1, 8, 8, 8)
    label[..., 2:6, 2:6, 2:6] = 1.0
    start = label.clone()
    start[..., 2, 2, 2] = 0.0  # one organ voxel missed
    toward = start.clone()
    toward[..., 2, 2, 2] = 1.0  # set foreground where the label says organ
    away = start.clone()
    away[..., 7, 7, 7] = 1.0  # set foreground in the background
    r_toward = trainer.episode_rewards([start, toward], label)  # total (K=1, B=1, 1, 8, 8, 8)
    r_away = trainer.episode_rewards([start, away], label)
    expected_toward, expected_away = torch.zeros(1, 1, 1, 8, 8, 8), torch.zeros(1, 1, 1, 8, 8, 8)
    expected_toward[..., 2, 2, 2], expected_away[..., 7, 7, 7] = 1.0, -1.0  # only the edited voxel is paid
    torch.testing.assert_close(r_toward.total, expected_toward)
    torch.testing.assert_close(r_away.total, expected_away)
    # the mask's soft Dice is reported beside it: 2 * 63 / (63 + 64) before, 1 after the good edit
    assert r_toward.dice_gain.item() == pytest.approx(1.0 - 126 / 127, abs=1e-5)
    assert r_away.dice_gain.item() < 0 and r_away.penalty_change.item() == 0.0


def test_the_reward_is_a_mean_over_foreground_channels():
    prev = torch.tensor([[0.0, 1.0], [1.0, 1.0]])[None]  # (B=1, F=2, 2 voxels)
    new = torch.tensor([[1.0, 0.0], [0.0, 1.0]])[None]
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])[None]
    # voxel 0: channel 1 gained 1, channel 2 gained 1 -> 1; voxel 1: +1 and 0 -> 0.5
    assert mask_agreement_reward(prev, new, target)[0, 0].tolist() == [1.0, 0.5]


def test_mask_state_net_segments_on_the_blank_mask(tmp_path: Path):
    torch.manual_seed(0)
    cfg = merge(CPU, {"model": {"channels": [4, 8]}})
    net = MaskStateNet(build_network(cfg.model, 2, 2), image_channels=1, mask_channels=1, mode="classes")
    x = torch.rand(1, 1, 16, 16, 16)
    blank = torch.cat([x, torch.zeros_like(x)], dim=1)
    torch.testing.assert_close(net.segment(x), net.net.segment(blank))
    torch.testing.assert_close(net(x, heads=("seg",)).seg, net.net(blank, heads=("seg",)).seg)
    with pytest.raises(ValueError, match="edits masks, not intensities"):
        net(x, heads=("policy",))
    net.refine_steps = 2
    logits = net.net.segment(blank)
    expected = mask_logits(net.refine_mask(x, logits, 2), "classes")
    torch.testing.assert_close(net.segment(x), expected)


def test_rollout_edits_the_mask_with_the_sampled_actions(tmp_path: Path):
    trainer = tiny_trainer(tmp_path)
    image = torch.rand(1, 1, 16, 16, 16)
    plan = gradient_plan(trainer.cfg.rl.episode_length, "full", "all", trainer.generator)
    rollout = trainer.rollout(image, plan, train_policy=True)
    with torch.no_grad():
        seg = trainer.net(image, heads=("seg",)).seg
    torch.testing.assert_close(rollout.probs[0], initial_mask(seg, "classes"))
    proposal = foreground_proposal(seg, "classes")
    k = trainer.cfg.rl.episode_length
    assert len(rollout.probs) == len(rollout.states) == k + 1 and len(rollout.actions) == k
    for t in range(k):
        edited = apply_mask_actions(rollout.probs[t], rollout.actions[t], proposal)
        torch.testing.assert_close(rollout.probs[t + 1], edited)
        torch.testing.assert_close(rollout.states[t][:, 1:], rollout.probs[t])  # the state carries the mask
    assert set(rollout.values) == set(range(k)) and rollout.bootstrap.shape == (1, 1, 16, 16, 16)


def test_registry_and_table_label():
    assert METHODS.get("pixeldrl") is PixelDRLTrainer and METHODS.get("pixeldrl-mg") is PixelDRLTrainer
    assert PixelDRLTrainer.table_label() == "PixelDRL-MG" and not PixelDRLTrainer.ORACLE
    assert "reconstruction" in PixelDRLTrainer.DESCRIPTION


def test_rollout_with_overlapping_regions(tmp_path: Path):
    cases, labels = region_cases()
    cfg = merge(CPU, {"method": "pixeldrl-mg", "data": {"patch_size": [16, 16, 16]}, "model": {"channels": [4, 8]},
                      "optim": {"epochs": 2, "iters_per_epoch": 1}, "num_threads": 1})
    trainer = PixelDRLTrainer(cfg, cases, [], labels, tmp_path, progress=False)
    batch = first_batch(trainer, 1)
    assert trainer.net.net.encoder(torch.zeros(1, 5, 16, 16, 16))[0].shape[1] == 4  # image 2 + mask 3 channels
    scalars = trainer.train_step(batch, epoch=1)
    assert all(math.isfinite(v) for v in scalars.values()) and "loss_policy" in scalars


@pytest.mark.slow
def test_two_epochs_on_phantoms(tmp_path: Path):
    cases = make_phantoms(3, 32, seed=0)
    cfg = merge(CPU, {"method": "pixeldrl-mg", "optim": {"epochs": 2, "iters_per_epoch": 2},
                      "data": {"patch_size": [32, 32, 32]}, "val_every": 2, "num_threads": 1})
    trainer = PixelDRLTrainer(cfg, cases[:2], cases[2:], PHANTOM_LABELS, tmp_path, progress=False)
    result = trainer.fit()
    rows = read_log(tmp_path)
    assert [r["stage"] for r in rows] == ["warmup", "full_rl"]
    keys = ("loss", "loss_dice", "loss_value", "loss_policy", "reward")
    assert all(math.isfinite(float(rows[1][k])) for k in keys)
    assert 0.0 <= result["val_dice"] <= 1.0
    payload = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)
    net = PixelDRLTrainer.inference_network(trainer.cfg, 1, PHANTOM_LABELS)
    net.load_state_dict(payload["model"])  # what inference rebuilds
    plain = predict_probabilities(net, cases[2].image, (32, 32, 32))
    net.refine_steps = 2  # greedy mask edits at inference: probabilities become (almost) a mask
    refined = predict_probabilities(net, cases[2].image, (32, 32, 32))
    assert plain.shape == refined.shape == (2, 32, 32, 32) and np.isfinite(refined).all()
    assert ((refined > 0.99) | (refined < 0.01)).mean() > 0.99
