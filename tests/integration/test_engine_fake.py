"""The engine end to end on virtual time against the scripted fake broker: re-pegs, escalation, races, ends."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import structlog
import structlog.testing
from tests.fakes.log_capture import every_level_captured
from tests.unit.fake_broker import T0, FakeBroker, FakeFeed, quote

from repeg.config import EscalationStyle, ExecutionConfig, OnNoQuote, classic_ladder
from repeg.domain.events import (
    IntentAction,
    LegEscalated,
    LegFinished,
    OrderAccepted,
    OrderFailed,
    OrderIntent,
    OrderUpdated,
    PhaseEnded,
    PhaseStarted,
    RunEnded,
    RunEvent,
)
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import (
    BrokerOrder,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    ReplaceRequest,
    Side,
)
from repeg.domain.plan import LegSpec
from repeg.domain.run import fold_run
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.engine.run_end import CALL_FLOOR
from repeg.engine.runner import ParentOrder, run_basket, run_execution
from repeg.errors import (
    BrokerUnavailableError,
    ClientOrderIdConflictError,
    JournalError,
    MarketDataError,
    PlanError,
)
from repeg.journal.faults import point_of
from repeg.journal.resume import resume_run
from repeg.journal.sqlite import SqliteJournal
from repeg.report.result import ExecutionResult, RunStatus, build_result, result_from_events

CONFIG = classic_ladder()
#: Re-pegs at 10, 20 s (of four steps), the deadline's escalation at 30 s to a collared limit (which, without
#: auto_fill, only fills as scripted), the hard stop at 40 s and the end of its grace window at 45 s.
HARD_STOP_AT_40 = classic_ladder(
    repeg_steps=(Decimal("0.25"), Decimal("0.5"), Decimal("0.75"), Decimal("1.0")),
    max_total_wait=30,
    escalation=EscalationStyle.COLLARED_LIMIT,
)


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


@dataclass
class Recorder:
    events: list[RunEvent] = field(default_factory=list)

    async def emit(self, event: RunEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def intents(self, action: IntentAction) -> list[OrderIntent]:
        return [e for e in self.of(OrderIntent) if e.action is action]


@dataclass
class World:
    clock: VirtualClock
    feed: FakeFeed
    broker: FakeBroker
    sink: Recorder


Script = Callable[[World], None]


def execute(
    specs: Sequence[LegSpec],
    script: Script = lambda w: None,
    config: ExecutionConfig = CONFIG,
    *,
    fresh: bool = True,
    **broker_options: object,
) -> tuple[ExecutionResult, World]:
    async def main() -> tuple[ExecutionResult, World]:
        clock = VirtualClock(T0)
        feed = FakeFeed(clock, fresh=fresh)
        broker = FakeBroker(clock, feed, **broker_options)  # type: ignore[arg-type]
        world = World(clock, feed, broker, Recorder())
        feed.set("XYZ", "100.00", "100.08")
        script(world)
        result = await run_execution(specs, [], broker, feed, clock, config, run_id="t", sinks=[world.sink])
        return result, world

    return run_virtual(main)


BUY = [LegSpec(index=0, symbol="XYZ", side=Side.BUY, qty=Decimal(100))]
SELL = [LegSpec(index=0, symbol="XYZ", side=Side.SELL, qty=Decimal(100))]


def test_result_equals_the_fold_of_the_published_events() -> None:
    result, world = execute(BUY)
    assert build_result(fold_run(world.sink.events)) == result


def test_passive_fill_completes_without_repeg() -> None:
    result, _ = execute(BUY, lambda w: w.feed.at(at(5), "XYZ", "99.96", "100.00"))
    (leg,) = result.legs
    assert result.status is RunStatus.COMPLETED
    assert leg.status is LegStatus.FILLED
    assert leg.repegs == 0
    assert leg.avg_fill_price == Decimal("100.00")
    assert leg.time_to_complete_s == 5.0
    assert result.quality.fill_rate_before_escalation == Decimal(1)


def test_phase_ends_a_grace_window_after_the_last_leg_finished() -> None:
    _, world = execute(BUY, lambda w: w.feed.at(at(5), "XYZ", "99.96", "100.00"))
    (ended,) = world.sink.of(PhaseEnded)
    assert ended.ts == at(5) + CONFIG.grace


def test_updates_pushed_in_a_phases_last_turn_are_recorded_not_dropped_with_its_inbox() -> None:
    """With no grace window the phase ends in the turn whose replace filled at once: the broker's pushed
    `replaced` update of the order it replaced was still in the monitor's inbox. Dropped there, the run reported
    that order left open at the broker and ended `partial` instead of `completed`."""
    result, world = execute(BUY, config=classic_ladder(grace_window=0))
    (leg,) = result.legs
    assert result.status is RunStatus.COMPLETED
    assert leg.error is None
    replaced = [e for e in world.sink.of(OrderUpdated) if e.update.event is OrderEvent.REPLACED]
    assert [e.update.order.order_id for e in replaced] == ["o1", "o2", "o3"]


def test_repeg_price_sequence_climbs_the_ladder_from_the_current_quote() -> None:
    result, world = execute(BUY)
    limits = [e.limit_price for e in world.sink.of(OrderIntent) if e.limit_price is not None]
    assert limits == [Decimal("100.00"), Decimal("100.04"), Decimal("100.06"), Decimal("100.08")]
    assert [e.ts for e in world.sink.intents(IntentAction.REPLACE)] == [at(10), at(20), at(30)]
    (leg,) = result.legs
    assert leg.repegs == 3
    assert not leg.escalated
    assert leg.avg_fill_price == Decimal("100.08")
    assert len(leg.order_ids) == 4


def test_repeg_follows_a_moving_quote() -> None:
    _, world = execute(BUY, lambda w: w.feed.at(at(8), "XYZ", "100.10", "100.20"))
    first_replace = world.sink.intents(IntentAction.REPLACE)[0]
    assert first_replace.limit_price == Decimal("100.15")


def test_without_replace_a_repeg_cancels_confirms_then_submits() -> None:
    result, world = execute(BUY, supports_replace=False)
    submits = world.broker.submitted()
    assert [s.limit_price for s in submits] == [
        Decimal("100.00"),
        Decimal("100.04"),
        Decimal("100.06"),
        Decimal("100.08"),
    ]
    assert [s.client_order_id for s in submits][:2] == ["t-L0000-A00", "t-L0000-A01"]
    assert len(world.broker.cancels()) == 3
    assert result.legs[0].repegs == 3


def test_partially_filled_order_is_repegged_by_cancel_for_the_remainder_only() -> None:
    _, world = execute(BUY, lambda w: w.broker.fill_open_at(at(5), "XYZ", Decimal(30)))
    submits = world.broker.submitted()
    assert world.broker.cancels() == ["cancel:o1"]
    assert submits[1].qty == Decimal(70)
    assert all(r.order_id != "o1" for r in world.broker.replaced())


def test_escalates_only_after_the_cancel_is_confirmed_and_only_the_remainder() -> None:
    def script(w: World) -> None:
        w.broker.cancel_latency = timedelta(seconds=2)
        w.broker.fill_open_at(at(5), "XYZ", Decimal(30))

    result, world = execute(BUY, script, auto_fill=False, supports_replace=False)
    events = world.sink.events
    (escalated,) = world.sink.of(LegEscalated)
    assert escalated.reason == "steps_exhausted"
    assert escalated.remaining_qty == Decimal(70)
    market = [e for e in world.sink.intents(IntentAction.SUBMIT) if e.order_type is OrderType.MARKET]
    assert [m.qty for m in market] == [Decimal(70)]
    start = events.index(escalated)
    confirmation = next(
        i
        for i, e in enumerate(events)
        if i > start and isinstance(e, OrderUpdated) and e.update.event is OrderEvent.CANCELED
    )
    assert events.index(market[0]) > confirmation
    assert market[0].ts == escalated.ts + timedelta(seconds=2)
    assert result.legs[0].escalated


def test_fill_racing_the_escalation_cancel_sends_nothing() -> None:
    def script(w: World) -> None:
        w.feed.set("XYZ", "100.00", "100.01")  # one tick: the ladder never changes the price before step 3
        w.broker.auto_fill = False

        def arm() -> None:
            w.broker.fill_before_cancel[w.broker.open_order("XYZ").order_id] = Decimal(100)

        w.clock.call_at(at(35), arm)

    result, world = execute(BUY, script)
    assert not [r for r in world.broker.submitted() if r.order_type is OrderType.MARKET]
    (refused,) = world.sink.of(OrderFailed)
    assert refused.action is IntentAction.CANCEL
    assert refused.error == "OrderNotCancelableError"
    assert result.legs[0].status is LegStatus.FILLED
    assert result.legs[0].filled_qty == Decimal(100)


def test_fill_racing_a_replace_is_reconciled_and_nothing_more_is_sent() -> None:
    def script(w: World) -> None:
        w.broker.auto_fill = False
        w.clock.call_at(at(9), lambda: w.broker.fill_before_replace.update({"o1": Decimal(100)}))

    result, world = execute(BUY, script)
    (refused,) = world.sink.of(OrderFailed)
    assert refused.action is IntentAction.REPLACE
    assert len(world.broker.submitted()) == 1
    assert result.status is RunStatus.COMPLETED


def test_stall_escalates_when_nothing_happens_while_orders_work() -> None:
    result, world = execute(BUY, fresh=False)  # the quote goes stale: no re-peg, no update, no new quote
    (escalated,) = world.sink.of(LegEscalated)
    assert escalated.reason == "stall"
    assert escalated.ts == at(20)
    assert result.legs[0].status is LegStatus.FILLED


def test_an_order_update_counts_as_activity_and_defers_the_stall() -> None:
    # The quote is stale, but a partial fill at 15 s is activity: the stall comes 2 fill waits after it, not at 20 s.
    _, world = execute(BUY, lambda w: w.broker.fill_open_at(at(15), "XYZ", Decimal(10)), fresh=False)
    (escalated,) = world.sink.of(LegEscalated)
    assert escalated.reason == "stall"
    assert escalated.ts == at(35)


def test_an_order_update_found_by_polling_counts_as_activity_and_defers_the_stall() -> None:
    def script(w: World) -> None:
        w.broker.fill_open_at(at(15), "XYZ", Decimal(10))

    _, world = execute(BUY, script, fresh=False, pushes_updates=False)
    (escalated,) = world.sink.of(LegEscalated)
    assert escalated.reason == "stall"
    assert escalated.ts == at(35)


def test_a_second_stall_does_not_cancel_the_escalation_order_already_working() -> None:
    # Stale quote, nothing fills: the stall at 20 s escalates (one cancel of the passive order); the market order
    # then works unanswered, and the next stall leaves it alone until the hard stop cancels it.
    _, world = execute(BUY, fresh=False, auto_fill=False)
    reasons = [i.reason for i in world.sink.intents(IntentAction.CANCEL)]
    assert reasons == ["escalate", "phase_end"]


def test_deadline_escalates_and_the_hard_stop_ends_unfilled_legs_incomplete() -> None:
    config = HARD_STOP_AT_40
    result, world = execute(BUY, config=config, auto_fill=False)
    (escalated,) = world.sink.of(LegEscalated)
    assert escalated.reason == "deadline"
    assert escalated.ts == at(30)
    (finished,) = world.sink.of(LegFinished)
    assert finished.status == "incomplete"
    assert finished.ts == at(40)  # hard stop = deadline + fill_wait; the cancel is confirmed at once
    assert result.status is RunStatus.FAILED
    assert result.counts.incomplete == 1


def test_a_refused_cancel_at_the_hard_stop_is_retried_so_no_order_outlives_the_run() -> None:
    config = HARD_STOP_AT_40

    def script(w: World) -> None:
        w.clock.call_at(at(39.5), lambda: setattr(w.broker, "refuse_cancels", 1))  # the hard stop's cancel

    result, world = execute(BUY, script, config=config, auto_fill=False)
    assert not [o for o in world.broker.orders.values() if o.status.is_open]
    assert [r.action for r in world.sink.of(OrderFailed)] == [IntentAction.CANCEL]
    assert result.legs[0].status is LegStatus.INCOMPLETE


def test_a_hard_stop_cancel_the_broker_rejects_later_is_asked_again_so_no_order_outlives_the_run() -> None:
    config = HARD_STOP_AT_40

    def script(w: World) -> None:
        w.clock.call_at(at(39.5), lambda: setattr(w.broker, "reject_cancels_later", 1))

    result, world = execute(BUY, script, config=config, auto_fill=False)
    assert not [o for o in world.broker.orders.values() if o.status.is_open]
    hard_stop = [i for i in world.sink.intents(IntentAction.CANCEL) if i.reason == "phase_end"]
    assert len(hard_stop) == 2
    assert hard_stop[0].order_id == hard_stop[1].order_id
    assert result.legs[0].status is LegStatus.INCOMPLETE


def test_a_fill_racing_the_last_phases_unconfirmed_cancel_is_looked_up_before_the_run_ends() -> None:
    """The deadline's cancel (30 s) is slow; the order fills at 42 s, before the cancel reaches it, but the stream
    delivers that fill only 20 s later, after the phase's grace window (hard stop 40 s + 5 s). The run asks the
    broker for the order it never saw closed before it declares its result: without that, the result said 0 filled
    (run `failed`) while the broker had bought the 100 shares."""
    config = HARD_STOP_AT_40

    def script(w: World) -> None:
        w.broker.cancel_latency = timedelta(seconds=60)
        w.broker.delayed_updates["o3"] = timedelta(seconds=20)  # the order working at the deadline
        w.broker.fill_open_at(at(42), "XYZ", Decimal(100))

    result, world = execute(BUY, script, config=config, auto_fill=False)
    (leg,) = result.legs
    assert world.broker.positions["XYZ"] == Decimal(100)
    assert leg.filled_qty == Decimal(100)
    assert leg.avg_fill_price == Decimal("100.04")
    assert leg.status is LegStatus.FILLED
    assert result.status is RunStatus.COMPLETED


def test_an_order_still_open_when_the_run_ends_is_named_in_its_legs_error() -> None:
    """The hard stop's cancel is not confirmed within the grace window and the run's last lookup of the order
    fails: the order may still fill, which the leg's result must say (it said no error at all, only `incomplete`,
    0 filled, inviting the user to buy again beside an order that may still buy). The failed lookup is logged."""
    config = HARD_STOP_AT_40

    def script(w: World) -> None:
        w.broker.cancel_latency = timedelta(seconds=60)
        w.clock.call_at(at(44), lambda: setattr(w.broker, "unavailable_reads", 1))

    with every_level_captured() as logs:
        result, world = execute(BUY, script, config=config, auto_fill=False)
    (leg,) = result.legs
    assert world.broker.orders["o3"].status.is_open
    assert leg.status is LegStatus.INCOMPLETE
    assert leg.error is not None
    assert "order o3 was still open at the broker (new) when last read" in leg.error
    (failed,) = [line for line in logs if line["event"] == "reconcile_failed"]
    assert failed["order_id"] == "o3"
    assert failed["symbol"] == "XYZ"
    assert "scripted outage" in failed["error"]
    assert result.status is RunStatus.FAILED


def test_updates_pushed_while_the_runs_last_updates_are_recorded_are_recorded_too() -> None:
    """A sink that takes a second to record each update after the phase ended (a slow journal): the order left
    open at the hard stop fills 50 at 45.5 s (recorded from 46 s) and 50 more at 46.5 s, pushed while the first
    is being recorded. Before, the run's last sweep of late updates took only those already waiting: the second
    fill was dropped as the run ended, and the result said 50 filled of the 100 the broker had bought."""
    config = HARD_STOP_AT_40

    def script(w: World) -> None:
        record = w.sink.emit

        async def slow(event: RunEvent) -> None:
            await record(event)
            if isinstance(event, OrderUpdated) and event.ts >= at(45):
                await w.clock.sleep_until(w.clock.now() + timedelta(seconds=1))

        w.sink.emit = slow  # type: ignore[method-assign]
        w.broker.cancel_latency = timedelta(seconds=60)
        w.broker.fill_open_at(at(45.5), "XYZ", Decimal(50))
        w.broker.fill_open_at(at(46.5), "XYZ", Decimal(50))

    result, world = execute(BUY, script, config=config, auto_fill=False)
    (leg,) = result.legs
    assert world.broker.positions["XYZ"] == Decimal(100)
    assert leg.filled_qty == Decimal(100)
    assert leg.status is LegStatus.FILLED


def test_a_replaced_update_later_than_the_grace_window_is_looked_up_not_read_left_open() -> None:
    """The 10 s re-peg replaces o1 by o2, which fills at 11 s; the stream delivers o1's `replaced` update 20 s
    late, after the phase's grace window. Before, the run ended with o1 last read open: the filled leg's error
    said o1 "was left open at the broker" and the run ended `partial` though everything had filled."""

    def script(w: World) -> None:
        w.broker.delayed_updates["o1"] = timedelta(seconds=20)
        w.broker.fill_open_at(at(11), "XYZ", Decimal(100))  # o2 fills: the leg ends, the phase at 16 s

    result, world = execute(BUY, script)
    (leg,) = result.legs
    assert world.broker.orders["o1"].status is OrderStatus.REPLACED
    assert leg.status is LegStatus.FILLED
    assert leg.error is None
    assert result.status is RunStatus.COMPLETED


def test_a_submit_never_answered_when_the_run_ends_is_named_in_its_legs_error() -> None:
    """The first submit times out, then lands at the broker (a live order); a broker that does not push is asked for
    it by client order id, and every lookup fails to the run's end. The leg ends incomplete with no order id: its
    result must say that an order under that id may be open (it said nothing, while the broker held it working)."""

    def script(w: World) -> None:
        w.broker.late_landings = 1
        w.broker.unavailable_lookups = 10**6

    result, world = execute(BUY, script, config=classic_ladder(max_total_wait=30), pushes_updates=False)
    (leg,) = result.legs
    assert world.broker.order_for("t-L0000-A00").status.is_open
    assert leg.status is LegStatus.INCOMPLETE
    assert leg.order_ids == ()
    assert leg.error is not None
    assert "t-L0000-A00" in leg.error
    assert "may be open at the broker" in leg.error


def test_a_submit_never_answered_is_looked_up_at_the_runs_end_and_its_order_cancelled() -> None:
    """As `test_a_submit_never_answered_when_the_run_ends_is_named_in_its_legs_error`, but the lookups by client
    order id answer again once the phase has ended: the run's last lookups ask for that submit too (it is an order
    not known closed), record the order found and cancel it. Before, the run ended without asking: the order,
    working at the broker, could buy 100 after the run had reported the leg incomplete with nothing filled."""

    def script(w: World) -> None:
        record = w.sink.emit

        async def lookups_back_at_the_phases_end(event: RunEvent) -> None:
            await record(event)
            if isinstance(event, PhaseEnded):
                w.broker.unavailable_lookups = 0

        w.sink.emit = lookups_back_at_the_phases_end  # type: ignore[method-assign]
        w.broker.late_landings = 1
        w.broker.unavailable_lookups = 10**6

    result, world = execute(BUY, script, config=classic_ladder(max_total_wait=30), pushes_updates=False)
    order = world.broker.order_for("t-L0000-A00")
    assert order.status is OrderStatus.CANCELED
    (leg,) = result.legs
    assert leg.order_ids == (order.order_id,)
    assert leg.status is LegStatus.INCOMPLETE


def test_the_runs_last_lookups_stop_after_a_grace_window_when_the_broker_cannot_answer() -> None:
    """Three legs end at the hard stop (45 s) with their cancels unconfirmed while every read of an order fails
    after 8 s of retries: the run's last lookups must not add 8 s per order to its end. Every order is asked about
    and cancelled (the floor: at least one lookup and one cancel each), the legs at once, each read given up at the
    window's end (50 s) or, past it, after `CALL_FLOOR` (the read after the cancel, 50 s to 52 s): the end is
    bounded whatever the number of orders (before the floor, it asked about o7 alone, 45 s to 53 s)."""
    config = HARD_STOP_AT_40
    specs = [
        LegSpec(index=i, symbol=s, side=Side.BUY, qty=Decimal(100))
        for i, s in enumerate(("XYZ", "ABC", "DEF"))
    ]

    def script(w: World) -> None:
        for symbol in ("ABC", "DEF"):
            w.feed.set(symbol, "100.00", "100.08")
        w.broker.cancel_latency = timedelta(seconds=60)

        def outage() -> None:
            w.broker.unavailable_reads = 10**6
            w.broker.read_delay = timedelta(seconds=8)

        w.clock.call_at(at(44), outage)

    with every_level_captured() as logs:
        result, world = execute(specs, script, config=config, auto_fill=False)
    (ended,) = world.sink.of(RunEnded)
    assert ended.ts == at(50) + CALL_FLOOR
    failed = [(line["order_id"], line["error"]) for line in logs if line["event"] == "reconcile_failed"]
    orders = ["o7", "o8", "o9"]
    assert [order_id for order_id, _ in failed] == orders * 2  # each looked up, then read after its cancel
    assert all("no answer within" in error for _, error in failed)
    assert [line["order_id"] for line in logs if line["event"] == "run_end_cancel"] == orders
    assert all(leg.status is LegStatus.INCOMPLETE and leg.error for leg in result.legs)


def test_the_runs_last_cancels_go_out_for_every_leg_even_when_its_lookups_use_up_the_grace_window() -> None:
    """Three legs end at the hard stop with their orders working (every cancel refused until the phase ends), and
    each read then takes 2 s. Asking for all three one after the other before any cancel would use the window up
    (45 s to 51 s) and cancel none, leaving every order working at the broker (d4e394a6 then went leg by leg, and
    still left two of the three working, logged not cancelled). Each order now gets its lookup and its cancel
    whatever the window, the legs at once: all three are cancelled, by 49 s."""
    specs = [
        LegSpec(index=i, symbol=s, side=Side.BUY, qty=Decimal(100))
        for i, s in enumerate(("XYZ", "ABC", "DEF"))
    ]

    def script(w: World) -> None:
        record = w.sink.emit

        async def slow_reads_and_cancels_back_at_the_phases_end(event: RunEvent) -> None:
            await record(event)
            if isinstance(event, PhaseEnded):
                w.broker.refuse_cancels = 0
                w.broker.read_delay = timedelta(seconds=2)

        w.sink.emit = slow_reads_and_cancels_back_at_the_phases_end  # type: ignore[method-assign]
        for symbol in ("ABC", "DEF"):
            w.feed.set(symbol, "100.00", "100.08")
        w.clock.call_at(at(29), lambda: setattr(w.broker, "refuse_cancels", 10**6))

    with every_level_captured() as logs:
        result, world = execute(specs, script, config=HARD_STOP_AT_40, auto_fill=False)
    assert not [o.order_id for o in world.broker.orders.values() if o.status.is_open]
    cancelled = [line["order_id"] for line in logs if line["event"] == "run_end_cancel"]
    assert len(cancelled) == 3
    assert all(world.broker.orders[order_id].status is OrderStatus.CANCELED for order_id in cancelled)
    (ended,) = world.sink.of(RunEnded)
    assert ended.ts == at(49)
    assert all(leg.error is None or "still open" not in leg.error for leg in result.legs)


def _cancels_refused_until_the_phase_ends(w: World, read_delay: timedelta = timedelta(0)) -> None:
    """Every cancel refused from 29 s (the hard stop leaves the order working); at the phase's end cancels go
    through again and each read takes `read_delay`."""
    record = w.sink.emit

    async def cancels_back_at_the_phases_end(event: RunEvent) -> None:
        await record(event)
        if isinstance(event, PhaseEnded):
            w.broker.refuse_cancels = 0
            w.broker.read_delay = read_delay

    w.sink.emit = cancels_back_at_the_phases_end  # type: ignore[method-assign]
    w.clock.call_at(at(29), lambda: setattr(w.broker, "refuse_cancels", 10**6))


def test_with_no_grace_window_the_runs_end_still_asks_for_and_cancels_each_order_left_working() -> None:
    """grace_window = 0 and a read that takes 0.5 s: the run end's lookup of the order left working ended past the
    window (40 s), so its cancel was skipped (run_end_cancels_skipped) and the order kept working at the broker
    after the run reported (on a wall clock even the lookup was skipped). Every order not known closed gets one
    lookup and, read open, one cancel."""
    config = HARD_STOP_AT_40.model_copy(update={"grace_window": 0.0})

    def script(w: World) -> None:
        _cancels_refused_until_the_phase_ends(w, timedelta(seconds=0.5))

    with every_level_captured() as logs:
        result, world = execute(BUY, script, config=config, auto_fill=False)
    assert not [o for o in world.broker.orders.values() if o.status.is_open]
    (cancelled,) = [line for line in logs if line["event"] == "run_end_cancel"]
    assert world.broker.orders[cancelled["order_id"]].status is OrderStatus.CANCELED
    assert result.legs[0].error is not None
    assert "still open" not in result.legs[0].error


def test_the_runs_end_waits_for_its_cancels_confirmation() -> None:
    """The deadline's cancel (30 s) takes 17 s; the phase ends at 45 s with the order still working. The run's
    end read it once after its cancel (still `new`) and ended naming it open at the broker, though the broker
    cancelled it at 47 s; it now waits (within a grace window) for the confirmation."""

    def script(w: World) -> None:
        w.broker.cancel_latency = timedelta(seconds=17)

    result, world = execute(BUY, script, config=HARD_STOP_AT_40, auto_fill=False)
    assert world.broker.orders["o3"].status is OrderStatus.CANCELED
    recorded = [e.update for e in world.sink.of(OrderUpdated) if e.update.order.order_id == "o3"]
    assert (recorded[-1].order.status, recorded[-1].ts) == (OrderStatus.CANCELED, at(47))
    (ended,) = world.sink.of(RunEnded)
    assert ended.ts < at(50)
    assert result.legs[0].error is None


def test_the_runs_end_sends_no_cancel_to_an_order_it_recorded_closed_while_it_waited() -> None:
    """As `test_the_runs_end_waits_for_its_cancels_confirmation`: the confirmation (47 s) is recorded when the
    wait wakes, but the wait then cancelled and read again each order it had found open before sleeping, o3 among
    them, though the run now held it canceled (a refused DELETE, and a read, spent for nothing: at Alpaca, two
    requests of its rate budget). Orders recorded closed meanwhile are no longer asked."""
    cancels_of_closed: list[str] = []

    def script(w: World) -> None:
        w.broker.cancel_latency = timedelta(seconds=17)
        send = w.broker.cancel_order

        async def noted(order_id: str) -> None:
            if w.broker.orders[order_id].status.is_terminal:
                cancels_of_closed.append(order_id)
            await send(order_id)

        w.broker.cancel_order = noted  # type: ignore[method-assign]

    result, world = execute(BUY, script, config=HARD_STOP_AT_40, auto_fill=False)
    assert world.broker.orders["o3"].status is OrderStatus.CANCELED
    assert result.legs[0].error is None
    assert cancels_of_closed == []


def test_a_fill_while_the_runs_end_awaits_its_cancel_is_in_the_result() -> None:
    """As `test_the_runs_end_waits_for_its_cancels_confirmation`, but the order fills at 46 s, before the cancel
    reaches it: the run had ended at 45 s without the 100 shares the broker bought."""

    def script(w: World) -> None:
        w.broker.cancel_latency = timedelta(seconds=17)
        w.broker.fill_open_at(at(46), "XYZ", Decimal(100))

    result, world = execute(BUY, script, config=HARD_STOP_AT_40, auto_fill=False)
    assert world.broker.positions["XYZ"] == Decimal(100)
    (leg,) = result.legs
    assert leg.filled_qty == Decimal(100)
    assert leg.status is LegStatus.FILLED


def test_an_incomplete_legs_error_names_its_open_order_beside_an_earlier_one_never_reported_closed() -> None:
    """o2's `replaced` update never comes, o3 (working at the deadline) is still open when the run ends, and the
    run's last lookups fail: the error said only that o2 was never reported closed, not that o3 may still fill."""
    config = HARD_STOP_AT_40

    def script(w: World) -> None:
        w.broker.cancel_latency = timedelta(seconds=60)
        w.broker.delayed_updates["o2"] = timedelta(seconds=600)
        w.clock.call_at(at(44), lambda: setattr(w.broker, "unavailable_reads", 10**6))

    result, world = execute(BUY, script, config=config, auto_fill=False)
    (leg,) = result.legs
    assert world.broker.orders["o3"].status.is_open
    assert leg.status is LegStatus.INCOMPLETE
    assert leg.error is not None
    assert "order o2 was never reported closed" in leg.error
    assert "order o3 was still open at the broker (new) when last read" in leg.error


