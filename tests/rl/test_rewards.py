"""Soft Dice, the anatomical penalty C~ and the step reward, against hand and numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svldrl.rl import anatomical_penalty, soft_dice, step_reward

SIDE = 32


def _ball(center: tuple[float, float, float], radius: float, side: int = SIDE) -> torch.Tensor:
    grid = torch.stack(torch.meshgrid(*[torch.arange(side, dtype=torch.float32)] * 3, indexing="ij"))
    return ((grid - torch.tensor(center).view(3, 1, 1, 1)).square().sum(0) <= radius**2).float()


def _as_batch(*volumes: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W, D) from (H, W, D) volumes."""
    return torch.stack(volumes).unsqueeze(1)


def _numpy_tv_ratio(volume: torch.Tensor) -> float:
    """TV / max(1, sum) with numpy: forward differences after edge-replicating one voxel on the far side."""
    v = volume.double().numpy()
    padded = np.pad(v, [(0, 1)] * 3, mode="edge")
    gx = np.diff(padded, axis=0)[:, :-1, :-1]
    gy = np.diff(padded, axis=1)[:-1, :, :-1]
    gz = np.diff(padded, axis=2)[:-1, :-1, :]
    return float(np.sqrt(gx**2 + gy**2 + gz**2).sum() / max(1.0, v.sum()))


def test_soft_dice_by_hand():
    prob = torch.tensor([1.0, 1.0, 0.5, 0.0]).view(1, 1, 4, 1, 1)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 4, 1, 1)
    # 2 * (1 + 0.5) / (2.5 + 2) = 2/3
    torch.testing.assert_close(soft_dice(prob, target), torch.tensor([2 / 3]), rtol=1e-4, atol=1e-5)
    empty = torch.zeros(1, 1, 4, 1, 1)
    torch.testing.assert_close(soft_dice(empty, empty), torch.tensor([1.0]))
    two_channels = torch.cat([prob, target], dim=1)  # channel 1 is perfect
    torch.testing.assert_close(soft_dice(two_channels, torch.cat([target, target], 1)), torch.tensor([(2 / 3 + 1) / 2]))


def test_one_ball_is_compact_and_matches_numpy():
    ball = _ball((16, 16, 16), 8)
    penalty = anatomical_penalty(_as_batch(ball))
    assert penalty.shape == (1,)
    # one component -> the Ncc part is 0; what is left is the surface-to-volume ratio (~3/r for a ball)
    assert float(penalty) == pytest.approx(_numpy_tv_ratio(ball), rel=1e-5)
    assert 3 / 8 < float(penalty) < 0.6


def test_two_balls_cost_a_tenth_more_than_their_shape():
    one = _ball((16, 16, 16), 8)
    two = torch.maximum(_ball((8, 8, 8), 6), _ball((23, 23, 23), 6))
    pen_one, pen_two = anatomical_penalty(_as_batch(one, two)).tolist()
    assert pen_two == pytest.approx(0.1 + _numpy_tv_ratio(two), rel=1e-5)
    assert pen_two > pen_one


def test_components_are_26_connected_and_capped_at_ten_extra():
    corner = torch.zeros(SIDE, SIDE, SIDE)
    corner[4, 4, 4] = corner[5, 5, 5] = 1.0  # touch at a corner only: one component with 26-connectivity
    scattered = torch.zeros(SIDE, SIDE, SIDE)
    scattered[::4, ::4, 0][:4, :4] = 1.0  # 16 isolated voxels: min(15, 10) / 10 = 1
    pen_corner, pen_scattered = anatomical_penalty(_as_batch(corner, scattered)).tolist()
    assert pen_corner == pytest.approx(_numpy_tv_ratio(corner), rel=1e-5)
    assert pen_scattered == pytest.approx(1.0 + _numpy_tv_ratio(scattered), rel=1e-5)


def test_jagged_mask_costs_more_than_a_smooth_one_of_the_same_volume():
    smooth = torch.zeros(SIDE, SIDE, SIDE)
    smooth[8:24, 8:24, 8:16] = 1.0
    jagged = torch.zeros(SIDE, SIDE, SIDE)
    jagged[8:24, 8:24, 8:14] = 1.0
    checker = (torch.arange(16).view(-1, 1) + torch.arange(16).view(1, -1)) % 2 == 0
    jagged[8:24, 8:24, 14:18] = checker.float().unsqueeze(-1)  # 128 pillars of height 4 on the base
    assert smooth.sum() == jagged.sum() == 2048
    pen_smooth, pen_jagged = anatomical_penalty(_as_batch(smooth, jagged)).tolist()
    assert pen_jagged > 2 * pen_smooth
    assert pen_jagged == pytest.approx(_numpy_tv_ratio(jagged), rel=1e-5)  # still one component


def test_no_component_and_the_replicate_border():
    faint = torch.full((SIDE, SIDE, SIDE), 0.3)  # nothing above 0.5, no gradient anywhere
    half = torch.zeros(SIDE, SIDE, SIDE)
    half[:16] = 1.0  # fills the patch up to its borders: only the face at x = 15/16 counts
    pen_faint, pen_half = anatomical_penalty(_as_batch(faint, half)).tolist()
    assert pen_faint == 0.0
    assert pen_half == pytest.approx(SIDE * SIDE / (16 * SIDE * SIDE))  # 1024 unit steps / 16384 voxels


