"""Graceful stop on Ctrl-C / SIGTERM: cancel the run's own working orders, confirm, journal, summarise.

`run_stoppable(work, stop)` runs the engine as a task. The first SIGINT or SIGTERM cancels that task and then runs
`stop()` (normally `stop_run`): it rebuilds the run from the journal, cancels at once every order the journal
knows working (write-ahead, through the engine's gateway; an order left open by a leg that already ended is
cancelled directly), waits (up to `grace_window`) for a submit or replace the cancelled engine left in flight to
reach the broker, reconciles the run with the broker exactly as a resume would, cancels every order of the run
that this found still working, and polls until the broker confirms or
`grace_window` passes (a cancel the broker accepted and then refused is requested again). The broker failing a
request (after its adapter's retries) ends none of this: a leg it could not be read for keeps what the journal
says, every order the run knows may be working is still cancelled, each on its own, and the report names the
cancels that failed and the submits the broker never answered (`StopReport`). The run is left unfinished, so
`repeg resume` finishes it later (one that announced no order is started again under its run id instead). A
second signal exits at once (status 130) without waiting: whatever was committed is in the journal, and every
order the run may have created is findable from it, so the run stays resumable.

Only orders whose client order id the run announced are ever cancelled.

When the journal fails mid-run (`JournalError`), `journal_failed` does the same on the run as it stood in memory
(`KeptEvents`), writing nothing anywhere (`stop_unjournaled`), and returns the error naming each order and symbol.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, TypeVar

import structlog

from repeg.brokers.base import Broker
from repeg.config import ExecutionConfig
from repeg.domain.events import EventSink, IntentAction, OrderFailed, OrderIntent, RunEvent
from repeg.domain.leg import LegState
from repeg.domain.lifecycle import IN_FLIGHT, LegStatus
from repeg.domain.order_record import unread_replacement
from repeg.domain.orders import OrderStatus
from repeg.domain.run import RunFolder
from repeg.engine.bus import EventBus
from repeg.engine.clock import Clock
from repeg.engine.gateway import OrderGateway
from repeg.engine.open_orders import replacement_unread
from repeg.errors import OUTCOME_UNKNOWN, BrokerError, JournalError
from repeg.journal.base import Journal
from repeg.journal.resume import reconcile_leg, seeded_bus
from repeg.journal.stop_report import StopReport

T = TypeVar("T")
log = structlog.get_logger("repeg.shutdown")

#: Exit status of a second Ctrl-C (128 + SIGINT, the shell convention).
EXIT_INTERRUPTED: Final = 130
REASON_USER_STOP: Final = "user_stop"
_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


class _SignalGuard:
    def __init__(self, task: asyncio.Task[object]) -> None:
        self._task = task
        self.requested = False

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.requested:
            log.warning("stop_forced", signal=sig.name)
            os._exit(EXIT_INTERRUPTED)
        self.requested = True
        log.warning("stop_requested", signal=sig.name)
        self._task.cancel()


async def run_stoppable(
    work: Coroutine[object, object, T], stop: Callable[[], Awaitable[StopReport]]
) -> T | StopReport:
    """Run `work`; on the first SIGINT/SIGTERM cancel it and return `stop()`'s report instead."""
    task: asyncio.Task[object] = asyncio.ensure_future(work)
    guard = _SignalGuard(task)
    guard.install()
    try:
        return await task  # type: ignore[return-value]  # the task runs `work`, so it yields T
    except asyncio.CancelledError:
        if not guard.requested:
            raise
        return await stop()
    finally:
        guard.uninstall()


async def _reconcile(bus: EventBus, broker: Broker) -> set[int]:
    """Reconcile every leg as a resume would, each on its own; the legs the broker could not be read for (they
    keep what the journal says: a failed read must not stop the others' reconciliation, nor the cancels)."""
    unread: set[int] = set()
    for index in sorted(bus.folder.legs):
        try:
            await reconcile_leg(bus, broker, bus.leg(index))
        except BrokerError as exc:
            log.warning("stop_reconcile_failed", run_id=bus.run_id, leg_index=index, error=str(exc))
            unread.add(index)
    return unread


