"""A quote or trade file's symbols as a plan names them (`plan_symbol`: trimmed, ASCII upper case)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from repeg.domain.plan import plan_symbol
from repeg.errors import QuoteFileError


def as_planned(file: str, codes: NDArray[np.int64], names: list[str]) -> list[str]:
    """The symbols as a plan names them, so that a plan's "aaa" meets the file's "aaa". A blank symbol, or two
    spellings that would become one symbol ("aaa" and "AAA": whose quotes are whose would be a guess), is refused
    naming the row where the later one first appears."""
    planned: dict[str, int] = {}
    for code, name in enumerate(names):
        try:
            symbol = plan_symbol(name)
        except ValueError:
            raise QuoteFileError(file, _first_row(codes, code), f"symbol: blank, got {name!r}") from None
        if symbol in planned:
            other = planned[symbol]
            reason = (
                f"symbol: {name!r} and {names[other]!r} (row {_first_row(codes, other)}) are one symbol, "
                f"{symbol}: write it one way"
            )
            raise QuoteFileError(file, _first_row(codes, code), reason)
        planned[symbol] = code
    return list(planned)


def _first_row(codes: NDArray[np.int64], code: int) -> int:
    """The record (from 1) where the symbol of `code` first appears."""
    return int(np.argmax(codes == code)) + 1
