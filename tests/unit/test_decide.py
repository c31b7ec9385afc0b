"""The default ladder policy, path by path, without an event loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from repeg.config import EscalationStyle, OnNoQuote, classic_ladder
from repeg.domain.leg import (
    REASON_ESCALATE,
    REASON_NO_QUOTE,
    REASON_REMAINDER,
    REASON_REPEG,
    LegState,
)
from repeg.domain.lifecycle import LegStatus
from repeg.domain.order_record import OrderRecord
from repeg.domain.orders import OrderStatus, OrderType, Side
from repeg.domain.plan import LegSpec
from repeg.domain.quote import Quote, QuoteVerdict
from repeg.policy.decide import Escalate, LadderPolicy, Replace, Skip, Submit, Wait

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
CONFIG = classic_ladder()
POLICY = LadderPolicy(CONFIG)
VALID = QuoteVerdict.VALID


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_quote(bid: str = "100.00", ask: str = "100.08", seconds: float = 0) -> Quote:
    return Quote(
        symbol="XYZ",
        bid=Decimal(bid),
        bid_size=Decimal(100),
        ask=Decimal(ask),
        ask_size=Decimal(100),
        ts=at(seconds),
    )


def planned(side: Side = Side.BUY) -> LegState:
    spec = LegSpec(index=0, symbol="XYZ", side=side, qty=Decimal(100))
    return LegState(spec=spec, phase_started_at=T0)


def working(limit: str = "100.00", step: int = 0, side: Side = Side.BUY, **extra: object) -> LegState:
    record = OrderRecord(
        client_order_id="c0",
        attempt=0,
        order_id="o1",
        order_type=OrderType.LIMIT,
        qty=Decimal(100),
        limit_price=Decimal(limit),
        status=OrderStatus.NEW,
    )
    return planned(side).model_copy(
        update={
            "status": LegStatus.WORKING,
            "orders": (record,),
            "active_client_order_id": "c0",
            "limit_price": Decimal(limit),
            "step": step,
            "submitted_at": T0,
            "last_priced_at": T0,
            **extra,
        }
    )


def test_first_order_joins_the_near_touch() -> None:
    action = POLICY.decide(planned(), make_quote(), VALID, T0)
    assert action == Submit(order_type=OrderType.LIMIT, limit_price=Decimal("100.00"), step=0)


def test_first_order_of_a_sell_joins_the_ask() -> None:
    action = POLICY.decide(planned(Side.SELL), make_quote(), VALID, T0)
    assert isinstance(action, Submit)
    assert action.limit_price == Decimal("100.08")


def test_initial_offset_prices_inside_the_spread() -> None:
    policy = LadderPolicy(classic_ladder(initial_offset=Decimal("0.5")))
    action = policy.decide(planned(), make_quote(), VALID, T0)
    assert isinstance(action, Submit)
    assert action.limit_price == Decimal("100.04")


def test_invalid_quote_waits_and_polls() -> None:
    action = POLICY.decide(planned(), make_quote(ask="0"), QuoteVerdict.ONE_SIDED, at(3))
    assert action == Wait(until=at(4))


def test_waiting_for_a_first_quote_wakes_at_the_quote_wait_rather_than_after_it() -> None:
    # quote_wait is 30 s and the poll 1 s: at 29.5 s the next look is at 30 s (the give-up time), not 30.5 s.
    assert POLICY.decide(planned(), None, QuoteVerdict.MISSING, at(29.5)) == Wait(until=at(30))


def test_waiting_for_a_first_quote_gives_up_at_the_phase_deadline_when_quote_wait_is_longer() -> None:
    # quote_wait may exceed max_total_wait (120 s): on_no_quote must still apply at the deadline, not after it.
    policy = LadderPolicy(classic_ladder(quote_wait=500))
    assert policy.decide(planned(), None, QuoteVerdict.MISSING, at(119.5)) == Wait(until=at(120))
    assert isinstance(policy.decide(planned(), None, QuoteVerdict.MISSING, at(120)), Skip)


def test_no_quote_after_quote_wait_skips_by_default() -> None:
    action = POLICY.decide(planned(), None, QuoteVerdict.MISSING, at(30))
    assert isinstance(action, Skip)
    assert "no valid quote" in action.reason


def test_no_quote_after_quote_wait_goes_to_market_when_configured() -> None:
    policy = LadderPolicy(classic_ladder(on_no_quote=OnNoQuote.MARKET))
    action = policy.decide(planned(), None, QuoteVerdict.MISSING, at(30))
    assert action == Submit(order_type=OrderType.MARKET, reason=REASON_NO_QUOTE)


def test_a_working_order_waits_for_its_fill_wait() -> None:
    assert POLICY.decide(working(), make_quote(), VALID, at(9.5)) == Wait(until=at(10))


def test_repeg_after_fill_wait_prices_from_the_current_quote() -> None:
    moved = make_quote("100.10", "100.20", seconds=10)
    action = POLICY.decide(working(), moved, VALID, at(10))
    assert action == Replace(limit_price=Decimal("100.15"), step=1, reason=REASON_REPEG)


def test_repeg_price_sequence_follows_the_steps() -> None:
    q = make_quote()
    prices = []
    leg = working()
    for k in (1, 2, 3):
        action = POLICY.decide(leg, q.model_copy(update={"ts": at(10 * k)}), VALID, at(10 * k))
        assert isinstance(action, Replace)
        prices.append(action.limit_price)
        leg = leg.model_copy(update={"limit_price": action.limit_price, "step": action.step})
    assert prices == [Decimal("100.04"), Decimal("100.06"), Decimal("100.08")]


def test_repeg_that_would_not_change_the_price_is_not_sent() -> None:
    one_tick = make_quote("100.00", "100.01", seconds=10)
    action = POLICY.decide(working("100.00"), one_tick, VALID, at(10))
    assert isinstance(action, Wait)


def test_a_skipped_repeg_still_consumes_its_wait() -> None:
    one_tick = make_quote("100.00", "100.01", seconds=20)
    action = POLICY.decide(working("100.00"), one_tick, VALID, at(20))
    assert isinstance(action, Wait)  # step 2 (0.75) still rounds to the bid
    action = POLICY.decide(working("100.00"), one_tick.model_copy(update={"ts": at(30)}), VALID, at(30))
    assert action == Replace(limit_price=Decimal("100.01"), step=3)


def test_repeg_waits_while_the_order_is_only_accepted_not_yet_new() -> None:
    # `accepted` is not acknowledged by the exchange yet: a replace of it is refused, so the due step polls.
    leg = working()
    leg = leg.model_copy(
        update={"orders": (leg.orders[0].model_copy(update={"status": OrderStatus.ACCEPTED}),)}
    )
    assert POLICY.decide(leg, make_quote(seconds=10), VALID, at(10)) == Wait(until=at(11))


def test_repeg_waits_for_a_valid_quote() -> None:
    action = POLICY.decide(working(), None, QuoteVerdict.STALE, at(10))
    assert action == Wait(until=at(11))


def test_escalates_once_steps_are_exhausted_and_fill_wait_passed_again() -> None:
    leg = working("100.08", step=3)
    assert isinstance(POLICY.decide(leg, make_quote(seconds=39), VALID, at(39)), Wait)
    assert POLICY.decide(leg, make_quote(seconds=40), VALID, at(40)) == Escalate(reason="steps_exhausted")


def test_escalates_at_the_phase_deadline() -> None:
    leg = working(phase_started_at=at(-120), submitted_at=at(-1))
    assert POLICY.decide(leg, make_quote(), VALID, T0) == Escalate(reason="deadline")


def test_waits_while_the_broker_has_not_answered() -> None:
    for status in (LegStatus.SUBMITTING, LegStatus.REPLACING, LegStatus.CANCELING):
        assert POLICY.decide(working(status=status), make_quote(), VALID, at(50)) == Wait()


def test_done_leg_waits_forever() -> None:
    assert POLICY.decide(working(status=LegStatus.FILLED), make_quote(), VALID, at(50)) == Wait()


def test_escalated_idle_leg_sends_a_market_order_for_the_remainder() -> None:
    leg = working(status=LegStatus.IDLE, escalated=True)
    assert POLICY.decide(leg, None, QuoteVerdict.MISSING, at(40)) == Submit(
        order_type=OrderType.MARKET, reason=REASON_ESCALATE
    )


def test_escalated_leg_that_never_sent_sends_its_quantity_at_market() -> None:
    # No built-in policy escalates a planned leg, but a policy composed over this one may: it goes to market.
    leg = planned().model_copy(update={"escalated": True})
    assert POLICY.decide(leg, make_quote(), VALID, T0) == Submit(
        order_type=OrderType.MARKET, reason=REASON_ESCALATE
    )


def test_escalated_leg_waits_for_its_cancel_confirmation() -> None:
    leg = working(escalated=True, status=LegStatus.CANCELING)
    assert POLICY.decide(leg, make_quote(), VALID, at(40)) == Wait()


def test_escalated_leg_whose_cancel_was_refused_escalates_again() -> None:
    leg = working(escalated=True, escalation_reason="deadline")
    assert POLICY.decide(leg, make_quote(), VALID, at(41)) == Escalate(reason="deadline")


def test_escalated_leg_with_its_escalation_order_working_waits() -> None:
    leg = working(escalated=True)
    leg = leg.model_copy(update={"orders": (leg.orders[0].model_copy(update={"escalation": True}),)})
    assert POLICY.decide(leg, make_quote(), VALID, at(41)) == Wait()


def test_collared_escalation_sends_a_marketable_limit() -> None:
    policy = LadderPolicy(classic_ladder(escalation=EscalationStyle.COLLARED_LIMIT))
    leg = working(status=LegStatus.IDLE, escalated=True)
    action = policy.decide(leg, make_quote(seconds=40), VALID, at(40))
    assert action == Submit(order_type=OrderType.LIMIT, limit_price=Decimal("100.58"), reason=REASON_ESCALATE)


def test_collared_escalation_waits_for_a_valid_quote() -> None:
    policy = LadderPolicy(classic_ladder(escalation=EscalationStyle.COLLARED_LIMIT))
    leg = working(status=LegStatus.IDLE, escalated=True)
    assert policy.decide(leg, None, QuoteVerdict.MISSING, at(40)) == Wait(until=at(41))


def test_idle_leg_resubmits_the_remainder_at_the_due_step() -> None:
    leg = working(status=LegStatus.IDLE, step=0)
    action = POLICY.decide(leg, make_quote(seconds=12), VALID, at(12))
    assert action == Submit(
        order_type=OrderType.LIMIT, limit_price=Decimal("100.04"), step=1, reason=REASON_REPEG
    )


def test_idle_leg_before_the_next_step_resubmits_at_its_current_price_level() -> None:
    leg = working(status=LegStatus.IDLE, step=0)
    action = POLICY.decide(leg, make_quote(seconds=5), VALID, at(5))
    assert action == Submit(
        order_type=OrderType.LIMIT, limit_price=Decimal("100.00"), step=0, reason=REASON_REMAINDER
    )


def test_idle_leg_never_resubmits_below_the_step_it_reached() -> None:
    # At 12 s the schedule has only step 1 due, but the leg already reached step 2: its remainder stays at step 2.
    leg = working(limit="100.06", status=LegStatus.IDLE, step=2)
    action = POLICY.decide(leg, make_quote(seconds=12), VALID, at(12))
    assert action == Submit(
        order_type=OrderType.LIMIT, limit_price=Decimal("100.06"), step=2, reason=REASON_REMAINDER
    )


def test_idle_leg_without_quote_polls() -> None:
    leg = working(status=LegStatus.IDLE, step=1)
    assert POLICY.decide(leg, None, QuoteVerdict.MISSING, at(12)) == Wait(until=at(13))


def test_an_unsized_notional_leg_is_skipped_rather_than_sent() -> None:
    unsized = LegState(
        spec=LegSpec(index=0, symbol="XYZ", side=Side.SELL, notional=Decimal(500)), phase_started_at=T0
    )
    action = POLICY.decide(unsized, make_quote(), VALID, T0)
    assert isinstance(action, Skip)


def test_a_working_market_order_is_never_repegged_to_a_passive_limit() -> None:
    # on_no_quote=market sent a market order; it is still working (e.g. partly filled) when a step falls due.
    market = working(limit_price=None)
    record = market.orders[0].model_copy(update={"order_type": OrderType.MARKET, "limit_price": None})
    market = market.model_copy(update={"orders": (record,)})
    assert POLICY.decide(market, make_quote(seconds=10), VALID, at(10)) == Wait()


#: `repeg resume` an hour after the leg's first submission: its phase restarts (a new `PhaseStarted`).
RESUMED = T0 + timedelta(hours=1)


def after_resume(seconds: float) -> datetime:
    return RESUMED + timedelta(seconds=seconds)


def test_a_resumed_leg_continues_its_schedule_from_the_resume_instead_of_counting_the_downtime() -> None:
    # Crashed after its first re-peg (step 1). Counted from its first submission, the hour of downtime made every
    # step overdue and the leg went to market at once, from a quote it had never seen; it re-pegs instead.
    leg = working(limit="100.04", step=1, phase_started_at=RESUMED, step_at_phase_start=1)
    quote = make_quote("100.00", "100.08").model_copy(update={"ts": RESUMED})
    assert POLICY.decide(leg, quote, VALID, RESUMED) == Wait(until=after_resume(10))
    action = POLICY.decide(leg, quote.model_copy(update={"ts": after_resume(10)}), VALID, after_resume(10))
    assert action == Replace(limit_price=Decimal("100.06"), step=2, reason=REASON_REPEG)


def test_a_resumed_leg_whose_steps_were_used_escalates_a_fill_wait_after_the_resume() -> None:
    leg = working(limit="100.08", step=3, phase_started_at=RESUMED, step_at_phase_start=3)
    quote = make_quote().model_copy(update={"ts": RESUMED})
    assert POLICY.decide(leg, quote, VALID, after_resume(9)) == Wait(until=after_resume(10))
    assert POLICY.decide(leg, quote, VALID, after_resume(10)) == Escalate(reason="steps_exhausted")


def test_a_resumed_leg_gives_a_step_it_took_since_the_resume_a_full_fill_wait() -> None:
    # Resumed at step 1, it took step 2 a fill wait after the resume: step 3 falls due a fill wait later, not at
    # once (counting the schedule back from the leg's current step made every step after a resume due at once).
    leg = working(limit="100.06", step=2, phase_started_at=RESUMED, step_at_phase_start=1)
    quote = make_quote().model_copy(update={"ts": after_resume(10)})
    assert POLICY.decide(leg, quote, VALID, after_resume(10)) == Wait(until=after_resume(20))
    action = POLICY.decide(leg, quote.model_copy(update={"ts": after_resume(20)}), VALID, after_resume(20))
    assert action == Replace(limit_price=Decimal("100.08"), step=3, reason=REASON_REPEG)


def test_a_late_repeg_gets_a_full_fill_wait_before_the_next_step() -> None:
    # Step 2 went out late, at 29.9 s (no valid quote before): its order gets a fill wait before step 3, not 0.1 s.
    leg = working(limit="100.06", step=2, priced_at=at(29.9))
    assert POLICY.decide(leg, make_quote(seconds=30), VALID, at(30)) == Wait(until=at(39.9))
    action = POLICY.decide(leg, make_quote(seconds=39.9), VALID, at(39.9))
    assert action == Replace(limit_price=Decimal("100.08"), step=3, reason=REASON_REPEG)


def test_escalation_waits_a_full_fill_wait_after_a_late_last_step() -> None:
    leg = working(limit="100.08", step=3, priced_at=at(39.5))
    assert POLICY.decide(leg, make_quote(seconds=40), VALID, at(40)) == Wait(until=at(49.5))
    assert POLICY.decide(leg, make_quote(seconds=49.5), VALID, at(49.5)) == Escalate(reason="steps_exhausted")


def test_a_step_skipped_unchanged_still_consumes_its_wait_after_an_on_time_price() -> None:
    leg = working(limit="100.00", priced_at=T0)
    one_tick = make_quote("100.00", "100.01", seconds=30)
    assert POLICY.decide(leg, one_tick, VALID, at(30)) == Replace(limit_price=Decimal("100.01"), step=3)


def test_a_late_repeg_still_escalates_at_the_phase_deadline() -> None:
    leg = working(limit="100.08", step=3, priced_at=at(115), phase_started_at=T0)
    assert POLICY.decide(leg, make_quote(seconds=118), VALID, at(118)) == Wait(until=at(120))
    assert POLICY.decide(leg, make_quote(seconds=120), VALID, at(120)) == Escalate(reason="deadline")


def working_market(**extra: object) -> LegState:
    """A leg whose working order is the market order `on_no_quote = "market"` sent."""
    leg = working(limit_price=None, **extra)
    record = leg.orders[0].model_copy(update={"order_type": OrderType.MARKET, "limit_price": None})
    return leg.model_copy(update={"orders": (record,)})


def test_a_working_market_order_is_not_escalated_at_the_phase_deadline() -> None:
    # Sent at the deadline itself (quote_wait >= max_total_wait): escalating it would cancel it and send it again.
    leg = working_market(phase_started_at=at(-120))
    assert POLICY.decide(leg, None, QuoteVerdict.MISSING, T0) == Wait()


def test_a_working_market_order_is_not_escalated_when_the_steps_are_exhausted() -> None:
    assert POLICY.decide(working_market(), None, QuoteVerdict.MISSING, at(40)) == Wait()


def test_an_escalated_leg_whose_working_order_is_a_market_order_waits_for_it() -> None:
    # E.g. a run journaled by an earlier repeg, whose leg escalated while its no-quote market order worked.
    leg = working_market(escalated=True, escalation_reason="deadline")
    assert POLICY.decide(leg, None, QuoteVerdict.MISSING, at(41)) == Wait()


# --- after a refused re-peg -------------------------------------------------------------------------------------


def test_a_refused_repeg_is_not_sent_again_before_a_fill_wait_after_the_refusal() -> None:
    # Step 1 went at 10 s and was refused at 12 s (e.g. over the buying power): no replace at the 1 s checks after.
    leg = working(repeg_refused_at=at(12))
    moved = make_quote("100.10", "100.20", seconds=13)
    assert POLICY.decide(leg, moved, VALID, at(13)) == Wait(until=at(20))  # the next step's time comes first
    assert POLICY.decide(leg, moved.model_copy(update={"ts": at(19)}), VALID, at(19)) == Wait(until=at(20))


def test_a_refused_repeg_goes_again_at_the_step_then_due_from_the_quote_then() -> None:
    leg = working(repeg_refused_at=at(12))
    later = make_quote("100.20", "100.28", seconds=22)
    assert POLICY.decide(leg, later, VALID, at(21)) == Wait(until=at(22))
    assert POLICY.decide(leg, later, VALID, at(22)) == Replace(limit_price=Decimal("100.26"), step=2)


def test_a_refused_repeg_does_not_delay_the_escalation() -> None:
    # Guard (passes before the fix): the refusal's wait never holds the escalation back.
    steps_used = working(repeg_refused_at=at(38))
    assert POLICY.decide(steps_used, make_quote(seconds=40), VALID, at(40)) == Escalate(
        reason="steps_exhausted"
    )
    deadline = working(phase_started_at=at(-120), submitted_at=at(-1), repeg_refused_at=at(-0.5))
    assert POLICY.decide(deadline, make_quote(), VALID, T0) == Escalate(reason="deadline")


@settings(max_examples=200, deadline=None)
@given(
    refused=st.integers(min_value=10_000, max_value=39_000).map(lambda ms: at(ms / 1000)),
    after=st.integers(min_value=0, max_value=40_000).map(lambda ms: timedelta(milliseconds=ms)),
    bid_cents=st.integers(min_value=9_000, max_value=11_000),
)
def test_property_no_repeg_within_a_fill_wait_of_a_refusal_and_escalation_on_time(
    refused: datetime, after: timedelta, bid_cents: int
) -> None:
    bid = Decimal(bid_cents) / 100
    now = refused + after
    quote = make_quote(str(bid), str(bid + Decimal("0.20"))).model_copy(update={"ts": now})
    leg = working(repeg_refused_at=refused)
    action = POLICY.decide(leg, quote, VALID, now)
    unrefused = POLICY.decide(working(), quote, VALID, now)
    retry = refused + CONFIG.fill_wait
    if isinstance(unrefused, Escalate):
        assert action == unrefused  # the escalation keeps its time
    elif now < retry:  # no replace; the leg is woken again by the refusal's fill wait at the latest
        assert isinstance(action, Wait)
        assert action.until is not None
        assert now < action.until <= retry
    else:
        assert action == unrefused  # from a fill wait after the refusal on, the schedule as if it never was


def test_a_refused_repeg_does_not_hold_back_the_remainder_of_an_order_filled_in_part() -> None:
    # A replace refused because the order filled in part meanwhile (Alpaca's adapter refuses to replace an order
    # with fills): a race, not a refusal of the price; its re-peg (a cancel, then the remainder) goes at once.
    leg = working(repeg_refused_at=at(10))
    record = leg.orders[0].model_copy(
        update={"status": OrderStatus.PARTIALLY_FILLED, "filled_qty": Decimal(40)}
    )
    leg = leg.model_copy(update={"orders": (record,)})
    moved = make_quote("100.10", "100.20", seconds=11)
    action = POLICY.decide(leg, moved, VALID, at(11))
    assert isinstance(action, Replace)
    assert action.step == 1
