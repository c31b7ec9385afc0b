"""Baskets of parent orders arriving over a trading day, each with a time budget.

A basket is either generated from a `BasketSpec` (count, size, side pattern, arrival spacing) over a session
window, or read from a CSV of arrivals (`ts,side,qty[,budget_seconds]`, `ts` ISO-8601 UTC). Generation is a pure
function of the spec, the window and the seed: the same inputs give the same basket.

Spacing `even` places arrival k at ``start + margin + k * (end - start - 2 * margin - budget) / count`` so that every
order's whole budget lies inside the session (no order is cut short by the close); `random` draws arrival times
uniformly inside the same span with the seeded generator and sorts them.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from repeg.config import MAX_SECONDS, OVER_MAX_SECONDS, Seconds
from repeg.domain.orders import Side
from repeg.domain.ticks import round_qty_down
from repeg.errors import ConfigError, PlanInputError
from repeg.lab.models import ParentOrder
from repeg.planning.parse import MAX_AMOUNT, REPEATED_COLUMN, csv_columns, csv_rows

#: The columns of an arrivals file (`budget_seconds` optional: `default_budget_seconds` where absent or empty).
ARRIVAL_COLUMNS = ("ts", "side", "qty", "budget_seconds")
BUDGET_COLUMN = "budget_seconds"
#: The most parent orders a basket holds: one arrival a second of a regular 6.5-hour session (23,400 s). A
#: larger one (a typo'd `--basket 5000000`) would run for hours; a day can hold no more arrivals a second apart.
MAX_BASKET_ORDERS = 23_400


def count_problem(count: int) -> str | None:
    """Why a basket of `count` parent orders is refused, or None."""
    if count > MAX_BASKET_ORDERS:
        return f"must be at most {MAX_BASKET_ORDERS:,} (one arrival a second of a 6.5-hour trading day)"
    return None


def qty_problem(qty: Decimal) -> str | None:
    """Why parent orders of `qty` shares could never trade, or None: the simulator refuses every order whose
    quantity is not a whole number of 0.000000001 shares (Alpaca's precision), so such a basket only ends "no
    order filled". Bounded above as a plan's quantities are."""
    if not qty.is_finite():
        return "not a finite number"
    if qty <= 0:
        return "must be greater than 0"
    if qty > MAX_AMOUNT:
        return f"must be at most {MAX_AMOUNT:,}"
    stepped = round_qty_down(qty, whole_shares=False)
    if stepped == 0:
        return "rounds to zero shares (orders trade in steps of 0.000000001 shares)"
    if stepped != qty:
        return "is finer than 0.000000001 shares, the step orders trade in"
    return None


class SidePattern(StrEnum):
    ALTERNATE = "alternate"  # buy, sell, buy, ...
    BUY = "buy"
    SELL = "sell"
    RANDOM = "random"  # seeded coin flips


class Spacing(StrEnum):
    EVEN = "even"
    RANDOM = "random"


class BasketSpec(BaseModel):
    """How to generate a basket. Defaults: the issue's 200 alternating 100-share orders, 60 s budget each."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = Field(default=200, gt=0, strict=True)  # strict: TOML `true` is not one order
    qty: Decimal = Field(default=Decimal(100), gt=0)
    sides: SidePattern = SidePattern.ALTERNATE
    spacing: Spacing = Spacing.EVEN
    budget_seconds: Seconds = Field(default=60.0, gt=0)
    #: Kept free at both ends of the session: the first arrival is this long after the open.
    margin_seconds: Seconds = Field(default=60.0, ge=0)

    @field_validator("count")
    @classmethod
    def _a_day_holds(cls, count: int) -> int:
        problem = count_problem(count)
        if problem is not None:
            raise ValueError(problem)
        return count

    @field_validator("qty")
    @classmethod
    def _tradable(cls, qty: Decimal) -> Decimal:
        problem = qty_problem(qty)
        if problem is not None:
            raise ValueError(problem)
        return qty


def _sides(spec: BasketSpec, rng: np.random.Generator) -> list[Side]:
    if spec.sides is SidePattern.ALTERNATE:
        return [Side.BUY if k % 2 == 0 else Side.SELL for k in range(spec.count)]
    if spec.sides is SidePattern.RANDOM:
        flips = rng.integers(0, 2, size=spec.count)
        return [Side.BUY if int(f) == 0 else Side.SELL for f in flips]
    return [Side(spec.sides.value)] * spec.count


def _arrivals(spec: BasketSpec, start: datetime, span_s: float, rng: np.random.Generator) -> list[datetime]:
    if spec.spacing is Spacing.EVEN:
        offsets = [k * span_s / spec.count for k in range(spec.count)]
    else:
        offsets = sorted(float(x) for x in rng.uniform(0.0, span_s, size=spec.count))
    # Whole microseconds: arrivals compare exactly with quote timestamps.
    return [start + timedelta(microseconds=round(off * 1e6)) for off in offsets]


def make_basket(
    spec: BasketSpec, symbol: str, session_start: datetime, session_end: datetime, *, seed: int
) -> tuple[ParentOrder, ...]:
    """Generate the basket over `[session_start, session_end]`; every deadline lies inside the session."""
    first = session_start + timedelta(seconds=spec.margin_seconds)
    span_s = (session_end - first).total_seconds() - spec.margin_seconds - spec.budget_seconds
    if span_s <= 0:
        raise ConfigError(
            "basket",
            f"{session_start.isoformat()}..{session_end.isoformat()}",
            f"session too short for margins of {spec.margin_seconds}s and a budget of {spec.budget_seconds}s",
        )
    rng = np.random.default_rng(seed)
    sides = _sides(spec, rng)
    arrivals = _arrivals(spec, first, span_s, rng)
    return tuple(
        ParentOrder(
            index=k, symbol=symbol, side=side, qty=spec.qty, arrival=ts, budget_seconds=spec.budget_seconds
        )
        for k, (side, ts) in enumerate(zip(sides, arrivals, strict=True))
    )


def _open_text(path: Path) -> io.TextIOBase:
    """The file as text; a leading UTF-8 BOM (a spreadsheet's "CSV UTF-8") is dropped, as plans and quotes drop it.
    Gzipped when named `.gz` in any case, as quote and trade files are."""
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return io.TextIOWrapper(path.open("rb"), encoding="utf-8-sig", newline="")


def _parse_row(
    path: Path, number: int, row: dict[str, str], default_budget: float
) -> tuple[datetime, Side, Decimal, float]:
    try:
        ts = datetime.fromisoformat(row["ts"].replace("Z", "+00:00"))
    except (KeyError, ValueError) as exc:
        raise PlanInputError(str(path), number, "ts", row.get("ts"), "not an ISO-8601 timestamp") from exc
    if ts.tzinfo is None:
        raise PlanInputError(str(path), number, "ts", row["ts"], "timestamp must carry a UTC offset or Z")
    try:
        side = Side(row.get("side", "").strip().lower())
    except ValueError as exc:
        raise PlanInputError(str(path), number, "side", row.get("side"), "must be buy or sell") from exc
    try:
        qty = Decimal(row.get("qty", "").strip())
    except InvalidOperation as exc:
        raise PlanInputError(str(path), number, "qty", row.get("qty"), "not a number") from exc
    if not qty.is_finite() or qty <= 0:
        raise PlanInputError(str(path), number, "qty", row.get("qty"), "must be positive")
    problem = qty_problem(qty)
    if problem is not None:
        raise PlanInputError(str(path), number, "qty", row.get("qty"), problem)
    budget = _parse_budget(path, number, (row.get("budget_seconds") or "").strip(), default_budget)
    return ts, side, qty, budget


def _parse_budget(path: Path, number: int, text: str, default_budget: float) -> float:
    try:
        budget = float(text) if text else default_budget
    except ValueError as exc:
        raise PlanInputError(str(path), number, "budget_seconds", text, "not a number") from exc
    if not math.isfinite(budget) or budget <= 0:
        raise PlanInputError(str(path), number, "budget_seconds", text, "must be positive seconds")
    # Bounded as --budget is; beyond, the engine's max_total_wait refused it under that key's name.
    if text and budget > MAX_SECONDS:
        raise PlanInputError(str(path), number, "budget_seconds", text, OVER_MAX_SECONDS)
    return budget


def _arrival_columns(path: Path, columns: list[str] | None, row: int) -> list[str]:
    """The header's columns, refused as a plan's are: unknown (a typo'd `budget` would leave every order the default
    budget), repeated or missing (`row`: the header's line)."""
    if columns is None:
        raise PlanInputError(str(path), None, None, None, "no arrivals")
    for column in columns:
        if column not in ARRIVAL_COLUMNS:
            expected = ", ".join(ARRIVAL_COLUMNS)
            raise PlanInputError(
                str(path), row, column, None, f"unknown column (an arrivals file has: {expected})"
            )
    for column in ARRIVAL_COLUMNS:
        if columns.count(column) > 1:
            raise PlanInputError(str(path), row, column, None, REPEATED_COLUMN)
        if column != BUDGET_COLUMN and column not in columns:
            raise PlanInputError(str(path), row, column, None, "missing column")
    return columns


def load_arrivals(
    path: Path, symbol: str, *, default_budget_seconds: float = 60.0
) -> tuple[ParentOrder, ...]:
    """Read a CSV of arrivals (`ts,side,qty[,budget_seconds]`; header row 1), sorted by arrival time. Read as a
    plan's CSV is (`repeg.planning.parse.csv_columns`, `csv_rows`): strictly, an unknown, repeated or missing
    column refused, a value past the header's columns refused, empty trailing cells and blank lines allowed."""
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh, strict=True)  # as a plan's: lenient reading turns '"5"0' into '50'
            columns = _arrival_columns(path, csv_columns(reader), reader.line_num)
            rows = [
                _parse_row(path, number, cells, default_budget_seconds)
                for number, cells in csv_rows(str(path), columns, reader)  # a value past the header refused
            ]
    except UnicodeDecodeError as exc:
        raise PlanInputError(str(path), None, None, None, f"not UTF-8 text: {exc}") from exc
    except csv.Error as exc:  # as a plan's: bad input, not an internal failure
        raise PlanInputError(str(path), reader.line_num, None, None, f"malformed CSV: {exc}") from exc
    if not rows:
        raise PlanInputError(str(path), None, None, None, "no arrivals")
    problem = count_problem(len(rows))
    if problem is not None:
        raise PlanInputError(str(path), None, None, None, f"{len(rows):,} arrivals: the basket {problem}")
    rows.sort(key=lambda r: r[0])
    return tuple(
        ParentOrder(index=k, symbol=symbol, side=side, qty=qty, arrival=ts, budget_seconds=budget)
        for k, (ts, side, qty, budget) in enumerate(rows)
    )
