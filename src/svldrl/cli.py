"""The ``svldrl`` console script: one command per step of a researcher's workflow.

Each command validates its input before any long work, then calls one function of the package
that owns the work; this file only parses arguments and reports. Errors are one line naming the
file or option, and warnings (``DataWarning``: an empty label, a folder that is not a case) one
``warning:`` line each; ``--debug`` (before or after the command) shows the traceback instead.
``docs/reliability.md`` lists the bad inputs tried and what each gets.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="svldrl",
    help="Train 3D segmentation models that stay accurate when their training labels are wrong (SVL-DRL).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
_state = {"debug": False}


class UserError(Exception):
    """An error the user can fix (bad path, bad option); shown as one line without a traceback."""


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False,
) -> None:
    _state["debug"] = debug


# ----------------------------------------------------------------------------- data commands


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

    _require_exists(path)
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
    kind: Annotated[str, typer.Option("--kind", help="'mt' (morphological) or 'sfda' (source-model labels).")] = "mt",
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

    _require_exists(data)
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


def _method_help() -> str:
    from svldrl.experiments.methods import method_table

    return method_table()


@app.command(epilog="Methods: see `svldrl methods`. Configuration keys: see `svldrl config-keys`.")
def train(
    data: Annotated[Path, typer.Argument(help="Data set folder (LA h5, MSD/nnU-Net NIfTI, BraTS).")],
    method: Annotated[
        str, typer.Option("--method", "-m", help="Training method (`svldrl methods` lists them).")
    ] = "svl-drl",
    preset: Annotated[
        str, typer.Option("--preset", help="'cpu' (small U-Net, minutes) or 'paper' (SwinUNETR, Section 4.1).")
    ] = "cpu",
    noise: Annotated[
        str, typer.Option("--noise", help="Label noise on the training cases: 'none', 'mt' or 'sfda'.")
    ] = "none",
    noise_ratio: Annotated[
        float, typer.Option("--noise-ratio", min=0.0, max=1.0, help="Share of training cases corrupted.")
    ] = 0.5,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file applied over the preset.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override one key, e.g. --set optim.epochs=20 (repeatable).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Training seed (default: from the configuration).")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Run folder (default `runs/<dataset>/<method>__<noise>-<ratio>__seed<k>`).",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete a finished or interrupted run and start again.")
    ] = False,
    device: Annotated[str, typer.Option("--device", help="'auto', 'cpu', 'cuda' or 'cuda:N'.")] = "auto",
    precision: Annotated[
        str | None,
        typer.Option("--precision", help="'auto' (CUDA: bf16/fp16 autocast; CPU: fp32), 'fp32', 'bf16' or 'fp16' "
                     "(CUDA); short for --set precision=...", show_default=False),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    trusted: Annotated[
        Path | None,
        typer.Option(
            "--trusted",
            help="File of expert-checked training case ids, one per line (short for "
            "`--set data.trusted_cases=@FILE`): never corrupted; trusted-only and MTCL use them.",
        ),
    ] = None,
) -> None:
    """Train a method on a data set (optionally with simulated label noise) and score it on clean held-out labels.

    Configuration: the preset, then `--config FILE.yaml`, then `--set key=value`, then the flags.

    Examples:

    * `svldrl train data/phantoms --method svl-drl --noise mt --noise-ratio 0.5`
    * `svldrl train ../shared/data/la2018 --method baseline --set data.spacing=1.25 --set optim.epochs=60`
    * `svldrl train data/Task02_Heart --method co-teaching --preset paper --device cuda`
    * `svldrl train data/Task02_Heart --method svl-drl --preset paper --device cuda --precision bf16`
    * `svldrl train ../shared/data/la2018 --method mtcl --noise mt --trusted checked_cases.txt`
    """
    from svldrl.config import resolve_config
    from svldrl.experiments.pipeline import train_run

    _require_exists(data)
    _load_methods()
    overrides = list(set_ or [])
    if trusted is not None:
        _require_exists(trusted)
        overrides.append(f"data.trusted_cases=['@{trusted.resolve()}']")  # absolute: a resume may run elsewhere
    cfg = resolve_config(
        preset,
        config,
        overrides,
        method=method,
        device=device,
        precision=precision,
        seed=seed,
        **{"noise.kind": noise, "noise.ratio": noise_ratio},
    )
    result = train_run(data, cfg, out=out, resume=resume, overwrite=overwrite, progress=not quiet)
    if result.metrics:  # under torchrun, rank 0 reports; the other ranks return nothing
        _print_summary(result.run_dir, result.metrics, cfg)


@app.command()
def methods() -> None:
    """List the training methods, with oracle and reconstruction notes."""
    _load_methods()
    typer.echo(_method_help())


@app.command("config-keys")
def config_keys() -> None:
    """List every configuration key: its value in the `cpu` preset (the default) and in `paper`, and its meaning."""
    from svldrl.config import describe, preset_values

    cpu, paper = preset_values("cpu"), preset_values("paper")
    typer.echo(f"{'key':32s} {'cpu (default)':22s} {'paper':22s} meaning")
    for key, _, doc in describe():
        typer.echo(f"{key:32s} {cpu[key]:22s} {paper[key]:22s} {doc}")


# ----------------------------------------------------------------------------- prediction and scoring


@app.command()
def predict(
    run: Annotated[
        Path, typer.Argument(help="A run folder (its final model, checkpoints/latest.pt) or a checkpoint file (.pt).")
    ],
    inputs: Annotated[Path, typer.Argument(help="A NIfTI or LA h5 file, an LA case folder, or a folder of them.")],
    output: Annotated[Path, typer.Argument(help="Output folder (or a .nii.gz file for a single input).")],
    refine_steps: Annotated[
        int | None,
        typer.Option("--refine-steps", min=0, help="Greedy policy steps before segmenting (default: the run's)."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="'auto', 'cpu', 'cuda' or 'cuda:N'.")] = "auto",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace masks that exist in the output (never an input).")
    ] = False,
) -> None:
    """Predict masks for new volumes, written as NIfTI on each input's own grid (affine and header kept).

    Every input image is read before the first mask is written (labels are never read). The output
    must not be an input or the folder of one, and existing files are replaced only with `--overwrite`.

    Examples:

    * `svldrl predict runs/phantoms/svl-drl__mt-0.5__seed0 data/phantoms/imagesTr preds/`
    * `svldrl predict runs/la2018/baseline__clean__seed0 ../shared/data/la2018/06SR5RBREL16DQ6M8LWS pred.nii.gz`
    """
    from svldrl.experiments.evaluation import predict_inputs

    _require_exists(run)
    _require_exists(inputs)
    _load_methods()
    for path in predict_inputs(run, inputs, output, device=device, refine_steps=refine_steps, overwrite=overwrite):
        console.print(f"wrote {path}")


@app.command()
def evaluate(
    pred: Annotated[Path, typer.Argument(help="A folder of <case id>.nii.gz masks, or a run folder.")],
    ref: Annotated[Path, typer.Argument(help="A data set with reference labels (any supported format).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write <out>.csv (per case) and <out>.json (summary).")
    ] = None,
    refine_steps: Annotated[
        int | None, typer.Option("--refine-steps", min=0, help="With a run folder: greedy policy steps.")
    ] = None,
    held_out: Annotated[
        bool,
        typer.Option("--held-out", help="With a run folder: only the run's held-out cases (as in its metrics.json)."),
    ] = False,
    device: Annotated[str, typer.Option("--device", help="With a run folder: 'auto', 'cpu', 'cuda'.")] = "auto",
    cases: Annotated[
        str | None,
        typer.Option(
            "--cases", help="Score only these cases: a file with one case id per line, or ids joined by commas."
        ),
    ] = None,
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing", help="Score a case without prediction as an empty prediction (the worst score)."
        ),
    ] = False,
) -> None:
    """Score predictions (Dice, IoU, HD95, ASD per class and mean) against reference labels.

    With a run folder as PRED, it predicts every case of REF first (or, with `--held-out`, the
    cases the run held out) and scores in one go. A folder of predictions must hold one label map
    per reference case (or per case of `--cases`) on that case's grid; anything else is an error
    naming the file, and a missing case is an error unless `--allow-missing`.

    Examples:

    * `svldrl evaluate preds/ data/phantoms --out scores`
    * `svldrl evaluate preds/ ../shared/data/la2018 --cases test_ids.txt`
    * `svldrl evaluate runs/la2018/svl-drl__mt-0.5__seed0 ../shared/data/la2018 --held-out --refine-steps 3`
    """
    from svldrl.experiments.evaluation import evaluate_folder, evaluate_run, write_evaluation
    from svldrl.experiments.runs import CONFIG_FILE

    _require_exists(pred)
    _require_exists(ref)
    _load_methods()
    case_ids = _case_list(cases)
    if (pred / CONFIG_FILE).exists():
        result = evaluate_run(pred, ref, device=device, refine_steps=refine_steps, held_out=held_out, cases=case_ids)
        _print_table({result["method"]: result["summary"]}, group=result["noise"], cases=result["evaluated_on"])
    elif held_out or refine_steps is not None:
        raise ValueError(f"{pred}: --held-out and --refine-steps need a run folder (with {CONFIG_FILE})")
    else:
        result = evaluate_folder(pred, ref, cases=case_ids, allow_missing=allow_missing)
        _print_table({pred.name: result["summary"]}, cases="chosen" if case_ids else "all")
    if out is not None:
        for path in write_evaluation(result, out):
            console.print(f"wrote {path}")


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
        typer.Option("--list", help="Print the grid's runs, one per line: index, state (pending/running/finished), "
                     "run, folder; train nothing."),
    ] = False,
    index: Annotated[
        int | None,
        typer.Option("--index", min=0, help="Train run INDEX of the grid alone (as --list numbers them), e.g. "
                     "$SLURM_ARRAY_TASK_ID in a job array; write no tables (then --tables-only)."),
    ] = None,
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
    `--index $SLURM_ARRAY_TASK_ID` trains one, and `--tables-only` writes the tables at the end.

    Example: `svldrl compare experiments/phantoms/mt50.yaml`
    Example: `SVLDRL_RUNS=/scratch/runs svldrl compare experiments/la/table1.yaml --jobs 2`
    Example: `svldrl compare experiments/la/reference.yaml --list`
    """
    from svldrl.experiments.compare import grid_states, run_experiment, train_index

    _require_exists(experiment)
    chosen = [name for name, given in (("--list", list_runs), ("--index", index is not None),
                                       ("--tables-only", tables_only), ("--jobs", jobs > 1)) if given]
    if len(chosen) > 1:
        raise typer.BadParameter(f"{' and '.join(chosen)} cannot be combined; choose one")
    _load_methods()
    if list_runs:
        for i, state, run, run_dir in grid_states(experiment, runs_root):
            typer.echo(f"{i}\t{state}\t{run.variant.label} | {run.group} | seed {run.seed}\t{run_dir}")
        return
    if index is not None:
        train_index(experiment, index, progress=not quiet, runs_root=runs_root)
        return
    written = run_experiment(experiment, progress=not quiet, tables_only=tables_only, jobs=jobs, runs_root=runs_root)
    for name, path in written.items():
        console.print(f"{name}: {path}")
        if path.suffix == ".md":
            typer.echo(path.read_text())


