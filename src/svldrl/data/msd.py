"""Medical Segmentation Decathlon and nnU-Net NIfTI data sets: ``dataset.json``, ``imagesTr/``, ``labelsTr/``.

Channels come either as one 4D file per case (MSD, ``la_003.nii.gz`` of shape ``(X, Y, Z, C)``) or as
one file per channel (nnU-Net, ``la_003_0000.nii.gz``, ``la_003_0001.nii.gz``). Voxels are kept in the
file's own order and the affine and header are kept, so predictions go back onto the same grid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svldrl.data.case import Case, LabelSpec
from svldrl.data.files import CaseFiles, find_nifti, nifti_spacing, read_nifti, same_geometry, strip_nifti_ending
from svldrl.data.intensity import normalise_image
from svldrl.data.labels import LabelCodec, class_codec

DATASET_JSON = "dataset.json"
_CHANNEL_SUFFIX = re.compile(r"^(?P<id>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class MsdInfo:
    """What ``dataset.json`` says about a data set.

    Attributes:
        name: the data set's name.
        codec: label names, mode and file values (from ``labels``).
        modality: one name per channel (MSD ``modality`` or nnU-Net v2 ``channel_names``).
        file_ending: the image file ending (nnU-Net v2 ``file_ending``, else ``.nii.gz``).
    """

    name: str
    codec: LabelCodec
    modality: tuple[str, ...]
    file_ending: str = ".nii.gz"


def _by_index(mapping: dict[str, Any], key: str, path: Path) -> list[Any]:
    """Values of a ``{"0": ..., "1": ...}`` mapping in index order; indices must be 0..n-1."""
    try:
        indices = sorted(int(k) for k in mapping)
    except ValueError:
        raise ValueError(f"{path}: '{key}' keys must be channel/class indices, got {sorted(mapping)}") from None
    if indices != list(range(len(indices))):
        raise ValueError(f"{path}: '{key}' indices must be 0..{len(indices) - 1}, got {indices}")
    return [mapping[str(i)] for i in indices]


def _codec_from_labels(labels: dict[str, Any], data: dict[str, Any], path: Path) -> LabelCodec:
    """MSD ``{"0": "background", ...}`` or nnU-Net v2 ``{"background": 0, "tumour": [1, 2], ...}``."""
    if not labels:
        raise ValueError(f"{path}: 'labels' is empty")
    if all(str(k).isdigit() for k in labels):
        return class_codec(tuple(str(n) for n in _by_index(labels, "labels", path)))
    if any(isinstance(v, (list, tuple)) for v in labels.values()):
        regions = {
            name: tuple(int(x) for x in (v if isinstance(v, (list, tuple)) else [v])) for name, v in labels.items()
        }
        regions = {name: values for name, values in regions.items() if values != (0,)}
        paint = tuple(int(v) for v in data.get("regions_class_order", ()))
        return LabelCodec(LabelSpec(tuple(regions), "regions"), tuple(regions.values()), paint)
    by_value = sorted((int(v), str(name)) for name, v in labels.items())
    if [v for v, _ in by_value] != list(range(len(by_value))):
        raise ValueError(f"{path}: label values must be 0..n-1, got {[v for v, _ in by_value]}")
    return class_codec(tuple(name for _, name in by_value))


def read_dataset_json(root: Path) -> MsdInfo:
    """Parse ``root/dataset.json`` (MSD or nnU-Net v2 flavour).

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: naming the file if it is not valid JSON or lacks ``labels`` or the channel names.
    """
    path = Path(root) / DATASET_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read JSON ({exc})") from exc
    channels = data.get("modality", data.get("channel_names"))
    if not isinstance(channels, dict) or not channels:
        raise ValueError(f"{path}: needs 'modality' (MSD) or 'channel_names' (nnU-Net v2) as a mapping")
    if not isinstance(data.get("labels"), dict):
        raise ValueError(f"{path}: needs 'labels' as a mapping")
    modality = tuple(str(m) for m in _by_index(channels, "modality/channel_names", path))
    codec = _codec_from_labels(data["labels"], data, path)
    return MsdInfo(str(data.get("name", Path(root).name)), codec, modality, str(data.get("file_ending", ".nii.gz")))


def _group_channel_files(stems: dict[str, Path], n_channels: int) -> dict[str, tuple[Path, ...]] | None:
    """``{id: channel files}`` if the files follow nnU-Net's ``<id>_XXXX`` naming, else None."""
    groups: dict[str, dict[int, Path]] = {}
    for stem, path in stems.items():
        match = _CHANNEL_SUFFIX.match(stem)
        if match is None:
            return None
        groups.setdefault(match["id"], {})[int(match["channel"])] = path
    if not groups or any(0 not in g or max(g) >= max(n_channels, 1) for g in groups.values()):
        return None  # e.g. MSD ids "case_0000", "case_0001": one group with too many "channels"
    return {case_id: tuple(g[c] for c in sorted(g)) for case_id, g in groups.items()}


