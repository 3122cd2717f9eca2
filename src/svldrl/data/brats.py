"""BraTS 2021 case folders: ``<id>/<id>_{flair,t1,t1ce,t2,seg}.nii.gz``, labels 1/2/4 -> WT, TC, ET."""

from __future__ import annotations

from pathlib import Path

from svldrl.data.case import Case
from svldrl.data.files import CaseFiles, find_nifti
from svldrl.data.labels import BRATS_CODEC
from svldrl.data.msd import load_msd_case

BRATS_CHANNELS: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
BRATS_MODALITY: tuple[str, ...] = ("FLAIR", "T1", "T1ce", "T2")
BRATS_SEG = "seg"


def is_brats_case_dir(folder: Path) -> bool:
    """Whether ``folder`` holds at least one ``<folder name>_<modality>.nii(.gz)`` file."""
    return folder.is_dir() and any(find_nifti(folder, f"{folder.name}_{c}") for c in (*BRATS_CHANNELS, BRATS_SEG))


def brats_case_files(folder: Path) -> CaseFiles:
    """The four channel files (expected paths when missing, so loading names them) and the seg file."""
    images = tuple(
        find_nifti(folder, f"{folder.name}_{c}") or folder / f"{folder.name}_{c}.nii.gz" for c in BRATS_CHANNELS
    )
    return CaseFiles(images=images, label=find_nifti(folder, f"{folder.name}_{BRATS_SEG}"))


def find_brats_cases(root: Path) -> dict[str, CaseFiles]:
    """Case id -> files for every BraTS case folder in ``root``, sorted by id."""
    folders = sorted(p for p in Path(root).iterdir() if not p.name.startswith(".") and is_brats_case_dir(p))
    return {folder.name: brats_case_files(folder) for folder in folders}


def load_brats_case(folder: Path, with_label: bool = True) -> Case:
    """Load a BraTS case folder: 4 MRI channels normalised to [0, 1], label as (3, H, W, D) WT/TC/ET.

    ``with_label=False`` ignores the seg file (prediction inputs)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a BraTS case folder")
    files = brats_case_files(folder)
    if not with_label:
        files = CaseFiles(files.images, None)
    case = load_msd_case(folder.name, files, BRATS_MODALITY, BRATS_CODEC)
    case.meta["format"] = "brats"
    return case
