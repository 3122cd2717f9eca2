"""``method_options`` of SVL-DRL-T (``svl-drl-trusted``): the dataclass, its one-line docs and its checks.

Kept apart from the trainer (``label_agents.py``) so that ``svldrl methods NAME`` and the configuration
checks read them without building anything.
"""

from __future__ import annotations

import dataclasses

from svldrl.config import TrainConfig, _from_dict
from svldrl.rl.credit import CREDIT_ESTIMATORS
from svldrl.training.stages import Stage, StageSchedule
from svldrl.training.teacher import TEACHER_RUN_HELP

CREDITS = ("voxel", "episode")
POLICY_GRADIENTS = ("all_actions", "sampled")
CORRECTIONS = ("threshold", "expected")
REWARDS = ("credit", "teacher")
GATES = ("none", "case")


@dataclasses.dataclass(frozen=True)
class LabelAgentOptions:
    """``method_options`` of svl-drl-trusted (one line each, shown by ``svldrl methods svl-drl-trusted``)."""

    credit: str = dataclasses.field(
        default="voxel",
        metadata={
            "doc": "'voxel': each agent's own trusted credit (design 2); 'episode': the sample's mean, "
            "shared (design 1)"
        },
    )
    trusted_batch: int = dataclasses.field(
        default=2,
        metadata={"doc": "trusted patches per step for the reward's gradient g_T (drawn from the trusted cases only)"},
    )
    credit_estimator: str = dataclasses.field(
        default="jvp",
        metadata={"doc": "'jvp' (exact forward-mode product) or 'finite_difference' (two more forwards, a few per "
                         "cent off: FINITE_DIFFERENCE_STEP)"},
    )
    correction_threshold: float = dataclasses.field(
        default=0.5,
        metadata={"doc": "a label voxel changes in the Dice target where the policy gives the change more than this"},
    )
    keep_prior: float = dataclasses.field(
        default=0.9,
        metadata={"doc": "initial probability of 'keep' (policy output bias); the rest is split between the two edits"},
    )
    correction: str = dataclasses.field(
        default="threshold",
        metadata={
            "doc": "Dice target in Full RL: 'threshold' (an edit applies where its probability passes correction_"
            "threshold) or 'expected' (the label expected under the policy at s(0): soft, moves with it)"
        },
    )
    policy_gradient: str = dataclasses.field(
        default="all_actions",
        metadata={
            "doc": "'all_actions': expected gradient over the 3 actions, whose credits are known (credit=voxel); "
            "'sampled': A2C on the sampled actions (Eqs. 5-6)"
        },
    )
    reward: str = dataclasses.field(
        default="credit",
        metadata={
            "doc": "'credit': the trusted credit of an edit (C2); 'teacher': the gain in log-likelihood of the label "
            "under a teacher trained on the trusted cases in Warmup, less logit(teacher_confidence) (C5)"
        },
    )
    teacher_confidence: float = dataclasses.field(
        default=0.8,
        metadata={"doc": "reward=teacher: an edit pays only where the teacher gives the new label more than this"},
    )
    teacher_run: str = dataclasses.field(default="", metadata={"doc": "reward=teacher: " + TEACHER_RUN_HELP})
    gate: str = dataclasses.field(
        default="none",
        metadata={
            "doc": "reward=teacher: 'none' (agents on every non-trusted case) or 'case' (only on the cases whose "
            "agreement with the teacher's prediction falls in the low group of an Otsu split)"
        },
    )


def parse_label_agent_options(cfg: TrainConfig) -> LabelAgentOptions:
    """``cfg.method_options`` as ``LabelAgentOptions``; unknown keys and bad values fail before any work."""
    valid = [f.name for f in dataclasses.fields(LabelAgentOptions)]
    unknown = sorted(set(cfg.method_options) - set(valid))
    if unknown:
        raise ValueError(f"method_options: unknown option(s) {unknown} for {cfg.method}; valid: {', '.join(valid)}")
    options = _from_dict(LabelAgentOptions, dict(cfg.method_options), "method_options")
    if options.credit not in CREDITS:
        raise ValueError(f"method_options.credit must be one of {CREDITS}, got {options.credit!r}")
    if options.credit_estimator not in CREDIT_ESTIMATORS:
        raise ValueError(
            f"method_options.credit_estimator must be one of {CREDIT_ESTIMATORS}, got {options.credit_estimator!r}"
        )
    if options.policy_gradient not in POLICY_GRADIENTS:
        raise ValueError(
            f"method_options.policy_gradient must be one of {POLICY_GRADIENTS}, got {options.policy_gradient!r}"
        )
    if options.policy_gradient == "all_actions" and options.credit != "voxel":
        raise ValueError(
            "method_options.policy_gradient=all_actions needs credit=voxel (an episode's shared credit "
            "has no value per action and voxel); set policy_gradient=sampled"
        )
    if options.correction not in CORRECTIONS:
        raise ValueError(f"method_options.correction must be one of {CORRECTIONS}, got {options.correction!r}")
    if options.reward not in REWARDS:
        raise ValueError(f"method_options.reward must be one of {REWARDS}, got {options.reward!r}")
    if not 0.5 <= options.teacher_confidence < 1.0:
        raise ValueError(f"method_options.teacher_confidence must be in [0.5, 1), got {options.teacher_confidence}")
    if options.gate not in GATES:
        raise ValueError(f"method_options.gate must be one of {GATES}, got {options.gate!r}")
    if options.gate != "none" and options.reward != "teacher":
        raise ValueError("method_options.gate scores the cases with the teacher; set reward=teacher")
    if options.teacher_run and options.reward != "teacher":
        raise ValueError("method_options.teacher_run is the teacher of reward=teacher; set reward=teacher")
    warmup = StageSchedule(cfg.stages, cfg.optim.epochs).lengths[Stage.WARMUP]
    if options.reward == "teacher" and not options.teacher_run and warmup < 1:
        raise ValueError(
            "method_options.reward=teacher trains its teacher in Warmup, which these stage settings "
            "leave without an epoch; give stages.warmup_fraction (or warmup_epochs) at least one epoch"
        )
    if options.trusted_batch < 1:
        raise ValueError(f"method_options.trusted_batch must be >= 1, got {options.trusted_batch}")
    if not 0.0 < options.correction_threshold < 1.0:
        raise ValueError(f"method_options.correction_threshold must be in (0, 1), got {options.correction_threshold}")
    if not 1.0 / 3.0 <= options.keep_prior < 1.0:
        raise ValueError(f"method_options.keep_prior must be in [1/3, 1), got {options.keep_prior}")
    return options
