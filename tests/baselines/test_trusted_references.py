"""The two reference rows of issue 15: per-voxel meta-reweighting and the case-level filter."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.losses import DiceLoss

from svldrl.baselines import CaseFilterTrainer, MetaReweightTrainer
from svldrl.baselines.case_filter import FILTER_FILE
from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.training import read_log
from svldrl.training.case_scores import cases_to_drop, otsu_threshold
from svldrl.training.losses import weighted_dice_loss

SMALL = {"data": {"patch_size": [32, 32, 32], "samples_per_volume": 1, "trusted_count": 2},
         "model": {"channels": [4, 8]}, "num_threads": 1, "val_every": 0,
         "optim": {"epochs": 4, "iters_per_epoch": 2, "batch_size": 2}}  # fmt: skip


def test_weighted_dice_with_unit_weights_is_monais_dice_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 8, 8, 8)
    target = torch.nn.functional.one_hot((torch.rand(2, 8, 8, 8) > 0.7).long(), 2).movedim(-1, 1).float()
    ours = weighted_dice_loss(torch.softmax(logits, 1), target, torch.ones(2, 1, 8, 8, 8))
    torch.testing.assert_close(ours, DiceLoss(softmax=True)(logits, target))
    # a zero weight removes a voxel: a wrong label there costs nothing
    wrong = target.clone()
    wrong[0, :, 0, 0, 0] = 1.0 - wrong[0, :, 0, 0, 0]
    weights = torch.ones(2, 1, 8, 8, 8)
    weights[0, 0, 0, 0, 0] = 0.0
    probs = torch.softmax(logits, 1)
    torch.testing.assert_close(weighted_dice_loss(probs, wrong, weights), weighted_dice_loss(probs, target, weights))


@pytest.mark.parametrize("mode", ["classes", "regions"])
def test_reweighted_dice_ce_with_unit_weights_is_the_baselines_dice_ce(mode: str):
    from svldrl.baselines.meta_reweight import reweighted_loss
    from svldrl.data import LabelSpec
    from svldrl.training import build_seg_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 2, 6, 6, 6)
    if mode == "classes":
        target = torch.nn.functional.one_hot((torch.rand(2, 6, 6, 6) > 0.7).long(), 2).movedim(-1, 1).float()
        labels = PHANTOM_LABELS
    else:
        target = (torch.rand(2, 2, 6, 6, 6) > 0.6).float()
        labels = LabelSpec(mode="regions", names=("a", "b"))
    expected = build_seg_loss(labels, "dice_ce")(logits, target)
    ones = torch.ones(2, 1, 6, 6, 6)
    torch.testing.assert_close(reweighted_loss(logits, target, ones, mode, "dice_ce"), expected)
    dice = build_seg_loss(labels, "dice")(logits, target)
    torch.testing.assert_close(reweighted_loss(logits, target, ones, mode, "dice"), dice)


def weight_meta_gradient(net, image, target, g_t, loss_kind: str) -> torch.Tensor:
    """d (g_T . grad_theta L_train(w)) / d w at w = 1, by double backward: what L2RW's weights are made of."""
    from svldrl.baselines.meta_reweight import reweighted_loss

    weights = torch.ones(image.shape[0], 1, *image.shape[2:], requires_grad=True)
    named = [(name, p) for name, p in net.named_parameters() if name in g_t]
    loss = reweighted_loss(net(image), target, weights, "classes", loss_kind)
    grads = torch.autograd.grad(loss, [p for _, p in named], create_graph=True)
    alignment = sum((g * g_t[name]).sum() for g, (name, _) in zip(grads, named, strict=True))
    return torch.autograd.grad(alignment, weights)[0]


