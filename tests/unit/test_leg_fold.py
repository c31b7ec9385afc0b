"""The leg fold: what each event does to a leg, and the no-overfill invariant under any delivery order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repeg.domain.buying_power import BuyingPowerCap
from repeg.domain.events import (
    IntentAction,
    LegEscalated,
    LegFinished,
    LegPlanned,
    LegSkipped,
    OrderAccepted,
    OrderFailed,
    OrderIntent,
    OrderUpdated,
    PhaseEnded,
    PhaseStarted,
    RunEnded,
    RunEvent,
    RunStarted,
)
from repeg.domain.leg import REASON_REPEG, LegState
from repeg.domain.leg_fold import apply_event
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import BrokerOrder, Fill, OrderEvent, OrderStatus, OrderType, OrderUpdate, Side
from repeg.domain.plan import LegSpec, Plan, PlanKind, SkippedTrade, TradeIntent
from repeg.domain.quote import Quote
from repeg.domain.run import RunFolder, fold_run
from repeg.errors import IllegalTransitionError, OverfillError

RUN = "fold"
T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
QTY = Decimal(100)
SPEC = LegSpec(index=0, symbol="XYZ", side=Side.BUY, qty=QTY)
ARRIVAL = Quote(
    symbol="XYZ", bid=Decimal("9.99"), bid_size=Decimal(1), ask=Decimal("10.01"), ask_size=Decimal(1), ts=T0
)


def stamp(seconds: float = 0, leg: int | None = 0) -> dict[str, object]:
    return {"run_id": RUN, "ts": T0 + timedelta(seconds=seconds), "correlation_id": RUN, "leg_index": leg}


def cid(attempt: int) -> str:
    return f"{RUN}-L0000-A{attempt:02d}"


def order(
    attempt: int,
    status: OrderStatus,
    filled: str = "0",
    price: str | None = None,
    *,
    seconds: float = 0,
    qty: Decimal = QTY,
) -> BrokerOrder:
    return BrokerOrder(
        order_id=f"o{attempt}",
        client_order_id=cid(attempt),
        symbol="XYZ",
        side=Side.BUY,
        qty=qty,
        order_type=OrderType.LIMIT,
        limit_price=Decimal("10.00"),
        status=status,
        filled_qty=Decimal(filled),
        filled_avg_price=None if price is None else Decimal(price),
        created_at=T0,
        updated_at=T0 + timedelta(seconds=seconds),
    )


def planned() -> LegPlanned:
    return LegPlanned(**stamp(), spec=SPEC)


def submit(
    attempt: int = 0, seconds: float = 0, reason: str = "initial", step: int | None = 0
) -> OrderIntent:
    return OrderIntent(
        **stamp(seconds),
        action=IntentAction.SUBMIT,
        client_order_id=cid(attempt),
        order_type=OrderType.LIMIT,
        qty=QTY,
        limit_price=Decimal("10.00"),
        attempt=attempt,
        quote=ARRIVAL,
        reason=reason,
        step=step,
    )


def replace(attempt: int, old: int, seconds: float = 0) -> OrderIntent:
    return OrderIntent(
        **stamp(seconds),
        action=IntentAction.REPLACE,
        client_order_id=cid(attempt),
        order_id=f"o{old}",
        order_type=OrderType.LIMIT,
        qty=QTY,
        limit_price=Decimal("10.01"),
        attempt=attempt,
        reason=REASON_REPEG,
        step=1,
    )


def cancel(attempt: int, seconds: float = 0) -> OrderIntent:
    return OrderIntent(
        **stamp(seconds),
        action=IntentAction.CANCEL,
        client_order_id=cid(attempt),
        order_id=f"o{attempt}",
        attempt=attempt,
        reason="repeg",
    )


def accepted(o: BrokerOrder, action: IntentAction = IntentAction.SUBMIT) -> OrderAccepted:
    return OrderAccepted(**stamp(), action=action, order=o)


def updated(o: BrokerOrder, event: OrderEvent = OrderEvent.PARTIAL_FILL, seconds: float = 0) -> OrderUpdated:
    update = OrderUpdate(event=event, order=o, ts=T0 + timedelta(seconds=seconds))
    return OrderUpdated(**stamp(seconds), update=update)


def fold(events: Sequence[RunEvent]) -> LegState:
    leg = LegState(spec=SPEC)
    for event in events:
        leg = apply_event(leg, event)
    return leg


def working() -> list[RunEvent]:
    return [planned(), submit(), accepted(order(0, OrderStatus.NEW))]


def test_submit_records_the_arrival_quote_and_the_first_order() -> None:
    leg = fold([planned(), submit()])
    assert leg.status is LegStatus.SUBMITTING
    assert leg.arrival_mid == Decimal("10.00")
    assert leg.submitted_at == T0
    assert leg.active_client_order_id == cid(0)
    assert leg.next_attempt == 1


def test_accept_makes_the_leg_working() -> None:
    leg = fold(working())
    assert leg.status is LegStatus.WORKING
    assert leg.order_ids == ("o0",)


def test_partial_fills_count_by_cumulative_quantity() -> None:
    leg = fold([*working(), updated(order(0, OrderStatus.PARTIALLY_FILLED, "40", "10.00"))])
    assert leg.filled_qty == Decimal(40)
    assert leg.remaining_qty == Decimal(60)
    assert leg.status is LegStatus.WORKING


def test_a_duplicated_fill_update_changes_nothing() -> None:
    fill = updated(order(0, OrderStatus.PARTIALLY_FILLED, "40", "10.00"))
    assert fold([*working(), fill, fill]) == fold([*working(), fill])


def test_an_older_update_arriving_late_never_lowers_the_fill() -> None:
    newer = updated(order(0, OrderStatus.PARTIALLY_FILLED, "40", "10.00", seconds=2), seconds=2)
    older = updated(order(0, OrderStatus.PARTIALLY_FILLED, "20", "10.00", seconds=1), seconds=1)
    assert fold([*working(), newer, older]).filled_qty == Decimal(40)


def test_a_complete_fill_finishes_the_leg_with_the_actual_price() -> None:
    leg = fold(
        [*working(), updated(order(0, OrderStatus.FILLED, "100", "9.995", seconds=3), OrderEvent.FILL, 3)]
    )
    assert leg.status is LegStatus.FILLED
    assert leg.avg_fill_price == Decimal("9.995")
    assert leg.completed_at == T0 + timedelta(seconds=3)


def test_a_fill_pushed_before_the_submit_returns_is_kept() -> None:
    early = updated(order(0, OrderStatus.FILLED, "100", "10.00"), OrderEvent.FILL)
    leg = fold([planned(), submit(), early, accepted(order(0, OrderStatus.NEW))])
    assert leg.status is LegStatus.FILLED
    assert leg.filled_qty == QTY


def test_replace_moves_the_active_order_and_counts_a_repeg() -> None:
    new = order(1, OrderStatus.NEW).model_copy(update={"limit_price": Decimal("10.01")})
    leg = fold([*working(), replace(1, 0), accepted(new, IntentAction.REPLACE)])
    assert leg.status is LegStatus.WORKING
    assert leg.active_client_order_id == cid(1)
    assert leg.limit_price == Decimal("10.01")
    assert leg.repegs == 1
    assert leg.step == 1
    assert leg.order_ids == ("o0", "o1")


def test_a_refused_replace_returns_to_working_and_keeps_the_old_order() -> None:
    failed = OrderFailed(
        **stamp(),
        action=IntentAction.REPLACE,
        client_order_id=cid(1),
        order_id="o0",
        error="OrderNotCancelableError",
        message="filled",
    )
    leg = fold([*working(), replace(1, 0), failed])
    assert leg.status is LegStatus.WORKING
    assert leg.active_client_order_id == cid(0)
    assert leg.pending_client_order_id is None
    assert (leg.step, leg.repegs) == (0, 0)  # a refused re-peg neither moves the ladder nor counts


def test_a_confirmed_cancel_leaves_the_leg_idle_with_its_remainder() -> None:
    partial = order(0, OrderStatus.CANCELED, "30", "10.00")
    leg = fold([*working(), cancel(0), updated(partial, OrderEvent.CANCELED)])
    assert leg.status is LegStatus.IDLE
    assert leg.remaining_qty == Decimal(70)
    assert leg.active_client_order_id is None


def test_a_refused_cancel_returns_to_working() -> None:
    failed = OrderFailed(**stamp(), action=IntentAction.CANCEL, order_id="o0", error="X", message="m")
    assert fold([*working(), cancel(0), failed]).status is LegStatus.WORKING


def test_fills_add_up_across_the_replacement_chain_at_their_own_prices() -> None:
    leg = fold(
        [
            *working(),
            cancel(0),
            updated(order(0, OrderStatus.CANCELED, "40", "10.00"), OrderEvent.CANCELED),
            submit(1, reason=REASON_REPEG, step=1),
            accepted(order(1, OrderStatus.NEW)),
            updated(order(1, OrderStatus.FILLED, "60", "10.05"), OrderEvent.FILL),
        ]
    )
    assert leg.status is LegStatus.FILLED
    assert leg.filled_qty == QTY
    assert leg.avg_fill_price == Decimal("10.03")
    assert leg.repegs == 1


def test_a_broker_over_fill_is_recorded_and_fails_the_leg_with_the_overfill_error() -> None:
    too_much = updated(order(0, OrderStatus.FILLED, "101", "10.00", qty=Decimal(101)), OrderEvent.FILL)
    leg = fold([*working(), too_much])
    assert leg.filled_qty == Decimal(101)
    assert leg.status is LegStatus.FAILED
    assert leg.error == str(OverfillError(f"{RUN}-L0000", QTY, Decimal(101)))


def test_a_late_over_fill_of_a_filled_leg_fails_it() -> None:
    filled = updated(order(0, OrderStatus.FILLED, "100", "10.00"), OrderEvent.FILL)
    finished = LegFinished(**stamp(), status="filled", reason="")
    late = updated(order(0, OrderStatus.FILLED, "101", "10.00", qty=Decimal(101)), OrderEvent.FILL)
    leg = fold([*working(), filled, finished, late])
    assert (leg.status, leg.filled_qty) == (LegStatus.FAILED, Decimal(101))
    assert leg.error == f"leg {RUN}-L0000: filled 101 exceeds quantity 100"


def test_an_over_filled_leg_keeps_its_open_order_active_so_that_it_can_be_cancelled() -> None:
    too_much = updated(
        order(0, OrderStatus.PARTIALLY_FILLED, "101", "10.00", qty=Decimal(200)), OrderEvent.FILL
    )
    leg = fold([*working(), too_much])
    assert leg.status is LegStatus.FAILED
    assert leg.active_client_order_id == cid(0)


def test_a_submit_failure_is_recorded_as_the_leg_error() -> None:
    failed = OrderFailed(
        **stamp(),
        action=IntentAction.SUBMIT,
        client_order_id=cid(0),
        error="OrderRejectedError",
        message="no",
    )
    finished = LegFinished(**stamp(), status="failed", reason="OrderRejectedError: no")
    leg = fold([planned(), submit(), failed, finished])
    assert leg.status is LegStatus.FAILED
    assert leg.error == "OrderRejectedError: no"


def test_escalation_marks_later_orders_as_escalation_orders() -> None:
    escalated = LegEscalated(**stamp(), remaining_qty=QTY, reason="deadline")
    leg = fold(
        [
            *working(),
            updated(order(0, OrderStatus.PARTIALLY_FILLED, "30", "10")),
            escalated,
            cancel(0),
            updated(order(0, OrderStatus.CANCELED, "30", "10"), OrderEvent.CANCELED),
            submit(1, reason="escalate"),
        ]
    )
    assert leg.escalated
    assert leg.escalation_reason == "deadline"
    assert leg.orders[1].escalation
    assert leg.filled_before_escalation == Decimal(30)


def test_replanning_sizes_a_planned_leg() -> None:
    sized = SPEC.model_copy(update={"qty": Decimal(7)})
    assert fold([planned(), LegPlanned(**stamp(), spec=sized)]).qty == Decimal(7)


def test_an_engine_event_out_of_turn_is_an_illegal_transition() -> None:
    with pytest.raises(IllegalTransitionError):
        fold([*working(), submit(1)])


def test_leg_finished_for_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown leg status"):
        fold([planned(), LegFinished(**stamp(), status="bogus")])


def test_leg_finished_repeating_the_status_changes_nothing() -> None:
    filled = [*working(), updated(order(0, OrderStatus.FILLED, "100", "10"), OrderEvent.FILL)]
    finished = LegFinished(**stamp(9), status="filled")
    assert fold([*filled, finished]) == fold(filled)


def test_a_leg_with_fills_cannot_be_ended_skipped() -> None:
    """An idle leg filled 40 of 100: reported `skipped`, the run would leave it out of the legs it needed and
    could call itself completed_with_skips; ending it skipped is an illegal transition."""
    idle = [*working(), updated(order(0, OrderStatus.PARTIALLY_FILLED, "40", "10")), cancel(0)]
    idle.append(updated(order(0, OrderStatus.CANCELED, "40", "10"), OrderEvent.CANCELED))
    assert fold(idle).status is LegStatus.IDLE
    with pytest.raises(IllegalTransitionError):
        fold([*idle, LegFinished(**stamp(), status="skipped", reason="no valid quote")])


def test_a_late_fill_completes_an_incomplete_leg() -> None:
    incomplete = LegFinished(**stamp(), status="incomplete", reason="deadline")
    leg = fold(
        [
            *working(),
            cancel(0),
            incomplete,
            updated(order(0, OrderStatus.FILLED, "100", "10"), OrderEvent.FILL),
        ]
    )
    assert leg.status is LegStatus.FILLED


def test_fold_run_collects_header_legs_skips_and_phases() -> None:
    plan = Plan(
        source="p.csv", kind=PlanKind.TRADES, trades=(TradeIntent(symbol="XYZ", side=Side.BUY, qty=QTY),)
    )
    skipped = SkippedTrade(symbol="TINY", side=Side.BUY, qty=Decimal(1), reason="below min notional")
    events: list[RunEvent] = [
        RunStarted(**stamp(leg=None), plan=plan, config={}, broker="fake", code_version="0"),
        planned(),
        LegSkipped(**stamp(leg=None), skipped=skipped),
        PhaseStarted(**stamp(1, leg=None), side=Side.BUY),
        submit(seconds=1),
        accepted(order(0, OrderStatus.NEW)),
        OrderUpdated(
            **{**stamp(2), "leg_index": None},
            update=OrderUpdate(event=OrderEvent.FILL, order=order(0, OrderStatus.FILLED, "100", "10"), ts=T0),
        ),
        PhaseEnded(**stamp(3, leg=None), side=Side.BUY),
        RunEnded(**stamp(4, leg=None), status="completed"),
    ]
    state = fold_run(events)
    assert state.broker == "fake"
    assert state.plan == plan
    assert state.status == "completed"
    assert state.skipped == (skipped,)
    assert state.leg(0).status is LegStatus.FILLED
    assert state.leg(0).phase_started_at == T0 + timedelta(seconds=1)
    assert state.phases[0].ended_at == T0 + timedelta(seconds=3)
    with pytest.raises(KeyError):
        state.leg(5)


def test_incremental_folder_equals_fold_run() -> None:
    events = [*working(), updated(order(0, OrderStatus.FILLED, "100", "10"), OrderEvent.FILL)]
    folder = RunFolder()
    for event in events:
        folder.apply(event)
    assert folder.snapshot() == fold_run(events)
    assert folder.leg_of(cid(0)) == 0


# --- the invariant under any delivery order -----------------------------------------------------------------


def _avg(price: Decimal, cumulative: Decimal) -> str:
    """An order's average fill price once `cumulative` shares filled: each cumulative report has its own."""
    return str(price + cumulative / 10_000)


