"""`AlpacaQuoteFeed` against the fake Alpaca: REST seeding, msgpack stream quotes, zero sides, REST fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal

import msgpack
import pytest
from pydantic import SecretStr
from tests.fakes.alpaca_fixtures import FAST, connect
from tests.integration.test_alpaca_orders import until
from websockets.asyncio.server import ServerConnection, serve

from repeg.brokers.alpaca.adapter import AlpacaBroker
from repeg.brokers.alpaca.credentials import AlpacaCredentials
from repeg.brokers.alpaca.settings import DataFeed
from repeg.domain.quote import QuoteVerdict, assess_quote
from repeg.engine.clock import RealClock
from repeg.market.alpaca_feed import AlpacaQuoteFeed

Pair = tuple[AlpacaBroker, AlpacaQuoteFeed]


async def test_subscribe_seeds_the_latest_quote_over_rest(alpaca: Pair):
    _, feed = alpaca
    assert feed.latest("AAPL") is None
    await feed.subscribe(["AAPL", "MSFT"])
    quote = feed.latest("AAPL")
    assert quote is not None
    assert (quote.bid, quote.ask, quote.bid_size) == (Decimal("100.00"), Decimal("100.10"), Decimal(100))
    assert quote.ts.tzinfo is not None


async def test_stream_quotes_replace_the_seeded_quote(alpaca: Pair, fake_alpaca):
    _, feed = alpaca
    await feed.subscribe(["AAPL"])
    await until(feed.connected.is_set)
    fake_alpaca.book.set_quote("AAPL", Decimal("100.02"), Decimal("100.04"))
    await until(lambda: (q := feed.latest("AAPL")) is not None and q.bid == Decimal("100.02"))


async def test_a_zero_side_is_kept_and_the_core_refuses_to_price_from_it(alpaca: Pair, fake_alpaca):
    _, feed = alpaca
    await feed.subscribe(["AAPL"])
    await until(feed.connected.is_set)
    fake_alpaca.book.set_quote("AAPL", Decimal("107.00"), Decimal(0))
    await until(lambda: (q := feed.latest("AAPL")) is not None and q.ask == 0)
    quote = feed.latest("AAPL")
    assert quote is not None
    verdict = assess_quote(quote, quote.ts, timedelta(seconds=5), Decimal(10))
    assert verdict is QuoteVerdict.ONE_SIDED


async def test_rest_fallback_keeps_quotes_fresh_while_the_stream_is_down(alpaca: Pair, fake_alpaca):
    _, feed = alpaca
    await feed.subscribe(["AAPL"])
    await until(feed.connected.is_set)
    await fake_alpaca.drop_data_stream(refuse_for=5.0)
    await until(lambda: not feed.connected.is_set())
    polls = feed.rest_polls
    fake_alpaca.book.set_quote("AAPL", Decimal("99.50"), Decimal("99.60"))
    await until(lambda: (q := feed.latest("AAPL")) is not None and q.bid == Decimal("99.50"))
    assert not feed.connected.is_set()  # the new quote came by REST: the stream is still refused
    # A poll counted before the snapshot may be the one that brought it (the count grows when a request starts,
    # its answer comes later): REST polling must go on all the same, while the stream is down.
    await until(lambda: feed.rest_polls > polls)


async def test_the_stream_resubscribes_after_a_reconnect(alpaca: Pair, fake_alpaca):
    _, feed = alpaca
    await feed.subscribe(["AAPL"])
    await until(feed.connected.is_set)
    await fake_alpaca.drop_data_stream(refuse_for=0.1)
    await until(lambda: not feed.connected.is_set())
    await until(feed.connected.is_set)
    await until(lambda: fake_alpaca.data_subscriptions() == [{"AAPL"}])


async def test_a_quote_changed_between_seed_and_subscription_is_not_missed(fake_alpaca):
    broker, feed = await connect(fake_alpaca, settings=FAST.model_copy(update={"quote_poll_every": 600.0}))
    try:
        await feed.subscribe(["AAPL"])  # REST seed; the stream is still connecting
        fake_alpaca.book.set_quote(
            "AAPL", Decimal("100.01"), Decimal("100.06")
        )  # not pushed: nobody subscribed
        await until(lambda: fake_alpaca.data_subscriptions() == [{"AAPL"}])
        await until(lambda: (q := feed.latest("AAPL")) is not None and q.bid == Decimal("100.01"))
    finally:
        await feed.aclose()
        await broker.aclose()


async def test_an_undecodable_frame_costs_a_reconnect_not_the_quote_stream(alpaca: Pair, fake_alpaca):
    _, feed = alpaca
    await feed.subscribe(["AAPL"])
    await until(lambda: fake_alpaca.data_subscriptions() == [{"AAPL"}])
    for ws in list(fake_alpaca._md_sockets):
        await ws.send_bytes(b"\xc1")  # not MessagePack
    await until(lambda: fake_alpaca.data_subscriptions() == [])  # the feed drops the connection...
    await until(lambda: fake_alpaca.data_subscriptions() == [{"AAPL"}])  # ...and subscribes again
    fake_alpaca.book.set_quote("AAPL", Decimal("100.03"), Decimal("100.05"))
    await until(lambda: (q := feed.latest("AAPL")) is not None and q.bid == Decimal("100.03"))


async def test_a_stream_error_after_subscribing_hands_quotes_to_rest_and_logs_alpacas_message(
    alpaca: Pair, fake_alpaca
):
    """Alpaca answers a subscription it will not serve (409 insufficient subscription, 405 symbol limit, ...) with
    an error message on the open stream. The feed must not go on claiming to be connected while no quote can
    arrive (that switches the REST fallback off, so quotes go stale and every order waits and is skipped), and
    the user must be told Alpaca's reason."""
    from structlog.testing import capture_logs

    _, feed = alpaca
    await feed.subscribe(["AAPL"])
    await until(lambda: fake_alpaca.data_subscriptions() == [{"AAPL"}])
    await until(feed.connected.is_set)
    error = [{"T": "error", "code": 409, "msg": "insufficient subscription"}]
    with capture_logs() as logs:
        for ws in list(fake_alpaca._md_sockets):
            await ws.send_bytes(msgpack.packb(error))
        await until(lambda: not feed.connected.is_set())
        await until(lambda: any("insufficient subscription" in str(line) for line in logs))


