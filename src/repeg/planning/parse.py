"""Read a plan file (a trade list or target weights, CSV or JSON) into a validated `Plan`.

Accepted shapes (column names are case-insensitive; CSV files may start with a UTF-8 BOM):

- trade list: `symbol,side,qty` or `symbol,side,notional` (both columns may be present, one value per row);
- target weights: `symbol,weight` (each in [0, 1], sum <= 1, the rest is cash).

A CSV file may end its header and rows with empty cells, as a spreadsheet saves a sheet that was once wider
(`symbol,weight,,` / `AAA,0.5,,`); a value in a cell past the named columns is refused, naming it.

JSON holds the same rows as an array of objects, either at the top level or under a single `"trades"` or
`"weights"` key. Numbers are parsed from their text straight into `Decimal` (never through float). A key
repeated in one object (in any case) is refused, as a repeated CSV column is, never silently last-wins.
A qty or notional above `MAX_AMOUNT` is refused; the weight sum is computed exactly, never rounded to 28 digits.

Every defect raises `PlanInputError(file, row, field, value, reason)` before anything is sent. Rows are
numbered as a spreadsheet shows them: in CSV the header is row 1 (blank lines before it are skipped, and
counted) and the first data row is row 2; in JSON the first object is row 1.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, Inexact, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from repeg.domain import plan as domain_plan
from repeg.domain.orders import Side
from repeg.domain.plan import (
    Plan,
    PlanKind,
    TargetWeight,
    TradeIntent,
    exact_sum,
    is_ticker,
    plain_number_text,
)
from repeg.domain.ticks import ZERO
from repeg.errors import PlanInputError

if TYPE_CHECKING:
    from _csv import Reader

SYMBOL = "symbol"
SIDE = "side"
QTY = "qty"
NOTIONAL = "notional"
WEIGHT = "weight"

TRADE_COLUMNS = frozenset({SYMBOL, SIDE, QTY, NOTIONAL})
WEIGHT_COLUMNS = frozenset({SYMBOL, WEIGHT})
#: The largest qty or notional accepted (`TradeIntent` enforces it too, for plans built in Python).
MAX_AMOUNT = domain_plan.MAX_AMOUNT
REPEATED_COLUMN = "column appears twice"


class _JsonObject(dict[str, object]):
    """A JSON object that remembers the first key it repeats, compared as column names are (trimmed, any case)."""

    repeated: str | None = None


def _json_object(pairs: list[tuple[str, object]]) -> _JsonObject:
    obj = _JsonObject()
    seen: set[str] = set()
    for key, value in pairs:
        name = key.strip().lower()
        if name in seen and obj.repeated is None:
            obj.repeated = name
        seen.add(name)
        obj[key] = value
    return obj


@dataclass(frozen=True, slots=True)
class _Row:
    """One data row: its display number and its cells by lower-case column name (text, or JSON scalars)."""

    number: int
    cells: Mapping[str, object]


def load_plan(path: Path | str) -> Plan:
    """Read and validate the plan at `path`; the format follows the suffix (`.csv` or `.json`)."""
    path = Path(path)
    source = str(path)
    if path.is_dir():
        raise PlanInputError(source, None, None, None, "a directory, not a plan file (.csv or .json)")
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".json"}:
        raise PlanInputError(source, None, None, path.suffix, "unsupported plan file type: use .csv or .json")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanInputError(source, None, None, None, f"cannot read plan file: {exc}") from exc
    return parse_csv(text, source) if suffix == ".csv" else parse_json(text, source)


def parse_csv(text: str, source: str) -> Plan:
    """Parse CSV text; `source` names the file in errors and in the resulting `Plan`."""
    reader = csv.reader(io.StringIO(text), strict=True)  # lenient reading turns '"1"5' into '15'
    try:
        columns = csv_columns(reader)
        if columns is None:
            raise PlanInputError(source, None, None, None, "empty plan: no header and no rows")
        kind = _columns_kind(source, columns, row=reader.line_num)
        rows = [_Row(number, cells) for number, cells in csv_rows(source, columns, reader)]
    except csv.Error as exc:
        raise PlanInputError(source, reader.line_num, None, None, f"malformed CSV: {exc}") from exc
    return _build(source, kind, rows)


def csv_columns(reader: Reader) -> list[str] | None:
    """The column names of a CSV file's header, its first line holding a name (blank lines before it are skipped,
    and counted: the header keeps its own row, `reader.line_num`); None for a file without one. Lower case, without
    the empty names that end it: a spreadsheet saves a sheet that was once wider as `symbol,weight,,`. An empty
    name before a named column stays, to be refused. Shared with the lab's arrivals files."""
    header = next((cells for cells in reader if any(cell.strip() for cell in cells)), None)
    if header is None:
        return None
    columns = [cell.strip().lower() for cell in header]
    while not columns[-1]:  # the header holds a name: a blank line is no header
        columns.pop()
    return columns


