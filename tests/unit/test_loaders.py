"""Quote and trade file loaders: exact prices, vectorised parsing, and errors that name file, row and reason."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tests.fakes.log_capture import every_level_captured

from repeg.errors import QuoteFileError
from repeg.market.loaders import load_quotes, load_trades
from repeg.market.tape import to_ns

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "quotes"
HEADER = "ts,symbol,bid,bid_size,ask,ask_size\n"


def _write(tmp_path: Path, body: str, name: str = "q.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    text = header + body
    if name.lower().endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _error(path: Path, loader: object = load_quotes) -> QuoteFileError:
    assert callable(loader)
    with pytest.raises(QuoteFileError) as info:
        loader(path)
    return info.value


def test_prices_are_parsed_exactly_into_units(tmp_path: Path) -> None:
    body = (
        "2024-01-02T14:30:00.000001Z,A,158.39,100,158.5,200\n"
        "2024-01-02T14:30:00.5Z,A,0.0001,1,12,3\n"
        "2024-01-02T14:30:01Z,A,1.2345,0,12.,0\n"
    )
    cols = load_quotes(_write(tmp_path, body)).columns("A")
    assert list(cols.bid) == [1_583_900, 1, 12_345]
    assert list(cols.ask) == [1_585_000, 120_000, 120_000]
    assert list(cols.bid_size) == [100, 1, 0]
    assert list(cols.ask_size) == [200, 3, 0]


def test_timestamps_become_utc_nanoseconds(tmp_path: Path) -> None:
    body = "2024-01-02T14:30:00.123456Z,A,1,1,2,1\n2024-01-02T14:30:01+00:00,A,1,1,2,1\n"
    tape = load_quotes(_write(tmp_path, body))
    assert tape.time_of("A", 0) == datetime(2024, 1, 2, 14, 30, 0, 123456, tzinfo=UTC)
    assert tape.columns("A").ts[1] == to_ns(datetime(2024, 1, 2, 14, 30, 1, tzinfo=UTC))


def test_gzip_and_plain_csv_load_the_same(tmp_path: Path) -> None:
    body = "2024-01-02T14:30:00Z,A,10.01,5,10.02,6\n"
    plain = load_quotes(_write(tmp_path, body, "q.csv"))
    zipped = load_quotes(_write(tmp_path, body, "q.csv.gz"))
    assert plain.quote("A", 0) == zipped.quote("A", 0)


def test_rows_are_grouped_per_symbol_in_time_order(tmp_path: Path) -> None:
    body = (
        "2024-01-02T14:30:00Z,B,10.00,1,10.01,1\n"
        "2024-01-02T14:30:01Z,A,20.00,1,20.01,1\n"
        "2024-01-02T14:30:02Z,B,10.02,1,10.03,1\n"
    )
    tape = load_quotes(_write(tmp_path, body))
    assert set(tape.symbols) == {"A", "B"}
    assert list(tape.columns("B").bid) == [100_000, 100_200]
    assert tape.count("A") == 1


def test_a_csv_with_carriage_return_line_ends_loads_as_pyarrow_reads_it(tmp_path: Path) -> None:
    """A file whose lines end in a lone CR (old Mac, some exports) is CSV pyarrow reads; the header was read up to
    the first LF, i.e. the whole file, and the csv module's Error escaped as an internal error."""
    path = tmp_path / "q.csv"
    path.write_bytes((HEADER + "2024-01-02T14:30:00Z,A,158.39,100,158.4,200\n").replace("\n", "\r").encode())
    quote = load_quotes(path).columns("A")
    assert quote.bid.tolist() == [1_583_900]
    assert quote.ask_size.tolist() == [200]


def test_extra_columns_are_ignored(tmp_path: Path) -> None:
    header = "ts,symbol,bid,bid_size,ask,ask_size,venue\n"
    tape = load_quotes(_write(tmp_path, "2024-01-02T14:30:00Z,A,1,1,2,1,N\n", header=header))
    assert tape.count("A") == 1


@pytest.mark.parametrize(
    ("row", "fields"), [("2024-01-02T14:30:01Z,A,1,1,2", 5), ("2024-01-02T14:30:01Z,A,1,1,2,1,N", 7)]
)
@pytest.mark.parametrize("name", ["q.csv", "q.csv.gz"])
def test_a_record_with_another_field_count_than_the_header_names_its_row(
    tmp_path: Path, name: str, row: str, fields: int
) -> None:
    """A record cut short (a file truncated mid-line) or one field too many was refused as "unreadable" with
    no row: in a day of quotes the user could only search for the text pyarrow quoted."""
    body = "2024-01-02T14:30:00Z,A,1,1,2,1\n" * 3 + row + "\n" + "2024-01-02T14:30:02Z,A,1,1,2,1\n"
    err = _error(_write(tmp_path, body, name))
    assert err.row == 5
    assert f"expected 6 fields, got {fields}" in str(err)


def test_a_misshapen_record_that_is_not_utf8_is_named_without_noise_on_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """pyarrow cannot hand a row handler a record that is not UTF-8: locating it through one printed
    "Exception ignored in ..." with a traceback on stderr, and named no row."""
    path = tmp_path / "q.csv"
    body = "2024-01-02T14:30:00Z,A,1,1,2,1\n2024-01-02T14:30:01Z,\xe9,1,1,2\n"
    path.write_bytes((HEADER + body).encode("latin-1"))
    err = _error(path)
    assert err.row == 3
    assert "expected 6 fields, got 5" in str(err)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("name", ["q.csv", "q.csv.gz"])
