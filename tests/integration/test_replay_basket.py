"""Issue 2, acceptance 3: a 200-order basket over a replayed real day completes, at prices the quotes allowed.

200 alternating 100-share buy/sell parent orders spread over the 2018-01-02 NYSE quotes. Every order must fill
completely, and every single execution is checked against the quote in force at its timestamp: under Alpaca's
paper rule a buy executes at the ask and a sell at the bid, and a limit order never beyond its limit.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from repeg.brokers.simulator import SimAccount, build_simulation
from repeg.config import classic_ladder
from repeg.domain.events import OrderAccepted, OrderUpdated, RunEvent
from repeg.domain.orders import OrderType, Side
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.engine.runner import ParentOrder, run_basket
from repeg.market.loaders import load_quotes
from repeg.market.tape import QuoteTape
from repeg.report.result import ExecutionResult

QUOTES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "quotes" / "xxx_20180102_nyse_bbo.csv.gz"
)
pytestmark = pytest.mark.shared_data


class _Recorder:
    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    async def emit(self, event: RunEvent) -> None:
        self.events.append(event)


@pytest.fixture(scope="module")
def tape() -> QuoteTape:
    if not QUOTES.exists():
        pytest.skip(f"{QUOTES} is absent (../shared is not beside this clone)")
    return load_quotes(QUOTES)


@pytest.fixture(scope="module")
def replay(tape: QuoteTape) -> tuple[ExecutionResult, list[RunEvent]]:
    symbol = tape.symbols[0]
    span = (tape.end - tape.start) - timedelta(minutes=5)
    orders = [
        ParentOrder(
            arrival=tape.start + span * i / 200,
            symbol=symbol,
            side=Side.BUY if i % 2 == 0 else Side.SELL,
            qty=Decimal(100),
            whole_shares=True,
        )
        for i in range(200)
    ]
    account = SimAccount(cash=Decimal(10_000_000), positions={symbol: Decimal(100_000)})
    recorder = _Recorder()

    async def main() -> ExecutionResult:
        clock = VirtualClock(tape.start)
        broker, feed = build_simulation(tape, clock, account, seed=7)
        return await run_basket(
            orders, broker, feed, clock, classic_ladder(), run_id="replay200", sinks=[recorder]
        )

    return run_virtual(main), recorder.events


def test_every_order_of_the_basket_fills_completely(replay):
    result, _ = replay
    assert len(result.legs) == 200
    assert [leg.filled_qty for leg in result.legs] == [Decimal(100)] * 200
    assert result.status.value == "completed"


def test_each_execution_is_at_the_touch_in_force_when_it_happened(replay, tape: QuoteTape):
    _, events = replay
    fills = [e.update for e in events if isinstance(e, OrderUpdated) and e.update.fill is not None]
    assert len(fills) >= 200
    for update in fills:
        fill = update.fill
        assert fill is not None
        quote = tape.quote_at(update.order.symbol, fill.ts)
        assert quote is not None
        expected = quote.ask if update.order.side is Side.BUY else quote.bid
        assert fill.price == expected, (update.order.order_id, fill, quote)


def test_no_limit_order_executes_beyond_its_limit(replay):
    _, events = replay
    limits = {
        e.order.order_id: e.order.limit_price
        for e in events
        if isinstance(e, OrderAccepted) and e.order.order_type is OrderType.LIMIT
    }
    for event in events:
        if not isinstance(event, OrderUpdated) or event.update.fill is None:
            continue
        limit = limits.get(event.update.order.order_id)
        if limit is None:
            continue  # an escalation's market order
        if event.update.order.side is Side.BUY:
            assert event.update.fill.price <= limit
        else:
            assert event.update.fill.price >= limit


def test_leg_average_price_is_the_quantity_weighted_mean_of_its_executions(replay):
    result, events = replay
    by_leg: dict[int, list[tuple[Decimal, Decimal]]] = {}
    for event in events:
        if isinstance(event, OrderUpdated) and event.update.fill is not None and event.leg_index is not None:
            by_leg.setdefault(event.leg_index, []).append((event.update.fill.qty, event.update.fill.price))
    for leg in result.legs:
        executions = by_leg[leg.index]
        notional = sum((q * p for q, p in executions), Decimal(0))
        qty = sum((q for q, _ in executions), Decimal(0))
        assert qty == leg.filled_qty
        assert leg.avg_fill_price is not None
        assert abs(leg.avg_fill_price - notional / qty) < Decimal("0.0001")
