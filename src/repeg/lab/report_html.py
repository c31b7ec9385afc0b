"""A self-contained HTML report of a backtest or comparison, and a PNG of each of its figures.

Guarantees:

- The HTML file needs no network to open: plotly.js is inlined once, each figure is a div with a stable id
  (``fig-price-path``, ``fig-frontier``, ``fig-cost``), and no external stylesheet, font or script is referenced.
- Every text taken from a result (policy names, parameters, file names) is HTML-escaped.
- The output depends only on its inputs: no wall-clock time or random id is written into it.
- PNG export renders each figure with kaleido, which drives a Chromium-family browser found on PATH (Debian's
  ``chromium``) or named by ``BROWSER_PATH``; a missing browser is a `FigureExportError`, never a silent skip.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import plotly.graph_objects as go
import plotly.io as pio
import structlog
from plotly.offline import get_plotlyjs

from repeg.errors import FigureExportError
from repeg.lab.models import (
    BacktestResult,
    CompareResult,
    Interval,
    OrderTca,
    PairedComparison,
    PolicySummary,
)
from repeg.lab.report_data import MarketSeries, ReportInput
from repeg.lab.report_figures import build_figures, run_label
from repeg.lab.stats import verdict_rule, verdict_withheld
from repeg.lab.tables import fmt_interval

log = structlog.get_logger(__name__)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #212529; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #dee2e6; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f1f3f5; } td.t { text-align: left; }
.figure { margin-bottom: 1.5rem; } .note { color: #868e96; }
"""


def figure_div_id(figure_id: str) -> str:
    return f"fig-{figure_id}"


def _fmt(value: float | None, digits: int = 3) -> str:
    """`value` to `digits` places; one that rounds to zero reads 0.000, never -0.000 (a sign it does not carry)."""
    if value is None:
        return "–"
    shown = f"{value:.{digits}f}"
    return shown[1:] if shown.startswith("-") and float(shown) == 0 else shown


def _ci(interval: Interval) -> str:
    """`mean [low, high]` to 3 places, signed as the terminal table signs them (`repeg.lab.tables.fmt_interval`):
    a mean that rounds to zero reads +0.000, a bound keeps its sign (-0.000 is an interval ending below zero, as a
    verdict's interval may)."""
    return fmt_interval(interval, 3)


def _row(cells: Sequence[str], text_cols: int = 0) -> str:
    tds = (f'<td class="t">{c}</td>' if i < text_cols else f"<td>{c}</td>" for i, c in enumerate(cells))
    return "<tr>" + "".join(tds) + "</tr>"


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], text_cols: int) -> str:
    """A table whose first `text_cols` columns are left-aligned text; cells are inserted as given (escape them)."""
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"
    body = "".join(_row(r, text_cols) for r in rows)
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


_POLICY_HEADERS = (
    "policy",
    "fill model",
    "orders",
    "completion",
    "cost bps [95% CI]",
    "cost half-spreads [95% CI]",
    "vs oracle half-spreads [95% CI]",
    "half-spread saved",
    "fill rate before escalation",
    "escalation rate",
    "time to fill s [95% CI]",
    "re-pegs (mean)",
)


def _policy_row(s: PolicySummary) -> list[str]:
    return [
        html.escape(s.policy),
        s.fill_model.value,
        str(s.n_orders),
        _fmt(s.completion_rate),
        _ci(s.cost_bps),
        _ci(s.cost_half_spreads),
        _ci(s.cost_vs_oracle_half_spreads),
        _fmt(s.half_spread_saved),
        _fmt(s.fill_rate_before_escalation),
        _fmt(s.escalation_rate),
        _ci(s.time_to_fill_s),
        _fmt(s.repegs_mean, 2),
    ]


_WEIGHTING = {
    "shares": "per share (each order weighted by its shares)",
    "orders": "per order (each order counted once, whatever its size)",
}


def weighting_note(runs: Sequence[BacktestResult]) -> str:
    """How the table's costs average over orders (`PolicySummary.cost_weighting`), and the other columns."""
    kinds = sorted({_WEIGHTING[r.summary.cost_weighting] for r in runs})
    return (
        f'<p class="note">Costs, half-spread saved and paired differences are means {" or ".join(kinds)}; '
        "the fill rate before escalation is a share of the quantity; completion, escalation rate, time to fill "
        "and re-pegs are per order.</p>"
    )


