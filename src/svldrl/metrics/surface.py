"""Symmetric surface distances in mm on boolean 3D masks: HD95 and ASD (medpy conventions).

We follow ``medpy.metric.binary.hd95`` and ``assd``, which the LA literature reports:

- Surface voxels of a mask: the mask minus its erosion by the 6-neighbourhood
  (``generate_binary_structure(3, 1)``, one iteration, ``border_value=0``: a mask touching the edge of
  the volume has surface there).
- Directed distances: Euclidean, in mm (``spacing``), from each surface voxel of one mask to the
  nearest surface voxel of the other.
- HD95: the 95th percentile (numpy's linear interpolation) of both directions pooled,
  ``np.percentile(np.hstack((d_pred_to_ref, d_ref_to_pred)), 95)``.
- ASD: the mean of the two directed mean distances (medpy's ``assd``).

MONAI's ``compute_hausdorff_distance(percentile=95)`` instead takes the larger of the two directed
95th percentiles, which is never smaller than the pooled one (up to interpolation), so MONAI HD95
figures are not comparable with these. MONAI's ``compute_average_surface_distance`` is one-directional
unless ``symmetric=True``.

Empty masks (method.md "Metrics"): both empty -> 0 mm; exactly one empty -> the diagonal of the volume
in mm, ``sqrt(sum((shape * spacing) ** 2))``, the worst possible distance.

Speed: both masks are cropped to their joint bounding box before the erosion and the distance
transform. This is exact, not an approximation: every voxel outside that box is background in both
masks, which is what ``border_value=0`` assumes at the crop's edge, and every surface voxel lies inside
the box, so the nearest one to any voxel of the box is found within the box.
"""

from __future__ import annotations

from collections.abc import Sequence

import edt
import numpy as np
from scipy import ndimage

from svldrl.metrics.overlap import as_mask, check_same_shape

_CROSS = ndimage.generate_binary_structure(3, 1)


def check_spacing(spacing: Sequence[float], ndim: int = 3) -> tuple[float, ...]:
    """``spacing`` as a tuple of ``ndim`` positive finite floats, or a clear error."""
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise ValueError(f"spacing: expected {ndim} numbers in mm, got {spacing!r}") from None
    if len(values) != ndim or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing: expected {ndim} positive finite numbers in mm, got {spacing!r}")
    return values


def volume_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length in mm of the volume's diagonal: the distance reported when one mask is empty."""
    extent = np.asarray(shape, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)
    return float(np.sqrt(np.sum(extent**2)))


def _checked_pair(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Boolean 3D masks on the same grid and a valid spacing, or a clear error."""
    p = as_mask(pred, "pred")
    r = as_mask(ref, "ref")
    check_same_shape(p, r)
    if p.ndim != 3:
        raise ValueError(f"pred and ref must be 3D (H, W, D) masks, got shape {p.shape}")
    return p, r, check_spacing(spacing, 3)


def _joint_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...]:
    """Slices of the smallest box holding every foreground voxel of ``a`` or ``b``."""
    union = a | b
    box = []
    for axis in range(union.ndim):
        others = tuple(i for i in range(union.ndim) if i != axis)
        hits = np.flatnonzero(union.any(axis=others))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with at least one 6-neighbour outside it (medpy's border voxels)."""
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, iterations=1, border_value=0)


def _distance_to(surface: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Distance in mm from every voxel to the nearest voxel of ``surface`` (anisotropic EDT)."""
    return edt.edt(np.ascontiguousarray(~surface), anisotropy=spacing, black_border=False)


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (pred surface -> ref surface, ref surface -> pred surface).

    Both masks must be non-empty: with an empty mask there is no surface to measure from, and the
    callers (``hd95``, ``asd``) apply the empty-mask rules before getting here.
    """
    p, r, sp = _checked_pair(pred, ref, spacing)
    if not p.any() or not r.any():
        raise ValueError("surface_distances needs two non-empty masks (hd95/asd handle empty ones)")
    box = _joint_box(p, r)
    surf_p, surf_r = _surface(p[box]), _surface(r[box])
    d_pred_to_ref = _distance_to(surf_r, sp)[surf_p].astype(np.float64)
    d_ref_to_pred = _distance_to(surf_p, sp)[surf_r].astype(np.float64)
    return d_pred_to_ref, d_ref_to_pred


def _empty_rule(p: np.ndarray, r: np.ndarray, spacing: tuple[float, ...]) -> float | None:
    """The distance fixed by the empty-mask rules, or None when both masks have voxels."""
    has_p, has_r = bool(p.any()), bool(r.any())
    if has_p and has_r:
        return None
    if not has_p and not has_r:
        return 0.0
    return volume_diagonal(p.shape, spacing)


def hd95_from_distances(d_pred_to_ref: np.ndarray, d_ref_to_pred: np.ndarray) -> float:
    """HD95 (medpy): 95th percentile of both directed distance sets pooled."""
    return float(np.percentile(np.hstack((d_pred_to_ref, d_ref_to_pred)), 95))


def asd_from_distances(d_pred_to_ref: np.ndarray, d_ref_to_pred: np.ndarray) -> float:
    """ASD (medpy's assd): mean of the two directed mean distances."""
    return float((d_pred_to_ref.mean() + d_ref_to_pred.mean()) / 2.0)


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (medpy's ``hd95``).

    Empty masks: both empty -> 0.0; exactly one empty -> the volume diagonal in mm.
    """
    p, r, sp = _checked_pair(pred, ref, spacing)
    fixed = _empty_rule(p, r, sp)
    if fixed is not None:
        return fixed
    return hd95_from_distances(*surface_distances(p, r, sp))


def asd(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance in mm (medpy's ``assd``).

    Empty masks: both empty -> 0.0; exactly one empty -> the volume diagonal in mm.
    """
    p, r, sp = _checked_pair(pred, ref, spacing)
    fixed = _empty_rule(p, r, sp)
    if fixed is not None:
        return fixed
    return asd_from_distances(*surface_distances(p, r, sp))


def hd95_and_asd(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> tuple[float, float]:
    """Both distances from one pass over the surfaces (what ``evaluate_case`` uses)."""
    p, r, sp = _checked_pair(pred, ref, spacing)
    fixed = _empty_rule(p, r, sp)
    if fixed is not None:
        return fixed, fixed
    d_pr, d_rp = surface_distances(p, r, sp)
    return hd95_from_distances(d_pr, d_rp), asd_from_distances(d_pr, d_rp)