@dataclass
class _Cancels:
    """The order ids whose cancel the broker accepted (`sent`), and those whose cancel it refused or failed."""

    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def note(self, order_id: str, *, accepted: bool) -> None:
        """Record one cancel request's answer; an order asked again is listed once. An acceptance wins: a refusal
        after it may only mean the first cancel is still on its way, so the order stays among the sent."""
        if accepted and order_id not in self.sent:
            self.sent.append(order_id)
        if accepted and order_id in self.failed:
            self.failed.remove(order_id)
        if not accepted and order_id not in self.failed and order_id not in self.sent:
            self.failed.append(order_id)


async def _cancel_working(
    bus: EventBus, gateway: OrderGateway, broker: Broker, unread: set[int], cancels: _Cancels
) -> None:
    """Cancel each order of the run that may be working, each on its own (a refusal is recorded and left to
    `_confirm`). A leg in flight the broker could not be read for (e.g. still replacing or canceling as the journal
    left it) has each of its orders not known closed cancelled directly, as a leg that ended has (one whose cancel
    the broker accepted included: unread, the run cannot tell that cancel undone from one still on its way)."""
    for index in sorted(bus.folder.legs):
        leg = bus.leg(index)
        if leg.status is LegStatus.WORKING:
            await _cancel_active(gateway, leg, cancels)
        elif leg.is_done or index in unread:
            await _cancel_left_open(broker, leg, bus.run_id, cancels)


async def _cancel_active(gateway: OrderGateway, leg: LegState, cancels: _Cancels) -> None:
    """Cancel a working leg's order, write-ahead through the gateway (a refusal is recorded and reconciled)."""
    active = leg.active_order
    if active is None or active.order_id is None:
        return
    unread = unread_replacement(leg.orders, active)  # the cancel goes to it (see `OrderGateway.cancel`)
    if await gateway.cancel(leg.index, REASON_USER_STOP):
        cancels.note(unread or active.order_id, accepted=True)
    elif unread is not None or active.status is not OrderStatus.REPLACED:  # else nothing was sent
        cancels.note(unread or active.order_id, accepted=False)


async def _cancel_left_open(broker: Broker, leg: LegState, run_id: str, cancels: _Cancels) -> None:
    """Cancel the orders a leg that already ended left open (its cancel failed when its phase ended).

    The leg has ended, so no cancel intent can be folded into it; none is needed either: the cancel creates no
    order, and the confirmation is recorded by polling (`_confirm`). A refusal is logged and left to `_confirm`;
    one of an order whose cancel the broker accepted before (most likely closed by it) is no failure: info.
    """
    for record in leg.orders:
        status, order_id = record.status, record.order_id
        if order_id is None or status is None or status.is_terminal or status is OrderStatus.PENDING_CANCEL:
            continue
        try:
            await broker.cancel_order(order_id)
        except BrokerError as exc:
            again = order_id in cancels.sent
            (log.info if again else log.warning)(
                "stop_cancel_refused_again" if again else "stop_cancel_failed",
                run_id=run_id,
                leg_index=leg.index,
                order_id=order_id,
                error=str(exc),
            )
            cancels.note(order_id, accepted=False)
            continue
        cancels.note(order_id, accepted=True)


def _awaiting_cancel(bus: EventBus) -> list[tuple[int, str]]:
    """(leg, order id) of every order of the run still open at the broker as far as the run knows: those of
    legs in flight (a replacement the run never read, by the id the broker named, included), and those of legs
    that already ended while a cancel was unconfirmed (the phase's end)."""
    awaited = [
        (index, record.order_id)
        for index, leg in sorted(bus.folder.legs.items())
        for record in leg.orders
        if record.order_id is not None and _maybe_open(leg.status, record.status)
    ]
    for index, leg in sorted(bus.folder.legs.items()):
        unread = unread_replacement(leg.orders, leg.active_order)
        if unread is not None and leg.status in IN_FLIGHT:
            awaited.append((index, unread))
    return awaited


