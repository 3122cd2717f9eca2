"""Preparation before training: resampling to a common spacing (and back, for predictions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

import numpy as np
import torch
from monai.transforms import Resize

from svldrl.config import DataConfig
from svldrl.data.case import Case
from svldrl.data.dataset import Dataset

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

RESAMPLE_MODES = ("trilinear", "nearest")


def resample_to_shape(array: ArrayT, shape: Sequence[int], mode: str = "trilinear") -> ArrayT:
    """Resize ``(C, H, W, D)`` or ``(H, W, D)`` data to the spatial ``shape``.

    ``"trilinear"`` for intensities and probabilities (returned as float32), ``"nearest"`` for labels
    (dtype kept). Voxel corners are aligned (``align_corners=False``), the convention
    ``resample_case`` assumes for the affine. A torch tensor comes back on its own device.

    Raises:
        ValueError: on an unknown mode or a shape that is not 3 positive ints.
    """
    if mode not in RESAMPLE_MODES:
        raise ValueError(f"mode must be one of {RESAMPLE_MODES}, got {mode!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be 3 positive ints, got {shape}")
    if array.ndim not in (3, 4):
        raise ValueError(f"expected (C, H, W, D) or (H, W, D) data, got shape {tuple(array.shape)}")
    channel_first = torch.as_tensor(array if array.ndim == 4 else array[None])  # (C, H, W, D), shares memory
    resize = Resize(spatial_size=shape, mode="trilinear" if mode == "trilinear" else "nearest-exact")
    resized = resize(channel_first if channel_first.is_floating_point() else channel_first.float())  # (C, *shape)
    resized = resized.as_tensor() if hasattr(resized, "as_tensor") else resized  # drop MONAI's MetaTensor
    resized = resized.float() if mode == "trilinear" else resized.to(channel_first.dtype)
    out = resized.numpy() if isinstance(array, np.ndarray) else resized
    return out if array.ndim == 4 else out[0]


def _resampled_affine(affine: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Affine of a grid whose voxels are ``factor`` old voxels wide, corners aligned with the old grid."""
    step = np.eye(4)
    step[:3, :3] = np.diag(factor)
    step[:3, 3] = (factor - 1.0) / 2.0  # new voxel 0's centre, in old voxel coordinates
    return affine @ step


def resample_case(case: Case, spacing: Sequence[float]) -> Case:
    """The case on a grid of about ``spacing`` mm (image trilinear, label nearest).

    The new shape is ``round(shape * old / new spacing)``; ``Case.spacing`` is then the exact spacing of
    that grid (within half a voxel over the extent of the requested one). ``meta`` keeps
    ``original_shape``, ``original_spacing`` and ``original_affine`` so predictions can be brought back
    with ``resample_to_shape`` and written with ``write_nifti_like``.
    """
    target = np.asarray(spacing, dtype=np.float64)
    if target.shape != (3,) or np.any(target <= 0):
        raise ValueError(f"spacing must be 3 positive numbers, got {spacing!r}")
    old_spacing = np.asarray(case.spacing, dtype=np.float64)
    old_shape = np.asarray(case.shape)
    new_shape = np.maximum(1, np.round(old_shape * old_spacing / target)).astype(int)
    meta = dict(case.meta)
    meta.setdefault("original_shape", case.shape)
    meta.setdefault("original_spacing", tuple(case.spacing))
    meta.setdefault("original_affine", None if case.affine is None else case.affine.copy())
    if np.array_equal(new_shape, old_shape):
        return replace(case, meta=meta)
    factor = old_shape / new_shape
    image = resample_to_shape(case.image, new_shape, "trilinear")
    label = None if case.label is None else resample_to_shape(case.label, new_shape, "nearest")
    affine = case.affine if case.affine is not None else np.diag([*old_spacing, 1.0])
    new_spacing = tuple(float(s) for s in old_spacing * factor)
    return replace(
        case, image=image, label=label, spacing=new_spacing, affine=_resampled_affine(affine, factor), meta=meta
    )


def prepare_cases(dataset_or_cases: Dataset | Sequence[Case], data_cfg: DataConfig) -> list[Case]:
    """The cases ready for training: resampled to ``data_cfg.spacing`` when it is set.

    Call once per run and keep the list: it is the run's cache of prepared volumes. From a
    ``Dataset``, cases that get resampled are read without filling the data set's cache, so only
    the prepared copy stays in memory.
    """
    if isinstance(dataset_or_cases, Dataset):
        dataset = dataset_or_cases
        read = dataset.load if data_cfg.spacing is not None else dataset.get
        cases = [read(case_id) for case_id in dataset.case_ids]
    else:
        cases = list(dataset_or_cases)
    if data_cfg.spacing is None:
        return cases
    return [resample_case(case, data_cfg.spacing) for case in cases]