def test_an_order_the_runs_last_lookups_first_find_open_is_cancelled_not_left_working() -> None:
    """The first re-peg replaces o1 by o2, but its answer, every lookup by client order id and every read fail,
    and o1's `replaced` update never comes: the phase ends knowing only o1 (its cancels refused: replaced). The
    run's last lookup, reads back, learns o2, open. Before, o2 was named in the error but left working at the
    broker after the run reported (a DAY order that could still buy 100 more); now it is cancelled, as the hard
    stop cancels what works, the cancel logged with its fields and the order read once more (recorded canceled)."""

    def script(w: World) -> None:
        record = w.sink.emit

        async def reads_back_at_the_phases_end(event: RunEvent) -> None:
            await record(event)
            if isinstance(event, PhaseEnded):
                w.broker.unavailable_reads = 0

        def lose_the_replace() -> None:
            w.broker.lost_answers = 1
            w.broker.unavailable_lookups = 10**6
            w.broker.unavailable_reads = 10**6

        w.sink.emit = reads_back_at_the_phases_end  # type: ignore[method-assign]
        w.broker.delayed_updates["o1"] = timedelta(seconds=600)
        w.clock.call_at(at(9), lose_the_replace)

    with every_level_captured() as logs:
        result, world = execute(BUY, script, config=classic_ladder(max_total_wait=30), auto_fill=False)
    assert world.broker.orders["o2"].status is OrderStatus.CANCELED
    assert world.broker.cancels().count("cancel:o2") == 1
    (ended,) = world.sink.of(RunEnded)
    recorded = [e.update for e in world.sink.of(OrderUpdated) if e.update.order.order_id == "o2"]
    assert recorded[-1].order.status is OrderStatus.CANCELED
    assert recorded[-1].ts == ended.ts
    (cancelled,) = [line for line in logs if line["event"] == "run_end_cancel"]
    assert cancelled["order_id"] == "o2"
    assert cancelled["symbol"] == "XYZ"
    assert cancelled["correlation_id"] == "t-L0000"
    assert cancelled["accepted"] is True
    assert result.legs[0].error is not None
    assert "still open" not in result.legs[0].error


