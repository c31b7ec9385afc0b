"""Acceptance 1 of the Alpaca issue: the same plan over the same quotes gives the same results through the
Alpaca adapter (against the fake Alpaca, in real time) as on the built-in simulator (in virtual time)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from tests.fakes.alpaca_matching import Holding
from tests.fakes.alpaca_server import FakeAlpacaServer
from tests.integration.test_alpaca_end_to_end import run_through_alpaca

from repeg.brokers.simulator.account import SimAccount
from repeg.brokers.simulator.broker import SimulatedBroker
from repeg.brokers.simulator.fill_models import PaperFillModel
from repeg.config import ExecutionConfig
from repeg.domain.orders import Side
from repeg.domain.plan import LegSpec
from repeg.engine.clock import VirtualClock
from repeg.engine.runner import run_execution
from repeg.market.replay import TapeFeed
from repeg.market.tape import QuoteTape, to_ns
from repeg.report.result import ExecutionResult

START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
CONFIG = ExecutionConfig(
    fill_wait_seconds=0.25,
    wait_between_checks=0.05,
    max_total_wait=10.0,
    grace_window=0.05,
    quote_max_age=600.0,
    quote_wait=1.0,
)
SPECS = [
    LegSpec(index=0, symbol="MSFT", side=Side.SELL, qty=Decimal(20)),
    LegSpec(index=1, symbol="AAPL", side=Side.BUY, qty=Decimal(30)),
    LegSpec(index=2, symbol="NVDA", side=Side.BUY, qty=Decimal(12)),
]
#: (seconds after start, symbol, bid, ask): AAPL moves long before the buy phase, so the order of events is
#: the same in real and virtual time; every other change of state comes from the engine's own timers.
SCRIPT = [
    (0.0, "MSFT", "410.00", "410.20"),
    (0.0, "AAPL", "100.00", "100.10"),
    (0.05, "AAPL", "99.95", "100.00"),
    (0.0, "NVDA", "0.9000", "0.9010"),
]


def tape_of(script: list[tuple[float, str, str, str]]) -> QuoteTape:
    arrays: dict[str, dict[str, list[int]]] = {}
    for offset, symbol, bid, ask in script:
        cols = arrays.setdefault(symbol, {"ts": [], "bid": [], "bid_size": [], "ask": [], "ask_size": []})
        cols["ts"].append(to_ns(START) + int(offset * 1e9))
        cols["bid"].append(int(Decimal(bid) * 10_000))
        cols["ask"].append(int(Decimal(ask) * 10_000))
        cols["bid_size"].append(100)
        cols["ask_size"].append(100)
    return QuoteTape.from_arrays(
        {s: {k: np.array(v, dtype=np.int64) for k, v in cols.items()} for s, cols in arrays.items()}
    )


async def on_simulator(tape: QuoteTape) -> ExecutionResult:
    clock = VirtualClock(START)
    account = SimAccount(cash=Decimal(100_000), positions={"MSFT": Decimal(50)})
    broker = SimulatedBroker(tape, clock, account, fill_model=PaperFillModel(tape, seed=3, partial_rate=0.0))
    return await run_execution(SPECS, [], broker, TapeFeed(tape, clock), clock, CONFIG, run_id="rSAME")


def run_on_simulator(tape: QuoteTape) -> ExecutionResult:
    with asyncio.Runner(loop_factory=_virtual_loop) as runner:
        return runner.run(on_simulator(tape))


def _virtual_loop() -> asyncio.AbstractEventLoop:
    from repeg.engine.clock import VirtualTimeLoop

    return VirtualTimeLoop()


def comparable(result: ExecutionResult) -> list[tuple[object, ...]]:
    return [
        (
            leg.symbol,
            leg.side,
            leg.filled_qty,
            leg.avg_fill_price,
            leg.arrival_mid,
            leg.repegs,
            leg.escalated,
            leg.status,
        )
        for leg in result.legs
    ]


async def test_the_adapter_run_matches_the_simulator_run_on_the_same_quotes(fake_alpaca: FakeAlpacaServer):
    tape = tape_of(SCRIPT)
    simulated = await asyncio.to_thread(run_on_simulator, tape)
    fake_alpaca.book.assets["NVDA"] = (True, True)
    fake_alpaca.book.holdings = {"MSFT": Holding(Decimal(50), Decimal("400.00"))}
    fake_alpaca.book.quotes.clear()
    fake_alpaca.book.play([(t, sym, Decimal(bid), Decimal(ask)) for t, sym, bid, ask in SCRIPT])
    through_alpaca, _ = await run_through_alpaca(fake_alpaca, SPECS, CONFIG, run_id="rSAME")
    assert through_alpaca.status == simulated.status
    assert comparable(through_alpaca) == comparable(simulated)
    assert through_alpaca.notional_traded == simulated.notional_traded
