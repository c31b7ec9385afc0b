"""What a report reads: a saved backtest or comparison, and the market series to draw behind its orders.

A report is drawn from a `repeg.lab.models` file alone; the quotes and trades behind it are optional (when the
files a result names are not at hand the report still shows orders, costs and tables, and says the market path
is missing). Market data is held as the columnar int64 units of the tape ($0.0001 per unit) and only turned
into float dollars at the plotting edge, where it is display, never arithmetic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from repeg.domain.plan import plan_symbol
from repeg.errors import ReportError
from repeg.lab.models import SCHEMA_VERSION, BacktestResult, CompareResult, DataRef
from repeg.market.loaders import load_quotes, load_trades
from repeg.market.tape import QuoteTape, TradeTape

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
DT64 = npt.NDArray[np.datetime64]

#: Default upper bounds on points drawn: beyond them a series is sampled (see `decimate`). Quotes are one SVG
#: path each (cheap); every trade print is its own SVG marker (dear), hence the lower bound.
DEFAULT_MAX_QUOTES = 50_000
DEFAULT_MAX_TRADES = 20_000


@dataclass(frozen=True)
class MarketSeries:
    """Top of book and trade prints of one symbol-day, columnar: nanosecond UTC timestamps, $0.0001 units."""

    quote_ts_ns: I64
    bid_units: I64
    ask_units: I64
    trade_ts_ns: I64
    trade_units: I64
    #: How many raw points each drawn point stands for (1 = every quote / print drawn).
    quote_stride: int = 1
    trade_stride: int = 1


@dataclass(frozen=True)
class ReportInput:
    """A loaded result: one comparison (several runs) or one backtest (wrapped as a single run)."""

    source: str
    runs: tuple[BacktestResult, ...]
    compare: CompareResult | None


def load_result(path: Path) -> ReportInput:
    """Read a `BacktestResult` or `CompareResult` JSON file; refuse a schema version this code does not know."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(str(path), f"cannot read result: {exc}") from exc
    except RecursionError:  # arrays nested beyond the parser's depth: this file is at fault, not the caller
        raise ReportError(str(path), "nested too deeply") from None
    if not isinstance(raw, dict):
        raise ReportError(str(path), "a result file must hold one JSON object")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportError(str(path), f"schema_version {version!r} is not {SCHEMA_VERSION!r}")
    try:
        if "runs" in raw:
            compare = CompareResult.model_validate(raw)
            if not compare.runs:
                raise ReportError(str(path), "a comparison with no runs: nothing to report")
            return ReportInput(source=str(path), runs=compare.runs, compare=compare)
        single = BacktestResult.model_validate(raw)
    except ValidationError as exc:
        raise ReportError(str(path), f"not a repeg.lab result: {exc.error_count()} errors") from exc
    return ReportInput(source=str(path), runs=(single,), compare=None)


def stride_for(n: int, max_points: int) -> int:
    """The smallest step that keeps at most `max_points` of `n` points (1 when all fit)."""
    if max_points <= 0:
        raise ValueError(f"max_points must be positive, got {max_points}")
    return max(1, -(-n // max_points))


def decimate(
    series: MarketSeries, max_quotes: int = DEFAULT_MAX_QUOTES, max_trades: int = DEFAULT_MAX_TRADES
) -> MarketSeries:
    """Keep every k-th quote and every j-th print so that at most `max_quotes` / `max_trades` are drawn.

    Sampling keeps real observed states (a quote that was the top of book at its time), never an average, so
    every drawn point is a price the market actually showed; the stride is reported in the figure legend.
    """
    q_stride = stride_for(len(series.quote_ts_ns), max_quotes)
    t_stride = stride_for(len(series.trade_ts_ns), max_trades)
    return MarketSeries(
        quote_ts_ns=series.quote_ts_ns[::q_stride],
        bid_units=series.bid_units[::q_stride],
        ask_units=series.ask_units[::q_stride],
        trade_ts_ns=series.trade_ts_ns[::t_stride],
        trade_units=series.trade_units[::t_stride],
        quote_stride=q_stride * series.quote_stride,
        trade_stride=t_stride * series.trade_stride,
    )


def as_datetime64(ts_ns: I64) -> DT64:
    """Nanosecond epoch integers as numpy datetime64[ns] (UTC), the x values plotly draws as times."""
    return ts_ns.astype("datetime64[ns]")


def units_to_dollars(units: I64) -> F64:
    """$0.0001 integer units as float dollars: for drawing only (plot coordinates are floats)."""
    return units.astype(np.float64) / 10_000.0


def market_from_tapes(quotes: QuoteTape, trades: TradeTape | None, symbol: str) -> MarketSeries:
    """One symbol's columns out of the tapes (views, no copy); no prints when `trades` lacks the symbol."""
    q = quotes.columns(symbol)
    empty = np.zeros(0, dtype=np.int64)
    if trades is None or symbol not in trades:
        return MarketSeries(q.ts, q.bid, q.ask, empty, empty)
    t = trades.columns(symbol)
    return MarketSeries(q.ts, q.bid, q.ask, t.ts, t.price)


def _locate(name: str, result_dir: Path) -> list[Path]:
    """Where a data file named by a result may be: as given (absolute or from the working directory), then beside
    the result; each existing file once."""
    found: list[Path] = []
    for candidate in (Path(name), result_dir / name):
        if candidate.is_file() and not any(candidate.samefile(seen) for seen in found):
            found.append(candidate)
    return found


def _verified(data: DataRef, quotes: list[Path], trades: list[Path] | None) -> list[Path]:
    """The first of the found files whose bytes are those the result was computed on (`DataRef.digest`), so a
    same-named file elsewhere does not hide them; when none is, a ReportError naming the first."""
    from repeg.lab.backtest import file_digest

    choices = [[q] for q in quotes] if trades is None else [[q, t] for q in quotes for t in trades]
    found = [file_digest(files) for files in choices]
    if data.digest in found:
        return choices[found.index(data.digest)]
    files = choices[0]
    raise ReportError(
        str(files[0]),
        f"not the data the result was computed on: SHA-256 {found[0]} over {', '.join(map(str, files))}, the "
        f"result records {data.digest}; use the files it was computed on, or --no-market for the orders only",
    )


def load_market(data: DataRef, result_dir: Path) -> MarketSeries | None:
    """The market behind a result, or None when its quote file (or the symbol in it) is not at hand.

    The files drawn must be the ones the result was computed on: of those found under the recorded names (as
    given, then beside the result) the ones whose digest is the recorded one are drawn, and when none is it is a
    `ReportError` (orders drawn over another day's quotes would be a wrong report). A named trade file that is
    missing leaves the quotes unverifiable (the digest covers both): no market then.
    """
    quotes_found = _locate(data.quotes_file, result_dir)
    trades_found = None if data.trades_file is None else _locate(data.trades_file, result_dir)
    if not quotes_found or trades_found == []:
        return None
    files = _verified(data, quotes_found, trades_found)
    quotes_path, trades_path = files[0], (files[1] if len(files) > 1 else None)
    quotes = load_quotes(quotes_path)
    # named as the file's symbols are read (a result recorded before 8a094b6a names a file's "xxx" as written)
    symbol = plan_symbol(data.symbol) if data.symbol.strip() else data.symbol
    if symbol not in quotes:
        return None
    trades = None if trades_path is None else load_trades(trades_path)
    return market_from_tapes(quotes, trades, symbol)