@st.composite
def deliveries(draw: st.DrawFn, max_excess: int = 0) -> tuple[list[RunEvent], Decimal, Decimal]:
    """A leg's chain of 1-4 orders (linked by replace or by cancel-confirm-submit), every order's fills delivered
    late, out of order and duplicated between the engine's own events. Each cumulative report carries its own
    average price, so the expected notional holds only when each order's average is the one reported with its
    largest cumulative quantity. With `max_excess`, the broker over-fills the last order by 1 to `max_excess`
    shares. Returns (events, expected fill, expected notional)."""
    n = draw(st.integers(1, 4))
    finals = [Decimal(draw(st.integers(0, 20))) for _ in range(n - 1)]
    finals.append(QTY - sum(finals) + (draw(st.integers(1, max_excess)) if max_excess else 0))
    prices = [Decimal(10) + Decimal(i) / 100 for i in range(n)]
    engine: list[RunEvent] = [planned(), submit(0), accepted(order(0, OrderStatus.NEW))]
    floating: list[tuple[int, RunEvent]] = []
    for i in range(n):
        final = finals[i]
        cuts = sorted(draw(st.lists(st.integers(0, int(final)), max_size=3)))
        last = i == n - 1
        for cut in [*cuts, int(final)] if last else cuts:
            if Decimal(cut) > 0:
                full = last and Decimal(cut) == final
                status = OrderStatus.FILLED if full else OrderStatus.PARTIALLY_FILLED
                o = order(i, status, str(cut), _avg(prices[i], Decimal(cut)), seconds=cut)
                floating.append(
                    (len(engine), updated(o, OrderEvent.FILL if full else OrderEvent.PARTIAL_FILL))
                )
        if last:
            break
        closing = order(
            i, OrderStatus.CANCELED, str(final), _avg(prices[i], final) if final else None, seconds=200
        )
        if draw(st.booleans()):
            engine.append(replace(i + 1, i))
            replaced = closing.model_copy(update={"status": OrderStatus.REPLACED})
            floating.append((len(engine), updated(replaced, OrderEvent.REPLACED)))
            engine.append(accepted(order(i + 1, OrderStatus.NEW), IntentAction.REPLACE))
        else:
            engine.append(cancel(i))
            engine.append(updated(closing, OrderEvent.CANCELED))  # the engine waits for the confirmation
            engine.append(submit(i + 1, reason=REASON_REPEG, step=1))
            engine.append(accepted(order(i + 1, OrderStatus.NEW)))
    slots: dict[int, list[RunEvent]] = {}
    for earliest, event in floating:
        for _ in range(draw(st.integers(1, 2))):
            slots.setdefault(draw(st.integers(earliest, len(engine))), []).append(event)
    events: list[RunEvent] = []
    for position in range(len(engine) + 1):
        events.extend(draw(st.permutations(slots.get(position, []))))
        if position < len(engine):
            events.append(engine[position])
    notional = sum((f * Decimal(_avg(p, f)) for p, f in zip(prices, finals, strict=True)), Decimal(0))
    return events, sum(finals, Decimal(0)), notional


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_fills_never_exceed_the_leg_and_end_exact_under_any_delivery(
    case: tuple[list[RunEvent], Decimal, Decimal],
) -> None:
    events, qty, notional = case
    leg = LegState(spec=SPEC)
    for event in events:
        leg = apply_event(leg, event)
        assert leg.filled_qty <= qty
    assert leg.filled_qty == qty
    assert leg.filled_notional == notional
    assert leg.status is LegStatus.FILLED
    assert fold_run(events).leg(0) == leg


