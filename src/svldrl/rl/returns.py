"""n-step discounted returns and the A2C losses (Eqs. 2-7 as method.md reads them).

Shapes are batch-first and may mix per-sample and per-voxel tensors, e.g. global rewards (K, B)
with a per-voxel value map (K, B, 1, H, W, D). Such pairs are aligned from the left (step, batch,
then the rest), not from the right as numpy broadcasting would, which would silently pair the
batch axis with a spatial one.
"""

from __future__ import annotations

import torch


def discounted_returns(rewards: torch.Tensor, bootstrap: torch.Tensor | float, gamma: float) -> torch.Tensor:
    """``R_t = r_t + gamma * R_{t+1}`` for t = K..1, with ``R_{K+1} = bootstrap``.

    Computed in one tensor product, ``R_t = sum_{s >= t} gamma^(s-t) r_s + gamma^(K-t+1) bootstrap``.

    Args:
        rewards: (K, B, ...) rewards of steps 1..K.
        bootstrap: value estimate of the state after step K, (B, ...) aligned from the left with
            ``rewards[0]`` (e.g. (B, 1, H, W, D) with per-sample rewards (K, B)), or a scalar. Detach it.
        gamma: discount factor in [0, 1].

    Returns:
        (K, B, ...) returns, the left-aligned broadcast of ``rewards`` and ``bootstrap``.
    """
    if rewards.dim() < 1 or rewards.shape[0] < 1:
        raise ValueError(f"rewards: expected (K, B, ...) with K >= 1, got shape {tuple(rewards.shape)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    bootstrap = torch.as_tensor(bootstrap, dtype=rewards.dtype, device=rewards.device)
    k = rewards.shape[0]
    steps = torch.arange(k, device=rewards.device)
    lag = (steps[None, :] - steps[:, None]).to(rewards.dtype)  # (K, K) s - t
    discount = torch.where(lag >= 0, gamma**lag, torch.zeros_like(lag))  # (K, K) upper triangle gamma^(s-t)
    reward_part = torch.tensordot(discount, rewards, dims=([1], [0]))  # (K, B, ...)
    tail = gamma ** (k - steps).to(rewards.dtype)  # (K,) gamma^(K-t+1) for t = 1..K
    if bootstrap.dim() == 0:
        return reward_part + tail.view(-1, *([1] * (rewards.dim() - 1))) * bootstrap
    reward_part, boot = _left_align(reward_part, bootstrap[None], "rewards", "bootstrap")
    return reward_part + tail.view(-1, *([1] * (boot.dim() - 1))) * boot


def value_loss(returns: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Mean over steps and voxels of ``(R - V)^2`` (Eq. 3; the returns are treated as constants).

    Args:
        returns: (K, B, ...) from ``discounted_returns``, left-aligned with ``values``.
        values: (K, B, 1, H, W, D) value maps V(s(t)) of the states the actions were taken in.
    """
    returns, values = _left_align(returns.detach(), values, "returns", "values")
    return (returns - values).square().mean()


def policy_loss(
    log_prob: torch.Tensor, advantages: torch.Tensor, entropy: torch.Tensor, entropy_coef: float
) -> torch.Tensor:
    """``mean(-log pi(a|s) * A) - entropy_coef * mean(entropy)`` (Eq. 5 with an entropy bonus).

    The advantage is detached: the policy loss must not train the value head.

    Args:
        log_prob: (K, B, H, W, D) log-probabilities of the taken actions (or any (..., H, W, D)).
        advantages: ``R - V``, the shape of ``log_prob``, or with the value map's channel axis
            ((K, B, 1, H, W, D)), or per sample ((K, B)).
        entropy: per-voxel entropy, the shape of ``log_prob``.
        entropy_coef: weight of the entropy bonus (0.01).
    """
    if entropy.shape != log_prob.shape:
        raise ValueError(f"entropy: shape {tuple(entropy.shape)} differs from log_prob's {tuple(log_prob.shape)}")
    adv = advantages.detach()
    if adv.dim() == log_prob.dim() + 1 and adv.dim() >= 4 and adv.shape[-4] == 1:
        adv = adv.squeeze(-4)  # (K, B, 1, H, W, D) value-map layout -> (K, B, H, W, D)
    lp, adv = _left_align(log_prob, adv, "log_prob", "advantages")
    if lp.shape != log_prob.shape:
        raise ValueError(f"advantages: shape {tuple(advantages.shape)} does not fit log_prob {tuple(log_prob.shape)}")
    return -(lp * adv).mean() - entropy_coef * entropy.mean()


def normalize_advantages(advantages: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Advantages shifted to mean 0 and scaled to std 1 over the whole batch of voxel agents.

    Why: a Dice-gain reward is of order 1e-3 per step, so raw advantages give the policy a
    gradient hundreds of times smaller than the Dice loss's and the policy never leaves uniform
    (measured in docs/results.md). Standardising per batch (as PPO/CleanRL's ``norm_adv`` does)
    keeps the ordering of the agents' advantages and makes the step size independent of the
    reward's scale. A batch whose advantages are all equal gives zeros, not a division by zero.
    """
    adv = advantages.detach()
    return (adv - adv.mean()) / (adv.std(unbiased=False) + eps)


def _left_align(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both tensors broadcast to one shape, missing axes added on the right."""
    rank = max(a.dim(), b.dim())
    a = a.reshape(*a.shape, *([1] * (rank - a.dim())))
    b = b.reshape(*b.shape, *([1] * (rank - b.dim())))
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(
            f"{name_b}: shape {tuple(b.shape)} does not match {name_a} {tuple(a.shape)} (aligned from the batch axis)"
        ) from None
    return a.expand(shape), b.expand(shape)
