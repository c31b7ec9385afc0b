"""The report of a journaled run: each leg's order path read from its events, the quotes behind it, and the HTML."""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from repeg.domain.events import (
    AlpacaFeedSource,
    IntentAction,
    LegEscalated,
    LegFinished,
    LegPlanned,
    OrderAccepted,
    OrderFailed,
    OrderIntent,
    OrderUpdated,
    PhaseStarted,
    RunEnded,
    RunEvent,
    RunStarted,
    SyntheticSource,
)
from repeg.domain.orders import BrokerOrder, Fill, OrderEvent, OrderStatus, OrderType, OrderUpdate, Side
from repeg.domain.plan import LegSpec, Plan, PlanKind, TradeIntent
from repeg.errors import QuoteFileError, ReportError
from repeg.lab.models import PathEvent, PathEventKind
from repeg.lab.run_report import (
    NO_QUOTE_FILE,
    ORDERS_ONLY,
    WINDOW_PAD,
    MarketView,
    leg_paths,
    market_view,
    plain,
    recorded_market_view,
    run_report,
)
from repeg.lab.run_report_html import (
    legs_table,
    quality_table,
    render_run_html,
    run_figures,
    symbol_figure_ids,
)
from repeg.market.source import quote_file_source
from repeg.market.synthetic import GENERATOR_VERSION
from repeg.market.tape import to_ns
from repeg.simulation import MarketSettings, synthetic_market, synthetic_source

RUN = "r1"
T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
CID_A, CID_B, CID_C = "r1-L0000-A00", "r1-L0000-A01", "r1-L0000-A02"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _stamp(seconds: float, leg: int | None = 0) -> dict[str, object]:
    return {"run_id": RUN, "ts": at(seconds), "correlation_id": RUN, "leg_index": leg}


def started(source: str = "plan.csv", symbol: str = "AAA") -> RunStarted:
    plan = Plan(
        source=source,
        kind=PlanKind.TRADES,
        trades=(TradeIntent(symbol=symbol, side=Side.BUY, qty=Decimal(100)),),
    )
    return RunStarted(**_stamp(0, None), plan=plan, config={}, broker="simulator", code_version="0.1.0")


def planned(symbol: str = "AAA", index: int = 0) -> list[RunEvent]:
    spec = LegSpec(index=index, symbol=symbol, side=Side.BUY, qty=Decimal(100))
    return [LegPlanned(**_stamp(0, index), spec=spec)]


def phase() -> PhaseStarted:
    return PhaseStarted(**_stamp(0, None), side=Side.BUY)


def order(
    order_id: str,
    client_id: str,
    price: str | None,
    status: OrderStatus = OrderStatus.NEW,
    *,
    filled: str = "0",
    avg: str | None = None,
    replaces: str | None = None,
    symbol: str = "AAA",
) -> BrokerOrder:
    return BrokerOrder(
        order_id=order_id,
        client_order_id=client_id,
        symbol=symbol,
        side=Side.BUY,
        qty=Decimal(100),
        order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
        limit_price=None if price is None else Decimal(price),
        status=status,
        filled_qty=Decimal(filled),
        filled_avg_price=None if avg is None else Decimal(avg),
        created_at=T0,
        updated_at=T0,
        replaces=replaces,
    )


def submit(seconds: float, client_id: str, price: str | None, attempt: int = 0, leg: int = 0) -> OrderIntent:
    return OrderIntent(
        **_stamp(seconds, leg),
        action=IntentAction.SUBMIT,
        client_order_id=client_id,
        order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
        qty=Decimal(100),
        limit_price=None if price is None else Decimal(price),
        attempt=attempt,
    )


def replace(seconds: float, client_id: str, target: str, price: str, attempt: int) -> OrderIntent:
    return OrderIntent(
        **_stamp(seconds),
        action=IntentAction.REPLACE,
        client_order_id=client_id,
        order_id=target,
        order_type=OrderType.LIMIT,
        qty=Decimal(100),
        limit_price=Decimal(price),
        attempt=attempt,
    )


def accepted(
    seconds: float, reported: BrokerOrder, action: IntentAction = IntentAction.SUBMIT
) -> OrderAccepted:
    return OrderAccepted(**_stamp(seconds), action=action, order=reported)


def updated(
    seconds: float,
    event: OrderEvent,
    reported: BrokerOrder,
    fill: tuple[str, str] | None = None,
    leg: int | None = 0,
) -> OrderUpdated:
    execution = None
    if fill is not None:
        execution = Fill(
            order_id=reported.order_id, qty=Decimal(fill[0]), price=Decimal(fill[1]), ts=at(seconds)
        )
    update = OrderUpdate(event=event, order=reported, fill=execution, ts=at(seconds))
    return OrderUpdated(**_stamp(seconds, leg), update=update)


