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

Grids also share runs: Table 1's clean, noisy and trusted-only rows are reference.yaml's runs (same
settings, same folder names). An experiment file lists such grids under ``carry_from``; a run of
its own that one of them has committed, with the same settings read from both files, is carried
from there (``shared_carry``). Without it, which reference rows a table shows would depend on which
grids last tabulated on the machine that still had the folders.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from svldrl.experiments.runs import METRICS_FILE
from svldrl.metrics import METRICS
from svldrl.metrics.evaluate import summarise

CASES_FILE = "cases.csv"
RUNS_FILE = "runs.csv"
#: per-run fields of ``runs.csv`` besides the run's name and grid coordinates
RUN_FIELDS = (
    "seconds_per_epoch", "parameters_inference", "git_commit", "environment", "before_runs_csv", "carried_from",
)  # fmt: skip
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
        # the grid whose results a shared run came from (shared_carry); its cost, if unrecorded here, is there
        "carried_from": metrics.get("carried_from", ""),
    }


def unrecorded_here(metrics: dict[str, Any]) -> bool:
    """A run tabulated in this grid before ``runs.csv`` existed, its folder gone: its cost and environment
    are only in this grid's frozen records (not one shared from another grid, whose records are there)."""
    return bool(metrics.get("before_runs_csv")) and not metrics.get("carried_from")


def _run_record_fields(row: dict[str, str]) -> dict[str, Any]:
    """The metrics-record fields a ``runs.csv`` row restores (none for a run tabulated before it existed)."""
    fields: dict[str, Any] = {}
    if row.get("before_runs_csv"):
        fields["before_runs_csv"] = True
    if row.get("carried_from"):  # a column since shared runs: older runs.csv files lack it
        fields["carried_from"] = row["carried_from"]
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


def shared_carry(exp: Any, runs: list[Any], dataset_name: str) -> dict[str, Path]:
    """This grid's runs that a ``carry_from`` grid has committed with the same settings: folder name ->
    that grid's results folder. This grid's own ``cases.csv`` comes first, then the files in the order listed.

    A run is shared only where it is one training: the two files name the same runs folder
    (their own ``runs_root``; under two folders the same name is two trainings, perhaps on two
    machines, and a student of this grid read this grid's teacher, not the other's), and give it
    the same settings (``same_settings``, as the two files resolve them now: a committed row has
    no ``config.json`` left to check), so another label's options or another teacher never pass.
    Only rows the other grid made itself count, not those it carries from a third (``runs.csv``'s
    ``carried_from``): each shared row names the grid that trained it.
    """
    if not exp.carry_from:
        return {}
    from svldrl.experiments.grid import grid, load_experiment
    from svldrl.experiments.runs import same_settings

    mine = {run.run_dir(exp, dataset_name).name: run for run in runs}
    own = carried_names(exp.out)
    shared: dict[str, Path] = {}
    for source in exp.carry_from:
        other = load_experiment(source, exp.runs_root)  # the same runs root as this call: teacher paths compare equal
        if other.file_runs_root != exp.file_runs_root:  # the files' own roots, whatever --runs-root says now
            raise ValueError(
                f"{exp.source}: carry_from: {source} trains under another runs_root ({other.file_runs_root}, not "
                f"{exp.file_runs_root}): runs of the same name there are other trainings"
            )
        if other.data != exp.data:
            raise ValueError(f"{exp.source}: carry_from: {source} reads {other.data}, not {exp.data}")
        held = carried_names(other.out) - carried_elsewhere(other.out)
        for run in grid(other):
            name = run.run_dir(other, dataset_name).name
            if name in held and name in mine and name not in own and name not in shared:
                if same_settings(run.cfg, mine[name].cfg):
                    shared[name] = other.out
    return shared


def carried_elsewhere(out: Path) -> set[str]:
    """The runs ``out/runs.csv`` says came from another grid's results (``carried_from``)."""
    return {row["run"] for row in _read_csv(out / RUNS_FILE) if row.get("carried_from")}


