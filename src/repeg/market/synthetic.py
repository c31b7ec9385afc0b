"""A seeded synthetic quote generator: a plausible trading day for several symbols, in a few milliseconds.

Each symbol's mid follows a geometric random walk sampled at irregular (Poisson) quote times; the book around it
is 1 to several ticks wide, varying quote to quote, with round-lot sizes. Prices respect the tick rules (a penny
at or above $1.00, $0.0001 below), so a sub-dollar symbol quotes in sub-penny increments. An optional small share
of quotes is invalid (one-sided or zero), as real feeds sometimes are, to exercise the engine's quote checks.

Everything is vectorised numpy and deterministic: the same seed gives the same tape, and each symbol draws from
its own stream, seeded by the run seed and the symbol's position in the list. So appending a symbol leaves the
others unchanged as long as each keeps its number of quotes (`n_quotes` grown by the newcomer's share); inserting
one earlier in the list, or changing the shares, gives the symbols after it different quotes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from repeg.domain.ticks import PRICE_SCALE, to_units
from repeg.errors import ConfigError
from repeg.market.tape import Int64Array, QuoteTape, SymbolQuotes, to_ns

#: The version of the generator's output: what tape a seed and settings make. A journal records it with the
#: synthetic market it ran on (`SyntheticSource.generator_version`); the report and `repeg run --run-id` rebuild
#: or compare a recorded market only when its version is this one. Bump it whenever the same seed and settings
#: would give another tape (a new or reordered random draw, another spread or price model, another quote count);
#: tests/unit/test_synthetic.py pins this version's output and fails until it is bumped. Journals written before
#: the version was recorded hold none: version 1, the generator as it was when runs began recording their market.
GENERATOR_VERSION = 1

#: Default session: a regular US trading day (09:30-16:00 New York in winter).
DEFAULT_START = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
DEFAULT_DURATION = timedelta(hours=6, minutes=30)
_PENNY_UNITS = 100
_DOLLAR_UNITS = PRICE_SCALE
_SECONDS_PER_DAY = 23_400.0
#: The highest mid a walk may reach, in price units: $1e11, ten thousand times the highest start price the
#: settings allow (`simulation.MAX_START_PRICE`), so the far touch stays under the highest price the engine rounds
#: to a tick (`ticks.MAX_PRICE`, $1e12) and far inside int64 (the settings allow a year at a daily_vol of 1, e^37 a
#: standard deviation: the walk went past int64's $9.2e14 and wrapped). A walk past it is refused, not held at it:
#: version 1 drew such a walk unbounded, and a run may have recorded it; a tape it is drawn otherwise would need a
#: new GENERATOR_VERSION, which would leave every journal's market unrebuildable.
_MAX_MID_UNITS = 10**11 * PRICE_SCALE


class SyntheticSymbol(BaseModel):
    """How one synthetic symbol behaves. `daily_vol` is the standard deviation of the day's log return."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = Field(min_length=1)
    start_price: Decimal = Field(gt=0)
    daily_vol: float = Field(default=0.02, ge=0, le=1)
    #: Mean quoted spread in ticks (the spread is 1 + a geometric draw, so always at least one tick).
    mean_spread_ticks: float = Field(default=2.0, ge=1, le=50)
    #: Relative quote intensity: symbols share the tape's quotes in proportion to it.
    activity: float = Field(default=1.0, gt=0)


def synthetic_symbols(count: int, *, seed: int, prefix: str = "SYM") -> list[SyntheticSymbol]:
    """`count` symbols with log-uniform prices between $0.50 and $500 (a few sub-dollar ones among many)."""
    rng = np.random.default_rng([seed, 0x5EED])
    prices = np.exp(rng.uniform(np.log(0.5), np.log(500.0), count))
    width = max(3, len(str(count - 1)))
    return [
        SyntheticSymbol(
            symbol=f"{prefix}{k:0{width}d}",
            start_price=_on_tick(float(price)),
            daily_vol=float(rng.uniform(0.01, 0.03)),
            mean_spread_ticks=float(rng.uniform(1.2, 4.0)),
            activity=float(rng.uniform(0.5, 1.5)),
        )
        for k, price in enumerate(prices)
    ]


def _on_tick(price: float) -> Decimal:
    """A float draw turned into a legal Decimal price (generation only, never order pricing)."""
    return Decimal(f"{price:.2f}") if price >= 1.0 else Decimal(f"{price:.4f}")