def replaced_chain() -> list[RunEvent]:
    """Leg 0 rests at 10.01 (order a), is re-pegged to 10.02 (order b)."""
    return [
        started(),
        *planned(),
        phase(),
        submit(1, CID_A, "10.01"),
        accepted(1, order("a", CID_A, "10.01")),
        replace(5, CID_B, "a", "10.02", attempt=1),
        accepted(6, order("b", CID_B, "10.02", replaces="a"), IntentAction.REPLACE),
        updated(6, OrderEvent.REPLACED, order("a", CID_A, "10.01", OrderStatus.REPLACED)),
    ]


def kinds(path: tuple[PathEvent, ...]) -> list[tuple[PathEventKind, Decimal | None]]:
    return [(event.kind, event.price) for event in path]


def fills(path: tuple[PathEvent, ...]) -> list[tuple[Decimal | None, Decimal | None]]:
    return [(event.qty, event.price) for event in path if event.kind is PathEventKind.FILL]


# --- leg paths -------------------------------------------------------------------------------------------


def test_each_order_of_the_chain_rests_at_its_own_limit_from_its_first_report() -> None:
    path = leg_paths(replaced_chain())[0]
    assert kinds(path) == [
        (PathEventKind.SUBMIT, Decimal("10.01")),
        (PathEventKind.REPLACE, Decimal("10.02")),
    ]
    assert [event.ts for event in path] == [at(1), at(6)]


def test_a_late_cancel_of_an_older_order_does_not_end_the_resting_limit() -> None:
    events = [
        *replaced_chain(),
        updated(7, OrderEvent.CANCELED, order("a", CID_A, "10.01", OrderStatus.CANCELED)),
    ]
    assert PathEventKind.CANCEL not in [event.kind for event in leg_paths(events)[0]]


def test_a_cancel_of_the_resting_order_ends_its_limit() -> None:
    events = [
        *replaced_chain(),
        updated(7, OrderEvent.CANCELED, order("b", CID_B, "10.02", OrderStatus.CANCELED)),
    ]
    last = leg_paths(events)[0][-1]
    assert (last.kind, last.order_id, last.ts) == (PathEventKind.CANCEL, "b", at(7))


def test_a_duplicated_fill_update_is_drawn_once() -> None:
    partial = order("b", CID_B, "10.02", OrderStatus.PARTIALLY_FILLED, filled="40", avg="10.02", replaces="a")
    events = [*replaced_chain(), *[updated(8, OrderEvent.PARTIAL_FILL, partial, fill=("40", "10.02"))] * 2]
    assert fills(leg_paths(events)[0]) == [(Decimal(40), Decimal("10.02"))]


def test_an_update_without_its_execution_draws_the_price_its_cumulative_average_implies() -> None:
    partial = order("b", CID_B, "10.02", OrderStatus.PARTIALLY_FILLED, filled="40", avg="10.02", replaces="a")
    done = order("b", CID_B, "10.02", OrderStatus.FILLED, filled="100", avg="10.015", replaces="a")
    events = [
        *replaced_chain(),
        updated(8, OrderEvent.PARTIAL_FILL, partial, fill=("40", "10.02")),
        updated(9, OrderEvent.FILL, done),  # polled: the cumulative state only
    ]
    # (100 x 10.015 - 40 x 10.02) / 60 = 10.011666... -> 10.0117
    assert fills(leg_paths(events)[0]) == [(Decimal(40), Decimal("10.02")), (Decimal(60), Decimal("10.0117"))]


def test_an_execution_reported_without_a_cumulative_average_still_counts_in_the_next_implied_price() -> None:
    # The update reports its execution (40 @ 10.02) but no cumulative average.
    partial = order("b", CID_B, "10.02", OrderStatus.PARTIALLY_FILLED, filled="40", replaces="a")
    done = order("b", CID_B, "10.02", OrderStatus.FILLED, filled="100", avg="10.015", replaces="a")
    events = [
        *replaced_chain(),
        updated(8, OrderEvent.PARTIAL_FILL, partial, fill=("40", "10.02")),
        updated(9, OrderEvent.FILL, done),
    ]
    # The first 40 were at 10.02 (their execution says so): the other 60 at (1001.5 - 400.8) / 60 = 10.0117.
    assert fills(leg_paths(events)[0]) == [(Decimal(40), Decimal("10.02")), (Decimal(60), Decimal("10.0117"))]