@settings(max_examples=200, deadline=None)
@given(deliveries(max_excess=30))
def test_a_broker_over_fill_is_kept_and_fails_the_leg_under_any_delivery(
    case: tuple[list[RunEvent], Decimal, Decimal],
) -> None:
    events, filled, notional = case
    leg = fold(events)
    assert (leg.filled_qty, leg.filled_notional) == (filled, notional)
    assert leg.status is LegStatus.FAILED
    assert leg.error == str(OverfillError(f"{RUN}-L0000", QTY, filled))
    assert fold_run(events).leg(0) == leg


def test_a_rejected_replacement_hands_the_leg_back_to_the_original_order() -> None:
    replacement = order(1, OrderStatus.NEW).model_copy(update={"replaces": "o0"})
    rejected = replacement.model_copy(update={"status": OrderStatus.REJECTED})
    leg = fold(
        [
            *working(),
            replace(1, 0),
            accepted(replacement, IntentAction.REPLACE),
            updated(order(0, OrderStatus.PENDING_REPLACE, "20", "10.00")),
            updated(rejected, OrderEvent.REJECTED),
        ]
    )
    assert leg.status is LegStatus.WORKING
    assert leg.active_client_order_id == cid(0)
    assert leg.filled_qty == Decimal(20)


def test_a_replacement_rejected_while_cancelling_returns_to_working_on_the_original() -> None:
    replacement = order(1, OrderStatus.NEW).model_copy(update={"replaces": "o0"})
    rejected = replacement.model_copy(update={"status": OrderStatus.REJECTED})
    leg = fold(
        [
            *working(),
            replace(1, 0),
            accepted(replacement, IntentAction.REPLACE),
            cancel(1),
            updated(rejected, OrderEvent.REJECTED),
        ]
    )
    assert leg.status is LegStatus.WORKING
    assert leg.active_client_order_id == cid(0)


