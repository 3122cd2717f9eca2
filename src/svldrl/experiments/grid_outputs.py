"""What ``svldrl compare`` writes from a grid's finished runs: the tables, ``cases.csv``, ``runs.csv``,
``cost.md``, Fig. 6 and the environment summary of ``grid.json``.

Each writer takes the finished runs as ``(GridRun, metrics record)`` pairs, whether the record was read
from a run folder or carried from the committed ``cases.csv`` (``carry.py``), so the outputs are the
same either way. ``compare.py`` decides which runs are finished and in what order they are written.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, NamedTuple

from svldrl._io import atomic_write, write_text
from svldrl.experiments.carry import FROZEN_COST_FILE, RUN_FIELDS, run_record, same_scores, unrecorded_here
from svldrl.experiments.environment import cpu_kernels
from svldrl.experiments.grid import Experiment, GridRun
from svldrl.experiments.methods import method_info
from svldrl.experiments.tables import Table, TableRow, rows_from_runs
from svldrl.metrics import METRICS

# what of a run's env.json says where it was trained (a table mixing environments should say so)
ENVIRONMENT_KEYS = ("packages", "machine", "torch_cpu_capability", "cpu_kernel_limits", "cpu_count", "device")


def run_environment(run_dir: Path) -> dict[str, Any] | None:
    """What of a run's ``env.json`` says where it was trained: packages, machine, device, commit."""
    path = run_dir / "env.json"
    if not path.exists():
        return None
    env = json.loads(path.read_text())
    # a key env.json leaves out stays out (cpu_kernel_limits: absent unless set), so committed records do not churn
    return {k: env.get(k) for k in (*ENVIRONMENT_KEYS, "git_commit") if k in env or k != "cpu_kernel_limits"}


def shown_label(run: GridRun) -> str:
    """A row's name in the tables: its label, and "(superseded)" after a row kept only for its runs."""
    label = run.variant.label
    if not run.variant.superseded:
        return label
    return f"{label[:-1]}; superseded)" if label.endswith(")") else f"{label} (superseded)"


def results_table(
    entries: list[tuple[GridRun, dict]], caption: str, n_seeds: int, same_as: SameAsChecks | None = None
) -> Table:
    """The rows of ``entries``; with several seeds each row's std is over its seeds and rows with fewer
    finished seeds than the grid say how many. ``same_as``: ``same_as_checks`` of all finished runs,
    made before anything is written, for the footnotes of the same_as rows among ``entries``."""
    metrics = [dict(m, _group=r.group, _label=shown_label(r)) for r, m in entries]
    rows: list[TableRow] = rows_from_runs(metrics, lambda m: m["_group"], lambda m: m["_label"], n_seeds > 1)
    footnotes = sorted({note for r, _ in entries if (note := method_info(r.variant.method)["footnote"])})
    footnotes += sorted({f"{r.variant.label}: superseded ({r.variant.superseded}); kept for the runs it has."
                         for r, _ in entries if r.variant.superseded})
    shown = {r.variant.label for r, _ in entries}
    footnotes += [same_as_footnote(label, check) for label, check in sorted((same_as or {}).items()) if label in shown]
    footnotes += mixed_kernel_footnotes(entries)
    return Table(rows, caption=caption, footnotes=footnotes, seeds=n_seeds if n_seeds > 1 else 0)


class SameAsCheck(NamedTuple):
    """What the finished runs of a same_as row say about its claim (``same_as_checks``)."""

    variant: Any
    checked: list[str]
    """its runs that score case for case as the other row's run of their noise and seed ("noise seed N")"""
    unchecked: list[str]
    """its runs whose counterpart has not finished"""


SameAsChecks = dict[str, SameAsCheck]


def same_as_checks(done: list[tuple[GridRun, dict]]) -> SameAsChecks:
    """For each row that trains as another (``Variant.same_as``, the other row's label), its finished runs,
    checked against the other row's run of the same noise and seed, whether in a run folder or carried.

    Raises ValueError naming the first run that scores differently: the experiment file's claim is
    then false, and no table built on it may be written, so ``write_results`` calls this first.
    """
    runs = {(r.variant.label, r.noise, r.ratio, r.seed): m for r, m in done}
    out: SameAsChecks = {}
    for run, metrics in done:
        variant = run.variant
        if not variant.same_as:
            continue
        check = out.setdefault(variant.label, SameAsCheck(variant, [], []))
        twin = runs.get((variant.same_as, run.noise, run.ratio, run.seed))
        if twin is None:
            check.unchecked.append(f"{run.group} seed {run.seed}")
        elif not same_scores(metrics, twin):
            raise ValueError(f"{variant.label} ({run.group}, seed {run.seed}) scores differently from "
                             f"{variant.same_as} of the same seed, so its same_as claim ({variant.same_as_why}) "
                             "is false: take same_as off the row and train its runs")
        else:
            check.checked.append(f"{run.group} seed {run.seed}")
    return out


