"""Writers: MSD data sets from Cases, copies of a data set with other labels, masks on a case's grid.

Every file is written to a temporary name and renamed into place, so a crash never leaves a
half-written file. Source images are hard-linked or copied byte for byte, never re-normalised.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import nibabel as nib
import numpy as np

from svldrl.data.case import Case, LabelSpec
from svldrl.data.dataset import Dataset
from svldrl.data.files import atomic_path, link_or_copy, save_nifti
from svldrl.data.la import LA_AFFINE
from svldrl.data.labels import LabelCodec


def _write_json(data: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _prepare_out(out: str | Path, overwrite: bool) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder exists and is not empty (pass overwrite=True to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _codec_for(cases: Sequence[Case], labels: LabelSpec) -> LabelCodec:
    """Classes need nothing more; regions need the paint order the cases were read with."""
    if labels.mode == "classes":
        return LabelCodec(labels)
    codec = cases[0].meta.get("codec")
    if not isinstance(codec, LabelCodec) or codec.spec != labels or not codec.paint_values:
        raise ValueError(f"cannot write regions {labels.names} as MSD labels: the cases carry no paint order")
    return codec


def write_msd_dataset(
    cases: Sequence[Case],
    labels: LabelSpec,
    out: str | Path,
    name: str,
    modality: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``cases`` (their [0, 1] images, float32) as an MSD data set; returns ``out``.

    Multi-channel images become 4D files ``(X, Y, Z, C)``. ``modality`` defaults to MRI for every
    channel: the images are already normalised, and the MRI percentile window leaves [0, 1] data
    nearly unchanged on reload, where a CT window would not.
    """
    if not cases:
        raise ValueError("write_msd_dataset: no cases given")
    out = _prepare_out(out, overwrite)
    n_channels = cases[0].n_channels
    modality = tuple(modality) if modality is not None else ("MRI",) * n_channels
    if len(modality) != n_channels:
        raise ValueError(f"write_msd_dataset: {n_channels} channels but modality {modality}")
    codec = _codec_for(cases, labels)
    training = []
    for case in cases:
        if case.n_channels != n_channels:
            raise ValueError(f"case {case.case_id}: {case.n_channels} channels, expected {n_channels}")
        affine = case.affine if case.affine is not None else np.diag([*case.spacing, 1.0])
        image = case.image[0] if n_channels == 1 else np.moveaxis(case.image, 0, -1)  # (X, Y, Z[, C])
        image_path = save_nifti(
            np.ascontiguousarray(image, dtype=np.float32), affine, out / "imagesTr" / f"{case.case_id}.nii.gz"
        )
        entry = {"image": f"./imagesTr/{image_path.name}"}
        if case.label is not None:
            label_map = codec.encode(case.label, source=f"case {case.case_id}")
            save_nifti(label_map, affine, out / "labelsTr" / f"{case.case_id}.nii.gz")
            entry["label"] = f"./labelsTr/{case.case_id}.nii.gz"
        training.append(entry)
    labels_json: dict[str, Any]
    if labels.mode == "classes":
        labels_json = {str(i): n for i, n in enumerate(labels.names)}
    else:  # nnU-Net v2 region syntax, which read_dataset_json understands
        labels_json = {"background": 0, **{n: list(v) for n, v in zip(labels.names, codec.region_values, strict=True)}}
    description = {
        "name": name,
        "description": f"written by svldrl ({len(cases)} cases)",
        "tensorImageSize": "4D" if n_channels > 1 else "3D",
        "modality": {str(i): m for i, m in enumerate(modality)},
        "labels": labels_json,
        "numTraining": len(cases),
        "numTest": 0,
        "training": training,
        "test": [],
    }
    if labels.mode == "regions":
        description["regions_class_order"] = list(codec.paint_values)
    _write_json(description, out / "dataset.json")
    return out


def _label_shape(dataset: Dataset, case_id: str) -> tuple[int, ...]:
    """Shape of the case's label in the Case convention, read from the file header only."""
    files = dataset.paths[case_id]
    if dataset.format == "la-h5":
        with h5py.File(files.images[0], "r") as f:
            spatial = tuple(f["image"].shape)
    else:
        spatial = tuple(nib.load(files.images[0]).shape[:3])
    return spatial if dataset.labels.mode == "classes" else (dataset.labels.n_outputs, *spatial)


def _check_labels(dataset: Dataset, labels_by_id: Mapping[str, np.ndarray]) -> None:
    unknown = sorted(set(labels_by_id) - set(dataset.case_ids))
    if unknown:
        raise ValueError(f"labels_by_id: cases {unknown[:5]} are not in data set {dataset.name!r} ({dataset.root})")
    for case_id, label in labels_by_id.items():
        expected = _label_shape(dataset, case_id)
        if tuple(label.shape) != expected:
            raise ValueError(f"labels_by_id[{case_id!r}]: shape {label.shape}, expected {expected} (the original grid)")