def test_meta_reweight_credit_is_the_exact_weight_meta_gradient_of_dice_ce_only():
    """C1 credit / N = d(g_T . grad L_train)/dw_i for Dice + weighted CE (L2RW's form); not for weighted Dice."""
    from svldrl.baselines.common import group_log_probs, group_targets
    from svldrl.rl.credit import descent_logit_change, group_delta, label_credit, trusted_gradient
    from svldrl.training import build_seg_loss

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv3d(4, 2, 1))
    forward = lambda n, x: n(x)  # noqa: E731
    image, t_image = torch.randn(2, 1, 6, 6, 6), torch.randn(1, 1, 6, 6, 6)
    onehot = lambda m: torch.nn.functional.one_hot(m.long(), 2).movedim(-1, 1).float()  # noqa: E731
    target, t_target = onehot(torch.rand(2, 6, 6, 6) > 0.6), onehot(torch.rand(1, 6, 6, 6) > 0.6)
    credits = {}
    for kind in ("dice_ce", "dice"):
        g_t = trusted_gradient(net, forward, t_image, t_target, build_seg_loss(PHANTOM_LABELS, kind))
        logits, delta = descent_logit_change(net, forward, image, g_t)
        probs = group_log_probs(logits, "classes").exp()
        credit = label_credit(group_delta(delta, "classes"), probs, group_targets(target, "classes"))
        credits[kind] = (credit.flatten(), weight_meta_gradient(net, image, target, g_t, kind).flatten())
    credit, exact = credits["dice_ce"]
    torch.testing.assert_close(credit / credit.numel(), exact, rtol=1e-4, atol=1e-9)
    # weighted Dice: no constant makes the credit its meta-gradient (the best scale leaves a residual
    # far above the float error of the Dice + CE case just checked)
    credit, exact = credits["dice"]
    scale = (credit @ exact) / (credit @ credit)
    assert (exact - scale * credit).norm() / exact.norm() > 0.01


def test_otsu_splits_two_groups_and_drop_shares_rank():
    scores = [0.91, 0.88, 0.9, 0.52, 0.47, 0.93, 0.55]
    threshold = otsu_threshold(scores)
    assert 0.55 < threshold < 0.88
    dropped, _ = cases_to_drop({f"c{i}": s for i, s in enumerate(scores)}, "otsu")
    assert dropped == ["c3", "c4", "c6"]
    dropped, _ = cases_to_drop({f"c{i}": s for i, s in enumerate(scores)}, "0.25")
    assert dropped == ["c3", "c4"]  # round(0.25 * 7) = 2 lowest
    assert otsu_threshold([0.8, 0.8]) == -math.inf


def shifted(case, by: int):
    """The case with its label moved ``by`` voxels along the first axis: a label of another anatomy."""
    return case.with_label(np.roll(case.label, by, axis=0))


@pytest.mark.slow
def test_case_filter_drops_the_planted_bad_cases_and_resumes(tmp_path: Path):
    cases = make_phantoms(6, 32, seed=1)
    train = [*cases[:4], shifted(cases[4], 12), shifted(cases[5], 12)]
    cfg = merge(CPU, {**SMALL, "method": "case-filter", "method_options": {"filter_at": 0.5},
                      "optim": {**SMALL["optim"], "epochs": 6, "iters_per_epoch": 10}})  # fmt: skip
    trusted = [c.case_id for c in cases[:2]]

    def make() -> CaseFilterTrainer:
        return CaseFilterTrainer(cfg, train, [], PHANTOM_LABELS, tmp_path, progress=False, trusted_ids=trusted)

    first = make()
    assert set(first.sampler.case_ids) == set(trusted)  # phase 1: the trusted cases alone
    first.fit(stop_after=4)
    report = json.loads((tmp_path / FILTER_FILE).read_text())
    assert report["filter_epoch"] == 3 and set(report["scores"]) == {c.case_id for c in cases[2:]}
    assert report["dropped"] == sorted([cases[4].case_id, cases[5].case_id])
    second = make()
    second.fit(resume=True)
    assert second.dropped == report["dropped"]
    assert set(second.sampler.case_ids) == {c.case_id for c in cases[:4]}


