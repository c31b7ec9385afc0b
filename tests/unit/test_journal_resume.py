"""Resume and graceful stop, in process on virtual time: the simulator object outlives a "crash" of the engine.

A crash is a `BaseException` raised by the sink in front of the journal, so the engine stops dead at that event
(nothing after it is journaled, nothing is cleaned up), exactly where a SIGKILL would have left the journal. The
same simulated broker then serves `resume_run`, which must finish every leg without duplicating anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import journal_support
import pytest
from tests.unit.fake_broker import T0, FakeBroker, FakeFeed

from repeg.api import execute_async
from repeg.brokers.simulator import PaperFillModel, SimAccount, SimulatedBroker, build_simulation
from repeg.brokers.simulator.latency import LatencyModel
from repeg.cli.journal_run import journaled_session
from repeg.config import ExecutionConfig, classic_ladder
from repeg.domain.events import (
    EventSink,
    IntentAction,
    LegEscalated,
    LegPlanned,
    OrderAccepted,
    OrderIntent,
    OrderUpdated,
    PhaseEnded,
    PhaseStarted,
    RunEnded,
    RunEvent,
)
from repeg.domain.ids import client_order_id
from repeg.domain.leg import REASON_REPEG
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import BrokerOrder, OrderRequest, OrderStatus, OrderType, Side
from repeg.domain.plan import LegSpec, Plan, PlanKind, TradeIntent
from repeg.domain.run import fold_run
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.engine.runner import run_execution
from repeg.errors import BrokerUnavailableError, ConfigError, JournalError
from repeg.journal.faults import point_of
from repeg.journal.resume import NEVER_REACHED_BROKER, resume_run
from repeg.journal.shutdown import StopReport, stop_run
from repeg.journal.sqlite import SqliteJournal
from repeg.market.replay import TapeFeed
from repeg.market.synthetic import SyntheticSymbol, synthetic_tape
from repeg.market.tape import QuoteTape
from repeg.report.result import ExecutionResult, RunStatus, build_result

TAPE: QuoteTape = synthetic_tape(
    [
        SyntheticSymbol(symbol="AAA", start_price=Decimal("20.00"), mean_spread_ticks=6, daily_vol=0.002),
        SyntheticSymbol(symbol="BBB", start_price=Decimal("50.00"), mean_spread_ticks=6, daily_vol=0.002),
    ],
    seed=5,
    n_quotes=20_000,
    duration=timedelta(hours=1),
)
ACCOUNT = SimAccount(cash=Decimal(100_000), positions={"AAA": Decimal(300)})
SPECS = [
    LegSpec(index=0, symbol="AAA", side=Side.SELL, qty=Decimal(100)),
    LegSpec(index=1, symbol="BBB", side=Side.BUY, qty=Decimal(40)),
]
TARGETS = {"AAA": Decimal(200), "BBB": Decimal(40)}
CONFIG = ExecutionConfig(
    fill_wait_seconds=2,
    wait_between_checks=0.5,
    max_total_wait=60,
    grace_window=1,
    initial_offset=Decimal(0),
    repeg_steps=(Decimal("0.25"), Decimal("0.5")),
)

LADDER = classic_ladder()


class Crash(BaseException):
    """Stands for SIGKILL: not an `Exception`, so the engine's error handling never sees it."""


class CrashAt:
    """Passes events to the journal until the n-th event of `point`, where it "dies" (before or after)."""

    def __init__(self, journal: EventSink, point: str, nth: int, *, before: bool) -> None:
        self._journal, self._point, self._nth, self._before = journal, point, nth, before
        self._seen = 0

    async def emit(self, event: RunEvent) -> None:
        hit = point_of(event) == self._point
        self._seen += hit
        armed = hit and self._seen == self._nth
        if armed and self._before:
            raise Crash
        await self._journal.emit(event)
        if armed:
            raise Crash


async def _crash_then_resume(path: Path, point: str, nth: int, before: bool) -> tuple[SimulatedBroker, bool]:
    clock = VirtualClock(TAPE.start + timedelta(seconds=5))
    broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3)
    journal = SqliteJournal(path, durability="full")
    crashed = False
    try:
        await run_execution(
            SPECS,
            (),
            broker,
            feed,
            clock,
            CONFIG,
            run_id="r1",
            sinks=(CrashAt(journal, point, nth, before=before),),
        )
    except Crash:
        crashed = True
    await journal.flush()
    await resume_run("r1", journal, broker, feed, clock, config=CONFIG)
    journal.close()
    return broker, crashed


CRASH_POINTS = [
    ("submit-intent", 1, False),
    ("submit-intent", 2, True),
    ("submit-intent", 2, False),
    ("submit-ack", 1, True),
    ("submit-ack", 2, True),
    ("replace-intent", 1, False),
    ("replace-ack", 1, True),
    ("cancel-intent", 1, False),
    ("cancel-confirm", 1, True),
    ("fill", 1, True),
    ("fill", 1, False),
]


@pytest.mark.parametrize(("point", "nth", "before"), CRASH_POINTS)
def test_resume_after_a_crash_finishes_every_leg_exactly_once(
    tmp_path: Path, point: str, nth: int, before: bool
) -> None:
    path = tmp_path / "j.db"
    broker, crashed = run_virtual(lambda: _crash_then_resume(path, point, nth, before))
    journal = SqliteJournal(path, create=False)
    state = fold_run(journal.events("r1"))
    journal.close()

    async def broker_view() -> tuple[dict[str, Decimal], dict[int, Decimal], Counter[str]]:
        positions = {p.symbol: p.qty for p in await broker.get_positions()}
        filled: dict[int, Decimal] = {}
        cids: Counter[str] = Counter()
        for leg in state.legs:
            for attempt in range(len(leg.orders) + 2):
                order = await broker.get_order_by_client_id(client_order_id("r1", leg.index, attempt))
                if order is not None:
                    cids[order.client_order_id] += 1
                    filled[leg.index] = filled.get(leg.index, Decimal(0)) + order.filled_qty
        return positions, filled, cids

    positions, filled, cids = run_virtual(broker_view)
    assert crashed
    assert state.status == "completed"
    assert positions == TARGETS
    for leg in state.legs:
        assert leg.qty is not None
        assert leg.filled_qty == leg.qty == filled[leg.index]
    assert set(cids.values()) == {1}


