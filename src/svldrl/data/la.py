"""LA 2018 in the h5 form of the semi-supervised LA literature: ``<case>/mri_norm2.h5`` (image, label)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from svldrl.data.case import Case
from svldrl.data.files import CaseFiles
from svldrl.data.intensity import normalise_image
from svldrl.data.labels import class_codec

LA_FILE = "mri_norm2.h5"
LA_SPACING: tuple[float, float, float] = (0.625, 0.625, 0.625)
LA_AFFINE = np.diag([*LA_SPACING, 1.0])
LA_MODALITY: tuple[str, ...] = ("MRI",)
LA_CODEC = class_codec(("background", "left atrium"))


def la_h5_in(folder: Path) -> Path | None:
    """The case's h5 file: ``mri_norm2.h5``, else the folder's only ``.h5`` file."""
    path = folder / LA_FILE
    if path.is_file():
        return path
    candidates = [p for p in folder.glob("*.h5") if not p.name.startswith(".")]
    return candidates[0] if len(candidates) == 1 else None


def la_case_id(h5_path: Path) -> str:
    """The case folder's name (the file name is the same for every case)."""
    return h5_path.parent.name if h5_path.name == LA_FILE else h5_path.stem


def find_la_cases(root: Path) -> dict[str, CaseFiles]:
    """Case id -> files for every sub-folder of ``root`` holding an h5 file, sorted by id."""
    found = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        h5 = la_h5_in(folder)
        if h5 is not None:
            found[folder.name] = CaseFiles(images=(h5,), label=h5)
    return found


def read_la(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw ``image`` and ``label`` (None if absent) of an LA h5 file.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: naming the file if it is unreadable or has no ``image`` key.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as f:
            if "image" not in f:
                raise ValueError(f"{path}: no 'image' dataset (keys: {sorted(f.keys())})")
            image = f["image"][()]
            label = f["label"][()] if "label" in f else None
    except ValueError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/RuntimeError on corrupt files
        raise ValueError(f"{path}: cannot read h5 file, truncated or corrupt? ({type(exc).__name__}: {exc})") from exc
    return image, label


def resolve_la_path(path: Path) -> Path:
    """Accept the h5 file or its case folder."""
    if path.is_dir():
        h5 = la_h5_in(path)
        if h5 is None:
            raise FileNotFoundError(f"{path}: no {LA_FILE} (or single .h5 file) in this folder")
        return h5
    return path


def load_la_case(path: Path, with_label: bool = True) -> Case:
    """Load one LA case (the ``.h5`` file or its folder), intensities normalised to [0, 1].

    ``meta`` keeps the source file (``image_files``, ``label_file``), so writers can copy the
    z-scored image verbatim, and the normalisation window. ``with_label=False`` ignores the
    file's label (prediction inputs).
    """
    h5 = resolve_la_path(Path(path))
    image, label_map = read_la(h5)
    if not with_label:
        label_map = None
    if image.ndim != 3:
        raise ValueError(f"{h5}: 'image' must be 3D (H, W, D), got shape {image.shape}")
    label = None
    if label_map is not None:
        if label_map.shape != image.shape:
            raise ValueError(f"{h5}: label shape {label_map.shape} differs from image shape {image.shape}")
        label = LA_CODEC.decode(label_map, source=str(h5))
    normalised, windows = normalise_image(image[None].astype(np.float32), LA_MODALITY, source=str(h5))
    meta = {
        "format": "la-h5",
        "image_files": (h5,),
        "label_file": h5 if label_map is not None else None,
        "modality": LA_MODALITY,
        "codec": LA_CODEC,
        "intensity_window": windows,
        "original_shape": tuple(int(s) for s in image.shape),
        "original_spacing": LA_SPACING,
        "original_affine": LA_AFFINE.copy(),
    }
    return Case(normalised, label, LA_SPACING, la_case_id(h5), affine=LA_AFFINE.copy(), meta=meta)
