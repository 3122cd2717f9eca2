"""SFDA noise plumbing with an injected toy source model (a threshold of the image)."""

import numpy as np
import pytest

from svldrl.data import Case
from svldrl.metrics import dice
from svldrl.noise import DomainShift, corrupt_labels, sfda_noise

THRESHOLD = 0.5


def _cases(n: int = 8) -> list[Case]:
    rng = np.random.default_rng(5)
    cases = []
    for i in range(n):
        label = np.zeros((16, 16, 16), np.uint8)
        label[4:12, 3 + i % 3 : 11, 5:13] = 1
        image = np.clip(0.35 + 0.3 * label + 0.1 * rng.standard_normal(label.shape), 0, 1).astype(np.float32)
        cases.append(Case(image[None], label, (1.0, 1.0, 1.0), f"c{i}"))
    return cases


class ToySource:
    """Records what it is given; its 'model' thresholds the first image channel."""

    def __init__(self) -> None:
        self.trained_on: list[str] = []
        self.predicted: list[str] = []

    def __call__(self, source_cases: list[Case]):
        self.trained_on = [c.case_id for c in source_cases]
        assert all(c.label is not None for c in source_cases)

        def predict(case: Case) -> np.ndarray:
            assert case.label is None  # the source model never sees the target's clean label
            self.predicted.append(case.case_id)
            return case.image[0] > THRESHOLD

        return predict


def test_source_and_target_split_and_target_labels_come_from_the_predictor() -> None:
    cases = {c.case_id: c for c in _cases()}
    toy = ToySource()
    labels, manifest = sfda_noise(list(cases.values()), 0.5, seed=1, train_source=toy)
    target = manifest.corrupted_ids
    assert len(target) == 4 and sorted(toy.predicted) == target
    assert set(toy.trained_on).isdisjoint(target) and set(toy.trained_on) | set(target) == set(cases)
    for case_id, case in cases.items():
        entry = manifest.case(case_id)
        if case_id in target:
            expected = (case.image[0] > THRESHOLD).astype(np.uint8)  # no domain shift: the raw image
            np.testing.assert_array_equal(labels[case_id], expected)
            assert labels[case_id].dtype == np.uint8
            assert (entry.kind, entry.operation, entry.details["role"]) == ("sfda", "source-model", "target")
            assert entry.dice_noisy_vs_clean == pytest.approx(dice(expected, case.label))
        else:
            assert labels[case_id] is case.label
            assert not entry.corrupted and entry.details == {"role": "source"}


def test_target_is_the_share_mt_noise_would_corrupt_with_the_same_seed() -> None:
    cases = _cases()
    _, sfda = sfda_noise(cases, 0.5, seed=4, train_source=ToySource())
    _, mt = corrupt_labels(cases, "mt", 0.5, seed=4)
    assert sfda.corrupted_ids == mt.corrupted_ids


def test_domain_shift_is_applied_to_target_images_and_recorded() -> None:
    cases = {c.case_id: c for c in _cases()}
    shift = DomainShift(gamma=(0.6, 1.6), shift=(-0.1, 0.1))
    labels, manifest = sfda_noise(list(cases.values()), 0.5, seed=2, train_source=ToySource(), domain_shift=shift)
    gammas = []
    for case_id in manifest.corrupted_ids:
        details = manifest.case(case_id).details
        g, s = details["gamma"], details["shift"]
        assert 0.6 <= g <= 1.6 and -0.1 <= s <= 0.1
        gammas.append(g)
        shifted = np.clip(cases[case_id].image[0].astype(np.float64) ** g + s, 0, 1)
        np.testing.assert_array_equal(labels[case_id], (shifted > THRESHOLD).astype(np.uint8))
    assert len(set(gammas)) == len(gammas)  # drawn per case
    assert manifest.options["domain_shift"] == {"gamma": [0.6, 1.6], "shift": [-0.1, 0.1]}
    # the same seed draws the same shifts
    _, again = sfda_noise(list(cases.values()), 0.5, seed=2, train_source=ToySource(), domain_shift=shift)
    assert again.to_dict() == manifest.to_dict()


def test_domain_shift_by_hand() -> None:
    image = np.array([0.0, 0.25, 0.5, 1.0], np.float32)
    np.testing.assert_allclose(DomainShift.apply(image, 2.0, 0.1), [0.1, 0.1625, 0.35, 1.0], rtol=1e-6)
    fixed = DomainShift(gamma=1.5, shift=-0.2)
    assert fixed.sample(np.random.default_rng(0)) == (1.5, -0.2)


def test_errors_name_the_problem() -> None:
    cases = _cases(4)
    with pytest.raises(ValueError, match="no source cases"):
        sfda_noise(cases, 1.0, seed=0, train_source=ToySource())
    with pytest.raises(ValueError, match="gamma"):
        DomainShift(gamma=(1.2, 0.8))
    with pytest.raises(ValueError, match="gamma: must be positive"):
        DomainShift(gamma=0.0)

    def wrong_shape(source_cases):
        return lambda case: np.zeros((3, 3, 3), np.uint8)

    with pytest.raises(ValueError, match=r"case 'c\d': the source model returned \(3, 3, 3\)"):
        sfda_noise(cases, 0.5, seed=0, train_source=wrong_shape)

    def probabilities(source_cases):
        return lambda case: case.image[0]

    with pytest.raises(TypeError, match="prediction: expected integer"):
        sfda_noise(cases, 0.5, seed=0, train_source=probabilities)
