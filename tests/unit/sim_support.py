"""Shared helpers for the simulator tests: tiny hand-written tapes and a scenario runner on virtual time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from repeg.brokers.simulator import (
    FillModel,
    LatencyModel,
    PaperFillModel,
    SimAccount,
    SimulatedBroker,
    build_simulation,
)
from repeg.domain.orders import OrderRequest, OrderType, OrderUpdate, Side, TimeInForce
from repeg.domain.ticks import to_units
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.market.replay import TapeFeed
from repeg.market.tape import QuoteTape, to_ns

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)

#: (seconds after T0, bid, ask) for symbol ABC: the ask falls to 10.00 at 5 s, the bid rises to 10.10 at 10 s.
ABC_ROWS: tuple[tuple[float, str, str], ...] = (
    (0, "10.00", "10.05"),
    (1, "10.01", "10.04"),
    (2, "10.02", "10.03"),
    (5, "9.99", "10.00"),
    (10, "10.10", "10.15"),
    (20, "10.11", "10.12"),
    (30, "10.12", "10.13"),
    (40, "10.11", "10.14"),
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_tape(books: dict[str, Sequence[tuple[float, str, str]]]) -> QuoteTape:
    arrays = {}
    for symbol, rows in books.items():
        arrays[symbol] = {
            "ts": np.array([to_ns(at(t)) for t, _, _ in rows], dtype=np.int64),
            "bid": np.array([to_units(Decimal(b)) for _, b, _ in rows], dtype=np.int64),
            "ask": np.array([to_units(Decimal(a)) for _, _, a in rows], dtype=np.int64),
            "bid_size": np.full(len(rows), 300, dtype=np.int64),
            "ask_size": np.full(len(rows), 400, dtype=np.int64),
        }
    return QuoteTape.from_arrays(arrays)


DEFAULT_TAPE = make_tape(
    {
        "ABC": ABC_ROWS,
        "ONE": ((0, "0", "10.05"), (3, "10.00", "10.06"), (4, "10.01", "10.07")),
        "SUB": ((0, "0.4321", "0.4330"), (7, "0.4330", "0.4335")),
        "NIL": ((0, "0", "0"), (1, "5.00", "0")),
    }
)


def limit(coid: str, side: Side, qty: str, price: str, symbol: str = "ABC") -> OrderRequest:
    return OrderRequest(
        client_order_id=coid,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=OrderType.LIMIT,
        limit_price=Decimal(price),
    )


def ioc(coid: str, side: Side, qty: str, price: str) -> OrderRequest:
    return limit(coid, side, qty, price).model_copy(update={"time_in_force": TimeInForce.IOC})


def market(coid: str, side: Side, qty: str, symbol: str = "ABC") -> OrderRequest:
    return OrderRequest(
        client_order_id=coid, symbol=symbol, side=side, qty=Decimal(qty), order_type=OrderType.MARKET
    )


@dataclass
class Sim:
    broker: SimulatedBroker
    feed: TapeFeed
    clock: VirtualClock
    updates: list[OrderUpdate] = field(default_factory=list)

    async def until(self, seconds: float) -> None:
        await self.clock.sleep_until(at(seconds))

    def events(self, order_id: str | None = None) -> list[str]:
        return [u.event.value for u in self.updates if order_id is None or u.order.order_id == order_id]


def run_sim(
    scenario: Callable[[Sim], Awaitable[None]],
    *,
    tape: QuoteTape = DEFAULT_TAPE,
    account: SimAccount | None = None,
    fill_model: Callable[[QuoteTape], FillModel] | None = None,
    latency: LatencyModel | None = None,
    seed: int = 1,
    start: datetime = T0,
) -> Sim:
    """Run `scenario` on a fresh simulator (no partial fills unless `fill_model` says so) and return it."""
    holder: list[Sim] = []

    async def main() -> None:
        clock = VirtualClock(start)
        model = fill_model(tape) if fill_model else PaperFillModel(tape, seed=seed, partial_rate=0.0)
        broker, feed = build_simulation(
            tape,
            clock,
            account or SimAccount(positions={"ABC": Decimal(1000)}),
            seed=seed,
            fill_model=model,
            latency=latency,
        )
        sim = Sim(broker, feed, clock)
        broker.subscribe_updates(sim.updates.append)
        holder.append(sim)
        await scenario(sim)

    run_virtual(main)
    return holder[0]
