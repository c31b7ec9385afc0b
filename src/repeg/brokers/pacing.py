"""The time a broker call spends held back by the client's own pacing, for a caller that times the broker's answer.

An adapter that paces its requests client-side (the Alpaca adapter's token bucket, to keep under the broker's rate)
wraps each wait for a request's turn in `paced()`. A caller that bounds a broker call's time (the run's end,
`repeg.engine.bounded_broker`) runs the call under `watched(held)` and reads from `held` how long the call has been
held so far: it times only the broker's answer, never the wait for a turn that the client itself imposes. A broker
that paces nothing never reports: its calls are timed whole. Times are the event loop's, as the waits they extend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class Held:
    """How long one broker call has been held back by the client's pacing (its requests go one at a time)."""

    def __init__(self) -> None:
        self._done = 0.0
        self._since: float | None = None

    def start(self, now: float) -> None:
        if self._since is None:
            self._since = now

    def stop(self, now: float) -> None:
        if self._since is not None:
            self._done += now - self._since
            self._since = None

    def seconds(self, now: float) -> float:
        """Seconds held until `now`, a wait still under way included."""
        return self._done + (0.0 if self._since is None else now - self._since)


_HELD: ContextVar[Held | None] = ContextVar("repeg_pacing_held", default=None)


@contextmanager
def watched(held: Held) -> Iterator[None]:
    """Broker calls started in this block (tasks created in it: they copy the context) report their pacing to
    `held`."""
    token = _HELD.set(held)
    try:
        yield
    finally:
        _HELD.reset(token)


@contextmanager
def paced() -> Iterator[None]:
    """Around a wait for a request's turn under the client's own pacing: counted to the watching call's `Held`."""
    held = _HELD.get()
    if held is None:
        yield
        return
    loop = asyncio.get_running_loop()
    held.start(loop.time())
    try:
        yield
    finally:
        held.stop(loop.time())
