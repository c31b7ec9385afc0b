"""Synthetic quotes: deterministic, legal prices, sane books, and the requested amount of invalid data."""

from __future__ import annotations

import hashlib
import tomllib
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest

from repeg.domain.ticks import from_units, is_legal_price
from repeg.errors import ConfigError, MarketDataError
from repeg.market.synthetic import (
    DEFAULT_START,
    GENERATOR_VERSION,
    SyntheticSymbol,
    synthetic_symbols,
    synthetic_tape,
)
from repeg.market.tape import QuoteTape, to_ns
from repeg.simulation import market_from_mapping, synthetic_market, synthetic_source, synthetic_tape_of

LARGE = SyntheticSymbol(symbol="BIG", start_price=Decimal("157.00"))
SMALL = SyntheticSymbol(symbol="TINY", start_price=Decimal("0.4321"), mean_spread_ticks=3)


def _columns_equal(a: object, b: object) -> bool:
    names = ("ts", "bid", "ask", "bid_size", "ask_size")
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in names)


def test_same_seed_gives_the_same_tape() -> None:
    one = synthetic_tape([LARGE, SMALL], seed=7, n_quotes=5_000)
    two = synthetic_tape([LARGE, SMALL], seed=7, n_quotes=5_000)
    assert _columns_equal(one.columns("BIG"), two.columns("BIG"))
    assert _columns_equal(one.columns("TINY"), two.columns("TINY"))


def test_different_seeds_give_different_tapes() -> None:
    one = synthetic_tape([LARGE], seed=1, n_quotes=2_000)
    two = synthetic_tape([LARGE], seed=2, n_quotes=2_000)
    assert not _columns_equal(one.columns("BIG"), two.columns("BIG"))


def test_adding_a_symbol_leaves_the_others_unchanged() -> None:
    alone = synthetic_tape([LARGE], seed=3, n_quotes=1_000)
    with_other = synthetic_tape([LARGE, SMALL], seed=3, n_quotes=2_000)
    assert _columns_equal(alone.columns("BIG"), with_other.columns("BIG"))


def test_quotes_are_shared_among_symbols_by_activity() -> None:
    busy = SyntheticSymbol(symbol="BUSY", start_price=Decimal(20), activity=3.0)
    tape = synthetic_tape([LARGE, busy], seed=1, n_quotes=4_000)
    assert tape.count("BIG") == 1_000
    assert tape.count("BUSY") == 3_000


def test_times_are_sorted_inside_the_session() -> None:
    tape = synthetic_tape([LARGE], seed=4, n_quotes=10_000, duration=timedelta(minutes=10))
    ts = tape.columns("BIG").ts
    assert ts[0] == to_ns(DEFAULT_START)
    assert bool(np.all(np.diff(ts) >= 0))
    assert ts[-1] < to_ns(DEFAULT_START + timedelta(minutes=10))
    assert len(np.unique(np.diff(ts))) > 100  # irregular spacing


@pytest.mark.parametrize(
    "spec", [LARGE, SMALL, SyntheticSymbol(symbol="EDGE", start_price=Decimal("0.9990"))]
)
def test_every_price_is_on_the_legal_tick_grid(spec: SyntheticSymbol) -> None:
    cols = synthetic_tape([spec], seed=5, n_quotes=20_000).columns(spec.symbol)
    prices = np.unique(np.concatenate([cols.bid, cols.ask]))
    assert all(is_legal_price(from_units(int(p))) for p in prices)


def test_valid_books_have_spreads_of_one_to_several_ticks() -> None:
    cols = synthetic_tape([LARGE], seed=6, n_quotes=20_000).columns("BIG")
    spread_ticks = (cols.ask - cols.bid) // 100
    assert spread_ticks.min() >= 1
    assert 1.5 < spread_ticks.mean() < 3.0
    assert len(np.unique(spread_ticks)) >= 3


def test_sub_dollar_symbol_quotes_in_sub_penny_increments() -> None:
    cols = synthetic_tape([SMALL], seed=8, n_quotes=5_000).columns("TINY")
    assert cols.bid.min() > 0
    assert cols.ask.max() < 10_000
    assert bool(np.any(cols.bid % 100 != 0))


