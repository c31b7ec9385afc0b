"""The engine against the real built-in simulator (H1's `SimulatedBroker`), on virtual time.

The acceptance-level behaviours: the monitor's end conditions, escalation only after a confirmed cancel and only
for the remainder, a fill racing a cancel, buy scaling when the sells' proceeds fall short, and the 200-order
replay of real quotes (every order completes, every fill consistent with the quote at its time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from tests.unit.sim_support import T0, at, make_tape

from repeg.brokers.simulator import (
    LatencyModel,
    PaperFillModel,
    SimAccount,
    SimulatedBroker,
    build_simulation,
)
from repeg.cli.render import quality_table
from repeg.config import ExecutionConfig, classic_ladder
from repeg.domain.events import (
    IntentAction,
    LegEscalated,
    OrderFailed,
    OrderIntent,
    OrderUpdated,
    PhaseEnded,
    PhaseStarted,
    RunEvent,
)
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import OrderEvent, OrderType, Side
from repeg.domain.plan import LegSpec
from repeg.domain.run import fold_run
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.engine.runner import ParentOrder, run_basket, run_execution
from repeg.market.loaders import load_quotes
from repeg.market.tape import QuoteTape
from repeg.report.result import ExecutionResult, LegResult, RunStatus, build_result

CONFIG = classic_ladder()
Book = Callable[[int], tuple[str, str]]


def book(seconds: int, quote_at: Book, symbol: str = "XYZ") -> dict[str, list[tuple[float, str, str]]]:
    """One quote per second: quotes stay fresh, as on a live market."""
    return {symbol: [(t, *quote_at(t)) for t in range(seconds)]}


def steady(_: int) -> tuple[str, str]:
    return "100.00", "100.08"


@dataclass
class Recorder:
    events: list[RunEvent] = field(default_factory=list)

    async def emit(self, event: RunEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@dataclass
class Outcome:
    result: ExecutionResult
    events: Recorder
    broker: SimulatedBroker


def simulate(
    specs: Sequence[LegSpec],
    tape: QuoteTape,
    *,
    account: SimAccount | None = None,
    config: ExecutionConfig = CONFIG,
    latency: LatencyModel | None = None,
    partial_rate: float = 0.0,
    run_id: str = "sim",
) -> Outcome:
    async def main() -> Outcome:
        clock = VirtualClock(T0)
        broker, feed = build_simulation(
            tape,
            clock,
            account or SimAccount(positions={"XYZ": Decimal(1000)}),
            seed=7,
            fill_model=PaperFillModel(tape, seed=7, partial_rate=partial_rate),
            latency=latency,
        )
        sink = Recorder()
        result = await run_execution(specs, [], broker, feed, clock, config, run_id=run_id, sinks=[sink])
        return Outcome(result, sink, broker)

    return run_virtual(main)


BUY = [LegSpec(index=0, symbol="XYZ", side=Side.BUY, qty=Decimal(100))]


def test_a_passive_fill_ends_the_phase_a_grace_window_later() -> None:
    tape = make_tape(book(60, lambda t: ("100.00", "100.08") if t < 5 else ("99.96", "100.00")))
    out = simulate(BUY, tape)
    (leg,) = out.result.legs
    assert leg.status is LegStatus.FILLED
    assert leg.repegs == 0
    assert leg.avg_fill_price == Decimal("100.00")
    (ended,) = out.events.of(PhaseEnded)
    assert ended.ts == at(5) + CONFIG.grace


def test_a_fill_split_on_the_tapes_last_quote_still_completes_the_leg() -> None:
    # The ask comes down to the resting bid on the tape's final quote; every execution is a partial one.
    tape = make_tape(book(6, lambda t: ("100.00", "100.08") if t < 5 else ("99.96", "100.00")))
    out = simulate(BUY, tape, partial_rate=1.0)
    (leg,) = out.result.legs
    assert (leg.status, leg.filled_qty) == (LegStatus.FILLED, Decimal(100))
    assert leg.avg_fill_price == Decimal("100.00")
    assert out.result.status is RunStatus.COMPLETED


def test_same_seed_same_fills_whatever_the_run_id() -> None:
    # `repeg run` derives its default run id (and so every client order id) from the wall clock: the seeded
    # partial fills must not depend on it, or "same seed, same fills" (README, --seed) would not hold.
    tape = make_tape(book(60, lambda t: ("100.00", "100.08") if t % 7 else ("99.96", "100.00")))
    first, second = (simulate(BUY, tape, partial_rate=0.5, run_id=run_id) for run_id in ("run-a", "run-b"))
    assert first.broker.executions == second.broker.executions
    assert len(first.broker.executions) >= 2


def test_the_ladder_reprices_from_the_current_quote_until_marketable() -> None:
    out = simulate(BUY, make_tape(book(120, steady)))
    limits = [e.limit_price for e in out.events.of(OrderIntent) if e.limit_price is not None]
    assert limits == [Decimal("100.00"), Decimal("100.04"), Decimal("100.06"), Decimal("100.08")]
    (leg,) = out.result.legs
    assert leg.status is LegStatus.FILLED
    assert leg.avg_fill_price == Decimal("100.08")
    assert leg.time_to_complete_s == 30.0
    assert out.result.status is RunStatus.COMPLETED


def test_deadline_escalation_goes_to_market_and_the_run_completes() -> None:
    config = classic_ladder(repeg_steps=(Decimal("0.25"), Decimal("0.5")), max_total_wait=25)
    out = simulate(BUY, make_tape(book(120, steady)), config=config)
    (escalated,) = out.events.of(LegEscalated)
    assert escalated.reason == "deadline"
    assert escalated.ts == at(25)
    market = [e for e in out.events.of(OrderIntent) if e.order_type is OrderType.MARKET]
    assert [m.ts for m in market] == [at(25)]
    assert out.result.legs[0].avg_fill_price == Decimal("100.08")


def test_escalation_waits_for_the_cancel_confirmation_and_sends_only_the_remainder() -> None:
    # The bid never moves and the ask stays far: the passive order rests; a partial fill model splits fills.
    config = classic_ladder(repeg_steps=(Decimal("0.25"),), fill_wait_seconds=10)
    tape = make_tape(book(120, lambda t: ("100.00", "100.40") if t != 3 else ("99.90", "100.00")))
    out = simulate(
        BUY, tape, config=config, latency=LatencyModel(cancel=timedelta(seconds=2)), partial_rate=1.0
    )
    events = out.events.events
    (escalated,) = out.events.of(LegEscalated)
    market = [e for e in out.events.of(OrderIntent) if e.order_type is OrderType.MARKET]
    assert len(market) == 1
    filled_before = escalated.remaining_qty
    assert Decimal(0) < filled_before < Decimal(100)  # a partial fill at 3 s left a remainder
    assert market[0].qty == filled_before
    assert market[0].ts == escalated.ts + timedelta(seconds=2)
    cancel_confirmed = next(
        i
        for i, e in enumerate(events)
        if i > events.index(escalated)
        and isinstance(e, OrderUpdated)
        and e.update.event is OrderEvent.CANCELED
    )
    assert events.index(market[0]) > cancel_confirmed
    assert out.result.legs[0].filled_qty == Decimal(100)


def test_a_fill_racing_the_escalation_cancel_sends_nothing_more() -> None:
    config = classic_ladder(repeg_steps=(Decimal("0.25"),), fill_wait_seconds=10)
    # At 20 s the leg escalates (cancel takes 2 s); at 21 s the ask comes down through the resting limit.
    tape = make_tape(book(120, lambda t: ("99.90", "100.00") if t == 21 else ("100.00", "100.40")))
    out = simulate(BUY, tape, config=config, latency=LatencyModel(cancel=timedelta(seconds=2)))
    (escalated,) = out.events.of(LegEscalated)
    assert escalated.ts == at(20)
    assert not [e for e in out.events.of(OrderIntent) if e.order_type is OrderType.MARKET]
    (leg,) = out.result.legs
    assert leg.status is LegStatus.FILLED
    assert leg.filled_qty == Decimal(100)
    assert leg.avg_fill_price == Decimal("100.00")


def test_buys_are_scaled_to_the_cash_the_sells_raised() -> None:
    tape = make_tape(
        {**book(200, lambda t: ("50.00", "50.02"), "AAA"), **book(200, lambda t: ("20.00", "20.02"), "BBB")}
    )
    specs = [
        LegSpec(index=0, symbol="AAA", side=Side.SELL, qty=Decimal(100)),
        LegSpec(index=1, symbol="BBB", side=Side.BUY, qty=Decimal(400), whole_shares=True),
    ]
    out = simulate(specs, tape, account=SimAccount(cash=Decimal(1000), positions={"AAA": Decimal(100)}))
    buy_phase = next(e for e in out.events.of(PhaseStarted) if e.side is Side.BUY)
    assert buy_phase.scale < 1
    assert buy_phase.buying_power is not None
    assert buy_phase.buying_power > Decimal(1000)  # the sell's proceeds are in
    buy = out.result.legs[1]
    assert buy.requested_qty is not None
    assert buy.requested_qty < Decimal(400)
    assert buy.requested_qty == buy.requested_qty.to_integral_value()
    assert buy.status is LegStatus.FILLED
    assert buy.filled_notional <= buy_phase.buying_power
    assert build_result(fold_run(out.events.events)) == out.result
    assert out.result.buy_scale == buy_phase.scale
    shown = Console(record=True, width=200)
    shown.print(quality_table(out.result))
    assert f"{buy_phase.scale * 100:.2f}%" in shown.export_text()


def _moved_during_the_wait() -> QuoteTape:
    """AAA valid at 0 s (ask 10.02), then from 2 s quoted 10.00/20.00 (spread too wide) until 35 s, when it is valid
    again at 15.00; BBB's first quote comes at 35 s, so the buy phase waits its whole quote_wait (30 s) for it."""
    later = [(t, "14.98", "15.00") for t in range(35, 200)]
    return make_tape(
        {
            "AAA": [(0, "10.00", "10.02"), (2, "10.00", "20.00"), *later],
            "BBB": [(t, "20.00", "20.04") for t in range(35, 200)],
        }
    )


