"""A broker's refusal of a request the gateway announced: recorded (`OrderFailed`, so the leg's `error` says why)
and logged."""

from __future__ import annotations

import structlog

from repeg.domain.events import IntentAction, OrderFailed
from repeg.engine.bus import EventBus
from repeg.errors import BrokerError


async def record_refusal(
    bus: EventBus,
    index: int,
    action: IntentAction,
    exc: BrokerError,
    *,
    client_order_id: str | None = None,
    order_id: str | None = None,
) -> None:
    await bus.emit(
        OrderFailed(
            **bus.stamp(index),
            action=action,
            client_order_id=client_order_id,
            order_id=order_id,
            error=type(exc).__name__,
            message=str(exc),
        )
    )
    structlog.get_logger("repeg.engine").info(
        "broker_refused",
        run_id=bus.run_id,
        correlation_id=bus.correlation(index),
        symbol=bus.leg(index).symbol,
        action=action.value,
        order_id=order_id,
        client_order_id=client_order_id,
        error=str(exc),
    )
