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

from collections.abc import Callable

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

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
_WHOLE_DIGITS = 9
_DECIMALS = 4
#: `YYYY-MM-DDThh:mm:ssZ`; a fraction's dot, when there is one, is at this position.
_TS_SHORTEST = 20
_FRACTION_DOT = 19


class _Text:
    """A null-free `string` array of non-empty values: its bytes, and each value's start and length in them."""

    def __init__(self, data: _Bytes, starts: Int64Array, lengths: Int64Array) -> None:
        self.data = data
        self.starts = starts
        self.lengths = lengths

    @classmethod
    def of(cls, column: pa.Array, max_width: int) -> _Text | None:
        if not pa.types.is_string(column.type) or column.null_count or len(column) == 0:
            return None
        _, offsets_buf, data_buf = column.buffers()
        offsets: Int64Array = np.frombuffer(
            offsets_buf, dtype=np.int32, count=len(column) + 1, offset=column.offset * 4
        ).astype(np.int64)
        lengths = np.diff(offsets)
        if int(lengths.min()) < 1 or int(lengths.max()) > max_width or data_buf is None:
            return None
        data = np.frombuffer(data_buf, dtype=np.uint8)[offsets[0] : offsets[-1]]
        return cls(data, offsets[:-1] - offsets[0], lengths)

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


def _blockwise(column: pa.Array, parse: Callable[[pa.Array], Int64Array | None]) -> Int64Array | None:
    parts = []
    for start in range(0, len(column), _BLOCK_ROWS):
        part = parse(column.slice(start, _BLOCK_ROWS))
        if part is None:
            return None
        parts.append(part)
    return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else None


def _decimal(columns: list[_Bytes]) -> Int64Array | None:
    """The base-10 number each row's ASCII digits spell (most significant first); None if any is not a digit."""
    value = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        if not bool(np.all((column >= _ZERO) & (column <= _NINE))):
            return None
        value = value * 10 + (column - _ZERO)
    return value


def sizes(column: pa.Array) -> Int64Array | None:
    """Whole-share sizes written as 1 to 15 ASCII digits."""
    return _blockwise(column, _sizes_block)


def _sizes_block(column: pa.Array) -> Int64Array | None:
    text = _Text.of(column, _SIZE_WIDTH)
    if text is None:
        return None
    width = int(text.lengths.max())
    # Right-aligned over leading "0"s, which leave the number unchanged.
    return _decimal([text.padded_at(text.lengths - width + i) for i in range(width)])


def prices(column: pa.Array) -> Int64Array | None:
    """Dollar prices written as 1 to 9 digits, optionally a dot and up to 4 decimals, as $0.0001 units."""
    return _blockwise(column, _prices_block)


def _prices_block(column: pa.Array) -> Int64Array | None:
    text = _Text.of(column, _PRICE_WIDTH)
    if text is None:
        return None
    dot_at = np.flatnonzero(text.data == _DOT)
    dot_row = np.searchsorted(text.starts, dot_at, side="right") - 1
    dots = np.bincount(dot_row, minlength=len(text.lengths))
    dot = text.lengths.copy()
    dot[dot_row] = dot_at - text.starts[dot_row]
    decimals = np.where(dots == 1, text.lengths - dot - 1, 0)
    if bool(np.any((dots > 1) | (dot < 1) | (dot > _WHOLE_DIGITS) | (decimals > _DECIMALS))):
        return None
    # Dots aligned, "0" elsewhere: 9 whole-dollar digits then 4 decimals, which read together as units.
    whole = [text.padded_at(dot - _WHOLE_DIGITS + i) for i in range(_WHOLE_DIGITS)]
    return _decimal(whole + [text.padded_at(dot + 1 + i) for i in range(_DECIMALS)])


def timestamps(column: pa.Array) -> Int64Array | None:
    """`YYYY-MM-DD[T ]hh:mm:ss[.f{1,9}](Z|+00:00)` times as nanoseconds since the Unix epoch."""
    return _blockwise(column, _timestamps_block)


def _timestamps_block(column: pa.Array) -> Int64Array | None:
    text = _Text.of(column, _TS_WIDTH)
    if text is None or int(text.lengths.min()) < _TS_SHORTEST:
        return None
    zone = _zone_lengths(text)
    if zone is None:
        return None
    ns = _fraction_ns(text, text.lengths - zone)
    seconds = _whole_seconds(text)
    if ns is None or seconds is None:
        return None
    return seconds * 1_000_000_000 + ns


def _zone_lengths(text: _Text) -> Int64Array | None:
    """1 for a `Z` suffix, 6 for `+00:00`; None when any value has neither."""
    end = text.lengths
    zulu = text.byte_at(end - 1) == ord("Z")
    plus = np.ones(len(end), dtype=np.bool_)
    for back, char in zip(range(6, 0, -1), "+00:00", strict=True):
        plus &= text.byte_at(end - back) == ord(char)
    if not bool(np.all(zulu | plus)):
        return None
    return np.where(zulu, 1, 6).astype(np.int64)


def _fraction_ns(text: _Text, end: Int64Array) -> Int64Array | None:
    """Nanoseconds of the optional `.f{1,9}` written between position 19 and `end`."""
    has_fraction = end > _FRACTION_DOT
    count = np.where(has_fraction, end - _FRACTION_DOT - 1, 0)
    dotted = text.byte_at(_FRACTION_DOT) == _DOT
    if bool(np.any((end < _FRACTION_DOT) | (has_fraction & (~dotted | (count < 1) | (count > 9))))):
        return None
    # Left-aligned over trailing "0"s: ".115" reads as 115000000 ns.
    return _decimal([text.padded_at(_FRACTION_DOT + 1 + i, end) for i in range(9)])


def _whole_seconds(text: _Text) -> Int64Array | None:
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


def symbol_codes(column: pa.Array) -> tuple[Int64Array, list[str]] | None:
    """Each value's code and the distinct values, numbered in order of first appearance (as pyarrow's
    `dictionary_encode` numbers them); None for empty, very long or NUL-bearing values."""
    text = _Text.of(column, _SYMBOL_WIDTH)
    if text is None or bool(np.any(text.data == 0)):
        return None
    width = int(text.lengths.max())
    chars = np.column_stack([text.padded_at(i, fill=0) for i in range(width)])
    keys = chars.view(f"S{width}").ravel()
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    names = [bytes(value).decode("utf-8") for value in unique[order]]
    return rank[inverse.ravel()], names
