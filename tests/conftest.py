"""Shared fixtures: tiny data sets of every supported format written into ``tmp_path``, and phantoms.

Fixtures for everyone:
    ``msd_dataset``      MSD, one CT channel (int16 HU), labels background/organ, 3 cases
    ``msd_4d_dataset``   MSD, two MRI channels in one 4D file per case, 3 cases
    ``nnunet_dataset``   nnU-Net v2, two MRI channels as ``_0000``/``_0001`` files, 3 cases
    ``brats_dataset``    BraTS 2021 folder, 2 cases, labels 0/1/2/4 nested
    ``la_dataset``       LA h5 folder (``<case>/mri_norm2.h5`` + ``train.list``), 3 cases
    ``phantom_dataset``  MSD folder of 3 phantoms of 32^3 written by ``write_phantom_dataset``
    ``phantom_cases``    4 phantom Cases of 32^3 (in memory)
    ``la2018_root``      the real LA 2018 folder beside the repo (skips when absent)
Factories (``make_msd``, ``make_brats``, ``make_la``) take the keyword arguments of ``write_msd`` etc.
Every array is a deterministic function of the arguments; the ``tiny`` fixture hands tests the
functions that made them (``tiny.case_image``, ``tiny.case_label``...) to recompute expected values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import h5py
import nibabel as nib
import numpy as np
import pytest

from svldrl.data import Case, make_phantoms, write_phantom_dataset

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per pytest-xdist worker (and per process a test starts): with two workers on
    # two cores, two threads each would oversubscribe the cores, and small 3D convolutions then run
    # many times slower (benchmarks/README.md).
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

LA2018 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "la2018"
TINY_SHAPE = (20, 18, 16)
MSD_AFFINE = np.array(
    [[-0.8, 0.0, 0.0, 12.0], [0.0, 0.9, 0.0, -30.0], [0.0, 0.0, 2.5, 40.0], [0.0, 0.0, 0.0, 1.0]]
)  # x flipped, anisotropic, off-origin: a header that must be read, not assumed


def ball(shape: tuple[int, ...], centre: tuple[float, ...], radius: float) -> np.ndarray:
    """Boolean ball of ``radius`` voxels around ``centre``."""
    grid = np.indices(shape, dtype=np.float32)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def case_label(shape: tuple[int, int, int], index: int, n_classes: int = 2) -> np.ndarray:
    """uint8 label of case ``index``: a ball (class 1) with an inner ball of class 2 if there are 3+ classes."""
    centre = tuple(s / 2 + (index % 3) - 1 for s in shape)
    label = ball(shape, centre, min(shape) / 4).astype(np.uint8)
    if n_classes > 2:
        label[ball(shape, centre, min(shape) / 8)] = 2
    return label


def case_image(shape: tuple[int, int, int], index: int, modality: str) -> np.ndarray:
    """Raw image of one channel: int16 HU in [-1000, 1000) for CT, else float32 MRI-like values on a zero
    background (a box of non-zero 'body' covering about half the volume)."""
    rng = np.random.default_rng(1000 + index * 7 + len(modality))
    if modality.lower() == "ct":
        return rng.integers(-1000, 1000, size=shape).astype(np.int16)
    image = np.zeros(shape, dtype=np.float32)
    body = tuple(slice(2, s - 2) for s in shape)
    image[body] = rng.gamma(2.0, 100.0, size=image[body].shape).astype(np.float32)
    return image


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), path)


def write_msd(
    root: Path,
    layout: str = "3d",
    n_cases: int = 3,
    shape: tuple[int, int, int] = TINY_SHAPE,
    modality: tuple[str, ...] = ("CT",),
    label_names: tuple[str, ...] = ("background", "organ"),
    affine: np.ndarray = MSD_AFFINE,
) -> Path:
    """An MSD (``layout="3d"`` one file per case, ``"4d"`` channels in one 4D file) or nnU-Net v2
    (``"v2"``, ``<id>_XXXX.nii.gz`` per channel) data set with cases ``case_000`` ..."""
    if layout not in ("3d", "4d", "v2"):
        raise ValueError(f"layout must be '3d', '4d' or 'v2', got {layout!r}")
    for i in range(n_cases):
        case_id = f"case_{i:03d}"
        channels = [case_image(shape, i, m) for m in modality]
        if layout == "v2":
            for c, channel in enumerate(channels):
                _save(channel, affine, root / "imagesTr" / f"{case_id}_{c:04d}.nii.gz")
        else:
            data = channels[0] if layout == "3d" else np.stack(channels, axis=-1)  # (X, Y, Z, C)
            _save(data, affine, root / "imagesTr" / f"{case_id}.nii.gz")
        _save(case_label(shape, i, len(label_names)), affine, root / "labelsTr" / f"{case_id}.nii.gz")
    if layout == "v2":
        description = {
            "name": "tiny-v2",
            "channel_names": {str(c): m for c, m in enumerate(modality)},
            "labels": {name: v for v, name in enumerate(label_names)},
            "numTraining": n_cases,
            "file_ending": ".nii.gz",
        }
    else:
        description = {
            "name": f"tiny-{layout}",
            "modality": {str(c): m for c, m in enumerate(modality)},
            "labels": {str(v): name for v, name in enumerate(label_names)},
            "numTraining": n_cases,
            "training": [
                {"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"}
                for i in range(n_cases)
            ],
        }
    (root / "dataset.json").write_text(json.dumps(description, indent=2))
    return root


def brats_label(shape: tuple[int, int, int], index: int) -> np.ndarray:
    """Nested BraTS label: oedema (2) around a core (1) around an enhancing centre (4)."""
    centre = tuple(s / 2 + index for s in shape)
    label = np.zeros(shape, dtype=np.uint8)
    label[ball(shape, centre, 5)] = 2
    label[ball(shape, centre, 3)] = 1
    label[ball(shape, centre, 1.5)] = 4
    return label


def write_brats(root: Path, n_cases: int = 2, shape: tuple[int, int, int] = TINY_SHAPE) -> Path:
    """A BraTS 2021 folder: ``BraTS2021_0000i/BraTS2021_0000i_{flair,t1,t1ce,t2,seg}.nii.gz``."""
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    for i in range(n_cases):
        case_id = f"BraTS2021_{i:05d}"
        for c, name in enumerate(("flair", "t1", "t1ce", "t2")):
            _save(case_image(shape, 10 * i + c, "MRI"), affine, root / case_id / f"{case_id}_{name}.nii.gz")
        _save(brats_label(shape, i), affine, root / case_id / f"{case_id}_seg.nii.gz")
    return root


def la_image(shape: tuple[int, int, int], index: int) -> np.ndarray:
    """z-scored float32 intensities (no zero background), as in the LA h5 files."""
    return np.random.default_rng(2000 + index).normal(0.0, 1.0, size=shape).astype(np.float32)


def write_la(root: Path, n_cases: int = 3, shape: tuple[int, int, int] = TINY_SHAPE) -> Path:
    """An LA h5 folder: ``LA_CASE_i/mri_norm2.h5`` (gzip image/label) and ``train.list``."""
    ids = [f"LA_CASE_{i}" for i in range(n_cases)]
    for i, case_id in enumerate(ids):
        (root / case_id).mkdir(parents=True)
        with h5py.File(root / case_id / "mri_norm2.h5", "w") as f:
            f.create_dataset("image", data=la_image(shape, i), compression="gzip")
            f.create_dataset("label", data=case_label(shape, i), compression="gzip")
    (root / "train.list").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture
def tiny() -> SimpleNamespace:
    """The generators of the fixtures' arrays and geometry, so tests can recompute what was written."""
    return SimpleNamespace(
        shape=TINY_SHAPE,
        msd_affine=MSD_AFFINE.copy(),
        ball=ball,
        case_image=case_image,
        case_label=case_label,
        brats_label=brats_label,
        la_image=la_image,
    )


