"""RSF-assisted: the level set's parts against scipy and closed forms, the RSF evolution separating a
two-region volume, the acceptance rule by hand, the trainer's choice of base, the vetted ADELE
correction, and two epochs on phantoms for both bases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from svldrl.baselines.adele import correct_labels
from svldrl.baselines.common import label_groups
from svldrl.baselines.mtcl import corrected_targets
from svldrl.baselines.rsf import (
    RSFAssistedADELE,
    RSFAssistedMTCL,
    RSFAssistedTrainer,
    RSFParameters,
    accept_changes,
    curvature,
    gaussian_blur,
    gaussian_kernel,
    initial_level_set,
    laplacian,
    rsf_evolve,
    rsf_regions,
)
from svldrl.config import CPU, TrainConfig, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.metrics import dice
from svldrl.noise import mt_noise
from svldrl.training import METHODS, read_log


def grid(n: int) -> torch.Tensor:
    return torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float32)] * 3, indexing="ij"))  # (3, n, n, n)


def test_gaussian_blur_matches_scipy_with_zero_padding():
    volume = torch.rand(1, 2, 12, 10, 14, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = gaussian_blur(volume, gaussian_kernel(1.5, dtype=torch.float64))
    for c in range(2):  # radius round(2 sigma) = 3 = int(2.0 * 1.5 + 0.5): scipy's truncate=2
        expected = ndimage.gaussian_filter(volume[0, c].numpy(), 1.5, mode="constant", truncate=2.0)
        np.testing.assert_allclose(ours[0, c].numpy(), expected, atol=1e-12)


def test_curvature_of_a_sphere_and_laplacian_of_a_quadratic():
    g = grid(33)
    distance = ((g - 16.0) ** 2).sum(dim=0).sqrt()
    phi = (10.0 - distance)[None, None]  # inside positive: div(grad phi / |grad phi|) = -2 / r
    kappa = curvature(phi)[0, 0]
    for point in [(24, 16, 16), (16, 22, 16), (20, 20, 16)]:
        r = distance[point].item()
        assert kappa[point].item() == pytest.approx(-2.0 / r, rel=0.05)
    quadratic = (g[0] ** 2 + 2 * g[1] ** 2 + 3 * g[2] ** 2)[None, None]
    torch.testing.assert_close(laplacian(quadratic)[0, 0, 1:-1, 1:-1, 1:-1], torch.full((31, 31, 31), 12.0))


def two_region_volume() -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 1, 24^3) noisy image of a bright ball (radius 7) on a darker background, and the ball."""
    g = grid(24)
    ball = ((g - 12.0) ** 2).sum(dim=0) <= 49.0
    noise = 0.05 * torch.randn(ball.shape, generator=torch.Generator().manual_seed(0))
    image = (torch.where(ball, 0.6, 0.25) + noise).clamp(0, 1)
    return image[None, None], ball


def test_rsf_separates_two_regions_from_a_shifted_smaller_start():
    image, ball = two_region_volume()
    g = grid(24)
    start = ((g - torch.tensor([15.0, 14.0, 12.0]).view(3, 1, 1, 1)) ** 2).sum(dim=0) <= 16.0  # radius 4, off centre
    before = dice(start.numpy(), ball.numpy())
    assert before < 0.35
    phi = rsf_evolve(image, initial_level_set(start[None, None]), RSFParameters(iterations=50))
    after = dice((phi[0, 0] > 0).numpy(), ball.numpy())
    assert after > 0.95


