"""The Alpaca adapter under faults: 429 storms, 5xx, lost responses, dropped and silent streams, closed market."""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from datetime import timedelta
from decimal import Decimal

import pytest
from tests.fakes.alpaca_fixtures import FAST, connect, credentials_for, locals_a_traceback_renderer_shows
from tests.fakes.alpaca_server import FakeAlpacaServer
from tests.fakes.log_capture import every_level_captured
from tests.integration.test_alpaca_orders import collect, filled, limit, until

from repeg.brokers.alpaca.adapter import AlpacaBroker
from repeg.brokers.alpaca.credentials import AlpacaCredentials
from repeg.brokers.alpaca.factory import build_alpaca
from repeg.brokers.alpaca.settings import AlpacaUrls
from repeg.config import ExecutionConfig
from repeg.domain.events import LegPlanned
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import BrokerOrder, OrderEvent, OrderStatus, OrderType, OrderUpdate, Side
from repeg.domain.plan import LegSpec
from repeg.engine.bus import EventBus
from repeg.engine.clock import RealClock
from repeg.engine.gateway import OrderGateway
from repeg.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    ClientOrderIdConflictError,
    LiveTradingNotConfirmedError,
    MarketClosedError,
    OrderNotCancelableError,
    RateLimitedError,
)
from repeg.market.alpaca_feed import AlpacaQuoteFeed

Pair = tuple[AlpacaBroker, AlpacaQuoteFeed]


async def test_a_429_storm_is_retried_with_the_same_client_order_id_and_creates_one_order(
    alpaca: Pair, fake_alpaca
):
    broker, _ = alpaca
    fake_alpaca.fail("POST", "/v2/orders", 429, times=4)
    order = await broker.submit_order(limit("r2-L0000-A00", Side.BUY, "1", "90.00"))
    assert fake_alpaca.count("POST", "/v2/orders") == 5
    assert [o.client_order_id for o in fake_alpaca.book.orders.values()] == ["r2-L0000-A00"]
    assert order.client_order_id == "r2-L0000-A00"
    assert fake_alpaca.count("GET", "/v2/orders:by_client_order_id") == 0  # a 429 was not executed


async def test_a_429_storm_longer_than_the_bound_raises_rate_limited_with_the_broker_message(
    alpaca: Pair, fake_alpaca
):
    broker, _ = alpaca
    fake_alpaca.fail("POST", "/v2/orders", 429, times=50)
    with pytest.raises(RateLimitedError) as info:
        await broker.submit_order(limit("r2-L0001-A00", Side.BUY, "1", "90.00"))
    assert fake_alpaca.count("POST", "/v2/orders") == FAST.retry.max_attempts
    assert info.value.broker_message == "injected fault"
    assert fake_alpaca.book.orders == {}


