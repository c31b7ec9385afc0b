"""The journal fold under adversarial delivery: a Hypothesis state machine.

The machine plays a broker for one leg and an engine that acts only on the folded state. Engine intents and the
broker's synchronous answers arrive in program order (as the engine journals them); pushed order updates are
delivered late, out of order and duplicated; a replace's answer may be lost although the broker replaced. After
every step the fold must hold the invariants the journal relies on: no over-fill, the leg's fills equal the sum of
the largest cumulative fill delivered per order, a duplicated update changes nothing, and re-folding the journal
from scratch gives the same leg. Once everything is delivered, a working leg works an order still open.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from repeg.domain.events import (
    IntentAction,
    LegPlanned,
    OrderAccepted,
    OrderFailed,
    OrderIntent,
    OrderUpdated,
    RunEvent,
)
from repeg.domain.ids import client_order_id
from repeg.domain.leg import LegState
from repeg.domain.leg_fold import apply_event
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import BrokerOrder, Fill, OrderEvent, OrderStatus, OrderType, OrderUpdate, Side
from repeg.domain.plan import LegSpec
from repeg.domain.run import fold_run

RUN = "fold-machine"
QTY = Decimal(100)
PRICE = Decimal("10.00")
T0 = datetime(2026, 1, 2, 14, 30, tzinfo=UTC)


class LegFoldMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tick = 0
        planned = LegPlanned(
            run_id=RUN,
            ts=T0,
            correlation_id=RUN,
            leg_index=0,
            spec=LegSpec(index=0, symbol="AAA", side=Side.BUY, qty=QTY),
        )
        self.log: list[RunEvent] = [planned]
        self.leg = apply_event(LegState(spec=planned.spec), planned)
        self.broker: dict[str, BrokerOrder] = {}  # client order id -> the broker's truth
        self.answer: RunEvent | None = None  # the synchronous answer to the engine's last call
        self.pushed: list[OrderUpdated] = []  # pushed updates not yet delivered
        self.delivered: list[OrderUpdated] = []
        self.max_cum: dict[str, Decimal] = {}

    # --- helpers ---------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        self.tick += 1
        return T0 + timedelta(seconds=self.tick)

    def _apply(self, event: RunEvent) -> None:
        self.log.append(event)
        self.leg = apply_event(self.leg, event)
        order = event.update.order if isinstance(event, OrderUpdated) else getattr(event, "order", None)
        if isinstance(order, BrokerOrder):
            previous = self.max_cum.get(order.client_order_id, Decimal(0))
            self.max_cum[order.client_order_id] = max(previous, order.filled_qty)

    def _broker_total(self) -> Decimal:
        return sum((o.filled_qty for o in self.broker.values()), Decimal(0))

    def _push(self, event: OrderEvent, order: BrokerOrder, fill: Fill | None = None) -> None:
        self.broker[order.client_order_id] = order
        update = OrderUpdate(event=event, order=order, fill=fill, ts=order.updated_at)
        self.pushed.append(
            OrderUpdated(run_id=RUN, ts=order.updated_at, correlation_id=RUN, leg_index=0, update=update)
        )

    def _intent(self, action: IntentAction, **fields: object) -> None:
        self._apply(
            OrderIntent(run_id=RUN, ts=self._now(), correlation_id=RUN, leg_index=0, action=action, **fields)
        )

    def _new_order(self, cid: str, qty: Decimal, replaces: str | None = None) -> BrokerOrder:
        now = self._now()
        return BrokerOrder(
            order_id=f"o-{cid}",
            client_order_id=cid,
            symbol="AAA",
            side=Side.BUY,
            qty=qty,
            order_type=OrderType.LIMIT,
            limit_price=PRICE,
            status=OrderStatus.NEW,
            created_at=now,
            updated_at=now,
            replaces=replaces,
        )

    def _failed(self, action: IntentAction, order_id: str | None, status: str) -> OrderFailed:
        return OrderFailed(
            run_id=RUN,
            ts=self._now(),
            correlation_id=RUN,
            leg_index=0,
            action=action,
            order_id=order_id,
            error="OrderNotCancelableError",
            message=f"order in status {status}",
        )

    def _live(self) -> BrokerOrder | None:
        active = self.leg.active_order
        if active is None or active.order_id is None:
            return None
        return self.broker[active.client_order_id]

    def _engine_may_act(self) -> bool:
        return self.answer is None and self.leg.status is LegStatus.WORKING and self._live() is not None

    # --- the engine --------------------------------------------------------------------------------------

    @precondition(lambda self: self.answer is None and self.leg.status in (LegStatus.PLANNED, LegStatus.IDLE))
    @rule(rejected=st.booleans())
    def submit(self, rejected: bool) -> None:
        cid = client_order_id(RUN, 0, self.leg.next_attempt)
        qty = self.leg.remaining_qty
        self._intent(
            IntentAction.SUBMIT,
            client_order_id=cid,
            order_type=OrderType.LIMIT,
            qty=qty,
            limit_price=PRICE,
            attempt=self.leg.next_attempt,
        )
        if rejected:
            self.answer = OrderFailed(
                run_id=RUN,
                ts=self._now(),
                correlation_id=RUN,
                leg_index=0,
                action=IntentAction.SUBMIT,
                client_order_id=cid,
                error="OrderRejectedError",
                message="rejected",
            )
            return
        order = self._new_order(cid, qty)
        self._push(OrderEvent.NEW, order)
        self.answer = OrderAccepted(
            run_id=RUN,
            ts=self._now(),
            correlation_id=RUN,
            leg_index=0,
            action=IntentAction.SUBMIT,
            order=order,
        )

    @precondition(lambda self: self._engine_may_act())
    @rule(answer_lost=st.booleans())
    def replace(self, answer_lost: bool) -> None:
        old = self._live()
        assert old is not None
        cid = client_order_id(RUN, 0, self.leg.next_attempt)
        self._intent(
            IntentAction.REPLACE,
            client_order_id=cid,
            order_id=old.order_id,
            order_type=OrderType.LIMIT,
            qty=self.leg.remaining_qty,
            limit_price=PRICE,
            attempt=self.leg.next_attempt,
        )
        if old.status.is_terminal:
            self.answer = self._failed(IntentAction.REPLACE, old.order_id, old.status.value)
            return
        new = self._new_order(cid, old.qty - old.filled_qty, replaces=old.order_id)
        replaced = old.model_copy(
            update={"status": OrderStatus.REPLACED, "replaced_by": new.order_id, "updated_at": self._now()}
        )
        self._push(OrderEvent.REPLACED, replaced)
        if answer_lost:  # the broker replaced, but its answer never came back: the engine records a failure
            self._push(OrderEvent.NEW, new)
            self.answer = self._failed(IntentAction.REPLACE, old.order_id, "unknown")
            return
        self.broker[cid] = new
        self.answer = OrderAccepted(
            run_id=RUN,
            ts=self._now(),
            correlation_id=RUN,
            leg_index=0,
            action=IntentAction.REPLACE,
            order=new,
        )

    @precondition(lambda self: self._engine_may_act())
    @rule()
    def cancel(self) -> None:
        order = self._live()
        assert order is not None
        self._intent(IntentAction.CANCEL, order_id=order.order_id)
        if order.status.is_terminal:
            self.answer = self._failed(IntentAction.CANCEL, order.order_id, order.status.value)
            return
        self._push(
            OrderEvent.CANCELED,
            order.model_copy(update={"status": OrderStatus.CANCELED, "updated_at": self._now()}),
        )

    @precondition(lambda self: self.answer is not None)
    @rule()
    def answer_arrives(self) -> None:
        assert self.answer is not None
        answer, self.answer = self.answer, None
        self._apply(answer)

    # --- the broker ----------------------------------------------------------------------------------------

    @precondition(lambda self: any(o.status.is_open for o in self.broker.values()))
    @rule(size=st.integers(min_value=1, max_value=70), pick=st.integers(min_value=0, max_value=5))
    def broker_fills(self, size: int, pick: int) -> None:
        open_orders = [o for o in self.broker.values() if o.status.is_open]
        order = open_orders[pick % len(open_orders)]
        qty = min(Decimal(size), order.remaining_qty, QTY - self._broker_total())
        if qty <= 0:
            return
        cum = order.filled_qty + qty
        now = self._now()
        done = cum == order.qty
        filled = order.model_copy(
            update={
                "filled_qty": cum,
                "filled_avg_price": PRICE,
                "updated_at": now,
                "status": OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
            }
        )
        fill = Fill(order_id=order.order_id, qty=qty, price=PRICE, ts=now)
        self._push(OrderEvent.FILL if done else OrderEvent.PARTIAL_FILL, filled, fill)

    @precondition(lambda self: bool(self.pushed))
    @rule(pick=st.integers(min_value=0, max_value=50))
    def update_delivered_out_of_order(self, pick: int) -> None:
        update = self.pushed.pop(pick % len(self.pushed))
        self._apply(update)
        self.delivered.append(update)

    @precondition(lambda self: bool(self.delivered))
    @rule(pick=st.integers(min_value=0, max_value=50))
    def update_delivered_twice(self, pick: int) -> None:
        before = self.leg
        self._apply(self.delivered[pick % len(self.delivered)])
        assert self.leg == before

    # --- invariants ------------------------------------------------------------------------------------

    @invariant()
    def never_overfilled(self) -> None:
        assert self.leg.filled_qty <= QTY

    @invariant()
    def fills_equal_sum_of_largest_cumulative_per_order(self) -> None:
        for record in self.leg.orders:
            assert record.filled_qty == self.max_cum.get(record.client_order_id, Decimal(0))
        assert self.leg.filled_qty == sum(self.max_cum.values(), Decimal(0))

    @invariant()
    def never_more_than_the_broker_filled(self) -> None:
        assert self.leg.filled_qty <= self._broker_total()

    @invariant()
    def refolding_the_journal_gives_the_same_leg(self) -> None:
        assert fold_run(self.log).legs[0] == self.leg

    def teardown(self) -> None:
        # Once everything is delivered the fold knows exactly what the broker filled.
        if self.answer is not None:
            self.answer_arrives()
        while self.pushed:
            self.update_delivered_out_of_order(0)
        assert self.leg.filled_qty == self._broker_total()
        # ... and a working leg works an order the broker still has open (never one replaced behind its back).
        if self.leg.status is LegStatus.WORKING:
            active = self.leg.active_client_order_id
            assert active is not None
            assert self.broker[active].status.is_open


LegFoldMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_leg_fold_under_adversarial_delivery = LegFoldMachine.TestCase