def _journal_with(path: Path, events: list[RunEvent]) -> SqliteJournal:
    journal = SqliteJournal(path, durability="full")

    async def write() -> None:
        for event in events:
            await journal.emit(event)

    run_virtual(write)
    return journal


def test_resume_of_a_finished_run_returns_its_result_without_touching_the_broker(tmp_path: Path) -> None:
    path = tmp_path / "j.db"

    async def main() -> None:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3)
        journal = SqliteJournal(path, durability="full")
        first = await run_execution(SPECS, (), broker, feed, clock, CONFIG, run_id="r1", sinks=(journal,))
        count = len(journal.events("r1"))
        again = await resume_run("r1", journal, broker, feed, clock, config=CONFIG)
        assert again == first
        assert len(journal.events("r1")) == count
        journal.close()

    run_virtual(main)


def test_resume_of_a_run_that_sent_nothing_asks_for_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "j.db"

    async def main() -> None:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3)
        journal = SqliteJournal(path, durability="full")
        with contextlib.suppress(Crash):
            await run_execution(
                SPECS,
                (),
                broker,
                feed,
                clock,
                CONFIG,
                run_id="r1",
                sinks=(CrashAt(journal, "submit-intent", 1, before=True),),
            )
        with pytest.raises(JournalError, match="sent no order yet"):
            await resume_run("r1", journal, broker, feed, clock, config=CONFIG)
        journal.close()

    run_virtual(main)


def test_an_announced_submit_the_broker_never_saw_is_sent_again_under_its_own_id(tmp_path: Path) -> None:
    """The process died between journaling a submit and sending it. Resume cannot tell that from a request still
    on its way (a fast restart), so it does not give the id up for a new one (two live orders if the first
    landed): the same request goes again under the same client order id, which the broker executes once."""
    path = tmp_path / "j.db"

    async def main() -> tuple[list[RunEvent], list[str]]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3)
        journal = SqliteJournal(path, durability="full")
        with contextlib.suppress(Crash):
            await run_execution(
                SPECS,
                (),
                broker,
                feed,
                clock,
                CONFIG,
                run_id="r1",
                sinks=(CrashAt(journal, "submit-intent", 1, before=False),),
            )
        announced = [e.client_order_id for e in journal.events("r1") if isinstance(e, OrderIntent)]
        await resume_run("r1", journal, broker, feed, clock, config=CONFIG)
        events = journal.events("r1")
        journal.close()
        return events, announced

    events, announced = run_virtual(main)
    assert not [e for e in events if e.kind == "order_failed" and e.error == NEVER_REACHED_BROKER]  # type: ignore[union-attr]
    accepted = [e.order.client_order_id for e in events if isinstance(e, OrderAccepted)]
    assert announced[-1] in accepted  # the announced id itself reached the broker, once
    intents = [e for e in events if isinstance(e, OrderIntent) and e.action is IntentAction.SUBMIT]
    assert len({e.client_order_id for e in intents}) == len(intents)


def test_graceful_stop_cancels_the_runs_working_orders_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    patient = CONFIG.model_copy(update={"fill_wait_seconds": 50.0, "max_total_wait": 100.0})

    async def main() -> tuple[object, bool, bool]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3)
        foreign = await broker.submit_order(
            OrderRequest(
                client_order_id="someone-else-1",
                symbol="AAA",
                side=Side.BUY,
                qty=Decimal(1),
                order_type=OrderType.LIMIT,
                limit_price=Decimal("1.00"),
            )
        )
        journal = SqliteJournal(path, durability="full")
        with contextlib.suppress(Crash):
            await run_execution(
                SPECS,
                (),
                broker,
                feed,
                clock,
                patient,
                run_id="r1",
                sinks=(CrashAt(journal, "submit-ack", 1, before=False),),
            )
        report = await stop_run("r1", journal, broker, clock, config=patient)
        ours = await broker.get_order_by_client_id(client_order_id("r1", 0, 0))
        theirs = await broker.get_order(foreign.order_id)
        journal.close()
        assert ours is not None
        return report, ours.status.is_terminal, theirs.status.is_open

    report, ours_closed, theirs_open = run_virtual(main)
    assert ours_closed
    assert theirs_open
    assert report.cancelled  # type: ignore[attr-defined]
    assert not report.unconfirmed  # type: ignore[attr-defined]
    assert "repeg resume r1" in report.summary()  # type: ignore[attr-defined]


class CrashAtSellPhaseEnd:
    """Dies as the sell phase ends, i.e. while the run waits for its sell orders to close before buying."""

    def __init__(self, journal: EventSink) -> None:
        self._journal = journal

    async def emit(self, event: RunEvent) -> None:
        if isinstance(event, PhaseEnded) and event.side is Side.SELL:
            raise Crash
        await self._journal.emit(event)


