"""Backbone "unet": a small 3D U-Net from MONAI's dynunet blocks, for CPUs and quick studies.

The layout is MONAI ``DynUNet`` with kernel 3, strides (1, 2, 2, ...), no residual blocks and no
deep supervision: an input block, one strided block per further level (the last is the
bottleneck), one ``UnetUpBlock`` per level back up and a 1x1x1 ``UnetOutBlock``. Instance norm
with affine parameters and LeakyReLU(0.01), as nnU-Net. Keeping DynUNet's layout makes the plain
``DynUNet`` of the same channels a fair reference for the inference benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks.dynunet_block import UnetBasicBlock, UnetOutBlock, UnetUpBlock
from torch import nn

NORM = ("instance", {"affine": True})
"""Instance norm with learnable scale and shift (nnU-Net's and DynUNet's default)."""


def unet_patch_multiple(channels: Sequence[int]) -> int:
    """Patch sides must be multiples of 2**(levels - 1): each level below the first halves the side."""
    return 2 ** (len(channels) - 1)


class UNetEncoder(nn.Module):
    """Input block and strided blocks; returns every level's features, finest first.

    Args:
        in_channels: image channels.
        channels: feature channels per level, e.g. (16, 32, 64, 128); the last level is the bottleneck.
    """

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        _check_channels(channels)
        self.input_block = UnetBasicBlock(3, in_channels, channels[0], kernel_size=3, stride=1, norm_name=NORM)
        self.downsamples = nn.ModuleList(
            UnetBasicBlock(3, c_in, c_out, kernel_size=3, stride=2, norm_name=NORM)
            for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features per level: [(B, c0, H, W, D), (B, c1, H/2, W/2, D/2), ..., bottleneck]."""
        features = [self.input_block(x)]
        for block in self.downsamples:
            features.append(block(features[-1]))
        return features


class UNetDecoder(nn.Module):
    """Transposed-conv up blocks with skip connections and a 1x1x1 output block.

    Args:
        channels: the encoder's channels per level.
        out_channels: channels of this decoder's output (n_outputs, 1 or 3).
        dropout: channel dropout on the last feature map, before the output block.
    """

    def __init__(self, channels: Sequence[int], out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        _check_channels(channels)
        coarse_to_fine = list(channels)[::-1]
        self.upsamples = nn.ModuleList(
            UnetUpBlock(3, c_in, c_out, kernel_size=3, stride=1, upsample_kernel_size=2, norm_name=NORM)
            for c_in, c_out in zip(coarse_to_fine[:-1], coarse_to_fine[1:], strict=True)
        )
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.out = UnetOutBlock(3, channels[0], out_channels)

    def features(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(B, channels[0], H, W, D) the last feature map, before dropout and the output block."""
        x = features[-1]
        for block, skip in zip(self.upsamples, features[-2::-1], strict=True):
            x = block(x, skip)  # (B, c_level, side of the skip)
        return x

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(B, out_channels, H, W, D) from the encoder's per-level features."""
        return self.out(self.dropout(self.features(features)))


def _check_channels(channels: Sequence[int]) -> None:
    if len(channels) < 2 or any(int(c) < 1 for c in channels):
        raise ValueError(f"model.channels: need at least two positive levels, got {tuple(channels)}")