def test_no_price_is_implied_for_an_execution_after_one_whose_price_is_unknown() -> None:
    partial = order("b", CID_B, "10.02", OrderStatus.PARTIALLY_FILLED, filled="40", replaces="a")
    done = order("b", CID_B, "10.02", OrderStatus.FILLED, filled="100", avg="10.015", replaces="a")
    events = [
        *replaced_chain(),
        updated(8, OrderEvent.PARTIAL_FILL, partial),
        updated(9, OrderEvent.FILL, done),
    ]
    # Neither the first 40's price nor so the last 60's is known: (1001.5 - 0) / 60 = 16.69 would be invented.
    assert fills(leg_paths(events)[0]) == [(Decimal(40), None), (Decimal(60), None)]


def test_an_update_journaled_without_its_leg_is_drawn_on_the_leg_of_its_client_order_id() -> None:
    done = order("b", CID_B, "10.02", OrderStatus.FILLED, filled="100", avg="10.02", replaces="a")
    events = [*replaced_chain(), updated(8, OrderEvent.FILL, done, fill=("100", "10.02"), leg=None)]
    assert fills(leg_paths(events)[0]) == [(Decimal(100), Decimal("10.02"))]


def test_a_replace_refused_after_acceptance_puts_the_limit_back_on_the_order_that_stays_live() -> None:
    events = [
        started(),
        *planned(),
        phase(),
        submit(1, CID_A, "10.01"),
        accepted(1, order("a", CID_A, "10.01")),
        replace(5, CID_B, "a", "10.02", attempt=1),
        accepted(5, order("b", CID_B, "10.02", OrderStatus.PENDING_NEW, replaces="a"), IntentAction.REPLACE),
        updated(6, OrderEvent.REPLACE_REJECTED, order("a", CID_A, "10.01")),
    ]
    path = leg_paths(events)[0]
    assert kinds(path)[-1] == (PathEventKind.REPLACE, Decimal("10.01"))
    assert path[-1].order_id == "a"


def _escalated_chain() -> list[RunEvent]:
    return [
        *replaced_chain(),
        LegEscalated(**_stamp(30), remaining_qty=Decimal(100), reason="deadline"),
        updated(30, OrderEvent.CANCELED, order("b", CID_B, "10.02", OrderStatus.CANCELED, replaces="a")),
        submit(30, CID_C, None, attempt=2),
        accepted(30, order("c", CID_C, None)),
        updated(
            31,
            OrderEvent.FILL,
            order("c", CID_C, None, OrderStatus.FILLED, filled="100", avg="10.05"),
            fill=("100", "10.05"),
        ),
        LegFinished(**_stamp(31), status="filled"),
        RunEnded(**_stamp(31, None), status="completed"),
    ]


def test_an_escalation_is_marked_at_the_market_fill_that_followed_it() -> None:
    report = run_report(RUN, _escalated_chain(), "j.db")
    (figure,) = run_figures(report, market_view(report, None)).values()
    by_name = {trace.name: trace for trace in figure.data}
    escalations = by_name["escalations: leg 0 buy"]
    assert list(escalations.y) == [10.05]
    assert list(by_name["fills: leg 0 buy"].y) == [10.05]
    # the limit steps 10.01 -> 10.02 and ends when the leg escalates
    assert [y for y in by_name["limit: leg 0 buy"].y if y is not None] == [10.01, 10.02, 10.02]


def test_a_fill_stamped_in_another_time_zone_is_drawn_at_its_utc_time_as_the_quotes_are() -> None:
    # plotly.js drops a time's UTC offset: a broker fill stamped 09:30:31-05:00 was drawn at 09:30:31, five hours
    # before the quotes (drawn in UTC) and the limit it filled.
    from datetime import timezone

    events = _escalated_chain()
    fill_update = events[-3]
    assert isinstance(fill_update, OrderUpdated)
    assert fill_update.update.fill is not None
    new_york = at(31).astimezone(timezone(timedelta(hours=-5)))
    moved = fill_update.update.fill.model_copy(update={"ts": new_york})
    events[-3] = fill_update.model_copy(
        update={"update": fill_update.update.model_copy(update={"fill": moved})}
    )
    report = run_report(RUN, events, "j.db")
    (figure,) = run_figures(report, market_view(report, None)).values()
    drawn = {trace["name"]: trace["x"] for trace in json.loads(figure.to_json())["data"]}
    assert [str(x)[:19] for x in drawn["fills: leg 0 buy"]] == [at(31).strftime("%Y-%m-%dT%H:%M:%S")]


