"""The Alpaca adapter across the life of its runs: what it still does once a run ended, and who may use it at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import pytest
from tests.fakes.alpaca_fixtures import FAST
from tests.fakes.alpaca_server import FakeAlpacaServer
from tests.integration.test_alpaca_end_to_end import FAST_RUN
from tests.integration.test_alpaca_orders import limit, until

from repeg.api import execute_async
from repeg.brokers.alpaca.adapter import AlpacaBroker
from repeg.cli.journal_run import journaled_session
from repeg.domain.events import OrderAccepted, OrderIntent, OrderUpdated, RunEvent
from repeg.domain.orders import Side
from repeg.domain.plan import Plan, PlanKind, TradeIntent
from repeg.domain.run import fold_run
from repeg.engine.clock import RealClock
from repeg.errors import BrokerInUseError, JournalError
from repeg.journal.sqlite import SqliteJournal
from repeg.market.alpaca_feed import AlpacaQuoteFeed
from repeg.report.result import RunStatus

Pair = tuple[AlpacaBroker, AlpacaQuoteFeed]


def _order_reads(fake_alpaca: FakeAlpacaServer) -> int:
    """GETs of the orders endpoint (the open-orders list and single orders): what a silence poll sends."""
    return sum(
        1 for method, path in fake_alpaca.requests if method == "GET" and path.startswith("/v2/orders")
    )


async def test_an_order_an_ended_run_left_open_is_not_polled_for_the_adapters_life(alpaca: Pair, fake_alpaca):
    """The silence watchdog polled every open order the adapter knew, whether or not a run listened: an order an
    ended run left open (a cancel never confirmed) was read every `poll_every` for as long as the adapter lived,
    spending the account's rate budget on updates nobody could receive. Polls stop when the run ends."""
    broker, _ = alpaca
    leave = broker.subscribe_updates(lambda _update: None)  # a run listens
    fake_alpaca.trade_stream_muted = True
    await broker.submit_order(limit("r2-L0050-A00", Side.BUY, "1", "90.00"))  # rests
    await until(lambda: _order_reads(fake_alpaca) >= 2)  # the run's silence polls
    leave()  # the run ends, its order left open
    await asyncio.sleep(FAST.stream.poll_every * 2)  # a poll already under way lands
    after_the_run = _order_reads(fake_alpaca)
    await asyncio.sleep(4 * FAST.stream.silence_after)  # about 24 watchdog ticks
    assert _order_reads(fake_alpaca) == after_the_run


def _a_buy(symbol: str) -> Plan:
    return Plan(
        source="plan.csv",
        kind=PlanKind.TRADES,
        trades=(TradeIntent(symbol=symbol, side=Side.BUY, qty=Decimal(5)),),
    )


async def test_a_second_run_at_once_on_one_adapter_is_refused_before_any_order(alpaca: Pair, fake_alpaca):
    """The Python API let two runs share one adapter at once. Its asset flags are cached while a run listens, so
    the second run's checks took the first run's flags as read for it: AAPL, halted meanwhile, was still tradable,
    and the second run sent its orders (and one run's stop would have bounded the other's requests). A second run
    while one listens is now refused (`BrokerInUseError`) before any order; after the first ends, it runs."""
    broker, feed = alpaca
    clock = RealClock()
    # The first run rests its passive buy (no re-peg or escalation for 30 s), so that the halt below, meant for
    # the second run's checks, never meets one of its own orders (under a loaded CI its escalation did).
    resting = FAST_RUN.model_copy(update={"fill_wait_seconds": 30.0, "max_total_wait": 60.0})
    first = asyncio.create_task(execute_async(_a_buy("AAPL"), broker, feed, clock, resting, run_id="rOne"))
    await until(lambda: fake_alpaca.count("POST", "/v2/orders") >= 1)  # the first run listens and trades AAPL
    fake_alpaca.book.assets["AAPL"] = (False, True)  # halted
    with pytest.raises(BrokerInUseError) as refused:
        await execute_async(_a_buy("AAPL"), broker, feed, clock, FAST_RUN, run_id="rTwo")
    assert refused.value.value == "alpaca-paper"
    assert not [o for o in fake_alpaca.book.orders.values() if o.client_order_id.startswith("rTwo")]
    fake_alpaca.book.assets["AAPL"] = (True, True)
    (order,) = [o for o in fake_alpaca.book.orders.values() if o.client_order_id.startswith("rOne")]
    assert order.limit_price is not None
    fake_alpaca.book.set_quote(
        "AAPL", order.limit_price - Decimal("0.01"), order.limit_price
    )  # the ask comes down
    assert (await asyncio.wait_for(first, 20)).status is RunStatus.COMPLETED
    later = await asyncio.wait_for(
        execute_async(_a_buy("MSFT"), broker, feed, clock, FAST_RUN, run_id="rThree"), 20
    )
    assert later.status is RunStatus.COMPLETED