def test_resume_starts_the_buys_only_once_no_sell_order_is_open_at_the_broker(tmp_path: Path) -> None:
    # The sell's cancel takes 3 s at the broker, longer than the grace window: the sell phase ends with the sell
    # order still open (pending cancel). A fresh run waits for it to close before buying; so must a resume.
    slow_cancel = LatencyModel(cancel=timedelta(seconds=3))
    config = CONFIG.model_copy(update={"max_total_wait": 4.0, "grace_window": 0.5})

    async def main() -> list[RunEvent]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3, latency=slow_cancel)
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        with contextlib.suppress(Crash):
            await run_execution(
                SPECS, (), broker, feed, clock, config, run_id="r1", sinks=(CrashAtSellPhaseEnd(journal),)
            )
        await journal.flush()
        await resume_run("r1", journal, broker, feed, clock, config=config)
        events = journal.events("r1")
        journal.close()
        return events

    events = run_virtual(main)
    sell_closed = next(
        e.ts
        for e in events
        if isinstance(e, OrderUpdated) and e.leg_index == 0 and e.update.order.status.is_terminal
    )
    first_buy = next(e.ts for e in events if isinstance(e, OrderIntent) and e.leg_index == 1)
    assert first_buy >= sell_closed


class CrashAtFirstIntent:
    def __init__(self, journal: EventSink) -> None:
        self._journal = journal

    async def emit(self, event: RunEvent) -> None:
        if isinstance(event, OrderIntent):
            raise Crash
        await self._journal.emit(event)


def test_a_run_started_afresh_under_its_id_shows_exactly_the_result_it_returned(tmp_path: Path) -> None:
    # Killed before its first order, the run is started again under the same id: its journal then holds two
    # starts. The fold must describe the second one only (one skipped trade, not two; no phase left open).
    plan = Plan(
        source="plan.csv",
        kind=PlanKind.TRADES,
        trades=(
            TradeIntent(symbol="AAA", side=Side.SELL, qty=Decimal(100)),
            TradeIntent(symbol="BBB", side=Side.BUY, notional=Decimal("0.50")),  # below min_notional: skipped
        ),
    )

    async def main() -> tuple[ExecutionResult, list[RunEvent]]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3)
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        with contextlib.suppress(Crash):
            await execute_async(
                plan, broker, feed, clock, CONFIG, run_id="r1", sinks=(CrashAtFirstIntent(journal),)
            )
        await journal.flush()
        result = await journaled_session(
            plan, CONFIG, "r1", journal=journal, broker=broker, feed=feed, clock=clock
        )
        events = journal.events("r1")
        journal.close()
        return result, events

    result, events = run_virtual(main)
    assert [e.kind for e in events].count("run_started") == 2
    assert len(result.skipped) == 1
    assert build_result(fold_run(events)) == result


class NetworkSimulator(SimulatedBroker):
    """The simulator as a network broker that pushes updates: a lookup suspends its caller, as a request does."""

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        await asyncio.sleep(0)
        return await super().get_order_by_client_id(client_order_id)


def test_a_cancel_completed_by_resume_is_confirmed_to_the_leg_before_its_phase_continues(
    tmp_path: Path,
) -> None:
    # Killed between a cancel's intent and the broker call: resume makes the call, and the confirmation is
    # pushed while it still reconciles the other leg. The leg must see it and send its remainder, not sit in
    # `canceling` until the phase's hard stop and end incomplete.
    account = SimAccount(cash=Decimal(100_000), positions={"AAA": Decimal(300), "BBB": Decimal(100)})
    sells = [
        LegSpec(index=0, symbol="AAA", side=Side.SELL, qty=Decimal(100)),
        LegSpec(index=1, symbol="BBB", side=Side.SELL, qty=Decimal(40)),
    ]

    async def main() -> list[RunEvent]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = NetworkSimulator(TAPE, clock, account, fill_model=PaperFillModel(TAPE, seed=3))
        feed = TapeFeed(TAPE, clock)
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        crash = CrashAt(journal, "cancel-intent", 1, before=False)
        with contextlib.suppress(Crash):
            await run_execution(sells, (), broker, feed, clock, CONFIG, run_id="r1", sinks=(crash,))
        await journal.flush()
        assert fold_run(journal.events("r1")).leg(0).status is LegStatus.CANCELING
        await resume_run("r1", journal, broker, feed, clock, config=CONFIG)
        events = journal.events("r1")
        journal.close()
        return events

    state = fold_run(run_virtual(main))
    assert [(leg.status, leg.filled_qty) for leg in state.legs] == [
        (LegStatus.FILLED, Decimal(100)),
        (LegStatus.FILLED, Decimal(40)),
    ]


class CrashWhileSizingBuys:
    """Dies after the buy phase's start is journaled, before the scaled quantities that follow it are."""

    def __init__(self, journal: EventSink) -> None:
        self._journal = journal
        self._buying = False

    async def emit(self, event: RunEvent) -> None:
        if isinstance(event, PhaseStarted) and event.side is Side.BUY:
            self._buying = True
        elif self._buying and isinstance(event, LegPlanned):
            raise Crash
        await self._journal.emit(event)


def test_buys_whose_scaled_sizes_were_lost_are_sized_again_on_resume(tmp_path: Path) -> None:
    # The sale leaves buying power for about half the buy: the buy phase scales it to 39 shares, but the run
    # dies before that resizing is journaled. Nothing was sent for the buys, so resume must size them again,
    # not send the unscaled 80 (refused here for buying power; bought on margin elsewhere).
    account = SimAccount(cash=Decimal(0), positions={"AAA": Decimal(300)})
    specs = [
        LegSpec(index=0, symbol="AAA", side=Side.SELL, qty=Decimal(100)),
        LegSpec(index=1, symbol="BBB", side=Side.BUY, qty=Decimal(80)),
    ]

    async def main() -> list[RunEvent]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, account, seed=3)
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        with contextlib.suppress(Crash):
            await run_execution(
                specs, (), broker, feed, clock, CONFIG, run_id="r1", sinks=(CrashWhileSizingBuys(journal),)
            )
        await journal.flush()
        await resume_run("r1", journal, broker, feed, clock, config=CONFIG)
        events = journal.events("r1")
        journal.close()
        return events

    buy = fold_run(run_virtual(main)).leg(1)
    assert buy.qty is not None
    assert buy.qty < Decimal(40)
    assert (buy.status, buy.filled_qty) == (LegStatus.FILLED, buy.qty)


