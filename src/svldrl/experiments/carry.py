"""Finished grid runs whose folders are gone, carried forward from the results they were written into.

Why: a run folder holds checkpoints and lives outside git (a scratch disk that is purged, a
machine that is replaced), while a grid's results folder (``cases.csv``, ``runs.csv``, the tables)
is committed. Without a carry, rewriting the tables after more runs finish elsewhere would have to
either refuse (fewer finished runs than the tables were made from) or drop the rows of the runs
whose folders are gone. With it, a grid can grow over several machines: each run's per-case
scores come back from ``cases.csv`` and its cost and environment from ``runs.csv``.

A carried run counts as finished: ``compare`` does not train it again, ``--list`` shows it as
``carried``, and ``--index`` trains it again only when asked to (its new folder then replaces the
carried rows). The settings of a carried run cannot be checked against the experiment file (its
``config.json`` went with the folder), so an experiment file whose rows are committed is changed
only by appending (the rule the experiment files already follow).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from svldrl.experiments.runs import METRICS_FILE
from svldrl.metrics import METRICS
from svldrl.metrics.evaluate import summarise

CASES_FILE = "cases.csv"
RUNS_FILE = "runs.csv"
#: per-run fields of ``runs.csv`` besides the run's name and grid coordinates
RUN_FIELDS = ("seconds_per_epoch", "parameters_inference", "git_commit", "environment", "before_runs_csv")
#: the cost table as it was when ``runs.csv`` was introduced: runs tabulated before then have no
#: per-run cost record, so their aggregate is kept verbatim rather than recomputed or dropped
FROZEN_COST_FILE = "cost_before_runs_csv.md"


def carried_runs(out: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """A ``metrics.json``-like record for each run in ``names`` that ``out/cases.csv`` holds rows for.

    The record has the run's ``per_case`` scores and their ``summary`` (recomputed with the same
    ``summarise`` a run uses, so the tables come out as before), ``carried: True``, and where
    ``out/runs.csv`` has the run: ``seconds_per_epoch``, ``parameters`` and ``environment``.
    """
    wanted = set(names)
    per_case: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for row in _read_csv(out / CASES_FILE):
        if row["run"] in wanted:
            scores = {m: float(row[m]) for m in METRICS}
            per_case.setdefault(row["run"], {}).setdefault(row["case_id"], {})[row["class"]] = scores
    records = {r["run"]: r for r in _read_csv(out / RUNS_FILE)}
    carried = {}
    for name, cases in per_case.items():
        summary = summarise([cases[c] for c in sorted(cases)]).to_dict()
        for key in ("empty_pred", "n_empty_pred"):  # cases.csv does not keep them: claim nothing
            summary.pop(key, None)
        record: dict[str, Any] = {"summary": summary, "per_case": {c: cases[c] for c in sorted(cases)}, "carried": True}
        if name in records:
            record.update(_run_record_fields(records[name]))
        else:  # tabulated before runs.csv existed: cost and environment only in the frozen aggregates
            record["before_runs_csv"] = True
        carried[name] = record
    return carried


def carried_names(out: Path) -> set[str]:
    """The runs ``out/cases.csv`` holds scores of (cheap: for ``--list`` and the training loop)."""
    return {row["run"] for row in _read_csv(out / CASES_FILE)}


def run_record(name: str, coordinates: dict[str, Any], metrics: dict[str, Any], environment: dict | None) -> dict:
    """One ``runs.csv`` row: what a table needs of a run besides its scores, kept beyond its folder."""
    seconds = metrics.get("seconds_per_epoch")
    params = (metrics.get("parameters") or {}).get("inference")
    env = environment if environment is not None else metrics.get("environment")
    return {
        "run": name,
        **coordinates,
        "seconds_per_epoch": "" if seconds is None else seconds,
        "parameters_inference": "" if params is None else int(params),
        "git_commit": (env or {}).get("git_commit", ""),
        "environment": "" if env is None else json.dumps(env, sort_keys=True),
        # a run first tabulated before runs.csv existed stays one: its row here has no cost or environment
        "before_runs_csv": "yes" if metrics.get("before_runs_csv") else "",
    }


def _run_record_fields(row: dict[str, str]) -> dict[str, Any]:
    """The metrics-record fields a ``runs.csv`` row restores (none for a run tabulated before it existed)."""
    fields: dict[str, Any] = {}
    if row.get("before_runs_csv"):
        fields["before_runs_csv"] = True
    if row.get("seconds_per_epoch"):
        seconds = float(row["seconds_per_epoch"])
        if math.isfinite(seconds):
            fields["seconds_per_epoch"] = seconds
    if row.get("parameters_inference"):
        fields["parameters"] = {"inference": int(row["parameters_inference"])}
    if row.get("environment"):
        fields["environment"] = json.loads(row["environment"])
    return fields


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def carried_not_needed(exp: Any, runs: list[Any], dataset_name: str) -> set[str]:
    """Carried runs (carry.py) that training may skip: all but the teacher runs of runs still to train."""
    return left_alone(exp, runs, dataset_name) & carried_names(exp.out)


def left_alone(exp: Any, runs: list[Any], dataset_name: str) -> set[str]:
    """Folder names of the unfinished runs training leaves alone: carried runs (finished, folder gone)
    and runs of superseded rows (``Variant.superseded``), except the teacher runs of runs still to train.

    Why: a run that reads another run's folder (``method_options.teacher_run``) waits until that
    folder holds a finished run; a carried teacher has no folder and a superseded one would never be
    trained, so either is trained first when a current run needs it (and so is its own teacher).
    A superseded run needs no teacher, since it is not trained.
    """
    carried = carried_names(exp.out)
    folders = {id(run): run.run_dir(exp, dataset_name) for run in runs}
    unfinished = [run for run in runs if not (folders[id(run)] / METRICS_FILE).exists()]
    left = {
        folders[id(run)].name for run in unfinished
        if (folders[id(run)].name in carried and not folders[id(run)].exists())
        or run.variant.superseded
    }  # fmt: skip
    while True:  # a teacher taken back into training may need its own teacher
        to_train = [run for run in unfinished if folders[id(run)].name not in left]
        teachers = {Path(t).name for run in to_train if (t := run.cfg.method_options.get("teacher_run"))}
        if not left & teachers:
            return left
        left -= teachers


def same_scores(metrics: dict, carried: dict) -> bool:
    """Whether a run folder's per-case scores are the committed ones (to the precision of the CSV)."""
    mine, kept = metrics.get("per_case", {}), carried["per_case"]
    if sorted(mine) != sorted(kept):
        return False
    return all(
        math.isclose(float(mine[c][cls][m]), kept[c][cls][m], rel_tol=1e-9, abs_tol=1e-12)
        for c in kept for cls in kept[c] for m in kept[c][cls]
    )  # fmt: skip
