"""``svldrl check-data``: find what would break a run, per file, before any long work starts.

Each file is read once. Blocking problems (unreadable files, shape/geometry mismatches, non-finite
intensities, unexpected label values, wrong channel counts) would break training or silently
corrupt it; warnings (empty labels, stray files) deserve a look but do not stop a run.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svldrl.data.brats import BRATS_CHANNELS, BRATS_SEG, brats_case_files, find_brats_cases, is_brats_case_dir
from svldrl.data.dataset import Dataset, detect_format, load_dataset
from svldrl.data.files import CaseFiles, read_nifti, same_geometry, strip_nifti_ending
from svldrl.data.la import LA_CODEC, LA_FILE, find_la_cases, la_h5_in, read_la
from svldrl.data.labels import BRATS_CODEC, LabelCodec, unique_values
from svldrl.data.msd import DATASET_JSON, MsdInfo, find_msd_cases, read_dataset_json


class DataWarning(UserWarning):
    """Something in a data set that deserves a look but does not stop the work (an empty label,
    a folder that is not a case). The CLI prints each as one ``warning:`` line."""


class DataError(ValueError):
    """The data set has problems that block the work (the message lists them, file by file)."""


@dataclass(frozen=True)
class Problem:
    """One finding about one file.

    Attributes:
        path: the file (or folder) concerned.
        message: what is wrong, in words a user can act on.
        blocking: True if training must not start with it; False for a warning.
    """

    path: Path
    message: str
    blocking: bool = True

    def __str__(self) -> str:
        return f"{'ERROR' if self.blocking else 'warning'} {self.path}: {self.message}"


def _reason(exc: Exception, path: Path) -> str:
    """The exception's message without the leading ``"<path>: "`` that Problem.path already gives."""
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _check_intensities(image: np.ndarray, path: Path) -> list[Problem]:
    if not np.issubdtype(image.dtype, np.floating):
        return []
    bad = int(np.count_nonzero(~np.isfinite(image)))
    return [Problem(path, f"{bad} non-finite intensities (NaN or inf)")] if bad else []


def _check_label_values(label: np.ndarray, codec: LabelCodec, path: Path) -> list[Problem]:
    try:
        values = set(unique_values(label, str(path)).tolist())
    except ValueError as exc:
        return [Problem(path, _reason(exc, path))]
    outside = sorted(values - codec.file_values)
    if outside:
        return [Problem(path, f"label values {outside} outside the expected set {sorted(codec.file_values)}")]
    if values <= {0}:
        return [Problem(path, "label is empty (no foreground voxel)", blocking=False)]
    return []


def _check_la_file(path: Path, codec: LabelCodec) -> list[Problem]:
    try:
        image, label = read_la(path)
    except (FileNotFoundError, ValueError) as exc:
        return [Problem(path, _reason(exc, path))]
    if image.ndim != 3:
        return [Problem(path, f"'image' must be 3D, got shape {image.shape}")]
    problems = _check_intensities(image, path)
    if label is None:
        return [*problems, Problem(path, "no 'label' dataset")]
    if label.shape != image.shape:
        return [*problems, Problem(path, f"label shape {label.shape} differs from image shape {image.shape}")]
    return problems + _check_label_values(label, codec, path)


def _check_nifti_case(case_id: str, files: CaseFiles, codec: LabelCodec, n_channels: int) -> list[Problem]:
    problems: list[Problem] = []
    reference: tuple[Path, tuple[int, ...], np.ndarray] | None = None
    found_channels, all_read = 0, True
    for path in files.images:
        try:
            data, affine, _ = read_nifti(path)
        except (FileNotFoundError, ValueError) as exc:
            problems.append(Problem(path, _reason(exc, path)))
            all_read = False
            continue
        if data.ndim not in (3, 4):
            problems.append(Problem(path, f"expected a 3D or 4D image, got shape {data.shape}"))
            all_read = False
            continue
        found_channels += data.shape[3] if data.ndim == 4 else 1
        if reference is None:
            reference = (path, data.shape[:3], affine)
        elif data.shape[:3] != reference[1]:
            problems.append(Problem(path, f"shape {data.shape[:3]} differs from {reference[0].name} {reference[1]}"))
        elif not same_geometry(affine, reference[2]):
            problems.append(Problem(path, f"affine (spacing/orientation/origin) differs from {reference[0].name}"))
        problems += _check_intensities(data, path)
    if all_read and found_channels != n_channels:
        problems.append(
            Problem(files.images[0], f"case {case_id}: {found_channels} image channels, expected {n_channels}")
        )
    if files.label is None:
        folder = files.images[0].parent
        return [*problems, Problem(folder, f"case {case_id}: no label file")]
    try:
        label, label_affine, _ = read_nifti(files.label)
    except (FileNotFoundError, ValueError) as exc:
        return [*problems, Problem(files.label, _reason(exc, files.label))]
    if reference is not None:
        if label.shape != reference[1]:
            return [*problems, Problem(files.label, f"label shape {label.shape} differs from image {reference[1]}")]
        if not same_geometry(label_affine, reference[2]):
            problems.append(
                Problem(files.label, f"label affine (spacing/orientation/origin) differs from {reference[0].name}")
            )
    return problems + _check_label_values(label, codec, files.label)


def check_case_files(case_id: str, files: CaseFiles, fmt: str, codec: LabelCodec, n_channels: int) -> list[Problem]:
    """Problems of one case's files (each file read once)."""
    if fmt == "la-h5":
        return _check_la_file(files.images[0], codec)
    return _check_nifti_case(case_id, files, codec, n_channels)