@pytest.mark.slow
def test_meta_reweight_weights_noisy_rows_only_and_logs_them(tmp_path: Path):
    cases = make_phantoms(4, 32, seed=2)
    cfg = merge(CPU, {**SMALL, "method": "meta-reweight",
                      "data": {**SMALL["data"], "trusted_per_batch": 1}})  # fmt: skip
    trainer = MetaReweightTrainer(cfg, cases, [], PHANTOM_LABELS, tmp_path, progress=False,
                                  trusted_ids=[c.case_id for c in cases[:2]])  # fmt: skip
    batch = trainer.batch_to_device(next(iter(trainer.sampler.epoch(0, 1, 2))))
    weights = trainer.voxel_weights(batch["image"][1:], batch["label"][1:], 0)
    assert (weights >= 0).all() and weights.mean().item() == pytest.approx(1.0, abs=1e-4)
    # the diagnostic: foreground weight of corrupted vs untouched noisy rows (trusted row and background ignored)
    trainer.corrupted_ids = frozenset({"bad"})
    label = torch.zeros(3, 2, 2, 2, 2)
    label[:, 1, 0], label[:, 0, 1] = 1.0, 1.0  # first half foreground, second half background
    w = torch.tensor([2.0, 0.5, 9.0]).view(3, 1, 1, 1, 1).expand(3, 1, 2, 2, 2).clone()
    w[:, :, 1] = 7.0  # background weights must not count
    noisy = torch.tensor([True, True, False])
    logged = trainer.foreground_weight_by_corruption(w, trainer.foreground_of(label), ["bad", "good", "trusted"], noisy)
    assert logged == {"weight_foreground_corrupted": 2.0, "weight_foreground_untouched": 0.5}
    trainer.fit()
    rows = read_log(tmp_path)
    assert len(rows) == 4 and all(math.isfinite(float(r["weight_max"])) for r in rows)
    with pytest.raises(ValueError, match="needs trusted cases"):
        MetaReweightTrainer.check_config(merge(CPU, {"method": "meta-reweight"}))
    # Learning to Reweight's form: the weights on the CE of Dice + CE, end to end
    ce_cfg = merge(cfg, {"optim": {"loss": "dice_ce", "epochs": 1}})
    MetaReweightTrainer.check_config(ce_cfg)
    ce_trainer = MetaReweightTrainer(ce_cfg, cases, [], PHANTOM_LABELS, tmp_path / "ce", progress=False,
                                     trusted_ids=[c.case_id for c in cases[:2]])  # fmt: skip
    ce_trainer.fit()
    assert math.isfinite(float(read_log(tmp_path / "ce")[0]["loss"]))
    with pytest.raises(ValueError, match="leave optim.loss at 'dice'"):
        CaseFilterTrainer.check_config(merge(CPU, {"method": "case-filter", "optim": {"loss": "dice_ce"},
                                                   "data": {"trusted_count": 2}}))  # fmt: skip


# ----------------------------------------------------------------------------- teacher correction


def test_confident_correction_by_hand():
    from svldrl.baselines.teacher_correction import confident_correction

    label = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])[None, :, :, None, None]  # bg bg fg fg
    p_fg = torch.tensor([0.9, 0.6, 0.1, 0.7])  # the teacher's foreground probability per voxel
    logits = torch.stack([torch.zeros(4), torch.log(p_fg / (1 - p_fg))])[None, :, :, None, None]
    fixed = confident_correction(label, logits, "classes", 0.8)
    assert fixed[0, 1, :, 0, 0].tolist() == [1.0, 0.0, 0.0, 1.0]  # voxel 0 -> fg, voxel 2 -> bg; 1 and 3 kept
    regions = torch.tensor([[0.0, 0.0, 1.0, 1.0]])[None, :, :, None, None]
    fixed = confident_correction(regions, torch.log(p_fg / (1 - p_fg)).view(1, 1, 4, 1, 1), "regions", 0.8)
    assert fixed[0, 0, :, 0, 0].tolist() == [1.0, 0.0, 0.0, 1.0]


