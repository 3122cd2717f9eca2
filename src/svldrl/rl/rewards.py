"""Rewards (Eqs. 11-14 as method.md reads them): soft-Dice gain minus a change of anatomical penalty.

    r(t) = [Dice(f(t), y) - Dice(f(t-1), y)] - w_c * [C~(f(t)) - C~(f(t-1))]
    C~(f) = min(Ncc(f > 0.5) - 1, 10) / 10 + TV(f) / max(1, sum f)

Rewards are signals, not losses: everything here runs without gradient. ``y`` is the training
label, noisy or not; the method never sees clean labels.
"""

from __future__ import annotations

from typing import NamedTuple

import cc3d
import numpy as np
import torch

GRANULARITIES = ("global", "voxel")
PENALTY_FORMS = ("difference", "level")
MAX_EXTRA_COMPONENTS = 10
"""Ncc - 1 is capped here, so the component part of C~ lies in [0, 1]."""


class RewardParts(NamedTuple):
    """One step's reward and its parts, for the returns and for the logs."""

    total: torch.Tensor
    """The reward: (B,) for "global", (B, 1, H, W, D) for "voxel"."""
    dice_gain: torch.Tensor
    """(B,) Dice(f(t), y) - Dice(f(t-1), y)."""
    penalty_change: torch.Tensor
    """(B,) the penalty term subtracted (before w_c): C~(t) - C~(t-1) ("difference") or C~(t) ("level")."""
    penalty: torch.Tensor
    """(B,) C~(f(t)); pass it as ``prev_penalty`` to the next step so each state is scored once."""