def _aaa_after_the_move(aaa: LegSpec) -> LegResult:
    """The result of buy `aaa` with one BBB on `_moved_during_the_wait`, with $700 of buying power."""
    specs = [aaa, LegSpec(index=1, symbol="BBB", side=Side.BUY, qty=Decimal(1))]
    out = simulate(specs, _moved_during_the_wait(), account=SimAccount(cash=Decimal(700)))
    return out.result.legs[0]


def test_a_notional_buy_is_not_sized_from_an_ask_a_newer_invalid_quote_replaced() -> None:
    # Sized at 30 s from AAA's ask of 0 s (10.02, 28 s old, superseded by a quote asking 20.00): $600 bought 59.88
    # shares, about $898 at AAA's next valid ask, over the $700 of buying power: the broker refused the order.
    leg = _aaa_after_the_move(LegSpec(index=0, symbol="AAA", side=Side.BUY, notional=Decimal(600)))
    assert (leg.status, leg.reason) == (LegStatus.SKIPPED, "no valid quote to size the notional")


def test_a_quantity_buy_is_not_costed_from_an_ask_a_newer_invalid_quote_replaced() -> None:
    # 60 AAA costed at 10.02 fit the $700 unscaled (scale 1); at AAA's next valid ask they cost $900: refused.
    leg = _aaa_after_the_move(LegSpec(index=0, symbol="AAA", side=Side.BUY, qty=Decimal(60)))
    assert leg.status is LegStatus.SKIPPED
    assert leg.reason == "no valid quote to bound its cost by the buying power"


