"""Databento DBN files (written here with the `databento_dbn` encoder) into quote and trade tapes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import databento_dbn as dbn
import pytest
import zstandard

from repeg.errors import QuoteFileError
from repeg.market.databento_loader import TsField, load_dbn_quotes, load_dbn_trades
from repeg.market.tape import to_ns

T0 = to_ns(datetime(2018, 1, 2, 14, 30, tzinfo=UTC))
NANO = 1_000_000_000  # one dollar in DBN fixed-point


@dataclass
class _Interval:
    start_date: date
    end_date: date
    symbol: str


@dataclass
class _Mapping:
    raw_symbol: str
    intervals: list[_Interval]


def _metadata(schema: dbn.Schema, ids: dict[str, int]) -> bytes:
    mappings = [
        _Mapping(sym, [_Interval(date(2018, 1, 2), date(2018, 1, 3), str(iid))]) for sym, iid in ids.items()
    ]
    meta = dbn.Metadata(
        dataset="XNAS.ITCH",
        start=T0,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=schema,
        symbols=list(ids),
        mappings=mappings,
        end=T0 + 3600 * NANO,
    )
    return bytes(meta)


def _mbp1(
    iid: int, t_us: int, bid: int, ask: int, *, trade: int | None = None, ask_px: int | None = None
) -> bytes:
    level = dbn.BidAskPair(bid_px=bid, ask_px=ask if ask_px is None else ask_px, bid_sz=300, ask_sz=500)
    return bytes(
        dbn.MBP1Msg(
            publisher_id=1,
            instrument_id=iid,
            ts_event=T0 + t_us * 1000,
            price=trade or bid,
            size=100 if trade else 300,
            action=dbn.Action.TRADE if trade else dbn.Action.ADD,
            side=dbn.Side.BID,
            depth=0,
            ts_recv=T0 + t_us * 1000 + 7,
            levels=level,
        )
    )


def _trade(k: int, *, price: int = 157 * NANO, size: int = 10, ts_recv: int | None = None) -> bytes:
    """The k-th print of a trades file (received 5 ns after its event unless `ts_recv` is given)."""
    return bytes(
        dbn.TradeMsg(
            publisher_id=1,
            instrument_id=42,
            ts_event=T0 + k,
            price=price,
            size=size,
            action=dbn.Action.TRADE,
            side=dbn.Side.ASK,
            depth=0,
            ts_recv=T0 + k + 5 if ts_recv is None else ts_recv,
        )
    )


def _write(tmp_path: Path, name: str, payload: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(payload)
    return path


@pytest.fixture
def mbp1_file(tmp_path: Path) -> Path:
    payload = _metadata(dbn.Schema.MBP_1, {"XXX": 42, "YYY": 7})
    payload += _mbp1(42, 0, 157_010_000_000, 157_050_000_000)
    payload += _mbp1(7, 1, 20_000_000_000, 20_010_000_000)
    payload += _mbp1(42, 2, 157_010_000_000, 157_050_000_000, trade=157_030_000_000)
    payload += _mbp1(42, 3, 157_020_000_000, 157_040_000_000)
    return _write(tmp_path, "q.mbp-1.dbn", payload)


def test_mbp1_quotes_split_by_symbol_with_exact_units(mbp1_file: Path) -> None:
    tape = load_dbn_quotes(mbp1_file)
    assert set(tape.symbols) == {"XXX", "YYY"}
    xxx = tape.columns("XXX")
    assert xxx.bid.tolist() == [1_570_100, 1_570_100, 1_570_200]
    assert xxx.ask.tolist() == [1_570_500, 1_570_500, 1_570_400]
    assert xxx.bid_size.tolist() == [300, 300, 300]
    assert xxx.ask_size.tolist() == [500, 500, 500]
    assert tape.columns("YYY").bid.tolist() == [200_000]


def test_quote_time_is_ts_recv_unless_ts_event_is_asked_for(mbp1_file: Path) -> None:
    assert load_dbn_quotes(mbp1_file).columns("XXX").ts[0] == T0 + 7
    assert load_dbn_quotes(mbp1_file, TsField.EVENT).columns("XXX").ts[0] == T0


def test_mbp1_trades_are_the_trade_actions_only(mbp1_file: Path) -> None:
    trades = load_dbn_trades(mbp1_file)
    assert trades.symbols == ("XXX",)
    cols = trades.columns("XXX")
    assert cols.price.tolist() == [1_570_300]
    assert cols.size.tolist() == [100]
    assert cols.ts.tolist() == [T0 + 2_000 + 7]


def test_trades_schema_file_loads_every_print(tmp_path: Path) -> None:
    payload = _metadata(dbn.Schema.TRADES, {"XXX": 42})
    for k in range(3):
        payload += _trade(k, price=(157 + k) * NANO, size=10 * (k + 1))
    cols = load_dbn_trades(_write(tmp_path, "t.dbn", payload)).columns("XXX")
    assert cols.price.tolist() == [1_570_000, 1_580_000, 1_590_000]
    assert cols.size.tolist() == [10, 20, 30]


def test_a_trade_without_a_price_is_refused_with_its_record(tmp_path: Path) -> None:
    # An undefined quote side is "no quote" (0); a print at $0 would count as one through every buy limit.
    payload = _metadata(dbn.Schema.TRADES, {"XXX": 42})
    for k, price in enumerate([157 * NANO, dbn.UNDEF_PRICE]):
        payload += _trade(k, price=price)
    with pytest.raises(QuoteFileError, match="row 2: trade price"):
        load_dbn_trades(_write(tmp_path, "t.dbn", payload))


@pytest.mark.parametrize("price", [0, -157 * NANO])
def test_a_trade_at_a_price_not_above_zero_is_refused_with_its_record(tmp_path: Path, price: int) -> None:
    """The CSV and Parquet loaders refuse a print at $0 (it would fill every resting buy limit through the queue
    model); a DBN print at 0 or below was taken as a print."""
    payload = _metadata(dbn.Schema.TRADES, {"XXX": 42})
    for k, px in enumerate([157 * NANO, price]):
        payload += _trade(k, price=px)
    with pytest.raises(QuoteFileError, match="row 2: trade price"):
        load_dbn_trades(_write(tmp_path, "t.dbn", payload))


def test_a_record_without_its_time_is_refused_naming_the_time_field(tmp_path: Path) -> None:
    """DBN's undefined timestamp (2**64 - 1) read as int64 is -1 ns: the record was refused as "instrument id 42
    has no symbol mapping on 1969-12-31", sending the user after a symbology that is fine."""
    payload = _metadata(dbn.Schema.TRADES, {"XXX": 42})
    for k, ts_recv in enumerate([T0 + 5, dbn.UNDEF_TIMESTAMP]):
        payload += _trade(k, ts_recv=ts_recv)
    with pytest.raises(QuoteFileError, match="row 2: ts_recv is undefined"):
        load_dbn_trades(_write(tmp_path, "t.dbn", payload))
    assert load_dbn_trades(tmp_path / "t.dbn", TsField.EVENT).columns("XXX").ts.tolist() == [T0, T0 + 1]


