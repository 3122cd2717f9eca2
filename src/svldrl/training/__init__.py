"""Training: the Trainer engine (stages, checkpoints, resume, logs), SVL-DRL, and the METHODS registry."""

from svldrl.training.checkpoint import load_checkpoint, load_trained
from svldrl.training.label_agent_options import LabelAgentOptions
from svldrl.training.label_agents import LabelAgentsTrainer
from svldrl.training.logs import read_log
from svldrl.training.methods import METHODS
from svldrl.training.seeding import resolve_device, seed_everything
from svldrl.training.stages import Stage, StageSchedule
from svldrl.training.svldrl import (
    GradientPlan,
    Rollout,
    SVLDRLTrainer,
    episode_rewards,
    gradient_plan,
    sampled_plan,
    single_plan,
    stage_loss,
)
from svldrl.training.trainer import Trainer, build_seg_loss

__all__ = [
    "METHODS",
    "GradientPlan",
    "LabelAgentOptions",
    "LabelAgentsTrainer",
    "Rollout",
    "SVLDRLTrainer",
    "Stage",
    "StageSchedule",
    "Trainer",
    "build_seg_loss",
    "episode_rewards",
    "gradient_plan",
    "load_checkpoint",
    "load_trained",
    "read_log",
    "resolve_device",
    "sampled_plan",
    "single_plan",
    "seed_everything",
    "stage_loss",
]
