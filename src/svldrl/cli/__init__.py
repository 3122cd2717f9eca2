"""The ``svldrl`` console script: one command per step of a researcher's workflow.

Each command validates its input before any long work, then calls one function of the package
that owns the work; this file only parses arguments and reports. Errors are one line naming the
file or option, and warnings (``DataWarning``: an empty label, a folder that is not a case) one
``warning:`` line each; ``--debug`` (before or after the command) shows the traceback instead.
``docs/reliability.md`` lists the bad inputs tried and what each gets.

Layout: ``app.py`` holds the Typer app, the shared helpers and ``main`` (error reporting); the
commands live by topic in ``data_commands.py`` (phantom, check-data, noise, demo),
``run_commands.py`` (train, methods, config-keys, predict, evaluate) and ``grid_commands.py``
(compare). Importing this package registers them all, in that order (the order of ``--help``).
"""

from svldrl.cli.app import EXPECTED_ERRORS, UserError, app, main

# isort: off
# Imported for their @app.command registrations, in the order --help lists them.
from svldrl.cli import data_commands  # noqa: F401
from svldrl.cli import run_commands  # noqa: F401
from svldrl.cli import grid_commands  # noqa: F401
# isort: on

__all__ = ["EXPECTED_ERRORS", "UserError", "app", "main"]