def test_no_valid_quote_within_quote_wait_skips_the_leg() -> None:
    specs = [LegSpec(index=0, symbol="NOQ", side=Side.SELL, qty=Decimal(5))]
    result, world = execute(specs)
    (finished,) = world.sink.of(LegFinished)
    assert finished.status == "skipped"
    assert finished.ts == at(30)
    assert result.status is RunStatus.COMPLETED_WITH_SKIPS
    assert not world.broker.submitted()


def test_broker_rejection_fails_the_leg_with_the_broker_message() -> None:
    result, _ = execute(BUY, lambda w: w.broker.reject_symbols.add("XYZ"))
    (leg,) = result.legs
    assert leg.status is LegStatus.FAILED
    assert leg.error is not None
    assert "insufficient buying power" in leg.error
    assert result.status is RunStatus.FAILED


def test_an_order_the_broker_rejects_after_accepting_it_fails_the_leg_without_resubmitting() -> None:
    result, world = execute(BUY, lambda w: w.broker.reject_after_accept.add("XYZ"))
    assert len(world.broker.submitted()) == 1
    (leg,) = result.legs
    assert leg.status is LegStatus.FAILED
    assert leg.error == "order o1 rejected by the broker"
    assert result.status is RunStatus.FAILED


def test_a_repeg_outside_the_price_collar_is_refused_and_the_order_cancelled() -> None:
    result, world = execute(BUY, lambda w: w.feed.at(at(8), "XYZ", "110.00", "110.08"), auto_fill=False)
    (leg,) = result.legs
    assert leg.status is LegStatus.FAILED
    assert leg.error is not None
    assert "price_collar_pct" in leg.error
    assert len(world.broker.cancels()) == 1
    assert not world.broker.replaced()


def test_a_fill_racing_the_slow_cancel_of_a_refused_leg_is_still_recorded() -> None:
    def script(w: World) -> None:
        w.feed.at(at(8), "XYZ", "110.00", "110.08")  # the 10 s re-peg breaks the collar: the leg gives up
        w.broker.cancel_latency = timedelta(seconds=8)  # its cancel is confirmed only at 18 s
        w.feed.at(at(16), "XYZ", "99.96", "100.00")  # the order, still live, fills at 16 s

    result, world = execute(BUY, script)
    (ended,) = world.sink.of(PhaseEnded)
    assert ended.ts == at(16) + CONFIG.grace  # not while the order still works, but a grace after it closed
    (leg,) = result.legs
    # The whole quantity traded: the leg ends filled (as a late fill completes an incomplete leg), the run completed.
    assert leg.status is LegStatus.FILLED
    assert leg.filled_qty == Decimal(100)
    assert result.status is RunStatus.COMPLETED


def test_a_refused_cancel_of_a_leg_given_up_is_retried_before_the_leg_ends() -> None:
    def script(w: World) -> None:
        w.feed.at(at(8), "XYZ", "110.00", "110.08")  # the 10 s re-peg breaks the collar: the leg gives up
        w.broker.refuse_cancels = 1  # and the broker refuses its first cancel

    result, world = execute(BUY, script, auto_fill=False)
    assert not [o for o in world.broker.orders.values() if o.status.is_open]
    assert world.broker.cancels() == ["cancel:o1", "cancel:o1"]
    (leg,) = result.legs
    assert leg.status is LegStatus.FAILED
    assert leg.error is not None
    assert "price_collar_pct" in leg.error


def test_a_cancel_of_a_leg_given_up_that_the_broker_rejects_later_is_asked_again() -> None:
    def script(w: World) -> None:
        w.feed.at(at(8), "XYZ", "110.00", "110.08")  # the 10 s re-peg breaks the collar: the leg gives up
        w.broker.reject_cancels_later = 1  # its cancel is accepted, then refused by a pushed update

    result, world = execute(BUY, script, auto_fill=False)
    assert not [o for o in world.broker.orders.values() if o.status.is_open]
    assert world.broker.cancels() == ["cancel:o1", "cancel:o1"]
    (leg,) = result.legs
    assert leg.status is LegStatus.FAILED


def test_a_broker_without_pushed_updates_is_polled() -> None:
    result, world = execute(BUY, lambda w: w.feed.at(at(5), "XYZ", "99.96", "100.00"), pushes_updates=False)
    assert result.status is RunStatus.COMPLETED
    polled = world.sink.of(OrderUpdated)
    assert polled[-1].update.event is OrderEvent.FILL
    assert polled[-1].ts == at(5)  # learned by the poll due at 5 s (wait_between_checks = 1 s)


def test_a_polled_leg_whose_replacement_filled_at_once_reads_the_replaced_order_closed() -> None:
    """On a broker that does not push, the last re-peg's replacement fills in the replace's answer: the leg is
    done, but the order it replaced was last read `new`. The monitor stopped polling the leg, so the run
    reported that order left open at the broker and ended `partial`, though the broker had it `replaced`."""
    result, world = execute(BUY, pushes_updates=False)
    (leg,) = result.legs
    assert world.broker.orders["o3"].status is OrderStatus.REPLACED
    assert result.status is RunStatus.COMPLETED
    assert leg.error is None


SELL_THEN_BUY = [
    LegSpec(index=0, symbol="XYZ", side=Side.SELL, qty=Decimal(100)),
    LegSpec(index=1, symbol="ABC", side=Side.BUY, qty=Decimal(300)),
    LegSpec(index=2, symbol="DEF", side=Side.BUY, notional=Decimal(2000), whole_shares=True),
]


def buy_world(w: World) -> None:
    w.feed.set("ABC", "9.99", "10.00")
    w.feed.set("DEF", "19.99", "20.00")
    w.feed.at(at(3), "XYZ", "100.08", "100.10")  # the sell fills passively at 3 s


def test_the_buy_phase_starts_only_after_every_sell_finished() -> None:
    _, world = execute(SELL_THEN_BUY, buy_world)
    sell_end = next(e for e in world.sink.of(PhaseEnded) if e.side is Side.SELL)
    first_buy = next(e for e in world.sink.intents(IntentAction.SUBMIT) if e.leg_index in (1, 2))
    assert first_buy.ts >= sell_end.ts
    assert world.broker.orders["o1"].status.is_terminal


def test_notional_buy_is_sized_from_the_quote_in_whole_shares() -> None:
    result, _ = execute(SELL_THEN_BUY, buy_world)
    assert result.legs[2].requested_qty == Decimal(100)  # 2000 / 20.00
    assert result.status is RunStatus.COMPLETED


def test_buys_are_scaled_down_when_proceeds_fall_short() -> None:
    def script(w: World) -> None:
        buy_world(w)
        w.broker.buying_power = Decimal(2500)

    result, world = execute(SELL_THEN_BUY, script)
    buy_phase = next(e for e in world.sink.of(PhaseStarted) if e.side is Side.BUY)
    assert buy_phase.scale < 1
    assert result.buy_scale == buy_phase.scale
    assert buy_phase.buying_power == Decimal(2500)
    requested = {leg.index: leg.requested_qty for leg in result.legs}
    assert requested[1] == (Decimal(300) * buy_phase.scale).quantize(Decimal("1e-9"), rounding="ROUND_DOWN")
    assert buy_phase.scale == Decimal("0.497512")  # 2500 / ((300 * 10.00 + 100 * 20.00) * 1.005)
    assert requested[2] == Decimal(49)  # 100 whole shares scaled and rounded down
    cost = sum(leg.filled_notional for leg in result.legs if leg.side is Side.BUY)
    assert cost <= Decimal(2500)


def test_basket_orders_start_at_their_arrival_times() -> None:
    orders = [
        ParentOrder(arrival=at(0), symbol="XYZ", side=Side.BUY, qty=Decimal(100)),
        ParentOrder(arrival=at(100), symbol="XYZ", side=Side.SELL, qty=Decimal(100)),
    ]

    async def main() -> tuple[ExecutionResult, Recorder]:
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed)
        feed.set("XYZ", "100.00", "100.08")
        sink = Recorder()
        result = await run_basket(orders, broker, feed, clock, CONFIG, run_id="b", sinks=[sink])
        return result, sink

    result, sink = run_virtual(main)
    firsts = {e.leg_index: e.ts for e in reversed(sink.intents(IntentAction.SUBMIT))}
    assert firsts == {0: at(0), 1: at(100)}
    assert [p.leg_index for p in sink.of(PhaseStarted)] == [0, 1]
    assert result.status is RunStatus.COMPLETED
    assert build_result(fold_run(sink.events)) == result


def test_a_duplicate_client_order_id_adopts_the_order_the_broker_already_has() -> None:
    def script(w: World) -> None:
        earlier = OrderRequest(
            client_order_id="t-L0000-A00",
            symbol="XYZ",
            side=Side.BUY,
            qty=Decimal(100),
            order_type=OrderType.LIMIT,
            limit_price=Decimal("100.00"),
        )
        w.broker._new(earlier)  # a submit that reached the broker before a crash
        w.feed.at(at(5), "XYZ", "99.96", "100.00")

    result, world = execute(BUY, script)
    assert len(world.broker.orders) == 1
    assert result.legs[0].order_ids == ("o1",)
    assert result.status is RunStatus.COMPLETED


class ExplodingSink(Recorder):
    async def emit(self, event: RunEvent) -> None:
        await super().emit(event)
        if isinstance(event, OrderAccepted):
            raise RuntimeError("journal disk full")  # noqa: TRY004 - a failing sink, not a type check


def test_an_engine_failure_closes_the_run_as_failed_and_propagates() -> None:
    sink = ExplodingSink()

    async def main() -> None:
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed)
        feed.set("XYZ", "100.00", "100.08")
        await run_execution(BUY, [], broker, feed, clock, CONFIG, run_id="t", sinks=[sink])

    with pytest.raises(RuntimeError, match="journal disk full"):
        run_virtual(main)
    (ended,) = sink.of(RunEnded)
    assert ended.status == "failed"


class FullJournalSink(Recorder):
    async def emit(self, event: RunEvent) -> None:
        await super().emit(event)
        if isinstance(event, OrderAccepted):
            raise JournalError("journal write failed: disk full")


def test_a_basket_run_that_breaks_raises_the_typed_error_itself_not_a_group() -> None:
    sink = FullJournalSink()
    orders = [ParentOrder(arrival=at(0), symbol="XYZ", side=Side.BUY, qty=Decimal(100))]

    async def main() -> None:
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed)
        feed.set("XYZ", "100.00", "100.08")
        await run_basket(orders, broker, feed, clock, CONFIG, run_id="b", sinks=[sink])

    with pytest.raises(JournalError, match="disk full"):
        run_virtual(main)
    (ended,) = sink.of(RunEnded)
    assert ended.status == "failed"


class JournalFullAtRunEnd(Recorder):
    async def emit(self, event: RunEvent) -> None:
        await super().emit(event)
        if isinstance(event, OrderUpdated) and self.of(PhaseEnded):
            raise JournalError("journal write failed: disk full")


def test_a_journal_failing_at_the_runs_end_raises_the_typed_error_itself_not_a_group() -> None:
    """Guard: the run's end handles its legs in a task group; a write failing there (the order it reads after
    the phase) is raised as the `JournalError` itself, as a phase's is, never as an `ExceptionGroup`."""
    sink = JournalFullAtRunEnd()

    async def main() -> None:
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed, auto_fill=False)
        broker.cancel_latency = timedelta(seconds=17)  # the order still works when the phase ends (45 s)
        feed.set("XYZ", "100.00", "100.08")
        await run_execution(BUY, [], broker, feed, clock, HARD_STOP_AT_40, run_id="t", sinks=[sink])

    with pytest.raises(JournalError, match="disk full"):
        run_virtual(main)
    (ended,) = sink.of(RunEnded)
    assert ended.status == "failed"


def test_a_refused_escalation_cancel_is_retried_before_anything_is_sent() -> None:
    def script(w: World) -> None:
        w.broker.refuse_cancels = 1

    config = classic_ladder(repeg_steps=(Decimal("0.25"),))
    result, world = execute(BUY, script, config=config, auto_fill=False)
    refused = world.sink.of(OrderFailed)
    assert [r.action for r in refused] == [IntentAction.CANCEL]
    assert len(world.broker.cancels()) >= 2
    market = [r for r in world.broker.submitted() if r.order_type is OrderType.MARKET]
    assert [m.qty for m in market] == [Decimal(100)]
    assert result.legs[0].escalated


def test_an_escalation_cancel_the_broker_rejects_later_is_asked_again_at_the_next_check() -> None:
    """The cancel is accepted, then refused by a pushed `order_cancel_rejected`: the order is still live. The leg
    leaves `canceling`, its cancel is asked again one check later (not at once, not never), and the remainder goes
    out at market once that one is confirmed."""

    def script(w: World) -> None:
        w.broker.reject_cancels_later = 1

    config = classic_ladder(repeg_steps=(Decimal("0.25"),))
    result, world = execute(BUY, script, config=config, auto_fill=False)
    first, second = world.sink.intents(IntentAction.CANCEL)[:2]
    assert first.order_id == second.order_id
    assert second.ts - first.ts == config.check_interval
    assert not world.sink.of(OrderFailed)
    market = [r for r in world.broker.submitted() if r.order_type is OrderType.MARKET]
    assert [m.qty for m in market] == [Decimal(100)]
    assert not [o for o in world.broker.orders.values() if o.status.is_open]
    (leg,) = result.legs
    assert leg.escalated


def test_polling_survives_a_broker_outage() -> None:
    def script(w: World) -> None:
        w.feed.at(at(5), "XYZ", "99.96", "100.00")
        w.broker.unavailable_reads = 3

    result, _ = execute(BUY, script, pushes_updates=False)
    assert result.status is RunStatus.COMPLETED


def test_an_unanswered_reconciliation_leaves_the_leg_working_until_the_broker_answers() -> None:
    def script(w: World) -> None:
        w.broker.refuse_cancels = 1
        w.broker.unavailable_reads = 1

    config = classic_ladder(repeg_steps=(Decimal("0.25"),))
    result, world = execute(BUY, script, config=config, auto_fill=False)
    assert [r.action for r in world.sink.of(OrderFailed)] == [IntentAction.CANCEL]
    assert result.legs[0].escalated
    assert [m.qty for m in world.broker.submitted() if m.order_type is OrderType.MARKET] == [Decimal(100)]


def test_a_refused_replace_is_tried_again_at_the_next_step_not_at_the_next_check() -> None:
    def script(w: World) -> None:
        w.broker.refuse_replace = True
        w.clock.call_at(at(10.5), lambda: setattr(w.broker, "refuse_replace", False))

    _, world = execute(BUY, script)
    replaces = world.sink.intents(IntentAction.REPLACE)
    assert [(e.ts, e.step) for e in replaces] == [(at(10), 1), (at(20), 2), (at(30), 3)]
    assert [e.action for e in world.sink.of(OrderFailed)] == [IntentAction.REPLACE]


def test_replaces_the_broker_always_refuses_are_sent_once_a_step_and_the_leg_escalates_on_time() -> None:
    # Every replace refused: before the fix, the same replace went again at every 1 s check (30 in 30 s).
    _, world = execute(BUY, lambda w: setattr(w.broker, "refuse_replace", True), auto_fill=False)
    replaces = world.sink.intents(IntentAction.REPLACE)
    assert [(e.ts, e.step) for e in replaces] == [(at(10), 1), (at(20), 2), (at(30), 3)]
    assert len(world.broker.replaced()) == 3
    assert [e.error for e in world.sink.of(OrderFailed)] == ["OrderNotCancelableError"] * 3
    (escalated,) = world.sink.of(LegEscalated)
    assert (escalated.ts, escalated.reason) == (at(40), "steps_exhausted")