def test_a_run_is_never_resumed_on_another_broker_than_it_started_on(tmp_path: Path) -> None:
    # Started on Alpaca paper, resumed by mistake on another broker (here the simulator; alpaca-live is the
    # costly case): none of its orders exists there, so resume would send every leg afresh on the wrong account.
    started = journal_support.run_started().model_copy(update={"broker": "alpaca-paper"})
    events: list[RunEvent] = [started, journal_support.leg_planned(), journal_support.intent()]
    journal = _journal_with(tmp_path / "j.db", events)

    async def main() -> None:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3)
        plan = journal_support.plan()
        with pytest.raises(ConfigError, match="r1 was started on alpaca-paper, not simulator"):
            await journaled_session(
                plan, CONFIG, "r1", journal=journal, broker=broker, feed=feed, clock=clock
            )

    run_virtual(main)
    assert journal.events("r1") == events
    journal.close()


def test_a_dry_run_id_reused_for_a_real_run_is_refused_without_advising_to_resume_it(tmp_path: Path) -> None:
    # A dry run journals its broker as "alpaca-paper (dry run)" and sent nothing: a real run under its id is
    # refused, but the advice must not be to "resume it on alpaca-paper (dry run)" (a dry run never resumes).
    started = journal_support.run_started().model_copy(update={"broker": "alpaca-paper (dry run)"})
    events: list[RunEvent] = [started, journal_support.leg_planned(), journal_support.intent()]
    journal = _journal_with(tmp_path / "j.db", events)

    async def main() -> None:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3)
        plan = journal_support.plan()
        with pytest.raises(ConfigError) as refused:
            await journaled_session(
                plan, CONFIG, "r1", journal=journal, broker=broker, feed=feed, clock=clock
            )
        assert "resume it" not in str(refused.value)
        assert "r1 was a dry run on alpaca-paper" in str(refused.value)
        assert "use a new --run-id" in str(refused.value)

    run_virtual(main)
    assert journal.events("r1") == events
    journal.close()


def test_a_run_restarted_on_another_broker_before_any_order_resumes_on_the_broker_it_restarted_on(
    tmp_path: Path,
) -> None:
    # A dry run that announced no order, then a real run under its id started afresh (a second RunStarted, as
    # journaled_session does) and sent orders: the run's broker is the one it restarted on (the fold's view).
    # Judging by the first start refused to resume a run whose orders are open at the broker.
    dry = journal_support.run_started().model_copy(update={"broker": "alpaca-paper (dry run)"})
    events: list[RunEvent] = [
        dry,
        journal_support.leg_planned(),
        journal_support.run_started(),  # broker "simulator"
        journal_support.leg_planned(),
        journal_support.intent(),
    ]
    journal = _journal_with(tmp_path / "j.db", events)

    async def main() -> ExecutionResult:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3)
        plan = journal_support.plan()
        return await journaled_session(
            plan, CONFIG, "r1", journal=journal, broker=broker, feed=feed, clock=clock
        )

    result = run_virtual(main)
    journal.close()
    assert result.run_id == "r1"


def test_graceful_stop_waits_for_a_sell_order_still_open_after_its_leg_ended(tmp_path: Path) -> None:
    # Stopped while the run waits for the sell's slow cancel (3 s) before buying: the sell leg has ended
    # (incomplete) but its order is still open at the broker. The stop must await it too, and report it as
    # unconfirmed if the grace window passes first, never claim the run stopped with nothing open.
    slow_cancel = LatencyModel(cancel=timedelta(seconds=3))
    config = CONFIG.model_copy(update={"max_total_wait": 4.0, "grace_window": 0.5})

    async def main() -> tuple[StopReport, bool]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3, latency=slow_cancel)
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        with contextlib.suppress(Crash):
            await run_execution(
                SPECS, (), broker, feed, clock, config, run_id="r1", sinks=(CrashAtSellPhaseEnd(journal),)
            )
        report = await stop_run("r1", journal, broker, clock, config=config)
        sell = await broker.get_order_by_client_id(client_order_id("r1", 0, 0))
        journal.close()
        assert sell is not None
        return report, sell.status.is_open

    report, sell_open = run_virtual(main)
    assert not sell_open or report.unconfirmed == ("sim-00000001",)


class CancelRefusingSimulator(SimulatedBroker):
    """The simulator while its cancel endpoint is down (`refuse_cancels`), as an outage would leave it."""

    refuse_cancels = True

    async def cancel_order(self, order_id: str) -> None:
        if self.refuse_cancels:
            raise BrokerUnavailableError("cancel endpoint unavailable")
        await super().cancel_order(order_id)


