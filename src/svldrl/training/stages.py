"""The Warmup -> Transition -> Full RL schedule (Algorithm 1) and its ablations (Tables 5-6)."""

from __future__ import annotations

import enum

from svldrl.config import StageConfig


class Stage(enum.Enum):
    """Training stage of SVL-DRL; decides which decoders learn and which loss is used."""

    WARMUP = "warmup"
    TRANSITION = "transition"
    FULL_RL = "full_rl"


_ORDER = (Stage.WARMUP, Stage.TRANSITION, Stage.FULL_RL)


def _nominal_length(fraction: float, explicit: int | None, epochs: int, name: str) -> int:
    """Epochs of one stage before ablations: the explicit count if given, else the rounded fraction."""
    if explicit is not None:
        if explicit < 0:
            raise ValueError(f"stages.{name}_epochs must be >= 0, got {explicit}")
        return explicit
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"stages.{name}_fraction must be in [0, 1], got {fraction}")
    return int(fraction * epochs + 0.5)  # round half up (Python's round() is banker's rounding)


class StageSchedule:
    """Which stage an epoch belongs to.

    Nominal lengths come from ``warmup_epochs``/``transition_epochs`` when set, else from the
    fractions (rounded half up); Full RL takes the remaining epochs. An ablated stage
    (``skip_warmup`` = "w/o WS", ``skip_transition`` = "w/o TS", both = "w/o WAT",
    ``skip_full_rl`` = "w/o FRL") gives its epochs to the next kept stage, or to the previous kept
    stage if there is no later one, so the run keeps its total length and the kept stages their
    order. Example, 10 epochs with 50/20/30 %: w/o WS -> Transition 7, Full RL 3; w/o TS ->
    Warmup 5, Full RL 5; w/o FRL -> Warmup 5, Transition 5.

    Args:
        stage_cfg: fractions, explicit lengths and ablation switches.
        epochs: total number of epochs of the run.
    """

    def __init__(self, stage_cfg: StageConfig, epochs: int) -> None:
        if epochs < 1:
            raise ValueError(f"optim.epochs must be >= 1, got {epochs}")
        warmup = _nominal_length(stage_cfg.warmup_fraction, stage_cfg.warmup_epochs, epochs, "warmup")
        transition = _nominal_length(stage_cfg.transition_fraction, stage_cfg.transition_epochs, epochs, "transition")
        if warmup + transition > epochs:
            raise ValueError(
                f"stages: Warmup ({warmup}) + Transition ({transition}) epochs exceed optim.epochs ({epochs})"
            )
        nominal = [warmup, transition, epochs - warmup - transition]
        skipped = [stage_cfg.skip_warmup, stage_cfg.skip_transition, stage_cfg.skip_full_rl]
        if all(skipped):
            raise ValueError("stages: skip_warmup, skip_transition and skip_full_rl are all set; nothing to train")
        self.epochs = epochs
        self.lengths: dict[Stage, int] = _reassign_skipped(nominal, skipped)
        self._boundaries = self._cumulative()

    def _cumulative(self) -> list[tuple[int, Stage]]:
        """(first epoch after the stage, stage) in order, for stages with at least one epoch."""
        out, end = [], 0
        for stage in _ORDER:
            if self.lengths[stage] > 0:
                end += self.lengths[stage]
                out.append((end, stage))
        return out

    def stage(self, epoch: int) -> Stage:
        """The stage of ``epoch`` (0-based)."""
        if not 0 <= epoch < self.epochs:
            raise ValueError(f"epoch {epoch} outside the schedule of {self.epochs} epochs")
        for end, stage in self._boundaries:
            if epoch < end:
                return stage
        raise AssertionError("unreachable: boundaries cover every epoch")

    def first_epoch(self, stage: Stage) -> int | None:
        """First epoch of ``stage``, or None if the stage has no epochs."""
        start = 0
        for s in _ORDER:
            if s is stage:
                return start if self.lengths[s] > 0 else None
            start += self.lengths[s]
        return None

    def __repr__(self) -> str:
        parts = ", ".join(f"{s.value}={n}" for s, n in self.lengths.items())
        return f"StageSchedule({parts})"


def _reassign_skipped(nominal: list[int], skipped: list[bool]) -> dict[Stage, int]:
    """Move each skipped stage's epochs to the next kept stage (or the previous one if none follows)."""
    lengths = [0 if skip else n for n, skip in zip(nominal, skipped, strict=True)]
    kept = [i for i, skip in enumerate(skipped) if not skip]
    for i, skip in enumerate(skipped):
        if skip:
            later = [k for k in kept if k > i]
            target = later[0] if later else max(k for k in kept if k < i)
            lengths[target] += nominal[i]
    return dict(zip(_ORDER, lengths, strict=True))
