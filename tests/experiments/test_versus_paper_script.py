"""experiments/la/versus_paper.py reads our rows from committed cases.csv files, as paired.py does."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cli_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "versus_paper.py"
FIELDS = ["run", "label", "method", "noise", "ratio", "seed", "case_id", "class", "dice", "iou", "hd95", "asd"]


def _write_cases(path: Path, runs: dict[str, list[tuple[float, float]]]) -> Path:
    """A compare cases.csv: per run, (Dice, HD95) of each case, as a foreground row and a mean row."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        for run, cases in runs.items():
            for i, (dice, hd95) in enumerate(cases):
                for cls in ("left atrium", "mean"):
                    writer.writerow({"run": run, "case_id": f"c{i}", "class": cls, "dice": dice, "hd95": hd95})
    return path


def test_rows_come_from_cases_csv_with_a_seed_filter_and_exact_prefixes(tmp_path: Path) -> None:
    module = load_script(SCRIPT, "la_versus_paper")
    long_table = _write_cases(tmp_path / "long.csv", {
        "adele__mt-0.5__seed0": [(0.80, 10.0), (0.90, 6.0)],
        "adele__mt-0.5__seed7": [(0.50, 30.0)],  # outside --seeds
        "adele-v4-patch-curve__mt-0.5__seed0": [(0.10, 90.0)],  # another row whose name starts with "adele"
    })
    reference = _write_cases(tmp_path / "reference.csv", {
        "adele__mt-0.5__seed0": [(0.80, 10.0), (0.90, 6.0)],  # the same run copied beside: counts once
        "adele__mt-0.5__seed1": [(0.70, 12.0)],
    })
    dice, hd95 = module.our_scores([long_table, reference], "adele", "mt-0.5", seeds=[0, 1, 2, 3, 4])
    assert dice == pytest.approx([85.0, 70.0]) and hd95 == pytest.approx([8.0, 12.0])  # seeds join
    other_machine = _write_cases(tmp_path / "other.csv", {
        "adele__mt-0.5__seed0": [(0.0, 0.0)],  # another run under the same name
        "adele__mt-0.5__seed1": [(0.70, 12.0)],
    })
    dice, _ = module.our_scores([long_table, other_machine], "adele", "mt-0.5", seeds=[0, 1, 2, 3, 4])
    assert dice == pytest.approx([85.0])  # the row whole from the first source, never mixed
    assert module.our_scores([long_table], "adele", "mt-0.5")[0] == pytest.approx([85.0, 50.0])
    assert module.our_scores([long_table], "adele", "sfda-0.5") == ([], [])


def test_the_long_table_sets_every_method_beside_the_paper_under_both_noises() -> None:
    module = load_script(SCRIPT, "la_versus_paper_rows")
    rows = module.TABLES["long"]
    for noise in ("mt-0.5", "sfda-0.5"):
        assert rows[(noise, "jcas", "JCAS")] == module.TABLE1[(noise, "jcas", "JCAS")]
        assert rows[(noise, "baseline-dice-ce", "Baseline (Dice+CE, ours)")] is None
    assert sum(1 for noise, _, _ in rows if noise == "mt-0.5") == 12


def test_a_superseded_row_shows_only_where_it_has_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    module = load_script(SCRIPT, "la_versus_paper_superseded")
    cases = _write_cases(tmp_path / "long.csv", {
        "adele__mt-0.5__seed0": [(0.80, 10.0)],
        "adele-v4-patch-curve__mt-0.5__seed0": [(0.10, 90.0)],
    })
    monkeypatch.setattr("sys.argv", ["versus_paper.py", str(cases), "--table", "long"])
    module.main()
    lines = capsys.readouterr().out.splitlines()
    superseded = [line for line in lines if "superseded" in line]
    assert len(superseded) == 1 and superseded[0].startswith("| MT 50 % |")  # not the unrun SFDA one
    assert any(line.startswith("| SFDA 50 % | ADELE | not run yet") for line in lines)  # a current row stays


def test_a_row_that_trains_as_another_shows_the_others_runs_only_when_its_own_are_identical(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """RSF-assisted ADELE, which trains as ADELE while ADELE makes no correction: with its one run scoring
    as ADELE's of that seed it shows ADELE's five runs, labelled; with one differing run it shows its own."""
    module = load_script(SCRIPT, "la_versus_paper_same_as")
    adele = {f"adele__mt-0.5__seed{s}": [(0.80 + s / 100, 10.0)] for s in range(5)}
    for rsf_score, expected in [(0.82, "= adele's runs"), (0.50, "| 50.00 (±0.00, n=1) |")]:
        rsf = {"rsf-assisted-adele__mt-0.5__seed2": [(rsf_score, 10.0)]}
        cases = _write_cases(tmp_path / "cases.csv", {**adele, **rsf})
        # the same_as mark comes from the experiment file grid.json names: the repository's long Table 1
        (tmp_path / "grid.json").write_text('{"experiment": "experiments/la/table1_long.yaml"}')
        monkeypatch.setattr("sys.argv", ["versus_paper.py", str(cases), "--table", "long"])
        module.main()
        out = capsys.readouterr()
        row = next(line for line in out.out.splitlines() if line.startswith("| MT 50 % | RSF-Assisted (ADELE)"))
        assert expected in row
        if rsf_score == 0.82:
            assert "82.00 (±1.41, n=5)" in row and "own runs identical: seed 2" in row
        else:
            assert "do not all score as adele's" in out.err
    sfda = next(line for line in out.out.splitlines() if line.startswith("| SFDA 50 % | RSF-Assisted (ADELE)"))
    assert "not run yet" in sfda  # no run of its own: nothing checked, nothing borrowed
