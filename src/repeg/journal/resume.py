"""Crash-safe resume: fold the journal, reconcile with the broker, then finish the run where it stands.

Because every submit, replace and cancel was journaled (and committed) *before* the broker call, the journal
names every order the run may have created: each intent's deterministic client order id. Resume asks the broker
for each of them (`get_order_by_client_id`), including submits that were announced but never acknowledged, and
records what it learns as ordinary events (the missed acknowledgement, the order's latest state and cumulative
fills, or the refusal of a replace that never reached the broker; a submit the broker does not know may still be
on its way, so the engine sends it again under its own id). The legs are then exactly where the broker
says they are, and the engine's phase monitors continue them with the same policy and the next attempt numbers,
so no client order id is ever reused for a second live order and nothing filled is sent again.

Resume touches only orders whose client order id the run announced: it never cancels anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from repeg.brokers.base import Broker, ExpectsSent, Sent
from repeg.config import ExecutionConfig
from repeg.domain.events import (
    EventSink,
    IntentAction,
    LegFinished,
    LegPlanned,
    OrderAccepted,
    OrderFailed,
    OrderIntent,
    OrderUpdated,
    RunEnded,
    RunEvent,
)
from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.order_record import OrderRecord, unread_replacement
from repeg.domain.orders import BrokerOrder, OrderStatus, Side
from repeg.domain.plan import LegSpec
from repeg.domain.run import RunState, fold_run
from repeg.engine.bus import EventBus
from repeg.engine.clock import Clock
from repeg.engine.monitor import EngineContext
from repeg.engine.order_reads import polled_update
from repeg.engine.phases import (
    orders_settled,
    record_late_updates,
    run_buy_phase,
    run_phase,
)
from repeg.engine.refusals import record_refusal
from repeg.engine.run_end import look_up_open_orders
from repeg.engine.runner import _SELLS_STILL_WORKING as SELLS_STILL_WORKING  # the fresh run's own reason
from repeg.engine.runner import engine_context
from repeg.errors import BrokerError, ClientOrderIdConflictError, JournalError
from repeg.journal.base import Journal
from repeg.market.base import QuoteFeed
from repeg.policy.decide import ExecutionPolicy
from repeg.report.result import ExecutionResult, RunStatus, build_result, journaled_result

log = structlog.get_logger("repeg.resume")

#: `OrderFailed.error` recorded for an announced submit or replace the broker never received.
NEVER_REACHED_BROKER = "NeverReachedBroker"


def has_orders(events: Sequence[RunEvent]) -> bool:
    """True once the run announced any order: from then on it can only be resumed, never started afresh."""
    return any(isinstance(event, OrderIntent) for event in events)


def seeded_bus(run_id: str, clock: Clock, sinks: Sequence[EventSink], events: Sequence[RunEvent]) -> EventBus:
    """An event bus whose fold already holds the journaled events (they are not emitted again)."""
    bus = EventBus(run_id, clock, sinks)
    bus.seed(events)
    return bus


# --- reconciliation -------------------------------------------------------------------------------------


def _order_changed(record: OrderRecord, order: BrokerOrder) -> bool:
    return record.status is not order.status or record.filled_qty != order.filled_qty


def _active_order_id(leg: LegState) -> str | None:
    active = leg.active_order
    return None if active is None else active.order_id


async def _settle_order(bus: EventBus, index: int, record: OrderRecord, order: BrokerOrder | None) -> None:
    """Record what the broker says about one announced order of leg `index`."""
    leg = bus.leg(index)
    cid = record.client_order_id
    awaiting_submit = leg.status is LegStatus.SUBMITTING and leg.active_client_order_id == cid
    awaiting_replace = leg.status is LegStatus.REPLACING and leg.pending_client_order_id == cid
    action = IntentAction.SUBMIT if awaiting_submit else IntentAction.REPLACE
    if order is None:
        # A submit may still be on its way (the process died just after sending it): the leg stays submitting, and
        # the engine asks again and re-sends it under the same client order id, which the broker executes once.
        if awaiting_replace:
            await bus.emit(
                OrderFailed(
                    **bus.stamp(index),
                    action=action,
                    client_order_id=cid,
                    order_id=None if awaiting_submit else _active_order_id(leg),
                    error=NEVER_REACHED_BROKER,
                    message="resume: the broker has no order with this client order id",
                )
            )
        return
    if awaiting_submit or awaiting_replace:
        await bus.emit(OrderAccepted(**bus.stamp(index), action=action, order=order))
    elif _order_changed(record, order):
        await bus.emit(OrderUpdated(**bus.stamp(index), update=polled_update(order, bus.clock.now())))


async def _complete_cancel(bus: EventBus, broker: Broker, index: int) -> None:
    """A leg still canceling after reconciliation: the announced cancel may never have reached the broker.

    The intent is journaled already, so the call it announced is simply made now (cancelling an order twice is
    harmless); the confirmation arrives by polling like any other. A refusal (the order filled or closed
    meanwhile) is recorded, followed by the order's current state.
    """
    leg = bus.leg(index)
    active = leg.active_order
    if leg.status is not LegStatus.CANCELING or active is None or active.order_id is None:
        return
    if active.status is OrderStatus.PENDING_CANCEL:
        return
    try:
        await broker.cancel_order(active.order_id)
    except BrokerError as exc:
        await bus.emit(
            OrderFailed(
                **bus.stamp(index),
                action=IntentAction.CANCEL,
                client_order_id=active.client_order_id,
                order_id=active.order_id,
                error=type(exc).__name__,
                message=str(exc),
            )
        )
        order = await broker.get_order(active.order_id)
        await bus.emit(OrderUpdated(**bus.stamp(index), update=polled_update(order, bus.clock.now())))


def _trades_on(leg: LegState, *, ended: bool) -> bool:
    """Whether the leg may go on trading: not once filled in full or over-filled (see `repeg.domain.leg_fold`), nor,
    in a run that ended, once it ended or while its order works (nothing of an ended run is sent again)."""
    if leg.status is LegStatus.FILLED or leg.overfilled:
        return False
    return not (ended and (leg.is_done or leg.status is LegStatus.WORKING))


async def _cancel_left_open(bus: EventBus, broker: Broker, index: int, *, ended: bool = False) -> None:
    """A leg that must not trade on (`_trades_on`) has its order still open cancelled (the intent journaled
    first, as always); the confirmation arrives like any other."""
    leg = bus.leg(index)
    active = leg.active_order
    if _trades_on(leg, ended=ended):
        return
    if active is None or active.order_id is None or active.is_terminal:
        return
    if active.status is OrderStatus.PENDING_CANCEL:
        return
    stamp = bus.stamp(index)
    cid, order_id = active.client_order_id, active.order_id
    await bus.emit(
        OrderIntent(
            **stamp,
            action=IntentAction.CANCEL,
            client_order_id=cid,
            order_id=order_id,
            attempt=active.attempt,
            reason="leg_done",
        )
    )
    try:
        await broker.cancel_order(order_id)
    except BrokerError as exc:
        await bus.emit(
            OrderFailed(
                **stamp,
                action=IntentAction.CANCEL,
                client_order_id=cid,
                order_id=order_id,
                error=type(exc).__name__,
                message=str(exc),
            )
        )


def _expect_journaled(broker: Broker, leg: LegState, record: OrderRecord) -> None:
    """Tell the broker what the journal says was sent under an order's client order id, if the broker never
    reported that order: the order another run (same run id, another journal) holds under it is then refused by the
    lookup, not adopted. A replacement's quantity is the broker's (not checked)."""
    if not isinstance(broker, ExpectsSent) or record.order_id is not None or record.order_type is None:
        return
    qty = record.qty if record.client_order_id == leg.active_client_order_id else None
    broker.expect(
        record.client_order_id, Sent(leg.symbol, leg.side, record.order_type, record.limit_price, qty)
    )


async def _refuse_foreign(
    bus: EventBus, index: int, record: OrderRecord, conflict: ClientOrderIdConflictError
) -> None:
    """Another run's order under one of the leg's client order ids: never the leg's. The submit or replace that
    awaited it is recorded refused (the leg's error names the id and the differing fields); its fills never count.
    Of a leg that awaits neither (it ended), it is only logged: the record would change nothing, and each look at
    the run (its resume) would journal it again."""
    leg = bus.leg(index)
    cid = record.client_order_id
    awaiting_submit = leg.status is LegStatus.SUBMITTING and leg.active_client_order_id == cid
    awaiting_replace = leg.status is LegStatus.REPLACING and leg.pending_client_order_id == cid
    log.warning(
        "resume_foreign_order_refused", run_id=bus.run_id, client_order_id=cid, order_id=conflict.order_id
    )
    if not (awaiting_submit or awaiting_replace):
        return
    action = IntentAction.SUBMIT if awaiting_submit else IntentAction.REPLACE
    order_id = _active_order_id(leg) if awaiting_replace else None
    await record_refusal(bus, index, action, conflict, client_order_id=cid, order_id=order_id)


async def reconcile_leg(bus: EventBus, broker: Broker, leg: LegState, *, ended: bool = False) -> None:
    """Bring one leg in line with the broker, asking about every order it announced, oldest first; of a run that
    `ended`, its order still open is cancelled too. An order of another run under one of its ids is refused."""
    for record in leg.orders:
        _expect_journaled(broker, leg, record)
        try:
            order = await broker.get_order_by_client_id(record.client_order_id)
        except ClientOrderIdConflictError as conflict:
            await _refuse_foreign(bus, leg.index, record, conflict)
            continue
        await _settle_order(bus, leg.index, record, order)
    await _complete_cancel(bus, broker, leg.index)
    await _cancel_left_open(bus, broker, leg.index, ended=ended)


async def reconcile(bus: EventBus, broker: Broker, *, ended: bool = False) -> None:
    """Reconcile every leg of the run (done legs too: a late fill may have landed after they ended)."""
    for index in sorted(bus.folder.legs):
        await reconcile_leg(bus, broker, bus.leg(index), ended=ended)


# --- continuing the run ---------------------------------------------------------------------------------


def _buys_sent(state: RunState) -> bool:
    """True once a buy leg announced an order. The buy phase's sizing (its `PhaseStarted`, the scaled
    `LegPlanned`s, the dropped legs' `LegFinished`) is committed at the latest with the first buy intent, a
    write-ahead barrier; before that, part of it may be lost, and since nothing was sent the buys are sized anew."""
    return any(leg.side is Side.BUY and leg.orders for leg in state.legs)


def _planned_specs(events: Sequence[RunEvent]) -> dict[int, LegSpec]:
    """Each leg's spec as first planned. The buy phase's sizing re-plans a buy with its scaled quantity; sizing
    the buys again from those would scale a leg whose scaled size was journaled twice, the others once."""
    planned: dict[int, LegSpec] = {}
    for event in events:
        if isinstance(event, LegPlanned):
            planned.setdefault(event.spec.index, event.spec)
    return planned


async def _start_buys(
    ctx: EngineContext, sells: Sequence[int], buys: Sequence[int], planned: Mapping[int, LegSpec]
) -> None:
    """The buy phase, started as a fresh run starts it: only once no sell order of the run is open at the broker
    (the run may have died while waiting for a sell's cancel to be confirmed), sized from the planned specs."""
    if await orders_settled(ctx, sells):
        await run_buy_phase(ctx, buys, planned)
        return
    for index in buys:
        await ctx.bus.emit(
            LegFinished(**ctx.bus.stamp(index), status=LegStatus.SKIPPED.value, reason=SELLS_STILL_WORKING)
        )


async def _continue(ctx: EngineContext, state: RunState, planned: Mapping[int, LegSpec]) -> None:
    bus = ctx.bus
    # Updates pushed while reconciling (e.g. the confirmation of a cancel completed above) reached no phase
    # monitor yet: recorded now, so that no leg waits for an answer that has already come.
    await record_late_updates(ctx)
    legs = bus.folder.snapshot().legs
    unfinished = [leg for leg in legs if not leg.is_done]
    sells = [leg.index for leg in unfinished if leg.side is Side.SELL]
    buys = [leg.index for leg in unfinished if leg.side is Side.BUY]
    if sells:
        await run_phase(ctx, Side.SELL, sells)
    if buys and _buys_sent(state):
        # Sized already (and maybe partly filled): re-sizing from today's buying power could shrink a leg below
        # what it has filled, so the phase continues with the quantities journaled.
        await run_phase(ctx, Side.BUY, buys)
    elif buys:
        await _start_buys(ctx, [leg.index for leg in legs if leg.side is Side.SELL], buys, planned)


def _done_with_order_left_open(bus: EventBus) -> list[int]:
    """Legs filled in full or over-filled whose order `_cancel_left_open` cancelled: no phase monitor continues
    them, so a refused cancel is requested again by `orders_settled` (as between the phases), until it is closed."""
    legs = bus.folder.snapshot().legs
    return [leg.index for leg in legs if leg.status is LegStatus.FILLED or leg.overfilled]


def left_open(state: RunState) -> bool:
    """True when an order of the run may be open at the broker (`orders_settled` counts the same ones): one last
    known open, a replacement never read, or a submit whose outcome stayed unknown (its answer lost and every
    lookup failed). A run that ended so is not done with: its resume closes that order (`_close_ended`)."""
    for leg in state.legs:
        known = any(r.order_id is not None and r.status is not None and not r.is_terminal for r in leg.orders)
        active = leg.active_order
        unknown = active is not None and active.order_id is None
        if known or unknown or unread_replacement(leg.orders, active) is not None:
            return True
    return False


def _status_once_closed(journaled: str, state: RunState) -> RunStatus:
    """The status of an ended run whose open orders `_close_ended` closed: its legs', but `failed` stays failed
    (the engine broke), and buys skipped because a sell order was still open never ran, so a run whose other legs
    all filled is `partial` (exit 3) as it ended, not `completed_with_skips` (exit 0: as if its plan were done)."""
    built = build_result(state).status
    if journaled == RunStatus.FAILED.value:
        return RunStatus.FAILED
    starved = any(leg.finish_reason == SELLS_STILL_WORKING for leg in state.legs)
    return RunStatus.PARTIAL if starved and built is RunStatus.COMPLETED_WITH_SKIPS else built


async def _close_ended(ctx: EngineContext, journaled: str) -> ExecutionResult:
    """Resume of a run that ended with an order open at the broker: nothing is sent again, but every order of
    the run is brought in line with the broker (fills it got since the end recorded) and what is still open is
    cancelled, until confirmed (up to `max_total_wait`); the run then ends again (`_status_once_closed`), unless
    the broker told nothing new (e.g. it holds no order for a submit of unknown outcome): the history is kept as it
    is, so that looking again journals nothing."""
    bus = ctx.bus
    log.info("resume_closing_ended_run", run_id=bus.run_id, status=journaled)
    journaled_events = bus.count
    await reconcile(bus, ctx.broker, ended=True)
    await record_late_updates(ctx)
    await orders_settled(ctx, sorted(bus.folder.legs))
    status = _status_once_closed(journaled, bus.folder.snapshot())
    if bus.count == journaled_events and status.value == journaled:
        log.info("resume_nothing_new", run_id=bus.run_id, status=journaled)
        return journaled_result(bus.folder.snapshot())
    await bus.emit(RunEnded(**bus.stamp(), status=status.value))
    log.info("resume_ended", run_id=bus.run_id, status=status.value)
    return journaled_result(bus.folder.snapshot())


async def resume_run(
    run_id: str,
    journal: Journal,
    broker: Broker,
    feed: QuoteFeed,
    clock: Clock,
    *,
    config: ExecutionConfig,
    sinks: Sequence[EventSink] = (),
    policy: ExecutionPolicy | None = None,
) -> ExecutionResult:
    """Finish run `run_id` from its journal. New events go to `sinks`, which must persist them to `journal`
    (the journal itself, or a wrapper of it); empty `sinks` means `(journal,)`.

    A run that already ended is not continued: its result is rebuilt from the journal, after its orders were
    closed when it ended with one still open at the broker (`_close_ended`: nothing is sent again, no order
    submitted or replaced). A run that announced no order yet and did not end cannot be resumed here (nothing
    to reconcile): the caller starts it afresh with the same run id (`has_orders` tells which); this function
    raises `JournalError` for it.
    """
    events = journal.events(run_id)
    state = fold_run(events)
    if state.status is not None and not left_open(state):
        log.info("resume_already_ended", run_id=run_id, status=state.status)
        return journaled_result(state)  # with the status it ended with
    if not has_orders(events):
        raise JournalError(f"run {run_id} sent no order yet: start it again with --run-id {run_id}")
    bus = seeded_bus(run_id, clock, tuple(sinks) or (journal,), events)
    ctx = engine_context(bus, broker=broker, feed=feed, clock=clock, config=config, policy=policy)
    try:  # the broker (reused across runs from Python) keeps no sink of this one once it ends
        if state.status is not None:
            return await _close_ended(ctx, state.status)
        return await _continue_open(ctx, state, events)
    finally:
        ctx.router.close()


async def _continue_open(ctx: EngineContext, state: RunState, events: Sequence[RunEvent]) -> ExecutionResult:
    """Resume a run that did not end: reconcile with the broker, finish its phases, end it."""
    bus = ctx.bus
    await ctx.feed.subscribe(sorted({leg.symbol for leg in state.legs}))
    log.info("resume_started", run_id=bus.run_id, events=len(events), legs=len(state.legs))
    await reconcile(bus, ctx.broker)
    try:
        await _continue(ctx, state, _planned_specs(events))
        await orders_settled(ctx, _done_with_order_left_open(bus))
        await look_up_open_orders(ctx)  # as a fresh run's end: a fill that raced the last cancel is recorded
    except Exception:
        log.exception("resume_failed", run_id=bus.run_id)
        await bus.emit(RunEnded(**bus.stamp(), status=RunStatus.FAILED.value))
        raise
    status = build_result(bus.folder.snapshot()).status
    await bus.emit(RunEnded(**bus.stamp(), status=status.value))
    log.info("resume_ended", run_id=bus.run_id, status=status.value)
    return build_result(bus.folder.snapshot())
