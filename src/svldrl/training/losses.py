"""The segmentation losses every method trains with: Dice (Eq. 1) or Dice + cross-entropy; and the
Dice loss with per-voxel weights of the methods that weigh label voxels (meta-reweight) or leave
them out (case-filter with ``leave_out=side``).

Kept apart from the training engine (``trainer.py``) because scripts and tests build the same loss
without a trainer (``experiments/la/credit_auc.py``, the label-agent credit tests).
"""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss, DiceLoss
from torch import nn

from svldrl.data import LabelSpec

SEG_LOSSES = ("dice", "dice_ce")


def build_seg_loss(labels: LabelSpec, kind: str = "dice") -> nn.Module:
    """MONAI Dice loss (Eq. 1) or Dice + cross-entropy, matching the output activation.

    Classes: softmax, background channel included. Training patches may hold no foreground (half
    of them are drawn at random); without the background channel such a patch's foreground Dice
    is ~1 - 1e-5 / (sum p + 1e-5) whatever the prediction, so false positives there would cost
    nothing. With it, they lower the background Dice. (MONAI's and the SwinUNETR tutorials'
    default as well.) Regions: sigmoid, every channel (there is no background channel); the
    cross-entropy is then per-channel binary. ``dice_ce`` weighs both terms 1, as nnU-Net does;
    it exists so that baselines trained with CE + Dice can be compared against a baseline with
    the same loss (docs/results.md).
    """
    if labels.mode not in ("classes", "regions"):
        raise ValueError(f"labels.mode must be 'classes' or 'regions', got {labels.mode!r}")
    if kind not in SEG_LOSSES:
        raise ValueError(f"optim.loss must be one of {SEG_LOSSES}, got {kind!r}")
    if labels.mode == "classes":
        return DiceLoss(softmax=True, include_background=True) if kind == "dice" else DiceCELoss(softmax=True)
    dice = DiceLoss(sigmoid=True, include_background=True)
    return dice if kind == "dice" else DiceBCELoss(dice)


class DiceBCELoss(nn.Module):
    """Dice + per-channel binary cross-entropy for overlapping regions.

    Why not MONAI's DiceCELoss(sigmoid=True): it applies softmax cross-entropy whenever the output
    has more than one channel (MONAI 1.6), which treats overlapping regions as exclusive classes.
    """

    def __init__(self, dice: nn.Module) -> None:
        super().__init__()
        self.dice = dice
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice(logits, target) + self.bce(logits, target)


def weighted_dice_loss(
    probs: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """Soft Dice loss with per-voxel weights on every sum; weights of 1 give MONAI's ``DiceLoss`` (smooth 1e-5).

    Args:
        probs: (B, n_outputs, ...) softmax or sigmoid probabilities.
        target: (B, n_outputs, ...) one-hot or region labels.
        weights: (B, 1, ...) non-negative voxel weights.
    """
    dims = tuple(range(2, probs.dim()))
    intersection = (weights * probs * target).sum(dims)  # (B, n_outputs)
    denominator = (weights * probs).sum(dims) + (weights * target).sum(dims)
    return 1.0 - ((2.0 * intersection + eps) / (denominator + eps)).mean()