def policy_table(runs: Sequence[BacktestResult]) -> str:
    """Per policy and fill model: the TCA aggregates with their bootstrap intervals, under how they are weighted."""
    return weighting_note(runs) + html_table(
        _POLICY_HEADERS, [_policy_row(r.summary) for r in runs], text_cols=2
    )


def _verdict_cell(c: PairedComparison) -> str:
    """The verdict, or why there is none: the pair count is read from the interval, so that a result saved
    before `verdict_withheld` (or before the rule) is held to the same rule as the terminal table."""
    withheld = verdict_withheld(c.diff_half_spreads)
    return c.verdict.value if withheld is None else html.escape(withheld)


def comparison_table(compare: CompareResult) -> str:
    """Paired differences against the baseline under the rule of `repeg.lab.stats.verdict_rule`, stated above it:
    a verdict other than indistinguishable excludes zero; too few pairs give no verdict, and the cell says why."""
    rows = [
        [
            html.escape(c.policy),
            html.escape(c.baseline),
            c.fill_model.value,
            _ci(c.diff_half_spreads),
            _ci(c.diff_bps),
            _verdict_cell(c),
        ]
        for c in compare.comparisons
    ]
    headers = (
        "policy",
        "baseline",
        "fill model",
        "difference half-spreads [95% CI]",
        "difference bps [95% CI]",
        "verdict",
    )
    per: Literal["share", "order"] = (
        "share" if all(r.summary.cost_weighting == "shares" for r in compare.runs) else "order"
    )
    block = max((c.diff_half_spreads.block or 1 for c in compare.comparisons), default=1)
    stated = verdict_rule(per=per, comparisons=len(compare.comparisons), block=block)
    rule = f'<p class="note">Verdict: {html.escape(stated)}.</p>'
    return rule + html_table(headers, rows, text_cols=3)


_ORDER_HEADERS = (
    "#",
    "side",
    "symbol",
    "qty",
    "arrival",
    "filled",
    "avg price",
    "completed",
    "escalated",
    "re-pegs",
    "time to fill s",
    "cost bps",
    "cost half-spreads",
    "oracle half-spreads",
    "vs oracle",
)


def _order_row(o: OrderTca) -> list[str]:
    avg = "–" if o.avg_price is None else str(o.avg_price)
    return [
        str(o.index),
        o.side.value,
        html.escape(o.symbol),
        str(o.qty),
        o.arrival.strftime("%H:%M:%S.%f"),
        str(o.filled_qty),
        avg,
        "yes" if o.completed else "no",
        "yes" if o.escalated else "no",
        str(o.repegs),
        _fmt(o.time_to_fill_s, 2),
        _fmt(o.cost_bps, 2),
        _fmt(o.cost_half_spreads),
        _fmt(o.oracle_cost_half_spreads),
        _fmt(o.cost_vs_oracle_half_spreads),
    ]


def order_tables(runs: Sequence[BacktestResult]) -> str:
    """One collapsible per-order table per run."""
    parts = []
    for run in runs:
        table = html_table(_ORDER_HEADERS, [_order_row(o) for o in run.orders], text_cols=3)
        parts.append(
            f"<details><summary>{html.escape(run_label(run))}: {len(run.orders)} orders</summary>"
            f"{table}</details>"
        )
    return "".join(parts)


def _header(report: ReportInput) -> str:
    first = report.runs[0]
    data = first.data if report.compare is None else report.compare.data
    trades = "none" if data.trades_file is None else html.escape(data.trades_file)
    params = "".join(
        f"<li>{html.escape(run_label(r))}: {html.escape(str(dict(sorted(r.policy_params.items()))))}</li>"
        for r in report.runs
    )
    return (
        f"<h1>repeg execution-quality report: {html.escape(data.symbol)} {data.day.isoformat()}</h1>"
        f"<p>Result <code>{html.escape(report.source)}</code>, schema <code>{html.escape(first.schema_version)}"
        f"</code>, seed {first.seed}. Quotes <code>{html.escape(data.quotes_file)}</code>, trades <code>{trades}"
        f"</code>, data digest <code>{html.escape(data.digest)}</code>.</p><ul>{params}</ul>"
    )


def figure_html(figure_id: str, fig: go.Figure) -> str:
    """One figure as a div with the stable id `fig-<figure_id>`, drawn by the plotly.js the document inlines."""
    div = pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=figure_div_id(figure_id),
        config={"responsive": True, "displaylogo": False},
    )
    return f'<div class="figure">{div}</div>'


