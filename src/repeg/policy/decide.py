"""The re-peg decision: what to do next with one leg, as a pure function of its state, a quote and the time.

`ExecutionPolicy` is the seam for alternative policies (market at arrival, touch then market, adaptive): the
engine asks `decide` and carries the returned `Action` out; it never prices or schedules by itself. Actions are a
small closed set of frozen, slotted dataclasses: they never leave the process (the engine records what it does
as validated run events), and one is made at every wake-up of every leg. Policies are pure: no clock, no I/O, no
hidden state, so every path is a unit test without an event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from repeg.config import EscalationStyle, ExecutionConfig, OnNoQuote
from repeg.domain.leg import (
    REASON_ESCALATE,
    REASON_INITIAL,
    REASON_NO_QUOTE,
    REASON_REMAINDER,
    REASON_REPEG,
    LegState,
)
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import OrderStatus, OrderType
from repeg.domain.quote import Quote, QuoteVerdict
from repeg.domain.ticks import ZERO
from repeg.policy.pricing import escalation_limit, initial_limit, repeg_limit


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait:
    """Nothing to do now; ask again at `until` (or when something happens to the leg, if None)."""

    until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Submit:
    """Send a new order for the leg's remaining quantity."""

    order_type: OrderType
    limit_price: Decimal | None = None
    step: int | None = None
    reason: str = REASON_INITIAL


