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

With ``direction=case`` each corrected case keeps only the edits of its dominant direction (to
background or to foreground), and only when the teacher's edits of the whole case are more one-sided
than its edits of any trusted case (``imbalance=auto``); the others keep their labels
(``teacher_directions.json`` records each case's counts and direction). Why: case-level label noise
is systematic (SFDA over-segments: 90-93 % of its wrong voxels are false positives), while the
teacher's own errors on a clean label go both ways; applied both ways the teacher rewrote the clean
LA labels (Dice to clean 100 -> 87 and 78, seeds 0 and 1) as much as it fixed the corrupted ones
(``baselines/teacher_edits.py``, docs/results.md "Session 11").

With ``teacher_run`` the teacher is a finished run's network (usually ``trusted-only`` of the same
seed, trained for the whole budget; ``training/teacher.py``) and step 2 takes the whole run.

The log's ``corrected`` column is the share of voxels replaced in the rows it corrects (non-trusted;
flagged too, when gated), per batch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import torch

from svldrl.baselines.case_filter import CaseFilterTrainer, check_filter_epoch, write_case_report
from svldrl.baselines.common import option, parse_method_options, require_trusted
from svldrl.baselines.teacher_edits import (
    NONE,
    check_direction_options,
    confident_correction,
    direction_rule,
    imbalance,
    one_direction,
)
from svldrl.training import METHODS
from svldrl.training.case_scores import cases_to_drop, gate_from_state, gate_to_state
from svldrl.training.checkpoint import atomic_write_text
from svldrl.training.teacher import TEACHER_RUN_HELP

GATE_FILE = "teacher_gate.json"
DIRECTION_FILE = "teacher_directions.json"
GATES = ("none", "case")
DIRECTIONS = ("both", "case")


@dataclasses.dataclass(frozen=True)
class TeacherCorrectionOptions:
    filter_at: float = option(0.25, "share of the epochs trained on the trusted cases alone; then frozen: the teacher")
    confidence: float = option(0.8, "a label is replaced where the teacher gives its own class more than this")
    teacher_run: str = option("", TEACHER_RUN_HELP)
    gate: str = option("none", "'none': correct every non-trusted case; 'case': only those whose case score the "
                               "teacher flags (Otsu split of Dice(teacher prediction, label))")
    direction: str = option("both", "'both': every confident edit; 'case': per case only the edits of its dominant "
                                    "direction, where they are more one-sided than 'imbalance' (teacher_edits.py)")
    imbalance: str = option("auto", "direction=case: the |log10(edits to background / to foreground)| a case must "
                                    "exceed to be corrected; 'auto': the largest the teacher shows on trusted cases")


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
    directions: dict[str, str] | None = None
    """With direction=case, each non-trusted case's direction ('background', 'foreground', 'none')."""

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
        if options.direction not in DIRECTIONS:
            raise ValueError(f"method_options.direction must be one of {DIRECTIONS}, got {options.direction!r}")
        check_direction_options(options.confidence, options.imbalance)

    def apply_filter(self) -> None:
        """Freeze the teacher (unless a teacher run gave it); every case comes in, its labels corrected per batch."""
        if self.teacher is None:
            self.freeze_teacher()
        if self.options.gate == "case":
            scores = self.score_cases()
            flagged, threshold = cases_to_drop(scores, "otsu")
            self.flagged = frozenset(flagged)
            write_case_report(self, GATE_FILE, scores, threshold, "flagged", sorted(flagged))
        if self.options.direction == "case":
            self.choose_directions()
        self.dropped = []
        self.use_kept_cases()

    def choose_directions(self) -> None:
        """direction=case: each case's dominant edit direction, or none; recorded in ``teacher_directions.json``."""
        counts, threshold, self.directions = direction_rule(
            self, self.teacher, self.options.confidence, self.options.imbalance
        )
        if self.flagged is not None:  # gate=case as well: a case the gate leaves out is never corrected
            self.directions = {c: d if c in self.flagged else NONE for c, d in self.directions.items()}
        cases = {case_id: {"to_background": b, "to_foreground": f, "imbalance": round(imbalance(b, f), 4),
                           "direction": self.directions.get(case_id, "trusted"), **self.noise_diagnostics(case_id)}
                 for case_id, (b, f) in sorted(counts.items())}  # fmt: skip
        report = {"imbalance": self.options.imbalance, "threshold": threshold, "cases": cases}
        atomic_write_text(json.dumps(report, indent=2) + "\n", self.run_dir / DIRECTION_FILE)

    def noise_diagnostics(self, case_id: str) -> dict[str, Any]:
        """What the noise did to a case (corrupted; MT's dilation or erosion), for the report only.

        Read after the directions are chosen and never by them: it lets ``direction_report.py``
        count whether a corrupted case was corrected in the direction its noise calls for.
        """
        if self.noise_manifest is None or self.corrupted_ids is None:
            return {}
        corrupted = case_id in self.corrupted_ids  # Trainer.corrupted_ids: the manifest's, derived once
        operation = self.noise_manifest.case(case_id).operation if corrupted else None
        return {"corrupted": corrupted, **({"operation": operation} if operation else {})}

    def corrects(self, case_id: str) -> bool:
        """Whether this case's labels are corrected: a non-trusted case (flagged by the gate, when gated)."""
        if case_id in self.trusted_ids or (self.flagged is not None and case_id not in self.flagged):
            return False
        return self.directions is None or self.directions.get(case_id, NONE) != NONE

    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()
        state["teacher_gate"] = gate_to_state(self.flagged)
        state["teacher_directions"] = self.directions
        return state

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        super().load_checkpoint_state(payload)
        self.flagged = gate_from_state(payload.get("teacher_gate"))
        self.directions = payload.get("teacher_directions")

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
            if self.directions is not None:  # each row keeps the edits of its case's direction only
                fixed = torch.cat([one_direction(label[i : i + 1], fixed[k : k + 1], self.labels.mode,
                                                 self.directions[batch["case_id"][i]])
                                   for k, i in enumerate(rows)])  # fmt: skip
            corrected = (fixed != label[index]).any(dim=1).float().mean().item()
            label[index] = fixed
        return {**super().train_step({**batch, "label": label}, epoch), "corrected": corrected}

