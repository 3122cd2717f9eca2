"""SFDA label noise (after Yi et al., ICLR 2023): the labels a model trained elsewhere predicts.

method.md "SFDA noise": split the training cases with the seed into a source part S (the clean
share, 1 - ratio) and a target part T (the noise ratio; the same cases MT noise would corrupt with
that seed). A model is trained on S with clean labels for a short budget; optionally T's images get
an intensity change (gamma and/or shift) at prediction time to mimic a domain gap; each case of T
is predicted (sliding window, thresholded) and the prediction becomes its label.

Training and prediction belong to ``svldrl.training`` and ``svldrl.inference``, so both come in as
one injected callable: ``train_source(source_cases) -> predictor``, and ``predictor(case)`` returns a
label map on the case's grid. The predictor gets the target case with its label removed, so it
cannot look at the clean label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from svldrl.data import Case
from svldrl.noise.labels import case_generator, check_label, check_ratio_seed, each_case, label_dice
from svldrl.noise.manifest import CaseNoise, NoiseManifest, clean_entry, sorted_entries
from svldrl.noise.selection import select_noisy_cases

Predictor = Callable[[Case], np.ndarray]
"""A trained source model: a case (label removed) -> its predicted label map on the case's grid."""

SourceTrainer = Callable[[list[Case]], Predictor]
"""Trains a source model on the clean source cases and returns its predictor."""


def _as_range(value: float | Sequence[float], name: str) -> tuple[float, float]:
    """A fixed value ``v`` or a range ``(low, high)`` as a ``(low, high)`` pair."""
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2 or not all(np.isfinite(float(v)) for v in pair) or float(pair[0]) > float(pair[1]):
        raise ValueError(f"{name}: expected a number or a range (low, high) with low <= high, got {value!r}")
    return float(pair[0]), float(pair[1])


@dataclass(frozen=True)
class DomainShift:
    """Intensity change of a target image at prediction time: ``clip(x ** gamma + shift, 0, 1)``.

    Each of ``gamma`` and ``shift`` is a fixed number or a range ``(low, high)`` from which a value is
    drawn uniformly per case (with the case's seeded generator). The defaults change nothing.
    """

    gamma: float | tuple[float, float] = 1.0
    shift: float | tuple[float, float] = 0.0

    def __post_init__(self) -> None:
        gamma = _as_range(self.gamma, "gamma")
        if gamma[0] <= 0:
            raise ValueError(f"gamma: must be positive, got {self.gamma!r}")
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "shift", _as_range(self.shift, "shift"))

    def sample(self, rng: np.random.Generator) -> tuple[float, float]:
        """One case's (gamma, shift)."""
        gamma, shift = self.gamma, self.shift
        return float(rng.uniform(gamma[0], gamma[1])), float(rng.uniform(shift[0], shift[1]))  # type: ignore[index]

    @staticmethod
    def apply(image: np.ndarray, gamma: float, shift: float) -> np.ndarray:
        """The shifted image, float32 in [0, 1] like every loaded image."""
        return np.clip(np.power(image, gamma, dtype=np.float32) + np.float32(shift), 0.0, 1.0).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"gamma": list(self.gamma), "shift": list(self.shift)}  # type: ignore[arg-type]


def _callable_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, or of the class of a callable object (no memory address)."""
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(target, '__module__', '?')}.{target.__qualname__}"


def _check_cases(cases: Sequence[Case]) -> list[Case]:
    """The cases as a list, each labelled, with unique ids; errors name the case."""
    out = list(each_case(cases))
    seen: set[str] = set()
    for case in out:
        if case.label is None:
            raise ValueError(f"case {case.case_id!r}: has no label; label noise needs the clean training labels")
        check_label(case.label, f"case {case.case_id!r} label")
        if case.case_id in seen:
            raise ValueError(f"case {case.case_id!r}: appears twice")
        seen.add(case.case_id)
    return out


def _predicted_label(predictor: Predictor, case: Case) -> np.ndarray:
    """The predictor's label for ``case`` (label hidden), checked against the clean label's grid."""
    predicted = predictor(replace(case, label=None, meta=dict(case.meta)))
    clean = case.label
    assert clean is not None
    if not isinstance(predicted, np.ndarray) or predicted.shape != clean.shape:
        got = predicted.shape if isinstance(predicted, np.ndarray) else type(predicted).__name__
        raise ValueError(f"case {case.case_id!r}: the source model returned {got}, expected a {clean.shape} label map")
    noisy = predicted.astype(clean.dtype) if predicted.dtype == bool else predicted
    check_label(noisy, f"case {case.case_id!r} prediction")
    return noisy.astype(clean.dtype, copy=False)


def sfda_noise(
    cases: Sequence[Case],
    ratio: float,
    seed: int,
    train_source: SourceTrainer | None = None,
    domain_shift: DomainShift | None = None,
    protected: Sequence[str] = (),
) -> tuple[dict[str, np.ndarray], NoiseManifest]:
    """Labels of the target share ``ratio`` replaced by a source model's predictions.

    Args:
        cases: the training cases with their clean labels.
        ratio: share of cases in the target part T (their labels become predictions).
        seed: seed of the S/T split and of the per-case domain shift draws.
        train_source: trains the source model on S and returns its predictor (see module docstring).
        domain_shift: intensity change of T's images at prediction time; None for none.
        protected: trusted cases, never in T (they train the source model with the rest of S).

    Returns:
        The training label of every case by id (S keeps its clean label array, not a copy) and the
        manifest (S: ``corrupted=False``, ``details.role="source"``; T: corrupted, with gamma/shift).
    """
    check_ratio_seed(ratio, seed)
    if train_source is None:
        raise ValueError(
            "sfda noise needs train_source=<callable(source cases) -> predictor>; the default source "
            "trainer (svldrl.training) is not wired in yet"
        )
    all_cases = _check_cases(cases)
    target_ids = set(
        select_noisy_cases([c.case_id for c in all_cases], ratio, np.random.default_rng(seed), protected)
    )
    source = [c for c in all_cases if c.case_id not in target_ids]
    if target_ids and not source:
        raise ValueError(f"ratio: {ratio} leaves no source cases to train the source model on")
    labels: dict[str, np.ndarray] = {c.case_id: c.label for c in source}  # type: ignore[misc]
    entries: list[CaseNoise] = [clean_entry(c.case_id, {"role": "source"}) for c in source]
    shift = domain_shift or DomainShift()
    if target_ids:
        predictor = train_source(list(source))
        for case in all_cases:
            if case.case_id not in target_ids:
                continue
            gamma, offset = shift.sample(case_generator(seed, case.case_id))
            shifted = replace(case, image=DomainShift.apply(case.image, gamma, offset))
            noisy = _predicted_label(predictor, shifted)
            labels[case.case_id] = noisy
            details = {"role": "target", "gamma": gamma, "shift": offset}
            dice = label_dice(noisy, case.label)  # type: ignore[arg-type]
            entries.append(CaseNoise(case.case_id, True, "sfda", "source-model", None, dice, details))
    # what trained the source model (its budget above all: it sets how wrong the labels are)
    source = getattr(train_source, "record", None) or _callable_name(train_source)
    options = {"domain_shift": shift.to_dict(), "train_source": source}
    if protected:
        options["protected"] = sorted(protected)
    return labels, NoiseManifest("sfda", float(ratio), int(seed), sorted_entries(entries), options)
