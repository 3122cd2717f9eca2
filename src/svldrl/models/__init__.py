"""The three-decoder network (segmentation, value, policy) on the 'unet' or 'swin-unetr' backbone."""

from svldrl.models.backbones import BACKBONES, Backbone, build_network, check_patch_size
from svldrl.models.mask_state import MaskStateNet, mask_channels
from svldrl.models.network import HEADS, N_ACTIONS, NetOutput, ThreeHeadNet, frozen_copy, parameter_counts
from svldrl.models.swin_unetr import (
    LoadReport,
    SwinUNETRDecoder,
    SwinUNETREncoder,
    build_swin_unetr,
    load_swin_unetr_weights,
)
from svldrl.models.unet import UNetDecoder, UNetEncoder

__all__ = [
    "frozen_copy",
    "BACKBONES",
    "HEADS",
    "N_ACTIONS",
    "Backbone",
    "LoadReport",
    "MaskStateNet",
    "NetOutput",
    "SwinUNETRDecoder",
    "SwinUNETREncoder",
    "ThreeHeadNet",
    "UNetDecoder",
    "UNetEncoder",
    "build_network",
    "build_swin_unetr",
    "check_patch_size",
    "load_swin_unetr_weights",
    "mask_channels",
    "parameter_counts",
]
