"""The Typer app, the helpers every command shares, and ``main``: every error as one line."""

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


def load_methods() -> None:
    """Import the baselines so that they register their methods."""
    import svldrl.baselines  # noqa: F401


def print_summary(run_dir: Path, metrics: dict, cfg: object) -> None:
    from svldrl.experiments.tables import noise_label

    if not metrics.get("finished", True):
        console.print(f"stopped after {metrics.get('epochs_done')} epochs; continue with --resume ({run_dir})")
        return
    group = noise_label(cfg.noise.kind, cfg.noise.ratio)  # type: ignore[attr-defined]
    print_table({metrics["method"]: metrics["summary"]}, group=group, cases=metrics.get("evaluated_on", "test"))
    console.print(f"run folder: {run_dir}")


def print_table(summaries: dict, group: str = "", cases: str = "test") -> None:
    from svldrl.experiments.tables import summary_table

    typer.echo(summary_table(summaries, group=group, cases=cases))


def case_list(value: str | None) -> list[str] | None:
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


def require_exists(path: Path) -> None:
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

