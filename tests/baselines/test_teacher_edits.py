"""direction=case of teacher-correction (teacher_edits.py): one-sided edits on systematically wrong cases only."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from scipy import ndimage

from svldrl.baselines.teacher_edits import (
    BACKGROUND,
    FOREGROUND,
    NONE,
    case_directions,
    edit_counts,
    imbalance,
    imbalance_threshold,
    one_direction,
)
from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms

SMALL = {"data": {"patch_size": [32, 32, 32], "samples_per_volume": 1, "trusted_count": 3},
         "model": {"channels": [8, 16]}, "num_threads": 1, "val_every": 0,
         "optim": {"epochs": 60, "iters_per_epoch": 10, "batch_size": 2}}  # fmt: skip


def classes(foreground: list[int]) -> torch.Tensor:
    """(1, 2, 4, 1, 1) one-hot labels of four voxels."""
    fg = torch.tensor(foreground, dtype=torch.float32)
    return torch.stack([1 - fg, fg])[None, :, :, None, None]


def test_one_direction_keeps_the_edits_of_that_direction_only():
    label, fixed = classes([1, 1, 0, 0]), classes([0, 1, 1, 0])  # voxel 0 -> background, voxel 2 -> foreground
    assert one_direction(label, fixed, "classes", BACKGROUND)[0, 1, :, 0, 0].tolist() == [0, 1, 0, 0]
    assert one_direction(label, fixed, "classes", FOREGROUND)[0, 1, :, 0, 0].tolist() == [1, 1, 1, 0]
    assert torch.equal(one_direction(label, fixed, "classes", NONE), label)
    assert edit_counts(label, fixed, "classes") == (1, 1)
    regions, fixed_regions = label[:, 1:], fixed[:, 1:]  # one region channel, same voxels
    assert one_direction(regions, fixed_regions, "regions", BACKGROUND)[0, 0, :, 0, 0].tolist() == [0, 1, 0, 0]
    assert one_direction(regions, fixed_regions, "regions", FOREGROUND)[0, 0, :, 0, 0].tolist() == [1, 1, 1, 0]
    assert edit_counts(regions, fixed_regions, "regions") == (1, 1)


def test_cases_more_one_sided_than_every_trusted_case_get_a_direction():
    counts = {"t1": (30, 10), "t2": (10, 20),  # trusted: imbalance log10(31/11) = 0.45 and -0.29
              "wide": (900, 5), "tight": (4, 700), "mild": (40, 20), "clean": (12, 14)}
    threshold = imbalance_threshold(counts, {"t1", "t2"}, "auto")
    assert threshold == pytest.approx(imbalance(30, 10)) == pytest.approx(math.log10(31 / 11))
    directions = case_directions(counts, {"t1", "t2"}, threshold)
    assert directions == {"wide": BACKGROUND, "tight": FOREGROUND, "mild": NONE, "clean": NONE}  # no trusted key
    assert case_directions(counts, {"t1", "t2"}, 0.2)["mild"] == BACKGROUND  # log10(41/21) = 0.29
    assert imbalance_threshold(counts, set(), "0.2") == 0.2
    with pytest.raises(ValueError, match="trusted"):
        imbalance_threshold(counts, set(), "auto")


def dilated(case, voxels: int):
    """The case with its label grown by ``voxels`` (systematic over-segmentation, as SFDA's)."""
    return case.with_label(ndimage.binary_dilation(case.label > 0, iterations=voxels).astype(case.label.dtype))


def clean_label_teacher(cases, labels):
    """A stand-in for the teacher's whole-volume prediction: 0.9 on each case's clean class, soft elsewhere.

    Why not a trained teacher: which planted case a 30-epoch phantom network flags changed with the
    CPU's floating-point kernels (AVX-512 against AVX2), so the test measured the machine. The
    direction rule is what is under test; the LA runs measure real teachers.
    """
    clean = {case.image.tobytes(): case.label for case in cases}

    def predict(net, image, patch_size, **kwargs):
        onehot = labels.target_channels(clean[np.asarray(image).tobytes()]).astype(np.float32)
        return 0.9 * onehot + 0.1 * (1.0 - onehot) / max(1, onehot.shape[0] - 1)

    return predict


def test_direction_case_removes_planted_over_segmentation_and_leaves_clean_labels(tmp_path: Path, monkeypatch):
    from svldrl.baselines import TeacherCorrectionTrainer, teacher_edits
    from svldrl.baselines.teacher_correction import DIRECTION_FILE

    cases = make_phantoms(7, 32, seed=1)
    train = [cases[6], *cases[:4], dilated(cases[4], 3), dilated(cases[5], 3)]
    cfg = merge(CPU, {**SMALL, "method": "teacher-correction", "optim": {"epochs": 4, "iters_per_epoch": 1},
                      "method_options": {"filter_at": 0.5, "direction": "case"}})  # fmt: skip
    trusted = [c.case_id for c in (cases[6], *cases[:2])]
    monkeypatch.setattr(teacher_edits, "predict_probabilities", clean_label_teacher(cases, PHANTOM_LABELS))

    def make() -> TeacherCorrectionTrainer:
        return TeacherCorrectionTrainer(cfg, train, [], PHANTOM_LABELS, tmp_path, progress=False, trusted_ids=trusted)

    first = make()
    first.fit(stop_after=3)  # the teacher is frozen and the directions chosen at the end of epoch 2 of 4
    report = json.loads((tmp_path / DIRECTION_FILE).read_text())
    assert first.directions == {c: r["direction"] for c, r in report["cases"].items() if c not in trusted}
    assert first.directions == {cases[2].case_id: NONE, cases[3].case_id: NONE,
                                cases[4].case_id: BACKGROUND, cases[5].case_id: BACKGROUND}  # fmt: skip
    assert report["cases"][cases[4].case_id]["to_foreground"] == 0 < report["cases"][cases[4].case_id]["to_background"]
    assert not first.corrects(cases[0].case_id)  # trusted: never
    assert [first.corrects(c.case_id) for c in cases[2:6]] == [False, False, True, True]

    def no_teacher_pass(*args, **kwargs):
        raise AssertionError("a resumed run reads its directions from the checkpoint")

    monkeypatch.setattr(teacher_edits, "predict_probabilities", no_teacher_pass)
    second = make()
    second.fit(resume=True)
    assert second.directions == first.directions


@pytest.mark.parametrize("value", ["nan", "inf", "-0.1", "wide"])
def test_an_imbalance_that_is_not_a_finite_number_is_refused(value):
    from svldrl.baselines import TeacherCorrectionTrainer

    cfg = merge(CPU, {**SMALL, "method": "teacher-correction",
                      "method_options": {"direction": "case", "imbalance": value}})  # fmt: skip
    with pytest.raises(ValueError, match="imbalance"):
        TeacherCorrectionTrainer.check_config(cfg)


def test_edit_counts_are_to_background_then_to_foreground():
    label, fixed = classes([1, 1, 1, 0]), classes([0, 0, 1, 1])  # two voxels -> background, one -> foreground
    assert edit_counts(label, fixed, "classes") == (2, 1)
    assert edit_counts(label[:, 1:], fixed[:, 1:], "regions") == (2, 1)


class PlantedFilter(NamedTuple):
    """A case-filter set-up on 7 phantoms: 3 trusted, 2 untouched, 2 over-segmented by 3 voxels (planted)."""

    make: Callable[[], Any]
    cases: list
    train: list
    planted: list[str]


def planted_filter(tmp_path: Path, monkeypatch, options: dict, epochs: int, iters: int) -> PlantedFilter:
    """``PlantedFilter`` whose teacher knows the clean labels (``clean_label_teacher``); ``make()`` builds the
    trainer (again, to resume)."""
    from svldrl.baselines import CaseFilterTrainer, teacher_edits

    cases = make_phantoms(7, 32, seed=1)
    train = [cases[6], *cases[:4], dilated(cases[4], 3), dilated(cases[5], 3)]
    cfg = merge(CPU, {**SMALL, "method": "case-filter", "optim": {"epochs": epochs, "iters_per_epoch": iters},
                      "method_options": {"filter_at": 0.5, "drop": "direction", **options}})  # fmt: skip
    CaseFilterTrainer.check_config(cfg)
    trusted = [c.case_id for c in (cases[6], *cases[:2])]
    monkeypatch.setattr(teacher_edits, "predict_probabilities", clean_label_teacher(cases, PHANTOM_LABELS))

    def make() -> CaseFilterTrainer:
        return CaseFilterTrainer(cfg, train, [], PHANTOM_LABELS, tmp_path, progress=False, trusted_ids=trusted)

    return PlantedFilter(make, cases, train, sorted([cases[4].case_id, cases[5].case_id]))


def test_drop_direction_filters_out_the_planted_over_segmented_cases_only(tmp_path: Path, monkeypatch):
    """case-filter with drop=direction drops exactly the cases the direction rule would correct, and
    trains on the trusted and the other cases from then on (the report says which, and why)."""
    from svldrl.baselines.case_filter import FILTER_FILE

    make, cases, _, planted = planted_filter(tmp_path, monkeypatch, {}, epochs=4, iters=1)
    trainer = make()
    trainer.fit()
    assert trainer.dropped == planted
    report = json.loads((tmp_path / FILTER_FILE).read_text())
    assert report["drop"] == "direction" and report["dropped"] == planted and "imbalance" in report["score"]
    assert all(abs(report["scores"][c]) > report["threshold"] for c in planted)
    assert sorted(report["scores"]) == sorted(c.case_id for c in cases[2:6])  # trusted cases are never scored
    assert sorted(trainer.sampler.case_ids) == sorted(c.case_id for c in (cases[6], *cases[:4]))


@pytest.mark.parametrize("options", [{"drop": "direction", "confidence": 0.3},
                                     {"drop": "direction", "imbalance": "-1"}, {"drop": "sideways"}])
def test_case_filter_refuses_bad_direction_settings(options):
    from svldrl.baselines import CaseFilterTrainer

    cfg = merge(CPU, {**SMALL, "method": "case-filter", "method_options": options})
    with pytest.raises(ValueError, match="confidence|imbalance|drop"):
        CaseFilterTrainer.check_config(cfg)



def test_reliable_side_is_the_label_side_one_sided_noise_leaves_right():
    from svldrl.baselines.teacher_edits import reliable_side

    label = classes([1, 1, 0, 0])
    label[0, :, 3] = 0.0  # a voxel of zero padding: no class, on neither side
    assert reliable_side(label, "classes", BACKGROUND).flatten().tolist() == [0, 0, 1, 0]
    assert reliable_side(label, "classes", FOREGROUND).flatten().tolist() == [1, 1, 0, 0]
    assert reliable_side(label, "classes", NONE).flatten().tolist() == [1, 1, 1, 1]
    regions = torch.tensor([[1, 0, 0], [1, 1, 0]], dtype=torch.float32)[None, :, :, None, None]  # 2 regions, 3 voxels
    assert reliable_side(regions, "regions", BACKGROUND).flatten().tolist() == [0, 0, 1]
    assert reliable_side(regions, "regions", FOREGROUND).flatten().tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match="direction"):
        reliable_side(label, "classes", "sideways")


