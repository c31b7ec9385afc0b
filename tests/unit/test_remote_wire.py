"""The remote simulator's wire: typed errors survive the round trip, URLs are loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from repeg.brokers.remote.client import RemoteBroker, SimAddress, _Connection, parse_sim_url
from repeg.brokers.remote.server import SimServer
from repeg.brokers.remote.wire import (
    answer_line,
    decode_error,
    encode_error,
    parse_answer,
    parse_request,
    request_line,
)
from repeg.errors import (
    BrokerError,
    BrokerUnavailableError,
    ConfigError,
    DuplicateClientOrderIdError,
    IllegalTransitionError,
    InsufficientBuyingPowerError,
    InvariantViolationError,
    NotTradableError,
    OrderNotCancelableError,
    OrderNotFoundError,
    OrderRejectedError,
    OverfillError,
    RepegError,
    UnknownSymbolError,
)


@pytest.mark.parametrize(
    "error",
    [
        DuplicateClientOrderIdError("r1-L0000-A00"),
        OrderNotFoundError("sim-1"),
        OrderNotCancelableError("sim-1", "filled"),
        UnknownSymbolError("ZZZ"),
        NotTradableError("ZZZ"),
        IllegalTransitionError("order", "filled", "cancel"),
    ],
)
def test_errors_with_fields_are_rebuilt_equal(error: RepegError) -> None:
    # Every class the wire rebuilds from its fields, compared field by field: only the type and the text were,
    # for four of the six, so a NotTradableError that came back a bare BrokerError, or with its whole message as
    # its symbol, passed.
    rebuilt = decode_error(encode_error(error))
    assert type(rebuilt) is type(error)
    assert str(rebuilt) == str(error)
    assert vars(rebuilt) == vars(error)


def _alpaca_kept(error: BrokerError, broker_message: str, code: str) -> BrokerError:
    """`error` with the broker's words and code set after construction, as the Alpaca mapping's `_kept` sets them
    on the classes whose constructor takes neither (or no code)."""
    error.broker_message, error.code = broker_message, code
    return error


@pytest.mark.parametrize(
    "error",
    [
        DuplicateClientOrderIdError("r1-L0000-A00", broker_message="client_order_id must be unique"),
        OrderNotCancelableError("sim-1", "filled", broker_message='order is already in "filled" state'),
        OrderNotCancelableError(
            "sim-1", "filled", broker_message='order is already in "filled" state', code="42210000"
        ),
        OrderRejectedError("X: limit price off the tick grid", broker_message="sub-penny", code="42210000"),
        _alpaca_kept(
            DuplicateClientOrderIdError("r1-L0000-A00"), "client_order_id must be unique", "40010001"
        ),
        _alpaca_kept(OrderNotFoundError("sim-1"), "order not found", "40410000"),
    ],
)
def test_the_brokers_own_words_and_code_cross_the_wire(error: BrokerError) -> None:
    """The simulator words its refusals as Alpaca does (`broker_message`, `code`); over the wire they were lost,
    so a remote run's journal said less than an in-process run's about the same refusal."""
    rebuilt = decode_error(encode_error(error))
    assert isinstance(rebuilt, BrokerError)
    assert (rebuilt.broker_message, rebuilt.code) == (error.broker_message, error.code)
    assert str(error) in str(rebuilt)


def test_message_only_errors_keep_their_class_and_the_remote_text() -> None:
    rebuilt = decode_error(encode_error(OrderRejectedError("insufficient buying power")))
    assert isinstance(rebuilt, OrderRejectedError)
    assert "insufficient buying power" in str(rebuilt)


def test_a_buy_refused_for_want_of_buying_power_keeps_its_type_over_the_wire() -> None:
    # The engine cuts an escalation to the buying power on this refusal only: decoded as a bare BrokerError, a run
    # on the remote simulator failed the leg where an in-process run bought what the buying power covered.
    error = InsufficientBuyingPowerError(
        "XYZ: buy of 99 at up to 10.20 costs 1009.80, buying power is 1000.00",
        broker_message="insufficient buying power",
        code="40310000",
    )
    rebuilt = decode_error(encode_error(error))
    assert type(rebuilt) is InsufficientBuyingPowerError
    assert (rebuilt.broker_message, rebuilt.code) == ("insufficient buying power", "40310000")
    assert str(error) in str(rebuilt)


def test_an_unknown_error_class_becomes_a_broker_error() -> None:
    assert type(decode_error('{"type": "Weird", "message": "x"}')) is BrokerError


def test_request_and_answer_lines_round_trip() -> None:
    assert parse_request(request_line("get_order", "s1", '{"order_id": "a"}')) == (
        "get_order",
        "s1",
        '{"order_id": "a"}',
    )
    assert parse_answer(answer_line(False, "{}")) == (False, "{}")


def test_an_unreadable_answer_is_a_broker_unavailable_error() -> None:
    with pytest.raises(BrokerUnavailableError, match="unreadable"):
        parse_answer(b"<html>\n")


def test_sim_urls_name_a_loopback_host_port_and_session() -> None:
    assert parse_sim_url("sim://127.0.0.1:8123/case-1") == SimAddress("127.0.0.1", 8123, "case-1")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1/s", "sim://10.0.0.1:1/s", "sim://127.0.0.1/s", "sim://127.0.0.1:1/"]
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("sim://127.0.0.1:PORT/SESSION")):
        parse_sim_url(url)


@pytest.mark.parametrize(
    "url",
    ["sim://127.0.0.1:0/s", "sim://127.0.0.1:65536/s", "sim://127.0.0.1:1/a\tb", "sim://127.0.0.1:1/a\nb"],
)
def test_urls_no_request_could_use_are_refused_when_parsed(url: str) -> None:
    """A port above 65535 failed only at the first call, with an OverflowError that is no BrokerError (port 0 can
    never be reached); a session name holding a tab or line feed breaks the request line at every call."""
    with pytest.raises(ConfigError, match=re.escape("sim://127.0.0.1:PORT/SESSION")):
        parse_sim_url(url)


@pytest.mark.parametrize("url", ["sim://[::1]:8123/s", "sim://::1:8123/s", "sim://0.0.0.0:8123/s"])
def test_a_host_the_server_does_not_listen_on_is_refused_naming_the_option_and_the_host(url: str) -> None:
    """The server listens on 127.0.0.1 only: `sim://[::1]:PORT/S` passed the check and the run then failed as
    "remote simulator unreachable" at its first call, instead of as bad input naming --sim-url."""
    with pytest.raises(ConfigError, match=re.escape("--sim-url")) as refused:
        parse_sim_url(url)
    assert "127.0.0.1" in str(refused.value)
    assert url in str(refused.value)


def test_localhost_is_taken_as_the_loopback_host() -> None:
    assert parse_sim_url("sim://localhost:8123/s") == SimAddress("localhost", 8123, "s")


@pytest.mark.parametrize("url", ["sim://127.0.0.1:\u00b2/s", "sim://127.0.0.1:\uff18\uff10/s"])
def test_a_port_of_non_ascii_digits_is_refused_naming_the_option(url: str) -> None:
    """`str.isdigit` holds for "²", which `int` cannot read: `--sim-url sim://127.0.0.1:²/s` ended the run as an
    internal error (a ValueError traceback) instead of bad input naming --sim-url."""
    with pytest.raises(ConfigError, match=re.escape("sim://127.0.0.1:PORT/SESSION")):
        parse_sim_url(url)


@contextlib.asynccontextmanager
async def _connected(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[_Connection]:
    """A client connection to a loopback server that answers with `handler`; both closed on exit."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = _Connection(SimAddress("127.0.0.1", port, "s1"))
    try:
        yield conn
    finally:
        await conn.close()
        server.close()
        await server.wait_closed()