def test_graceful_stop_cancels_an_order_left_open_by_a_leg_that_already_ended(tmp_path: Path) -> None:
    # Every cancel failed during the sell phase, so the sell leg ended incomplete with its order still working
    # at the broker; the run is stopped while it waits for that order before buying. The stop must cancel it.
    config = CONFIG.model_copy(update={"max_total_wait": 4.0, "grace_window": 0.5})

    async def main() -> tuple[StopReport, bool]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = CancelRefusingSimulator(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        journal = await _crashed_run(tmp_path, broker, clock, config, CrashAtSellPhaseEnd)
        (sell,) = [order for order in await broker.list_open_orders() if order.side is Side.SELL]
        broker.refuse_cancels = False
        report = await stop_run("r1", journal, broker, clock, config=config)
        after = await broker.get_order(sell.order_id)
        journal.close()
        return report, after.status.is_open

    report, still_open = run_virtual(main)
    assert not still_open
    assert report.unconfirmed == ()


class CrashBetweenScaledBuys:
    """Dies after the first scaled buy quantity is journaled, before the second one is."""

    def __init__(self, journal: EventSink) -> None:
        self._journal = journal
        self._buying = False
        self._planned = 0

    async def emit(self, event: RunEvent) -> None:
        if isinstance(event, PhaseStarted) and event.side is Side.BUY:
            self._buying = True
        elif self._buying and isinstance(event, LegPlanned):
            self._planned += 1
            if self._planned == 2:
                raise Crash
        await self._journal.emit(event)


def test_partly_journaled_buy_sizes_are_sized_again_from_the_plan(tmp_path: Path) -> None:
    # The buy phase scales both buys by one factor; the run dies with only BBB's scaled size journaled. Resume
    # sizes the buys again: from the planned quantities, not from BBB's already scaled one, which would scale
    # BBB twice (and leave the buying power partly unused) while AAA is scaled once.
    account = SimAccount(cash=Decimal(0), positions={"AAA": Decimal(300)})
    specs = [
        LegSpec(index=0, symbol="AAA", side=Side.SELL, qty=Decimal(100)),
        LegSpec(index=1, symbol="BBB", side=Side.BUY, qty=Decimal(80)),
        LegSpec(index=2, symbol="AAA", side=Side.BUY, qty=Decimal(50)),
    ]

    async def main() -> list[RunEvent]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, account, seed=3)
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        with contextlib.suppress(Crash):
            await run_execution(
                specs, (), broker, feed, clock, CONFIG, run_id="r1", sinks=(CrashBetweenScaledBuys(journal),)
            )
        await journal.flush()
        await resume_run("r1", journal, broker, feed, clock, config=CONFIG)
        events = journal.events("r1")
        journal.close()
        return events

    events = run_virtual(main)
    first, scale = [e.scale for e in events if isinstance(e, PhaseStarted) and e.side is Side.BUY]
    assert abs(scale - first) < Decimal("0.01")  # the same need against the same buying power
    state = fold_run(events)
    assert (state.leg(1).qty, state.leg(2).qty) == (
        (Decimal(80) * scale).quantize(Decimal("1e-9"), rounding="ROUND_DOWN"),
        (Decimal(50) * scale).quantize(Decimal("1e-9"), rounding="ROUND_DOWN"),
    )


def test_a_leg_resumed_after_downtime_re_pegs_on_its_schedule_instead_of_escalating_at_once(
    tmp_path: Path,
) -> None:
    # The run dies once the sell's first re-peg is accepted and is resumed ten minutes later. Its schedule counted
    # from the first submission, so every step was overdue at the resume and the leg went straight to market.
    path = tmp_path / "j.db"

    async def main() -> None:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3)
        journal = SqliteJournal(path, durability="full")
        crash = CrashAt(journal, "replace-ack", 1, before=False)
        with contextlib.suppress(Crash):
            await run_execution(SPECS, (), broker, feed, clock, CONFIG, run_id="r1", sinks=(crash,))
        await journal.flush()
        await clock.sleep_until(clock.now() + timedelta(minutes=10))
        await resume_run("r1", journal, broker, feed, clock, config=CONFIG)
        journal.close()

    run_virtual(main)
    journal = SqliteJournal(path, create=False)
    events = list(journal.events("r1"))
    journal.close()
    sell_phases = [i for i, e in enumerate(events) if isinstance(e, PhaseStarted) and e.side is Side.SELL]
    assert len(sell_phases) == 2, "the sell phase did not restart on resume"
    resumed = events[sell_phases[1]]
    after = [
        e for e in events[sell_phases[1] :] if e.leg_index == 0 and isinstance(e, (OrderIntent, LegEscalated))
    ]
    assert after, "the resumed sell leg did nothing"
    first = after[0]
    assert isinstance(first, OrderIntent), f"the resumed leg escalated first: {first}"
    assert (first.action, first.reason) == (IntentAction.REPLACE, REASON_REPEG)
    assert first.ts >= resumed.ts + CONFIG.fill_wait


class SubmitInFlightSimulator(SimulatedBroker):
    """A network broker whose submit, once sent, is carried out whatever its caller does next, as an HTTP request
    on a worker thread is (`asyncio.to_thread`: cancelling the awaiting task does not stop the request); it
    reaches the broker `delay` after it was sent."""

    delay = 0.2

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        sent = asyncio.ensure_future(self._arrive(request))
        self.in_flight = [*getattr(self, "in_flight", []), sent]
        return await asyncio.shield(sent)

    async def _arrive(self, request: OrderRequest) -> BrokerOrder:
        await asyncio.sleep(self.delay)
        return await super().submit_order(request)


