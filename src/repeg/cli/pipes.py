"""stdout whose reader went away (`repeg ... | head -1`): every command stops writing quietly, keeping its code.

Left alone, a write to a closed pipe ends a command with exit 1 and nothing on stderr, which reads as a bug
(exit 1 is "internal error"): click turns the `BrokenPipeError` of `typer.echo` or `sys.stdout.write` into
`sys.exit(1)`, rich's console raises `SystemExit(1)` itself. The console script's `main` therefore puts
`PipeSafeStdout` in front of `sys.stdout` before any command runs: the first write the pipe refuses points
stdout at the null device (nothing left buffered fails at exit) and every later write goes there, so the
command ends as it would have, with its own exit code. Only stdout: an error still has its line on stderr.
This module imports nothing heavy: `main` uses it before the commands load.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TextIO, cast


def silence(stream: TextIO) -> None:
    """Point `stream`'s file descriptor at the null device (its reader went away); nothing if it has none."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class PipeSafeStdout:
    """A text stream in front of `stream` whose writes and flushes never raise `BrokenPipeError`."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False
        #: The error of a write stdout refused otherwise (a full disk), raised on to the command.
        self.refused: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._went_away()
            return len(text)
        except OSError as exc:
            self.refused = exc
            raise

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._went_away()
        except OSError as exc:
            self.refused = exc
            raise

    def _went_away(self) -> None:
        if not self.broken:
            self.broken = True
            silence(self._stream)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def refused_by_stdout(exc: OSError) -> bool:
    """`exc` is the error of a write to the guarded stdout (a full disk), not of a file the command opened."""
    return isinstance(sys.stdout, PipeSafeStdout) and sys.stdout.refused is exc


def guard_stdout() -> None:
    """Put `PipeSafeStdout` in front of `sys.stdout` (once). Started with stdout closed (`>&-`), the process gets
    the null device there: what a command prints goes nowhere, quietly (a lab command's `--json` document was an
    AttributeError, exit 1), and the command keeps its own exit code."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - open for the process's life
    if not isinstance(sys.stdout, PipeSafeStdout):
        sys.stdout = cast(TextIO, PipeSafeStdout(sys.stdout))  # a TextIO by duck typing
