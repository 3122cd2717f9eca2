"""The ``svldrl`` console script: one command per step of a researcher's workflow.

Each command validates its input before any long work, then calls one function of the package
that owns the work; this file only parses arguments and reports. Errors are one line naming the
file or option; ``svldrl --debug COMMAND`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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
) -> None:
    """Write a synthetic phantom data set with exact clean labels.

    Example: `svldrl phantom data/phantoms --n 20 --size 64 --seed 0`
    """
    from svldrl.data import write_phantom_dataset

    path = write_phantom_dataset(out, n=n, size=size, seed=seed)
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
        console.print(format_problems(problems))
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
) -> None:
    """Write a copy of a data set with noisy labels and a per-case noise manifest.

    Example: `svldrl noise data/phantoms --kind mt --ratio 0.5 --seed 0 --out data/phantoms-mt50`
    """
    from svldrl.noise import write_noisy_dataset

    _require_exists(data)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: output folder exists and is not empty")
    path = write_noisy_dataset(data, kind=kind, ratio=ratio, seed=seed, out=out)
    console.print(f"wrote noisy copy ({kind}, ratio {ratio}) and noise_manifest.json to {path}")


# ----------------------------------------------------------------------------- helpers


def _require_exists(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")


def main() -> None:
    """Entry point: run the app, turning expected errors into one clear line."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except (UserError, ValueError, FileNotFoundError, KeyError) as exc:
        if debug:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        console.print(f"[red]error:[/red] {message}")
        sys.exit(2)


if __name__ == "__main__":
    main()
