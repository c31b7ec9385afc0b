"""The report's figures, built as plotly figures from `repeg.lab.models` results (pure: no I/O).

Three figures, each addressable by a stable id (the HTML div id and the PNG file stem):

- ``price-path``: bid, ask and trade prints over the day, and for each run every order's limit price as a step
  line, its fills and its escalations. A menu switches between runs (policy x fill model).
- ``frontier``: mean cost (half-spreads) against mean time to fill, one point per policy and fill model, with the
  bootstrap intervals as error bars in both directions; the efficient points are joined.
- ``cost``: mean cost versus the arrival mid per policy with its interval, grouped by fill model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go

from repeg.lab.models import (
    BacktestResult,
    FrontierPoint,
    Interval,
    OrderTca,
    PathEvent,
    PathEventKind,
    PolicySummary,
)
from repeg.lab.report_data import MarketSeries, as_datetime64, units_to_dollars
from repeg.market.tape import to_ns

PRICE_PATH = "price-path"
FRONTIER = "frontier"
COST = "cost"
FIGURE_IDS: tuple[str, ...] = (PRICE_PATH, FRONTIER, COST)

_PRICE_SETTING = frozenset({PathEventKind.SUBMIT, PathEventKind.REPLACE})
_PRICE_ENDING = frozenset({PathEventKind.CANCEL, PathEventKind.ESCALATE, PathEventKind.END})


def run_label(run: BacktestResult) -> str:
    return f"{run.policy} / {run.fill_model.value}"


@dataclass
class Overlay:
    """Plot coordinates of one run's orders; None separates one order's limit line from the next."""

    limit_x: list[datetime | None] = field(default_factory=list)
    limit_y: list[float | None] = field(default_factory=list)
    limit_text: list[str] = field(default_factory=list)
    fill_x: list[datetime] = field(default_factory=list)
    fill_y: list[float] = field(default_factory=list)
    fill_text: list[str] = field(default_factory=list)
    esc_x: list[datetime] = field(default_factory=list)
    esc_y: list[float] = field(default_factory=list)
    esc_text: list[str] = field(default_factory=list)


def _dollars(price: Decimal) -> float:
    """A Decimal price as a plot coordinate (display only)."""
    return float(price)


def _escalation_price(path: Sequence[PathEvent], at: int, last_limit: Decimal | None) -> Decimal | None:
    """Where to mark an escalation: the fill of the order it sent, else the limit it gave up. That order is the first
    submitted after the escalation: a fill before it, or of an order the path named before it (the order given up
    filling while its cancel was pending, a replacement asked before the escalation and reported after it), is no
    fill of the escalation. A path with no submit after the escalation sent nothing."""
    later = path[at + 1 :]
    submitted = next((i for i, e in enumerate(later) if e.kind is PathEventKind.SUBMIT), None)
    if submitted is None:
        return last_limit
    named = {event.order_id for event in path[: at + 1 + submitted] if event.order_id is not None}
    for event in later[submitted:]:
        if event.kind is PathEventKind.FILL and event.price is not None and event.order_id not in named:
            return event.price
    return last_limit


def _utc(ts: datetime) -> datetime:
    """An instant in UTC, as the market series is drawn: plotly.js ignores a time's UTC offset, so a broker time
    stamped in another zone (09:30-05:00) would be drawn hours away from the quotes (at 09:30)."""
    return ts if ts.tzinfo is None else ts.astimezone(UTC)


def _escalated_to(path: Sequence[PathEvent], at: int) -> str:
    """What the escalation at `at` sent: a market order, (`escalation = "collared_limit"`) a limit within the collar,
    or nothing (no submit follows it: the order filled while its cancel was pending, or a collared limit had no valid
    quote to be priced from)."""
    sent = next((e for e in path[at + 1 :] if e.kind is PathEventKind.SUBMIT), None)
    if sent is None:
        return "(no order sent)"
    return "to market" if sent.price is None else f"to a marketable limit {sent.price}"


def _add_limit_point(overlay: Overlay, ts: datetime, price: Decimal, label: str) -> None:
    overlay.limit_x.append(_utc(ts))
    overlay.limit_y.append(_dollars(price))
    overlay.limit_text.append(label)


def _close_limit_line(overlay: Overlay, ts: datetime, price: Decimal, label: str) -> None:
    _add_limit_point(overlay, ts, price, label)
    overlay.limit_x.append(None)
    overlay.limit_y.append(None)
    overlay.limit_text.append("")


def _add_order(overlay: Overlay, order: OrderTca) -> None:
    """Append one order's limit steps, fills and escalation to the run's overlay."""
    label = f"order {order.index}: {order.side.value} {order.qty} {order.symbol}"
    add_path(overlay, label, order.path, order.deadline)


def add_path(overlay: Overlay, label: str, path: Sequence[PathEvent], end: datetime) -> None:
    """Append one order path's limit steps, fills and escalation; a limit still resting is drawn up to `end`."""
    resting: Decimal | None = None
    last_limit: Decimal | None = None  # the last limit that rested, which an escalation gave up
    for at, event in enumerate(path):
        if event.kind in _PRICE_SETTING and event.price is not None:
            _add_limit_point(overlay, event.ts, event.price, label)
            resting = last_limit = event.price
        elif event.kind in _PRICE_ENDING and resting is not None:
            _close_limit_line(overlay, event.ts, resting, label)
            resting = None
        if event.kind is PathEventKind.FILL and event.price is not None:
            overlay.fill_x.append(_utc(event.ts))
            overlay.fill_y.append(_dollars(event.price))
            overlay.fill_text.append(f"{label}<br>fill {event.qty} @ {event.price}")
        elif event.kind is PathEventKind.ESCALATE:
            price = _escalation_price(path, at, last_limit)
            if price is not None:
                overlay.esc_x.append(_utc(event.ts))
                overlay.esc_y.append(_dollars(price))
                overlay.esc_text.append(f"{label}<br>escalated {event.qty} {_escalated_to(path, at)}")
    if resting is not None:
        _close_limit_line(overlay, end, resting, label)