# ----------------------------------------------------------------------------- helpers


def _load_methods() -> None:
    """Import the baselines so that they register their methods."""
    import svldrl.baselines  # noqa: F401


def _print_summary(run_dir: Path, metrics: dict, cfg: object) -> None:
    from svldrl.experiments.tables import noise_label

    if not metrics.get("finished", True):
        console.print(f"stopped after {metrics.get('epochs_done')} epochs; continue with --resume ({run_dir})")
        return
    group = noise_label(cfg.noise.kind, cfg.noise.ratio)  # type: ignore[attr-defined]
    _print_table({metrics["method"]: metrics["summary"]}, group=group, cases=metrics.get("evaluated_on", "test"))
    console.print(f"run folder: {run_dir}")


def _print_table(summaries: dict, group: str = "", cases: str = "test") -> None:
    from svldrl.experiments.tables import summary_table

    typer.echo(summary_table(summaries, group=group, cases=cases))


def _case_list(value: str | None) -> list[str] | None:
    """``--cases``: a file of ids (one per line, ``#`` comments) or ids joined by commas."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
        ids = [line for line in lines if line]
        if not ids:
            raise UserError(f"{path}: --cases file lists no case id")
        return ids
    ids = [part.strip() for part in value.split(",") if part.strip()]
    if not ids:
        raise UserError(f"--cases: no case ids in {value!r}")
    return ids


def _require_exists(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")


EXPECTED_ERRORS = (UserError, ValueError, KeyError, OSError)
"""What a user's input can cause (bad values, missing or unreadable files, refused folders): exit 2."""


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file=None, line=None):
    """Warnings as one ``warning:`` line, without the source line Python would add."""
    console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True)


def main() -> None:
    """Entry point: run the app, turning every error into one clear line (``--debug``: the traceback).

    ``--debug`` is taken from anywhere on the command line, before or after the command.
    Expected errors exit with 2; anything else is a bug, shown as one line too, with exit 1.
    """
    debug = "--debug" in sys.argv[1:]
    if debug:
        sys.argv = [sys.argv[0], *(a for a in sys.argv[1:] if a != "--debug")]
        _state["debug"] = True
    else:
        warnings.showwarning = _show_warning
    try:
        app()
    except EXPECTED_ERRORS as exc:
        if debug:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        console.print(f"[red]error:[/red] {escape(str(message))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:  # a bug: still one line, and how to see more
        if debug:
            raise
        console.print(
            f"[red]error:[/red] {type(exc).__name__}: {escape(str(exc))} "
            "(unexpected; rerun with --debug for the traceback and report it)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
