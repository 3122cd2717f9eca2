"""ThreeHeadNet contract on the 'unet' backbone (32^3), build_network and check_patch_size."""

from __future__ import annotations

import pytest
import torch

from svldrl.config import ModelConfig
from svldrl.models import BACKBONES, HEADS, NetOutput, build_network, check_patch_size
from svldrl.registry import UnknownNameError

CHANNELS = (8, 16, 32, 64)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(ModelConfig(backbone="unet", channels=CHANNELS), in_channels=2, n_outputs=3).eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.rand(2, 2, 32, 32, 32, generator=torch.Generator().manual_seed(1))


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_every_head_has_its_shape(net, x):
    with torch.no_grad():
        out = net(x)
    assert isinstance(out, NetOutput)
    assert out.seg.shape == (2, 3, 32, 32, 32)
    assert out.value.shape == (2, 1, 32, 32, 32)
    assert out.policy.shape == (2, 3, 32, 32, 32)


def test_named_heads_run_only_their_decoders_and_the_encoder_once():
    torch.manual_seed(0)
    net = build_network(ModelConfig(channels=CHANNELS), 1, 2).eval()
    calls = {name: _count_calls(net.decoders[name]) for name in HEADS}
    encoder_calls = _count_calls(net.encoder)
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        out = net(x, heads=("seg",))
    assert out.value is None and out.policy is None and out.seg.shape == (1, 2, 32, 32, 32)
    assert {k: v[0] for k, v in calls.items()} == {"seg": 1, "value": 0, "policy": 0}
    with torch.no_grad():
        net(x, heads=("value", "policy"))
    assert {k: v[0] for k, v in calls.items()} == {"seg": 1, "value": 1, "policy": 1}
    assert encoder_calls[0] == 2
    with torch.no_grad():
        net.segment(x)
    assert calls["seg"][0] == 2 and calls["value"][0] == 1 and encoder_calls[0] == 3


def test_segment_equals_the_seg_head_of_a_full_pass(net, x):
    # The decoders share the encoder's features: running value/policy must not alter them.
    with torch.no_grad():
        full = net(x).seg
        alone = net(x, heads=("seg",)).seg
        seg = net.segment(x)
    torch.testing.assert_close(seg, alone, rtol=0, atol=0)
    torch.testing.assert_close(full, alone, rtol=0, atol=0)


def test_unknown_head_and_bad_input_are_rejected(net, x):
    with pytest.raises(ValueError, match="heads: unknown decoder"):
        net(x, heads=("segmentation",))
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.rand(1, 2, 36, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, C, H, W, D\)"):
        net(torch.rand(2, 32, 32, 32))


def test_parameter_groups_partition_the_network(net):
    groups = [list(net.seg_parameters()), list(net.value_parameters()), list(net.policy_parameters())]
    ids = [{id(p) for p in g} for g in groups]
    assert all(len(i) == len(g) for i, g in zip(ids, groups, strict=True))
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert ids[0] | ids[1] | ids[2] == {id(p) for p in net.parameters()}
    assert {id(p) for p in net.encoder.parameters()} <= ids[0]


def test_value_loss_reaches_value_decoder_and_encoder_only(x):
    torch.manual_seed(0)
    net = build_network(ModelConfig(channels=CHANNELS), 2, 3)
    net(x, heads=("value",)).value.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.value_parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.encoder.parameters())
    assert all(p.grad is None for p in net.policy_parameters())
    assert all(p.grad is None for p in net.decoders["seg"].parameters())


def test_initial_policy_is_near_uniform_and_value_near_zero(net, x):
    with torch.no_grad():
        out = net(x)
    probs = torch.softmax(out.policy, dim=1)
    assert (probs - 1 / 3).abs().max() < 0.01
    assert out.value.abs().max() < 0.01
    # Only the value and policy outputs are shrunk: the seg logits keep the usual init scale.
    assert out.seg.std() > 20 * out.value.std()


def test_dropout_acts_in_training_mode_only():
    torch.manual_seed(0)
    net = build_network(ModelConfig(channels=CHANNELS, dropout=0.5), 1, 2)
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert not torch.equal(net.segment(x), net.segment(x))
        net.eval()
        assert torch.equal(net.segment(x), net.segment(x))


def test_build_network_rejects_bad_configurations():
    with pytest.raises(UnknownNameError, match="Did you mean 'unet'"):
        build_network(ModelConfig(backbone="unett"), 1, 2)
    with pytest.raises(ValueError, match="only supported for 'swin-unetr'"):
        build_network(ModelConfig(backbone="unet", pretrained="weights.pt"), 1, 2)
    with pytest.raises(ValueError, match="model.dropout"):
        build_network(ModelConfig(dropout=1.5), 1, 2)
    with pytest.raises(ValueError, match="model.channels"):
        build_network(ModelConfig(channels=(16,)), 1, 2)
    with pytest.raises(ValueError, match="n_outputs"):
        build_network(ModelConfig(), 1, 0)


def test_backbone_registry_lists_both_backbones():
    assert set(BACKBONES.names()) == {"unet", "swin-unetr"}
    assert BACKBONES.canonical("SwinUNETR") == "swin-unetr"