# --- acceptance 3: the 200-order basket over a replayed day ----------------------------------------------------

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "quotes"
DAY = SHARED / "xxx_20180102_nyse_bbo.csv.gz"


@pytest.mark.shared_data
def test_a_200_order_basket_over_a_real_day_completes_at_prices_the_quotes_allow() -> None:
    if not DAY.exists():
        pytest.skip(f"shared quote data not found at {DAY}")
    tape = load_quotes(DAY)
    symbol = tape.symbols[0]
    start = tape.start + timedelta(minutes=1)
    spacing = (tape.end - start - timedelta(minutes=5)) / 200
    orders = [
        ParentOrder(
            arrival=start + i * spacing,
            symbol=symbol,
            side=Side.BUY if i % 2 == 0 else Side.SELL,
            qty=Decimal(100),
        )
        for i in range(200)
    ]

    async def main() -> tuple[ExecutionResult, SimulatedBroker]:
        clock = VirtualClock(tape.start)
        account = SimAccount(cash=Decimal(10_000_000), positions={symbol: Decimal(100_000)})
        broker, feed = build_simulation(tape, clock, account, seed=11)
        result = await run_basket(orders, broker, feed, clock, CONFIG, run_id="day")
        return result, broker

    result, broker = run_virtual(main)
    assert result.status is RunStatus.COMPLETED
    assert all(leg.filled_qty == Decimal(100) for leg in result.legs)
    assert broker.executions
    for fill in broker.executions:
        quote = tape.quote_at(symbol, fill.ts)
        assert quote is not None
        assert quote.bid <= fill.price <= quote.ask
    for leg in result.legs:
        assert leg.avg_fill_price is not None