def test_graceful_stop_during_a_submit_still_in_flight_leaves_no_order_of_the_run_open(
    tmp_path: Path,
) -> None:
    # Ctrl-C while the first submit's request is on its way: the engine task is cancelled, but the request reaches
    # the broker a moment later. The stop must not take "no such order yet" for "never reached the broker" and
    # report nothing open while that order then works at the broker, unmanaged.
    patient = CONFIG.model_copy(update={"fill_wait_seconds": 50.0, "max_total_wait": 100.0})

    async def main() -> tuple[StopReport, list[BrokerOrder]]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = SubmitInFlightSimulator(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        run = asyncio.ensure_future(
            run_execution(
                SPECS, (), broker, TapeFeed(TAPE, clock), clock, patient, run_id="r1", sinks=(journal,)
            )
        )
        while not getattr(broker, "in_flight", []):
            await asyncio.sleep(0.01)
        run.cancel()  # what `run_stoppable` does on the first SIGINT
        with contextlib.suppress(asyncio.CancelledError):
            await run
        report = await stop_run("r1", journal, broker, clock, config=patient)
        await asyncio.sleep(1)  # long after the request landed
        still_open = await broker.list_open_orders()
        journal.close()
        return report, still_open

    report, still_open = run_virtual(main)
    assert still_open == []
    assert report.cancelled


def test_a_second_session_of_a_run_being_worked_is_refused_before_touching_the_broker(tmp_path: Path) -> None:
    # `repeg resume` (or `repeg run --run-id`) while the run's first process still works it: the second session
    # found the first one's submit in flight unknown to the broker, recorded it as never sent and sent the leg
    # again under the next attempt; both orders then worked at the broker, twice the leg's quantity.
    plan = Plan(
        source="plan.csv",
        kind=PlanKind.TRADES,
        trades=(TradeIntent(symbol="AAA", side=Side.SELL, qty=Decimal(100)),),
    )
    patient = CONFIG.model_copy(update={"fill_wait_seconds": 50.0, "max_total_wait": 100.0})

    async def main() -> tuple[ExecutionResult, list[BrokerOrder | None]]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = SubmitInFlightSimulator(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        first, second = (SqliteJournal(tmp_path / "j.db", durability="full") for _ in range(2))
        working = asyncio.ensure_future(
            journaled_session(
                plan, patient, "r1", journal=first, broker=broker, feed=TapeFeed(TAPE, clock), clock=clock
            )
        )
        while not getattr(broker, "in_flight", []):
            await asyncio.sleep(0.01)
        with pytest.raises(JournalError, match="r1 is being worked by another"):
            await journaled_session(
                plan, patient, "r1", journal=second, broker=broker, feed=TapeFeed(TAPE, clock), clock=clock
            )
        second.close()
        result = await working
        first.close()
        orders = [await broker.get_order_by_client_id(client_order_id("r1", 0, n)) for n in range(2)]
        return result, orders

    result, (sent, again) = run_virtual(main)
    assert sent is not None
    assert again is None or again.replaces == sent.order_id
    assert result.legs[0].filled_qty == Decimal(100)


async def _crashed_run(
    tmp_path: Path,
    broker: SimulatedBroker,
    clock: VirtualClock,
    config: ExecutionConfig,
    crash: Callable[[SqliteJournal], EventSink],
) -> SqliteJournal:
    """The journal (`tmp_path / "j.db"`) of run r1 on SPECS, crashed where the sink `crash(journal)` raises Crash."""
    journal = SqliteJournal(tmp_path / "j.db", durability="full")
    with contextlib.suppress(Crash):
        await run_execution(
            SPECS, (), broker, TapeFeed(TAPE, clock), clock, config, run_id="r1", sinks=(crash(journal),)
        )
    return journal


async def _crashed_after_its_first_submit_ack(
    tmp_path: Path, broker: SimulatedBroker, clock: VirtualClock, config: ExecutionConfig
) -> SqliteJournal:
    """The journal of run r1 crashed right after its first submit was answered: that order is working."""
    return await _crashed_run(
        tmp_path, broker, clock, config, lambda journal: CrashAt(journal, "submit-ack", 1, before=False)
    )


#: Slow enough that run r1's first order is still working when the stop comes; a short grace window.
PATIENT = CONFIG.model_copy(update={"fill_wait_seconds": 50.0, "max_total_wait": 100.0, "grace_window": 0.5})


def _stopped_after_a_refused_cancel(tmp_path: Path) -> StopReport:
    """The report of a graceful stop of run r1, crashed right after its first submit ack, on a broker that
    refuses the cancel."""

    async def main() -> StopReport:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = CancelRefusingSimulator(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        journal = await _crashed_after_its_first_submit_ack(tmp_path, broker, clock, PATIENT)
        report = await stop_run("r1", journal, broker, clock, config=PATIENT)
        journal.close()
        return report

    return run_virtual(main)


def test_graceful_stop_does_not_report_as_cancelled_an_order_whose_cancel_the_broker_refused(
    tmp_path: Path,
) -> None:
    # The summary printed "cancelled orders: <id>" for every working order it asked to cancel, the ones the broker
    # refused included (it printed the same id as "cancel NOT confirmed" on the next line).
    report = _stopped_after_a_refused_cancel(tmp_path)
    assert report.unconfirmed == ("sim-00000001",)
    assert report.cancelled == ()


class ReadFailingSimulator(SimulatedBroker):
    """The simulator while its read endpoints are down (`refuse_reads`: a persistent 5xx or 429 after the
    adapter's retries) and its cancel endpoint still works."""

    refuse_reads = False

    async def get_order(self, order_id: str) -> BrokerOrder:
        if self.refuse_reads:
            raise BrokerUnavailableError("read endpoint unavailable")
        return await super().get_order(order_id)

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        if self.refuse_reads:
            raise BrokerUnavailableError("read endpoint unavailable")
        return await super().get_order_by_client_id(client_order_id)


def test_graceful_stop_still_cancels_the_runs_working_order_when_the_broker_cannot_be_read(
    tmp_path: Path,
) -> None:
    # The stop's first reconcile read failed (after the adapter's retries) and the stop ended there, re-raising
    # the error before cancelling anything: the run's order stayed working at the broker, unmanaged.
    async def main() -> tuple[StopReport, bool]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = ReadFailingSimulator(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        journal = await _crashed_after_its_first_submit_ack(tmp_path, broker, clock, PATIENT)
        broker.refuse_reads = True
        report = await stop_run("r1", journal, broker, clock, config=PATIENT)
        broker.refuse_reads = False
        ours = await broker.get_order_by_client_id(client_order_id("r1", 0, 0))
        journal.close()
        assert ours is not None
        return report, ours.status.is_open

    report, still_open = run_virtual(main)
    assert not still_open
    assert report.cancelled == ("sim-00000001",)
    assert report.unconfirmed == ("sim-00000001",)  # the broker could not confirm it: said so


def test_graceful_stop_names_the_orders_whose_cancel_failed(tmp_path: Path) -> None:
    # A cancel the broker failed was only folded into "cancel NOT confirmed yet", as if it had been sent: the user
    # could not tell an order still closing from one the stop never managed to cancel.
    report = _stopped_after_a_refused_cancel(tmp_path)
    assert report.cancel_failed == ("sim-00000001",)
    assert "cancel FAILED for: sim-00000001" in report.summary()


def test_graceful_stop_names_a_submit_still_unknown_to_the_broker_when_its_grace_window_ends(
    tmp_path: Path,
) -> None:
    # The submit in flight reaches the broker only after the stop's grace window: the stop cancelled nothing and its
    # summary said nothing was open, while the order then worked at the broker until the run was resumed.
    async def main() -> tuple[StopReport, list[BrokerOrder]]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = SubmitInFlightSimulator(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        broker.delay = 2.0
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        run = asyncio.ensure_future(
            run_execution(
                SPECS, (), broker, TapeFeed(TAPE, clock), clock, PATIENT, run_id="r1", sinks=(journal,)
            )
        )
        while not getattr(broker, "in_flight", []):
            await asyncio.sleep(0.01)
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        report = await stop_run("r1", journal, broker, clock, config=PATIENT)
        await asyncio.sleep(3)
        still_open = await broker.list_open_orders()
        journal.close()
        return report, still_open

    report, still_open = run_virtual(main)
    assert [order.client_order_id for order in still_open] == [client_order_id("r1", 0, 0)]
    assert report.unanswered == (client_order_id("r1", 0, 0),)
    assert f"may be working, not cancelled): {client_order_id('r1', 0, 0)}" in report.summary()


class CancelSwallowingSimulator(CancelRefusingSimulator):
    """Accepts `swallow` cancels and does nothing with them: the broker accepted each, then refused it, and the
    order stays open in its status (as Alpaca's `order_cancel_rejected` after an HTTP 204)."""

    swallow = 0

    async def cancel_order(self, order_id: str) -> None:
        if self.swallow:
            self.swallow -= 1
            return
        await super().cancel_order(order_id)


def test_graceful_stop_requests_again_the_cancel_of_an_ended_legs_order_refused_after_it_was_accepted(
    tmp_path: Path,
) -> None:
    # The sell leg ended with its order still working (its cancels failed); the stop's cancel of it was accepted,
    # then refused. The stop only re-read the order to the end of its grace window: left working, unmanaged.
    config = CONFIG.model_copy(update={"max_total_wait": 4.0, "grace_window": 2.0})

    async def main() -> bool:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = CancelSwallowingSimulator(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        journal = await _crashed_run(tmp_path, broker, clock, config, CrashAtSellPhaseEnd)
        (sell,) = [order for order in await broker.list_open_orders() if order.side is Side.SELL]
        broker.refuse_cancels, broker.swallow = False, 1
        await stop_run("r1", journal, broker, clock, config=config)
        after = await broker.get_order(sell.order_id)
        journal.close()
        return after.status.is_open

    assert not run_virtual(main)


# --- an ended run that left an order open at the broker ---------------------------------------------------------

SELL_THEN_BUY = [
    LegSpec(index=0, symbol="XYZ", side=Side.SELL, qty=Decimal(100)),
    LegSpec(index=1, symbol="ABC", side=Side.BUY, qty=Decimal(300)),
]


async def _ended_with_an_order_left_open(
    journal: SqliteJournal, specs: list[LegSpec] = SELL_THEN_BUY
) -> tuple[VirtualClock, FakeFeed, FakeBroker]:
    """The sell fills in full (40 while its replace is pending, 60 on the uncapped replacement o2), but every
    cancel of o2, still open for 40 more, is refused: the buy is skipped and the run ends `partial` with o2 open."""
    clock = VirtualClock(T0)
    feed = FakeFeed(clock)
    broker = FakeBroker(clock, feed, auto_fill=False)
    feed.set("XYZ", "100.00", "100.08")
    feed.set("ABC", "9.99", "10.00")
    clock.call_at(T0 + timedelta(seconds=9), lambda: broker.fill_before_replace.update({"o1": Decimal(40)}))
    broker.fill_open_at(T0 + timedelta(seconds=12), "XYZ", Decimal(60))
    clock.call_at(T0 + timedelta(seconds=11.5), lambda: setattr(broker, "refuse_cancels", 10_000))
    ended = await run_execution(specs, (), broker, feed, clock, LADDER, run_id="r1", sinks=(journal,))
    await journal.flush()
    assert ended.status is RunStatus.PARTIAL
    assert broker.orders["o2"].status.is_open
    broker.refuse_cancels = 0
    return clock, feed, broker


def test_resuming_an_ended_run_cancels_the_order_it_left_open_and_sends_nothing_else(tmp_path: Path) -> None:
    """`repeg resume` of a run that ended with an order left open answered the journaled `partial` and left o2
    working at the broker (it could over-sell): the user had to cancel it by hand. It is cancelled now, the cancel
    journaled, the run ended again (still `partial`: its buy, skipped for that open order, never ran), and nothing
    is submitted or replaced."""

    async def main() -> tuple[ExecutionResult, FakeBroker, list[RunEvent]]:
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        clock, feed, broker = await _ended_with_an_order_left_open(journal)
        sent = (len(broker.submitted()), len(broker.replaced()))
        result = await resume_run("r1", journal, broker, feed, clock, config=LADDER)
        assert (len(broker.submitted()), len(broker.replaced())) == sent
        events = journal.events("r1")
        journal.close()
        return result, broker, events

    result, broker, events = run_virtual(main)
    assert broker.orders["o2"].status is OrderStatus.CANCELED
    assert result.legs[0].error is None
    assert [e.status for e in events if isinstance(e, RunEnded)] == ["partial", "partial"]
    assert result.status is RunStatus.PARTIAL  # the buy never ran: not completed_with_skips (exit 0)
    assert fold_run(events).legs[0].orders[-1].status is OrderStatus.CANCELED


def test_resuming_an_ended_run_whose_legs_all_filled_completes_it_once_its_open_order_is_cancelled(
    tmp_path: Path,
) -> None:
    """The same sell alone: the run ended `partial` only for o2 left open. Once resume has cancelled it, nothing
    of the run can trade any more and its one leg filled: it is `completed` (exit 0)."""

    async def main() -> ExecutionResult:
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        clock, feed, broker = await _ended_with_an_order_left_open(journal, SELL_THEN_BUY[:1])
        result = await resume_run("r1", journal, broker, feed, clock, config=LADDER)
        journal.close()
        return result

    assert run_virtual(main).status is RunStatus.COMPLETED


def test_resuming_an_ended_run_records_a_fill_its_open_order_got_after_the_run_ended(tmp_path: Path) -> None:
    """o2 executed 10 more shares after the run ended: resume records them (the sell leg over-filled: 110 of 100,
    failed, the run `partial`), then cancels the rest; the journal holds the fill, never lost."""

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        clock, feed, broker = await _ended_with_an_order_left_open(journal)
        broker.fill("o2", Decimal(10))
        result = await resume_run("r1", journal, broker, feed, clock, config=LADDER)
        journal.close()
        return result, broker

    result, broker = run_virtual(main)
    assert broker.orders["o2"].status is OrderStatus.CANCELED
    assert (result.legs[0].filled_qty, result.legs[0].status) == (Decimal(110), LegStatus.FAILED)
    assert result.status is RunStatus.PARTIAL


class BreaksAfterTheFirstAck:
    """Journals every event, then breaks the engine once the first order is acknowledged: the run ends `failed`
    with that order working at the broker."""

    def __init__(self, journal: EventSink) -> None:
        self._journal, self._broke = journal, False

    async def emit(self, event: RunEvent) -> None:
        await self._journal.emit(event)
        if isinstance(event, OrderAccepted) and not self._broke:
            self._broke = True
            raise RuntimeError("the engine broke")


def test_resuming_a_run_that_ended_failed_cancels_the_order_its_working_leg_left_open(tmp_path: Path) -> None:
    """The engine broke with the sell's order working: the run ended `failed`, the order open at the broker.
    Resume cancels it (never sends anything), and the run stays `failed`."""

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed, auto_fill=False)
        feed.set("XYZ", "100.00", "100.08")
        specs = SELL_THEN_BUY[:1]
        with pytest.raises(RuntimeError, match="broke"):
            await run_execution(
                specs, (), broker, feed, clock, LADDER, run_id="r1", sinks=(BreaksAfterTheFirstAck(journal),)
            )
        await journal.flush()
        assert broker.orders["o1"].status.is_open
        result = await resume_run("r1", journal, broker, feed, clock, config=LADDER)
        assert (len(broker.submitted()), broker.replaced()) == (1, [])
        journal.close()
        return result, broker

    result, broker = run_virtual(main)
    assert broker.orders["o1"].status is OrderStatus.CANCELED
    assert result.status is RunStatus.FAILED


def test_resuming_an_ended_run_cancels_the_order_of_a_submit_whose_outcome_it_never_learned(
    tmp_path: Path,
) -> None:
    """The buy's submit answer is lost, the broker pushes nothing and cannot be asked by client order id for the
    whole run: the leg ends given up, its order `new` at the broker, unknown to the run. Resume answered the
    journaled result without asking, and left it working; it asks now, records it, and cancels it."""

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed, auto_fill=False, pushes_updates=False)
        feed.set("XYZ", "100.00", "100.08")
        broker.lost_answers, broker.unavailable_lookups = 1, 10**6
        specs = [LegSpec(index=0, symbol="XYZ", side=Side.BUY, qty=Decimal(100))]
        await run_execution(specs, (), broker, feed, clock, LADDER, run_id="r1", sinks=(journal,))
        await journal.flush()
        assert broker.orders["o1"].status.is_open
        broker.unavailable_lookups = 0
        result = await resume_run("r1", journal, broker, feed, clock, config=LADDER)
        assert len(broker.submitted()) == 1
        journal.close()
        return result, broker

    result, broker = run_virtual(main)
    assert broker.orders["o1"].status is OrderStatus.CANCELED
    assert result.legs[0].order_ids == ("o1",)


def test_resuming_an_ended_run_whose_unknown_submit_the_broker_never_got_journals_nothing_each_time(
    tmp_path: Path,
) -> None:
    """The buy's submit times out before reaching the broker and every lookup fails through the run: it ends
    `failed` with that submit's outcome unknown, so each resume asks the broker after it (44ce26b). The broker has
    no such order: nothing changed, yet every resume (and every `run --run-id`) journaled another `run_ended`,
    moving the run's end time; the history grew by one event per look."""

    async def main() -> tuple[int, list[RunEvent], list[ExecutionResult]]:
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed, auto_fill=False, pushes_updates=False)
        feed.set("XYZ", "100.00", "100.08")
        broker.late_landings, broker.landing_delay = 1, timedelta(days=30)
        broker.unavailable_lookups = 10**6
        specs = [LegSpec(index=0, symbol="XYZ", side=Side.BUY, qty=Decimal(100))]
        await run_execution(specs, (), broker, feed, clock, LADDER, run_id="r1", sinks=(journal,))
        await journal.flush()
        ended = len(journal.events("r1"))
        broker.unavailable_lookups = 0
        results = [await resume_run("r1", journal, broker, feed, clock, config=LADDER) for _ in range(2)]
        events = journal.events("r1")
        journal.close()
        return ended, events, results

    ended, events, results = run_virtual(main)
    assert [result.status for result in results] == [RunStatus.FAILED, RunStatus.FAILED]
    assert len(events) == ended
    assert [e.status for e in events if isinstance(e, RunEnded)] == ["failed"]
