"""The one currency between all parts of svldrl: a ``Case`` (and a ``Dataset`` of them)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass
class Case:
    """One volume with its label and geometry.

    Attributes:
        image: float32 ``(C, H, W, D)``, channels first, intensities in [0, 1] (Eq. 10 clamps to
            that range, so every loader normalises).
        label: uint8 ``(H, W, D)`` class indices, or ``(K, H, W, D)`` binary channels for
            overlapping regions (BraTS WT/TC/ET); ``None`` for unlabelled prediction inputs.
        spacing: voxel size in mm along (H, W, D).
        case_id: identifier, unique within a data set.
        affine: 4x4 voxel-to-world matrix of the source file (RAS, nibabel convention), kept so
            predictions can be written back on the input's own grid.
        meta: provenance. The loaders fill: ``format`` ("la-h5", "msd", "brats", "phantom"),
            ``image_files`` (the original, un-normalised source files), ``label_file``,
            ``modality`` (one name per channel), ``codec`` (``LabelCodec``: how the label file
            encodes the label), ``intensity_window`` (per-channel (low, high) mapped to 0 and 1),
            ``original_shape``, ``original_spacing``, ``original_affine`` (the grid before any
            resampling, kept by ``resample_case``), and ``nifti_header`` for NIfTI sources.
    """

    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, float, float]
    case_id: str
    affine: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (H, W, D)."""
        return tuple(int(s) for s in self.image.shape[1:])  # type: ignore[return-value]

    @property
    def n_channels(self) -> int:
        return int(self.image.shape[0])

    def with_label(self, label: np.ndarray | None) -> Case:
        """A copy sharing the image but with another label (e.g. a noisy one)."""
        return replace(self, label=label, meta=dict(self.meta))


@dataclass(frozen=True)
class LabelSpec:
    """What the labels of a data set mean.

    ``mode == "classes"``: mutually exclusive classes, label (H, W, D) with values 0..n-1,
    softmax outputs with ``n_outputs = len(names)`` channels (names[0] is background).
    ``mode == "regions"``: overlapping binary regions, label (K, H, W, D), sigmoid outputs with
    ``n_outputs = len(names)`` channels (no background channel).
    """

    names: tuple[str, ...] = ("background", "foreground")
    mode: str = "classes"

    @property
    def n_outputs(self) -> int:
        return len(self.names)

    @property
    def foreground_names(self) -> tuple[str, ...]:
        """Names of the classes/regions that metrics are reported for."""
        return self.names[1:] if self.mode == "classes" else self.names

    def foreground_masks(self, label: np.ndarray) -> np.ndarray:
        """Boolean ``(F, H, W, D)``, one mask per foreground class/region (the metrics' input)."""
        if self.mode == "regions":
            return label.astype(bool)
        return np.stack([label == c for c in range(1, len(self.names))])

    def target_channels(self, label: np.ndarray) -> np.ndarray:
        """(n_outputs, H, W, D) uint8, as the networks' targets are: one-hot class channels, or the regions."""
        if self.mode == "regions":
            return label.astype(np.uint8, copy=False)
        classes = np.arange(self.n_outputs, dtype=label.dtype).reshape(-1, 1, 1, 1)
        return (label[None] == classes).astype(np.uint8)


BINARY = LabelSpec()