async def test_a_refused_rest_quote_request_is_logged_with_alpacas_message(alpaca: Pair, fake_alpaca):
    """A latest-quote request Alpaca refuses (403 for a feed the plan does not include, 422 for a bad symbol) is
    only logged, so the log line must carry Alpaca's reason, not just the exception class."""
    from structlog.testing import capture_logs

    _, feed = alpaca
    fake_alpaca.fail("GET", "/v2/stocks/quotes/latest", 403, times=10)
    with capture_logs() as logs:
        await feed.poll_rest(["AAPL"])
    failed = [line for line in logs if line["event"] in {"quote_rest_failed", "quote_rest_refused"}]
    assert failed
    assert "injected fault" in str(failed[0])


async def test_a_rest_quote_request_refused_for_good_is_logged_once_and_not_polled_again(
    alpaca: Pair, fake_alpaca
):
    """A latest-quote request Alpaca refuses for good (403: a feed the plan does not include; 401: the keys) is
    refused again at every poll: polling it each `quote_poll_every` while the stream is down spent the data API's
    rate budget and logged the same warning each second for the whole run, never as an error. It is logged once,
    as an error naming the status and the symbols, and the REST fallback stops."""
    import asyncio

    from structlog.testing import capture_logs

    _, feed = alpaca
    fake_alpaca.fail("GET", "/v2/stocks/quotes/latest", 403, times=1_000)
    await fake_alpaca.drop_data_stream(refuse_for=5.0)
    with capture_logs() as logs:
        await feed.subscribe(["AAPL"])
        await asyncio.sleep(0.5)  # ten poll intervals with the stream refused
    assert fake_alpaca.count("GET", "/v2/stocks/quotes/latest") == 1
    refused = [line for line in logs if line["event"] == "quote_rest_refused"]
    assert len(refused) == 1
    assert (refused[0]["log_level"], refused[0]["status"], refused[0]["symbols"]) == ("error", 403, ["AAPL"])


