"""Fixtures of the reliability tests (issue 13): phantoms, a finished one-epoch run, a copy to damage.

Module-scoped: each test module makes its own phantoms and trains its own run once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from reliability_helpers import TINY

from cli_helpers import invoke


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reliability") / "phantoms"
    invoke("phantom", root, "--n", "5", "--size", "32", "--seed", "3")
    return root


@pytest.fixture(scope="module")
def finished_run(phantoms: Path) -> Path:
    out = phantoms.parent / "runs" / "baseline"
    invoke("train", phantoms, "--method", "baseline", "--out", out, *TINY)
    return out


@pytest.fixture
def data_copy(phantoms: Path, tmp_path: Path) -> Path:
    """A private copy of the phantoms that a test may damage."""
    return Path(shutil.copytree(phantoms, tmp_path / "data"))
