"""The three-decoder network of SVL-DRL: one shared encoder, a segmentation, a value and a policy decoder.

Every voxel is an agent (method.md, "Network"), so the value and the policy are dense maps with
the same spatial shape as the segmentation. The three decoders are three instances of one decoder
class: only their number of output channels differs. At inference only the segmentation decoder
runs, so a deployed model costs what the plain backbone costs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
from torch import nn

from svldrl.config_checks import HEAD_FORMS

HEADS: tuple[str, ...] = ("seg", "value", "policy")
"""Names of the three decoders, in the order of ``NetOutput``."""

N_ACTIONS = 3
"""Actions of Eq. 10: 0 keep, 1 enhance, 2 weaken."""

POLICY_INIT_SCALE = 1e-3
"""Factor applied to the default init of the value and policy output convs (see ``ThreeHeadNet``)."""


class NetOutput(NamedTuple):
    """What ``ThreeHeadNet.forward`` returns; a field is None when its decoder was not run."""

    seg: torch.Tensor | None
    """(B, n_outputs, H, W, D) segmentation logits."""
    value: torch.Tensor | None
    """(B, 1, H, W, D) state value per voxel."""
    policy: torch.Tensor | None
    """(B, 3, H, W, D) action logits per voxel."""


class ThreeHeadNet(nn.Module):
    """A shared encoder and three decoders built from one decoder class.

    Contract of the parts (both backbones follow it):
    ``encoder(x) -> list[Tensor]`` (the skip features and the bottleneck, whatever the decoder
    needs) and ``decoder(features) -> Tensor`` (B, out_channels, H, W, D); each decoder has its
    1x1x1 output block at ``decoder.out`` (MONAI's ``UnetOutBlock``).

    Args:
        encoder: the shared encoder.
        make_decoder: builds one decoder given its number of output channels; called three times.
        n_outputs: channels of the segmentation decoder (classes, or regions for sigmoid outputs).
        backbone: name of the backbone, kept for checkpoints and messages.
        patch_multiple: spatial sides of the input must be multiples of this.
        heads: "full": the value and policy heads are decoders like the segmentation one (method.md's
            reading of the paper, three decoder passes per state); "light": each is a 3x3x3 conv block
            and a 1x1x1 output on the segmentation decoder's last feature map (``LightHead``), so a
            state costs one decoder pass (issue 17). The decoders then need ``features(features)``,
            their last feature map before dropout and ``out``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        make_decoder: Callable[[int], nn.Module],
        n_outputs: int,
        *,
        backbone: str,
        patch_multiple: int,
        heads: str = "full",
    ) -> None:
        super().__init__()
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be at least 1, got {n_outputs}")
        if heads not in HEAD_FORMS:
            raise ValueError(f"heads must be one of {HEAD_FORMS}, got {heads!r}")
        self.backbone = backbone
        self.n_outputs = n_outputs
        self.patch_multiple = patch_multiple
        self.heads = heads
        self.encoder = encoder
        if heads == "full":
            self.decoders = nn.ModuleDict(
                {"seg": make_decoder(n_outputs), "value": make_decoder(1), "policy": make_decoder(N_ACTIONS)}
            )
        else:
            self.decoders = nn.ModuleDict({"seg": make_decoder(n_outputs)})
            width = _output_conv(self.decoders["seg"]).in_channels
            self.rl_heads = nn.ModuleDict({"value": LightHead(width, 1), "policy": LightHead(width, N_ACTIONS)})
        self._init_rl_outputs()

    @torch.no_grad()
    def _init_rl_outputs(self) -> None:
        # Shrink the value and policy output convs to ~0 (weights scaled, bias zeroed), because:
        # - policy logits ~ 0 give near-uniform action probabilities, so the first rollouts explore
        #   all three actions instead of following an arbitrary bias of the random init;
        # - a value ~ 0 matches the scale of the returns (sums of Dice changes, ~0.01), so the
        #   first advantages R - V are not dominated by the O(1) noise of a random output layer.
        # Scaling (rather than redrawing) keeps the init reproducible from the module seed alone
        # and leaves the weights non-zero, so the gradient still reaches the layers before.
        for head in ("value", "policy"):
            conv = self.rl_output_conv(head)
            conv.weight.mul_(POLICY_INIT_SCALE)
            if conv.bias is not None:
                conv.bias.zero_()

    def forward(self, x: torch.Tensor, heads: Sequence[str] = HEADS) -> NetOutput:
        """Run the encoder once and only the named decoders.

        Args:
            x: (B, C, H, W, D) image or state, sides multiples of ``patch_multiple``.
            heads: any of "seg", "value", "policy".
        """
        unknown = [h for h in heads if h not in HEADS]
        if unknown:
            raise ValueError(f"heads: unknown decoder(s) {unknown}; valid: {', '.join(HEADS)}")
        self._check_input(x)
        features = self.encoder(x)
        if self.heads == "full":
            outputs = {head: self.decoders[head](features) for head in HEADS if head in heads}
        else:
            seg = self.decoders["seg"]
            last = seg.features(features)  # (B, width, H, W, D), shared by the three outputs
            outputs = {head: self.rl_heads[head](last) for head in ("value", "policy") if head in heads}
            if "seg" in heads:
                outputs["seg"] = seg.out(seg.dropout(last))
        return NetOutput(outputs.get("seg"), outputs.get("value"), outputs.get("policy"))

    def rl_output_conv(self, head: str) -> nn.Conv3d:
        """The 1x1x1 output conv of the value or policy head (its init sets the start of the policy)."""
        module = self.decoders[head] if self.heads == "full" else self.rl_heads[head]
        return _output_conv(module)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_outputs, H, W, D) segmentation logits: encoder and seg decoder only (inference)."""
        self._check_input(x)
        return self.decoders["seg"](self.encoder(x))

    def seg_parameters(self) -> Iterator[nn.Parameter]:
        """Encoder and segmentation decoder: the shared encoder belongs to the segmentation group."""
        yield from self.encoder.parameters()
        yield from self.decoders["seg"].parameters()

    def value_parameters(self) -> Iterator[nn.Parameter]:
        """The value decoder (or light head) only."""
        yield from (self.decoders["value"] if self.heads == "full" else self.rl_heads["value"]).parameters()

    def policy_parameters(self) -> Iterator[nn.Parameter]:
        """The policy decoder (or light head) only."""
        yield from (self.decoders["policy"] if self.heads == "full" else self.rl_heads["policy"]).parameters()

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(f"x: expected (B, C, H, W, D), got shape {tuple(x.shape)}")
        bad = [s for s in x.shape[2:] if s % self.patch_multiple]
        if bad:
            raise ValueError(
                f"x: spatial shape {tuple(x.shape[2:])} must be multiples of {self.patch_multiple} "
                f"for the {self.backbone} backbone"
            )


class LightHead(nn.Module):
    """A value or policy head on the segmentation decoder's last feature map: one 3x3x3 conv block
    (instance norm, leaky ReLU, as the decoders' blocks) and a 1x1x1 output block at ``out``."""

    def __init__(self, width: int, out_channels: int) -> None:
        super().__init__()
        from monai.networks.blocks import UnetOutBlock
        from monai.networks.blocks.dynunet_block import UnetBasicBlock

        self.block = UnetBasicBlock(3, width, width, kernel_size=3, stride=1, norm_name="instance")
        self.out = UnetOutBlock(3, width, out_channels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(features))


def parameter_counts(net: nn.Module, refine: bool = False) -> dict[str, int]:
    """Parameters of a trained model by part, for run records and cost tables.

    Why by part: every method builds the three-decoder network, but a deployed model runs only the
    encoder and the segmentation decoder (``segmentation``), plus the policy head where it refines
    masks or images at inference (``refine``, or a ``MaskStateNet`` with ``refine_steps``); ``value``
    and ``policy`` are what the RL methods train on top, ``total`` everything in the module.
    ``inference`` is what ``svldrl predict`` runs. A module that is not a ``ThreeHeadNet`` (or a
    ``MaskStateNet`` around one) gets ``total`` and ``inference`` only, both its whole count.
    """
    inner = getattr(net, "net", net)
    total = sum(p.numel() for p in net.parameters())
    if not isinstance(inner, ThreeHeadNet):
        return {"total": total, "inference": total}
    counts = {
        "segmentation": sum(p.numel() for p in inner.seg_parameters()),
        "value": sum(p.numel() for p in inner.value_parameters()),
        "policy": sum(p.numel() for p in inner.policy_parameters()),
        "total": total,
    }
    refines = refine or getattr(net, "refine_steps", 0) > 0
    counts["inference"] = counts["segmentation"] + (counts["policy"] if refines else 0)
    return counts


def frozen_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` that never trains (eval mode, no gradients): a fixed teacher."""
    teacher = copy.deepcopy(net).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def _output_conv(decoder: nn.Module) -> nn.Conv3d:
    """The 1x1x1 convolution of a decoder's MONAI ``UnetOutBlock`` (``decoder.out.conv.conv``)."""
    conv = decoder.out.conv.conv
    if not isinstance(conv, nn.Conv3d):
        raise TypeError(f"decoder.out.conv.conv should be a Conv3d, found {type(conv).__name__}")
    return conv
