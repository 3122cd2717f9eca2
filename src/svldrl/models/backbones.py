"""The ``BACKBONES`` registry, ``build_network`` and the patch-size rule of each backbone."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from svldrl.config import ModelConfig
from svldrl.models.network import ThreeHeadNet
from svldrl.models.swin_unetr import SWIN_MIN_PATCH, SWIN_PATCH_MULTIPLE, build_swin_unetr, load_swin_unetr_weights
from svldrl.models.unet import UNetDecoder, UNetEncoder, unet_patch_multiple
from svldrl.registry import Registry


@dataclass(frozen=True)
class Backbone:
    """How to build a backbone and which patch sides it accepts."""

    build: Callable[[ModelConfig, int, int], ThreeHeadNet]
    """(model_cfg, in_channels, n_outputs) -> network."""
    patch_rule: Callable[[ModelConfig], tuple[int, int]]
    """model_cfg -> (multiple, minimum) for every patch side."""
    rule_reason: str
    """Why the rule holds, for error messages."""


BACKBONES: Registry[Backbone] = Registry("backbone")


def _build_unet(model_cfg: ModelConfig, in_channels: int, n_outputs: int) -> ThreeHeadNet:
    channels = tuple(model_cfg.channels)
    return ThreeHeadNet(
        UNetEncoder(in_channels, channels),
        lambda out_channels: UNetDecoder(channels, out_channels, model_cfg.dropout),
        n_outputs,
        backbone="unet",
        patch_multiple=unet_patch_multiple(channels),
        heads=model_cfg.heads,
    )


def _unet_rule(model_cfg: ModelConfig) -> tuple[int, int]:
    # At least 2 voxels per side at the bottleneck: instance norm over a single voxel outputs 0.
    multiple = unet_patch_multiple(model_cfg.channels)
    return multiple, 2 * multiple


def _build_swin_unetr(model_cfg: ModelConfig, in_channels: int, n_outputs: int) -> ThreeHeadNet:
    return build_swin_unetr(in_channels, n_outputs, model_cfg.feature_size, model_cfg.dropout, model_cfg.heads)


BACKBONES.add(
    "unet",
    Backbone(
        _build_unet,
        _unet_rule,
        "each of the len(model.channels) - 1 strided levels halves the side; at least 2 voxels at the bottleneck",
    ),
    aliases=("u-net",),
)
BACKBONES.add(
    "swin-unetr",
    Backbone(
        _build_swin_unetr,
        lambda _cfg: (SWIN_PATCH_MULTIPLE, SWIN_MIN_PATCH),
        "patch embedding and four merging stages halve the side 5 times; at 32 the bottleneck is one voxel",
    ),
    aliases=("swinunetr", "swin"),
)


def build_network(model_cfg: ModelConfig, in_channels: int, n_outputs: int) -> ThreeHeadNet:
    """The three-decoder network of ``model_cfg.backbone``; loads ``model_cfg.pretrained`` if set.

    Initial weights come from torch's global generator (seed it first for a reproducible init).
    """
    if in_channels < 1 or n_outputs < 1:
        raise ValueError(f"build_network: in_channels and n_outputs must be >= 1, got {in_channels}, {n_outputs}")
    if not 0.0 <= model_cfg.dropout < 1.0:
        raise ValueError(f"model.dropout must be in [0, 1), got {model_cfg.dropout}")
    name = BACKBONES.canonical(model_cfg.backbone)
    if model_cfg.pretrained is not None and name != "swin-unetr":
        raise ValueError(f"model.pretrained: pretrained weights are only supported for 'swin-unetr', not {name!r}")
    net = BACKBONES.get(name).build(model_cfg, in_channels, n_outputs)
    if model_cfg.pretrained is not None:
        load_swin_unetr_weights(net, model_cfg.pretrained)
    return net


def check_patch_size(backbone: str, patch_size: Sequence[int], model_cfg: ModelConfig) -> None:
    """Raise ValueError saying what to change if ``patch_size`` does not suit ``backbone``.

    Called by the trainer before any long work (sliding-window inference uses the same patch).
    """
    name = BACKBONES.canonical(backbone)
    spec = BACKBONES.get(name)
    if len(patch_size) != 3:
        raise ValueError(f"data.patch_size: expected 3 sides (H, W, D), got {tuple(patch_size)}")
    multiple, minimum = spec.patch_rule(model_cfg)
    bad = [int(s) for s in patch_size if int(s) % multiple or int(s) < minimum]
    if bad:
        fixed = tuple(max(minimum, multiple * math.ceil(int(s) / multiple)) for s in patch_size)
        raise ValueError(
            f"data.patch_size {tuple(patch_size)} does not suit backbone {name!r}: every side must be a "
            f"multiple of {multiple} and at least {minimum} ({spec.rule_reason}); e.g. use {fixed}"
        )
