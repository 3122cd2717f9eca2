"""What SVL-DRL-T's log records each step: losses, rewards, actions, and what the corrections did.

A mixin of ``LabelAgentsTrainer`` (``label_agents.py``); the ``changed_corrupted`` /
``changed_clean`` columns read the noise manifest as a diagnostic that nothing trains on.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from svldrl.rl.mask_actions import KEEP, SET_BACKGROUND, SET_FOREGROUND
from svldrl.training.svldrl import GradientPlan

if TYPE_CHECKING:
    from svldrl.training.label_episode import LabelEpisode


class LabelAgentLogMixin:
    """``label_scalars`` and ``correction_scalars`` for a trainer with ``corrupted_ids`` (or None)."""

    corrupted_ids: frozenset[str] | None

    def label_scalars(
        self,
        loss: torch.Tensor,
        l_dice: torch.Tensor,
        l_value: torch.Tensor,
        l_policy: torch.Tensor | None,
        episode: LabelEpisode,
        rewards: torch.Tensor,
        penalty_change: torch.Tensor,
        returns: torch.Tensor,
        plan: GradientPlan,
        credit_rms: float,
        changed: torch.Tensor | None,
        delta_groups: torch.Tensor,
        agent_ids: list[str],
    ) -> dict[str, float]:
        """What the log records: losses, rewards, the actions taken, and what the corrections did."""
        actions = torch.stack(episode.actions)  # (K, A, h, w, d)
        scalars = {
            "loss": loss.item(), "loss_dice": l_dice.item(), "loss_value": l_value.item(),
            "reward": rewards.mean().item(), "reward_penalty_change": penalty_change.mean().item(),
            "credit_rms": credit_rms,
            "action_keep": (actions == KEEP).float().mean().item(),
            "action_enhance": (actions == SET_FOREGROUND).float().mean().item(),
            "action_weaken": (actions == SET_BACKGROUND).float().mean().item(),
            "value_mean": sum(w * episode.values[t].detach().mean() for t, w in plan.rl_weights.items()).item(),
            "policy_entropy": torch.stack(episode.entropy).mean().item(),
            "advantage_std": torch.cat(
                [(returns[t] - episode.values[t].detach()).flatten() for t in plan.rl_weights]
            ).std(unbiased=False).item(),
        }  # fmt: skip
        if l_policy is not None:
            scalars["loss_policy"] = l_policy.item()
        if changed is not None:
            scalars.update(self.correction_scalars(episode.masks[0], changed, delta_groups, agent_ids))
        return scalars

    @torch.no_grad()
    def correction_scalars(
        self, label_mask: torch.Tensor, changed: torch.Tensor, delta_groups: torch.Tensor, agent_ids: list[str]
    ) -> dict[str, float]:
        """Share of agent voxels changed (and toward which class), their mean credit, and (diagnostics from the
        noise manifest, never trained on) the share changed on corrupted and on untouched cases."""
        was_foreground = label_mask.amax(dim=1) > 0  # (A, h, w, d)
        flip_credit = (delta_groups[:, :, 1:] - delta_groups[:, :, :1]).sum(dim=(1, 2))  # toward fg, two classes
        signed = torch.where(was_foreground, -flip_credit, flip_credit)  # credit of the change made
        n = max(int(changed.sum()), 1)
        scalars = {
            "label_changed": changed.float().mean().item(),
            "changed_to_foreground": (changed & ~was_foreground).float().mean().item(),
            "changed_to_background": (changed & was_foreground).float().mean().item(),
            "changed_credit": float(signed[changed].sum()) / n if changed.any() else math.nan,
        }
        if self.corrupted_ids is not None:
            rows = torch.tensor([case_id in self.corrupted_ids for case_id in agent_ids], device=changed.device)
            per_row = changed.flatten(1).float().mean(dim=1)  # (A,)
            scalars["changed_corrupted"] = per_row[rows].mean().item() if rows.any() else math.nan
            scalars["changed_clean"] = per_row[~rows].mean().item() if (~rows).any() else math.nan
        return scalars
