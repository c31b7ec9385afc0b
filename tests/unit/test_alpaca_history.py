"""Alpaca historical quotes and trades through alpaca-py, against a minimal loopback stub of the data API.

The stub serves `/v2/stocks/quotes` and `/v2/stocks/trades` in pages of two records linked by
`next_page_token`, checks the key headers, and records every request, so the tests see the SDK's real paging.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiohttp import web
from tests.fakes.alpaca_fixtures import locals_a_traceback_renderer_shows

from repeg.errors import AuthenticationError, ConfigError, MarketDataError
from repeg.market.alpaca_history import AlpacaDataSource, fetch_quotes, fetch_trades
from repeg.market.tape import to_ns

KEY, SECRET = "test-key", "test-secret"
START = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
END = datetime(2024, 1, 2, 14, 31, tzinfo=UTC)
PAGE = 2


def _quote(t: str, bp: float, ap: float) -> dict[str, object]:
    return {"t": t, "bp": bp, "bs": 3, "ap": ap, "as": 5, "bx": "Q", "ax": "V", "c": ["R"], "z": "C"}


QUOTES = {
    "AAA": [
        _quote("2024-01-02T14:30:00.000000001Z", 157.01, 157.05),
        _quote("2024-01-02T14:30:00.5Z", 157.02, 157.05),
        _quote("2024-01-02T14:30:01Z", 157.02, 157.04),
    ],
    "BBB": [_quote("2024-01-02T14:30:00.25Z", 0.9999, 1.01)],
}
TRADES = {
    "AAA": [{"t": f"2024-01-02T14:30:0{k}Z", "p": 157.03, "s": 100 + k, "x": "V", "i": k} for k in range(5)]
}


@dataclass
class Stub:
    quotes: dict[str, list[dict[str, object]]] = field(default_factory=lambda: QUOTES)
    trades: dict[str, list[dict[str, object]]] = field(default_factory=lambda: TRADES)
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    #: HTTP statuses to answer the next requests with, first to last (then the data).
    failures: list[int] = field(default_factory=list)

    def _page(self, data: dict[str, list[dict[str, object]]], request: web.Request) -> dict[str, object]:
        flat = [(sym, rec) for sym in sorted(data) for rec in data[sym]]
        start = int(request.query.get("page_token") or 0)
        chunk = flat[start : start + PAGE]
        grouped: dict[str, list[dict[str, object]]] = {}
        for sym, rec in chunk:
            grouped.setdefault(sym, []).append(rec)
        token = str(start + PAGE) if start + PAGE < len(flat) else None
        return {"grouped": grouped, "next_page_token": token}

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        if (
            request.headers.get("APCA-API-KEY-ID") != KEY
            or request.headers.get("APCA-API-SECRET-KEY") != SECRET
        ):
            return web.json_response({"code": 40110000, "message": "request is not authorized"}, status=401)
        if self.failures:
            return web.json_response({"message": "injected"}, status=self.failures.pop(0))
        kind = request.path.rsplit("/", 1)[-1]
        page = self._page(self.quotes if kind == "quotes" else self.trades, request)
        return web.json_response({kind: page["grouped"], "next_page_token": page["next_page_token"]})


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    server = Stub()
    app = web.Application()
    app.router.add_get("/v2/stocks/quotes", server.handle)
    app.router.add_get("/v2/stocks/trades", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


def _source(stub: Stub, key: str = KEY) -> AlpacaDataSource:
    return AlpacaDataSource(api_key=key, secret_key=SECRET, url_override=stub.url, feed="sip")


async def test_quotes_follow_every_page_and_keep_exact_units(stub: Stub) -> None:
    tape = await asyncio.to_thread(fetch_quotes, _source(stub), ["AAA", "BBB"], START, END)
    assert len(stub.requests) == 2
    assert stub.requests[1]["page_token"] == "2"
    aaa = tape.columns("AAA")
    assert aaa.bid.tolist() == [1_570_100, 1_570_200, 1_570_200]
    assert aaa.ask.tolist() == [1_570_500, 1_570_500, 1_570_400]
    assert aaa.bid_size.tolist() == [300, 300, 300]  # 2024: three round lots
    assert tape.columns("BBB").bid.tolist() == [9_999]


async def test_quote_timestamps_keep_nanoseconds(stub: Stub) -> None:
    tape = await asyncio.to_thread(fetch_quotes, _source(stub), ["AAA"], START, END)
    assert tape.columns("AAA").ts[0] == to_ns(START) + 1


async def test_request_carries_symbols_range_and_feed(stub: Stub) -> None:
    await asyncio.to_thread(fetch_quotes, _source(stub), ["AAA", "BBB"], START, END)
    first = stub.requests[0]
    assert first["symbols"] == "AAA,BBB"
    assert first["feed"] == "sip"
    assert first["start"].startswith("2024-01-02T14:30:00")


async def test_trades_follow_every_page(stub: Stub) -> None:
    tape = await asyncio.to_thread(fetch_trades, _source(stub), ["AAA"], START, END)
    assert len(stub.requests) == 3
    cols = tape.columns("AAA")
    assert cols.size.tolist() == [100, 101, 102, 103, 104]
    assert set(cols.price.tolist()) == {1_570_300}


async def test_refused_credentials_raise_authentication_error(stub: Stub) -> None:
    with pytest.raises(AuthenticationError, match="not authorized"):
        await asyncio.to_thread(fetch_quotes, _source(stub, key="wrong"), ["AAA"], START, END)


async def test_a_price_off_the_grid_is_refused(stub: Stub) -> None:
    stub.quotes = {"AAA": [_quote("2024-01-02T14:30:00Z", 157.00005, 157.05)]}
    with pytest.raises(MarketDataError, match="finer than"):
        await asyncio.to_thread(fetch_quotes, _source(stub), ["AAA"], START, END)


async def test_a_trade_print_finer_than_the_grid_is_dropped_not_the_whole_fetch(stub: Stub) -> None:
    # Average-price prints can be finer than $0.0001 (100.00005). One price column serves buys and sells, so no
    # rounding is exact for both sides: such a print is left out (never a fill that did not happen), and the
    # rest of the fetch is kept.
    stub.trades = {
        "AAA": [
            {"t": "2024-01-02T14:30:00Z", "p": 100.01, "s": 100, "x": "V", "i": 1},
            {"t": "2024-01-02T14:30:01Z", "p": 100.00005, "s": 300, "x": "D", "i": 2},
            {"t": "2024-01-02T14:30:02Z", "p": 100.02, "s": 200, "x": "V", "i": 3},
        ],
        "BBB": [{"t": "2024-01-02T14:30:00Z", "p": 1.00005, "s": 10, "x": "D", "i": 4}],
    }
    tape = await asyncio.to_thread(fetch_trades, _source(stub), ["AAA", "BBB"], START, END)
    cols = tape.columns("AAA")
    assert cols.price.tolist() == [1_000_100, 1_000_200]
    assert cols.size.tolist() == [100, 200]
    assert "BBB" not in tape.symbols


async def test_no_quotes_in_range_is_an_error(stub: Stub) -> None:
    stub.quotes = {}
    with pytest.raises(MarketDataError, match="no quotes"):
        await asyncio.to_thread(fetch_quotes, _source(stub), ["AAA"], START, END)


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "k")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s")
    assert AlpacaDataSource.from_env().api_key == "k"
    monkeypatch.delenv("APCA_API_KEY_ID")
    with pytest.raises(AuthenticationError, match="APCA_API_KEY_ID"):
        AlpacaDataSource.from_env()


def test_the_data_source_never_shows_its_secret() -> None:
    source = AlpacaDataSource(api_key=KEY, secret_key="do-not-print-9f3a", url_override="http://127.0.0.1:9")
    assert "do-not-print-9f3a" not in repr(source)
    assert "do-not-print-9f3a" not in str(source)


def test_the_data_source_secret_does_not_leak_through_its_fields() -> None:
    # The secret was a plain `str` hidden only from `repr`: `dataclasses.asdict` (what a script dumping its
    # settings, or a structured log of them, would call) and `vars` printed it.
    import dataclasses

    source = AlpacaDataSource(api_key=KEY, secret_key="do-not-print-9f3a")
    assert "do-not-print-9f3a" not in str(dataclasses.asdict(source))
    assert "do-not-print-9f3a" not in str(vars(source))
    assert "do-not-print-9f3a" not in str(source.secret_key)


def test_a_server_that_never_answers_is_a_market_data_error_naming_the_url_not_the_secret() -> None:
    # The listening socket completes the connection (kernel backlog) but nobody ever answers: without an HTTP
    # timeout the fetch would hang the command forever.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        source = AlpacaDataSource(api_key=KEY, secret_key="do-not-print-9f3a", url_override=url, timeout=0.2)
        with pytest.raises(MarketDataError, match="did not answer") as failed:
            fetch_quotes(source, ["AAA"], START, END)
    assert f"{url}/v2/stocks/quotes" in str(failed.value)
    assert "do-not-print-9f3a" not in str(failed.value)


def test_a_refused_connection_is_a_market_data_error_naming_the_url() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, never listening: connections are refused
        source = AlpacaDataSource(api_key=KEY, secret_key=SECRET, url_override=url, timeout=0.2)
        with pytest.raises(MarketDataError, match="unreachable") as failed:
            fetch_trades(source, ["AAA"], START, END)
    assert f"{url}/v2/stocks/trades" in str(failed.value)


def test_an_unreachable_data_api_says_why_though_the_error_is_not_chained() -> None:
    # 73f3cbda stopped chaining the SDK's error (its frames hold the secret header): the reason (refused, a name
    # that does not resolve, a TLS failure) was then nowhere, only the class name ConnectionError.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        source = AlpacaDataSource(api_key=KEY, secret_key=SECRET, url_override=url, timeout=0.2)
        with pytest.raises(MarketDataError) as failed:
            fetch_trades(source, ["AAA"], START, END)
    assert "Connection refused" in str(failed.value)
    assert " object at 0x" not in str(failed.value)


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan")])
def test_a_timeout_that_is_not_positive_is_refused_when_the_source_is_made(timeout: float) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        AlpacaDataSource(api_key=KEY, secret_key=SECRET, timeout=timeout)


@pytest.mark.parametrize("timeout", [float("inf"), 1e300, True])
def test_a_timeout_no_socket_can_hold_is_refused_when_the_source_is_made(timeout: float) -> None:
    # inf (or 1e300) passed `> 0`, then every request raised OverflowError from the socket ("timestamp out of
    # range for platform time_t"), not a MarketDataError; True was taken for one second.
    with pytest.raises(ConfigError, match="timeout"):
        AlpacaDataSource(api_key=KEY, secret_key=SECRET, timeout=timeout)


async def test_quote_sizes_before_november_3_2025_are_round_lots_and_become_shares(stub: Stub) -> None:
    # Alpaca's stock quote sizes were in round lots (100 shares) before 2025-11-03 and are in shares since: the
    # queue fill model takes the displayed size as the shares ahead, so lots read as shares understate the queue
    # a hundredfold (and fill a resting order far too soon).
    stub.quotes = {
        "AAA": [
            _quote("2025-10-31T19:59:59Z", 157.01, 157.05),
            _quote("2025-11-03T14:30:00Z", 157.01, 157.05),
        ]
    }
    tape = await asyncio.to_thread(fetch_quotes, _source(stub), ["AAA"], START, END)
    cols = tape.columns("AAA")
    assert cols.bid_size.tolist() == [300, 3]
    assert cols.ask_size.tolist() == [500, 5]


async def test_a_canceled_or_incorrect_trade_print_is_left_out(stub: Stub) -> None:
    # Alpaca marks a busted print `u: canceled` and a corrected one `u: incorrect` (its correction comes as
    # `u: corrected`): a print that did not stand must not fill a resting order in the queue model.
    stub.trades = {
        "AAA": [
            {"t": "2024-01-02T14:30:00Z", "p": 100.01, "s": 100, "x": "V", "i": 1},
            {"t": "2024-01-02T14:30:01Z", "p": 99.00, "s": 900, "x": "V", "i": 2, "u": "canceled"},
            {"t": "2024-01-02T14:30:02Z", "p": 99.50, "s": 800, "x": "V", "i": 3, "u": "incorrect"},
            {"t": "2024-01-02T14:30:03Z", "p": 100.02, "s": 200, "x": "V", "i": 4, "u": "corrected"},
        ]
    }
    tape = await asyncio.to_thread(fetch_trades, _source(stub), ["AAA"], START, END)
    assert tape.columns("AAA").size.tolist() == [100, 200]


def test_an_unknown_feed_is_refused_when_the_source_is_made() -> None:
    # Feed names are lower case ("sip"): "SIP" used to pass until the fetch, then fail as a bare ValueError.
    with pytest.raises(ConfigError, match="feed"):
        AlpacaDataSource(api_key=KEY, secret_key=SECRET, feed="SIP")


async def test_a_trade_print_with_a_non_regular_sale_condition_is_left_out(stub: Stub) -> None:
    # Alpaca gives each print its CTA/UTP sale conditions (`c`), the codes a trade file's `conditions` column
    # holds: a derivatively priced average-price print (here 0.50 below the market) or an out-of-sequence report
    # did not execute at the market of its stamp and must not fill a resting limit in the queue model, as for
    # a trade file (repeg.market.sale_conditions); intermarket sweeps and odd lots still count.
    stub.trades = {
        "AAA": [
            {"t": "2024-01-02T14:30:00Z", "p": 100.01, "s": 100, "x": "V", "i": 1, "c": ["@", "F", "I"]},
            {"t": "2024-01-02T14:30:01Z", "p": 99.50, "s": 900, "x": "D", "i": 2, "c": [" ", "4", "B"]},
            {"t": "2024-01-02T14:30:02Z", "p": 99.60, "s": 800, "x": "D", "i": 3, "c": ["@", "Z"]},
            {"t": "2024-01-02T14:30:03Z", "p": 100.02, "s": 200, "x": "V", "i": 4, "c": ["@"]},
            {"t": "2024-01-02T14:30:04Z", "p": 100.03, "s": 300, "x": "V", "i": 5},
        ]
    }
    tape = await asyncio.to_thread(fetch_trades, _source(stub), ["AAA"], START, END)
    assert tape.columns("AAA").size.tolist() == [100, 200, 300]


async def test_a_refused_fetch_carries_no_frame_showing_the_secret_header(stub: Stub) -> None:
    # Chained to alpaca-py's APIError, the error kept the SDK's frames, whose locals hold the request's headers
    # (APCA-API-SECRET-KEY): logged with its frames' locals (structlog's rich tracebacks), the secret showed.
    with pytest.raises(AuthenticationError) as info:
        await asyncio.to_thread(fetch_quotes, _source(stub, key="wrong"), ["AAA"], START, END)
    shown = locals_a_traceback_renderer_shows(info.value)
    assert shown, "no frame was walked: the test would prove nothing"
    assert not [text for text in shown if SECRET in text]


def test_a_refusal_of_the_environment_leaves_no_frame_holding_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the secret set: the refusal was raised from the frame holding it in a local (a logger rendering frames'
    # locals, e.g. structlog's rich tracebacks, would show it).
    monkeypatch.setenv("APCA_API_SECRET_KEY", "S3CRET-0123456789")
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    with pytest.raises(AuthenticationError) as info:
        AlpacaDataSource.from_env()
    shown = locals_a_traceback_renderer_shows(info.value)
    assert shown, "no frame was walked: the test would prove nothing"
    assert not [text for text in shown if "S3CRET-0123456789" in text]


async def test_a_request_alpaca_refuses_for_good_is_not_retried_and_names_the_status_symbols_and_endpoint(
    stub: Stub,
) -> None:
    stub.failures = [410, 410, 410, 410]
    with pytest.raises(MarketDataError) as info:
        await asyncio.to_thread(fetch_quotes, _source(stub), ["AAA", "BBB"], START, END)
    assert len(stub.requests) == 1
    assert "HTTP 410" in str(info.value)
    assert "AAA, BBB" in str(info.value)
    assert "/v2/stocks/quotes" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_on_a_page_is_retried_a_bounded_number_of_times(
    stub: Stub, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 5xx is transient (Alpaca's spec: "we recommend retrying these later"): the SDK retried only 429 and 504, so
    # one 502 on the 40th page threw away a long fetch. Retried as those are (3 times), then refused.
    monkeypatch.setattr("alpaca.common.rest.time.sleep", lambda _seconds: None)
    stub.failures = [status]
    tape = await asyncio.to_thread(fetch_quotes, _source(stub), ["AAA"], START, END)
    assert len(tape.columns("AAA")) == 3
    stub.failures = [status] * 10
    stub.requests.clear()
    with pytest.raises(MarketDataError, match=f"HTTP {status}"):
        await asyncio.to_thread(fetch_quotes, _source(stub), ["AAA"], START, END)
    assert len(stub.requests) == 4  # the first request and 3 retries


async def _refuses_a_quote_whose(stub: Stub, field: str, value: object, match: str) -> None:
    """`fetch_quotes` of one quote whose `field` is `value` (the rest of it good) refuses it, saying `match`."""
    quote = _quote("2024-01-02T14:30:00Z", 157.00, 157.05)
    quote[field] = value
    stub.quotes = {"AAA": [quote]}
    with pytest.raises(MarketDataError, match=match):
        await asyncio.to_thread(fetch_quotes, _source(stub), ["AAA"], START, END)


@pytest.mark.parametrize("field", ["bp", "ap"])
async def test_a_quote_whose_price_is_null_is_refused_not_read_as_a_price(stub: Stub, field: str) -> None:
    # JSON null became NaN, and NaN cast to int64 a bid of -922 trillion dollars, accepted as on the grid.
    await _refuses_a_quote_whose(stub, field, None, f"AAA: record 1 {field}=None is not a price")


async def test_a_trade_print_whose_price_is_null_is_refused_not_read_as_a_price(stub: Stub) -> None:
    stub.trades = {"AAA": [{"t": "2024-01-02T14:30:00Z", "p": None, "s": 100, "x": "V", "i": 1}]}
    with pytest.raises(MarketDataError, match="AAA: record 1 p=None is not a price"):
        await asyncio.to_thread(fetch_trades, _source(stub), ["AAA"], START, END)


@pytest.mark.parametrize("field", ["bs", "as"])
async def test_a_quote_whose_size_is_null_is_a_market_data_error_naming_it(stub: Stub, field: str) -> None:
    # int(None) raised a bare TypeError: an internal error, not a refusal of the data.
    await _refuses_a_quote_whose(stub, field, None, "AAA: a quote record has an unreadable size")


@pytest.mark.parametrize("price", [0.0, -157.03])
async def test_a_trade_print_at_zero_or_below_is_refused_as_the_file_loaders_refuse_it(
    stub: Stub, price: float
) -> None:
    # The CSV and Databento loaders refuse a print at $0 or below (the queue fill model would take it as trading
    # through every resting buy); the Alpaca history loader put it in the tape.
    stub.trades = {"AAA": [{"t": "2024-01-02T14:30:00Z", "p": price, "s": 100, "x": "V", "i": 1}]}
    with pytest.raises(MarketDataError, match=f"AAA: record 1 p={price!r} is not a positive price"):
        await asyncio.to_thread(fetch_trades, _source(stub), ["AAA"], START, END)


@pytest.mark.parametrize("field", ["bp", "ap"])
async def test_a_quote_with_a_negative_price_is_refused_as_the_file_loaders_refuse_it(
    stub: Stub, field: str
) -> None:
    # 0 is "no quote on that side" and is kept; a negative price is no price (the quote files refuse it).
    await _refuses_a_quote_whose(stub, field, -1.0, f"AAA: record 1 {field}=-1.0 is a negative price")


@pytest.mark.parametrize("sides", [(0.0, 157.05), (157.00, 0.0)])
async def test_a_quote_with_a_side_of_zero_is_kept_as_no_quote_on_that_side(
    stub: Stub, sides: tuple[float, float]
) -> None:
    # Guard (83532377 refuses negative prices): 0 is Alpaca's "no bid/ask", kept in the tape as the files keep it.
    stub.quotes = {"AAA": [_quote("2024-01-02T14:30:00Z", *sides)]}
    aaa = (await asyncio.to_thread(fetch_quotes, _source(stub), ["AAA"], START, END)).columns("AAA")
    assert (aaa.bid.tolist(), aaa.ask.tolist()) == ([round(sides[0] * 10_000)], [round(sides[1] * 10_000)])


@pytest.mark.parametrize("field", ["bs", "as"])
async def test_a_quote_with_a_negative_size_is_refused_as_the_file_loaders_refuse_it(
    stub: Stub, field: str
) -> None:
    await _refuses_a_quote_whose(stub, field, -3, "AAA: a quote record has a negative size")
