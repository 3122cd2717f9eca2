"""The 'swin-unetr' backbone: head shapes, and loading MONAI SwinUNETR / published swinViT weights."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from monai.networks.nets import SwinUNETR

from svldrl.config import ModelConfig
from svldrl.models import HEADS, LoadReport, NetOutput, build_network, load_swin_unetr_weights

FS = 12  # the smallest feature size MONAI allows: same structure as 48, much faster on a CPU


def _monai(out_channels: int = 2, seed: int = 1) -> SwinUNETR:
    torch.manual_seed(seed)
    return SwinUNETR(in_channels=1, out_channels=out_channels, feature_size=FS).eval()


def _ours(n_outputs: int = 2, seed: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_network(ModelConfig(backbone="swin-unetr", feature_size=FS), 1, n_outputs).eval()


def _ssl_checkpoint(monai_net: SwinUNETR) -> dict:
    """The layout of the published self-supervised ``model_swinvit.pt``: swinViT only, DDP prefix, fc1/fc2."""
    state = {}
    for key, value in monai_net.swinViT.state_dict().items():
        key = key.replace(".mlp.linear1.", ".mlp.fc1.").replace(".mlp.linear2.", ".mlp.fc2.")
        state[f"module.{key}"] = value.clone()
    state["module.rotation_head.weight"] = torch.zeros(4, 8)  # SSL heads are not part of the network
    return {"epoch": 100, "state_dict": state}


class Pair(NamedTuple):
    reference: SwinUNETR
    net: torch.nn.Module
    report: LoadReport


class Outputs(NamedTuple):
    expected: torch.Tensor
    out: NetOutput


@pytest.fixture(scope="module")
def pair() -> Pair:
    """A MONAI SwinUNETR and our network with its weights loaded (built once: slow on a CPU)."""
    reference, net = _monai(), _ours()
    assert not torch.equal(net.encoder.swinViT.patch_embed.proj.weight, reference.swinViT.patch_embed.proj.weight)
    return Pair(reference, net, load_swin_unetr_weights(net, reference.state_dict()))


@pytest.fixture(scope="module")
def outputs(pair: Pair) -> Outputs:
    """MONAI's output and all three of ours on one 64^3 input."""
    x = torch.rand(1, 1, 64, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return Outputs(pair.reference(x), pair.net(x))


@pytest.mark.slow
def test_every_head_has_its_shape(outputs):
    assert outputs.out.seg.shape == (1, 2, 64, 64, 64)
    assert outputs.out.value.shape == (1, 1, 64, 64, 64)
    assert outputs.out.policy.shape == (1, 3, 64, 64, 64)


@pytest.mark.slow
def test_monai_weights_give_monai_segmentation(pair, outputs):
    # same operations in the same order: bit-identical
    torch.testing.assert_close(outputs.out.seg, outputs.expected, rtol=0, atol=0)
    assert pair.report.kept == [] and pair.report.unused == []
    # value/policy decoders keep their own (near-zero output) init by default
    value_weight = pair.net.decoders["value"].decoder5.transp_conv.conv.weight
    assert not torch.equal(value_weight, pair.reference.decoder5.transp_conv.conv.weight)
    assert outputs.out.value.abs().max() < 0.01


def test_encoder_and_decoders_keep_monai_names(pair):
    monai = pair.reference.state_dict()
    ours = pair.net.state_dict()
    assert {k.removeprefix("encoder.") for k in ours if k.startswith("encoder.")} == {
        k for k in monai if not k.startswith(("decoder", "out."))
    }
    for head in HEADS:
        prefix = f"decoders.{head}."
        assert {k.removeprefix(prefix) for k in ours if k.startswith(prefix)} == {
            k for k in monai if k.startswith(("decoder", "out."))
        }


def test_decoder_can_go_to_all_heads_but_never_the_rl_output_blocks():
    reference = _monai(out_channels=3)
    net = _ours(n_outputs=3)
    policy_out = net.decoders["policy"].out.conv.conv.weight.clone()
    load_swin_unetr_weights(net, reference.state_dict(), decoder_heads=HEADS)
    for head in HEADS:
        torch.testing.assert_close(
            net.decoders[head].decoder1.conv_block.conv1.conv.weight,
            reference.decoder1.conv_block.conv1.conv.weight,
            rtol=0,
            atol=0,
        )
    assert torch.equal(net.decoders["policy"].out.conv.conv.weight, policy_out)
    assert torch.equal(net.decoders["seg"].out.conv.conv.weight, reference.out.conv.conv.weight)


def test_other_class_count_loads_all_but_the_output_block():
    reference = _monai(out_channels=4)
    net = _ours(n_outputs=2)
    report = load_swin_unetr_weights(net, reference.state_dict())
    assert sorted(report.unused) == ["out.conv.conv.bias", "out.conv.conv.weight"]
    assert sorted(report.kept) == ["decoders.seg.out.conv.conv.bias", "decoders.seg.out.conv.conv.weight"]
    assert torch.equal(net.decoders["seg"].decoder5.transp_conv.conv.weight, reference.decoder5.transp_conv.conv.weight)


def test_published_checkpoint_file_with_prefix_and_nesting(tmp_path: Path, pair):
    reference = pair.reference
    path = tmp_path / "swin_unetr.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    net = build_network(ModelConfig(backbone="swin-unetr", feature_size=FS, pretrained=str(path)), 1, 2)
    ours = net.state_dict()
    for key, value in reference.state_dict().items():
        name = f"encoder.{key}" if key.startswith(("swinViT.", "encoder")) else f"decoders.seg.{key}"
        assert torch.equal(ours[name], value), key


def test_self_supervised_swinvit_checkpoint_matches_monai_load_from():
    source = _monai(seed=3)
    checkpoint = _ssl_checkpoint(source)
    monai_loaded = _monai(seed=4)
    monai_loaded.load_from(checkpoint)  # MONAI's own reader of this layout, an independent check
    net = _ours(seed=5)
    encoder1_before = net.encoder.encoder1.layer.conv1.conv.weight.clone()
    report = load_swin_unetr_weights(net, checkpoint)
    for key, value in monai_loaded.swinViT.state_dict().items():
        assert torch.equal(net.encoder.swinViT.state_dict()[key], value), key
    assert report.unused == ["rotation_head.weight"]
    assert "encoder.encoder1.layer.conv1.conv.weight" in report.kept  # not in an SSL checkpoint
    assert torch.equal(net.encoder.encoder1.layer.conv1.conv.weight, encoder1_before)


def test_bad_checkpoints_are_rejected(tmp_path: Path, pair):
    net = pair.net  # every case below fails before copying anything
    with pytest.raises(ValueError, match="no SwinUNETR encoder keys"):
        load_swin_unetr_weights(net, {"conv.weight": torch.zeros(1)})
    partial = {k: v for k, v in pair.reference.state_dict().items() if "layers4" not in k}
    with pytest.raises(ValueError, match="swinViT tensors"):
        load_swin_unetr_weights(net, partial)
    torch.manual_seed(0)
    wider = SwinUNETR(in_channels=1, out_channels=2, feature_size=24).state_dict()
    with pytest.raises(ValueError, match="another feature_size"):
        load_swin_unetr_weights(net, wider)
    with pytest.raises(ValueError, match="does not exist"):
        load_swin_unetr_weights(net, tmp_path / "missing.pt")
    unet = build_network(ModelConfig(backbone="unet"), 1, 2)
    with pytest.raises(ValueError, match="not 'swin-unetr'"):
        load_swin_unetr_weights(unet, pair.reference.state_dict())
