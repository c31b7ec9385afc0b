"""Databento DBN files (mbp-1, bbo, tbbo, trades) into the columnar `QuoteTape` / `TradeTape`.

Read with the official `databento` package (`DBNStore`, plain or zstd-compressed ``.dbn``/``.dbn.zst``).

Conversions, all exact and vectorised:

- Prices: DBN fixed-point nanodollars (1e-9) become $0.0001 units by an exact division by 100,000; a price off
  that grid is a `QuoteFileError` naming the record (a US equity quote never is one). An undefined price (a side
  with no quote, DBN's ``UNDEF_PRICE``) becomes 0, the tape's "no quote on that side"; a trade print at an
  undefined price, or at $0 or below, is refused with its record, as the CSV loader refuses a print at $0.
- Time: ``ts_recv`` by default (when the record was captured: the moment a strategy could have acted on it; and
  the order DBN files are written in), or ``ts_event`` (the venue's matching time) on request. Nanoseconds UTC.
- Symbols: instrument ids resolve through the file's own symbology mappings on each record's UTC date; a record
  whose id has no mapping is refused (never guessed).
- Quotes come from the book side of mbp-1, bbo-1s/1m, tbbo and cbbo records; trades from records whose action is
  Trade (every record of `trades` and `tbbo`, the `T` updates of `mbp-1`).
"""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from repeg.errors import QuoteFileError
from repeg.market.tape import Int64Array, QuoteTape, SymbolQuotes, SymbolTrades, TradeTape

#: DBN fixed-point prices are in units of 1e-9 dollars; the tape's unit is 1e-4 dollars.
NANOS_PER_UNIT = 100_000
UNDEF_PRICE = np.iinfo(np.int64).max
UNDEF_TIMESTAMP = np.iinfo(np.uint64).max
_NS_PER_DAY = 86_400 * 1_000_000_000
QUOTE_SCHEMAS = frozenset({"mbp-1", "bbo-1s", "bbo-1m", "tbbo", "cbbo-1s", "cbbo-1m", "cmbp-1", "tcbbo"})
TRADE_SCHEMAS = frozenset({"trades", "mbp-1", "tbbo", "cmbp-1", "tcbbo"})


class TsField(StrEnum):
    RECV = "ts_recv"
    EVENT = "ts_event"


class _SymbolResolver(Protocol):
    def resolve(self, instrument_id: int, date: date) -> str | None: ...


def _open(path: Path) -> tuple[str, npt.NDArray[np.void], _SymbolResolver]:
    """Schema, records and the file's own symbology (instrument id and date -> symbol) of a DBN file."""
    import databento as db
    from databento.common.error import BentoError, BentoWarning
    from databento.common.symbology import InstrumentMap
    from databento_dbn import DBNError
    from zstandard import ZstdError

    instruments = InstrumentMap()
    try:
        with warnings.catch_warnings():  # databento only warns of a cut-off last record, and drops it
            warnings.filterwarnings("error", message=".*truncated.*", category=BentoWarning)
            store = db.DBNStore.from_file(path)
            records = store.to_ndarray()
        instruments.insert_metadata(store.metadata)
        if str(store.compression) == "zstd" and not _zstd_frames_complete(path):  # stub: ZSTD is a str
            raise QuoteFileError(str(path), None, "truncated: the zstd stream ends inside a frame")
    except BentoWarning as exc:
        raise QuoteFileError(str(path), None, f"truncated: {exc}") from exc
    except (OSError, ValueError, RuntimeError, BentoError, DBNError, ZstdError) as exc:
        raise QuoteFileError(str(path), None, f"not a readable DBN file: {exc}") from exc
    schema = "" if store.schema is None else str(store.schema)
    resolver: _SymbolResolver = instruments
    return schema, records, resolver


def _zstd_frames_complete(path: Path) -> bool:
    """Whether a zstd file ends where a frame ends. A download cut inside a frame decodes to whole blocks, and
    where a block ends on a record (a streaming writer flushes per record) DBN alone cannot tell it was cut."""
    import zstandard

    ended = True
    frame = zstandard.ZstdDecompressor().decompressobj()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            while chunk:
                frame.decompress(chunk)  # output dropped: databento reads the records; only the end matters
                ended = frame.eof
                chunk = frame.unused_data if ended else b""  # after a frame's end: the next frame's start
                if ended:
                    frame = zstandard.ZstdDecompressor().decompressobj()
    return ended


def _symbols(
    file: str, iids: Int64Array, ts: Int64Array, record_no: Int64Array, resolver: _SymbolResolver
) -> npt.NDArray[np.str_]:
    """The symbol of every record, from its instrument id on its UTC date."""
    day_index = ts // _NS_PER_DAY
    out = np.empty(len(iids), dtype=object)
    for iid, day in sorted(set(zip(iids.tolist(), day_index.tolist(), strict=True))):
        rows = (iids == iid) & (day_index == day)
        when = datetime.fromtimestamp(day * 86_400, tz=UTC).date()
        symbol = resolver.resolve(iid, when)
        if symbol is None:
            first = int(record_no[np.flatnonzero(rows)[0]])
            raise QuoteFileError(
                file, first, f"instrument id {iid} has no symbol mapping on {when.isoformat()}"
            )
        out[rows] = symbol
    return out.astype(str)


