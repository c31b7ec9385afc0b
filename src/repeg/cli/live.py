"""The live terminal view: an `EventSink` that redraws one row per leg as the run's events arrive.

Leg state comes from the same fold the engine and the journal use (`repeg.domain.leg.RunFolder`), so the view
can never disagree with the result. In simulation the run advances in virtual time and may finish within
milliseconds of wall time: redraws are throttled to `min_interval` wall seconds, and `close()` always draws the
final state. Under a real-time loop an event the throttle held back is drawn once the interval has passed, even
when no event follows it (an order resting for minutes after its acknowledgement must not show as still being
submitted). Wall time is read here only to pace the screen, never to decide anything about the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from types import TracebackType

from rich.console import Console
from rich.live import Live

from repeg.cli.render import legs_table
from repeg.domain.events import RunEvent
from repeg.domain.run import RunFolder
from repeg.engine.clock import VirtualTimeLoop


class LiveView:
    """Use as a context manager around the run; pass the instance as one of the run's sinks."""

    def __init__(
        self,
        console: Console,
        *,
        min_interval: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._folder = RunFolder()
        self._min_interval = min_interval
        self._monotonic = monotonic
        self._last_draw: float | None = None
        self._held_back: asyncio.TimerHandle | None = None
        self._live = Live(console=console, auto_refresh=False, transient=False, redirect_stderr=False)
        self.draws = 0

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def seed(self, events: Iterable[RunEvent]) -> None:
        """Fold in what the journal already holds of a run the view shows resumed (its legs planned before the
        interruption); drawn with the next event."""
        for event in events:
            self._folder.apply(event)

    async def emit(self, event: RunEvent) -> None:
        self._folder.apply(event)
        now = self._monotonic()
        if self._last_draw is None or now - self._last_draw >= self._min_interval:
            self._draw(now)
        elif self._held_back is None:
            self._draw_later(self._min_interval - (now - self._last_draw))

    def _draw_later(self, delay: float) -> None:
        """Draw what the throttle held back after `delay` wall seconds. Not in simulation: there virtual time
        brings the next event within wall milliseconds, and `close()` draws the last state."""
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeLoop):
            self._held_back = loop.call_later(delay, self._draw_held_back)

    def _draw_held_back(self) -> None:
        self._held_back = None
        if self._live.is_started:
            self._draw(self._monotonic())

    def close(self) -> None:
        """Draw the final state and release the terminal."""
        if self._live.is_started:
            self._draw(self._monotonic())
            self._live.stop()

    def _draw(self, now: float) -> None:
        if self._held_back is not None:
            self._held_back.cancel()
            self._held_back = None
        self._last_draw = now
        self.draws += 1
        self._live.update(legs_table(self._folder.snapshot()), refresh=True)