def report_figures(report: ReportInput, market: MarketSeries | None) -> dict[str, go.Figure]:
    """The report's figures by id (see `repeg.lab.report_figures.FIGURE_IDS`)."""
    frontier = None if report.compare is None else report.compare.frontier
    return build_figures(report.runs, market, frontier)


#: What the page says when no market is drawn because the result's files were not found (or lack its symbol).
FILES_NOT_AVAILABLE = (
    "The quote and trade files named by the result were not available: the price path shows the orders only."
)
#: What it says when the user asked for no market (`repeg report --no-market`): the files may well be at hand.
NO_MARKET_ASKED = "No quotes or trades are drawn (--no-market): the price path shows the orders only."


def render_html(
    report: ReportInput,
    market: MarketSeries | None,
    figures: Mapping[str, go.Figure] | None = None,
    *,
    no_market_note: str = FILES_NOT_AVAILABLE,
) -> str:
    """The whole report as one HTML document with plotly.js inlined (`figures` default: built here); without a
    `market`, `no_market_note` says why."""
    figures = report_figures(report, market) if figures is None else figures
    sections = [_header(report)]
    if market is None:
        sections.append(f'<p class="note">{html.escape(no_market_note)}</p>')
    sections.extend(figure_html(fid, fig) for fid, fig in figures.items())
    sections.append("<h2>Per policy</h2>" + policy_table(report.runs))
    if report.compare is not None and report.compare.comparisons:
        sections.append(
            f"<h2>Paired against {html.escape(report.compare.baseline)}</h2>"
            + comparison_table(report.compare)
        )
    sections.append("<h2>Per order</h2>" + order_tables(report.runs))
    return html_document(sections)


def html_document(sections: Sequence[str]) -> str:
    """A whole HTML document of `sections` with plotly.js and the stylesheet inlined: it opens without a network."""
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>repeg report</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body>\n{body}\n</body></html>\n"
    )


def write_html(
    report: ReportInput,
    market: MarketSeries | None,
    out: Path,
    figures: Mapping[str, go.Figure] | None = None,
    *,
    no_market_note: str = FILES_NOT_AVAILABLE,
) -> Path:
    out.write_text(render_html(report, market, figures, no_market_note=no_market_note), encoding="utf-8")
    log.info("report_written", path=str(out), runs=len(report.runs), market=market is not None)
    return out


def export_pngs(figures: Mapping[str, go.Figure], out_dir: Path, width: int = 1200) -> list[Path]:
    """Write `<out_dir>/<figure id>.png` for every figure in one browser session; returns the paths.

    Raises `FigureExportError` (a `ReportError`) when no Chromium-family browser can be started (install Debian's
    ``chromium`` or set ``BROWSER_PATH``) or when a PNG is not produced.
    """
    import kaleido

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{fid}.png" for fid in figures]
    # A PNG left by an earlier export would pass the check below for one this export never wrote.
    for path in paths:
        path.unlink(missing_ok=True)
    jobs = [
        {
            "fig": fig,
            "path": str(path),
            "opts": {"format": "png", "width": width, "height": fig.layout.height},
        }
        for fig, path in zip(figures.values(), paths, strict=True)
    ]
    try:
        kaleido.write_fig_from_object_sync(jobs)
    except Exception as exc:  # kaleido/choreographer raise their own untyped errors when no browser starts
        raise FigureExportError(str(out_dir), f"PNG export failed (is chromium installed?): {exc!r}") from exc
    missing = [str(p) for p in paths if not p.is_file() or p.stat().st_size == 0]
    if missing:
        raise FigureExportError(str(out_dir), f"PNG export produced no file for {missing}")
    log.info("pngs_written", out_dir=str(out_dir), count=len(paths))
    return paths


def write_report(
    report: ReportInput,
    market: MarketSeries | None,
    html_out: Path,
    png_dir: Path | None = None,
    *,
    no_market_note: str = FILES_NOT_AVAILABLE,
) -> list[Path]:
    """Write the HTML report and, when `png_dir` is given, a PNG per figure; returns every file written."""
    figures = report_figures(report, market)
    written = [write_html(report, market, html_out, figures, no_market_note=no_market_note)]
    if png_dir is not None:
        written.extend(export_pngs(figures, png_dir))
    return written