def find_msd_cases(
    root: Path, info: MsdInfo, images: str = "imagesTr", labels: str | None = "labelsTr"
) -> dict[str, CaseFiles]:
    """Case id -> files in ``root/images`` (sorted by id); ``labels=None`` for unlabelled folders.

    A labelled case whose label file is missing gets the expected path, so loading names it.
    """
    folder = Path(root) / images
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    stems = {}
    for path in folder.iterdir():
        stem = strip_nifti_ending(path.name)
        if stem is not None and path.is_file():
            stems[stem] = path
    grouped = _group_channel_files(stems, len(info.modality))
    channel_files = grouped if grouped is not None else {stem: (path,) for stem, path in stems.items()}
    found = {}
    for case_id in sorted(channel_files):
        label = None
        if labels is not None:
            label_dir = Path(root) / labels
            label = find_nifti(label_dir, case_id) or label_dir / f"{case_id}{info.file_ending}"
        found[case_id] = CaseFiles(images=channel_files[case_id], label=label)
    return found


def read_msd_image(files: Sequence[Path]) -> tuple[np.ndarray, np.ndarray, Any]:
    """Raw ``(C, H, W, D)`` image from one 4D file or several 3D channel files, with affine and header.

    Raises:
        ValueError: naming the file whose shape or geometry differs from the first channel file's.
    """
    channels: list[np.ndarray] = []
    affine, header, first = None, None, None
    for path in files:
        data, file_affine, file_header = read_nifti(path)
        if data.ndim == 4:
            parts = list(np.moveaxis(data, 3, 0))  # (X, Y, Z, C) -> C x (X, Y, Z)
        elif data.ndim == 3:
            parts = [data]
        else:
            raise ValueError(f"{path}: expected a 3D or 4D image, got shape {data.shape}")
        if affine is None:
            affine, header, first = file_affine, file_header, path
        elif parts[0].shape != channels[0].shape:
            raise ValueError(f"{path}: shape {parts[0].shape} differs from {first} {channels[0].shape}")
        elif not same_geometry(file_affine, affine):
            raise ValueError(f"{path}: affine differs from {first}:\n{file_affine}\nvs\n{affine}")
        channels.extend(parts)
    if not channels:
        raise ValueError("no image files given")
    return np.stack(channels).astype(np.float32, copy=False), affine, header


def load_msd_case(case_id: str, files: CaseFiles, modality: Sequence[str], codec: LabelCodec | None) -> Case:
    """Load one case: image normalised per channel, label decoded; affine and header kept in the Case.

    ``meta`` holds ``image_files`` (the original, un-normalised sources), ``label_file``,
    ``nifti_header``, ``modality``, ``codec`` and the per-channel ``intensity_window``.
    """
    image, affine, header = read_msd_image(files.images)
    source = str(files.images[0])
    label = None
    if files.label is not None:
        label_map, label_affine, _ = read_nifti(files.label)
        if label_map.shape != image.shape[1:]:
            raise ValueError(f"{files.label}: label shape {label_map.shape} differs from image shape {image.shape[1:]}")
        if not same_geometry(label_affine, affine):
            raise ValueError(f"{files.label}: label affine differs from the image's ({source})")
        if codec is None:
            raise ValueError(f"{files.label}: no label description (dataset.json 'labels') to decode it with")
        label = codec.decode(label_map, source=str(files.label))
    normalised, windows = normalise_image(image, tuple(modality), source=source)
    spacing = nifti_spacing(header)
    meta = {
        "format": "msd",
        "image_files": tuple(files.images),
        "label_file": files.label,
        "nifti_header": header,
        "modality": tuple(modality),
        "codec": codec,
        "intensity_window": windows,
        "original_shape": tuple(int(s) for s in normalised.shape[1:]),
        "original_spacing": spacing,
        "original_affine": affine.copy(),
    }
    return Case(normalised, label, spacing, case_id, affine=affine, meta=meta)


def load_nifti_case(path: Path, modality: Sequence[str] | None = None, with_label: bool = True) -> Case:
    """Load a NIfTI file: inside an MSD/nnU-Net layout (channels and label found), or on its own.

    A lone file has no ``dataset.json`` to tell its modality, so ``modality`` must then be given.
    ``with_label=False`` never reads the label (prediction inputs: a broken label must not stop it).
    """
    path = Path(path)
    root = path.parent.parent
    if path.parent.name in ("imagesTr", "imagesTs") and (root / DATASET_JSON).is_file():
        info = read_dataset_json(root)
        labels = "labelsTr" if path.parent.name == "imagesTr" else None
        for case_id, files in find_msd_cases(root, info, path.parent.name, labels).items():
            if path.name in {p.name for p in files.images}:
                if files.label is not None and (not with_label or not files.label.is_file()):
                    files = CaseFiles(files.images, None)  # a lone image of a labelled folder: predict on it
                return load_msd_case(case_id, files, modality or info.modality, info.codec)
    if modality is None:
        raise ValueError(f"{path}: no dataset.json beside this file; pass modality, e.g. ('CT',) or ('MRI',)")
    stem = strip_nifti_ending(path.name) or path.stem
    return load_msd_case(stem, CaseFiles((path,), None), modality, None)