async def test_a_call_cancelled_while_waiting_never_hands_its_answer_to_the_next_call() -> None:
    """A request abandoned mid-flight (SIGINT cancels the run while it polls) leaves an answer on the wire; the
    next request must read its own answer, not that one (else a cancel "succeeds" on a get_order's answer)."""

    async def answer_slowly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            method, _, _ = parse_request(line)
            await asyncio.sleep(0.2 if method == "slow" else 0)
            writer.write(answer_line(True, f'"{method}"'))
            await writer.drain()
        writer.close()

    async with _connected(answer_slowly) as conn:
        slow = asyncio.create_task(conn.call("slow"))
        await asyncio.sleep(0.05)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert await conn.call("fast") == '"fast"'


async def test_the_remote_feed_keeps_polling_after_a_failed_poll() -> None:
    """One unanswered quote poll (the server busy or restarting) must not end the feed: later quotes arrive."""
    from datetime import timedelta

    from repeg.brokers.remote.client import RemoteFeed
    from repeg.domain.quote import Quote
    from repeg.engine.clock import RealClock

    clock = RealClock()

    class FlakyServer:
        calls = 0

        async def quotes(self, symbols: list[str]) -> dict[str, Quote | None]:
            self.calls += 1
            if self.calls == 2:
                raise BrokerUnavailableError("remote simulator closed the connection during quotes")
            bid = Decimal(100 + self.calls)
            return {
                s: Quote(
                    symbol=s, bid=bid, bid_size=Decimal(1), ask=bid + 1, ask_size=Decimal(1), ts=clock.now()
                )
                for s in symbols
            }

    server = FlakyServer()
    feed = RemoteFeed(server, clock, interval=timedelta(milliseconds=5))  # type: ignore[arg-type]
    try:
        await feed.subscribe(["X"])
        for _ in range(400):
            if server.calls >= 4:
                break
            await asyncio.sleep(0.005)
        quote = feed.latest("X")
        assert quote is not None
        assert quote.bid >= Decimal(103)
    finally:
        await feed.close()