def same_as_footnote(label: str, check: SameAsCheck) -> str:
    """The footnote of a same_as row: the claim, and which of its runs bear it out."""
    twin = check.variant.same_as
    note = (f"{label}: trains as {twin} ({check.variant.same_as_why}); its other runs are not trained. "
            f"Runs of its own that score case for case as {twin}'s: {', '.join(check.checked) or 'none yet'}")
    if check.unchecked:
        note += f"; not checked yet ({twin}'s run of the seed not finished): {', '.join(check.unchecked)}"
    return note + "."


def write_table(table: Table, stem: Path) -> dict[str, Path]:
    write_text(stem.with_suffix(".md"), table.to_markdown() + "\n")
    write_text(stem.with_suffix(".tex"), table.to_latex() + "\n")
    rows = table.to_csv_rows()
    write_csv(stem.with_suffix(".csv"), rows, list(rows[0]))
    return {stem.name: stem.with_suffix(".md")}


def write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    def write(fh: Any) -> None:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)

    atomic_write(path, write)


def ratio_plot(done: list[tuple[GridRun, dict]], path: Path) -> Path:
    """Fig. 6: mean Dice over seeds against the noise ratio; the clean run counts as ratio 0 for every kind."""
    import numpy as np

    from svldrl.experiments.figures import noise_ratio_plot

    series: dict[str, dict[float, list[float]]] = {}
    for run, metrics in done:
        if run.variant.overrides:
            continue
        kinds = [run.noise] if run.noise != "none" else sorted({r.noise for r, _ in done if r.noise != "none"})
        for kind in kinds:
            key = f"{run.variant.label} ({kind.upper()})"
            ratio = 0.0 if run.noise == "none" else run.ratio
            series.setdefault(key, {}).setdefault(ratio, []).append(metrics["summary"]["mean"]["mean"]["dice"])
    points = {
        k: {r: (float(np.mean(v)), float(np.std(v))) for r, v in d.items()} for k, d in series.items() if len(d) > 1
    }
    return noise_ratio_plot(points, path)


def mixed_kernel_footnotes(entries: list[tuple[GridRun, dict]]) -> list[str]:
    """A footnote for each table row whose seeds were trained with different CPU kernels.

    Why: kernels of another instruction set round differently, so a seed retrained on another machine
    gives another model (docs/results.md, Sessions 12 and 28); a row's mean over seeds from two kernel
    families is still a mean over seeds, but a run of it pairs only with runs trained alike, and the
    row should say which seeds those are. Runs with no record of their kernels are left out.
    """
    rows: dict[tuple[str, str], dict[str, list[int]]] = {}
    for run, metrics in entries:
        kernels = cpu_kernels(metrics.get("environment"))
        if kernels is not None:
            row = rows.setdefault((run.group, shown_label(run)), {})
            row.setdefault(kernels, []).append(run.seed)
    notes = []
    for (group, label), by_kernels in sorted(rows.items()):
        if len(by_kernels) > 1:
            parts = "; ".join(f"{k}: seed{'s' if len(v) > 1 else ''} {', '.join(map(str, sorted(v)))}"
                              for k, v in sorted(by_kernels.items()))  # fmt: skip
            notes.append(f"{label} ({group}): seeds trained with different CPU kernels ({parts}); "
                         "a run pairs only with runs trained with the same kernels.")  # fmt: skip
    return notes


def environments(done: list[tuple[GridRun, dict]]) -> list[dict[str, Any]]:
    """The distinct package versions and machines the finished runs were trained with, and how many.

    Training at this scale is not bit-reproducible across library builds (docs/results.md), so a
    table that mixes runs from two environments should say so; this is where it can be seen. Runs
    carried from before ``runs.csv`` have no record here (``environments_before_runs_csv`` has them).
    """
    groups: dict[str, dict[str, Any]] = {}
    for _, metrics in done:
        if metrics.get("before_runs_csv"):
            continue
        env = metrics.get("environment") or {}
        setting = {k: env.get(k) for k in ENVIRONMENT_KEYS if k != "cpu_kernel_limits" or env.get(k)}
        group = groups.setdefault(json.dumps(setting, sort_keys=True), {**setting, "git_commits": set(), "runs": 0})
        group["git_commits"].add(str(env.get("git_commit")))
        group["runs"] += 1
    return [{**g, "git_commits": sorted(g["git_commits"])} for g in groups.values()]


