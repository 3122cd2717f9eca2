"""Scoring whole training cases by a model's agreement with their labels, and splitting the scores.

The case filter drops the low scorers, the case-gated teacher correction and SVL-DRL-T's case gate
correct only them. Under case-level noise (a share of the cases corrupted as a whole) the
agreement of a converged trusted-only model with a case's label tells the corrupted cases from the
others (LA, SFDA 50 %: AUC 0.82-0.96, ``experiments/la/case_scores.py``); a young model's does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from svldrl.inference import labels_from_probabilities, predict_probabilities
from svldrl.metrics import dice


def label_agreement(trainer: Any, model: nn.Module) -> dict[str, float]:
    """Per non-trusted training case of ``trainer``: the Dice between ``model``'s prediction (sliding window)
    and the case's training label, averaged over the foreground classes."""
    scores = {}
    for case in trainer.train_cases:
        if case.case_id in trainer.trusted_ids:
            continue
        prob = predict_probabilities(
            model, case.image, trainer.cfg.data.patch_size, overlap=trainer.cfg.sw_overlap,
            sw_batch_size=trainer.cfg.sw_batch_size, device=trainer.device, mode=trainer.labels.mode,
        )  # fmt: skip
        pred = trainer.labels.foreground_masks(labels_from_probabilities(prob, trainer.labels))
        ref = trainer.labels.foreground_masks(case.label)
        scores[case.case_id] = float(np.mean([dice(p, r) for p, r in zip(pred, ref, strict=True)]))
    return scores


def otsu_threshold(scores: Sequence[float]) -> float:
    """The threshold between sorted scores that maximises the between-group variance (Otsu 1979), in 1D.

    Returns the midpoint between the two groups' nearest scores; -inf (drop nothing) for fewer than
    two distinct scores.
    """
    values = np.sort(np.asarray(scores, dtype=float))
    if values.size < 2 or values[0] == values[-1]:
        return -np.inf
    best, threshold = -1.0, -np.inf
    for k in range(1, values.size):  # low group values[:k], high group values[k:]
        low, high = values[:k], values[k:]
        between = low.size * high.size * (low.mean() - high.mean()) ** 2
        if between > best and values[k - 1] < values[k]:
            best, threshold = between, 0.5 * (values[k - 1] + values[k])
    return float(threshold)


def cases_to_drop(scores: dict[str, float], drop: str) -> tuple[list[str], float]:
    """The case ids to drop and the threshold used (a score strictly below it is dropped)."""
    if drop == "otsu":
        threshold = otsu_threshold(list(scores.values()))
    else:
        share = float(drop)
        n = int(round(share * len(scores)))
        ranked = sorted(scores.values())
        threshold = ranked[n - 1] + 1e-12 if n > 0 else -np.inf  # drop the n lowest (ties drop together)
    return sorted(case_id for case_id, s in scores.items() if s < threshold), float(threshold)


def split_report(scores: dict[str, float], threshold: float, key: str, chosen: list[str], manifest: Any) -> dict:
    """What a run records of a split of its case scores: every score, the threshold, the cases ``chosen``
    (under ``key``), and, when the run has a noise manifest, how many of them were corrupted (a diagnostic
    nothing trains on)."""
    report: dict[str, Any] = {"threshold": threshold, "scores": dict(sorted(scores.items())), key: sorted(chosen)}
    if manifest is not None:
        corrupted = set(manifest.corrupted_ids)
        report["diagnostics"] = {
            "corrupted": len(corrupted & set(scores)),
            f"{key}_corrupted": len(corrupted & set(chosen)),
            f"{key}_clean": len(set(chosen) - corrupted),
        }
    return report


def gate_to_state(flagged: frozenset[str] | None) -> list[str] | None:
    """A case gate as a checkpoint holds it: the flagged ids, sorted, or None before the teacher scored."""
    return None if flagged is None else sorted(flagged)


def gate_from_state(saved: list[str] | None) -> frozenset[str] | None:
    """The case gate a checkpoint saved (``gate_to_state``)."""
    return None if saved is None else frozenset(saved)
