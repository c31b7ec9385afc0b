"""Exact, vectorised parsing of well-formed CSV text columns with numpy alone, so reading a clean file never
imports pyarrow.compute (about 50 ms of a process's start-up, more than parsing a day of quotes takes).

Each function reads a pyarrow `string` array's buffers directly and either returns exactly what the loader's
pyarrow.compute path returns for that column, or `None` ("declined") when any value falls outside the plain
shape it recognises: then the loader runs its pyarrow.compute path, which accepts or rejects the values and
words its errors as it always has. So these functions decide nothing about validity; declining is always safe,
and they decline well before the edge cases (leap seconds, far years, very long values, non-ASCII digits).

Digits are read position by position across all values at once, aligned so that padding with "0" leaves each
number unchanged (sizes to the right, prices on the dot, fractions of a second to the left); long columns are
parsed in blocks of rows so that the working arrays stay small.
"""

from __future__ import annotations

import codecs
import gzip
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import pyarrow as pa

Int64Array = NDArray[np.int64]
_Bytes = NDArray[np.uint8]
_Mask = NDArray[np.bool_]

#: Longest value each parser looks at: 9 + 1 + 4 price characters; 15 size digits; ISO time with 9 decimals.
_PRICE_WIDTH = 14
_SIZE_WIDTH = 15
_TS_WIDTH = 35
_SYMBOL_WIDTH = 64
_BLOCK_ROWS = 1 << 17
#: Times outside these years are left to pyarrow (int64 nanoseconds end in 2262).
_FIRST_YEAR = 1900
_LAST_YEAR = 2200
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_ZERO = ord("0")
_NINE = ord("9")
_DOT = ord(".")
_COMMA = ord(",")
_LINE_FEED = ord("\n")
_WHOLE_DIGITS = 9
_DECIMALS = 4
#: `YYYY-MM-DDThh:mm:ssZ`; a fraction's dot, when there is one, is at this position.
_TS_SHORTEST = 20
_FRACTION_DOT = 19


