"""ADELE: adaptive early-learning correction (Liu et al., CVPR 2022; reference code: Kangningthu/ADELE @ 7195bd0).

Networks fit the clean patterns before they memorise the noise, and each class reaches that point
at its own time. After every pass over the training cases (``curve_unit=pass``, the 3D reference's
unit; ``epoch``, one point per ``optim.iters_per_epoch`` steps, made the tables before issue 16,
commit 7985167 and earlier) the training IoU of each class against the CURRENT labels is
fitted with ``a (1 - exp(-x^b / c))`` (scipy ``curve_fit``, the reference's bounds, start and
weights). A point is the IoU of the whole-volume predictions of all training cases against their
current labels (``curve_source=volumes``, defaults v5): the reference's curve and its corrections come
from the same predictions of its whole training images (SegTHOR slices, uncropped), while our
training patches oversample the foreground, so a patch IoU (``patches``, before v5) flattens while the
whole-volume prediction still over-segments (LA, MT 50 %, epoch 32: patch IoU 0.69, whole-volume
prediction 1.16-1.24x the clean volume; a correction then inflated the labels, docs/results.md).
The reference's predictions are those of its training pass (train mode, taken before each step);
ours are a sliding-window pass in eval mode after the point's last epoch, as a 3D patch never covers
a whole volume.
The class's correction starts at the first epoch where the fitted curve's slope has
changed by more than r = 0.9 relative to its slope at epoch 1, and stays on. Correction replaces a
voxel's label by the model's whole-volume prediction at scale 1 (the 3D reference's single-scale
prediction; defaults v4; before, averaged over scales 0.7, 1.0, 1.5 and flips as the VOC script,
``correction_scales=null, flips=true``, 9.4x the work), where it is
confident (> 0.7) and both the old and the new class are background or classes being corrected
(the reference's ``merge_labels_with_skip``, class constraint included). It runs when a class
starts and every ``correct_every`` points after (the 3D SegTHOR script's ``correct_freq``, 10 passes).
When a class starts (``start_rule=reference``, the reference's ``label_update_epoch`` and
``if_update``): the leading points whose rise to the next is under 0.1 are dropped and the start
shifted by their count (``skip_flat_start``, the reference's ``start_iter``; defaults v5, left out
before), the n points so far sit at ``linspace(0, n, n)`` (point 0 at x = 0, where the curve
is 0 whatever its parameters), the slope rule counts epochs 1..N-1 of the run's N points, and the
class starts once the 0-based index of the newest point reaches that count. ``start_rule=shifted``
(the tables before defaults version 3) put point k at x = k + 1, counted epochs 1..N and compared
the number of points: three points then fix the fit exactly, and on a curve with a fast first
rise the rule fired at its knee (a phantom run: point 3, IoU 0.51 of 0.93,
``experiments/phantoms/adele_start_probe.py``, where the reference rule starts at point 6, after a
plateau; on a synthetic fast rise followed by a slow one it waits for point 13, ``tests/baselines/test_adele.py``).

Training adds a multi-scale consistency term: the mean KL of each scale's prediction to their mixture
(Jensen-Shannon-like, weight 1), the scales made by trilinear resizing to sizes the backbone accepts.
Differences from the reference, stated: cross-entropy is averaged over the scales without the
reference's division of the logits by 3, its per-class confidence mask on the consistency (rho =
0.8, almost always on) is left out, and a Dice term (``dice_weight``) is added at scale 1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from svldrl.baselines.adele_curve import (  # noqa: F401  (re-exported: the start rule is part of ADELE's API)
    FLAT_RISE,
    correction_start_epoch,
    fit_iou_curve,
    iou_curve,
    iou_curve_slope,
    leading_flat_points,
    should_start_correction,
)
from svldrl.baselines.common import (
    BaselineTrainer,
    group_indices,
    label_from_groups,
    label_groups,
    n_groups_classes,
    option,
    voxel_cross_entropy,
)
from svldrl.data import Case, PatchSampler
from svldrl.models import BACKBONES
from svldrl.training import METHODS
from svldrl.training.checkpoint import atomic_write_text

HISTORY_FILE = "adele.json"
CURVE_UNITS = ("pass", "epoch")
START_RULES = ("reference", "shifted")
CURVE_SOURCES = ("volumes", "patches")
MIXTURE_CLAMP = 1e-3
"""The reference clamps the mixture to [1e-3, 1 - 1e-3] before its log."""


@dataclass(frozen=True)
class ADELEOptions:
    """``method_options`` of adele (defaults from the reference)."""

    r: float = option(0.9, "a class starts correction when its fitted slope changed by more than r (relative)")
    tau_fg: float = option(0.7, "confidence a foreground prediction needs to replace a label")
    tau_bg: float = option(0.7, "confidence a background prediction needs to replace a label")
    scales: tuple[float, ...] = option((0.7, 1.0, 1.5), "input scales of the multi-scale consistency term")
    correction_scales: tuple[float, ...] | None = option(
        (1.0,),
        "input scales whose whole-volume predictions are averaged for the correction ((1.0,): the 3D reference's "
        "single-scale prediction; None: the consistency's scales, the VOC script's multi-scale form, before v4)",
    )
    flips: bool = option(
        False, "also average the correction's prediction over a flip of the last axis (VOC script; before v4: on)"
    )
    consistency_weight: float = option(1.0, "weight of the multi-scale consistency term (jsd_lambda)")
    correct_every: int = option(
        10,
        "once started, labels are corrected again every this many curve points (passes with curve_unit=pass; "
        "reference SegTHOR: correct_freq 10 passes; a fixed count, not scaled to the budget, as there)",
    )
    min_points: int = option(3, "IoU points before the curve is fitted (ours: the fewest a 3-parameter fit needs)")
    curve_unit: str = option(
        "pass",
        "one IoU point per 'pass' over the training cases (the 3D reference, SegTHOR: one per epoch of its "
        "data) or per 'epoch' of optim.iters_per_epoch steps (tables before issue 16); correct_every counts points",
    )
    dice_weight: float = option(1.0, "weight of a Dice term at scale 1 (0 = the reference's CE only)")
    curve_source: str = option(
        "volumes",
        "'volumes': a point is the IoU of the whole-volume predictions of the training cases (the reference's "
        "curve comes from the predictions it corrects with; defaults v5) or 'patches': pooled over the training "
        "patches of the point (before v5)",
    )
    skip_flat_start: bool = option(
        True,
        "start_rule=reference: drop the leading points whose rise to the next is < 0.1 and shift the start by "
        "their count (the reference's if_update, start_iter; before v5: not done)",
    )
    start_rule: str = option(
        "reference",
        "'reference' (points at linspace(0, n, n), horizon 1..N-1, start once the newest point's 0-based index "
        "reaches the count) or 'shifted' (point k at k + 1, horizon 1..N, the point count; before defaults v3)",
    )

    def __post_init__(self) -> None:
        if 1.0 not in self.scales or min(self.scales) <= 0:
            raise ValueError(f"method_options.scales must be positive and include 1.0, got {self.scales}")
        if self.correction_scales is not None and (not self.correction_scales or min(self.correction_scales) <= 0):
            raise ValueError(f"method_options.correction_scales must be positive scales or null, "
                             f"got {self.correction_scales}")
        if not 0.0 < self.r < 1.0:
            raise ValueError(f"method_options.r must be in (0, 1), got {self.r}")
        if not (0.0 <= self.tau_fg < 1.0 and 0.0 <= self.tau_bg < 1.0):
            raise ValueError("method_options.tau_fg and tau_bg must be in [0, 1)")
        if self.correct_every < 1 or self.min_points < 3:
            raise ValueError("method_options.correct_every must be >= 1 and min_points >= 3 (three parameters)")
        if self.curve_unit not in CURVE_UNITS:
            raise ValueError(f"method_options.curve_unit must be one of {CURVE_UNITS}, got {self.curve_unit!r}")
        if self.curve_source not in CURVE_SOURCES:
            raise ValueError(f"method_options.curve_source must be one of {CURVE_SOURCES}, got {self.curve_source!r}")
        if self.start_rule not in START_RULES:
            raise ValueError(f"method_options.start_rule must be one of {START_RULES}, got {self.start_rule!r}")
        if self.consistency_weight < 0 or self.dice_weight < 0:
            raise ValueError("method_options.consistency_weight and dice_weight must be >= 0")


# ----------------------------------------------------------------------------- how to correct


def correct_labels(
    labels: np.ndarray,
    probs: np.ndarray,
    correcting: np.ndarray,
    tau_fg: float = 0.7,
    tau_bg: float = 0.7,
    class_constraint: bool = True,
) -> np.ndarray:
    """Labels with confident predictions written in where the classes involved are being corrected.

    Per group: a voxel takes the predicted class if (1) the prediction is confident (max foreground
    probability > tau_fg, or background probability > tau_bg), (2) its current label is background or
    a class being corrected, (3) the predicted class is background or a class being corrected, and
    (4, class constraint) the predicted class is background or already present in the case's label.

    Args:
        labels: (G, ...) current class indices.
        probs: (G, n, ...) prediction (averaged over scales and flips).
        correcting: (G, n) bool, the classes under correction (column 0, background, is ignored).

    Returns:
        (G, ...) new class indices.
    """
    new = labels.copy()
    for g in range(labels.shape[0]):
        pred = probs[g].argmax(axis=0)
        confident = (probs[g, 1:].max(axis=0) > tau_fg) | (probs[g, 0] > tau_bg)
        allowed = np.flatnonzero(correcting[g]).tolist()
        old_ok = (labels[g] == 0) | np.isin(labels[g], allowed)
        new_ok = (pred == 0) | np.isin(pred, allowed)
        replace = confident & old_ok & new_ok
        if class_constraint:
            replace &= (pred == 0) | np.isin(pred, np.unique(labels[g]))
        new[g] = np.where(replace, pred, labels[g])
    return new


def multiscale_consistency(probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over scales of KL(p_s || m), m the clamped mixture (the reference's JSD term), mean over voxels."""
    mixture = torch.stack(list(probs)).mean(dim=0).clamp(MIXTURE_CLAMP, 1.0 - MIXTURE_CLAMP)
    log_mixture = mixture.log()
    kl = [(torch.xlogy(p, p) - p * log_mixture).sum(dim=2) for p in probs]  # each (B, G, ...)
    return torch.stack(kl).mean()


