"""Calling ``svldrl`` commands in-process from tests (one copy, imported as ``from cli_helpers import ...``).

pytest puts ``tests/`` on ``sys.path`` because ``tests/conftest.py`` lives there (rootdir-style
layout without packages), so every test module can import this file by its bare name.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from typer.testing import CliRunner

from svldrl.cli import app

runner = CliRunner()


def invoke(*args: object) -> str:
    """Run ``svldrl ARGS``; fail the test with the command's output unless it exits 0. Returns the output."""
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def refused(*args: object) -> str:
    """Run ``svldrl ARGS``, which must fail; its message (CliRunner keeps the exception, ``main()`` prints it)."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code != 0, result.output
    return str(result.exception) if result.exception is not None else result.output


def load_script(path: Path, name: str) -> ModuleType:
    """An experiments/ script imported as a module (registered in sys.modules: dataclasses look it up)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
