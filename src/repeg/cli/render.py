"""Rich renderables for the terminal: the live leg table, the results table and the quality summary."""

from __future__ import annotations

from decimal import Decimal

from rich.table import Table

from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.run import RunState
from repeg.report.result import ExecutionResult, LegResult

_STATUS_STYLE: dict[LegStatus, str] = {
    LegStatus.FILLED: "green",
    LegStatus.SKIPPED: "yellow",
    LegStatus.FAILED: "bold red",
    LegStatus.INCOMPLETE: "red",
    LegStatus.PLANNED: "dim",
}


def fmt_qty(qty: Decimal | None) -> str:
    """A quantity without trailing zeros (12.500000000 -> 12.5); '-' for none."""
    if qty is None:
        return "-"
    text = f"{qty:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_price(price: Decimal | None) -> str:
    return "-" if price is None else f"{price:f}"


def fmt_money(amount: Decimal | None) -> str:
    return "-" if amount is None else f"{amount:,.2f}"


def _leg_state_text(leg: LegState) -> str:
    style = _STATUS_STYLE.get(leg.status, "cyan")
    text = f"[{style}]{leg.status}[/]"
    return f"{text} [magenta](escalated)[/]" if leg.escalated else text


def _leg_qty(leg: LegState) -> str:
    if leg.qty is None and leg.spec.notional is not None:
        return f"${fmt_money(leg.spec.notional)}"
    return fmt_qty(leg.qty)


#: The live view shows at most this many legs: the ones still working first, then finished ones.
LIVE_MAX_ROWS = 40


def _live_rows(legs: tuple[LegState, ...], max_rows: int) -> list[LegState]:
    """Working legs first (they are what a watcher needs), then finished ones, in plan order within each."""
    working = [leg for leg in legs if not leg.is_done]
    done = [leg for leg in legs if leg.is_done]
    return sorted((working + done)[:max_rows], key=lambda leg: leg.index)


def legs_table(run: RunState, max_rows: int = LIVE_MAX_ROWS) -> Table:
    """One row per leg: symbol, side, quantity, filled, current limit, re-pegs and state.

    Runs with more than `max_rows` legs show the working legs first and a closing row counting the rest.
    """
    phase = run.phases[-1] if run.phases else None
    filled = sum(1 for leg in run.legs if leg.status is LegStatus.FILLED)
    title = "repeg" if phase is None else f"repeg: {phase.side} phase"
    table = Table(title=f"{title}, {filled}/{len(run.legs)} legs filled", title_justify="left", expand=False)
    for name in ("#", "symbol", "side", "qty", "filled", "limit", "re-pegs", "state"):
        table.add_column(
            name, justify="right" if name in {"#", "qty", "filled", "limit", "re-pegs"} else "left"
        )
    shown = _live_rows(run.legs, max_rows)
    for leg in shown:
        table.add_row(
            str(leg.index),
            leg.symbol,
            str(leg.side),
            _leg_qty(leg),
            fmt_qty(leg.filled_qty),
            fmt_price(leg.limit_price),
            str(leg.repegs),
            _leg_state_text(leg),
        )
    if len(shown) < len(run.legs):
        table.add_row("", f"[dim]... {len(run.legs) - len(shown)} more legs[/]", *[""] * 6)
    for skipped in run.skipped[: max(0, max_rows - len(shown))]:
        table.add_row(
            "", skipped.symbol, str(skipped.side), fmt_qty(skipped.qty), "", "", "", "[yellow]skipped[/]"
        )
    return table


def _fmt_seconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def _fmt_bps(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _fmt_ratio_pct(value: Decimal | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _fmt_avg(price: Decimal | None) -> str:
    return "-" if price is None else f"{price:.4f}"


def _result_requested(leg: LegResult) -> str:
    if leg.requested_qty is None and leg.requested_notional is not None:
        return f"${fmt_money(leg.requested_notional)}"
    return fmt_qty(leg.requested_qty)


def results_table(result: ExecutionResult) -> Table:
    """One row per leg: requested and filled quantity, actual average fill, arrival mid, cost, re-pegs, state."""
    table = Table(title=f"run {result.run_id}: {result.status}", title_justify="left")
    numeric = {"#", "requested", "filled", "avg fill", "arrival mid", "cost bps", "re-pegs", "time"}
    headers = ("#", "symbol", "side", "requested", "filled", "avg fill", "arrival mid", "cost bps", "re-pegs")
    for name in (*headers, "escalated", "time", "state"):
        table.add_column(name, justify="right" if name in numeric else "left")
    for leg in result.legs:
        table.add_row(
            str(leg.index),
            leg.symbol,
            str(leg.side),
            _result_requested(leg),
            fmt_qty(leg.filled_qty),
            _fmt_avg(leg.avg_fill_price),
            _fmt_avg(leg.arrival_mid),
            _fmt_bps(leg.cost_bps),
            str(leg.repegs),
            "yes" if leg.escalated else "",
            _fmt_seconds(leg.time_to_complete_s),
            f"[{_STATUS_STYLE.get(leg.status, 'cyan')}]{leg.status}[/]",
        )
    for skipped in result.skipped:
        reason = f"[yellow]skipped: {skipped.reason}[/]"
        table.add_row("", skipped.symbol, str(skipped.side), fmt_qty(skipped.qty), *[""] * 7, reason)
    return table


def quality_table(result: ExecutionResult) -> Table:
    """The run's counts, notional and execution-quality summary."""
    quality = result.quality
    counts = result.counts
    table = Table(title="execution quality", title_justify="left", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    legs = f"{counts.filled}/{counts.total} filled, {counts.escalated} escalated"
    if counts.skipped_trades:
        legs += f", {counts.skipped_trades} trades skipped"
    table.add_row("legs", legs)
    if result.buy_scale < 1:
        scale = f"{result.buy_scale * 100:.2f}%"
        table.add_row("buys scaled to (buying power short)", scale)
    table.add_row("notional traded", f"${fmt_money(result.notional_traded)}")
    table.add_row("cost vs arrival mid (notional-weighted)", f"{_fmt_bps(quality.cost_bps)} bps")
    half = "-" if quality.cost_half_spreads is None else f"{quality.cost_half_spreads:+.3f}"
    table.add_row("cost in arrival half-spreads", half)
    table.add_row("half-spread saved vs crossing", _fmt_ratio_pct(quality.half_spread_saved))
    table.add_row("fill rate before escalation", _fmt_ratio_pct(quality.fill_rate_before_escalation))
    table.add_row("mean time to fill", _fmt_seconds(quality.mean_time_to_fill_s))
    return table
