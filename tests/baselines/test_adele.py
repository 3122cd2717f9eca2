"""ADELE: the IoU curve fit, the start epoch by hand, the label correction rule, the multi-scale consistency,
and two epochs on phantoms (plus one correction of the training labels through the trainer)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from svldrl.baselines.adele import (
    ADELETrainer,
    correct_labels,
    correction_start_epoch,
    fit_iou_curve,
    iou_counts,
    iou_curve,
    leading_flat_points,
    multiscale_consistency,
    scaled_size,
    should_start_correction,
)
from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.inference import predict_probabilities
from svldrl.training import read_log


@pytest.mark.parametrize(("a", "b", "c"), [(0.85, 0.6, 2.0), (0.7, 0.35, 0.8), (0.9, 0.9, 5.0)])
def test_curve_fit_recovers_known_parameters(a, b, c):
    x = np.arange(1, 31, dtype=float)
    np.testing.assert_allclose(fit_iou_curve(x, iou_curve(x, a, b, c)), (a, b, c), rtol=1e-3)


def test_start_epoch_by_hand_with_b_equal_one():
    # b = 1: f'(x) = a / c exp(-x / c), so the relative change is 1 - exp(-(e - 1) / c). With c = 2.5 it
    # exceeds 0.9 once e - 1 > 2.5 ln 10 = 5.76: epochs 1..6 stay at or below (e = 6: 0.865, e = 7: 0.909),
    # so correction starts at epoch 6 + 1 = 7.
    assert correction_start_epoch(0.8, 1.0, 2.5, n_epochs=20, r=0.9) == 7
    assert correction_start_epoch(0.8, 1.0, 2.5, n_epochs=5, r=0.9) == 6  # the horizon caps the count


def test_start_epoch_by_hand_with_b_one_half():
    # b = 0.5, c = 1: f'(e) / f'(1) = e^-0.5 exp(-(sqrt(e) - 1)); relative changes 0, 0.533, 0.722, 0.816,
    # 0.870 for e = 1..5 and 0.904 for e = 6, so correction starts at epoch 6.
    assert correction_start_epoch(0.9, 0.5, 1.0, n_epochs=20, r=0.9) == 6


def test_synthetic_iou_curve_starts_correction_at_the_hand_computed_epoch():
    """The rule before defaults version 3 (point k at x = k + 1): the start epoch computed by hand above."""
    history = iou_curve(np.arange(1, 21, dtype=float), 0.8, 1.0, 2.5).tolist()
    start = {"n_epochs": 20, "r": 0.9, "rule": "shifted"}
    assert not should_start_correction(history[:6], **start)  # 6 epochs done, start is epoch 7
    assert should_start_correction(history[:7], **start)
    assert not should_start_correction(history[:2], **start)  # too few points to fit
    with_gap = [*history[:3], math.nan, *history[4:7]]  # an epoch without the class is left out
    assert should_start_correction(with_gap, **start)


def first_start(history: np.ndarray, rule: str) -> int | None:
    """The first number of points at which the class would start correcting (None: never in the run)."""
    n = len(history)
    return next((k for k in range(1, n + 1) if should_start_correction(history[:k].tolist(), n, 0.9, 3, rule)), None)


def test_the_reference_rule_waits_out_a_fast_first_rise():
    """Issue 16: ADELE must not correct before its curve saturates. A fast rise to 0.5 then a slow one to 0.93:
    the rule before v3 fired at the knee (point 3), the reference's (linspace x axis, 0-based index against
    the count over epochs 1..N-1) at point 13, IoU 0.85. On a plain saturating curve both start at point 11."""
    x = np.arange(1, 41, dtype=float)
    knee = 0.5 * (1 - np.exp(-x / 0.7)) + 0.43 * (1 - np.exp(-np.maximum(x - 3, 0) / 6))
    assert first_start(knee, "shifted") == 3
    assert first_start(knee, "reference") == 13 and knee[12] > 0.84
    saturating = 0.93 * (1 - np.exp(-x / 4))
    assert first_start(saturating, "reference") == first_start(saturating, "shifted") == 11


LA_SEED0_CURVE = [0.402, 0.439, 0.499, 0.485, 0.689, 0.69, 0.709, 0.724, 0.729, 0.73, 0.782, 0.801, 0.79, 0.824]
"""Training IoU points (patches) of the LA ADELE run of table1_long.yaml, MT 50 %, seed 0 (adele.json)."""


def test_the_reference_drops_a_flat_start_before_it_fits():
    """Defaults v5: the reference's if_update drops the leading points that rise by less than 0.1 (three here)
    and shifts the start by their count. On this LA curve the reference's own if_update (Kangningthu/ADELE
    @ 7195bd0, SegThor/brat/label_correction.py, run on these numbers with n_epoch 20) first fires at
    0-based point 5; without the drop the rule fired at point 3, the run's first correction (epoch 31)."""
    history = np.array(LA_SEED0_CURVE)
    first = {skip: next(k for k in range(3, 15) if should_start_correction(history[: k + 1], 20, 0.9, 3, "reference",
                                                                           skip_flat_start=skip))
             for skip in (False, True)}  # fmt: skip
    assert first == {False: 3, True: 5}
    # the drop shifts the start by the dropped count: three slow steps before a curve whose first step is
    # fast start it three points later than that curve alone (which is not cut) starts
    kept = 0.19 + 0.7 * iou_curve(np.arange(0, 27, dtype=float), 1.0, 1.0, 3.0)  # 0.19, then +0.20, ...
    curve = np.concatenate([[0.10, 0.13, 0.16], kept])
    alone = next(k for k in range(27) if should_start_correction(kept[: k + 1], 30, 0.9, 3, "reference",
                                                                   skip_flat_start=True))
    shifted = next(k for k in range(30) if should_start_correction(curve[: k + 1], 30, 0.9, 3, "reference",
                                                                      skip_flat_start=True))
    assert leading_flat_points(curve[:8]) == 3 and leading_flat_points(kept) == 0
    assert alone > 3 and shifted == alone + 3
    assert leading_flat_points(history[:6]) == 3 and leading_flat_points(np.array([0.1, 0.5, 0.55])) == 0
    assert leading_flat_points(np.array([0.1, np.nan, 0.5])) == 0  # a NaN stops the count