def test_a_replace_left_unanswered_is_tried_again_at_the_next_check() -> None:
    # Guard (passes before the fix): a timeout is no refusal of the price; its retry keeps the check interval.
    _, world = execute(BUY, lambda w: setattr(w.broker, "unavailable_replaces", 1))
    replaces = world.sink.intents(IntentAction.REPLACE)
    assert [e.ts for e in replaces] == [at(10), at(11), at(21), at(31)]
    assert [e.error for e in world.sink.of(OrderFailed)] == ["BrokerUnavailableError"]


def test_buys_wait_until_a_slow_sell_cancel_is_confirmed_at_the_broker() -> None:
    def script(w: World) -> None:
        buy_world(w)
        w.feed.set("XYZ", "100.00", "100.08")  # the sell never fills passively
        w.broker.auto_fill = False
        w.broker.cancel_latency = timedelta(seconds=200)  # the escalation cancel at 40 s lands at 240 s

    _, world = execute(SELL_THEN_BUY, script)
    sell = next(e for e in world.sink.of(LegFinished) if e.leg_index == 0)
    assert sell.status == "incomplete"
    first_buy = next(e for e in world.sink.intents(IntentAction.SUBMIT) if e.leg_index in (1, 2))
    assert first_buy.ts >= at(240)


def test_a_sell_order_left_open_by_refused_cancels_is_cancelled_before_the_buys_start() -> None:
    def script(w: World) -> None:
        buy_world(w)
        w.feed.set("XYZ", "100.00", "100.08")
        w.broker.auto_fill = False  # the sell, escalated to market at 40 s, is still working at the hard stop
        w.clock.call_at(at(129.5), lambda: setattr(w.broker, "refuse_cancels", 8))  # beyond the grace window

    result, world = execute(SELL_THEN_BUY, script)
    (sell,) = [
        o for o in world.broker.orders.values() if o.symbol == "XYZ" and o.order_type is OrderType.MARKET
    ]
    assert not sell.status.is_open
    assert [e for e in world.sink.of(OrderIntent) if e.leg_index in (1, 2)]
    assert result.legs[0].status is LegStatus.INCOMPLETE


def test_buys_are_skipped_when_a_sell_order_never_closes() -> None:
    def script(w: World) -> None:
        buy_world(w)
        w.feed.set("XYZ", "100.00", "100.08")
        w.broker.auto_fill = False
        w.broker.cancel_latency = timedelta(days=1)

    result, world = execute(SELL_THEN_BUY, script)
    assert not [e for e in world.sink.of(OrderIntent) if e.leg_index in (1, 2)]
    assert [leg.status for leg in result.legs[1:]] == [LegStatus.SKIPPED, LegStatus.SKIPPED]


def test_a_submit_whose_answer_was_lost_adopts_the_order_the_broker_created() -> None:
    def script(w: World) -> None:
        w.broker.lost_answers = 1  # the submit reaches the broker, its answer times out
        w.feed.at(at(5), "XYZ", "99.96", "100.00")

    result, world = execute(BUY, script)
    assert len(world.broker.orders) == 1
    assert result.legs[0].status is LegStatus.FILLED
    assert result.legs[0].order_ids == ("o1",)
    assert result.status is RunStatus.COMPLETED


def test_a_submit_of_unknown_outcome_is_looked_up_again_until_the_broker_answers() -> None:
    def script(w: World) -> None:
        w.broker.lost_answers = 1  # the submit reaches the broker, its answer times out,
        w.broker.unavailable_lookups = 2  # and the broker cannot be asked about it for a while
        w.feed.at(at(5), "XYZ", "99.96", "100.00")

    result, world = execute(BUY, script)
    assert len(world.broker.orders) == 1
    assert not world.sink.of(OrderFailed)
    (leg,) = result.legs
    assert leg.status is LegStatus.FILLED
    assert leg.order_ids == ("o1",)


@pytest.mark.parametrize("pushes_updates", [True, False])
def test_a_submit_that_lands_after_its_timeout_and_lookup_is_never_sent_again_under_a_new_id(
    pushes_updates: bool,
) -> None:
    """The submit times out before the broker executed it, and the lookup by client order id finds nothing yet:
    its outcome is still unknown, so the remainder must not go out under a new id (two live orders for one leg).
    The request is sent again under the SAME id, which a broker executes at most once."""

    def script(w: World) -> None:
        w.broker.late_landings = 1
        w.feed.at(at(5), "XYZ", "99.96", "100.00")

    result, world = execute(BUY, script, pushes_updates=pushes_updates)
    assert len(world.broker.orders) == 1
    assert {r.client_order_id for r in world.broker.submitted()} == {"t-L0000-A00"}
    (leg,) = result.legs
    assert leg.status is LegStatus.FILLED
    assert leg.filled_qty == Decimal(100)
    assert sum(o.filled_qty for o in world.broker.orders.values()) == Decimal(100)


def test_a_duplicate_id_answer_is_proof_the_order_exists_even_while_lookups_lag() -> None:
    """The submit's answer is lost and the broker's reads lag: the lookup says "no such order", the re-send under
    the same id is refused as a duplicate, and the next lookup still lags. A duplicate is the broker saying the
    order exists, so the submit stays of unknown outcome: no second order under a new id."""

    def script(w: World) -> None:
        w.broker.lost_answers = 1
        w.broker.lagging_lookups = 4
        w.feed.at(at(5), "XYZ", "99.96", "100.00")

    result, world = execute(BUY, script, pushes_updates=False)  # only lookups can tell
    assert len(world.broker.orders) == 1
    assert {r.client_order_id for r in world.broker.submitted()} == {"t-L0000-A00"}
    (leg,) = result.legs
    assert (leg.status, leg.filled_qty) == (LegStatus.FILLED, Decimal(100))


def test_a_replace_whose_answer_was_lost_manages_the_replacement_the_broker_created() -> None:
    def script(w: World) -> None:
        w.clock.call_at(at(9), lambda: setattr(w.broker, "lost_answers", 1))  # the first re-peg's answer

    result, world = execute(BUY, script)
    assert not [o for o in world.broker.orders.values() if o.status.is_open]
    (leg,) = result.legs
    assert leg.order_ids[:2] == ("o1", "o2")
    assert leg.status is LegStatus.FILLED
    assert leg.filled_qty == Decimal(100)


@pytest.fixture
def every_log_line() -> Iterator[list[MutableMapping[str, object]]]:
    """The log lines of the test at every level. `capture_logs` keeps the configured level filter, and an earlier
    test (or `execute_async`) may have configured `warning`: that would hide the info lines checked here."""
    with every_level_captured() as lines:
        yield lines


def test_every_leg_log_line_names_the_run_the_leg_the_symbol_and_the_order(
    every_log_line: list[MutableMapping[str, object]],
) -> None:
    def script(w: World) -> None:
        w.broker.refuse_cancels = 1  # broker_refused, then reconcile_failed
        w.broker.unavailable_reads = 1

    config = classic_ladder(repeg_steps=(Decimal("0.25"),))
    execute(BUY, script, config=config, auto_fill=False)
    leg_lines = [line for line in every_log_line if line.get("correlation_id") == "t-L0000"]
    seen = {line["event"] for line in leg_lines}
    assert {"broker_refused", "reconcile_failed", "leg_escalated", "leg_finished"} <= seen
    for line in leg_lines:
        assert (line["run_id"], line["symbol"]) == ("t", "XYZ"), line
        assert "order_id" in line, line


def test_a_failed_poll_is_logged_with_its_symbol_and_order() -> None:
    def script(w: World) -> None:
        w.feed.at(at(5), "XYZ", "99.96", "100.00")
        w.broker.unavailable_reads = 1

    with structlog.testing.capture_logs() as lines:
        execute(BUY, script, pushes_updates=False)
    (failed,) = [line for line in lines if line["event"] == "poll_failed"]
    assert (failed["run_id"], failed["symbol"], failed["order_id"]) == ("t", "XYZ", "o1")


def test_a_market_order_sent_for_want_of_a_valid_quote_takes_no_stale_quote_as_arrival() -> None:
    config = classic_ladder(on_no_quote=OnNoQuote.MARKET)

    def script(w: World) -> None:
        w.feed._quotes["XYZ"] = quote("XYZ", "90.00", "90.08", T0 - timedelta(minutes=10))
        w.broker.fill_open_at(at(31), "XYZ", Decimal(100), Decimal("100.00"))

    result, world = execute(SELL, script, config=config, fresh=False, auto_fill=False)
    (intent,) = world.sink.intents(IntentAction.SUBMIT)
    assert intent.order_type is OrderType.MARKET
    assert intent.quote is None
    (leg,) = result.legs
    assert leg.filled_qty == Decimal(100)
    assert leg.arrival_mid is None
    assert leg.cost_bps is None


BUYS_WITH_AN_UNQUOTED_LEG = [
    LegSpec(index=0, symbol="XYZ", side=Side.BUY, qty=Decimal(10)),
    LegSpec(index=1, symbol="NOQ", side=Side.BUY, qty=Decimal(5)),
]


def test_a_quantity_buy_that_never_gets_a_valid_quote_is_skipped_not_sent_past_the_buying_power() -> None:
    # XYZ alone takes the whole buying power; NOQ's cost is unknown, so sending it (even as the market order
    # on_no_quote = market asks for) could exceed the buying power: it is skipped, and says why.
    def script(w: World) -> None:
        w.broker.buying_power = Decimal("1006")  # 10 * 100.08 * 1.005 = 1005.804

    config = classic_ladder(on_no_quote=OnNoQuote.MARKET)
    result, world = execute(BUYS_WITH_AN_UNQUOTED_LEG, script, config=config)
    assert [request.symbol for request in world.broker.submitted()] == ["XYZ"]
    skipped = [e for e in world.sink.of(LegFinished) if e.leg_index == 1]
    assert [(e.status, e.reason) for e in skipped] == [
        ("skipped", "no valid quote to bound its cost by the buying power")
    ]
    assert result.legs[0].requested_qty == Decimal(10)


def test_a_quantity_buy_whose_quote_arrives_within_quote_wait_counts_toward_the_scale() -> None:
    def script(w: World) -> None:
        w.broker.buying_power = Decimal("1006")
        w.feed.at(at(10), "NOQ", "99.92", "100.00")

    result, world = execute(BUYS_WITH_AN_UNQUOTED_LEG, script)
    buy_phase = next(e for e in world.sink.of(PhaseStarted) if e.side is Side.BUY)
    assert buy_phase.ts == at(10)
    assert buy_phase.scale == Decimal("0.666974")  # 1006 / ((10 * 100.08 + 5 * 100.00) * 1.005)
    asks = {0: Decimal("100.08"), 1: Decimal("100.00")}
    cost = sum(leg.requested_qty * asks[leg.index] * Decimal("1.005") for leg in result.legs)
    assert cost <= Decimal(1006)


def test_a_buy_scaled_below_min_notional_is_skipped_not_sent() -> None:
    specs = [
        LegSpec(index=0, symbol="XYZ", side=Side.BUY, qty=Decimal(100)),
        # $5 unscaled, $0.49 at the scale of about 0.099 that XYZ's $10,000 needs
        LegSpec(index=1, symbol="ABC", side=Side.BUY, qty=Decimal("0.5")),
    ]

    def script(w: World) -> None:
        w.feed.set("ABC", "9.99", "10.00")
        w.broker.buying_power = Decimal(1000)

    result, world = execute(specs, script)
    assert [request.symbol for request in world.broker.submitted()] == ["XYZ"]
    (skipped,) = [e for e in world.sink.of(LegFinished) if e.leg_index == 1]
    assert skipped.status == "skipped"
    assert "below min_notional 1" in skipped.reason
    assert result.status is RunStatus.COMPLETED_WITH_SKIPS


def test_a_remainder_counts_fills_of_a_replaced_order_whose_updates_arrive_late() -> None:
    """o1 fills 30 and is replaced by o2; the stream delivers o1's updates only after o2 was cancelled for the
    escalation. The remainder sent at market is the 70 still unfilled, not 100: nothing is bought twice."""

    def script(w: World) -> None:
        w.broker.delayed_updates["o1"] = timedelta(seconds=60)
        w.clock.call_at(at(5), lambda: w.broker.fill("o1", Decimal(30)))

    config = classic_ladder(repeg_steps=(Decimal("0.25"),))
    result, world = execute(BUY, script, config=config)
    market = [r for r in world.broker.submitted() if r.order_type is OrderType.MARKET]
    assert [m.qty for m in market] == [Decimal(70)]
    assert world.broker.positions["XYZ"] == Decimal(100)
    (leg,) = result.legs
    assert leg.filled_qty == Decimal(100)


def test_a_remainder_waits_while_the_broker_cannot_say_how_much_a_replaced_order_filled() -> None:
    def script(w: World) -> None:
        w.broker.delayed_updates["o1"] = timedelta(seconds=60)
        w.clock.call_at(at(5), lambda: w.broker.fill("o1", Decimal(30)))
        w.clock.call_at(at(19.5), lambda: setattr(w.broker, "unavailable_reads", 1))

    config = classic_ladder(repeg_steps=(Decimal("0.25"),))
    with structlog.testing.capture_logs() as lines:
        result, world = execute(BUY, script, config=config)
    (deferred,) = [line for line in lines if line["event"] == "remainder_deferred"]
    assert (deferred["symbol"], deferred["order_id"]) == ("XYZ", "o1")
    market = [r for r in world.broker.submitted() if r.order_type is OrderType.MARKET]
    assert [m.qty for m in market] == [Decimal(70)]
    assert result.legs[0].filled_qty == Decimal(100)


def test_a_deferred_remainder_asks_the_broker_again_only_at_the_next_check() -> None:
    """While an earlier order's fills are unknown the remainder is deferred to the leg's next check, as the log
    says: the same decision is not repeated at once, each time costing a broker read and a warning (four reads a
    check per deferred leg, enough to run into a broker's request rate limit)."""
    reads: list[object] = []

    def script(w: World) -> None:
        w.broker.delayed_updates["o1"] = timedelta(seconds=60)
        w.clock.call_at(at(5), lambda: w.broker.fill("o1", Decimal(30)))
        w.clock.call_at(at(19.5), lambda: setattr(w.broker, "unavailable_reads", 3))
        get_order = w.broker.get_order

        async def counted(order_id: str) -> object:
            reads.append(w.clock.now())
            return await get_order(order_id)

        w.broker.get_order = counted  # type: ignore[method-assign]

    config = classic_ladder(repeg_steps=(Decimal("0.25"),))
    with structlog.testing.capture_logs() as lines:
        result, world = execute(BUY, script, config=config)
    deferred = [line for line in lines if line["event"] == "remainder_deferred"]
    assert len(deferred) == 3
    assert len(set(reads)) == len(reads)
    market = [r for r in world.broker.submitted() if r.order_type is OrderType.MARKET]
    assert [m.qty for m in market] == [Decimal(70)]
    assert result.legs[0].filled_qty == Decimal(100)


