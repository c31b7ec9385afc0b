"""Rich renderables for the terminal: the live leg table, the results table and the quality summary."""

from __future__ import annotations

from decimal import Decimal

from rich.markup import escape
from rich.table import Table

from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.run import RunState
from repeg.report.result import ExecutionResult, LegResult, went_to_escalation
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

_STATUS_STYLE: dict[LegStatus, str] = {
    LegStatus.FILLED: "green",
    LegStatus.SKIPPED: "yellow",
    LegStatus.FAILED: "bold red",
    LegStatus.INCOMPLETE: "red",
    LegStatus.PLANNED: "dim",
}


def _limit_text(price: Decimal | None) -> str:
    """A working limit as sent (every digit of its tick)."""
    return "-" if price is None else f"{price:f}"


def _leg_state_text(leg: LegState) -> str:
    style = _STATUS_STYLE.get(leg.status, "cyan")
    text = f"[{style}]{leg.status}[/]"
    return f"{text} [magenta](escalated)[/]" if went_to_escalation(leg) else text


def _leg_qty(leg: LegState) -> str:
    if leg.qty is None and leg.spec.notional is not None:
        return f"${money_text(leg.spec.notional)}"
    return qty_text(leg.qty)


def _add_column(table: Table, name: str, *, numeric: bool) -> None:
    """A numeric column is right-justified and, on a terminal too narrow for the table, wraps its digits onto a
    second line rather than cutting them at an ellipsis ("12345…" would read as another quantity or price)."""
    if numeric:
        table.add_column(name, justify="right", overflow="fold")
    else:
        table.add_column(name, justify="left")


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
        _add_column(table, name, numeric=name in {"#", "qty", "filled", "limit", "re-pegs"})
    shown = _live_rows(run.legs, max_rows)
    for leg in shown:
        table.add_row(
            str(leg.index),
            escape(leg.symbol),
            str(leg.side),
            _leg_qty(leg),
            qty_text(leg.filled_qty),
            _limit_text(leg.limit_price),
            str(leg.repegs),
            _leg_state_text(leg),
        )
    if len(shown) < len(run.legs):
        table.add_row("", f"[dim]... {len(run.legs) - len(shown)} more legs[/]", *[""] * 6)
    for skipped in run.skipped[: max(0, max_rows - len(shown))]:
        table.add_row(
            "",
            escape(skipped.symbol),
            str(skipped.side),
            skipped_text(skipped),
            "",
            "",
            "",
            "[yellow]skipped[/]",
        )
    return table


def _with_unit(value: str, unit: str = "s") -> str:
    """`value` followed by its unit; a missing value stays the missing mark alone ("- bps" read as a minus sign)."""
    return value if value == "-" else f"{value}{unit}"


def _result_state_text(leg: LegResult) -> str:
    """The leg's final state, with why it did not fill when the run knows (the error of a failed or incomplete
    leg, the reason a leg was skipped), as `run` and `show` print it; the text is the user's to read verbatim."""
    why = leg.error or leg.reason
    text = str(leg.status) if why is None else f"{leg.status}: {why}"
    return f"[{_STATUS_STYLE.get(leg.status, 'cyan')}]{escape(text)}[/]"


def results_table(result: ExecutionResult) -> Table:
    """One row per leg: requested and filled quantity, actual average fill, arrival mid, cost, re-pegs, state."""
    table = Table(title=f"run {result.run_id}: {result.status}", title_justify="left")
    numeric = {"#", "requested", "filled", "avg fill", "arrival mid", "cost bps", "re-pegs", "time"}
    headers = ("#", "symbol", "side", "requested", "filled", "avg fill", "arrival mid", "cost bps", "re-pegs")
    for name in (*headers, "escalated", "time", "state"):
        _add_column(table, name, numeric=name in numeric)
    for leg in result.legs:
        table.add_row(
            str(leg.index),
            escape(leg.symbol),
            str(leg.side),
            requested_text(leg),
            qty_text(leg.filled_qty),
            price_text(leg.avg_fill_price),
            price_text(leg.arrival_mid),
            signed_text(leg.cost_bps, 2),
            str(leg.repegs),
            "yes" if leg.escalated else "",
            _with_unit(seconds_text(leg.time_to_complete_s)),
            _result_state_text(leg),
        )
    for skipped in result.skipped:
        reason = f"[yellow]skipped: {escape(skipped.reason)}[/]"
        table.add_row("", escape(skipped.symbol), str(skipped.side), skipped_text(skipped), *[""] * 7, reason)
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
        table.add_row("buys scaled to (buying power short)", scale_text(result.buy_scale))
    table.add_row("notional traded", f"${money_text(result.notional_traded)}")
    table.add_row(
        "cost vs arrival mid (notional-weighted)", _with_unit(signed_text(quality.cost_bps, 2), " bps")
    )
    table.add_row("cost in arrival half-spreads", signed_text(quality.cost_half_spreads, 3))
    table.add_row("half-spread saved vs crossing", percent_text(quality.half_spread_saved))
    table.add_row(
        "fill rate before escalation (share of quantity)", share_text(quality.fill_rate_before_escalation)
    )
    table.add_row("mean time to fill", _with_unit(seconds_text(quality.mean_time_to_fill_s)))
    return table
