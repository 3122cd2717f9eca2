"""Backbone "swin-unetr": MONAI's SwinUNETR split into a shared encoder and a decoder class.

The encoder keeps MONAI's attribute names (``swinViT``, ``encoder1``..``encoder4``, ``encoder10``)
and the decoder keeps ``decoder5``..``decoder1`` and ``out``, so a MONAI ``SwinUNETR`` state dict
loads into ``net.encoder`` and ``net.decoders["seg"]`` key for key (``load_swin_unetr_weights``).
Hyperparameters are MONAI's defaults (depths (2, 2, 2, 2), heads (3, 6, 12, 24), window 7,
instance norm, v1 blocks), the paper's SwinUNETR; only ``feature_size`` is configurable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from monai.networks.blocks.dynunet_block import UnetOutBlock
from monai.networks.blocks.unetr_block import UnetrBasicBlock, UnetrUpBlock
from monai.networks.nets.swin_unetr import SwinTransformer
from torch import nn

from svldrl.models.network import HEADS, ThreeHeadNet

SWIN_PATCH_MULTIPLE = 32
"""Patch embedding (2) and four patch-merging stages: sides must be multiples of 2**5."""

SWIN_MIN_PATCH = 64
"""At 32 the deepest features are 1x1x1 and ``encoder10``'s instance norm maps them to 0."""

NORM = "instance"

ENCODER_PREFIXES = ("swinViT.", "encoder1.", "encoder2.", "encoder3.", "encoder4.", "encoder10.")
DECODER_PREFIXES = ("decoder5.", "decoder4.", "decoder3.", "decoder2.", "decoder1.")


class SwinUNETREncoder(nn.Module):
    """Swin transformer plus the convolutional skip encoders of MONAI's SwinUNETR (same names)."""

    def __init__(self, in_channels: int, feature_size: int = 48) -> None:
        super().__init__()
        if feature_size % 12:
            raise ValueError(f"model.feature_size must be a multiple of 12 (SwinUNETR heads), got {feature_size}")
        fs = feature_size
        self.swinViT = SwinTransformer(
            in_chans=in_channels,
            embed_dim=fs,
            window_size=(7, 7, 7),
            patch_size=(2, 2, 2),
            depths=(2, 2, 2, 2),
            num_heads=(3, 6, 12, 24),
            mlp_ratio=4.0,
            qkv_bias=True,
            norm_layer=nn.LayerNorm,
            spatial_dims=3,
        )
        self.encoder1 = _basic_block(in_channels, fs)
        self.encoder2 = _basic_block(fs, fs)
        self.encoder3 = _basic_block(2 * fs, 2 * fs)
        self.encoder4 = _basic_block(4 * fs, 4 * fs)
        self.encoder10 = _basic_block(16 * fs, 16 * fs)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[enc0, enc1, enc2, enc3, hidden3, dec4] exactly as MONAI's ``SwinUNETR.forward`` builds them."""
        hidden = self.swinViT(x, True)  # 5 maps, (B, fs * 2**i, H / 2**(i+1), ...) for i = 0..4
        return [
            self.encoder1(x),  # (B, fs, H, W, D)
            self.encoder2(hidden[0]),  # (B, fs, H/2, ...)
            self.encoder3(hidden[1]),  # (B, 2fs, H/4, ...)
            self.encoder4(hidden[2]),  # (B, 4fs, H/8, ...)
            hidden[3],  # (B, 8fs, H/16, ...)
            self.encoder10(hidden[4]),  # (B, 16fs, H/32, ...)
        ]


