"""A frozen teacher kept with a run: a copy of the network taken once, saved in every checkpoint.

SVL-DRL-T's teacher reward (C5) and the ``teacher-correction`` baseline both freeze the network after
it trained on the trusted cases alone, then read it for the rest of the run; a resumed run must read
the same teacher, not one copied from the resumed network.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from svldrl.models import frozen_copy


class FrozenTeacherMixin:
    """Mixin for a Trainer: ``self.teacher`` (None until ``freeze_teacher``), kept in checkpoints as "teacher"."""

    teacher: nn.Module | None = None

    def freeze_teacher(self) -> None:
        """Copy the network as it is now; the copy never trains (eval mode, no gradients)."""
        self.teacher = frozen_copy(self.net)  # type: ignore[attr-defined]

    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()  # type: ignore[misc]
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        return state

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        super().load_checkpoint_state(payload)  # type: ignore[misc]
        if "teacher" in payload:
            self.freeze_teacher()
            assert self.teacher is not None
            self.teacher.load_state_dict(payload["teacher"])
