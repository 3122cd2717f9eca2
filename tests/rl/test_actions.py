"""Eq. 10 on hand-computed voxels, and the action distribution (sampling, log-probabilities, gradient)."""

from __future__ import annotations

import pytest
import torch

from svldrl.rl import action_log_prob_and_entropy, apply_actions, greedy_actions, policy_loss, sample_actions


def _voxels(values: list[float]) -> torch.Tensor:
    """(1, 1, n, 1, 1) state from a list of voxel values."""
    return torch.tensor(values).view(1, 1, -1, 1, 1)


def test_eq10_on_hand_computed_voxels():
    state = _voxels([0.5, 0.5, 0.2, 0.9, 0.6, 0.0])
    actions = torch.tensor([1, 2, 0, 1, 2, 1]).view(1, -1, 1, 1)
    eps = torch.tensor([0.5, 1.0, 0.7, 1.0, 0.25, 0.9]).view(1, -1, 1, 1)
    new = apply_actions(state, actions, eps, scale=0.3)
    # 0.5 * 1.15; 0.5 * 0.7; kept; 0.9 * 1.3 = 1.17 -> 1; 0.6 * 0.925; 0 stays 0 under scaling
    expected = _voxels([0.575, 0.35, 0.2, 1.0, 0.555, 0.0])
    torch.testing.assert_close(new, expected)


def test_eq10_clamps_at_zero_with_a_large_scale():
    state = _voxels([0.5, 0.5])
    actions = torch.tensor([2, 1]).view(1, -1, 1, 1)
    eps = torch.tensor([0.8, 0.8]).view(1, -1, 1, 1)
    # scale 2: weaken gives 0.5 * (1 - 1.6) < 0 -> 0; enhance 0.5 * 2.6 -> 1
    torch.testing.assert_close(apply_actions(state, actions, eps, scale=2.0), _voxels([0.0, 1.0]))


def test_keep_leaves_the_voxel_untouched_even_outside_the_range():
    state = _voxels([1.2, -0.1])
    actions = torch.zeros(1, 2, 1, 1, dtype=torch.long)
    assert torch.equal(apply_actions(state, actions, torch.rand(1, 2, 1, 1)), state)


def test_a_voxels_action_applies_to_all_its_channels():
    state = torch.tensor([[0.5, 0.4], [0.2, 0.8]]).view(1, 2, 2, 1, 1)  # channel c, voxel i: state[0, c, i]
    actions = torch.tensor([1, 2]).view(1, 2, 1, 1)
    eps = torch.tensor([1.0, 0.5]).view(1, 2, 1, 1)
    expected = torch.tensor([[0.65, 0.34], [0.26, 0.68]]).view(1, 2, 2, 1, 1)
    torch.testing.assert_close(apply_actions(state, actions, eps), expected)


def test_apply_actions_rejects_bad_input():
    state = torch.rand(1, 1, 4, 4, 4)
    eps = torch.rand(1, 4, 4, 4)
    with pytest.raises(ValueError, match="actions: expected shape"):
        apply_actions(state, torch.zeros(1, 1, 4, 4, 4, dtype=torch.long), eps)
    with pytest.raises(ValueError, match="integer tensor"):
        apply_actions(state, torch.zeros(1, 4, 4, 4), eps)
    with pytest.raises(ValueError, match="0, 1 or 2"):
        apply_actions(state, torch.full((1, 4, 4, 4), 3), eps)
    with pytest.raises(ValueError, match="eps: expected shape"):
        apply_actions(state, torch.zeros(1, 4, 4, 4, dtype=torch.long), torch.rand(4, 4, 4))