def test_correction_replaces_only_confident_voxels_of_classes_being_corrected():
    # one group, classes background / A (being corrected) / B (not); six voxels
    labels = np.array([[0, 0, 2, 1, 1, 0]])
    probs = np.array([[
        [0.05, 0.40, 0.05, 0.05, 0.80, 0.05],  # background
        [0.90, 0.60, 0.90, 0.05, 0.15, 0.00],  # A
        [0.05, 0.00, 0.05, 0.90, 0.05, 0.95],  # B
    ]])
    correcting = np.array([[False, True, False]])
    new = correct_labels(labels, probs, correcting, tau_fg=0.7, tau_bg=0.7)
    # 0: bg -> A, confident: replaced. 1: A at 0.6, not confident. 2: labelled B, not corrected.
    # 3: prediction B, not corrected. 4: A -> bg at 0.8: replaced. 5: prediction B: kept.
    assert new.tolist() == [[1, 0, 2, 1, 0, 0]]
    assert correct_labels(labels, probs, np.zeros((1, 3), bool)).tolist() == labels.tolist()


def test_class_constraint_keeps_classes_absent_from_the_case():
    labels = np.array([[0, 0, 0]])
    probs = np.array([[[0.1, 0.9, 0.1], [0.9, 0.1, 0.9]]])  # confident organ on voxels 0 and 2
    assert correct_labels(labels, probs, np.array([[False, True]])).tolist() == [[0, 0, 0]]
    assert correct_labels(labels, probs, np.array([[False, True]]), class_constraint=False).tolist() == [[1, 0, 1]]


