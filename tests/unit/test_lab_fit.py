"""The adaptive fit: hand-computed wait costs on scripted books, determinism and the stored JSON."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

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
    book = _flat_book()
    bid, ask = book.bid.copy(), book.ask.copy()
    ask[3::8] = BID  # the ask drops onto the bid: resting buys fill
    bid[7::8] = ASK  # the bid rises onto the ask: resting sells fill
    moved = SymbolQuotes("XXX", book.ts, bid, book.bid_size, ask, book.ask_size)
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
