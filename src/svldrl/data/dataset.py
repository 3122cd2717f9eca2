"""``Dataset``: the cases of a data set on disk, loaded lazily and cached, whatever the format."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from svldrl.data.brats import BRATS_MODALITY, find_brats_cases, is_brats_case_dir, load_brats_case
from svldrl.data.case import Case, LabelSpec
from svldrl.data.files import CaseFiles, strip_nifti_ending
from svldrl.data.la import LA_CODEC, LA_MODALITY, find_la_cases, la_h5_in, load_la_case
from svldrl.data.labels import BRATS_CODEC, LabelCodec
from svldrl.data.msd import DATASET_JSON, find_msd_cases, load_msd_case, load_nifti_case, read_dataset_json
from svldrl.registry import UnknownNameError

FORMATS: tuple[str, ...] = ("la-h5", "msd", "brats")


class Dataset:
    """The labelled (training) cases of a data set.

    Attributes:
        root: the data set's folder.
        name: its name (``dataset.json`` ``name``, else the folder name).
        format: ``"la-h5"``, ``"msd"`` or ``"brats"``.
        codec: how label files encode ``labels`` (used by writers and validation).
        modality: one modality name per image channel.
        paths: case id -> ``CaseFiles`` (the original files, for writers and validation).
    """

    def __init__(
        self,
        root: Path,
        name: str,
        format: str,
        codec: LabelCodec,
        modality: tuple[str, ...],
        paths: dict[str, CaseFiles],
        loader: Callable[[str, CaseFiles], Case],
        cache: bool = True,
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"unknown data set format {format!r}; valid: {', '.join(FORMATS)}")
        self.root = Path(root)
        self.name = name
        self.format = format
        self.codec = codec
        self.modality = modality
        self.paths = dict(sorted(paths.items()))
        self._loader = loader
        self._cache_enabled = cache
        self._cache: dict[str, Case] = {}

    @property
    def labels(self) -> LabelSpec:
        """What the labels mean (names, classes or regions)."""
        return self.codec.spec

    @property
    def case_ids(self) -> tuple[str, ...]:
        """Case ids, sorted."""
        return tuple(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Case:
        ids = self.case_ids
        if not -len(ids) <= index < len(ids):
            raise IndexError(f"case index {index} out of range for {len(ids)} cases of {self.name!r}")
        return self.get(ids[index])

    def __iter__(self) -> Iterator[Case]:
        return (self.get(case_id) for case_id in self.case_ids)

    def _check_id(self, case_id: str) -> CaseFiles:
        if case_id not in self.paths:
            import difflib

            close = difflib.get_close_matches(case_id, self.case_ids, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(f"no case {case_id!r} in data set {self.name!r} ({self.root}).{hint}")
        return self.paths[case_id]

    def load(self, case_id: str) -> Case:
        """Read the case from disk, bypassing the cache (for callers that keep their own copy)."""
        return self._loader(case_id, self._check_id(case_id))

    def get(self, case_id: str) -> Case:
        """The case, read on first use and then cached (unless the data set was opened with cache=False)."""
        if case_id in self._cache:
            return self._cache[case_id]
        case = self.load(case_id)
        if self._cache_enabled:
            self._cache[case_id] = case
        return case

    def clear_cache(self) -> None:
        """Forget the loaded cases (they are re-read on next access)."""
        self._cache.clear()

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, format={self.format!r}, cases={len(self)}, labels={self.labels.names})"


def detect_format(path: Path) -> str:
    """``"msd"`` (dataset.json + imagesTr), ``"brats"`` (case folders of ``<id>_flair.nii.gz``...) or
    ``"la-h5"`` (case folders of ``mri_norm2.h5``).

    Raises:
        FileNotFoundError: if ``path`` is not a folder.
        ValueError: naming the folder and the layouts looked for if none matches.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a data set folder")
    if (path / DATASET_JSON).is_file() and (path / "imagesTr").is_dir():
        return "msd"
    folders = [p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if any(is_brats_case_dir(p) for p in folders):
        return "brats"
    if any(la_h5_in(p) is not None for p in folders):
        return "la-h5"
    raise ValueError(
        f"{path}: not a recognised data set; expected dataset.json + imagesTr/ (MSD/nnU-Net), "
        "case folders <id>/<id>_flair.nii.gz ... (BraTS) or case folders <id>/mri_norm2.h5 (LA)"
    )


def load_dataset(path: str | Path, cache: bool = True) -> Dataset:
    """Open the data set at ``path`` (format detected); cases are read on first access.

    Raises:
        ValueError: naming the folder if the format is not recognised or it holds no cases.
    """
    root = Path(path)
    fmt = detect_format(root)
    if fmt == "msd":
        info = read_dataset_json(root)
        paths = find_msd_cases(root, info)

        def load_msd(case_id: str, files: CaseFiles) -> Case:
            return load_msd_case(case_id, files, info.modality, info.codec)

        dataset = Dataset(root, info.name, fmt, info.codec, info.modality, paths, load_msd, cache)
    elif fmt == "brats":
        paths = find_brats_cases(root)

        def load_brats(case_id: str, files: CaseFiles) -> Case:
            return load_brats_case(root / case_id)

        dataset = Dataset(root, root.name, fmt, BRATS_CODEC, BRATS_MODALITY, paths, load_brats, cache)
    else:
        paths = find_la_cases(root)

        def load_la(case_id: str, files: CaseFiles) -> Case:
            return load_la_case(files.images[0])

        dataset = Dataset(root, root.name, fmt, LA_CODEC, LA_MODALITY, paths, load_la, cache)
    if not len(dataset):
        raise ValueError(f"{root}: {fmt} data set without any case")
    return dataset


def load_case(path: str | Path, modality: Sequence[str] | None = None, with_label: bool = True) -> Case:
    """Load one case, whatever the format: an LA ``.h5`` file or its folder, a BraTS case folder, or a
    NIfTI image (inside an MSD/nnU-Net layout, or alone with ``modality`` given).
    ``with_label=False`` never reads a label (what ``predict`` needs).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming ``path`` if it is none of the above.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        if is_brats_case_dir(path):
            return load_brats_case(path, with_label)
        if la_h5_in(path) is not None:
            return load_la_case(path, with_label)
        raise ValueError(f"{path}: neither a BraTS case folder (<id>_flair.nii.gz ...) nor an LA case folder (*.h5)")
    if path.suffix == ".h5":
        return load_la_case(path, with_label)
    if strip_nifti_ending(path.name) is not None:
        return load_nifti_case(path, modality, with_label)
    raise ValueError(f"{path}: unsupported file type; expected .h5, .nii or .nii.gz")
