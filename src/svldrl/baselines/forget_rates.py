"""Co-Teaching's forget rates: where each class's rate comes from, and the ramp toward it.

Kept apart from the trainer (``co_teaching.py``) because the rates are a concept of their own: the
reference is given its known noise rate, and svldrl offers five sources for it (the noise manifest,
given rates, the trusted cases, a trusted-only teacher run, an estimate after a warmup); each is
measured, in docs/results.md, against the true per-class rates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from svldrl.noise import CaseNoise

FORGET_SOURCES = ("auto", "oracle", "estimate", "trusted", "given", "teacher")
ORACLE_SOURCES = ("oracle", "given")
"""Sources that read what only the noise's maker knows."""
KNOWN_AT_START = (*ORACLE_SOURCES, "teacher")
"""Sources whose rates are known before the first step: they ramp from epoch 0."""


def forget_rate_at(epoch: int, final: np.ndarray, ramp_epochs: int, start_epoch: int = 0) -> np.ndarray:
    """Forget rates of ``epoch``: 0 before ``start_epoch``, then ``final * (e - start) / (ramp - 1)`` up to ``final``.

    With ``start_epoch=0`` this is the reference's ``np.linspace(0, rate, num_gradual)`` followed by
    ``rate``: epoch 0 forgets nothing, epoch ``ramp_epochs - 1`` forgets the final share.
    """
    if ramp_epochs < 1:
        raise ValueError(f"ramp_epochs must be >= 1, got {ramp_epochs}")
    progress = (epoch - start_epoch) / max(ramp_epochs - 1, 1)
    return np.asarray(final, dtype=np.float64) * float(np.clip(progress, 0.0, 1.0))


def clean_volume_estimate(noisy_volume: float, dice: float, operation: str | None) -> float:
    """The clean structure's volume from the noisy one, Dice and the noise operation.

    Dilation makes the noisy label contain the clean one, erosion the reverse, so Dice fixes the
    clean volume exactly: ``|A| = D |B| / (2 - D)`` and ``|A| = (2 - D) |B| / D``. Otherwise (SFDA,
    unknown) the clean volume is taken equal to the noisy one.
    """
    if operation == "dilation":
        return dice * noisy_volume / (2.0 - dice)
    if operation == "erosion" and dice > 0:
        return (2.0 - dice) * noisy_volume / dice
    return noisy_volume


def oracle_forget_rates(cases: Sequence[tuple[np.ndarray, CaseNoise]], n_classes: int) -> np.ndarray:
    """(G, n) ``1 - precision`` of the noisy labels per group and class, from the noise manifest.

    For each corrupted case and foreground class c of volume |B| in the noisy label, the manifest's
    Dice D and operation give the clean volume |A| (``clean_volume_estimate``) and the overlap
    ``D (|A| + |B|) / 2``: ``|B| - overlap`` voxels are wrongly labelled c and ``|A| - overlap``
    wrongly labelled background. Exact for one structure under morphological noise; with several
    structures the case's mean Dice stands for each, and under SFDA noise ``|A| = |B|`` is assumed.

    Args:
        cases: per training case, its (G, H, W, D) noisy class indices and its manifest entry.
        n_classes: n, classes per group.
    """
    if not cases:
        raise ValueError("oracle_forget_rates: no cases")
    n_groups = cases[0][0].shape[0]
    wrong = np.zeros((n_groups, n_classes))
    total = np.zeros((n_groups, n_classes))
    for groups, entry in cases:
        for g in range(n_groups):
            counts = np.bincount(groups[g].ravel().astype(np.int64), minlength=n_classes)[:n_classes]
            total[g] += counts
            if not entry.corrupted:
                continue
            dice = float(entry.dice_noisy_vs_clean)
            for c in range(1, n_classes):
                noisy = float(counts[c])
                clean = clean_volume_estimate(noisy, dice, entry.operation)
                overlap = dice * (clean + noisy) / 2.0
                wrong[g, c] += noisy - overlap
                wrong[g, 0] += clean - overlap
    return np.clip(np.divide(wrong, total, out=np.zeros_like(wrong), where=total > 0), 0.0, 1.0)


def forget_source(forget_rate: str, trusted: bool) -> str:
    """``forget_rate`` with ``auto`` resolved: ``trusted`` when the run has trusted cases, else ``oracle``."""
    if forget_rate == "auto":
        return "trusted" if trusted else "oracle"
    return forget_rate


def excess_disagreement(
    wrong_others: np.ndarray, total_others: np.ndarray, wrong_trusted: np.ndarray, total_trusted: np.ndarray
) -> np.ndarray:
    """(G, n) per-class disagreement rate on the other cases less that on the trusted cases, in [0, 1].

    On trusted cases the labels are right, so their disagreement is the network's own error; the
    excess on the other cases estimates the share of wrong labels (the noise rate, ``1 - precision``).
    """
    def rate(wrong: np.ndarray, total: np.ndarray) -> np.ndarray:
        return np.divide(wrong, total, out=np.zeros_like(wrong, dtype=np.float64), where=total > 0)

    return np.clip(rate(wrong_others, total_others) - rate(wrong_trusted, total_trusted), 0.0, 1.0)


def disagreement_counts(classes: np.ndarray, predicted: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(wrong, total), each (G, n): per group and labelled class, voxels where the prediction differs, and all.

    Args:
        classes: (G, ...) noisy class indices.
        predicted: (G, ...) predicted class indices.
    """
    wrong = np.zeros((classes.shape[0], n_classes))
    total = np.zeros((classes.shape[0], n_classes))
    for g in range(classes.shape[0]):
        label, pred = classes[g].ravel().astype(np.int64), predicted[g].ravel()
        total[g] = np.bincount(label, minlength=n_classes)[:n_classes]
        wrong[g] = np.bincount(label[pred != label], minlength=n_classes)[:n_classes]
    return wrong, total


# ----------------------------------------------------------------------------- trainer