def replace_lost() -> OrderFailed:
    """The answer to `replace(1, 0)` never came back: recorded as failed, though the broker did replace."""
    return OrderFailed(
        **stamp(),
        action=IntentAction.REPLACE,
        client_order_id=cid(1),
        order_id="o0",
        error="BrokerUnavailableError",
        message="replace: no answer from the broker",
    )


def replaced_by_o1() -> tuple[OrderUpdated, OrderUpdated]:
    old = order(0, OrderStatus.REPLACED, seconds=1).model_copy(update={"replaced_by": "o1"})
    new = order(1, OrderStatus.NEW, seconds=1).model_copy(
        update={"replaces": "o0", "limit_price": Decimal("10.01")}
    )
    return updated(old, OrderEvent.REPLACED, seconds=1), updated(new, OrderEvent.NEW, seconds=1)


@pytest.mark.parametrize("reversed_delivery", [False, True])
def test_a_replace_whose_answer_was_lost_follows_the_replacement_the_broker_reports(
    reversed_delivery: bool,
) -> None:
    updates = replaced_by_o1()
    leg = fold(
        [*working(), replace(1, 0), replace_lost(), *(updates[::-1] if reversed_delivery else updates)]
    )
    assert leg.status is LegStatus.WORKING
    assert leg.active_client_order_id == cid(1)
    assert leg.limit_price == Decimal("10.01")
    assert leg.step == 1
    assert leg.repegs == 1


def test_a_cancel_sent_to_a_silently_replaced_order_returns_to_working_on_the_replacement() -> None:
    leg = fold([*working(), replace(1, 0), replace_lost(), cancel(0), *replaced_by_o1()])
    assert leg.status is LegStatus.WORKING
    assert leg.active_client_order_id == cid(1)


def test_a_fill_reported_without_its_price_does_not_dilute_the_average_fill_price() -> None:
    # Order 0 reports 50 filled but no average price (yet); order 1 filled 50 at 10.05.
    leg = fold(
        [
            *working(),
            cancel(0),
            updated(order(0, OrderStatus.CANCELED, "50"), OrderEvent.CANCELED),
            submit(1, reason=REASON_REPEG, step=1),
            accepted(order(1, OrderStatus.NEW, qty=Decimal(50))),
            updated(order(1, OrderStatus.PARTIALLY_FILLED, "50", "10.05", qty=Decimal(50))),
        ]
    )
    assert leg.avg_fill_price == Decimal("10.05")  # not 502.50 / 100 = 5.025
    unpriced = fold([*working(), updated(order(0, OrderStatus.PARTIALLY_FILLED, "50"))])
    assert unpriced.avg_fill_price is None  # not $0


def test_a_submit_failure_after_the_broker_reported_the_order_open_keeps_it_working() -> None:
    # The submit's answer was lost (recorded as failed) but the broker had already pushed the order as new: it is
    # live, so the leg must keep it as its working order (giving the leg up then cancels it) rather than forget it.
    lost = OrderFailed(
        **stamp(),
        action=IntentAction.SUBMIT,
        client_order_id=cid(0),
        error="BrokerUnavailableError",
        message="submit: no answer from the broker",
    )
    leg = fold([planned(), submit(), updated(order(0, OrderStatus.NEW), OrderEvent.NEW), lost])
    assert leg.status is LegStatus.WORKING
    assert leg.active_client_order_id == cid(0)
    assert leg.limit_price == Decimal("10.00")


def test_a_submit_failure_after_the_broker_reported_the_order_rejected_leaves_the_leg_idle() -> None:
    refused = OrderFailed(
        **stamp(),
        action=IntentAction.SUBMIT,
        client_order_id=cid(0),
        error="OrderRejectedError",
        message="no",
    )
    leg = fold([planned(), submit(), updated(order(0, OrderStatus.REJECTED), OrderEvent.REJECTED), refused])
    assert leg.status is LegStatus.IDLE
    assert leg.active_client_order_id is None


def test_a_cancel_refused_later_by_the_broker_returns_to_working() -> None:
    """The cancel was accepted (no `OrderFailed`), then refused by a pushed `order_cancel_rejected`."""
    leg = fold([*working(), cancel(0), updated(order(0, OrderStatus.NEW), OrderEvent.CANCEL_REJECTED)])
    assert leg.status is LegStatus.WORKING
    assert leg.active_client_order_id == cid(0)
    assert leg.error is not None
    assert "order_cancel_rejected" in leg.error


def test_a_cancel_refusal_with_the_order_filled_meanwhile_completes_the_leg() -> None:
    filled = order(0, OrderStatus.FILLED, "100", "10.00")
    leg = fold([*working(), cancel(0), updated(filled, OrderEvent.CANCEL_REJECTED)])
    assert leg.status is LegStatus.FILLED


def test_a_cancel_refusal_for_an_order_no_longer_active_changes_no_status() -> None:
    replacement = order(1, OrderStatus.NEW).model_copy(update={"replaces": "o0"})
    events = [*working(), replace(1, 0), accepted(replacement, IntentAction.REPLACE), cancel(1)]
    leg = fold([*events, updated(order(0, OrderStatus.NEW), OrderEvent.CANCEL_REJECTED)])
    assert leg.status is LegStatus.CANCELING


def test_a_replace_refused_later_while_replacing_returns_to_working_on_the_original() -> None:
    leg = fold([*working(), replace(1, 0), updated(order(0, OrderStatus.NEW), OrderEvent.REPLACE_REJECTED)])
    assert leg.status is LegStatus.WORKING
    assert leg.active_client_order_id == cid(0)
    assert leg.pending_client_order_id is None


def test_a_replace_refused_after_its_answer_hands_the_leg_back_to_the_original() -> None:
    """The PATCH answered with the replacement (pending), then the stream refused the replace: the original is the
    live order, so it is the one the leg works (and cancels) from now on."""
    replacement = order(1, OrderStatus.PENDING_NEW).model_copy(update={"replaces": "o0"})
    events = [*working(), replace(1, 0), accepted(replacement, IntentAction.REPLACE)]
    leg = fold([*events, updated(order(0, OrderStatus.NEW), OrderEvent.REPLACE_REJECTED)])
    assert leg.status is LegStatus.WORKING
    assert leg.active_client_order_id == cid(0)
    assert leg.limit_price == Decimal("10.00")


