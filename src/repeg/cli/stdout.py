"""stdout of the commands that print a run's result: whole tables in a pipe, a reader that went away, and a
stdout that refuses the result (a full disk), which is said in one line rather than a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console

from repeg.cli.exit_codes import ExitCode
from repeg.cli.pipes import silence

PIPE_WIDTH = 160


class StdoutConsole(Console):
    """stdout. A reader that went away (`| head`) silences it: rich would exit 1, which reads as a bug.

    A pipe or file gets whole tables at `PIPE_WIDTH` columns at least, not rich's 80-column ellipses ("10.…"
    for a price): `run`, `show`, `runs` and `resume` print the same tables there.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.is_terminal:
            self.width = max(self.width, PIPE_WIDTH)

    def on_broken_pipe(self) -> None:
        self.quiet = True
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left buffered fails at exit

    def write_raw(self, text: str) -> None:
        """`text` on stdout as it is (a JSON document: no markup, no wrapping); nothing when stdout is closed."""
        if sys.stdout is None:  # started with stdout closed (`>&-`): as rich does for the tables
            return
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            self.on_broken_pipe()


def unwritten(err: Console, run_id: str, status: str, exc: OSError, *, dry_run: bool = False) -> typer.Exit:
    """The one line and exit code (FAILED) of a result stdout refused (`exc`, e.g. a full disk) after the run
    ended: what it was, how the run ended, and that the journal has it (a dry run's too, which sent nothing). stdout then goes to the null device, so that what is left buffered does not fail again at exit."""
    ended = (
        f"dry run {run_id} sent nothing: `repeg show {run_id}` prints it from the journal"
        if dry_run
        else f"run {run_id} ended {status}: `repeg show {run_id}` prints it from the journal"
    )
    err.print(f"error: the result could not be written to stdout ({_refused(exc)}); {ended}", markup=False)
    return typer.Exit(ExitCode.FAILED)


def not_written(what: str, exc: OSError) -> typer.Exit:
    """The one line on stderr and exit code (FAILED) of output stdout refused (`exc`, e.g. a full disk) when it
    reads from the journal only (`runs`, `show`): `what` could not be written. stdout goes to the null device."""
    typer.echo(f"error: {what} could not be written to stdout ({_refused(exc)})", err=True)
    return typer.Exit(ExitCode.FAILED)


def _refused(exc: OSError) -> str:
    """Why stdout refused (`exc`), once stdout is pointed at the null device: what is left buffered does not
    fail again at exit."""
    if sys.stdout is not None:
        silence(sys.stdout)
    return exc.strerror or str(exc)
