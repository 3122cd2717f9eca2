"""Loss Correction (Patrini et al., CVPR 2017; reference code: giorgiop/loss-correction @ 15a79de,
``experiment.py``), voxel-wise.

Label noise is modelled by a row-stochastic matrix T, ``T[i, j] = P(noisy label j | clean label i)``.
Forward correction (default) trains the network's clean-class probabilities p through T: the loss is
the cross-entropy of ``T^T p`` against the noisy label. Backward correction (option) multiplies the
vector of per-class losses by ``T^-1``. T is estimated after a warmup on the plain loss: for each
class, the "anchor" voxel just below the 97th percentile of that class's predicted probability gives
the row (the reference's ``filter_outlier=True``), rows are normalised, and a T whose diagonal is not
above 0.5 is refused. The same network then continues with the corrected loss (the reference trains
a whole cross-entropy run first, estimates T from it, then trains a new network from scratch with the
corrected loss for a whole run: half of all its epochs are the warmup, as ``warmup_fraction=0.5``
here). The Dice term of the loss is not corrected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from svldrl.baselines.common import (
    BaselineTrainer,
    epochs_of,
    group_log_probs,
    group_targets,
    n_groups_classes,
    option,
)
from svldrl.training import METHODS
from svldrl.training.checkpoint import atomic_write_text

CORRECTIONS = ("forward", "backward")
EPS = 1e-7
"""Probabilities are clipped to [EPS, 1 - EPS] before the log, as the reference (Keras' epsilon)."""
TRANSITION_FILE = "transition_matrix.json"


@dataclass(frozen=True)
class LossCorrectionOptions:
    """``method_options`` of loss-correction."""

    correction: str = option("forward", "'forward' (CE of T^T p, the default) or 'backward' (T^-1 times the losses)")
    warmup_fraction: float = option(0.5, "share of epochs trained with the plain loss before T is estimated")
    anchor_percentile: float = option(97.0, "anchor: the voxel just below this percentile of each class's probability")
    max_voxels: int = option(1_000_000, "voxels sampled (uniformly, over all training volumes) to estimate T")
    transition_matrix: tuple[tuple[float, ...], ...] | None = option(
        None, "a known T (rows: clean class, columns: noisy class); given, it is used from the start"
    )
    dice_weight: float = option(1.0, "weight of the uncorrected Dice loss added to the corrected cross-entropy")

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise ValueError(f"method_options.correction must be one of {CORRECTIONS}, got {self.correction!r}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"method_options.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0.0 < self.anchor_percentile <= 100.0:
            raise ValueError(f"method_options.anchor_percentile must be in (0, 100], got {self.anchor_percentile}")
        if self.max_voxels < 1 or self.dice_weight < 0:
            raise ValueError("method_options.max_voxels must be >= 1 and dice_weight >= 0")


# ----------------------------------------------------------------------------- mechanism


def forward_corrected_ce(log_probs: torch.Tensor, target: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    """Per-voxel forward-corrected cross-entropy ``-sum_j y_j log((T^T p)_j)``.

    Args:
        log_probs: (B, G, n, ...) log-probabilities of the clean classes.
        target: (B, G, n, ...) one-hot noisy labels.
        transition: (G, n, n) row-stochastic T per group.

    Returns:
        (B, G, ...) loss per voxel and group.
    """
    noisy = torch.einsum("bgi...,gij->bgj...", log_probs.exp(), transition)  # (B, G, n, ...) P(noisy class)
    return -(target * noisy.clamp(EPS, 1.0 - EPS).log()).sum(dim=2)


def backward_corrected_ce(log_probs: torch.Tensor, target: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    """Per-voxel backward-corrected cross-entropy ``-sum_j (y T^-1)_j log p_j`` (unbiased, may be negative)."""
    inverse = torch.linalg.inv(transition)  # (G, n, n)
    weights = torch.einsum("bgi...,gij->bgj...", target, inverse)  # (B, G, n, ...) row vector y times T^-1
    return -(weights * log_probs.exp().clamp(EPS, 1.0 - EPS).log()).sum(dim=2)


def anchor_transition_matrix(probs: np.ndarray, percentile: float = 97.0) -> np.ndarray:
    """T estimated from anchor points (the reference's ``NoiseEstimator`` with ``filter_outlier=True``).

    For each class i, the values of ``probs[:, i]`` at or above their ``percentile``-th percentile
    (numpy's "higher" method: an actual value) are treated as outliers; the voxel with the largest
    remaining probability of class i is the anchor and its probability vector is row i. Rows are
    then normalised to sum to 1.

    Args:
        probs: (N, n) predicted (noisy-label) class probabilities of N voxels.
        percentile: the outlier cut, 97 in the reference.

    Returns:
        (n, n) row-stochastic T.
    """
    if probs.ndim != 2 or probs.shape[0] < 1:
        raise ValueError(f"probs: expected (N, n) with N >= 1, got shape {probs.shape}")
    n = probs.shape[1]
    rows = np.empty((n, n), dtype=np.float64)
    for i in range(n):
        column = probs[:, i].astype(np.float64)
        cut = np.percentile(column, percentile, method="higher")
        robust = np.where(column >= cut, 0.0, column)
        rows[i] = probs[int(np.argmax(robust))]
    return rows / rows.sum(axis=1, keepdims=True)


def check_transition_matrix(transition: np.ndarray, class_names: list[str], where: str) -> np.ndarray:
    """``transition`` as float64 if it is a valid T with diag > 0.5, else an error naming the class.

    A diagonal entry at or below 0.5 means the noisy label of that class is more often wrong than
    right; forward correction can then swap the classes, so the method refuses to train with it.
    """
    t = np.asarray(transition, dtype=np.float64)
    n = len(class_names)
    if t.shape != (n, n):
        raise ValueError(f"{where}: expected a {n}x{n} matrix for classes {class_names}, got shape {t.shape}")
    if (t < 0).any() or not np.allclose(t.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError(f"{where}: T must be row-stochastic (non-negative rows summing to 1), got {t.tolist()}")
    bad = [(name, float(t[i, i])) for i, name in enumerate(class_names) if t[i, i] <= 0.5]
    if bad:
        name, value = bad[0]
        raise ValueError(
            f"{where}: T[{name}, {name}] = {value:.3f} <= 0.5: the noisy labels of {name!r} would be wrong more "
            f"often than right, and loss correction refuses such a T (T = {np.round(t, 3).tolist()}). Train "
            "the warmup longer (method_options.warmup_fraction) or give method_options.transition_matrix."
        )
    return t


def sample_voxels(prob: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(G, n, min(k, V)) probabilities of voxels drawn uniformly without replacement from (G, n, *spatial)."""
    flat = prob.reshape(*prob.shape[:2], -1)  # (G, n, V)
    if k >= flat.shape[-1]:
        return flat
    return flat[..., rng.choice(flat.shape[-1], size=k, replace=False)]


# ----------------------------------------------------------------------------- trainer


@METHODS.register("loss-correction", aliases=("lc", "forward-correction"))
class LossCorrectionTrainer(BaselineTrainer):
    """Dice + cross-entropy; after the warmup, the cross-entropy is corrected by the estimated T."""

    OPTIONS = LossCorrectionOptions
    NAME = "Loss Correction"
    DESCRIPTION = "Loss Correction (Patrini 2017): CE forward-corrected by a transition matrix from anchor voxels"
    FOOTNOTE = ("Loss Correction: T from anchor voxels after a warmup in the same run (the reference retrains from "
                "scratch); the Dice term is not corrected.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transition: torch.Tensor | None = None
        """(G, n, n) T per class group, once known."""
        if self.options.transition_matrix is not None:
            given = np.asarray(self.options.transition_matrix, dtype=np.float64)
            n_groups = n_groups_classes(self.labels)[0]
            self.set_transition(np.stack([given] * n_groups), "method_options.transition_matrix")
        elif self.warmup_epochs < 1:
            raise ValueError(
                "loss-correction: method_options.warmup_fraction * optim.epochs < 1 leaves no warmup to estimate "
                "T from; raise it or give method_options.transition_matrix"
            )

    @property
    def warmup_epochs(self) -> int:
        """Epochs with the plain loss; T is estimated at the end of the last of them."""
        return epochs_of(self.options.warmup_fraction, self.cfg.optim.epochs)

    def compute_loss(self, seg_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Dice (uncorrected) + mean per-voxel cross-entropy, corrected by T once it is known."""
        mode = self.labels.mode
        log_probs, onehot = group_log_probs(seg_logits, mode), group_targets(target, mode)
        if self.transition is None:
            ce = -(onehot * log_probs).sum(dim=2)  # (B, G, h, w, d)
        elif self.options.correction == "forward":
            ce = forward_corrected_ce(log_probs, onehot, self.transition)
        else:
            ce = backward_corrected_ce(log_probs, onehot, self.transition)
        return ce.mean() + self.options.dice_weight * self.seg_loss(seg_logits, target)

    def on_epoch_end(self, epoch: int) -> None:
        if self.transition is None and epoch + 1 == self.warmup_epochs:
            self.set_transition(self.estimate_transition(np.random.default_rng([self.cfg.seed, epoch])), "estimated T")

    def estimate_transition(self, rng: np.random.Generator) -> np.ndarray:
        """(G, n, n) anchor estimate of T from the current network's predictions on the training volumes."""
        per_case = max(1, self.options.max_voxels // len(self.train_cases))
        samples = [sample_voxels(self.volume_probs(self.net, case.image), per_case, rng) for case in self.train_cases]
        probs = np.concatenate(samples, axis=-1)  # (G, n, N)
        return np.stack([anchor_transition_matrix(group.T, self.options.anchor_percentile) for group in probs])

    def set_transition(self, transition: np.ndarray, where: str) -> None:
        """Check each group's T (diag > 0.5), keep it on the device and write it to the run folder."""
        checked = [check_transition_matrix(t, self.group_class_names(g), f"{where} (group {g})")
                   for g, t in enumerate(transition)]
        self.transition = torch.as_tensor(np.stack(checked), dtype=torch.float32, device=self.device)
        record = {"groups": [self.group_class_names(g) for g in range(len(checked))],
                  "T": [t.tolist() for t in checked], "source": where}
        atomic_write_text(json.dumps(record, indent=2) + "\n", self.run_dir / TRANSITION_FILE)

    def group_class_names(self, group: int) -> list[str]:
        """Names of the n classes of a group (regions: "<region> outside", "<region> inside")."""
        if self.labels.mode == "classes":
            return list(self.labels.names)
        region = self.labels.names[group]
        return [f"{region} outside", f"{region} inside"]

    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()
        if self.transition is not None:
            state["transition"] = self.transition.detach().cpu()
        return state

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        super().load_checkpoint_state(payload)
        if "transition" in payload:
            self.transition = payload["transition"].to(self.device)