CASE_FIELDS = ("run", "label", "method", "noise", "ratio", "seed", "case_id", "class", *METRICS)


def write_cases_csv(done: list[tuple[GridRun, dict]], exp: Experiment, dataset_name: str, path: Path) -> Path:
    """One row per (run, held-out case, class, incl. the class mean): the input of paired tests."""
    rows = []
    for run, metrics in done:
        name = run.run_dir(exp, dataset_name).name
        for case_id, per_class in sorted(metrics.get("per_case", {}).items()):
            for cls, values in per_class.items():
                rows.append(
                    {
                        "run": name,
                        "label": run.variant.label,
                        "method": run.variant.method,
                        "noise": run.noise,
                        "ratio": run.ratio,
                        "seed": run.seed,
                        "case_id": case_id,
                        "class": cls,
                        **{m: values[m] for m in METRICS},
                    }
                )
    write_csv(path, rows, list(CASE_FIELDS))
    return path


def write_runs_csv(done: list[tuple[GridRun, dict]], exp: Experiment, dataset_name: str, path: Path) -> Path:
    """One row per finished run: its cost, model size and environment, so that they outlive its folder."""
    rows = []
    for run, metrics in done:
        coordinates = {
            "label": run.variant.label,
            "method": run.variant.method,
            "noise": run.noise,
            "ratio": run.ratio,
            "seed": run.seed,
        }
        rows.append(run_record(run.run_dir(exp, dataset_name).name, coordinates, metrics, None))
    write_csv(path, rows, ["run", "label", "method", "noise", "ratio", "seed", *RUN_FIELDS])
    return path


def write_cost_table(done: list[tuple[GridRun, dict]], path: Path) -> Path:
    """Training time per epoch by method (mean over that method's runs) and the model's parameters.

    Parameters are those ``svldrl predict`` runs (``metrics.json``'s ``parameters.inference``; runs
    made before it was recorded show "-"), since a method's claim of a smaller model is about the
    deployed one; the RL heads a method trains on top are in each run's record.
    """
    import numpy as np

    per: dict[str, list[float]] = {}
    params: dict[str, set[int]] = {}
    for run, metrics in done:
        if metrics.get("seconds_per_epoch") is not None:
            per.setdefault(shown_label(run), []).append(metrics["seconds_per_epoch"])
        if "parameters" in metrics:
            params.setdefault(shown_label(run), set()).add(int(metrics["parameters"]["inference"]))
    lines = ["| method | s / epoch | runs | parameters at inference |", "|---|---|---|---|"]
    lines += [
        f"| {label} | {np.mean(v):.2f} (±{np.std(v):.2f}) | {len(v)} | "
        f"{' / '.join(f'{n:,}' for n in sorted(params.get(label, ()))) or '-'} |"
        for label, v in per.items()
    ]
    unrecorded = sum(1 for _, m in done if unrecorded_here(m))
    frozen = path.parent / FROZEN_COST_FILE
    if unrecorded and frozen.exists():
        lines = lines if per else []
        lines += [
            f"{unrecorded} runs here were tabulated before each run's cost was kept (runs.csv) and their folders "
            f"are gone, so they have no per-run cost record{' and the table above leaves them out' if per else ''}; "
            f"their costs are in the cost table as it stood then ({FROZEN_COST_FILE}), over the runs of that time:",
            "",
            frozen.read_text().strip(),
        ]
    elsewhere: dict[str, int] = {}
    for _, metrics in done:
        if metrics.get("before_runs_csv") and metrics.get("carried_from"):
            elsewhere[metrics["carried_from"]] = elsewhere.get(metrics["carried_from"], 0) + 1
    for folder, count in sorted(elsewhere.items()):
        runs = "1 run here is" if count == 1 else f"{count} runs here are"
        lines += [
            "",
            f"{runs} carried from the results in {folder} (carry_from), which keep no per-run cost record; "
            f"the cost is in {folder}/cost.md.",
        ]
    write_text(path, "\n".join(lines) + "\n")
    return path
