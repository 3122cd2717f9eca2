"""The three-decoder network on (image, mask) states: PixelDRL-MG's and the label agents' network.

The value and policy decoders see the image with a mask as extra input channels; the segmentation
decoder always sees a blank mask, so it stays an ordinary segmenter and is what runs at inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from svldrl.data import LabelSpec
from svldrl.models.network import HEADS, NetOutput, ThreeHeadNet
from svldrl.rl.actions import greedy_actions
from svldrl.rl.mask_actions import apply_mask_actions, foreground_proposal, initial_mask, mask_logits


def mask_channels(labels: LabelSpec) -> int:
    """F: foreground channels of a label (classes without background, or every region)."""
    return labels.n_outputs - 1 if labels.mode == "classes" else labels.n_outputs


class MaskStateNet(nn.Module):
    """The three-decoder network on (image, mask) states; an image alone is given the blank mask.

    Args:
        net: a ``ThreeHeadNet`` built for ``image_channels + mask_channels`` inputs.
        image_channels: C of the images.
        mask_channels: F, the foreground channels of the labels.
        mode: "classes" or "regions".
    """

    def __init__(self, net: ThreeHeadNet, image_channels: int, mask_channels: int, mode: str) -> None:
        super().__init__()
        self.net = net
        self.image_channels = image_channels
        self.mask_channels = mask_channels
        self.mode = mode
        self.refine_steps = 0
        """Greedy mask-edit steps ``segment`` applies after the segmentation (0: plain segmentation)."""

    def state(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, C + F, ...) the state (image, mask)."""
        return torch.cat([image, mask.to(image.dtype)], dim=1)

    def blank(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C + F, ...) the image with an empty mask, the segmentation decoder's input."""
        return self.state(image, image.new_zeros(image.shape[0], self.mask_channels, *image.shape[2:]))

    def forward(self, x: torch.Tensor, heads: Sequence[str] = HEADS) -> NetOutput:
        """Decoders on a state (B, C + F, ...); an image (B, C, ...) is segmented on the blank mask."""
        if x.shape[1] == self.image_channels:
            if set(heads) - {"seg"}:
                raise ValueError("MaskStateNet: the value and policy decoders need a state (image, mask), got an "
                                 "image; PixelDRL-MG's policy edits masks, not intensities (use refine_steps)")
            x = self.blank(x)
        return self.net(x, heads=heads)

    def segment(self, image: torch.Tensor) -> torch.Tensor:
        """(B, n_outputs, ...) logits: the seg decoder on the blank mask, then ``refine_steps`` greedy edits."""
        logits = self.net.segment(self.blank(image))
        if self.refine_steps < 1:
            return logits
        return mask_logits(self.refine_mask(image, logits, self.refine_steps), self.mode)

    def refine_mask(self, image: torch.Tensor, seg_logits: torch.Tensor, steps: int) -> torch.Tensor:
        """(B, F, ...) the thresholded prediction after ``steps`` greedy (argmax) policy edits."""
        mask, proposal = initial_mask(seg_logits, self.mode), foreground_proposal(seg_logits, self.mode)
        for _ in range(steps):
            actions = greedy_actions(self.net(self.state(image, mask), heads=("policy",)).policy)  # (B, ...)
            mask = apply_mask_actions(mask, actions, proposal)
        return mask