async def test_500s_on_submit_are_checked_by_client_order_id_then_retried(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    fake_alpaca.fail("POST", "/v2/orders", 500, times=2)
    order = await broker.submit_order(limit("r2-L0002-A00", Side.BUY, "1", "90.00"))
    assert fake_alpaca.count("POST", "/v2/orders") == 3
    assert fake_alpaca.count("GET", "/v2/orders:by_client_order_id") == 2
    assert list(fake_alpaca.book.orders) == [order.order_id]


async def test_500s_on_reads_are_retried(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    fake_alpaca.fail("GET", "/v2/account", 503, times=3)
    account = await broker.get_account()
    assert account.cash == Decimal(100_000)
    assert fake_alpaca.count("GET", "/v2/account") == 4


async def test_persistent_500s_raise_broker_unavailable(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    fake_alpaca.fail("GET", "/v2/positions", 500, times=50)
    with pytest.raises(BrokerUnavailableError):
        await broker.get_positions()


async def test_a_lost_submit_response_is_resolved_by_client_order_id_without_a_second_order(
    alpaca: Pair, fake_alpaca
):
    broker, _ = alpaca
    fake_alpaca.lost_response_delay = 1.0  # longer than the adapter's read timeout
    fake_alpaca.lose_response("POST", "/v2/orders")
    order = await broker.submit_order(limit("r2-L0003-A00", Side.BUY, "2", "90.00"))
    assert order.client_order_id == "r2-L0003-A00"
    assert fake_alpaca.count("POST", "/v2/orders") == 1
    assert list(fake_alpaca.book.orders) == [order.order_id]


async def test_fills_during_a_stream_disconnect_are_recovered_after_reconnect(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    updates = collect(broker)
    order = await broker.submit_order(limit("r2-L0004-A00", Side.BUY, "7", "99.00"))
    await fake_alpaca.drop_trade_stream(refuse_for=0.2)
    fake_alpaca.book.set_quote("AAPL", Decimal("98.90"), Decimal("99.00"))  # fills while nobody listens
    await until(lambda: filled(updates, order.order_id) == 7)
    assert broker.stream.connections == 2
    fills = [u for u in updates if u.fill is not None]
    assert len(fills) == 1
    assert fills[0].fill is not None
    assert fills[0].fill.price == Decimal("99.00")


async def test_a_silent_stream_is_covered_by_polling_working_orders(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    updates = collect(broker)
    fake_alpaca.trade_stream_muted = True
    order = await broker.submit_order(limit("r2-L0005-A00", Side.SELL, "3", "101.00"))
    fake_alpaca.book.set_quote("AAPL", Decimal("101.00"), Decimal("101.05"))
    await until(lambda: filled(updates, order.order_id) == 3)
    assert fake_alpaca.count("GET", f"/v2/orders/{order.order_id}") >= 1
    assert updates[-1].event is OrderEvent.FILL


async def test_no_polling_while_no_order_is_working(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    fake_alpaca.trade_stream_muted = True
    order = await broker.submit_order(limit("r2-L0006-A00", Side.BUY, "1", "100.10"))  # fills at once
    assert order.status is OrderStatus.FILLED
    await until(lambda: broker.stream.silent_for() > 3 * FAST.stream.silence_after)
    assert fake_alpaca.count("GET", f"/v2/orders/{order.order_id}") == 0


async def test_closed_market_refuses_to_start(fake_alpaca: FakeAlpacaServer):
    fake_alpaca.book.market_open = False
    with pytest.raises(MarketClosedError) as info:
        await connect(fake_alpaca)
    assert "--allow-closed" in str(info.value)
    assert fake_alpaca.count("POST", "/v2/orders") == 0


async def test_closed_market_with_allow_closed_queues_day_orders(fake_alpaca: FakeAlpacaServer):
    fake_alpaca.book.market_open = False
    broker, feed = await connect(fake_alpaca, allow_closed=True)
    try:
        assert broker.market_clock is not None
        assert broker.market_clock.is_open is False
        order = await broker.submit_order(limit("r2-L0007-A00", Side.BUY, "1", "100.10"))
        assert order.status is OrderStatus.ACCEPTED
        assert order.filled_qty == 0
    finally:
        await feed.aclose()
        await broker.aclose()


async def test_live_without_confirmation_refuses_before_any_request(fake_alpaca: FakeAlpacaServer):
    with pytest.raises(LiveTradingNotConfirmedError):
        await connect(fake_alpaca, mode="live")
    assert fake_alpaca.requests == []


async def test_live_with_confirmation_connects(fake_alpaca: FakeAlpacaServer):
    broker, feed = await connect(fake_alpaca, mode="live", confirm_live=True)
    assert broker.name == "alpaca-live"
    await feed.aclose()
    await broker.aclose()


async def test_refused_credentials_are_an_authentication_error(fake_alpaca: FakeAlpacaServer):
    from pydantic import SecretStr

    with pytest.raises(AuthenticationError):
        await build_alpaca(
            "paper",
            confirm_live=False,
            allow_closed=False,
            clock=RealClock(),
            credentials=AlpacaCredentials(key_id="PKWRONG", secret_key=SecretStr("wrong")),
            urls=AlpacaUrls.loopback(fake_alpaca.base_url),
            settings=FAST,
        )


async def test_reconnects_back_off_instead_of_storming(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    await fake_alpaca.drop_trade_stream(refuse_for=0.6)
    await until(lambda: broker.stream.connections == 2)
    attempts = fake_alpaca.count("GET", "/stream") - 1
    # backoff 0.02 s doubling to 0.1 s (jittered to half or more) allows at most ~12 tries in 0.6 s
    assert 2 <= attempts <= 16


async def test_a_failed_poll_after_reconnect_is_made_good_by_the_silence_watchdog(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    updates = collect(broker)
    order = await broker.submit_order(limit("r2-L0008-A00", Side.BUY, "2", "99.00"))
    fake_alpaca.fail("GET", f"/v2/orders/{order.order_id}", 500, times=FAST.retry.max_attempts)
    await fake_alpaca.drop_trade_stream(refuse_for=0.1)
    fake_alpaca.book.set_quote("AAPL", Decimal("98.90"), Decimal("99.00"))
    await until(lambda: filled(updates, order.order_id) == 2)
    assert broker.stream.connections == 2
    assert fake_alpaca.count("GET", f"/v2/orders/{order.order_id}") > FAST.retry.max_attempts


async def test_a_trade_stream_refusing_the_keys_stops_the_start_with_an_authentication_error(
    fake_alpaca: FakeAlpacaServer,
):
    fake_alpaca.trade_stream_refuses_auth = True
    with pytest.raises(AuthenticationError) as info:
        await connect(fake_alpaca)
    assert "trade stream" in str(info.value)
    assert fake_alpaca.count("GET", "/stream") == 1  # refused keys are not retried


async def test_a_trade_stream_refusing_the_keys_names_the_host_that_refused_them(
    fake_alpaca: FakeAlpacaServer,
):
    # As a REST refusal does: with Alpaca's hosts, its mode too (paper keys sent live are refused as bad keys).
    fake_alpaca.trade_stream_refuses_auth = True
    with pytest.raises(AuthenticationError) as info:
        await connect(fake_alpaca)
    assert "credentials refused by 127.0.0.1" in str(info.value)


async def test_an_unreadable_trade_stream_frame_costs_a_reconnect_not_the_stream(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    for ws in list(fake_alpaca._trade_sockets):
        await ws.send_str("<html>502 Bad Gateway</html>")
    await until(lambda: broker.stream.connections == 2)
    assert broker.stream.connected.is_set()


async def test_a_cancel_whose_answer_was_lost_is_done_when_its_retry_meets_the_order_canceled(
    alpaca: Pair, fake_alpaca
):
    """The first DELETE cancels the order but its answer never arrives; the retry meets the order `canceled`.
    That is our own cancel done, not a refusal: no error, and the `canceled` update reaches the run."""
    broker, _ = alpaca
    updates = collect(broker)
    order = await broker.submit_order(limit("r2-L0009-A00", Side.BUY, "2", "90.00"))
    fake_alpaca.lost_response_delay = 1.0  # longer than the adapter's read timeout
    fake_alpaca.lose_response("DELETE", f"/v2/orders/{order.order_id}")
    await broker.cancel_order(order.order_id)
    assert fake_alpaca.count("DELETE", f"/v2/orders/{order.order_id}") == 2
    await until(
        lambda: any(u.event is OrderEvent.CANCELED and u.order.order_id == order.order_id for u in updates)
    )


async def test_a_cancel_refused_as_already_canceled_without_a_lost_answer_is_still_not_cancelable(
    alpaca: Pair,
):
    broker, _ = alpaca
    order = await broker.submit_order(limit("r2-L0010-A00", Side.BUY, "2", "90.00"))
    await broker.cancel_order(order.order_id)
    with pytest.raises(OrderNotCancelableError) as info:
        await broker.cancel_order(order.order_id)
    assert info.value.status == "canceled"


async def test_a_spent_rate_window_is_waited_out_until_the_reset_alpaca_announces(alpaca: Pair, fake_alpaca):
    """Another client spent the account's budget: every request gets 429 until `X-RateLimit-Reset`. Retrying
    on the backoff alone would spend every attempt inside the window; the adapter waits for the reset instead."""
    broker, _ = alpaca
    fake_alpaca.rate_limited_until = time.time() + 0.3
    order = await broker.submit_order(limit("r2-L0011-A00", Side.BUY, "1", "90.00"))
    assert order.client_order_id == "r2-L0011-A00"
    assert fake_alpaca.count("POST", "/v2/orders") == 2  # the refused attempt, then one after the reset


async def test_the_client_order_id_lookup_inside_a_submit_is_one_request_not_a_retry_loop(
    alpaca: Pair, fake_alpaca
):
    """During an outage each failed submit attempt is followed by a lookup of its client order id. That lookup is
    one request: the submit's own next attempt (same id: a duplicate then finds the order) is the retry. Retried on
    its own, each lookup multiplied the submit's attempts (5 attempts x 5 lookups), holding the engine for minutes."""
    broker, _ = alpaca
    fake_alpaca.fail("POST", "/v2/orders", 503, times=50)
    fake_alpaca.fail("GET", "/v2/orders:by_client_order_id", 503, times=50)
    with pytest.raises(BrokerUnavailableError):
        await broker.submit_order(limit("r2-L0020-A00", Side.BUY, "1", "90.00"))
    assert fake_alpaca.count("POST", "/v2/orders") == FAST.retry.max_attempts
    assert fake_alpaca.count("GET", "/v2/orders:by_client_order_id") == FAST.retry.max_attempts


async def test_a_resend_of_a_submit_of_unknown_outcome_is_one_attempt(alpaca: Pair, fake_alpaca):
    """The engine sends a submit of unknown outcome again under its own id every check interval until the broker
    finds it. Each such re-send is one attempt (the next check interval is the retry): running the whole retry and
    backoff each time blocked the phase's monitor, and every other order of the phase, far past the interval."""
    broker, _ = alpaca
    request = limit("r2-L0021-A00", Side.BUY, "1", "90.00")
    fake_alpaca.fail("POST", "/v2/orders", 503, times=50)
    fake_alpaca.fail("GET", "/v2/orders:by_client_order_id", 503, times=50)
    with pytest.raises(BrokerUnavailableError):
        await broker.submit_order(request)
    posts = fake_alpaca.count("POST", "/v2/orders")
    with pytest.raises(BrokerUnavailableError):
        await broker.submit_order(request)
    assert fake_alpaca.count("POST", "/v2/orders") == posts + 1


async def test_a_resend_that_reaches_alpaca_creates_the_order_once(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    request = limit("r2-L0022-A00", Side.BUY, "1", "90.00")
    fake_alpaca.fail("POST", "/v2/orders", 503, times=FAST.retry.max_attempts)
    fake_alpaca.fail("GET", "/v2/orders:by_client_order_id", 503, times=FAST.retry.max_attempts)
    with pytest.raises(BrokerUnavailableError):
        await broker.submit_order(request)
    order = await broker.submit_order(request)
    assert order.client_order_id == request.client_order_id
    assert list(fake_alpaca.book.orders) == [order.order_id]


async def test_a_silence_poll_of_many_working_orders_reads_them_in_one_request(alpaca: Pair, fake_alpaca):
    """While the stream is silent, working orders are polled every 5 s. Read one GET each, 17 orders already
    spent Alpaca's whole budget (12 x 17 > 200 requests a minute), e.g. a basket queued on a closed market with
    `--allow-closed`: the limiter then let nothing else through (the run's own cancels waited behind the polls)
    and every other client of the account got 429s. The open orders are read together; only an order no longer
    open is read on its own (once: it then stops working). (A run listens: orders are polled only for one.)"""
    broker, _ = alpaca
    collect(broker)
    fake_alpaca.trade_stream_muted = True
    orders = [
        await broker.submit_order(limit(f"r2-L00{30 + i}-A00", Side.BUY, "1", "90.00")) for i in range(5)
    ]
    await until(lambda: fake_alpaca.count("GET", "/v2/orders") >= 2)  # two silence polls
    assert sum(fake_alpaca.count("GET", f"/v2/orders/{o.order_id}") for o in orders) == 0


async def test_a_silence_poll_reads_an_order_that_closed_on_its_own(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    updates = collect(broker)
    fake_alpaca.trade_stream_muted = True
    resting = await broker.submit_order(limit("r2-L0040-A00", Side.BUY, "1", "90.00"))
    filling = await broker.submit_order(limit("r2-L0041-A00", Side.BUY, "3", "99.00"))
    fake_alpaca.book.set_quote("AAPL", Decimal("98.90"), Decimal("99.00"))  # the second one fills, unheard
    await until(lambda: filled(updates, filling.order_id) == 3)
    assert updates[-1].event is OrderEvent.FILL
    assert fake_alpaca.count("GET", f"/v2/orders/{resting.order_id}") == 0


async def test_a_graceful_stop_paces_a_request_past_its_window_rather_than_drop_it(fake_alpaca, monkeypatch):
    """A stop bounds only the waits for a rate window's reset Alpaca announced (a 429): the client-side bucket's own
    pacing is no refusal, and a request it paces past the stop's window is still sent. Taken for a hold, it failed
    at once, not sent: a stop of many working orders (each read and cancelled, about 200 requests a minute) dropped
    every cancel after the first minute, leaving those orders working at Alpaca though nothing refused them."""
    from datetime import timedelta

    from repeg.brokers.alpaca import rest

    monkeypatch.setattr(rest, "_MAX_RATE_HOLD", timedelta(seconds=0.05))
    paced = FAST.model_copy(update={"requests_per_minute": 600.0, "burst": 1})  # a token every ~0.1 s
    broker, feed = await connect(fake_alpaca, settings=paced)
    try:
        order = await broker.submit_order(limit("r2-L0030-A00", Side.BUY, "1", "90.00"))
        with broker.stopping():
            await broker.cancel_order(order.order_id)
        assert fake_alpaca.book.orders[order.order_id].status == "canceled"
    finally:
        await feed.aclose()
        await broker.aclose()


async def _unanswered_submit(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer, *, landed: bool = False
) -> tuple[OrderGateway, EventBus]:
    """A gateway whose leg 0 is submitting: its submit went out while Alpaca answered every order request 503
    (`landed`: its first send created the order, whose answer and trade updates were lost)."""
    bus = EventBus("r9", RealClock(), ())
    spec = LegSpec(index=0, symbol="AAPL", side=Side.BUY, qty=Decimal(1))
    await bus.emit(LegPlanned(**bus.stamp(0), spec=spec))
    gateway = OrderGateway(broker, bus, ExecutionConfig(wait_between_checks=0.01))
    if landed:
        fake_alpaca.trade_stream_muted = True
        fake_alpaca.lose_response("POST", "/v2/orders")
    fake_alpaca.fail("POST", "/v2/orders", 503, times=500)
    fake_alpaca.fail("GET", "/v2/orders:by_client_order_id", 503, times=500)
    assert (
        await gateway.submit(0, OrderType.LIMIT, Decimal("90.00"), step=0, reason="peg", quote=None) is None
    )
    assert bus.leg(0).status is LegStatus.SUBMITTING
    return gateway, bus


def _order_requests(fake_alpaca: FakeAlpacaServer) -> int:
    return fake_alpaca.count("POST", "/v2/orders") + fake_alpaca.count("GET", "/v2/orders:by_client_order_id")


async def test_each_check_of_an_unanswered_submit_during_an_outage_is_one_request(alpaca: Pair, fake_alpaca):
    """The phase monitor asks about a submit of unknown outcome at each check (every check interval: the next check
    is the retry). Each such lookup ran the adapter's whole retry loop and backoff (5 requests, about 8 s by
    default, 50 s with hung requests) with the phase's monitor blocked, against a 1 s check interval."""
    broker, _ = alpaca
    gateway, bus = await _unanswered_submit(broker, fake_alpaca)
    before = _order_requests(fake_alpaca)
    await asyncio.sleep(0.02)  # a re-send is due
    await gateway.resolve_submit(0)
    assert bus.leg(0).status is LegStatus.SUBMITTING
    assert _order_requests(fake_alpaca) - before == 1


async def test_the_gateways_lookup_after_a_submit_of_unknown_outcome_is_one_request(
    alpaca: Pair, fake_alpaca
):
    """The adapter looked the client order id up after each failed attempt already; the gateway's own lookup after
    the submit failed ran the whole retry loop again (5 more requests and their backoff)."""
    broker, _ = alpaca
    await _unanswered_submit(broker, fake_alpaca)
    assert fake_alpaca.count("POST", "/v2/orders") == FAST.retry.max_attempts
    assert fake_alpaca.count("GET", "/v2/orders:by_client_order_id") == FAST.retry.max_attempts + 1


async def test_a_stopping_run_still_retries_the_lookup_of_an_unanswered_submit(alpaca: Pair, fake_alpaca):
    """A graceful stop asks about the submits the engine left unanswered once each check interval, within its grace
    window, and then reads every order of the run once: there the adapter's retries ride out a brief outage."""
    broker, _ = alpaca
    await _unanswered_submit(broker, fake_alpaca)
    before = _order_requests(fake_alpaca)
    with broker.stopping(), pytest.raises(BrokerUnavailableError):
        await broker.get_order_by_client_id("r9-L0000-A00")
    assert _order_requests(fake_alpaca) - before == FAST.retry.max_attempts


async def test_a_landed_submit_whose_lookup_fails_or_misses_it_once_is_not_sent_as_a_second_order(
    alpaca: Pair, fake_alpaca
):
    """Guard of 8bbed60 (a lookup of an unanswered submit is one request): a lookup that fails once sends nothing;
    one that misses the order (a stale 404) sends the submit again under its own client order id, which Alpaca
    refuses as a duplicate; the next lookup finds the order, and the account holds one."""
    broker, _ = alpaca
    gateway, bus = await _unanswered_submit(broker, fake_alpaca, landed=True)
    fake_alpaca.faults.clear()
    for status in (503, 404, 503):
        fake_alpaca.fail("GET", "/v2/orders:by_client_order_id", status)
    for _ in range(4):
        await asyncio.sleep(0.02)  # a re-send is due
        await gateway.resolve_submit(0)
    assert [o.client_order_id for o in fake_alpaca.book.orders.values()] == ["r9-L0000-A00"]
    assert bus.leg(0).status is LegStatus.WORKING
    assert fake_alpaca.count("POST", "/v2/orders") == FAST.retry.max_attempts + 1  # the re-send, refused


def _clock_set_off(seconds: float) -> RealClock:
    """The local wall clock, set `seconds` away from Alpaca's (ahead when positive)."""
    clock = RealClock()
    clock._epoch += timedelta(seconds=seconds)
    clock._now = clock._epoch
    return clock


async def _submit_in_a_spent_window(fake_alpaca: FakeAlpacaServer, clock_off: float) -> float:
    """Seconds a submit took, on a local clock `clock_off` from Alpaca's, while Alpaca answers 429 for 0.3 s."""
    broker, feed = await build_alpaca(
        "paper",
        confirm_live=False,
        allow_closed=False,
        clock=_clock_set_off(clock_off),
        credentials=credentials_for(fake_alpaca),
        urls=AlpacaUrls.loopback(fake_alpaca.base_url),
        settings=FAST,
    )
    try:
        fake_alpaca.rate_limited_until = time.time() + 0.3
        started = time.monotonic()
        order = await asyncio.wait_for(broker.submit_order(limit("r2-L0030-A00", Side.BUY, "1", "90.00")), 10)
        assert order.client_order_id == "r2-L0030-A00"
        return time.monotonic() - started
    finally:
        await feed.aclose()
        await broker.aclose()


async def test_a_local_clock_behind_alpacas_does_not_stretch_the_wait_for_the_rate_reset(fake_alpaca):
    """The reset Alpaca announces (its clock's epoch second) was compared with the local clock: 45 s behind, a
    0.3 s wait became 45 s (up to the 60 s cap) with every request held, a stop's cancels refused unsent when the
    hold outlasted the stop's deadline. The wait is now what Alpaca's own `Date` says is left of its window."""
    took = await _submit_in_a_spent_window(fake_alpaca, -45.0)
    assert took < 5
    assert fake_alpaca.count("POST", "/v2/orders") == 2


async def test_a_local_clock_ahead_of_alpacas_still_waits_for_the_rate_reset(fake_alpaca):
    """45 s ahead, the announced reset looked past: nothing was waited, and the submit spent its attempts inside
    the spent window, failing as rate limited."""
    await _submit_in_a_spent_window(fake_alpaca, 45.0)
    assert fake_alpaca.count("POST", "/v2/orders") == 2


async def _run_reusing_a_client_order_id(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> tuple[OrderGateway, EventBus, str]:
    """Another run under the same run id (another journal) holds "r9-L0000-A00" at the account: a MSFT sell of 5.
    A gateway of run r9 then submits its leg 0, an AAPL buy of 1, under that same client order id. Returns the
    other run's order id."""
    other, other_feed = await connect(fake_alpaca)
    try:
        theirs = await other.submit_order(limit("r9-L0000-A00", Side.SELL, "5", "500.00", symbol="MSFT"))
    finally:
        await other_feed.aclose()
        await other.aclose()
    bus = EventBus("r9", RealClock(), ())
    spec = LegSpec(index=0, symbol="AAPL", side=Side.BUY, qty=Decimal(1))
    await bus.emit(LegPlanned(**bus.stamp(0), spec=spec))
    return OrderGateway(broker, bus, ExecutionConfig(wait_between_checks=0.01)), bus, theirs.order_id


async def test_an_order_of_another_run_under_the_same_client_order_id_is_refused_not_adopted(
    alpaca: Pair, fake_alpaca
):
    """Client order ids derive from the run id, which a user may choose: a second journal under the same run id
    meets Alpaca's 'client_order_id must be unique', and the gateway's lookup by that id found the other run's
    order (another symbol, side and quantity) and took it for its own submit's."""
    broker, _ = alpaca
    gateway, bus, theirs = await _run_reusing_a_client_order_id(broker, fake_alpaca)
    assert isinstance(
        await gateway.submit(0, OrderType.LIMIT, Decimal("90.00"), step=0, reason="peg", quote=None),
        ClientOrderIdConflictError,
    )
    leg = bus.leg(0)
    assert theirs not in leg.order_ids
    error = leg.error or ""
    assert error.startswith("ClientOrderIdConflictError")
    assert all(word in error for word in ("r9-L0000-A00", theirs, "symbol", "side", "qty"))


async def test_fills_of_another_runs_order_under_a_reused_client_order_id_are_not_reported(
    alpaca: Pair, fake_alpaca
):
    """Updates are routed to a leg by client order id: once the submit claimed the id, the other run's order's
    fills were pushed as this run's."""
    broker, _ = alpaca
    updates = collect(broker)
    gateway, _, theirs = await _run_reusing_a_client_order_id(broker, fake_alpaca)
    await gateway.submit(0, OrderType.LIMIT, Decimal("90.00"), step=0, reason="peg", quote=None)
    fake_alpaca.book.set_quote("MSFT", Decimal("501.00"), Decimal("501.20"))
    await until(lambda: fake_alpaca.book.orders[theirs].status == "filled")
    await asyncio.sleep(0.1)  # the trade update's time to arrive
    assert [u for u in updates if u.order.order_id == theirs] == []


async def test_a_submit_of_unknown_outcome_does_not_adopt_another_runs_order_of_its_client_order_id(
    alpaca: Pair, fake_alpaca
):
    """A 5xx hides whether the submit landed: the adapter's lookup by client order id found the other run's order
    and answered it as the submit's."""
    broker, _ = alpaca
    gateway, bus, theirs = await _run_reusing_a_client_order_id(broker, fake_alpaca)
    fake_alpaca.fail("POST", "/v2/orders", 503)
    assert isinstance(
        await gateway.submit(0, OrderType.LIMIT, Decimal("90.00"), step=0, reason="peg", quote=None),
        ClientOrderIdConflictError,
    )
    assert theirs not in bus.leg(0).order_ids
    assert (bus.leg(0).error or "").startswith("ClientOrderIdConflictError")


async def test_a_replace_whose_answer_was_lost_rides_out_a_brief_outage_of_its_lookup(fake_alpaca):
    """8bbed60 made the lookup of any client order id this process sent and never learned one request: right for a
    submit (the phase monitor asks again at each check), not for a replace, which nothing asks about again. A
    replace that took effect, its answer and trade updates lost, then met 503s on its lookups was recorded failed
    (an OrderFailed in the journal, and the leg's error a 503 that an incomplete leg would end with)."""
    quiet = FAST.stream.model_copy(update={"silence_after": 30.0})  # no silence poll learns the replacement
    broker, feed = await connect(fake_alpaca, settings=FAST.model_copy(update={"stream": quiet}))
    try:
        bus = EventBus("r9", RealClock(), ())
        spec = LegSpec(index=0, symbol="AAPL", side=Side.BUY, qty=Decimal(1))
        await bus.emit(LegPlanned(**bus.stamp(0), spec=spec))
        gateway = OrderGateway(broker, bus, ExecutionConfig(wait_between_checks=0.01))
        assert (
            await gateway.submit(0, OrderType.LIMIT, Decimal("90.00"), step=0, reason="peg", quote=None)
            is None
        )
        original = bus.leg(0).active_order
        assert original is not None
        fake_alpaca.trade_stream_muted = True
        fake_alpaca.lose_response("PATCH", f"/v2/orders/{original.order_id}")
        fake_alpaca.fail("GET", "/v2/orders:by_client_order_id", 503, times=3)
        await gateway.replace(0, Decimal("90.05"), step=1, quote=None)
        leg = bus.leg(0)
        assert leg.error is None
        assert leg.status is LegStatus.WORKING
        assert leg.active_client_order_id == "r9-L0000-A01"
    finally:
        await feed.aclose()
        await broker.aclose()


async def test_a_submit_left_unanswered_whose_id_turns_out_another_runs_is_refused_at_the_next_check(
    alpaca: Pair, fake_alpaca
):
    """An outage hid the submit's outcome; once Alpaca answers again, the order under its client order id is
    another run's: the check records the submit refused (naming the conflict), not 'unresolved' at every check
    until the phase ends, and never adopts it."""
    broker, _ = alpaca
    gateway, bus, theirs = await _run_reusing_a_client_order_id(broker, fake_alpaca)
    fake_alpaca.fail("POST", "/v2/orders", 503, times=500)
    fake_alpaca.fail("GET", "/v2/orders:by_client_order_id", 503, times=500)
    assert (
        await gateway.submit(0, OrderType.LIMIT, Decimal("90.00"), step=0, reason="peg", quote=None) is None
    )
    assert bus.leg(0).status is LegStatus.SUBMITTING
    fake_alpaca.faults.clear()
    await gateway.resolve_submit(0)
    assert bus.leg(0).status is not LegStatus.SUBMITTING
    assert theirs not in bus.leg(0).order_ids
    assert (bus.leg(0).error or "").startswith("ClientOrderIdConflictError")


async def test_a_trade_stream_refusing_the_keys_on_a_reconnect_says_so_in_the_log(alpaca: Pair, fake_alpaca):
    from structlog.testing import capture_logs

    broker, _ = alpaca
    fake_alpaca.trade_stream_refuses_auth = True
    with capture_logs() as logs:
        await fake_alpaca.drop_trade_stream()
        await until(lambda: broker.stream.error is not None)
    refused = [line for line in logs if line["event"] == "trade_stream_refused"]
    assert [line["log_level"] for line in refused] == ["error"]
    assert "unauthorized" in str(refused[0]["detail"])


async def test_a_trade_stream_refusal_carries_no_frame_holding_the_secret(fake_alpaca: FakeAlpacaServer):
    """The refusal `start()` raises keeps the stream task's frames in its traceback: an application that logs it
    with each frame's locals (structlog's rich tracebacks) must not see the secret there."""
    fake_alpaca.trade_stream_refuses_auth = True
    with pytest.raises(AuthenticationError) as info:
        await connect(fake_alpaca)
    tb = info.value.__traceback__
    ours = []
    while tb is not None:
        if "/repeg/" in tb.tb_frame.f_code.co_filename:
            ours.append(tb.tb_frame)
        tb = tb.tb_next
    assert any(frame.f_code.co_name == "_handshake" for frame in ours)
    shown = [repr(value) for frame in ours for value in frame.f_locals.values()]
    assert not [text for text in shown if fake_alpaca.secret_key in text]


async def test_a_refused_request_carries_no_frame_showing_the_secret_header(alpaca: Pair, fake_alpaca):
    """A broker error chained to alpaca-py's APIError kept the SDK's frames, whose locals hold the request's headers
    (APCA-API-SECRET-KEY): an application logging the error with frames' locals printed the secret."""
    broker, _ = alpaca
    fake_alpaca.fail("GET", "/v2/account", 403, code=40010000)
    with pytest.raises(AuthenticationError) as info:
        await broker.get_account()
    shown = locals_a_traceback_renderer_shows(info.value)
    assert shown, "no frame was walked: the test would prove nothing"
    assert not [text for text in shown if fake_alpaca.secret_key in text]


async def test_a_trade_stream_frame_nested_too_deep_to_decode_costs_a_reconnect_not_the_stream(
    alpaca: Pair, fake_alpaca
):
    """JSON nested deeper than Python's recursion limit makes `json.loads` raise RecursionError, no ValueError: no
    handler caught it, the trade stream's task died and was never re-made (pushed updates stopped for the run; only
    the silence watchdog's polls, a minute later, told the run of its fills). Any exception the stream does not
    expect is now logged with its traceback and costs a reconnect."""
    from structlog.testing import capture_logs

    broker, _ = alpaca
    with capture_logs() as logs:
        for ws in list(fake_alpaca._trade_sockets):
            await ws.send_str("[" * 100_000)
        await until(lambda: broker.stream.connections == 2)
    assert broker.stream.connected.is_set()
    failed = [line for line in logs if line["event"] == "trade_stream_failed"]
    assert [line["error"] for line in failed] == ["RecursionError"]


async def test_a_submit_whose_answer_is_nested_too_deep_to_decode_is_resolved_by_its_client_order_id(
    alpaca: Pair, fake_alpaca
):
    """An answer that is no JSON is a `requests` `JSONDecodeError`: no answer the client can read, the submit's
    outcome unknown, resolved by its client order id. One nested beyond the decoder's depth escaped as a bare
    RecursionError instead (as from every Alpaca request: trading, market data, history): the submit's outcome
    went unresolved, and the run failed as for a defect (exit 1), its order (created at the broker) left working.
    It is now refused as any body that is no JSON (`repeg.brokers.alpaca.http.Answer`)."""
    broker, _ = alpaca
    fake_alpaca.garble("POST", "/v2/orders", "[" * 100_000, reached=True)  # created, then answered unreadably
    order = await broker.submit_order(limit("r2-L0063-A00", Side.BUY, "1", "90.00"))
    assert list(fake_alpaca.book.orders) == [order.order_id]  # found by its client order id, not sent twice
    assert fake_alpaca.count("POST", "/v2/orders") == 1


class _DefectInThePoll:
    """Stands for a defect in the poll, which no broker answer explains (an answer nested too deep to decode was one,
    until such answers became unreadable ones: `Answer`): while `on`, reading the open orders raises RuntimeError."""

    def __init__(self, broker: AlpacaBroker, monkeypatch: pytest.MonkeyPatch) -> None:
        self.on = True
        read = broker._absorb_open_orders

        async def failing() -> set[str]:
            if self.on:
                raise RuntimeError("a defect")
            return await read()

        monkeypatch.setattr(broker, "_absorb_open_orders", failing)


async def test_a_reconnect_whose_poll_fails_unexpectedly_keeps_the_new_connection(
    alpaca: Pair, fake_alpaca, monkeypatch: pytest.MonkeyPatch
):
    """After a reconnect the run's orders are polled; a poll failing for a reason other than a broker error (a
    defect) escaped the stream's session, which dropped the connection it had just made and reconnected, to poll
    and fail again: with backoff, forever, the stream never listening again (and the silence watchdog's poll,
    failing the same way, ended the watchdog). As for a broker error, or the quote stream's re-read after a
    subscription, the failed poll is logged (with its traceback) and the stream goes on listening: updates are
    pushed again, and the watchdog keeps polling."""
    from structlog.testing import capture_logs

    broker, _ = alpaca
    updates = collect(broker)
    order = await broker.submit_order(limit("r2-L0060-A00", Side.BUY, "2", "99.00"))
    _DefectInThePoll(broker, monkeypatch)  # every poll fails
    with capture_logs() as logs:
        await fake_alpaca.drop_trade_stream()
        await until(lambda: broker.stream.connections >= 2 and broker.stream.connected.is_set())
        await asyncio.sleep(2 * FAST.stream.silence_after)  # backoff is 0.1 s at most: a loop reconnects here
        assert broker.stream.connections == 2
        fake_alpaca.book.set_quote("AAPL", Decimal("98.90"), Decimal("99.00"))  # fills: pushed, not polled
        await until(lambda: filled(updates, order.order_id) == 2)
    failed = [line for line in logs if line["event"] == "trade_stream_reconcile_failed"]
    assert [(line["error"], line["log_level"]) for line in failed] == [("RuntimeError", "error")]
    polls = [line for line in logs if line["event"] == "trade_stream_poll_failed"]
    assert polls
    assert {line["error"] for line in polls} == {"RuntimeError"}


def _poll_failures(logs: list[MutableMapping[str, object]]) -> list[tuple[object, bool]]:
    """The silence watchdog's failed polls: each one's level, and whether its traceback was logged."""
    failed = [line for line in logs if line["event"] == "trade_stream_poll_failed"]
    return [(line["log_level"], bool(line.get("exc_info"))) for line in failed]


async def test_a_silence_poll_failing_unexpectedly_at_every_tick_logs_its_traceback_once(
    alpaca: Pair, fake_alpaca, monkeypatch: pytest.MonkeyPatch
):
    """Since 42fd486 the watchdog outlives a poll that fails unexpectedly (a defect), but it logged each such failure
    at error with its traceback: one that fails every poll did so every `poll_every` (5 s) for the rest of the run,
    720 tracebacks an hour, where a broker error's failed poll is one warning line and a refusal for good is logged
    once (`quote_rest_refused`). The traceback is now logged once; each repeat is one warning line, as a broker
    error's, until a poll succeeds: a failure after that is told in full again."""
    broker, _ = alpaca
    collect(broker)  # a run listens
    fake_alpaca.trade_stream_muted = True
    await broker.submit_order(limit("r2-L0062-A00", Side.BUY, "1", "90.00"))  # rests: polled while silent
    defect = _DefectInThePoll(broker, monkeypatch)  # every poll fails
    with every_level_captured() as logs:
        await until(lambda: len(_poll_failures(logs)) >= 4)
        defect.on = False
        polled = fake_alpaca.count("GET", "/v2/orders")
        await until(lambda: fake_alpaca.count("GET", "/v2/orders") >= polled + 1)  # a poll succeeded
        first = _poll_failures(logs)
        defect.on = True
        await until(lambda: len(_poll_failures(logs)) >= len(first) + 2)
    again = _poll_failures(logs)[len(first) :]
    assert first == [("error", True)] + [("warning", False)] * (len(first) - 1)
    assert again[:2] == [("error", True), ("warning", False)]


async def _cancelled_with_its_answer_lost_while_pending_cancel(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> BrokerOrder:
    """A 2-share buy whose cancel Alpaca accepted (`pending_cancel`, waiting for the venue) with its answer lost,
    and whose retry met that state; `cancel_order` has returned (as accepted)."""
    order = await broker.submit_order(limit("r2-L0011-A00", Side.BUY, "2", "90.00"))
    fake_alpaca.book.hold_cancels = True
    fake_alpaca.lost_response_delay = 1.0  # longer than the adapter's read timeout
    fake_alpaca.lose_response("DELETE", f"/v2/orders/{order.order_id}")
    await broker.cancel_order(order.order_id)
    assert fake_alpaca.count("DELETE", f"/v2/orders/{order.order_id}") == 2
    return order


async def test_a_cancel_whose_answer_was_lost_is_done_when_its_retry_meets_the_order_pending_cancel(
    alpaca: Pair, fake_alpaca
):
    """As with `canceled`: the first DELETE was accepted (the order waits for the venue, `pending_cancel`) but its
    answer never arrived; the retry is refused because of that very state. It is our own cancel under way, not a
    refusal: the adapter raised `OrderNotCancelableError`, so the engine recorded the cancel as failed (an error on
    the leg) and went back to working an order that was being cancelled. The `canceled` update follows."""
    broker, _ = alpaca
    updates = collect(broker)
    order = await _cancelled_with_its_answer_lost_while_pending_cancel(broker, fake_alpaca)
    fake_alpaca.book.complete_cancels()
    await until(
        lambda: any(u.event is OrderEvent.CANCELED and u.order.order_id == order.order_id for u in updates)
    )


async def test_a_fill_racing_a_cancel_taken_as_under_way_is_reported(alpaca: Pair, fake_alpaca):
    """Guard (551fc16e): a cancel whose retry met the order `pending_cancel` returns as accepted; the venue may
    still fill the order instead. The adapter still follows it: the fill is pushed, with its quantity and price."""
    broker, _ = alpaca
    updates = collect(broker)
    order = await _cancelled_with_its_answer_lost_while_pending_cancel(broker, fake_alpaca)
    book = fake_alpaca.book
    book._execute(book.orders[order.order_id], Decimal("89.99"))  # the venue filled it before cancelling it
    await until(lambda: any(u.event is OrderEvent.FILL for u in updates))
    fills = [u.fill for u in updates if u.fill is not None]
    assert [(f.qty, f.price) for f in fills] == [(Decimal(2), Decimal("89.99"))]


async def test_an_update_handler_that_fails_is_logged_with_its_traceback_and_the_stream_goes_on(
    alpaca: Pair, fake_alpaca
):
    """Guard (the failing update handler's exceptions are no longer kept in a list nothing read): the failure is
    logged at error with its traceback, and the stream keeps delivering the updates that follow."""
    from structlog.testing import capture_logs

    broker, _ = alpaca
    updates: list[OrderUpdate] = []
    failures = [RuntimeError("a defect in the consumer")]

    def sink(update: OrderUpdate) -> None:
        if failures:
            raise failures.pop()
        updates.append(update)

    broker.subscribe_updates(sink)
    with capture_logs() as logs:
        order = await broker.submit_order(limit("r2-L0070-A00", Side.BUY, "2", "90.00"))
        fake_alpaca.book.set_quote("AAPL", Decimal("89.90"), Decimal("90.00"))  # fills: pushed by the stream
        await until(lambda: filled(updates, order.order_id) == 2)
    failed = [line for line in logs if line["event"] == "trade_update_handler_failed"]
    assert [(line["log_level"], bool(line.get("exc_info"))) for line in failed] == [("error", True)]