def test_penalty_of_several_channels_is_their_mean():
    one, two = _ball((16, 16, 16), 8), torch.maximum(_ball((8, 8, 8), 6), _ball((23, 23, 23), 6))
    both = torch.stack([one, two]).unsqueeze(0)  # (1, 2, H, W, D)
    separate = anatomical_penalty(_as_batch(one, two))
    torch.testing.assert_close(anatomical_penalty(both), separate.mean().view(1))


def test_step_toward_the_target_is_rewarded_by_hand():
    ball = _as_batch(_ball((16, 16, 16), 8))
    prev, prob = 0.4 * ball, 0.9 * ball  # same shape, closer to the label
    parts = step_reward(prev, prob, ball)
    # soft Dice of c * ball against the ball: 2c / (1 + c)
    assert float(parts.dice_gain) == pytest.approx(2 * 0.9 / 1.9 - 2 * 0.4 / 1.4, rel=1e-4)
    # TV / volume does not change with c, and prev has no component above 0.5: no penalty change
    assert float(parts.penalty_change) == pytest.approx(0.0, abs=1e-6)
    assert float(parts.total) > 0
    backwards = step_reward(prob, prev, ball)
    assert float(backwards.total) == pytest.approx(-float(parts.total), rel=1e-4)


def test_global_reward_combines_dice_gain_and_penalty_change():
    target = _as_batch(_ball((16, 16, 16), 8), _ball((10, 12, 14), 6))
    g = torch.Generator().manual_seed(0)
    prev = (target + 0.6 * torch.rand(target.shape, generator=g)).clamp(0, 1)
    prob = (target + 0.3 * torch.rand(target.shape, generator=g)).clamp(0, 1)
    parts = step_reward(prev, prob, target, penalty_weight=0.2)
    dice_gain = soft_dice(prob, target) - soft_dice(prev, target)
    change = anatomical_penalty(prob) - anatomical_penalty(prev)
    assert parts.total.shape == (2,)
    torch.testing.assert_close(parts.dice_gain, dice_gain)
    torch.testing.assert_close(parts.penalty_change, change)
    torch.testing.assert_close(parts.penalty, anatomical_penalty(prob))
    torch.testing.assert_close(parts.total, dice_gain - 0.2 * change)
    level = step_reward(prev, prob, target, penalty_weight=0.2, penalty_form="level")
    torch.testing.assert_close(level.total, dice_gain - 0.2 * anatomical_penalty(prob))


def test_previous_penalty_is_used_instead_of_recomputed():
    target = _as_batch(_ball((16, 16, 16), 8))
    prev, prob = 0.5 * target + 0.2, 0.8 * target + 0.1
    computed = step_reward(prev, prob, target)
    passed = step_reward(prev, prob, target, prev_penalty=anatomical_penalty(prev))
    torch.testing.assert_close(passed.total, computed.total)
    made_up = step_reward(prev, prob, target, prev_penalty=torch.tensor([0.5]))
    torch.testing.assert_close(made_up.total, computed.dice_gain - 0.1 * (computed.penalty - 0.5))


def test_voxel_reward_is_positive_exactly_where_a_voxel_moved_toward_its_label():
    g = torch.Generator().manual_seed(2)
    target = (torch.rand(2, 1, 16, 16, 16, generator=g) > 0.5).float()
    prev = torch.rand(2, 1, 16, 16, 16, generator=g)
    prob = torch.rand(2, 1, 16, 16, 16, generator=g)
    parts = step_reward(prev, prob, target, granularity="voxel")
    assert parts.total.shape == (2, 1, 16, 16, 16)
    global_part = parts.dice_gain - 0.1 * parts.penalty_change
    own = parts.total - global_part.view(2, 1, 1, 1, 1)
    moved_closer = (prob - target).abs() < (prev - target).abs()
    assert torch.equal(own > 0, moved_closer)
    torch.testing.assert_close(own, (prev - target).abs() - (prob - target).abs())


def test_voxel_reward_by_hand_on_two_channels():
    target = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).view(1, 2, 2, 1, 1)  # (B=1, F=2, 2 voxels)
    prev = torch.tensor([[0.2, 0.4], [0.5, 0.5]]).view(1, 2, 2, 1, 1)
    prob = torch.tensor([[0.6, 0.1], [0.5, 0.3]]).view(1, 2, 2, 1, 1)
    parts = step_reward(prev, prob, target, granularity="voxel", penalty_weight=0.0)
    # voxel 0: channel 0 gains 0.4, channel 1 gains 0; voxel 1: 0.3 and -0.2 -> means 0.2 and 0.05
    own = torch.tensor([0.2, 0.05]).view(1, 1, 2, 1, 1)
    torch.testing.assert_close(parts.total, own + parts.dice_gain.view(1, 1, 1, 1, 1))


def test_rewards_carry_no_gradient_and_reject_bad_arguments():
    prob = torch.rand(1, 1, 8, 8, 8, requires_grad=True)
    target = torch.ones(1, 1, 8, 8, 8)
    assert not step_reward(prob * 0.5, prob, target).total.requires_grad
    with pytest.raises(ValueError, match="granularity"):
        step_reward(prob, prob, target, granularity="local")
    with pytest.raises(ValueError, match="penalty_form"):
        step_reward(prob, prob, target, penalty_form="levels")
    with pytest.raises(ValueError, match="target: shape"):
        step_reward(prob, prob, torch.ones(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match="prev_penalty: expected shape"):
        step_reward(prob, prob, target, prev_penalty=torch.zeros(2))
