"""experiments/la/rerun_check.py: a rerun's per-case scores against the committed ones."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cli_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "rerun_check.py"


def write(tmp_path: Path, rerun: dict[str, float], committed: dict[str, float]) -> tuple[Path, Path]:
    run = tmp_path / "baseline__sfda-0.5__seed0"
    run.mkdir()
    per_case = {c: {"mean": {"dice": d}, "left atrium": {"dice": d}} for c, d in rerun.items()}
    (run / "metrics.json").write_text(json.dumps({"per_case": per_case}))
    cases = tmp_path / "cases.csv"
    with cases.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["run", "case_id", "class", "dice"])
        writer.writeheader()
        for c, d in committed.items():
            writer.writerow({"run": run.name, "case_id": c, "class": "mean", "dice": d})
            writer.writerow({"run": run.name, "case_id": c, "class": "left atrium", "dice": 0.0})  # not the mean
            writer.writerow({"run": "other__sfda-0.5__seed0", "case_id": c, "class": "mean", "dice": 0.1})
    return run, cases


def test_identical_only_when_every_case_matches(tmp_path: Path) -> None:
    module = load_script(SCRIPT, "la_rerun_check")
    run, cases = write(tmp_path, {"a": 0.8, "b": 0.6}, {"a": 0.8, "b": 0.6})
    assert module.compare_run(run, cases) == {"cases": 2, "max_abs_difference": 0.0, "mean_rerun": pytest.approx(70.0),
                                              "mean_committed": pytest.approx(70.0), "identical": True}  # fmt: skip
    (tmp_path / "x").mkdir()
    run, cases = write(tmp_path / "x", {"a": 0.8, "b": 0.6}, {"a": 0.8, "b": 0.59})
    result = module.compare_run(run, cases)
    assert not result["identical"] and result["max_abs_difference"] == pytest.approx(1.0)
    assert result["mean_committed"] == pytest.approx(69.5)
    committed = module.load_runs(cases)  # read once by main for every folder: the csv is not read again
    cases.unlink()
    assert module.compare_run(run, cases, committed) == result


def test_a_run_scored_on_other_cases_or_missing_is_refused(tmp_path: Path) -> None:
    module = load_script(SCRIPT, "la_rerun_check")
    run, cases = write(tmp_path, {"a": 0.8}, {"a": 0.8, "b": 0.6})
    with pytest.raises(ValueError, match="other cases"):
        module.compare_run(run, cases)
    with pytest.raises(ValueError, match="no rows of run"):
        module.compare_run(run.rename(tmp_path / "renamed__sfda-0.5__seed0"), cases)