def test_a_csv_quote_files_rows_are_its_lines_as_a_plans_are(tmp_path: Path, name: str) -> None:
    # A quote file's row counted data records from 1, blank lines skipped, where a plan's (README: "CSV rows count
    # the header as row 1") is the line an editor shows: row 2 of a quote file was line 4 here. Both now count the
    # header as row 1 and every line after it, blank ones too; a Parquet file, which has no lines, its records.
    body = "2024-01-02T14:30:00Z,A,1,1,2,1\n\n2024-01-02T14:30:01Z,A,1.23456,1,2,1\n"
    err = _error(_write(tmp_path, body, name))
    assert str(err) == (
        f"{tmp_path / name}, row 4: bid: expected a non-negative dollar price with at most 4 decimals, "
        "got '1.23456'"
    )
    body = "2024-01-02T14:30:00Z,aaa,1,1,2,1\n\n\n2024-01-02T14:30:02Z,AAA,1,1,2,1\n"
    err = _error(_write(tmp_path, body, name))
    assert (err.row, "'AAA' and 'aaa' (row 2) are one symbol" in str(err)) == (5, True)
    body = "2024-01-02T14:30:00Z,A,1,1,2,1\n\n2024-01-02T14:30:01Z,A,1,1,2\n"
    assert _error(_write(tmp_path, body, name)).row == 4
    trades = _write(tmp_path, "\n2024-01-02T14:30:00Z,A,0,1\n", "t.csv", header="ts,symbol,price,size\n")
    assert _error(trades, load_trades).row == 3


@pytest.mark.parametrize("name", ["q.csv", "q.csv.gz"])
@pytest.mark.parametrize(
    ("start", "end", "cell"),
    [
        ("", "\r\n", "A"),  # CRLF, a blank line as CRLF
        ("", "\r", "A"),  # a lone CR ends a line, as pyarrow reads it
        ("\ufeff", "\n", "A"),  # a spreadsheet's byte-order mark
        ("", "\n", '"A\nA"'),  # a quoted cell spanning lines: the record below starts a line further down
    ],
)
def test_a_csv_quote_files_row_is_its_line_whatever_the_line_ends(
    tmp_path: Path, name: str, start: str, end: str, cell: str
) -> None:
    # Guard (the behaviour is right): the refused record is found again by the csv module (csv_records.record_line),
    # which must split lines where pyarrow does. The record below a cell on two lines starts a line further down;
    # the one holding such a cell is named by its first line.
    lines = [
        "2024-01-02T14:30:00Z,A,1,1,2,1",
        "",
        f"2024-01-02T14:30:01Z,{cell},1,1,2,1",
        f"2024-01-02T14:30:02Z,{cell},x,1,2,1",
    ]
    header = start + HEADER.rstrip("\n") + end
    err = _error(_write(tmp_path, end.join(lines) + end, name, header=header))
    assert (err.row, "bid" in str(err)) == (6 if "\n" in cell else 5, True)


def test_missing_column_is_named(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, "2024-01-02T14:30:00Z,A,1,1,2\n", header="ts,symbol,bid,bid_size,ask\n"))
    assert "ask_size" in str(err)
    assert err.row is None


@pytest.mark.parametrize(
    ("cell", "field"),
    [("1.23456", "bid"), ("-1.00", "bid"), ("abc", "bid"), ("", "bid"), ("1e3", "bid")],
)
def test_bad_price_names_row_and_field(tmp_path: Path, cell: str, field: str) -> None:
    body = f"2024-01-02T14:30:00Z,A,1,1,2,1\n2024-01-02T14:30:01Z,A,{cell},1,2,1\n"
    err = _error(_write(tmp_path, body))
    assert err.row == 3
    assert field in str(err)
    assert err.file.endswith("q.csv")


def test_fractional_size_is_refused(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, "2024-01-02T14:30:00Z,A,1,1,2,10.5\n"))
    assert err.row == 2
    assert "ask_size" in str(err)


@pytest.mark.parametrize("stamp", ["2024-01-02T14:30:00", "2024-13-02T14:30:00Z", "yesterday"])
def test_bad_timestamp_names_row(tmp_path: Path, stamp: str) -> None:
    err = _error(_write(tmp_path, f"2024-01-02T14:30:00Z,A,1,1,2,1\n{stamp},A,1,1,2,1\n"))
    assert err.row == 3
    assert "ts" in str(err)


def test_time_going_backwards_within_a_symbol_is_refused(tmp_path: Path) -> None:
    body = "2024-01-02T14:30:05Z,A,1,1,2,1\n2024-01-02T14:30:01Z,B,1,1,2,1\n2024-01-02T14:30:04Z,A,1,1,2,1\n"
    err = _error(_write(tmp_path, body))
    assert err.row == 4
    assert "backwards" in str(err)


def test_empty_symbol_is_refused(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "2024-01-02T14:30:00Z,,1,1,2,1\n")).row == 2


def test_header_only_file_is_refused(tmp_path: Path) -> None:
    assert "no records" in str(_error(_write(tmp_path, "")))


def test_unknown_extension_and_missing_file_are_refused(tmp_path: Path) -> None:
    assert "unknown format" in str(_error(_write(tmp_path, "", "q.txt")))
    assert "no such file" in str(_error(tmp_path / "absent.csv"))


def test_a_pipe_is_refused_as_not_a_regular_file_not_as_missing(tmp_path: Path) -> None:
    """`--quotes` naming a named pipe (or a device) was told "no such file", though the path is there."""
    pipe = tmp_path / "q.csv"
    os.mkfifo(pipe)
    err = _error(pipe)
    assert "not a regular file" in str(err)
    assert "no such file" not in str(err)


@pytest.mark.parametrize("loader", [load_quotes, load_trades], ids=["quotes", "trades"])
def test_a_directory_is_refused_as_a_directory_not_a_missing_file(tmp_path: Path, loader: object) -> None:
    # It said "no such file" of a directory that exists.
    assert str(_error(tmp_path, loader)) == f"{tmp_path}: a directory, not a file"


def _parquet(tmp_path: Path, columns: dict[str, pa.Array]) -> Path:
    path = tmp_path / "q.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def _priced(tmp_path: Path, bids: list[float], asks: list[float], kind: pa.DataType) -> Path:
    """A Parquet quote file of symbol A, one quote a second, its prices in columns of `kind`."""
    n = len(bids)
    columns = {
        "ts": pa.array([f"2024-01-02T14:30:{k:02d}Z" for k in range(n)]),
        "symbol": pa.array(["A"] * n),
        "bid": pa.array(bids, kind),
        "bid_size": pa.array([1] * n),
        "ask": pa.array(asks, kind),
        "ask_size": pa.array([1] * n),
    }
    return _parquet(tmp_path, columns)


