"""Helpers of the reliability tests (issue 13), imported by bare name: pytest puts this folder on sys.path."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from svldrl import cli

TINY = ["--set", "optim.epochs=1", "--set", "optim.iters_per_epoch=1", "--set", "data.patch_size=32",
        "--set", "data.test_fraction=0.2", "-q"]  # fmt: skip


def run_main(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    """``svldrl ARGS`` through the console entry point (one-line errors): exit code and stderr."""
    argv = sys.argv
    sys.argv = ["svldrl", *(str(a) for a in args)]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = argv
    return code, capsys.readouterr().err


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def reference_preds(data: Path, out: Path) -> Path:
    """Perfect predictions: the reference labels themselves, as a prediction folder."""
    out.mkdir(parents=True)
    for label in sorted((data / "labelsTr").glob("*.nii.gz")):
        shutil.copy(label, out / label.name)
    return out


def rewrite(path: Path, change) -> None:
    img = nib.load(path)
    data, affine = change(np.asarray(img.dataobj).copy(), img.affine.copy())
    nib.save(nib.Nifti1Image(data, affine), path)
