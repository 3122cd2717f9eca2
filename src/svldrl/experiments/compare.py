"""``svldrl compare EXPERIMENT.yaml``: a grid of runs on one data set, then the paper's tables.

The grid is variants (methods, or a method with configuration changes such as the stage
ablations) x noise kinds x noise ratios x seeds, plus an optional clean-label baseline row. Finished
runs are skipped and interrupted ones resumed, so a long grid can span sessions. Afterwards:
``table.md/.csv/.tex`` (Tables 1-2), ``ablation.md/...`` (Table 5) when the grid holds variants of
svl-drl, ``noise_ratio.png`` (Fig. 6) when ratios vary, ``cost.md`` (seconds per epoch) and ``cases.csv``
(every run's per-case scores, so that paired tests survive the run folders, which hold checkpoints
and are not kept in git). This module decides what to train and which runs are finished; the writers
of those files are in ``grid_outputs.py``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from svldrl._io import write_text
from svldrl.config import TrainConfig
from svldrl.experiments.carry import (
    CASES_FILE,
    FROZEN_COST_FILE,
    RUNS_FILE,
    carried_not_needed,
    carried_records,
    left_alone,
    same_scores,
    unrecorded_here,
)
from svldrl.experiments.grid import Experiment, GridRun, grid, load_experiment, waits_for
from svldrl.experiments.grid_outputs import (
    environments,
    ratio_plot,
    results_table,
    run_environment,
    same_as_checks,
    write_cases_csv,
    write_cost_table,
    write_runs_csv,
    write_table,
)
from svldrl.experiments.runs import (
    METRICS_FILE,
    RunExistsError,
    check_existing_run,
    claim_run,
    holds_other_settings,
    is_claimed,
)


def run_experiment(
    path: Path, *, progress: bool = True, tables_only: bool = False, jobs: int = 1, runs_root: Path | None = None
) -> dict[str, Path]:
    """Run (or resume) the grid, then write the tables and figures; returns the written files.

    ``jobs`` > 1 trains that many runs at once in worker processes, each with an equal share of
    the CPU threads (on one GPU they share the device). Runs are claimed with file locks, so
    several ``compare`` processes on one grid never train a run twice.
    """
    from svldrl.data import load_dataset
    from svldrl.experiments.pipeline import check_run_config, make_split
    from svldrl.experiments.trusted import check_trusted

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    exp = load_experiment(path, runs_root)
    runs = grid(exp)  # checks every method name and override before any training
    dataset = load_dataset(exp.data)
    dataset_name = dataset.name
    left = left_alone(exp, runs, dataset_name)
    for run in runs:  # an invalid option, a run folder from other settings: refuse now, not hours in
        folder = run.run_dir(exp, dataset_name)
        if run.variant.untrained_why and folder.name in left and not folder.exists():
            continue  # a row kept for the runs it has; old settings since made invalid must not stop the grid
        check_run_config(run.cfg)
        check_trusted(run.cfg, make_split(dataset, run.cfg))
        check_existing_run(run.run_dir(exp, dataset_name), run.cfg)
    started = time.perf_counter()
    if not tables_only:
        if jobs == 1:
            train_pending(path, progress=progress, runs_root=runs_root)
        else:
            _train_in_workers(path, jobs, runs_root)
    return write_results(exp, runs, dataset_name, time.perf_counter() - started)


def train_pending(
    path: Path, *, progress: bool = True, threads: int | None = None, runs_root: Path | None = None
) -> int:
    """Train every run of the grid that is neither finished nor claimed by another process; returns how many."""
    import svldrl.baselines  # noqa: F401  (a worker process must register the baselines itself)
    from svldrl.data import load_dataset
    from svldrl.experiments.pipeline import train_run

    exp = load_experiment(path, runs_root)
    runs = grid(exp)
    dataset_name = load_dataset(exp.data).name
    # carried (finished, folders gone) and superseded runs are not trained, unless a run to train reads
    # one as its teacher (carry.left_alone); --index I --retrain trains one on request
    left = left_alone(exp, runs, dataset_name)
    trained, waiting = 0, []
    for i, run in enumerate(runs):  # i: the run's index, as --list and --index number it
        run_dir = run.run_dir(exp, dataset_name)
        if (run_dir / METRICS_FILE).exists() or run_dir.name in left:
            continue
        if waits_for(run.cfg):  # its teacher run is not finished (perhaps training in another worker)
            waiting.append(i)
            continue
        with claim_run(run_dir) as claimed:
            if not claimed or (run_dir / METRICS_FILE).exists():  # taken, or finished while we looked
                continue
            cfg = run.cfg
            if threads is not None and cfg.num_threads is None:
                cfg = replace(cfg, num_threads=threads)
            print(
                f"[compare {i} (of {len(runs)})] {run.variant.label} | {run.group} | seed {run.seed} -> {run_dir}",
                flush=True,
            )
            train_run(exp.data, cfg, out=run_dir, runs_root=exp.runs_root, resume=True, progress=progress)
            trained += 1
    if waiting:
        print(
            f"[compare] runs {', '.join(map(str, waiting))} wait for their teacher runs; run compare again once "
            "those are finished",
            flush=True,
        )
    return trained


def grid_states(path: Path, runs_root: Path | None = None) -> list[tuple[int, str, GridRun, Path]]:
    """Every run of the grid with its index and state: ``pending``, ``running``, ``finished``, ``conflict``,
    ``carried`` (finished, its folder gone, its scores in the committed ``cases.csv``: see carry.py) or
    ``superseded`` (not finished, of a row the file keeps only for the runs it has: not trained) or
    ``same-as`` (not finished, of a row that trains as another row: ``Variant.same_as``, not trained).

    The index is the run's place in the grid's fixed order (noise rows, methods, seeds), the
    number a cluster job array passes to ``--index``. ``running``: another process holds the
    run's lock now; an interrupted run nobody holds is ``pending`` (it resumes). ``conflict``: the
    folder holds a run made with other settings, which ``--index`` and ``--tables-only`` refuse;
    why: a listing that called it ``finished`` would send a job array past a run that no table
    will accept (an edited experiment file, two files sharing a runs folder).
    """
    from svldrl.data import load_dataset

    exp = load_experiment(path, runs_root)
    runs = grid(exp)
    dataset_name = load_dataset(exp.data).name
    carried = carried_not_needed(exp, runs, dataset_name)  # a carried teacher that must be retrained is pending
    left = left_alone(exp, runs, dataset_name)  # ... and so is a superseded one
    out = []
    for index, run in enumerate(runs):
        folder = run.run_dir(exp, dataset_name)
        state = "carried" if folder.name in carried and not folder.exists() else _grid_state(folder, run.cfg)
        if state == "pending" and run.variant.untrained_why and folder.name in left:
            state = "superseded" if run.variant.superseded else "same-as"
        out.append((index, state, run, folder))
    return out


def _grid_state(run_dir: Path, cfg: TrainConfig) -> str:
    """A run's ``--list`` state; ``conflict`` first, since such a folder is neither resumable nor tabulated."""
    if holds_other_settings(run_dir, cfg):
        return "conflict"
    if (run_dir / METRICS_FILE).exists():
        return "finished"
    return "running" if is_claimed(run_dir) else "pending"


