"""Alpaca historical quotes and trades (market data API v2) into the columnar `QuoteTape` / `TradeTape`.

Fetched with alpaca-py's `StockHistoricalDataClient` in raw mode: the SDK follows `next_page_token` until the
range is exhausted (10,000 records a page), and its objects never leave this module. `url_override` points the
client elsewhere (the loopback fakes in tests; a proxy).

Conversions:

- Time: Alpaca's RFC 3339 UTC timestamps (``Z``, up to nanoseconds) become integer nanoseconds, vectorised.
- Prices: the API's JSON numbers arrive as binary floats; each is snapped to the nearest $0.0001 unit and
  refused (`MarketDataError`) if it lies further than 1e-6 of a unit from it, i.e. if the decimal price it
  stood for was not on the $0.0001 grid (the same rule the Parquet loader applies to float columns).
  Trade prints are the exception: a print finer than $0.0001 (average-price prints, e.g. 100.00005) is dropped
  and counted in the warning ``alpaca_trades_off_grid_dropped``. One price column serves buy and sell orders,
  and no rounding is exact for both (rounding up is exact for a buy's "at or below its limit", down for a
  sell's "at or above"); dropping never lets the queue fill model count a print at a limit it did not reach,
  at the cost of missing the rare such print that traded through the limit (the crossing-quote rule remains).
  As in the file loaders, a negative quote price or size and a print at $0 or below are refused.
- Trade prints that did not stand (``u`` is ``canceled`` or ``incorrect``) are left out, counted in the log; so
  are prints whose sale conditions (``c``, CTA/UTP codes) mark them as not executed at the market of their
  stamp (average price, derivatively priced, out of sequence...: `repeg.market.sale_conditions`, as for a trade
  file's ``conditions`` column).
- Sizes: shares, as int64. Trade sizes are shares; quote sizes (``bs``/``as``) are shares since 2025-11-03 but
  round lots of 100 shares before (Alpaca's market data spec; the SEC's round-lot sizes tiered by price took
  effect that day), so a quote stamped before 2025-11-03 00:00 New York time has its sizes multiplied by 100.
  The queue fill model takes the displayed size as the shares ahead: lots read as shares would understate it.
- Symbols without any record in the range are absent from the tape; a range with no record at all is an error.

Every HTTP request has a connect and a read timeout (`AlpacaDataSource.timeout`; alpaca-py sets none): a server
that does not answer in time is a `MarketDataError` naming the endpoint (never the keys, which travel in headers).
HTTP 429 and 5xx are retried by the SDK, 3 times 3 s apart; any other refusal is not retried: a `MarketDataError`
naming the symbols, the endpoint and the status (`AuthenticationError` for 401/403).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import requests
import structlog
from numpy.typing import NDArray
from pydantic import SecretStr

from repeg.brokers.alpaca.http import TimeoutAdapter, transport_reason
from repeg.config import MAX_SECONDS
from repeg.errors import AuthenticationError, ConfigError, MarketDataError
from repeg.market.price_units import snap_to_units
from repeg.market.sale_conditions import is_excluded
from repeg.market.tape import Int64Array, QuoteTape, SymbolQuotes, SymbolTrades, TradeTape

log = structlog.get_logger(__name__)

#: Largest distance from the $0.0001 grid, in units, of a float price taken as on it: fixed, unlike the quote
#: files' (`repeg.market.loaders`), which also take a float that is exactly a grid price's.
_FLOAT_UNIT_TOLERANCE = 1e-6
_AUTH_STATUSES = frozenset({401, 403})
#: Statuses the SDK retries (3 times, 3 s apart; its default is 429 and 504 only): rate limited, and every server
#: error the data API answers (its spec: "we recommend retrying these later"). A request is a GET: safe to repeat.
_RETRIED_STATUSES = [429, 500, 502, 503, 504]
#: Quotes stamped before this instant (2025-11-03 00:00 New York, EST) give their sizes in round lots.
_QUOTE_SIZES_IN_SHARES_FROM_NS = int(np.datetime64("2025-11-03T05:00:00", "ns").astype(np.int64))
_SHARES_PER_ROUND_LOT = 100
#: A trade's ``u`` when it did not stand: busted, or replaced by a print marked ``corrected`` (which is kept).
_VOID_TRADE_UPDATES = frozenset({"canceled", "incorrect"})
Record = Mapping[str, Any]


@dataclass(frozen=True)
class AlpacaDataSource:
    """Where and as whom to fetch: keys (default: ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``), base URL, feed."""

    api_key: str
    #: A `SecretStr` (a plain text given is wrapped in one): `repr`, `str`, `dataclasses.asdict`, `vars` and logs
    #: show `**********`; revealed only to the SDK client that sends it (`_client`).
    secret_key: SecretStr = field(repr=False)
    url_override: str | None = None
    #: ``sip``, ``iex`` or ``otc``; None lets the account's default apply.
    feed: str | None = None
    #: Seconds allowed to connect, and then between bytes of the answer, per HTTP request.
    timeout: float = 30.0

    def __post_init__(self) -> None:
        from alpaca.data.enums import DataFeed

        if not isinstance(self.secret_key, SecretStr):  # a caller that passed the text itself
            object.__setattr__(self, "secret_key", SecretStr(str(self.secret_key)))
        # inf, or about 300 years and more, overflows the socket's timeout (OverflowError on every request): over
        # 366 days is refused as any time of repeg's is (MAX_SECONDS); True is no time
        if isinstance(self.timeout, bool) or not 0 < self.timeout <= MAX_SECONDS:
            raise ConfigError(
                "timeout",
                self.timeout,
                f"must be a positive number of seconds, at most {MAX_SECONDS / 86400:.0f} days",
            )
        feeds = [f.value for f in DataFeed]
        if self.feed is not None and self.feed not in feeds:
            raise ConfigError("feed", self.feed, f"unknown feed (known: {', '.join(feeds)})")

    @classmethod
    def from_env(cls, url_override: str | None = None, feed: str | None = None) -> AlpacaDataSource:
        keys = _keys_from_env()  # read in a frame that returns: none raising here holds the secret in a local
        if keys is None:
            raise AuthenticationError(
                "APCA_API_KEY_ID and APCA_API_SECRET_KEY must be set to fetch Alpaca history"
            )
        return cls(api_key=keys[0], secret_key=keys[1], url_override=url_override, feed=feed)


def _keys_from_env() -> tuple[str, SecretStr] | None:
    key, secret = os.environ.get("APCA_API_KEY_ID"), os.environ.get("APCA_API_SECRET_KEY")
    return (key, SecretStr(secret)) if key and secret else None


class _RawFetch(Protocol):
    def __call__(
        self, symbols: list[str], start: datetime, end: datetime
    ) -> Mapping[str, Sequence[Record]]: ...


def _client(source: AlpacaDataSource) -> Any:
    from alpaca.data.historical import StockHistoricalDataClient

    client = StockHistoricalDataClient(
        api_key=source.api_key,
        secret_key=source.secret_key.get_secret_value(),
        raw_data=True,
        url_override=source.url_override,
    )
    client._retry_codes = _RETRIED_STATUSES
    adapter = TimeoutAdapter(source.timeout)
    client._session.mount("http://", adapter)
    client._session.mount("https://", adapter)
    return client


def _endpoint(exc: Exception, kind: str) -> str:
    """The URL of the failed request without its query (the keys travel in headers, never in the URL)."""
    url = getattr(getattr(exc, "request", None), "url", None)
    return str(url).split("?", 1)[0] if url else f"/v2/stocks/{kind}"


def _fetch(source: AlpacaDataSource, kind: str) -> _RawFetch:
    """A function fetching every page of quotes or trades, with SDK errors mapped onto repeg's errors (not chained
    to them: the SDK's frames hold the request's headers, the secret among them, in their locals)."""
    from alpaca.common.exceptions import APIError
    from alpaca.data.enums import DataFeed
    from alpaca.data.requests import StockQuotesRequest, StockTradesRequest

    client = _client(source)
    feed = None if source.feed is None else DataFeed(source.feed)

    def fetch(symbols: list[str], start: datetime, end: datetime) -> Mapping[str, Sequence[Record]]:
        try:
            if kind == "quotes":
                return client.get_stock_quotes(  # type: ignore[no-any-return]
                    StockQuotesRequest(symbol_or_symbols=symbols, start=start, end=end, feed=feed)
                )
            return client.get_stock_trades(  # type: ignore[no-any-return]
                StockTradesRequest(symbol_or_symbols=symbols, start=start, end=end, feed=feed)
            )
        except APIError as exc:
            status = exc.status_code
            if status in _AUTH_STATUSES:
                raise AuthenticationError(
                    "Alpaca refused the data credentials", broker_message=str(exc)
                ) from None
            raise MarketDataError(
                f"Alpaca {kind} of {', '.join(symbols)}: {_endpoint(exc, kind)} failed (HTTP {status}): {exc}"
            ) from None
        except requests.Timeout as exc:
            raise MarketDataError(
                f"Alpaca {kind}: {_endpoint(exc, kind)} did not answer within {source.timeout} s"
            ) from None
        except requests.RequestException as exc:
            raise MarketDataError(
                f"Alpaca {kind}: {_endpoint(exc, kind)} unreachable ({transport_reason(exc)})"
            ) from None

    return fetch


def _timestamps(symbol: str, texts: Sequence[str]) -> Int64Array:
    """RFC 3339 UTC texts as nanoseconds since the epoch."""
    bare = []
    for text in texts:
        if not text.endswith("Z"):
            raise MarketDataError(f"{symbol}: timestamp {text!r} is not UTC ('Z')")
        bare.append(text[:-1])
    try:
        return np.array(bare, dtype="datetime64[ns]").astype(np.int64)
    except ValueError as exc:
        raise MarketDataError(f"{symbol}: unparseable timestamp: {exc}") from exc


def _dollars(symbol: str, field: str, values: Sequence[float]) -> NDArray[np.float64]:
    """The prices as float dollars; a null (read as NaN, which casts to a garbage int64 that passes the grid
    check), infinite or non-numeric one is refused."""
    try:
        dollars = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise MarketDataError(f"{symbol}: a record's {field} is not a number") from None
    bad = ~np.isfinite(dollars)
    if bool(bad.any()):
        at = int(np.flatnonzero(bad)[0])
        raise MarketDataError(f"{symbol}: record {at + 1} {field}={values[at]!r} is not a price")
    return dollars


def _sizes(symbol: str, kind: str, values: Sequence[int]) -> Int64Array:
    try:
        sizes = np.array(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise MarketDataError(f"{symbol}: a {kind} record has an unreadable size") from None
    if bool((sizes < 0).any()):  # as the file loaders: no size is negative
        raise MarketDataError(f"{symbol}: a {kind} record has a negative size")
    return sizes


def _refuse_below(symbol: str, field: str, values: Sequence[float], units: Int64Array, least: int) -> None:
    """Refuse the first price under `least` units, as the file loaders do: a quote side of 0 is "no quote" (kept),
    a negative one no price; a print at $0 or below is no print (the queue fill model would take it as trading
    through every resting buy)."""
    low = units < least
    if bool(low.any()):
        at = int(np.flatnonzero(low)[0])
        what = "a negative price" if least == 0 else "not a positive price"
        raise MarketDataError(f"{symbol}: record {at + 1} {field}={values[at]!r} is {what}")


def _snapped(dollars: NDArray[np.float64]) -> tuple[Int64Array, NDArray[np.bool_]]:
    """Float dollars as the nearest $0.0001 units, and which of them lay off that grid (a finer decimal price)."""
    units, on_grid = snap_to_units(dollars, tolerance=_FLOAT_UNIT_TOLERANCE, exact_floats=False)
    return units, ~on_grid


def _units(symbol: str, field: str, values: Sequence[float]) -> Int64Array:
    """Float dollars snapped to exact $0.0001 units; a price off that grid is refused."""
    units, off = _snapped(_dollars(symbol, field, values))
    if bool(off.any()):
        at = int(np.flatnonzero(off)[0])
        raise MarketDataError(f"{symbol}: record {at + 1} {field}={values[at]!r} is finer than $0.0001")
    return units


def _sorted(ts: Int64Array) -> Int64Array:
    return np.argsort(ts, kind="stable")


def _quote_columns(symbol: str, records: Sequence[Record]) -> SymbolQuotes:
    try:
        ts = _timestamps(symbol, [r["t"] for r in records])
        bids, asks = [r["bp"] for r in records], [r["ap"] for r in records]
        bid, ask = _units(symbol, "bp", bids), _units(symbol, "ap", asks)
        _refuse_below(symbol, "bp", bids, bid, 0)
        _refuse_below(symbol, "ap", asks, ask, 0)
        bid_size = _sizes(symbol, "quote", [r["bs"] for r in records])
        ask_size = _sizes(symbol, "quote", [r["as"] for r in records])
    except KeyError as exc:
        raise MarketDataError(f"{symbol}: a quote record lacks field {exc}") from exc
    in_lots = ts < _QUOTE_SIZES_IN_SHARES_FROM_NS
    bid_size = np.where(in_lots, bid_size * _SHARES_PER_ROUND_LOT, bid_size)
    ask_size = np.where(in_lots, ask_size * _SHARES_PER_ROUND_LOT, ask_size)
    order = _sorted(ts)
    return SymbolQuotes(symbol, ts[order], bid[order], bid_size[order], ask[order], ask_size[order])


def _trade_columns(symbol: str, records: Sequence[Record]) -> SymbolTrades:
    records = _counted_prints(symbol, records)
    try:
        ts = _timestamps(symbol, [r["t"] for r in records])
        prices = [r["p"] for r in records]
        price, off = _snapped(_dollars(symbol, "p", prices))
        _refuse_below(symbol, "p", prices, price, 1)
        size = _sizes(symbol, "trade", [r["s"] for r in records])
    except KeyError as exc:
        raise MarketDataError(f"{symbol}: a trade record lacks field {exc}") from exc
    if bool(off.any()):
        log.warning("alpaca_trades_off_grid_dropped", symbol=symbol, dropped=int(off.sum()), prints=len(off))
        keep = ~off
        ts, price, size = ts[keep], price[keep], size[keep]
    order = _sorted(ts)
    return SymbolTrades(symbol, ts[order], price[order], size[order])


def _counted_prints(symbol: str, records: Sequence[Record]) -> list[Record]:
    """The prints that stood and whose sale conditions (``c``) count them (`repeg.market.sale_conditions`)."""
    standing = [r for r in records if r.get("u") not in _VOID_TRADE_UPDATES]
    if len(standing) < len(records):
        log.info("alpaca_trades_void_dropped", symbol=symbol, dropped=len(records) - len(standing))
    regular = [r for r in standing if not is_excluded("".join(r.get("c") or ()))]
    if len(regular) < len(standing):
        log.info("alpaca_trades_non_regular_dropped", symbol=symbol, dropped=len(standing) - len(regular))
    return regular


def fetch_quotes(
    source: AlpacaDataSource, symbols: Sequence[str], start: datetime, end: datetime
) -> QuoteTape:
    """Every quote of `symbols` in ``[start, end]`` (timezone-aware), all pages, as a `QuoteTape`."""
    raw = _fetch(source, "quotes")(list(symbols), start, end)
    columns = [_quote_columns(sym, recs) for sym, recs in sorted(raw.items()) if recs]
    if not columns:
        raise MarketDataError(
            f"Alpaca returned no quotes for {list(symbols)} in {start.isoformat()}..{end.isoformat()}"
        )
    log.info("alpaca_quotes_fetched", symbols=len(columns), quotes=sum(len(c) for c in columns))
    return QuoteTape(columns)


def fetch_trades(
    source: AlpacaDataSource, symbols: Sequence[str], start: datetime, end: datetime
) -> TradeTape:
    """Every trade print of `symbols` in ``[start, end]``, all pages, as a `TradeTape` (empty symbols absent)."""
    raw = _fetch(source, "trades")(list(symbols), start, end)
    fetched = [_trade_columns(sym, recs) for sym, recs in sorted(raw.items()) if recs]
    columns = [c for c in fetched if len(c)]  # a symbol whose every print was dropped is absent too
    log.info("alpaca_trades_fetched", symbols=len(columns), trades=sum(len(c) for c in columns))
    return TradeTape(columns)
