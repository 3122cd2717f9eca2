"""A frozen teacher kept with a run: a copy of the network taken once, saved in every checkpoint.

SVL-DRL-T's teacher reward (C5), the ``teacher-correction`` baseline and the case filter read a
network trained on the trusted cases alone. Two ways to get it:

- in the run itself (``freeze_teacher``): the run's first epochs train on the trusted cases, then
  the network is copied and frozen. Cheap, but the teacher has had only that share of the budget:
  on LA at 160 epochs, 40 epochs of trusted-only training leave a teacher well below the
  ``trusted-only`` row, and every method that follows it ends below that row too (issue 15);
- from a finished run (``method_options.teacher_run``, ``adopt_teacher_run``): usually the
  ``trusted-only`` run of the same seed, trained for the whole budget. The run must have trained
  on the same split, with the same trusted cases and the same noise settings (checked here, before
  training), so the teacher has seen no label this run may not see. The student then trains for
  its own whole budget: the pair costs two runs, and the tables say so ("(teacher run)").

A resumed run takes the teacher's weights from its own checkpoint; the teacher's folder must still
be there (the network is rebuilt from it). The saved configuration holds the teacher's path, so a
grid whose runs move to another runs root cannot reuse or resume those runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from svldrl.models import frozen_copy

TEACHER_RUN_HELP = ("a finished run (usually trusted-only, same seed) whose network is the frozen teacher from the "
                    "first step, instead of the run's own trusted-only start; same split and trusted cases required")


class FrozenTeacherMixin:
    """Mixin for a Trainer: ``self.teacher`` (None until ``freeze_teacher``), kept in checkpoints as "teacher"."""

    teacher: nn.Module | None = None

    def freeze_teacher(self) -> None:
        """Copy the network as it is now; the copy never trains (eval mode, no gradients)."""
        self.teacher = frozen_copy(self.net)  # type: ignore[attr-defined]

    def adopt_teacher_run(self, run: str | Path) -> None:
        """The final network of the finished run ``run`` as the frozen teacher, after checking it may teach this run."""
        from svldrl.training.checkpoint import load_trained

        run = Path(run)
        check_teacher_run(run, self)
        net, _, _ = load_trained(run, device=self.device)  # type: ignore[attr-defined]
        self.teacher = frozen_copy(net)

    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()  # type: ignore[misc]
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        return state

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        super().load_checkpoint_state(payload)  # type: ignore[misc]
        if "teacher" in payload:
            if self.teacher is None:
                self.freeze_teacher()
            assert self.teacher is not None
            self.teacher.load_state_dict(payload["teacher"])


def check_teacher_run_finished(run: str | Path) -> None:
    """Refuse, before any work, a teacher run that is not a finished run folder."""
    run = Path(run)
    if not (run / "metrics.json").is_file():
        raise ValueError(f"method_options.teacher_run {run}: not a finished run (no metrics.json); train it first")


def check_teacher_run(run: Path, trainer: Any) -> None:
    """The teacher must have trained on this run's split, with its trusted cases, labels and input channels,
    and (unless it trained on the trusted cases alone) under this run's noise.

    Why: a teacher that saw another split may have trained on this run's validation or test cases,
    and one with other trusted cases saw clean labels this run does not have; both would make the
    comparison with ``trusted-only`` unfair. One line names the file and the mismatch.
    """
    from svldrl.config import to_dict
    from svldrl.training.checkpoint import checkpoint_path, labels_from_dict, load_checkpoint

    check_teacher_run_finished(run)
    split = json.loads((run / "split.json").read_text())
    train_ids = sorted(c.case_id for c in trainer.train_cases)
    val_ids = sorted(c.case_id for c in trainer.val_cases)
    if sorted(split["train"]) != train_ids or sorted(split["val"]) != val_ids:
        raise ValueError(f"{run / 'split.json'}: the teacher run's split differs from this run's; "
                         "a teacher must train on the same split (same seed and data settings)")
    trusted = sorted(json.loads((run / "trusted.json").read_text())["cases"]) if (run / "trusted.json").exists() else []
    if trusted != sorted(trainer.trusted_ids):
        raise ValueError(f"{run / 'trusted.json'}: the teacher's trusted cases {trusted} differ from this run's "
                         f"{sorted(trainer.trusted_ids)}")
    payload = load_checkpoint(checkpoint_path(run), map_location="cpu")
    if labels_from_dict(payload["labels"]) != trainer.labels or int(payload["in_channels"]) != trainer.in_channels:
        raise ValueError(f"{run}: the teacher's labels or input channels differ from this run's")
    teacher_noise, noise = payload["config"].get("noise", {}), to_dict(trainer.cfg.noise)
    # A trusted-only teacher trained on the trusted cases' clean labels alone (the same cases, checked
    # above), so the noise of its run never reached it: its MT and SFDA runs of a seed are one training.
    only_trusted = payload["config"].get("method") == "trusted-only"
    if not only_trusted and {k: teacher_noise.get(k) for k in noise} != noise:
        kind, ratio, seed = (teacher_noise.get(k) for k in ("kind", "ratio", "seed"))
        raise ValueError(f"{run / 'config.yaml'}: the teacher trained with other noise settings than this run "
                         f"({kind} {ratio} seed {seed}); it may have seen labels this run does not have")