def test_leave_out_side_keeps_the_one_sided_cases_without_their_doubtful_side(tmp_path: Path, monkeypatch):
    """case-filter with leave_out=side: the planted over-segmented cases stay in training, their label's
    foreground (where the noise is) weighs nothing in the loss, their background and every other case count."""
    from svldrl.baselines import teacher_edits
    from svldrl.baselines.case_filter import FILTER_FILE
    from svldrl.training import read_log
    from svldrl.training.losses import weighted_dice_loss

    make, cases, train, planted = planted_filter(tmp_path, monkeypatch, {"leave_out": "side"}, epochs=4, iters=2)
    first = make()
    first.fit(stop_after=3)
    assert first.dropped == [] and first.sides == dict.fromkeys(planted, BACKGROUND)
    assert sorted(first.sampler.case_ids) == sorted(c.case_id for c in train)  # nothing dropped
    report = json.loads((tmp_path / FILTER_FILE).read_text())
    assert report["leave_out"] == "side" and report["one_sided"] == planted and report["sides"] == first.sides
    log = read_log(tmp_path)
    left_out = [float(row["left_out_fraction"]) for row in log]
    assert left_out[0] == 0.0 < max(left_out)  # nothing left out before the filter; some after it

    # The step's loss cannot see the planted case's label foreground: the over-segmented label and
    # its clean version give the same loss, while a wrong background voxel changes it.
    noisy = torch.from_numpy(PHANTOM_LABELS.target_channels(train[6].label).astype(np.float32))[None]
    clean = torch.from_numpy(PHANTOM_LABELS.target_channels(cases[5].label).astype(np.float32))[None]
    weights = teacher_edits.reliable_side(noisy, "classes", first.sides[cases[5].case_id])
    probs = torch.softmax(torch.randn_like(noisy), dim=1)
    torch.testing.assert_close(weighted_dice_loss(probs, noisy, weights), weighted_dice_loss(probs, clean, weights))
    wrong_bg = noisy.clone()
    background = torch.nonzero(noisy[0, 0] > 0.5)[0]
    wrong_bg[(0, slice(None), *background.tolist())] = torch.tensor([0.0, 1.0])
    assert weighted_dice_loss(probs, wrong_bg, weights) != weighted_dice_loss(probs, noisy, weights)

    def no_teacher_pass(*args, **kwargs):
        raise AssertionError("a resumed run reads its sides from the checkpoint")

    monkeypatch.setattr(teacher_edits, "predict_probabilities", no_teacher_pass)
    second = make()
    second.fit(resume=True)
    assert second.sides == first.sides and second.dropped == []


