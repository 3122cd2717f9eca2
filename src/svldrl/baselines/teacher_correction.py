"""Teacher correction: train on the trusted cases, then train on every case with each voxel's label replaced
where that (frozen) model is confident it is wrong.

Ours, not from a paper (no reference code): the reference row for SVL-DRL-T's teacher reward (issue
15, C5 in docs/method.md): the same teacher and the same confidence rule applied directly, without
agents, so the table shows what the agents add on top. A voxel-level relative of the case filter and
of MTCL's correction (whose teacher is an average of the student, and so also learns the noisy
labels). Schedule, the same number of optimisation steps as the baseline:

1. the first ``filter_at`` share of the epochs trains on the trusted cases alone (as ``trusted-only``
   and the case filter's first stage); the network is then copied and frozen: the teacher;
2. the rest of the run trains on every case (the two-stream batches of ``data.trusted_per_batch``
   when set); in a non-trusted patch, a voxel's label is replaced by the teacher's where the
   teacher gives its own class more than ``confidence`` and the label says otherwise.

With ``gate=case`` only the cases the teacher flags are corrected: each non-trusted case is scored
by the Dice between the teacher's prediction and its label (as the case filter scores), Otsu's
split of the scores flags the low group (``teacher_gate.json``), and the other cases keep their
labels. Why: the converged trusted-only teacher corrects corrupted LA labels far toward the clean
ones (SFDA 50 %, seed 0: Dice to clean 54.7 -> 81.3) but also rewrites clean labels with its own
errors (100 -> 86.7); its case scores tell the two apart at AUC 0.82-0.96 (docs/results.md).

With ``teacher_run`` the teacher is a finished run's network (usually ``trusted-only`` of the same
seed, trained for the whole budget; ``training/teacher.py``) and step 2 takes the whole run.

The log's ``corrected`` column is the share of voxels replaced in the rows it corrects (non-trusted;
flagged too, when gated), per batch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from svldrl.baselines.case_filter import CaseFilterTrainer, check_filter_epoch, write_case_report
from svldrl.baselines.common import option, parse_method_options, require_trusted
from svldrl.training import METHODS
from svldrl.training.case_scores import cases_to_drop, gate_from_state, gate_to_state
from svldrl.training.teacher import TEACHER_RUN_HELP

GATE_FILE = "teacher_gate.json"
GATES = ("none", "case")


@dataclasses.dataclass(frozen=True)
class TeacherCorrectionOptions:
    filter_at: float = option(0.25, "share of the epochs trained on the trusted cases alone; then frozen: the teacher")
    confidence: float = option(0.8, "a label is replaced where the teacher gives its own class more than this")
    teacher_run: str = option("", TEACHER_RUN_HELP)
    gate: str = option("none", "'none': correct every non-trusted case; 'case': only those whose case score the "
                               "teacher flags (Otsu split of Dice(teacher prediction, label))")


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


@METHODS.register("teacher-correction")
class TeacherCorrectionTrainer(CaseFilterTrainer):
    """Trusted-only warm start, frozen as a teacher; then every case, labels replaced where the teacher is confident."""

    OPTIONS = TeacherCorrectionOptions
    NAME = "Teacher correction"
    DESCRIPTION = ("Teacher correction: train on the trusted cases, freeze that model, then train on every case with "
                   "the labels it confidently contradicts replaced by its own (needs trusted cases)")
    FOOTNOTE = "Teacher correction: not from a paper; SVL-DRL-T's teacher rule without agents (docs/method.md)."
    TRAIN_SCALARS = ("loss", "corrected")
    flagged: frozenset[str] | None = None
    """With gate=case, the cases the teacher flagged (set once the teacher is ready); None: ungated."""

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        super(CaseFilterTrainer, cls).check_config(cfg)
        options = parse_method_options(TeacherCorrectionOptions, cfg.method_options, cfg.method)
        require_trusted(cfg, "teacher-correction")
        check_filter_epoch(cfg, options.filter_at, options.teacher_run)
        if not 0.0 < options.filter_at < 1.0:
            raise ValueError(f"method_options.filter_at must be in (0, 1), got {options.filter_at}")
        if options.gate not in GATES:
            raise ValueError(f"method_options.gate must be one of {GATES}, got {options.gate!r}")
        if not 0.5 <= options.confidence < 1.0:
            raise ValueError(f"method_options.confidence must be in [0.5, 1), got {options.confidence}")

    def apply_filter(self) -> None:
        """Freeze the teacher (unless a teacher run gave it); every case comes in, its labels corrected per batch."""
        if self.teacher is None:
            self.freeze_teacher()
        if self.options.gate == "case":
            scores = self.score_cases()
            flagged, threshold = cases_to_drop(scores, "otsu")
            self.flagged = frozenset(flagged)
            write_case_report(self, GATE_FILE, scores, threshold, "flagged", sorted(flagged))
        self.dropped = []
        self.use_kept_cases()

    def corrects(self, case_id: str) -> bool:
        """Whether this case's labels are corrected: a non-trusted case (flagged by the gate, when gated)."""
        return case_id not in self.trusted_ids and (self.flagged is None or case_id in self.flagged)

    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()
        state["teacher_gate"] = gate_to_state(self.flagged)
        return state

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        super().load_checkpoint_state(payload)
        self.flagged = gate_from_state(payload.get("teacher_gate"))

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float]:
        if self.teacher is None:
            return {**super().train_step(batch, epoch), "corrected": 0.0}
        label = batch["label"].clone()
        rows = [i for i, case_id in enumerate(batch["case_id"]) if self.corrects(case_id)]
        corrected = math.nan  # a batch of trusted patches only: nothing to count (the epoch mean skips it)
        if rows:
            index = torch.tensor(rows, device=label.device)
            with torch.no_grad():
                teacher_logits = self.teacher(batch["image"][index], heads=("seg",)).seg
            fixed = confident_correction(label[index], teacher_logits, self.labels.mode, self.options.confidence)
            corrected = (fixed != label[index]).any(dim=1).float().mean().item()
            label[index] = fixed
        return {**super().train_step({**batch, "label": label}, epoch), "corrected": corrected}