def test_a_replace_refusal_leaves_a_replacement_already_working_active() -> None:
    replacement = order(1, OrderStatus.NEW).model_copy(update={"replaces": "o0"})
    events = [*working(), replace(1, 0), accepted(replacement, IntentAction.REPLACE)]
    leg = fold([*events, updated(order(0, OrderStatus.NEW), OrderEvent.REPLACE_REJECTED)])
    assert leg.active_client_order_id == cid(1)


def test_a_cancel_asked_again_for_a_given_up_leg_keeps_it_done() -> None:
    """A given-up leg's order whose first cancel the broker refused later is cancelled again: the leg stays done."""
    finished = LegFinished(**stamp(), status="failed", reason="collar")
    leg = fold(
        [*working(), cancel(0), finished, updated(order(0, OrderStatus.NEW), OrderEvent.CANCEL_REJECTED)]
    )
    assert leg.status is LegStatus.FAILED
    assert fold([*working(), cancel(0), finished, cancel(0)]).status is LegStatus.FAILED


def test_a_silently_replaced_order_is_followed_by_its_replacement_not_by_an_earlier_rejected_one() -> None:
    """o0's first replacement o1 was rejected (o0 stayed live); the answer to the second replace was lost, and
    the broker then reports o0 replaced by o2. The leg works o2: it does not go idle (and send a remainder on
    top of o2) because of the rejected o1."""
    o1 = order(1, OrderStatus.NEW).model_copy(update={"replaces": "o0"})
    lost = replace_lost().model_copy(update={"client_order_id": cid(2)})
    old = order(0, OrderStatus.REPLACED, seconds=2).model_copy(update={"replaced_by": "o2"})
    o2 = order(2, OrderStatus.NEW, seconds=2).model_copy(update={"replaces": "o0"})
    leg = fold(
        [
            *working(),
            replace(1, 0),
            accepted(o1, IntentAction.REPLACE),
            updated(o1.model_copy(update={"status": OrderStatus.REJECTED}), OrderEvent.REJECTED),
            replace(2, 0),
            lost,
            updated(o2, OrderEvent.NEW, seconds=2),
            updated(old, OrderEvent.REPLACED, seconds=2),
        ]
    )
    assert leg.status is LegStatus.WORKING
    assert leg.active_client_order_id == cid(2)


def test_a_leg_completed_by_another_orders_fills_keeps_its_still_open_order_active() -> None:
    """o0 filled 40 while its replace was pending; the uncapped replacement o1 (100) filled 60: the leg is
    filled, and o1, open for 40 more, stays its active order (so that the engine cancels it)."""
    replacement = order(1, OrderStatus.NEW).model_copy(update={"replaces": "o0"})
    leg = fold(
        [
            *working(),
            replace(1, 0),
            updated(order(0, OrderStatus.REPLACED, "40", "10.00")),
            accepted(replacement, IntentAction.REPLACE),
            updated(order(1, OrderStatus.PARTIALLY_FILLED, "60", "10.00"), OrderEvent.PARTIAL_FILL),
        ]
    )
    assert (leg.status, leg.filled_qty) == (LegStatus.FILLED, QTY)
    assert leg.active_client_order_id == cid(1)


def test_a_leg_completed_by_its_working_orders_own_fill_has_no_active_order() -> None:
    leg = fold([*working(), updated(order(0, OrderStatus.FILLED, "100", "10.00"), OrderEvent.FILL)])
    assert leg.status is LegStatus.FILLED
    assert leg.active_client_order_id is None


def test_a_submitted_order_the_broker_reports_before_any_answer_makes_the_leg_work_it() -> None:
    # The submit's answer was lost (and no lookup answered): the broker's own report of the order is its acceptance.
    leg = fold([planned(), submit(), updated(order(0, OrderStatus.NEW), OrderEvent.NEW)])
    assert leg.status is LegStatus.WORKING
    assert leg.active_order is not None
    assert leg.active_order.order_id == "o0"


def test_a_submitted_order_the_broker_reports_closed_before_any_answer_leaves_the_leg_idle() -> None:
    leg = fold([planned(), submit(), updated(order(0, OrderStatus.CANCELED), OrderEvent.CANCELED)])
    assert leg.status is LegStatus.IDLE
    assert leg.active_client_order_id is None


def test_a_replace_refused_after_its_late_answer_times_the_next_step_from_the_original_price_again() -> None:
    """The next step comes a fill wait after the working price took effect (`priced_at`, ad05c14). A replacement
    accepted late (18 s) and then refused never priced the leg: the original's price, working since 0 s, is the
    working price again, so the schedule is timed from it, not held until 28 s by the refused replacement."""
    replacement = order(1, OrderStatus.PENDING_NEW).model_copy(update={"replaces": "o0"})
    late = OrderAccepted(**stamp(18), action=IntentAction.REPLACE, order=replacement)
    events = [*working(), replace(1, 0, seconds=10), late]
    leg = fold([*events, updated(order(0, OrderStatus.NEW), OrderEvent.REPLACE_REJECTED, seconds=19)])
    assert leg.active_client_order_id == cid(0)
    assert leg.priced_at == T0


def test_a_replacement_rejected_after_its_late_answer_times_the_next_step_from_the_original_price_again() -> (
    None
):
    """As above, when the replacement itself is reported rejected (the original filled in part meanwhile)."""
    replacement = order(1, OrderStatus.PENDING_NEW).model_copy(update={"replaces": "o0"})
    late = OrderAccepted(**stamp(18), action=IntentAction.REPLACE, order=replacement)
    events = [
        *working(),
        replace(1, 0, seconds=10),
        late,
        updated(order(0, OrderStatus.PARTIALLY_FILLED, "10")),
    ]
    rejected = replacement.model_copy(update={"status": OrderStatus.REJECTED})
    leg = fold([*events, updated(rejected, OrderEvent.REJECTED, seconds=19)])
    assert leg.active_client_order_id == cid(0)
    assert leg.priced_at == T0


def test_a_replace_refused_after_its_acceptance_puts_the_leg_back_at_the_original_step() -> None:
    """The refused replacement's step (1) was never worked: the original's step (0) is the leg's step again, so
    the policy re-tries step 1 instead of jumping to step 2."""
    replacement = order(1, OrderStatus.PENDING_NEW).model_copy(update={"replaces": "o0"})
    accepted_late = OrderAccepted(**stamp(12), action=IntentAction.REPLACE, order=replacement)
    events = [*working(), replace(1, 0, seconds=10), accepted_late]
    assert fold(events).step == 1
    leg = fold([*events, updated(order(0, OrderStatus.NEW), OrderEvent.REPLACE_REJECTED, seconds=13)])
    assert (leg.active_client_order_id, leg.step) == (cid(0), 0)


