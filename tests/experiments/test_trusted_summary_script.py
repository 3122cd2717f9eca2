"""experiments/la/trusted_summary.py: issue 15's rows against shared reference rows, paired by seed and label set."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cli_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "trusted_summary.py"


@pytest.fixture(scope="module")
def summary():
    return load_script(SCRIPT, "la_trusted_summary")


def write_cases(results: Path, source: str, runs: dict[str, float]) -> None:
    """``results/source/cases.csv``: two cases per run, at the run's Dice plus and minus a wobble that pairs cancel."""
    (results / source).mkdir(parents=True, exist_ok=True)
    with (results / source / "cases.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["run", "case_id", "class", "dice"])
        writer.writeheader()
        for run, dice in runs.items():
            for case, wobble in (("c0", 0.01), ("c1", -0.01)):
                writer.writerow({"run": run, "case_id": case, "class": "mean", "dice": dice + wobble})
                writer.writerow({"run": run, "case_id": case, "class": "atrium", "dice": 0.0})  # not read


def sfda_table() -> dict:
    return {
        "title": "SFDA",
        "focus": "Method",
        "references": {
            "clean": [{"source": "ref", "run": "baseline__clean"}],
            "noisy": [{"source": "ref", "run": "baseline__sfda-0.5", "labels": "A"},
                      {"source": "other", "run": "baseline__sfda-0.5", "labels": "B"}],
            "trusted": [{"source": "ref", "run": "trusted-only-6__mt-0.5"}],
        },
        "rows": [
            {"label": "Method", "parts": [
                {"source": "ref", "run": "method__sfda-0.5", "seeds": [0, 1, 2], "labels": "A"},
                {"source": "other", "run": "method__sfda-0.5", "labels": "B"}]},
            {"label": "Rival", "parts": [{"source": "other", "run": "rival__sfda-0.5", "labels": "B"}]},
        ],
    }  # fmt: skip


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    seeds = range(5)
    write_cases(tmp_path, "ref", {
        **{f"baseline__clean__seed{s}": 0.90 for s in seeds},
        **{f"baseline__sfda-0.5__seed{s}": 0.60 for s in seeds},  # labels A
        **{f"trusted-only-6__mt-0.5__seed{s}": 0.80 for s in seeds},
        **{f"method__sfda-0.5__seed{s}": 0.75 for s in range(3)},  # +15 over A's baseline
    })  # fmt: skip
    write_cases(tmp_path, "other", {
        **{f"baseline__sfda-0.5__seed{s}": 0.70 for s in seeds},  # labels B: another baseline
        **{f"method__sfda-0.5__seed{s}": 0.74 for s in (3, 4)},  # +4 over B's baseline
        **{f"rival__sfda-0.5__seed{s}": 0.72 for s in (3, 4)},
    })  # fmt: skip
    return tmp_path


def row_cells(markdown: str, label: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_each_seed_pairs_with_the_noisy_baseline_trained_on_its_own_labels(summary, results) -> None:
    markdown = summary.table_markdown(sfda_table(), results, {})
    cells = row_cells(markdown, "Method")
    assert cells[1] == "5 (0-2 A; 3-4 B)"
    # seeds 0-2: 75 - 60 = +15 against labels A; seeds 3-4: 74 - 70 = +4 against labels B (not 74 - 60)
    assert cells[3].startswith("+10.60 (") and cells[3].endswith("5/5 higher")
    assert cells[4].startswith("-5.40 (")  # trusted-only does not depend on the labels: every seed pairs
    # gap share: mean(method - noisy) / mean(clean - noisy) = 10.6 / mean(30, 30, 30, 20, 20)
    assert cells[5].startswith(f"{10.6 / 26:+.2f} (")
    # the rival has seeds 3-4 only: the focus column pairs over those, and says so
    assert row_cells(markdown, "Rival")[6].startswith("+2.00, 2 seeds, 2/2 higher")


def test_a_row_independent_of_the_labels_is_shown_against_each_label_set(summary, results) -> None:
    markdown = summary.table_markdown(sfda_table(), results, {})
    clean = row_cells(markdown, "Baseline, clean labels")
    assert clean[3].startswith("labels A: +30.00 (") and "; labels B: +20.00 (" in clean[3]
    assert clean[5] == "1"
    assert row_cells(markdown, "Baseline, noisy labels (labels A)")[1] == "5 (0-4 A)"
    assert row_cells(markdown, "Baseline, noisy labels (labels B)")[5] == "0"


def test_a_seed_given_twice_or_a_missing_run_is_refused_with_its_file(summary, results) -> None:
    table = sfda_table()
    table["rows"][0]["parts"][1] = {"source": "ref", "run": "method__sfda-0.5", "labels": "A"}  # seeds 0-2 again
    with pytest.raises(SystemExit, match="seed 0 given twice"):
        summary.table_markdown(table, results, {})
    table = sfda_table()
    table["rows"][0]["parts"][0]["seeds"] = [0, 1, 7]
    with pytest.raises(SystemExit, match=r"ref/cases.csv has no run method__sfda-0.5__seed7"):
        summary.table_markdown(table, results, {})


def test_a_run_that_could_pair_with_two_reference_runs_is_refused(summary, results) -> None:
    table = sfda_table()
    table["rows"][1]["parts"][0].pop("labels")  # a row of SFDA runs that does not say which labels it saw
    with pytest.raises(SystemExit, match="several reference runs could pair"):
        summary.table_markdown(table, results, {})


def test_the_committed_spec_reads_every_source_it_names(summary) -> None:
    """The spec and the committed cases.csv agree: a row renamed or a file moved fails here, not for a reader."""
    import yaml

    spec = yaml.safe_load((SCRIPT.parent / "trusted_summary.yaml").read_text())
    results = SCRIPT.parents[2] / "docs" / "results"
    for table in spec["tables"]:
        markdown = summary.table_markdown(table, results, {})
        assert int(row_cells(markdown, table["focus"])[1].split()[0]) >= 5  # the method has its seeds