def order_overlay(run: BacktestResult) -> Overlay:
    overlay = Overlay()
    for order in run.orders:
        _add_order(overlay, order)
    return overlay


def _side_dollars(units: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """One side of the book for drawing: a side of 0 or less is "no quote on that side", a gap, never $0."""
    return np.where(units > 0, units_to_dollars(units), np.nan)


def market_traces(market: MarketSeries, *, with_trades: bool = True) -> list[go.Scatter]:
    """Bid and ask as step lines (a missing side is a gap) and, unless `with_trades` is False, the trade prints
    as markers."""
    q_note = "" if market.quote_stride == 1 else f" (1 in {market.quote_stride})"
    t_note = "" if market.trade_stride == 1 else f" (1 in {market.trade_stride})"
    quote_x = as_datetime64(market.quote_ts_ns)
    quotes = [
        go.Scatter(
            x=quote_x,
            y=_side_dollars(market.bid_units),
            name=f"bid{q_note}",
            mode="lines",
            line={"shape": "hv", "color": "#2b8a3e", "width": 1},
        ),
        go.Scatter(
            x=quote_x,
            y=_side_dollars(market.ask_units),
            name=f"ask{q_note}",
            mode="lines",
            line={"shape": "hv", "color": "#c92a2a", "width": 1},
        ),
    ]
    if not with_trades:
        return quotes
    trades = go.Scatter(
        x=as_datetime64(market.trade_ts_ns),
        y=units_to_dollars(market.trade_units),
        name=f"trades{t_note}",
        mode="markers",
        marker={"size": 3, "color": "#868e96"},
    )
    return [*quotes, trades]


def _overlay_traces(run: BacktestResult, visible: bool) -> list[go.Scatter]:
    return overlay_traces(order_overlay(run), run_label(run), visible)


def overlay_traces(overlay: Overlay, name: str, visible: bool = True) -> list[go.Scatter]:
    """The limit step line, fill markers and escalation markers of `overlay`, named after `name`."""
    return [
        go.Scatter(
            x=overlay.limit_x,
            y=overlay.limit_y,
            text=overlay.limit_text,
            name=f"limit: {name}",
            mode="lines",
            line={"shape": "hv", "color": "#1c7ed6", "width": 2},
            connectgaps=False,
            visible=visible,
            hovertemplate="%{text}<br>limit %{y}<extra></extra>",
        ),
        go.Scatter(
            x=overlay.fill_x,
            y=overlay.fill_y,
            text=overlay.fill_text,
            name=f"fills: {name}",
            mode="markers",
            marker={"size": 8, "symbol": "circle", "color": "#f59f00"},
            visible=visible,
            hovertemplate="%{text}<extra></extra>",
        ),
        go.Scatter(
            x=overlay.esc_x,
            y=overlay.esc_y,
            text=overlay.esc_text,
            name=f"escalations: {name}",
            mode="markers",
            marker={"size": 11, "symbol": "x", "color": "#862e9c"},
            visible=visible,
            hovertemplate="%{text}<extra></extra>",
        ),
    ]


_TRACES_PER_RUN = 3


def _run_menu(runs: Sequence[BacktestResult], n_market: int) -> list[dict[str, object]]:
    """A drop-down that shows one run's overlay at a time (the market traces stay visible)."""
    buttons: list[dict[str, object]] = []
    for chosen in range(len(runs)):
        visible = [True] * n_market
        for index in range(len(runs)):
            visible.extend([index == chosen] * _TRACES_PER_RUN)
        buttons.append(
            {"label": run_label(runs[chosen]), "method": "restyle", "args": [{"visible": visible}]}
        )
    return [
        {"buttons": buttons, "direction": "down", "x": 0.0, "xanchor": "left", "y": 1.15, "yanchor": "top"}
    ]


def price_path_figure(runs: Sequence[BacktestResult], market: MarketSeries | None) -> go.Figure:
    """Bid, ask, prints and every order's limit path, fills and escalations; one run shown at a time."""
    fig = go.Figure()
    shown_market = [] if market is None else market_traces(market)
    for trace in shown_market:
        fig.add_trace(trace)
    for index, run in enumerate(runs):
        for trace in _overlay_traces(run, visible=index == 0):
            fig.add_trace(trace)
    title = "Price path, limit prices, fills and escalations"
    if market is None:
        title += " (no market data drawn: orders only)"
    fig.update_layout(
        title={"text": title, "y": 0.97},
        xaxis_title="time (UTC)",
        yaxis_title="price ($)",
        hovermode="closest",
        margin={"t": 110},
        height=560,
    )
    menus = _run_menu(runs, len(shown_market)) if len(runs) > 1 else []
    if runs and runs[0].orders:
        menus.append(_zoom_menu(runs, market))
    fig.update_layout(updatemenus=menus)
    return fig


_ZOOM_PAD = timedelta(seconds=5)
#: Most orders offered in the zoom menu (a longer drop-down is no longer usable).
MAX_ZOOM_ORDERS = 500


def _plot_time(ts: datetime) -> str:
    """A UTC instant as plotly's naive date string (the market series is drawn as naive UTC too)."""
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _window_prices(market: MarketSeries | None, start: datetime, end: datetime) -> list[float]:
    """Lowest bid and highest ask quoted in the window (including the quote in force at its start)."""
    if market is None or len(market.quote_ts_ns) == 0:
        return []
    lo = max(int(np.searchsorted(market.quote_ts_ns, to_ns(start), side="right")) - 1, 0)
    hi = int(np.searchsorted(market.quote_ts_ns, to_ns(end), side="right"))
    bids = market.bid_units[lo:hi]
    asks = market.ask_units[lo:hi]
    quoted = np.concatenate([bids[bids > 0], asks[asks > 0]])
    return [] if quoted.size == 0 else [float(quoted.min()) / 10_000.0, float(quoted.max()) / 10_000.0]


def _order_prices(runs: Sequence[BacktestResult], index: int) -> list[float]:
    return [
        _dollars(e.price)
        for run in runs
        for o in run.orders
        if o.index == index
        for e in o.path
        if e.price is not None
    ]


def _zoom_button(
    order: OrderTca, runs: Sequence[BacktestResult], market: MarketSeries | None
) -> dict[str, object]:
    start, end = order.arrival - _ZOOM_PAD, order.deadline + _ZOOM_PAD
    prices = _window_prices(market, start, end) + _order_prices(runs, order.index)
    layout: dict[str, object] = {"xaxis.range": [_plot_time(start), _plot_time(end)]}
    if prices:
        pad = max((max(prices) - min(prices)) * 0.1, 0.01)
        layout["yaxis.range"] = [min(prices) - pad, max(prices) + pad]
    label = f"order {order.index}: {order.side.value} {order.qty} at {order.arrival:%H:%M:%S}"
    return {"label": label, "method": "relayout", "args": [layout]}


def _zoom_menu(runs: Sequence[BacktestResult], market: MarketSeries | None) -> dict[str, object]:
    """A drop-down that zooms the price path onto one order's time budget (or back to the whole day)."""
    whole = {
        "label": "whole day",
        "method": "relayout",
        "args": [{"xaxis.autorange": True, "yaxis.autorange": True}],
    }
    orders = runs[0].orders[:MAX_ZOOM_ORDERS]
    buttons = [whole] + [_zoom_button(o, runs, market) for o in orders]
    return {"buttons": buttons, "direction": "down", "x": 0.4, "xanchor": "left", "y": 1.15, "yanchor": "top"}


def _summary_points(runs: Sequence[BacktestResult]) -> dict[str, list[BacktestResult]]:
    by_model: dict[str, list[BacktestResult]] = {}
    for run in runs:
        by_model.setdefault(run.fill_model.value, []).append(run)
    return by_model


def _efficient_keys(frontier: Sequence[FrontierPoint] | None) -> set[tuple[str, str]]:
    if frontier is None:
        return set()
    return {(p.policy, p.fill_model.value) for p in frontier if p.efficient}


_MODEL_COLORS = {"paper": "#1c7ed6", "queue": "#e8590c"}


def _color(model: str) -> str:
    return _MODEL_COLORS.get(model, "#495057")


def _error_bars(intervals: Sequence[Interval]) -> dict[str, object]:
    """Asymmetric error bars from each interval's bounds around its mean."""
    return {
        "type": "data",
        "symmetric": False,
        "array": [i.high - i.mean for i in intervals],
        "arrayminus": [i.mean - i.low for i in intervals],
    }


def _frontier_line(model: str, best: Sequence[PolicySummary]) -> go.Scatter:
    return go.Scatter(
        x=[x.time_to_fill_s.mean for x in best],
        y=[x.cost_half_spreads.mean for x in best],
        mode="lines",
        line={"dash": "dot", "color": _color(model)},
        name=f"{model} efficient frontier",
    )


def frontier_figure(runs: Sequence[BacktestResult], frontier: Sequence[FrontierPoint] | None) -> go.Figure:
    """Cost against completion time per policy, with intervals; efficient points (from the compare) joined."""
    fig = go.Figure()
    efficient = _efficient_keys(frontier)
    for model, model_runs in sorted(_summary_points(runs).items()):
        s = [r.summary for r in model_runs]
        fig.add_trace(
            go.Scatter(
                x=[x.time_to_fill_s.mean for x in s],
                y=[x.cost_half_spreads.mean for x in s],
                error_x=_error_bars([x.time_to_fill_s for x in s]),
                error_y=_error_bars([x.cost_half_spreads for x in s]),
                text=[x.policy for x in s],
                mode="markers+text",
                textposition="top center",
                name=f"{model} fill model",
                marker={"size": 10, "color": _color(model)},
            )
        )
        best = sorted((x for x in s if (x.policy, model) in efficient), key=lambda x: x.time_to_fill_s.mean)
        if len(best) > 1:
            fig.add_trace(_frontier_line(model, best))
    fig.update_layout(
        title="Cost versus completion time (95% bootstrap intervals)",
        xaxis_title="mean time to fill (s)",
        yaxis_title="mean cost vs arrival mid (half-spreads)",
        height=500,
    )
    return fig


def cost_figure(runs: Sequence[BacktestResult]) -> go.Figure:
    """Mean cost per policy with its interval, one bar group per fill model."""
    fig = go.Figure()
    for model, model_runs in sorted(_summary_points(runs).items()):
        s = [r.summary for r in model_runs]
        fig.add_trace(
            go.Bar(
                x=[x.policy for x in s],
                y=[x.cost_half_spreads.mean for x in s],
                name=f"{model} fill model",
                marker={"color": _color(model)},
                error_y=_error_bars([x.cost_half_spreads for x in s]),
            )
        )
    fig.update_layout(
        title="Mean cost versus arrival mid per policy (half-spreads, 95% bootstrap intervals)",
        barmode="group",
        yaxis_title="half-spreads (positive = paid)",
        height=450,
    )
    return fig


def build_figures(
    runs: Sequence[BacktestResult], market: MarketSeries | None, frontier: Sequence[FrontierPoint] | None
) -> dict[str, go.Figure]:
    """Every figure of the report, keyed by its stable id (in `FIGURE_IDS` order)."""
    return {
        PRICE_PATH: price_path_figure(runs, market),
        FRONTIER: frontier_figure(runs, frontier),
        COST: cost_figure(runs),
    }