def test_a_replacement_rejected_after_its_acceptance_puts_the_leg_back_at_the_original_step() -> None:
    """As above, when the replacement itself is reported rejected (the original filled in part meanwhile)."""
    replacement = order(1, OrderStatus.PENDING_NEW).model_copy(update={"replaces": "o0"})
    accepted_late = OrderAccepted(**stamp(12), action=IntentAction.REPLACE, order=replacement)
    partial = updated(order(0, OrderStatus.PARTIALLY_FILLED, "10"))
    rejected = replacement.model_copy(update={"status": OrderStatus.REJECTED})
    leg = fold(
        [
            *working(),
            replace(1, 0, seconds=10),
            accepted_late,
            partial,
            updated(rejected, OrderEvent.REJECTED),
        ]
    )
    assert (leg.active_client_order_id, leg.step) == (cid(0), 0)


def test_a_leg_filled_exactly_is_not_over_filled() -> None:
    leg = fold([*working(), updated(order(0, OrderStatus.FILLED, "100", "10.00"), OrderEvent.FILL)])
    assert leg.status is LegStatus.FILLED
    assert not leg.overfilled


def test_fills_of_the_escalation_order_do_not_count_as_filled_before_escalation() -> None:
    leg = fold(
        [
            *working(),
            updated(order(0, OrderStatus.PARTIALLY_FILLED, "30", "10")),
            LegEscalated(**stamp(), remaining_qty=QTY, reason="deadline"),
            cancel(0),
            updated(order(0, OrderStatus.CANCELED, "30", "10"), OrderEvent.CANCELED),
            submit(1, reason="escalate"),
            updated(order(1, OrderStatus.FILLED, "70", "10.02", qty=Decimal(70)), OrderEvent.FILL),
        ]
    )
    assert leg.filled_qty == QTY
    assert leg.filled_before_escalation == Decimal(30)


def test_an_order_closed_while_its_replace_is_in_flight_leaves_the_leg_replacing() -> None:
    # The replace's answer (refused: the order is gone) decides what comes next, not the update overtaking it.
    leg = fold([*working(), replace(1, 0), updated(order(0, OrderStatus.CANCELED), OrderEvent.CANCELED)])
    assert leg.status is LegStatus.REPLACING
    assert leg.pending_client_order_id == cid(1)


def test_a_late_over_fill_keeps_the_time_the_leg_completed() -> None:
    filled = updated(order(0, OrderStatus.FILLED, "100", "10.00"), OrderEvent.FILL, seconds=5)
    late = updated(order(0, OrderStatus.FILLED, "101", "10.00", qty=Decimal(101)), OrderEvent.FILL, seconds=9)
    leg = fold([*working(), filled, late])
    assert leg.status is LegStatus.FAILED
    assert leg.completed_at == T0 + timedelta(seconds=5)


def test_a_cancelled_replacement_does_not_hand_the_leg_back_to_the_order_it_replaced() -> None:
    # Only a *rejected* replacement leaves its original live; a cancelled one ends the chain: the leg goes idle.
    replacement = order(1, OrderStatus.NEW).model_copy(update={"replaces": "o0"})
    cancelled = replacement.model_copy(update={"status": OrderStatus.CANCELED})
    leg = fold(
        [
            *working(),
            replace(1, 0),
            accepted(replacement, IntentAction.REPLACE),
            updated(cancelled, OrderEvent.CANCELED),
        ]
    )
    assert leg.status is LegStatus.IDLE
    assert leg.active_client_order_id is None


def test_a_rejected_replacement_of_an_order_closed_meanwhile_leaves_the_leg_idle() -> None:
    replacement = order(1, OrderStatus.NEW).model_copy(update={"replaces": "o0"})
    rejected = replacement.model_copy(update={"status": OrderStatus.REJECTED})
    leg = fold(
        [
            *working(),
            replace(1, 0),
            accepted(replacement, IntentAction.REPLACE),
            updated(order(0, OrderStatus.CANCELED, "20", "10.00"), OrderEvent.CANCELED),
            updated(rejected, OrderEvent.REJECTED),
        ]
    )
    assert leg.status is LegStatus.IDLE
    assert leg.active_client_order_id is None
    assert leg.remaining_qty == Decimal(80)


def test_a_resubmission_keeps_the_first_submission_time_and_arrival_quote() -> None:
    later = ARRIVAL.model_copy(update={"bid": Decimal("10.05"), "ask": Decimal("10.07")})
    leg = fold(
        [
            *working(),
            cancel(0),
            updated(order(0, OrderStatus.CANCELED, "30", "10.00"), OrderEvent.CANCELED),
            submit(1, seconds=12).model_copy(update={"quote": later}),
        ]
    )
    assert leg.submitted_at == T0
    assert leg.arrival_quote == ARRIVAL


def test_a_restarted_phase_records_the_step_the_leg_had_reached() -> None:
    # `repeg resume` restarts the phase: the schedule goes on from this step instead of from the first one.
    new = order(1, OrderStatus.NEW).model_copy(update={"limit_price": Decimal("10.01")})
    resumed = PhaseStarted(**stamp(3600, leg=None), side=Side.BUY)
    leg = fold([*working(), replace(1, 0), accepted(new, IntentAction.REPLACE), resumed])
    assert leg.step_at_phase_start == 1
    assert leg.phase_started_at == T0 + timedelta(seconds=3600)


def test_a_leg_ended_incomplete_has_a_finish_reason_but_no_error() -> None:
    incomplete = LegFinished(**stamp(9), status="incomplete", reason="phase deadline reached")
    leg = fold(
        [*working(), cancel(0), updated(order(0, OrderStatus.CANCELED), OrderEvent.CANCELED), incomplete]
    )
    assert leg.status is LegStatus.INCOMPLETE
    assert leg.finish_reason == "phase deadline reached"
    assert leg.error is None


def test_a_phase_restart_leaves_a_finished_leg_as_it_was() -> None:
    filled = [*working(), updated(order(0, OrderStatus.FILLED, "100", "10.00"), OrderEvent.FILL)]
    resumed = PhaseStarted(**stamp(3600, leg=None), side=Side.BUY)
    assert fold([*filled, resumed]) == fold(filled)


def test_an_accepted_replacement_puts_the_leg_at_the_step_it_was_sent_at() -> None:
    # Steps whose price equalled the working limit were skipped: the replace jumps from step 0 to step 3.
    new = order(1, OrderStatus.NEW).model_copy(update={"limit_price": Decimal("10.01")})
    jump = replace(1, 0).model_copy(update={"step": 3})
    leg = fold([*working(), jump, accepted(new, IntentAction.REPLACE)])
    assert leg.step == 3