def _maybe_open(leg: LegStatus, order: OrderStatus | None) -> bool:
    return leg in IN_FLIGHT if order is None else not order.is_terminal


async def _confirm(
    bus: EventBus, gateway: OrderGateway, broker: Broker, config: ExecutionConfig, cancels: _Cancels
) -> list[str]:
    """Poll the cancelled orders until each is closed or `grace_window` passes; the ids still open.

    A leg in flight is polled as the engine polls it: a cancel the broker accepted and then refused (the order
    open again, not pending the cancel) sends the leg back to work, and its cancel is then requested again."""
    clock = bus.clock
    give_up = clock.now() + config.grace
    while True:
        waiting = _awaiting_cancel(bus)
        if not waiting or clock.now() >= give_up:
            return sorted(order_id for _, order_id in waiting)
        await clock.sleep_until(min(give_up, clock.now() + config.check_interval))
        for index in sorted({index for index, _ in waiting}):
            ids = [order_id for i, order_id in waiting if i == index]
            await _recheck(gateway, broker, bus, index, ids, cancels=cancels)


async def _recheck(
    gateway: OrderGateway,
    broker: Broker,
    bus: EventBus,
    index: int,
    order_ids: list[str],
    *,
    cancels: _Cancels,
) -> None:
    """Read leg `index`'s orders awaited once more (a leg in flight polled as a whole). A leg sent back to work
    has its cancel requested again; so has an order of a leg not in flight found open and not pending a cancel
    (its cancel was accepted, then refused: asking again is harmless if it was only slow), and so has one that
    could not be read (its accepted cancel may have been undone: a refusal then only says it is closed)."""
    if bus.leg(index).status in IN_FLIGHT:
        await gateway.poll(index)
    else:
        for order_id in order_ids:
            await gateway.reconcile(index, order_id)
        await _cancel_left_open(broker, bus.leg(index), bus.run_id, cancels)
    leg = bus.leg(index)
    if leg.status is LegStatus.WORKING:
        await _cancel_active(gateway, leg, cancels)


def _closed(bus: EventBus) -> set[str]:
    """Ids of the run's orders it knows closed (a refused cancel of one of them is no failure: nothing works)."""
    return {
        r.order_id for leg in bus.folder.legs.values() for r in leg.orders if r.order_id and r.is_terminal
    }


def _filled(bus: EventBus) -> set[str]:
    """Ids of the run's orders it knows filled in full (an accepted cancel that a fill beat cancelled nothing)."""
    return {
        r.order_id
        for leg in bus.folder.legs.values()
        for r in leg.orders
        if r.order_id and r.status is OrderStatus.FILLED
    }


def _refused_replaces(events: Sequence[RunEvent]) -> frozenset[str]:
    """Client order ids of the replaces the broker refused outright (an error after which nothing was executed)."""
    return frozenset(
        event.client_order_id
        for event in events
        if isinstance(event, OrderFailed)
        and event.action is IntentAction.REPLACE
        and event.client_order_id is not None
        and event.error not in OUTCOME_UNKNOWN
    )


def _unanswered(bus: EventBus, refused: frozenset[str], unread: frozenset[int] = frozenset()) -> list[str]:
    """Client order ids of the submits and replaces the run announced and has no answer to (a replace whose
    answer was lost included, when the broker reported the order replaced without naming the replacement; of
    those, the `refused` ones are left out; and the last submit of an ended leg whose outcome stayed unknown, when
    the broker could not be asked for it (`unread` legs): answered, it is recorded, or known never to exist)."""
    ids: list[str] = []
    for index, leg in bus.folder.legs.items():
        active = leg.active_order
        if leg.status is LegStatus.SUBMITTING and leg.active_client_order_id is not None:
            ids.append(leg.active_client_order_id)
        elif leg.status is LegStatus.REPLACING and leg.pending_client_order_id is not None:
            ids.append(leg.pending_client_order_id)
        elif leg.is_done and index in unread and active is not None and active.order_id is None:
            ids.append(active.client_order_id)
        else:
            ids.extend(_unnamed_replacement(leg, refused))
    return ids


