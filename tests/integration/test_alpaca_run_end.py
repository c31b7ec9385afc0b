"""The run's end through the Alpaca adapter against the loopback fake Alpaca: its last lookups and cancels.

Each run buys 30 AAPL resting at the mid (never marketable); every DELETE is refused (HTTP 422) until the phase
ends, so the hard stop leaves the order working and the run's end is what cancels it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import pytest
from tests.fakes.alpaca_fixtures import FAST, connect
from tests.fakes.alpaca_server import FakeAlpacaServer
from tests.fakes.log_capture import every_level_captured

from repeg.config import ExecutionConfig, classic_ladder
from repeg.domain.events import OrderUpdated, PhaseEnded, RunEvent
from repeg.domain.orders import OrderStatus, Side
from repeg.domain.plan import LegSpec
from repeg.engine.clock import RealClock
from repeg.engine.runner import run_execution
from repeg.report.result import ExecutionResult

BUY = [LegSpec(index=0, symbol="AAPL", side=Side.BUY, qty=Decimal(30))]


def _config(grace_window: float) -> ExecutionConfig:
    return classic_ladder(
        repeg_steps=(Decimal("0.5"),),  # the mid: 100.05 under an ask of 100.10, never filled
        fill_wait_seconds=0.2,
        wait_between_checks=0.05,
        max_total_wait=0.6,
        grace_window=grace_window,
        quote_max_age=600.0,
        quote_wait=1.0,
    )


class _Recorder:
    """Records the run's events; at the phase's end, lets DELETEs through again and calls `at_phase_end`."""

    def __init__(self, server: FakeAlpacaServer, at_phase_end: Callable[[], None]) -> None:
        self.events: list[RunEvent] = []
        self._server = server
        self._at_phase_end = at_phase_end

    async def emit(self, event: RunEvent) -> None:
        self.events.append(event)
        if isinstance(event, PhaseEnded):
            for fault in self._server.faults:
                fault.times = 0
            self._at_phase_end()


async def _run(
    server: FakeAlpacaServer, grace_window: float, at_phase_end: Callable[[], None] = lambda: None
) -> tuple[ExecutionResult, _Recorder]:
    server.fail("DELETE", "/v2/orders/", 422, times=10**6)
    broker, feed = await connect(server)
    recorder = _Recorder(server, at_phase_end)
    run = run_execution(
        BUY, [], broker, feed, RealClock(), _config(grace_window), run_id="rEnd", sinks=[recorder]
    )
    try:
        result = await asyncio.wait_for(run, 20)
    finally:
        await feed.aclose()
        await broker.aclose()
    return result, recorder


def _the_order(server: FakeAlpacaServer) -> str:
    """The order working when the phase ended: the last of the leg (the earlier ones were replaced)."""
    *replaced, order_id = server.book.orders
    assert all(server.book.orders[old].status == "replaced" for old in replaced)
    return order_id


def _last_recorded(recorder: _Recorder, order_id: str) -> OrderStatus:
    updates = [e.update for e in recorder.events if isinstance(e, OrderUpdated)]
    return [u.order.status for u in updates if u.order.order_id == order_id][-1]


async def test_with_no_grace_window_the_runs_end_still_asks_for_and_cancels_an_order_left_working(
    fake_alpaca: FakeAlpacaServer,
):
    """grace_window = 0 on a wall clock: the window had passed by the run end's first check, so its lookup and
    cancel were skipped (logged run_end_lookups_skipped) and the order kept working at Alpaca after the run
    reported. Each order not known closed gets one lookup and one cancel whatever the window."""
    with every_level_captured() as logs:
        result, recorder = await _run(fake_alpaca, 0.0)
    order_id = _the_order(fake_alpaca)
    assert fake_alpaca.book.orders[order_id].status == "canceled"
    assert _last_recorded(recorder, order_id) is OrderStatus.CANCELED
    assert not [line for line in logs if line["event"].startswith("run_end_") and "skipped" in line["event"]]
    (leg,) = result.legs
    assert leg.error is not None
    assert "still open" not in leg.error


async def test_the_runs_end_waits_for_alpaca_to_confirm_its_cancel(fake_alpaca: FakeAlpacaServer):
    """Alpaca answers the run end's DELETE with 204 and the order `pending_cancel`, and confirms it 0.2 s later.
    The run read the order once right after the DELETE (pending_cancel) and ended naming it still open at the
    broker; it now waits (within the grace window) for the confirmation."""
    book = fake_alpaca.book
    loop = asyncio.get_running_loop()

    def hold_then_confirm() -> None:
        book.hold_cancels = True
        loop.call_later(0.2, book.complete_cancels)

    result, recorder = await _run(fake_alpaca, 1.0, hold_then_confirm)
    order_id = _the_order(fake_alpaca)
    assert book.orders[order_id].status == "canceled"
    assert _last_recorded(recorder, order_id) is OrderStatus.CANCELED
    (leg,) = result.legs
    assert leg.error is not None
    assert "still open" not in leg.error


async def test_a_fill_between_the_runs_end_cancel_and_its_confirmation_is_in_the_result(
    fake_alpaca: FakeAlpacaServer,
):
    """As above, but the venue fills the order 0.2 s after Alpaca took the DELETE (pending_cancel), before it
    could cancel it: the run ended on the first read (pending_cancel), so the 30 shares bought were not in its
    result. The fill is recorded now, and the leg is filled."""
    book = fake_alpaca.book
    loop = asyncio.get_running_loop()

    def fill_pending() -> None:
        order = book.orders[_the_order(fake_alpaca)]
        assert order.status == "pending_cancel"
        book._execute(order, Decimal("100.05"))  # the venue filled it before cancelling it

    def hold_then_fill() -> None:
        book.hold_cancels = True
        loop.call_later(0.2, fill_pending)

    result, recorder = await _run(fake_alpaca, 1.0, hold_then_fill)
    order_id = _the_order(fake_alpaca)
    assert book.holdings["AAPL"].qty == Decimal(30)
    assert _last_recorded(recorder, order_id) is OrderStatus.FILLED
    (leg,) = result.legs
    assert leg.filled_qty == Decimal(30)
    assert leg.avg_fill_price == Decimal("100.05")


#: Alpaca's default pacing (`AlpacaSettings`): 200 requests a minute, 10 of them at once; the stream is not polled
#: when silent (so the requests are the run's own).
PACED = FAST.model_copy(
    update={
        "requests_per_minute": 200.0,
        "burst": 10,
        "stream": FAST.stream.model_copy(update={"silence_after": 600.0}),
    }
)
MANY = [LegSpec(index=i, symbol=f"S{i:02d}", side=Side.BUY, qty=Decimal(30)) for i in range(12)]
_TRADING = ("/v2/orders", "/v2/account", "/v2/positions", "/v2/assets", "/v2/clock")


def _most_in_a_window(arrivals: list[float], window: float) -> int:
    """The most requests that arrived within any `window` seconds."""
    return max(sum(1 for t in arrivals if start <= t < start + window) for start in arrivals)


@pytest.mark.slow
@pytest.mark.timeout(300)  # about 80 requests at 200 a minute: about 20 s
async def test_the_runs_end_cancels_every_order_left_working_though_its_own_pacing_delays_the_requests(
    fake_alpaca: FakeAlpacaServer,
):
    """12 legs left working at the end, Alpaca's default pacing (200 a minute, burst 10), grace_window = 0: each
    call of the run's end was given up 2 s after it started (`CALL_FLOOR`), its wait for a rate token included,
    and every leg's lookup was queued before any cancel: with 30 legs 25 orders were still working at Alpaca when
    the run reported ('no answer within 2 s', most of those requests never sent), with these 12 some still are.
    Only the broker's answer is timed now: all are cancelled when the run reports, and the client never went past
    the rate (12 legs keep the test near 20 s and still fail on the code before e5ea061)."""
    book = fake_alpaca.book
    for leg in MANY:
        book.assets[leg.symbol] = (True, True)
        book.set_quote(leg.symbol, Decimal("100.00"), Decimal("100.10"))
    fake_alpaca.fail("DELETE", "/v2/orders/", 422, times=10**6)
    broker, feed = await connect(fake_alpaca, settings=PACED)
    recorder = _Recorder(fake_alpaca, lambda: None)
    config = _config(0.0)
    run = run_execution(MANY, [], broker, feed, RealClock(), config, run_id="rEndMany", sinks=[recorder])
    try:
        result = await asyncio.wait_for(run, 120)
    finally:
        await feed.aclose()
        await broker.aclose()
    working = [order_id for order_id, order in book.orders.items() if order.is_open]
    assert working == []
    assert len(result.legs) == 12
    assert not [leg.error for leg in result.legs if leg.error is not None and "still open" in leg.error]
    arrivals = [
        t
        for t, (_, path) in zip(fake_alpaca.arrivals, fake_alpaca.requests, strict=True)
        if path.startswith(_TRADING)
    ]
    assert _most_in_a_window(arrivals, 60.0) <= 200
    for window in (0.5, 1.0, 3.0, 10.0):  # the bucket's bound, with 50 ms for the loopback's jitter
        assert _most_in_a_window(arrivals, window) <= 10 + 190 / 60 * (window + 0.05)