def test_a_leg_completed_by_the_first_report_of_its_lost_replacement_names_that_replacement() -> None:
    """The replace's answer was lost; the broker reports o0 replaced (with 40 filled), then the uncapped
    replacement o1 (100) for the first time, already filled 60: the leg is filled, and o1, open for 40 more,
    is its active order (so that the engine cancels it rather than letting it over-fill the leg)."""
    old = order(0, OrderStatus.REPLACED, "40", "10.00", seconds=1).model_copy(update={"replaced_by": "o1"})
    new = order(1, OrderStatus.PARTIALLY_FILLED, "60", "10.01", seconds=2).model_copy(
        update={"replaces": "o0"}
    )
    leg = fold(
        [
            *working(),
            replace(1, 0),
            replace_lost(),
            updated(old, OrderEvent.REPLACED, seconds=1),
            updated(new, OrderEvent.PARTIAL_FILL, seconds=2),
        ]
    )
    assert (leg.status, leg.filled_qty) == (LegStatus.FILLED, QTY)
    assert leg.active_client_order_id == cid(1)


def test_a_filled_leg_names_its_open_orders_replacement_once_the_broker_reports_the_replace_late() -> None:
    """The replace's answer was lost; the uncapped replacement o1 (100) is reported filled 60 before the broker
    reports o0 (filled 40) replaced: the leg filled while naming o0, and the late `replaced` report moves it to
    o1, open for 40 more, so that the engine cancels o1 rather than letting it over-fill the leg."""
    new = order(1, OrderStatus.PARTIALLY_FILLED, "60", "10.01", seconds=2).model_copy(
        update={"replaces": "o0"}
    )
    old = order(0, OrderStatus.REPLACED, "40", "10.00", seconds=3).model_copy(update={"replaced_by": "o1"})
    leg = fold(
        [
            *working(),
            updated(order(0, OrderStatus.PARTIALLY_FILLED, "40", "10.00", seconds=1)),
            replace(1, 0),
            replace_lost(),
            updated(new, OrderEvent.PARTIAL_FILL, seconds=2),
        ]
    )
    assert (leg.status, leg.active_client_order_id) == (LegStatus.FILLED, cid(0))
    leg = apply_event(leg, updated(old, OrderEvent.REPLACED, seconds=3))
    assert (leg.status, leg.active_client_order_id) == (LegStatus.FILLED, cid(1))


def test_a_late_fill_completes_a_leg_given_up_while_its_cancel_was_in_flight() -> None:
    # A safety rail gave the leg up: its working order's cancel went out (canceling), the leg ended failed, and the
    # order filled before the cancel took effect. The whole quantity traded: the leg is filled (as an incomplete
    # leg's late fill completes it), and keeps the error that ended it.
    failed = LegFinished(**stamp(), status="failed", reason="price_collar_pct refused")
    fill = updated(order(0, OrderStatus.FILLED, "100", "10.00"), OrderEvent.FILL)
    leg = fold([*working(), cancel(0), failed, fill])
    assert (leg.status, leg.filled_qty) == (LegStatus.FILLED, QTY)
    assert leg.error == "price_collar_pct refused"


def test_a_leg_given_up_and_completed_by_another_orders_fill_keeps_its_still_open_order_active() -> None:
    # The leg's working replacement was being cancelled when it was given up; the order it replaced then reports
    # the whole quantity filled. The replacement is still open at the broker: it stays named, so it is cancelled.
    failed = LegFinished(**stamp(), status="failed", reason="price_collar_pct refused")
    events = [*working(), replace(1, 0), accepted(order(1, OrderStatus.NEW), IntentAction.REPLACE), cancel(1)]
    leg = fold([*events, failed, updated(order(0, OrderStatus.FILLED, "100", "10.00"), OrderEvent.FILL)])
    assert leg.status is LegStatus.FILLED
    assert leg.active_client_order_id == cid(1)


def test_a_given_up_leg_filled_past_its_quantity_stays_failed_with_the_overfill_error() -> None:
    # Guard for b4234af1: a late fill completes a given-up leg, but one beyond its quantity over-fills it.
    failed = LegFinished(**stamp(), status="failed", reason="price_collar_pct refused")
    too_much = updated(order(0, OrderStatus.FILLED, "101", "10.00", qty=Decimal(101)), OrderEvent.FILL)
    leg = fold([*working(), cancel(0), failed, too_much])
    assert (leg.status, leg.filled_qty) == (LegStatus.FAILED, Decimal(101))
    assert leg.error == str(OverfillError(f"{RUN}-L0000", QTY, Decimal(101)))


def test_a_replace_refused_after_its_acceptance_does_not_count_as_a_repeg() -> None:
    # As a replace refused at once (`test_a_refused_replace_returns_to_working_and_keeps_the_old_order`): the
    # stream refused it after the PATCH answered, the original works on at its price, and no re-peg was used.
    replacement = order(1, OrderStatus.PENDING_NEW).model_copy(update={"replaces": "o0"})
    events = [*working(), replace(1, 0), accepted(replacement, IntentAction.REPLACE)]
    assert fold(events).repegs == 1
    leg = fold([*events, updated(order(0, OrderStatus.NEW), OrderEvent.REPLACE_REJECTED)])
    assert (leg.active_client_order_id, leg.repegs) == (cid(0), 0)


def test_a_replacement_rejected_after_its_acceptance_does_not_count_as_a_repeg() -> None:
    replacement = order(1, OrderStatus.PENDING_NEW).model_copy(update={"replaces": "o0"})
    rejected = replacement.model_copy(update={"status": OrderStatus.REJECTED})
    events = [*working(), replace(1, 0), accepted(replacement, IntentAction.REPLACE)]
    leg = fold([*events, updated(rejected, OrderEvent.REJECTED)])
    assert (leg.active_client_order_id, leg.repegs) == (cid(0), 0)


def execution(cumulative: str, avg: str, qty: str, price: str) -> OrderUpdated:
    """Order 0's report of `cumulative` shares filled at average `avg`, with the execution of `qty` at `price`."""
    o = order(0, OrderStatus.PARTIALLY_FILLED, cumulative, avg)
    fill = Fill(order_id="o0", qty=Decimal(qty), price=Decimal(price), ts=T0)
    return OrderUpdated(
        **stamp(), update=OrderUpdate(event=OrderEvent.PARTIAL_FILL, order=o, fill=fill, ts=T0)
    )


def test_the_filled_notional_is_the_sum_of_the_executions_not_the_rounded_average_times_the_qty() -> None:
    # 1 @ 10.01 + 2 @ 10.00 = 30.01; the broker's average to 1e-9 (10.003333333) x 3 = 30.009999999.
    first, second = execution("1", "10.01", "1", "10.01"), execution("3", "10.003333333", "2", "10.00")
    leg = fold([*working(), first, second, second, first])
    assert leg.filled_notional == Decimal("30.01")
    assert leg.avg_fill_price == Decimal("30.01") / Decimal(3)


def test_an_order_whose_execution_was_not_seen_is_priced_at_the_brokers_average() -> None:
    # The second execution reported (cumulative 3) before the first (cumulative 1): 2 @ 10.00 is not all of 3.
    leg = fold(
        [*working(), execution("3", "10.003333333", "2", "10.00"), execution("1", "10.01", "1", "10.01")]
    )
    assert leg.filled_notional == Decimal("30.009999999")