def _unnamed_replacement(leg: LegState, refused: frozenset[str]) -> list[str]:
    """The client order ids of the replaces a leg sent after its order, when the broker reported that order
    replaced but never named nor answered the replacement (it may be working; no cancel can reach it). A replace
    the broker refused outright is not it, unless no other was sent."""
    active = leg.active_order
    if active is None or leg.is_done or not replacement_unread(leg):
        return []
    if unread_replacement(leg.orders, active) is not None:
        return []
    sent = [r.client_order_id for r in leg.orders if r.order_id is None and r.attempt > active.attempt]
    return [cid for cid in sent if cid not in refused] or sent


async def _await_in_flight(
    bus: EventBus, broker: Broker, clock: Clock, config: ExecutionConfig, refused: frozenset[str]
) -> None:
    """Wait, up to `grace_window`, until the broker knows every submit and replace the stopped engine left
    unanswered. The engine task was cancelled, not its request: one already sent (e.g. by a worker thread, which a
    cancellation does not stop) still reaches the broker a moment later. Taken at once for one that never reached
    it, such an order would be left working at the broker, unmanaged, and its leg recorded as failed."""
    waiting = _unanswered(bus, refused)
    give_up = clock.now() + config.grace
    while waiting:
        waiting = [cid for cid in waiting if not await _known(broker, bus.run_id, cid)]
        if not waiting or clock.now() >= give_up:
            return
        await clock.sleep_until(min(give_up, clock.now() + config.check_interval))


async def _known(broker: Broker, run_id: str, client_order_id: str) -> bool:
    """True when the broker knows the order; False when it does not, or cannot say (logged)."""
    try:
        return await broker.get_order_by_client_id(client_order_id) is not None
    except BrokerError as exc:
        log.warning("stop_read_failed", run_id=run_id, client_order_id=client_order_id, error=str(exc))
        return False


async def stop_run(
    run_id: str, journal: Journal, broker: Broker, clock: Clock, *, config: ExecutionConfig
) -> StopReport:
    """Cancel the run's working orders and wait for the confirmations, all journaled; the run stays resumable."""
    await journal.flush()
    events = journal.events(run_id)
    bus = seeded_bus(run_id, clock, (journal,), events)
    try:
        return await _stop(bus, broker, config, _refused_replaces(events))
    finally:
        await journal.flush()


async def stop_unjournaled(
    run_id: str, kept: KeptEvents, broker: Broker, clock: Clock, *, config: ExecutionConfig
) -> StopReport:
    """`stop_run` after the journal failed (`JournalError`): the same cancels and confirmations, on the run as it
    stood in memory (`kept`: all it emitted, written or not), with nothing written anywhere. A cancel needs no
    intent journaled first: it creates no order, only ends one, so leaving the order working would be worse. The
    report names each order with its symbol: the journal may not know them."""
    bus = EventBus(run_id, clock, ())
    bus.folder = kept.folder
    # Nothing more to fold: only the legs already over-filled are noted, as a seeded bus notes them.
    bus.seed(())
    report = await _stop(bus, broker, config, frozenset(kept.refused))
    return report.model_copy(update={"symbols": _symbols(bus)})


class KeptEvents:
    """The journal's sink (`journal`), keeping the run as the engine knew it, from the events the journal held
    when the run began on, even when the journal failed: their fold (as the bus folds them) and the replaces the
    broker refused (`_refused_replaces`), not the events themselves (a long run's would fill memory). An event
    whose write failed is kept (it records what the broker did), except an intent: written ahead, its order was
    never sent."""

    def __init__(self, journaled: Sequence[RunEvent], journal: EventSink) -> None:
        self.folder = RunFolder()
        self.refused: set[str] = set()
        self._journal = journal
        for event in journaled:
            self._keep(event)

    async def emit(self, event: RunEvent) -> None:
        try:
            await self._journal.emit(event)
        except JournalError:
            if not isinstance(event, OrderIntent):
                self._keep(event)
            raise
        self._keep(event)

    def _keep(self, event: RunEvent) -> None:
        self.folder.apply(event)
        if isinstance(event, OrderFailed):
            self.refused.update(_refused_replaces((event,)))