def test_parquet_with_typed_columns_loads_exactly(tmp_path: Path) -> None:
    stamps = pa.array([datetime(2024, 1, 2, 14, 30, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
    path = _parquet(
        tmp_path,
        {
            "ts": stamps,
            "symbol": pa.array(["A"]),
            "bid": pa.array([158.39], pa.float64()),
            "bid_size": pa.array([100], pa.int64()),
            "ask": pa.array([Decimal("158.4")], pa.decimal128(10, 4)),
            "ask_size": pa.array([200], pa.int32()),
        },
    )
    quote = load_quotes(path).quote("A", 0)
    assert quote.bid == Decimal("158.39")
    assert quote.ask == Decimal("158.40")
    assert quote.ask_size == Decimal(200)
    assert quote.ts == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def test_parquet_timestamps_without_a_time_zone_are_refused_as_csv_ones_are(tmp_path: Path) -> None:
    """A CSV time without `Z` or `+00:00` is refused; a Parquet timestamp without a zone was read as UTC, so a
    file of New York times (9:30 for the open) replayed every quote 5 hours early, silently."""
    local_open = pa.array([datetime(2024, 1, 2, 9, 30)], pa.timestamp("us"))  # noqa: DTZ001 (naive: the point)
    path = _parquet(
        tmp_path,
        {
            "ts": local_open,
            "symbol": pa.array(["A"]),
            "bid": pa.array([158.39]),
            "bid_size": pa.array([100]),
            "ask": pa.array([158.4]),
            "ask_size": pa.array([200]),
        },
    )
    err = _error(path)
    assert "ts: " in str(err)
    assert "time zone" in str(err)


def test_parquet_text_columns_parse_like_csv(tmp_path: Path) -> None:
    path = _parquet(
        tmp_path,
        {
            "ts": pa.array(["2024-01-02T14:30:00Z"]),
            "symbol": pa.array(["A"]),
            "bid": pa.array(["0.5001"]),
            "bid_size": pa.array(["10"]),
            "ask": pa.array(["0.5002"]),
            "ask_size": pa.array(["20"]),
        },
    )
    assert list(load_quotes(path).columns("A").bid) == [5001]


def test_parquet_float_price_off_the_grid_is_refused(tmp_path: Path) -> None:
    stamps = pa.array([datetime(2024, 1, 2, 14, 30, tzinfo=UTC)] * 2, pa.timestamp("ns", tz="UTC"))
    path = _parquet(
        tmp_path,
        {
            "ts": stamps,
            "symbol": pa.array(["A", "A"]),
            "bid": pa.array([1.0, 1.00005]),
            "bid_size": pa.array([1, 1]),
            "ask": pa.array([2.0, 2.0]),
            "ask_size": pa.array([1, 1]),
        },
    )
    err = _error(path)
    assert err.row == 2
    assert "finer" in str(err)


def test_parquet_decimal_price_off_the_grid_names_its_row(tmp_path: Path) -> None:
    stamps = pa.array([datetime(2024, 1, 2, 14, 30, tzinfo=UTC)] * 2, pa.timestamp("ns", tz="UTC"))
    path = _parquet(
        tmp_path,
        {
            "ts": stamps,
            "symbol": pa.array(["A", "A"]),
            "bid": pa.array([Decimal("1.000000"), Decimal("1.000050")], pa.decimal128(12, 6)),
            "bid_size": pa.array([1, 1]),
            "ask": pa.array([2.0, 2.0]),
            "ask_size": pa.array([1, 1]),
        },
    )
    err = _error(path)
    assert (err.row, "finer" in str(err), "1.000050" in str(err)) == (2, True, True)


@pytest.mark.parametrize("huge", [1e12, 1e20])
def test_parquet_float_price_beyond_nine_dollar_digits_is_refused_as_too_large(
    tmp_path: Path, huge: float
) -> None:
    # As in CSV (at most 9 whole-dollar digits); 1e12 loaded, and 1e20 was called a "negative price".
    stamps = pa.array([datetime(2024, 1, 2, 14, 30, tzinfo=UTC)] * 2, pa.timestamp("ns", tz="UTC"))
    path = _parquet(
        tmp_path,
        {
            "ts": stamps,
            "symbol": pa.array(["A", "A"]),
            "bid": pa.array([1.0, huge]),
            "bid_size": pa.array([1, 1]),
            "ask": pa.array([2.0, 2.0]),
            "ask_size": pa.array([1, 1]),
        },
    )
    err = _error(path)
    assert (err.row, "below" in str(err)) == (2, True)


def test_parquet_integer_price_beyond_a_float_is_refused_naming_its_row(tmp_path: Path) -> None:
    """An integer price column is read as dollars through float64; a value float64 cannot hold exactly (above
    2**53) made pyarrow's safe cast raise a raw ArrowInvalid (an internal error) instead of the price refused."""
    path = _parquet(
        tmp_path,
        {
            "ts": pa.array(["2024-01-02T14:30:00Z", "2024-01-02T14:30:01Z"]),
            "symbol": pa.array(["A", "A"]),
            "bid": pa.array([158, 2**63], pa.uint64()),
            "bid_size": pa.array([100, 100]),
            "ask": pa.array([159, 159]),
            "ask_size": pa.array([200, 200]),
        },
    )
    err = _error(path)
    assert err.row == 2
    assert "bid: expected a finite price below" in str(err)


def test_parquet_null_size_is_refused(tmp_path: Path) -> None:
    path = _parquet(
        tmp_path,
        {
            "ts": pa.array(["2024-01-02T14:30:00Z"]),
            "symbol": pa.array(["A"]),
            "bid": pa.array(["1"]),
            "bid_size": pa.array([None], pa.int64()),
            "ask": pa.array(["2"]),
            "ask_size": pa.array([1]),
        },
    )
    assert "bid_size" in str(_error(path))


def _parquet_symbols(tmp_path: Path, symbols: pa.Array) -> Path:
    return _parquet(
        tmp_path,
        {
            "ts": pa.array(["2024-01-02T14:30:00Z", "2024-01-02T14:30:01Z"]),
            "symbol": symbols,
            "bid": pa.array(["1", "1"]),
            "bid_size": pa.array([1, 1]),
            "ask": pa.array(["2", "2"]),
            "ask_size": pa.array([1, 1]),
        },
    )


def test_parquet_dictionary_encoded_symbols_load(tmp_path: Path) -> None:
    # What pandas writes for a categorical column, and pyarrow reads back as a dictionary column.
    path = _parquet_symbols(tmp_path, pa.array(["A", "B"]).dictionary_encode())
    tape = load_quotes(path)
    assert (tape.symbols, tape.count("A"), tape.count("B")) == (("A", "B"), 1, 1)


def test_parquet_missing_symbol_names_row(tmp_path: Path) -> None:
    err = _error(_parquet_symbols(tmp_path, pa.array(["A", None])))
    assert (err.row, "symbol" in str(err)) == (2, True)


def test_parquet_symbol_column_that_is_not_text_is_refused(tmp_path: Path) -> None:
    assert "symbol" in str(_error(_parquet_symbols(tmp_path, pa.array([1, 2]))))


def test_trades_load_price_and_size(tmp_path: Path) -> None:
    header = "ts,symbol,price,size,exchange,conditions\n"
    body = "2024-01-02T14:30:00Z,A,158.30,100,K,F\n2024-01-02T14:30:01Z,A,158.31,2,P,I\n"
    trades = load_trades(_write(tmp_path, body, "t.csv", header=header)).columns("A")
    assert list(trades.price) == [1_583_000, 1_583_100]
    assert list(trades.size) == [100, 2]


def test_trade_at_a_zero_price_is_refused(tmp_path: Path) -> None:
    # A quote side of 0 means "no quote"; a print at $0 is no print, and the queue model would count it as one
    # through every buy limit.
    header = "ts,symbol,price,size\n"
    body = "2024-01-02T14:30:00Z,A,158.30,100\n2024-01-02T14:30:01Z,A,0,300\n"
    err = _error(_write(tmp_path, body, "t.csv", header=header), load_trades)
    assert (err.row, "price" in str(err)) == (3, True)


def test_trades_missing_size_column_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "2024-01-02T14:30:00Z,A,1\n", "t.csv", header="ts,symbol,price\n")
    assert "size" in str(_error(path, load_trades))


@pytest.mark.shared_data
def test_real_nyse_day_loads_every_quote_exactly() -> None:
    path = SHARED / "xxx_20180102_nyse_bbo.csv.gz"
    if not path.exists():
        pytest.skip("../shared data is absent")
    tape = load_quotes(path)
    assert tape.symbols == ("XXX",)
    assert tape.count("XXX") == 24_477
    first = tape.quote("XXX", 0)
    assert (first.bid, first.ask, first.ask_size) == (Decimal("158.39"), Decimal("158.50"), Decimal(1800))
    assert first.ts == datetime(2018, 1, 2, 14, 30, 0, 115000, tzinfo=UTC)
    assert tape.end == datetime(2018, 1, 2, 20, 59, 59, 980000, tzinfo=UTC)
    assert bool(np.all(np.diff(tape.columns("XXX").ts) >= 0))


@pytest.mark.shared_data
def test_real_trade_day_loads_every_regular_print() -> None:
    path = SHARED / "xxx_20180102_trades.csv.gz"
    if not path.exists():
        pytest.skip("../shared data is absent")
    trades = load_trades(path)
    assert len(trades) == 39_195 - 336  # 336 prints carry an excluded sale condition
    assert int(trades.columns("XXX").price[0]) == 1_583_000


def test_byte_order_mark_before_the_header_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "2024-01-02T14:30:00Z,A,1,1,2,1\n").encode())
    assert load_quotes(path).count("A") == 1