def csv_rows(source: str, columns: list[str], reader: Reader) -> Iterator[tuple[int, dict[str, str]]]:
    """The data rows after the header, each with its number and its cells by column name (a missing cell empty);
    blank rows are skipped. Cells past the named columns may be there only empty (`AAA,0.5,,`, as a spreadsheet
    pads a row), and a value there is refused, naming it. A row is numbered by the line it starts on (one whose
    quoted cell spans lines ends further down), as a quote file's record is. Shared with the lab's arrivals files."""
    previous = reader.line_num
    for cells in reader:
        number, previous = previous + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        extra = next((cell for cell in cells[len(columns) :] if cell.strip()), None)
        if extra is not None:
            reason = f"row has {len(cells)} cells, the header {len(columns)}"
            raise PlanInputError(source, number, None, extra, reason)
        padded = cells[: len(columns)] + [""] * (len(columns) - len(cells))
        yield number, dict(zip(columns, padded, strict=True))


def _json_number(text: str) -> Decimal | str:
    """A JSON number with a fraction or exponent, as an exact Decimal; one whose exponent is beyond Decimal's
    range stays as written, so that it is refused with its row and field as "not a number", as in a CSV."""
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


def parse_json(text: str, source: str) -> Plan:
    """Parse JSON text: an array of row objects, or `{"trades": [...]}` / `{"weights": [...]}`."""
    if not text.strip():
        raise PlanInputError(source, None, None, None, "empty plan: no rows")
    try:
        data: object = json.loads(
            text,
            parse_float=_json_number,
            parse_int=Decimal,
            parse_constant=Decimal,  # NaN/Infinity as Decimals: shown as written, refused as not finite
            object_pairs_hook=_json_object,
        )
    except json.JSONDecodeError as exc:
        # A JSON plan's rows are its objects: the fault's line is no row number, so it is told as a line.
        reason = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise PlanInputError(source, None, None, None, reason) from exc
    except RecursionError:  # arrays or objects nested beyond the parser's depth: a bad file, not a bug
        raise PlanInputError(source, None, None, None, "invalid JSON: nested too deeply") from None
    declared, items = _json_items(source, data)
    rows = _json_rows(source, items)
    first_row: dict[str, int] = {}
    for row in rows:
        for column in row.cells:
            first_row.setdefault(column, row.number)
    kind = _columns_kind(source, list(first_row), row=rows[0].number, first_row=first_row)
    if declared is not None and declared is not kind:
        raise PlanInputError(source, None, str(declared), None, f"holds {kind} rows, not {declared}")
    return _build(source, kind, rows)


def _json_rows(source: str, items: list[object]) -> list[_Row]:
    rows: list[_Row] = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise PlanInputError(source, number, None, _given(item), "each row must be a JSON object")
        if isinstance(item, _JsonObject) and item.repeated is not None:
            raise PlanInputError(source, number, item.repeated, None, REPEATED_COLUMN)
        rows.append(_Row(number, {str(key).strip().lower(): value for key, value in item.items()}))
    if not rows:
        raise PlanInputError(source, None, None, None, "empty plan: no rows")
    return rows


