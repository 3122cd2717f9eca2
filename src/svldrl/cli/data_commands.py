"""Data commands: make phantoms, check a data set, write a noisy copy, and the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from svldrl.cli.app import UserError, app, console, require_exists


@app.command()
def phantom(
    out: Annotated[Path, typer.Argument(help="Folder to write the data set to (MSD/nnU-Net NIfTI layout).")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of cases.")] = 20,
    size: Annotated[int, typer.Option("--size", min=16, help="Side of the cubic volumes in voxels.")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generator.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Write into a folder that is not empty (replacing its phantoms).")
    ] = False,
) -> None:
    """Write a synthetic phantom data set with exact clean labels.

    Example: `svldrl phantom data/phantoms --n 20 --size 64 --seed 0`
    """
    from svldrl.data import write_phantom_dataset

    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UserError(f"{out}: exists and is not an empty folder; use --overwrite to write the phantoms into it")
    path = write_phantom_dataset(out, n=n, size=size, seed=seed, overwrite=overwrite)
    console.print(f"wrote {n} phantom cases ({size}^3) to {path}")


@app.command("check-data")
def check_data(
    path: Annotated[Path, typer.Argument(help="A data set folder (LA h5, MSD/nnU-Net NIfTI, BraTS) or one case.")],
) -> None:
    """Check a data set before training: unreadable files, geometry and label problems.

    Exits with status 1 if anything would block training (warnings alone exit 0).

    Example: `svldrl check-data ../shared/data/la2018`
    """
    from svldrl.data import check_dataset, format_problems

    require_exists(path)
    problems = check_dataset(path)
    if problems:
        console.print(format_problems(problems), soft_wrap=True, markup=False, highlight=False)  # a line per file
    blocking = [p for p in problems if p.blocking]
    if blocking:
        console.print(f"[red]{len(blocking)} blocking problem(s)[/red] in {path}")
        raise typer.Exit(1)
    console.print(f"[green]OK[/green]: {path} ({len(problems)} warning(s))")


@app.command()
def noise(
    data: Annotated[Path, typer.Argument(help="Data set with clean labels.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the noisy copy (same format) and its manifest.")],
    kind: Annotated[str, typer.Option("--kind", help="'mt' (morphological), 'sfda' (source-model labels), 'border'"
                                              " (border moved out and in) or 'border-onesided'.")] = "mt",
    ratio: Annotated[float, typer.Option("--ratio", min=0.0, max=1.0, help="Share of cases to corrupt.")] = 0.5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the corruption.")] = 0,
    preset: Annotated[str, typer.Option("--preset", help="sfda: preset of the source model and of the split.")] = "cpu",
    set_: Annotated[list[str] | None, typer.Option("--set", help="sfda: configuration override (repeatable).")] = None,
) -> None:
    """Write a copy of a data set with noisy labels and a per-case noise manifest.

    Only the training cases of the split (the one `svldrl train` makes with the same configuration)
    are corrupted; validation and test cases keep their clean labels. SFDA noise trains a source
    model on the clean share first (a fifth of the preset's epochs; `--set optim.epochs=...`).

    Examples:

    * `svldrl noise data/phantoms --kind mt --ratio 0.5 --seed 0 --out data/phantoms-mt50`
    * `svldrl noise data/phantoms --kind sfda --ratio 0.5 --out data/phantoms-sfda50 --set optim.epochs=40`
    """
    from svldrl.config import resolve_config
    from svldrl.config_checks import check_values
    from svldrl.data import open_checked_dataset
    from svldrl.experiments.noisy_labels import sfda_options
    from svldrl.noise import NOISES, write_noisy_dataset

    require_exists(data)
    NOISES.canonical(kind)  # a typo: the valid kinds, and the nearest
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: output exists and is not an empty folder")
    cfg = resolve_config(preset, None, set_ or [], seed=seed, **{"noise.kind": kind, "noise.ratio": ratio})
    check_values(cfg)
    dataset = open_checked_dataset(data)  # every case, held-out ones too: they are copied as they are
    options = {}
    if kind == "sfda":
        options = sfda_options(cfg, out.parent / f".{out.name}-source", dataset.labels)
    path = write_noisy_dataset(
        data, kind=kind, ratio=ratio, seed=seed, out=out, data_cfg=cfg.data, check=False, **options
    )
    console.print(f"wrote noisy copy ({kind}, ratio {ratio}) and noise_manifest.json to {path}")


# ----------------------------------------------------------------------------- the demo


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Report folder (data, runs, report.md, results.json/csv).")] = Path(
        "demo_out"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the phantoms, the noise and the training.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """The main job on built-in data: phantoms, 50 % MT label noise, baseline vs SVL-DRL, a report.

    Trains both methods with the `cpu` preset, scores them on clean test labels, prints the table and
    writes `report.md` (table, training curves, example slices), `results.json` and `results.csv`.
    An interrupted demo continues where it stopped when run again with the same `--out`.

    Example: `svldrl demo --out demo_out`
    """
    from dataclasses import replace

    from svldrl.experiments.demo import DemoSettings, run_demo

    report = run_demo(out, replace(DemoSettings(), seed=seed), progress=not quiet)
    typer.echo(report["table"])
    typer.echo(f"\n{report['verdict']}\nTotal {report['seconds']:.0f} s. Report: {report['report']}")


# ----------------------------------------------------------------------------- training