def test_header_names_must_match_exactly(tmp_path: Path) -> None:
    header = "ts, symbol,bid,bid_size,ask,ask_size\n"
    err = _error(_write(tmp_path, "2024-01-02T14:30:00Z,A,1,1,2,1\n", header=header))
    assert "missing column(s) symbol" in str(err)


def test_quoted_csv_loads_like_a_plain_one(tmp_path: Path) -> None:
    # Valid CSV as many exporters write it (every field quoted, e.g. pandas with QUOTE_ALL).
    header = '"ts","symbol","bid","bid_size","ask","ask_size"\n'
    path = _write(tmp_path, '"2024-01-02T14:30:00Z","A","1.00","1","2.00","1"\n', header=header)
    assert list(load_quotes(path).columns("A").ask) == [20_000]


def test_csv_that_is_not_utf8_is_a_quote_file_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "2024-01-02T14:30:00Z,\xe9,1,1,2,1\n").encode("latin-1"))
    assert "unreadable" in str(_error(path))


def test_truncated_gzip_is_a_quote_file_error(tmp_path: Path) -> None:
    path = tmp_path / "q.csv.gz"
    path.write_bytes(gzip.compress((HEADER + "2024-01-02T14:30:00Z,A,1,1,2,1\n").encode())[:30])
    assert "unreadable" in str(_error(path))


def test_corrupt_gzip_is_a_quote_file_error(tmp_path: Path) -> None:
    """Damaged compressed data (not a cut-off stream) raised zlib's own `zlib.error` from reading the header:
    `repeg run --quotes` ended as an internal error instead of naming the file as unreadable."""
    data = bytearray(gzip.compress((HEADER + "2024-01-02T14:30:00Z,A,1,1,2,1\n" * 50).encode(), mtime=0))
    data[10] ^= 0xFF  # the first byte of the deflate stream, just past the 10-byte gzip header
    with pytest.raises(zlib.error), gzip.open(io.BytesIO(bytes(data))) as damaged:
        damaged.readline()  # what the loader's header read meets
    path = tmp_path / "q.csv.gz"
    path.write_bytes(bytes(data))
    assert "unreadable" in str(_error(path))


