"""A frozen teacher's confident edits of a label, and which way they go in each case.

``confident_correction`` is the teacher rule of ``teacher-correction`` (and of SVL-DRL-T's teacher
reward): a voxel's label is replaced where the teacher is confident of another labelling.

``direction=case`` keeps, per case, only the edits of one direction, and only when the case's edits
are one-sided. Why: label noise that corrupts a whole case is systematic, so a corrupted case's
wrong voxels lie on one side (LA, SFDA 50 %: 90-93 % of them are false positives; MT dilates or
erodes a case whole; ``experiments/la/noise_errors.py``), while a teacher's own errors on a clean
case go both ways. Measured on LA (SFDA 50 %, the converged trusted-only teacher, five seeds,
``experiments/la/direction_report.py``): the teacher's edits on the corrupted cases are one-sided
(``log10(to background / to foreground)`` 0.2 to 2.4), on the untouched and trusted cases nearer
balance (-0.9 to 1.2, trusted -0.5 to 0.4); applying them both ways rewrites clean labels with the
teacher's errors (Dice to clean 100 -> 86.7 and 78.0, seeds 0 and 1, ``teacher_labels.py``). The
threshold on the imbalance is, by default (``imbalance=auto``), the largest imbalance the teacher
shows on the trusted cases, whose labels are right: a case is corrected only when its edits are more
one-sided than the teacher's disagreement with a label known to be right. Nothing here reads the
noise manifest.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import edt
import numpy as np
import torch
from torch import nn

from svldrl.inference import predict_probabilities

BACKGROUND, FOREGROUND, NONE = "background", "foreground", "none"


def confident_correction(
    label: torch.Tensor, teacher_logits: torch.Tensor, mode: str, confidence: float
) -> torch.Tensor:
    """``label`` (B, n_outputs, ...) with each voxel replaced where the teacher is confident of another labelling.

    Classes: the teacher's most likely class where its probability exceeds ``confidence``. Regions:
    each region channel set to 1 where the teacher's probability exceeds ``confidence``, to 0 where it
    is below ``1 - confidence``.
    """
    if mode == "classes":
        prob = torch.softmax(teacher_logits, dim=1)
        top, best = prob.max(dim=1, keepdim=True)
        onehot = torch.zeros_like(label).scatter_(1, best, 1.0)
        return torch.where(top > confidence, onehot, label)
    prob = torch.sigmoid(teacher_logits)
    return torch.where(prob > confidence, torch.ones_like(label), torch.where(prob < 1 - confidence,
                                                                               torch.zeros_like(label), label))


def one_direction(label: torch.Tensor, fixed: torch.Tensor, mode: str, direction: str) -> torch.Tensor:
    """``fixed`` (B, n_outputs, ...) kept only where it edits ``label`` toward ``direction``.

    ``background``: only edits that remove foreground (classes: a foreground voxel set to background;
    regions: a channel set from 1 to 0); ``foreground``: only edits that add it; ``none``: no edit.
    Edits between two foreground classes belong to neither direction and are dropped.
    """
    if direction == NONE:
        return label
    if mode == "regions":
        return label * fixed if direction == BACKGROUND else torch.maximum(label, fixed)
    label_bg, fixed_bg = label[:, :1] > 0.5, fixed[:, :1] > 0.5
    take = (fixed_bg & ~label_bg) if direction == BACKGROUND else (label_bg & ~fixed_bg)
    return torch.where(take, fixed, label)


def reliable_side(label: torch.Tensor, mode: str, direction: str) -> torch.Tensor:
    """(B, 1, ...) 1 on the voxels of ``label`` whose labelling a one-sided error cannot have made wrong, else 0.

    A case whose teacher edits remove foreground (``background``) was over-segmented: its background
    voxels are right (systematic noise that adds foreground leaves them alone), its foreground ones
    are a mix of right and wrong. ``foreground`` is the mirror case (under-segmentation): its
    foreground voxels are right. ``none``: every voxel. Classes: voxels of zero padding (no class) are
    on neither side. Regions: background is where no region is on.
    """
    fg = (label[:, 1:] if mode == "classes" else label).amax(dim=1, keepdim=True) > 0.5
    if direction == NONE:
        return torch.ones_like(label[:, :1])
    if direction == FOREGROUND:
        return fg.to(label.dtype)
    if direction != BACKGROUND:
        raise ValueError(f"reliable_side: direction must be {BACKGROUND!r}, {FOREGROUND!r} or {NONE!r}, "
                         f"got {direction!r}")
    bg = label[:, :1] > 0.5 if mode == "classes" else ~fg
    return bg.to(label.dtype)


def edit_counts(label: torch.Tensor, fixed: torch.Tensor, mode: str) -> tuple[int, int]:
    """(voxels an edit sets to background, voxels it sets to foreground) of ``fixed`` against ``label``."""
    if mode == "regions":
        return int((label > fixed).sum()), int((fixed > label).sum())
    label_bg, fixed_bg = label[:, 0] > 0.5, fixed[:, 0] > 0.5
    return int((fixed_bg & ~label_bg).sum()), int((label_bg & ~fixed_bg).sum())


def imbalance(to_background: int, to_foreground: int) -> float:
    """``log10((to_background + 1) / (to_foreground + 1))``: > 0 when the edits mostly remove foreground."""
    return math.log10((to_background + 1) / (to_foreground + 1))


def case_correction(
    trainer: Any, teacher: nn.Module, case: Any, confidence: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(label, teacher's confident correction of it), each (1, n_outputs, ...), of a whole training case of
    ``trainer``, from whole-volume probabilities (sliding window, as case scores are)."""
    mode = trainer.labels.mode
    prob = predict_probabilities(
        teacher, case.image, trainer.cfg.data.patch_size, overlap=trainer.cfg.sw_overlap,
        sw_batch_size=trainer.cfg.sw_batch_size, device=trainer.device, mode=mode,
    )  # fmt: skip
    prob = torch.from_numpy(np.clip(prob, 1e-6, 1 - 1e-6))[None]
    logits = prob.log() if mode == "classes" else prob.log() - (1 - prob).log()
    label = torch.from_numpy(trainer.labels.target_channels(case.label).astype(np.float32))[None]
    return label, confident_correction(label, logits, mode, confidence)