def test_an_escalation_is_marked_at_the_market_fill_not_at_a_late_fill_of_the_order_it_gave_up() -> None:
    # The resting order b filled 40 at 10.02 while its cancel was pending: the mark took that passive fill's price
    # for the market fill's (10.05).
    late = updated(
        30.5,
        OrderEvent.PARTIAL_FILL,
        order("b", CID_B, "10.02", OrderStatus.PARTIALLY_FILLED, filled="40", avg="10.02", replaces="a"),
        fill=("40", "10.02"),
    )
    events = [
        *replaced_chain(),
        LegEscalated(**_stamp(30), remaining_qty=Decimal(100), reason="deadline"),
        late,
        updated(
            31,
            OrderEvent.CANCELED,
            order("b", CID_B, "10.02", OrderStatus.CANCELED, filled="40", avg="10.02", replaces="a"),
        ),
        submit(31, CID_C, None, attempt=2),
        accepted(31, order("c", CID_C, None)),
        updated(
            32,
            OrderEvent.FILL,
            order("c", CID_C, None, OrderStatus.FILLED, filled="60", avg="10.05"),
            fill=("60", "10.05"),
        ),
    ]
    report = run_report(RUN, events, "j.db")
    (figure,) = run_figures(report, market_view(report, None)).values()
    by_name = {trace.name: trace for trace in figure.data}
    assert list(by_name["fills: leg 0 buy"].y) == [10.02, 10.05]
    assert list(by_name["escalations: leg 0 buy"].y) == [10.05]


def test_run_report_rebuilds_the_result_show_prints() -> None:
    report = run_report(RUN, _escalated_chain(), "j.db")
    (leg,) = report.result.legs
    assert (report.result.status.value, leg.filled_qty, leg.escalated) == ("completed", Decimal(100), True)
    assert [record.order_id for record in report.state.legs[0].orders] == ["a", "b", "c"]


def test_the_html_quality_table_never_rounds_a_buy_scale_short_of_one_up_to_100_percent() -> None:
    # Scales are kept to 1e-6 (rounded down): 0.999999 printed "100.00%", a shortfall reported as none.
    from repeg.lab.run_report_html import quality_table

    result = run_report(RUN, _escalated_chain(), "j.db").result
    text = quality_table(result.model_copy(update={"buy_scale": Decimal("0.999999")}))
    assert "buys scaled to (buying power short)" in text
    assert "99.99%" in text
    assert "100.00%" not in text


def test_the_html_quality_table_rounds_the_notional_half_even_whatever_the_callers_decimal_context() -> None:
    # The terminal table rounds it half-even in its own context; the page used a format spec, which rounds by the
    # caller's context: a program using the API with ROUND_DOWN got $1,234.56 where `repeg show` printed $1,234.57.
    from decimal import ROUND_DOWN, localcontext

    from repeg.lab.run_report_html import quality_table

    result = run_report(RUN, _escalated_chain(), "j.db").result
    with localcontext(rounding=ROUND_DOWN):
        text = quality_table(result.model_copy(update={"notional_traded": Decimal("1234.567")}))
    assert "$1,234.57" in text


def test_run_report_refuses_a_run_without_a_start() -> None:
    with pytest.raises(ReportError, match="no run_started"):
        run_report(RUN, replaced_chain()[1:], "j.db")


# --- quotes behind the orders ----------------------------------------------------------------------------