def _copy_la_case(src: Path, dst: Path, label: np.ndarray | None, codec: LabelCodec, case_id: str) -> None:
    """The h5 file with the image dataset copied as stored (same bytes, filters, chunks) and a new label."""
    if label is None:
        link_or_copy(src, dst)
        return
    encoded = codec.encode(label, source=f"case {case_id}")
    with atomic_path(dst) as tmp, h5py.File(src, "r") as fin, h5py.File(tmp, "w") as fout:
        for key in fin:
            if key != "label":
                fin.copy(fin[key], fout, name=key)
        old = fin.get("label")
        options = {"compression": old.compression, "compression_opts": old.compression_opts} if old is not None else {}
        if old is not None and old.chunks is not None:
            options["chunks"] = old.chunks
        fout.create_dataset("label", data=encoded, **options)
        for key, value in fin.attrs.items():
            fout.attrs[key] = value


def _write_label_nifti(
    label: np.ndarray, source_label: Path | None, image: Path, dst: Path, codec: LabelCodec, case_id: str
) -> None:
    """A label NIfTI on the source label's grid and header (the image's when the case had none)."""
    reference = nib.load(source_label if source_label is not None and source_label.is_file() else image)
    save_nifti(codec.encode(label, source=f"case {case_id}"), reference.affine, dst, reference.header)


def _copy_top_files(src: Path, dst: Path) -> None:
    """Regular top-level files (dataset.json, train.list, README...) verbatim."""
    for path in sorted(src.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            link_or_copy(path, dst / path.name)


def copy_dataset_with_labels(
    dataset: Dataset, labels_by_id: Mapping[str, np.ndarray], out: str | Path, overwrite: bool = False
) -> Path:
    """A copy of ``dataset`` in its own format with the given labels replacing the originals.

    Labels are in the ``Case`` convention on the original grid; cases not in ``labels_by_id`` keep
    their label file. Images are hard-linked or copied byte for byte (never re-normalised), so the
    copy loads exactly like the original apart from the labels. Used by ``svldrl noise``.

    Raises:
        ValueError: for unknown case ids, labels of the wrong shape, or ``out`` being the source.
        FileExistsError: if ``out`` is a non-empty folder and ``overwrite`` is False.
    """
    if Path(out).resolve() == dataset.root.resolve():
        raise ValueError(f"{out}: refusing to write a data set onto its own source")
    _check_labels(dataset, labels_by_id)
    out = _prepare_out(out, overwrite)
    _copy_top_files(dataset.root, out)
    codec = dataset.codec
    for case_id, files in dataset.paths.items():
        label = labels_by_id.get(case_id)
        if dataset.format == "la-h5":
            src = files.images[0]
            _copy_la_case(src, out / src.relative_to(dataset.root), label, codec, case_id)
            continue
        for image in files.images:
            link_or_copy(image, out / image.relative_to(dataset.root))
        if dataset.format == "brats":  # other files of the case folder (e.g. notes) come along
            for extra in sorted((dataset.root / case_id).iterdir()):
                if extra.is_file() and extra not in files.images and extra != files.label:
                    link_or_copy(extra, out / extra.relative_to(dataset.root))
        if label is not None:
            target = files.label if files.label is not None else dataset.root / case_id / f"{case_id}_seg.nii.gz"
            _write_label_nifti(
                label, files.label, files.images[0], out / target.relative_to(dataset.root), codec, case_id
            )
        elif files.label is not None and files.label.is_file():
            link_or_copy(files.label, out / files.label.relative_to(dataset.root))
    if dataset.format == "msd" and (dataset.root / "imagesTs").is_dir():
        for image in sorted((dataset.root / "imagesTs").iterdir()):
            if image.is_file() and not image.name.startswith("."):
                link_or_copy(image, out / "imagesTs" / image.name)
    return out


def write_nifti_like(array: np.ndarray, reference_case: Case, path: str | Path) -> Path:
    """Write a mask on ``reference_case``'s original grid: its affine and header (used by predict).

    ``array`` is ``(H, W, D)`` (written as given; bool becomes uint8) or, for region outputs,
    ``(K, H, W, D)`` binary, painted into the file values of the reference's label codec (BraTS 2/1/4).

    Raises:
        ValueError: if the shape is not the reference's original shape (resample back first).
    """
    meta = reference_case.meta
    shape = tuple(meta.get("original_shape", reference_case.shape))
    if array.ndim == 4:
        codec = meta.get("codec")
        if not isinstance(codec, LabelCodec) or codec.spec.mode != "regions":
            raise ValueError(f"{path}: a 4D array needs a reference case with region labels, got shape {array.shape}")
        array = codec.encode(array, source=str(path))
    if tuple(array.shape) != shape:
        raise ValueError(f"{path}: array shape {array.shape} is not the reference's original shape {shape}")
    affine = meta.get("original_affine", reference_case.affine)
    if affine is None:
        affine = LA_AFFINE if meta.get("format") == "la-h5" else np.diag([*reference_case.spacing, 1.0])
    header = meta.get("nifti_header")
    return save_nifti(np.asarray(array), affine, Path(path), header)
