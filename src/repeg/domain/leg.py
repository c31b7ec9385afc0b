"""A leg (one symbol's intent): its state, as the fold over run events derives it (`repeg.domain.leg_fold`).

`LegState` is everything the run knows about one leg: its spec, status, order chain and the figures derived from
them (filled quantity and notional, remainder, average price). It is built only by `leg_fold.apply_event`, so a
live run and its journal can never disagree. The `REASON_*` constants are the `OrderIntent.reason` values the
engine writes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from repeg.domain.lifecycle import DONE, LegStatus
from repeg.domain.order_record import OrderRecord
from repeg.domain.orders import BrokerOrder, Side
from repeg.domain.plan import LegSpec
from repeg.domain.quote import Quote
from repeg.domain.ticks import ZERO

#: `OrderIntent.reason` values the engine writes; `REASON_REPEG` intents count as re-pegs.
REASON_INITIAL = "initial"
REASON_REPEG = "repeg"
REASON_REMAINDER = "remainder"
REASON_ESCALATE = "escalate"
REASON_NO_QUOTE = "no_quote"
REASON_RECONCILE = "reconcile"


class LegState(BaseModel):
    """Everything the run knows about one leg, derived from its events only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: LegSpec
    status: LegStatus = LegStatus.PLANNED
    arrival_quote: Quote | None = None
    orders: tuple[OrderRecord, ...] = ()
    #: The order that is live (or being submitted); None when no order is.
    active_client_order_id: str | None = None
    #: The replacement announced but not yet acknowledged.
    pending_client_order_id: str | None = None
    limit_price: Decimal | None = None
    #: Price step of the current limit: 0 = initial offset, k = `repeg_steps[k - 1]`.
    step: int = 0
    repegs: int = 0
    escalated: bool = False
    escalation_reason: str = ""
    phase_started_at: datetime | None = None
    #: `step` when the phase last (re)started: a resumed leg's schedule counts on from it (`LadderPolicy`).
    step_at_phase_start: int = 0
    submitted_at: datetime | None = None
    last_priced_at: datetime | None = None
    #: When the working price took effect (its submission, or its replacement's acceptance; the replaced order's in
    #: `replaced_priced_at`): no step nor escalation comes sooner than a fill wait after it (`LadderPolicy`).
    priced_at: datetime | None = None
    replaced_priced_at: datetime | None = None
    #: When the broker last refused outright to re-price the working order (a replace refused, or its replacement
    #: rejected; not a request left unanswered): the next re-peg waits a fill wait from then (`LadderPolicy`).
    repeg_refused_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    finish_reason: str = ""

    @property
    def index(self) -> int:
        return self.spec.index

    @property
    def symbol(self) -> str:
        return self.spec.symbol

    @property
    def side(self) -> Side:
        return self.spec.side

    @property
    def qty(self) -> Decimal | None:
        """The leg's quantity; None for a notional leg not yet sized."""
        return self.spec.qty

    @property
    def filled_qty(self) -> Decimal:
        total = ZERO  # a plain loop: the engine asks several times per event, and chains are short
        for record in self.orders:
            total += record.filled_qty
        return total

    @property
    def overfilled(self) -> bool:
        """True when the broker reported more fills than the leg's quantity (the leg has then failed)."""
        return self.qty is not None and self.filled_qty > self.qty

    @property
    def remaining_qty(self) -> Decimal:
        return ZERO if self.qty is None else self.qty - self.filled_qty

    @property
    def filled_notional(self) -> Decimal:
        return sum((n for n in (r.notional for r in self.orders) if n is not None), ZERO)

    @property
    def avg_fill_price(self) -> Decimal | None:
        """Average of the broker's actual fill prices over the chain; None before any priced fill.

        Weighted over the quantity whose price the broker reported: a fill reported without its average price
        (yet) would otherwise count as filled at $0 and drag the average down.
        """
        priced = ZERO
        for record in self.orders:
            if record.notional is not None:
                priced += record.filled_qty
        return None if priced == ZERO else self.filled_notional / priced

    @property
    def filled_before_escalation(self) -> Decimal:
        return sum((r.filled_qty for r in self.orders if not r.escalation), ZERO)

    @property
    def arrival_mid(self) -> Decimal | None:
        return None if self.arrival_quote is None else self.arrival_quote.mid

    @property
    def order_ids(self) -> tuple[str, ...]:
        """The chain of broker order ids, in the order they were created."""
        return tuple(r.order_id for r in self.orders if r.order_id is not None)

    @property
    def active_order(self) -> OrderRecord | None:
        return self.record(self.active_client_order_id)

    @property
    def next_attempt(self) -> int:
        """Attempt number of the next order; with the run and leg it determines the client order id."""
        return len(self.orders)

    @property
    def is_done(self) -> bool:
        return self.status in DONE

    def record(self, client_order_id: str | None) -> OrderRecord | None:
        if client_order_id is not None:
            for record in self.orders:
                if record.client_order_id == client_order_id:
                    return record
        return None

    def record_for(self, order: BrokerOrder) -> OrderRecord | None:
        client_id, order_id = order.client_order_id, order.order_id
        for record in self.orders:
            if record.client_order_id == client_id or record.order_id == order_id:
                return record
        return None
