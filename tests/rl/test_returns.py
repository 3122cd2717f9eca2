"""Discounted returns against hand-computed and loop-computed values; value and policy losses by hand."""

from __future__ import annotations

import pytest
import torch

from svldrl.rl import discounted_returns, normalize_advantages, policy_loss, value_loss


def _loop_returns(rewards: torch.Tensor, bootstrap: torch.Tensor, gamma: float) -> torch.Tensor:
    """The recursion R_t = r_t + gamma R_{t+1}, step by step (independent of the tensor product)."""
    out = []
    running = bootstrap
    for r in reversed(rewards):
        running = r + gamma * running
        out.append(running)
    return torch.stack(out[::-1])


def test_known_sequence_by_hand():
    rewards = torch.tensor([1.0, 0.0, 2.0]).view(3, 1)
    # R3 = 2 + 0.5 * 4 = 4; R2 = 0 + 0.5 * 4 = 2; R1 = 1 + 0.5 * 2 = 2
    returns = discounted_returns(rewards, torch.tensor([4.0]), 0.5)
    torch.testing.assert_close(returns, torch.tensor([[2.0], [2.0], [4.0]]))
    torch.testing.assert_close(discounted_returns(rewards, 4.0, 0.5), returns)


def test_per_voxel_returns_match_the_recursion():
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(4, 2, 1, 4, 4, 4, generator=g)
    bootstrap = torch.randn(2, 1, 4, 4, 4, generator=g)
    torch.testing.assert_close(discounted_returns(rewards, bootstrap, 0.95), _loop_returns(rewards, bootstrap, 0.95))


def test_per_sample_rewards_with_a_per_voxel_bootstrap_align_on_the_batch_axis():
    g = torch.Generator().manual_seed(1)
    rewards = torch.randn(3, 2, generator=g)  # (K, B) global rewards
    bootstrap = torch.randn(2, 1, 2, 2, 2, generator=g)  # (B, 1, H, W, D) value map
    returns = discounted_returns(rewards, bootstrap, 0.9)
    assert returns.shape == (3, 2, 1, 2, 2, 2)
    expected = _loop_returns(rewards.view(3, 2, 1, 1, 1, 1), bootstrap, 0.9)
    torch.testing.assert_close(returns, expected)


def test_gamma_zero_and_one():
    rewards = torch.tensor([1.0, 2.0, 3.0]).view(3, 1)
    torch.testing.assert_close(discounted_returns(rewards, 10.0, 0.0), rewards)
    torch.testing.assert_close(discounted_returns(rewards, 10.0, 1.0), torch.tensor([[16.0], [15.0], [13.0]]))


def test_returns_reject_bad_arguments():
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(torch.zeros(3, 1), 0.0, 1.5)
    with pytest.raises(ValueError, match="bootstrap: shape"):
        discounted_returns(torch.zeros(3, 2), torch.zeros(3, 1, 2, 2, 2), 0.9)


def test_value_loss_by_hand_and_only_values_get_gradient():
    returns = torch.tensor([[1.0, 2.0]], requires_grad=True)
    values = torch.tensor([[0.0, 4.0]], requires_grad=True)
    loss = value_loss(returns, values)
    torch.testing.assert_close(loss, torch.tensor(2.5))  # (1 + 4) / 2
    loss.backward()
    torch.testing.assert_close(values.grad, torch.tensor([[-1.0, 2.0]]))  # 2 (V - R) / 2
    assert returns.grad is None


def test_value_loss_with_global_returns_and_value_maps():
    returns = torch.tensor([[1.0], [3.0]])  # (K=2, B=1)
    values = torch.zeros(2, 1, 1, 2, 2, 2)
    torch.testing.assert_close(value_loss(returns, values), torch.tensor(5.0))  # (1 + 9) / 2


def test_policy_loss_by_hand():
    log_prob = torch.tensor([-1.0, -2.0]).view(1, 2, 1, 1)
    advantages = torch.tensor([1.0, -1.0]).view(1, 2, 1, 1)
    entropy = torch.tensor([0.5, 1.5]).view(1, 2, 1, 1)
    # mean(-lp * A) = mean(1, -2) = -0.5; minus 0.1 * mean(entropy) = 0.1
    torch.testing.assert_close(policy_loss(log_prob, advantages, entropy, 0.1), torch.tensor(-0.6))


def test_policy_loss_accepts_value_map_and_per_sample_advantages():
    g = torch.Generator().manual_seed(0)
    log_prob = torch.randn(3, 2, 4, 4, 4, generator=g)
    entropy = torch.rand(3, 2, 4, 4, 4, generator=g)
    adv_map = torch.randn(3, 2, 1, 4, 4, 4, generator=g)
    expected = policy_loss(log_prob, adv_map.squeeze(2), entropy, 0.01)
    torch.testing.assert_close(policy_loss(log_prob, adv_map, entropy, 0.01), expected)
    adv_sample = torch.randn(3, 2, generator=g)
    expected = -(log_prob * adv_sample.view(3, 2, 1, 1, 1)).mean() - 0.01 * entropy.mean()
    torch.testing.assert_close(policy_loss(log_prob, adv_sample, entropy, 0.01), expected)


def test_policy_loss_detaches_the_advantage():
    log_prob = torch.randn(1, 2, 2, 2, requires_grad=True)
    advantages = torch.randn(1, 2, 2, 2, requires_grad=True)
    policy_loss(log_prob, advantages, torch.zeros(1, 2, 2, 2), 0.0).backward()
    assert advantages.grad is None
    torch.testing.assert_close(log_prob.grad, -advantages.detach() / 8)


def test_policy_loss_rejects_mismatched_shapes():
    log_prob = torch.zeros(3, 2, 4, 4, 4)
    with pytest.raises(ValueError, match="entropy: shape"):
        policy_loss(log_prob, log_prob, torch.zeros(3, 2, 4, 4), 0.01)
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(log_prob, torch.zeros(3, 2, 4, 4, 4, 4), log_prob, 0.01)


def test_normalized_advantages_have_zero_mean_unit_std_and_keep_the_order():
    adv = torch.tensor([[0.001, -0.002, 0.0005, 0.003]])
    norm = normalize_advantages(adv)
    assert abs(norm.mean().item()) < 1e-6
    assert norm.std(unbiased=False).item() == pytest.approx(1.0, rel=1e-5)
    assert torch.equal(torch.argsort(norm.flatten()), torch.argsort(adv.flatten()))


def test_normalized_advantages_do_not_depend_on_the_reward_scale_and_handle_constants():
    adv = torch.randn(2, 1, 4, 4, 4)
    assert torch.allclose(normalize_advantages(adv * 1e-3), normalize_advantages(adv), atol=1e-4)
    assert torch.equal(normalize_advantages(torch.full((3, 5), 0.25)), torch.zeros(3, 5))


def test_normalized_advantages_are_detached():
    adv = torch.randn(8, requires_grad=True)
    assert not normalize_advantages(adv).requires_grad
