"""Columnar market data: quotes and trade prints per symbol, and the index that makes simulation cheap.

A `QuoteTape` holds, per symbol, int64 numpy columns: `ts` in nanoseconds since the Unix epoch (UTC), `bid`/`ask`
in price units of $0.0001 (`repeg.domain.ticks.to_units`), and sizes in shares. A quote is current from its own
timestamp until the next quote's; when several quotes share one timestamp (to the clock's microsecond), only the last
of them is ever current.

`next_marketable` answers the simulator's one hot question, "from quote i on, when is this limit first
marketable?", with at most three small numpy scans through a block-minimum index built once per symbol and side
(see `_FirstAtMost`), so a resting order costs about the same whatever the distance to its fill and however many
quotes the day has: the cost grows with orders, not with quotes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from repeg.domain.orders import Side
from repeg.domain.quote import Quote
from repeg.domain.ticks import from_units

Int64Array = NDArray[np.int64]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
_NEVER = np.iinfo(np.int64).max
_BEFORE_ALL = np.iinfo(np.int64).min
#: Smallest block of the marketability index (blocks are about sqrt(n) quotes long).
_FANOUT = 64


def to_ns(when: datetime) -> int:
    """Nanoseconds since the Unix epoch of an aware datetime (exact: datetimes carry microseconds)."""
    if when.tzinfo is None:
        raise ValueError(f"datetime must be timezone-aware, got {when!r}")
    return (when - EPOCH) // _ONE_MICROSECOND * 1000


def from_ns(ns: int) -> datetime:
    """The aware UTC datetime of `ns` nanoseconds since the epoch (truncated to the microsecond)."""
    return EPOCH + timedelta(microseconds=ns // 1000)


class _FirstAtMost:
    """Finds the first index >= start whose key is <= a threshold: a two-level block-minimum index.

    `_blocks[b]` is the minimum key of block b (`_size` consecutive keys, about sqrt(n)). A search checks the
    start itself, scans the rest of its block, then the block minima to its right, then the one block that must
    hold the hit: at most three numpy scans of ~sqrt(n) entries, whatever the distance to the hit. For the sizes
    that matter (a day of quotes), numpy's fixed cost per call dominates the length of a scan, so fewer, wider
    scans beat a deeper tree.
    """

    def __init__(self, keys: Int64Array) -> None:
        self._keys = keys
        self._size = max(_FANOUT, math.isqrt(len(keys)) + 1)
        padded = np.full(-(-len(keys) // self._size) * self._size, _NEVER, dtype=np.int64)
        padded[: len(keys)] = keys
        self._blocks: Int64Array = padded.reshape(-1, self._size).min(axis=1)

    def find(self, threshold: int, start: int) -> int | None:
        keys = self._keys
        start = max(start, 0)
        if start >= len(keys):
            return None
        if keys[start] <= threshold:
            return start  # marketable at once: the common case for market orders and crossing re-pegs
        size = self._size
        block_end = min(len(keys), (start // size + 1) * size)
        rest = keys[start:block_end]
        k = int((rest <= threshold).argmax())
        if rest[k] <= threshold:
            return start + k
        later = self._blocks[block_end // size :] if block_end < len(keys) else self._blocks[:0]
        b = int((later <= threshold).argmax()) if len(later) else 0
        if not len(later) or later[b] > threshold:
            return None
        base = (block_end // size + b) * size
        return base + int((keys[base : base + size] <= threshold).argmax())


@dataclass(slots=True)
class _Derived:
    """What a `SymbolQuotes` computes on first use and keeps (the columns themselves never change).

    Each field is replaced by a single store, so threads sharing a tape at worst compute a value twice.
    """

    marketable: dict[Side, _FirstAtMost] = field(default_factory=dict)
    quotes: dict[int, Quote] = field(default_factory=dict)
    two_sided: Int64Array | None = None
    tradable: NDArray[np.bool_] | None = None
    #: (time of quote, time of the next quote, index) of the last `position` answer.
    cursor: tuple[int, int, int] = (0, 0, -1)


@dataclass(frozen=True, eq=False)
class SymbolQuotes:
    """One symbol's quotes as parallel int64 columns, sorted by `ts` (see the module docstring for units)."""

    symbol: str
    ts: Int64Array
    bid: Int64Array
    bid_size: Int64Array
    ask: Int64Array
    ask_size: Int64Array
    _cache: _Derived = field(default_factory=_Derived, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.ts)
        if n == 0:
            raise ValueError(f"{self.symbol}: a tape needs at least one quote")
        for name in ("bid", "bid_size", "ask", "ask_size"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{self.symbol}: column {name} has a different length than ts")
        if n > 1 and bool((np.diff(self.ts) < 0).any()):
            raise ValueError(f"{self.symbol}: timestamps are not sorted")

    def __len__(self) -> int:
        return len(self.ts)

    def tradable_mask(self) -> NDArray[np.bool_]:
        """Quotes an order can trade against: two-sided and not locked or crossed (0 < bid < ask, the engine's own
        test of a valid quote), and not superseded at the same instant.

        A locked or crossed quote (bid >= ask) is no market: its ask lies at or below its bid, so a buy "filling"
        at that ask would pay less than the best bid (a sell likewise); like a one-sided quote it fills nothing,
        and a resting order waits for the next valid quote.

        The instant is the clock's: clocks tick in microseconds, and a quote is first current at its time rounded
        up to the microsecond, so quotes that round to the same microsecond share one instant. Computed once.
        """
        found = self._cache.tradable
        if found is None:
            found = self._cache.tradable = self._tradable()
        return found

    def _tradable(self) -> NDArray[np.bool_]:
        ts = self.ts
        step = np.diff(ts)
        last_of_instant = np.ones(len(ts), dtype=np.bool_)
        last_of_instant[:-1] = step != 0
        # Only neighbours less than a microsecond apart can share one; dividing every time would be slow.
        close = np.flatnonzero(step < 1000)
        if len(close):
            last_of_instant[close] = -(-ts[close] // 1000) != -(-ts[close + 1] // 1000)
        return (self.bid > 0) & (self.bid < self.ask) & last_of_instant

    def position(self, ts_ns: int) -> int:
        """Index of the last quote at or before `ts_ns`, -1 before the first.

        A clock mostly asks about the same or a nearby instant again, so the last answer's validity interval is
        checked first; otherwise a binary search of `ts` itself. (Searching a Python copy of `ts` is cheaper per
        call, but the copy costs time in proportion to the whole tape, and misses are few: about one per order
        event.)
        """
        cache = self._cache
        low, high, index = cache.cursor
        if low <= ts_ns < high:
            return index
        times = self.ts
        index = int(times.searchsorted(ts_ns, side="right")) - 1
        low = int(times[index]) if index >= 0 else _BEFORE_ALL
        high = int(times[index + 1]) if index + 1 < len(times) else _NEVER
        cache.cursor = (low, high, index)  # one store: a tape may be shared by threads
        return index

    def two_sided_indices(self) -> Int64Array:
        """Sorted indices of the valid quotes, 0 < bid < ask (computed once): a locked or crossed quote is no
        market, for fills (`tradable_mask`) as for the ask a market buy is checked against."""
        found = self._cache.two_sided
        if found is None:
            found = self._cache.two_sided = np.flatnonzero((self.bid > 0) & (self.bid < self.ask)).astype(
                np.int64
            )
        return found

    def index_for(self, side: Side) -> _FirstAtMost:
        """The marketability index of one side, built on first use (a buy lifts asks, a sell hits bids)."""
        found = self._cache.marketable.get(side)
        if found is None:
            mask = self.tradable_mask()
            keys = np.where(mask, self.ask, _NEVER) if side is Side.BUY else np.where(mask, -self.bid, _NEVER)
            found = self._cache.marketable[side] = _FirstAtMost(keys.astype(np.int64, copy=False))
        return found

    def cached_quote(self, i: int) -> Quote | None:
        return self._cache.quotes.get(i)

    def remember_quote(self, i: int, quote: Quote) -> None:
        self._cache.quotes[i] = quote


class QuoteTape:
    """A day (or any span) of top-of-book quotes for several symbols, immutable once built."""

    def __init__(self, columns: Iterable[SymbolQuotes]) -> None:
        self._by_symbol: dict[str, SymbolQuotes] = {}
        for col in columns:
            if col.symbol in self._by_symbol:
                raise ValueError(f"symbol {col.symbol!r} appears twice")
            self._by_symbol[col.symbol] = col
        if not self._by_symbol:
            raise ValueError("a quote tape needs at least one symbol")

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Mapping[str, Int64Array]]) -> QuoteTape:
        """Build from `{symbol: {"ts", "bid", "bid_size", "ask", "ask_size": int64 array}}`."""
        return cls(
            SymbolQuotes(
                symbol=sym,
                ts=np.ascontiguousarray(cols["ts"], dtype=np.int64),
                bid=np.ascontiguousarray(cols["bid"], dtype=np.int64),
                bid_size=np.ascontiguousarray(cols["bid_size"], dtype=np.int64),
                ask=np.ascontiguousarray(cols["ask"], dtype=np.int64),
                ask_size=np.ascontiguousarray(cols["ask_size"], dtype=np.int64),
            )
            for sym, cols in arrays.items()
        )

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._by_symbol)

    @property
    def start(self) -> datetime:
        """Time of the earliest quote of any symbol."""
        return from_ns(min(int(c.ts[0]) for c in self._by_symbol.values()))

    @property
    def end(self) -> datetime:
        """Time of the latest quote of any symbol."""
        return from_ns(max(int(c.ts[-1]) for c in self._by_symbol.values()))

    def __len__(self) -> int:
        """Total number of quotes over all symbols."""
        return sum(len(c) for c in self._by_symbol.values())

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def columns(self, symbol: str) -> SymbolQuotes:
        """The raw columns of `symbol`; raises KeyError for a symbol not on the tape."""
        return self._by_symbol[symbol]

    def count(self, symbol: str) -> int:
        return len(self._by_symbol[symbol])

    def index_at(self, symbol: str, ts: datetime) -> int | None:
        """Index of the quote current at `ts` (the last at or before it), or None before the first quote."""
        return self.index_at_ns(symbol, to_ns(ts))

    def index_at_ns(self, symbol: str, ts_ns: int) -> int | None:
        i = self._by_symbol[symbol].position(ts_ns)
        return None if i < 0 else i

    def time_ns(self, symbol: str, i: int) -> int:
        return int(self._by_symbol[symbol].ts[i])

    def time_of(self, symbol: str, i: int) -> datetime:
        return from_ns(int(self._by_symbol[symbol].ts[i]))

    def quote(self, symbol: str, i: int) -> Quote:
        """The domain `Quote` at index `i` (built on demand, then cached)."""
        col = self._by_symbol[symbol]
        if not 0 <= i < len(col):
            raise IndexError(f"{symbol}: quote index {i} outside 0..{len(col) - 1}")
        cached = col.cached_quote(i)
        if cached is None:
            cached = Quote(
                symbol=symbol,
                bid=from_units(int(col.bid[i])),
                bid_size=Decimal(int(col.bid_size[i])),
                ask=from_units(int(col.ask[i])),
                ask_size=Decimal(int(col.ask_size[i])),
                ts=from_ns(int(col.ts[i])),
            )
            col.remember_quote(i, cached)
        return cached

    def quote_at(self, symbol: str, ts: datetime) -> Quote | None:
        """The quote current at `ts`, or None before the symbol's first quote."""
        i = self.index_at(symbol, ts)
        return None if i is None else self.quote(symbol, i)

    def next_marketable(self, symbol: str, side: Side, limit_units: int, start_index: int) -> int | None:
        """First index >= `start_index` at which a limit of `limit_units` is marketable, or None.

        A buy is marketable when 0 < ask <= limit, a sell when bid >= limit > 0. Only tradable quotes count
        (0 < bid < ask, and the last quote of its instant); a one-sided, zero, locked or crossed quote never fills.
        """
        col = self._by_symbol[symbol]
        if side is Side.BUY:
            return col.index_for(side).find(limit_units, start_index)
        if limit_units <= 0:
            return None
        return col.index_for(side).find(-limit_units, start_index)

    def next_tradable(self, symbol: str, start_index: int) -> int | None:
        """First index >= `start_index` of a tradable quote (where a market order would fill)."""
        return self.next_marketable(symbol, Side.BUY, _NEVER - 1, start_index)

    def last_tradable(self, symbol: str, end_index: int) -> int | None:
        """Last index <= `end_index` of a valid quote, 0 < bid < ask (marks; a market buy's cost), or None."""
        two_sided = self._by_symbol[symbol].two_sided_indices()
        k = int(np.searchsorted(two_sided, end_index, side="right")) - 1
        return None if k < 0 else int(two_sided[k])


