"""Deterministic fault injection for the crash test: SIGKILL this process at a named point of the event stream.

`REPEG_KILL_AT=<point>:<when>:<n>` kills the process at the n-th event matching `<point>`, either before the
journal sees it (`before`) or right after the journal's `emit` returned (`after`). The points cover the write-ahead
protocol at every step:

- `submit-intent`, `replace-intent`, `cancel-intent`: the announcement. `after` = committed, broker not called.
- `submit-ack`, `replace-ack`: the broker's answer. `before` = the broker acted, the journal does not know it.
- `cancel-confirm`: the cancel's confirmation (an update to canceled).
- `fill`: an update carrying fills (partially filled or filled).
- `refusal`: the broker refused a submit, replace or cancel.

The hook is inert unless the variable is set; it only ever wraps the journal's sink.
"""

from __future__ import annotations

import os
import signal
from typing import Final, NamedTuple

from repeg.domain.events import EventSink, OrderAccepted, OrderFailed, OrderIntent, OrderUpdated, RunEvent
from repeg.domain.orders import OrderStatus

KILL_ENV: Final = "REPEG_KILL_AT"
POINTS: Final = (
    "submit-intent",
    "replace-intent",
    "cancel-intent",
    "submit-ack",
    "replace-ack",
    "cancel-confirm",
    "fill",
    "refusal",
)
_FILLED = (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)


class KillPoint(NamedTuple):
    point: str
    before: bool
    nth: int


def parse_kill_point(text: str) -> KillPoint:
    point, _, rest = text.partition(":")
    when, _, nth = rest.partition(":")
    if point not in POINTS or when not in ("before", "after") or not nth.isdigit() or int(nth) < 1:
        raise ValueError(
            f"{KILL_ENV}={text!r} must be <point>:<before|after>:<n>, point one of {', '.join(POINTS)}"
        )
    return KillPoint(point, when == "before", int(nth))


def point_of(event: RunEvent) -> str | None:
    """The kill point an event belongs to, if any."""
    if isinstance(event, OrderIntent):
        return f"{event.action.value}-intent"
    if isinstance(event, OrderAccepted):
        return f"{event.action.value}-ack"
    if isinstance(event, OrderFailed):
        return "refusal"
    if isinstance(event, OrderUpdated):
        status = event.update.order.status
        if status is OrderStatus.CANCELED:
            return "cancel-confirm"
        if status in _FILLED:
            return "fill"
    return None


class KillSwitchSink:
    """Passes events to `inner`; SIGKILLs the process at the configured point."""

    def __init__(self, inner: EventSink, kill_at: KillPoint) -> None:
        self._inner = inner
        self._kill_at = kill_at
        self._seen = 0

    async def emit(self, event: RunEvent) -> None:
        hit = point_of(event) == self._kill_at.point
        if hit:
            self._seen += 1
        armed = hit and self._seen == self._kill_at.nth
        if armed and self._kill_at.before:
            _die()
        await self._inner.emit(event)
        if armed:
            _die()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def with_fault_injection(sink: EventSink, environ: dict[str, str] | None = None) -> EventSink:
    """`sink`, wrapped in a `KillSwitchSink` when `REPEG_KILL_AT` is set."""
    value = (os.environ if environ is None else environ).get(KILL_ENV)
    return sink if not value else KillSwitchSink(sink, parse_kill_point(value))