def scaled_size(size: Sequence[int], scale: float, multiple: int, minimum: int) -> tuple[int, ...]:
    """``size * scale`` rounded to the backbone's multiple and at least its minimum, per side."""
    return tuple(max(minimum, multiple * int(round(s * scale / multiple))) for s in size)


def iou_counts(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(intersection, union), each (G, n), of class index maps (B, G, ...)."""
    classes = torch.arange(n_classes, device=pred.device).view(1, 1, -1, *([1] * (pred.dim() - 2)))
    p, t = pred.unsqueeze(2) == classes, target.unsqueeze(2) == classes  # (B, G, n, ...)
    dims = [0, *range(3, p.dim())]
    inter = (p & t).sum(dim=dims).double().cpu().numpy()
    union = (p | t).sum(dim=dims).double().cpu().numpy()
    return inter, union


# ----------------------------------------------------------------------------- trainer


@METHODS.register("adele")
class ADELETrainer(BaselineTrainer):
    """Multi-scale consistency training; per-class label correction once that class's IoU curve flattens."""

    OPTIONS = ADELEOptions
    NAME = "ADELE"
    DESCRIPTION = "ADELE (Liu 2022): per-class label correction when the fitted training-IoU curve flattens"
    FOOTNOTE = "ADELE in 3D: scales by trilinear resizing; a Dice term added to the reference's cross-entropy."
    TRAIN_SCALARS = ("loss", "loss_ce", "loss_dice", "loss_consistency", "train_iou")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        groups, n = n_groups_classes(self.labels)
        self.multiple, self.minimum = BACKBONES.get(self.cfg.model.backbone).patch_rule(self.cfg.model)
        self.iou_history: list[np.ndarray] = []
        """Per completed epoch, (G, n) training IoU against the labels of that epoch."""
        self.start_epoch = np.full((groups, n), -1, dtype=np.int64)
        """(G, n) epoch (0-based) at whose end correction of the class started; -1 = not yet."""
        self.corrections: list[int] = []
        self._inter, self._union = np.zeros((groups, n)), np.zeros((groups, n))

    def scaled_logits(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Seg logits of the image at each scale, resized back to the patch: each (B, n_outputs, h, w, d)."""
        size = image.shape[2:]
        out = []
        for scale in self.options.scales:
            target = scaled_size(size, scale, self.multiple, self.minimum) if scale != 1.0 else tuple(size)
            resized = target != tuple(size)
            x = F.interpolate(image, size=target, mode="trilinear", align_corners=True) if resized else image
            logits = self.net(x, heads=("seg",)).seg
            if resized:
                logits = F.interpolate(logits, size=tuple(size), mode="trilinear", align_corners=True)
            out.append(logits)
        return out

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float]:
        image, label = batch["image"], batch["label"]  # (B, C, h, w, d), (B, n_outputs, h, w, d)
        mode = self.labels.mode
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.scaled_logits(image)
        main = logits[self.options.scales.index(1.0)]
        loss_ce = torch.stack([voxel_cross_entropy(z, label, mode).mean() for z in logits]).mean()
        loss_cons = multiscale_consistency([self.group_log_probs(z).exp() for z in logits])
        loss_dice = self.seg_loss(main, label)
        loss = loss_ce + self.options.dice_weight * loss_dice + self.options.consistency_weight * loss_cons
        self.backward_and_step(loss)
        inter, union = iou_counts(self.group_log_probs(main.detach()).argmax(dim=2), group_indices(label, mode),
                                  self._inter.shape[1])
        self.add_iou_counts(inter, union)
        fg = inter[:, 1:] / np.maximum(union[:, 1:], 1)
        return {"loss": loss.item(), "loss_ce": loss_ce.item(), "loss_dice": loss_dice.item(),
                "loss_consistency": loss_cons.item(), "train_iou": float(fg.mean())}

    def add_iou_counts(self, inter: np.ndarray, union: np.ndarray) -> None:
        """Accumulate a step's (G, n) intersections and unions into the epoch's training IoU."""
        self._inter += inter
        self._union += union

    @property
    def epochs_per_point(self) -> int:
        """Epochs whose steps make one IoU point: one pass over the training cases ("pass"), or 1 ("epoch").

        Why: the reference records one point per pass over its data (SegTHOR; VOC: every 100 of ~1058
        iterations); a point per 8-iteration epoch makes the r = 0.9 rule fire at the knee of the first
        fast rise (epochs 2-6 on LA, training IoU 0.45), and the corrections then damage the labels.
        """
        if self.options.curve_unit == "epoch":
            return 1
        per_pass = self.sampler.batches_per_pass(self.cfg.optim.batch_size)
        return max(1, round(per_pass / self.batches_per_epoch))

    @property
    def points_in_run(self) -> int:
        """IoU points the whole run records: the horizon of the slope rule (the reference's n_epoch)."""
        return max(1, self.cfg.optim.epochs // self.epochs_per_point)

    def on_epoch_end(self, epoch: int) -> None:
        """Close an IoU point when due; start classes whose curve flattened; correct the labels when due."""
        if (epoch + 1) % self.epochs_per_point:
            return  # the point's pass is not complete yet: keep counting
        self.iou_history.append(self.close_iou_point())
        history = np.stack(self.iou_history)  # (points, G, n)
        started_now = False
        for g, c in zip(*np.nonzero(self.start_epoch < 0), strict=True):
            if c > 0 and should_start_correction(history[:, g, c], self.points_in_run, self.options.r,
                                                 self.options.min_points, self.options.start_rule,
                                                 self.options.skip_flat_start):
                self.start_epoch[g, c] = epoch
                started_now = True
        due = len(self.iou_history) % self.options.correct_every == 0
        if (self.start_epoch >= 0).any() and (started_now or due):
            self.correct_training_labels()
            self.corrections.append(epoch)
        self.write_history()

    def close_iou_point(self) -> np.ndarray:
        """(G, n) IoU of the point now closing (NaN where a class is absent from labels and prediction).

        ``curve_source=volumes``: the whole-volume predictions of the training cases against their current
        labels (one prediction pass over the training cases a point; the patch counts are dropped);
        ``patches``: the counts accumulated over the point's training steps.
        """
        if self.options.curve_source == "volumes":
            inter, union = self.volume_iou_counts()
        else:
            inter, union = self._inter.copy(), self._union.copy()
        self._inter[:], self._union[:] = 0.0, 0.0
        return np.divide(inter, union, out=np.full_like(inter, np.nan), where=union > 0)

    def volume_iou_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(intersection, union), each (G, n), of the correction's prediction of every training volume,
        pooled over the cases (the reference pools its training IoU over the pass)."""
        inter, union = np.zeros_like(self._inter), np.zeros_like(self._union)
        for case in self.train_cases:
            pred = torch.from_numpy(self.multiscale_probs(case.image).argmax(axis=1))[None]  # (1, G, H, W, D)
            target = torch.from_numpy(label_groups(case.label, self.labels.mode).astype(np.int64))[None]
            i, u = iou_counts(pred, target, inter.shape[1])
            inter += i
            union += u
        return inter, union

    def correct_training_labels(self) -> None:
        """Replace confident voxels of the classes under correction in every training label; new sampler."""
        correcting = self.start_epoch >= 0
        cases = []
        for case in self.train_cases:
            groups = label_groups(case.label, self.labels.mode)
            new = correct_labels(groups, self.multiscale_probs(case.image), correcting, self.options.tau_fg,
                                 self.options.tau_bg)
            cases.append(case.with_label(label_from_groups(new, self.labels.mode)))
        self.set_training_labels(cases)

    @property
    def correction_scales(self) -> tuple[float, ...]:
        """Scales of the correction's prediction (``correction_scales``; None: the consistency's ``scales``)."""
        chosen = self.options.correction_scales
        return tuple(self.options.scales if chosen is None else chosen)

    def multiscale_probs(self, image: np.ndarray) -> np.ndarray:
        """(G, n, H, W, D) whole-volume prediction averaged over the correction's scales (and flips).

        Why one scale by default (defaults v4): the 3D reference (SegTHOR, ``brat/train_segthor.py``)
        corrects from its single-scale prediction of the training pass; the three scales and flips
        are its 2D VOC script's. They cost sum(s^3) x 2 = 9.4 whole-volume predictions per case, which
        made a correction pass 5-8 minutes on LA and ADELE 12-16x a baseline epoch (docs/results.md).
        """
        x = torch.as_tensor(image, dtype=torch.float32, device=self.device)[None]  # (1, C, H, W, D)
        size = tuple(x.shape[2:])
        total, count = None, 0
        for scale in self.correction_scales:
            scaled = x if scale == 1.0 else F.interpolate(
                x, size=tuple(max(1, round(s * scale)) for s in size), mode="trilinear", align_corners=True)
            for flip in (False, True) if self.options.flips else (False,):
                view = scaled.flip(-1) if flip else scaled
                prob = torch.from_numpy(self.volume_probs(self.net, view[0]))  # (G, n, h', w', d')
                prob = prob.flip(-1) if flip else prob
                if prob.shape[2:] != size:
                    prob = F.interpolate(prob, size=size, mode="trilinear", align_corners=True)
                total = prob if total is None else total + prob
                count += 1
        return (total / count).numpy()

    def set_training_labels(self, cases: list[Case]) -> None:
        """Train from now on with these cases' labels (a new patch sampler over them)."""
        self.train_cases = cases
        self.sampler = PatchSampler(
            self.train_cases, self.labels, self.cfg.data, seed=self.cfg.seed, trusted_ids=self.trusted_ids
        )

    def write_history(self) -> None:
        """adele.json: IoU per epoch and class, the epoch each class started, the epochs labels were corrected."""
        record = {
            "iou": [[[None if np.isnan(v) else float(v) for v in row] for row in epoch] for epoch in self.iou_history],
            "start_epoch": self.start_epoch.tolist(),
            "corrections": self.corrections,
        }
        atomic_write_text(json.dumps(record) + "\n", self.run_dir / HISTORY_FILE)

    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()
        state["adele"] = {
            "iou_history": torch.as_tensor(np.stack(self.iou_history)) if self.iou_history else torch.zeros(0),
            "start_epoch": torch.as_tensor(self.start_epoch),
            "corrections": list(self.corrections),
            "counts": torch.as_tensor(np.stack([self._inter, self._union])),  # a point's pass spans epochs
            "labels": {c.case_id: torch.from_numpy(np.ascontiguousarray(c.label)) for c in self.train_cases}
            if self.corrections else {},
        }
        return state

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        super().load_checkpoint_state(payload)
        saved = payload["adele"]
        self.iou_history = list(saved["iou_history"].numpy()) if saved["iou_history"].numel() else []
        self.start_epoch = saved["start_epoch"].numpy().copy()
        self.corrections = [int(e) for e in saved["corrections"]]
        if "counts" in saved:  # checkpoints before issue 16 closed a point every epoch
            self._inter[:], self._union[:] = saved["counts"].numpy()
        if saved["labels"]:
            self.set_training_labels([c.with_label(saved["labels"][c.case_id].numpy()) for c in self.train_cases])