def _json_items(source: str, data: object) -> tuple[PlanKind | None, list[object]]:
    """The row objects, and the plan kind the wrapper key declares (None for a top-level array)."""
    if isinstance(data, _JsonObject) and data.repeated is not None:
        raise PlanInputError(source, None, data.repeated, None, REPEATED_COLUMN)
    declared: PlanKind | None = None
    if isinstance(data, dict):
        if set(data) == {"trades"} or set(data) == {"weights"}:
            declared = PlanKind(next(iter(data)))
            data = data[declared.value]
        else:
            keys = ", ".join(sorted(str(key) for key in data))
            raise PlanInputError(source, None, None, keys, 'expected an array, or one "trades"/"weights" key')
    if not isinstance(data, list):
        raise PlanInputError(source, None, None, _json_kind(data), "expected an array of row objects")
    return declared, data


def _columns_kind(
    source: str, columns: list[str], row: int, first_row: Mapping[str, int] | None = None
) -> PlanKind:
    """Decide the plan kind from its columns; refuse unknown, duplicated and missing columns.

    Errors name `row` (the header), or for a column of a JSON plan the row it first appears in (`first_row`).
    """
    is_weights = WEIGHT in columns
    kind = PlanKind.WEIGHTS if is_weights else PlanKind.TRADES
    allowed = WEIGHT_COLUMNS if is_weights else TRADE_COLUMNS
    seen: set[str] = set()
    for column in columns:
        if column not in allowed:
            expected = ", ".join(sorted(allowed))
            where = row if first_row is None else first_row[column]
            raise PlanInputError(
                source, where, column, None, f"unknown column (a {kind} plan has: {expected})"
            )
        if column in seen:
            raise PlanInputError(source, row, column, None, REPEATED_COLUMN)
        seen.add(column)
    required = [SYMBOL] if kind is PlanKind.WEIGHTS else [SYMBOL, SIDE]
    for column in required:
        if column not in seen:
            raise PlanInputError(source, row, column, None, "missing column")
    if kind is PlanKind.TRADES and not seen & {QTY, NOTIONAL}:
        raise PlanInputError(source, row, "qty", None, "missing column: a trade list needs qty or notional")
    return kind


def _build(source: str, kind: PlanKind, rows: list[_Row]) -> Plan:
    if not rows:
        raise PlanInputError(source, None, None, None, "empty plan: a header but no rows")
    first_seen: dict[str, _Row] = {}
    for row in rows:
        symbol = _symbol(source, row)
        if symbol in first_seen:
            raise _duplicate(source, row, first_seen[symbol], symbol)
        first_seen[symbol] = row
    numbers = tuple(row.number for row in rows)
    if kind is PlanKind.WEIGHTS:
        weights = tuple(_weight(source, row) for row in rows)
        _check_weight_sum(source, weights)
        return Plan(source=source, kind=kind, weights=weights, rows=numbers)
    return Plan(source=source, kind=kind, trades=tuple(_trade(source, row) for row in rows), rows=numbers)


def _duplicate(source: str, row: _Row, first: _Row, symbol: str) -> PlanInputError:
    """The refusal of `row`, naming `symbol` again: its cell as written, and the first row's spelling when it
    differs ("aapl" after "AAPL": a search for what the error shows must find the row)."""
    written, first_written = (str(r.cells[SYMBOL]).strip() for r in (row, first))
    spelling = "" if written == first_written else f", as {first_written!r}: one symbol, {symbol}"
    reason = f"duplicate symbol (first at row {first.number}{spelling})"
    return PlanInputError(source, row.number, SYMBOL, written, reason)


def _trade(source: str, row: _Row) -> TradeIntent:
    side = _side(source, row)
    qty = _optional_positive(source, row, QTY)
    notional = _optional_positive(source, row, NOTIONAL)
    if qty is not None and notional is not None:
        both = _given(row.cells[NOTIONAL])
        raise PlanInputError(source, row.number, NOTIONAL, both, "give qty or notional, not both")
    if qty is None and notional is None:
        field = QTY if QTY in row.cells else NOTIONAL
        raise PlanInputError(source, row.number, field, None, "missing value")
    return TradeIntent(symbol=_symbol(source, row), side=side, qty=qty, notional=notional)


