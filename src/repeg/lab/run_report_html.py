"""A self-contained HTML report of a journaled run (`repeg report RUN_ID`), built from the backtest report's parts.

The same guarantees as `repeg.lab.report_html`, whose document, table and figure helpers it uses: plotly.js is
inlined and nothing external is referenced; every text taken from the journal (symbols, plan file, errors,
reasons) is HTML-escaped; the output depends only on the journal and the quote file.

Contents: a header (run, status, journal, plan, broker), the quality summary, the per-leg table (the same result
`repeg show` prints), skipped trades, each leg's order chain, and one figure per symbol (div id
``fig-price-<SYMBOL>``, PNG ``price-<SYMBOL>.png``) drawing every leg's resting limit price as a step line, its
fills at their actual prices and its escalations, over the bid and ask of a quote file: the one the user names, or
the one the run recorded (`RunStarted.market`) when it is still there with the same SHA-256, or the synthetic market
a run recorded, generated again from its seed and settings; otherwise the report says why the figures show the
orders only.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go
import structlog

from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.order_record import OrderRecord
from repeg.lab.report_data import MarketSeries
from repeg.lab.report_figures import Overlay, add_path, market_traces, overlay_traces
from repeg.lab.report_html import export_pngs, figure_html, html_document, html_table
from repeg.lab.run_report import MarketView, RunReport
from repeg.report.result import ExecutionResult, LegResult
from repeg.report.text import (
    money_text,
    percent_text,
    price_text,
    qty_text,
    requested_text,
    scale_text,
    seconds_text,
    share_text,
    signed_text,
    skipped_text,
)

log = structlog.get_logger(__name__)

_SAFE_ID = re.compile(r"[^A-Za-z0-9]+")


#: A missing value in the report's tables.
_NONE = "–"


_LEG_HEADERS = (
    "#",
    "symbol",
    "side",
    "state",
    "requested",
    "filled",
    "avg fill",
    "arrival mid",
    "cost bps",
    "re-pegs",
    "escalated",
    "time to fill s",
    "orders",
    "error or reason",
)


def _leg_row(leg: LegResult) -> list[str]:
    return [
        str(leg.index),
        html.escape(leg.symbol),
        leg.side.value,
        leg.status.value,
        requested_text(leg, _NONE),
        qty_text(leg.filled_qty, _NONE),
        price_text(leg.avg_fill_price, _NONE),
        price_text(leg.arrival_mid, _NONE),
        signed_text(leg.cost_bps, 2, _NONE),
        str(leg.repegs),
        "yes" if leg.escalated else "no",
        seconds_text(_time_to_fill(leg), _NONE),
        str(len(leg.order_ids)),
        html.escape(leg.error or leg.reason or ""),  # why it did not fill, as `repeg show` says it
    ]


def _time_to_fill(leg: LegResult) -> float | None:
    """The leg's time to complete when it filled; a leg that ended otherwise has no time to fill (as the summary's
    mean time to fill counts filled legs only)."""
    return leg.time_to_complete_s if leg.status is LegStatus.FILLED else None


def legs_table(result: ExecutionResult) -> str:
    """One row per leg: the result `repeg show` prints (actual fills, cost against the arrival mid)."""
    return html_table(_LEG_HEADERS, [_leg_row(leg) for leg in result.legs], text_cols=4)


def skipped_table(result: ExecutionResult) -> str:
    rows = [
        [html.escape(s.symbol), s.side.value, skipped_text(s, _NONE), html.escape(s.reason)]
        for s in result.skipped
    ]
    return html_table(("symbol", "side", "qty", "reason"), rows, text_cols=2)


def quality_table(result: ExecutionResult) -> str:
    """The run's counts, notional and execution-quality summary (the measures `repeg show` prints)."""
    counts, quality = result.counts, result.quality
    legs = f"{counts.filled}/{counts.total} filled, {counts.escalated} escalated"
    if counts.skipped_trades:
        legs += f", {counts.skipped_trades} trades skipped"
    rows = [["legs", legs]]
    if result.buy_scale < 1:
        rows.append(["buys scaled to (buying power short)", scale_text(result.buy_scale)])
    rows += [
        ["notional traded", f"${money_text(result.notional_traded)}"],
        ["cost vs arrival mid (notional-weighted), bps", signed_text(quality.cost_bps, 2, _NONE)],
        ["cost in arrival half-spreads", signed_text(quality.cost_half_spreads, 3, _NONE)],
        ["half-spread saved vs crossing", percent_text(quality.half_spread_saved, _NONE)],
        [
            "fill rate before escalation (share of quantity)",
            share_text(quality.fill_rate_before_escalation, _NONE),
        ],
        ["mean time to fill s", seconds_text(quality.mean_time_to_fill_s, _NONE)],
    ]
    return html_table(("measure", "value"), rows, text_cols=1)


_CHAIN_HEADERS = (
    "attempt",
    "client order id",
    "broker order id",
    "replaces",
    "type",
    "status",
    "qty",
    "limit",
    "filled",
    "avg price",
    "after escalation",
)


def _chain_row(record: OrderRecord) -> list[str]:
    return [
        str(record.attempt),
        html.escape(record.client_order_id),
        html.escape(record.order_id or "–"),
        html.escape(record.replaces or ""),
        "–" if record.order_type is None else record.order_type.value,
        "–" if record.status is None else record.status.value,
        qty_text(record.qty, _NONE),
        price_text(record.limit_price, _NONE),
        qty_text(record.filled_qty, _NONE),
        price_text(record.avg_price, _NONE),
        "yes" if record.escalation else "no",
    ]