@pytest.mark.parametrize("options", [{"drop": "otsu", "leave_out": "side"},
                                     {"drop": "direction", "leave_out": "voxel"}])
def test_case_filter_refuses_a_side_it_cannot_find(options):
    from svldrl.baselines import CaseFilterTrainer

    cfg = merge(CPU, {**SMALL, "method": "case-filter", "method_options": options})
    with pytest.raises(ValueError, match="leave_out"):
        CaseFilterTrainer.check_config(cfg)


def test_band_weights_leave_out_the_doubtful_side_near_the_border_only():
    from svldrl.baselines.teacher_edits import band_weights, edit_band_width

    fg = torch.zeros(1, 1, 9, 1, 1)
    fg[0, 0, 2:7] = 1.0  # foreground voxels 2..6 of a line of 9
    label = torch.cat([1 - fg, fg], dim=1)
    w = band_weights(label, "classes", BACKGROUND, 1.0).flatten().tolist()
    assert w == [1, 1, 0, 1, 1, 1, 0, 1, 1]  # the outermost foreground voxel on each side
    w = band_weights(label, "classes", BACKGROUND, 2.0).flatten().tolist()
    assert w == [1, 1, 0, 0, 1, 0, 0, 1, 1]
    w = band_weights(label, "classes", FOREGROUND, 1.0).flatten().tolist()
    assert w == [1, 0, 1, 1, 1, 1, 1, 0, 1]  # the background voxels next to the foreground
    assert band_weights(label, "classes", NONE, 2.0).flatten().tolist() == [1] * 9
    assert band_weights(label, "classes", BACKGROUND, 0.0).flatten().tolist() == [1] * 9
    # the teacher removes the two outer foreground voxels on the left: distances 1 and 2 from the border
    fixed = label.clone()
    fixed[0, :, 2:4] = torch.tensor([1.0, 0.0])[:, None, None, None]
    assert edit_band_width(label, fixed, "classes", BACKGROUND, 1.0) == 2.0
    assert edit_band_width(label, fixed, "classes", FOREGROUND, 1.0) == 0.0  # no edit that way


