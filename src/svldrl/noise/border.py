"""Border noise: the label border moved outward in some places and inward in others, within one case.

Why it exists (issue 15): MT and SFDA noise are one-sided per case. MT dilates or erodes a whole
label, and SFDA's wrong voxels are 90-93 % false positives on LA (`experiments/la/noise_errors.py`).
Under such noise the direction of a case's errors is a case-level fact, and a filter that reads it
(`case-filter`, `method_options.drop=direction`) beat every voxel-level method we built. Border
noise is the case where that fact is absent: an annotator whose border wanders out here and in
there. A per-voxel method would have something to find that a per-case rule cannot; measured on LA
(docs/results.md, "Session 27"), such noise costs the baseline about half a Dice point, and the
same shifts one-sided per case cost 2.

Recipe (ours; not from a paper). For each corrupted case, draw k uniformly from ``k_range`` (MT's
3..15 voxels by default), then a smooth random shift field

    s(x) = clip((k / 2) * z(x), -k, k),   z = G_sigma * w / mean|G_sigma * w|,   w ~ N(0, 1) per voxel

(``G_sigma`` a Gaussian filter of ``smoothness`` voxels; ``z`` has mean absolute value 1). So the
border moves by k/2 voxels on average, as far as an MT cube of side k moves all of it, but in both
directions. A voxel is in the noisy structure when its signed distance to the clean border, d(x)
(negative inside, in voxels, Euclidean), is below s(x): where s > 0 the border moves outward by about
s, where s < 0 inward. The mean of s over a case is about zero, so a case's edits go both ways: the
record holds the share of changed voxels that were added (``grown_share``; median 0.62 on LA, since
a border moved outward sweeps more voxels than one moved inward by as much), against 1 or 0 for MT.

One-sided control (``sides="one"``, the kind ``border-onesided``): the same |s(x)|, all of it
outward or all inward, the direction drawn per case with probability 0.5 each (as MT draws dilation
or erosion). Its shifts are as large as border noise's; only their direction per case differs, so
the two kinds side by side measure what the one-sidedness of a case's errors costs by itself.

Class maps with several classes: each class gets its own signed distance, the same field, and
contested voxels go to the lowest class index (MT's class priority); a class's shrunk
voxels become background. Region stacks ``(K, H, W, D)``: each channel on its own with the same
field; if the clean channels are nested (each inside the one before it, as BraTS's WT ⊇ TC ⊇ ET),
the noisy ones are made nested again. If the field would empty a structure, the amplitude is halved until it does
not (recorded as ``halvings``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import edt
import numpy as np
from scipy import ndimage

from svldrl.noise.labels import check_label, structure_masks
from svldrl.noise.morphological import K_RANGE, keeps_every_structure

SMOOTHNESS = 10.0
"""Standard deviation of the Gaussian filter on the white-noise field, in voxels (ours): at LA's
0.625 mm the border's direction changes over about 1-2 cm, several times around the atrium."""

MAX_HALVINGS = 6
"""Amplitude halvings tried before a structure-emptying field is given up for the clean label."""


@dataclass(frozen=True)
class BorderRecord:
    """What border noise did to one label (stored per case in the noise manifest).

    Attributes:
        k: the drawn amplitude scale in voxels (the shift's mean absolute value is about k/2, at most k).
        direction: ``"both"``, or for one-sided noise ``"outward"`` or ``"inward"``.
        grown_share: added voxels over all changed voxels (0.5 = balanced; MT gives 1 or 0).
        halvings: how often the amplitude was halved to keep every structure.
    """

    k: int
    grown_share: float
    halvings: int = 0
    direction: str = "both"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shift_field(
    shape: tuple[int, ...], k: float, rng: np.random.Generator, smoothness: float = SMOOTHNESS
) -> np.ndarray:
    """The smooth signed shift s(x) of the module docstring, float32: mean |s| k/2 voxels before clipping at +-k."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=smoothness, mode="wrap")
    scale = float(np.abs(field).mean())
    if scale == 0.0:  # a one-voxel volume: nothing to smooth
        return np.zeros(shape, np.float32)
    return np.clip(field * np.float32(k / 2 / scale), -k, k)


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance to the border in voxels: positive outside ``mask``, negative inside (0 never occurs)."""
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    outside = edt.edt(~mask, black_border=False, parallel=1)  # distance of a background voxel to the structure
    inside = edt.edt(mask, black_border=False, parallel=1)  # distance of a structure voxel to the background
    return (outside - inside).astype(np.float32)


