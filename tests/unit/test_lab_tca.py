"""TCA: reference prices from the tape, per-order costs from actual fills, aggregates and the frontier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from repeg.domain.events import (
    IntentAction,
    LegEscalated,
    LegPlanned,
    OrderAccepted,
    OrderFailed,
    OrderIntent,
    OrderUpdated,
    RunEvent,
)
from repeg.domain.orders import BrokerOrder, Fill, OrderEvent, OrderStatus, OrderType, OrderUpdate, Side
from repeg.domain.plan import LegSpec
from repeg.domain.run import fold_run
from repeg.errors import ConfigError
from repeg.lab import tca as tca_module
from repeg.lab.models import FillModelName, Interval, OrderTca, ParentOrder, PathEventKind, PolicySummary
from repeg.lab.tca import basket_tca, frontier, reference, summarize
from repeg.market.tape import SymbolQuotes, to_ns
from repeg.report.result import result_from_events, went_to_escalation

T0 = datetime(2018, 1, 3, 15, 0, tzinfo=UTC)
NS = 1_000_000_000


def _quotes() -> SymbolQuotes:
    # t=0: 100.00/100.04; t=10: 99.98/100.02; t=20: 100.03/100.07; t=90 (after the budget): 99.00/99.04
    secs = np.array([0, 10, 20, 90], dtype=np.int64)
    return SymbolQuotes(
        symbol="XXX",
        ts=to_ns(T0) + secs * NS,
        bid=np.array([1_000_000, 999_800, 1_000_300, 990_000], dtype=np.int64),
        bid_size=np.full(4, 100, dtype=np.int64),
        ask=np.array([1_000_400, 1_000_200, 1_000_700, 990_400], dtype=np.int64),
        ask_size=np.full(4, 100, dtype=np.int64),
    )


def _order(side: Side = Side.BUY, index: int = 0) -> ParentOrder:
    return ParentOrder(index=index, symbol="XXX", side=side, qty=Decimal(100), arrival=T0, budget_seconds=60)


def _intent(
    sec: float, action: IntentAction, order_type: OrderType | None, price: str | None, reason: str
) -> OrderIntent:
    return OrderIntent(
        run_id="r",
        ts=T0 + timedelta(seconds=sec),
        correlation_id="c",
        leg_index=0,
        action=action,
        order_type=order_type,
        limit_price=None if price is None else Decimal(price),
        qty=Decimal(100),
        reason=reason,
    )


def _fill(sec: float, qty: int, price: str, order_type: OrderType, order_id: str = "o1") -> OrderUpdated:
    ts = T0 + timedelta(seconds=sec)
    order = BrokerOrder(
        order_id=order_id,
        client_order_id=order_id,
        symbol="XXX",
        side=Side.BUY,
        qty=Decimal(100),
        order_type=order_type,
        limit_price=None if order_type is OrderType.MARKET else Decimal(price),
        status=OrderStatus.PARTIALLY_FILLED,
        filled_qty=Decimal(qty),
        filled_avg_price=Decimal(price),
        created_at=T0,
        updated_at=ts,
    )
    fill = Fill(order_id=order_id, qty=Decimal(qty), price=Decimal(price), ts=ts)
    update = OrderUpdate(event=OrderEvent.PARTIAL_FILL, order=order, fill=fill, ts=ts)
    return OrderUpdated(run_id="r", ts=ts, correlation_id="c", leg_index=0, update=update)


def _one(events: list[RunEvent], side: Side = Side.BUY) -> OrderTca:
    return basket_tca(_quotes(), [_order(side)], events)[0]


def test_reference_is_the_arrival_quote_and_the_best_far_touch_inside_the_budget() -> None:
    buy = reference(_quotes(), _order(Side.BUY))
    sell = reference(_quotes(), _order(Side.SELL))
    assert (buy.bid, buy.ask, buy.mid, buy.half_spread) == (
        Decimal("100.00"),
        Decimal("100.04"),
        Decimal("100.02"),
        Decimal("0.02"),
    )
    assert buy.oracle == Decimal("100.02")  # the 99.04 ask at t=90 is after the deadline
    assert sell.oracle == Decimal("100.03")


def test_market_buy_at_the_arrival_ask_costs_one_half_spread() -> None:
    tca = _one(
        [
            _intent(0, IntentAction.SUBMIT, OrderType.MARKET, None, "initial"),
            _fill(0, 100, "100.04", OrderType.MARKET),
        ]
    )
    assert tca.cost_half_spreads == pytest.approx(1.0)
    assert tca.cost_bps == pytest.approx(0.02 / 100.02 * 1e4)
    assert tca.half_spread_saved == pytest.approx(0.0)
    assert (tca.completed, tca.escalated, tca.filled_before_escalation) == (True, False, Decimal(0))
    assert tca.oracle_cost_half_spreads == pytest.approx(0.0)
    assert tca.cost_vs_oracle_half_spreads == pytest.approx(1.0)


def test_passive_buy_at_the_arrival_bid_earns_the_half_spread() -> None:
    tca = _one(
        [
            _intent(0, IntentAction.SUBMIT, OrderType.LIMIT, "100.00", "initial"),
            _fill(10, 100, "100.00", OrderType.LIMIT),
        ]
    )
    assert tca.cost_half_spreads == pytest.approx(-1.0)
    assert tca.half_spread_saved == pytest.approx(2.0)
    assert tca.filled_before_escalation == Decimal(100)
    assert tca.time_to_fill_s == pytest.approx(10.0)


def test_sell_costs_are_signed_the_other_way() -> None:
    tca = _one([_fill(0, 100, "100.00", OrderType.MARKET)], side=Side.SELL)
    assert tca.cost_half_spreads == pytest.approx(1.0)


def test_partial_passive_fill_then_escalation_averages_actual_fill_prices() -> None:
    tca = _one(
        [
            _planned(),
            _sent(0, IntentAction.SUBMIT, OrderType.LIMIT, "100.00", "initial", cid="o1"),
            _accepted(0, IntentAction.SUBMIT, OrderType.LIMIT, "o1"),
            _sent(10, IntentAction.REPLACE, OrderType.LIMIT, "100.01", "repeg", cid="o2"),
            _accepted(10, IntentAction.REPLACE, OrderType.LIMIT, "o2"),
            _fill(12, 40, "100.01", OrderType.LIMIT, order_id="o2"),
            _escalated(40, 60),
            _sent(40, IntentAction.CANCEL, None, None, "escalate", cid="o2"),
            _closed(40, "o2", 40, OrderStatus.CANCELED),
            _sent(40, IntentAction.SUBMIT, OrderType.MARKET, None, "escalate", cid="o3"),
            _fill(40, 60, "100.07", OrderType.MARKET, order_id="o3"),
        ]
    )
    assert tca.avg_price == Decimal("100.046")
    assert (tca.filled_before_escalation, tca.escalated, tca.repegs) == (Decimal(40), True, 1)
    assert tca.time_to_fill_s == pytest.approx(40.0)
    kinds = [e.kind for e in tca.path]
    assert kinds == [
        PathEventKind.SUBMIT,
        PathEventKind.REPLACE,
        PathEventKind.FILL,
        PathEventKind.ESCALATE,
        PathEventKind.CANCEL,
        PathEventKind.SUBMIT,
        PathEventKind.FILL,
    ]


def test_order_without_fills_is_incomplete_and_charged_its_clean_up() -> None:
    tca = _one([_intent(0, IntentAction.SUBMIT, OrderType.LIMIT, "100.00", "initial")])
    assert (tca.avg_price, tca.time_to_fill_s, tca.completed) == (None, None, False)
    assert tca.cost_half_spreads == pytest.approx(2.5)  # the whole order at the deadline's ask, 100.07


def _tca(cost_hs: float, ttf: float, completed: bool = True) -> OrderTca:
    base = _one([_fill(0, 100, "100.04", OrderType.MARKET)])
    return base.model_copy(
        update={
            "cost_half_spreads": cost_hs,
            "cost_bps": cost_hs,
            "time_to_fill_s": ttf,
            "completed": completed,
            "cost_vs_oracle_half_spreads": cost_hs,
            "half_spread_saved": 1 - cost_hs,
        }
    )


def test_summary_counts_completion_and_means() -> None:
    orders = [_tca(1.0, 0.0), _tca(-1.0, 10.0), _tca(0.5, 20.0, completed=False)]
    s = summarize("p", FillModelName.PAPER, orders, seed=1)
    assert s.completion_rate == pytest.approx(2 / 3)
    assert s.cost_half_spreads.mean == pytest.approx(0.5 / 3)
    assert s.time_to_fill_s.mean == pytest.approx(10.0)
    assert s.n_orders == 3


def _summary(
    policy: str, cost: float, ttf: float, model: FillModelName = FillModelName.PAPER
) -> PolicySummary:
    s = summarize(policy, model, [_tca(0.0, 0.0)], seed=0)
    return s.model_copy(
        update={
            "cost_half_spreads": Interval(mean=cost, low=cost, high=cost, n=1),
            "time_to_fill_s": Interval(mean=ttf, low=ttf, high=ttf, n=1),
        }
    )


def test_frontier_marks_dominated_policies() -> None:
    points = frontier(
        [
            _summary("market", 1.0, 0.0),
            _summary("slow_and_dear", 1.2, 30.0),
            _summary("patient", 0.6, 25.0),
            _summary("queue_slow", 1.5, 40.0, FillModelName.QUEUE),
        ]
    )
    efficient = {(p.policy, p.fill_model): p.efficient for p in points}
    assert efficient[("market", FillModelName.PAPER)]
    assert efficient[("patient", FillModelName.PAPER)]
    assert not efficient[("slow_and_dear", FillModelName.PAPER)]
    assert efficient[("queue_slow", FillModelName.QUEUE)]  # compared only within its own fill model


def test_order_arriving_before_any_quote_is_refused_naming_it() -> None:
    early = _order().model_copy(update={"arrival": T0 - timedelta(seconds=1)})
    with pytest.raises(ConfigError, match="before any two-sided quote"):
        reference(_quotes(), early)


def test_remainder_of_a_partially_filled_market_order_is_not_an_escalation() -> None:
    tca = _one(
        [
            _planned(),
            _sent(0, IntentAction.SUBMIT, OrderType.MARKET, None, "initial", cid="o1"),
            _accepted(0, IntentAction.SUBMIT, OrderType.MARKET, "o1"),
            _fill(0, 40, "100.04", OrderType.MARKET),
            _closed(0.5, "o1", 40, OrderStatus.CANCELED),
            _sent(1, IntentAction.SUBMIT, OrderType.MARKET, None, "remainder", cid="o2"),
            _fill(1, 60, "100.04", OrderType.MARKET, order_id="o2"),
        ]
    )
    assert (tca.escalated, tca.completed) == (False, True)


def test_unfilled_remainder_is_charged_at_the_far_touch_at_the_deadline() -> None:
    # 40 shares filled passively at the bid, 60 never filled (e.g. the escalation was refused): the 60 are charged
    # what crossing at the deadline costs (ask 100.07 of the last quote inside the budget), not dropped.
    tca = _one(
        [
            _intent(0, IntentAction.SUBMIT, OrderType.LIMIT, "100.00", "initial"),
            _fill(10, 40, "100.00", OrderType.LIMIT),
        ]
    )
    assert tca.avg_price == Decimal("100.00")  # the actual fills, unchanged
    assert tca.completed is False
    assert tca.cost_half_spreads == pytest.approx((0.4 * 100.00 + 0.6 * 100.07 - 100.02) / 0.02)
    assert tca.cost_bps == pytest.approx((0.4 * 100.00 + 0.6 * 100.07 - 100.02) / 100.02 * 1e4)


def test_summary_charges_orders_that_never_filled() -> None:
    # One passive fill at the bid (-1 hs) and one order that never filled (its clean-up at the deadline's ask
    # 100.07 costs +2.5 hs): averaging only the filled order would report -1 for a policy that did not execute.
    filled = _one([_fill(10, 100, "100.00", OrderType.LIMIT)])
    unfilled = basket_tca(_quotes(), [_order(index=1)], [])[0]
    s = summarize("p", FillModelName.PAPER, [filled, unfilled], seed=1)
    assert s.cost_half_spreads.mean == pytest.approx((-1.0 + 2.5) / 2)
    assert s.time_to_fill_s.n == 1  # time to fill stays over the orders that filled


def test_a_repeg_by_cancel_then_submit_counts_once() -> None:
    # A partially filled order is re-pegged by cancel, confirm, then submit of the remainder: both intents carry
    # the reason "repeg", but it is one re-peg (the engine's own fold counts one).
    tca = _one(
        [
            _planned(),
            _sent(0, IntentAction.SUBMIT, OrderType.LIMIT, "100.00", "initial", cid="o1"),
            _accepted(0, IntentAction.SUBMIT, OrderType.LIMIT, "o1"),
            _fill(5, 40, "100.00", OrderType.LIMIT),
            _sent(10, IntentAction.CANCEL, None, None, "repeg", cid="o1"),
            _closed(10.5, "o1", 40, OrderStatus.CANCELED),
            _sent(11, IntentAction.SUBMIT, OrderType.LIMIT, "100.02", "repeg", cid="o2"),
            _fill(12, 60, "100.02", OrderType.LIMIT, order_id="o2"),
        ]
    )
    assert tca.repegs == 1


def test_order_arriving_after_the_last_quote_is_refused_naming_it() -> None:
    # An arrivals file for the wrong day (or after the close) has no quote in force: refuse, do not price it
    # against the day's last quote.
    late = _order().model_copy(update={"arrival": T0 + timedelta(seconds=91)})
    with pytest.raises(ConfigError, match="order 0 arrives after the last quote"):
        reference(_quotes(), late)


def test_summary_costs_of_a_mixed_size_basket_are_per_share_as_its_fill_rate_is() -> None:
    # An arrivals file of one 100-share order earning the half-spread passively and one 10,000-share order
    # escalated to market summarised as "cost +0.00 hs, filled before escalation 1%": costs were a plain mean over
    # orders while the fill rate is a share of the quantity. The basket paid (-100 + 10,000) / 10,100 hs a share.
    small = _tca(-1.0, 1.0).model_copy(update={"filled_before_escalation": Decimal(100)})
    large = _tca(1.0, 5.0).model_copy(update={"qty": Decimal(10_000), "filled_qty": Decimal(10_000)})
    s = summarize("p", FillModelName.PAPER, [small, large], seed=1)
    assert s.fill_rate_before_escalation == pytest.approx(100 / 10_100)
    assert s.cost_half_spreads.mean == pytest.approx(9_900 / 10_100)
    assert s.cost_bps.mean == pytest.approx(9_900 / 10_100)
    assert s.half_spread_saved == pytest.approx(1 - 9_900 / 10_100)
    assert s.cost_weighting == "shares"


def test_summary_of_equal_sizes_is_the_plain_mean_over_orders() -> None:
    orders = [_tca(1.0, 0.0), _tca(-1.0, 10.0), _tca(0.5, 20.0)]
    plain = summarize("p", FillModelName.PAPER, orders, seed=1)
    assert plain.cost_half_spreads.mean == pytest.approx(0.5 / 3)


def test_an_order_that_filled_while_its_escalation_cancel_was_pending_did_not_escalate() -> None:
    # Issue 2: if the order filled meanwhile, nothing is sent. The run's result (49164ff) calls such a leg not
    # escalated, all of it filled before escalation; the lab read the same events as escalated, nothing passive.
    events: list[RunEvent] = [
        _planned(),
        _sent(0, IntentAction.SUBMIT, OrderType.LIMIT, "100.00", "initial", cid="o1"),
        _accepted(0, IntentAction.SUBMIT, OrderType.LIMIT, "o1"),
        _escalated(40, 100),
        _sent(40, IntentAction.CANCEL, None, None, "escalate", cid="o1"),
        _fill(40.5, 100, "100.00", OrderType.LIMIT),
    ]
    assert fold_run(events).legs[0].escalated  # decided, but no escalation order went out
    tca = _one(events)
    assert (tca.escalated, tca.filled_before_escalation) == (False, Decimal(100))


def _planned() -> LegPlanned:
    spec = LegSpec(index=0, symbol="XXX", side=Side.BUY, qty=Decimal(100))
    return LegPlanned(run_id="r", ts=T0, correlation_id="c", leg_index=0, spec=spec)


def _sent(
    sec: float,
    action: IntentAction,
    order_type: OrderType | None,
    price: str | None,
    reason: str,
    *,
    cid: str,
) -> OrderIntent:
    """An intent as the engine writes it, naming its client order id (the fold keys orders by it)."""
    order_id = {IntentAction.SUBMIT: None, IntentAction.REPLACE: "o1"}.get(action, cid)
    return _intent(sec, action, order_type, price, reason).model_copy(
        update={"client_order_id": cid, "order_id": order_id}
    )


def _accepted(sec: float, action: IntentAction, order_type: OrderType, cid: str) -> OrderAccepted:
    order = _fill(sec, 1, "100.00", order_type, order_id=cid).update.order
    order = order.model_copy(
        update={"status": OrderStatus.NEW, "filled_qty": Decimal(0), "filled_avg_price": None}
    )
    return OrderAccepted(
        run_id="r", ts=order.updated_at, correlation_id="c", leg_index=0, action=action, order=order
    )


def _escalated(sec: float, remaining: int) -> LegEscalated:
    ts = T0 + timedelta(seconds=sec)
    return LegEscalated(
        run_id="r",
        ts=ts,
        correlation_id="c",
        leg_index=0,
        remaining_qty=Decimal(remaining),
        reason="deadline",
    )


def _closed(sec: float, order_id: str, filled: int, status: OrderStatus) -> OrderUpdated:
    """`order_id` (a limit at 100.00) closed with `filled` shares filled, no fill in this update."""
    update = _fill(sec, filled, "100.00", OrderType.LIMIT, order_id=order_id).update
    order = update.order.model_copy(update={"status": status})
    closed = update.model_copy(update={"event": OrderEvent(status.value), "order": order, "fill": None})
    return OrderUpdated(run_id="r", ts=closed.ts, correlation_id="c", leg_index=0, update=closed)


def test_a_replace_the_broker_refused_is_no_repeg_as_in_the_run_result() -> None:
    # The re-peg's replace was refused at once: the order works on at its price, and the run's fold (the result's
    # and live view's re-pegs) counts no re-peg; the lab counted one for the same events.
    events: list[RunEvent] = [
        _planned(),
        _sent(0, IntentAction.SUBMIT, OrderType.LIMIT, "100.00", "initial", cid="o1"),
        _accepted(0, IntentAction.SUBMIT, OrderType.LIMIT, "o1"),
        _sent(10, IntentAction.REPLACE, OrderType.LIMIT, "100.01", "repeg", cid="o2"),
        OrderFailed(
            run_id="r",
            ts=T0 + timedelta(seconds=10),
            correlation_id="c",
            leg_index=0,
            action=IntentAction.REPLACE,
            client_order_id="o2",
            order_id="o1",
            error="rejected",
            message="replace refused",
        ),
        _fill(20, 100, "100.00", OrderType.LIMIT),
    ]
    assert (_one(events).repegs, fold_run(events).legs[0].repegs) == (0, 0)


def test_a_policy_crossing_at_arrival_did_not_escalate_as_the_market_policy_did_not() -> None:
    # A deliberate cross at arrival (the adaptive policy's reason "cross") is its plan, as the market policy's
    # initial market order is: no escalation was decided, and the run's result calls the leg not escalated.
    events: list[RunEvent] = [
        _planned(),
        _sent(0, IntentAction.SUBMIT, OrderType.MARKET, None, "cross", cid="o1"),
        _accepted(0, IntentAction.SUBMIT, OrderType.MARKET, "o1"),
        _fill(0, 100, "100.04", OrderType.MARKET),
    ]
    assert (_one(events).escalated, went_to_escalation(fold_run(events).legs[0])) == (False, False)


def test_given_the_runs_result_the_tca_reads_its_legs_without_folding_the_events_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A backtest hands over the result `run_basket` built from its own fold: folding the events again cost 5-17%
    # of each backtest's CPU for the same re-pegs and escalations.
    events: list[RunEvent] = [
        _planned(),
        _sent(0, IntentAction.SUBMIT, OrderType.MARKET, None, "cross", cid="o1"),
        _accepted(0, IntentAction.SUBMIT, OrderType.MARKET, "o1"),
        _fill(0, 100, "100.04", OrderType.MARKET),
    ]
    result = result_from_events(events)

    def refold(_: object) -> None:
        raise AssertionError("the events were folded again")

    monkeypatch.setattr(tca_module, "result_from_events", refold)
    tca = basket_tca(_quotes(), [_order()], events, result)[0]
    assert (tca.repegs, tca.escalated, tca.filled_qty) == (0, False, Decimal(100))


def test_the_arrival_benchmark_is_no_quote_wider_than_the_engine_trades_on() -> None:
    # At arrival (t=10) the quote in force is 100.00/120.00, 18% of its mid wide: the engine trades on no such
    # quote (max_spread_pct, 10 by default) and records none as a leg's arrival quote. The TCA took its 110.00 mid
    # and 10.00 half-spread as the benchmark: a market buy at 100.04 "earned" a whole half-spread.
    secs = np.array([0, 5, 20], dtype=np.int64)
    quotes = SymbolQuotes(
        symbol="XXX",
        ts=to_ns(T0) + secs * NS,
        bid=np.array([1_000_000, 1_000_000, 1_000_000], dtype=np.int64),
        bid_size=np.full(3, 100, dtype=np.int64),
        ask=np.array([1_000_400, 1_200_000, 1_000_400], dtype=np.int64),
        ask_size=np.full(3, 100, dtype=np.int64),
    )
    order = _order().model_copy(update={"arrival": T0 + timedelta(seconds=10)})
    ref = reference(quotes, order)  # the default bound (`ExecutionConfig.max_spread_pct`)
    assert (ref.bid, ref.ask) == (Decimal("100.00"), Decimal("100.04"))
    loose = reference(quotes, order, max_spread_pct=Decimal(20))  # a run that allows 20% trades on it
    assert (loose.bid, loose.ask) == (Decimal("100.00"), Decimal("120.00"))