async def test_an_answer_cut_off_by_a_dying_server_is_a_broker_unavailable_error() -> None:
    """A server killed while writing leaves half an answer line: the engine must see the typed "outcome unknown"
    error it resolves by client order id, never a JSON validation error that ends the run as an internal
    failure; and the next call must open a fresh connection rather than read the dead one."""
    calls = 0

    async def die_mid_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        while line := await reader.readline():
            calls += 1
            method, _, _ = parse_request(line)
            if calls == 1:
                writer.write(b'ok\t{"order_id": "sim-1", "sta')  # no end of line: the process died here
                await writer.drain()
                break
            writer.write(answer_line(True, f'"{method}"'))
            await writer.drain()
        writer.close()

    async with _connected(die_mid_answer) as conn:
        with pytest.raises(BrokerUnavailableError, match="submit_order"):
            await conn.call("submit_order")
        assert await conn.call("get_order") == '"get_order"'


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (InvariantViolationError("fill model paper planned 5 with 3 remaining"), InvariantViolationError),
        (OverfillError("L0001", Decimal(10), Decimal(12)), InvariantViolationError),
        (IllegalTransitionError("simulated order", "filled", "cancel"), IllegalTransitionError),
    ],
)
def test_a_simulator_bug_crosses_the_wire_as_a_bug_not_as_an_order_refusal(
    error: RepegError, kind: type[RepegError]
) -> None:
    """In process these escape the engine's `except BrokerError` and stop the run as internal failures; over the
    wire they must not turn into a `BrokerError`, which the engine records as the broker refusing the order."""
    rebuilt = decode_error(encode_error(error))
    assert isinstance(rebuilt, kind)
    assert not isinstance(rebuilt, BrokerError)
    assert str(error) in str(rebuilt)


async def test_an_unreachable_remote_simulator_is_named_by_its_url_as_written() -> None:
    # It said "remote simulator at SimAddress(host='localhost', port=..., session='s1') unreachable".
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens on that port any more
    url = f"sim://localhost:{port}/s1"
    with pytest.raises(BrokerUnavailableError) as info:
        await RemoteBroker(url).cancel_order("o1")
    assert str(info.value).startswith(f"remote simulator at {url} unreachable: ")