@dataclass(frozen=True, eq=False)
class SymbolTrades:
    """One symbol's trade prints as int64 columns sorted by `ts` (price in $0.0001 units, size in shares)."""

    symbol: str
    ts: Int64Array
    price: Int64Array
    size: Int64Array

    def __post_init__(self) -> None:
        n = len(self.ts)
        if len(self.price) != n or len(self.size) != n:
            raise ValueError(f"{self.symbol}: trade columns differ in length")
        if n > 1 and bool((np.diff(self.ts) < 0).any()):
            raise ValueError(f"{self.symbol}: trade timestamps are not sorted")

    def __len__(self) -> int:
        return len(self.ts)


class TradeTape:
    """Trade prints per symbol, for fill models that need executed volume (e.g. queue position)."""

    def __init__(self, columns: Iterable[SymbolTrades]) -> None:
        self._by_symbol = {c.symbol: c for c in columns}

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._by_symbol)

    def __len__(self) -> int:
        return sum(len(c) for c in self._by_symbol.values())

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def columns(self, symbol: str) -> SymbolTrades:
        return self._by_symbol[symbol]

    def span_ns(self, symbol: str, t0_ns: int, t1_ns: int) -> slice:
        """Index range of the prints with t0 < ts <= t1 (empty for an unknown symbol)."""
        col = self._by_symbol.get(symbol)
        if col is None:
            return slice(0, 0)
        lo = int(np.searchsorted(col.ts, t0_ns, side="right"))
        hi = int(np.searchsorted(col.ts, t1_ns, side="right"))
        return slice(lo, max(lo, hi))

    def prints_between(self, symbol: str, t0: datetime, t1: datetime) -> SymbolTrades:
        """The prints with t0 < ts <= t1, as column views (no copy)."""
        window = self.span_ns(symbol, to_ns(t0), to_ns(t1))
        col = self._by_symbol.get(symbol)
        if col is None:
            empty = np.zeros(0, dtype=np.int64)
            return SymbolTrades(symbol, empty, empty, empty)
        return SymbolTrades(symbol, col.ts[window], col.price[window], col.size[window])