def _quotes(path: Path, rows: list[tuple[float, str, str, str]]) -> Path:
    lines = ["ts,symbol,bid,bid_size,ask,ask_size"]
    lines += [
        f"{at(s).isoformat().replace('+00:00', 'Z')},{sym},{bid},100,{ask},100" for s, sym, bid, ask in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_without_a_quote_file_the_report_says_the_figures_show_the_orders_only() -> None:
    report = run_report(RUN, replaced_chain(), "j.db")
    view = market_view(report, None)
    assert view.series == {}
    assert view.note == NO_QUOTE_FILE
    page = render_run_html(report, view)
    assert "no quote file was named (--quotes): the figures show the orders only" in page
    assert "no quotes: orders only" in page


def test_quotes_are_cut_to_the_run_led_by_the_quote_in_force_at_its_start(tmp_path: Path) -> None:
    quotes = _quotes(
        tmp_path / "q.csv",
        [
            (-600, "AAA", "9.90", "9.92"),
            (-120, "AAA", "10.00", "10.02"),
            (3, "AAA", "10.01", "10.03"),
            (3600, "AAA", "11.00", "11.02"),
        ],
    )
    report = run_report(RUN, replaced_chain(), "j.db")
    view = market_view(report, quotes)
    series = view.series["AAA"]
    assert series.bid_units.tolist() == [100_000, 100_100]  # from the quote in force 60 s before the run
    assert view.note is None


def test_a_symbol_the_quote_file_lacks_is_named_and_drawn_without_quotes(tmp_path: Path) -> None:
    quotes = _quotes(tmp_path / "q.csv", [(0, "ZZZ", "1.00", "1.01")])
    report = run_report(RUN, replaced_chain(), "j.db")
    view = market_view(report, quotes)
    assert view.series == {}
    assert view.note is not None
    assert "has no quotes of AAA" in view.note


def _with_source(events: list[RunEvent], source: object) -> list[RunEvent]:
    first = events[0]
    assert isinstance(first, RunStarted)
    return [first.model_copy(update={"market": source}), *events[1:]]


def test_the_page_of_an_alpaca_run_names_the_quote_file_it_draws(tmp_path: Path) -> None:
    # The header names the run's feed; nothing said that the bid and ask drawn came from the file named with
    # --quotes, so they read as the feed's quotes the run priced from.
    quotes = _quotes(tmp_path / "q.csv", [(0, "AAA", "10.00", "10.02")])
    report = run_report(RUN, _with_source(replaced_chain(), AlpacaFeedSource(feed="sip")), "j.db")
    view = recorded_market_view(report, quotes)
    assert "AAA" in view.series
    assert view.note is not None
    assert str(quotes) in view.note


def test_a_run_without_a_recorded_source_and_no_quotes_shows_the_orders_only() -> None:
    view = recorded_market_view(run_report(RUN, replaced_chain(), "j.db"), None)
    assert view.series == {}
    assert view.note == NO_QUOTE_FILE


def test_an_alpaca_runs_report_names_the_feed_it_recorded_not_that_none_was_recorded() -> None:
    # Alpaca runs record their feed now: the note still said "The journal records no market data for this run",
    # under a header naming the feed the journal records.
    events = _with_source(replaced_chain(), AlpacaFeedSource(feed="sip"))
    view = recorded_market_view(run_report(RUN, events, "j.db"), None)
    assert view.series == {}
    assert view.note is not None
    assert "records no market data" not in view.note
    assert "Alpaca sip feed" in view.note
    assert view.note.endswith("the figures show the orders only.")


def test_the_recorded_quote_file_is_drawn_when_unchanged(tmp_path: Path) -> None:
    quotes = _quotes(tmp_path / "q.csv", [(0, "AAA", "10.00", "10.02")])
    events = _with_source(replaced_chain(), quote_file_source(quotes))
    view = recorded_market_view(run_report(RUN, events, "j.db"), None)
    assert view.series["AAA"].bid_units.tolist() == [100_000]
    assert view.note is None


def test_a_recorded_quote_file_this_repeg_no_longer_reads_is_not_drawn_and_the_report_still_made(
    tmp_path: Path,
) -> None:
    """A run replayed a Parquet file of naive timestamps before e08b363 refused them; its report (no --quotes)
    then raised that file's QuoteFileError and no report was made, where a recorded file gone or changed is
    left undrawn with a note."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    quotes = tmp_path / "q.parquet"
    columns = {
        "ts": pa.array([at(0).replace(tzinfo=None)], pa.timestamp("us")),
        "symbol": pa.array(["AAA"]),
        "bid": pa.array(["10.00"]),
        "bid_size": pa.array([100]),
        "ask": pa.array(["10.02"]),
        "ask_size": pa.array([100]),
    }
    pq.write_table(pa.table(columns), quotes)
    events = _with_source(replaced_chain(), quote_file_source(quotes))
    view = recorded_market_view(run_report(RUN, events, "j.db"), None)
    assert view.series == {}
    assert view.note is not None
    assert f"The quote file the run replayed, {quotes}, cannot be read now" in view.note
    assert "time zone" in view.note
    assert view.note.endswith(ORDERS_ONLY)


_SMALL_MARKET = MarketSettings(start=T0, duration_seconds=600.0, quote_interval_seconds=1.0)


def _synthetic_view(source: SyntheticSource) -> MarketView:
    return recorded_market_view(run_report(RUN, _with_source(replaced_chain(), source), "j.db"), None)


def test_a_synthetic_run_draws_its_market_rebuilt_from_the_recorded_seed_and_settings() -> None:
    source = synthetic_source(_SMALL_MARKET, ["AAA"], seed=9)
    view = _synthetic_view(source)
    tape = synthetic_market(_SMALL_MARKET, ["AAA"], seed=9).columns("AAA")
    end = int(np.searchsorted(tape.ts, to_ns(at(6) + WINDOW_PAD), side="right"))  # the run's last event + pad
    assert view.series["AAA"].bid_units.tolist() == tape.bid[:end].tolist()
    assert view.series["AAA"].ask_units.tolist() == tape.ask[:end].tolist()
    assert view.note is not None
    assert "synthetic market rebuilt from the seed (9) and settings the run recorded" in view.note


def test_a_synthetic_run_whose_report_is_drawn_says_where_its_quotes_came_from() -> None:
    report = run_report(
        RUN, _with_source(replaced_chain(), synthetic_source(_SMALL_MARKET, ["AAA"], seed=9)), "j"
    )
    page = render_run_html(report, recorded_market_view(report, None))
    assert "synthetic market rebuilt from the seed (9)" in page
    assert "orders only" not in page


@pytest.mark.parametrize(
    ("seed", "settings"),
    [
        (9, {"quote_interval_seconds": "-1"}),  # refused by the settings' own validation
        (9, {"duration_seconds": "{"}),  # not JSON
        (9, {"duration_seconds": "[" * 100_000}),  # JSON nested too deep to parse
        (9, {"no_such_setting": "1"}),
        (-1, {}),  # numpy refuses a negative seed
        (9, {"symbols": '{"AAA": {"price": "0"}}'}),
    ],
)
def test_a_tampered_synthetic_setting_is_not_drawn_and_the_note_says_why(
    seed: int, settings: dict[str, str]
) -> None:
    view = _synthetic_view(SyntheticSource(seed=seed, symbols=("AAA",), settings=settings))
    assert view.series == {}
    assert view.note is not None
    assert "cannot be rebuilt" in view.note
    assert "orders only" in view.note


def test_a_synthetic_market_of_another_generator_version_is_not_drawn_as_the_runs() -> None:
    # A journal from a repeg whose generator drew other quotes for the same seed and settings: redrawing it with
    # this generator would show another market, so the report draws the orders only and says why.
    recorded = synthetic_source(_SMALL_MARKET, ["AAA"], seed=9).model_copy(
        update={"generator_version": GENERATOR_VERSION + 1}
    )
    view = _synthetic_view(recorded)
    assert view.series == {}
    assert view.note is not None
    assert f"generator version {GENERATOR_VERSION + 1}" in view.note
    assert "orders only" in view.note
    assert "rebuilt from the seed" not in view.note


def test_a_synthetic_market_recorded_without_a_generator_version_is_drawn_as_version_one() -> None:
    # Journals written before the version was recorded were generated by version 1 (today's generator).
    settings = synthetic_source(_SMALL_MARKET, ["AAA"], seed=9).settings
    # As a journal written before the version was recorded holds it:
    stored = {"kind": "synthetic", "seed": 9, "symbols": ["AAA"], "settings": settings}
    recorded = SyntheticSource.model_validate_json(json.dumps(stored))
    assert recorded.generator_version == 1
    assert _synthetic_view(recorded).series["AAA"].bid_units.size > 0


def test_a_synthetic_market_too_large_to_rebuild_is_not_drawn_and_the_note_says_so() -> None:
    # Each symbol is within the settings' own cap (a million quotes), but a thousand of them is a billion quotes.
    names = tuple(f"S{k:04d}" for k in range(1000))
    settings = {"duration_seconds": "1000000.0", "quote_interval_seconds": "1.0"}
    view = _synthetic_view(SyntheticSource(seed=9, symbols=("AAA", *names), settings=settings))
    assert view.series == {}
    assert view.note is not None
    assert "too large to rebuild" in view.note


def test_a_named_quote_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    report = run_report(RUN, replaced_chain(), "j.db")
    with pytest.raises(QuoteFileError):
        market_view(report, tmp_path / "none.csv")


# --- HTML ------------------------------------------------------------------------------------------------


def test_symbols_that_differ_only_in_punctuation_get_distinct_figure_ids() -> None:
    assert symbol_figure_ids(["BRK.B", "BRK-B", "AAA"]) == {
        "BRK.B": "price-BRK-B",
        "BRK-B": "price-BRK-B-2",
        "AAA": "price-AAA",
    }


def test_figure_ids_stay_distinct_on_a_case_insensitive_file_system() -> None:
    # "xé" is kept as written (only ASCII is upper-cased) and sanitizes to price-x, beside X's price-X: on macOS or
    # Windows one PNG replaced the other, and the export's check saw both files there.
    ids = symbol_figure_ids(["Xé", "xé", "X"])
    assert len({fid.casefold() for fid in ids.values()}) == 3, ids


def test_run_html_escapes_text_from_the_journal() -> None:
    events = replaced_chain()
    events[0] = started(source="<img src=x onerror=alert(1)>.csv")
    page = render_run_html(
        run_report(RUN, events, "j.db"), market_view(run_report(RUN, events, "j.db"), None)
    )
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.csv" in page


def test_run_html_is_self_contained_with_a_figure_per_symbol() -> None:
    events: list[RunEvent] = [started(), *planned("AAA", 0), *planned("BBB", 1), phase()]
    report = run_report(RUN, events, "j.db")
    page = render_run_html(report, market_view(report, None))
    assert re.search(r"<script[^>]+src=", page) is None
    assert "<link" not in page
    assert re.findall(r'<div id="(fig-[^"]+)"', page) == ["fig-price-AAA", "fig-price-BBB"]


@pytest.mark.parametrize(
    ("journaled", "shown"),
    [("10.000000000", "10"), ("12.500000000", "12.5"), ("0.001", "0.001"), ("1E+2", "100")],
)
def test_quantities_are_shown_without_the_journals_trailing_zeros(journaled: str, shown: str) -> None:
    assert str(plain(Decimal(journaled))) == shown
    assert plain(Decimal(journaled)) == Decimal(journaled)


def test_a_run_without_an_end_is_unfinished_and_its_resting_limit_drawn_to_the_last_event() -> None:
    events = [*replaced_chain(), updated(9, OrderEvent.NEW, order("b", CID_B, "10.02", replaces="a"))]
    report = run_report(RUN, events, "j.db")
    assert report.result.status.value == "unfinished"
    (figure,) = run_figures(report, market_view(report, None)).values()
    limit = next(trace for trace in figure.data if trace.name == "limit: leg 0 buy")
    assert [x for x in limit.x if x is not None][-1] == at(9)


def test_the_leg_table_gives_no_time_to_fill_for_a_leg_that_did_not_fill() -> None:
    # A leg that ended incomplete never filled: the time from its first order to its end is no "time to fill"
    # (the summary's mean time to fill likewise counts filled legs only).
    partial = order("b", CID_B, "10.02", OrderStatus.PARTIALLY_FILLED, filled="40", avg="10.02", replaces="a")
    gone = order("b", CID_B, "10.02", OrderStatus.CANCELED, filled="40", avg="10.02", replaces="a")
    events = [
        *replaced_chain(),
        updated(8, OrderEvent.PARTIAL_FILL, partial, fill=("40", "10.02")),
        updated(30, OrderEvent.CANCELED, gone),
        LegFinished(**_stamp(30), status="incomplete", reason="deadline"),
        RunEnded(**_stamp(30, None), status="partial"),
    ]
    result = run_report(RUN, events, "j.db").result
    headers = re.findall(r"<th>([^<]*)</th>", legs_table(result))
    (row,) = re.findall(r"<tr>(<td.*?)</tr>", legs_table(result))
    cells = dict(zip(headers, re.findall(r"<td[^>]*>([^<]*)</td>", row), strict=True))
    assert (cells["state"], cells["filled"]) == ("incomplete", "40")
    assert cells["time to fill s"] == "–"


def test_the_leg_table_gives_the_time_to_fill_of_a_filled_leg() -> None:
    result = run_report(RUN, _escalated_chain(), "j.db").result
    assert "<td>30.0</td>" in legs_table(result)  # first order at 1 s, filled at 31 s


def test_the_quality_table_says_the_fill_rate_before_escalation_is_a_share_of_the_quantity() -> None:
    # Per share, not per leg (as `repeg show` labels it): "fill rate" alone reads as the share of legs filled.
    page = quality_table(run_report(RUN, _escalated_chain(), "j.db").result)
    assert ">fill rate before escalation (share of quantity)</td>" in page


def test_a_recorded_quote_file_that_is_now_a_pipe_is_not_read_and_the_note_says_so(tmp_path: Path) -> None:
    # A tampered (or reused) path: reading a FIFO (or /dev/zero) to hash it would block the report forever.
    quotes = _quotes(tmp_path / "q.csv", [(0, "AAA", "10.00", "10.02")])
    events = _with_source(replaced_chain(), quote_file_source(quotes))
    quotes.unlink()
    os.mkfifo(quotes)
    views: list[MarketView] = []
    worker = threading.Thread(
        target=lambda: views.append(recorded_market_view(run_report(RUN, events, "j.db"), None)), daemon=True
    )
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():  # release the blocked reader (it sees an empty pipe) before failing
        os.close(os.open(quotes, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=10)
        pytest.fail("the report blocked reading a pipe at the recorded quote file's path")
    (view,) = views
    assert view.series == {}
    assert view.note is not None
    assert "is no longer a regular file" in view.note


def test_a_recorded_quote_file_of_another_size_has_changed_and_is_not_drawn(tmp_path: Path) -> None:
    quotes = _quotes(tmp_path / "q.csv", [(0, "AAA", "10.00", "10.02")])
    events = _with_source(replaced_chain(), quote_file_source(quotes))
    size = quotes.stat().st_size
    quotes.write_text(quotes.read_text() + "\n")
    view = recorded_market_view(run_report(RUN, events, "j.db"), None)
    assert view.series == {}
    assert view.note is not None
    assert f"has changed since the run ({size + 1:,} bytes, recorded {size:,})" in view.note


def test_the_html_quality_table_never_rounds_a_fill_rate_short_of_all_up_to_100_percent() -> None:
    # 0.9999 of the quantity filled before escalation (some went to market) printed "100.0%".
    from repeg.lab.run_report_html import quality_table
    from repeg.report.quality import QualitySummary

    result = run_report(RUN, _escalated_chain(), "j.db").result
    quality = QualitySummary(fill_rate_before_escalation=Decimal("0.9999"))
    text = quality_table(result.model_copy(update={"quality": quality}))
    assert "99.9%" in text
    assert "100.0%" not in text


def test_the_html_quality_table_rounds_half_spread_saved_to_nearest_not_toward_zero() -> None:
    # 522e6a3 made every percentage round toward zero, which suits a share short of a whole but not a signed cost
    # measure: -0.0649 (paid 6.49% of a half-spread more than crossing) read "-6.4%", better than it was.
    from repeg.lab.run_report_html import quality_table
    from repeg.report.quality import QualitySummary

    result = run_report(RUN, _escalated_chain(), "j.db").result
    quality = QualitySummary(half_spread_saved=Decimal("-0.0649"))
    text = quality_table(result.model_copy(update={"quality": quality}))
    assert "-6.5%" in text
    assert "-6.4%" not in text


def test_a_symbol_whose_quotes_all_come_after_the_run_is_named_as_drawn_without_quotes(
    tmp_path: Path,
) -> None:
    # Every AAA quote of the file is an hour after the run: nothing was drawn behind its orders, and nothing said so.
    quotes = _quotes(tmp_path / "q.csv", [(3600, "AAA", "11.00", "11.02")])
    view = market_view(run_report(RUN, replaced_chain(), "j.db"), quotes)
    assert "AAA" not in view.series
    assert view.note is not None
    assert "AAA" in view.note


def test_a_quote_file_of_an_earlier_day_is_named_as_drawn_without_quotes_not_drawn_as_in_force(
    tmp_path: Path,
) -> None:
    # Every AAA quote of the file is a day before the run: its last one was drawn as the market at the fills.
    quotes = _quotes(tmp_path / "q.csv", [(-86_400, "AAA", "9.00", "9.02"), (-86_000, "AAA", "9.10", "9.12")])
    view = market_view(run_report(RUN, replaced_chain(), "j.db"), quotes)
    assert "AAA" not in view.series
    assert view.note is not None
    assert "has no quotes of AAA over the run" in view.note


def test_the_leg_table_says_why_a_leg_was_skipped_as_show_does() -> None:
    # `repeg show` prints "skipped: <reason>"; the page showed the state "skipped" and an empty error cell.
    reason = "no valid quote to bound its cost by the buying power"
    events: list[RunEvent] = [
        started(),
        *planned("AAA", 0),
        phase(),
        LegFinished(**_stamp(5), status="skipped", reason=reason),
    ]
    report = run_report(RUN, events, "j.db")
    (leg,) = report.result.legs
    assert leg.reason == reason
    assert reason in legs_table(report.result)


def test_an_escalations_submit_never_answered_is_drawn_as_sent_not_as_no_order_sent() -> None:
    # The market order's submit went out (journaled) and was never answered: the leg's error says an order under
    # its client order id may be open at the broker, while the figure's hover said "(no order sent)" (37c09c9c),
    # reading only the broker's reports.
    events = [
        *replaced_chain(),
        LegEscalated(**_stamp(30), remaining_qty=Decimal(100), reason="deadline"),
        updated(30, OrderEvent.CANCELED, order("b", CID_B, "10.02", OrderStatus.CANCELED, replaces="a")),
        submit(30, CID_C, None, attempt=2),
        LegFinished(**_stamp(60), status="incomplete"),
        RunEnded(**_stamp(60, None), status="failed"),
    ]
    report = run_report(RUN, events, "j.db")
    (leg,) = report.result.legs
    assert leg.error is not None
    assert "may be open at the broker" in leg.error
    (figure,) = run_figures(report, market_view(report, None)).values()
    (text,) = {trace.name: trace for trace in figure.data}["escalations: leg 0 buy"].text
    assert "no order sent" not in text
    assert "to market" in text


def test_an_escalations_submit_the_broker_refused_sent_no_order() -> None:
    # Refused (no order at the broker): the escalation sent none, and its hover says so.
    events = [
        *replaced_chain(),
        LegEscalated(**_stamp(30), remaining_qty=Decimal(100), reason="deadline"),
        updated(30, OrderEvent.CANCELED, order("b", CID_B, "10.02", OrderStatus.CANCELED, replaces="a")),
        submit(30, CID_C, None, attempt=2),
        OrderFailed(
            **_stamp(30),
            action=IntentAction.SUBMIT,
            client_order_id=CID_C,
            error="OrderRejectedError",
            message="no",
        ),
        LegFinished(**_stamp(30), status="failed"),
        RunEnded(**_stamp(30, None), status="failed"),
    ]
    report = run_report(RUN, events, "j.db")
    (figure,) = run_figures(report, market_view(report, None)).values()
    (text,) = {trace.name: trace for trace in figure.data}["escalations: leg 0 buy"].text
    assert "no order sent" in text