def move_border(label: np.ndarray, field: np.ndarray) -> np.ndarray:
    """``label`` (class map or region stack) with every structure's border moved by ``field`` (module docstring)."""
    if label.ndim == 4:
        moved = [signed_distance(np.ascontiguousarray(channel != 0)) < field for channel in label]
        nested = all(not (label[i].astype(bool) & ~label[i - 1].astype(bool)).any() for i in range(1, len(label)))
        for i in range(1, len(moved) if nested else 0):  # nested regions stay nested
            moved[i] &= moved[i - 1]
        return np.stack(moved).astype(label.dtype)
    out = np.zeros_like(label)
    for c, mask in reversed(list(enumerate(structure_masks(label), start=1))):  # lowest index written last: priority
        out[signed_distance(mask) < field] = c
    return out


def border_noise_with_record(
    label: np.ndarray,
    rng: np.random.Generator,
    *,
    k_range: tuple[int, int] = K_RANGE,
    smoothness: float = SMOOTHNESS,
    sides: str = "both",
) -> tuple[np.ndarray, BorderRecord]:
    """``label`` with its border moved out here and in there by a smooth random field, and the record.

    Args:
        label: ``(H, W, D)`` integer class map or ``(K, H, W, D)`` binary region stack.
        rng: the only source of randomness; the same generator state gives the same result.
        k_range: smallest and largest amplitude scale k in voxels (inclusive), drawn uniformly.
        smoothness: the field's Gaussian filter in voxels.
        sides: ``"both"`` (border noise), or ``"one"``: the field's magnitude, all outward or all inward.

    Returns:
        The noisy label (same shape and dtype; the input is not modified) and its ``BorderRecord``.
    """
    check_label(label)
    if not 1 <= k_range[0] <= k_range[1]:
        raise ValueError(f"k_range: expected 1 <= low <= high, got {k_range}")
    if smoothness <= 0:
        raise ValueError(f"smoothness: expected a positive filter width in voxels, got {smoothness}")
    if sides not in ("both", "one"):
        raise ValueError(f"sides: expected 'both' or 'one', got {sides!r}")
    k = int(rng.integers(k_range[0], k_range[1] + 1))
    spatial = label.shape[-3:]
    field = shift_field(spatial, k, rng, smoothness)
    direction = "both"
    if sides == "one":  # drawn after the field, so "both" keeps its stream
        direction = "outward" if rng.random() < 0.5 else "inward"
        field = np.abs(field) if direction == "outward" else -np.abs(field)
    for halvings in range(MAX_HALVINGS + 1):
        noisy = move_border(label, field / np.float32(2**halvings))
        if keeps_every_structure(label, noisy):
            return noisy, BorderRecord(k, grown_share(label, noisy), halvings, direction)
    return label.copy(), BorderRecord(k, float("nan"), MAX_HALVINGS + 1, direction)


def grown_share(clean: np.ndarray, noisy: np.ndarray) -> float:
    """Added foreground voxels over all changed voxels, any foreground against background (nan if nothing changed)."""
    clean_fg = (clean != 0) if clean.ndim == 3 else clean.astype(bool)
    noisy_fg = (noisy != 0) if noisy.ndim == 3 else noisy.astype(bool)
    added = int((noisy_fg & ~clean_fg).sum())
    removed = int((clean_fg & ~noisy_fg).sum())
    return added / (added + removed) if added + removed else float("nan")
