"""Voxel-level actor-critic: Eq. 10 actions, rewards (Eqs. 11-14), returns and the A2C losses."""

from svldrl.rl.actions import (
    ENHANCE,
    KEEP,
    WEAKEN,
    action_log_prob_and_entropy,
    apply_actions,
    greedy_actions,
    sample_actions,
)
from svldrl.rl.returns import discounted_returns, normalize_advantages, policy_loss, value_loss
from svldrl.rl.rewards import RewardParts, anatomical_penalty, soft_dice, step_reward

__all__ = [
    "ENHANCE",
    "KEEP",
    "WEAKEN",
    "RewardParts",
    "action_log_prob_and_entropy",
    "anatomical_penalty",
    "apply_actions",
    "discounted_returns",
    "greedy_actions",
    "normalize_advantages",
    "policy_loss",
    "sample_actions",
    "soft_dice",
    "step_reward",
    "value_loss",
]
