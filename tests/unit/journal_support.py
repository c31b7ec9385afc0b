"""Small builders of run events for the journal tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from repeg.domain.events import (
    IntentAction,
    LegPlanned,
    OrderAccepted,
    OrderIntent,
    OrderUpdated,
    RunEnded,
    RunStarted,
)
from repeg.domain.orders import BrokerOrder, Fill, OrderEvent, OrderStatus, OrderType, OrderUpdate, Side
from repeg.domain.plan import LegSpec, Plan, PlanKind, TradeIntent

T0 = datetime(2026, 1, 2, 14, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def plan(source: str = "plan.csv") -> Plan:
    return Plan(
        source=source,
        kind=PlanKind.TRADES,
        trades=(TradeIntent(symbol="AAA", side=Side.BUY, qty=Decimal(100)),),
    )


def run_started(run_id: str = "r1", config: dict[str, str] | None = None) -> RunStarted:
    return RunStarted(
        run_id=run_id,
        ts=at(0),
        correlation_id=run_id,
        plan=plan(),
        config=config or {"fill_wait_seconds": "10"},
        broker="simulator",
        code_version="0.1.0",
    )


def leg_planned(run_id: str = "r1", index: int = 0, qty: int = 100) -> LegPlanned:
    spec = LegSpec(index=index, symbol="AAA", side=Side.BUY, qty=Decimal(qty))
    return LegPlanned(run_id=run_id, ts=at(1), correlation_id=run_id, leg_index=index, spec=spec)


def intent(run_id: str = "r1", leg: int = 0, attempt: int = 0) -> OrderIntent:
    return OrderIntent(
        run_id=run_id,
        ts=at(2),
        correlation_id=f"{run_id}-L{leg}",
        leg_index=leg,
        action=IntentAction.SUBMIT,
        client_order_id=f"{run_id}-L{leg:04d}-A{attempt:02d}",
        order_type=OrderType.LIMIT,
        qty=Decimal(100),
        limit_price=Decimal("10.01"),
        attempt=attempt,
    )


def broker_order(
    status: OrderStatus = OrderStatus.NEW, filled: str = "0", order_id: str = "o1"
) -> BrokerOrder:
    return BrokerOrder(
        order_id=order_id,
        client_order_id="r1-L0000-A00",
        symbol="AAA",
        side=Side.BUY,
        qty=Decimal(100),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("10.01"),
        status=status,
        filled_qty=Decimal(filled),
        filled_avg_price=Decimal("10.01") if Decimal(filled) else None,
        created_at=at(2),
        updated_at=at(3),
    )


def accepted(run_id: str = "r1") -> OrderAccepted:
    return OrderAccepted(
        run_id=run_id,
        ts=at(3),
        correlation_id=run_id,
        leg_index=0,
        action=IntentAction.SUBMIT,
        order=broker_order(),
    )


def fill(run_id: str = "r1", qty: str = "40", price: str = "10.01") -> OrderUpdated:
    order = broker_order(OrderStatus.PARTIALLY_FILLED, filled=qty)
    update = OrderUpdate(
        event=OrderEvent.PARTIAL_FILL,
        order=order,
        fill=Fill(order_id="o1", qty=Decimal(qty), price=Decimal(price), ts=at(4)),
        ts=at(4),
    )
    return OrderUpdated(run_id=run_id, ts=at(4), correlation_id=run_id, leg_index=0, update=update)


def run_ended(run_id: str = "r1", status: str = "completed") -> RunEnded:
    return RunEnded(run_id=run_id, ts=at(5), correlation_id=run_id, status=status)
