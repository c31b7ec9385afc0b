"""The `repeg` command line: a small typer app whose commands live in their own modules.

Each module named in `COMMAND_MODULES` exposes `register(app: typer.Typer) -> None` and adds its commands there.
To add a command, write such a module and append its name here; keep heavy imports (brokers, plotting, Ray)
inside the command functions so that `repeg --help` stays fast.

This module itself imports nothing heavy (typer loads in `build_app`): the console script imports it before
`main` runs, and a Ctrl-C during that import would print a traceback instead of `main`'s one line.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn, Protocol, cast

if TYPE_CHECKING:
    import typer
    import typer.core
    from typer._click import Context  # typer's own click, which its TyperGroup is built on

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
    import typer

    app = typer.Typer(
        name="repeg",
        help="Phased smart-limit execution of US equity trades, on a built-in exchange simulator or Alpaca.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        cls=_interrupt_saying_group(),
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


def _interrupt_saying_group() -> type[typer.core.TyperGroup]:
    """The app's command group: a Ctrl-C a command leaves unhandled (the lab commands, report, sweep, check) ends
    as `run`'s does, with the one line `interrupted` on stderr and exit 130; typer alone exits 130 silently."""
    from typer.core import TyperGroup

    class InterruptSayingGroup(TyperGroup):
        def invoke(self, ctx: Context) -> object:
            try:
                done = super().invoke(ctx)
                if sys.stdout is not None:  # what is left buffered: refused here, not in a traceback at exit
                    sys.stdout.flush()
            except KeyboardInterrupt:
                _exit_interrupted()
            except OSError as exc:
                from repeg.cli.pipes import refused_by_stdout

                if not refused_by_stdout(exc):  # a file the command opened: its own error
                    raise
                raise _not_written(exc, ctx.invoked_subcommand) from None
            return done

    return InterruptSayingGroup


def _not_written(exc: OSError, command: str | None) -> BaseException:
    """The one line on stderr and exit 4 of a command whose output stdout refused (a full disk) and that left
    it to this group (`run`, `resume`, `runs` and `show` say more themselves)."""
    from repeg.cli.stdout import not_written

    return not_written(f"the output of repeg {command}", exc)


def main() -> None:
    """Console-script entry point (`repeg`).

    A Ctrl-C before a command runs (while the commands load) ends like one during it: one line, exit 130, also
    when a library the import ran caught the KeyboardInterrupt (see `repeg.cli.interrupts`). Output cut short
    because stdout's reader went away is no error: every command stops writing quietly (`repeg.cli.pipes`).
    """
    watch = None
    try:
        from repeg.cli.interrupts import CtrlCWatch
        from repeg.cli.pipes import guard_stdout

        guard_stdout()

        watch = CtrlCWatch()
        with watch:
            app = build_app()
            watch.done()
        app()
    except KeyboardInterrupt:
        _exit_interrupted()
    except Exception as exc:
        if isinstance(exc, OSError):
            _exit_if_help_not_written(exc)
        if watch is None or not watch.seen:
            raise
        _exit_interrupted()


def _exit_if_help_not_written(exc: OSError) -> None:
    """The help stdout refused (a full disk: `repeg --help > out`, or a bare `repeg`), printed before the command
    group runs: one line and exit 4, as for a command's output; any other error is left to `main`."""
    from repeg.cli.pipes import refused_by_stdout

    if refused_by_stdout(exc):
        from repeg.cli.stdout import not_written

        raise SystemExit(not_written("the output of repeg", exc).exit_code) from None


def _exit_interrupted() -> NoReturn:
    from repeg.cli.exit_codes import INTERRUPTED_MESSAGE, ExitCode

    print(INTERRUPTED_MESSAGE, file=sys.stderr)
    raise SystemExit(ExitCode.INTERRUPTED) from None
