"""File plumbing shared by loaders, writers and validation: NIfTI I/O, geometry checks, atomic writes."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from svldrl._io import atomic_path, default_file_mode  # noqa: F401  (atomic_path re-exported for the writers)

NIFTI_ENDINGS = (".nii.gz", ".nii")


@dataclass(frozen=True)
class CaseFiles:
    """The source files of one case.

    Attributes:
        images: the image files, one per channel file (a 4D NIfTI or an h5 file counts once).
        label: the label file (the h5 file itself for LA), or None when the case has no label.
    """

    images: tuple[Path, ...]
    label: Path | None


def strip_nifti_ending(name: str) -> str | None:
    """``"la_003.nii.gz"`` -> ``"la_003"``; None if the name is not a NIfTI file (or a hidden ``._`` file)."""
    if name.startswith("."):
        return None
    for ending in NIFTI_ENDINGS:
        if name.endswith(ending):
            return name[: -len(ending)]
    return None


def find_nifti(folder: Path, stem: str) -> Path | None:
    """``folder/stem.nii.gz`` or ``folder/stem.nii``, whichever exists."""
    for ending in NIFTI_ENDINGS:
        path = folder / f"{stem}{ending}"
        if path.is_file():
            return path
    return None


def read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Header]:
    """Voxel data (scaled by the header's slope/intercept), affine and header of a NIfTI file.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: naming the file if it is unreadable or truncated.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel, gzip and zlib raise many kinds on corrupt files
        raise ValueError(
            f"{path}: cannot read NIfTI file, truncated or corrupt? ({type(exc).__name__}: {exc})"
        ) from exc
    return data, np.asarray(img.affine, dtype=np.float64), img.header


def nifti_spacing(header: Any) -> tuple[float, float, float]:
    """Voxel size in mm along the three spatial axes, from the header."""
    zooms = header.get_zooms()
    return (float(zooms[0]), float(zooms[1]), float(zooms[2]))


def same_geometry(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two affines describe the same grid (to 1e-3 mm, the tolerance of float headers)."""
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-3))


def save_nifti(array: np.ndarray, affine: np.ndarray, path: Path, header: Any | None = None) -> Path:
    """Write ``array`` with ``affine`` (and the reference ``header``'s units and codes) atomically."""
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype in (np.int64, np.uint64):  # NIfTI readers commonly reject 64-bit integers
        if array.size and (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
            raise ValueError(f"{path}: integer values out of the int32 range")
        array = array.astype(np.int32)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(array, np.asarray(affine, dtype=np.float64), hdr)
    img.header.set_data_dtype(array.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
    return path


def link_or_copy(src: Path, dst: Path) -> Path:
    """Hard-link ``src`` to ``dst`` (same bytes, no space), or copy it when linking is not allowed.

    A link shares its source's inode, so its mode is the source's and is left alone; a copy gets
    the mode of a new file (the umask's).
    """
    if dst.exists() and os.path.samefile(src, dst):  # already this file (a rename onto it would do nothing)
        return dst
    with atomic_path(dst, set_mode=False) as tmp:
        tmp.unlink()  # os.link needs a free name; atomic_path only reserved it
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, default_file_mode())
    return dst
