"""experiments/la/families.py: each method against the baseline of its own loss family (issue 16)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cli_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "families.py"


@pytest.fixture(scope="module")
def families():
    return load_script(SCRIPT, "la_families")


def write_cases(path: Path, runs: dict[str, float]) -> Path:
    """Three cases per run, each at the run's Dice plus a wobble shared by every run of a seed (pairs cancel it)."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["run", "case_id", "class", "dice", "hd95"])
        writer.writeheader()
        for run, dice in runs.items():
            seed = int(run.rsplit("seed", 1)[1])
            for case in range(3):
                wobble = 0.01 * ((seed + case) % 3 - 1)
                writer.writerow({"run": run, "case_id": f"c{case}", "class": "mean", "dice": dice + wobble,
                                 "hd95": 10 - 10 * dice})  # fmt: skip
    return path


def test_families(families) -> None:
    for method, baseline in (("svl-drl", "baseline"), ("trusted-only-6", "baseline"), ("clcs", "baseline-dice-ce"),
                             ("jcas", "baseline-dice-ce"), ("loss-correction", "baseline-dice-ce")):
        assert families.family_baseline(method) == baseline


def test_each_method_is_paired_with_its_familys_baseline_and_flagged_beyond_the_spread(families, tmp_path) -> None:
    runs = {}
    for seed, base in enumerate([0.80, 0.82, 0.81, 0.83]):  # Dice baseline sd over seeds: 1.29 points
        runs[f"baseline-dice-ce__mt-0.5__seed{seed}"] = base + 0.02
        runs[f"svl-drl__mt-0.5__seed{seed}"] = base + 0.005  # +0.5 against Dice, -1.5 against Dice + CE
        runs[f"jcas__mt-0.5__seed{seed}"] = base + 0.02 - 0.03  # 3 points under Dice + CE: beyond its spread
    grid = write_cases(tmp_path / "grid.csv", runs)
    reference = write_cases(tmp_path / "reference.csv", {
        **{f"baseline__mt-0.5__seed{s}": b for s, b in enumerate([0.80, 0.82, 0.81, 0.83])},
        "clcs__mt-0.5__seed0": 0.5,  # a reference grid's method row: not read
    })  # fmt: skip
    dice = families.read_sources([grid], "dice", None, [reference])
    hd95 = families.read_sources([grid], "hd95", None, [reference])
    rows = {r["method"]: r for r in families.family_rows(dice, hd95)}
    assert sorted(rows) == ["jcas", "svl-drl"]
    assert rows["svl-drl"]["baseline"] == "baseline" and rows["svl-drl"]["diff"] == pytest.approx(0.5)
    assert not rows["svl-drl"]["below_spread"]
    assert rows["jcas"]["diff"] == pytest.approx(-3.0) and rows["jcas"]["below_spread"]
    assert rows["jcas"]["level"]["ci_high"] < 0 and rows["jcas"]["hd95_diff"] == pytest.approx(0.3)
    assert rows["jcas"]["spread"] == pytest.approx(1.291, abs=1e-3)
    assert "**yes**" in families.to_markdown([rows["jcas"]])
    only_seed0 = families.read_sources([grid], "dice", {0}, [reference])
    assert all(name.endswith("seed0") for name in only_seed0)
