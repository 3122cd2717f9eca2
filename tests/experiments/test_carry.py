"""Runs carried from a results folder when their run folders are gone (experiments/carry.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from svldrl.experiments.carry import carried_names, carried_runs, run_record

FIELDS = ["run", "label", "method", "noise", "ratio", "seed", "case_id", "class", "dice", "iou", "hd95", "asd"]


def write_cases(out: Path, scores: dict[str, dict[str, float]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "cases.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for run, cases in scores.items():
            for case_id, dice in cases.items():
                for cls in ("left atrium", "mean"):
                    writer.writerow({"run": run, "label": "B", "method": "baseline", "noise": "mt", "ratio": 0.5,
                                     "seed": 0, "case_id": case_id, "class": cls, "dice": dice, "iou": dice / 2,
                                     "hd95": 10 * dice, "asd": dice})


def test_carried_record_recomputes_the_summary_from_the_case_rows(tmp_path: Path) -> None:
    write_cases(tmp_path, {"a__mt-0.5__seed0": {"c2": 0.8, "c1": 0.6}, "b__mt-0.5__seed0": {"c1": 0.5}})
    carried = carried_runs(tmp_path, ["a__mt-0.5__seed0", "not-there"])
    assert list(carried) == ["a__mt-0.5__seed0"]  # only asked-for runs that cases.csv holds
    record = carried["a__mt-0.5__seed0"]
    assert record["carried"] and list(record["per_case"]) == ["c1", "c2"]
    assert record["summary"]["mean"]["mean"]["dice"] == pytest.approx(0.7)
    assert record["summary"]["std"]["mean"]["hd95"] == pytest.approx(1.0)
    assert "seconds_per_epoch" not in record and "environment" not in record  # no runs.csv: a legacy run
    assert carried_names(tmp_path) == {"a__mt-0.5__seed0", "b__mt-0.5__seed0"}


def test_runs_csv_restores_cost_size_and_environment(tmp_path: Path) -> None:
    write_cases(tmp_path, {"a__mt-0.5__seed0": {"c1": 0.6}})
    env = {"machine": "x86_64", "git_commit": "abc"}
    row = run_record("a__mt-0.5__seed0", {"seed": 0}, {"seconds_per_epoch": 4.5, "parameters": {"inference": 12}}, env)
    with (tmp_path / "runs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    record = carried_runs(tmp_path, ["a__mt-0.5__seed0"])["a__mt-0.5__seed0"]
    assert record["seconds_per_epoch"] == 4.5 and record["parameters"] == {"inference": 12}
    assert record["environment"] == env and json.loads(row["environment"]) == env


def test_nothing_to_carry_without_cases_csv(tmp_path: Path) -> None:
    assert carried_runs(tmp_path, ["a"]) == {} and carried_names(tmp_path) == set()


def test_a_carried_teacher_is_trained_again_when_a_run_still_to_train_reads_it(tmp_path: Path) -> None:
    """A run reading another's folder (teacher_run) would wait for ever on a carried teacher that has none."""
    from types import SimpleNamespace

    from svldrl.experiments.carry import carried_not_needed

    runs_root = tmp_path / "runs"
    write_cases(tmp_path / "results", {"teacher__mt-0.5__seed0": {"c1": 0.8}, "other__mt-0.5__seed0": {"c1": 0.7}})

    def run(name: str, teacher: str | None = None) -> SimpleNamespace:
        options = {"teacher_run": str(runs_root / "d" / teacher)} if teacher else {}
        cfg, variant = SimpleNamespace(method_options=options), SimpleNamespace(superseded="", same_as="")
        return SimpleNamespace(run_dir=lambda exp, ds: runs_root / ds / name, cfg=cfg, variant=variant)

    exp = SimpleNamespace(out=tmp_path / "results", carry_from=())
    teacher, other = run("teacher__mt-0.5__seed0"), run("other__mt-0.5__seed0")
    runs = [teacher, other, run("student__mt-0.5__seed0", "teacher__mt-0.5__seed0")]
    assert carried_not_needed(exp, runs, "d") == {"other__mt-0.5__seed0"}
    write_cases(tmp_path / "results", {"teacher__mt-0.5__seed0": {"c1": 0.8}, "student__mt-0.5__seed0": {"c1": 0.9}})
    assert carried_not_needed(exp, runs, "d") == {"teacher__mt-0.5__seed0", "student__mt-0.5__seed0"}