def train_index(
    path: Path, index: int, *, progress: bool = True, runs_root: Path | None = None, retrain: bool = False
) -> Path:
    """Train run ``index`` of the grid alone (one job of a cluster array); returns its folder.

    Checks this run as ``run_experiment`` checks every run, then trains or resumes it. A finished
    run is left as it is (a job array may be resubmitted), and so is a carried one (finished, its
    folder gone, its scores committed: carry.py) unless ``retrain``, and so is an unfinished run of a
    superseded row (``Variant.superseded``) or a same_as row (``Variant.same_as``) unless ``retrain``; a
    run another process holds is refused.
    """
    from svldrl.data import load_dataset
    from svldrl.experiments.pipeline import check_run_config, make_split, train_run
    from svldrl.experiments.trusted import check_trusted

    exp = load_experiment(path, runs_root)
    runs = grid(exp)
    if not 0 <= index < len(runs):
        raise ValueError(f"{exp.source}: --index {index} is outside the grid's runs 0..{len(runs) - 1}")
    run = runs[index]
    dataset = load_dataset(exp.data)
    run_dir = run.run_dir(exp, dataset.name)
    check_run_config(run.cfg)
    check_trusted(run.cfg, make_split(dataset, run.cfg))
    check_existing_run(run_dir, run.cfg)
    if not retrain and not run_dir.exists() and run_dir.name in carried_not_needed(exp, runs, dataset.name):
        print(
            f"[compare {index}] carried: finished before, its folder gone, its scores committed (in "
            f"{exp.out / CASES_FILE} or a carry_from grid's); "
            "left alone (--retrain trains it again)",
            flush=True,
        )
        return run_dir
    untrained = run.variant.untrained_why and run_dir.name in left_alone(exp, runs, dataset.name)
    if not retrain and untrained and not (run_dir / METRICS_FILE).exists():
        print(f"[compare {index}] {run.variant.untrained_why}; not trained (--retrain trains it)", flush=True)
        return run_dir
    with claim_run(run_dir) as claimed:
        if not claimed:
            raise RunExistsError(f"{run_dir}: another process is training this run now")
        if (run_dir / METRICS_FILE).exists():
            print(f"[compare {index}] finished already: {run_dir}", flush=True)
            return run_dir
        print(f"[compare {index}] {run.variant.label} | {run.group} | seed {run.seed} -> {run_dir}", flush=True)
        train_run(exp.data, run.cfg, out=run_dir, runs_root=exp.runs_root, resume=True, progress=progress)
    return run_dir


