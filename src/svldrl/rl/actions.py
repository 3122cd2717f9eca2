"""Voxel actions (Eq. 10) and the action distribution of the policy decoder.

Every voxel is an agent with three actions: 0 keep, 1 enhance, 2 weaken its intensity. The policy
decoder gives (B, 3, H, W, D) logits; actions and their log-probabilities are (B, H, W, D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KEEP, ENHANCE, WEAKEN = 0, 1, 2
"""The actions of Eq. 10."""


def apply_actions(state: torch.Tensor, actions: torch.Tensor, eps: torch.Tensor, scale: float = 0.3) -> torch.Tensor:
    """Eq. 10: the next state after every voxel's action.

    Action 0 keeps the voxel; 1 sets ``clamp(v * (1 + scale * e), 0, 1)``; 2 sets
    ``clamp(v * (1 - scale * e), 0, 1)``. A voxel's action applies to all its channels.

    Args:
        state: (B, C, H, W, D) intensities in [0, 1].
        actions: (B, H, W, D) integer actions in {0, 1, 2}.
        eps: (B, H, W, D) draws of U(0, 1), one per voxel (``torch.rand(..., generator=g)``).
        scale: the largest relative change (0.3 in the paper).

    Returns:
        (B, C, H, W, D) new state (no gradient is meant to flow through it).
    """
    _check_actions(state, actions, eps)
    signed = (actions == ENHANCE).to(state.dtype) - (actions == WEAKEN).to(state.dtype)  # (B, H, W, D) +1/-1/0
    factor = (1.0 + scale * eps.to(state.dtype) * signed).unsqueeze(1)  # (B, 1, H, W, D)
    changed = (state * factor).clamp(0.0, 1.0)  # (B, C, H, W, D)
    return torch.where((actions == KEEP).unsqueeze(1), state, changed)


def sample_actions(logits: torch.Tensor, tau: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one action per voxel from ``softmax(logits / tau)`` (Gumbel-max, generator-drawn uniforms).

    Args:
        logits: (B, 3, H, W, D) policy logits.
        tau: softmax temperature (> 0); 1 in training, small values approach the argmax.
        generator: torch generator on the logits' device (one seed, one rollout).

    Returns:
        actions (B, H, W, D) long, and their log-probability under ``softmax(logits / tau)``
        (B, H, W, D), differentiable with respect to ``logits``.
    """
    _check_logits(logits)
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if generator.device.type != logits.device.type:
        raise ValueError(f"generator is on {generator.device}, logits on {logits.device}: create it on the same device")
    scaled = logits / tau  # (B, 3, H, W, D)
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float32)
    gumbel = -torch.log(-torch.log(uniform.clamp_min(torch.finfo(torch.float32).tiny)))  # (B, 3, H, W, D)
    actions = torch.argmax(scaled.detach().float() + gumbel, dim=1)  # (B, H, W, D)
    log_prob = torch.gather(F.log_softmax(scaled, dim=1), 1, actions.unsqueeze(1)).squeeze(1)  # (B, H, W, D)
    return actions, log_prob


def greedy_actions(logits: torch.Tensor) -> torch.Tensor:
    """(B, H, W, D) the most probable action per voxel (the policy at test time)."""
    _check_logits(logits)
    return torch.argmax(logits, dim=1)


def action_log_prob_and_entropy(
    logits: torch.Tensor, actions: torch.Tensor, *, tau: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-voxel log-probability of ``actions`` and entropy under ``softmax(logits / tau)``.

    Args:
        logits: (B, 3, H, W, D) policy logits.
        actions: (B, H, W, D) integer actions in {0, 1, 2}.
        tau: the temperature the actions were sampled with (keep 1 unless sampling used another).

    Returns:
        log_prob (B, H, W, D) and entropy (B, H, W, D), both differentiable with respect to ``logits``.
    """
    _check_logits(logits)
    voxels = tuple(logits.shape[:1] + logits.shape[2:])
    if tuple(actions.shape) != voxels:
        raise ValueError(f"actions: expected shape {voxels}, got {tuple(actions.shape)}")
    log_p = F.log_softmax(logits / tau, dim=1)  # (B, 3, H, W, D)
    log_prob = torch.gather(log_p, 1, actions.long().unsqueeze(1)).squeeze(1)  # (B, H, W, D)
    entropy = -(log_p.exp() * log_p).sum(dim=1)  # (B, H, W, D)
    return log_prob, entropy


def _check_logits(logits: torch.Tensor) -> None:
    if logits.dim() != 5 or logits.shape[1] != 3:
        raise ValueError(f"logits: expected (B, 3, H, W, D) action logits, got shape {tuple(logits.shape)}")


def _check_actions(state: torch.Tensor, actions: torch.Tensor, eps: torch.Tensor) -> None:
    if state.dim() != 5:
        raise ValueError(f"state: expected (B, C, H, W, D), got shape {tuple(state.shape)}")
    voxels = state.shape[:1] + state.shape[2:]
    if actions.shape != voxels:
        raise ValueError(f"actions: expected shape {tuple(voxels)} (one per voxel), got {tuple(actions.shape)}")
    if eps.shape != voxels:
        raise ValueError(f"eps: expected shape {tuple(voxels)} (one per voxel), got {tuple(eps.shape)}")
    if actions.dtype.is_floating_point or actions.dtype == torch.bool:
        raise ValueError(f"actions: expected an integer tensor, got {actions.dtype}")
    if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) > 2):
        raise ValueError(f"actions: values must be 0, 1 or 2, got range [{int(actions.min())}, {int(actions.max())}]")