def test_parquet_timestamp_beyond_nanosecond_range_names_its_row(tmp_path: Path) -> None:
    far = [datetime(2024, 1, 2, tzinfo=UTC), datetime(3000, 1, 2, tzinfo=UTC)]
    path = _parquet(
        tmp_path,
        {
            "ts": pa.array(far, pa.timestamp("us", tz="UTC")),
            "symbol": pa.array(["A", "A"]),
            "bid": pa.array([1.0, 1.0]),
            "bid_size": pa.array([1, 1]),
            "ask": pa.array([2.0, 2.0]),
            "ask_size": pa.array([1, 1]),
        },
    )
    assert _error(path).row == 2


def test_parquet_timestamp_beyond_pythons_datetime_names_its_row(tmp_path: Path) -> None:
    """Nanoseconds written into a microsecond column (a writer's unit slip) read as the year 50,000: locating the
    row read each value as a Python datetime, whose OverflowError escaped as an internal error."""
    slipped = [
        to_ns(datetime(2024, 1, 2, 14, 30, tzinfo=UTC)) // 1000,
        to_ns(datetime(2024, 1, 2, tzinfo=UTC)),
    ]
    path = _parquet(
        tmp_path,
        {
            "ts": pa.array(slipped, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "symbol": pa.array(["A", "A"]),
            "bid": pa.array([1.0, 1.0]),
            "bid_size": pa.array([1, 1]),
            "ask": pa.array([2.0, 2.0]),
            "ask_size": pa.array([1, 1]),
        },
    )
    err = _error(path)
    assert err.row == 2
    assert "ts: out of range" in str(err)


def test_parquet_pyarrow_cannot_read_is_a_quote_file_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow refuses some damaged or unsupported Parquet files with `ArrowNotImplementedError` (a corrupted
    footer gave "Integers with more than 64 bits not implemented"), which is neither ArrowInvalid nor OSError:
    it escaped as an internal error instead of naming the file as unreadable."""
    import pyarrow.parquet

    def unsupported(*args: object, **kwargs: object) -> pa.Table:
        raise pa.ArrowNotImplementedError("Integers with more than 64 bits not implemented")

    path = _parquet_named(tmp_path, HEADER.strip().split(","))  # its schema is read; its columns are refused
    monkeypatch.setattr(pyarrow.parquet, "read_table", unsupported)
    err = _error(path)
    assert "unreadable: Integers with more than 64 bits not implemented" in str(err)


def test_parquet_column_name_that_is_not_utf8_is_a_quote_file_error(tmp_path: Path) -> None:
    """A column named in Latin-1 by its writer (here an extra one, the quote columns intact) raised a raw
    UnicodeDecodeError when the loader looked for its columns: an internal error, not an unreadable file."""
    table = pa.table(
        {
            "ts": pa.array([datetime(2024, 1, 2, 14, 30, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
            "symbol": pa.array(["A"]),
            "bid": pa.array([1.0]),
            "bid_size": pa.array([1]),
            "ask": pa.array([2.0]),
            "ask_size": pa.array([1]),
            "vendé": pa.array(["x"]),
        }
    )
    path = tmp_path / "q.parquet"
    pq.write_table(table, path, store_schema=False)  # names in the Parquet schema only
    path.write_bytes(path.read_bytes().replace("vendé".encode(), b"vend\xe9 "))  # Latin-1, same length
    assert "unreadable" in str(_error(path))


def test_parquet_unsigned_size_beyond_int64_is_a_quote_file_error_naming_its_row(tmp_path: Path) -> None:
    """A uint64 size column holding a value int64 cannot (a corrupt or sentinel value) is bad input, named by
    row and field like any other, not a raw pyarrow error that the CLI reports as an internal failure."""
    path = _parquet(
        tmp_path,
        {
            "ts": pa.array(["2024-01-02T14:30:00Z", "2024-01-02T14:30:01Z"]),
            "symbol": pa.array(["A", "A"]),
            "bid": pa.array(["1", "1"]),
            "bid_size": pa.array([100, 2**64 - 1], pa.uint64()),
            "ask": pa.array(["2", "2"]),
            "ask_size": pa.array([1, 1]),
        },
    )
    error = _error(path)
    assert error.row == 2
    assert "bid_size" in str(error)
    assert "18446744073709551615" in str(error)


def test_a_required_column_named_twice_in_a_csv_header_is_refused(tmp_path: Path) -> None:
    """Two `bid` columns (a join gone wrong) leave it ambiguous which one holds the bids: the CSV reader used to
    take the first one silently (the Parquet reader already refuses such a file)."""
    header = "ts,symbol,bid,bid_size,ask,ask_size,bid\n"
    err = _error(_write(tmp_path, "2024-01-02T14:30:00Z,A,1,1,2,1,3\n", header=header))
    assert err.row is None
    assert "bid" in str(err)
    assert "more than once" in str(err)


def test_trade_prints_with_an_excluded_sale_condition_are_dropped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "ts,symbol,price,size,exchange,conditions\n"
        "2018-01-02T14:30:00Z,XXX,1.00,100,K,F I\n"
        "2018-01-02T14:30:01Z,XXX,2.00,200,K,4 B\n"
        "2018-01-02T14:30:02Z,XXX,3.00,300,N,\n"
    )
    with every_level_captured() as logs:
        col = load_trades(path).columns("XXX")
    assert col.size.tolist() == [100, 300]
    assert [(e["prints"], e["excluded"]) for e in logs if e["event"] == "trade prints loaded"] == [(3, 1)]


def test_parquet_trade_prints_with_an_excluded_sale_condition_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    ts = pa.array(
        [datetime(2018, 1, 2, 14, 30, s, tzinfo=UTC) for s in range(3)], pa.timestamp("us", tz="UTC")
    )
    table = pa.table(
        {
            "ts": ts,
            "symbol": ["XXX"] * 3,
            "price": [1.0, 2.0, 3.0],
            "size": [100, 200, 300],
            "conditions": ["Z", None, "@"],
        }
    )
    pq.write_table(table, path)
    assert load_trades(path).columns("XXX").size.tolist() == [200, 300]


def test_trade_conditions_of_an_unreadable_type_are_refused_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    ts = pa.array([datetime(2018, 1, 2, 14, 30, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
    table = pa.table({"ts": ts, "symbol": ["XXX"], "price": [1.0], "size": [100], "conditions": [["Z"]]})
    pq.write_table(table, path)
    assert str(_error(path, load_trades)).startswith(f"{path}: conditions: unreadable")


def test_trade_conditions_held_as_numbers_are_refused_not_read_as_codes(tmp_path: Path) -> None:
    # Sale conditions are CTA/UTP letter and digit codes, one character each. A numeric column (a vendor's own
    # numbering: 37 is an odd lot, 14 an intermarket sweep in some) must not be read digit by digit, where 37
    # holds '7' (qualified contingent) and would silently drop a regular print.
    path = tmp_path / "t.parquet"
    ts = pa.array(
        [datetime(2018, 1, 2, 14, 30, s, tzinfo=UTC) for s in range(2)], pa.timestamp("us", tz="UTC")
    )
    table = pa.table(
        {"ts": ts, "symbol": ["XXX"] * 2, "price": [1.0, 2.0], "size": [100, 200], "conditions": [37, 14]}
    )
    pq.write_table(table, path)
    err = _error(path, load_trades)
    assert str(err).startswith(f"{path}: conditions:")
    assert "int64" in str(err)


@pytest.mark.parametrize(
    ("loader", "needs"),
    [(load_quotes, "ts, symbol, bid, bid_size, ask, ask_size"), (load_trades, "ts, symbol, price, size")],
    ids=["quotes", "trades"],
)
@pytest.mark.parametrize("name", ["plan.csv", "plan.csv.gz"])
def test_a_file_that_is_no_quote_file_is_refused_naming_the_columns_it_has_and_those_needed(
    tmp_path: Path, loader: object, needs: str, name: str
) -> None:
    # `--quotes plan.csv` (a plan: symbol,weight) said "found ['symbol']": only the needed columns were read.
    path = _write(tmp_path, "AAA,0.5\n", name, header="symbol,weight\n")
    err = _error(path, loader)
    missing = ", ".join(c for c in needs.split(", ") if c != "symbol")
    assert str(err) == f"{path}: missing column(s) {missing}; found ['symbol', 'weight']; needs {needs}"


@pytest.mark.parametrize("name", ["Q.CSV", "q.Csv", "Q.CSV.GZ", "q.csv.GZ"])
def test_a_csv_quote_file_named_in_upper_case_loads_as_a_plan_file_named_so_does(
    tmp_path: Path, name: str
) -> None:
    # A plan `PLAN.CSV` was read, a quote file `Q.CSV` or `Q.CSV.GZ` refused as "unknown format".
    path = _write(tmp_path, "2024-01-02T14:30:00Z,A,1,1,2,1\n", name)
    assert list(load_quotes(path).columns("A").ask) == [20_000]


def test_a_gzipped_csv_named_in_upper_case_that_is_not_plain_is_read_decompressed(tmp_path: Path) -> None:
    # The pyarrow reading (a quoted header) of `Q.CSV.GZ`: its header is read through gzip too.
    header = '"ts","symbol","bid","bid_size","ask","ask_size"\n'
    path = _write(tmp_path, "2024-01-02T14:30:00Z,A,1,1,2,1\n", "Q.CSV.GZ", header=header)
    assert list(load_quotes(path).columns("A").ask) == [20_000]


def test_a_parquet_quote_file_named_in_mixed_case_loads(tmp_path: Path) -> None:
    table = pa.table({"ts": ["2024-01-02T14:30:00Z"], "symbol": ["A"], "bid": ["1"], "bid_size": ["1"]})
    table = table.append_column("ask", pa.array(["2"])).append_column("ask_size", pa.array(["1"]))
    path = tmp_path / "q.Parquet"
    pq.write_table(table, path)
    assert list(load_quotes(path).columns("A").ask) == [20_000]


def test_a_trade_file_named_in_upper_case_drops_its_excluded_prints(tmp_path: Path) -> None:
    header = "ts,symbol,price,size,conditions\n"
    body = "2024-01-02T14:30:00Z,A,10,100,\n2024-01-02T14:30:01Z,A,11,100,Z\n"
    path = _write(tmp_path, body, "T.CSV.GZ", header=header)
    assert list(load_trades(path).columns("A").price) == [100_000]


def _parquet_named(tmp_path: Path, names: list[str]) -> Path:
    values = ["2024-01-02T14:30:00Z", "A", "1", "1", "2", "1"] + ["9"] * (len(names) - 6)
    path = tmp_path / "q.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([value]) for value in values], names=names), path)
    return path


def test_a_required_column_named_twice_in_a_parquet_file_is_refused_as_in_a_csv_file(tmp_path: Path) -> None:
    # It was refused "unreadable: Multiple matches for FieldRef.Name(bid) in ts: string\nsymbol: ..." over a
    # dozen lines listing pyarrow's internal columns (__fragment_index, ...).
    path = _parquet_named(tmp_path, [*HEADER.strip().split(","), "bid"])
    assert str(_error(path)) == f"{path}: column(s) bid appear more than once"


def test_a_further_column_named_twice_in_a_parquet_file_is_ignored_as_in_a_csv_file(tmp_path: Path) -> None:
    # Further columns are ignored, but two `note` columns made the whole Parquet file unreadable.
    path = _parquet_named(tmp_path, [*HEADER.strip().split(","), "note", "note"])
    assert list(load_quotes(path).columns("A").ask) == [20_000]


def test_a_conditions_column_named_twice_in_a_parquet_trade_file_is_refused_as_in_a_csv_file(
    tmp_path: Path,
) -> None:
    # Which of the two holds a print's sale conditions would be a guess; the message was a dozen lines of pyarrow's
    # schema ("Multiple matches for FieldRef.Name(conditions) ...").
    names = ["ts", "symbol", "price", "size", "conditions", "conditions"]
    values = ["2024-01-02T14:30:00Z", "A", "10", "100", "", "Z"]
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([value]) for value in values], names=names), path)
    assert str(_error(path, load_trades)) == f"{path}: column(s) conditions appear more than once"


def test_a_quote_files_lower_case_symbol_is_named_as_a_plan_names_it(tmp_path: Path) -> None:
    # A plan's "aaa" is AAA (`plan_symbol`); the quote file's "aaa" stayed "aaa", so a plan naming aaa replayed
    # against quotes of aaa was refused as "unknown to the broker".
    tape = load_quotes(
        _write(tmp_path, "2024-01-02T14:30:00Z, aaa ,1,1,2,1\n2024-01-02T14:30:01Z, aaa ,1,1,2,1\n")
    )
    assert (tape.symbols, tape.count("AAA")) == (("AAA",), 2)


def test_a_trade_files_lower_case_symbol_is_named_as_its_quotes_are(tmp_path: Path) -> None:
    path = _write(tmp_path, "2024-01-02T14:30:00Z,xxx,10.00,100\n", "t.csv", header="ts,symbol,price,size\n")
    assert load_trades(path).symbols == ("XXX",)


def test_two_spellings_of_one_symbol_in_a_quote_file_are_refused_naming_row_and_both(tmp_path: Path) -> None:
    body = (
        "2024-01-02T14:30:00Z,AAA,1,1,2,1\n2024-01-02T14:30:01Z,B,1,1,2,1\n2024-01-02T14:30:02Z,aaa,1,1,2,1\n"
    )
    err = _error(_write(tmp_path, body))
    assert err.row == 4
    assert "symbol: 'aaa' and 'AAA' (row 2) are one symbol, AAA" in str(err)


def test_a_blank_symbol_in_a_parquet_quote_file_is_refused_naming_its_row(tmp_path: Path) -> None:
    err = _error(_parquet_symbols(tmp_path, pa.array(["A", "  "])))
    assert (err.row, "symbol" in str(err)) == (2, True)


def test_parquet_float32_prices_load_as_the_prices_written(tmp_path: Path) -> None:
    # A float32 column holds 10.01 as 10.010000228881836: the file was refused, "bid: price finer than $0.0001,
    # got 10.010000228881836", a value the user never wrote. Its shortest text is the price written.
    path = _priced(tmp_path, [10.01, 158.39], [10.02, 1023.9999], pa.float32())
    cols = load_quotes(path).columns("A")
    assert (list(cols.bid), list(cols.ask)) == ([100_100, 1_583_900], [100_200, 10_239_999])


def test_a_parquet_float32_price_finer_than_a_hundredth_of_a_cent_is_refused_as_written(
    tmp_path: Path,
) -> None:
    err = _error(_priced(tmp_path, [10.00005], [10.02], pa.float32()))
    assert (err.row, "bid" in str(err), "10.00005" in str(err)) == (1, True, True)


def test_parquet_float64_prices_of_millions_of_dollars_load_as_written(tmp_path: Path) -> None:
    # Prices are accepted below $1e9, but from about $1M a float64 price times 10,000 lies off the unit grid by
    # more than the fixed 1e-6 tolerance (a float's spacing there is larger): 5,000,000.02 was refused as
    # "price finer than $0.0001", as was one such price in eight.
    prices = [5_000_000.02, 729_655_446.4299, 321_869_391.076]
    cols = load_quotes(_priced(tmp_path, prices, prices, pa.float64())).columns("A")
    assert list(cols.bid) == [50_000_000_200, 7_296_554_464_299, 3_218_693_910_760]


def test_a_parquet_float64_price_half_a_unit_off_the_grid_is_still_refused(tmp_path: Path) -> None:
    path = _priced(tmp_path, [123_456_789.12345], [123_456_790.0], pa.float64())
    assert "finer than $0.0001" in str(_error(path))


def test_prices_written_with_trailing_zeros_past_four_decimals_load_as_the_price(tmp_path: Path) -> None:
    # A "%.6f" export writes 10.01 as 10.010000: a price on the $0.0001 grid, refused as "expected a non-negative
    # dollar price with at most 4 decimals" (a Parquet decimal(18, 6) column of the same value loads).
    body = "2024-01-02T14:30:00Z,A,10.010000,1,10.0200,1\n2024-01-02T14:30:01Z,A,0.000100,1,12.123400000,1\n"
    cols = load_quotes(_write(tmp_path, body)).columns("A")
    assert (list(cols.bid), list(cols.ask)) == ([100_100, 1], [100_200, 121_234])


@pytest.mark.parametrize("price", ["10.000050", "10.00001"])
def test_a_price_finer_than_four_decimals_is_still_refused_as_written(tmp_path: Path, price: str) -> None:
    err = _error(_write(tmp_path, f"2024-01-02T14:30:00Z,A,{price},1,11,1\n"))
    assert (
        err.row,
        f"bid: expected a non-negative dollar price with at most 4 decimals, got '{price}'" in str(err),
    ) == (
        2,
        True,
    )


def test_the_labs_symbol_is_named_as_the_quote_files_symbols_are(tmp_path: Path) -> None:
    # The file's "xxx" reads as XXX (as a plan names it): `repeg backtest --symbol xxx` must still find it, as it
    # did when the file's symbols were kept as written.
    from repeg.lab.backtest import load_day

    path = _write(tmp_path, "2024-01-02T14:30:00Z,xxx,1,1,2,1\n")
    assert load_day(path, symbol="xxx").ref.symbol == "XXX"


def test_a_gzipped_file_named_csv_is_refused_saying_so(tmp_path: Path) -> None:
    # It read "unreadable: 'utf-8' codec can't decode byte 0x8b in position 1: invalid start byte".
    path = tmp_path / "q.csv"
    path.write_bytes(gzip.compress((HEADER + "2024-01-02T14:30:00Z,A,1,1,2,1\n").encode()))
    assert str(_error(path)) == f"{path}: gzip-compressed: name it .csv.gz"


def test_a_lab_result_recorded_under_a_files_lower_case_symbol_draws_its_market(tmp_path: Path) -> None:
    # A result recorded before the file's "xxx" read as XXX names its symbol "xxx": `repeg report` found the file
    # (same digest) and then silently drew no market, the symbol no longer being in the tape.
    from datetime import date

    from repeg.lab.backtest import file_digest
    from repeg.lab.models import DataRef
    from repeg.lab.report_data import load_market

    path = _write(tmp_path, "2024-01-02T14:30:00Z,xxx,1,1,2,1\n")
    data = DataRef(
        symbol="xxx",
        day=date(2024, 1, 2),
        quotes_file=path.name,
        trades_file=None,
        digest=file_digest([path]),
    )
    market = load_market(data, tmp_path)
    assert market is not None
    assert market.bid_units.tolist() == [10_000]


@pytest.mark.parametrize("written", [1234.5678, 123456.7891, 5000.25, 1024.0])
def test_a_parquet_float32_price_from_where_floats_are_coarser_than_the_grid_is_refused(
    tmp_path: Path, written: float
) -> None:
    # float32 holds 1234.5678 as 1234.5677490234375, whose shortest text is 1234.5677: read through that text
    # (ccc5fea3), a price the user never wrote was taken silently. From $1,024 a float32 is shared by more than
    # one $0.0001 price (5000.2501 is held as 5000.25 exactly): which one was written is a guess.
    err = _error(_priced(tmp_path, [10.01], [written], pa.float32()))
    assert (err.row, "ask" in str(err), "32-bit float" in str(err)) == (1, True, True)


@pytest.mark.parametrize("written", [999_999_999.0000001, 999_999_999.0000004, 800_000_000.0000002])
def test_a_parquet_float64_price_off_the_grid_by_a_float_or_more_is_refused(
    tmp_path: Path, written: float
) -> None:
    # a481b68a let any float within two spacings of the grid pass: near $1e9 that is 3.9e-7 dollars, and a
    # float64 there tells 999,999,999.0000001 (its own float) from 999,999,999: read as 999,999,999.0000.
    path = _priced(tmp_path, [written], [999_999_999.5], pa.float64())
    assert "finer than $0.0001" in str(_error(path))


@settings(max_examples=150, deadline=None)
@given(
    whole=st.one_of(st.integers(0, 2_000), st.integers(0, 999_999_999)),
    decimals=st.text("0123456789", max_size=8),
    kind=st.sampled_from(["csv", "float64", "float32"]),
)
def test_a_price_is_read_as_the_price_written_or_refused(
    tmp_path_factory: pytest.TempPathFactory, whole: int, decimals: str, kind: str
) -> None:
    # Never another price: not a neighbour on the grid, not one off it. A float32 holds no more than its own
    # precision (538.859952 and 538.86 are one float32), so there only prices written on the grid are asked;
    # a float64 only prices it holds (999999999.00000001 is the float 999999999.0, which is read as written).
    written = f"{whole}.{decimals}" if decimals else str(whole)
    units = Decimal(written) * 10_000
    assume(kind != "float32" or units == units.to_integral_value())
    assume(kind != "float64" or Decimal(repr(float(written))) == Decimal(written))  # the float holds it
    folder = tmp_path_factory.mktemp("price")
    if kind == "csv":
        path = _write(folder, f"2024-01-02T14:30:00Z,A,{written},1,{written},1\n")
    else:
        path = _priced(folder, [float(written)], [float(written)], getattr(pa, kind)())
    try:
        read = load_quotes(path).columns("A").bid[0]
    except QuoteFileError:
        # a price on the grid is refused only as a float32 from $1,024, where a float32 holds more than one
        assert units != units.to_integral_value() or (kind == "float32" and whole >= 1_024)
        return
    assert Decimal(int(read)) == units


def test_parquet_float64_prices_of_a_berkshire_share_converted_from_integer_ticks_load_as_the_grid_prices(
    tmp_path: Path,
) -> None:
    # Ticks times 0.0001 (or nanodollars times 1e-9, a feed's fixed point) leave a float's noise: 959,688.6137
    # comes out as 959688.6137000001, one float above the grid price's own. f1729d8f took only the exact float
    # from about $500k up, so a BRK.A file made so was refused ('price finer than $0.0001') at one price in 55.
    prices = [9_596_886_137 * 0.0001, 997_958_102_800_000 * 1e-9]
    cols = load_quotes(_priced(tmp_path, prices, prices, pa.float64())).columns("A")
    assert list(cols.bid) == [9_596_886_137, 9_979_581_028]


@pytest.mark.parametrize("written", [-1e-9, -1e-10])
def test_a_parquet_float64_price_a_hair_below_zero_is_refused_as_negative_not_read_as_zero(
    tmp_path: Path, written: float
) -> None:
    # Within the float tolerance of $0 (30d1fa2a widened it to $1e-9) a negative float rounded to 0 units and
    # passed the negative-price check: a quote whose bid was below zero loaded with a bid of 0 ('no bid').
    assert "negative price" in str(_error(_priced(tmp_path, [written], [10.0], pa.float64())))


@pytest.mark.parametrize("written", [1e-9, 1e-12])
def test_a_parquet_float64_price_a_hair_above_zero_is_refused_not_read_as_no_quote(
    tmp_path: Path, written: float
) -> None:
    # Within the float tolerance of $0 it snapped to 0 units, a side of 0: 'no bid', not a price finer than the grid.
    assert "finer than $0.0001" in str(_error(_priced(tmp_path, [written], [10.0], pa.float64())))
