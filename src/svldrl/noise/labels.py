"""Checks and helpers shared by the noise kinds: labels, structures, per-case generators, case access.

A label is either a class map ``(H, W, D)`` of integer class indices (0 = background) or a region
stack ``(K, H, W, D)`` of binary channels (BraTS WT/TC/ET), as in ``svldrl.data.Case``. A
"structure" is one foreground class of a class map or one channel of a region stack.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from svldrl.data import Case
from svldrl.metrics import dice


def check_label(label: np.ndarray, name: str = "label") -> np.ndarray:
    """``label`` if it is a 3D integer class map or a 4D boolean/integer region stack, else a clear error."""
    if not isinstance(label, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(label).__name__}")
    if label.ndim not in (3, 4):
        raise ValueError(f"{name}: expected (H, W, D) class indices or (K, H, W, D) regions, got shape {label.shape}")
    if not (label.dtype == bool or np.issubdtype(label.dtype, np.integer)):
        raise TypeError(f"{name}: expected integer class indices or binary regions, got dtype {label.dtype}")
    if label.ndim == 3 and label.dtype == bool:
        raise TypeError(f"{name}: a 3D label must hold class indices (e.g. uint8), not booleans")
    if label.ndim == 3 and label.size and label.min() < 0:
        raise ValueError(f"{name}: class indices must be non-negative, found {label.min()}")
    return label


def structure_masks(label: np.ndarray) -> list[np.ndarray]:
    """One boolean mask per structure present or not: every region channel, or every class 1..max."""
    if label.ndim == 4:
        return [channel != 0 for channel in label]
    n_classes = int(label.max()) if label.size else 0
    return [label == c for c in range(1, n_classes + 1)]


def label_dice(noisy: np.ndarray, clean: np.ndarray) -> float:
    """Dice between noisy and clean label, averaged over the structures present in either.

    Structures absent from both are left out (they would add a free 1.0); two labels without any
    structure give 1.0.
    """
    if noisy.shape != clean.shape:
        raise ValueError(f"noisy label shape {noisy.shape} differs from the clean label's {clean.shape}")
    if noisy.ndim == 4:
        pairs = list(zip(structure_masks(noisy), structure_masks(clean), strict=True))
    else:
        n_classes = max(int(noisy.max()), int(clean.max())) if noisy.size else 0
        pairs = [(noisy == c, clean == c) for c in range(1, n_classes + 1)]
    present = [(a, b) for a, b in pairs if a.any() or b.any()]
    if not present:
        return 1.0
    return float(np.mean([dice(a, b) for a, b in present]))


def case_generator(seed: int, case_id: str) -> np.random.Generator:
    """A generator for one case that depends only on the run seed and the case id.

    So a case's noise does not change when other cases are added, removed or reordered. Its stream
    (spawn key = CRC32 of the id) is independent of ``np.random.default_rng(seed)``, which draws the
    selection of cases.
    """
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(case_id.encode()),)))


def check_ratio_seed(ratio: float, seed: int) -> None:
    """Raise early on a noise ratio outside [0, 1] or a non-integer seed."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= float(ratio) <= 1.0:
        raise ValueError(f"ratio: expected a share of cases in [0, 1], got {ratio!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")


def each_case(cases: Sequence[Case]) -> Iterator[Case]:
    """The cases one at a time by index (works for lists and for lazily loading data sets)."""
    for i in range(len(cases)):
        yield cases[i]


def case_ids_of(cases: Sequence[Case]) -> list[str]:
    """The ids of ``cases``, without loading images when the sequence lists them (``Dataset.case_ids``)."""
    listed = getattr(cases, "case_ids", None)
    if listed is not None:
        return list(listed)
    return [case.case_id for case in each_case(cases)]