def test_a_replace_that_loses_the_race_to_a_partial_fill_keeps_the_original_working() -> None:
    # The re-peg at 10 s is a replace taking 2 s; at 11 s the old limit becomes marketable and fills in part,
    # so the simulator rejects the replacement: the original order keeps working and nothing is added on top.
    tape = make_tape(book(120, lambda t: ("99.96", "100.00") if t == 11 else ("100.00", "100.08")))
    out = simulate(BUY, tape, latency=LatencyModel(replace=timedelta(seconds=2)), partial_rate=1.0)
    rejected = [e for e in out.events.of(OrderUpdated) if e.update.event is OrderEvent.REJECTED]
    assert len(rejected) == 1
    (leg,) = out.result.legs
    assert leg.status is LegStatus.FILLED
    assert leg.filled_qty == Decimal(100)
    executed = sum((fill.qty for fill in out.broker.executions), Decimal(0))
    assert executed == Decimal(100)
    assert not asyncio.run(out.broker.list_open_orders())  # the original was cancelled, not left behind
    # The refused step 1 is tried again for the remainder once the surviving original's cancel is confirmed
    # (nothing is sent on top of it), at 12 s: not skipped for step 2 at 20 s.
    first_resubmit = [e for e in out.events.of(OrderIntent) if e.action is IntentAction.SUBMIT][1]
    assert (first_resubmit.ts, first_resubmit.step, first_resubmit.qty) == (at(12), 1, Decimal(80))
    cancelled = [e for e in out.events.of(OrderUpdated) if e.update.event is OrderEvent.CANCELED]
    assert out.events.events.index(cancelled[0]) < out.events.events.index(first_resubmit)


def test_escalation_waits_until_a_pending_replace_is_resolved_and_never_over_fills() -> None:
    # The re-peg at 10 s is a replace taking 2 s; at 11 s the old limit fills in part while the replace is
    # pending, and the deadline (11 s) escalates. Cancelling the not-yet-live replacement must not send the
    # remainder while the original, still pending the replace, can fill: that over-filled the leg.
    tape = make_tape(book(120, lambda t: ("99.96", "100.00") if t in (11, 12) else ("100.00", "100.08")))
    config = classic_ladder(max_total_wait=11)
    out = simulate(
        BUY, tape, config=config, latency=LatencyModel(replace=timedelta(seconds=2)), partial_rate=1.0
    )
    (leg,) = out.result.legs
    assert leg.status is LegStatus.FILLED
    assert leg.escalated
    executed = sum((fill.qty for fill in out.broker.executions), Decimal(0))
    assert executed == leg.filled_qty == Decimal(100)
    market = [e for e in out.events.of(OrderIntent) if e.order_type is OrderType.MARKET]
    assert market
    assert market[0].ts >= at(12)  # only once the replace was resolved at the broker


def test_an_order_the_exchange_has_not_acknowledged_is_not_re_pegged_and_leaves_no_error() -> None:
    """Alpaca refuses to replace an order still `pending_new` (or `accepted`); with a 2 s acknowledgement and the
    default 1 s fill wait, the re-peg must wait for the acknowledgement instead of being refused (which left a
    filled leg carrying an `OrderNotCancelableError ... pending_new` error)."""
    out = simulate(
        BUY,
        make_tape(book(120, steady)),
        config=ExecutionConfig(),
        latency=LatencyModel(submit_ack=timedelta(seconds=2)),
    )
    assert not [e for e in out.events.of(OrderFailed) if e.action is IntentAction.REPLACE]
    (leg,) = out.result.legs
    assert leg.status is LegStatus.FILLED
    assert leg.error is None


def test_the_runs_end_waits_for_a_cancel_the_simulator_confirms_after_the_phase() -> None:
    """The escalation's cancel (20 s) takes 16 s: at the hard stop (30 s) the leg waits the grace window (to 35 s)
    for it, ends incomplete, and the run's end reads the order `pending_cancel`. The run ended there, naming the
    order still open at the broker, though the simulator cancels it at 36 s; it now waits (within a grace window)
    for that confirmation."""
    config = classic_ladder(repeg_steps=(Decimal("0.25"),), fill_wait_seconds=10, max_total_wait=20)
    tape = make_tape(book(60, lambda t: ("100.00", "100.40")))
    out = simulate(BUY, tape, config=config, latency=LatencyModel(cancel=timedelta(seconds=16)))
    (leg,) = out.result.legs
    last = leg.order_ids[-1]
    updates = [e.update for e in out.events.of(OrderUpdated) if e.update.order.order_id == last]
    assert (updates[-1].event, updates[-1].ts) == (OrderEvent.CANCELED, at(36))
    assert leg.status is LegStatus.INCOMPLETE
    assert leg.error is None
