"""QuoteTape: lookup by time, on-demand quotes, and the marketability index against brute force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repeg.domain.orders import Side
from repeg.market.tape import QuoteTape, SymbolTrades, TradeTape, from_ns, to_ns

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
T0_NS = to_ns(T0)


def _tape(ts_us: object, bids: object, asks: object, symbol: str = "ABC") -> QuoteTape:
    ts = T0_NS + np.asarray(ts_us, dtype=np.int64) * 1000
    n = len(ts)
    return QuoteTape.from_arrays(
        {
            symbol: {
                "ts": ts,
                "bid": np.array(bids, dtype=np.int64),
                "bid_size": np.full(n, 100, dtype=np.int64),
                "ask": np.array(asks, dtype=np.int64),
                "ask_size": np.full(n, 200, dtype=np.int64),
            }
        }
    )


def _brute(
    ts: np.ndarray, bid: np.ndarray, ask: np.ndarray, *, side: Side, limit: int, start: int
) -> int | None:
    for i in range(max(start, 0), len(ts)):
        if i + 1 < len(ts) and ts[i + 1] == ts[i]:
            continue  # superseded at the same instant
        if bid[i] <= 0 or bid[i] >= ask[i]:
            continue  # one-sided, zero, locked or crossed: no market
        if side is Side.BUY and ask[i] <= limit:
            return i
        if side is Side.SELL and limit > 0 and bid[i] >= limit:
            return i
    return None


def test_ns_round_trip_is_exact_to_the_microsecond() -> None:
    when = datetime(2018, 1, 2, 14, 30, 0, 115001, tzinfo=UTC)
    assert from_ns(to_ns(when)) == when
    assert to_ns(when) % 1000 == 0


def test_to_ns_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_ns(datetime(2024, 1, 2))  # noqa: DTZ001


def test_index_at_returns_last_quote_at_or_before_time() -> None:
    tape = _tape([0, 10, 10, 20], [100, 101, 102, 103], [200, 201, 202, 203])
    assert tape.index_at("ABC", T0 - timedelta(microseconds=1)) is None
    assert tape.index_at("ABC", T0) == 0
    assert tape.index_at("ABC", T0 + timedelta(microseconds=10)) == 2
    assert tape.index_at("ABC", T0 + timedelta(microseconds=19)) == 2
    assert tape.index_at("ABC", T0 + timedelta(days=1)) == 3


def test_quote_builds_decimal_prices_from_units() -> None:
    tape = _tape([0, 5], [1_583_900, 9_999], [1_585_000, 10_100])
    quote = tape.quote("ABC", 0)
    assert quote.bid == Decimal("158.39")
    assert quote.ask == Decimal("158.5")
    assert quote.bid_size == Decimal(100)
    assert quote.ts == T0
    assert tape.quote("ABC", 1).bid == Decimal("0.9999")
    assert tape.quote("ABC", 0) is quote


def test_quote_at_before_first_quote_is_none() -> None:
    tape = _tape([5], [100], [200])
    assert tape.quote_at("ABC", T0) is None
    assert tape.quote_at("ABC", T0 + timedelta(seconds=1)) == tape.quote("ABC", 0)


def test_quote_index_out_of_range_raises() -> None:
    with pytest.raises(IndexError):
        _tape([0], [100], [200]).quote("ABC", 1)


def test_start_end_and_symbols_span_all_symbols() -> None:
    a = _tape([5, 50], [1, 1], [2, 2], "A").columns("A")
    b = _tape([1, 20], [1, 1], [2, 2], "B").columns("B")
    tape = QuoteTape([a, b])
    assert tape.symbols == ("A", "B")
    assert tape.start == T0 + timedelta(microseconds=1)
    assert tape.end == T0 + timedelta(microseconds=50)
    assert len(tape) == 4
    assert "A" in tape
    assert "Z" not in tape


def test_unsorted_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="not sorted"):
        _tape([5, 4], [1, 1], [2, 2])


def test_duplicate_symbol_is_refused() -> None:
    col = _tape([1], [1], [2]).columns("ABC")
    with pytest.raises(ValueError, match="twice"):
        QuoteTape([col, col])


def test_buy_is_marketable_only_at_or_below_limit_on_two_sided_quote() -> None:
    tape = _tape([0, 1, 2, 3, 4], [90, 0, 95, 95, 95], [110, 100, 0, 105, 100])
    assert tape.next_marketable("ABC", Side.BUY, 100, 0) == 4
    assert tape.next_marketable("ABC", Side.BUY, 105, 0) == 3
    assert tape.next_marketable("ABC", Side.BUY, 99, 0) is None


def test_sell_is_marketable_only_at_or_above_limit_with_positive_bid() -> None:
    tape = _tape([0, 1, 2], [100, 120, 0], [0, 130, 0])
    assert tape.next_marketable("ABC", Side.SELL, 100, 0) == 1
    assert tape.next_marketable("ABC", Side.SELL, 121, 0) is None
    assert tape.next_marketable("ABC", Side.SELL, 0, 0) is None


def test_a_quote_superseded_at_the_same_instant_never_fills() -> None:
    tape = _tape([0, 1, 1], [90, 90, 90], [110, 100, 110])
    assert tape.next_marketable("ABC", Side.BUY, 100, 0) is None


def test_next_tradable_skips_one_sided_and_zero_quotes() -> None:
    tape = _tape([0, 1, 2, 3], [0, 5, 0, 5], [0, 0, 9, 9])
    assert tape.next_tradable("ABC", 0) == 3
    assert tape.next_tradable("ABC", 4) is None
    assert tape.last_tradable("ABC", 2) is None
    assert tape.last_tradable("ABC", 10) == 3


def test_last_tradable_counts_the_index_it_is_given() -> None:
    # "Last index <= end_index": the one at end_index itself, when valid, is the answer (its mark, a market
    # buy's cost), not the valid quote before it.
    tape = _tape([0, 1, 2, 3], [5, 0, 5, 5], [9, 0, 9, 9])
    assert tape.last_tradable("ABC", 2) == 2
    assert tape.last_tradable("ABC", 3) == 3
    assert tape.last_tradable("ABC", 1) == 0


def test_quotes_a_nanosecond_feed_puts_within_one_microsecond_share_one_instant() -> None:
    # Clocks tick in microseconds: a marketable ask at +100 ns replaced at +900 ns by one that is not is never
    # current at any instant the engine can see, so it fills nothing (the tests above only use whole microseconds).
    ts = np.array([T0_NS + 100, T0_NS + 900, T0_NS + 5_000], dtype=np.int64)
    book = {"bid": [90, 90, 90], "ask": [100, 110, 100]}
    tape = QuoteTape.from_arrays(
        {
            "ABC": {
                "ts": ts,
                "bid": np.array(book["bid"], dtype=np.int64),
                "bid_size": np.full(3, 100, dtype=np.int64),
                "ask": np.array(book["ask"], dtype=np.int64),
                "ask_size": np.full(3, 200, dtype=np.int64),
            }
        }
    )
    assert tape.next_marketable("ABC", Side.BUY, 100, 0) == 2


def test_next_tradable_skips_locked_and_crossed_quotes() -> None:
    tape = _tape([0, 1, 2], [9, 10, 8], [9, 8, 9])
    assert tape.next_tradable("ABC", 0) == 2
    assert tape.next_marketable("ABC", Side.BUY, 9, 0) == 2
    assert tape.next_marketable("ABC", Side.SELL, 8, 0) == 2


@st.composite
def _books(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 200))
    ts = np.cumsum(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    bid = np.array(draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)))
    ask = np.array(draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)))
    return ts.astype(np.int64), bid.astype(np.int64), ask.astype(np.int64)


@settings(max_examples=150, deadline=None)
@given(book=_books(), side=st.sampled_from(Side), limit=st.integers(-1, 13), start=st.integers(-2, 210))
def test_next_marketable_equals_brute_force_on_small_books(
    book: tuple[np.ndarray, np.ndarray, np.ndarray], side: Side, limit: int, start: int
) -> None:
    ts, bid, ask = book
    tape = _tape(list(ts), list(bid), list(ask))
    assert tape.next_marketable("ABC", side, limit, start) == _brute(
        ts, bid, ask, side=side, limit=limit, start=start
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4_000, 300_000), side=st.sampled_from(Side))
def test_next_marketable_equals_vectorised_brute_force_on_deep_books(seed: int, n: int, side: Side) -> None:
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(0, 3, n)).astype(np.int64)
    mid = 10_000 + np.cumsum(rng.integers(-2, 3, n))
    bid = np.where(rng.random(n) < 0.02, 0, mid - rng.integers(1, 4, n)).astype(np.int64)
    ask = (mid + rng.integers(1, 4, n)).astype(np.int64)
    tape = _tape(ts, bid, ask)
    superseded = np.zeros(n, dtype=bool)
    superseded[:-1] = ts[1:] == ts[:-1]
    ok = (bid > 0) & (bid < ask) & ~superseded
    for _ in range(25):
        start = int(rng.integers(0, n + 10))
        limit = int(rng.integers(mid.min() - 5, mid.max() + 5))
        hit = ok & ((ask <= limit) if side is Side.BUY else (bid >= limit))
        hit[: min(start, n)] = False
        expected = int(hit.argmax()) if hit.any() else None
        assert tape.next_marketable("ABC", side, limit, start) == expected


def test_prints_between_is_half_open_on_the_left() -> None:
    ns = np.array([T0_NS, T0_NS + 1000, T0_NS + 2000], dtype=np.int64)
    trades = TradeTape([SymbolTrades("ABC", ns, np.array([1, 2, 3]), np.array([10, 20, 30]))])
    window = trades.prints_between("ABC", T0, T0 + timedelta(microseconds=2))
    assert list(window.price) == [2, 3]
    assert len(trades.prints_between("ZZZ", T0, T0 + timedelta(seconds=1))) == 0
    assert trades.symbols == ("ABC",)
    assert len(trades) == 3


@settings(max_examples=50, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 3), min_size=1, max_size=50),
    queries=st.lists(st.integers(-2, 160), min_size=1, max_size=30),
)
def test_index_at_agrees_with_binary_search_for_any_query_order(gaps: list[int], queries: list[int]) -> None:
    ts = np.cumsum(gaps)
    tape = _tape(ts, np.ones(len(ts)), np.full(len(ts), 2))
    for q in queries:
        expected = int(np.searchsorted(ts, q, side="right")) - 1
        assert tape.index_at_ns("ABC", T0_NS + q * 1000) == (None if expected < 0 else expected)