def _check_msd_listing(root: Path, info: MsdInfo, paths: dict[str, CaseFiles]) -> list[Problem]:
    """Stray label files and a ``numTraining`` that disagrees with the files (warnings)."""
    import json

    problems = []
    label_dir = root / "labelsTr"
    if label_dir.is_dir():
        for path in sorted(label_dir.iterdir()):
            stem = strip_nifti_ending(path.name)
            if stem is not None and stem not in paths:
                problems.append(Problem(path, "label file without an image in imagesTr", blocking=False))
    declared = json.loads((root / DATASET_JSON).read_text()).get("numTraining")
    if isinstance(declared, int) and declared != len(paths):
        problems.append(
            Problem(root / DATASET_JSON, f"numTraining is {declared} but imagesTr holds {len(paths)} cases", False)
        )
    return problems


def _check_single_case(path: Path) -> list[Problem] | None:
    """Problems of one case given by itself (LA h5 file or folder, BraTS folder, NIfTI image); None if
    ``path`` is not a single case."""
    if path.is_dir() and is_brats_case_dir(path):
        files = brats_case_files(path)
        if files.label is None:
            files = CaseFiles(files.images, path / f"{path.name}_{BRATS_SEG}.nii.gz")
        return check_case_files(path.name, files, "brats", BRATS_CODEC, len(BRATS_CHANNELS))
    h5 = la_h5_in(path) if path.is_dir() else (path if path.suffix == ".h5" else None)
    if h5 is not None:
        return _check_la_file(h5, LA_CODEC)
    if path.is_file() and strip_nifti_ending(path.name) is not None:
        try:
            data, _, _ = read_nifti(path)
        except (FileNotFoundError, ValueError) as exc:
            return [Problem(path, _reason(exc, path))]
        if data.ndim not in (3, 4):
            return [Problem(path, f"expected a 3D or 4D image, got shape {data.shape}")]
        return _check_intensities(data, path)
    return None


def check_dataset(path: str | Path) -> list[Problem]:
    """Check every case of the data set at ``path`` (any format), or the single case ``path`` is (LA h5
    file or folder, BraTS case folder, NIfTI image); an empty list means all is well."""
    root = Path(path)
    single = _check_single_case(root)
    if single is not None:
        return single
    try:
        fmt = detect_format(root)
    except (FileNotFoundError, ValueError) as exc:
        return [Problem(root, _reason(exc, root))]
    problems: list[Problem] = []
    if fmt == "msd":
        try:
            info = read_dataset_json(root)
            paths = find_msd_cases(root, info)
        except (FileNotFoundError, ValueError) as exc:
            return [Problem(root / DATASET_JSON, _reason(exc, root / DATASET_JSON))]
        codec, n_channels = info.codec, len(info.modality)
        problems += _check_msd_listing(root, info, paths)
    elif fmt == "brats":
        paths, codec, n_channels = find_brats_cases(root), BRATS_CODEC, len(BRATS_CHANNELS)
    else:
        paths, codec, n_channels = find_la_cases(root), LA_CODEC, 1
    if not paths:
        return [*problems, Problem(root, f"no cases found ({fmt} layout)")]
    if fmt in ("la-h5", "brats"):
        problems += _folders_that_are_not_cases(root, fmt, set(paths))
    for case_id, files in paths.items():
        if fmt == "brats" and files.label is None:
            files = CaseFiles(files.images, root / case_id / f"{case_id}_{BRATS_SEG}.nii.gz")  # report it by name
        problems += check_case_files(case_id, files, fmt, codec, n_channels)
    return problems


def _folders_that_are_not_cases(root: Path, fmt: str, case_ids: set[str]) -> list[Problem]:
    """Warnings for sub-folders the loader skips: a case whose image was not copied would
    otherwise make the data set smaller without a word."""
    if fmt == "la-h5":
        expected = f"no image file ({LA_FILE}, or a single .h5 file)"
    else:
        expected = "no image file (<id>_flair/_t1/_t1ce/_t2/_seg.nii.gz)"
    return [
        Problem(folder, f"{expected}: not read as a case", blocking=False)
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if folder.name not in case_ids
    ]


def has_blocking(problems: Sequence[Problem]) -> bool:
    """Whether any problem must stop a run."""
    return any(p.blocking for p in problems)


def format_problems(problems: Sequence[Problem]) -> str:
    """One line per problem and a summary line, for the CLI."""
    if not problems:
        return "no problems found"
    n_blocking = sum(p.blocking for p in problems)
    lines = [str(p) for p in problems]
    lines.append(f"{n_blocking} blocking problem(s), {len(problems) - n_blocking} warning(s)")
    return "\n".join(lines)


def warn_problems(problems: Sequence[Problem]) -> None:
    """Issue every non-blocking problem as a ``DataWarning`` (one per file)."""
    for problem in problems:
        if not problem.blocking:
            warnings.warn(str(problem), DataWarning, stacklevel=3)


def open_checked_dataset(path: str | Path) -> Dataset:
    """Load a data set after ``check_dataset`` found nothing blocking (fails before any long work).

    Warnings (empty labels, folders that are not cases) are issued as ``DataWarning``s, so that
    ``train`` and ``noise`` show them as ``check-data`` does.
    """
    problems = check_dataset(path)
    blocking = [p for p in problems if p.blocking]
    if len(blocking) == 1:  # one line, as every other error
        raise DataError(f"{blocking[0].path}: {blocking[0].message}")
    if blocking:
        raise DataError(f"{path}: {len(blocking)} problem(s) block the work:\n{format_problems(blocking)}")
    warn_problems(problems)
    return load_dataset(path)
