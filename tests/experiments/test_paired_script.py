"""The run-level statistics of experiments/la/paired.py: the test whose unit is the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "paired.py"


@pytest.fixture(scope="module")
def paired_module():
    return load_script(SCRIPT, "la_paired")


def _runs(per_seed_shift: list[float]) -> dict[str, dict[str, float]]:
    """baseline and method runs over len(shift) seeds; the method is shifted by that many Dice points."""
    rng = np.random.default_rng(0)
    runs = {}
    for seed, shift in enumerate(per_seed_shift):
        base = {f"case{i}": float(v) for i, v in enumerate(rng.uniform(0.5, 0.9, size=5))}
        runs[f"baseline__mt-0.5__seed{seed}"] = base
        runs[f"method__mt-0.5__seed{seed}"] = {c: v + shift / 100 for c, v in base.items()}
    return runs


def test_run_level_uses_one_number_per_seed(paired_module):
    shifts = [1.0, 2.0, 3.0, -0.5, 1.5]
    r = paired_module.paired(_runs(shifts), "baseline", "method", "mt-0.5")
    assert r["per_seed"] == pytest.approx(shifts)
    level = paired_module.run_level(r["per_seed"])
    assert level["n"] == 5
    assert level["mean"] == pytest.approx(np.mean(shifts))
    assert level["ci_low"] < level["mean"] < level["ci_high"]
    assert level["b_better"] == 4
    # exact two-sided Wilcoxon on 5 values with one negative of rank 1: p = 2 * 2 / 32
    assert level["p_wilcoxon"] == pytest.approx(4 / 32)


def test_run_level_needs_three_seeds(paired_module):
    assert paired_module.run_level([1.0, 2.0]) is None


def test_paired_across_noise_parts(paired_module):
    """--noise-b: the clean baseline against a method trained under noise, paired by seed."""
    runs = _runs([1.0, 2.0, 3.0])
    renamed = {k.replace("method__mt-0.5", "trusted__mt-0.5").replace("baseline__mt-0.5", "baseline__clean"): v
               for k, v in runs.items()}  # fmt: skip
    r = paired_module.paired(renamed, "baseline", "trusted", "clean", "mt-0.5")
    assert r["per_seed"] == pytest.approx([1.0, 2.0, 3.0])


def test_gap_share_of_a_method_halfway_between_the_reference_rows(tmp_path):
    import csv
    import subprocess
    import sys

    rows = []
    for seed in range(4):
        for run, dice in (("baseline__clean", 0.86), ("baseline__mt-0.5", 0.80), ("method__mt-0.5", 0.83)):
            for case in range(3):
                wobble = 0.01 * ((seed + case) % 3 - 1)  # the same for every run of a seed and case: pairs cancel it
                rows.append({"run": f"{run}__seed{seed}", "case_id": f"c{case}", "class": "mean",
                             "dice": dice + wobble})  # fmt: skip
    source = tmp_path / "cases.csv"
    with source.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["run", "case_id", "class", "dice"])
        writer.writeheader()
        writer.writerows(rows)
    out = subprocess.run([sys.executable, str(SCRIPT.with_name("gap.py")), str(source), "--noise", "mt-0.5"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    method = next(line for line in out.splitlines() if line.startswith("| method (mt-0.5)"))
    assert "+3.00 (+3.00 to +3.00)" in method and "-3.00 (-3.00 to -3.00)" in method
    assert "+0.50 (+0.50 to +0.50)" in method
    noisy = next(line for line in out.splitlines() if line.startswith("| baseline (mt-0.5)"))
    assert "+0.00 (+0.00 to +0.00)" in noisy.split("|")[-2]


def _write_cases(path: Path, runs: dict[str, dict[str, float]]) -> Path:
    import csv

    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["run", "case_id", "class", "dice"])
        writer.writeheader()
        for run, cases in runs.items():
            writer.writerows({"run": run, "case_id": c, "class": "mean", "dice": v} for c, v in cases.items())
    return path


def test_sources_join_and_a_run_scored_twice_must_agree(paired_module, tmp_path):
    """--also: a row whose seeds sit in two grids' cases.csv pairs over all of them; a clash refuses."""
    runs = _runs([1.0, 2.0, 3.0, 4.0])
    first = {k: v for k, v in runs.items() if k.startswith("baseline") or k.endswith(("seed0", "seed1"))}
    second = {k: v for k, v in runs.items() if k.endswith(("seed2", "seed3"))}  # shares the baseline of seeds 2-3
    a, b = _write_cases(tmp_path / "a.csv", first), _write_cases(tmp_path / "b.csv", second)
    joined = paired_module.load_sources([a, b])
    assert paired_module.paired(joined, "baseline", "method", "mt-0.5")["per_seed"] == pytest.approx([1, 2, 3, 4])
    assert len(paired_module.paired(paired_module.load_sources([a]), "baseline", "method", "mt-0.5")["per_seed"]) == 2
    clash = dict(second)
    clash["baseline__mt-0.5__seed2"] = {c: v + 0.01 for c, v in clash["baseline__mt-0.5__seed2"].items()}
    with pytest.raises(SystemExit, match="baseline__mt-0.5__seed2: scored differently"):
        paired_module.load_sources([a, _write_cases(tmp_path / "c.csv", clash)])
    only = paired_module.load_sources([a, _write_cases(tmp_path / "c.csv", clash)], prefixes=("method__",))
    assert sorted(only) == [f"method__mt-0.5__seed{s}" for s in range(4)]  # the clash is outside the compared runs
    with pytest.raises(SystemExit, match="no such runs folder"):
        paired_module.load_sources([a, tmp_path / "missing.csv"])


def test_a_clash_under_another_noise_does_not_stop_a_comparison(paired_module, tmp_path):
    """Two grids share their SFDA reference rows' names but scored them on two machines: MT is unaffected."""
    runs = _runs([1.0, 2.0, 3.0])
    sfda = {"baseline__sfda-0.5__seed0": {"case0": 0.6}}
    a = _write_cases(tmp_path / "a.csv", {**runs, **sfda})
    b = _write_cases(tmp_path / "b.csv", {"baseline__sfda-0.5__seed0": {"case0": 0.7}})
    wanted = paired_module.compared_prefixes("baseline", "method", "mt-0.5", None, exact=False)
    joined = paired_module.load_sources([a, b], prefixes=wanted)
    assert paired_module.paired(joined, "baseline", "method", "mt-0.5")["per_seed"] == pytest.approx([1, 2, 3])
    sfda_wanted = paired_module.compared_prefixes("baseline", "method", "sfda-0.5", None, exact=False)
    with pytest.raises(SystemExit, match="baseline__sfda-0.5__seed0: scored differently"):
        paired_module.load_sources([a, b], prefixes=sfda_wanted)
    assert paired_module.compared_prefixes("baseline", "method", "mt-0.5", "clean", exact=False) == (
        "baseline__mt-0.5__", "method__clean__")  # fmt: skip
