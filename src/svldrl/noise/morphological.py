"""MT (morphological) label noise, the 3D recipe MTCL (Xu et al., TMI 2022) used on LA (method.md).

One operation on the whole 3D label: dilation or erosion with probability 0.5 each, by a cube of
side k drawn uniformly from 3..15 voxels. If an erosion would empty a structure (a foreground class
or region present before and absent after), k is drawn again, up to ``max_draws`` draws; then the
largest k in 3..15 whose erosion keeps every structure is used. If even k = 3 empties a structure
(nothing thicker than 2 voxels), no erosion exists and the case is dilated instead with a fresh k,
so a case selected for corruption is always corrupted. The record says which of these happened.

Class maps with several classes: every class mask gets the same operation and k. Erosions of
disjoint masks stay disjoint. In a dilation, voxels of any original foreground class keep their
class, and a background voxel reached by several dilated classes takes the lowest class index (the
class priority). So each class's noisy mask contains its clean mask after a dilation and is
contained in it after an erosion, as for a single class. Region stacks ``(K, H, W, D)``: each
channel independently; nested regions (ET in TC in WT) stay nested, since both operations are
monotone.

The cube filters are separable (scipy's minimum/maximum filters with ``size=k``) and equal
``binary_dilation``/``binary_erosion`` with a ``k^3`` structure, including the half-voxel offset of
even k. At the edge of the volume the label is extended outward (``mode="nearest"``): the edge of
the field of view is not a boundary of the structure, so an erosion does not eat into it there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from svldrl.noise.labels import check_label, structure_masks

K_RANGE: tuple[int, int] = (3, 15)
"""Smallest and largest cube side in voxels (inclusive), MTCL's 3D recipe."""

MAX_DRAWS = 10
"""Draws of k before an erosion that keeps failing falls back to the largest non-emptying k."""


@dataclass(frozen=True)
class NoiseRecord:
    """What was done to one label (stored per case in the noise manifest).

    Attributes:
        operation: ``"dilation"`` or ``"erosion"``.
        k: side of the cubic structuring element, in voxels.
        draws: how many k were drawn (more than 1 when erosions emptied a structure).
        fallback: None; ``"largest-erosion"`` when every draw emptied a structure and the largest
            k that does not was used; ``"dilation"`` when no erosion keeps every structure.
    """

    operation: str
    k: int
    draws: int = 1
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cube_dilation(mask: np.ndarray, k: int) -> np.ndarray:
    """Dilation of a boolean mask by a k x k x k cube (same as ``binary_dilation`` with that cube)."""
    origin = -1 if k % 2 == 0 else 0  # binary_dilation reflects an even cube about its centre
    return ndimage.maximum_filter(mask.view(np.uint8), size=k, mode="nearest", origin=origin).view(bool)


def cube_erosion(mask: np.ndarray, k: int) -> np.ndarray:
    """Erosion of a boolean mask by a k x k x k cube (``binary_erosion`` with that cube, ``border_value=1``)."""
    return ndimage.minimum_filter(mask.view(np.uint8), size=k, mode="nearest").view(bool)


def apply_operation(label: np.ndarray, operation: str, k: int) -> np.ndarray:
    """``label`` (class map or region stack) after one dilation or erosion of every structure."""
    check_label(label)
    if operation not in ("dilation", "erosion"):
        raise ValueError(f"operation: expected 'dilation' or 'erosion', got {operation!r}")
    if k < 1:
        raise ValueError(f"k: expected a cube side of at least 1 voxel, got {k}")
    op = cube_dilation if operation == "dilation" else cube_erosion
    if label.ndim == 4:
        return np.stack([op(np.ascontiguousarray(channel != 0), k) for channel in label]).astype(label.dtype)
    masks = structure_masks(label)
    if operation == "erosion":
        out = np.zeros_like(label)
        for c, mask in enumerate(masks, start=1):
            out[op(mask, k)] = c
        return out
    out = label.copy()
    free = label == 0
    for c, mask in enumerate(masks, start=1):  # ascending class index = priority on contested voxels
        grown = op(mask, k) & free
        out[grown] = c
        free &= ~grown
    return out


def keeps_every_structure(clean: np.ndarray, noisy: np.ndarray) -> bool:
    """True when every structure present in ``clean`` still has a voxel in ``noisy``."""
    if clean.ndim == 4:
        return all(n.any() or not c.any() for c, n in zip(clean, noisy, strict=True))
    before = set(np.flatnonzero(np.bincount(clean.ravel()))) - {0}
    after = set(np.flatnonzero(np.bincount(noisy.ravel())))
    return before <= after


def _draw_k(rng: np.random.Generator, k_range: tuple[int, int]) -> int:
    return int(rng.integers(k_range[0], k_range[1] + 1))


def _largest_keeping_erosion(label: np.ndarray, k_range: tuple[int, int]) -> tuple[np.ndarray, int] | None:
    """The erosion with the largest k in range that keeps every structure (erosion shrinks as k grows)."""
    best = None
    for k in range(k_range[0], k_range[1] + 1):
        eroded = apply_operation(label, "erosion", k)
        if not keeps_every_structure(label, eroded):
            break
        best = (eroded, k)
    return best


def _erode_keeping_structures(
    label: np.ndarray, k: int, rng: np.random.Generator, k_range: tuple[int, int], max_draws: int
) -> tuple[np.ndarray, NoiseRecord]:
    """Erosion by the drawn k, redrawn while it empties a structure, then the documented fallbacks."""
    for draw in range(1, max_draws + 1):
        if draw > 1:
            k = _draw_k(rng, k_range)
        eroded = apply_operation(label, "erosion", k)
        if keeps_every_structure(label, eroded):
            return eroded, NoiseRecord("erosion", k, draws=draw)
    largest = _largest_keeping_erosion(label, k_range)
    if largest is not None:
        return largest[0], NoiseRecord("erosion", largest[1], draws=max_draws, fallback="largest-erosion")
    k = _draw_k(rng, k_range)
    return apply_operation(label, "dilation", k), NoiseRecord("dilation", k, draws=max_draws + 1, fallback="dilation")


def morphological_noise_with_record(
    label: np.ndarray,
    rng: np.random.Generator,
    *,
    k_range: tuple[int, int] = K_RANGE,
    max_draws: int = MAX_DRAWS,
) -> tuple[np.ndarray, NoiseRecord]:
    """One random dilation or erosion of ``label`` by a cube, and the record of what was done.

    Args:
        label: ``(H, W, D)`` integer class map or ``(K, H, W, D)`` binary region stack.
        rng: the only source of randomness; the same generator state gives the same result.
        k_range: smallest and largest cube side in voxels (inclusive).
        max_draws: draws of k before a structure-emptying erosion falls back (module docstring).

    Returns:
        The noisy label (same shape and dtype; the input is not modified) and its ``NoiseRecord``.
    """
    check_label(label)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if not 1 <= k_range[0] <= k_range[1]:
        raise ValueError(f"k_range: expected 1 <= low <= high, got {k_range}")
    if max_draws < 1:
        raise ValueError(f"max_draws: expected at least 1, got {max_draws}")
    operation = "dilation" if rng.random() < 0.5 else "erosion"
    k = _draw_k(rng, k_range)
    if operation == "dilation":
        return apply_operation(label, "dilation", k), NoiseRecord("dilation", k)
    return _erode_keeping_structures(label, k, rng, k_range, max_draws)


def morphological_noise(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``label`` after one random dilation or erosion by a cube (see ``morphological_noise_with_record``)."""
    return morphological_noise_with_record(label, rng)[0]
