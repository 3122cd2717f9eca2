"""MTCL: the flips are exactly cleanlab's label issues, the EMA teacher update, the sigmoid ramp of lambda,
clean cases from the manifest, and two epochs on phantoms."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cleanlab.filter import find_label_issues
from torch import nn

from svldrl.baselines.common import ema_update
from svldrl.baselines.mtcl import (
    MTCLTrainer,
    budget_decay,
    corrected_targets,
    flip_flagged,
    flips_of,
    sigmoid_rampup,
    teacher_decay,
)
from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.noise import mt_noise
from svldrl.training import read_log


def noisy_binary_batch(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(2, 2, 10, 10, 10) one-hot labels with 10 % flipped, and teacher probabilities that know the clean class."""
    clean = (rng.random((2, 10, 10, 10)) < 0.3).astype(np.int64)
    noisy = np.where(rng.random(clean.shape) < 0.1, 1 - clean, clean)
    p_organ = np.clip(0.8 * clean + 0.1 + rng.normal(0.0, 0.1, clean.shape), 0.01, 0.99)
    probs = torch.from_numpy(np.stack([1 - p_organ, p_organ], axis=1))[:, None]  # (B, G=1, 2, 10, 10, 10)
    target = nn.functional.one_hot(torch.from_numpy(noisy), 2).movedim(-1, 1).float()  # (B, 2, 10, 10, 10)
    return target, probs


def test_flipped_voxels_are_exactly_those_cleanlab_flags():
    target, probs = noisy_binary_batch(np.random.default_rng(0))
    corrected = corrected_targets(target, probs, "classes", "both")
    # independent route: cleanlab called directly on the same voxels, flattened in (B, h, w, d) order
    labels = target.argmax(dim=1).reshape(-1).numpy()
    flat_probs = probs[:, 0].movedim(1, -1).reshape(-1, 2).numpy()
    flagged = find_label_issues(labels, flat_probs, filter_by="both", n_jobs=1)
    assert 50 < flagged.sum() < labels.size // 2
    changed = (corrected.argmax(dim=1).reshape(-1).numpy() != labels)
    np.testing.assert_array_equal(changed, flagged)
    np.testing.assert_array_equal(corrected.argmax(dim=1).reshape(-1).numpy()[flagged], 1 - labels[flagged])
    torch.testing.assert_close(corrected.sum(dim=1), torch.ones_like(corrected[:, 0]))  # still one-hot


def test_the_logged_flip_shares_count_the_changed_voxels_and_their_direction():
    target, probs = noisy_binary_batch(np.random.default_rng(0))
    corrected = corrected_targets(target, probs, "classes", "both")
    old, new = target.argmax(dim=1), corrected.argmax(dim=1)
    flips = flips_of(target, corrected, "classes")
    assert flips["flipped_fraction"] == pytest.approx((old != new).float().mean().item())
    by_hand = ((old == 1) & (new == 0)).sum().item() / (old != new).sum().item()
    assert flips["flipped_to_background"] == pytest.approx(by_hand) and 0.0 < by_hand < 1.0
    shrink = target.clone()
    shrink[:, 0], shrink[:, 1] = 1.0, 0.0  # every voxel set to background
    assert flips_of(target, shrink, "classes")["flipped_to_background"] == 1.0
    assert math.isnan(flips_of(target, target, "classes")["flipped_to_background"])  # nothing flipped: no direction


def test_regions_are_corrected_channel_by_channel():
    target, probs = noisy_binary_batch(np.random.default_rng(1))
    region = target[:, 1:]  # (B, K=1, ...) binary region channel
    corrected = corrected_targets(region, probs, "regions", "both")
    flagged = find_label_issues(region.reshape(-1).long().numpy(), probs[:, 0].movedim(1, -1).reshape(-1, 2).numpy(),
                                filter_by="both", n_jobs=1)
    np.testing.assert_array_equal((corrected != region).reshape(-1).numpy(), flagged)


def test_with_more_classes_a_flagged_voxel_takes_the_most_likely_other_class():
    labels = np.array([0, 1, 2, 2])
    probs = np.array([[0.6, 0.1, 0.3], [0.2, 0.5, 0.3], [0.5, 0.1, 0.4], [0.1, 0.1, 0.8]])
    flagged = np.array([True, False, True, True])
    assert flip_flagged(labels, probs, flagged).tolist() == [2, 1, 0, 0]  # the last: a tie, the first other


def test_teacher_is_the_exponential_moving_average_of_the_student():
    teacher, student = nn.Linear(3, 2), nn.Linear(3, 2)
    with torch.no_grad():
        teacher.weight.fill_(1.0)
        teacher.bias.fill_(-2.0)
        student.weight.copy_(torch.arange(6.0).view(2, 3))
        student.bias.fill_(4.0)
    ema_update(teacher, student, 0.99)
    torch.testing.assert_close(teacher.weight, 0.99 * 1.0 + 0.01 * torch.arange(6.0).view(2, 3))
    torch.testing.assert_close(teacher.bias, torch.full((2,), 0.99 * -2.0 + 0.01 * 4.0))
    torch.testing.assert_close(student.bias, torch.full((2,), 4.0))  # the student is untouched


