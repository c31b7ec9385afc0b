"""`AlpacaQuoteFeed`: top of book from Alpaca's market-data websocket (IEX or SIP, msgpack), with REST
latest-quote fallback while the stream is down.

Quotes are converted as they are: a side of 0 (Alpaca's "no bid/ask") stays 0, so the core's `assess_quote`
refuses to price from it, exactly as for any other feed. A price or size that is no finite number, or is
negative, costs that quote (dropped, logged; the quote held stays). A quote older than the one held is ignored,
so a REST answer can never replace a fresher stream quote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation

import msgpack
import structlog
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed as SdkDataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.models import Quote as SdkQuote
from alpaca.data.requests import StockLatestQuoteRequest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from repeg.brokers.alpaca.credentials import AlpacaCredentials
from repeg.brokers.alpaca.mapping import utc
from repeg.brokers.alpaca.retry import Backoff, sleep_seconds
from repeg.brokers.alpaca.settings import AlpacaSettings, DataFeed
from repeg.domain.quote import Quote
from repeg.engine.clock import Clock
from repeg.errors import AuthenticationError, MarketDataError

log = structlog.get_logger(__name__)
#: The websockets library logs every frame at DEBUG, the auth frame with the secret included: its logger for
#: our connections never goes below INFO, whatever the application's log level.
_WS_LOG = logging.getLogger(f"{__name__}.websocket")
_WS_LOG.setLevel(logging.INFO)
#: Alpaca's market-data stream speaks JSON text unless the handshake asks for MessagePack (as alpaca-py does).
_MSGPACK_HEADERS = {"Content-Type": "application/msgpack"}
#: Stream errors that no retry cures, at the handshake or on the open stream: a message Alpaca cannot parse (400
#: invalid syntax), bad keys (401 not authenticated, 402 auth failed), more symbols than the plan allows (405
#: symbol limit exceeded), a feed the account's plan does not include (409 insufficient subscription) and a
#: subscription the feed does not offer (410 invalid subscribe action for this feed): each reconnect would send
#: the same request and be refused again. Others, e.g. 406 connection limit exceeded (the connection of a process
#: that just died, still held by Alpaca), 404 auth timeout, 407 slow client, 500, are retried with backoff.
_REFUSALS = frozenset({400, 401, 402, 405, 409, 410})
#: Latest-quote (REST) answers no retry cures: keys Alpaca refuses (401), a feed the account's plan does not include
#: (403). Others (429, 5xx, timeouts) are polled again at the next interval. A 400 (`invalid symbol`, e.g. a held
#: crypto or option position's, subscribed beside the plan's) is a refusal of one symbol: `_INVALID_REQUEST`.
_REST_REFUSALS = frozenset({401, 403})
_INVALID_REQUEST = 400


def _decimal(value: object) -> Decimal:
    """A quote's number; anything else (a boolean, a text that is no number) is a `MarketDataError`, which costs
    that quote only (decimal's own `InvalidOperation` is no `ValueError`: it ended the stream task). A negative
    price or size is no number Alpaca quotes (a side it lacks is 0): dropped at this edge as well."""
    try:
        if isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, int | str) and not isinstance(value, bool):
            number = Decimal(value)
        else:
            number = None
    except InvalidOperation:
        number = None
    # NaN and infinity are no number either (NaN compared below would raise decimal's InvalidOperation)
    if number is None or not number.is_finite():
        raise MarketDataError(f"quote field is not a number: {value!r}")
    if number < 0:
        raise MarketDataError(f"quote field is negative: {value!r}")
    return number


def _unpack(raw: str | bytes) -> object:
    """One MessagePack frame; an undecodable one is a `MarketDataError` (the stream is then reconnected), a
    timestamp out of datetime's range (msgpack's `OverflowError`) included."""
    try:
        return msgpack.unpackb(raw, timestamp=3)
    except (ValueError, TypeError, OverflowError) as exc:
        raise MarketDataError(f"market data stream: undecodable frame ({type(exc).__name__})") from None


def _stream_error(message: dict[object, object]) -> MarketDataError | AuthenticationError:
    """An `{"T": "error"}` message: a refusal that ends the stream for the run (`_REFUSALS`), else transient."""
    code, reason = message.get("code"), str(message.get("msg"))
    if code in _REFUSALS:
        return AuthenticationError("market data stream refused", broker_message=reason, code=str(code))
    return MarketDataError(f"market data stream error {code}: {reason}")


def quote_from_stream(message: dict[str, object]) -> Quote:
    """A stream `q` message (`t` decoded by msgpack as a UTC datetime) as our `Quote`."""
    ts = message.get("t")
    if not isinstance(ts, datetime):
        raise MarketDataError(f"quote timestamp is not a timestamp: {ts!r}")
    return Quote(
        symbol=str(message["S"]),
        bid=_decimal(message.get("bp", 0)),
        bid_size=_decimal(message.get("bs", 0)),
        ask=_decimal(message.get("ap", 0)),
        ask_size=_decimal(message.get("as", 0)),
        ts=utc(ts),
    )


def quote_from_sdk(symbol: str, quote: SdkQuote) -> Quote:
    return Quote(
        symbol=symbol,
        bid=_decimal(quote.bid_price),
        bid_size=_decimal(quote.bid_size),
        ask=_decimal(quote.ask_price),
        ask_size=_decimal(quote.ask_size),
        ts=utc(quote.timestamp),
    )


class AlpacaQuoteFeed:
    def __init__(
        self,
        client: StockHistoricalDataClient,
        ws_url: str,
        credentials: AlpacaCredentials,
        clock: Clock,
        *,
        feed: DataFeed,
        settings: AlpacaSettings,
    ) -> None:
        self._client = client
        self._ws_url = ws_url
        self._credentials = credentials
        self._clock = clock
        self._feed = feed
        self._settings = settings
        self._backoff = Backoff(settings.stream.reconnect)
        self._quotes: dict[str, Quote] = {}
        self._symbols: set[str] = set()
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._gap_polls: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self.rest_polls = 0
        #: The HTTP status of a latest-quote request refused for good (`_REST_REFUSALS`): REST is asked no more.
        self.rest_refused: int | None = None
        #: Symbols a latest-quote request naming them alone was refused for (400): REST is asked no more for them.
        self.rest_refused_symbols: set[str] = set()
        #: Symbols a latest-quote request naming them was answered for: none of them is one REST refuses.
        self._rest_answered: set[str] = set()

    def latest(self, symbol: str) -> Quote | None:
        return self._quotes.get(symbol)

    async def subscribe(self, symbols: Iterable[str]) -> None:
        """Seed the symbols' quotes from REST, then stream them (the stream and fallback start on first use)."""
        new = sorted(set(symbols) - self._symbols)
        if not new:
            return
        self._symbols.update(new)
        await self.poll_rest(new)
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._run(), name="alpaca-quote-stream"))
            self._tasks.append(asyncio.create_task(self._fallback(), name="alpaca-quote-fallback"))
        elif self._ws is not None and self.connected.is_set() and (streamed := self._streamed(new)):
            await self._ws.send(msgpack.packb({"action": "subscribe", "quotes": streamed}))

    def _streamed(self, symbols: Iterable[str]) -> list[str]:
        """The symbols to ask the stream for: not one the latest-quote request refused as invalid (a crypto or
        option holding), which the stream would answer with error 400, ending it for the run."""
        return sorted(set(symbols) - self.rest_refused_symbols)

    def _store(self, quote: Quote) -> None:
        held = self._quotes.get(quote.symbol)
        if held is None or quote.ts >= held.ts:
            self._quotes[quote.symbol] = quote

    async def poll_rest(self, symbols: Iterable[str]) -> None:
        """Latest quotes over REST (one request for all symbols). A request Alpaca finds invalid (400) is split in
        halves until the symbol it refuses is alone, so that symbol costs its own quotes only, not the plan's."""
        wanted = [symbol for symbol in symbols if symbol not in self.rest_refused_symbols]
        if not wanted or self.rest_refused is not None:
            return
        if await self._request(wanted) == _INVALID_REQUEST and len(wanted) > 1:
            half = len(wanted) // 2
            await self.poll_rest(wanted[:half])
            await self.poll_rest(wanted[half:])

    async def _request(self, symbols: list[str]) -> int | None:
        """One latest-quote request; the HTTP status it was refused with, if any."""
        request = StockLatestQuoteRequest(symbol_or_symbols=symbols, feed=SdkDataFeed(self._feed.value))
        self.rest_polls += 1
        try:
            answer = await asyncio.to_thread(self._client.get_stock_latest_quote, request)
        except Exception as exc:
            return self._rest_failed(exc, symbols)
        self._rest_answered.update(symbols)
        if isinstance(answer, dict):
            for symbol, quote in answer.items():
                if isinstance(quote, SdkQuote):
                    self._store_rest(str(symbol), quote)
        return None

    def _store_rest(self, symbol: str, quote: SdkQuote) -> None:
        """Store one symbol's REST quote; one repeg cannot read costs that quote only, as on the stream."""
        try:
            self._store(quote_from_sdk(symbol, quote))
        except (MarketDataError, ValueError) as exc:
            log.warning("quote_unreadable", symbol=symbol, error=type(exc).__name__, detail=str(exc))

    def _rest_failed(self, exc: Exception, symbols: list[str]) -> int | None:
        """Log a failed latest-quote request; one refused for good (for all symbols, or a 400 for one symbol
        alone) is logged once, as an error, and not sent again (each poll would be refused the same way, spending
        the data API's rate budget). A 400 for several symbols is left to `poll_rest` to split."""
        status: int | None = exc.status_code if isinstance(exc, APIError) else None
        if status == _INVALID_REQUEST and len(symbols) > 1:
            return status
        if status == _INVALID_REQUEST:
            self.rest_refused_symbols.update(symbols)
        elif status in _REST_REFUSALS:
            self.rest_refused = status
        else:
            log.warning("quote_rest_failed", error=type(exc).__name__, detail=str(exc))
            return status
        log.error("quote_rest_refused", status=status, symbols=symbols, detail=str(exc))
        return status

    async def _fallback(self) -> None:
        while True:
            await sleep_seconds(self._clock, self._settings.quote_poll_every)
            if not self.connected.is_set():
                await self.poll_rest(sorted(self._symbols))

    async def _run(self) -> None:
        """Stream, reconnecting with backoff; the failure count resets only after a connection stayed up
        `stable_after` seconds, so a server that drops every connection at once is not stormed."""
        failures = 0
        while True:
            started = self._clock.now()
            try:
                await self._session()
            except AuthenticationError as exc:
                asked = set(self._streamed(self._symbols))
                self.connected.clear()
                self._ws = None
                log.exception(
                    "quote_stream_refused",
                    code=exc.code,
                    detail=exc.broker_message,
                    url=self._ws_url,
                    symbols=sorted(self._symbols),
                )
                if exc.code != str(_INVALID_REQUEST) or not await self._rest_refuses_one_of(asked):
                    return
                continue
            except (OSError, TimeoutError, WebSocketException, MarketDataError) as exc:
                log.warning("quote_stream_lost", error=type(exc).__name__, detail=str(exc))
            except Exception as exc:
                # Not one the stream expects (a defect): said with its traceback, and the stream is re-made with
                # backoff rather than left dead with `connected` set (the REST fallback serves meanwhile).
                log.exception("quote_stream_failed", error=type(exc).__name__, url=self._ws_url)
            self.connected.clear()
            self._ws = None
            up_for = (self._clock.now() - started).total_seconds()
            failures = 1 if up_for >= self._settings.stream.stable_after else failures + 1
            await sleep_seconds(self._clock, self._backoff.delay(failures))

    async def _rest_refuses_one_of(self, asked: set[str]) -> bool:
        """After the stream refused a subscription (400): whether the latest-quote request refuses one of its
        symbols, which the stream is then subscribed without. The REST polls serving meanwhile may find it later
        than the stream's refusal (the seed failed for a while, e.g. a 429): wait until every symbol was answered
        or one refused (False when all were answered: the stream stays refused for the run, as before)."""
        while not asked & self.rest_refused_symbols:
            if self.rest_refused is not None or asked <= self._rest_answered:
                return False
            await sleep_seconds(self._clock, self._settings.quote_poll_every)
        log.info("quote_stream_resubscribing", left_out=sorted(asked & self.rest_refused_symbols))
        return True

    async def _session(self) -> None:
        timeout = self._settings.stream.open_timeout
        connecting = connect(
            self._ws_url,
            open_timeout=timeout,
            max_size=2**24,
            logger=_WS_LOG,
            additional_headers=_MSGPACK_HEADERS,
        )
        async with await connecting as ws:
            self._ws = ws
            await self._expect(ws, "connected")
            await ws.send(self._auth_message())
            await self._expect(ws, "authenticated")
            if streamed := self._streamed(self._symbols):
                await ws.send(msgpack.packb({"action": "subscribe", "quotes": streamed}))
            self.connected.set()
            async for raw in ws:
                self._dispatch(raw)

    def _auth_message(self) -> bytes:
        """The auth frame. Built here, never in a local of `_session`: a refusal raised there keeps that frame in its
        traceback, which `quote_stream_refused` logs (a renderer showing frames' locals would show the secret)."""
        secret = self._credentials.secret_key.get_secret_value()
        return bytes(msgpack.packb({"action": "auth", "key": self._credentials.key_id, "secret": secret}))

    async def _expect(self, ws: ClientConnection, what: str) -> None:
        raw = await asyncio.wait_for(ws.recv(), timeout=self._settings.stream.open_timeout)
        messages = _unpack(raw)
        first = messages[0] if isinstance(messages, list) and messages else {}
        if not isinstance(first, dict):
            raise MarketDataError(f"market data stream: expected {what!r}")
        if first.get("T") == "error":
            raise _stream_error(first)
        if first.get("T") != "success" or first.get("msg") != what:
            raise MarketDataError(f"market data stream: expected {what!r}")

    def _dispatch(self, raw: str | bytes) -> None:
        messages = _unpack(raw)
        for message in messages if isinstance(messages, list) else []:
            if not isinstance(message, dict):
                continue
            if message.get("T") == "q":
                try:
                    self._store(quote_from_stream(message))
                except (MarketDataError, KeyError, ValueError) as exc:
                    log.warning("quote_unreadable", error=type(exc).__name__)
            elif message.get("T") == "subscription":
                self._close_gap(message.get("quotes"))
            elif message.get("T") == "error":
                # No quote will come on this connection: it is dropped, and the REST fallback serves while the
                # stream reconnects with backoff, or for the rest of the run after a refusal (`_REFUSALS`).
                raise _stream_error(message)

    def _close_gap(self, symbols: object) -> None:
        """The stream sends no snapshot on subscribing: a quote that changed between the REST seed and the
        subscription would be missed until the next change, so the subscribed symbols are read over REST once
        more (a REST answer never replaces a fresher stream quote)."""
        if isinstance(symbols, list) and symbols:
            task = asyncio.create_task(self.poll_rest([str(s) for s in symbols]), name="alpaca-quote-gap")
            self._gap_polls.add(task)
            task.add_done_callback(self._gap_polls.discard)

    async def aclose(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        tasks = [*self._tasks, *self._gap_polls]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
