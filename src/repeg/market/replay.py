"""Replayed quotes as a `QuoteFeed`: the tape's quote current at the clock's now.

Used with a `VirtualClock`, this is what the engine sees during a simulation: time moves only when the engine
or the simulated exchange sleeps, and `latest()` is a binary search, never a scan.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from repeg.domain.quote import Quote
from repeg.engine.clock import Clock
from repeg.market.tape import QuoteTape, from_ns, to_ns


class TapeFeed:
    """`QuoteFeed` over a `QuoteTape`. Symbols not on the tape simply have no quote (None)."""

    def __init__(self, tape: QuoteTape, clock: Clock) -> None:
        self._tape = tape
        self._clock = clock

    @property
    def tape(self) -> QuoteTape:
        return self._tape

    async def subscribe(self, symbols: Iterable[str]) -> None:
        """Nothing to start: every symbol of the tape is always available."""

    def latest(self, symbol: str) -> Quote | None:
        if symbol not in self._tape:
            return None
        return self._tape.quote_at(symbol, self._clock.now())

    def next_quote_time(self, symbol: str) -> datetime | None:
        """When the quote of `symbol` next changes after now (None at the end of the tape or if unknown).

        Lets a simulation wake exactly at quote changes it cares about instead of polling.
        """
        if symbol not in self._tape:
            return None
        current = self._tape.index_at_ns(symbol, to_ns(self._clock.now()))
        following = 0 if current is None else current + 1
        if following >= self._tape.count(symbol):
            return None
        # Rounded up to the clock's microsecond: a nanosecond quote is current from then, not before.
        return from_ns(-(-self._tape.time_ns(symbol, following) // 1000) * 1000)