class SwinUNETRDecoder(nn.Module):
    """MONAI SwinUNETR's decoder path (``decoder5``..``decoder1``, ``out``) with its own output size."""

    def __init__(self, out_channels: int, feature_size: int = 48, dropout: float = 0.0) -> None:
        super().__init__()
        fs = feature_size
        self.decoder5 = _up_block(16 * fs, 8 * fs)
        self.decoder4 = _up_block(8 * fs, 4 * fs)
        self.decoder3 = _up_block(4 * fs, 2 * fs)
        self.decoder2 = _up_block(2 * fs, fs)
        self.decoder1 = _up_block(fs, fs)
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.out = UnetOutBlock(spatial_dims=3, in_channels=fs, out_channels=out_channels)

    def features(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(B, fs, H, W, D) the last feature map, before dropout and the output block."""
        enc0, enc1, enc2, enc3, hidden3, dec4 = features
        dec3 = self.decoder5(dec4, hidden3)  # (B, 8fs, H/16, ...)
        dec2 = self.decoder4(dec3, enc3)  # (B, 4fs, H/8, ...)
        dec1 = self.decoder3(dec2, enc2)  # (B, 2fs, H/4, ...)
        dec0 = self.decoder2(dec1, enc1)  # (B, fs, H/2, ...)
        return self.decoder1(dec0, enc0)  # (B, fs, H, W, D)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(B, out_channels, H, W, D) from ``SwinUNETREncoder``'s features."""
        return self.out(self.dropout(self.features(features)))


def build_swin_unetr(
    in_channels: int, n_outputs: int, feature_size: int = 48, dropout: float = 0.0, heads: str = "full"
) -> ThreeHeadNet:
    """A ``ThreeHeadNet`` on the SwinUNETR encoder with three SwinUNETR decoders."""
    return ThreeHeadNet(
        SwinUNETREncoder(in_channels, feature_size),
        lambda out_channels: SwinUNETRDecoder(out_channels, feature_size, dropout),
        n_outputs,
        backbone="swin-unetr",
        patch_multiple=SWIN_PATCH_MULTIPLE,
        heads=heads,
    )


def _basic_block(in_channels: int, out_channels: int) -> UnetrBasicBlock:
    return UnetrBasicBlock(3, in_channels, out_channels, kernel_size=3, stride=1, norm_name=NORM, res_block=True)


def _up_block(in_channels: int, out_channels: int) -> UnetrUpBlock:
    return UnetrUpBlock(
        3, in_channels, out_channels, kernel_size=3, upsample_kernel_size=2, norm_name=NORM, res_block=True
    )


# ----------------------------------------------------------------------------- pretrained weights


class LoadReport(NamedTuple):
    """What ``load_swin_unetr_weights`` did, by parameter name of the ``ThreeHeadNet``."""

    loaded: list[str]
    """Parameters and buffers copied from the checkpoint."""
    kept: list[str]
    """Encoder/seg-decoder entries the checkpoint did not provide (left at their init)."""
    unused: list[str]
    """Checkpoint keys that were not used (SSL heads, an output layer of another size, ...)."""


def load_swin_unetr_weights(
    net: ThreeHeadNet, state_dict_or_path: Mapping[str, Any] | str | Path, *, decoder_heads: Sequence[str] = ("seg",)
) -> LoadReport:
    """Load a MONAI SwinUNETR checkpoint (or a published swinViT one) into ``net``.

    What is loaded (our decision):
      - the shared encoder, always: every ``swinViT`` tensor must be in the checkpoint (a partly
        loaded transformer is a silent failure); the convolutional ``encoder*`` blocks are loaded
        when present (self-supervised swinViT checkpoints do not have them);
      - ``decoder5``..``decoder1`` into each decoder named in ``decoder_heads`` (default: the seg
        decoder only; the value and policy decoders learn other targets, so by default they
        start from scratch; pass ``HEADS`` to start all three from the pretrained decoder);
      - the output block ``out`` into the seg decoder only, and only when its shape fits
        (same number of classes); never into value/policy, whose near-zero init matters.

    Accepted layouts: a plain state dict, or one nested under "state_dict" / "model"; keys with
    or without the DistributedDataParallel "module." prefix; full SwinUNETR keys ("swinViT.*",
    "encoder1.*", "decoder5.*", "out.*") or swinViT-only keys ("patch_embed.*", "layers1.*", with
    the original "mlp.fc1"/"mlp.fc2" names, as in the self-supervised ``model_swinvit.pt``).

    Raises:
        ValueError: wrong backbone, nothing recognisable, missing swinViT tensors, or a shape mismatch
            (usually another ``feature_size``).
    """
    if net.backbone != "swin-unetr":
        raise ValueError(f"load_swin_unetr_weights: the network's backbone is {net.backbone!r}, not 'swin-unetr'")
    unknown = [h for h in decoder_heads if h not in HEADS]
    if unknown:
        raise ValueError(f"decoder_heads: unknown decoder(s) {unknown}; valid: {', '.join(HEADS)}")
    where = str(state_dict_or_path) if isinstance(state_dict_or_path, (str, Path)) else "state dict"
    source = _normalise_keys(_read_state_dict(state_dict_or_path), where)
    target = net.state_dict()
    plan: dict[str, torch.Tensor] = {}
    unused = []
    for key, value in source.items():
        destinations = _destinations(key, decoder_heads)
        fitting = [d for d in destinations if d in target and _fits(key, value, d, target[d], where)]
        if not fitting:
            unused.append(key)
        plan.update({d: value for d in fitting})
    swin_missing = [k for k in target if k.startswith("encoder.swinViT.") and k not in plan]
    if swin_missing:
        raise ValueError(
            f"{where}: no SwinUNETR weights for {len(swin_missing)} swinViT tensors, e.g. {swin_missing[:3]}; "
            "is this a SwinUNETR/swinViT checkpoint?"
        )
    with torch.no_grad():
        for name, value in plan.items():
            target[name].copy_(value)
    covered = ("encoder.",) + tuple(f"decoders.{h}.decoder" for h in decoder_heads) + ("decoders.seg.out.",)
    kept = [k for k in target if k.startswith(covered) and k not in plan]
    return LoadReport(loaded=sorted(plan), kept=kept, unused=unused)


def _read_state_dict(state_dict_or_path: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    if isinstance(state_dict_or_path, (str, Path)):
        path = Path(state_dict_or_path)
        if not path.is_file():
            raise ValueError(f"model.pretrained: checkpoint {path} does not exist")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
            raise ValueError(f"{path}: cannot read a torch checkpoint ({exc})") from exc
    else:
        data = state_dict_or_path
    for nest in ("state_dict", "model"):
        if isinstance(data, Mapping) and isinstance(data.get(nest), Mapping):
            data = data[nest]
    if not isinstance(data, Mapping):
        raise ValueError(f"{state_dict_or_path}: expected a state dict (a mapping of names to tensors)")
    return data


def _normalise_keys(state: Mapping[str, Any], where: str) -> dict[str, torch.Tensor]:
    """MONAI SwinUNETR key names: drop "module.", put swinViT-only keys under "swinViT." with MONAI's MLP names."""
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = key.removeprefix("module.")
        if key.startswith(("patch_embed.", "layers1.", "layers2.", "layers3.", "layers4.")):
            key = "swinViT." + key
        if key.startswith("swinViT."):
            key = key.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2.")
        out[key] = value
    if not any(k.startswith(ENCODER_PREFIXES) for k in out):
        raise ValueError(f"{where}: no SwinUNETR encoder keys (swinViT.*, encoder1.*, ...) found")
    return out


def _destinations(key: str, decoder_heads: Sequence[str]) -> list[str]:
    """Names in the ThreeHeadNet state dict that a (normalised) SwinUNETR key goes to."""
    if key.startswith(ENCODER_PREFIXES):
        return [f"encoder.{key}"]
    if key.startswith(DECODER_PREFIXES):
        return [f"decoders.{head}.{key}" for head in decoder_heads]
    if key.startswith("out."):
        return [f"decoders.seg.{key}"]
    return []


def _fits(key: str, value: torch.Tensor, name: str, param: torch.Tensor, where: str) -> bool:
    """Same shape; a mismatch is an error except for the seg output block (another class count)."""
    if value.shape == param.shape:
        return True
    if name.startswith("decoders.seg.out."):
        return False
    raise ValueError(
        f"{where}: {key} has shape {tuple(value.shape)} but {name} needs {tuple(param.shape)} "
        "(was the checkpoint trained with another feature_size or in_channels?)"
    )
