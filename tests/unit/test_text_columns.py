"""The numpy text-column parsers either return exactly what pyarrow.compute would, or decline."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repeg.market import text_columns
from repeg.market.loaders import _PRICE_TEXT, _SIZE_TEXT, _TS_TEXT, load_quotes
from repeg.market.text_columns import TextColumn

_T = TypeVar("_T")


def _reference_prices(values: list[str]) -> list[int] | None:
    """The loader's pyarrow.compute rule: regex, then digits times the scale of the decimals written."""
    array = pa.array(values, pa.string())
    if not pc.all(pc.match_substring_regex(array, _PRICE_TEXT)).as_py():
        return None
    units = []
    for value in values:
        whole, _, decimals = value.partition(".")
        units.append(int(whole + decimals.ljust(4, "0")))
    return units


def _reference_sizes(values: list[str]) -> list[int] | None:
    array = pa.array(values, pa.string())
    if not pc.all(pc.match_substring_regex(array, _SIZE_TEXT)).as_py():
        return None
    return list(pc.cast(array, pa.int64()).to_pylist())


def _reference_timestamps(values: list[str]) -> list[int] | None:
    array = pa.array(values, pa.string())
    if not pc.all(pc.match_substring_regex(array, _TS_TEXT)).as_py():
        return None
    try:
        parsed = pc.cast(array, pa.timestamp("ns", tz="UTC"))
    except pa.ArrowInvalid:
        return None
    return list(parsed.cast(pa.int64()).to_pylist())


def _parse(parse: Callable[[TextColumn], _T | None], array: pa.Array) -> _T | None:
    text = TextColumn.from_arrow(array)
    return None if text is None else parse(text)


def _as_list(result: object) -> list[int] | None:
    return None if result is None else [int(v) for v in np.asarray(result)]


_digits = st.text(alphabet="0123456789", min_size=0, max_size=11)
_price_like = st.one_of(
    st.builds(lambda w, d: f"{w}.{d}", _digits, _digits),
    _digits,
    st.text(alphabet="0123456789.-+e ", max_size=14),
)


@settings(deadline=None)  # the first pa.array() call imports pandas
@given(st.lists(_price_like, min_size=1, max_size=8))
def test_prices_match_the_pyarrow_rule_or_decline(values: list[str]) -> None:
    fast = _as_list(_parse(text_columns.prices, pa.array(values, pa.string())))
    if fast is not None:
        assert fast == _reference_prices(values)


@settings(deadline=None)  # the first pa.array() call imports pandas
@given(st.lists(st.text(alphabet="0123456789.-+ ", max_size=17), min_size=1, max_size=8))
def test_sizes_match_the_pyarrow_rule_or_decline(values: list[str]) -> None:
    fast = _as_list(_parse(text_columns.sizes, pa.array(values, pa.string())))
    if fast is not None:
        assert fast == _reference_sizes(values)


_stamps = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, zone: (
        f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{zone}"
    ),
    st.integers(1890, 2300),
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from(["T", " ", "t"]),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.one_of(
        st.just(""),
        st.just("."),
        st.text(alphabet="0123456789", min_size=1, max_size=10).map(lambda digits: "." + digits),
    ),
    st.sampled_from(["Z", "+00:00", "+01:00", "", "z"]),
)


@settings(deadline=None)  # the first pa.array() call imports pandas
@given(st.lists(_stamps, min_size=1, max_size=2))
def test_timestamps_match_pyarrow_or_decline(values: list[str]) -> None:
    fast = _as_list(_parse(text_columns.timestamps, pa.array(values, pa.string())))
    if fast is not None:
        assert fast == _reference_timestamps(values)


_real_stamps = st.builds(
    lambda when, sep, digits, zone: when.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + digits + zone,
    # hypothesis bounds are naive; the text is labelled UTC by its Z or +00:00
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31, 23, 59, 59)),  # noqa: DTZ001
    st.sampled_from(["T", " "]),
    st.one_of(st.just(""), st.text(alphabet="0123456789", min_size=1, max_size=9).map(lambda d: "." + d)),
    st.sampled_from(["Z", "+00:00"]),
)


@settings(deadline=None)  # the first pa.array() call imports pandas
@given(st.lists(_real_stamps, min_size=1, max_size=5))
def test_well_formed_times_are_parsed_like_pyarrow(values: list[str]) -> None:
    fast = _as_list(_parse(text_columns.timestamps, pa.array(values, pa.string())))
    assert fast is not None
    assert fast == _reference_timestamps(values)


@settings(deadline=None)  # the first pa.array() call imports pandas
@given(st.lists(st.tuples(st.integers(0, 999_999_999), st.integers(0, 9999), st.integers(0, 4)), min_size=1))
def test_well_formed_prices_are_parsed_like_pyarrow(parts: list[tuple[int, int, int]]) -> None:
    values = [
        f"{whole}.{str(frac).zfill(4)[:places]}" if places else str(whole) for whole, frac, places in parts
    ]
    fast = _as_list(_parse(text_columns.prices, pa.array(values, pa.string())))
    assert fast is not None
    assert fast == _reference_prices(values)


def test_plain_prices_are_parsed_without_pyarrow_compute() -> None:
    values = ["158.39", "1.", "0", "123456789.1234", "0.0001"]
    assert _as_list(_parse(text_columns.prices, pa.array(values))) == [
        1_583_900,
        10_000,
        0,
        1_234_567_891_234,
        1,
    ]


@pytest.mark.parametrize("bad", [".5", "1.23456", "-1", "1e2", " 1", "1234567890", "1.2.3", "١"])
def test_prices_outside_the_plain_shape_are_declined(bad: str) -> None:
    assert _parse(text_columns.prices, pa.array(["1.00", bad])) is None