@pytest.mark.parametrize(
    ("backbone", "patch", "cfg"),
    [
        ("unet", (32, 32, 32), ModelConfig()),
        ("unet", (48, 16, 64), ModelConfig()),
        ("unet", (16, 16, 16), ModelConfig(channels=(8, 16, 32))),  # 2**2 = 4, at least 8
        ("swin-unetr", (64, 64, 64), ModelConfig()),
        ("swin-unetr", (96, 128, 64), ModelConfig()),
    ],
)
def test_check_patch_size_accepts_valid_sizes(backbone, patch, cfg):
    check_patch_size(backbone, patch, cfg)


@pytest.mark.parametrize(
    ("backbone", "patch", "message"),
    [
        ("unet", (36, 32, 32), r"multiple of 8 and at least 16 .*; e.g. use \(40, 32, 32\)"),
        ("unet", (8, 8, 8), r"at least 16 .*; e.g. use \(16, 16, 16\)"),
        ("swin-unetr", (32, 32, 32), r"multiple of 32 and at least 64 .*; e.g. use \(64, 64, 64\)"),
        ("swin-unetr", (96, 80, 96), r"e.g. use \(96, 96, 96\)"),
        ("unet", (32, 32), "expected 3 sides"),
    ],
)
def test_check_patch_size_says_what_to_change(backbone, patch, message):
    with pytest.raises(ValueError, match=message):
        check_patch_size(backbone, patch, ModelConfig())


def test_check_patch_size_rejects_unknown_backbone():
    with pytest.raises(UnknownNameError, match="Valid: swin-unetr, unet"):
        check_patch_size("resnet", (64, 64, 64), ModelConfig())


# ----------------------------------------------------------------------------- light heads (issue 17)


def test_light_heads_share_the_seg_decoder_and_cost_one_decoder_pass(x):
    torch.manual_seed(0)
    full = build_network(ModelConfig(channels=CHANNELS), 2, 3)
    torch.manual_seed(0)
    light = build_network(ModelConfig(channels=CHANNELS, heads="light"), 2, 3).eval()
    assert set(light.decoders) == {"seg"}
    out = light(x)
    assert out.seg.shape == (2, 3, 32, 32, 32) and out.value.shape == (2, 1, 32, 32, 32)
    assert out.policy.shape == (2, 3, 32, 32, 32)
    passes = _count_calls(light.decoders["seg"].upsamples[0])
    light(x)
    assert passes[0] == 1  # one decoder pass for all three outputs
    torch.testing.assert_close(light.segment(x), out.seg)  # inference is unchanged by the heads
    probs = torch.softmax(out.policy, dim=1)
    assert (probs - 1 / 3).abs().max() < 0.01 and out.value.abs().max() < 0.01  # the same near-zero start
    n_full, n_light = (sum(p.numel() for p in n.parameters()) for n in (full, light))
    assert n_light < 0.6 * n_full
    groups = [list(light.seg_parameters()), list(light.value_parameters()), list(light.policy_parameters())]
    assert sum(len(g) for g in groups) == len(list(light.parameters()))  # still a partition


def test_light_heads_train_the_segmentation_decoder_with_the_rl_losses(x):
    """The trade: with one shared trunk, value and policy gradients reach the seg decoder as well."""
    torch.manual_seed(0)
    light = build_network(ModelConfig(channels=CHANNELS, heads="light"), 2, 3)
    light(x, heads=("value",)).value.square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in light.decoders["seg"].upsamples.parameters())
    assert all(p.grad is None for p in light.policy_parameters())
    with pytest.raises(ValueError, match="heads must be one of"):
        from svldrl.models.network import ThreeHeadNet

        ThreeHeadNet(torch.nn.Identity(), lambda c: torch.nn.Identity(), 2, backbone="unet", patch_multiple=8,
                     heads="tiny")


def test_parameter_counts_split_the_network_and_count_what_inference_runs():
    from svldrl.models import MaskStateNet, parameter_counts

    net = build_network(ModelConfig(channels=CHANNELS), 2, 3)
    counts = parameter_counts(net)
    assert counts["segmentation"] + counts["value"] + counts["policy"] == counts["total"]
    assert counts["inference"] == counts["segmentation"] == sum(p.numel() for p in net.seg_parameters())
    # full heads: the policy decoder is the seg decoder's twin (3 outputs each here), so seg = encoder + policy
    assert counts["segmentation"] - counts["policy"] == sum(p.numel() for p in net.encoder.parameters())
    assert parameter_counts(net, refine=True)["inference"] == counts["segmentation"] + counts["policy"]
    # a mask-state model (PixelDRL-MG): one more input channel, and its policy runs at inference when it refines
    masked = MaskStateNet(build_network(ModelConfig(channels=CHANNELS), 3, 3), 2, 1, "classes")
    plain = parameter_counts(masked)
    assert plain["segmentation"] > counts["segmentation"] and plain["inference"] == plain["segmentation"]
    masked.refine_steps = 2
    assert parameter_counts(masked)["inference"] == plain["segmentation"] + plain["policy"]
    light = parameter_counts(build_network(ModelConfig(channels=CHANNELS, heads="light"), 2, 3))
    assert light["segmentation"] == counts["segmentation"] and light["policy"] < 0.2 * counts["policy"]
    assert parameter_counts(torch.nn.Linear(4, 2)) == {"total": 10, "inference": 10}
