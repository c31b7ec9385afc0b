"""Exact, vectorised parsing of well-formed CSV text columns with numpy alone, so reading a clean file never
imports pyarrow.compute (about 50 ms of a process's start-up, more than parsing a day of quotes takes).

Each function reads a pyarrow `string` array's buffers directly and either returns exactly what the loader's
pyarrow.compute path returns for that column, or `None` ("declined") when any value falls outside the plain
shape it recognises: then the loader runs its pyarrow.compute path, which accepts or rejects the values and
words its errors as it always has. So these functions decide nothing about validity; declining is always safe,
and they decline well before the edge cases (leap seconds, far years, very long values, non-ASCII bytes).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

Int64Array = NDArray[np.int64]
_Bytes = NDArray[np.uint8]

_ZERO = ord("0")
#: Longest value each parser looks at: 9 + 1 + 4 price characters; 15 size digits; ISO time with 9 decimals.
_PRICE_WIDTH = 14
_SIZE_WIDTH = 15
_TS_WIDTH = 35
_SYMBOL_WIDTH = 64
#: Times outside these years are left to pyarrow (int64 nanoseconds end in 2262).
_FIRST_YEAR = 1900
_LAST_YEAR = 2200
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_PRICE_SCALE = np.array([10_000, 1_000, 100, 10, 1], dtype=np.int64)
_NS_SCALE = np.array([10**k for k in range(9, -1, -1)], dtype=np.int64)


class _Text:
    """A null-free `string` array of non-empty values as its UTF-8 bytes, each value's start offset and length."""

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
        return cls(np.frombuffer(data_buf, dtype=np.uint8), offsets[:-1], lengths)

    def at(self, position: int | Int64Array) -> _Bytes:
        """Each value's byte at `position` (a constant or one per value), 0 where the value is shorter."""
        inside = (position >= 0) & (position < self.lengths)
        index = np.where(inside, self.starts + position, 0)
        return np.where(inside, self.data[index], 0).astype(np.uint8)

    def digit_at(self, position: int) -> Int64Array:
        """Each value's digit at `position` as a number; -1 where it is not an ASCII digit or is past the end."""
        char = self.at(position).astype(np.int64) - _ZERO
        return np.where((char >= 0) & (char <= 9), char, -1)


def _digits_value(
    text: _Text, first: int, end: Int64Array, skip: Int64Array | None = None
) -> Int64Array | None:
    """Integer value of the digits at [first, end) of each value (jumping the position `skip`); None if any
    character there is not a digit."""
    value = np.zeros(len(text.lengths), dtype=np.int64)
    for position in range(first, int(end.max(initial=first))):
        used = position < end
        if skip is not None:
            used &= position != skip
        digit = text.digit_at(position)
        if bool(np.any(used & (digit < 0))):
            return None
        value = np.where(used, value * 10 + digit, value)
    return value


def sizes(column: pa.Array) -> Int64Array | None:
    """Whole-share sizes written as 1 to 15 ASCII digits."""
    text = _Text.of(column, _SIZE_WIDTH)
    if text is None:
        return None
    return _digits_value(text, 0, text.lengths)


def prices(column: pa.Array) -> Int64Array | None:
    """Dollar prices written as 1 to 9 digits, optionally a dot and up to 4 decimals, as $0.0001 units."""
    text = _Text.of(column, _PRICE_WIDTH)
    if text is None:
        return None
    width = int(text.lengths.max())
    dots = np.stack([text.at(p) == ord(".") for p in range(width)], axis=1)
    if bool(np.any(dots.sum(axis=1) > 1)):
        return None
    has_dot = dots.any(axis=1)
    dot = np.where(has_dot, dots.argmax(axis=1), text.lengths)
    decimals = np.where(has_dot, text.lengths - dot - 1, 0)
    if bool(np.any((dot < 1) | (dot > 9) | (decimals > 4))):
        return None
    units = _digits_value(text, 0, text.lengths, skip=np.where(has_dot, dot, -1))
    return None if units is None else units * _PRICE_SCALE[decimals]


def timestamps(column: pa.Array) -> Int64Array | None:
    """`YYYY-MM-DD[T ]hh:mm:ss[.f{1,9}](Z|+00:00)` times as nanoseconds since the Unix epoch."""
    text = _Text.of(column, _TS_WIDTH)
    if text is None or int(text.lengths.min()) < 20:
        return None
    zone = _zone_lengths(text)
    if zone is None:
        return None
    fraction_end = text.lengths - zone
    ns = _fraction_ns(text, fraction_end)
    seconds = _whole_seconds(text)
    if ns is None or seconds is None:
        return None
    return seconds * 1_000_000_000 + ns


def _zone_lengths(text: _Text) -> Int64Array | None:
    """1 for a `Z` suffix, 6 for `+00:00`; None when any value has neither."""
    end = text.lengths
    zulu = text.at(end - 1) == ord("Z")
    plus = np.ones(len(end), dtype=np.bool_)
    for back, char in zip(range(6, 0, -1), "+00:00", strict=True):
        plus &= text.at(end - back) == ord(char)
    if not bool(np.all(zulu | plus)):
        return None
    return np.where(zulu, 1, 6).astype(np.int64)


def _fraction_ns(text: _Text, end: Int64Array) -> Int64Array | None:
    """Nanoseconds of the optional `.f{1,9}` between position 19 and `end`."""
    count = np.where(end > 19, end - 20, 0)
    dotted = text.at(19) == ord(".")
    if bool(np.any((end > 19) & (~dotted | (count < 1) | (count > 9)))) or bool(np.any(end < 19)):
        return None
    value = _digits_value(text, 20, np.where(end > 19, end, 20))
    return None if value is None else value * _NS_SCALE[count]


def _field(text: _Text, first: int, width: int) -> Int64Array | None:
    return _digits_value(text, first, np.full(len(text.lengths), first + width, dtype=np.int64))


def _whole_seconds(text: _Text) -> Int64Array | None:
    """Seconds since the epoch of the `YYYY-MM-DD[T ]hh:mm:ss` prefix; None unless it is a real UTC time."""
    for position, char in ((4, "-"), (7, "-"), (13, ":"), (16, ":")):
        if not bool(np.all(text.at(position) == ord(char))):
            return None
    separator = text.at(10)
    if not bool(np.all((separator == ord("T")) | (separator == ord(" ")))):
        return None
    fields: list[Int64Array] = []
    for first, width in ((0, 4), (5, 2), (8, 2), (11, 2), (14, 2), (17, 2)):
        value = _field(text, first, width)
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
    if text is None:
        return None
    width = int(text.lengths.max())
    matrix = np.stack([text.at(p) for p in range(width)], axis=1)
    if bool(np.any(matrix[np.arange(width) < text.lengths[:, None]] == 0)):
        return None
    keys = np.ascontiguousarray(matrix).view(f"S{width}").ravel()
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    names = [bytes(value).decode("utf-8") for value in unique[order]]
    return rank[inverse.ravel()], names