@dataclass(frozen=True, slots=True, kw_only=True)
class Replace:
    """Re-price the working order's remaining quantity (by replace, or cancel-confirm-submit)."""

    limit_price: Decimal
    step: int
    reason: str = REASON_REPEG


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalate:
    """Stop being passive: cancel what works and send the remainder to the market (or a collared limit)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Skip:
    """Give the leg up without sending anything (e.g. no valid quote in time)."""

    reason: str


Action = Wait | Submit | Replace | Escalate | Skip


class ExecutionPolicy(Protocol):
    """Decides the next action for one leg. Must be pure and cheap: it runs at every wake-up of a leg.

    The engine does not consult it while a request of the leg is in flight (submitting, replacing, cancelling)
    nor once the leg is done.
    """

    def decide(self, leg: LegState, quote: Quote | None, verdict: QuoteVerdict, now: datetime) -> Action: ...


_WAITING_FOR_BROKER = frozenset({LegStatus.SUBMITTING, LegStatus.REPLACING, LegStatus.CANCELING})
#: An order the exchange has not acknowledged yet: Alpaca (and the simulator) refuse to replace it.
_UNACKNOWLEDGED = frozenset({OrderStatus.PENDING_NEW, OrderStatus.ACCEPTED})
_IDLE_WAIT = Wait()


def works_at_market(leg: LegState) -> bool:
    """True when the leg's working order is a market order (`on_no_quote = "market"` sent it, or escalation).

    It is left to fill: escalating it (at the deadline, when the steps run out, or at a stall) would only cancel
    it and send the same market order again, or, under a collared escalation without a valid quote, nothing.
    """
    if leg.status is not LegStatus.WORKING or leg.limit_price is not None:
        return False
    active = leg.active_order
    return active is not None and active.order_type is OrderType.MARKET


class LadderPolicy:
    """The default schedule: join passively, re-peg up a ladder of spread fractions, then escalate.

    Timing is anchored to the leg's first submission (for a resumed leg, see `_anchor`): step k (k >= 1, price
    fraction `repeg_steps[k - 1]`) is due `k * fill_wait` after it, and escalation `(len(repeg_steps) + 1) *
    fill_wait` after it, or at the phase deadline (`max_total_wait` after the phase started), whichever comes
    first; but never sooner than a fill wait after the working price took effect (`LegState.priced_at`), so that
    a step sent late still works a full one. A due step whose price equals the working limit is not sent and
    consumes its wait: the next decision comes at the next step's time. A re-peg the broker refused outright is
    tried again (at the step then due, from the quote then) a fill wait after the refusal, not at every check; the
    escalation keeps its time. Without a valid quote nothing is re-priced; the leg polls for one every
    `wait_between_checks`. A working market order is left to fill.
    """

    def __init__(self, config: ExecutionConfig) -> None:
        self._config = config
        self._steps = config.repeg_steps
        self._fill_wait = config.fill_wait
        self._poll = config.check_interval
        self._quote_wait = config.quote_wait_limit
        self._total_wait = config.total_wait

    def decide(self, leg: LegState, quote: Quote | None, verdict: QuoteVerdict, now: datetime) -> Action:
        if leg.is_done or leg.status in _WAITING_FOR_BROKER:
            return _IDLE_WAIT
        valid = quote if verdict is QuoteVerdict.VALID else None
        if leg.escalated:
            return self._escalation_order(leg, valid, now)
        if leg.status is LegStatus.PLANNED:
            return self._first_order(leg, valid, now)
        return self._scheduled(leg, valid, now)

    # --- paths ---------------------------------------------------------------------------------------------

    def _scheduled(self, leg: LegState, quote: Quote | None, now: datetime) -> Action:
        if works_at_market(leg):
            return _IDLE_WAIT
        deadline = self._deadline(leg)
        if deadline is not None and now >= deadline:
            return Escalate(reason="deadline")
        rested = self._rested(leg)
        due = self._due_step(leg, now) if rested is None or now >= rested else leg.step
        if due > len(self._steps):
            return Escalate(reason="steps_exhausted")
        wake = self._wake(leg, due, deadline, rested)
        if leg.status is LegStatus.IDLE:
            return self._remainder(leg, quote, due, now, wake)
        return self._repeg(leg, quote, due, now, wake)

    def _repeg(self, leg: LegState, quote: Quote | None, due: int, now: datetime, wake: datetime) -> Action:
        """A working order moves to the due step's price from the current quote, if that changes its price.

        A working market order (sent by `on_no_quote = "market"`) never comes here (`_scheduled` leaves it to
        fill): it has no price to move, and re-pegging it would turn it into a passive limit. An order
        the exchange has not acknowledged (`pending_new`, `accepted`) cannot be replaced: the step waits for it.
        A re-peg the broker refused is not sent again before a fill wait has passed since the refusal (`_retry`),
        unless the working order has filled in part since (its re-peg is then a cancel and the remainder).
        """
        if due <= leg.step or leg.limit_price is None:
            return Wait(until=wake)
        retry = self._retry(leg)
        if retry is not None and now < retry:
            return Wait(until=min(wake, retry))
        active = leg.active_order
        if quote is None or (active is not None and active.status in _UNACKNOWLEDGED):
            return Wait(until=min(wake, now + self._poll))
        price = repeg_limit(quote, leg.side, self._steps[due - 1])
        if price == leg.limit_price:
            return Wait(until=wake)
        return Replace(limit_price=price, step=due)

    def _first_order(self, leg: LegState, quote: Quote | None, now: datetime) -> Action:
        if leg.qty is None:
            return Skip(reason="notional leg was never sized to a quantity")
        if quote is not None:
            price = initial_limit(quote, leg.side, self._config.initial_offset)
            return Submit(order_type=OrderType.LIMIT, limit_price=price, step=0)
        started = leg.phase_started_at or now
        give_up = started + self._quote_wait
        deadline = self._deadline(leg)
        if deadline is not None:
            give_up = min(give_up, deadline)
        if now < give_up:
            return Wait(until=min(give_up, now + self._poll))
        if self._config.on_no_quote is OnNoQuote.MARKET:
            return Submit(order_type=OrderType.MARKET, reason=REASON_NO_QUOTE)
        return Skip(reason=f"no valid quote within {self._config.quote_wait}s")

    def _remainder(
        self, leg: LegState, quote: Quote | None, due: int, now: datetime, wake: datetime
    ) -> Action:
        """An idle leg (its order closed with quantity left) sends the remainder at the due step's price."""
        if quote is None:
            return Wait(until=min(wake, now + self._poll))
        step = max(due, leg.step)
        if step == 0:
            price = initial_limit(quote, leg.side, self._config.initial_offset)
        else:
            price = repeg_limit(quote, leg.side, self._steps[step - 1])
        reason = REASON_REPEG if step > leg.step else REASON_REMAINDER
        return Submit(order_type=OrderType.LIMIT, limit_price=price, step=step, reason=reason)

    def _escalation_order(self, leg: LegState, quote: Quote | None, now: datetime) -> Action:
        """Once escalated, an idle leg sends its remainder as a market order (or a collared marketable limit).

        A passive order still working after escalation (its cancel was refused, e.g. while a replace was pending)
        is escalated again, so its cancel is retried; a market order (`works_at_market`) is left to fill.
        """
        if leg.status is LegStatus.WORKING:
            active = leg.active_order
            passive = active is not None and not active.escalation and not works_at_market(leg)
            return Escalate(reason=leg.escalation_reason or "escalate") if passive else _IDLE_WAIT
        # Otherwise idle, or planned (`decide` returned already for a leg done or awaiting the broker).
        if self._config.escalation is EscalationStyle.MARKET:
            return Submit(order_type=OrderType.MARKET, reason=REASON_ESCALATE)
        if quote is None:
            return Wait(until=now + self._poll)
        price = escalation_limit(quote, leg.side, self._config.escalation_collar_bps)
        return Submit(order_type=OrderType.LIMIT, limit_price=price, reason=REASON_ESCALATE)

    # --- schedule ------------------------------------------------------------------------------------------

    def _deadline(self, leg: LegState) -> datetime | None:
        started = leg.phase_started_at
        return None if started is None else started + self._total_wait

    def _anchor(self, leg: LegState) -> datetime | None:
        """Where the leg's schedule counts from: its first submission, or, for a leg whose phase restarted after
        that (`repeg resume`), the restart set back by the steps taken before it, so that the schedule goes on
        where it stood (the next step a fill wait after the restart) instead of counting the downtime. Steps
        taken since the restart do not move it: each of them is followed by a full fill wait."""
        submitted = leg.submitted_at
        restarted = leg.phase_started_at
        if submitted is None or restarted is None or restarted <= submitted:
            return submitted
        return max(submitted, restarted - leg.step_at_phase_start * self._fill_wait)

    def _due_step(self, leg: LegState, now: datetime) -> int:
        """How many fill waits have passed since the schedule's anchor (0 before the first submission)."""
        anchor = self._anchor(leg) or now
        return int((now - anchor) / self._fill_wait)

    def _rested(self, leg: LegState) -> datetime | None:
        """A fill wait after the working price level took effect: no step (nor escalation) falls due before, so
        a step sent late (no valid quote, a slow broker) still works a full fill wait."""
        return None if leg.priced_at is None else leg.priced_at + self._fill_wait

    def _retry(self, leg: LegState) -> datetime | None:
        """A fill wait after the broker last refused to re-price the working order (`LegState.repeg_refused_at`):
        the next re-peg goes then, from the quote of then, rather than at every check (the same refusal again);
        the schedule's escalation (steps used, deadline) is not moved by it. None once the working order has
        filled in part: its re-peg then cancels it and submits the remainder, a request the refused replace says
        nothing of, and a replace refused for such a fill (Alpaca's adapter refuses to replace an order with
        fills) lost a race to it rather than being refused its price."""
        refused = leg.repeg_refused_at
        active = leg.active_order
        if refused is None or (active is not None and active.filled_qty > ZERO):
            return None
        return refused + self._fill_wait

    def _wake(self, leg: LegState, due: int, deadline: datetime | None, rested: datetime | None) -> datetime:
        """When the next step (or escalation) falls due, capped at the deadline."""
        anchor = self._anchor(leg) or leg.phase_started_at
        if anchor is None:
            return deadline or datetime.max.replace(tzinfo=UTC)
        wake = anchor + (due + 1) * self._fill_wait
        if rested is not None:
            wake = max(wake, rested)
        return wake if deadline is None else min(wake, deadline)
