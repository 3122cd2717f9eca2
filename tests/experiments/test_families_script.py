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


def test_rows_that_read_the_noise_manifest_are_marked_oracle_from_their_experiment_file(families, tmp_path) -> None:
    """The mark comes from the experiment file that grid.json names, whatever label the file gave the row."""
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: t\ndata: {tmp_path / 'no-data'}\nruns_root: runs\n"
        "methods: [{method: co-teaching, label: 'Co-Teaching (rates given)',\n"
        "           set: [method_options.forget_rate=given, 'method_options.given_rates=[0.01, 0.3]']},\n"
        "          {method: co-teaching, label: 'Co-Teaching (teacher rates)',\n"
        "           set: [data.trusted_count=2, method_options.forget_rate=teacher, method_options.teacher_run=t]}]\n"
        "noise: [sfda]\nratios: [0.5]\nseeds: [0]\n"
    )
    (tmp_path / "out").mkdir()
    cases = write_cases(tmp_path / "out" / "cases.csv", {"co-teaching-rates-given__sfda-0.5__seed0": 0.7})
    assert families.oracle_methods([cases]) == set()  # no grid.json: nothing is known, nothing marked
    (tmp_path / "out" / "grid.json").write_text(f'{{"experiment": "{exp}"}}')
    assert families.oracle_methods([cases]) == {"co-teaching-rates-given"}
    row = {"noise": "sfda-0.5", "method": "co-teaching-given", "seeds": 3, "dice": 70.0, "baseline": "b",
           "level": None, "diff": -3.0, "per_seed": [-3.0], "level_hd95": None, "hd95_diff": 0.0, "spread": 1.0,
           "below_spread": True, "oracle": True}  # fmt: skip
    assert "**yes** (1.00) (oracle)" in families.to_markdown([row])


def test_a_row_that_trains_as_another_shows_its_twins_runs_only_when_its_own_are_identical(
    families, tmp_path, capsys
) -> None:
    """RSF-assisted ADELE, marked same_as ADELE in its experiment file: with its one run scoring as ADELE's
    it shows ADELE's three seeds, named so; with a run that differs, its own (and stderr says why)."""
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: t\ndata: {tmp_path / 'no-data'}\nruns_root: runs\n"
        "methods: [baseline, adele, {method: rsf-assisted, same_as: {row: ADELE, why: no correction}}]\n"
        "noise: [mt]\nratios: [0.5]\nseeds: [0, 1, 2]\n"
    )
    (tmp_path / "out").mkdir()
    runs = {f"baseline-dice-ce__mt-0.5__seed{s}": 0.80 + s / 100 for s in range(3)}
    runs.update({f"adele__mt-0.5__seed{s}": 0.78 + s / 100 for s in range(3)})
    for rsf, identical in [(0.79, True), (0.50, False)]:
        cases = write_cases(tmp_path / "out" / "cases.csv", {**runs, "rsf-assisted-adele__mt-0.5__seed1": rsf})
        (tmp_path / "out" / "grid.json").write_text(f'{{"experiment": "{exp}"}}')
        same_as = families.same_as_rows([cases])
        assert same_as == {"rsf-assisted-adele": ("adele", "no correction")}
        dice, hd95 = families.read_sources([cases], "dice", None), families.read_sources([cases], "hd95", None)
        rows = {r["method"]: r for r in families.family_rows(dice, hd95, same_as=same_as)}
        if identical:
            row = rows["rsf-assisted-adele = adele's runs (own runs identical: seed 1)"]
            assert row["seeds"] == 3 and row["diff"] == pytest.approx(-2.0)
        else:
            own = rows["rsf-assisted-adele"]
            assert own["seeds"] == 1 and own["diff"] == pytest.approx(-31.0)
            assert "do not all score as adele's" in capsys.readouterr().err
