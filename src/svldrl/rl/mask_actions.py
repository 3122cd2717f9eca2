"""Mask actions: voxel agents that edit a binary mask directly (keep / set foreground / set background).

PixelDRL-MG's action space (its agents edit the predicted mask) and the label agents of
``svl-drl-trusted`` (theirs edit the training label). Everything here is a pure function on tensors.
"""

from __future__ import annotations

import torch
from torch import nn

KEEP, SET_FOREGROUND, SET_BACKGROUND = 0, 1, 2
"""Mask actions of a voxel agent (the policy decoder's three outputs)."""
MASK_LOGIT = 10.0
"""|logit| of a refined mask returned by ``MaskStateNet.segment`` (softmax/sigmoid ~ 1 - 5e-5)."""


def initial_mask(seg_logits: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, F, ...) thresholded prediction: foreground channels of the argmax (classes) or sigmoid > 0.5 (regions)."""
    if mode == "classes":
        onehot = nn.functional.one_hot(seg_logits.argmax(dim=1), seg_logits.shape[1]).movedim(-1, 1)
        return onehot[:, 1:].to(seg_logits.dtype)
    return (seg_logits > 0).to(seg_logits.dtype)


def foreground_proposal(seg_logits: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, F, ...) what "set foreground" writes: the most likely foreground class (one-hot), or for regions
    the regions above 0.5, else the most likely one."""
    fg = seg_logits[:, 1:] if mode == "classes" else seg_logits  # (B, F, ...)
    best = nn.functional.one_hot(fg.argmax(dim=1), fg.shape[1]).movedim(-1, 1).to(seg_logits.dtype)
    if mode == "classes":
        return best
    above = (fg > 0).to(seg_logits.dtype)
    return torch.where(above.sum(dim=1, keepdim=True) > 0, above, best)


def apply_mask_actions(mask: torch.Tensor, actions: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
    """The next mask: per voxel keep (0), write ``proposal`` (1) or clear every channel (2).

    Args:
        mask: (B, F, ...) current mask in {0, 1}.
        actions: (B, ...) integer actions in {0, 1, 2}.
        proposal: (B, F, ...) foreground labelling written by action 1.
    """
    if mask.shape != proposal.shape or actions.shape != mask.shape[:1] + mask.shape[2:]:
        raise ValueError(f"apply_mask_actions: mask {tuple(mask.shape)}, proposal {tuple(proposal.shape)} and "
                         f"actions {tuple(actions.shape)} do not fit (actions: one per voxel)")
    if actions.dtype.is_floating_point or (actions.numel() and (actions.min() < 0 or actions.max() > 2)):
        raise ValueError("apply_mask_actions: actions must be integers in {0, 1, 2}")
    a = actions.unsqueeze(1)  # (B, 1, ...)
    return torch.where(a == SET_FOREGROUND, proposal, torch.where(a == SET_BACKGROUND, torch.zeros_like(mask), mask))


@torch.no_grad()
def mask_agreement_reward(prev_mask: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 1, ...) each voxel's improvement of agreement with the label, ``|m(t-1) - y| - |m(t) - y|``, mean over F.

    Args:
        prev_mask, mask: (B, F, ...) masks before and after the step.
        target: (B, F, ...) foreground channels of the training label.
    """
    return ((prev_mask - target).abs() - (mask - target).abs()).mean(dim=1, keepdim=True)


def mask_logits(mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, n_outputs, ...) logits whose softmax/sigmoid is (almost) the (B, F, ...) mask (background = no channel)."""
    if mode == "classes":
        background = 1.0 - mask.amax(dim=1, keepdim=True)
        mask = torch.cat([background, mask], dim=1)
    return MASK_LOGIT * (2.0 * mask - 1.0)