def test_teacher_decay_warms_up_as_the_reference():
    assert teacher_decay(0, 0.99) == 0.0  # the first update copies the student
    assert teacher_decay(1, 0.99) == 0.5
    assert teacher_decay(9, 0.99) == pytest.approx(0.9)
    assert teacher_decay(1000, 0.99) == 0.99


def test_the_teacher_horizon_is_the_references_share_of_the_run(tmp_path: Path):
    """Issue 16: 0.99 is 100 of the reference's 8000 steps; 'auto' keeps 1.25 % of any run."""
    assert budget_decay(8000) == pytest.approx(0.99)
    assert budget_decay(320) == pytest.approx(0.75)  # horizon 4 steps
    assert budget_decay(1280) == pytest.approx(0.9375)  # horizon 16 steps
    assert budget_decay(10) == 0.0  # under one step: the teacher is the student
    assert tiny_trainer(tmp_path / "a", {}).ema_decay == budget_decay(40)  # 10 epochs x 4 iterations
    assert tiny_trainer(tmp_path / "b", {"ema_decay": 0.99}).ema_decay == 0.99
    with pytest.raises(ValueError, match="ema_decay must be 'auto' or in"):
        tiny_trainer(tmp_path / "c", {"ema_decay": "slow"})


def test_sigmoid_rampup_by_hand():
    assert sigmoid_rampup(0, 40) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(20, 40) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(30, 40) == pytest.approx(math.exp(-5 * 0.25**2))
    assert sigmoid_rampup(40, 40) == 1.0 and sigmoid_rampup(90, 40) == 1.0
    assert sigmoid_rampup(5, 0) == 1.0


def tiny_trainer(tmp_path: Path, options: dict, manifest=True) -> MTCLTrainer:
    cases = make_phantoms(2, 16, seed=3)
    noisy, noise_manifest = mt_noise(cases, 0.5, seed=1)
    train = [c.with_label(noisy[c.case_id]) for c in cases]
    cfg = merge(CPU, {"method": "mtcl", "data": {"patch_size": [16, 16, 16]}, "model": {"channels": [4, 8]},
                      "optim": {"epochs": 10, "iters_per_epoch": 4}, "num_threads": 1, "method_options": options})
    return MTCLTrainer(cfg, train, [], PHANTOM_LABELS, tmp_path, progress=False,
                       noise_manifest=noise_manifest if manifest else None)


def test_trainer_reads_clean_cases_from_the_manifest_and_ramps_lambda(tmp_path: Path):
    trainer = tiny_trainer(tmp_path, {})
    manifest = trainer.noise_manifest
    assert manifest is not None and manifest.n_corrupted == 1
    assert trainer.clean_ids == {c.case_id for c in manifest.cases if not c.corrupted}
    # 10 epochs x 4 steps, ramp over 75 %: lambda(t) = 0.1 exp(-5 (1 - t / 30)^2)
    assert trainer.consistency_weight(0) == pytest.approx(0.1 * math.exp(-5))
    assert trainer.consistency_weight(15) == pytest.approx(0.1 * math.exp(-1.25))
    assert trainer.consistency_weight(35) == pytest.approx(0.1)
    assert MTCLTrainer.table_label() == "MTCL (oracle)"
    assert MTCLTrainer.table_label({"clean_cases": "none"}) == "MTCL"
    torch.testing.assert_close(list(trainer.teacher.parameters()), list(trainer.net.parameters()))
    assert not any(p.requires_grad for p in trainer.teacher.parameters())


def test_oracle_needs_the_manifest_and_none_does_not(tmp_path: Path):
    with pytest.raises(ValueError, match="noise manifest.*clean_cases='none'"):
        tiny_trainer(tmp_path, {}, manifest=False)
    assert tiny_trainer(tmp_path, {"clean_cases": "none"}, manifest=False).clean_ids == frozenset()


def test_bad_option_value_is_rejected(tmp_path: Path):
    with pytest.raises(ValueError, match="method_options.filter_by must be one of"):
        tiny_trainer(tmp_path, {"filter_by": "confident"})


@pytest.mark.slow
def test_two_epochs_on_phantoms_with_resume(tmp_path: Path):
    cases = make_phantoms(3, 32, seed=0)
    noisy, manifest = mt_noise(cases[:2], 0.5, seed=0)
    train = [c.with_label(noisy[c.case_id]) for c in cases[:2]]
    cfg = merge(CPU, {"method": "mtcl", "optim": {"epochs": 2, "iters_per_epoch": 2},
                      "data": {"patch_size": [32, 32, 32]}, "val_every": 2, "num_threads": 1})

    def make() -> MTCLTrainer:
        return MTCLTrainer(cfg, train, cases[2:], PHANTOM_LABELS, tmp_path, progress=False, noise_manifest=manifest)

    first = make()
    first.fit(stop_after=1)
    assert first.global_step == 2
    second = make()
    second.fit(resume=True)
    assert second.global_step == 4
    reloaded = make()
    reloaded.load_checkpoint_state(torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True))
    torch.testing.assert_close(list(reloaded.teacher.parameters()), list(second.teacher.parameters()))
    rows = read_log(tmp_path)
    assert len(rows) == 2
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("loss", "loss_cons", "loss_weak", "loss_sup"))
