"""Intensities to [0, 1] per channel (method.md, Symbols): Eq. 10 clamps states to [0, 1].

CT: clip to the abdominal window [-125, 275] HU, then scale. Anything else (MRI and friends): clip to
the 0.5 / 99.5 percentiles of the body, then scale. The body is the non-zero voxels when the
background is exactly zero (skull-stripped BraTS), else the whole volume (z-scored LA has no zeros).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from monai.transforms import ScaleIntensityRange
from monai.utils import convert_to_numpy

CT_WINDOW: tuple[float, float] = (-125.0, 275.0)
MRI_PERCENTILES: tuple[float, float] = (0.5, 99.5)
ZERO_BACKGROUND_SHARE = 0.1
"""Share of exact zeros (in a non-negative volume) above which zero voxels count as background."""


def is_ct(modality: str) -> bool:
    """Whether a channel's modality name means Hounsfield units."""
    return modality.strip().lower() == "ct"


def body_voxels(channel: np.ndarray) -> np.ndarray:
    """The voxels whose percentiles set the MRI window: non-zero ones if the background is zero."""
    if channel.min() >= 0:
        nonzero = channel[channel != 0]
        if nonzero.size and nonzero.size <= (1.0 - ZERO_BACKGROUND_SHARE) * channel.size:
            return nonzero
    return channel.ravel()


def intensity_window(channel: np.ndarray, modality: str) -> tuple[float, float]:
    """The intensities ``(low, high)`` mapped to 0 and 1 for one channel of the given modality."""
    if is_ct(modality):
        return CT_WINDOW
    low, high = np.percentile(body_voxels(channel), MRI_PERCENTILES)
    return float(low), float(high)


def scale_to_unit(channel: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip to ``window`` and map it linearly onto [0, 1] (a flat channel becomes zeros)."""
    low, high = window
    if high <= low:
        return np.zeros(channel.shape, dtype=np.float32)
    scaled = ScaleIntensityRange(a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True, dtype=np.float32)(channel)
    return convert_to_numpy(scaled, dtype=np.float32)


def normalise_image(
    image: np.ndarray, modality: Sequence[str], source: str = "image"
) -> tuple[np.ndarray, tuple[tuple[float, float], ...]]:
    """Per-channel normalisation of a raw ``(C, H, W, D)`` image to float32 in [0, 1].

    Returns:
        The normalised image and the ``(low, high)`` window of each channel (kept in ``Case.meta`` so
        the same mapping can be applied to other images of the case).

    Raises:
        ValueError: naming ``source`` on a channel/modality count mismatch or non-finite intensities.
    """
    if image.ndim != 4:
        raise ValueError(f"{source}: expected a (C, H, W, D) image, got shape {image.shape}")
    if len(modality) != image.shape[0]:
        raise ValueError(f"{source}: {image.shape[0]} channels but {len(modality)} modality names {tuple(modality)}")
    if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(image)):
        raise ValueError(f"{source}: image holds NaN or infinite intensities")
    windows = tuple(intensity_window(channel, name) for channel, name in zip(image, modality, strict=True))
    out = np.stack([scale_to_unit(channel, window) for channel, window in zip(image, windows, strict=True)])
    return out, windows