class _FailingSink:
    """An event sink that fails (a journal that breaks) at the run's first order intent."""

    async def emit(self, event: RunEvent) -> None:
        if isinstance(event, OrderIntent):
            raise JournalError("the journal broke")


async def _cancelled_mid_run(
    broker: AlpacaBroker, feed: AlpacaQuoteFeed, fake_alpaca: FakeAlpacaServer
) -> None:
    """Ctrl-C through the Python API: the run's task is cancelled once its first order is out."""
    run = asyncio.create_task(
        execute_async(_a_buy("AAPL"), broker, feed, RealClock(), FAST_RUN, run_id="rOne")
    )
    await until(lambda: fake_alpaca.count("POST", "/v2/orders") >= 1)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def _failed_on_its_journal(
    broker: AlpacaBroker, feed: AlpacaQuoteFeed, _fake: FakeAlpacaServer
) -> None:
    with pytest.raises(JournalError):
        await execute_async(
            _a_buy("AAPL"), broker, feed, RealClock(), FAST_RUN, run_id="rOne", sinks=(_FailingSink(),)
        )


@pytest.mark.parametrize("end", [_cancelled_mid_run, _failed_on_its_journal])
async def test_a_run_that_ended_on_an_error_or_a_cancel_leaves_the_adapter_to_the_next(
    alpaca: Pair,
    fake_alpaca,
    end: Callable[[AlpacaBroker, AlpacaQuoteFeed, FakeAlpacaServer], Awaitable[None]],
):
    """Guard (acaa8b5 refuses a run while another listens): a run that did not end normally (cancelled, as Ctrl-C
    cancels a Python program's task, or failed when its journal broke) must still unsubscribe, else every later run
    on the adapter would be refused with `BrokerInUseError` for the adapter's life."""
    broker, feed = alpaca
    await end(broker, feed, fake_alpaca)
    later = await asyncio.wait_for(
        execute_async(_a_buy("MSFT"), broker, feed, RealClock(), FAST_RUN, run_id="rTwo"), 20
    )
    assert later.status is RunStatus.COMPLETED


class _KilledAt:
    """Kills the run at its first `OrderAccepted` (unjournaled) with a `BaseException` its error handling never
    sees: its order is out and left working, the adapter (the program's) lives on."""

    def __init__(self, journal: SqliteJournal) -> None:
        self._journal = journal

    async def emit(self, event: RunEvent) -> None:
        if isinstance(event, OrderAccepted):
            raise KeyboardInterrupt
        await self._journal.emit(event)


async def test_an_order_that_filled_while_no_run_listened_is_recorded_once_by_a_resume_on_the_same_adapter(
    alpaca: Pair, fake_alpaca, tmp_path: Path
):
    """Guard (6b1063b stops polling an ended run's open orders, keeping their state for a resume): a run's order
    fills while no run listens, with the stream silent, so the adapter's state of it is stale; the resume of that
    run on the same adapter learns the fill through its own reads, and it is recorded once (the push its read
    triggers from the stale state is folded idempotently), the run completing with the leg filled exactly once."""
    broker, feed = alpaca
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        with pytest.raises(KeyboardInterrupt):
            await execute_async(
                _a_buy("AAPL"), broker, feed, RealClock(), FAST_RUN, run_id="rK", sinks=(_KilledAt(journal),)
            )
        (order,) = fake_alpaca.book.orders.values()
        assert order.is_open  # left working at the broker, no run listening
        fake_alpaca.trade_stream_muted = True
        fake_alpaca.book.set_quote("AAPL", Decimal("99.00"), Decimal("99.05"))  # it fills, unheard
        assert not order.is_open
        await asyncio.sleep(4 * FAST.stream.silence_after)  # no poll learns it either
        result = await asyncio.wait_for(
            journaled_session(
                _a_buy("AAPL"), FAST_RUN, "rK", journal=journal, broker=broker, feed=feed, clock=RealClock()
            ),
            20,
        )
        events = journal.events("rK")
    finally:
        journal.close()
    assert result.status is RunStatus.COMPLETED
    (leg,) = fold_run(events).legs
    assert leg.filled_qty == leg.qty == order.filled_qty == Decimal(5)
    fills = [e.update.fill.qty for e in events if isinstance(e, OrderUpdated) and e.update.fill is not None]
    assert fills == [Decimal(5)]  # journaled once
    assert len(fake_alpaca.book.orders) == 1  # nothing sent again