def _units(file: str, nanos: Int64Array, what: str, record_no: Int64Array) -> Int64Array:
    """Exact $0.0001 units of fixed-point prices; undefined prices become 0."""
    defined = nanos != UNDEF_PRICE
    off_grid = defined & (nanos % NANOS_PER_UNIT != 0)
    if bool(off_grid.any()):
        at = int(np.flatnonzero(off_grid)[0])
        raise QuoteFileError(file, int(record_no[at]), f"{what} {int(nanos[at])}e-9 is finer than $0.0001")
    return np.where(defined, nanos // NANOS_PER_UNIT, 0).astype(np.int64)


def _times(file: str, stamps: npt.NDArray[np.uint64], field: TsField, record_no: Int64Array) -> Int64Array:
    """Nanoseconds UTC; an undefined time (DBN's ``UNDEF_TIMESTAMP``, -1 ns as int64) is refused with its record."""
    undefined = stamps == UNDEF_TIMESTAMP
    if bool(undefined.any()):
        at = int(np.flatnonzero(undefined)[0])
        raise QuoteFileError(file, int(record_no[at]), f"{field.value} is undefined")
    return stamps.astype(np.int64)


def _check_schema(file: str, schema: str, allowed: frozenset[str]) -> None:
    if schema not in allowed:
        raise QuoteFileError(file, None, f"schema {schema!r} is not one of {sorted(allowed)}")


def _by_symbol(symbols: npt.NDArray[np.str_], ts: Int64Array) -> dict[str, Int64Array]:
    """Row indices per symbol, in time order (stable: records at the same instant keep the file's order)."""
    order = np.argsort(ts, kind="stable")
    return {str(s): order[symbols[order] == s] for s in np.unique(symbols)}


def load_dbn_quotes(path: Path | str, ts_field: TsField = TsField.RECV) -> QuoteTape:
    """Top-of-book quotes of every symbol in a DBN file of a quote-bearing schema."""
    file = str(path)
    schema, records, resolver = _open(Path(path))
    _check_schema(file, schema, QUOTE_SCHEMAS)
    if len(records) == 0:
        raise QuoteFileError(file, None, "the file holds no records")
    record_no = np.arange(1, len(records) + 1, dtype=np.int64)
    ts = _times(file, records[ts_field.value], ts_field, record_no)
    bid = _units(file, records["bid_px_00"].astype(np.int64), "bid", record_no)
    ask = _units(file, records["ask_px_00"].astype(np.int64), "ask", record_no)
    bid_size = records["bid_sz_00"].astype(np.int64)
    ask_size = records["ask_sz_00"].astype(np.int64)
    iids = records["instrument_id"].astype(np.int64)
    groups = _by_symbol(_symbols(file, iids, ts, record_no, resolver), ts)
    return QuoteTape(
        SymbolQuotes(
            symbol=sym,
            ts=ts[rows],
            bid=bid[rows],
            bid_size=bid_size[rows],
            ask=ask[rows],
            ask_size=ask_size[rows],
        )
        for sym, rows in groups.items()
    )


def load_dbn_trades(path: Path | str, ts_field: TsField = TsField.RECV) -> TradeTape:
    """Trade prints of every symbol in a DBN file of a trade-bearing schema (records with action Trade)."""
    file = str(path)
    schema, records, resolver = _open(Path(path))
    _check_schema(file, schema, TRADE_SCHEMAS)
    is_trade = records["action"] == b"T"
    record_no = (np.flatnonzero(is_trade) + 1).astype(np.int64)
    trades = records[is_trade]
    ts = _times(file, trades[ts_field.value], ts_field, record_no)
    nanos = trades["price"].astype(np.int64)
    if bool((nanos == UNDEF_PRICE).any()):  # a print without a price is no print (0 would read as $0)
        at = int(np.flatnonzero(nanos == UNDEF_PRICE)[0])
        raise QuoteFileError(file, int(record_no[at]), "trade price is undefined")
    if bool((nanos <= 0).any()):  # as the CSV loader: a print at $0 or below is no print (it fills every buy)
        at = int(np.flatnonzero(nanos <= 0)[0])
        raise QuoteFileError(file, int(record_no[at]), f"trade price {int(nanos[at])}e-9 is not positive")
    price = _units(file, nanos, "trade price", record_no)
    size = trades["size"].astype(np.int64)
    iids = trades["instrument_id"].astype(np.int64)
    groups = _by_symbol(_symbols(file, iids, ts, record_no, resolver), ts)
    return TradeTape(
        SymbolTrades(symbol=sym, ts=ts[rows], price=price[rows], size=size[rows])
        for sym, rows in groups.items()
    )