def test_a_polled_order_still_open_after_its_escalation_cancel_is_cancelled_again() -> None:
    """Without pushed updates the broker's later refusal of a cancel is never reported: the order just stays open.
    A poll a check after the cancel that still finds it open (and not pending cancel) takes the cancel as refused,
    so the leg does not wait in `canceling` to the hard stop and leave the order open behind the run."""

    def script(w: World) -> None:
        w.broker.reject_cancels_later = 1

    config = classic_ladder(repeg_steps=(Decimal("0.25"),))
    result, world = execute(BUY, script, config=config, pushes_updates=False)
    first, second = world.sink.intents(IntentAction.CANCEL)
    assert first.order_id == second.order_id == "o2"
    assert second.ts - first.ts <= 3 * config.check_interval
    assert not [o for o in world.broker.orders.values() if o.status.is_open]
    market = [r for r in world.broker.submitted() if r.order_type is OrderType.MARKET]
    assert [m.qty for m in market] == [Decimal(100)]
    (leg,) = result.legs
    assert leg.status is LegStatus.FILLED


def test_a_polled_order_of_a_leg_given_up_still_open_after_its_cancel_is_cancelled_again() -> None:
    def script(w: World) -> None:
        w.feed.at(at(8), "XYZ", "110.00", "110.08")  # the 10 s re-peg breaks the collar: the leg gives up
        w.broker.reject_cancels_later = 1  # its cancel is accepted, then refused without a word

    result, world = execute(BUY, script, auto_fill=False, pushes_updates=False)
    assert not [o for o in world.broker.orders.values() if o.status.is_open]
    assert world.broker.cancels() == ["cancel:o1", "cancel:o1"]
    assert result.legs[0].status is LegStatus.FAILED


def test_a_replacement_counts_fills_of_an_earlier_order_whose_updates_arrive_late() -> None:
    """o1 fills 30 and is replaced by o2; its updates come late. The next re-peg replaces o2 for the 70 still
    unfilled, not for 100: a broker that does not cap a replacement at the order's remainder over-trades."""

    def script(w: World) -> None:
        w.broker.delayed_updates["o1"] = timedelta(seconds=60)
        w.clock.call_at(at(5), lambda: w.broker.fill("o1", Decimal(30)))

    config = classic_ladder(repeg_steps=(Decimal("0.5"), Decimal("1.0")))
    result, world = execute(BUY, script, config=config)
    assert [r.qty for r in world.broker.replaced()] == [Decimal(100), Decimal(70)]
    assert world.broker.positions["XYZ"] == Decimal(100)
    assert result.legs[0].filled_qty == Decimal(100)


def test_a_polled_leg_learns_the_last_fills_of_the_order_it_replaced() -> None:
    """Without pushed updates, o1's fill of 30 just before its replace is seen only by asking about o1: the leg,
    ended at the hard stop with its cancel still unconfirmed, reports the 30 it bought, not 0."""

    def script(w: World) -> None:
        w.broker.fill_before_replace["o1"] = Decimal(30)
        w.broker.cancel_latency = timedelta(seconds=500)

    config = classic_ladder(repeg_steps=(Decimal("0.25"),))
    result, world = execute(BUY, script, config=config, auto_fill=False, pushes_updates=False)
    assert world.broker.orders["o1"].filled_qty == Decimal(30)
    (leg,) = result.legs
    assert leg.status is LegStatus.INCOMPLETE
    assert leg.filled_qty == Decimal(30)


class _Crash(BaseException):
    """Stands for SIGKILL: not an `Exception`, so the engine's error handling never sees it."""


@dataclass
class _CrashAfter:
    """Journals every event, then "dies" right after the `nth` one of kill point `point` (`point_of`)."""

    journal: SqliteJournal
    point: str
    nth: int = 1

    async def emit(self, event: RunEvent) -> None:
        await self.journal.emit(event)
        if point_of(event) == self.point:
            self.nth -= 1
            if self.nth == 0:
                raise _Crash


@dataclass
class _Down:
    """A run on the fake broker that "dies" at a kill point, then is resumed: the journal and the broker outlive
    the crash, so a test can change the broker while the run is down."""

    clock: VirtualClock
    feed: FakeFeed
    broker: FakeBroker
    journal: SqliteJournal

    async def crash_at(self, point: str, config: ExecutionConfig = CONFIG, *, nth: int = 1) -> None:
        with contextlib.suppress(_Crash):
            sinks = (_CrashAfter(self.journal, point, nth),)
            await run_execution(BUY, (), self.broker, self.feed, self.clock, config, run_id="r1", sinks=sinks)

    async def resume(self, config: ExecutionConfig = CONFIG) -> ExecutionResult:
        return await resume_run("r1", self.journal, self.broker, self.feed, self.clock, config=config)

    async def finish(self, config: ExecutionConfig = CONFIG) -> tuple[ExecutionResult, FakeBroker]:
        """Resume the run and close its journal: the result and the broker, as most of these tests check them."""
        result = await self.resume(config)
        self.journal.close()
        return result, self.broker


def _down(tmp_path: Path, *, auto_fill: bool = True, pushes_updates: bool = True) -> _Down:
    """Clock, feed (XYZ 100.00 / 100.08), fake broker and durable journal of a `_Down` run (inside the loop)."""
    clock = VirtualClock(T0)
    feed = FakeFeed(clock)
    broker = FakeBroker(clock, feed, auto_fill=auto_fill, pushes_updates=pushes_updates)
    feed.set("XYZ", "100.00", "100.08")
    return _Down(clock, feed, broker, SqliteJournal(tmp_path / "j.db", durability="full"))


def test_a_polled_order_whose_cancel_resume_sent_is_cancelled_again_when_still_open(tmp_path: Path) -> None:
    """Killed right after the escalation cancel's intent: resume sends that cancel itself, the broker accepts and
    then refuses it without a word. The poll still takes the order's staying open as a refusal, so the order is
    cancelled again and the remainder sent, instead of the leg waiting in `canceling` and the order outliving
    the run."""
    config = classic_ladder(repeg_steps=(Decimal("0.25"),))

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        down = _down(tmp_path, pushes_updates=False)
        broker, journal = down.broker, down.journal
        await down.crash_at("cancel-intent", config)
        await journal.flush()
        assert fold_run(journal.events("r1")).leg(0).status is LegStatus.CANCELING
        broker.reject_cancels_later = 1
        return await down.finish(config)

    result, broker = run_virtual(main)
    assert not [o for o in broker.orders.values() if o.status.is_open]
    assert broker.cancels() == ["cancel:o2", "cancel:o2"]
    assert result.legs[0].status is LegStatus.FILLED


def test_a_resumed_runs_result_holds_a_fill_that_raced_its_last_phases_unconfirmed_cancel(
    tmp_path: Path,
) -> None:
    """As `test_a_fill_racing_the_last_phases_unconfirmed_cancel_is_looked_up_before_the_run_ends`, in a run
    killed after its first submit and resumed: the resumed run asks the broker for the order it never saw closed
    before it ends too, instead of ending `failed` with 0 filled while the broker bought the 100 shares."""
    config = HARD_STOP_AT_40

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        down = _down(tmp_path, auto_fill=False)
        await down.crash_at("submit-ack", config)
        down.broker.cancel_latency = timedelta(seconds=60)
        down.broker.delayed_updates["o3"] = timedelta(seconds=20)  # the order working at the deadline
        down.broker.fill_open_at(at(42), "XYZ", Decimal(100))
        return await down.finish(config)

    result, broker = run_virtual(main)
    (leg,) = result.legs
    assert broker.positions["XYZ"] == Decimal(100)
    assert leg.filled_qty == Decimal(100)
    assert leg.status is LegStatus.FILLED
    assert result.status is RunStatus.COMPLETED


def test_a_resumed_runs_end_waits_for_its_cancels_confirmation(tmp_path: Path) -> None:
    """As `test_the_runs_end_waits_for_its_cancels_confirmation`, in a run killed after its first submit and
    resumed: its end (the same as a fresh run's) waits for the cancel the broker confirms at 47 s too."""

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        down = _down(tmp_path, auto_fill=False)
        await down.crash_at("submit-ack", HARD_STOP_AT_40)
        down.broker.cancel_latency = timedelta(seconds=17)
        return await down.finish(HARD_STOP_AT_40)

    result, broker = run_virtual(main)
    assert broker.orders["o3"].status is OrderStatus.CANCELED
    assert result.legs[0].error is None


def test_a_resumed_run_with_no_grace_window_still_cancels_the_order_its_end_finds_working(
    tmp_path: Path,
) -> None:
    """A run killed after its first submit and resumed with grace_window = 0: the deadline's cancel (30 s) is slow
    and each read takes 0.5 s from 39 s. The resumed run's end looked the order up (40 s to 40.5 s), found it open,
    and skipped its cancel, the window past; every order not known closed now gets one cancel too."""
    config = HARD_STOP_AT_40.model_copy(update={"grace_window": 0.0})

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        down = _down(tmp_path, auto_fill=False)
        await down.crash_at("submit-ack", config)
        broker = down.broker
        broker.cancel_latency = timedelta(seconds=60)
        down.clock.call_at(at(39), lambda: setattr(broker, "read_delay", timedelta(seconds=0.5)))
        return await down.finish(config)

    with every_level_captured() as logs:
        result, broker = run_virtual(main)
    (cancelled,) = [line for line in logs if line["event"] == "run_end_cancel"]
    assert (cancelled["order_id"], cancelled["accepted"]) == ("o3", True)
    assert broker.cancels().count("cancel:o3") == 2  # the deadline's, then the run end's
    assert result.legs[0].error is not None
    assert "order o3 was still open at the broker (new) when last read" in result.legs[0].error


def test_a_replacement_waits_while_the_broker_cannot_say_how_much_an_earlier_order_filled() -> None:
    def script(w: World) -> None:
        w.broker.delayed_updates["o1"] = timedelta(seconds=60)
        w.clock.call_at(at(5), lambda: w.broker.fill("o1", Decimal(30)))
        w.clock.call_at(at(19.5), lambda: setattr(w.broker, "unavailable_reads", 1))

    config = classic_ladder(repeg_steps=(Decimal("0.5"), Decimal("1.0")))
    _, world = execute(BUY, script, config=config)
    replaces = world.sink.intents(IntentAction.REPLACE)
    assert [(e.ts, e.qty) for e in replaces] == [(at(10), Decimal(100)), (at(21), Decimal(70))]
    assert world.broker.positions["XYZ"] == Decimal(100)


def _overfilling_replacement(w: World) -> None:
    """The original order fills 40 while its replace is pending; the broker does not cap the replacement (sized
    100 from before that fill), which then fills in full: the leg's chain reports 140 of 100."""
    w.broker.auto_fill = False
    w.clock.call_at(at(9), lambda: w.broker.fill_before_replace.update({"o1": Decimal(40)}))
    w.broker.fill_open_at(at(12), "XYZ", Decimal(100))


def test_a_broker_over_fill_is_journaled_and_fails_the_leg_naming_quantity_and_filled() -> None:
    result, world = execute(BUY, _overfilling_replacement)
    fills = [e.update.order for e in world.sink.of(OrderUpdated) if e.update.event is OrderEvent.FILL]
    assert [(o.order_id, o.filled_qty) for o in fills] == [("o2", Decimal(100))]  # the broker's fill is kept
    (leg,) = result.legs
    assert leg.status is LegStatus.FAILED
    assert leg.filled_qty == Decimal(140)
    assert leg.error == "leg t-L0000: filled 140 exceeds quantity 100"
    assert result.status is RunStatus.PARTIAL
    assert build_result(fold_run(world.sink.events)) == result


def test_a_broker_over_fill_sends_nothing_more_for_the_leg() -> None:
    _, world = execute(BUY, _overfilling_replacement)
    assert len(world.broker.submitted()) == 1
    assert len(world.broker.replaced()) == 1
    assert not world.broker.cancels()


def _beside_an_abc_buy_filled_at(seconds: float, scenario: Script) -> tuple[list[LegSpec], Script]:
    """BUY's XYZ leg under `scenario`, and a second leg buying 10 ABC that the broker fills in full at `seconds`."""
    legs = [*BUY, LegSpec(index=1, symbol="ABC", side=Side.BUY, qty=Decimal(10))]

    def script(w: World) -> None:
        w.feed.set("ABC", "50.00", "50.10")
        scenario(w)
        w.clock.call_at(at(seconds), lambda: w.broker.fill(w.broker.open_order("ABC").order_id, Decimal(10)))

    return legs, script


def test_a_broker_over_fill_of_one_leg_lets_the_other_legs_finish() -> None:
    legs, script = _beside_an_abc_buy_filled_at(20, _overfilling_replacement)
    result, _ = execute(legs, script)
    assert [leg.status for leg in result.legs] == [LegStatus.FAILED, LegStatus.FILLED]
    assert result.status is RunStatus.PARTIAL


def test_a_broker_over_fill_is_logged_as_an_error_with_the_leg_fields(
    every_log_line: list[MutableMapping[str, object]],
) -> None:
    execute(BUY, _overfilling_replacement)
    (line,) = [line for line in every_log_line if line["event"] == "leg_overfilled"]
    assert line["log_level"] == "error"
    assert (line["run_id"], line["correlation_id"], line["symbol"]) == ("t", "t-L0000", "XYZ")
    assert (line["order_id"], line["qty"], line["filled_qty"]) == ("o2", "100", "140")
    assert line["error"] == "leg t-L0000: filled 140 exceeds quantity 100"


def test_resume_records_a_broker_over_fill_made_while_down_and_finishes_without_trading_the_leg(
    tmp_path: Path,
) -> None:
    """Killed once the replacement was accepted; while the run is down the uncapped replacement fills in full
    (140 of 100 over the chain). Resume records the fill, fails the leg and ends the run, sending nothing."""

    async def main() -> tuple[ExecutionResult, ExecutionResult, FakeBroker]:
        down = _down(tmp_path, auto_fill=False)
        broker, journal = down.broker, down.journal
        broker.fill_before_replace["o1"] = Decimal(40)
        await down.crash_at("replace-ack")
        broker.fill("o2", Decimal(100))
        result = await down.resume()
        await journal.flush()
        shown = result_from_events(journal.events("r1"))
        journal.close()
        return result, shown, broker

    result, shown, broker = run_virtual(main)
    (leg,) = result.legs
    assert (leg.status, leg.filled_qty) == (LegStatus.FAILED, Decimal(140))
    assert leg.error == "leg r1-L0000: filled 140 exceeds quantity 100"
    assert result.status is RunStatus.PARTIAL
    assert (len(broker.submitted()), len(broker.replaced()), broker.cancels()) == (1, 1, [])
    assert shown == result  # `repeg show` rebuilds the same result from the journal


def test_a_broker_over_fill_on_an_open_order_cancels_that_order() -> None:
    def overfill_open(w: World) -> None:
        order = w.broker.orders["o1"]
        over = order.model_copy(update={"status": OrderStatus.PARTIALLY_FILLED, "filled_qty": Decimal(120)})
        w.broker.orders["o1"] = over
        w.broker._push(OrderEvent.PARTIAL_FILL, over, None)  # a broker's report past the order's own quantity

    def script(w: World) -> None:
        w.broker.auto_fill = False
        w.clock.call_at(at(5), lambda: overfill_open(w))

    result, world = execute(BUY, script)
    assert world.broker.cancels() == ["cancel:o1"]
    assert world.broker.orders["o1"].status is OrderStatus.CANCELED
    (leg,) = result.legs
    assert (leg.status, leg.filled_qty) == (LegStatus.FAILED, Decimal(120))