def test_multiscale_consistency_by_hand():
    p1 = torch.tensor([0.8, 0.2]).view(1, 1, 2, 1)
    p2 = torch.tensor([0.4, 0.6]).view(1, 1, 2, 1)
    kl1 = 0.8 * math.log(0.8 / 0.6) + 0.2 * math.log(0.2 / 0.4)  # mixture (0.6, 0.4)
    kl2 = 0.4 * math.log(0.4 / 0.6) + 0.6 * math.log(0.6 / 0.4)
    assert multiscale_consistency([p1, p2]).item() == pytest.approx((kl1 + kl2) / 2, rel=1e-6)
    assert multiscale_consistency([p1, p1, p1]).item() == pytest.approx(0.0, abs=1e-7)


def test_scaled_sizes_stay_valid_for_the_backbone():
    assert scaled_size((32, 32, 32), 0.7, 8, 16) == (24, 24, 24)
    assert scaled_size((32, 40, 32), 1.5, 8, 16) == (48, 64, 48)  # 60 rounds to 64 (nearest multiple of 8)
    assert scaled_size((16, 16, 16), 0.7, 8, 16) == (16, 16, 16)  # never below the minimum


def test_iou_counts_by_hand():
    pred = torch.tensor([0, 1, 1, 0, 1]).view(1, 1, 5)
    target = torch.tensor([0, 1, 0, 1, 1]).view(1, 1, 5)
    inter, union = iou_counts(pred, target, 2)
    np.testing.assert_array_equal(inter, [[1, 2]])
    np.testing.assert_array_equal(union, [[3, 4]])


def tiny_trainer(tmp_path: Path, options: dict) -> ADELETrainer:
    cfg = merge(CPU, {"method": "adele", "data": {"patch_size": [16, 16, 16]}, "model": {"channels": [4, 8]},
                      "optim": {"epochs": 10}, "num_threads": 1, "method_options": options})
    return ADELETrainer(cfg, make_phantoms(1, 16, seed=3), [], PHANTOM_LABELS, tmp_path, progress=False)


def test_trainer_correction_writes_the_rule_into_the_training_labels(tmp_path: Path):
    trainer = tiny_trainer(tmp_path, {"scales": [1.0], "flips": False, "tau_fg": 0.0, "tau_bg": 0.0})
    case = trainer.train_cases[0]
    prob = predict_probabilities(trainer.net, case.image, (16, 16, 16), overlap=trainer.cfg.sw_overlap)
    expected = correct_labels(case.label[None], prob[None], np.array([[False, True]]), 0.0, 0.0)[0]
    sampler = trainer.sampler
    trainer.start_epoch[0, 1] = 0
    trainer.correct_training_labels()
    np.testing.assert_array_equal(trainer.train_cases[0].label, expected)
    assert trainer.sampler is not sampler
    assert not np.array_equal(expected, case.label)  # an untrained network disagrees somewhere


def test_epoch_end_starts_a_class_when_its_curve_flattens_and_corrects_on_schedule(tmp_path: Path):
    options = {"scales": [1.0], "flips": False, "correct_every": 5, "start_rule": "shifted",  # the by-hand rule
               "curve_source": "patches"}
    trainer = tiny_trainer(tmp_path, options)
    curve = iou_curve(np.arange(1, 11, dtype=float), 0.8, 1.0, 2.5)  # 10 epochs: start epoch 7 (see above)
    for epoch in range(10):
        trainer.add_iou_counts(np.array([[900.0, 1e4 * curve[epoch]]]), np.array([[1000.0, 1e4]]))
        trainer.on_epoch_end(epoch)
    assert trainer.start_epoch.tolist() == [[-1, 6]]  # the 7th epoch (index 6) is the first with correction
    assert trainer.corrections == [6, 9]  # when the class started, then at the 10th epoch (every 5)
    np.testing.assert_allclose(np.stack(trainer.iou_history)[:, 0, 1], curve[:10])
    path = tmp_path / "state.pt"
    torch.save(trainer.checkpoint_state(), path)
    fresh = tiny_trainer(tmp_path, options)
    fresh.load_checkpoint_state(torch.load(path, weights_only=True))
    np.testing.assert_array_equal(fresh.train_cases[0].label, trainer.train_cases[0].label)
    assert fresh.corrections == [6, 9] and fresh.start_epoch.tolist() == [[-1, 6]]


