"""Grids: ``compare`` trains methods x noise x ratios x seeds (or one run of it) and writes the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from svldrl.cli.app import app, console, load_methods, require_exists


@app.command()
def compare(
    experiment: Annotated[Path, typer.Argument(help="Experiment file (YAML): data, methods, noise, ratios, seeds.")],
    tables_only: Annotated[
        bool, typer.Option("--tables-only", help="Only (re)write tables from finished runs.")
    ] = False,
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", min=1, help="Runs trained at once, each with an equal share of the CPU threads."),
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    list_runs: Annotated[
        bool,
        typer.Option(
            "--list",
            help="Print the grid's runs, one per line: index, state (pending/running/finished/carried/"
            "superseded/same-as/conflict), run, folder; train nothing.",
        ),
    ] = False,
    index: Annotated[
        int | None,
        typer.Option(
            "--index",
            min=0,
            help="Train run INDEX of the grid alone (as --list numbers them), e.g. "
            "$SLURM_ARRAY_TASK_ID in a job array; write no tables (then --tables-only).",
        ),
    ] = None,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain",
            help="With --index: train the run again although it is carried (finished before, its folder gone, "
            "its scores in the committed cases.csv or a carry_from grid's; its new scores then replace the "
            "committed ones), or train an unfinished run of a superseded or same_as row.",
        ),
    ] = False,
    noise_only: Annotated[
        bool,
        typer.Option(
            "--noise-only",
            help="Make the frozen noisy labels every noisy run needs (SFDA: its source models), train nothing: "
            "before a job array, so that no job makes or waits for another's noise. With --index: that run's only.",
        ),
    ] = False,
    runs_root: Annotated[
        Path | None,
        typer.Option(
            "--runs-root",
            envvar="SVLDRL_RUNS",
            help="Folder of the run folders, instead of the file's runs_root (e.g. outside a work tree that is "
            "replaced between sessions).",
        ),
    ] = None,
) -> None:
    """Run a grid (methods x noise kinds x ratios x seeds) and write the paper-style tables and plots.

    Finished runs are skipped and interrupted ones resumed, so a long grid can be run in pieces;
    with `--jobs N` (or several compare processes on one grid) runs are trained side by side.
    Writes `table.md/.csv/.tex` (like Tables 1-2), `ablation.*` (like Table 5) when the grid holds
    svl-drl variants, `noise_ratio.png` (like Fig. 6) when ratios vary, `cost.md`, `cases.csv` (every
    run's per-case scores, for paired tests) and `grid.json` (progress, package versions of the runs).

    Example file:

        name: phantom-mt50
        data: ../data/phantoms
        preset: cpu
        set: [optim.epochs=30]
        methods: [baseline, svl-drl, co-teaching,
                  {method: svl-drl, label: "SVL-DRL w/o WS", set: [stages.skip_warmup=true]}]
        noise: [mt]
        ratios: [0.5]
        seeds: [0, 1]
        clean_baseline: true

    On a cluster, a job array trains one run per job (docs/cluster.md): `--list` numbers the runs,
    `--index $SLURM_ARRAY_TASK_ID` trains one, and `--tables-only` writes the tables at the end;
    `--noise-only` makes the grid's noisy labels once, before the array.

    Example: `svldrl compare experiments/phantoms/mt50.yaml`
    Example: `SVLDRL_RUNS=/scratch/runs svldrl compare experiments/la/table1.yaml --jobs 2`
    Example: `svldrl compare experiments/la/reference.yaml --list`
    """
    from svldrl.experiments.compare import grid_states, prepare_noise, run_experiment, train_index

    require_exists(experiment)
    chosen = [
        name
        for name, given in (
            ("--list", list_runs),
            ("--index", index is not None and not noise_only),
            ("--tables-only", tables_only),
            ("--jobs", jobs > 1),
            ("--noise-only", noise_only),
        )
        if given
    ]
    if len(chosen) > 1:
        raise typer.BadParameter(f"{' and '.join(chosen)} cannot be combined; choose one")
    if retrain and (index is None or noise_only):
        raise typer.BadParameter("--retrain goes with --index (one run of the grid)")
    load_methods()
    if list_runs:
        for i, state, run, run_dir in grid_states(experiment, runs_root):
            typer.echo(f"{i}\t{state}\t{run.variant.label} | {run.group} | seed {run.seed}\t{run_dir}")
        return
    if noise_only:
        for cache, made in prepare_noise(experiment, runs_root, index):
            typer.echo(f"{'made' if made else 'exists'}\t{cache}")
        return
    if index is not None:
        train_index(experiment, index, progress=not quiet, runs_root=runs_root, retrain=retrain)
        return
    written = run_experiment(experiment, progress=not quiet, tables_only=tables_only, jobs=jobs, runs_root=runs_root)
    for name, path in written.items():
        console.print(f"{name}: {path}")
        if path.suffix == ".md":
            typer.echo(path.read_text())
