"""Credit from trusted cases: how much training one voxel on one label would help the trusted cases.

The reward the noisy label alone cannot give (issue 15). Take the gradient of the segmentation
loss on a batch of trusted (expert-checked) patches, ``g_T = grad_theta L_T(theta)``, and the
change of every training voxel's logits along one descent step on it,

    delta_i = d z_i(theta - s g_T) / ds at s = 0 = -J_i g_T        (J_i = dz_i / dtheta)

computed for all voxels of a batch at once as a Jacobian-vector product (``torch.func.jvp``; one
forward-mode pass), or by a central finite difference. For a voxel trained with cross-entropy toward
label ``l`` (one-hot ``e_l``), one SGD step of size eta on that voxel alone changes the trusted
loss by

    L_T(theta - eta grad l_i) - L_T(theta) = -eta <g_T, J_i^T (p_i - e_l)> = eta (p_i - e_l) . delta_i     (C1)

(first order), so its *credit*, the trusted loss it removes, is ``C_i(l) = (e_l - p_i) . delta_i``
(up to eta). This is the per-example meta-gradient of Learning to Reweight (Ren et al. 2018, Eq. 12)
and MLB-Seg, written per voxel. Two consequences used here:

- changing voxel i's label from ``y`` to ``l`` changes its credit by ``(e_l - e_y) . delta_i``
  (C2), which does not depend on the prediction: a label is good for voxel i when the trusted
  cases' own descent step moves voxel i's logits toward it;
- a voxel's weight in Learning to Reweight is ``max(0, C_i(y_i))`` (C3), normalised over the batch.

Everything is written in the class view of ``baselines/common.py`` (G groups of n exclusive
classes: one group for classes, one two-class group per region), so the same lines serve LA
(two classes) and BraTS (overlapping regions). Nothing here keeps a graph: credits are rewards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, jvp

CREDIT_ESTIMATORS = ("jvp", "finite_difference")
FINITE_DIFFERENCE_STEP = 1e-4
"""Step of the finite difference: the parameters move by this share of their RMS. PReLU kinks and
instance norm on small patches make the difference a few per cent off the exact product (measured:
2.7 % at 1e-4, 7 % at 1e-3 on a random 16^3 patch, float32 rounding takes over below): use it only
where the forward-mode pass is too dear."""

SegForward = Callable[[nn.Module, torch.Tensor], torch.Tensor]
"""(network, image) -> (B, n_outputs, h, w, d) segmentation logits."""


def trusted_gradient(
    net: nn.Module, forward: SegForward, image: torch.Tensor, target: torch.Tensor, loss_fn: nn.Module
) -> dict[str, torch.Tensor]:
    """``g_T``: the gradient of the segmentation loss on a trusted batch, by parameter name.

    Only parameters the loss reaches are returned (the encoder and the segmentation decoder); the
    network's own ``.grad`` fields are left untouched.

    Args:
        net: the network being trained.
        forward: how it segments an image (``SegForward``).
        image: (Bt, C, h, w, d) trusted patches.
        target: (Bt, n_outputs, h, w, d) their (clean) labels.
        loss_fn: the training loss (the Dice loss of the run).
    """
    named = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
    loss = loss_fn(forward(net, image), target)
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    return {name: g.detach() for (name, _), g in zip(named, grads, strict=True) if g is not None}


def descent_logit_change(
    net: nn.Module,
    forward: SegForward,
    image: torch.Tensor,
    direction: dict[str, torch.Tensor],
    estimator: str = "jvp",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits of ``image`` and ``delta = -J direction``, their change along a descent step on ``direction``.

    Args:
        net: the network (its current parameters are the point of expansion).
        forward: how it segments an image.
        image: (B, C, h, w, d) training patches.
        direction: ``g_T`` by parameter name (``trusted_gradient``).
        estimator: "jvp" (exact, one forward-mode pass, about a forward-backward's cost) or
            "finite_difference" (central, two more forwards at ``theta -+ h g_T``; cheaper than the
            jvp on some machines, a few per cent off: ``FINITE_DIFFERENCE_STEP``).

    Returns:
        logits (B, n_outputs, h, w, d) at theta, and delta of the same shape, both without gradient.
    """
    if estimator not in CREDIT_ESTIMATORS:
        raise ValueError(f"credit estimator must be one of {CREDIT_ESTIMATORS}, got {estimator!r}")
    params = {name: p.detach() for name, p in net.named_parameters() if name in direction}
    frozen = {name: p.detach() for name, p in net.named_parameters() if name not in direction}
    buffers = dict(net.named_buffers())
    tangent = {name: -direction[name] for name in params}  # descent: theta - s g_T

    def logits_at(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return forward(_Functional(net, {**frozen, **p, **buffers}), image)

    with torch.no_grad():
        if estimator == "jvp":
            logits, delta = jvp(logits_at, (params,), (tangent,))
            return logits, delta
        logits = logits_at(params)
        h = FINITE_DIFFERENCE_STEP * _rms(params) / max(_rms(tangent), 1e-30)
        ahead = logits_at({name: p + h * tangent[name] for name, p in params.items()})
        behind = logits_at({name: p - h * tangent[name] for name, p in params.items()})
        return logits, (ahead - behind) / (2.0 * h)  # central: error O(h^2)


class _Functional(nn.Module):
    """``net`` called with other parameters (``torch.func.functional_call``), for ``SegForward``s that
    call submodules or methods of the network: attribute access falls through to the real module."""

    def __init__(self, net: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        object.__setattr__(self, "_net", net)
        object.__setattr__(self, "_tensors", tensors)

    def __call__(self, *args: object, **kwargs: object) -> object:
        return functional_call(self._net, self._tensors, args, kwargs)


def _rms(tensors: dict[str, torch.Tensor]) -> float:
    total = sum(float(t.float().square().sum()) for t in tensors.values())
    count = sum(t.numel() for t in tensors.values())
    return (total / max(count, 1)) ** 0.5


def group_delta(delta: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, G, n, ...) the logit change in the class view: classes as they are, a region's [0, dz]."""
    if mode == "classes":
        return delta[:, None]
    return torch.stack([torch.zeros_like(delta), delta], dim=2)


def relabel_credit(delta_groups: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """(B, 1, ...) C2: the change of each voxel's credit when its label goes from ``old`` to ``new``.

    ``sum over groups of (e_new - e_old) . delta``: zero where the label is unchanged.

    Args:
        delta_groups: (B, G, n, ...) ``group_delta``.
        old, new: (B, G, n, ...) one-hot labels in the class view (``group_targets``).
    """
    if not delta_groups.shape == old.shape == new.shape:
        raise ValueError(
            f"relabel_credit: delta {tuple(delta_groups.shape)}, old {tuple(old.shape)} and new "
            f"{tuple(new.shape)} must have one shape (B, G, n, ...)"
        )
    return ((new - old) * delta_groups).sum(dim=(1, 2)).unsqueeze(1)


def label_credit(delta_groups: torch.Tensor, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 1, ...) C1: each voxel's credit for training on ``target``, ``sum_g (e_y - p) . delta``.

    Args:
        delta_groups: (B, G, n, ...) ``group_delta``.
        probs: (B, G, n, ...) class-view probabilities at theta.
        target: (B, G, n, ...) one-hot training labels in the class view.
    """
    return ((target - probs) * delta_groups).sum(dim=(1, 2)).unsqueeze(1)


def reweight(credit: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """C3, Learning to Reweight per voxel: ``max(0, C_i)``, scaled to mean 1 over the batch (all 0 if none > 0).

    Ren et al. normalise to sum 1 over the mini-batch and average the weighted losses; mean 1 keeps
    the loss on the baseline's scale. A batch where no voxel helps the trusted cases trains on nothing,
    as in the reference.
    """
    w = credit.clamp_min(0.0)
    total = w.mean()
    return w / total if float(total) > eps else torch.zeros_like(w)


def rms_scale(values: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``values / RMS(values)`` over the whole tensor: credits on a unit scale whatever the size of g_T.

    Why: |g_T| shrinks as the model fits the trusted cases, so raw credits drift by orders of
    magnitude over a run; the policy and value losses want a stationary scale (as PPO's advantage
    normalisation). The sign and the ordering of the voxels are kept.
    """
    rms = values.square().mean().sqrt()
    return values / rms if float(rms) > eps else torch.zeros_like(values)