def test_one_iou_point_per_pass_over_the_training_cases(tmp_path: Path):
    """Issue 16: 16 cases, 1 patch each, batches of 2 = 8 steps a pass = 4 epochs of 2 steps; a point's
    counts span its epochs and survive a checkpoint taken between them."""
    cfg = merge(CPU, {"method": "adele", "data": {"patch_size": [16, 16, 16], "samples_per_volume": 1},
                      "model": {"channels": [4, 8]}, "optim": {"epochs": 40, "iters_per_epoch": 2},
                      "num_threads": 1, "method_options": {"scales": [1.0], "flips": False,
                                                           "curve_source": "patches"}})  # fmt: skip
    cases = make_phantoms(16, 16, seed=3)
    trainer = ADELETrainer(cfg, cases, [], PHANTOM_LABELS, tmp_path, progress=False)
    assert trainer.epochs_per_point == 4 and trainer.points_in_run == 10
    for epoch in range(6):
        trainer.add_iou_counts(np.array([[1.0, float(epoch)]]), np.array([[2.0, 10.0]]))
        trainer.on_epoch_end(epoch)
    assert len(trainer.iou_history) == 1  # closed after epoch 4 (index 3): IoU (0+1+2+3) / 40
    assert trainer.iou_history[0][0, 1] == pytest.approx(6 / 40)
    fresh = ADELETrainer(cfg, cases, [], PHANTOM_LABELS, tmp_path, progress=False)
    fresh.load_checkpoint_state(trainer.checkpoint_state())
    for epoch in (6, 7):
        fresh.add_iou_counts(np.array([[1.0, float(epoch)]]), np.array([[2.0, 10.0]]))
        fresh.on_epoch_end(epoch)
    assert fresh.iou_history[1][0, 1] == pytest.approx((4 + 5 + 6 + 7) / 40)
    legacy = merge(cfg, {"method_options": {"curve_unit": "epoch"}})
    assert ADELETrainer(legacy, cases, [], PHANTOM_LABELS, tmp_path, progress=False).epochs_per_point == 1


def test_the_correction_predicts_at_one_scale_by_default_as_the_3d_reference(tmp_path: Path):
    """Defaults v4: one whole-volume prediction per case (9.4x less work than the VOC script's three scales
    and flips); correction_scales=null brings back the consistency's scales, and flips double them."""
    trainer = tiny_trainer(tmp_path, {})
    case = trainer.train_cases[0]
    prob = predict_probabilities(trainer.net, case.image, (16, 16, 16), overlap=trainer.cfg.sw_overlap)
    np.testing.assert_allclose(trainer.multiscale_probs(case.image), prob[None], atol=1e-6)
    for options, views in (({}, 1), ({"correction_scales": None}, 3), ({"correction_scales": None, "flips": True}, 6)):
        counting = tiny_trainer(tmp_path, options)
        calls: list[tuple[int, ...]] = []

        def counted(net, image, predict=counting.volume_probs, calls=calls):  # noqa: ANN001, ANN202
            calls.append(tuple(image.shape))
            return predict(net, image)

        counting.volume_probs = counted
        counting.multiscale_probs(case.image)
        assert len(calls) == views, options