def _weight(source: str, row: _Row) -> TargetWeight:
    weight = _decimal(source, row, WEIGHT)
    if weight is None:
        raise PlanInputError(source, row.number, WEIGHT, None, "missing value")
    if weight.is_signed() or weight > Decimal(1):  # -0 too: a sign the user wrote, as a quote file refuses it
        raise PlanInputError(
            source, row.number, WEIGHT, _given(row.cells[WEIGHT]), "weight must be within [0, 1]"
        )
    return TargetWeight(symbol=_symbol(source, row), weight=_plain(weight))


def _check_weight_sum(source: str, weights: tuple[TargetWeight, ...]) -> None:
    """Refuse a sum over 1, computed exactly: the default 28-digit context could round 1 + 1e-28 down to 1."""
    try:
        total = exact_sum(w.weight for w in weights)
    except Inexact:
        reason = "weights carry too many digits to be summed exactly"
        raise PlanInputError(source, None, WEIGHT, None, reason) from None
    if total > Decimal(1):
        raise PlanInputError(source, None, WEIGHT, str(total), "weights sum to more than 1")


def _symbol(source: str, row: _Row) -> str:
    raw = row.cells.get(SYMBOL)
    text = _text(source, row, SYMBOL, raw)
    if not text:
        raise PlanInputError(source, row.number, SYMBOL, raw, "missing value")
    # ASCII before upper-casing: "\u0131bm" (dotless i) upper-cases to IBM, a ticker the user never wrote.
    text = text.upper() if text.isascii() else text
    if not is_ticker(text):
        raise PlanInputError(source, row.number, SYMBOL, raw, "not a valid ticker symbol")
    return text


def _side(source: str, row: _Row) -> Side:
    raw = row.cells.get(SIDE)
    text = _text(source, row, SIDE, raw).lower()
    if not text:
        raise PlanInputError(source, row.number, SIDE, raw, "missing value")
    try:
        return Side(text)
    except ValueError:
        raise PlanInputError(source, row.number, SIDE, raw, "side must be buy or sell") from None


def _optional_positive(source: str, row: _Row, field: str) -> Decimal | None:
    value = _decimal(source, row, field)
    if value is not None and value <= ZERO:
        raise PlanInputError(
            source, row.number, field, _given(row.cells[field]), f"{field} must be greater than 0"
        )
    if value is not None and value > MAX_AMOUNT:
        raise PlanInputError(
            source, row.number, field, _given(row.cells[field]), f"{field} must be at most {MAX_AMOUNT:,}"
        )
    return None if value is None else _plain(value)


def _plain(value: Decimal) -> Decimal:
    """`value` in plain digits: 3e3 is kept as 3000, never sent or reported as 3E+3 (exact: it is an integer).
    Called on values already bounded (at most `MAX_AMOUNT`), so the quantize fits the default 28 digits."""
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


def _decimal(source: str, row: _Row, field: str) -> Decimal | None:
    """The cell as a finite Decimal, or None when the cell is absent or blank."""
    raw = row.cells.get(field)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, Decimal):
        value = raw
    # ASCII digits only, as in a quote file or the TOML config (`plain_number_text`)
    elif isinstance(raw, str) and plain_number_text(raw):
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            raise PlanInputError(source, row.number, field, raw, "not a number") from None
    else:
        raise PlanInputError(source, row.number, field, raw, "not a number")
    if not value.is_finite():
        raise PlanInputError(source, row.number, field, _given(raw), "not a finite number")
    return value


def _text(source: str, row: _Row, field: str, raw: object) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise PlanInputError(source, row.number, field, _given(raw), f"expected text, got {_json_kind(raw)}")
    return raw.strip()


def _given(value: object) -> object:
    """A cell's value as errors show it: a JSON number as its text (as a CSV cell is), never Python's repr."""
    return str(value) if isinstance(value, Decimal) else value


def _json_kind(raw: object) -> str:
    """What a JSON value is, in JSON's words (the parser's Python types are not the user's)."""
    if isinstance(raw, dict):
        return "a JSON object"
    if isinstance(raw, list):
        return "a JSON array"
    if isinstance(raw, bool):
        return "a boolean"
    if isinstance(raw, str):
        return "a string"
    if raw is None:
        return "null"
    return "a number" if isinstance(raw, Decimal) else type(raw).__name__
