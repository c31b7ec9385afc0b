"""The adaptive fit: hand-computed wait costs on scripted books, determinism and the stored JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from repeg.errors import ConfigError
from repeg.lab.fit import FitConfig, FitRule, fit_adaptive, load_params, save_params, table_key
from repeg.lab.models import DataRef
from repeg.market.tape import SymbolQuotes, SymbolTrades

NS = 1_000_000_000
T0 = 1_514_903_400 * NS
BID, ASK = 1_000_000, 1_000_200  # $100.00 / $100.02: a 2-cent spread, half-spread 100 units
REF = DataRef(symbol="XXX", day=date(2018, 1, 2), quotes_file="q.csv", trades_file=None, digest="d")
CONFIG = FitConfig(grid_seconds=1.0, margin_seconds=0.0, horizons_s=(5.0, 10.0), offsets_ticks=(0, 1))


def _flat_book(seconds: int = 120) -> SymbolQuotes:
    n = seconds
    ts = T0 + np.arange(n, dtype=np.int64) * NS
    return SymbolQuotes(
        symbol="XXX",
        ts=ts,
        bid=np.full(n, BID, dtype=np.int64),
        bid_size=np.full(n, 100, dtype=np.int64),
        ask=np.full(n, ASK, dtype=np.int64),
        ask_size=np.full(n, 100, dtype=np.int64),
    )


def _prints_at_both_touches(seconds: int = 120, size: int = 500) -> SymbolTrades:
    ts = T0 + np.arange(2 * seconds, dtype=np.int64) * (NS // 2) + NS // 4
    price = np.where(np.arange(2 * seconds) % 2 == 0, BID, ASK).astype(np.int64)
    return SymbolTrades(symbol="XXX", ts=ts, price=price, size=np.full(2 * seconds, size, dtype=np.int64))


def _seen(row: tuple[float, ...], counts: tuple[int, ...]) -> set[float]:
    return {round(v, 6) for v, c in zip(row, counts, strict=True) if c > 0}


def test_paper_rest_on_a_still_book_never_fills_and_costs_the_half_spread() -> None:
    params = fit_adaptive(_flat_book(), REF, config=CONFIG)
    assert params.rule is FitRule.PAPER
    key = table_key(10.0, 0)
    assert _seen(params.wait_cost[key], params.counts[key]) == {100.0}


def test_queue_rest_at_the_touch_fills_once_prints_exceed_the_queue_and_earns_the_half_spread() -> None:
    # 100 shares displayed ahead + our 100 < 500 printed at our price within the first second.
    params = fit_adaptive(_flat_book(), REF, trades=_prints_at_both_touches(), config=CONFIG)
    key = table_key(5.0, 0)
    assert _seen(params.wait_cost[key], params.counts[key]) == {-100.0}


def test_queue_rest_one_tick_inside_fills_at_the_mid() -> None:
    params = fit_adaptive(_flat_book(), REF, trades=_prints_at_both_touches(), config=CONFIG)
    key = table_key(5.0, 1)
    assert _seen(params.wait_cost[key], params.counts[key]) == {0.0}


def test_queue_rest_behind_a_queue_larger_than_the_prints_does_not_fill() -> None:
    params = fit_adaptive(_flat_book(), REF, trades=_prints_at_both_touches(size=150), config=CONFIG)
    key = table_key(5.0, 0)  # 150 printed per touch per second, 200 needed: fills only after the second print
    assert _seen(params.wait_cost[key], params.counts[key]) == {-100.0}
    tight = FitConfig(grid_seconds=1.0, margin_seconds=0.0, horizons_s=(0.5,), offsets_ticks=(0,))
    params = fit_adaptive(_flat_book(), REF, trades=_prints_at_both_touches(size=150), config=tight)
    key = table_key(0.5, 0)  # within half a second only one print of 150 < 200: no fill, cross at the ask
    assert _seen(params.wait_cost[key], params.counts[key]) == {100.0}


def test_paper_rest_fills_when_the_far_touch_comes_to_the_limit() -> None:
    # Between the grid's whole seconds, valid quotes move: the ask comes down to $100.00 (resting buys fill), or
    # the bid goes up to $100.02 (resting sells fill). Locked or crossed quotes would fill nothing.
    book = _flat_book()
    n = len(book.ts)
    ts = np.concatenate([book.ts, book.ts + NS // 2])
    order = np.argsort(ts, kind="stable")
    bid = np.concatenate([book.bid, book.bid])
    ask = np.concatenate([book.ask, book.ask])
    bid[n + 3 :: 8], ask[n + 3 :: 8] = BID - 100, BID  # the ask comes down to a buy's limit at the bid
    bid[n + 7 :: 8], ask[n + 7 :: 8] = ASK, ASK + 100  # the bid comes up to a sell's limit at the ask
    sizes = np.full(2 * n, 100, dtype=np.int64)
    moved = SymbolQuotes("XXX", ts[order], bid[order], sizes, ask[order], sizes)
    params = fit_adaptive(moved, REF, config=CONFIG)
    key = table_key(10.0, 0)  # every 10-second window holds both kinds of instant
    assert _seen(params.wait_cost[key], params.counts[key]) == {-100.0}


def test_fit_is_deterministic() -> None:
    a = fit_adaptive(_flat_book(), REF, trades=_prints_at_both_touches(), config=CONFIG)
    b = fit_adaptive(_flat_book(), REF, trades=_prints_at_both_touches(), config=CONFIG)
    assert a.model_dump_json() == b.model_dump_json()


def test_cells_never_seen_and_without_prior_are_nan_and_round_trip(tmp_path: Path) -> None:
    params = fit_adaptive(_flat_book(), REF, config=CONFIG)
    key = table_key(5.0, 0)
    assert any(math.isnan(v) for v in params.wait_cost[key])
    path = tmp_path / "params.json"
    save_params(params, path)
    loaded = load_params(path)
    assert loaded.fit_data == REF
    assert loaded.cost(5.0, 0, int(np.argmax(params.counts[key]))) == pytest.approx(100.0)
    assert all(
        (math.isnan(a) and math.isnan(b)) or a == b
        for a, b in zip(loaded.wait_cost[key], params.wait_cost[key], strict=True)
    )


def test_unknown_params_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_text('{"schema_version": "other/9"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="schema"):
        load_params(path)


def test_day_shorter_than_the_longest_horizon_is_refused() -> None:
    with pytest.raises(ConfigError, match="shorter"):
        fit_adaptive(_flat_book(seconds=8), REF, config=CONFIG)


def test_a_fit_day_without_a_valid_quote_at_any_decision_instant_is_refused() -> None:
    # A day of locked quotes gave 0 samples and an all-empty table: the adaptive policy then never rests (it can
    # value no rest) and ran as a market order under the adaptive name, its fit reported as made.
    locked = _with_quotes_at(_flat_book(), slice(0, None), BID, BID)
    with pytest.raises(ConfigError, match="no valid quote"):
        fit_adaptive(locked, REF, config=CONFIG)


def test_queue_fit_counts_only_the_configured_share_of_each_print() -> None:
    # 500 printed per touch per half-second; at 20% only 100 count: the queue of 100 + our 100 needs two prints.
    half = FitConfig(
        grid_seconds=1.0, margin_seconds=0.0, horizons_s=(0.5,), offsets_ticks=(0,), print_share_pct=20
    )
    params = fit_adaptive(_flat_book(), REF, trades=_prints_at_both_touches(), config=half)
    key = table_key(0.5, 0)
    assert _seen(params.wait_cost[key], params.counts[key]) == {100.0}


def test_missing_params_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_params(tmp_path / "absent.json")


def test_a_params_file_that_is_not_utf8_is_a_config_error_naming_it(tmp_path: Path) -> None:
    # UnicodeDecodeError escaped: a traceback in a sweep's worker, a message naming no file in backtest.
    path = tmp_path / "params.json"
    path.write_bytes(b'{"schema_version": "caf\xe9"}')
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    assert (caught.value.key, caught.value.value) == ("params_file", str(path))


def _with_quotes_at(book: SymbolQuotes, every: slice, bid: int, ask: int) -> SymbolQuotes:
    b, a = book.bid.copy(), book.ask.copy()
    b[every], a[every] = bid, ask
    return SymbolQuotes("XXX", book.ts, b, book.bid_size, a, book.ask_size)


def test_paper_rest_does_not_fill_against_a_locked_quote() -> None:
    # A locked quote (bid == ask) is no market (assess_quote LOCKED; the simulator fills nothing against it): the
    # buy resting at the bid never fills and crosses at the ask, half a spread above the mid.
    locked = _with_quotes_at(_flat_book(), slice(3, None, 8), BID, BID)
    params = fit_adaptive(locked, REF, config=CONFIG)
    key = table_key(10.0, 0)
    assert _seen(params.wait_cost[key], params.counts[key]) == {100.0}


def test_crossed_quote_neither_fills_a_rest_nor_prices_the_cross() -> None:
    # bid $100.015 > ask $100.01: crossing is priced from the last valid quote's ask, and no rest fills against it.
    crossed = _with_quotes_at(_flat_book(), slice(3, None, 8), BID + 150, BID + 100)
    params = fit_adaptive(crossed, REF, config=CONFIG)
    for offset in (0, 1):
        key = table_key(5.0, offset)
        assert _seen(params.wait_cost[key], params.counts[key]) == {100.0}


def test_an_invalid_quote_in_the_lookback_does_not_make_a_flat_book_trend() -> None:
    # The trend compares the mid with the last valid mid `trend_lookback_s` earlier, never with a one-sided quote's.
    one_sided = _with_quotes_at(_flat_book(), slice(3, None, 8), BID, 0)
    params = fit_adaptive(one_sided, REF, config=CONFIG)
    counts = params.counts[table_key(5.0, 0)]
    assert sum(1 for c in counts if c > 0) == 1


def test_fit_counts_the_quotes_it_cannot_price_from() -> None:
    book = _with_quotes_at(_flat_book(), slice(3, None, 8), BID, BID)  # 15 locked
    book = _with_quotes_at(book, slice(5, None, 8), BID + 150, BID + 100)  # 15 crossed
    book = _with_quotes_at(book, slice(7, None, 8), BID, 0)  # 15 one-sided
    params = fit_adaptive(book, REF, config=CONFIG)
    assert params.invalid_quotes == 45


def _saved_then_edited(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    path = tmp_path / "params.json"
    save_params(fit_adaptive(_flat_book(), REF, config=CONFIG), path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    edit(raw)
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def test_a_params_file_whose_table_is_not_a_mapping_is_a_config_error_naming_it(tmp_path: Path) -> None:
    # `"wait_cost": [1, 2]` ended `repeg backtest` in an AttributeError traceback (exit 1).
    path = _saved_then_edited(tmp_path, lambda raw: raw.update(wait_cost=[1, 2]))
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    assert (caught.value.key, caught.value.value) == ("params_file", str(path))


def test_a_params_file_whose_rows_miss_cells_is_a_config_error_naming_it(tmp_path: Path) -> None:
    # Rows shorter than the config's cells loaded fine, then a decision in a cell past the row's end raised an
    # IndexError deep inside the backtest (traceback, exit 1).
    path = _saved_then_edited(
        tmp_path, lambda raw: raw.update(wait_cost={k: row[:3] for k, row in raw["wait_cost"].items()})
    )
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    assert (caught.value.key, caught.value.value) == ("params_file", str(path))
    assert "cells" in caught.value.reason


def test_a_params_file_whose_fit_span_has_no_utc_offset_is_a_config_error_naming_it(tmp_path: Path) -> None:
    # A fit span written without an offset loaded as naive times, then the in-sample check compared them with the
    # evaluation's UTC quotes and ended compare/backtest in a raw TypeError (exit 1).
    path = _saved_then_edited(
        tmp_path, lambda raw: raw.update(fit_span=["2018-01-02T14:30:00", "2018-01-02T21:00:00"])
    )
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    assert (caught.value.key, caught.value.value) == ("params_file", str(path))