class TextColumn:
    """One column of non-empty text values: the bytes holding them, and each value's start and length there."""

    def __init__(self, data: _Bytes, starts: Int64Array, lengths: Int64Array) -> None:
        self.data = data
        self.starts = starts
        self.lengths = lengths

    @classmethod
    def from_arrow(cls, column: pa.Array) -> TextColumn | None:
        """A view of a pyarrow `string` array's buffers; None for other types, nulls or empty values."""
        import pyarrow as pa  # loaded already by whoever holds the array

        if not pa.types.is_string(column.type) or column.null_count or len(column) == 0:
            return None
        _, offsets_buf, data_buf = column.buffers()
        offsets: Int64Array = np.frombuffer(
            offsets_buf, dtype=np.int32, count=len(column) + 1, offset=column.offset * 4
        ).astype(np.int64)
        lengths = np.diff(offsets)
        if int(lengths.min()) < 1:
            return None
        return cls(np.frombuffer(data_buf, dtype=np.uint8), offsets[:-1], lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        """Length of the longest value."""
        return int(self.lengths.max())

    def slice(self, start: int, stop: int) -> TextColumn:
        return TextColumn(self.data, self.starts[start:stop], self.lengths[start:stop])

    def byte_at(self, position: int | Int64Array) -> _Bytes:
        """Each value's byte at `position`, which the caller keeps inside every value."""
        found: _Bytes = self.data[self.starts + position]
        return found

    def padded_at(
        self, position: int | Int64Array, end: Int64Array | None = None, fill: int = _ZERO
    ) -> _Bytes:
        """Each value's byte at `position` when that is before `end` (default: the value's length), else `fill`."""
        inside = (position >= 0) & (position < (self.lengths if end is None else end))
        if bool(np.all(inside)):
            return self.byte_at(position)
        found: _Bytes = np.where(inside, self.data[self.starts + np.where(inside, position, 0)], fill)
        return found.astype(np.uint8)


def _blockwise(text: TextColumn, parse: Callable[[TextColumn], Int64Array | None]) -> Int64Array | None:
    parts = []
    for start in range(0, len(text), _BLOCK_ROWS):
        part = parse(text.slice(start, start + _BLOCK_ROWS))
        if part is None:
            return None
        parts.append(part)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _decimal(columns: list[_Bytes]) -> Int64Array | None:
    """The base-10 number each row's ASCII digits spell (most significant first); None if any is not a digit."""
    value = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        if not bool(np.all((column >= _ZERO) & (column <= _NINE))):
            return None
        value = value * 10 + (column - _ZERO)
    return value


def sizes(text: TextColumn) -> Int64Array | None:
    """Whole-share sizes written as 1 to 15 ASCII digits."""
    return _blockwise(text, _sizes_block)


def _sizes_block(text: TextColumn) -> Int64Array | None:
    width = text.width
    if width > _SIZE_WIDTH:
        return None
    # Right-aligned over leading "0"s, which leave the number unchanged.
    return _decimal([text.padded_at(text.lengths - width + i) for i in range(width)])


def prices(text: TextColumn) -> Int64Array | None:
    """Dollar prices written as 1 to 9 digits, optionally a dot and up to 4 decimals, as $0.0001 units."""
    return _blockwise(text, _prices_block)


def _prices_block(text: TextColumn) -> Int64Array | None:
    if text.width > _PRICE_WIDTH:
        return None
    dot_at, dot_row = _dots(text)
    dots = np.bincount(dot_row, minlength=len(text.lengths))
    dot = text.lengths.copy()
    dot[dot_row] = dot_at - text.starts[dot_row]
    decimals = np.where(dots == 1, text.lengths - dot - 1, 0)
    if bool(np.any((dots > 1) | (dot < 1) | (dot > _WHOLE_DIGITS) | (decimals > _DECIMALS))):
        return None
    # Dots aligned, "0" elsewhere: 9 whole-dollar digits then 4 decimals, which read together as units.
    whole = [text.padded_at(dot - _WHOLE_DIGITS + i) for i in range(_WHOLE_DIGITS)]
    return _decimal(whole + [text.padded_at(dot + 1 + i) for i in range(_DECIMALS)])


def _dots(text: TextColumn) -> tuple[Int64Array, Int64Array]:
    """Where the values' dots are in `data`, and whose they are (values are stored in order, maybe among
    other bytes, such as a CSV file's other fields)."""
    low = int(text.starts[0])
    high = int(text.starts[-1] + text.lengths[-1])
    at = np.flatnonzero(text.data[low:high] == _DOT) + low
    row = np.searchsorted(text.starts, at, side="right") - 1
    mine = at < text.starts[row] + text.lengths[row]
    return at[mine], row[mine]


def timestamps(text: TextColumn) -> Int64Array | None:
    """`YYYY-MM-DD[T ]hh:mm:ss[.f{1,9}](Z|+00:00)` times as nanoseconds since the Unix epoch."""
    return _blockwise(text, _timestamps_block)


def _timestamps_block(text: TextColumn) -> Int64Array | None:
    if text.width > _TS_WIDTH or int(text.lengths.min()) < _TS_SHORTEST:
        return None
    zone = _zone_lengths(text)
    if zone is None:
        return None
    ns = _fraction_ns(text, text.lengths - zone)
    seconds = _whole_seconds(text)
    if ns is None or seconds is None:
        return None
    return seconds * 1_000_000_000 + ns


def _zone_lengths(text: TextColumn) -> Int64Array | None:
    """1 for a `Z` suffix, 6 for `+00:00`; None when any value has neither."""
    end = text.lengths
    zulu = text.byte_at(end - 1) == ord("Z")
    plus = np.ones(len(end), dtype=np.bool_)
    for back, char in zip(range(6, 0, -1), "+00:00", strict=True):
        plus &= text.byte_at(end - back) == ord(char)
    if not bool(np.all(zulu | plus)):
        return None
    return np.where(zulu, 1, 6).astype(np.int64)


def _fraction_ns(text: TextColumn, end: Int64Array) -> Int64Array | None:
    """Nanoseconds of the optional `.f{1,9}` written between position 19 and `end`."""
    has_fraction = end > _FRACTION_DOT
    count = np.where(has_fraction, end - _FRACTION_DOT - 1, 0)
    dotted = text.byte_at(_FRACTION_DOT) == _DOT
    if bool(np.any((end < _FRACTION_DOT) | (has_fraction & (~dotted | (count < 1) | (count > 9))))):
        return None
    # Left-aligned over trailing "0"s: ".115" reads as 115000000 ns.
    return _decimal([text.padded_at(_FRACTION_DOT + 1 + i, end) for i in range(9)])


def _whole_seconds(text: TextColumn) -> Int64Array | None:
    """Seconds since the epoch of the `YYYY-MM-DD[T ]hh:mm:ss` prefix; None unless it is a real UTC time."""
    separators = ((4, b"-"), (7, b"-"), (10, b"T "), (13, b":"), (16, b":"))
    for position, allowed in separators:
        if not bool(np.all(np.isin(text.byte_at(position), np.frombuffer(allowed, dtype=np.uint8)))):
            return None
    fields: list[Int64Array] = []
    for first, width in ((0, 4), (5, 2), (8, 2), (11, 2), (14, 2), (17, 2)):
        value = _decimal([text.byte_at(first + i) for i in range(width)])
        if value is None:
            return None
        fields.append(value)
    if not _real_time(*fields):
        return None
    year, month, day, hour, minute, second = fields
    return ((_days_since_epoch(year, month, day) * 24 + hour) * 60 + minute) * 60 + second


def _real_time(*fields: Int64Array) -> bool:
    """True when every value is a real date in the years this module handles, and a time of day without a leap
    second."""
    year, month, day, hour, minute, second = fields
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    days = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + (leap & (month == 2))
    ok = (year >= _FIRST_YEAR) & (year <= _LAST_YEAR) & month_ok & (day >= 1) & (day <= days)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    return bool(np.all(ok))


def _days_since_epoch(year: Int64Array, month: Int64Array, day: Int64Array) -> Int64Array:
    """Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`, years >= 0)."""
    y = year - (month <= 2)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days: Int64Array = era * 146_097 + day_of_era - 719_468
    return days


def symbol_codes(text: TextColumn) -> tuple[Int64Array, list[str]] | None:
    """Each value's code and the distinct values, numbered in order of first appearance (as pyarrow's
    `dictionary_encode` numbers them); None for very long, NUL-bearing or non-UTF-8 values."""
    width = text.width
    if width > _SYMBOL_WIDTH:
        return None
    chars = np.column_stack([text.padded_at(i, fill=0) for i in range(width)])
    if not bool(np.all((chars != 0).sum(axis=1) == text.lengths)):
        return None
    keys = chars.view(f"S{width}").ravel()
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    try:
        names = [bytes(value).decode("utf-8") for value in unique[order]]
    except UnicodeDecodeError:
        return None
    return rank[inverse.ravel()], names


def read_csv(path: Path, required: tuple[str, ...]) -> dict[str, TextColumn] | None:
    """The `required` columns of a plain CSV file (`.csv`, or `.csv.gz`), without pyarrow.

    Plain means: UTF-8 (a byte-order mark allowed), a header naming each column once, then at least one record
    per line, each ending in a line feed (the last may not), with exactly the header's number of fields, no
    quote characters, no carriage returns and no blank lines, and no empty value in a required column.
    Anything else, and any read error, gives None.
    """
    raw = _plain_bytes(path)
    header_end = -1 if raw is None else raw.find(b"\n")
    if raw is None or header_end < 0:
        return None
    try:
        names = raw[:header_end].decode("utf-8").split(",")
    except UnicodeDecodeError:
        return None
    if len(set(names)) != len(names) or not set(required) <= set(names):
        return None
    data = np.frombuffer(raw if raw.endswith(b"\n") else raw + b"\n", dtype=np.uint8)
    ends = _field_ends(data, header_end + 1, len(names))
    if ends is None:
        return None
    starts = np.empty_like(ends)
    starts[:, 1:] = ends[:, :-1] + 1
    starts[0, 0] = header_end + 1
    starts[1:, 0] = ends[:-1, -1] + 1
    columns = {
        name: TextColumn(data, starts[:, i].copy(), ends[:, i] - starts[:, i])
        for name in required
        for i in (names.index(name),)
    }
    return None if any(int(c.lengths.min()) < 1 for c in columns.values()) else columns


def _plain_bytes(path: Path) -> bytes | None:
    """The file's bytes (decompressed, without a byte-order mark); None if unreadable or holding quotes or CRs."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.lower().endswith(".gz") else path.read_bytes()
    except (OSError, EOFError, zlib.error):
        return None
    return None if b'"' in raw or b"\r" in raw else raw.removeprefix(codecs.BOM_UTF8)


def _field_ends(data: _Bytes, body: int, fields: int) -> Int64Array | None:
    """(records, fields) positions of the comma or line feed ending each field after `body`; None unless every
    line holds exactly `fields` fields."""
    flat = np.flatnonzero((data[body:] == _COMMA) | (data[body:] == _LINE_FEED)) + body
    if len(flat) == 0 or len(flat) % fields:
        return None
    ends: Int64Array = flat.reshape(-1, fields)
    if not (bool(np.all(data[ends[:, :-1]] == _COMMA)) and bool(np.all(data[ends[:, -1]] == _LINE_FEED))):
        return None
    return ends