def _over_fill_o1_and_leave_it_open(broker: FakeBroker) -> None:
    """While the run is down, the broker reports o1 (the 100-share leg's order) filled 120 and still open."""
    over = {"status": OrderStatus.PARTIALLY_FILLED, "filled_qty": Decimal(120)}
    broker.orders["o1"] = broker.orders["o1"].model_copy(update=over)


def test_resume_cancels_the_open_order_of_a_leg_the_broker_over_filled_while_down(tmp_path: Path) -> None:
    async def main() -> tuple[ExecutionResult, FakeBroker]:
        down = _down(tmp_path, auto_fill=False)
        broker = down.broker
        await down.crash_at("submit-ack")
        _over_fill_o1_and_leave_it_open(broker)
        return await down.finish()

    result, broker = run_virtual(main)
    assert broker.cancels() == ["cancel:o1"]
    assert broker.orders["o1"].status is OrderStatus.CANCELED
    (leg,) = result.legs
    assert (leg.status, leg.filled_qty) == (LegStatus.FAILED, Decimal(120))


def test_resume_asks_again_for_a_refused_cancel_of_an_over_filled_legs_open_order(tmp_path: Path) -> None:
    """The resumed run's cancel of an over-filled leg's still-open order is refused once (e.g. a transient
    broker error): it is requested again, as the live engine does, so the order does not outlive the run."""

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        down = _down(tmp_path, auto_fill=False)
        broker = down.broker
        await down.crash_at("submit-ack")
        _over_fill_o1_and_leave_it_open(broker)
        broker.refuse_cancels = 1
        return await down.finish()

    result, broker = run_virtual(main)
    assert broker.cancels() == ["cancel:o1", "cancel:o1"]
    assert broker.orders["o1"].status is OrderStatus.CANCELED
    assert result.legs[0].status is LegStatus.FAILED


@pytest.mark.parametrize("refusals", [1, 2])
def test_a_refused_cancel_of_an_over_filled_leg_is_asked_again_until_it_goes_out(refusals: int) -> None:
    """The cancel of an over-filled leg's open order is refused once, or twice in a row: it is requested again at
    each next check until it goes out, never dropped with the order left open behind the run."""

    def overfill_open(w: World) -> None:
        order = w.broker.orders["o1"]
        over = order.model_copy(update={"status": OrderStatus.PARTIALLY_FILLED, "filled_qty": Decimal(120)})
        w.broker.orders["o1"] = over
        w.broker.refuse_cancels = refusals
        w.broker._push(OrderEvent.PARTIAL_FILL, over, None)

    def script(w: World) -> None:
        w.broker.auto_fill = False
        w.clock.call_at(at(5), lambda: overfill_open(w))

    _, world = execute(BUY, script)
    assert world.broker.cancels() == ["cancel:o1"] * (refusals + 1)
    assert world.broker.orders["o1"].status is OrderStatus.CANCELED


def test_a_leg_filled_in_full_cancels_its_replacement_left_open_so_that_it_cannot_over_fill() -> None:
    """The original fills 40 while its replace is pending; the broker does not cap the replacement (100), which
    fills 60: the leg is filled, but the replacement is still open for 40 more. It is cancelled at once."""

    def script(w: World) -> None:
        w.broker.auto_fill = False
        w.clock.call_at(at(9), lambda: w.broker.fill_before_replace.update({"o1": Decimal(40)}))
        w.broker.fill_open_at(at(12), "XYZ", Decimal(60))

    result, world = execute(BUY, script)
    assert world.broker.cancels() == ["cancel:o2"]
    assert world.broker.orders["o2"].status is OrderStatus.CANCELED
    assert (result.status, result.legs[0].filled_qty) == (RunStatus.COMPLETED, Decimal(100))


def test_resume_cancels_the_replacement_a_filled_leg_left_open_while_down(tmp_path: Path) -> None:
    """Killed once the uncapped replacement (100) was accepted, after the original filled 40; while the run is
    down the replacement fills 60: resume finds the leg filled and cancels the replacement, open for 40 more."""

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        down = _down(tmp_path, auto_fill=False)
        broker = down.broker
        broker.fill_before_replace["o1"] = Decimal(40)
        await down.crash_at("replace-ack")
        broker.fill("o2", Decimal(60))
        return await down.finish()

    result, broker = run_virtual(main)
    assert broker.cancels() == ["cancel:o2"]
    assert broker.orders["o2"].status is OrderStatus.CANCELED
    assert (result.status, result.legs[0].filled_qty) == (RunStatus.COMPLETED, Decimal(100))


def test_an_over_fill_logged_before_a_crash_is_not_logged_again_by_the_resume(tmp_path: Path) -> None:
    """The broker over-fills the leg (120 of 100, order still open); the run logs it and dies right after the
    intent of the order's cancel. The resumed run knows the over-fill from the journal: it cancels the order but
    does not report the same over-fill a second time (one alert per over-fill)."""

    def overfill_open(broker: FakeBroker) -> None:
        over = {"status": OrderStatus.PARTIALLY_FILLED, "filled_qty": Decimal(120)}
        broker.orders["o1"] = broker.orders["o1"].model_copy(update=over)
        broker._push(OrderEvent.PARTIAL_FILL, broker.orders["o1"], None)

    async def main() -> None:
        down = _down(tmp_path, auto_fill=False)
        broker, journal = down.broker, down.journal
        down.clock.call_at(at(5), lambda: overfill_open(broker))
        await down.crash_at("cancel-intent")
        await down.resume()
        journal.close()

    with structlog.testing.capture_logs() as lines:
        run_virtual(main)
    assert len([line for line in lines if line["event"] == "leg_overfilled"]) == 1


def _overfill_during_a_replace_whose_answer_is_lost(w: World) -> None:
    """o1 fills 40 while its replace is pending: its uncapped replacement o2 (100) is open with 60 left for the
    leg. At the next re-peg (20 s) o2 fills 70 while its own replace is pending (110 of 100 over the chain), the
    broker replaces it by o3 (60) anyway, and the answer is lost with the lookup by client order id failing too:
    the engine learns the over-fill from o2's reconciliation, before anything told it that o3 exists."""
    _overfilling_replacement_until_the_second_repeg(w)

    def lose_the_answer() -> None:
        w.broker.fill_before_replace["o2"] = Decimal(70)
        w.broker.lost_answers = 1
        w.broker.unavailable_lookups = 1

    w.clock.call_at(at(19), lose_the_answer)


def _overfilling_replacement_until_the_second_repeg(w: World) -> None:
    w.broker.auto_fill = False
    w.clock.call_at(at(9), lambda: w.broker.fill_before_replace.update({"o1": Decimal(40)}))


@pytest.mark.parametrize("refusals", [0, 1])
def test_a_broker_over_fill_learned_while_a_replace_answer_was_lost_cancels_the_replacement(
    refusals: int,
) -> None:
    """The replacement o3 is cancelled once the broker reports it, and asked again after a refused cancel."""

    def script(w: World) -> None:
        _overfill_during_a_replace_whose_answer_is_lost(w)
        w.clock.call_at(at(19.5), lambda: setattr(w.broker, "refuse_cancels", refusals))

    result, world = execute(BUY, script)
    (leg,) = result.legs
    assert (leg.status, leg.filled_qty) == (LegStatus.FAILED, Decimal(110))
    assert leg.error == "leg t-L0000: filled 110 exceeds quantity 100"
    assert world.broker.orders["o3"].replaces == "o2"  # the replace did reach the broker
    assert world.broker.cancels() == ["cancel:o3"] * (refusals + 1)
    assert world.broker.orders["o3"].status is OrderStatus.CANCELED


def test_a_leg_filled_in_full_while_a_replace_answer_was_lost_cancels_the_replacement() -> None:
    """As above, but o2 fills exactly the 60 the leg had left while its replace is pending: the leg is filled,
    and o3 (60, open) could only over-fill it. It is cancelled once the broker reports it."""

    def script(w: World) -> None:
        _overfill_during_a_replace_whose_answer_is_lost(w)
        w.clock.call_at(at(19.5), lambda: w.broker.fill_before_replace.update({"o2": Decimal(60)}))

    result, world = execute(BUY, script)
    assert (result.status, result.legs[0].filled_qty) == (RunStatus.COMPLETED, Decimal(100))
    assert world.broker.cancels() == ["cancel:o3"]
    assert world.broker.orders["o3"].status is OrderStatus.CANCELED


@pytest.mark.parametrize("filled_in_full", [True, False])
def test_a_polled_replacement_missed_once_after_its_leg_ended_is_asked_again_and_cancelled(
    filled_in_full: bool,
) -> None:
    """As above on a broker that does not push, whose first answer about o3 is lost too: the leg is filled (or
    over-filled) naming o2, replaced. The run asks again for o2's replacement and cancels it, instead of leaving
    o3 open at the broker after the run, where it could fill the leg further."""

    def script(w: World) -> None:
        _overfill_during_a_replace_whose_answer_is_lost(w)
        if filled_in_full:
            w.clock.call_at(at(19.5), lambda: w.broker.fill_before_replace.update({"o2": Decimal(60)}))
        _first_read_of_o3_fails(w.broker)

    result, world = execute(BUY, script, pushes_updates=False)
    filled = Decimal(100) if filled_in_full else Decimal(110)
    assert result.legs[0].filled_qty == filled
    assert world.broker.cancels() == ["cancel:o3"]
    assert world.broker.orders["o3"].status is OrderStatus.CANCELED


def test_a_replacement_reported_within_the_grace_window_after_its_leg_ended_restarts_the_window() -> None:
    """As above (the leg filled in full naming o2, its replacement o3 unread and cancelled by id), but the stream
    delivers o3's updates 3 s late: o3 is reported open at 23 s, within the grace window the leg's end at 20 s
    opened, and its cancel is confirmed at 25 s. The phase ends a grace window after o3 closed, not at 25 s."""

    def script(w: World) -> None:
        _overfill_during_a_replace_whose_answer_is_lost(w)
        w.clock.call_at(at(19.5), lambda: w.broker.fill_before_replace.update({"o2": Decimal(60)}))
        w.broker.cancel_latency = timedelta(seconds=2)
        w.broker.delayed_updates["o3"] = timedelta(seconds=3)
        _first_read_of_o3_fails(w.broker)

    result, world = execute(BUY, script)
    (finished,) = world.sink.of(LegFinished)
    assert (finished.ts, finished.status) == (at(20), LegStatus.FILLED.value)
    assert world.broker.cancels() == ["cancel:o3"]
    (ended,) = world.sink.of(PhaseEnded)
    assert ended.ts == at(25) + CONFIG.grace
    assert result.status is RunStatus.COMPLETED


def _first_read_of_o3_fails(broker: FakeBroker) -> None:
    read = broker.get_order
    failures = ["o3"]

    async def get_order(order_id: str) -> BrokerOrder:
        if order_id in failures:
            failures.remove(order_id)
            raise BrokerUnavailableError("scripted outage of a read of o3")
        return await read(order_id)

    broker.get_order = get_order  # type: ignore[method-assign]


def test_resume_cancels_the_replacement_of_an_order_over_filled_while_its_replace_was_in_flight(
    tmp_path: Path,
) -> None:
    """Killed right after the second re-peg's replace intent, whose request had reached the broker: o2 (the
    uncapped replacement of o1, which filled 40) fills 70 of the 60 the leg had left, then is replaced by o3 (60).
    Resume learns the over-fill from o2 before it learns of o3: the leg fails, and o3, open, is cancelled."""

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        down = _down(tmp_path, auto_fill=False)
        broker, journal = down.broker, down.journal
        broker.fill_before_replace["o1"] = Decimal(40)
        await down.crash_at("replace-intent", nth=2)
        await journal.flush()
        intent = journal.events("r1")[-1]
        assert isinstance(intent, OrderIntent)
        assert intent.limit_price is not None
        assert intent.qty is not None
        broker.fill_before_replace["o2"] = Decimal(70)
        request = ReplaceRequest(
            order_id="o2",
            client_order_id=intent.client_order_id,
            qty=intent.qty,
            limit_price=intent.limit_price,
        )
        await broker.replace_order(request)
        return await down.finish()

    result, broker = run_virtual(main)
    (leg,) = result.legs
    assert (leg.status, leg.filled_qty) == (LegStatus.FAILED, Decimal(110))
    assert broker.cancels() == ["cancel:o3"]
    assert broker.orders["o3"].status is OrderStatus.CANCELED


def _broker_silent_about_o1(w: World) -> None:
    """o1 fills 30 at 5 s, but its updates never arrive (delayed a day) and from 19.5 s the broker answers no
    `get_order`: the replacement due at 20 s (sized from o1's fills) is deferred, then so is the remainder."""
    w.broker.delayed_updates["o1"] = timedelta(days=1)
    w.clock.call_at(at(5), lambda: w.broker.fill("o1", Decimal(30)))
    w.clock.call_at(at(19.5), lambda: setattr(w.broker, "unavailable_reads", 10**9))


def test_a_remainder_deferred_to_the_hard_stop_ends_the_leg_naming_the_order_never_reported_closed() -> None:
    """The leg holds its remainder to the phase's hard stop (sending it could buy o1's 30 shares twice), then ends
    incomplete with an error that says why: the result's filled quantity (0) may be short of o1's real fills."""
    config = classic_ladder(repeg_steps=(Decimal("0.5"), Decimal("1.0")))
    result, world = execute(BUY, _broker_silent_about_o1, config=config, auto_fill=False)
    (leg,) = result.legs
    assert (leg.status, leg.filled_qty) == (LegStatus.INCOMPLETE, Decimal(0))
    assert leg.error == "order o1 was never reported closed: its last fills are unknown"
    assert (len(world.broker.submitted()), len(world.broker.replaced())) == (
        1,
        1,
    )  # nothing sent after 19.5 s
    assert world.broker.positions["XYZ"] == Decimal(30)
    (finished,) = world.sink.of(LegFinished)
    assert finished.ts == at(0) + config.total_wait + config.fill_wait  # the hard stop


def test_a_remainder_deferred_on_one_leg_does_not_hold_the_other_legs_of_the_phase() -> None:
    legs, script = _beside_an_abc_buy_filled_at(25, _broker_silent_about_o1)
    config = classic_ladder(repeg_steps=(Decimal("0.5"), Decimal("1.0")))
    result, world = execute(legs, script, config=config, auto_fill=False)
    assert [leg.status for leg in result.legs] == [LegStatus.INCOMPLETE, LegStatus.FILLED]
    finished = {e.leg_index: e.ts for e in world.sink.of(LegFinished)}
    assert finished[1] == at(25)
    assert [e.ts for e in world.sink.intents(IntentAction.REPLACE) if e.leg_index == 1] == [at(10), at(20)]


