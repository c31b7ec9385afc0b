"""Ctrl-C while `repeg` loads, before a run sends anything: always the one `interrupted` line and exit 130.

Python's own SIGINT handler raises `KeyboardInterrupt` wherever the program is. While repeg imports its modules
and reads its inputs, that may be inside a library that catches it: pydantic building a model's validator raises
its own `SchemaError` instead (which read as an internal error, exit 1), and an exception raised in a finalizer
or a weakref callback (e.g. importlib's module locks) is printed "Exception ignored" and dropped (after which the
run went on to trade the whole plan). `CtrlCWatch` installs, for the loading phase only, a handler that raises
`KeyboardInterrupt` just as Python's does and also remembers the signal, so that the command can tell an error
caused by a Ctrl-C (`seen`), and `done()` stops the run before its first order if a Ctrl-C was swallowed. A
process started with SIGINT ignored (a shell's background job) keeps ignoring it, as Python itself does.

`done()` hands SIGINT back before the run starts: asyncio's runner installs its own handler only over Python's
default one, and the graceful stop of remote and Alpaca runs (`repeg.journal.shutdown`) puts its own over that.
This module imports nothing heavy: the console script's `main` uses it before the commands load.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType


class CtrlCWatch:
    """Context manager: while active (in the main thread), a SIGINT raises `KeyboardInterrupt` and sets `seen`."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: signal.Handlers | object = signal.default_int_handler
        self._armed = False

    def __enter__(self) -> CtrlCWatch:
        # A process started with SIGINT ignored (a shell's background job) keeps ignoring it, as Python does.
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._previous = signal.default_int_handler if previous is None else previous
            self._armed = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._restore()

    def done(self) -> None:
        """Loading is over: SIGINT goes back to the handler found on entry; a Ctrl-C seen meanwhile, even one a
        library swallowed, raises `KeyboardInterrupt` now, before anything is sent."""
        self._restore()
        if self.seen:
            raise KeyboardInterrupt

    def _restore(self) -> None:
        if self._armed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]  # what signal() returned
            self._armed = False

    def _on_sigint(self, _signum: int, _frame: FrameType | None) -> None:
        self.seen = True
        raise KeyboardInterrupt