def prepare_noise(path: Path, runs_root: Path | None = None, index: int | None = None) -> list[tuple[Path, bool]]:
    """Make the frozen noisy labels of every noisy run of the grid (or of run ``index``), training nothing.

    Returns (noise folder, made now) per distinct noise setting.

    Why: on a cluster every job of an array would otherwise make (or wait, under the cache's file
    lock, for another job to make) its noise first, and SFDA noise trains a source model. Made once
    before the array, each job reads them. The labels are those ``train`` makes for the same run
    (same split, same listed trusted cases kept clean, same cache key), so the runs find them.
    """
    from svldrl.data import load_dataset
    from svldrl.experiments.noisy_labels import noise_key, training_labels
    from svldrl.experiments.pipeline import check_run_config, make_split
    from svldrl.experiments.trusted import listed_trusted_ids
    from svldrl.noise.manifest import MANIFEST_NAME

    exp = load_experiment(path, runs_root)
    dataset = load_dataset(exp.data)
    cache_root = exp.runs_root / dataset.name / "_noise"
    runs = grid(exp)
    if index is not None and not 0 <= index < len(runs):
        raise ValueError(f"{exp.source}: --index {index} is outside the grid's runs 0..{len(runs) - 1}")
    done: dict[Path, bool] = {}
    for run in runs if index is None else [runs[index]]:
        if run.cfg.noise.kind == "none":
            continue
        check_run_config(run.cfg)
        split, protected = make_split(dataset, run.cfg), listed_trusted_ids(run.cfg)
        cache = cache_root / noise_key(run.cfg, split, protected)
        if cache not in done:
            done[cache] = not (cache / MANIFEST_NAME).exists()
            training_labels(dataset, split.train, run.cfg, split, cache_root, protected)
    return list(done.items())