def test_curve_points_come_from_whole_volume_predictions_by_default(tmp_path: Path):
    """Defaults v5: a point is the IoU of the correction's whole-volume prediction of every training case
    against its current label (the patch counts are dropped); curve_source=patches keeps the old form."""
    trainer = tiny_trainer(tmp_path, {})
    trainer.add_iou_counts(np.array([[1.0, 1.0]]), np.array([[4.0, 4.0]]))  # patch counts: IoU 0.25
    case = trainer.train_cases[0]
    pred = predict_probabilities(trainer.net, case.image, (16, 16, 16), overlap=trainer.cfg.sw_overlap).argmax(0)
    expected = [((pred == c) & (case.label == c)).sum() / ((pred == c) | (case.label == c)).sum() for c in (0, 1)]
    np.testing.assert_allclose(trainer.close_iou_point()[0], expected)
    assert trainer._inter.sum() == 0 and not np.isclose(expected[1], 0.25)
    patches = tiny_trainer(tmp_path, {"curve_source": "patches"})
    patches.add_iou_counts(np.array([[1.0, 1.0]]), np.array([[4.0, 4.0]]))
    np.testing.assert_allclose(patches.close_iou_point(), [[0.25, 0.25]])


def test_epoch_end_with_todays_defaults_drops_the_flat_start(tmp_path: Path):
    """Defaults v5 through the trainer: fed seed 0's LA curve one point an epoch (20-point run), the class
    starts at point 5, as the reference's if_update, not at point 3 (v4)."""
    cfg = merge(CPU, {"method": "adele", "data": {"patch_size": [16, 16, 16]}, "model": {"channels": [4, 8]},
                      "optim": {"epochs": 20}, "num_threads": 1, "method_options": {"curve_unit": "epoch"}})
    trainer = ADELETrainer(cfg, make_phantoms(1, 16, seed=3), [], PHANTOM_LABELS, tmp_path, progress=False)
    points = iter(LA_SEED0_CURVE)
    trainer.close_iou_point = lambda: np.array([[1.0, next(points)]])
    for epoch in range(6):
        trainer.on_epoch_end(epoch)
    assert trainer.points_in_run == 20 and trainer.start_epoch.tolist() == [[-1, 5]] and trainer.corrections == [5]


def test_the_volume_curve_pools_the_counts_of_all_training_cases(tmp_path: Path):
    cfg = merge(CPU, {"method": "adele", "data": {"patch_size": [16, 16, 16]}, "model": {"channels": [4, 8]},
                      "num_threads": 1})
    trainer = ADELETrainer(cfg, make_phantoms(3, 16, seed=5), [], PHANTOM_LABELS, tmp_path, progress=False)
    inter, union = np.zeros(2), np.zeros(2)
    for case in trainer.train_cases:
        pred = predict_probabilities(trainer.net, case.image, (16, 16, 16), overlap=trainer.cfg.sw_overlap).argmax(0)
        for c in (0, 1):
            inter[c] += ((pred == c) & (case.label == c)).sum()
            union[c] += ((pred == c) | (case.label == c)).sum()
    np.testing.assert_allclose(trainer.close_iou_point()[0], inter / union)


def test_scales_must_include_one(tmp_path: Path):
    with pytest.raises(ValueError, match="scales must be positive and include 1.0"):
        tiny_trainer(tmp_path, {"scales": [0.5, 2.0]})


@pytest.mark.slow
def test_two_epochs_on_phantoms_with_resume(tmp_path: Path):
    cases = make_phantoms(3, 32, seed=0)
    cfg = merge(CPU, {"method": "adele", "optim": {"epochs": 2, "iters_per_epoch": 2},
                      "data": {"patch_size": [32, 32, 32]}, "val_every": 2, "num_threads": 1})

    def make() -> ADELETrainer:
        return ADELETrainer(cfg, cases[:2], cases[2:], PHANTOM_LABELS, tmp_path, progress=False)

    make().fit(stop_after=1)
    second = make()
    second.fit(resume=True)
    assert len(second.iou_history) == 2 and (second.start_epoch == -1).all()  # too few epochs to fit a curve
    rows = read_log(tmp_path)
    assert len(rows) == 2
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("loss", "loss_ce", "loss_consistency"))
    assert (tmp_path / "adele.json").is_file()
