"""Every experiment file the repository ships parses into a grid a method accepts.

Why: the files under experiments/ are how docs/results.md says to repeat each table; a typo in a
method name or a configuration key would otherwise surface only hours into a real grid.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import svldrl.baselines  # noqa: F401  (registers the comparison methods)
from svldrl.experiments.grid import grid, load_experiment
from svldrl.training import METHODS

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
NOT_GRIDS = {"la/trusted_summary.yaml": "the table spec of trusted_summary.py (tested with that script)"}
"""YAML files under experiments/ that are not experiment files, each with what it is."""
FILES = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.relative_to(EXPERIMENTS).as_posix() not in NOT_GRIDS)


def test_every_file_left_out_exists() -> None:
    """A renamed or deleted spec must leave this list too, so that it never hides a grid file."""
    assert all((EXPERIMENTS / name).is_file() for name in NOT_GRIDS)


def test_the_repository_ships_experiment_files() -> None:
    assert len(FILES) >= 5


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_experiment_file_builds_a_valid_grid(path: Path) -> None:
    runs = grid(load_experiment(path))
    assert runs
    for run in runs:
        METHODS.get(run.cfg.method).check_config(run.cfg)
