"""MTCL: mean teacher + confident learning (Xu et al., IEEE TMI 2022; reference code: lemoshu/MTCL @ 09861e4,
LA_set_3D/code/train_MTCL_3D.py).

A student and its exponential-moving-average teacher, warmed up as the reference:
``min(1 - 1 / (step + 1), decay)``. The reference's decay 0.99 is a horizon of 100 of its 8000 steps
(1.25 %); ``ema_decay=auto`` (default) keeps that share in a run of any length (``budget_decay``:
0.75 at 320 steps, 0.9375 at 1280); tables before issue 16 used 0.99 (commit 7985167 and earlier).
Clean ("high-quality") cases train the student with
``0.5 (CE + Dice)``. For noisy ("low-quality") cases, confident learning on the teacher's
probabilities (cleanlab's ``find_label_issues``, ``filter_by="both"``) flags the voxels whose label is
likely wrong; those are flipped ("hard" refinement, the reference's default; with more than two
classes a flagged voxel takes the teacher's most likely other class) and the student learns
``0.5 (CE + Dice)`` on the corrected label, plus a consistency loss (MSE between the student's and
the teacher's probabilities, the teacher seeing the image with clamped Gaussian noise).

    L = L_sup + lambda(t) (L_cons + 5 L_weak),   lambda(t) = 0.1 exp(-5 (1 - t / T_ramp)^2)

``T_ramp`` is ``rampup_fraction`` (75 %) of the run's steps: the reference's ``0.1 sigmoid_rampup(iter //
150, 40)`` is a staircase over 40 x 150 = 6000 of its 8000 iterations (75 %); ours rises continuously.

Which cases are clean: the run's trusted cases when it has them (``data.trusted_count`` /
``trusted_cases``, what a real group has: MTCL's own LA protocol keeps 8 of 80 cases clean), else
oracle knowledge read from the noise manifest (the tables before issue 14); ``clean_cases="none"``
treats every case as noisy. The reference puts clean and noisy cases in every batch (2 + 2,
``TwoStreamBatchSampler``): set ``data.trusted_per_batch`` (half the batch) for that. The student
is validated and saved, as in the reference.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from cleanlab.filter import find_label_issues
from torch import nn

from svldrl.baselines.common import (
    BaselineTrainer,
    ema_update,
    from_group_targets,
    group_indices,
    option,
    parse_method_options,
    require_trusted,
    seg_probabilities,
    voxel_cross_entropy,
)
from svldrl.training import METHODS

CLEAN_SOURCES = ("auto", "trusted", "oracle", "none")
FILTERS = ("both", "prune_by_class", "prune_by_noise_rate")


@dataclass(frozen=True)
class MTCLOptions:
    """``method_options`` of mtcl (defaults from the reference's LA 3D script)."""

    clean_cases: str = option(
        "auto",
        "'trusted' (the run's trusted cases), 'oracle' (not corrupted in the noise manifest), 'none' (all "
        "noisy), or 'auto': trusted when the run has trusted cases, else oracle",
    )
    ema_decay: str = option(
        "auto",
        "decay of the teacher's moving average: 'auto' keeps the reference's horizon as a share of the run "
        "(1 / (1 - 0.99) = 100 of 8000 steps, 1.25 %), or a number (the reference's 0.99 in any run)",
    )
    consistency: float = option(0.1, "final lambda, the weight of (L_cons + weak_weight L_weak)")
    rampup_fraction: float = option(0.75, "share of steps over which lambda ramps up (reference: 40 x 150 of 8000)")
    weak_weight: float = option(5.0, "weight of the loss on the corrected labels of noisy cases")
    teacher_noise: float = option(0.1, "std of the Gaussian noise on the teacher's input, clamped to +-2 std")
    filter_by: str = option("both", "cleanlab find_label_issues filter_by")
    evaluate: str = option("student", "network validated and saved: 'student' (reference) or 'teacher'")

    def __post_init__(self) -> None:
        if self.clean_cases not in CLEAN_SOURCES:
            raise ValueError(f"method_options.clean_cases must be one of {CLEAN_SOURCES}, got {self.clean_cases!r}")
        if self.filter_by not in FILTERS:
            raise ValueError(f"method_options.filter_by must be one of {FILTERS}, got {self.filter_by!r}")
        if self.evaluate not in ("student", "teacher"):
            raise ValueError(f"method_options.evaluate must be 'student' or 'teacher', got {self.evaluate!r}")
        if self.ema_decay != "auto":
            try:
                decay = float(self.ema_decay)
            except ValueError:
                decay = -1.0
            if not 0.0 <= decay <= 1.0:
                raise ValueError(f"method_options.ema_decay must be 'auto' or in [0, 1], got {self.ema_decay!r}")
        if not 0.0 <= self.rampup_fraction <= 1.0:
            raise ValueError("method_options.rampup_fraction must be in [0, 1]")
        if min(self.consistency, self.weak_weight, self.teacher_noise) < 0:
            raise ValueError("method_options.consistency, weak_weight and teacher_noise must be >= 0")


# ----------------------------------------------------------------------------- mechanism


def clean_source(clean_cases: str, trusted: bool) -> str:
    """``clean_cases`` with ``auto`` resolved: ``trusted`` when the run has trusted cases, else ``oracle``."""
    if clean_cases == "auto":
        return "trusted" if trusted else "oracle"
    return clean_cases


def sigmoid_rampup(current: float, length: float) -> float:
    """``exp(-5 (1 - t)^2)``, ``t = current / length`` clipped to [0, 1] (Laine & Aila; the reference's ramps.py)."""
    if length <= 0:
        return 1.0
    phase = 1.0 - float(np.clip(current, 0.0, length)) / length
    return float(math.exp(-5.0 * phase * phase))


REFERENCE_EMA_DECAY = 0.99
REFERENCE_STEPS = 8000
"""The reference's LA run: ``ema_decay=0.99`` over ``max_iterations=8000`` (train_MTCL_3D.py L43, L64)."""


def budget_decay(total_steps: int) -> float:
    """The EMA decay whose horizon ``1 / (1 - decay)`` is the reference's share of its run (100 / 8000 steps).

    Why: 0.99 averages the last ~100 steps; in the reference that is 1.25 % of the run, in a 320-step
    run 31 %, so the teacher deciding the label flips lags far behind the student (issue 16). At least
    one step (decay 0: the teacher is the student).
    """
    horizon = max(1.0, total_steps / (1.0 - REFERENCE_EMA_DECAY) / REFERENCE_STEPS)
    return 1.0 - 1.0 / horizon


def teacher_decay(step: int, decay: float) -> float:
    """The reference's EMA decay at ``step``: ``min(1 - 1 / (step + 1), decay)`` (the teacher copies the start)."""
    return min(1.0 - 1.0 / (step + 1), decay)


def find_noisy_voxels(labels: np.ndarray, probs: np.ndarray, filter_by: str = "both") -> np.ndarray:
    """Bool (N,): voxels whose label confident learning flags (cleanlab ``find_label_issues``).

    Args:
        labels: (N,) noisy class indices.
        probs: (N, n) out-of-sample-like probabilities (here: the teacher's).
        filter_by: cleanlab's method; "both" in the reference.
    """
    with warnings.catch_warnings():  # a patch without some class makes cleanlab warn on every step
        warnings.simplefilter("ignore", UserWarning)
        return find_label_issues(labels, probs, filter_by=filter_by, n_jobs=1)


def flip_flagged(labels: np.ndarray, probs: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """(N,) labels with each flagged voxel moved to its most likely OTHER class (two classes: flipped)."""
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return np.where(flagged, others.argmax(axis=1), labels)


def corrected_targets(target: torch.Tensor, teacher_probs: torch.Tensor, mode: str, filter_by: str) -> torch.Tensor:
    """The batch label (B, n_outputs, ...) with the voxels flagged by confident learning flipped.

    Confident learning runs once per class group on all voxels of the batch pooled, as the reference
    pools the noisy half of its batch.

    Args:
        target: (B, n_outputs, h, w, d) noisy labels of noisy cases.
        teacher_probs: (B, G, n, h, w, d) teacher's class-view probabilities.
    """
    classes = group_indices(target, mode)  # (B, G, h, w, d)
    n = teacher_probs.shape[2]
    fixed = classes.clone()
    for g in range(classes.shape[1]):
        labels = classes[:, g].reshape(-1).cpu().numpy()
        probs = teacher_probs[:, g].movedim(1, -1).reshape(-1, n).double().cpu().numpy()  # (N, n)
        new = flip_flagged(labels, probs, find_noisy_voxels(labels, probs, filter_by))
        fixed[:, g] = torch.from_numpy(new).view_as(fixed[:, g]).to(fixed.device)
    onehot = nn.functional.one_hot(fixed, n).movedim(-1, 2).to(target.dtype)  # (B, G, n, h, w, d)
    return from_group_targets(onehot, mode)


def flips_of(label: torch.Tensor, corrected: torch.Tensor, mode: str) -> dict[str, float]:
    """The share of voxels (per class group) whose label confident learning changed, and of those the
    share it set to background (class 0 of its group: with ``regions`` labels, taken out of that
    region, pooled over the regions). Each is the batch's share; the log averages them over batches.

    Why the direction: a flip share alone cannot tell a teacher that shrinks the foreground from one
    that grows it; under MT noise both directions are wrong somewhere, so a one-sided share is a sign
    (docs/results.md, "Session 18": MTCL's worst seed).
    """
    old, new = group_indices(label, mode), group_indices(corrected, mode)
    changed = old != new
    n_changed = int(changed.sum())
    to_background = float((changed & (new == 0)).sum()) / n_changed if n_changed else float("nan")
    return {"flipped_fraction": changed.float().mean().item(), "flipped_to_background": to_background}


# ----------------------------------------------------------------------------- trainer


@METHODS.register("mtcl")
class MTCLTrainer(BaselineTrainer):
    """Mean teacher; clean cases supervised, noisy cases corrected by confident learning on the teacher."""

    OPTIONS = MTCLOptions
    NAME = "MTCL"
    ORACLE = True
    DESCRIPTION = (
        "MTCL (Xu 2022): mean teacher + confident learning on noisy cases (clean cases: the trusted ones, "
        "else the noise manifest's, oracle)"
    )
    FOOTNOTE = (
        "MTCL: clean cases are the run's trusted cases, or (oracle) those the noise manifest leaves clean; "
        "the student is evaluated (reference)."
    )
    TRAIN_SCALARS = ("loss", "loss_sup", "loss_cons", "loss_weak", "consistency_weight", "flipped_fraction",
                     "flipped_to_background")  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clean_ids = self.find_clean_ids()
        self.global_step = 0

    @classmethod
    def uses_oracle(cls, options: MTCLOptions, trusted: bool = False) -> bool:
        return clean_source(options.clean_cases, trusted) == "oracle"

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        super().check_config(cfg)
        options = parse_method_options(cls.options_class(cfg.method_options), cfg.method_options, cfg.method)
        if getattr(options, "clean_cases", None) == "trusted":  # RSF-assisted ADELE has no clean_cases
            require_trusted(cfg, "method_options.clean_cases=trusted")

    def find_clean_ids(self) -> frozenset[str]:
        """Training cases treated as clean: the trusted ones, those the manifest leaves clean (oracle), or none."""
        source = clean_source(self.options.clean_cases, bool(self.trusted_ids))
        if source == "none":
            return frozenset()
        if source == "trusted":
            return frozenset(c.case_id for c in self.train_cases if c.case_id in self.trusted_ids)
        manifest = self.require_manifest("method_options.clean_cases='oracle'", "clean_cases='none'")
        return frozenset(c.case_id for c in self.train_cases if not manifest.case(c.case_id).corrupted)

    def build_models(self) -> nn.Module:
        """The student, and ``self.teacher``, its copy without gradients."""
        net = super().build_models()
        self.teacher = copy.deepcopy(net).to(self.device)
        self.teacher.requires_grad_(False)
        return net

    def eval_model(self) -> nn.Module:
        return self.teacher if self.options.evaluate == "teacher" else self.net

    @property
    def total_steps(self) -> int:
        return self.cfg.optim.epochs * self.batches_per_epoch

    @property
    def ema_decay(self) -> float:
        """The decay in use: ``budget_decay`` for 'auto', else the given number."""
        if self.options.ema_decay == "auto":
            return budget_decay(self.total_steps)
        return float(self.options.ema_decay)

    def consistency_weight(self, step: int) -> float:
        """lambda(t): the sigmoid ramp to ``consistency`` over ``rampup_fraction`` of the steps."""
        return self.options.consistency * sigmoid_rampup(step, self.options.rampup_fraction * self.total_steps)

    def supervised(self, seg_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """0.5 (CE + Dice), the reference's supervised loss."""
        ce = voxel_cross_entropy(seg_logits, target, self.labels.mode).mean()
        return 0.5 * (ce + self.seg_loss(seg_logits, target))

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float]:
        image, label = batch["image"], batch["label"]  # (B, C, h, w, d), (B, n_outputs, h, w, d)
        clean = torch.tensor([i in self.clean_ids for i in batch["case_id"]], device=image.device)  # (B,)
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.net(image, heads=("seg",)).seg  # (B, n_outputs, h, w, d)
        zero = logits.sum() * 0.0
        scalars: dict[str, float] = {}
        loss_sup = self.supervised(logits[clean], label[clean]) if clean.any() else zero
        loss_cons, loss_weak = zero, zero
        if (~clean).any():
            loss_cons, loss_weak, flips = self.noisy_case_losses(image[~clean], label[~clean], logits[~clean])
            scalars.update(flips)
        lam = self.consistency_weight(self.global_step)
        loss = loss_sup + lam * (loss_cons + self.options.weak_weight * loss_weak)
        self.backward_and_step(loss)
        ema_update(self.teacher, self.net, teacher_decay(self.global_step, self.ema_decay))
        self.global_step += 1
        scalars.update(loss=loss.item(), loss_sup=loss_sup.item(), loss_cons=loss_cons.item(),
                       loss_weak=loss_weak.item(), consistency_weight=lam)
        return scalars

    def noisy_case_losses(
        self, image: torch.Tensor, label: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(L_cons, L_weak, flip shares) for the noisy cases of the batch: ``flips_of``'s scalars."""
        mode = self.labels.mode
        noise = torch.randn(image.shape, generator=self.generator, device=image.device) * self.options.teacher_noise
        limit = 2.0 * self.options.teacher_noise
        with torch.no_grad():
            noisy_in = self.teacher(image + noise.clamp(-limit, limit), heads=("seg",)).seg
            teacher_noisy = seg_probabilities(noisy_in, mode)  # (Bn, n_outputs, h, w, d)
            teacher_logits = self.teacher(image, heads=("seg",)).seg
        loss_cons = ((seg_probabilities(logits, mode) - teacher_noisy) ** 2).mean()
        teacher_groups = self.group_log_probs(teacher_logits).exp()  # (Bn, G, n, h, w, d)
        corrected, vetting = self.correct_noisy_labels(image, label, teacher_groups)
        return loss_cons, self.supervised(logits, corrected), {**flips_of(label, corrected, mode), **vetting}

    def correct_noisy_labels(
        self, image: torch.Tensor, label: torch.Tensor, teacher_groups: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(Bn, n_outputs, ...) the noisy cases' labels with confident learning's flags flipped, and the
        scalars a variant logs about its own step (none here).

        A hook for variants that vet the flips with the image (RSF-assisted logs ``rsf_accepted``).
        """
        return corrected_targets(label, teacher_groups, self.labels.mode, self.options.filter_by), {}

    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()
        state["teacher"] = self.teacher.state_dict()
        state["global_step"] = self.global_step
        return state

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        super().load_checkpoint_state(payload)
        self.teacher.load_state_dict(payload["teacher"])
        self.global_step = int(payload["global_step"])