@pytest.mark.slow
def test_teacher_correction_freezes_the_trusted_model_and_replaces_what_it_contradicts(tmp_path: Path):
    from svldrl.baselines import TeacherCorrectionTrainer

    cases = make_phantoms(6, 32, seed=1)
    train = [*cases[:4], shifted(cases[4], 12), shifted(cases[5], 12)]
    cfg = merge(CPU, {**SMALL, "method": "teacher-correction", "method_options": {"filter_at": 0.5},
                      "optim": {**SMALL["optim"], "epochs": 6, "iters_per_epoch": 10}})  # fmt: skip
    trusted = [c.case_id for c in cases[:2]]

    def make() -> TeacherCorrectionTrainer:
        return TeacherCorrectionTrainer(cfg, train, [], PHANTOM_LABELS, tmp_path, progress=False, trusted_ids=trusted)

    first = make()
    assert set(first.sampler.case_ids) == set(trusted)  # phase 1: the trusted cases alone
    first.fit(stop_after=4)
    assert first.teacher is not None and not any(p.requires_grad for p in first.teacher.parameters())
    assert set(first.sampler.case_ids) == {c.case_id for c in train}  # every case comes in, none dropped
    frozen = [p.clone() for p in first.teacher.parameters()]
    second = make()
    second.fit(resume=True)
    assert all(torch.equal(a, b) for a, b in zip(frozen, second.teacher.parameters(), strict=True))
    rows = read_log(tmp_path)
    assert [float(r["corrected"]) for r in rows[:3]] == [0.0, 0.0, 0.0]
    assert all(float(r["corrected"]) > 0.01 for r in rows[3:])  # the shifted labels are contradicted


@pytest.mark.slow
def test_gated_teacher_correction_corrects_only_the_cases_its_teacher_flags(tmp_path: Path):
    """gate=case: the teacher's case scores (Otsu split) pick the cases to correct; the others keep their labels."""
    from svldrl.baselines import TeacherCorrectionTrainer
    from svldrl.baselines.teacher_correction import GATE_FILE

    cases = make_phantoms(6, 32, seed=1)
    train = [*cases[:4], shifted(cases[4], 12), shifted(cases[5], 12)]
    cfg = merge(CPU, {**SMALL, "method": "teacher-correction", "method_options": {"filter_at": 0.5, "gate": "case"},
                      "optim": {**SMALL["optim"], "epochs": 6, "iters_per_epoch": 10}})  # fmt: skip
    trusted = [c.case_id for c in cases[:2]]

    def make() -> TeacherCorrectionTrainer:
        return TeacherCorrectionTrainer(cfg, train, [], PHANTOM_LABELS, tmp_path, progress=False, trusted_ids=trusted)

    first = make()
    first.fit(stop_after=4)
    report = json.loads((tmp_path / GATE_FILE).read_text())
    assert report["flagged"] == sorted([cases[4].case_id, cases[5].case_id])
    assert first.flagged == frozenset(report["flagged"])
    assert not first.corrects(cases[2].case_id) and first.corrects(cases[4].case_id)
    assert not first.corrects(cases[0].case_id)  # trusted: never
    batch = first.batch_to_device(next(iter(first.sampler.epoch(5, 1, 2))))
    unflagged = first.train_step({**batch, "case_id": [cases[2].case_id, cases[3].case_id]}, epoch=5)
    flagged = first.train_step({**batch, "case_id": [cases[4].case_id, cases[5].case_id]}, epoch=5)
    assert math.isnan(unflagged["corrected"]) and not math.isnan(flagged["corrected"])  # no row of theirs corrected
    second = make()
    second.fit(resume=True)
    assert second.flagged == first.flagged