def test_superseded_runs_are_left_alone_unless_a_run_to_train_reads_one_as_its_teacher(tmp_path: Path) -> None:
    """A superseded teacher of a current student is trained (else the student waits for ever), and so is
    that teacher's own carried teacher; a superseded student needs no teacher, so a carried one stays carried."""
    from types import SimpleNamespace

    from svldrl.experiments.carry import carried_not_needed, left_alone

    runs_root = tmp_path / "runs"

    def run(name: str, teacher: str | None = None, superseded: str = "") -> SimpleNamespace:
        options = {"teacher_run": str(runs_root / "d" / teacher)} if teacher else {}
        cfg, variant = SimpleNamespace(method_options=options), SimpleNamespace(superseded=superseded, same_as="")
        return SimpleNamespace(run_dir=lambda exp, ds: runs_root / ds / name, cfg=cfg, variant=variant)

    exp = SimpleNamespace(out=tmp_path / "results", carry_from=())
    write_cases(exp.out, {"root__s0": {"c1": 0.5}, "t2__s0": {"c1": 0.6}})  # two carried runs, folders gone
    old_teacher = run("old-teacher__s0", teacher="root__s0", superseded="v1")  # reads the carried root
    old_student = run("old-student__s0", teacher="t2__s0", superseded="v1")
    lone_old = run("lone-old__s0", superseded="v1")
    student = run("student__s0", teacher="old-teacher__s0")
    runs = [run("root__s0"), run("t2__s0"), old_teacher, old_student, lone_old, student]
    assert left_alone(exp, runs, "d") == {"t2__s0", "old-student__s0", "lone-old__s0"}
    assert carried_not_needed(exp, runs, "d") == {"t2__s0"}
    assert left_alone(exp, runs[:-1], "d") == {"root__s0", "t2__s0", "old-teacher__s0", "old-student__s0",
                                               "lone-old__s0"}  # no current student: all left alone


def _experiment_file(folder: Path, name: str, methods: str, extra: str = "", runs_root: str = "runs") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\ndata: data\nmethods: {methods}\nseeds: [0]\nruns_root: {runs_root}\n"
                    f"out: results-{name}\n{extra}")  # fmt: skip
    return path


def _shared(path: Path) -> tuple[dict[str, Path], dict[str, dict]]:
    from svldrl.experiments.carry import carried_records, shared_carry
    from svldrl.experiments.grid import grid, load_experiment

    exp = load_experiment(path)
    runs = grid(exp)
    names = [run.run_dir(exp, "d").name for run in runs]
    return shared_carry(exp, runs, "d"), carried_records(exp, runs, "d", names)


def test_a_shared_run_comes_from_the_grid_that_trained_it_and_never_overrides_this_grids_rows(tmp_path: Path) -> None:
    longer = "{method: baseline, label: Longer, set: [optim.epochs=%d]}"
    _experiment_file(tmp_path, "reference", f"[baseline, {longer % 9}]")
    table = _experiment_file(tmp_path, "table", f"[baseline, {longer % 8}]", "carry_from: [reference.yaml]\n")
    scores = {"baseline__mt-0.5__seed0": {"c1": 0.8}, "longer__mt-0.5__seed0": {"c1": 0.7}}
    write_cases(tmp_path / "results-reference", scores)
    shared, records = _shared(table)
    assert shared == {"baseline__mt-0.5__seed0": tmp_path / "results-reference"}  # "Longer": same name, other settings
    assert records["baseline__mt-0.5__seed0"]["carried_from"] == "../results-reference"
    assert records["baseline__mt-0.5__seed0"]["summary"]["mean"]["mean"]["dice"] == pytest.approx(0.8)
    write_cases(tmp_path / "results-table", {"baseline__mt-0.5__seed0": {"c1": 0.5}})  # this grid's own row wins
    shared, records = _shared(table)
    assert shared == {} and "carried_from" not in records["baseline__mt-0.5__seed0"]
    assert records["baseline__mt-0.5__seed0"]["summary"]["mean"]["mean"]["dice"] == pytest.approx(0.5)


