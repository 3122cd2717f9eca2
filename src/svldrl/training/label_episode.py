"""The data of one label-agent episode and the small pieces of SVL-DRL-T that other modules share.

Kept apart from the trainer (``label_agents.py``) so that the log mixin, the meta-reweighting
baseline and the tests can use them without the whole trainer.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from svldrl.models.network import POLICY_INIT_SCALE
from svldrl.rl.mask_actions import KEEP


def seg_forward(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """(B, n_outputs, ...) segmentation logits of an image (the blank-mask pass of a ``MaskStateNet``)."""
    return net(image, heads=("seg",)).seg


class LabelEpisode(NamedTuple):
    """One episode of label edits on the agents' rows; index t is the state (image, m(t))."""

    masks: list[torch.Tensor]
    """m(0..K), each (A, F, h, w, d) foreground channels; m(0) is the noisy label."""
    values: dict[int, torch.Tensor]
    """t -> (A, 1, h, w, d) V(s(t)) with gradient, for t in the plan's ``rl_weights``."""
    policy_logits: dict[int, torch.Tensor]
    """t -> (A, 3, h, w, d) policy logits of s(t), for t in ``rl_weights`` (detached in Transition)."""
    first_policy: torch.Tensor
    """(A, 3, h, w, d) policy logits at s(0), detached: the correction of the Dice target."""
    actions: list[torch.Tensor]
    """a(0..K-1), each (A, h, w, d)."""
    entropy: list[torch.Tensor]
    """per step, (A, h, w, d) policy entropy (logs)."""
    bootstrap: torch.Tensor
    """(A, 1, h, w, d) zeros: s(K) is terminal (``label_episode``)."""


def changed_groups(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """(A, 1, ...) how many class groups (1 for classes; regions each) a label change touches, from (A, G, n, ...)
    class views: C5 charges its margin once per group, as the reward sums over groups."""
    return (old != new).any(dim=2).sum(dim=1, keepdim=True).to(old.dtype)


@torch.no_grad()
def set_keep_prior(net: nn.Module, keep_prior: float) -> None:
    """Bias the policy's output toward 'keep' with probability ``keep_prior`` at the start (edits share the rest).

    The policy output conv starts near zero (``ThreeHeadNet``), so its logits are the bias:
    ``log(keep_prior / ((1 - keep_prior) / 2))`` on keep, 0 on the edits.
    """
    conv = net.rl_output_conv("policy")
    if conv.bias is None:
        raise ValueError("set_keep_prior: the policy output conv has no bias")
    conv.weight.div_(POLICY_INIT_SCALE)  # back to the default init: the bias alone keeps the start near keep
    conv.bias.zero_()
    conv.bias[KEEP] = math.log(keep_prior / ((1.0 - keep_prior) / 2.0))
