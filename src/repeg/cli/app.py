"""The `repeg` command line: a small typer app whose commands live in their own modules.

Each module named in `COMMAND_MODULES` exposes `register(app: typer.Typer) -> None` and adds its commands there.
To add a command, write such a module and append its name here; keep heavy imports (brokers, plotting, Ray)
inside the command functions so that `repeg --help` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol, cast

import typer

#: Modules that contribute commands, in the order their commands appear in `--help`.
COMMAND_MODULES: tuple[str, ...] = (
    "repeg.cli.run",
    "repeg.cli.journal_cmds",
    "repeg.cli.lab_cmds",
    "repeg.cli.report_cmds",
    "repeg.cli.alpaca_cmds",
)


class _CommandModule(Protocol):
    def register(self, app: typer.Typer) -> None: ...


def build_app(modules: Sequence[str] = COMMAND_MODULES) -> typer.Typer:
    """A fresh app with every command module registered (tests build their own)."""
    app = typer.Typer(
        name="repeg",
        help="Phased smart-limit execution of US equity trades, on a built-in exchange simulator or Alpaca.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root() -> None:
        """Keeps `repeg <command>` a command group even while only one command is registered.

        Also sends every command's logs to stderr at `warning` before the command runs: unconfigured, structlog
        prints every level to stdout, which belongs to results. Commands with log options reconfigure.
        """
        from repeg.logging import configure_logging

        configure_logging(level="warning")

    for name in modules:
        cast(_CommandModule, importlib.import_module(name)).register(app)
    return app


def main() -> None:
    """Console-script entry point (`repeg`)."""
    build_app()()