async def test_a_symbol_rest_refuses_costs_its_own_quotes_not_those_of_the_plan(alpaca: Pair, fake_alpaca):
    """`repeg.api` subscribes the plan's symbols with the account's other holdings (to value them), in one latest-quote
    request. Alpaca's stock data API answers 400 `invalid symbol` to a request naming a crypto or option holding:
    taken as a refusal for good (884e6feb), it ended REST quotes for the plan's symbols too, so a plan never seeded
    and never polled while the stream was down. The request is split to find the refused symbol, which alone is
    asked no more."""
    import asyncio

    from structlog.testing import capture_logs

    _, feed = alpaca
    fake_alpaca.invalid_quote_symbols = {"BTC/USD"}
    await fake_alpaca.drop_data_stream(refuse_for=5.0)
    with capture_logs() as logs:
        await feed.subscribe(["AAPL", "BTC/USD", "MSFT"])
        seeded = feed.latest("AAPL")
        fake_alpaca.book.set_quote("AAPL", Decimal("100.02"), Decimal("100.04"))
        await until(lambda: (q := feed.latest("AAPL")) is not None and q.bid == Decimal("100.02"))
        asked = fake_alpaca.count("GET", "/v2/stocks/quotes/latest")
        await asyncio.sleep(0.2)
    assert seeded is not None
    assert feed.latest("MSFT") is not None
    refused = [line for line in logs if line["event"] == "quote_rest_refused"]
    assert [(line["status"], line["symbols"]) for line in refused] == [(400, ["BTC/USD"])]
    assert fake_alpaca.count("GET", "/v2/stocks/quotes/latest") > asked  # the fallback still polls the others


async def test_a_symbol_rest_refuses_is_kept_out_of_the_quote_stream(alpaca: Pair, fake_alpaca):
    """Alpaca's quote stream answers a subscription naming a symbol of no stock (a crypto or option holding, which
    `repeg.api` subscribes to value the account) with error 400 `invalid syntax`, which ends the stream for the
    run (c6d8920c): every quote of the plan then came from REST polls. A symbol the latest-quote request refused as
    invalid is not sent to the stream."""
    import asyncio

    from structlog.testing import capture_logs

    _, feed = alpaca
    fake_alpaca.invalid_quote_symbols = {"BTC/USD"}
    with capture_logs() as logs:
        await feed.subscribe(["AAPL", "BTC/USD"])
        await until(feed.connected.is_set)
        await asyncio.sleep(0.1)  # the subscription's answer
        fake_alpaca.book.set_quote("AAPL", Decimal("100.02"), Decimal("100.04"))
        await until(lambda: (q := feed.latest("AAPL")) is not None and q.bid == Decimal("100.02"))
    assert [line for line in logs if line["event"] == "quote_stream_refused"] == []
    assert feed.connected.is_set()


class _NoRestQuotes:
    def get_stock_latest_quote(self, _request: object) -> dict[str, object]:
        return {}


def _feed(client: object, ws_url: str) -> AlpacaQuoteFeed:
    """A quote feed whose latest-quote (REST) requests `client` answers, streaming from `ws_url`."""
    return AlpacaQuoteFeed(
        client,  # type: ignore[arg-type]
        ws_url,
        AlpacaCredentials(key_id="key", secret_key=SecretStr("secret")),
        RealClock(),
        feed=DataFeed.IEX,
        settings=FAST,
    )


