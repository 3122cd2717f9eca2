"""StageSchedule: boundaries from fractions or epochs, and each ablation of Tables 5-6."""

from __future__ import annotations

import pytest

from svldrl.config import StageConfig
from svldrl.training import Stage, StageSchedule

W, T, F = Stage.WARMUP, Stage.TRANSITION, Stage.FULL_RL


def stages_of(cfg: StageConfig, epochs: int) -> list[Stage]:
    schedule = StageSchedule(cfg, epochs)
    return [schedule.stage(e) for e in range(epochs)]


def test_default_fractions_split_50_20_30():
    assert stages_of(StageConfig(), 10) == [W] * 5 + [T] * 2 + [F] * 3


def test_fractions_round_half_up():
    # 0.5 * 5 = 2.5 -> 3 Warmup epochs; 0.2 * 5 = 1 Transition; 1 Full RL
    assert stages_of(StageConfig(), 5) == [W, W, W, T, F]


def test_explicit_epochs_override_fractions():
    cfg = StageConfig(warmup_epochs=2, transition_epochs=3, warmup_fraction=0.9)
    assert stages_of(cfg, 8) == [W] * 2 + [T] * 3 + [F] * 3


@pytest.mark.parametrize(
    ("ablation", "expected"),
    [
        ({"skip_warmup": True}, [T] * 7 + [F] * 3),  # w/o WS: Warmup's epochs go to Transition
        ({"skip_transition": True}, [W] * 5 + [F] * 5),  # w/o TS: Transition's go to Full RL
        ({"skip_warmup": True, "skip_transition": True}, [F] * 10),  # w/o WAT
        ({"skip_full_rl": True}, [W] * 5 + [T] * 5),  # w/o FRL: the last stage's go back to Transition
        ({"skip_full_rl": True, "skip_transition": True}, [W] * 10),
        ({"skip_warmup": True, "skip_full_rl": True}, [T] * 10),
    ],
)
def test_ablations_move_skipped_epochs(ablation, expected):
    assert stages_of(StageConfig(**ablation), 10) == expected


def test_first_epoch_of_each_stage():
    schedule = StageSchedule(StageConfig(skip_transition=True), 10)
    assert schedule.first_epoch(W) == 0
    assert schedule.first_epoch(T) is None
    assert schedule.first_epoch(F) == 5


def test_all_stages_skipped_is_an_error():
    with pytest.raises(ValueError, match="nothing to train"):
        StageSchedule(StageConfig(skip_warmup=True, skip_transition=True, skip_full_rl=True), 10)


def test_explicit_epochs_longer_than_run_is_an_error():
    with pytest.raises(ValueError, match="exceed optim.epochs"):
        StageSchedule(StageConfig(warmup_epochs=8, transition_epochs=3), 10)


def test_epoch_outside_schedule_is_an_error():
    with pytest.raises(ValueError, match="outside the schedule"):
        StageSchedule(StageConfig(), 10).stage(10)


def test_bad_fraction_is_an_error():
    with pytest.raises(ValueError, match="warmup_fraction"):
        StageSchedule(StageConfig(warmup_fraction=1.5), 10)