def _train_in_workers(path: Path, jobs: int, runs_root: Path | None = None) -> None:
    """``jobs`` processes each running ``train_pending``; the first error is raised once all have stopped."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # no fork of a process that already runs torch threads
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [
            pool.submit(train_pending, path, progress=False, threads=threads, runs_root=runs_root) for _ in range(jobs)
        ]
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error


def write_results(exp: Experiment, runs: list[GridRun], dataset_name: str, seconds: float) -> dict[str, Path]:
    """The tables of every finished run: those with a folder, and those carried from ``cases.csv``
    (``carry.py``: finished earlier, on a machine or disk whose run folders are gone)."""
    done, replaced_now = finished_runs(exp, runs, dataset_name)
    if not done:
        raise ValueError(f"{exp.source}: no finished runs to tabulate yet")
    _refuse_to_shrink(exp, len(done))
    same_as = same_as_checks(done)  # a false same_as claim stops here, before any file is written
    earlier_environments = _freeze_records_before_runs_csv(exp.out, done)
    replaced = _replaced_so_far(exp.out, replaced_now, {r.run_dir(exp, dataset_name).name for r, _ in done})
    written: dict[str, Path] = {}
    # Table 5's rows are the configured variants of svl-drl; a configured variant of any other method
    # (e.g. "Trusted only 6", a baseline with another loss) is a row of the main table
    main = [(r, m) for r, m in done if not _is_ablation(r)]
    ablation = [
        (r, m)
        for r, m in done
        if (_is_ablation(r) or (r.variant.method == "baseline" and not r.variant.overrides)) and r.noise != "none"
    ]
    n_seeds = len(exp.seeds)
    spread = "seeds" if n_seeds > 1 else "test cases"
    if main:
        caption = f"{exp.name}: mean (± std over {spread}); Dice and IoU in %, HD95 and ASD in mm"
        table = results_table(main, caption, n_seeds, same_as)
        written.update(write_table(table, exp.out / "table"))
    has_ablation = any(_is_ablation(r) for r, _ in done)
    if has_ablation:
        full = [(r, m) for r, m in done if r.variant.method == "svl-drl" and not r.variant.overrides]
        caption = f"{exp.name} ablations: mean (± std over {spread})"
        table = results_table(ablation + full, caption, n_seeds, same_as)
        written.update(write_table(table, exp.out / "ablation"))
    if len(exp.ratios) > 1 or (exp.clean_methods and exp.ratios):
        written["noise_ratio"] = ratio_plot(done, exp.out / "noise_ratio.png")
    written["cost"] = write_cost_table(done, exp.out / "cost.md")
    written["cases"] = write_cases_csv(done, exp, dataset_name, exp.out / CASES_FILE)
    record: dict[str, Any] = {
        "experiment": str(exp.source),
        "finished": len(done),
        "carried": sum(1 for _, m in done if m.get("carried")),
        "total": len(runs),
        "seconds_this_call": round(seconds, 1),
        "environments": environments(done),
    }
    if earlier_environments is not None:
        record["environments_before_runs_csv"] = earlier_environments
        record["environments_note"] = (
            "runs tabulated before runs.csv existed, whose folders are gone, are counted in "
            "environments_before_runs_csv (as grid.json listed them then), not in environments"
        )
    if replaced:
        record["replaced_carried_runs"] = replaced
    shared: dict[str, int] = {}
    for _, metrics in done:
        if metrics.get("carried_from"):
            shared[metrics["carried_from"]] = shared.get(metrics["carried_from"], 0) + 1
    if shared:  # which grids' committed results stand in for runs of this one, and how many
        record["carried_from"] = dict(sorted(shared.items()))
    write_text(exp.out / "grid.json", json.dumps(record, indent=2))
    # runs.csv last: until it exists, the next call still finds the earlier environments in grid.json
    written["runs"] = write_runs_csv(done, exp, dataset_name, exp.out / RUNS_FILE)
    return written


def finished_runs(
    exp: Experiment, runs: list[GridRun], dataset_name: str
) -> tuple[list[tuple[GridRun, dict]], list[str]]:
    """Each finished run with its metrics record, in grid order: read from its folder where it has one,
    else carried from the results folder's ``cases.csv`` / ``runs.csv`` when they hold it; and the
    runs whose folder now replaces committed rows with other scores (retrained, or trained by
    another grid sharing the runs folder), which are said on stderr and in ``grid.json``."""
    on_disk: dict[str, dict] = {}
    for run in runs:
        run_dir = run.run_dir(exp, dataset_name)
        if (run_dir / METRICS_FILE).exists():
            metrics = json.loads((run_dir / METRICS_FILE).read_text())
            on_disk[run_dir.name] = {**metrics, "environment": run_environment(run_dir)}
    names = [run.run_dir(exp, dataset_name).name for run in runs]
    carried = carried_records(exp, runs, dataset_name, names)
    replaced = sorted(n for n in on_disk if n in carried and not same_scores(on_disk[n], carried[n]))
    for name in replaced:
        print(
            f"[compare] {name}: its run folder replaces the committed rows of "
            f"{exp.out / carried[name].get('carried_from', '.') / CASES_FILE}, "
            "which have other scores (retrained?)",
            file=sys.stderr,
            flush=True,
        )
    done = [
        (run, on_disk.get(name) or carried[name])
        for run, name in zip(runs, names, strict=True)
        if name in on_disk or name in carried
    ]
    return done, replaced


def _freeze_records_before_runs_csv(out: Path, done: list[tuple[GridRun, dict]]) -> list | None:
    """Keep what the results folder said of runs tabulated before ``runs.csv`` existed; returns their
    environments (from the earlier ``grid.json``), or None when no such run is among ``done``.

    Those runs have no per-run cost or environment record; once their folders are gone the only
    account left is the cost table and ``grid.json`` written then, so the first call that finds
    such runs copies the cost table to ``cost_before_runs_csv.md`` and the environments forward.
    """
    if not any(unrecorded_here(m) for _, m in done):
        return None
    grid_json = out / "grid.json"
    earlier = json.loads(grid_json.read_text()) if grid_json.exists() else {}
    frozen_cost = out / FROZEN_COST_FILE
    if not (out / RUNS_FILE).exists():  # the first call since runs.csv was introduced
        if (out / "cost.md").exists() and not frozen_cost.exists():
            write_text(frozen_cost, (out / "cost.md").read_text())
        return earlier.get("environments", [])
    return earlier.get("environments_before_runs_csv", [])


def _replaced_so_far(out: Path, replaced_now: list[str], tabulated: set[str]) -> list[str]:
    """The runs whose folders have ever replaced committed rows with other scores: those found now, and
    those the earlier ``grid.json`` named that are still tabulated. ``finished_runs`` compares a folder
    with ``cases.csv`` as it stands, which after one tabulation holds the new scores, so without this
    the record would vanish at the next ``--tables-only`` (Session 37's teachers 8-9)."""
    grid_json = out / "grid.json"
    earlier = json.loads(grid_json.read_text()).get("replaced_carried_runs", []) if grid_json.exists() else []
    return sorted(set(replaced_now) | (set(earlier) & tabulated))


def _is_ablation(run: GridRun) -> bool:
    """A configured variant of SVL-DRL: a row of the ablation table (Table 5), not of the main table."""
    return run.variant.method == "svl-drl" and bool(run.variant.overrides)


def _refuse_to_shrink(exp: Experiment, finished: int) -> None:
    """Tables made from more runs than are found now were made from run folders that are gone (or
    elsewhere): replacing them would silently drop rows from committed results."""
    record = exp.out / "grid.json"
    if not record.exists():
        return
    try:
        before = int(json.loads(record.read_text()).get("finished", 0))
    except (ValueError, TypeError, AttributeError):
        return
    if finished < before:
        raise ValueError(
            f"{record}: the tables there were made from {before} finished runs, but only {finished} are under "
            f"{exp.runs_root} or committed (carried); not replacing them with fewer rows (point --runs-root at the "
            f"run folders, or move {exp.out} away to start the tables afresh)"
        )