def test_leave_out_band_finds_the_planted_margin_and_keeps_both_sides_beyond_it(tmp_path: Path, monkeypatch):
    """leave_out=band: with a teacher that knows the clean labels, the band of a case dilated by 3 voxels is 3
    voxels wide, the loss cannot see the planted margin, and labelled foreground deep inside still counts."""
    from svldrl.baselines import teacher_edits
    from svldrl.baselines.case_filter import FILTER_FILE
    from svldrl.training.losses import weighted_dice_loss

    options = {"leave_out": "band", "band_quantile": 1.0}
    make, cases, train, planted = planted_filter(tmp_path, monkeypatch, options, epochs=2, iters=2)
    trainer = make()
    trainer.fit()
    assert trainer.sides == dict.fromkeys(planted, BACKGROUND)
    # band_quantile 1: as deep as the deepest edit, the planted 3-voxel margin or a gap the dilation closed
    assert all(3.0 <= trainer.band_widths[c] <= 8.0 for c in planted)
    report = json.loads((tmp_path / FILTER_FILE).read_text())
    assert report["leave_out"] == "band" and report["band_widths"] == trainer.band_widths

    for noisy_case, clean_case in ((train[5], cases[4]), (train[6], cases[5])):
        noisy = torch.from_numpy(PHANTOM_LABELS.target_channels(noisy_case.label).astype(np.float32))[None]
        clean = torch.from_numpy(PHANTOM_LABELS.target_channels(clean_case.label).astype(np.float32))[None]
        weights = trainer.voxel_weights(noisy, clean_case.case_id)
        probs = torch.softmax(torch.randn_like(noisy), dim=1)
        # every planted error is inside the band: the noisy and the clean label cost the same
        torch.testing.assert_close(weighted_dice_loss(probs, noisy, weights), weighted_dice_loss(probs, clean, weights))
        true_fg = clean[0, 1:].amax(0) > 0.5
        # true foreground deep inside still counts (leave_out=side keeps none of it)
        assert (true_fg & (weights[0, 0] > 0)).sum() > 0.2 * true_fg.sum()
        assert not (true_fg & (teacher_edits.reliable_side(noisy, "classes", BACKGROUND)[0, 0] > 0)).any()