def test_rows_a_grid_carries_itself_from_a_third_are_not_passed_on(tmp_path: Path) -> None:
    _experiment_file(tmp_path, "reference", "[baseline]")
    table = _experiment_file(tmp_path, "table", "[baseline]", "carry_from: [reference.yaml]\n")
    write_cases(tmp_path / "results-reference", {"baseline__mt-0.5__seed0": {"c1": 0.8}})
    assert _shared(table)[0]  # made by the reference grid: shared
    row = run_record("baseline__mt-0.5__seed0", {"seed": 0}, {"carried_from": "../results-third"}, None)
    with (tmp_path / "results-reference" / "runs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    assert _shared(table)[0] == {}  # the reference carries it from a third grid: ask that one


def test_carry_from_a_grid_under_another_runs_root_is_refused(tmp_path: Path) -> None:
    """Under two runs folders the same name is two trainings (perhaps two machines): never one row."""
    _experiment_file(tmp_path, "reference", "[baseline]", runs_root="runs-long")
    table = _experiment_file(tmp_path, "table", "[baseline]", "carry_from: [reference.yaml]\n")
    write_cases(tmp_path / "results-reference", {"baseline__mt-0.5__seed0": {"c1": 0.8}})
    with pytest.raises(ValueError, match="another runs_root"):
        _shared(table)
    bad = _experiment_file(tmp_path, "bad", "[baseline]", "carry_from: {reference.yaml: 1}\n")
    from svldrl.experiments.grid import load_experiment

    with pytest.raises(ValueError, match="carry_from must be a list"):
        load_experiment(bad)


def test_a_shared_teacher_is_trained_again_when_a_run_still_to_train_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from svldrl.experiments import carry

    runs_root = tmp_path / "runs"
    monkeypatch.setattr(carry, "shared_carry", lambda exp, runs, ds: {"teacher__mt-0.5__seed0": tmp_path / "other"})

    def run(name: str, teacher: str | None = None) -> SimpleNamespace:
        options = {"teacher_run": str(runs_root / "d" / teacher)} if teacher else {}
        cfg, variant = SimpleNamespace(method_options=options), SimpleNamespace(superseded="", same_as="")
        return SimpleNamespace(run_dir=lambda exp, ds: runs_root / ds / name, cfg=cfg, variant=variant)

    exp = SimpleNamespace(out=tmp_path / "results", carry_from=(tmp_path / "other.yaml",))
    teacher, student = run("teacher__mt-0.5__seed0"), run("student__mt-0.5__seed0", "teacher__mt-0.5__seed0")
    assert carry.carried_not_needed(exp, [teacher], "d") == {"teacher__mt-0.5__seed0"}
    assert carry.carried_not_needed(exp, [teacher, student], "d") == set()  # the student reads its folder


def test_the_cost_table_points_a_shared_run_without_a_cost_record_to_its_grid(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from svldrl.experiments.carry import unrecorded_here
    from svldrl.experiments.grid_outputs import write_cost_table

    shared = {"before_runs_csv": True, "carried_from": "../la-reference"}
    assert not unrecorded_here(shared) and unrecorded_here({"before_runs_csv": True})
    run = SimpleNamespace(variant=SimpleNamespace(label="B", superseded=""))
    text = write_cost_table([(run, shared), (run, dict(shared))], tmp_path / "cost.md").read_text()
    assert "2 runs here are carried from the results in ../la-reference" in text
    assert "../la-reference/cost.md" in text and "before each run's cost was kept" not in text