def test_a_deferred_order_reported_closed_after_its_leg_ended_is_not_called_unknown() -> None:
    """As above on a sell, with the broker answering again just after the hard stop: before the buys, the run
    asks about o1, still open as far as it knew, and learns its 30 fills. The leg reports them, and its error
    no longer says that o1 was never reported closed and its last fills are unknown."""
    config = classic_ladder(repeg_steps=(Decimal("0.5"), Decimal("1.0")))
    legs = [*SELL, LegSpec(index=1, symbol="ABC", side=Side.BUY, qty=Decimal(10))]
    answering_again = at(0) + config.total_wait + config.fill_wait + timedelta(seconds=0.5)

    def script(w: World) -> None:
        w.feed.set("ABC", "9.99", "10.00")
        _broker_silent_about_o1(w)
        w.clock.call_at(answering_again, lambda: setattr(w.broker, "unavailable_reads", 0))

    result, world = execute(legs, script, config=config, auto_fill=False)
    sell = result.legs[0]
    assert (sell.status, sell.filled_qty) == (LegStatus.INCOMPLETE, Decimal(30))
    assert world.broker.orders["o1"].status is OrderStatus.REPLACED
    assert sell.error is None
    assert build_result(fold_run(world.sink.events)) == result


def test_a_leg_resumed_after_downtime_waits_a_fill_wait_between_each_of_its_remaining_steps(
    tmp_path: Path,
) -> None:
    """Killed once its first re-peg was accepted (step 1, 10 s), resumed an hour later: the second step falls
    due a fill wait after the resume, the third a fill wait after that, then escalation, each order given its
    fill wait to fill, as the uninterrupted leg's are."""
    resumed = at(3600)

    async def main() -> list[RunEvent]:
        down = _down(tmp_path, auto_fill=False)
        await down.crash_at("replace-ack")
        await down.clock.sleep_until(resumed)
        await down.resume()
        await down.journal.flush()
        events = down.journal.events("r1")
        down.journal.close()
        return events

    events = run_virtual(main)
    replaces = [e for e in events if isinstance(e, OrderIntent) and e.action is IntentAction.REPLACE]
    fill_wait = CONFIG.fill_wait
    assert [(e.ts, e.step) for e in replaces] == [
        (at(10), 1),
        (resumed + fill_wait, 2),
        (resumed + 2 * fill_wait, 3),
    ]
    (escalated,) = [e for e in events if isinstance(e, LegEscalated)]
    assert escalated.ts == resumed + 3 * fill_wait


def test_a_polled_replacement_whose_answer_was_lost_becomes_the_working_order() -> None:
    """A broker that does not push: the first re-peg's replace is executed (o2 replaces o1) but its answer is lost,
    and so is the lookup by client order id. Polling o1 finds it replaced by o2, which the leg then works (re-pegs,
    and cancels at the end) instead of re-pegging and cancelling o1, closed, for the rest of the phase while o2
    rests at the broker unseen."""

    def script(w: World) -> None:
        def lose_the_answer() -> None:
            w.broker.lost_answers = 1
            w.broker.unavailable_lookups = 1

        w.clock.call_at(at(9), lose_the_answer)

    result, world = execute(BUY, script, auto_fill=False, pushes_updates=False)
    assert [r.order_id for r in world.broker.replaced()] == ["o1", "o2", "o3"]  # each step re-pegs the last
    assert world.broker.cancels() == ["cancel:o4", "cancel:o5"]  # escalation, then the phase's end
    assert not [o for o in world.broker.orders.values() if o.status.is_open]
    assert result.legs[0].order_ids == ("o1", "o2", "o3", "o4", "o5")


def _replace_answer_lost_and_o2_never_read(w: World) -> None:
    """A broker that does not push: the first re-peg's replace is executed (o2 replaces o1) but its answer and the
    lookup by client order id are lost, and no read of o2 ever succeeds: the run knows o2 only as o1's
    `replaced_by`."""

    def lose_the_answer() -> None:
        w.broker.lost_answers = 1
        w.broker.unavailable_lookups = 1

    w.clock.call_at(at(9), lose_the_answer)
    _reads_of_fail(w.broker, "o2")


def _reads_of_fail(broker: FakeBroker, order_id: str) -> None:
    read = broker.get_order

    async def get_order(asked: str) -> BrokerOrder:
        if asked == order_id:
            raise BrokerUnavailableError(f"scripted outage of every read of {order_id}")
        return await read(asked)

    broker.get_order = get_order  # type: ignore[method-assign]


def test_a_replacement_never_read_is_cancelled_by_its_id_before_the_phase_ends() -> None:
    """o2 is cancelled by the id o1 names (the intent journaled first), once, instead of resting open at the
    broker after the run; the leg's error says that o2's fills are unknown."""
    result, world = execute(
        BUY, _replace_answer_lost_and_o2_never_read, auto_fill=False, pushes_updates=False
    )
    assert world.broker.cancels().count("cancel:o2") == 1
    assert world.broker.orders["o2"].status is OrderStatus.CANCELED
    (intent,) = [e for e in world.sink.intents(IntentAction.CANCEL) if e.order_id == "o2"]
    assert intent.client_order_id is None  # the run never learned o2's: the intent does not guess it
    (leg,) = result.legs
    assert leg.status is LegStatus.INCOMPLETE
    assert leg.error == "order o2, the replacement of o1, was never read: its fills are unknown"


def test_an_order_known_replaced_is_neither_cancelled_nor_replaced_again() -> None:
    """While o2 cannot be read, the leg does not re-peg or cancel o1, which the broker reported replaced (each
    such request is refused): the only requests after the lost replace are o2's cancel."""
    _, world = execute(BUY, _replace_answer_lost_and_o2_never_read, auto_fill=False, pushes_updates=False)
    assert [r.order_id for r in world.broker.replaced()] == ["o1"]
    assert world.broker.cancels() == ["cancel:o2"]
    assert len(world.broker.submitted()) == 1


@pytest.mark.parametrize("filled_in_full", [True, False])
def test_a_done_legs_replacement_never_read_is_cancelled_by_its_id(filled_in_full: bool) -> None:
    """As `test_a_polled_replacement_missed_once_after_its_leg_ended_is_asked_again_and_cancelled`, but no read of
    o3 ever succeeds: o3 is cancelled once by the id o2 names, and the leg's error says its fills are unknown."""

    def script(w: World) -> None:
        _overfill_during_a_replace_whose_answer_is_lost(w)
        if filled_in_full:
            w.clock.call_at(at(19.5), lambda: w.broker.fill_before_replace.update({"o2": Decimal(60)}))
        _reads_of_fail(w.broker, "o3")

    result, world = execute(BUY, script, pushes_updates=False)
    assert world.broker.cancels() == ["cancel:o3"]
    assert world.broker.orders["o3"].status is OrderStatus.CANCELED
    (leg,) = result.legs
    unread = "order o3, the replacement of o2, was never read: its fills are unknown"
    if filled_in_full:
        assert (leg.filled_qty, leg.error) == (Decimal(100), unread)
    else:
        assert (leg.filled_qty, leg.error) == (
            Decimal(110),
            f"leg t-L0000: filled 110 exceeds quantity 100; {unread}",
        )


def test_resume_adopts_a_replacement_the_journal_knows_only_as_replaced_by(tmp_path: Path) -> None:
    """Killed at the first cancel intent after o1 was polled replaced by o2, never read: resume finds o2 by the
    client order id its replace intent announced, works it, and leaves nothing open; o1 is never cancelled."""

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        down = _down(tmp_path, auto_fill=False, pushes_updates=False)
        broker, journal = down.broker, down.journal
        world = World(down.clock, down.feed, broker, Recorder())
        read = broker.get_order
        _replace_answer_lost_and_o2_never_read(world)
        await down.crash_at("cancel-intent")
        await journal.flush()
        leg = fold_run(journal.events("r1")).leg(0)
        assert leg.order_ids == ("o1",)
        assert broker.orders["o1"].status is OrderStatus.REPLACED
        broker.get_order = read  # type: ignore[method-assign]
        broker.auto_fill = True
        return await down.finish()

    result, broker = run_virtual(main)
    assert not [o for o in broker.orders.values() if o.status.is_open]
    assert "cancel:o1" not in broker.cancels()
    (leg,) = result.legs
    assert leg.order_ids[:2] == ("o1", "o2")
    assert (leg.status, leg.filled_qty) == (LegStatus.FILLED, Decimal(100))


def test_a_done_legs_replacement_cancelled_by_its_id_and_read_later_is_not_cancelled_again() -> None:
    """As above with the first read of o3 lost only, and o3's cancel confirmed 1.5 s later: o3 is cancelled by its
    id when the leg ends; read (open) before the cancel took effect, it is not cancelled a second time."""

    def script(w: World) -> None:
        _overfill_during_a_replace_whose_answer_is_lost(w)
        w.clock.call_at(at(19.5), lambda: setattr(w.broker, "cancel_latency", timedelta(seconds=1.5)))
        _first_read_of_o3_fails(w.broker)

    result, world = execute(BUY, script, pushes_updates=False)
    assert world.broker.cancels() == ["cancel:o3"]
    assert world.broker.orders["o3"].status is OrderStatus.CANCELED
    assert result.legs[0].error == "leg t-L0000: filled 110 exceeds quantity 100"


def test_a_refused_cancel_of_a_done_legs_replacement_never_read_is_asked_again() -> None:
    """As `test_a_done_legs_replacement_never_read_is_cancelled_by_its_id`, the broker refusing the first cancel of
    o3 (sent by its id): it is requested again at the leg's next check, until one goes out."""

    def script(w: World) -> None:
        _overfill_during_a_replace_whose_answer_is_lost(w)
        w.clock.call_at(at(19.5), lambda: setattr(w.broker, "refuse_cancels", 1))
        _reads_of_fail(w.broker, "o3")

    _, world = execute(BUY, script, pushes_updates=False)
    assert world.broker.cancels() == ["cancel:o3", "cancel:o3"]
    assert world.broker.orders["o3"].status is OrderStatus.CANCELED


def test_the_buys_do_not_start_while_a_sells_replacement_never_read_may_still_be_open() -> None:
    """A sell whose replacement o2 is known only by id (`_replace_answer_lost_and_o2_never_read`), its cancel (by
    id, at the hard stop) confirmed a minute later: the buy phase must not start while o2 may still sell, as it
    does not for a sell order it read (`test_buys_wait_until_a_slow_sell_cancel_is_confirmed_at_the_broker`).
    The run can never read o2, so the buys are skipped."""
    legs = [*SELL, LegSpec(index=1, symbol="ABC", side=Side.BUY, qty=Decimal(10))]

    def script(w: World) -> None:
        w.feed.set("ABC", "9.99", "10.00")
        _replace_answer_lost_and_o2_never_read(w)
        w.broker.cancel_latency = timedelta(seconds=60)

    result, world = execute(legs, script, auto_fill=False, pushes_updates=False)
    assert [r.symbol for r in world.broker.submitted()] == ["XYZ"]
    assert result.legs[1].status is LegStatus.SKIPPED


def test_a_sells_replacement_never_read_whose_cancels_were_refused_is_asked_again_before_the_buys() -> None:
    """As `test_a_sell_order_left_open_by_refused_cancels_is_cancelled_before_the_buys_start`, for a sell's
    replacement o2 known only by id: the broker refuses its cancels (by id) through the phase's grace window, then
    accepts them; while the buys wait for it, o2's cancel is asked again, as for an order the run read, and o2 is
    not left open at the broker (where it could still sell) after the run."""
    legs = [*SELL, LegSpec(index=1, symbol="ABC", side=Side.BUY, qty=Decimal(10))]

    def script(w: World) -> None:
        w.feed.set("ABC", "9.99", "10.00")
        _replace_answer_lost_and_o2_never_read(w)
        w.clock.call_at(at(10), lambda: setattr(w.broker, "refuse_cancels", 10**6))
        w.clock.call_at(at(140), lambda: setattr(w.broker, "refuse_cancels", 0))

    _, world = execute(legs, script, auto_fill=False, pushes_updates=False)
    assert world.broker.orders["o2"].status is OrderStatus.CANCELED


def test_a_run_whose_filled_sell_left_a_replacement_never_read_is_not_completed() -> None:
    """The sell fills in full naming o2, which the broker replaced by o3 (the replace's answer lost); o3 can never
    be read. The buys are skipped, since o3 may still sell, and for the same reason the run is partial, not
    completed_with_skips (exit 0), as for a sell order it read open (`test_a_run_that_left_an_order_open_...`)."""
    legs = [*SELL, LegSpec(index=1, symbol="ABC", side=Side.BUY, qty=Decimal(10))]

    def script(w: World) -> None:
        w.feed.set("ABC", "9.99", "10.00")
        _overfill_during_a_replace_whose_answer_is_lost(w)
        w.clock.call_at(at(19.5), lambda: w.broker.fill_before_replace.update({"o2": Decimal(60)}))
        _reads_of_fail(w.broker, "o3")

    result, world = execute(legs, script, pushes_updates=False)
    assert [r.symbol for r in world.broker.submitted()] == ["XYZ"]
    assert [leg.status for leg in result.legs] == [LegStatus.FILLED, LegStatus.SKIPPED]
    assert result.legs[0].error == "order o3, the replacement of o2, was never read: its fills are unknown"
    assert result.status is RunStatus.PARTIAL


SELL_XYZ_BUY_ABC = [*SELL, LegSpec(index=1, symbol="ABC", side=Side.BUY, qty=Decimal(10))]


def _sell_of_unknown_outcome(w: World) -> None:
    """The sell submit's answer is lost, and the broker cannot be asked by client order id (until told)."""
    w.feed.set("ABC", "9.99", "10.00")
    w.broker.lost_answers = 1
    w.broker.unavailable_lookups = 10**6


def test_the_buys_do_not_start_while_a_sell_submitted_with_unknown_outcome_may_be_open() -> None:
    """A sell submit whose answer was lost, on a broker that does not push and cannot be asked by client order id
    until after the sell phase: the leg ends incomplete with its order unread, but that order (o1) is open at the
    broker and may still sell. The buys wait until it is found and cancelled, as for a sell order the run read."""

    def script(w: World) -> None:
        _sell_of_unknown_outcome(w)
        w.clock.call_at(at(200), lambda: setattr(w.broker, "unavailable_lookups", 0))

    result, world = execute(SELL_XYZ_BUY_ABC, script, auto_fill=False, pushes_updates=False)
    assert world.broker.orders["o1"].status is OrderStatus.CANCELED
    first_buy = next(e for e in world.sink.intents(IntentAction.SUBMIT) if e.leg_index == 1)
    assert first_buy.ts >= at(200)
    assert result.legs[0].status is LegStatus.INCOMPLETE


def test_the_buys_are_skipped_when_a_sell_of_unknown_outcome_can_never_be_looked_up() -> None:
    result, world = execute(SELL_XYZ_BUY_ABC, _sell_of_unknown_outcome, auto_fill=False, pushes_updates=False)
    assert [r.symbol for r in world.broker.submitted()] == ["XYZ"]
    assert result.legs[1].status is LegStatus.SKIPPED


def test_the_buys_start_once_a_sell_of_unknown_outcome_is_found_never_created() -> None:
    def script(w: World) -> None:
        _sell_of_unknown_outcome(w)
        w.clock.call_at(at(200), lambda: setattr(w.broker, "unavailable_lookups", 0))
        w.clock.call_at(at(199), w.broker.by_client.clear)  # the broker holds no order under its id

    result, world = execute(SELL_XYZ_BUY_ABC, script, auto_fill=False, pushes_updates=False)
    assert [r.symbol for r in world.broker.submitted()][:2] == ["XYZ", "ABC"]
    assert result.legs[1].status is not LegStatus.SKIPPED


