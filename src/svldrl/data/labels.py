"""How label files encode a ``LabelSpec``: class indices, or overlapping regions made of file values.

Loaders decode a label file into the ``Case`` convention; writers encode a ``Case`` label back into the
file's own values, so a data set copied with noisy labels reads exactly like the original.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from svldrl.data.case import LabelSpec


def unique_values(label: np.ndarray, source: str = "label") -> np.ndarray:
    """Sorted distinct integer values of a label array (float files must hold whole numbers).

    Raises:
        ValueError: naming ``source`` if the array holds non-finite or fractional values.
    """
    if np.issubdtype(label.dtype, np.bool_):
        label = label.view(np.uint8)
    if np.issubdtype(label.dtype, np.floating):
        values = np.unique(label)
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            bad = values[~np.isfinite(values) | (values != np.round(values))][:5]
            raise ValueError(f"{source}: label holds non-integer values {bad.tolist()}")
        return values.astype(np.int64)
    if label.size and label.min() >= 0:  # bincount is a linear pass, much faster than sorting
        return np.flatnonzero(np.bincount(label.ravel().astype(np.int64, copy=False)))
    return np.unique(label).astype(np.int64)


@dataclass(frozen=True)
class LabelCodec:
    """Translate label files to the ``Case`` convention and back.

    Classes: files hold the class index ``0..n-1`` itself. Regions: region ``k`` is the set of voxels
    whose file value is in ``region_values[k]``; encoding paints ``paint_values[k]`` for each region in
    order, so nested regions (BraTS WT > TC > ET painted 2, 1, 4) give back the original label map.

    Attributes:
        spec: names and mode of the outputs.
        region_values: regions mode only: file values making up each region.
        paint_values: regions mode only: file value written for each region, painted in order
            (empty when unknown; then labels cannot be written back).
    """

    spec: LabelSpec
    region_values: tuple[tuple[int, ...], ...] = ()
    paint_values: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.spec.mode not in ("classes", "regions"):
            raise ValueError(f"LabelSpec.mode must be 'classes' or 'regions', got {self.spec.mode!r}")
        if self.spec.mode == "classes" and (self.region_values or self.paint_values):
            raise ValueError("region_values/paint_values are for mode='regions' only")
        if self.spec.mode == "regions" and len(self.region_values) != self.spec.n_outputs:
            raise ValueError(
                f"{self.spec.n_outputs} regions {self.spec.names} need as many region_values, "
                f"got {len(self.region_values)}"
            )
        if self.paint_values and len(self.paint_values) != self.spec.n_outputs:
            raise ValueError(f"paint_values needs one value per region, got {self.paint_values}")

    @property
    def file_values(self) -> frozenset[int]:
        """Values a valid label file may hold."""
        if self.spec.mode == "classes":
            return frozenset(range(self.spec.n_outputs))
        return frozenset({0}.union(*self.region_values))

    def check_values(self, label_map: np.ndarray, source: str = "label") -> None:
        """Raise a ``ValueError`` naming ``source`` if the file holds values outside ``file_values``."""
        bad = sorted(set(unique_values(label_map, source).tolist()) - self.file_values)
        if bad:
            raise ValueError(f"{source}: label values {bad} outside the expected set {sorted(self.file_values)}")

    def decode(self, label_map: np.ndarray, source: str = "label") -> np.ndarray:
        """File values ``(H, W, D)`` -> uint8 ``(H, W, D)`` class indices or ``(K, H, W, D)`` regions."""
        if label_map.ndim != 3:
            raise ValueError(f"{source}: expected a 3D label map, got shape {label_map.shape}")
        self.check_values(label_map, source)
        if self.spec.mode == "classes":
            return label_map.astype(np.uint8)
        return np.stack([np.isin(label_map, values) for values in self.region_values]).astype(np.uint8)

    def encode(self, label: np.ndarray, source: str = "label") -> np.ndarray:
        """``Case`` label -> uint8 ``(H, W, D)`` file values (the inverse of ``decode`` on nested regions)."""
        if self.spec.mode == "classes":
            if label.ndim != 3:
                raise ValueError(f"{source}: class labels must be (H, W, D), got shape {label.shape}")
            bad = sorted(set(unique_values(label, source).tolist()) - self.file_values)
            if bad:
                raise ValueError(f"{source}: class indices {bad} outside 0..{self.spec.n_outputs - 1}")
            return label.astype(np.uint8)
        if not self.paint_values:
            raise ValueError(f"{source}: cannot write regions {self.spec.names}: the data set gives no paint order")
        if label.ndim != 4 or label.shape[0] != self.spec.n_outputs:
            raise ValueError(f"{source}: region labels must be ({self.spec.n_outputs}, H, W, D), got {label.shape}")
        out = np.zeros(label.shape[1:], dtype=np.uint8)
        for region, value in zip(label, self.paint_values, strict=True):
            out[region > 0] = value
        return out


def class_codec(names: Sequence[str]) -> LabelCodec:
    """Codec of mutually exclusive classes whose file values are their indices."""
    return LabelCodec(LabelSpec(tuple(names), "classes"))


BRATS_CODEC = LabelCodec(
    LabelSpec(("WT", "TC", "ET"), "regions"),
    region_values=((1, 2, 4), (1, 4), (4,)),
    paint_values=(2, 1, 4),
)
"""BraTS 2021: 1 necrotic core, 2 oedema, 4 enhancing tumour -> whole tumour, tumour core, enhancing."""