def all_carried_names(exp: Any, runs: list[Any], dataset_name: str) -> set[str]:
    """The runs whose scores are committed: in this grid's ``cases.csv`` or shared (``shared_carry``)."""
    return carried_names(exp.out) | set(shared_carry(exp, runs, dataset_name))


def carried_records(exp: Any, runs: list[Any], dataset_name: str, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``carried_runs`` for the runs in ``names``, from this grid's results folder and then its ``carry_from`` grids';
    a shared run's record names the results folder it came from (``carried_from``, relative to this grid's:
    the same on every machine), which is also where its cost is when that grid has no per-run record of it."""
    wanted = list(names)
    records = carried_runs(exp.out, wanted)
    by_source: dict[Path, list[str]] = {}
    for name, out in shared_carry(exp, runs, dataset_name).items():
        if name in wanted and name not in records:
            by_source.setdefault(out, []).append(name)
    for out, shared in by_source.items():
        for name, record in carried_runs(out, shared).items():
            records[name] = {**record, "carried_from": os.path.relpath(out, exp.out)}
    return records


def carried_not_needed(exp: Any, runs: list[Any], dataset_name: str) -> set[str]:
    """Carried runs (carry.py) that training may skip: all but the teacher runs of runs still to train."""
    carried = all_carried_names(exp, runs, dataset_name)  # once: it reads the carry_from grids' files
    return left_alone(exp, runs, dataset_name, carried) & carried


def left_alone(exp: Any, runs: list[Any], dataset_name: str, carried: set[str] | None = None) -> set[str]:
    """Folder names of the unfinished runs training leaves alone: carried runs (finished, folder gone)
    and runs of superseded rows (``Variant.superseded``) and of rows that train as another
    (``Variant.same_as``), except the teacher runs of runs still to train.

    Why: a run that reads another run's folder (``method_options.teacher_run``) waits until that
    folder holds a finished run; a carried teacher has no folder and a superseded one would never be
    trained, so either is trained first when a current run needs it (and so is its own teacher).
    A superseded run needs no teacher, since it is not trained.
    """
    if carried is None:
        carried = all_carried_names(exp, runs, dataset_name)
    folders = {id(run): run.run_dir(exp, dataset_name) for run in runs}
    unfinished = [run for run in runs if not (folders[id(run)] / METRICS_FILE).exists()]
    left = {
        folders[id(run)].name for run in unfinished
        if (folders[id(run)].name in carried and not folders[id(run)].exists())
        or run.variant.superseded or run.variant.same_as
    }  # fmt: skip
    while True:  # a teacher taken back into training may need its own teacher
        to_train = [run for run in unfinished if folders[id(run)].name not in left]
        teachers = {Path(t).name for run in to_train if (t := run.cfg.method_options.get("teacher_run"))}
        if not left & teachers:
            return left
        left -= teachers


def same_scores(metrics: dict, carried: dict) -> bool:
    """Whether two runs' per-case scores are the same (to the precision of the CSV): a run folder's and
    the committed ones, or two runs of either kind. Only the scores of ``METRICS`` are compared (a
    folder's record also holds e.g. ``empty_pred``, which ``cases.csv`` does not keep)."""
    mine, kept = metrics.get("per_case", {}), carried.get("per_case", {})
    if sorted(mine) != sorted(kept) or any(sorted(mine[c]) != sorted(kept[c]) for c in kept):
        return False

    def same(a: float, b: float) -> bool:  # an undefined score (NaN: HD95 of an empty prediction) matches its like
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)

    return all(
        (m in mine[c][cls]) == (m in kept[c][cls])
        and (m not in kept[c][cls] or same(float(mine[c][cls][m]), float(kept[c][cls][m])))
        for c in kept for cls in kept[c] for m in METRICS
    )  # fmt: skip