@torch.no_grad()
def soft_dice(prob: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(B,) soft Dice per sample, averaged over the F foreground channels, without gradient.

    A reward term, not a loss (the segmentation loss is MONAI's ``DiceLoss``, with gradient).

    ``(2 sum(p y) + eps) / (sum p + sum y + eps)`` per channel, so an empty target with an empty
    prediction scores 1 and an empty target with any prediction scores about 0.

    Args:
        prob: (B, F, H, W, D) foreground probabilities.
        target: (B, F, H, W, D) binary label.
    """
    _check_pair(prob, "prob", target, "target")
    dims = tuple(range(2, prob.dim()))
    prob, target = prob.float(), target.float()
    intersection = (prob * target).sum(dims)  # (B, F)
    denominator = prob.sum(dims) + target.sum(dims)  # (B, F)
    return ((2.0 * intersection + eps) / (denominator + eps)).mean(dim=1)


@torch.no_grad()
def anatomical_penalty(prob: torch.Tensor) -> torch.Tensor:
    """(B,) normalised anatomical penalty C~ (larger = less plausible), averaged over channels.

    ``min(Ncc - 1, 10) / 10`` counts extra connected components of ``prob > 0.5`` (26-connected,
    cc3d; 0 when the mask has no or one component). ``TV / max(1, sum prob)`` is a soft
    surface-to-volume ratio: TV sums the gradient magnitude of ``prob`` with forward differences,
    the difference past the last voxel taken as 0 (replicate border), so an object cut by the
    patch border is not charged for the cut, which is no anatomical fault.

    Args:
        prob: (B, 1, H, W, D) foreground probabilities (or (B, F, ...): the mean over F).
    """
    if prob.dim() != 5:
        raise ValueError(f"prob: expected (B, 1, H, W, D) probabilities, got shape {tuple(prob.shape)}")
    prob = prob.float()
    return (_component_term(prob) + _total_variation(prob) / prob.sum(dim=(2, 3, 4)).clamp_min(1.0)).mean(dim=1)


@torch.no_grad()
def step_reward(
    prev_prob: torch.Tensor,
    prob: torch.Tensor,
    target: torch.Tensor,
    *,
    granularity: str = "global",
    penalty_weight: float = 0.1,
    penalty_form: str = "difference",
    prev_penalty: torch.Tensor | None = None,
) -> RewardParts:
    """The reward of one step, from the predictions before (f(t-1)) and after (f(t)) the actions.

    Args:
        prev_prob: (B, F, H, W, D) foreground probabilities f(t-1).
        prob: (B, F, H, W, D) foreground probabilities f(t).
        target: (B, F, H, W, D) training label in {0, 1} (possibly noisy).
        granularity: "global" (one scalar per sample, given to every voxel; the paper) or "voxel"
            (adds each voxel's own change of agreement ``|f_i(t-1) - y_i| - |f_i(t) - y_i|``, mean over F).
        penalty_weight: w_c.
        penalty_form: "difference" (potential-based shaping, ours) or "level" (``- w_c C~(f(t))``, the paper's
            literal form; ``prev_penalty`` is then not needed).
        prev_penalty: (B,) C~(f(t-1)) from the previous step's ``RewardParts.penalty``; computed if None.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity: expected one of {GRANULARITIES}, got {granularity!r}")
    if penalty_form not in PENALTY_FORMS:
        raise ValueError(f"penalty_form: expected one of {PENALTY_FORMS}, got {penalty_form!r}")
    _check_pair(prob, "prob", prev_prob, "prev_prob")
    _check_pair(prob, "prob", target, "target")
    prev_prob, prob, target = prev_prob.float(), prob.float(), target.float()
    dice_gain = soft_dice(prob, target) - soft_dice(prev_prob, target)  # (B,)
    penalty = anatomical_penalty(prob)  # (B,)
    if penalty_form == "level":
        penalty_change = penalty
    else:
        if prev_penalty is None:
            prev_penalty = anatomical_penalty(prev_prob)
        elif prev_penalty.shape != penalty.shape:
            raise ValueError(f"prev_penalty: expected shape {tuple(penalty.shape)}, got {tuple(prev_penalty.shape)}")
        penalty_change = penalty - prev_penalty.to(penalty)
    total = dice_gain - penalty_weight * penalty_change  # (B,)
    if granularity == "voxel":
        moved_closer = (prev_prob - target).abs() - (prob - target).abs()  # (B, F, H, W, D)
        agreement_gain = moved_closer.mean(dim=1, keepdim=True)  # (B, 1, H, W, D)
        total = agreement_gain + total.view(-1, 1, 1, 1, 1)
    return RewardParts(total=total, dice_gain=dice_gain, penalty_change=penalty_change, penalty=penalty)


def _component_term(prob: torch.Tensor) -> torch.Tensor:
    """(B, F) min(Ncc - 1, 10) / 10 per channel; cc3d runs on the CPU, one volume at a time."""
    masks = (prob > 0.5).to(torch.uint8).cpu().numpy()  # (B, F, H, W, D)
    counts = np.zeros(masks.shape[:2], dtype=np.float32)
    for b, f in np.ndindex(*masks.shape[:2]):
        _, n = cc3d.connected_components(masks[b, f], connectivity=26, return_N=True)
        counts[b, f] = min(max(int(n) - 1, 0), MAX_EXTRA_COMPONENTS) / MAX_EXTRA_COMPONENTS
    return torch.from_numpy(counts).to(prob.device)


def _total_variation(prob: torch.Tensor) -> torch.Tensor:
    """(B, F) sum over voxels of |grad prob| with forward differences, 0 past the last voxel."""
    grad_sq = torch.zeros_like(prob)  # (B, F, H, W, D)
    for axis in (2, 3, 4):
        diff = torch.diff(prob, dim=axis)  # one shorter along axis
        index = [slice(None)] * prob.dim()
        index[axis] = slice(0, prob.shape[axis] - 1)
        grad_sq[tuple(index)] += diff.square()
    return grad_sq.sqrt().sum(dim=(2, 3, 4))


def _check_pair(a: torch.Tensor, name_a: str, b: torch.Tensor, name_b: str) -> None:
    if a.dim() != 5:
        raise ValueError(f"{name_a}: expected (B, F, H, W, D), got shape {tuple(a.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"{name_b}: shape {tuple(b.shape)} differs from {name_a}'s {tuple(a.shape)}")
