"""A quote or trade file's symbols as a plan names them (`plan_symbol`: trimmed, ASCII upper case)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from repeg.domain.plan import plan_symbol
from repeg.errors import QuoteFileError, SymbolSpellingError


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
            row, other_row = _first_row(codes, code), _first_row(codes, other)
            raise SymbolSpellingError(file, row, name, names[other], other_row=other_row, symbol=symbol)
        planned[symbol] = code
    return list(planned)


def _first_row(codes: NDArray[np.int64], code: int) -> int:
    """The record (from 1) where the symbol of `code` first appears."""
    return int(np.argmax(codes == code)) + 1