def case_edit_counts(trainer: Any, teacher: nn.Module, confidence: float) -> dict[str, tuple[int, int]]:
    """Per training case of ``trainer`` (trusted ones too): ``edit_counts`` of the teacher's confident
    correction of the whole label."""
    counts = {}
    for case in trainer.train_cases:
        label, fixed = case_correction(trainer, teacher, case, confidence)
        counts[case.case_id] = edit_counts(label, fixed, trainer.labels.mode)
    return counts


def foreground_mask(label: torch.Tensor, mode: str) -> np.ndarray:
    """(...) bool numpy mask of one label (1, n_outputs, ...): any foreground class or region."""
    fg = label[0, 1:] if mode == "classes" else label[0]
    return (fg.amax(dim=0) > 0.5).cpu().numpy()


def border_distance(foreground: np.ndarray, direction: str) -> np.ndarray:
    """Distance in voxels from each voxel of the label's doubtful side (its foreground for ``background``,
    its background for ``foreground``) to the nearest voxel of the other side; 0 on the other side.
    Nothing is assumed outside the array (a patch's border is not a label border)."""
    side = foreground if direction == BACKGROUND else ~foreground
    return edt.edt(np.ascontiguousarray(side), black_border=False)


def edit_band_width(label: torch.Tensor, fixed: torch.Tensor, mode: str, direction: str, quantile: float) -> float:
    """The ``quantile`` of the distances (voxels) of the teacher's edits of ``direction`` from the label border:
    how deep into the doubtful side the teacher's one-sided corrections reach; 0 when it makes none."""
    edits = (one_direction(label, fixed, mode, direction) != label).any(dim=1)[0].cpu().numpy()
    if direction == NONE or not edits.any():
        return 0.0
    return float(np.quantile(border_distance(foreground_mask(label, mode), direction)[edits], quantile))


