"""Rich renderables for the terminal: the live leg table, the results table and the quality summary."""

from __future__ import annotations

from decimal import Decimal

from rich.table import Table

from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.run import RunState

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


def legs_table(run: RunState) -> Table:
    """One row per leg: symbol, side, quantity, filled, current limit, re-pegs and state."""
    phase = run.phases[-1] if run.phases else None
    title = "repeg" if phase is None else f"repeg: {phase.side} phase"
    table = Table(title=title, title_justify="left", expand=False)
    for name in ("#", "symbol", "side", "qty", "filled", "limit", "re-pegs", "state"):
        table.add_column(
            name, justify="right" if name in {"#", "qty", "filled", "limit", "re-pegs"} else "left"
        )
    for leg in run.legs:
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
    for skipped in run.skipped:
        table.add_row(
            "", skipped.symbol, str(skipped.side), fmt_qty(skipped.qty), "", "", "", "[yellow]skipped[/]"
        )
    return table
