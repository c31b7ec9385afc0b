"""The HTML report: input loading, figures' content, tables, escaping and self-containment (no browser)."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from repeg.errors import ReportError
from repeg.lab.backtest import file_digest
from repeg.lab.models import DataRef, PathEventKind, Verdict
from repeg.lab.report_data import MarketSeries, ReportInput, decimate, load_market, load_result, stride_for
from repeg.lab.report_figures import (
    FIGURE_IDS,
    build_figures,
    frontier_figure,
    market_traces,
    order_overlay,
    price_path_figure,
)
from repeg.lab.report_html import figure_div_id, render_html
from repeg.lab.report_sample import sample_compare, sample_market


@pytest.fixture(scope="module")
def market() -> MarketSeries:
    return sample_market()


@pytest.fixture(scope="module")
def compare_input(market: MarketSeries) -> ReportInput:
    compare = sample_compare(market)
    return ReportInput(source="sample.json", runs=compare.runs, compare=compare)


def test_load_result_reads_a_compare_file_with_all_its_runs(tmp_path: Path, market: MarketSeries) -> None:
    compare = sample_compare(market)
    path = tmp_path / "c.json"
    path.write_text(compare.model_dump_json())
    loaded = load_result(path)
    assert loaded.compare == compare
    assert loaded.runs == compare.runs


def test_load_result_wraps_a_single_backtest_as_one_run(tmp_path: Path, market: MarketSeries) -> None:
    run = sample_compare(market).runs[0]
    path = tmp_path / "b.json"
    path.write_text(run.model_dump_json())
    loaded = load_result(path)
    assert loaded.compare is None
    assert loaded.runs == (run,)


def test_load_result_refuses_an_unknown_schema_version(tmp_path: Path, market: MarketSeries) -> None:
    raw = json.loads(sample_compare(market).runs[0].model_dump_json())
    raw["schema_version"] = "repeg.lab/99"
    path = tmp_path / "b.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ReportError, match=r"repeg\.lab/99"):
        load_result(path)


def test_load_result_refuses_a_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("not json")
    with pytest.raises(ReportError, match="cannot read result"):
        load_result(path)


def test_stride_keeps_every_point_when_they_fit() -> None:
    assert stride_for(100, 100) == 1
    assert stride_for(101, 100) == 2
    assert stride_for(0, 100) == 1


def test_decimate_bounds_points_and_keeps_observed_quotes(market: MarketSeries) -> None:
    small = decimate(market, max_quotes=100, max_trades=100)
    assert len(small.quote_ts_ns) <= 100
    assert len(small.trade_ts_ns) <= 100
    assert small.quote_stride == 6
    assert np.array_equal(small.bid_units, market.bid_units[::6])


def test_overlay_draws_one_limit_line_per_order_separated_by_gaps(compare_input: ReportInput) -> None:
    run = compare_input.runs[0]
    overlay = order_overlay(run)
    assert overlay.limit_x.count(None) == len(run.orders)
    assert overlay.limit_y[-1] is None


def test_overlay_marks_every_fill_at_its_actual_price(compare_input: ReportInput) -> None:
    run = compare_input.runs[0]
    fills = [e for o in run.orders for e in o.path if e.kind is PathEventKind.FILL]
    overlay = order_overlay(run)
    assert overlay.fill_y == [float(e.price) for e in fills if e.price is not None]


def test_escalation_is_marked_at_the_market_fill_that_followed_it(compare_input: ReportInput) -> None:
    run = compare_input.runs[0]
    escalated = [o for o in run.orders if o.escalated]
    overlay = order_overlay(run)
    assert len(overlay.esc_y) == len(escalated)
    assert overlay.esc_y[0] == float(escalated[0].avg_price or 0)


def test_price_path_menu_shows_exactly_one_run_at_a_time(
    compare_input: ReportInput, market: MarketSeries
) -> None:
    fig = price_path_figure(compare_input.runs, market)
    buttons = fig.layout.updatemenus[0].buttons
    assert len(buttons) == len(compare_input.runs)
    for chosen, button in enumerate(buttons):
        visible = button.args[0]["visible"]
        assert visible[:3] == [True, True, True]
        assert visible[3:] == [i // 3 == chosen for i in range(3 * len(compare_input.runs))]


def test_price_path_without_market_data_says_so(compare_input: ReportInput) -> None:
    fig = price_path_figure(compare_input.runs, None)
    assert "no market data drawn" in fig.layout.title.text
    assert len(fig.data) == 3 * len(compare_input.runs)


def test_build_figures_returns_every_figure_id(compare_input: ReportInput, market: MarketSeries) -> None:
    figures = build_figures(compare_input.runs, market, None)
    assert tuple(figures) == FIGURE_IDS


def test_html_inlines_plotly_and_references_nothing_external(
    compare_input: ReportInput, market: MarketSeries
) -> None:
    page = render_html(compare_input, market)
    assert "Plotly" in page
    assert re.search(r"<script[^>]+src=", page) is None
    assert "<link" not in page
    for figure_id in FIGURE_IDS:
        assert f'id="{figure_div_id(figure_id)}"' in page


def test_html_has_a_policy_row_per_run_and_the_paired_verdicts(compare_input: ReportInput) -> None:
    page = render_html(compare_input, None)
    for run in compare_input.runs:
        assert f'<td class="t">{run.policy}</td><td class="t">{run.fill_model.value}</td>' in page
    assert "Paired against touch-then-market" in page
    # The sample's comparisons hold 8 pairs: no verdict, and the cell says why ("better" matched the rule's text).
    assert page.count("<td>no verdict: 8 paired orders, fewer than the 30 a verdict needs") == 2
    assert "were not available" in page


def test_html_escapes_policy_names(market: MarketSeries) -> None:
    compare = sample_compare(market)
    hostile = compare.runs[0].model_copy(update={"policy": "<b>evil</b>"})
    report = ReportInput(source="x.json", runs=(hostile,), compare=None)
    page = render_html(report, None)
    assert "<b>evil</b>" not in page
    assert "&lt;b&gt;evil&lt;/b&gt;" in page


def test_html_is_identical_for_identical_input(compare_input: ReportInput, market: MarketSeries) -> None:
    assert render_html(compare_input, market) == render_html(compare_input, market)


def _data_ref(quotes: str, trades: str | None) -> DataRef:
    return DataRef(
        symbol="XXX", day=date(2018, 1, 2), quotes_file=quotes, trades_file=trades, digest="0" * 64
    )


def test_load_market_is_none_when_the_quote_file_is_not_at_hand(tmp_path: Path) -> None:
    assert load_market(_data_ref("nowhere.csv", None), tmp_path) is None


def test_load_market_finds_files_beside_the_result_and_keeps_exact_units(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text(
        "ts,symbol,bid,bid_size,ask,ask_size\n"
        "2018-01-02T14:30:00.000001Z,XXX,157.01,100,157.05,200\n"
        "2018-01-02T14:30:01.000000Z,XXX,157.02,100,157.06,200\n"
    )
    (tmp_path / "t.csv").write_text(
        "ts,symbol,price,size,exchange,conditions\n2018-01-02T14:30:00.500000Z,XXX,157.03,300,N,@\n"
    )
    data = _data_ref("q.csv", "t.csv").model_copy(
        update={"digest": file_digest([tmp_path / "q.csv", tmp_path / "t.csv"])}
    )
    market = load_market(data, tmp_path)
    assert market is not None
    assert market.bid_units.tolist() == [1_570_100, 1_570_200]
    assert market.ask_units.tolist() == [1_570_500, 1_570_600]
    assert market.trade_units.tolist() == [1_570_300]


def test_frontier_error_bars_span_each_policys_interval(compare_input: ReportInput) -> None:
    fig = frontier_figure(compare_input.runs, None)
    paper = next(t for t in fig.data if t.name == "paper fill model")
    summaries = [r.summary for r in compare_input.runs if r.fill_model.value == "paper"]
    for k, s in enumerate(summaries):
        assert paper.y[k] - paper.error_y.arrayminus[k] == pytest.approx(s.cost_half_spreads.low)
        assert paper.y[k] + paper.error_y.array[k] == pytest.approx(s.cost_half_spreads.high)
        assert paper.x[k] + paper.error_x.array[k] == pytest.approx(s.time_to_fill_s.high)


def test_frontier_joins_efficient_points_only_when_the_compare_names_them(compare_input: ReportInput) -> None:
    assert compare_input.compare is not None
    joined = frontier_figure(compare_input.runs, compare_input.compare.frontier)
    plain = frontier_figure(compare_input.runs, None)
    assert {t.name for t in joined.data} - {t.name for t in plain.data} == {
        "paper efficient frontier",
        "queue efficient frontier",
    }


def test_zoom_menu_offers_the_whole_day_and_each_order_window(
    compare_input: ReportInput, market: MarketSeries
) -> None:
    fig = price_path_figure(compare_input.runs, market)
    zoom = fig.layout.updatemenus[-1].buttons
    orders = compare_input.runs[0].orders
    assert zoom[0].label == "whole day"
    assert len(zoom) == 1 + len(orders)
    first = zoom[1].args[0]
    assert first["xaxis.range"] == ["2018-01-02 14:30:05", "2018-01-02 14:31:15"]
    low, high = first["yaxis.range"]
    limits = [float(e.price) for r in compare_input.runs for e in r.orders[0].path if e.price is not None]
    assert low < min(limits)
    assert high > max(limits)


def test_a_missing_quote_side_is_a_gap_in_the_line_not_a_price_of_zero() -> None:
    # A side of 0 means "no quote on that side" (one-sided or zero quotes, as the synthetic market's invalid_rate
    # and real feeds produce): drawn at $0 it would be a spike to zero that flattens the price axis.
    ts = np.array([0, 1, 2, 3], dtype=np.int64) * 1_000_000_000
    empty = np.zeros(0, dtype=np.int64)
    series = MarketSeries(
        ts, np.array([100_000, 0, 100_100, 0]), np.array([100_200, 100_300, 0, 0]), empty, empty
    )
    bid, ask = market_traces(series, with_trades=False)
    assert [None if np.isnan(y) else float(y) for y in bid.y] == [10.0, None, 10.01, None]
    assert [None if np.isnan(y) else float(y) for y in ask.y] == [10.02, 10.03, None, None]


def _with_comparison_on(compare_input: ReportInput, pairs: int, verdict: Verdict) -> ReportInput:
    assert compare_input.compare is not None
    first = compare_input.compare.comparisons[0]
    interval = first.diff_half_spreads.model_copy(
        update={"mean": -0.8, "low": -1.2, "high": -0.4, "n": pairs}
    )
    comparison = first.model_copy(update={"diff_half_spreads": interval, "verdict": verdict})
    compare = compare_input.compare.model_copy(update={"comparisons": (comparison,)})
    return ReportInput(source="sample.json", runs=compare.runs, compare=compare)


def test_html_states_the_rule_the_paired_verdicts_follow(compare_input: ReportInput) -> None:
    # The terminal table's title states the 30-pair rule (ad13504); the HTML showed verdicts with no rule at all.
    page = render_html(_with_comparison_on(compare_input, 200, Verdict.BETTER), None)
    assert "on at least 30 paired orders" in page


def test_html_says_why_a_comparison_on_too_few_pairs_has_no_verdict(compare_input: ReportInput) -> None:
    # 4 pairs whose interval excludes zero read "indistinguishable" in the HTML, with nothing saying why: a
    # reader could take the interval [-1.2, -0.4] as a finding.
    page = render_html(_with_comparison_on(compare_input, 4, Verdict.INDISTINGUISHABLE), None)
    assert "<td>no verdict: 4 paired orders, fewer than the 30 a verdict needs" in page
    assert "<td>indistinguishable</td>" not in page


def test_html_shows_the_verdict_of_a_comparison_on_enough_pairs(compare_input: ReportInput) -> None:
    page = render_html(_with_comparison_on(compare_input, 200, Verdict.BETTER), None)
    assert "<td>better</td>" in page
    assert "no verdict:" not in page


def test_html_says_why_pairs_that_weigh_as_few_have_no_verdict(compare_input: ReportInput) -> None:
    # 200 share-weighted pairs carried by a few large orders: the rule counts them by their effective number.
    few = _with_comparison_on(compare_input, 200, Verdict.INDISTINGUISHABLE)
    assert few.compare is not None
    first = few.compare.comparisons[0]
    weighted = first.diff_half_spreads.model_copy(update={"n_eff": 4.2})
    compare = few.compare.model_copy(
        update={"comparisons": (first.model_copy(update={"diff_half_spreads": weighted}),)}
    )
    page = render_html(ReportInput(source="sample.json", runs=compare.runs, compare=compare), None)
    assert (
        "<td>no verdict: 200 paired orders weighted by their shares count as 4.2 (effective number)" in page
    )


_QUOTES = (
    "ts,symbol,bid,bid_size,ask,ask_size\n"
    "2018-01-02T14:30:00.000001Z,XXX,157.01,100,157.05,200\n"
    "2018-01-02T14:30:01.000000Z,XXX,157.02,100,157.06,200\n"
)


def test_load_market_refuses_quotes_that_are_not_the_ones_the_result_was_computed_on(tmp_path: Path) -> None:
    # The report drew whatever file now sits at the recorded name: orders and fills of one day over another
    # day's bid and ask, without a word, although the result records the digest of the quotes it read.
    (tmp_path / "q.csv").write_text(_QUOTES)
    recorded = file_digest([tmp_path / "q.csv"])
    (tmp_path / "q.csv").write_text(_QUOTES.replace("157.02,100,157.06", "150.02,100,150.06"))
    found = file_digest([tmp_path / "q.csv"])
    data = _data_ref("q.csv", None).model_copy(update={"digest": recorded})
    with pytest.raises(ReportError) as caught:
        load_market(data, tmp_path)
    assert caught.value.file == str(tmp_path / "q.csv")
    assert recorded in caught.value.reason
    assert found in caught.value.reason


def test_load_market_draws_nothing_when_the_named_trade_file_is_missing(tmp_path: Path) -> None:
    # The recorded digest covers the quotes and the trades: without the trade file the quotes cannot be checked.
    (tmp_path / "q.csv").write_text(_QUOTES)
    data = _data_ref("q.csv", "t.csv").model_copy(update={"digest": file_digest([tmp_path / "q.csv"])})
    assert load_market(data, tmp_path) is None


def test_load_market_draws_the_recorded_quotes_beside_the_result_over_a_same_named_file_in_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name as given was tried first and its digest checked alone: a different day's q.csv in the working
    # directory made the report refuse (exit 2) although the very file the result was computed on sat beside it.
    result_dir, cwd = tmp_path / "results", tmp_path / "cwd"
    result_dir.mkdir()
    cwd.mkdir()
    (result_dir / "q.csv").write_text(_QUOTES)
    (cwd / "q.csv").write_text(_QUOTES.replace("157.02,100,157.06", "150.02,100,150.06"))
    monkeypatch.chdir(cwd)
    data = _data_ref("q.csv", None).model_copy(update={"digest": file_digest([result_dir / "q.csv"])})
    market = load_market(data, result_dir)
    assert market is not None
    assert market.bid_units.tolist() == [1_570_100, 1_570_200]


def test_html_says_how_the_costs_are_averaged_over_orders(compare_input: ReportInput) -> None:
    # Costs were a plain mean over orders beside a fill rate that is a share of the quantity, and nothing said so.
    runs = tuple(
        r.model_copy(update={"summary": r.summary.model_copy(update={"cost_weighting": "shares"})})
        for r in compare_input.runs
    )
    page = render_html(ReportInput(source="s.json", runs=runs, compare=None), None)
    assert "means per share (each order weighted by its shares)" in page
    assert "fill rate before escalation is a share of the quantity" in page


def test_html_states_the_verdict_rule_with_the_weighting_the_saved_differences_have(
    compare_input: ReportInput,
) -> None:
    # A comparison saved before costs were per share (cost_weighting "orders") was drawn with the note "paired
    # differences are means per order" and, below it, a rule about "the mean difference per share".
    by_order = render_html(_with_comparison_on(compare_input, 200, Verdict.BETTER), None)
    assert "paired differences are means per order" in by_order
    assert "interval of the mean difference per order excludes 0" in by_order
    assert "per share" not in by_order


def test_load_result_refuses_a_file_that_is_not_utf8_text(tmp_path: Path) -> None:
    # `repeg report q.csv.gz --html r.html` (a data file given as the result) ended in a UnicodeDecodeError
    # traceback, exit 1, instead of naming the file as unreadable (exit 2).
    path = tmp_path / "q.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00binary")
    with pytest.raises(ReportError) as caught:
        load_result(path)
    assert caught.value.file == str(path)
    assert caught.value.reason.startswith("cannot read result: ")


def test_load_result_refuses_a_comparison_with_no_runs(tmp_path: Path, market: MarketSeries) -> None:
    # A compare file holding no runs was accepted, then drawing its header indexed runs[0]: an IndexError
    # traceback (exit 1) instead of naming the file.
    path = tmp_path / "c.json"
    empty = sample_compare(market).model_copy(update={"runs": (), "comparisons": (), "frontier": ()})
    path.write_text(empty.model_dump_json())
    with pytest.raises(ReportError) as caught:
        load_result(path)
    assert caught.value.file == str(path)
    assert "no runs" in caught.value.reason


def test_html_says_the_verdicts_are_not_corrected_for_the_comparisons_made(
    compare_input: ReportInput,
) -> None:
    # The sample compares 2 policies: the rule above the table held each verdict as if it were the only one.
    page = render_html(compare_input, None)
    assert "no correction for the 2 comparisons made" in page


def test_png_export_does_not_pass_off_a_png_left_by_an_earlier_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check that every PNG was written looked only for a non-empty file: one left in the directory by an earlier
    # report passed for this report's figure when the export wrote nothing.
    import kaleido

    from repeg.lab.report_html import export_pngs

    figures = build_figures(sample_compare().runs, None, None)
    out = tmp_path / "png"
    out.mkdir()
    for figure_id in figures:
        (out / f"{figure_id}.png").write_bytes(b"an earlier report's figure")
    monkeypatch.setattr(kaleido, "write_fig_from_object_sync", lambda jobs: None)
    with pytest.raises(ReportError, match="produced no file"):
        export_pngs(figures, out)


def test_a_backtest_escalation_is_marked_at_the_market_fill_not_at_a_late_passive_fill() -> None:
    # A backtest path names no order at its submit: the resting order's fill while its cancel was pending (after
    # the escalation, before the market order went out) was taken for the market fill, and marked at 10.00.
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from repeg.lab.models import PathEvent
    from repeg.lab.report_figures import Overlay, add_path

    t0 = datetime(2018, 1, 2, 15, 0, tzinfo=UTC)

    def at(seconds: int, kind: PathEventKind, **fields: object) -> PathEvent:
        return PathEvent.model_validate({"ts": t0 + timedelta(seconds=seconds), "kind": kind, **fields})

    path = [
        at(0, PathEventKind.SUBMIT, price=Decimal("10.00"), qty=Decimal(100)),
        at(60, PathEventKind.ESCALATE, qty=Decimal(100)),
        at(60, PathEventKind.CANCEL, order_id="o1"),
        at(60, PathEventKind.FILL, price=Decimal("10.00"), qty=Decimal(40), order_id="o1"),
        at(61, PathEventKind.SUBMIT, qty=Decimal(60)),
        at(61, PathEventKind.FILL, price=Decimal("10.05"), qty=Decimal(60), order_id="o2"),
    ]
    overlay = Overlay()
    add_path(overlay, "order 0", path, t0 + timedelta(seconds=120))
    assert overlay.fill_y == [10.00, 10.05]
    assert overlay.esc_y == [10.05]


def test_an_escalation_to_a_collared_limit_is_not_labelled_as_one_to_market() -> None:
    # `escalation = "collared_limit"` sends the remainder as a marketable limit within the collar: the hover said "to market".
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from repeg.lab.models import PathEvent
    from repeg.lab.report_figures import Overlay, add_path

    t0 = datetime(2018, 1, 2, 15, 0, tzinfo=UTC)
    path = [
        PathEvent(ts=t0, kind=PathEventKind.SUBMIT, price=Decimal("10.00"), qty=Decimal(100), order_id="o1"),
        PathEvent(ts=t0 + timedelta(seconds=60), kind=PathEventKind.ESCALATE, qty=Decimal(100)),
        PathEvent(ts=t0 + timedelta(seconds=60), kind=PathEventKind.CANCEL, order_id="o1"),
        PathEvent(
            ts=t0 + timedelta(seconds=61), kind=PathEventKind.SUBMIT, price=Decimal("10.07"), order_id="o2"
        ),
        PathEvent(
            ts=t0 + timedelta(seconds=61),
            kind=PathEventKind.FILL,
            price=Decimal("10.05"),
            qty=Decimal(100),
            order_id="o2",
        ),
    ]
    overlay = Overlay()
    add_path(overlay, "order 0", path, t0 + timedelta(seconds=120))
    (text,) = overlay.esc_text
    assert "to market" not in text
    assert "limit 10.07" in text


def test_an_escalation_that_sent_no_order_is_not_labelled_as_one_to_market() -> None:
    # `collared_limit` with no valid quote sends nothing (and neither does an escalation whose order filled while
    # its cancel was pending): the hover said "to market", for an order that never existed.
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from repeg.lab.models import PathEvent
    from repeg.lab.report_figures import Overlay, add_path

    t0 = datetime(2018, 1, 2, 15, 0, tzinfo=UTC)
    # Here the leg's replacement, asked before the escalation, is first reported after it and fills at its limit.
    path = [
        PathEvent(ts=t0, kind=PathEventKind.SUBMIT, price=Decimal("10.00"), qty=Decimal(100), order_id="o1"),
        PathEvent(ts=t0 + timedelta(seconds=60), kind=PathEventKind.ESCALATE, qty=Decimal(100)),
        PathEvent(
            ts=t0 + timedelta(seconds=60), kind=PathEventKind.REPLACE, price=Decimal("10.03"), order_id="o2"
        ),
        PathEvent(
            ts=t0 + timedelta(seconds=61),
            kind=PathEventKind.FILL,
            price=Decimal("10.03"),
            qty=Decimal(100),
            order_id="o2",
        ),
        PathEvent(ts=t0 + timedelta(seconds=61), kind=PathEventKind.END),
    ]
    overlay = Overlay()
    add_path(overlay, "order 0", path, t0 + timedelta(seconds=120))
    (text,) = overlay.esc_text
    assert "market" not in text
    assert "no order sent" in text
    assert overlay.esc_y == [10.00]  # the limit it gave up, not the replacement's passive fill


def test_the_policy_table_never_shows_a_figure_that_rounds_to_zero_as_minus_zero(
    compare_input: ReportInput,
) -> None:
    # A half-spread saved of -0.0001 read "-0.000", a cost of -0.0004 "-0.000 [...]": a sign the figure does not
    # carry at the precision shown (the run report's tables read +0 / 0.0% there).
    from repeg.lab.report_html import policy_table

    run = compare_input.runs[0]
    summary = run.summary.model_copy(
        update={
            "half_spread_saved": -0.0001,
            "cost_half_spreads": run.summary.cost_half_spreads.model_copy(update={"mean": -0.0004}),
        }
    )
    table = policy_table([run.model_copy(update={"summary": summary})])
    assert "-0.000" not in table


def test_a_paired_interval_just_below_zero_keeps_its_sign_beside_its_verdict(
    compare_input: ReportInput,
) -> None:
    # A difference whose interval ends at -0.0004 excludes zero: verdict better. Its bound read "0.000" (1f456bb9
    # dropped the sign of any figure rounding to zero), an interval apparently reaching zero beside a verdict the
    # page's own rule says excludes it; the terminal table reads "-0.00" there, as docs/EXECUTION_QUALITY.md shows.
    from repeg.lab.models import Interval
    from repeg.lab.report_html import comparison_table

    assert compare_input.compare is not None
    first = compare_input.compare.comparisons[0]
    diff = Interval(mean=-0.13, low=-0.27, high=-0.0004, n=200)
    better = first.model_copy(update={"diff_half_spreads": diff, "verdict": Verdict.BETTER})
    table = comparison_table(compare_input.compare.model_copy(update={"comparisons": (better,)}))
    assert "-0.130 [-0.270, -0.000]" in table
    assert ">better<" in table


def test_an_interval_cell_signs_its_mean_as_its_bounds_as_the_terminal_table_does(
    compare_input: ReportInput,
) -> None:
    # An interval just below zero read "0.000 [-0.000, -0.000]": its mean unsigned (1f456bb9) beside bounds that
    # keep their sign (1b1269c8), and positive figures unsigned where the terminal table reads "+0.00 [-0.00, -0.00]"
    # and "+0.50 [-0.25, +1.00]". The cell is now that table's fmt_interval, to 3 places.
    from repeg.lab.models import Interval
    from repeg.lab.report_html import comparison_table

    assert compare_input.compare is not None
    first = compare_input.compare.comparisons[0]
    just_below = Interval(mean=-0.0002, low=-0.0004, high=-0.0001, n=200)
    across = Interval(mean=0.5, low=-0.25, high=1.0, n=200)
    both = first.model_copy(update={"diff_half_spreads": just_below, "diff_bps": across})
    table = comparison_table(compare_input.compare.model_copy(update={"comparisons": (both,)}))
    assert "<td>+0.000 [-0.000, -0.000]</td>" in table
    assert "<td>+0.500 [-0.250, +1.000]</td>" in table