@pytest.fixture
def make_msd(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_msd(name="msd", **write_msd kwargs)`` -> data set folder in tmp_path."""
    return lambda name="msd", **kw: write_msd(tmp_path / name, **kw)


@pytest.fixture
def make_brats(tmp_path: Path) -> Callable[..., Path]:
    return lambda name="brats", **kw: write_brats(tmp_path / name, **kw)


@pytest.fixture
def make_la(tmp_path: Path) -> Callable[..., Path]:
    return lambda name="la", **kw: write_la(tmp_path / name, **kw)


@pytest.fixture
def msd_dataset(make_msd: Callable[..., Path]) -> Path:
    return make_msd("msd_ct", layout="3d", modality=("CT",))


@pytest.fixture
def msd_4d_dataset(make_msd: Callable[..., Path]) -> Path:
    return make_msd("msd_4d", layout="4d", modality=("T2", "ADC"))


@pytest.fixture
def nnunet_dataset(make_msd: Callable[..., Path]) -> Path:
    return make_msd("nnunet_v2", layout="v2", modality=("T2", "ADC"))


@pytest.fixture
def brats_dataset(make_brats: Callable[..., Path]) -> Path:
    return make_brats("brats")


@pytest.fixture
def la_dataset(make_la: Callable[..., Path]) -> Path:
    return make_la("la")


@pytest.fixture
def phantom_dataset(tmp_path: Path) -> Path:
    return write_phantom_dataset(tmp_path / "phantom", n=3, size=32, seed=0)


@pytest.fixture
def phantom_cases() -> list[Case]:
    return make_phantoms(4, 32, seed=0)


@pytest.fixture
def la2018_root() -> Path:
    if not LA2018.is_dir():
        pytest.skip(f"LA 2018 data not found at {LA2018}")
    return LA2018