def test_an_undefined_side_becomes_a_zero_price(tmp_path: Path) -> None:
    payload = _metadata(dbn.Schema.MBP_1, {"XXX": 42}) + _mbp1(42, 0, 157 * NANO, 0, ask_px=dbn.UNDEF_PRICE)
    cols = load_dbn_quotes(_write(tmp_path, "q.dbn", payload)).columns("XXX")
    assert cols.ask.tolist() == [0]
    assert cols.bid.tolist() == [1_570_000]


def test_a_price_finer_than_the_tape_unit_is_refused_with_its_record(tmp_path: Path) -> None:
    payload = _metadata(dbn.Schema.MBP_1, {"XXX": 42})
    payload += _mbp1(42, 0, 157 * NANO, 158 * NANO) + _mbp1(42, 1, 157 * NANO + 1, 158 * NANO)
    with pytest.raises(QuoteFileError, match=r"row 2: bid 157000000001e-9 is finer than \$0\.0001"):
        load_dbn_quotes(_write(tmp_path, "q.dbn", payload))


def test_an_instrument_without_a_mapping_is_refused(tmp_path: Path) -> None:
    payload = _metadata(dbn.Schema.MBP_1, {"XXX": 42}) + _mbp1(99, 0, 157 * NANO, 158 * NANO)
    with pytest.raises(QuoteFileError, match="instrument id 99 has no symbol mapping"):
        load_dbn_quotes(_write(tmp_path, "q.dbn", payload))


def test_a_schema_without_quotes_is_refused_for_quotes(tmp_path: Path) -> None:
    payload = _metadata(dbn.Schema.TRADES, {"XXX": 42})
    with pytest.raises(QuoteFileError, match="schema 'trades' is not one of"):
        load_dbn_quotes(_write(tmp_path, "t.dbn", payload))