def test_executions_priced_from_the_brokers_averages_keep_the_brokers_notional() -> None:
    # Alpaca reports each order's cumulative quantity and average only; its tracker prices an execution from them
    # (`fill_between`): 4 x 10.0026 - 1 x 10.01 = 30.0004 for 3 shares, 10.000133... rounded to 28 digits. The sum
    # of such executions is the broker's 40.0104 with the rounding's tail (40.01039999999999999999999999).
    first = execution("1", "10.01", "1", "10.01")
    second = execution("4", "10.0026", "3", "10.00013333333333333333333333")
    leg = fold([*working(), first, second])
    assert leg.filled_notional == Decimal("40.0104")


def test_an_average_sent_without_its_trailing_zeros_does_not_widen_the_check_of_the_executions_sum() -> None:
    # 99 @ 10.00 then 1 @ 10.40: 1000.40, an average of 10.004 that a broker rounding to the cent sends as "10"
    # (Alpaca trims trailing zeros). "10" x 100 = 1000 agrees with 1000.40 to its own last digit (the dollar), but
    # "10" is no average rounded to the dollar: read as "10.00", as the tracker's check of a fill price reads it.
    first, second = execution("99", "10", "99", "10.00"), execution("100", "10", "1", "10.40")
    assert fold([*working(), first, second]).filled_notional == Decimal("1000.40")


@st.composite
def executions_delivered(draw: st.DrawFn) -> tuple[list[RunEvent], Decimal]:
    """One order filled (in part) in 1-5 executions at prices of their own, each reported with the cumulative
    quantity, the broker's average rounded to 1e-9 (as the simulator's) and the execution itself; the reports
    delivered in any order, some twice. Returns (events, expected notional): the executions' sum when each report
    reached the fold while the cumulative it grew from was the one known (each execution seen in turn), else the
    broker's last average times the quantity, never a mix of the two."""
    filled = draw(st.integers(1, int(QTY)))
    cuts = sorted(draw(st.sets(st.integers(1, filled), max_size=4)) | {filled})
    reports: list[OrderUpdated] = []
    total, before = Decimal(0), 0
    for cut in cuts:
        qty, price = Decimal(cut - before), Decimal(draw(st.integers(1000, 1100))) / 100
        total += qty * price
        avg = (total / cut).quantize(Decimal("1e-9"))
        reports.append(execution(str(cut), str(avg), str(qty), str(price)))
        before = cut
    delivered = draw(st.permutations(reports + draw(st.lists(st.sampled_from(reports), max_size=3))))
    known, in_turn = 0, True
    for report in delivered:
        cumulative = int(report.update.order.filled_qty)
        if cumulative > known:
            in_turn = in_turn and cuts.index(cumulative) == (cuts.index(known) + 1 if known else 0)
            known = cumulative
    return [*working(), *delivered], total if in_turn else Decimal(filled) * avg


@settings(max_examples=200, deadline=None)
@given(executions_delivered())
def test_an_orders_notional_is_its_executions_sum_or_the_brokers_average_under_any_delivery(
    case: tuple[list[RunEvent], Decimal],
) -> None:
    events, notional = case
    leg = fold(events)
    assert leg.filled_notional == notional


def test_an_escalation_cut_to_the_buying_power_is_recorded_on_its_order_and_answers_the_refusal() -> None:
    refused = OrderFailed(
        **stamp(),
        action=IntentAction.SUBMIT,
        client_order_id=cid(0),
        error="InsufficientBuyingPowerError",
        message="insufficient buying power",
    )
    cap = BuyingPowerCap(
        requested_qty=QTY, sent_qty=Decimal(97), buying_power=Decimal(1000), price=Decimal("10.251")
    )
    cut = submit(1, reason="escalate", step=None).model_copy(update={"qty": Decimal(97), "capped": cap})
    leg = fold([planned(), submit(0, reason="escalate", step=None), refused])
    assert leg.error == "InsufficientBuyingPowerError: insufficient buying power"
    leg = apply_event(leg, cut)
    assert leg.status is LegStatus.SUBMITTING
    assert leg.orders[-1].capped == cap
    assert leg.orders[-1].qty == Decimal(97)
    assert leg.orders[0].capped is None
    assert leg.error is None  # handled: the cut order went out instead
    assert OrderIntent.model_validate_json(cut.model_dump_json()) == cut  # journaled with its cut
    assert "capped" not in submit().model_dump_json()  # absent from every other intent: events read as before


def replace_refused(error: str, seconds: float = 3) -> OrderFailed:
    return OrderFailed(
        **stamp(seconds),
        action=IntentAction.REPLACE,
        client_order_id=cid(1),
        order_id="o0",
        error=error,
        message="m",
    )


@pytest.mark.parametrize(
    "error", ["InsufficientBuyingPowerError", "OrderNotCancelableError", "OrderRejectedError"]
)
def test_a_replace_refused_outright_notes_when_so_that_the_next_repeg_waits_from_it(error: str) -> None:
    leg = fold([*working(), replace(1, 0, seconds=3), replace_refused(error)])
    assert leg.status is LegStatus.WORKING
    assert (leg.active_client_order_id, leg.step) == (cid(0), 0)
    assert leg.repeg_refused_at == T0 + timedelta(seconds=3)


@pytest.mark.parametrize(
    "error", ["BrokerUnavailableError", "RateLimitedError", "DuplicateClientOrderIdError"]
)
def test_a_replace_left_unanswered_is_no_refusal_of_the_repeg(error: str) -> None:
    leg = fold([*working(), replace(1, 0, seconds=3), replace_refused(error)])
    assert leg.status is LegStatus.WORKING
    assert leg.repeg_refused_at is None


def test_a_replace_refused_later_by_the_broker_notes_when() -> None:
    """The replace was accepted (no answer yet), then refused by a pushed `order_replace_rejected`."""
    refused = updated(order(0, OrderStatus.NEW), OrderEvent.REPLACE_REJECTED, seconds=4)
    leg = fold([*working(), replace(1, 0, seconds=3), refused])
    assert leg.status is LegStatus.WORKING
    assert leg.repeg_refused_at == T0 + timedelta(seconds=4)


def test_a_replacement_rejected_after_a_race_to_a_fill_is_no_refusal_of_the_repeg() -> None:
    # Guard (passes before the fix): the original filled in part meanwhile (the simulator then rejects the
    # replacement): the remainder is re-pegged at once (test_engine_simulator), not a fill wait later.
    replacement = order(1, OrderStatus.NEW).model_copy(update={"replaces": "o0"})
    rejected = replacement.model_copy(update={"status": OrderStatus.REJECTED})
    leg = fold(
        [
            *working(),
            replace(1, 0),
            accepted(replacement, IntentAction.REPLACE),
            updated(rejected, OrderEvent.REJECTED, seconds=5),
        ]
    )
    assert (leg.status, leg.active_client_order_id) == (LegStatus.WORKING, cid(0))
    assert leg.repeg_refused_at is None