def chain_tables(legs: Sequence[LegState]) -> str:
    """One collapsible table per leg: every broker order of its chain as the journal knows it."""
    parts = []
    for leg in legs:
        table = html_table(_CHAIN_HEADERS, [_chain_row(r) for r in leg.orders], text_cols=6)
        summary = f"leg {leg.index}: {leg.side.value} {html.escape(leg.symbol)}, {len(leg.orders)} orders"
        parts.append(f"<details><summary>{summary}</summary>{table}</details>")
    return "".join(parts)


def symbol_figure_ids(symbols: Sequence[str]) -> dict[str, str]:
    """A distinct figure id per symbol, `price-<symbol>` with anything but letters and digits as '-'; distinct
    regardless of case too, since each names a PNG file and a case-insensitive file system (macOS, Windows) would
    write two ids that differ only by case to one file."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for symbol in symbols:
        base = f"price-{_SAFE_ID.sub('-', symbol).strip('-') or 'symbol'}"
        candidate, n = base, 2
        while candidate.casefold() in taken:
            candidate, n = f"{base}-{n}", n + 1
        ids[symbol] = candidate
        taken.add(candidate.casefold())
    return ids


def _leg_overlay(report: RunReport, leg: LegState) -> Overlay:
    overlay = Overlay()
    label = f"leg {leg.index}: {leg.side.value} {_requested_of(leg)} {leg.symbol}"
    add_path(overlay, label, report.paths.get(leg.index, ()), leg.completed_at or report.last_ts)
    return overlay


def _requested_of(leg: LegState) -> str:
    if leg.qty is None and leg.spec.notional is not None:
        return f"${money_text(leg.spec.notional)}"
    return qty_text(leg.qty, _NONE)


def symbol_figure(report: RunReport, symbol: str, market: MarketSeries | None) -> go.Figure:
    """Every leg of `symbol`: resting limits, fills and escalations, over the quotes when there are any."""
    fig = go.Figure()
    if market is not None:
        for trace in market_traces(market, with_trades=False):
            fig.add_trace(trace)
    for leg in report.state.legs:
        if leg.symbol == symbol:
            name = f"leg {leg.index} {leg.side.value}"
            for trace in overlay_traces(_leg_overlay(report, leg), name):
                fig.add_trace(trace)
    title = f"{symbol}: limit prices, fills and escalations"
    if market is None:
        title += " (no quotes: orders only)"
    fig.update_layout(
        title={"text": title},
        xaxis_title="time (UTC)",
        yaxis_title="price ($)",
        hovermode="closest",
        height=480,
    )
    return fig


def run_figures(report: RunReport, markets: MarketView) -> dict[str, go.Figure]:
    """One figure per symbol of the run's legs, in the order the legs were planned, keyed by figure id."""
    symbols = list(dict.fromkeys(leg.symbol for leg in report.state.legs))
    ids = symbol_figure_ids(symbols)
    return {ids[s]: symbol_figure(report, s, markets.series.get(s)) for s in symbols}


def _header(report: RunReport) -> str:
    result, started = report.result, report.started
    market = "not recorded" if started.market is None else started.market.describe()
    ended = "–" if result.ended_at is None else result.ended_at.isoformat()
    begun = "–" if result.started_at is None else result.started_at.isoformat()
    return (
        f"<h1>repeg run report: {html.escape(report.run_id)}</h1>"
        f"<p>Status <b>{result.status.value}</b>. Journal <code>{html.escape(report.journal)}</code>, plan "
        f"<code>{html.escape(started.plan.source)}</code>, broker <code>{html.escape(started.broker)}</code>, "
        f"repeg {html.escape(started.code_version)}. Started {begun}, ended {ended} (UTC).</p>"
        f"<p>Market data: {html.escape(market)}.</p>"
    )


def render_run_html(
    report: RunReport, markets: MarketView, figures: Mapping[str, go.Figure] | None = None
) -> str:
    """The whole report of a journaled run as one HTML document (`figures` default: built here)."""
    figures = run_figures(report, markets) if figures is None else figures
    sections = [_header(report), "<h2>Execution quality</h2>" + quality_table(report.result)]
    sections.append("<h2>Per leg</h2>" + legs_table(report.result))
    if report.result.skipped:
        sections.append("<h2>Skipped trades</h2>" + skipped_table(report.result))
    sections.append("<h2>Orders over time</h2>")
    if markets.note is not None:
        sections.append(f'<p class="note">{html.escape(markets.note)}</p>')
    sections.extend(figure_html(fid, fig) for fid, fig in figures.items())
    sections.append("<h2>Order chains</h2>" + chain_tables(report.state.legs))
    return html_document(sections)


def write_run_report(
    report: RunReport, markets: MarketView, html_out: Path, png_dir: Path | None = None
) -> list[Path]:
    """Write the HTML report and, when `png_dir` is given, a PNG per figure; returns every file written."""
    figures = run_figures(report, markets)
    html_out.write_text(render_run_html(report, markets, figures), encoding="utf-8")
    log.info("run_report_written", run_id=report.run_id, path=str(html_out), figures=len(figures))
    written = [html_out]
    if png_dir is not None:
        written.extend(export_pngs(figures, png_dir))
    return written
