"""Readers of our normalized quote and trade files (CSV, CSV.gz, Parquet) into columnar tapes.

Quotes: `ts,symbol,bid,bid_size,ask,ask_size`; trades: `ts,symbol,price,size` (further columns are ignored, but
for a trade file's optional `conditions`: a print with a non-regular sale condition is dropped, see
`repeg.market.sale_conditions`).
`ts` is ISO-8601 UTC with a `Z` (or `+00:00`), or in Parquet a timestamp with a time zone (never one without:
it may be local time); prices are dollars on the $0.0001 grid (at most four decimals but for trailing zeros);
sizes are whole shares. Prices are parsed from their text straight into integer $0.0001 units, never through a
float, so a price read is exactly the price written (a Parquet float column is taken where each float is a
$0.0001 price's: a float64, or one within $1e-9 of it but $0, or a float32 below $1,024, where each such price has a
float32 of its own). All parsing is vectorised. A plain, valid CSV file is read and parsed with numpy alone
(`repeg.market.text_columns`); anything else, including every file with a defect, is read by pyarrow, and parsed
with pyarrow.compute where numpy declines, which words every error. pyarrow and
pyarrow.compute are imported only when needed: together they cost about 80 ms of a process's start-up.

Every defect raises `QuoteFileError(file, row, reason)`; `row` is, in a CSV file, the line an editor shows (the
header is row 1 and blank lines count, as in a plan), in a Parquet file the record, from 1.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import structlog
from numpy.typing import NDArray

from repeg.errors import QuoteFileError
from repeg.market import text_columns
from repeg.market.csv_records import csv_header, misshapen_record, rows_as_lines
from repeg.market.file_symbols import as_planned
from repeg.market.price_units import UNITS_PER_DOLLAR, snap_to_units
from repeg.market.sale_conditions import is_excluded
from repeg.market.tape import Int64Array, QuoteTape, SymbolQuotes, SymbolTrades, TradeTape
from repeg.market.text_columns import TextColumn

if TYPE_CHECKING:
    import pyarrow as pa

QUOTE_COLUMNS = ("ts", "symbol", "bid", "bid_size", "ask", "ask_size")
TRADE_COLUMNS = ("ts", "symbol", "price", "size")
#: The optional trade column of sale-condition codes (`repeg.market.sale_conditions`).
CONDITIONS_COLUMN = "conditions"
_PRICE_TEXT = r"^[0-9]{1,9}(\.[0-9]{0,4})?$"
_SIZE_TEXT = r"^[0-9]{1,15}$"
_TS_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|\+00:00)$"
#: Prices are below $1e9: at most 9 whole-dollar digits, as the text rule above says.
_DOLLAR_LIMIT = 1_000_000_000
#: Largest error tolerated when a Parquet float price is snapped to $0.0001 units (a float's own noise): $1e-9,
#: eight float64 spacings below $1,048,576 (ticks times 0.0001 land a spacing off), a 100,000th of the grid.
_FLOAT_UNIT_TOLERANCE = 1e-5
_INT64_MAX = int(np.iinfo(np.int64).max)

_T = TypeVar("_T")
#: Times, the price and size columns by name, and each row's symbol code with the symbols' names.
_Parsed = tuple[Int64Array, dict[str, Int64Array], tuple[Int64Array, list[str]]]

log = structlog.get_logger(__name__)


def load_quotes(path: Path | str) -> QuoteTape:
    """Read a quote file into a `QuoteTape` (one column set per symbol, each sorted by time)."""
    with rows_as_lines(Path(path)):
        ts, cols, groups = _load(Path(path), QUOTE_COLUMNS, ("bid", "ask"), ("bid_size", "ask_size"))
    return QuoteTape(
        SymbolQuotes(
            symbol=sym,
            ts=ts[rows],
            bid=cols["bid"][rows],
            bid_size=cols["bid_size"][rows],
            ask=cols["ask"][rows],
            ask_size=cols["ask_size"][rows],
        )
        for sym, rows in groups.items()
    )


def load_trades(path: Path | str) -> TradeTape:
    """Read a trade-print file into a `TradeTape` (every print at a positive price), without the prints whose
    `conditions` (when the file has that column) mark them as not executed at the market of the moment."""
    with rows_as_lines(Path(path)):
        ts, cols, groups = _load(Path(path), TRADE_COLUMNS, ("price",), ("size",))
        price = cols["price"]
        if int(price.min()) <= 0:  # 0 is "no quote" on a quote side, but a print at $0 is no print
            row = int(np.argmin(price > 0))
            raise QuoteFileError(
                str(path), row + 1, f"price: a print needs a positive price, got {price[row]}"
            )
    regular = _regular_prints(Path(path))
    if regular is not None:
        groups = {sym: rows[regular[rows]] for sym, rows in groups.items()}
        log.info("trade prints loaded", file=str(path), prints=len(ts), excluded=int(len(ts) - regular.sum()))
    return TradeTape(
        SymbolTrades(sym, ts[rows], cols["price"][rows], cols["size"][rows]) for sym, rows in groups.items()
    )


def _regular_prints(path: Path) -> NDArray[np.bool_] | None:
    """Per record, whether its sale conditions count it (`repeg.market.sale_conditions`); None without the column.

    Read apart from the other columns, only from a file that has it (the path's checks were made by `_load`).
    """
    import pyarrow as pa

    try:
        if path.name.lower().endswith(".parquet"):
            import pyarrow.parquet as pq

            if CONDITIONS_COLUMN not in pq.read_schema(path).names:
                return None
            column = _column(_read_parquet(path, (CONDITIONS_COLUMN,)), CONDITIONS_COLUMN)
        else:
            if CONDITIONS_COLUMN not in csv_header(path):
                return None
            column = _column(_read_csv(path, (CONDITIONS_COLUMN,)), CONDITIONS_COLUMN)
        indices, values = _value_codes(_condition_text(str(path), column))
    except (pa.ArrowException, OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise QuoteFileError(str(path), None, f"conditions: unreadable: {exc}") from exc
    counted = np.array([value is None or not is_excluded(value) for value in values], dtype=np.bool_)
    return counted[indices]


def _condition_text(file: str, column: pa.Array) -> pa.Array:
    """The conditions column as text; a column of another type (numbers: a vendor's own numbering) is refused,
    never read digit by digit as codes."""
    import pyarrow as pa

    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise QuoteFileError(file, None, f"conditions: unreadable: codes are text, not {column.type}")
    return column.cast(pa.string())


def _value_codes(column: pa.Array) -> tuple[Int64Array, list[str | None]]:
    """A string column as each row's code and the distinct values (a null is a value of its own)."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column, null_encoding="encode")
    values: list[str | None] = encoded.dictionary.to_pylist()
    return _ints(encoded.indices), values


def _load(
    path: Path, required: tuple[str, ...], prices: tuple[str, ...], sizes: tuple[str, ...]
) -> tuple[Int64Array, dict[str, Int64Array], dict[str, Int64Array]]:
    """Times, the price and size columns, and each symbol's rows, of a file."""
    file = str(path)
    parsed = _parse_plain_csv(path, required, prices, sizes)
    if parsed is None:
        parsed = _parse_table(file, _read_table(path, required), prices, sizes)
    ts, cols, (codes, names) = parsed
    return ts, cols, _by_symbol(file, codes, as_planned(file, codes, names), ts)


def _parse_plain_csv(
    path: Path, required: tuple[str, ...], prices: tuple[str, ...], sizes: tuple[str, ...]
) -> _Parsed | None:
    """The numpy-only reading of a plain CSV file whose every value is valid; None for anything else."""
    if not path.name.lower().endswith((".csv", ".csv.gz")) or not path.is_file():
        return None
    text = text_columns.read_csv(path, required)
    if text is None:
        return None
    parsers = [(name, text_columns.prices) for name in prices] + [
        (name, text_columns.sizes) for name in sizes
    ]
    cols: dict[str, Int64Array] = {}
    for name, parse in parsers:
        values = parse(text[name])
        if values is None:
            return None
        cols[name] = values
    ts = text_columns.timestamps(text["ts"])
    symbols = text_columns.symbol_codes(text["symbol"])
    return None if ts is None or symbols is None else (ts, cols, symbols)


def _parse_table(file: str, table: pa.Table, prices: tuple[str, ...], sizes: tuple[str, ...]) -> _Parsed:
    """Every column of a table read by pyarrow, checked in file-column order, raising for the first defect."""
    ts = _timestamps(file, _column(table, "ts"))
    cols = {name: _prices(file, name, _column(table, name)) for name in prices}
    cols |= {name: _sizes(file, name, _column(table, name)) for name in sizes}
    return ts, cols, _symbol_codes(file, _column(table, "symbol"))


def _numpy_first(parse: Callable[[TextColumn], _T | None], column: pa.Array) -> _T | None:
    """`parse` of a pyarrow string column, or None when the column or any value is outside its plain shape."""
    text = TextColumn.from_arrow(column)
    return None if text is None else parse(text)


# --- reading -----------------------------------------------------------------------------------------------


def _read_table(path: Path, required: tuple[str, ...]) -> pa.Table:
    import pyarrow as pa

    file = str(path)
    if path.is_dir():
        raise QuoteFileError(file, None, "a directory, not a file")
    if not path.is_file():  # a pipe or a device would never end (or block): refused, not read
        raise QuoteFileError(file, None, "not a regular file" if path.exists() else "no such file")
    try:
        if path.name.lower().endswith(".parquet"):
            table = _read_parquet(path, required)
        elif path.name.lower().endswith((".csv", ".csv.gz")):
            table = _read_csv(path, required)
        else:
            raise QuoteFileError(file, None, "unknown format: expected .csv, .csv.gz or .parquet")
    # ArrowException: every pyarrow refusal (ArrowNotImplementedError too); zlib.error: a damaged .csv.gz header
    except (pa.ArrowException, OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise QuoteFileError(file, None, f"unreadable: {exc}") from exc
    if table.num_rows == 0:
        raise QuoteFileError(file, None, "no records")
    return table.select(list(required))


def _read_parquet(path: Path, required: tuple[str, ...]) -> pa.Table:
    """The `required` columns alone: a further column named twice is ignored, as in a CSV file."""
    import pyarrow.parquet as pq  # only Parquet readers pay for its import

    _refuse_columns(str(path), required, pq.read_schema(path).names)  # a name may not be UTF-8: decoded here
    return pq.read_table(path, columns=list(required))


def _refuse_columns(file: str, required: tuple[str, ...], names: list[str]) -> None:
    """Raise for a `required` column named twice in `names` (every column of the file: which holds the values
    would be a guess), or missing there (naming the file's columns and those needed)."""
    repeated = [c for c in required if names.count(c) > 1]
    if repeated:
        raise QuoteFileError(file, None, f"column(s) {', '.join(repeated)} appear more than once")
    missing = [c for c in required if c not in names]
    if missing:
        needs = ", ".join(required)
        raise QuoteFileError(
            file, None, f"missing column(s) {', '.join(missing)}; found {names}; needs {needs}"
        )


def _column(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _read_csv(path: Path, required: tuple[str, ...]) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in required},
        include_columns=list(required),
        include_missing_columns=True,
        strings_can_be_null=False,
    )
    header = csv_header(path)
    present = set(header)
    compression = "gzip" if path.name.lower().endswith(".gz") else None  # pyarrow's own guess misses ".GZ"
    try:
        with pa.input_stream(str(path), compression=compression) as stream:
            table = pacsv.read_csv(stream, convert_options=convert)
    except pa.ArrowInvalid:
        misshapen = misshapen_record(path, len(header))
        if misshapen is not None:
            raise misshapen from None
        raise
    _refuse_columns(str(path), required, header)  # named from the header: only the needed columns were read
    return table.select([c for c in required if c in present])


# --- columns -----------------------------------------------------------------------------------------------


def _ints(array: pa.Array) -> Int64Array:
    """A null-free integer (or timestamp) array as an int64 numpy view (its `cast` imports pyarrow.compute).

    Reads the value buffer directly: pyarrow's own `to_numpy` imports pandas on first use, which costs a
    quarter of a second of start-up for nothing.
    """
    import pyarrow as pa

    array = array.cast(pa.int64())
    if array.null_count:
        raise ValueError("unexpected nulls")  # callers check validity first
    return np.frombuffer(array.buffers()[1], dtype=np.int64, count=len(array), offset=array.offset * 8)


def _floats(array: pa.Array) -> NDArray[np.float64]:
    """As float64; an integer above 2**53 is rounded (the callers refuse such a price as too large)."""
    import pyarrow as pa

    array = array.cast(pa.float64(), safe=False)
    return np.frombuffer(array.buffers()[1], dtype=np.float64, count=len(array), offset=array.offset * 8)


def _bools(array: pa.Array) -> NDArray[np.bool_]:
    """A boolean array as numpy, null read as False."""
    import pyarrow as pa

    as_bytes = array.cast(pa.int8())
    values: NDArray[np.bool_] = (
        np.frombuffer(as_bytes.buffers()[1], dtype=np.int8, count=len(as_bytes), offset=as_bytes.offset) != 0
    )
    if as_bytes.null_count:
        bits = np.unpackbits(np.frombuffer(as_bytes.buffers()[0], dtype=np.uint8), bitorder="little")
        values &= bits[as_bytes.offset : as_bytes.offset + len(as_bytes)].astype(np.bool_)
    return values


def _first_bad(file: str, column: str, good: NDArray[np.bool_], values: pa.Array, what: str) -> None:
    """Raise for the first row where `good` is false."""
    if not good.all():
        row = int(np.argmin(good))
        raise QuoteFileError(file, row + 1, f"{column}: {what}, got {values[row].as_py()!r}")


def _timestamps(file: str, column: pa.Array) -> Int64Array:
    fast = _numpy_first(text_columns.timestamps, column)
    if fast is not None:
        return fast
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(column.type):
        return _typed_timestamps(file, column)
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        raise QuoteFileError(file, None, f"ts: unsupported column type {column.type}")
    ok = _bools(pc.match_substring_regex(column, _TS_TEXT))
    _first_bad(file, "ts", ok, column, "expected ISO-8601 UTC time")
    try:
        parsed = pc.cast(column, pa.timestamp("ns", tz="UTC"))
    except pa.ArrowInvalid as exc:
        row = _first_unparseable(column)
        raise QuoteFileError(file, row, f"ts: not a valid time: {exc}") from exc
    return _ints(parsed)


def _typed_timestamps(file: str, column: pa.Array) -> Int64Array:
    """A Parquet timestamp column with a time zone as UTC nanoseconds; a time int64 nanoseconds cannot hold names
    its row. A timestamp without a zone is refused, as a CSV time without `Z` is: it may be local time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.type.tz is None:
        raise QuoteFileError(
            file, None, f"ts: timestamps without a time zone ({column.type}); write them as UTC (tz='UTC')"
        )
    _first_bad(file, "ts", _bools(pc.is_valid(column)), column, "missing timestamp")
    try:
        return _ints(column.cast(pa.timestamp("ns", tz="UTC")))
    except pa.ArrowInvalid as exc:
        raise QuoteFileError(file, _first_unparseable(column), f"ts: out of range: {exc}") from exc


def _first_unparseable(column: pa.Array) -> int | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    for row, value in enumerate(column):
        try:
            pc.cast(pa.array([value.as_py()]), pa.timestamp("ns", tz="UTC"))
        # ArrowInvalid is a ValueError; a value beyond a Python datetime (OverflowError) is beyond nanoseconds too
        except (ValueError, OverflowError):
            return row + 1
    return None


def _prices(file: str, name: str, column: pa.Array) -> Int64Array:
    """Dollar prices as exact int64 units of $0.0001."""
    import pyarrow as pa

    if pa.types.is_floating(column.type) and column.type.bit_width < 64 and not column.null_count:
        return _narrow_float_prices(file, name, column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return _price_text(file, name, column)
    if pa.types.is_decimal(column.type):
        import pyarrow.compute as pc

        _first_bad(file, name, _bools(pc.is_valid(column)), column, "missing price")
        try:
            as_text = column.cast(pa.decimal128(18, 4)).cast(pa.string())
        except pa.ArrowInvalid as exc:
            on_grid = _bools(pc.equal(pc.round(column, 4), column))
            _first_bad(file, name, on_grid, column, "price finer than $0.0001")
            raise QuoteFileError(file, None, f"{name}: price too large: {exc}") from exc
        units = _price_text(file, name, as_text)
    elif pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        units = _price_numbers(file, name, column)
    else:
        raise QuoteFileError(file, None, f"{name}: unsupported column type {column.type}")
    _first_bad(file, name, units >= 0, column, "negative price")
    return units


def _narrow_float_prices(file: str, name: str, column: pa.Array) -> Int64Array:
    """float32 prices, read through their shortest text (10.01 is held as 10.0100002), which is the price written
    only where each $0.0001 price has a float of its own: below $1,024 (1234.5678 is held as 1234.5677490, whose
    shortest text is 1234.5677), so from there they are refused."""
    import pyarrow as pa

    units = _price_text(file, name, column.cast(pa.string()))
    own_float = np.spacing(column.to_numpy(zero_copy_only=False)) < 1 / UNITS_PER_DOLLAR
    what = f"a {column.type.bit_width}-bit float cannot tell $0.0001 prices apart at this size: write float64"
    _first_bad(file, name, own_float, column, what)
    return units


def _price_text(file: str, name: str, column: pa.Array) -> Int64Array:
    fast = _numpy_first(text_columns.prices, column)
    if fast is not None:
        return fast
    import pyarrow.compute as pc

    what = "expected a non-negative dollar price with at most 4 decimals"
    written, column = column, pc.replace_substring_regex(column, r"^([0-9]+\.[0-9]{4})0+$", r"\1")  # 1.230000
    _first_bad(file, name, _bools(pc.match_substring_regex(column, _PRICE_TEXT)), written, what)
    dot = _ints(pc.find_substring(column, "."))
    length = _ints(pc.utf8_length(column))
    decimals = np.where(dot < 0, 0, length - dot - 1)
    digits = _ints(pc.replace_substring(column, ".", ""))
    scale = np.array([10_000, 1_000, 100, 10, 1], dtype=np.int64)
    return digits * scale[decimals]


def _price_numbers(file: str, name: str, column: pa.Array) -> Int64Array:
    """Parquet numeric prices: floats are snapped to units only when they already sit on the $0.0001 grid."""
    import pyarrow.compute as pc

    _first_bad(file, name, _bools(pc.is_valid(column)), column, "missing price")
    dollars = _floats(column)
    in_range = np.isfinite(dollars) & (dollars < _DOLLAR_LIMIT)
    _first_bad(file, name, in_range, column, f"expected a finite price below ${_DOLLAR_LIMIT:,}")
    # the float of a $0.0001 price, or within 1e-5 units of one
    units, on_grid = snap_to_units(dollars, tolerance=_FLOAT_UNIT_TOLERANCE, exact_floats=True)
    on_grid &= (units != 0) | (dollars <= 0)  # 1e-9 is no side of 0 ('no bid'); below 0 is refused below
    _first_bad(file, name, on_grid, column, "price finer than $0.0001")
    # below 0 before rounding: -1e-9 is within the tolerance of 0 units, and a negative bid is no 'no bid'
    _first_bad(file, name, ~(dollars < 0), column, "negative price")
    return units


def _sizes(file: str, name: str, column: pa.Array) -> Int64Array:
    fast = _numpy_first(text_columns.sizes, column)
    if fast is not None:
        return fast
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        ok = _bools(pc.match_substring_regex(column, _SIZE_TEXT))
        _first_bad(file, name, ok, column, "expected whole shares")
        return _ints(column)
    if pa.types.is_integer(column.type):
        _first_bad(file, name, _bools(pc.is_valid(column)), column, "missing size")
        if pa.types.is_unsigned_integer(column.type):
            fits = pc.less_equal(column.cast(pa.uint64()), pa.scalar(_INT64_MAX, pa.uint64()))
            _first_bad(file, name, _bools(fits), column, "size too large")
        sizes = _ints(column)
        _first_bad(file, name, sizes >= 0, column, "negative size")
        return sizes
    raise QuoteFileError(file, None, f"{name}: expected whole-share integers, column type is {column.type}")


def _by_symbol(file: str, codes: Int64Array, names: list[str], ts: Int64Array) -> dict[str, Int64Array]:
    """Row numbers of each symbol in file order; raises when a symbol's times go backwards."""
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    groups: dict[str, Int64Array] = {}
    for rows in np.split(order, bounds):
        back = np.flatnonzero(np.diff(ts[rows]) < 0)
        if len(back):
            row = int(rows[back[0] + 1]) + 1
            raise QuoteFileError(file, row, "ts: time goes backwards (file must be sorted by ts)")
        groups[names[int(codes[rows[0]])]] = rows
    return groups


def _symbol_codes(file: str, column: pa.Array) -> tuple[Int64Array, list[str]]:
    """Each row's symbol code and the symbols' names, numbered in order of first appearance."""
    fast = _numpy_first(text_columns.symbol_codes, column)
    if fast is not None:
        return fast
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):  # e.g. a pandas categorical column
        column = column.dictionary_decode()
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        raise QuoteFileError(file, None, f"symbol: expected text, column type is {column.type}")
    _first_bad(file, "symbol", _bools(pc.is_valid(column)), column, "missing symbol")
    _first_bad(file, "symbol", _ints(pc.utf8_length(column)) > 0, column, "empty symbol")
    encoded = pc.dictionary_encode(column.cast(pa.string()))
    names: list[str] = encoded.dictionary.to_pylist()
    return _ints(encoded.indices), names