def test_plain_times_are_parsed_exactly() -> None:
    values = [
        "2018-01-02T14:30:00.115000Z",
        "2018-01-02 14:30:00+00:00",
        "2020-02-29T23:59:59.123456789Z",
        "1970-01-01T00:00:00.1Z",
    ]
    assert _as_list(_parse(text_columns.timestamps, pa.array(values))) == _reference_timestamps(values)


@pytest.mark.parametrize(
    "bad",
    ["2018-01-02T23:59:60Z", "2018-02-30T00:00:00Z", "2019-02-29T00:00:00Z", "2300-01-01T00:00:00Z",
     "2018-01-02T14:30:00.Z", "2018-01-02T14:30:00", "2018-01-02T14:30:00+01:00", "2018-01-02T24:00:00Z"],
)  # fmt: skip
def test_unusual_or_invalid_times_are_declined(bad: str) -> None:
    assert _parse(text_columns.timestamps, pa.array(["2018-01-02T14:30:00Z", bad])) is None


def test_null_or_non_string_columns_are_declined() -> None:
    assert _parse(text_columns.sizes, pa.array(["1", None])) is None
    assert _parse(text_columns.sizes, pa.array([1, 2])) is None
    assert _parse(text_columns.sizes, pa.array(["1", "2"], pa.large_string())) is None


def test_sliced_arrays_are_read_from_their_offset() -> None:
    assert _as_list(_parse(text_columns.sizes, pa.array(["9", "10", "200"]).slice(1))) == [10, 200]


def test_symbols_are_numbered_in_order_of_first_appearance() -> None:
    values = ["MSFT", "AAPL", "MSFT", "BRK.B", "AAPL", "É"]
    result = _parse(text_columns.symbol_codes, pa.array(values))
    assert result is not None
    codes, names = result
    encoded = pc.dictionary_encode(pa.array(values))
    assert names == encoded.dictionary.to_pylist() == ["MSFT", "AAPL", "BRK.B", "É"]
    assert codes.tolist() == encoded.indices.to_pylist()


def test_empty_symbol_is_declined() -> None:
    assert _parse(text_columns.symbol_codes, pa.array(["A", ""])) is None


def test_loading_a_clean_csv_does_not_import_pyarrow(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        "ts,symbol,bid,bid_size,ask,ask_size\n"
        "2018-01-02T14:30:00.115000Z,XXX,158.3900,100,158.5000,1800\n"
        "2018-01-02T14:30:01Z,YYY,1.5,1,1.6,2\n"
    )
    script = (
        "import sys; from repeg.market.loaders import load_quotes; "
        f"tape = load_quotes({str(path)!r}); "
        "assert tape.symbols == ('XXX', 'YYY'), tape.symbols; "
        "print(sorted(m for m in sys.modules if m.startswith('pyarrow')))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_long_columns_are_parsed_in_blocks_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    values = ["1.5", "22.25", "333", "4444.0001", "5."]
    whole = _as_list(_parse(text_columns.prices, pa.array(values)))
    monkeypatch.setattr(text_columns, "_BLOCK_ROWS", 2)
    assert _as_list(_parse(text_columns.prices, pa.array(values))) == whole == _reference_prices(values)
    assert _parse(text_columns.prices, pa.array([*values, "bad"])) is None


_QUOTES = (
    "ts,symbol,bid,bid_size,ask,ask_size\n"
    "2018-01-02T14:30:00.115000Z,XXX,158.3900,100,158.5000,1800\n"
    "2018-01-02T14:30:01Z,YYY,1.5,1,1.6,2\n"
)


def test_plain_csv_columns_are_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "q.csv.gz"
    path.write_bytes(
        gzip.compress(("\ufeff" + _QUOTES.replace("ts,", "ts,extra,").replace("Z,", "Z,,")).encode())
    )
    columns = text_columns.read_csv(path, ("symbol", "bid"))
    assert columns is not None
    assert set(columns) == {"symbol", "bid"}
    assert _as_list(text_columns.prices(columns["bid"])) == [1_583_900, 15_000]
    assert text_columns.symbol_codes(columns["symbol"]) is not None


@pytest.mark.parametrize(
    "change",
    [
        lambda text: text.replace("\n", "\r\n"),
        lambda text: text.replace("XXX", '"XXX"'),
        lambda text: text + "\n",
        lambda text: text.replace(",1800", ""),
        lambda text: text.replace("ask_size", "bid"),
        lambda text: text.replace("ask_size", "other"),
        lambda text: text.replace(",YYY,", ",,"),
        lambda text: text.split("\n")[0],
    ],
)
def test_csv_files_outside_the_plain_shape_are_declined(tmp_path: Path, change: Callable[[str], str]) -> None:
    path = tmp_path / "q.csv"
    path.write_text(change(_QUOTES))
    assert text_columns.read_csv(path, ("ts", "symbol", "bid", "bid_size", "ask", "ask_size")) is None


def test_declined_csv_loads_the_same_through_pyarrow(tmp_path: Path) -> None:
    plain, crlf = tmp_path / "plain.csv", tmp_path / "crlf.csv"
    plain.write_text(_QUOTES)
    crlf.write_bytes(_QUOTES.replace("\n", "\r\n").encode())
    assert text_columns.read_csv(crlf, ("ts",)) is None
    a, b = load_quotes(plain), load_quotes(crlf)
    assert a.symbols == b.symbols
    for symbol in a.symbols:
        for name in ("ts", "bid", "bid_size", "ask", "ask_size"):
            assert np.array_equal(getattr(a.columns(symbol), name), getattr(b.columns(symbol), name))
