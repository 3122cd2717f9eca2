"""Writing predictions next to their inputs: NIfTI on the input's own grid, affine and header."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from svldrl.data import Case, write_nifti_like


def write_prediction(mask: np.ndarray, reference_case: Case, path: str | Path) -> Path:
    """Write a label map from ``predict_case`` as NIfTI with the reference case's affine and header.

    Args:
        mask: uint8/bool (H, W, D) class indices or (K, H, W, D) binary regions on the case's
            original grid.
        reference_case: the case the prediction was made for (its meta holds the original geometry).
        path: output file (``.nii.gz`` or ``.nii``); written atomically.
    """
    path = Path(path)
    if not path.name.endswith((".nii.gz", ".nii")):
        raise ValueError(f"{path}: prediction files must end in .nii.gz or .nii")
    if np.issubdtype(mask.dtype, np.floating):
        raise ValueError(f"{path}: expected a label map (integer or bool), got {mask.dtype}; use predict_case")
    return write_nifti_like(mask, reference_case, path)