def band_weights(label: torch.Tensor, mode: str, direction: str, width: float) -> torch.Tensor:
    """(1, 1, ...) 0 on the voxels of the doubtful side of ``label`` (1, n_outputs, ...) within ``width`` voxels
    of the label border, 1 elsewhere (``none``: 1 everywhere).

    Why a band and not the whole side (``reliable_side``): a case supervised on one side only says
    nothing against the other class near its border, and the Dice loss then grows the prediction (LA,
    MT 50 %, session 26: leaving out the whole side over-segments). Systematic noise that adds or
    removes a margin lies in a band along the label border; beyond it both sides of the label are right.
    """
    if direction == NONE or width <= 0:
        return torch.ones_like(label[:, :1])
    distance = border_distance(foreground_mask(label, mode), direction)
    band = (distance > 0) & (distance <= width)
    return torch.from_numpy(~band).to(label.device, label.dtype)[None, None]


def case_band_widths(
    trainer: Any, teacher: nn.Module, confidence: float, directions: Mapping[str, str], quantile: float
) -> dict[str, float]:
    """Per case of ``directions`` (case id -> its one-sided direction): ``edit_band_width`` of its whole label."""
    cases = {case.case_id: case for case in trainer.train_cases}
    widths = {}
    for case_id, direction in directions.items():
        label, fixed = case_correction(trainer, teacher, cases[case_id], confidence)
        widths[case_id] = round(edit_band_width(label, fixed, trainer.labels.mode, direction, quantile), 3)
    return widths


def imbalance_threshold(counts: Mapping[str, tuple[int, int]], trusted_ids: Collection[str], setting: str) -> float:
    """``imbalance=auto``: the largest ``|imbalance|`` over the trusted cases; else the number given."""
    if setting != "auto":
        return float(setting)
    trusted = [abs(imbalance(*counts[c])) for c in trusted_ids if c in counts]
    if not trusted:
        raise ValueError("method_options.imbalance=auto needs trusted cases among the training cases")
    return max(trusted)


def check_direction_options(confidence: float, imbalance_setting: str) -> None:
    """The per-case direction rule's two settings: ``confidence`` in [0.5, 1), ``imbalance`` 'auto' or >= 0."""
    if imbalance_setting != "auto":
        try:
            value = float(imbalance_setting)
        except ValueError:
            value = -1.0
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"method_options.imbalance must be 'auto' or a number >= 0, got {imbalance_setting!r}")
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"method_options.confidence must be in [0.5, 1), got {confidence}")


def case_directions(
    counts: Mapping[str, tuple[int, int]], trusted_ids: Collection[str], threshold: float
) -> dict[str, str]:
    """Per non-trusted case: ``background`` or ``foreground`` when its edits are more one-sided than
    ``threshold`` that way, else ``none`` (its label is left as it is)."""
    directions = {}
    for case_id, (to_background, to_foreground) in counts.items():
        if case_id in trusted_ids:
            continue
        value = imbalance(to_background, to_foreground)
        directions[case_id] = BACKGROUND if value > threshold else FOREGROUND if value < -threshold else NONE
    return directions


def direction_rule(
    trainer: Any, teacher: nn.Module, confidence: float, imbalance_setting: str
) -> tuple[dict[str, tuple[int, int]], float, dict[str, str]]:
    """The per-case direction rule whole: the teacher's edit counts on every training case of
    ``trainer``, the imbalance threshold from its trusted cases, and each non-trusted case's direction.

    One function for the two methods that use the rule (``teacher-correction`` corrects the cases it
    gives a direction, ``case-filter`` with ``drop=direction`` drops them), so they cannot drift apart.
    """
    counts = case_edit_counts(trainer, teacher, confidence)
    threshold = imbalance_threshold(counts, trainer.trusted_ids, imbalance_setting)
    return counts, threshold, case_directions(counts, trainer.trusted_ids, threshold)
