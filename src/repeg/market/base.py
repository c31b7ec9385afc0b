"""The `QuoteFeed` port: the engine's view of the top of book."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from repeg.domain.quote import Quote


class QuoteFeed(Protocol):
    async def subscribe(self, symbols: Iterable[str]) -> None:
        """Start receiving quotes for `symbols` (a no-op for replayed data)."""
        ...

    def latest(self, symbol: str) -> Quote | None:
        """The most recent quote for `symbol` as of the clock's now, or None if none has arrived."""
        ...