def test_same_seed_same_actions_other_seed_other_actions():
    logits = torch.randn(2, 3, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    a1, lp1 = sample_actions(logits, 1.0, torch.Generator().manual_seed(7))
    a2, lp2 = sample_actions(logits, 1.0, torch.Generator().manual_seed(7))
    a3, _ = sample_actions(logits, 1.0, torch.Generator().manual_seed(8))
    assert torch.equal(a1, a2) and torch.equal(lp1, lp2)
    assert not torch.equal(a1, a3)
    assert a1.shape == (2, 8, 8, 8) and a1.dtype == torch.long


def test_small_temperature_gives_the_argmax():
    g = torch.Generator().manual_seed(0)
    # per voxel a permutation of (0, 0.5, 1): the best action leads by 0.5, i.e. 500 at tau = 1e-3
    levels = torch.tensor([0.0, 0.5, 1.0])
    perms = torch.stack([torch.randperm(3, generator=g) for _ in range(16 * 16 * 16)])  # (4096, 3)
    logits = levels[perms].T.reshape(1, 3, 16, 16, 16)
    actions, _ = sample_actions(logits, 1e-3, torch.Generator().manual_seed(1))
    assert torch.equal(actions, greedy_actions(logits))
    hot, _ = sample_actions(logits, 1.0, torch.Generator().manual_seed(1))
    assert (hot != greedy_actions(logits)).float().mean() > 0.3  # tau = 1 explores


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_action_frequencies_match_softmax(tau):
    probs = torch.tensor([0.2, 0.5, 0.3])
    logits = probs.log().view(1, 3, 1, 1, 1).expand(1, 3, 32, 32, 32)
    actions, _ = sample_actions(logits, tau, torch.Generator().manual_seed(3))
    n = actions.numel()
    freq = torch.bincount(actions.flatten(), minlength=3).float() / n
    expected = torch.softmax(probs.log() / tau, dim=0)
    sigma = (expected * (1 - expected) / n).sqrt()  # binomial standard error, ~0.003 here
    assert ((freq - expected).abs() < 4 * sigma).all(), (freq, expected)


def test_log_prob_and_entropy_match_torch_categorical():
    logits = torch.randn(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    tau = 1.5
    actions, log_prob = sample_actions(logits, tau, torch.Generator().manual_seed(1))
    dist = torch.distributions.Categorical(logits=(logits / tau).movedim(1, -1))
    torch.testing.assert_close(log_prob, dist.log_prob(actions))
    lp, ent = action_log_prob_and_entropy(logits, actions, tau=tau)
    torch.testing.assert_close(lp, dist.log_prob(actions))
    torch.testing.assert_close(ent, dist.entropy())
    assert float(ent.max()) <= float(torch.log(torch.tensor(3.0))) + 1e-6


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_policy_gradient_moves_probability_with_the_advantage(sign):
    logits = torch.zeros(1, 3, 2, 2, 1, requires_grad=True)
    actions = torch.tensor([0, 1, 2, 1]).view(1, 2, 2, 1)
    log_prob, entropy = action_log_prob_and_entropy(logits, actions)
    advantages = torch.full((1, 2, 2, 1), sign)
    policy_loss(log_prob, advantages, entropy, entropy_coef=0.0).backward()
    with torch.no_grad():
        stepped = logits - 0.5 * logits.grad  # one SGD step
        new_prob = torch.softmax(stepped, dim=1).gather(1, actions.unsqueeze(1)).squeeze(1)
    if sign > 0:
        assert (new_prob > 1 / 3).all()
    else:
        assert (new_prob < 1 / 3).all()


def test_sampled_log_prob_carries_the_gradient():
    logits = torch.randn(1, 3, 4, 4, 4, requires_grad=True)
    _, log_prob = sample_actions(logits, 1.0, torch.Generator().manual_seed(0))
    log_prob.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_sampling_rejects_bad_arguments():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="tau must be > 0"):
        sample_actions(torch.zeros(1, 3, 2, 2, 2), 0.0, g)
    with pytest.raises(ValueError, match=r"logits: expected \(B, 3, H, W, D\)"):
        sample_actions(torch.zeros(1, 2, 2, 2, 2), 1.0, g)
    with pytest.raises(ValueError, match="actions: expected shape"):
        action_log_prob_and_entropy(torch.zeros(1, 3, 2, 2, 2), torch.zeros(2, 2, 2, dtype=torch.long))
