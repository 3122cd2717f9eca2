"""One run: train a method, list methods and keys, predict new volumes, score predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from svldrl.cli.app import app, case_list, console, load_methods, print_summary, print_table, require_exists


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
        str, typer.Option("--noise", help="Label noise on the training cases: 'none', 'mt', 'sfda', 'border' or"
                          " 'border-onesided'.")
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
        typer.Option(
            "--precision",
            help="'auto' (CUDA: bf16/fp16 autocast; CPU: fp32), 'fp32', 'bf16' or 'fp16' "
            "(CUDA); short for --set precision=...",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    trusted: Annotated[
        Path | None,
        typer.Option(
            "--trusted",
            help="File of expert-checked training case ids, one per line (short for "
            "`--set data.trusted_cases=@FILE`): never corrupted. trusted-only, svl-drl-trusted, meta-reweight, "
            "case-filter and teacher-correction need them; MTCL (and rsf-assisted on MTCL) take them as clean "
            "cases, co-teaching its forget rates from them, and data.trusted_per_batch puts them in every batch.",
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

    require_exists(data)
    load_methods()
    overrides = list(set_ or [])
    if trusted is not None:
        require_exists(trusted)
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
        print_summary(result.run_dir, result.metrics, cfg)


@app.command()
def methods(
    name: Annotated[
        str | None,
        typer.Argument(help="One method in full: its description and each method_options key, default and meaning."),
    ] = None,
    parameters: Annotated[
        bool,
        typer.Option("--parameters", help="Instead: each method's parameter count (1-channel image, binary label)."),
    ] = False,
    preset: Annotated[str, typer.Option("--preset", help="With --parameters: 'cpu' or 'paper'.")] = "cpu",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="With --parameters or NAME: override one key, e.g. model.heads=light or "
                     "method_options.base=mtcl (rsf-assisted's options for that base)."),
    ] = None,
) -> None:
    """List the training methods with oracle and reconstruction notes (or model sizes, or one method's options)."""
    load_methods()
    if name is not None:
        from svldrl.experiments.methods import method_detail

        typer.echo(method_detail(name, list(set_ or [])))  # an unknown name: the registry's one line
        return
    if parameters:
        from svldrl.experiments.methods import parameter_table

        typer.echo(parameter_table(preset, list(set_ or [])))
        return
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

    require_exists(run)
    require_exists(inputs)
    load_methods()
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

    require_exists(pred)
    require_exists(ref)
    load_methods()
    case_ids = case_list(cases)
    if (pred / CONFIG_FILE).exists():
        result = evaluate_run(pred, ref, device=device, refine_steps=refine_steps, held_out=held_out, cases=case_ids)
        print_table({result["method"]: result["summary"]}, group=result["noise"], cases=result["evaluated_on"])
    elif held_out or refine_steps is not None:
        raise ValueError(f"{pred}: --held-out and --refine-steps need a run folder (with {CONFIG_FILE})")
    else:
        result = evaluate_folder(pred, ref, cases=case_ids, allow_missing=allow_missing)
        print_table({pred.name: result["summary"]}, cases="chosen" if case_ids else "all")
    if out is not None:
        for path in write_evaluation(result, out):
            console.print(f"wrote {path}")
