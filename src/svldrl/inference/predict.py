"""Sliding-window prediction with the segmentation decoder, optional greedy policy refinement, and
the way back to the case's original grid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import nn

from svldrl.config import TrainConfig
from svldrl.data import Case, LabelSpec, resample_to_shape
from svldrl.rl import apply_actions, greedy_actions

MODES = ("classes", "regions")
REFINE_EPS = 0.5
"""e of Eq. 10 at test time: fixed so that refinement is deterministic (method.md "Inference")."""
ORIGINAL_SHAPE_KEY = "original_shape"
"""``Case.meta`` key of the spatial shape before resampling (written by ``svldrl.data.resample_case``)."""


@contextmanager
def _eval_mode(net: nn.Module) -> Iterator[None]:
    """Eval mode for the block, then the caller's mode back (validation runs inside training)."""
    was_training = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was_training)


def refine_state(net: nn.Module, state: torch.Tensor, steps: int, action_scale: float = 0.3) -> torch.Tensor:
    """``steps`` greedy policy steps on ``state`` (B, C, h, w, d): argmax actions, e = 0.5 (Eq. 10)."""
    for _ in range(steps):
        actions = greedy_actions(net(state, heads=("policy",)).policy)  # (B, h, w, d)
        eps = torch.full(actions.shape, REFINE_EPS, dtype=state.dtype, device=state.device)
        state = apply_actions(state, actions, eps, action_scale)
    return state


def _window_predictor(net: nn.Module, refine_steps: int, action_scale: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per window: optional greedy refinement, then the segmentation decoder's logits."""

    def predict(window: torch.Tensor) -> torch.Tensor:
        if refine_steps > 0:
            window = refine_state(net, window, refine_steps, action_scale)
        return net.segment(window)  # (sw_batch, n_outputs, h, w, d)

    return predict


def predict_probabilities(
    net: nn.Module,
    image: np.ndarray | torch.Tensor,
    patch_size: Sequence[int],
    *,
    overlap: float = 0.5,
    sw_batch_size: int = 1,
    refine_steps: int = 0,
    device: str | torch.device | None = None,
    mode: str = "classes",
    action_scale: float = 0.3,
) -> np.ndarray:
    """(n_outputs, H, W, D) float32 probabilities of a whole volume, by Gaussian-blended sliding windows.

    Only the segmentation decoder runs (the paper evaluates "one branch"). With ``refine_steps > 0``
    each window is first refined by that many greedy policy steps, then segmented: the policy
    sees one window at a time, as it saw one patch at a time in training. Logits are blended
    across windows, then turned into probabilities (softmax for ``mode="classes"``, sigmoid for
    ``"regions"``). Windows past the border are zero-padded (MONAI).

    Args:
        net: a ``ThreeHeadNet`` (``segment``, and the policy head when refining).
        image: (C, H, W, D) intensities in [0, 1].
        patch_size: window size (H, W, D), normally the training patch size.
        overlap: fraction of overlap between neighbouring windows.
        sw_batch_size: windows per forward pass.
        refine_steps: greedy policy steps per window before segmenting (0 = plain segmentation).
        device: where the network runs (it must already be there); None = the network's device.
            The result is on the CPU.
        mode: "classes" (softmax) or "regions" (sigmoid); pass ``labels.mode``.
        action_scale: the 0.3 of Eq. 10 (``rl.action_scale`` of the run) when refining.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if refine_steps < 0:
        raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
    if len(patch_size) != 3:
        raise ValueError(f"patch_size: expected 3 sides (H, W, D), got {tuple(patch_size)}")
    x = torch.as_tensor(image, dtype=torch.float32)
    if x.dim() != 4:
        raise ValueError(f"image: expected (C, H, W, D), got shape {tuple(x.shape)}")
    net_device = next(net.parameters()).device
    target = torch.device(device) if device is not None else net_device
    if target.type != net_device.type or target.index not in (None, net_device.index):
        raise ValueError(f"device: the network is on {net_device}, not {target}; move it first (net.to(device))")
    x = x[None].to(target)  # (1, C, H, W, D)
    with _eval_mode(net), torch.no_grad():
        logits = sliding_window_inference(
            x, tuple(int(s) for s in patch_size), sw_batch_size, _window_predictor(net, refine_steps, action_scale),
            overlap=overlap, mode="gaussian",
        )  # (1, n_outputs, H, W, D)
        prob = torch.softmax(logits, dim=1) if mode == "classes" else torch.sigmoid(logits)
    return prob[0].float().cpu().numpy()


def labels_from_probabilities(prob: np.ndarray, labels: LabelSpec) -> np.ndarray:
    """Label map in ``Case.label`` layout: (H, W, D) argmax (classes) or (K, H, W, D) ``p > 0.5`` (regions), uint8."""
    if prob.ndim != 4 or prob.shape[0] != labels.n_outputs:
        raise ValueError(f"prob: expected ({labels.n_outputs}, H, W, D), got shape {prob.shape}")
    if labels.mode == "classes":
        return np.argmax(prob, axis=0).astype(np.uint8)
    return (prob > 0.5).astype(np.uint8)


def to_original_grid(prob: np.ndarray, case: Case) -> np.ndarray:
    """Probabilities resampled (trilinear) to the shape the case had before ``resample_case``.

    A case that was not resampled (no ``meta["original_shape"]``, or the same shape) is returned
    as is. Resampling probabilities, not labels, keeps boundaries smooth and decides each original
    voxel by the interpolated probabilities.
    """
    original = case.meta.get(ORIGINAL_SHAPE_KEY)
    if original is None or tuple(int(s) for s in original) == prob.shape[1:]:
        return prob
    return resample_to_shape(prob, original, "trilinear")  # (n_outputs, *original), corners aligned as resample_case


def predict_case(
    net: nn.Module, case: Case, labels: LabelSpec, cfg: TrainConfig, refine_steps: int | None = None
) -> np.ndarray:
    """Label map of ``case`` on its ORIGINAL grid (before any resampling for the model).

    Args:
        net: the trained network.
        case: a case prepared like the training cases (meta tells its original shape).
        labels: the label spec of the run.
        cfg: the run's configuration (patch size, overlap, windows per pass, device, action scale).
        refine_steps: greedy policy steps per window; None = ``cfg.rl.refine_steps``.

    Returns:
        uint8 (H, W, D) class indices, or (K, H, W, D) binary regions.
    """
    steps = cfg.rl.refine_steps if refine_steps is None else refine_steps
    prob = predict_probabilities(
        net, case.image, cfg.data.patch_size, overlap=cfg.sw_overlap, sw_batch_size=cfg.sw_batch_size,
        refine_steps=steps, mode=labels.mode, action_scale=cfg.rl.action_scale,
    )
    return labels_from_probabilities(to_original_grid(prob, case), labels)