@asynccontextmanager
async def _feed_on(script: Callable[[ServerConnection], Awaitable[None]]) -> AsyncIterator[AlpacaQuoteFeed]:
    """A quote feed whose market-data stream is a loopback websocket server playing `script`."""
    async with serve(script, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        feed = _feed(_NoRestQuotes(), f"ws://127.0.0.1:{port}/v2/iex")
        try:
            yield feed
        finally:
            await feed.aclose()


async def _send(ws: ServerConnection, *messages: dict[str, object]) -> None:
    await ws.send(msgpack.packb(list(messages)))


async def test_a_quote_with_a_price_that_is_not_a_number_costs_that_quote_not_the_stream():
    """A `q` message whose price is no number (here a string) raised decimal's InvalidOperation, which no handler
    caught: the stream task died, `connected` stayed set, so the REST fallback never polled and quotes went stale
    for the rest of the run. It is logged and skipped; the next quote is read."""
    from datetime import UTC, datetime

    ts = msgpack.Timestamp.from_datetime(datetime(2026, 3, 2, 15, tzinfo=UTC))

    async def one_bad_quote_then_a_good_one(ws: ServerConnection) -> None:
        await _send(ws, {"T": "success", "msg": "connected"})
        await ws.recv()
        await _send(ws, {"T": "success", "msg": "authenticated"})
        await ws.recv()
        bad = {"T": "q", "S": "AAPL", "bp": "n/a", "bs": 1, "ap": 100.1, "as": 1, "t": ts}
        good = {"T": "q", "S": "AAPL", "bp": 100.05, "bs": 1, "ap": 100.1, "as": 1, "t": ts}
        await _send(ws, bad)
        await _send(ws, good)
        await ws.wait_closed()

    async with _feed_on(one_bad_quote_then_a_good_one) as feed:
        await feed.subscribe(["AAPL"])
        await until(lambda: (q := feed.latest("AAPL")) is not None and q.bid == Decimal("100.05"))
        assert not feed._tasks[0].done()


async def test_a_connection_limit_refusal_is_retried_not_taken_for_bad_credentials():
    """Alpaca allows one market-data connection per account and refuses a second with error 406 ("connection
    limit exceeded"): e.g. right after a crash, while Alpaca still holds the dead process's connection, when
    `repeg resume` starts. That is transient; the feed must reconnect with backoff rather than give up its
    stream for the whole run as if the keys were wrong."""
    connections = 0

    async def alpaca_with_one_connection_still_held(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await _send(ws, {"T": "error", "code": 406, "msg": "connection limit exceeded"})
            return
        await _send(ws, {"T": "success", "msg": "connected"})
        await ws.recv()
        await _send(ws, {"T": "success", "msg": "authenticated"})
        await ws.recv()
        await _send(ws, {"T": "subscription", "trades": [], "quotes": ["AAPL"], "bars": []})
        await ws.wait_closed()

    async with _feed_on(alpaca_with_one_connection_still_held) as feed:
        await feed.subscribe(["AAPL"])
        await until(feed.connected.is_set)
        assert connections == 2


async def test_refused_keys_end_the_quote_stream_without_reconnecting():
    """Error 402 (auth failed) is not cured by retrying: the stream stops after one refusal (REST stays)."""
    connections = 0

    async def refuse_the_keys(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await _send(ws, {"T": "success", "msg": "connected"})
        await ws.recv()
        await _send(ws, {"T": "error", "code": 402, "msg": "auth failed"})

    async with _feed_on(refuse_the_keys) as feed:
        await feed.subscribe(["AAPL"])
        await until(feed._tasks[0].done)
        assert connections == 1
        assert not feed.connected.is_set()


async def test_a_server_that_drops_each_connection_at_once_gets_a_growing_backoff():
    """A stream that accepts, authenticates, subscribes and then closes at once (a server going away, a proxy
    recycling) must not be reconnected to at the first backoff step forever: that is the reconnect storm that
    ends in 429s. The failure count resets only after a connection stayed up `stable_after` seconds, as for the
    trade_updates stream."""

    async def accept_then_go_away(ws: ServerConnection) -> None:
        await _send(ws, {"T": "success", "msg": "connected"})
        await ws.recv()
        await _send(ws, {"T": "success", "msg": "authenticated"})
        await ws.recv()
        await ws.close(1001, "going away")

    async with _feed_on(accept_then_go_away) as feed:
        retries: list[int] = []
        delay = feed._backoff.delay

        def recording(retry: int) -> float:
            retries.append(retry)
            return delay(retry)

        feed._backoff.delay = recording  # type: ignore[method-assign]
        await feed.subscribe(["AAPL"])
        await until(lambda: len(retries) >= 4)
        assert retries[:4] == [1, 2, 3, 4]


async def _serve_then_refuse_the_subscription(ws: ServerConnection, code: int, msg: str) -> None:
    await _send(ws, {"T": "success", "msg": "connected"})
    await ws.recv()
    await _send(ws, {"T": "success", "msg": "authenticated"})
    await ws.recv()
    await _send(ws, {"T": "error", "code": code, "msg": msg})
    await ws.wait_closed()


async def _assert_one_refusal_then_rest_only(code: int, msg: str) -> dict[str, object]:
    from structlog.testing import capture_logs

    connections = 0

    async def refuse(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await _serve_then_refuse_the_subscription(ws, code, msg)

    with capture_logs() as logs:
        async with _feed_on(refuse) as feed:
            await feed.subscribe(["AAPL"])
            await until(feed._tasks[0].done)
            polls = feed.rest_polls
            await until(lambda: feed.rest_polls > polls)  # the REST fallback carries on
            assert connections == 1
            assert not feed.connected.is_set()
    refusals = [line for line in logs if line["event"] == "quote_stream_refused"]
    assert len(refusals) == 1
    assert msg in str(refusals[0])
    return refusals[0]


async def test_a_symbol_limit_refusal_on_the_open_stream_stops_reconnecting():
    """Error 405 (symbol limit exceeded) after subscribing is permanent for the run: reconnecting cannot cure it
    and each reconnect is refused again. The feed logs Alpaca's reason once and leaves quotes to REST."""
    await _assert_one_refusal_then_rest_only(405, "symbol limit exceeded")


async def test_an_insufficient_subscription_on_the_open_stream_stops_reconnecting():
    """Error 409 (insufficient subscription) after subscribing: refused for good, as at the handshake."""
    await _assert_one_refusal_then_rest_only(409, "insufficient subscription")


@pytest.mark.parametrize(
    ("code", "msg"), [(410, "invalid subscribe action for this feed"), (400, "invalid syntax")]
)
async def test_a_request_the_stream_can_never_serve_stops_reconnecting(code: int, msg: str):
    """Error 410 (a subscription the feed does not offer) and 400 (a message Alpaca cannot parse) answer the same
    request on every connection: reconnecting is refused again, for the whole run. Logged once, REST serves."""
    refusal = await _assert_one_refusal_then_rest_only(code, msg)
    assert (refusal["code"], refusal["symbols"]) == (str(code), ["AAPL"])


async def test_a_refused_quote_stream_logged_with_its_frames_locals_does_not_show_the_secret():
    """structlog's console renderer shows a logged traceback with each frame's locals (rich, `show_locals`): an
    application logging so must not see the secret in the frame that sent the auth message."""
    import io

    import structlog

    secret = "SECRET-in-no-frame-0123456789"

    async def refuse_the_keys(ws: ServerConnection) -> None:
        await _send(ws, {"T": "success", "msg": "connected"})
        await ws.recv()
        await _send(ws, {"T": "error", "code": 402, "msg": "auth failed"})

    out = io.StringIO()
    saved = structlog.get_config()
    renderer = structlog.dev.ConsoleRenderer(
        colors=False, exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=True, width=200)
    )
    structlog.configure(processors=[renderer], logger_factory=structlog.PrintLoggerFactory(out))
    try:
        async with serve(refuse_the_keys, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            credentials = AlpacaCredentials(key_id="key", secret_key=SecretStr(secret))
            feed = AlpacaQuoteFeed(
                _NoRestQuotes(),  # type: ignore[arg-type]
                f"ws://127.0.0.1:{port}/v2/iex",
                credentials,
                RealClock(),
                feed=DataFeed.IEX,
                settings=FAST,
            )
            try:
                await feed.subscribe(["AAPL"])
                await until(feed._tasks[0].done)
            finally:
                await feed.aclose()
    finally:
        structlog.configure(**saved)
    assert "quote_stream_refused" in out.getvalue()
    assert "auth" in out.getvalue()  # the traceback with locals was rendered
    assert secret not in out.getvalue()


async def test_a_stream_refused_for_a_symbol_rest_had_not_yet_vetted_resubscribes_once_rest_refuses_it(
    alpaca: Pair, fake_alpaca
):
    """8f613aa2 keeps a symbol the latest-quote request refused (400) out of the stream, whose own 400 ends it for
    the run. When that request failed for a while at the seed (a 429), the symbol was not yet known to be refused:
    the stream was subscribed to it and refused, and every quote of the plan came from REST polls for the rest of
    the run, though the polls found the symbol moments later. The stream now waits for them and subscribes again
    without it."""
    import asyncio
    import time

    from structlog.testing import capture_logs

    _, feed = alpaca
    fake_alpaca.invalid_quote_symbols = {"BTC/USD"}
    fake_alpaca.rate_limited_until = time.time() + 0.3
    with capture_logs() as logs:
        await feed.subscribe(["AAPL", "BTC/USD"])
        await until(lambda: "BTC/USD" in feed.rest_refused_symbols)
        await until(feed.connected.is_set)
        await asyncio.sleep(0.1)  # the subscription's answer
    assert len([line for line in logs if line["event"] == "quote_stream_refused"]) == 1
    assert feed.connected.is_set()


async def _authenticate(ws: ServerConnection) -> None:
    await _send(ws, {"T": "success", "msg": "connected"})
    await ws.recv()
    await _send(ws, {"T": "success", "msg": "authenticated"})
    await ws.recv()


def _at(second: int = 0) -> msgpack.Timestamp:
    """A quote time, as the stream sends it: 2026-03-02 15:00:`second` UTC."""
    from datetime import UTC, datetime

    return msgpack.Timestamp.from_datetime(datetime(2026, 3, 2, 15, 0, second, tzinfo=UTC))


def _q(symbol: str, bid: object, ask: object, ts: object) -> dict[str, object]:
    """A stream `q` message, one share on each side."""
    return {"T": "q", "S": symbol, "bp": bid, "bs": 1, "ap": ask, "as": 1, "t": ts}


class _Stream:
    """A stream server script: each connection is authenticated, sent the messages `messages(n)` gives for the
    n-th connection (from 1), and held open; `connections` counts them."""

    def __init__(self, messages: Callable[[int], list[dict[str, object]]]) -> None:
        self._messages = messages
        self.connections = 0

    async def __call__(self, ws: ServerConnection) -> None:
        self.connections += 1
        await _authenticate(ws)
        for message in self._messages(self.connections):
            await _send(ws, message)
        await ws.wait_closed()


async def test_a_frame_whose_timestamp_no_clock_can_hold_costs_a_reconnect_not_the_quote_stream():
    """msgpack decodes a `t` out of datetime's range with an OverflowError, which no handler caught: the stream
    task died with `connected` still set, so the REST fallback never polled and quotes went stale for the rest of
    the run (the engine believed the stream was live). The frame is undecodable: the stream reconnects."""
    stream = _Stream(lambda n: [_q("AAPL", 100.05, 100.1, msgpack.Timestamp(2**62, 0) if n == 1 else _at())])
    async with _feed_on(stream) as feed:
        await feed.subscribe(["AAPL"])
        await until(lambda: (q := feed.latest("AAPL")) is not None and q.bid == Decimal("100.05"))
        assert stream.connections == 2
        assert not feed._tasks[0].done()


async def test_an_unexpected_error_in_the_quote_stream_clears_connected_is_logged_and_rest_takes_over():
    """Any other exception in the stream's loop ended its task with `connected` set: the engine believed quotes
    were live and the REST fallback never polled. It is logged (with the error and the stream's url), `connected`
    is cleared (REST polls), and the stream reconnects with backoff."""
    from structlog.testing import capture_logs

    stream = _Stream(lambda _n: [_q("AAPL", 100.05, 100.1, _at())])
    with capture_logs() as logs:
        async with _feed_on(stream) as feed:

            def a_bug(_quote: object) -> None:
                raise RuntimeError("a bug")

            feed._store = a_bug  # type: ignore[method-assign]
            await feed.subscribe(["AAPL"])
            await until(lambda: stream.connections >= 2)
            polls = feed.rest_polls
            await until(lambda: feed.rest_polls > polls)  # the REST fallback serves while the stream is down
            assert not feed._tasks[0].done()
    failed = [line for line in logs if line["event"] == "quote_stream_failed"]
    assert failed
    assert failed[0]["error"] == "RuntimeError"
    assert failed[0]["url"].startswith("ws://127.0.0.1")


async def test_a_stream_quote_with_a_negative_price_is_dropped_as_one_that_is_not_a_number():
    """A quote whose price is not a number is dropped at the edge and the quote held stays; one with a negative
    price (no price Alpaca quotes: "no bid" is 0) replaced the good quote held, and the engine could not price
    until the next quote. Both are corrupt data: both are dropped, and logged."""
    from structlog.testing import capture_logs

    stream = _Stream(
        lambda _n: [
            _q("AAPL", 100.05, 100.1, _at()),
            _q("AAPL", -100.05, 100.1, _at(1)),
            _q("MSFT", 50.0, 50.1, _at(1)),
        ]
    )
    with capture_logs() as logs:
        async with _feed_on(stream) as feed:
            await feed.subscribe(["AAPL", "MSFT"])
            await until(lambda: feed.latest("MSFT") is not None)
            quote = feed.latest("AAPL")
            assert quote is not None
            assert quote.bid == Decimal("100.05")
    assert [line["event"] for line in logs].count("quote_unreadable") == 1


class _RestQuotes:
    def __init__(self, quotes: dict[str, tuple[float, float]]) -> None:
        self.quotes = quotes

    def get_stock_latest_quote(self, _request: object) -> dict[str, object]:
        from datetime import UTC, datetime

        from alpaca.data.models import Quote as SdkQuote

        ts = datetime(2026, 3, 2, 15, tzinfo=UTC)
        raw = {"bp": 0.0, "bs": 1, "ap": 0.0, "as": 1, "t": ts, "bx": "V", "ax": "V", "c": [], "z": "C"}
        return {s: SdkQuote(s, raw | {"bp": bid, "ap": ask}) for s, (bid, ask) in self.quotes.items()}


def _rest_feed(quotes: dict[str, tuple[float, float]]) -> AlpacaQuoteFeed:
    """A feed whose latest-quote (REST) answer is `quotes` (symbol: bid, ask); its stream is never started."""
    return _feed(_RestQuotes(quotes), "ws://127.0.0.1:9/v2/iex")


async def test_a_rest_quote_with_a_negative_price_is_dropped_and_costs_no_other_symbol():
    """The latest-quote (REST) answer is read at the same edge: a negative price is dropped, logged, and the other
    symbols of the same answer are kept (an unreadable quote there must not end the seed or the fallback)."""
    from structlog.testing import capture_logs

    feed = _rest_feed({"AAPL": (-1.0, 100.1), "MSFT": (50.0, 50.1)})
    with capture_logs() as logs:
        await feed.poll_rest(["AAPL", "MSFT"])
    assert feed.latest("AAPL") is None
    quote = feed.latest("MSFT")
    assert quote is not None
    assert quote.bid == Decimal("50.0")
    assert [line["symbol"] for line in logs if line["event"] == "quote_unreadable"] == ["AAPL"]


@pytest.mark.parametrize("sides", [(107.0, 0.0), (0.0, 107.0)])
async def test_a_rest_quote_with_a_side_of_zero_is_kept_one_sided_not_dropped(sides: tuple[float, float]):
    """Guard (9e8c49d7 refuses negative prices at this edge): 0 is Alpaca's "no bid/ask", not a bad number. The
    quote replaces the one held, so the core sees it one-sided and refuses to price from it, rather than
    pricing from the older two-sided quote."""
    feed = _rest_feed({"AAPL": sides})
    await feed.poll_rest(["AAPL"])
    quote = feed.latest("AAPL")
    assert quote is not None
    assert (quote.bid, quote.ask) == tuple(Decimal(str(side)) for side in sides)
    assert assess_quote(quote, quote.ts, timedelta(seconds=5), Decimal(10)) is QuoteVerdict.ONE_SIDED


@pytest.mark.parametrize("price", [float("nan"), "NaN", float("inf")])
async def test_a_quote_whose_price_is_not_finite_costs_that_quote_not_the_stream_or_the_rest_answer(
    price: object,
):
    """NaN and infinity are no prices: the quote is dropped (as one that is not a number), on the stream without a
    reconnect and in a REST answer without losing the other symbols (a NaN compared as a price raised decimal's
    InvalidOperation, no ValueError)."""
    stream = _Stream(lambda _n: [_q("AAPL", price, 100.1, _at()), _q("MSFT", 50.0, 50.1, _at())])
    async with _feed_on(stream) as feed:
        await feed.subscribe(["AAPL", "MSFT"])
        await until(lambda: feed.latest("MSFT") is not None)
        assert feed.latest("AAPL") is None
        assert stream.connections == 1
    if isinstance(price, float):
        rest = _rest_feed({"AAPL": (price, 100.1), "MSFT": (50.0, 50.1)})
        await rest.poll_rest(["AAPL", "MSFT"])
        assert rest.latest("AAPL") is None
        assert rest.latest("MSFT") is not None