def test_sizes_are_positive_round_lots() -> None:
    cols = synthetic_tape([LARGE], seed=9, n_quotes=5_000).columns("BIG")
    assert cols.bid_size.min() >= 100
    assert bool(np.all(cols.ask_size % 100 == 0))


def test_no_invalid_quotes_by_default() -> None:
    cols = synthetic_tape([LARGE, SMALL], seed=10, n_quotes=10_000).columns("TINY")
    assert bool(np.all((cols.bid > 0) & (cols.ask > cols.bid)))


def test_invalid_rate_blanks_about_that_share_of_quotes_but_never_the_first() -> None:
    cols = synthetic_tape([LARGE], seed=11, n_quotes=50_000, invalid_rate=0.02).columns("BIG")
    invalid = (cols.bid == 0) | (cols.ask == 0)
    assert not invalid[0]
    assert 0.015 < invalid.mean() < 0.025
    assert bool(np.any((cols.bid == 0) & (cols.ask > 0)))
    assert bool(np.any((cols.bid == 0) & (cols.ask == 0)))


def test_synthetic_symbols_are_deterministic_and_legal() -> None:
    specs = synthetic_symbols(50, seed=1)
    assert specs == synthetic_symbols(50, seed=1)
    assert len({s.symbol for s in specs}) == 50
    assert all(is_legal_price(s.start_price) for s in specs)
    assert any(s.start_price < 1 for s in synthetic_symbols(200, seed=2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_quotes": 1}, "fewer than one per symbol"),
        ({"n_quotes": 10, "invalid_rate": 0.9}, "invalid_rate"),
        ({"n_quotes": 10, "duration": timedelta(0)}, "duration"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synthetic_tape([LARGE, SMALL], seed=1, **kwargs)  # type: ignore[arg-type]


def test_no_symbols_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one symbol"):
        synthetic_tape([], seed=1, n_quotes=10)


def test_market_symbol_price_finer_than_the_tape_unit_is_a_config_error() -> None:
    # Accepted before, it then broke the run with a bare ValueError (exit 1, "internal error").
    with pytest.raises(ConfigError) as info:
        market_from_mapping({"symbols": {"ABC": {"price": 157.00001}}})
    assert (info.value.key, info.value.value) == ("simulator.market.symbols.ABC.price", 157.00001)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (tomllib.loads("start = 2024-01-02T14:30:00"), "simulator.market.start"),  # a local date-time
        ({"duration_seconds": 1e-9}, "simulator.market.duration_seconds"),  # under the clock's microsecond
    ],
)
def test_market_settings_the_generator_cannot_use_are_config_errors(
    data: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        market_from_mapping(data)
    assert info.value.key == key


@pytest.mark.parametrize("key", ["duration_seconds", "quote_interval_seconds"])
def test_market_boolean_time_is_refused_not_read_as_one_second(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        market_from_mapping({key: True})
    assert (info.value.key, info.value.value) == (f"simulator.market.{key}", True)


@pytest.mark.parametrize("seconds", [float("inf"), 1e300, 366 * 24 * 3600 + 1.0])
def test_market_duration_longer_than_a_year_is_refused(seconds: float) -> None:
    # inf and 1e300 validated, then broke the run with a bare OverflowError building the tape.
    with pytest.raises(ConfigError) as info:
        market_from_mapping({"duration_seconds": seconds, "quote_interval_seconds": 1e6})
    assert info.value.key == "simulator.market.duration_seconds"


@pytest.mark.parametrize(
    "data",
    [
        {"quote_interval_seconds": 1e-7},  # 3.6e10 quotes a symbol: a MemoryError (268 GiB) mid-run
        {"duration_seconds": 1000.0, "quote_interval_seconds": 0.0009},  # just over a million
    ],
)
def test_market_of_more_than_a_million_quotes_a_symbol_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        market_from_mapping(data)
    assert info.value.key == "simulator.market.quote_interval_seconds"


def test_market_whose_activities_give_one_symbol_more_than_a_million_quotes_is_refused() -> None:
    # Symbols share duration / interval quotes each on average, in proportion to their activity: an active
    # symbol beside a quiet one got nearly two million quotes under settings validated as at most one million a
    # symbol (with more symbols, without bound: the memory exhaustion the cap is there to prevent).
    market = market_from_mapping(
        {
            "duration_seconds": 100.0,
            "quote_interval_seconds": 0.0001,
            "symbols": {"AAA": {"price": "10.00"}, "BBB": {"price": "10.00", "activity": 100}},
        }
    )
    with pytest.raises(ConfigError) as info:
        synthetic_market(market, [], seed=1)
    assert (info.value.key, info.value.value) == ("simulator.market.symbols.BBB.activity", 100)


def test_an_infinite_symbol_activity_is_refused_naming_it() -> None:
    # `activity = inf` (valid TOML) was accepted, and building the tape then raised a bare ValueError ("cannot
    # convert float NaN to integer": a traceback, exit 1) instead of a ConfigError naming the key.
    with pytest.raises(ConfigError) as info:
        market_from_mapping({"symbols": {"AAA": {"price": "10.00", "activity": float("inf")}}})
    assert info.value.key == "simulator.market.symbols.AAA.activity"


def test_activities_adding_up_past_the_largest_float_are_refused_naming_one() -> None:
    # Two symbols of activity 1e308 overflowed the activities' sum: each got a single quote for the whole run,
    # without a word.
    symbols = {name: {"price": "10.00", "activity": 1e308} for name in ("AAA", "BBB")}
    market = market_from_mapping({"symbols": symbols})
    with pytest.raises(ConfigError) as info:
        synthetic_market(market, [], seed=1)
    assert info.value.key == "simulator.market.symbols.AAA.activity"


def test_market_of_exactly_a_million_quotes_a_symbol_is_accepted() -> None:
    market = market_from_mapping({"duration_seconds": 1000.0, "quote_interval_seconds": 0.001})
    assert market.quote_interval_seconds == 0.001


@pytest.mark.parametrize("start", ["3000-01-01T00:00:00Z", "1600-01-01T00:00:00Z", "2200-01-01T00:00:01Z"])
def test_market_start_outside_1900_to_2200_is_refused(start: str) -> None:
    # The tape counts nanoseconds in an int64: a start in 3000 or 1600 validated, then broke the run with a bare
    # OverflowError ("Python int too large to convert to C long"), exit 1.
    with pytest.raises(ConfigError) as info:
        market_from_mapping({"start": start})
    assert info.value.key == "simulator.market.start"


def test_market_start_at_the_bounds_is_accepted() -> None:
    for start in ("1900-01-01T00:00:00Z", "2200-01-01T00:00:00Z"):
        assert market_from_mapping({"start": start}).start.year in (1900, 2200)


@pytest.mark.parametrize("key", ["daily_vol", "spread_ticks", "activity"])
def test_market_symbol_boolean_is_refused_not_read_as_one(key: str) -> None:
    # TOML `daily_vol = true` was read as 1.0 (a 100% daily volatility).
    with pytest.raises(ConfigError) as info:
        market_from_mapping({"symbols": {"ABC": {"price": 10, key: True}}})
    assert (info.value.key, info.value.value) == (f"simulator.market.symbols.ABC.{key}", True)


# --- the generator's version -------------------------------------------------------------------------------

#: The version whose output `_GOLDEN_SHA256` pins, and that output: SHA-256 of the synthetic market below.
_GOLDEN_VERSION = 1
_GOLDEN_SHA256 = "d5795f406042e2fcc57107b57075b2c5c46c19519d1e2db7cd43c90c580f741d"


def _tape_sha256(tape: QuoteTape) -> str:
    """SHA-256 of every symbol's name and columns, as little-endian int64, in the tape's order."""
    digest = hashlib.sha256()
    for symbol in tape.symbols:
        columns = tape.columns(symbol)
        digest.update(symbol.encode() + b"\0")
        for name in ("ts", "bid", "bid_size", "ask", "ask_size"):
            digest.update(np.ascontiguousarray(getattr(columns, name), dtype="<i8").tobytes())
    return digest.hexdigest()


def test_the_generator_still_makes_the_tape_its_version_promises() -> None:
    # A journal records the seed and settings of its synthetic market and the generator's version; the report and
    # `repeg run --run-id` trust that the same version makes the same tape. A sub-dollar symbol, an unlisted one
    # (price from its name), invalid quotes and uneven activity go through every draw of `synthetic_market`.
    market = market_from_mapping(
        {
            "duration_seconds": 600.0,
            "quote_interval_seconds": 2.0,
            "invalid_rate": 0.1,
            "symbols": {"TINY": {"price": "0.4321", "spread_ticks": 3, "activity": 0.5}},
        }
    )
    found = _tape_sha256(synthetic_market(market, ["BIG", "TINY"], seed=11))
    assert (GENERATOR_VERSION, found) == (_GOLDEN_VERSION, _GOLDEN_SHA256), (
        f"The synthetic generator's output for a fixed seed and settings is now SHA-256 {found}; version "
        f"{_GOLDEN_VERSION} made {_GOLDEN_SHA256}. Journals record only the seed, settings and generator version, "
        "so a changed output would redraw every recorded synthetic run as another market under the same claim. "
        f"If the change is intended, bump repeg.market.synthetic.GENERATOR_VERSION (to {_GOLDEN_VERSION + 1}) and "
        "pin the new version and SHA-256 here; if not (a numpy upgrade can change draws too), undo it."
    )


def test_a_synthetic_market_of_another_generator_version_is_not_generated_again() -> None:
    recorded = synthetic_source(market_from_mapping({}), ["AAA"], seed=1).model_copy(
        update={"generator_version": GENERATOR_VERSION + 1}
    )
    with pytest.raises(MarketDataError, match=f"generator version {GENERATOR_VERSION + 1}"):
        synthetic_tape_of(recorded)


def test_a_version_one_synthetic_market_is_stored_as_journals_stored_it_before_versions() -> None:
    # Absent means version 1: older repeg versions (extra fields forbidden) still read these journals.
    recorded = synthetic_source(market_from_mapping({}), ["AAA"], seed=1)
    assert recorded.generator_version == 1
    assert "generator_version" not in recorded.model_dump_json()


def test_a_walk_the_settings_allow_never_leaves_the_prices_the_engine_can_trade() -> None:
    # The highest start price ($10M) at the highest daily_vol (1) over the longest session (a year) passes
    # validation; seed 1's walk rose past int64's units ($9.2e14): the cast wrapped and numpy warned "invalid
    # value encountered in cast", and the quotes dropped from $9e14 to a $0.0001 bid, with prices on the way past
    # $1e12, which the engine's tick rounding refuses (ticks.MAX_PRICE). The walk is refused before any cast.
    import warnings

    from repeg.config import MAX_SECONDS
    from repeg.simulation import MAX_QUOTES_PER_SYMBOL

    market = market_from_mapping(
        {
            "duration_seconds": MAX_SECONDS,
            "quote_interval_seconds": MAX_SECONDS / MAX_QUOTES_PER_SYMBOL,
            "symbols": {"AAA": {"price": 10_000_000, "daily_vol": 1.0}},
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigError, match=r"walks AAA from 10000000 past \$100,000,000,000"):
            synthetic_market(market, ["AAA"], seed=1)


def test_a_walk_past_the_bound_is_refused_not_rebuilt_otherwise_than_version_one_drew_it() -> None:
    # Seed 5 of a $10M symbol at daily_vol 1 over 20 days: generator version 1 walked it up to $8e11, under the
    # $1e12 the engine trades, and a run could record it. Holding the mid at $1e11 (1713317) without a new
    # version rebuilt that recorded market for the report with 77 other quotes, silently; refusing the walk
    # leaves every tape version 1 makes as it was, and the report says the market cannot be rebuilt.
    market = market_from_mapping(
        {
            "duration_seconds": 20 * 86_400,
            "quote_interval_seconds": 20 * 86_400 / 2000,
            "symbols": {"AAA": {"price": 10_000_000, "daily_vol": 1.0}},
        }
    )
    with pytest.raises(ConfigError) as refused:
        synthetic_market(market, ["AAA"], seed=5)
    assert (refused.value.key, refused.value.value) == ("simulator.market.symbols.AAA.daily_vol", 1.0)