def test_a_dbn_file_cut_inside_its_metadata_is_refused_as_unreadable(tmp_path: Path) -> None:
    """A download cut short in its header raised databento_dbn's own `DBNError` (no OSError nor ValueError):
    an internal error instead of a file named as unreadable."""
    payload = _metadata(dbn.Schema.MBP_1, {"XXX": 42}) + _mbp1(42, 0, 157 * NANO, 158 * NANO)
    with pytest.raises(QuoteFileError, match="not a readable DBN file"):
        load_dbn_quotes(_write(tmp_path, "q.dbn", payload[:40]))


def test_a_dbn_file_cut_inside_a_record_is_refused_not_loaded_short(tmp_path: Path) -> None:
    """A download cut inside its last record loaded the records before it with only a Python warning: a
    backtest ran on part of the day, as a cut .csv.gz never does (it is refused as unreadable)."""
    payload = _metadata(dbn.Schema.MBP_1, {"XXX": 42})
    payload += _mbp1(42, 0, 157 * NANO, 158 * NANO) + _mbp1(42, 1, 157 * NANO, 158 * NANO)
    with pytest.raises(QuoteFileError, match="truncated"):
        load_dbn_quotes(_write(tmp_path, "q.dbn", payload[:-10]))


def test_a_zstd_file_cut_inside_its_frame_is_refused_even_at_a_record_boundary(tmp_path: Path) -> None:
    """A .dbn.zst download cut inside its zstd frame decodes to whole blocks; where a block ends on a record (a
    streaming writer flushes per record) the records before the cut loaded with no word: a backtest on part of
    the day. The frame's missing end says the file was cut."""
    compressor = zstandard.ZstdCompressor().compressobj()
    parts = [compressor.compress(_metadata(dbn.Schema.TRADES, {"XXX": 42}))]
    for k in range(3):
        parts.append(compressor.compress(_trade(k)) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    parts.append(compressor.flush())
    whole = _write(tmp_path, "t.dbn.zst", b"".join(parts))
    assert load_dbn_trades(whole).columns("XXX").size.tolist() == [10, 10, 10]
    with pytest.raises(QuoteFileError, match="truncated"):
        load_dbn_trades(_write(tmp_path, "cut.dbn.zst", b"".join(parts[:-2])))


def test_a_zstd_file_of_several_frames_loads_whole(tmp_path: Path) -> None:
    """Guard: a complete file written as several zstd frames (as concatenated downloads are) is no cut file."""
    payload = _metadata(dbn.Schema.TRADES, {"XXX": 42}) + _trade(0) + _trade(1)
    frames = b"".join(zstandard.ZstdCompressor().compress(part) for part in (payload[:100], payload[100:]))
    assert load_dbn_trades(_write(tmp_path, "t.dbn.zst", frames)).columns("XXX").size.tolist() == [10, 10]


def test_a_damaged_zstd_file_is_refused_as_unreadable_not_a_raw_zstd_error(tmp_path: Path) -> None:
    """Bytes after the last frame that are no zstd frame (a damaged or appended-to download) raised zstandard's
    own `ZstdError`: an internal error, where a damaged .csv.gz is a file named as unreadable."""
    payload = _metadata(dbn.Schema.TRADES, {"XXX": 42}) + _trade(0)
    damaged = zstandard.ZstdCompressor().compress(payload) + b"\x00damaged"
    with pytest.raises(QuoteFileError, match="not a readable DBN file"):
        load_dbn_trades(_write(tmp_path, "t.dbn.zst", damaged))


def test_a_file_that_is_not_dbn_is_refused(tmp_path: Path) -> None:
    with pytest.raises(QuoteFileError, match="not a readable DBN file"):
        load_dbn_quotes(_write(tmp_path, "x.dbn", b"ts,symbol\n"))


def test_bbo_1s_file_loads_its_quotes(tmp_path: Path) -> None:
    payload = _metadata(dbn.Schema.BBO_1S, {"XXX": 42})
    for k in range(2):
        level = dbn.BidAskPair(bid_px=(157 + k) * NANO, ask_px=(158 + k) * NANO, bid_sz=100, ask_sz=200)
        payload += bytes(
            dbn.BBOMsg(
                rtype=int(dbn.RType.BBO_1S),
                publisher_id=1,
                instrument_id=42,
                ts_event=T0 + k * NANO,
                price=(157 + k) * NANO,
                size=1,
                side=dbn.Side.NONE,
                ts_recv=T0 + (k + 1) * NANO,
                levels=level,
            )
        )
    cols = load_dbn_quotes(_write(tmp_path, "b.dbn", payload)).columns("XXX")
    assert cols.bid.tolist() == [1_570_000, 1_580_000]
    assert cols.ask.tolist() == [1_580_000, 1_590_000]
    assert cols.ts.tolist() == [T0 + NANO, T0 + 2 * NANO]