def test_rsf_errors_name_the_problem():
    with pytest.raises(ValueError, match="phi"):
        rsf_evolve(torch.rand(1, 1, 8, 8, 8), torch.rand(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel(0.0)


def test_a_change_is_accepted_only_where_rsf_agrees():
    # five voxels of one binary group; RSF's organ region covers voxels 0, 1, 4
    old = torch.tensor([0, 0, 1, 1, 1])
    proposed = torch.tensor([1, 1, 0, 0, 1])
    organ = torch.tensor([True, False, False, True, True])
    regions = torch.stack([torch.zeros(5, dtype=torch.bool), organ])  # (n=2, voxels)
    vetted = accept_changes(old[None, None], proposed[None, None], regions[None, None])[0, 0]
    # 0: bg -> organ inside RSF: yes; 1: bg -> organ outside: no; 2: organ -> bg outside: yes;
    # 3: organ -> bg but RSF says organ: no; 4: unchanged
    assert vetted.tolist() == [1, 0, 0, 1, 1]


def test_with_three_classes_both_the_old_and_the_new_class_must_agree():
    old = torch.tensor([1, 1, 2, 0])
    proposed = torch.tensor([2, 2, 1, 2])
    regions = torch.zeros(3, 4, dtype=torch.bool)  # (n, voxels)
    regions[2] = torch.tensor([True, True, False, True])  # RSF's class-2 region
    regions[1] = torch.tensor([False, True, True, False])  # RSF's class-1 region
    vetted = accept_changes(old[None, None], proposed[None, None], regions[None, None])[0, 0]
    # 0: 1 -> 2, in region 2, out of region 1: yes; 1: still in region 1: no; 2: 2 -> 1 in region 1: yes
    # 3: 0 -> 2 in region 2: yes
    assert vetted.tolist() == [2, 1, 1, 2]


def test_rsf_regions_stay_empty_for_classes_not_predicted():
    image, ball = two_region_volume()
    pred = torch.stack([ball.long(), torch.zeros_like(ball, dtype=torch.long)])[:, None]  # (B=2, G=1, ...)
    regions = rsf_regions(image.expand(2, -1, -1, -1, -1), pred, 2, RSFParameters(iterations=5))
    assert regions[0, 0, 1].any() and not regions[1, 0, 1].any()


def tiny_cfg(options: dict, epochs: int = 4) -> TrainConfig:
    return merge(CPU, {"method": "rsf-assisted", "data": {"patch_size": [16, 16, 16]}, "model": {"channels": [4, 8]},
                       "optim": {"epochs": epochs, "iters_per_epoch": 1}, "num_threads": 1,
                       "method_options": options})


def test_one_method_name_builds_the_configured_base(tmp_path: Path):
    cases = make_phantoms(2, 16, seed=3)
    noisy, manifest = mt_noise(cases, 0.5, seed=1)
    adele = RSFAssistedTrainer(tiny_cfg({}), cases, [], PHANTOM_LABELS, tmp_path, progress=False)
    mtcl = RSFAssistedTrainer(tiny_cfg({"base": "mtcl"}), cases, [], PHANTOM_LABELS, tmp_path, progress=False,
                              noise_manifest=manifest)
    assert type(adele) is RSFAssistedADELE and type(mtcl) is RSFAssistedMTCL
    assert METHODS.get("rsf-assisted") is RSFAssistedTrainer
    assert adele.options.rsf_parameters() == RSFParameters()
    assert RSFAssistedTrainer.table_label() == "RSF-assisted ADELE"
    assert RSFAssistedTrainer.table_label({"base": "mtcl"}) == "RSF-assisted MTCL (oracle)"
    assert RSFAssistedTrainer.table_label({"base": "mtcl", "clean_cases": "none"}) == "RSF-assisted MTCL"
    with pytest.raises(ValueError, match="unknown option 'rsf_sigmaa'"):
        RSFAssistedTrainer(tiny_cfg({"rsf_sigmaa": 2}), cases, [], PHANTOM_LABELS, tmp_path, progress=False)
    with pytest.raises(ValueError, match="method_options.base must be one of"):
        RSFAssistedTrainer(tiny_cfg({"base": "co-teaching"}), cases, [], PHANTOM_LABELS, tmp_path, progress=False)


def test_adele_corrections_are_vetted_by_rsf(tmp_path: Path):
    cases = make_phantoms(2, 16, seed=3)
    noisy, _ = mt_noise(cases, 1.0, seed=1)
    train = [c.with_label(noisy[c.case_id]) for c in cases]
    options = {"rsf_iterations": 20, "tau_fg": 0.0, "tau_bg": 0.0, "scales": [1.0], "flips": False}
    trainer = RSFAssistedTrainer(tiny_cfg(options), train, [], PHANTOM_LABELS, tmp_path, progress=False)
    trainer.fit(stop_after=1)
    trainer.start_epoch[0, 1] = 0  # the organ is under correction
    before = list(trainer.train_cases)
    expected = []
    for case in before:  # ADELE's proposal, then RSF from the prediction, computed here step by step
        probs = trainer.multiscale_probs(case.image)
        old = label_groups(case.label, "classes")
        proposed = correct_labels(old, probs, trainer.start_epoch >= 0, 0.0, 0.0)
        regions = rsf_regions(torch.as_tensor(case.image)[None], torch.as_tensor(probs.argmax(axis=1))[None], 2,
                              trainer.options.rsf_parameters())[0]
        inside = regions[0, 1].numpy()
        agree = np.where(proposed[0] == 1, inside, ~inside)
        expected.append(np.where(agree, proposed[0], old[0]))
        assert (proposed != old).any()
    trainer.correct_training_labels()
    for case, want in zip(trainer.train_cases, expected, strict=True):
        np.testing.assert_array_equal(case.label, want)


def test_mtcl_flips_are_vetted_by_rsf_from_the_teachers_prediction(tmp_path: Path):
    cases = make_phantoms(2, 16, seed=3)
    options = {"base": "mtcl", "clean_cases": "none", "rsf_iterations": 20}
    trainer = RSFAssistedTrainer(tiny_cfg(options), cases, [], PHANTOM_LABELS, tmp_path, progress=False)
    image = torch.as_tensor(cases[0].image)[None]  # (1, 1, 16, 16, 16)
    organ = torch.as_tensor(cases[0].label).bool()
    label = torch.stack([~organ, organ]).float()[None]  # (1, 2, 16, 16, 16)
    wrong = organ.clone()
    wrong[4:12, 4:12, 8] = ~wrong[4:12, 4:12, 8]  # the teacher disagrees with the label on one slab
    p_organ = torch.where(wrong, 0.95, 0.05)
    teacher = torch.stack([1 - p_organ, p_organ])[None, None]  # (1, G=1, 2, 16, 16, 16)
    proposed = corrected_targets(label, teacher, "classes", "both").argmax(dim=1)  # (1, 16, 16, 16)
    old = organ.long()[None]
    assert (proposed != old).any()
    regions = rsf_regions(image, teacher.argmax(dim=2), 2, trainer.options.rsf_parameters())[0, 0, 1]
    agree = torch.where(proposed[0] == 1, regions, ~regions)
    expected = torch.where(agree, proposed[0], old[0])
    vetted, scalars = trainer.correct_noisy_labels(image, label, teacher)  # (1, 2, 16, 16, 16)
    torch.testing.assert_close(vetted.argmax(dim=1)[0], expected)
    kept = int((expected != old[0]).sum()) / int((proposed[0] != old[0]).sum())
    assert 0.0 < kept < 1.0 and scalars["rsf_accepted"] == pytest.approx(kept)


@pytest.mark.slow
@pytest.mark.parametrize("base", ["adele", "mtcl"])
def test_two_epochs_on_phantoms(tmp_path: Path, base: str):
    cases = make_phantoms(3, 32, seed=0)
    noisy, manifest = mt_noise(cases[:2], 0.5, seed=0)
    train = [c.with_label(noisy[c.case_id]) for c in cases[:2]]
    options = {"base": base, "rsf_iterations": 50} if base == "mtcl" else {}
    cfg = merge(CPU, {"method": "rsf-assisted", "optim": {"epochs": 2, "iters_per_epoch": 2},
                      "data": {"patch_size": [32, 32, 32]}, "val_every": 2, "num_threads": 1,
                      "method_options": options})
    trainer = RSFAssistedTrainer(cfg, train, cases[2:], PHANTOM_LABELS, tmp_path, progress=False,
                                 noise_manifest=manifest)
    result = trainer.fit()
    rows = read_log(tmp_path)
    assert len(rows) == 2 and all(math.isfinite(float(r["loss"])) for r in rows)
    assert ("rsf_accepted" in rows[0]) == (base == "mtcl")
    assert 0.0 <= result["val_dice"] <= 1.0


def test_check_config_takes_the_options_of_the_configured_base():
    """check_config runs before any data is read: MTCL options are valid for base mtcl, not for adele."""
    rsf = METHODS.get("rsf-assisted")
    mtcl_options = {"base": "mtcl", "clean_cases": "none"}
    rsf.check_config(merge(CPU, {"method": "rsf-assisted", "method_options": mtcl_options}))
    with pytest.raises(ValueError, match="unknown option 'clean_cases'"):
        rsf.check_config(merge(CPU, {"method": "rsf-assisted", "method_options": {"clean_cases": "none"}}))
    with pytest.raises(ValueError, match="optim.loss=dice_ce is for the baseline"):
        rsf.check_config(merge(CPU, {"method": "rsf-assisted", "optim": {"loss": "dice_ce"}}))


def test_rsf_assisted_adele_trains_exactly_as_adele_until_adele_first_corrects(tmp_path: Path):
    """Why: RSF only vets ADELE's corrections, so where ADELE's start rule never fires (LA, defaults v5,
    docs/results.md "Session 15") an RSF-assisted ADELE run repeats the ADELE run of its seed, weight
    for weight; its table row then measures nothing of RSF, and the runs wait for an ADELE run that
    corrects (RSF is measured on MTCL's corrections instead, experiments/la/rsf_mtcl.yaml)."""
    cases = make_phantoms(2, 16, seed=3)
    noisy, _ = mt_noise(cases, 0.5, seed=1)
    train = [c.with_label(noisy[c.case_id]) for c in cases]
    options = {"curve_unit": "epoch", "min_points": 100}  # a point per epoch, never enough points to start
    adele_cfg = merge(tiny_cfg(options), {"method": "adele"})
    adele = METHODS.get("adele")(adele_cfg, train, [], PHANTOM_LABELS, tmp_path / "adele", progress=False)
    rsf = RSFAssistedTrainer(tiny_cfg(options), train, [], PHANTOM_LABELS, tmp_path / "rsf", progress=False)
    adele.fit()
    rsf.fit()
    assert len(rsf.iou_history) == 4 and not rsf.corrections and (rsf.start_epoch < 0).all()
    for (name, a), (_, b) in zip(adele.module.state_dict().items(), rsf.module.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