async def journal_failed(
    failed: JournalError,
    run_id: str,
    kept: KeptEvents,
    broker: Broker,
    clock: Clock,
    *,
    config: ExecutionConfig,
) -> JournalError:
    """The journal failed mid-run, so the run stopped (no order goes out unjournaled), leaving its working orders
    unmanaged: each is cancelled, best effort, within `grace_window`, without writing to the journal
    (`stop_unjournaled`). The error returned names what was cancelled and what may still be working. A run that
    announced no order (its first intent was never written) has none: the broker is not read, and the run is to be
    started again, not resumed (`resume_run` refuses it)."""
    if not any(leg.orders for leg in kept.folder.legs.values()):
        return JournalError(
            f"{failed}\nrun {run_id} sent no order yet: start it again with --run-id {run_id}"
        )
    try:
        report = await stop_unjournaled(run_id, kept, broker, clock, config=config)
    except BrokerError as exc:
        said = f"cancelling its orders failed ({exc}): they may still be working; check the broker"
        return JournalError(f"{failed}\nrun {run_id}: the journal failed; {said}")
    return JournalError(f"{failed}\nthe journal failed, nothing more was written to it; {report.summary()}")


def _symbols(bus: EventBus) -> dict[str, str]:
    """The symbol of every order (by order id and client order id) the run knows."""
    symbols: dict[str, str] = {}
    for leg in bus.folder.legs.values():
        for record in leg.orders:
            symbols[record.client_order_id] = leg.spec.symbol
            if record.order_id is not None:
                symbols[record.order_id] = leg.spec.symbol
    return symbols


async def _stop(
    bus: EventBus, broker: Broker, config: ExecutionConfig, refused: frozenset[str]
) -> StopReport:
    """Cancel every order of the run that may be working and wait for the confirmations, through `bus`'s sinks."""
    run_id, clock = bus.run_id, bus.clock
    gateway = OrderGateway(broker, bus, config)
    try:
        # The orders the journal knows working are cancelled first: reading the broker may take long when it fails.
        cancels = _Cancels()
        await _cancel_working(bus, gateway, broker, set(), cancels)
        await _await_in_flight(bus, broker, clock, config, refused)
        unread = await _reconcile(bus, broker)
        await _cancel_working(bus, gateway, broker, unread, cancels)
        unconfirmed = await _confirm(bus, gateway, broker, config, cancels)
    except BrokerError as exc:
        log.exception("stop_incomplete", run_id=run_id, error=str(exc))
        raise
    legs = bus.folder.snapshot().legs
    report = StopReport(
        run_id=run_id,
        sent_nothing=not any(leg.orders for leg in bus.folder.legs.values()),
        cancelled=tuple(order_id for order_id in cancels.sent if order_id not in _filled(bus)),
        cancel_failed=tuple(order_id for order_id in cancels.failed if order_id not in _closed(bus)),
        unconfirmed=tuple(unconfirmed),
        unanswered=tuple(sorted(_unanswered(bus, refused, frozenset(unread)))),
        legs_done=sum(1 for leg in legs if leg.is_done),
        legs_open=sum(1 for leg in legs if not leg.is_done),
        filled_notional=sum((leg.filled_notional for leg in legs), Decimal(0)),
    )
    log.info(
        "run_stopped",
        run_id=run_id,
        cancelled=len(report.cancelled),
        cancel_failed=len(report.cancel_failed),
        unconfirmed=len(unconfirmed),
        unanswered=len(report.unanswered),
    )
    return report


__all__ = [
    "EXIT_INTERRUPTED",
    "REASON_USER_STOP",
    "KeptEvents",
    "StopReport",
    "journal_failed",
    "run_stoppable",
    "stop_run",
    "stop_unjournaled",
]