def synthetic_tape(
    symbols: Sequence[SyntheticSymbol],
    *,
    seed: int,
    n_quotes: int,
    start: datetime = DEFAULT_START,
    duration: timedelta = DEFAULT_DURATION,
    invalid_rate: float = 0.0,
) -> QuoteTape:
    """A tape of about `n_quotes` quotes in total over `[start, start + duration)`, shared among `symbols`.

    Every symbol gets at least one quote, and its first quote is always valid. `invalid_rate` in [0, 0.5] is the
    share of later quotes made one-sided or zero.
    """
    if not symbols:
        raise ValueError("synthetic_tape needs at least one symbol")
    if n_quotes < len(symbols):
        raise ValueError(f"n_quotes={n_quotes} is fewer than one per symbol ({len(symbols)})")
    if not 0.0 <= invalid_rate <= 0.5:
        raise ValueError(f"invalid_rate={invalid_rate} must be within [0, 0.5]")
    if duration <= timedelta(0):
        raise ValueError(f"duration={duration} must be positive")
    weights = np.array([s.activity for s in symbols])
    counts = np.maximum(1, np.floor(weights / weights.sum() * n_quotes)).astype(np.int64)
    return QuoteTape(
        _symbol_quotes(
            spec,
            int(n),
            rng=np.random.default_rng([seed, k]),
            start=start,
            duration=duration,
            invalid_rate=invalid_rate,
        )
        for k, (spec, n) in enumerate(zip(symbols, counts, strict=True))
    )


def _symbol_quotes(
    spec: SyntheticSymbol,
    n: int,
    *,
    rng: np.random.Generator,
    start: datetime,
    duration: timedelta,
    invalid_rate: float,
) -> SymbolQuotes:
    span_us = duration // timedelta(microseconds=1)
    offsets_us = np.sort(rng.integers(0, span_us, n))
    offsets_us[0] = 0
    ts = to_ns(start) + offsets_us * 1000
    mid = _mid_path(spec, offsets_us, rng)
    bid, ask = _book(mid, spec.mean_spread_ticks, rng)
    bid_size = 100 * rng.geometric(0.3, n).astype(np.int64)
    ask_size = 100 * rng.geometric(0.3, n).astype(np.int64)
    if invalid_rate > 0:
        bid, ask = _spoil(bid, ask, invalid_rate, rng)
    return SymbolQuotes(spec.symbol, ts.astype(np.int64), bid, bid_size, ask, ask_size)


def _mid_path(spec: SyntheticSymbol, offsets_us: Int64Array, rng: np.random.Generator) -> NDArray[np.float64]:
    """Mid in (fractional) price units: a driftless geometric walk with variance proportional to elapsed time.

    A `ConfigError` naming the symbol's daily_vol when the walk passes `_MAX_MID_UNITS`."""
    dt_days = np.diff(offsets_us, prepend=0) / 1e6 / _SECONDS_PER_DAY
    steps = rng.standard_normal(len(offsets_us)) * spec.daily_vol * np.sqrt(dt_days)
    steps[0] = 0.0
    start = float(to_units(spec.start_price))
    walk = np.cumsum(steps)
    if float(walk.max()) > np.log(_MAX_MID_UNITS / start):
        raise ConfigError(
            f"simulator.market.symbols.{spec.symbol}.daily_vol",
            spec.daily_vol,
            f"walks {spec.symbol} from {spec.start_price} past $100,000,000,000 (ten thousand times the highest "
            "start price) with this seed before the session ends: lower it, or duration_seconds",
        )
    return start * np.exp(walk)


def _book(
    mid: NDArray[np.float64], mean_spread_ticks: float, rng: np.random.Generator
) -> tuple[Int64Array, Int64Array]:
    """Bid and ask on the legal grid around `mid`, `1 + geometric` ticks apart (at least one tick)."""
    n = len(mid)
    extra = rng.geometric(1.0 / mean_spread_ticks, n) - 1 if mean_spread_ticks > 1 else np.zeros(n, np.int64)
    spread_ticks = 1 + extra.astype(np.int64)
    tick = np.where(mid >= _DOLLAR_UNITS, _PENNY_UNITS, 1).astype(np.int64)
    half = spread_ticks * tick / 2.0
    bid = np.maximum(np.floor((mid - half) / tick).astype(np.int64) * tick, 1)
    # A bid at or above $1 sits on the penny grid already; a sub-dollar bid may still use sub-penny ticks.
    ask = bid + spread_ticks * tick
    ask = np.where(ask >= _DOLLAR_UNITS, -(-ask // _PENNY_UNITS) * _PENNY_UNITS, ask)
    return bid.astype(np.int64), ask.astype(np.int64)


def _spoil(
    bid: Int64Array, ask: Int64Array, rate: float, rng: np.random.Generator
) -> tuple[Int64Array, Int64Array]:
    """Blank one or both sides of a random `rate` share of quotes (never the first)."""
    n = len(bid)
    spoiled = rng.random(n) < rate
    spoiled[0] = False
    kind = rng.integers(0, 3, n)  # 0: no bid, 1: no ask, 2: neither
    bid = np.where(spoiled & (kind != 1), 0, bid)
    ask = np.where(spoiled & (kind != 0), 0, ask)
    return bid.astype(np.int64), ask.astype(np.int64)