async def _answers(server: SimServer, *lines: bytes) -> list[bytes]:
    """The server's answers to `lines`, sent on one connection, read one line each."""
    port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.writelines(lines)
        await writer.drain()
        answers = [await asyncio.wait_for(reader.readline(), 5) for _ in lines]
        writer.close()
        await writer.wait_closed()
    finally:
        await server.close()
    return answers


async def test_a_request_nested_too_deeply_is_refused_as_a_bad_request_not_dropped() -> None:
    """`json.loads` of a deeply nested request raises RecursionError, which is no ValueError: the server dropped the
    connection without an answer (asyncio printed the traceback), and the caller saw "outcome unknown" where the
    request was simply malformed."""
    from repeg.brokers.remote.server import Session

    async def no_session(name: str) -> Session:
        raise AssertionError("a malformed request must not create a session")

    (answer,) = await _answers(SimServer(no_session), request_line("get_account", "s1", "[" * 100_000))
    ok, body = parse_answer(answer)
    assert not ok
    error = decode_error(body)
    assert type(error) is BrokerError
    assert "bad request" in str(error)


async def test_a_server_that_never_answers_is_a_broker_unavailable_error_not_a_hang() -> None:
    """A simulator process that accepts the request and then never answers (stopped, wedged) hung `repeg run`
    forever in its broker call, past every deadline of the run; a bounded wait makes it the typed "outcome
    unknown" the engine resolves by client order id, and the next call opens a fresh connection."""
    calls = 0

    async def answer_all_but_the_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        while line := await reader.readline():
            calls += 1
            if calls > 1:
                writer.write(answer_line(True, f'"{parse_request(line)[0]}"'))
                await writer.drain()

    server = await asyncio.start_server(answer_all_but_the_first, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = _Connection(SimAddress("127.0.0.1", port, "s1"), timeout=timedelta(milliseconds=100))
    try:
        with pytest.raises(BrokerUnavailableError, match=re.escape("submit_order: no answer within 0.1 s")):
            await asyncio.wait_for(conn.call("submit_order"), 5)
        assert await asyncio.wait_for(conn.call("get_order"), 5) == '"get_order"'
    finally:
        await conn.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("price", ["0", "0.00001"])
async def test_a_server_spec_no_session_can_be_built_from_is_refused_before_it_listens(
    tmp_path: Path, price: str
) -> None:
    """A spec whose symbol price no synthetic market takes passed at start-up: the server wrote its port file and
    then answered every request of every session with a "bad request" about that price."""
    from repeg.brokers.remote.__main__ import _serve
    from repeg.brokers.remote.sessions import SessionSpec

    spec = SessionSpec(symbols={"AAA": Decimal(price)})
    port_file = tmp_path / "port"
    with pytest.raises(ValueError, match="no session can be built from the spec"):
        await asyncio.wait_for(_serve(spec, 0, port_file), 5)
    assert not port_file.exists()


@pytest.mark.parametrize("symbol", ["aaa", " AAA"])
def test_a_server_spec_symbol_written_otherwise_than_a_plan_names_it_is_refused(symbol: str) -> None:
    """Plans name symbols trimmed and upper case, as the spec's account positions must; a spec market of "aaa" was
    taken, and every plan's AAA was then "unknown to the broker" at every session of the server."""
    from pydantic import ValidationError

    from repeg.brokers.remote.sessions import SessionSpec

    with pytest.raises(ValidationError, match="must be written as a plan names it: AAA"):
        SessionSpec(symbols={symbol: Decimal(100)})


async def test_a_request_longer_than_the_line_limit_is_refused_and_the_connection_keeps_serving() -> None:
    """A request over the line limit ended its connection without an answer (readline's ValueError escaped the
    handler: asyncio printed "Unhandled exception"), so the client read "outcome unknown" for a request that
    was refused; the rest of the line is skipped and the next request answered as usual."""
    from repeg.brokers.remote.server import Session

    async def no_session(name: str) -> Session:
        raise AssertionError("an over-long request must not create a session")

    first, second = await _answers(
        SimServer(no_session, max_line=1024),
        request_line("get_account", "s1", json.dumps({"pad": "x" * 5000})),
        request_line("no_such_method", "s1", "{}"),
    )
    too_long = decode_error(parse_answer(first)[1])
    assert type(too_long) is BrokerError
    assert "longer than 1024 bytes" in str(too_long)
    assert "unknown method 'no_such_method'" in str(decode_error(parse_answer(second)[1]))


async def test_an_answer_longer_than_the_line_limit_is_an_outcome_unknown_broker_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client read answers with readline(), whose ValueError on a line over the limit escaped as a raw
    ValueError (an internal error, not the typed "outcome unknown" the engine resolves by client order id); the
    connection is dropped (the rest of the line would be read as the next answer) and the next call is served."""
    monkeypatch.setattr("repeg.brokers.remote.client.MAX_LINE", 1024)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            method = parse_request(line)[0]
            body = json.dumps("x" * 5000) if method == "all_orders" else f'"{method}"'
            writer.write(answer_line(True, body))
            await writer.drain()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = _Connection(SimAddress("127.0.0.1", port, "s1"))
    try:
        with pytest.raises(BrokerUnavailableError, match="all_orders: answer longer than 1024 bytes"):
            await asyncio.wait_for(conn.call("all_orders"), 5)
        assert await asyncio.wait_for(conn.call("get_order"), 5) == '"get_order"'
    finally:
        await conn.close()
        server.close()
        await server.wait_closed()


async def test_a_server_spec_whose_market_the_simulator_refuses_is_refused_before_it_listens(
    tmp_path: Path,
) -> None:
    """A start price the synthetic market refuses with its typed ConfigError (it would walk past the simulator's
    price ceiling) escaped the start-up check, which caught only ValueError: a traceback, not the spec named."""
    from repeg.brokers.remote.__main__ import _serve
    from repeg.brokers.remote.sessions import SessionSpec

    spec = SessionSpec(symbols={"AAA": Decimal("1e30")})
    port_file = tmp_path / "port"
    with pytest.raises(ValueError, match="no session can be built from the spec: config "):
        await asyncio.wait_for(_serve(spec, 0, port_file), 5)
    assert not port_file.exists()


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"quotes_per_second": 1e308}, "quotes_per_second x duration"),
        ({"duration": "P300D"}, "quotes_per_second x duration"),
        ({"duration": "P99999D"}, "duration=99999 days"),
        ({"quotes_per_second": 1e-9, "duration": "P99999D"}, "duration=99999 days"),
    ],
)
def test_a_server_spec_too_large_for_any_tape_is_refused_naming_its_keys(
    fields: dict[str, object], named: str
) -> None:
    """quotes_per_second = 1e308 ended the start-up in an OverflowError traceback (int of inf), and a duration of
    99,999 days in a tape of billions of quotes (MemoryError, after minutes), instead of the spec's keys named."""
    from pydantic import ValidationError

    from repeg.brokers.remote.sessions import SessionSpec

    with pytest.raises(ValidationError, match=re.escape(named)):
        SessionSpec.model_validate({"symbols": {"AAA": "100"}, **fields})


def test_a_server_spec_within_the_bounds_is_taken() -> None:
    from repeg.brokers.remote.sessions import SessionSpec

    spec = SessionSpec.model_validate(
        {"symbols": {"AAA": "100"}, "quotes_per_second": 100, "duration": "PT2H"}
    )
    assert spec.quotes_per_second * spec.duration.total_seconds() == 720_000


def _serve_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> pytest.ExceptionInfo[SystemExit]:
    from repeg.brokers.remote.__main__ import main

    monkeypatch.setattr("sys.argv", ["python -m repeg.brokers.remote", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return info


def test_a_server_spec_file_that_does_not_exist_is_refused_with_exit_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing spec file ended the start-up in a FileNotFoundError traceback (exit 1), not the usage error (exit 2)
    the module promises for a spec it cannot take."""
    missing = tmp_path / "nosuch.json"
    assert _serve_main(monkeypatch, str(missing)).value.code == 2
    assert str(missing) in capsys.readouterr().err


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_refused_with_exit_2_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], port: str
) -> None:
    """--port 70000 built a session, then ended in bind()'s OverflowError traceback."""
    spec = tmp_path / "spec.json"
    spec.write_text('{"symbols": {"AAA": "10"}}', encoding="utf-8")
    assert _serve_main(monkeypatch, str(spec), "--port", port).value.code == 2
    assert "--port" in capsys.readouterr().err


def test_a_port_already_taken_is_refused_with_exit_2_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    spec = tmp_path / "spec.json"
    spec.write_text('{"symbols": {"AAA": "10"}}', encoding="utf-8")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert _serve_main(monkeypatch, str(spec), "--port", port).value.code == 2
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


async def test_a_quotes_request_naming_a_symbol_by_other_than_a_string_is_refused_as_a_bad_request() -> None:
    """`quotes` stringified whatever it was sent: [null, 1] came back as quotes of symbols "None" and "1" (none on
    the tape), an answer about symbols no one asked for, where every other method refuses a parameter of the wrong
    type as a bad request."""
    from repeg.brokers.remote.server import Session
    from repeg.brokers.remote.sessions import SessionSpec, build_session

    async def factory(name: str) -> Session:
        return await build_session(SessionSpec(symbols={"AAA": Decimal(10)}), name)

    (answer,) = await _answers(
        SimServer(factory), request_line("quotes", "s1", json.dumps({"symbols": ["AAA", None, 1]}))
    )
    ok, body = parse_answer(answer)
    assert not ok
    assert "bad request" in str(decode_error(body))


async def test_a_server_that_never_accepts_the_connection_is_unreachable_within_the_timeout() -> None:
    """The answer's wait was bounded but the connect was not: a wedged simulator whose accept queue is full drops
    the connection's SYNs, and `repeg run` waited in connect for minutes (the kernel's SYN retries), past the
    timeout the client promises; it is now "unreachable" once the timeout has passed."""
    import socket

    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: the queue fills, later SYNs are dropped
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        await asyncio.sleep(0.1)
        conn = _Connection(SimAddress("127.0.0.1", port, "s1"), timeout=timedelta(milliseconds=200))
        with pytest.raises(
            BrokerUnavailableError, match=re.escape("unreachable: no connection within 0.2 s")
        ):
            await asyncio.wait_for(conn.call("get_account"), 5)


@pytest.mark.parametrize("key", ["seed", "quotes_per_second", "partial_rate", "daily_vol"])
def test_a_server_spec_boolean_is_refused_not_read_as_one(key: str) -> None:
    """`"partial_rate": true` made every fill of every session partial (1.0), `"daily_vol": true` the wildest walk
    and `"seed": true` seed 1, where the `[simulator]` table refuses a boolean for each of these."""
    from pydantic import ValidationError

    from repeg.brokers.remote.sessions import SessionSpec

    with pytest.raises(ValidationError, match=key):
        SessionSpec.model_validate_json(json.dumps({"symbols": {"AAA": "100"}, key: True}))


def test_a_port_file_that_cannot_be_written_is_refused_naming_the_option_not_the_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port file in a directory that does not exist was refused as "cannot serve on 127.0.0.1:0" (a9c66e2d): the
    port was bound and served; it is the --port-file that cannot be written."""
    spec = tmp_path / "spec.json"
    spec.write_text('{"symbols": {"AAA": "10"}}', encoding="utf-8")
    port_file = tmp_path / "nosuch" / "port"
    assert _serve_main(monkeypatch, str(spec), "--port-file", str(port_file)).value.code == 2
    err = capsys.readouterr().err
    assert "--port-file" in err
    assert "cannot serve" not in err


def test_a_port_that_is_not_a_number_is_refused_as_not_a_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--port abc was refused as "invalid _port value" (a9c66e2d's parser function's name) instead of saying
    what a port is."""
    spec = tmp_path / "spec.json"
    spec.write_text('{"symbols": {"AAA": "10"}}', encoding="utf-8")
    assert _serve_main(monkeypatch, str(spec), "--port", "abc").value.code == 2
    assert "'abc' is not a port (0 to 65535)" in capsys.readouterr().err