def test_a_repeg_sent_late_for_want_of_a_valid_quote_works_a_full_fill_wait_before_the_next() -> None:
    """No valid quote from 5 s (stale, then crossed) until 28.5 s: step 2 goes out at the next check, 29 s; step 3
    comes a fill wait after it, at 39 s, not 1 s later at 30 s, and escalation a fill wait after that."""

    def script(w: World) -> None:
        w.feed.at(at(15), "XYZ", "100.10", "100.00")  # crossed: invalid, but the market is alive
        w.feed.at(at(25), "XYZ", "100.10", "100.00")
        w.feed.at(at(28.5), "XYZ", "100.00", "100.08")
        for second in range(30, 60, 4):
            w.feed.at(at(second), "XYZ", "100.00", "100.08")

    _, world = execute(BUY, script, fresh=False, auto_fill=False)
    assert [e.ts for e in world.sink.intents(IntentAction.REPLACE)] == [at(29), at(39)]
    (escalated,) = world.sink.of(LegEscalated)
    assert escalated.ts == at(49)


def test_a_submit_of_unknown_outcome_that_the_broker_reports_is_worked_and_not_left_open() -> None:
    """The submit's answer is lost and the broker cannot be asked by client order id for the whole phase, but it
    pushes the order's updates: the order it reports is the leg's working order (re-pegged, escalated, cancelled
    at the end), not one left waiting for an answer to the hard stop and then open at the broker after the run."""

    def script(w: World) -> None:
        w.broker.lost_answers = 1
        w.broker.unavailable_lookups = 10**6

    result, world = execute(BUY, script, auto_fill=False)
    assert not [o for o in world.broker.orders.values() if o.status.is_open]
    assert [e.ts for e in world.sink.intents(IntentAction.REPLACE)] == [at(10), at(20), at(30)]
    assert result.legs[0].escalated


@pytest.mark.parametrize("pushes_updates", [True, False])
def test_a_submit_of_unknown_outcome_is_asked_after_through_the_grace_window_before_it_is_given_up(
    pushes_updates: bool,
) -> None:
    """The deadline (25 s) escalates; the working order's cancel takes 8 s to confirm, so the market order goes out
    at 33 s, and every send of it times out: the broker executes it 3 s later, at 36 s, after the hard stop (35 s)
    but within the grace window (5 s). The phase's end must ask after it through that window, as it waits for a
    cancel's confirmation, not record it failed at once and end the run with that order open at the broker."""

    def slow_broker(w: World) -> None:
        w.broker.cancel_latency = timedelta(seconds=8)
        w.broker.late_landings = 10**6
        w.broker.landing_delay = timedelta(seconds=3)

    async def main() -> tuple[ExecutionResult, FakeBroker]:
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed, auto_fill=False, pushes_updates=pushes_updates)
        feed.set("XYZ", "100.00", "100.08")
        world = World(clock, feed, broker, Recorder())
        clock.call_at(at(24), lambda: slow_broker(world))
        clock.call_at(at(34), lambda: setattr(broker, "cancel_latency", timedelta(0)))
        config = classic_ladder(max_total_wait=25)
        result = await run_execution(BUY, [], broker, feed, clock, config, run_id="t", sinks=[world.sink])
        await clock.sleep_until(at(50))
        return result, broker

    result, broker = run_virtual(main)
    (market,) = [o for o in broker.orders.values() if o.order_type is OrderType.MARKET]
    assert market.status is OrderStatus.CANCELED
    assert market.order_id in result.legs[0].order_ids


def test_resuming_a_run_that_ended_failed_returns_its_journaled_status(tmp_path: Path) -> None:
    """The account read before the buys fails after the sell filled: the run ends `failed` (exit 4), as the
    journal and `repeg runs` say. Resuming it (nothing to do) returned the status rebuilt from the legs,
    `partial` (exit 3)."""

    async def main() -> tuple[ExecutionResult, ExecutionResult]:
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed)
        buy_world(World(clock, feed, broker, Recorder()))

        async def account_down() -> None:
            raise BrokerUnavailableError("account endpoint down")

        broker.get_account = account_down  # type: ignore[assignment,method-assign]
        journal = SqliteJournal(tmp_path / "j.db")
        with pytest.raises(BrokerUnavailableError):
            await run_execution(SELL_THEN_BUY, [], broker, feed, clock, CONFIG, run_id="r1", sinks=[journal])
        await journal.flush()
        shown = result_from_events(journal.events("r1"))
        resumed = await resume_run("r1", journal, broker, feed, clock, config=CONFIG)
        journal.close()
        return shown, resumed

    shown, resumed = run_virtual(main)
    assert shown.legs[0].status is LegStatus.FILLED
    assert shown.status is RunStatus.FAILED
    assert resumed.status is RunStatus.FAILED


def test_a_run_whose_filled_sell_left_an_order_open_so_that_no_buy_started_is_partial() -> None:
    """The sell fills in full (40 while its replace is pending, 60 on the uncapped replacement), but every cancel
    of the replacement, still open for 40 more, is refused: the buys are never started. The run ended
    `completed_with_skips` (exit 0) with an order that could over-sell still open; it is `partial` (exit 3)."""

    def script(w: World) -> None:
        buy_world(w)
        w.feed.set("XYZ", "100.00", "100.08")
        w.broker.auto_fill = False
        w.clock.call_at(at(9), lambda: w.broker.fill_before_replace.update({"o1": Decimal(40)}))
        w.broker.fill_open_at(at(12), "XYZ", Decimal(60))
        w.clock.call_at(at(11.5), lambda: setattr(w.broker, "refuse_cancels", 10_000))

    result, world = execute(SELL_THEN_BUY, script)
    assert world.broker.orders["o2"].status.is_open
    assert [leg.status for leg in result.legs] == [LegStatus.FILLED, LegStatus.SKIPPED, LegStatus.SKIPPED]
    assert result.legs[0].error == "order o2 was left open at the broker (partially_filled)"
    assert result.status is RunStatus.PARTIAL
    (ended,) = world.sink.of(RunEnded)
    assert ended.status == "partial"


def test_a_no_quote_market_leg_takes_no_later_escalation_quote_as_its_arrival() -> None:
    """No valid quote at arrival: the sell goes to market (no quote recorded) and fills 30, and the broker cancels
    the rest; once fresh quotes come back the remainder is worked and escalates, and the later orders record the
    quotes in force then. Such a quote became the leg's "arrival" mid (100.04): a cost of +4.00 bps against a
    benchmark taken after the fills it judged."""
    config = classic_ladder(on_no_quote=OnNoQuote.MARKET)

    def script(w: World) -> None:
        w.feed._quotes["XYZ"] = quote("XYZ", "90.00", "90.08", T0 - timedelta(minutes=10))
        w.broker.fill_open_at(at(31), "XYZ", Decimal(30), Decimal("100.00"))
        w.clock.call_at(at(31.5), lambda: w.broker._confirm_cancel(w.broker.open_order("XYZ").order_id))
        for second in range(32, 200):
            w.feed.at(at(second), "XYZ", "100.00", "100.08")

    result, world = execute(SELL, script, config=config, fresh=False, auto_fill=False)
    first, *_, escalation = world.sink.intents(IntentAction.SUBMIT)
    assert (first.reason, first.quote) == ("no_quote", None)
    assert escalation.reason == "escalate"
    assert escalation.quote is not None
    (leg,) = result.legs
    assert leg.filled_qty == Decimal(30)
    assert leg.arrival_mid is None
    assert leg.cost_bps is None
    assert result.quality.cost_bps is None


def test_the_buys_start_once_a_sell_of_unknown_outcome_is_found_to_name_another_runs_order() -> None:
    """A sell submit of unknown outcome, asked after between the phases: the order Alpaca holds under its client
    order id is another run's (ClientOrderIdConflictError, 467c0d0), so the broker holds none of this run's under
    it, as when it answers none. It was taken for an unanswered lookup, asked again until `max_total_wait` ran out,
    and the buys were skipped."""

    async def conflict(client_order_id: str) -> None:
        raise ClientOrderIdConflictError(client_order_id, "theirs", {"symbol": ("XYZ", "MSFT")})

    def script(w: World) -> None:
        w.feed.set("ABC", "9.99", "10.00")
        w.broker.lost_answers = 1
        w.broker.unavailable_lookups = 10**6
        w.clock.call_at(at(199), lambda: setattr(w.broker, "get_order_by_client_id", conflict))

    result, world = execute(SELL_XYZ_BUY_ABC, script, auto_fill=False, pushes_updates=False)
    assert [r.symbol for r in world.broker.submitted()][:2] == ["XYZ", "ABC"]
    assert result.legs[1].status is not LegStatus.SKIPPED


def _unquoted_then_filled_at(seconds: float) -> Script:
    """No valid quote ever (the one in force is 10 minutes old); whatever order is open fills in full at `seconds`."""

    def fill_open(broker: FakeBroker) -> None:
        for order in [o for o in broker.orders.values() if o.status.is_open]:
            broker.fill(order.order_id, order.qty - order.filled_qty)

    def script(w: World) -> None:
        w.feed._quotes["XYZ"] = quote("XYZ", "90.00", "90.08", T0 - timedelta(minutes=10))
        w.clock.call_at(at(seconds), lambda: fill_open(w.broker))

    return script


def _one_market_order_filled_without_a_cancel(world: World, result: ExecutionResult) -> None:
    assert [r.order_type for r in world.broker.submitted()] == [OrderType.MARKET]
    assert world.broker.cancels() == []
    assert result.legs[0].status is LegStatus.FILLED


def test_a_no_quote_market_order_sent_at_the_deadline_is_not_cancelled_and_sent_again() -> None:
    """quote_wait >= max_total_wait: the leg gives up waiting for a quote at the deadline itself and goes to
    market. The deadline's escalation took that market order for a passive one: cancelled at once, and a second
    market order sent for the same quantity."""
    config = classic_ladder(on_no_quote=OnNoQuote.MARKET, max_total_wait=20)
    result, world = execute(SELL, _unquoted_then_filled_at(25), config=config, fresh=False, auto_fill=False)
    _one_market_order_filled_without_a_cancel(world, result)


def test_a_no_quote_market_order_sent_at_the_deadline_is_not_cancelled_under_a_collared_escalation() -> None:
    """As above with `escalation = "collared_limit"`: the market order was cancelled and, with no valid quote to
    collar a limit on, nothing replaced it; `on_no_quote = "market"` had no effect and the leg went unfilled."""
    config = classic_ladder(
        on_no_quote=OnNoQuote.MARKET, max_total_wait=20, escalation=EscalationStyle.COLLARED_LIMIT
    )
    result, world = execute(SELL, _unquoted_then_filled_at(25), config=config, fresh=False, auto_fill=False)
    _one_market_order_filled_without_a_cancel(world, result)


def test_a_no_quote_market_order_is_not_escalated_by_a_stall() -> None:
    """The market order (sent at 30 s) works with no update nor new quote for 2 fill waits: the stall escalated
    it like a passive order, cancelling it and sending another market order."""
    config = classic_ladder(on_no_quote=OnNoQuote.MARKET)
    result, world = execute(SELL, _unquoted_then_filled_at(55), config=config, fresh=False, auto_fill=False)
    _one_market_order_filled_without_a_cancel(world, result)


def test_a_no_quote_market_order_is_not_escalated_when_the_steps_are_exhausted() -> None:
    """Quotes keep coming (too wide to be valid, so no stall): the steps' time ran out 4 fill waits after the
    market order was sent (70 s), and it was cancelled and sent again as another market order."""
    config = classic_ladder(on_no_quote=OnNoQuote.MARKET)
    unquoted = _unquoted_then_filled_at(75)

    def script(w: World) -> None:
        unquoted(w)
        for second in range(1, 80):
            w.feed.at(at(second), "XYZ", "90.00", "110.00")

    result, world = execute(SELL, script, config=config, fresh=False, auto_fill=False)
    _one_market_order_filled_without_a_cancel(world, result)


def test_runs_sharing_one_broker_leave_no_update_subscription_behind() -> None:
    """Each run subscribed its update router to the broker and never removed it: a broker reused across runs
    (`repeg.execute` called again with the same broker) kept every past run's router, and with it that run's
    whole folded state, and handed each later update to all of them."""

    async def main() -> FakeBroker:
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed)
        feed.set("XYZ", "100.00", "100.08")
        for run in range(3):
            await run_execution(BUY, [], broker, feed, clock, CONFIG, run_id=f"t{run}")
        return broker

    assert run_virtual(main).sinks == []


def test_a_resumed_run_leaves_no_update_subscription_on_the_broker(tmp_path: Path) -> None:
    """The run that crashed and the resume that finished it each subscribed to the broker: neither is left."""
    config = classic_ladder(repeg_steps=(Decimal("0.25"),))

    async def main() -> FakeBroker:
        down = _down(tmp_path)
        await down.crash_at("cancel-intent", config)
        await down.journal.flush()
        _, broker = await down.finish(config)
        return broker

    assert run_virtual(main).sinks == []


def test_a_run_whose_start_fails_leaves_no_update_subscription_on_the_broker() -> None:
    """The run subscribes its router before it announces itself: when that fails (here the feed refuses the run's
    symbols; a journal refusing `RunStarted` alike), the run ends before its phases, and the router stayed on the
    broker, which a caller retrying with the same broker keeps (a91d11f8 closed it only once the phases ran)."""

    class RefusingFeed(FakeFeed):
        async def subscribe(self, symbols: Iterable[str]) -> None:
            raise MarketDataError("quote stream refused the symbols")

    async def main() -> FakeBroker:
        clock = VirtualClock(T0)
        feed = RefusingFeed(clock)
        broker = FakeBroker(clock, feed)
        with pytest.raises(MarketDataError):
            await run_execution(BUY, [], broker, feed, clock, CONFIG, run_id="t")
        with pytest.raises(MarketDataError):
            await run_basket(
                [ParentOrder(arrival=T0, symbol="XYZ", side=Side.BUY, qty=Decimal(1))],
                broker,
                feed,
                clock,
                CONFIG,
                run_id="b",
            )
        return broker

    assert run_virtual(main).sinks == []


def test_a_run_with_no_legs_leaves_no_update_subscription_on_the_broker() -> None:
    """A run of no legs is refused (`PlanError`) when its plan is built, after the router was subscribed and before
    the announcement that 44b2cb29 made close it on failure: a caller retrying with the same broker kept it."""

    async def main() -> FakeBroker:
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed)
        with pytest.raises(PlanError):
            await run_execution([], [], broker, feed, clock, CONFIG, run_id="t")
        with pytest.raises(PlanError):
            await run_basket([], broker, feed, clock, CONFIG, run_id="b")
        return broker

    assert run_virtual(main).sinks == []


def test_a_replace_refused_for_a_fill_just_before_re_pegs_the_remainder_at_the_next_check() -> None:
    # As Alpaca's adapter: a fill lands just before the replace, which is refused (OrderNotCancelableError, the order
    # now partially filled). A race, not a refusal of the price: the remainder is re-pegged (cancel, then submit)
    # at the next check, as before refused re-pegs waited a fill wait.
    def script(w: World) -> None:
        w.broker.auto_fill = False
        w.broker.fill_before_replace["o1"] = Decimal(40)
        w.broker.refuse_replace = True
        w.clock.call_at(at(10.5), lambda: setattr(w.broker, "refuse_replace", False))

    _, world = execute(BUY, script)
    failed = world.sink.of(OrderFailed)[0]
    assert (failed.ts, failed.error) == (at(10), "OrderNotCancelableError")
    assert world.sink.intents(IntentAction.CANCEL)[0].ts == at(11)
