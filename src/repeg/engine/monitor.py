"""The phase monitor: one async loop that drives every leg of a phase to an end.

Each turn it records pending broker updates (as `OrderUpdated` events), asks the policy what to do with every
leg that is due or changed, carries the actions out through the write-ahead `OrderGateway`, then sleeps on the
injected clock until the next thing that can matter: a broker update, the earliest leg due time, the stall
limit, the phase's hard stop, the end of the grace window, or the next poll for brokers that do not push.

End conditions (all in clock time, so they hold identically under the virtual clock):
- every leg is done and none of their orders works (a given-up leg's cancel may still be unconfirmed) for
  `grace_window`: the phase ends;
- `2 * fill_wait_seconds` with no order update nor new quote while orders work: every working limit escalates;
- the deadline (`max_total_wait` after the start) escalates through the policy; one `fill_wait` later (the hard
  stop) whatever still works is cancelled, confirmations are awaited for `grace_window`, and unfinished legs end
  `incomplete`.
Escalation cancels the working order first; the remainder is sent only once the cancel is confirmed (the leg is
then idle), and only for what is still unfilled, so an order that filled meanwhile sends nothing. An escalated buy
the broker refuses for want of buying power is sent again once, cut to what the buying power covers, and its leg
ends once that order closes (`repeg.engine.buying_power`).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from repeg.brokers.base import Broker
from repeg.config import ExecutionConfig
from repeg.domain.events import LegEscalated, LegFinished, OrderUpdated
from repeg.domain.leg import REASON_ESCALATE, REASON_REPEG, LegState
from repeg.domain.lifecycle import IN_FLIGHT, LegStatus
from repeg.domain.orders import OrderEvent
from repeg.domain.quote import Quote, assess_quote
from repeg.engine.bus import EventBus, Inbox, UpdateRouter
from repeg.engine.buying_power import within_buying_power
from repeg.engine.clock import Clock
from repeg.engine.gateway import OrderGateway
from repeg.engine.leg_signals import (
    AWAITING_BROKER,
    decision_changed,
    ended_by_broker,
    last_order_id,
    recorded_quote,
    refused_back_to_work,
)
from repeg.engine.open_orders import (
    closing,
    left_open,
    left_open_anew,
    polled_until_closed,
    replace_pending,
    replaceable,
    replacement_unread,
    unread_left_open,
)
from repeg.errors import SafetyLimitError
from repeg.market.base import QuoteFeed
from repeg.policy.decide import Action, Escalate, ExecutionPolicy, Replace, Skip, Submit, Wait

#: Smallest step the loop sleeps, so that a due time at or before "now" can never spin virtual time.
_MIN_SLEEP = timedelta(milliseconds=1)
#: Pushed updates by which the broker refuses a cancel or replace it had accepted.
_REFUSALS = frozenset({OrderEvent.CANCEL_REJECTED, OrderEvent.REPLACE_REJECTED})
#: Actions carried out for one leg per wake-up before it must wait for the broker or the clock.
_MAX_ACTIONS_PER_WAKE = 4


@dataclass(frozen=True)
class EngineContext:
    """What every monitor of a run shares."""

    broker: Broker
    feed: QuoteFeed
    clock: Clock
    config: ExecutionConfig
    policy: ExecutionPolicy
    bus: EventBus
    gateway: OrderGateway
    router: UpdateRouter


class PhaseMonitor:
    """Drives `legs` from their current state to done; `run()` returns when the phase has ended."""

    def __init__(self, ctx: EngineContext, legs: Sequence[int], started_at: datetime) -> None:
        config = ctx.config
        self._ctx = ctx
        self._legs = tuple(legs)
        self._inbox = Inbox()
        self._deadline = started_at + config.total_wait
        self._hard_stop = self._deadline + config.fill_wait
        self._stall_limit = 2 * config.fill_wait
        self._grace = config.grace
        self._check_interval = config.check_interval
        self._quote_max_age = config.quote_age_limit
        self._max_spread_pct = config.max_spread_pct
        self._active = {index for index in legs if not ctx.bus.leg(index).is_done}
        self._working: set[int] = set()
        self._dirty: set[int] = set(self._active)
        self._due_heap: list[tuple[datetime, int]] = []
        self._due_at: dict[int, datetime] = {}
        self._last_activity = started_at
        self._all_done_since: datetime | None = None
        #: Legs to end (status, reason) once their working order's refused cancel has gone out.
        self._giving_up: dict[int, tuple[LegStatus, str]] = {}
        #: Legs given up whose order's cancel the broker refused after accepting it: to be requested again.
        self._recancel: set[int] = set()
        self._next_poll = started_at + config.check_interval
        self._polling = not ctx.broker.pushes_updates
        self._log = structlog.get_logger("repeg.engine").bind(run_id=ctx.bus.run_id)

    async def run(self) -> None:
        self._ctx.router.attach(self._legs, self._inbox)
        try:
            while not await self._turn():
                pass
        finally:
            self._inbox.close()
            self._ctx.router.detach(self._legs, self._inbox)

    # --- one turn of the loop ------------------------------------------------------------------------------

    async def _turn(self) -> bool:
        """One pass; True when the phase has ended."""
        now = self._ctx.clock.now()
        await self._record_updates(now)
        if self._polling and now >= self._next_poll:
            await self._poll_working()
            self._next_poll = now + self._check_interval
        if now >= self._hard_stop:
            await self._wind_down()
            return True
        if self._working and now - self._last_activity >= self._stall_limit and self._stalled(now):
            await self._escalate_all(now, "stall")
        await self._advance_due(now)
        if self._finished_for_good(now):
            return True
        await self._inbox.wait(self._ctx.clock, self._next_wake(now))
        return False

    async def _record_updates(self, now: datetime) -> None:
        bus = self._ctx.bus
        for update in self._inbox.drain():
            index = bus.folder.leg_of(update.order.client_order_id)
            before = None if index is None else bus.leg(index)
            await bus.emit(OrderUpdated(**bus.stamp(index), update=update))
            self._last_activity = now
            if index is None or before is None:
                continue
            if update.event in _REFUSALS and self._after_refusal(index, before, bus.leg(index), now):
                continue
            self._note_left_open_anew(index, before, bus.leg(index))
            if decision_changed(before, bus.leg(index)) or index not in self._active:
                self._dirty.add(index)  # (a done leg whose order still works: is it closed now?)

    def _note_left_open_anew(self, index: int, before: LegState, after: LegState) -> None:
        if index in self._active or self._ctx.gateway.cancelled_unread(after):  # (its cancel went out by id)
            return
        if left_open_anew(before, after):
            self._recancel.add(index)  # a replacement reported after its leg ended: cancelled at once

    def _after_refusal(self, index: int, before: LegState, after: LegState, now: datetime) -> bool:
        """The broker refused, after accepting it, a cancel or replace of a still-live order. Like a refusal
        answered at once, it is acted on at the leg's next check, not right away: a working leg is decided on
        again; a leg already given up has its order's cancel requested again. False when neither applies."""
        if closing(after) and index not in self._active:
            self._recancel.add(index)
        elif not refused_back_to_work(before, after):
            return False
        self._schedule(index, now + self._check_interval)
        return True

    async def _recancel_closing(self, index: int) -> None:
        """Request again the cancel of a done leg's open order, which the broker refused (again if refused again)."""
        self._recancel.discard(index)
        leg = self._ctx.bus.leg(index)
        if closing(leg) or unread_left_open(leg):
            await self._cancel_left_open(index, reason="give_up")

    async def _poll_working(self) -> None:
        for index in sorted(self._working):
            before = self._ctx.bus.leg(index)
            refused = await self._ctx.gateway.poll(index)
            after = self._ctx.bus.leg(index)
            if after is before:
                continue
            now = self._ctx.clock.now()
            self._last_activity = now
            self._note_left_open_anew(index, before, after)
            if not (refused and self._after_refusal(index, before, after, now)):
                self._dirty.add(index)

    def _stalled(self, now: datetime) -> bool:
        """True when neither an order update nor a new quote of a working leg's symbol came for the stall limit.

        Only called once the order updates alone have been quiet that long, so the quote scan stays rare.
        """
        latest = self._last_activity
        for index in self._working:
            quote = self._ctx.feed.latest(self._ctx.bus.leg(index).symbol)
            if quote is not None and quote.ts > latest:
                latest = quote.ts
        self._last_activity = latest
        return now - latest >= self._stall_limit

    def _finished_for_good(self, now: datetime) -> bool:
        if self._active or self._working:
            self._all_done_since = None
            return False
        if self._all_done_since is None:
            self._all_done_since = max(now, self._last_activity)
        return now >= self._all_done_since + self._grace

    def _next_wake(self, now: datetime) -> datetime:
        candidates = [self._hard_stop]
        while self._due_heap and self._due_at.get(self._due_heap[0][1]) != self._due_heap[0][0]:
            heapq.heappop(self._due_heap)
        if self._due_heap:
            candidates.append(self._due_heap[0][0])
        if self._working:
            candidates.append(self._last_activity + self._stall_limit)
        if self._all_done_since is not None:
            candidates.append(self._all_done_since + self._grace)
        if self._polling and self._working:
            candidates.append(self._next_poll)
        return max(min(candidates), now + _MIN_SLEEP)

    # --- legs ----------------------------------------------------------------------------------------------

    async def _advance_due(self, now: datetime) -> None:
        while self._due_heap and self._due_heap[0][0] <= now:
            due, index = heapq.heappop(self._due_heap)
            if self._due_at.get(index) == due:
                del self._due_at[index]
                self._dirty.add(index)
        dirty, self._dirty = sorted(self._dirty), set()
        for index in dirty:
            if index in self._active:
                await self._advance_leg(index, now)
            elif index in self._recancel:
                await self._recancel_closing(index)
            await self._refresh(index)

    async def _advance_leg(self, index: int, now: datetime) -> None:
        """Ask the policy and act until it says wait (bounded, so a confused policy cannot spin)."""
        ctx = self._ctx
        for _ in range(_MAX_ACTIONS_PER_WAKE):
            leg = ctx.bus.leg(index)
            if leg.status is LegStatus.SUBMITTING:  # a submit of unknown outcome (a timeout): ask again
                await ctx.gateway.resolve_submit(index)
                if ctx.bus.leg(index).status is LegStatus.SUBMITTING:
                    break
                continue
            if leg.is_done or leg.status in AWAITING_BROKER:
                return  # nothing can be decided until the broker answers the request in flight
            if replace_pending(leg) or replacement_unread(leg):
                break  # the replaced order may still fill, or its replacement is unread: the remainder is unknown
            giving_up = self._giving_up.get(index)
            if giving_up is not None:
                await self._give_up(index, *giving_up)  # its cancel was refused: request it again
                break
            ending = ended_by_broker(leg)
            if ending is not None:
                await self._give_up(index, *ending)
                return
            quote = ctx.feed.latest(leg.symbol)
            verdict = assess_quote(quote, now, self._quote_max_age, self._max_spread_pct)
            action = ctx.policy.decide(leg, quote, verdict, now)
            if isinstance(action, Wait):
                self._schedule(index, action.until)
                return
            await self._carry_out(leg, action, recorded_quote(leg, quote, verdict))
            self._last_activity = now
            if self._refused(leg, ctx.bus.leg(index), action):
                break  # refused, or deferred until an earlier order's fills are known: retry at the next check
        self._schedule(index, now + self._check_interval)

    @staticmethod
    def _refused(before: LegState, after: LegState, action: Action) -> bool:
        """True when a change of the working order left it working unchanged (refused and reconciled), or a submit
        left the leg idle (its remainder deferred while an earlier order's last fills are unknown)."""
        if isinstance(action, Submit) and after.status is LegStatus.IDLE:
            return True
        return (
            before.status is LegStatus.WORKING
            and after.status is LegStatus.WORKING
            and after.active_client_order_id == before.active_client_order_id
        )

    def _schedule(self, index: int, until: datetime | None) -> None:
        if until is None:
            self._due_at.pop(index, None)
            return
        if self._due_at.get(index) == until:
            return  # already scheduled then: a second heap entry would only be skipped later
        self._due_at[index] = until
        heapq.heappush(self._due_heap, (until, index))

    async def _refresh(self, index: int) -> None:
        """Keep the working/active sets in step with the leg; record the end of a leg that just filled."""
        leg = self._ctx.bus.leg(index)
        if leg.status in IN_FLIGHT or closing(leg) or (self._polling and polled_until_closed(leg)):
            self._working.add(index)
        else:
            self._working.discard(index)
        if leg.is_done and index in self._active:
            self._active.discard(index)
            self._due_at.pop(index, None)
            if leg.status is LegStatus.FILLED:
                await self._finish(leg, LegStatus.FILLED, "")
            if left_open(leg) or unread_left_open(leg):
                await self._cancel_left_open(index)

    async def _cancel_left_open(self, index: int, reason: str = "leg_done") -> None:
        """Cancel the open order of a done leg (`left_open`, or a given-up leg's). A refused cancel is requested
        again at the leg's next check (and at the hard stop), until one goes out."""
        if not await self._ctx.gateway.cancel(index, reason=reason):
            self._recancel.add(index)
            self._schedule(index, self._ctx.clock.now() + self._check_interval)

    async def _carry_out(self, leg: LegState, action: Action, quote: Quote | None) -> None:
        try:
            await self._dispatch(leg, action, quote)
        except SafetyLimitError as exc:
            await self._give_up(leg.index, LegStatus.FAILED, str(exc))

    async def _dispatch(self, leg: LegState, action: Action, quote: Quote | None) -> None:
        gateway = self._ctx.gateway
        if isinstance(action, Submit):
            refusal = await gateway.submit(
                leg.index,
                action.order_type,
                action.limit_price,
                step=action.step,
                reason=action.reason,
                quote=quote,
            )
            if refusal is None:
                return
            # An escalated buy refused for want of buying power goes again for what that covers; else the leg ends.
            ending = await within_buying_power(self._ctx, leg.index, action, quote, refusal)
            if ending is not None:
                await self._give_up(leg.index, *ending)
        elif isinstance(action, Replace):
            if self._ctx.broker.supports_replace and replaceable(leg):
                await gateway.replace(leg.index, action.limit_price, step=action.step, quote=quote)
            else:
                await gateway.cancel(leg.index, REASON_REPEG)
        elif isinstance(action, Escalate):
            await self._escalate(leg, action.reason)
        elif isinstance(action, Skip):
            await self._finish(leg, LegStatus.SKIPPED, action.reason)

    async def _escalate(self, leg: LegState, reason: str) -> None:
        """Mark the leg escalated and cancel its working order; the remainder goes out once that is confirmed."""
        bus = self._ctx.bus
        if not leg.escalated:
            await bus.emit(
                LegEscalated(**bus.stamp(leg.index), remaining_qty=leg.remaining_qty, reason=reason)
            )
            self._log.info(
                "leg_escalated",
                correlation_id=self._ctx.bus.correlation(leg.index),
                symbol=leg.symbol,
                order_id=last_order_id(leg),
                remaining_qty=str(leg.remaining_qty),
                reason=reason,
            )
        if leg.status is LegStatus.WORKING and not replace_pending(leg):
            await self._ctx.gateway.cancel(leg.index, REASON_ESCALATE)

    async def _escalate_all(self, now: datetime, reason: str) -> None:
        for index in sorted(self._working):
            leg = self._ctx.bus.leg(index)
            if leg.status is LegStatus.WORKING and not leg.escalated and leg.limit_price is not None:
                await self._escalate(leg, reason)
                if replace_pending(leg):
                    self._schedule(index, now + self._check_interval)  # its cancel waits for the replace
                await self._refresh(index)
        self._last_activity = now

    async def _finish(self, leg: LegState, status: LegStatus, reason: str) -> None:
        bus = self._ctx.bus
        await bus.emit(LegFinished(**bus.stamp(leg.index), status=status.value, reason=reason))
        self._log.info(
            "leg_finished",
            correlation_id=self._ctx.bus.correlation(leg.index),
            symbol=leg.symbol,
            order_id=last_order_id(leg),
            status=status.value,
            filled_qty=str(leg.filled_qty),
            reason=reason,
        )

    async def _give_up(self, index: int, status: LegStatus, reason: str) -> None:
        """End a leg that cannot proceed; its working order (if any) is cancelled first.

        If the broker refuses that cancel, the leg is not ended yet (an ended leg's order would be left
        working): the cancel is requested again at the leg's next check, and the leg ends once it went out.
        """
        leg = self._ctx.bus.leg(index)
        if leg.status is LegStatus.WORKING:
            await self._ctx.gateway.cancel(index, reason="give_up")
            leg = self._ctx.bus.leg(index)
            if leg.status is LegStatus.WORKING:
                self._giving_up[index] = (status, reason)
                return
        self._giving_up.pop(index, None)
        if not leg.is_done:
            await self._finish(leg, status, reason)

    # --- the end -------------------------------------------------------------------------------------------

    async def _cancel_working(self) -> None:
        for index in sorted(self._working):
            if self._ctx.bus.leg(index).status is LegStatus.SUBMITTING:
                await self._ctx.gateway.resolve_submit(index, resend=False)  # its order may be live, or land
            if self._ctx.bus.leg(index).status is LegStatus.WORKING:
                await self._ctx.gateway.cancel(index, reason="phase_end")
            elif index in self._recancel:
                await self._recancel_closing(index)
            await self._refresh(index)

    async def _give_up_unanswered(self) -> None:
        """After the grace window (a submit of unknown outcome may land in it): one still not found is failed."""
        for index in sorted(self._working):
            if self._ctx.bus.leg(index).status is LegStatus.SUBMITTING:
                await self._ctx.gateway.resolve_submit(index, resend=False, give_up=True)
                await self._refresh(index)

    async def _wind_down(self) -> None:
        """Hard stop: cancel what still works, wait `grace_window` for confirmations, end the rest incomplete.

        A refused cancel (a broker error, an order pending a replace) leaves its order working: it is requested
        again every `wait_between_checks` within the window, so that no order outlives the phase unnoticed.
        """
        clock = self._ctx.clock
        await self._cancel_working()
        give_up_at = clock.now() + self._grace
        retry_at = clock.now() + self._check_interval
        while self._working and clock.now() < give_up_at:
            await self._inbox.wait(clock, min(give_up_at, retry_at))
            await self._record_updates(clock.now())
            if self._polling:
                await self._poll_working()
            if clock.now() >= retry_at:
                await self._cancel_working()
                retry_at = clock.now() + self._check_interval
            for index in sorted(self._working | self._dirty):
                await self._refresh(index)
        await self._give_up_unanswered()
        for index in sorted(self._active):
            leg = self._ctx.bus.leg(index)
            if not leg.is_done:
                status, reason = self._giving_up.get(index, (LegStatus.INCOMPLETE, "phase deadline reached"))
                await self._finish(leg, status, reason)
            await self._refresh(index)
