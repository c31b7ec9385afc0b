"""Results and execution quality, built purely from folded leg state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal, localcontext

from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.order_record import OrderRecord
from repeg.domain.orders import OrderStatus, OrderType, Side
from repeg.domain.plan import LegSpec, SkippedTrade
from repeg.domain.quote import Quote
from repeg.domain.run import PhaseRecord, RunState
from repeg.report.quality import leg_cost_bps, summarize_quality
from repeg.report.result import (
    ExecutionResult,
    RunStatus,
    build_result,
    journaled_result,
    leg_result,
    run_status,
)

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
ARRIVAL = Quote(
    symbol="XYZ", bid=Decimal("99.98"), bid_size=Decimal(1), ask=Decimal("100.02"), ask_size=Decimal(1), ts=T0
)


def leg(
    side: Side = Side.BUY,
    fills: tuple[tuple[str, str], ...] = (("100", "100.00"),),
    status: LegStatus = LegStatus.FILLED,
    *,
    index: int = 0,
    escalated_from: int | None = None,
    seconds: float = 12,
) -> LegState:
    orders = tuple(
        OrderRecord(
            client_order_id=f"c{i}",
            attempt=i,
            order_id=f"o{i}",
            order_type=OrderType.LIMIT,
            status=OrderStatus.FILLED,
            filled_qty=Decimal(q),
            avg_price=Decimal(p),
            escalation=escalated_from is not None and i >= escalated_from,
        )
        for i, (q, p) in enumerate(fills)
    )
    return LegState(
        spec=LegSpec(index=index, symbol="XYZ", side=side, qty=Decimal(100)),
        status=status,
        arrival_quote=ARRIVAL,
        orders=orders,
        submitted_at=T0,
        completed_at=T0 + timedelta(seconds=seconds),
        escalated=escalated_from is not None,
        repegs=2,
    )


def test_leg_result_reports_the_actual_average_fill_not_the_limit() -> None:
    state = leg(fills=(("40", "100.00"), ("60", "100.02"))).model_copy(
        update={"limit_price": Decimal("100.05")}
    )
    result = leg_result(state)
    assert result.avg_fill_price == Decimal("100.012")
    assert result.filled_qty == Decimal(100)
    assert result.order_ids == ("o0", "o1")
    assert result.arrival_mid == Decimal("100.00")
    assert result.time_to_complete_s == 12.0
    assert result.repegs == 2


def test_cost_is_signed_positive_when_paying_more_than_the_arrival_mid() -> None:
    assert leg_cost_bps(leg(Side.BUY, (("100", "100.02"),))) == Decimal("2.00")
    assert leg_cost_bps(leg(Side.SELL, (("100", "100.02"),))) == Decimal("-2.00")


def test_cost_is_undefined_before_any_fill() -> None:
    assert leg_cost_bps(leg(fills=(), status=LegStatus.INCOMPLETE)) is None


def test_quality_weights_cost_by_notional_and_measures_half_spreads() -> None:
    legs = [leg(Side.BUY, (("100", "100.02"),)), leg(Side.SELL, (("100", "100.02"),), index=1)]
    quality = summarize_quality(legs)
    assert quality.cost_bps == Decimal("0.00")
    assert quality.cost_half_spreads == Decimal("0.0000")
    assert quality.half_spread_saved == Decimal("1.0000")


def test_crossing_at_arrival_costs_one_half_spread_and_saves_nothing() -> None:
    quality = summarize_quality([leg(Side.BUY, (("100", "100.02"),))])
    assert quality.cost_half_spreads == Decimal("1.0000")
    assert quality.half_spread_saved == Decimal("0.0000")


def test_fill_rate_before_escalation_counts_passive_fills_only() -> None:
    quality = summarize_quality([leg(fills=(("30", "100.00"), ("70", "100.02")), escalated_from=1)])
    assert quality.fill_rate_before_escalation == Decimal("0.3000")


def test_mean_time_to_fill_averages_filled_legs() -> None:
    quality = summarize_quality([leg(seconds=10), leg(seconds=20, index=1)])
    assert quality.mean_time_to_fill_s == 15.0


def test_quality_of_nothing_is_undefined() -> None:
    quality = summarize_quality([])
    assert quality.cost_bps is None
    assert quality.half_spread_saved is None
    assert quality.fill_rate_before_escalation is None
    assert quality.mean_time_to_fill_s is None


def test_all_filled_is_completed() -> None:
    assert run_status([leg()], 0) is RunStatus.COMPLETED


def test_skipped_trades_make_it_completed_with_skips() -> None:
    assert run_status([leg()], 1) is RunStatus.COMPLETED_WITH_SKIPS
    assert run_status([leg(), leg(fills=(), status=LegStatus.SKIPPED)], 0) is RunStatus.COMPLETED_WITH_SKIPS


def test_some_fill_but_not_all_is_partial() -> None:
    assert (
        run_status([leg(), leg(fills=(("10", "100"),), status=LegStatus.INCOMPLETE)], 0) is RunStatus.PARTIAL
    )


def test_nothing_filled_is_failed() -> None:
    assert run_status([leg(fills=(), status=LegStatus.FAILED)], 0) is RunStatus.FAILED


def test_build_result_counts_and_totals() -> None:
    skipped = SkippedTrade(symbol="TINY", side=Side.BUY, qty=Decimal(1), reason="below minimum notional")
    state = RunState(
        run_id="r",
        started_at=T0,
        legs=(
            leg(escalated_from=0),
            leg(fills=(("10", "100.00"),), status=LegStatus.INCOMPLETE, index=1),
            leg(fills=(), status=LegStatus.SKIPPED, index=2),
            leg(fills=(), status=LegStatus.FAILED, index=3),
            leg(fills=(), status=LegStatus.WORKING, index=4),
        ),
        skipped=(skipped,),
    )
    result = build_result(state)
    assert result.status is RunStatus.PARTIAL
    counts = result.counts
    assert (counts.total, counts.filled, counts.incomplete, counts.skipped, counts.failed) == (5, 1, 2, 1, 1)
    assert counts.escalated == 1
    assert counts.skipped_trades == 1
    assert result.notional_traded == Decimal("11000.00")
    assert result.skipped == (skipped,)
    document = (
        result.model_dump_json()
    )  # the whole result is one JSON document, every Decimal without float loss
    assert ExecutionResult.model_validate_json(document) == result
    assert json.loads(document)["notional_traded"] == "11000.00"


def _arrival(bid: str, ask: str) -> Quote:
    return Quote(
        symbol="XYZ", bid=Decimal(bid), bid_size=Decimal(1), ask=Decimal(ask), ask_size=Decimal(0), ts=T0
    )


def test_quality_survives_a_market_order_sent_on_a_zero_quote() -> None:
    # on_no_quote=market records the (invalid) quote in force as the leg's arrival quote: bid 0 / ask 0 has no mid.
    state = leg(Side.SELL).model_copy(update={"arrival_quote": _arrival("0", "0")})
    result = build_result(RunState(run_id="r", started_at=T0, legs=(state,)))
    assert result.legs[0].cost_bps is None
    assert result.legs[0].arrival_mid is None
    assert result.quality.cost_bps is None
    assert result.quality.half_spread_saved is None


def test_quality_ignores_a_one_sided_arrival_quote() -> None:
    # bid 107 / ask 0 is no benchmark: its "mid" 53.5 would book a 100-share sell at 100 as -8,692 bps.
    one_sided = leg(Side.SELL, index=1).model_copy(update={"arrival_quote": _arrival("107", "0")})
    quality = summarize_quality([leg(Side.BUY, (("100", "100.02"),)), one_sided])
    assert leg_cost_bps(one_sided) is None
    assert quality.cost_bps == Decimal("2.00")
    assert quality.cost_half_spreads == Decimal("1.0000")


def test_a_market_order_sent_for_want_of_a_quote_is_not_a_passive_fill() -> None:
    # on_no_quote=market sends a market order that is not flagged as an escalation: its fills are not "before
    # escalation" (the share of quantity the passive schedule achieved).
    market = leg().model_copy(
        update={"orders": tuple(r.model_copy(update={"order_type": OrderType.MARKET}) for r in leg().orders)}
    )
    assert summarize_quality([market]).fill_rate_before_escalation == Decimal("0.0000")


def test_cost_in_half_spreads_weighs_legs_by_what_crossing_would_have_paid() -> None:
    # Crossing at arrival would have paid $0.02 x 100 on the tight leg and $0.10 x 100 on the wide one ($12); the
    # fills paid +$2 and -$5 ($-3): cost -0.25 half-spreads, not the per-leg average (+1 - 0.5) / 2 = +0.25.
    wide = ARRIVAL.model_copy(update={"bid": Decimal("99.90"), "ask": Decimal("100.10")})
    tight = leg(Side.BUY, (("100", "100.02"),))
    saving = leg(Side.BUY, (("100", "99.95"),), index=1).model_copy(update={"arrival_quote": wide})
    quality = summarize_quality([tight, saving])
    assert quality.cost_half_spreads == Decimal("-0.2500")
    assert quality.half_spread_saved == Decimal("1.2500")


def test_a_leg_that_filled_while_its_escalation_cancel_was_pending_is_not_escalated() -> None:
    # The escalation was decided (LegEscalated) but the order filled before the cancel: nothing went to market.
    # Reporting it escalated contradicted the same run's 100% fill rate before escalation.
    state = leg(fills=(("100", "100.01"),)).model_copy(update={"escalated": True})
    result = build_result(RunState(run_id="r", started_at=T0, legs=(state,)))
    assert result.quality.fill_rate_before_escalation == Decimal("1.0000")
    assert result.legs[0].escalated is False
    assert result.counts.escalated == 0


def test_a_leg_whose_remainder_went_to_market_is_escalated() -> None:
    result = build_result(
        RunState(
            run_id="r", started_at=T0, legs=(leg(escalated_from=1, fills=(("30", "100"), ("70", "100.02"))),)
        )
    )
    assert result.legs[0].escalated is True
    assert result.counts.escalated == 1


def test_a_market_order_sent_for_want_of_a_valid_quote_has_no_arrival_benchmark() -> None:
    # on_no_quote=market sends only when the quote in force is invalid: stale or too wide as well as zero or
    # one-sided. A two-sided stale quote (mid 100) is no arrival mid for a market buy filled at 110.05 an hour
    # later: it booked +1,005 bps and dominated the run's cost.
    market = OrderRecord(
        client_order_id="c0",
        attempt=0,
        order_id="o0",
        order_type=OrderType.MARKET,
        status=OrderStatus.FILLED,
        filled_qty=Decimal(100),
        avg_price=Decimal("110.05"),
    )
    no_quote = leg(index=1).model_copy(update={"orders": (market,)})
    quality = summarize_quality([leg(Side.BUY, (("100", "100.02"),)), no_quote])
    assert leg_cost_bps(no_quote) is None
    assert leg_result(no_quote).arrival_mid is None
    assert quality.cost_bps == Decimal("2.00")
    assert quality.cost_half_spreads == Decimal("1.0000")


def test_a_run_the_journal_ended_failed_reads_failed_not_judged_by_its_legs() -> None:
    # The engine broke after the leg filled: the run ended `failed` (exit 4), and `repeg runs` lists it failed;
    # `repeg show` rebuilt the status from the legs and said `completed`.
    state = RunState(run_id="r", started_at=T0, ended_at=T0, status="failed", legs=(leg(),))
    assert build_result(state).status is RunStatus.COMPLETED
    assert journaled_result(state).status is RunStatus.FAILED


def test_fill_rate_before_escalation_short_of_all_never_reads_as_one() -> None:
    # 99,999 of 100,000 shares filled passively and 1 at market: the rate is below 1, not "1.0000" (100%) next to
    # "1 escalated".
    state = leg(fills=(("99999", "100.00"), ("1", "100.02")), escalated_from=1).model_copy(
        update={"spec": LegSpec(index=0, symbol="XYZ", side=Side.BUY, qty=Decimal(100_000))}
    )
    assert summarize_quality([state]).fill_rate_before_escalation == Decimal("0.9999")


def test_a_resumed_buy_phase_keeps_the_scale_its_sizing_applied() -> None:
    # The buys were scaled to 49.71% of the plan, then the run died with a buy working. Resume continues the buy
    # phase with the journaled (scaled) quantities, announcing it without a scale or buying power: the result
    # read that phase's scale 1 and dropped "buys scaled to 49.71%".
    sized = PhaseRecord(side=Side.BUY, started_at=T0, scale=Decimal("0.497114"), buying_power=Decimal(5000))
    resumed = PhaseRecord(side=Side.BUY, started_at=T0 + timedelta(minutes=5))
    state = RunState(run_id="r", started_at=T0, legs=(leg(),), phases=(sized, resumed))
    assert build_result(state).buy_scale == Decimal("0.497114")


def test_a_filled_leg_whose_cancel_lost_the_race_to_its_fill_reports_no_error() -> None:
    # The escalation's cancel reached an order that had just filled; the broker refused it, the leg filled in full.
    # The result printed "filled: OrderNotCancelableError: order 'o2' cannot be changed in status 'filled'".
    refused = "OrderNotCancelableError: order 'o0' cannot be changed in status 'filled'"
    assert leg_result(leg().model_copy(update={"error": refused})).error is None
    incomplete = leg(fills=(("10", "100.00"),), status=LegStatus.INCOMPLETE).model_copy(
        update={"error": refused}
    )
    assert leg_result(incomplete).error == refused


def test_a_run_that_left_an_order_open_at_the_broker_is_not_completed() -> None:
    # The sell filled in full, but its replacement (uncapped by the broker) stayed open for 40 more: every cancel
    # was refused, so the buys were never started (skipped). The run read `completed_with_skips` (exit 0).
    open_replacement = OrderRecord(
        client_order_id="c1",
        attempt=1,
        order_id="o1",
        order_type=OrderType.LIMIT,
        status=OrderStatus.PARTIALLY_FILLED,
        filled_qty=Decimal(60),
        avg_price=Decimal("100.00"),
    )
    sell = leg(Side.SELL, (("40", "100.00"),))
    sell = sell.model_copy(update={"orders": (*sell.orders, open_replacement)})
    skipped_buy = leg(fills=(), status=LegStatus.SKIPPED, index=1)
    assert run_status([sell, skipped_buy], 0) is RunStatus.PARTIAL
    assert leg_result(sell).error == "order o1 was left open at the broker (partially_filled)"


def test_a_run_whose_leg_names_a_replacement_never_read_is_not_completed() -> None:
    # The sell filled in full naming o1, which the broker replaced by o2; o2 was never read (the replace's answer
    # was lost, every read failed): it may be open, so the buys were never started, as for a known open order.
    # The run read `completed_with_skips` (exit 0).
    replaced = OrderRecord(
        client_order_id="c1",
        attempt=1,
        order_id="o1",
        order_type=OrderType.LIMIT,
        status=OrderStatus.REPLACED,
        filled_qty=Decimal(60),
        avg_price=Decimal("100.00"),
        replaced_by="o2",
    )
    unread = OrderRecord(client_order_id="c2", attempt=2, order_type=OrderType.LIMIT)
    sell = leg(Side.SELL, (("40", "100.00"),))
    sell = sell.model_copy(
        update={"orders": (*sell.orders, replaced, unread), "active_client_order_id": "c1"}
    )
    skipped_buy = leg(fills=(), status=LegStatus.SKIPPED, index=1)
    assert run_status([sell, skipped_buy], 0) is RunStatus.PARTIAL
    assert leg_result(sell).error == "order o2, the replacement of o1, was never read: its fills are unknown"


def test_the_result_does_not_depend_on_the_callers_decimal_context() -> None:
    """A program using the Python API may have changed `decimal.getcontext()` for its own arithmetic (precision 6,
    rounding toward +inf): the report's figures are the same (avg 100.00666.. at 28 digits, cost to 1/100 bp
    half-even), not 100.007 and a cost rounded up."""
    state = RunState(
        run_id="r",
        started_at=T0,
        legs=(
            leg(fills=(("1", "100.00"), ("2", "100.01")), status=LegStatus.INCOMPLETE),
            leg(Side.SELL, (("100", "99.97"),), index=1),
        ),
    )
    expected = build_result(state)
    with localcontext(prec=6, rounding=ROUND_CEILING):
        assert build_result(state) == expected
    assert expected.legs[0].avg_fill_price == Decimal("300.02") / 3


def test_shares_and_percentages_print_the_same_whatever_the_callers_decimal_context() -> None:
    # The x100 and the rounding ran in the caller's context: at 5 digits rounding up, a buy scale of 0.999999 read
    # "100.00%" (a shortfall shown as none) and a half-spread saved of -1233.5678 raised InvalidOperation.
    from repeg.report.text import percent_text, scale_text, share_text

    with localcontext(prec=5, rounding=ROUND_CEILING):
        shown = (
            scale_text(Decimal("0.999999")),
            share_text(Decimal("0.9999")),
            percent_text(Decimal("-1233.5678")),
        )
    assert shown == ("99.99%", "99.9%", "-123356.8%")


def test_run_cost_weighs_each_leg_by_its_filled_notional_not_equally() -> None:
    # The test above weighs two legs of equal notional: a plain mean of the legs' costs passed it too.
    small_buy = leg(Side.BUY, (("100", "100.02"),))  # +2 bps on $10,002
    large_sell = leg(Side.SELL, (("300", "99.99"),), index=1)  # +1 bp on $29,997
    quality = summarize_quality([small_buy, large_sell])
    assert quality.cost_bps == Decimal("1.25")  # (2 x 10,002 + 1 x 29,997) / 39,999; the plain mean is 1.50
    # half-spreads weigh by quantity x half-spread: (0.02 x 100 + 0.01 x 300) / (0.02 x 400)
    assert quality.cost_half_spreads == Decimal("0.6250")


def test_mean_time_to_fill_leaves_out_a_leg_that_did_not_fill_completely() -> None:
    # The test above has filled legs only: counting every leg that ended would pass it too.
    partial = leg(fills=(("10", "100.00"),), status=LegStatus.INCOMPLETE, seconds=120, index=2)
    quality = summarize_quality([leg(seconds=10), leg(seconds=20, index=1), partial])
    assert quality.mean_time_to_fill_s == 15.0


def test_a_half_spread_saved_that_rounds_to_zero_prints_without_a_minus_sign() -> None:
    # -0.0004 (a run that paid 1.0004 half-spreads) printed "-0.0%", as signed costs once printed "-0.00 bps".
    from repeg.report.text import percent_text

    assert percent_text(Decimal("-0.0004")) == "0.0%"
    assert percent_text(Decimal("-0.0006")) == "-0.1%"


def test_the_half_spread_figures_are_rounded_once_for_display() -> None:
    # A buy 0.35451 half-spreads above the mid: the summary kept 0.3545 (half-even to 4 places), which the tables
    # rounded again, half-even, to +0.354 half-spreads and 64.6% saved; the figure is +0.355 and 64.5%.
    from repeg.report.text import percent_text, signed_text

    quality = summarize_quality([leg(Side.BUY, (("1", "100.0070902"),))])
    assert signed_text(quality.cost_half_spreads, 3) == "+0.355"
    assert percent_text(quality.half_spread_saved) == "64.5%"


def _printed(table: object) -> str:
    import io

    from rich.console import Console

    screen = io.StringIO()
    Console(file=screen, width=200).print(table)
    return screen.getvalue()


def test_a_brokers_error_text_with_markup_is_printed_verbatim_in_the_results_table() -> None:
    from repeg.cli.render import results_table

    failed = leg(status=LegStatus.FAILED).model_copy(
        update={"error": "OrderRejectedError: [bold]qty[/] must be [/] a multiple of 1"}
    )
    printed = _printed(results_table(build_result(RunState(run_id="r1", legs=(failed,)))))
    assert "[bold]qty[/] must be [/] a multiple of 1" in printed


def test_a_symbol_with_markup_is_printed_verbatim_in_the_results_and_live_tables() -> None:
    # A basket replays whatever symbols its quote file holds: a symbol "[/]" crashed `repeg show` (MarkupError),
    # and "[bold]X" printed as "X".
    from repeg.cli.render import legs_table, results_table

    legs = tuple(
        leg(index=i).model_copy(update={"spec": LegSpec(index=i, symbol=s, side=Side.BUY, qty=Decimal(100))})
        for i, s in enumerate(("[/]", "[bold]X"))
    )
    skipped = SkippedTrade(symbol="[/]", side=Side.BUY, qty=Decimal(1), reason="below minimum notional")
    state = RunState(run_id="r1", legs=legs, skipped=(skipped,))
    for table in (results_table(build_result(state)), legs_table(state)):
        printed = _printed(table)
        assert "[/]" in printed
        assert "[bold]X" in printed


def test_the_runs_list_counts_the_notional_traded_the_result_shows() -> None:
    # 1 @ 10.005 then 2 @ 10.00: the executions sum to 30.005 ($30.00 half-even, as `repeg show` prints); `repeg runs`
    # took the cumulative 3 x the simulator's average to 1e-9 (10.001666667): 30.005000001, printed $30.01.
    from journal_support import accepted, at, broker_order, intent, leg_planned, run_started

    from repeg.domain.events import OrderUpdated
    from repeg.domain.orders import Fill, OrderEvent, OrderUpdate
    from repeg.domain.run import fold_run
    from repeg.journal.base import summarize

    def execution(cumulative: str, avg: str, qty: str, price: str) -> OrderUpdated:
        order = broker_order(OrderStatus.PARTIALLY_FILLED, filled=cumulative)
        update = OrderUpdate(
            event=OrderEvent.PARTIAL_FILL,
            order=order.model_copy(update={"filled_avg_price": Decimal(avg)}),
            fill=Fill(order_id="o1", qty=Decimal(qty), price=Decimal(price), ts=at(4)),
            ts=at(4),
        )
        return OrderUpdated(run_id="r1", ts=at(4), correlation_id="r1", leg_index=0, update=update)

    events = [
        run_started(),
        leg_planned(),
        intent(),
        accepted(),
        execution("1", "10.005", "1", "10.005"),
        execution("3", "10.001666667", "2", "10.00"),
    ]
    shown = build_result(fold_run(events)).notional_traded
    assert shown == Decimal("30.005")
    assert summarize("r1", at(0), events).notional == shown


def test_a_fill_reported_without_its_price_weighs_no_cost_in_half_spreads() -> None:
    # Alpaca reports a fill before its average price. The first buy's 10 priced shares paid +1 half-spread (100.02);
    # its 90 unpriced ones count nowhere else (not in its average, nor in the bps): weighted by all 100 filled, it
    # cancelled the other buy's 100 at -1 (99.98) and the run read 0.000 half-spreads beside -1.64 bps (-0.82).
    first = leg(Side.BUY, (("10", "100.02"), ("90", "100.02")))
    unpriced = first.orders[1].model_copy(update={"avg_price": None})
    first = first.model_copy(update={"orders": (first.orders[0], unpriced)})
    other = leg(Side.BUY, (("100", "99.98"),), index=1)
    quality = summarize_quality([first, other])
    assert quality.cost_bps == Decimal("-1.64")
    assert quality.cost_half_spreads is not None
    assert round(quality.cost_half_spreads, 4) == Decimal(
        "-0.8182"
    )  # (0.02 x 10 - 0.02 x 100) / (0.02 x 110)


def test_the_json_gives_each_quality_figure_to_the_precision_the_readme_states() -> None:
    # README's "Python API" note on the JSON's precision: 1 share at 100.00, 2 at 100.02 (escalated) against a 100.00
    # mid and a 0.02 half-spread cost 2/3 of a half-spread, 1.33... bp; 1 share of 100 filled passively. The
    # half-spread figures were taken from the average (a 28-digit quotient) and read 0.666666666666666666666665.
    state = RunState(run_id="r", legs=(leg(fills=(("1", "100.00"), ("2", "100.02")), escalated_from=1),))
    document = json.loads(build_result(state).model_dump_json())
    quality, (only,) = document["quality"], document["legs"]
    assert quality["cost_bps"] == "1.33"  # 0.01 bp, half-even
    assert only["cost_bps"] == "1.33"
    assert quality["fill_rate_before_escalation"] == "0.0100"  # 0.0001, rounded down
    assert quality["cost_half_spreads"] == "0.6666666666666666666666666667"  # unrounded: 28 digits
    assert quality["half_spread_saved"] == "0.3333333333333333333333333333"
    assert only["avg_fill_price"] == "100.0133333333333333333333333"  # 28 significant digits, half-even
    assert isinstance(quality["mean_time_to_fill_s"], float)


def test_a_cost_of_zero_is_never_signed_negative_in_the_json() -> None:
    # A sell filled at its arrival mid cost -1 x 0 = "-0.00" bps in the JSON (a float reader gets -0.0), and a run
    # whose weighted cost rounds to zero from below "-0.00": a sign the figure does not carry.
    at_mid = leg(Side.SELL, (("100", "100.00"),))
    assert str(leg_cost_bps(at_mid)) == "0.00"
    slightly = leg(Side.SELL, (("99999", "100.00"), ("1", "100.01")))  # 0.0001 bp better than the mid
    document = json.loads(build_result(RunState(run_id="r", legs=(at_mid, slightly))).model_dump_json())
    assert document["legs"][0]["cost_bps"] == "0.00"
    assert document["quality"]["cost_bps"] == "0.00"


def test_the_terminal_quality_table_shows_a_missing_cost_as_missing_not_as_minus_bps() -> None:
    # A run that filled nothing has no cost: the table read "- bps", a lone minus sign before the unit.
    from rich.console import Console

    from repeg.cli.render import quality_table

    unfilled = leg(fills=(), status=LegStatus.INCOMPLETE)
    console = Console(width=120, record=True)
    console.print(quality_table(build_result(RunState(run_id="r", legs=(unfilled,)))))
    assert "- bps" not in console.export_text()


def test_the_half_spread_saved_is_given_to_28_significant_digits_not_from_a_rounded_cost() -> None:
    # 1 share at 100.02 and 2 at 100.03 against a 100.00 mid and a 0.02 half-spread: 0.08 paid over 0.06, 4/3 of a
    # half-spread, so -1/3 saved. Taken as 1 - 1.333...3 (the cost already rounded to 28 digits) it read
    # -0.333333333333333333333333333, one digit short of the 28 significant digits README states.
    state = RunState(run_id="r", legs=(leg(fills=(("1", "100.02"), ("2", "100.03"))),))
    quality = json.loads(build_result(state).model_dump_json())["quality"]
    assert quality["cost_half_spreads"] == "1.333333333333333333333333333"
    assert quality["half_spread_saved"] == "-0.3333333333333333333333333333"
