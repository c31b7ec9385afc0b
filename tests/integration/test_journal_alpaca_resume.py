"""Resume on Alpaca: a run killed mid-flight is finished through a fresh adapter against the loopback fake.

The fake Alpaca keeps its orders and positions across the "crash" (it is not the process that dies), like the
real one. After the resume every leg is filled exactly once and no client order id names two orders.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from tests.fakes.alpaca_fixtures import connect
from tests.fakes.alpaca_server import FakeAlpacaServer

from repeg.cli.journal_run import journaled_session
from repeg.config import ExecutionConfig
from repeg.domain.events import RunEvent
from repeg.domain.orders import Side
from repeg.domain.plan import LegSpec, Plan, PlanKind, TradeIntent
from repeg.domain.run import fold_run
from repeg.engine.clock import RealClock
from repeg.engine.runner import run_execution
from repeg.journal.faults import point_of
from repeg.journal.sqlite import SqliteJournal

CONFIG = ExecutionConfig(
    fill_wait_seconds=0.15,
    wait_between_checks=0.05,
    max_total_wait=5.0,
    grace_window=0.05,
    quote_max_age=600.0,
    quote_wait=1.0,
)
SPECS = [
    LegSpec(index=0, symbol="MSFT", side=Side.SELL, qty=Decimal(20)),
    LegSpec(index=1, symbol="AAPL", side=Side.BUY, qty=Decimal(30)),
]
PLAN = Plan(
    source="alpaca.csv",
    kind=PlanKind.TRADES,
    trades=tuple(TradeIntent(symbol=s.symbol, side=s.side, qty=s.qty) for s in SPECS),
)


class Crash(BaseException):
    """Stands for SIGKILL: the engine's error handling never sees it."""


class CrashAt:
    def __init__(self, journal: SqliteJournal, point: str) -> None:
        self._journal, self._point = journal, point
        self.crashed = False

    async def emit(self, event: RunEvent) -> None:
        if point_of(event) == self._point:
            self.crashed = True
            raise Crash
        await self._journal.emit(event)


@pytest.mark.parametrize("point", ["submit-ack", "fill", "replace-intent"])
async def test_a_crashed_alpaca_run_resumes_to_completion_without_duplicates(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, point: str
) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    broker, feed = await connect(fake_alpaca)
    crash = CrashAt(journal, point)
    with contextlib.suppress(Crash):
        await run_execution(
            SPECS,
            [],
            broker,
            feed,
            RealClock(),
            CONFIG,
            run_id="rA",
            sinks=[crash],
            plan=PLAN,
        )
    await feed.aclose()
    await broker.aclose()

    broker, feed = await connect(fake_alpaca)
    try:
        result = await journaled_session(
            PLAN, CONFIG, "rA", journal=journal, broker=broker, feed=feed, clock=RealClock()
        )
    finally:
        await feed.aclose()
        await broker.aclose()
    state = fold_run(journal.events("rA"))
    journal.close()

    ours = [o for o in fake_alpaca.book.orders.values() if o.client_order_id.startswith("rA-")]
    assert crash.crashed
    assert result.status.value == "completed"
    assert state.status == "completed"
    assert set(Counter(o.client_order_id for o in ours).values()) == {1}
    for leg in state.legs:
        at_broker = sum(
            (o.filled_qty for o in ours if o.client_order_id.startswith(f"rA-L{leg.index:04d}-")), Decimal(0)
        )
        assert leg.filled_qty == leg.qty == at_broker
