"""A reproducible fit of the adaptive policy's parameters, on a FIT day only.

What is estimated. At a decision instant t a buyer can cross now, paying the current half-spread above the mid, or
rest a limit at ``bid + offset`` ticks for h seconds and cross at t + h if it did not fill. For every cell of the
top-of-book state (spread bucket x near-side size imbalance bucket x recent mid trend bucket), every horizon h and
every offset, the fit estimates the expected cost of the second choice, relative to the mid at t, from the FIT
day's own quotes (and trades for the queue rule):

    wait_cost(cell, h, offset) = E[ paid - mid_t | state at t in cell ],
    paid = L if the rest at L filled within h, else the ask in force at t + h.

"Filled" follows the fill rule the parameters are fitted for: `paper` (the ask came down to L) or `queue` (that,
or the prints at or through L within h exceeded the displayed size ahead of us at t plus our own quantity; a limit
improving on the bid has nobody ahead). Sells are fitted as buys on the mirrored book (prices negated, sides
swapped) and pooled with buys, so the table is side-free: imbalance is the *near* side's share, trend is signed so
that positive means the market moved against the order.

Only valid quotes (both sides > 0, bid < ask: the engine's `assess_quote` and the simulator's fill rule) are a
market: a zero, one-sided, locked or crossed quote fills no rest, prices no cross and is no trend reference; the
result counts them (`invalid_quotes`).

Sampling: decision instants on a regular grid (`grid_seconds`) from the first quote plus `margin_seconds` to the
last quote minus the longest horizon, each with the quote in force. Cells with few samples are shrunk toward their
spread bucket's mean: ``(sum + k * prior) / (n + k)`` with ``k = shrink``. Everything is a deterministic function of
the data and `FitConfig`; the stored JSON names the data's digest so a result can be traced to its inputs.

Known limits: the fit is myopic (it values one rest-then-cross, not the option of re-deciding later, so it
undervalues waiting a little); it ignores the price improvement of a limit that the ask gaps through; queue
positions are estimated from the size displayed at t only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from repeg.errors import ConfigError
from repeg.lab.models import DataRef
from repeg.market.tape import SymbolQuotes, SymbolTrades, from_ns

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

PARAMS_SCHEMA = "repeg.adaptive/1"
_NS = 1_000_000_000
_NEVER = np.iinfo(np.int64).max // 4


class FitRule(StrEnum):
    PAPER = "paper"
    QUEUE = "queue"


class FitConfig(BaseModel):
    """Every choice of the fit, stored with its result."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    grid_seconds: float = Field(default=1.0, gt=0)
    margin_seconds: float = Field(default=60.0, ge=0)
    horizons_s: tuple[float, ...] = (5.0, 10.0, 20.0, 30.0, 45.0, 60.0)
    offsets_ticks: tuple[int, ...] = (0, 1)
    tick_units: int = Field(default=100, gt=0)
    #: Upper edges (inclusive, $0.0001 units) of the spread buckets; one more bucket holds wider spreads.
    spread_edges: tuple[int, ...] = (100, 200, 300, 400)
    imbalance_edges: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    trend_lookback_s: float = Field(default=5.0, gt=0)
    shrink: float = Field(default=20.0, ge=0)
    order_qty: int = Field(default=100, gt=0)
    #: Queue rule only: the share (percent) of each print that could have traded against our order.
    print_share_pct: int = Field(default=100, gt=0, le=100)

    @property
    def n_cells(self) -> int:
        return (len(self.spread_edges) + 1) * (len(self.imbalance_edges) + 1) * 3


class AdaptiveParams(BaseModel):
    """The fitted table: `wait_cost[f"{h}:{offset}"][cell]` in $0.0001 units relative to the mid at decision."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: str = PARAMS_SCHEMA
    rule: FitRule
    fit_data: DataRef
    config: FitConfig
    samples: int
    #: Quotes of the day that are no market (zero, one-sided, locked or crossed): never priced from or filled against.
    invalid_quotes: int = 0
    wait_cost: dict[str, tuple[float, ...]]
    counts: dict[str, tuple[int, ...]]
    #: UTC times of the first and last quote fitted on (a fit file may hold several days), so that a saved file is
    #: refused for any evaluation inside them (`repeg.lab.compare`); None in files saved before it. Times without
    #: an offset are refused: they cannot be set against the evaluation's UTC quotes.
    fit_span: tuple[AwareDatetime, AwareDatetime] | None = None

    @model_validator(mode="after")
    def _a_value_per_cell(self) -> AdaptiveParams:
        """Every row holds one value per cell of the config: a decision reads any cell of any row."""
        cells = self.config.n_cells
        for name, table in (("wait_cost", self.wait_cost), ("counts", self.counts)):
            for key, row in table.items():
                if len(row) != cells:
                    raise ValueError(
                        f"{name}[{key!r}] holds {len(row)} values for the config's {cells} cells"
                    )
        return self

    def cost(self, horizon_s: float, offset: int, cell: int) -> float | None:
        """Expected cost of resting for `horizon_s` at `offset`, or None when the fit never saw that option."""
        row = self.wait_cost.get(table_key(horizon_s, offset))
        return None if row is None or not np.isfinite(row[cell]) else row[cell]


def table_key(horizon_s: float, offset: int) -> str:
    return f"{horizon_s:g}:{offset}"


@dataclass(frozen=True)
class Book:
    """One side-oriented view of a day: a buyer's bid/ask (mirrored for sells), and the cells of each quote."""

    ts: I64
    bid: I64
    ask: I64
    cell: I64
    last_valid: I64


def cell_of(config: FitConfig, spread: I64, near_share: F64, trend: I64) -> I64:
    """Cell index of (spread bucket, near-side imbalance bucket, trend bucket), vectorised."""
    s_b = np.searchsorted(np.asarray(config.spread_edges, dtype=np.int64), spread, side="left")
    i_b = np.searchsorted(np.asarray(config.imbalance_edges, dtype=np.float64), near_share, side="right")
    t_b = np.sign(trend).astype(np.int64) + 1  # 0 favourable, 1 flat, 2 adverse
    n_imb = len(config.imbalance_edges) + 1
    return ((s_b * n_imb + i_b) * 3 + t_b).astype(np.int64)


def valid_quotes(q: SymbolQuotes) -> B:
    """The quotes an order may be priced from or fill against: both sides > 0 and bid < ask (`assess_quote`).

    A zero, one-sided, locked (bid == ask) or crossed (bid > ask) quote is no market: it fills no rest, prices no
    cross, and is no reference for the trend.
    """
    return (q.bid > 0) & (q.bid < q.ask)


def oriented_book(q: SymbolQuotes, config: FitConfig, *, sell: bool) -> Book:
    """The buyer's view of `q`, or of its mirror image for a seller (prices negated, sides swapped)."""
    valid = valid_quotes(q)
    if sell:
        bid, ask, near, far = -q.ask, -q.bid, q.ask_size, q.bid_size
    else:
        bid, ask, near, far = q.bid, q.ask, q.bid_size, q.ask_size
    ask = np.where(valid, ask, _NEVER)
    # The quote in force for crossing: the last valid one at or before each index.
    last_valid = np.maximum.accumulate(np.where(valid, np.arange(len(ask)), 0))
    total = (near + far).astype(np.float64)
    share = np.divide(near.astype(np.float64), total, out=np.full(len(total), 0.5), where=total > 0)
    mid2 = bid + ask  # twice the mid, exact in integers
    back = np.searchsorted(q.ts, q.ts - int(config.trend_lookback_s * _NS), side="right") - 1
    ref = last_valid[np.maximum(back, 0)]
    trend = np.where(valid[ref], mid2 - mid2[ref], 0)
    cell = cell_of(config, ask - bid, share, trend)
    return Book(
        ts=q.ts,
        bid=bid.astype(np.int64),
        ask=ask.astype(np.int64),
        cell=cell,
        last_valid=last_valid.astype(np.int64),
    )


class _RangeMin:
    """Sparse table: minimum of any index range [lo, hi] of a fixed array in O(1) numpy work per query batch."""

    def __init__(self, values: I64) -> None:
        self._levels = [values]
        width = 1
        while 2 * width <= len(values):
            prev = self._levels[-1]
            self._levels.append(np.minimum(prev[:-width], prev[width:]))
            width *= 2

    def query(self, lo: I64, hi: I64) -> I64:
        """Minimum over [lo, hi] per element; `_NEVER` where the range is empty (hi < lo)."""
        empty = hi < lo
        length = np.where(empty, 1, hi - lo + 1)
        k = np.floor(np.log2(length)).astype(np.int64)
        out = np.full(len(lo), _NEVER, dtype=np.int64)
        for level in np.unique(k):
            sel = (k == level) & ~empty
            table = self._levels[int(level)]
            a = table[lo[sel]]
            b = table[hi[sel] - (1 << int(level)) + 1]
            out[sel] = np.minimum(a, b)
        return out


def _grid(book: Book, config: FitConfig) -> I64:
    """Indices of the quotes in force at each grid instant."""
    start = int(book.ts[0]) + int(config.margin_seconds * _NS)
    stop = int(book.ts[-1]) - int(max(config.horizons_s) * _NS)
    if stop <= start:
        raise ConfigError(
            "fit", f"{len(book.ts)} quotes", "the fit day is shorter than its margin plus the longest horizon"
        )
    instants = np.arange(start, stop, int(config.grid_seconds * _NS), dtype=np.int64)
    idx = np.searchsorted(book.ts, instants, side="right") - 1
    valid = (book.ask[idx] < _NEVER) & (book.ask[idx] > book.bid[idx])
    if not valid.any():  # an all-empty table would value no rest: the policy would only ever cross
        raise ConfigError(
            "fit",
            f"{len(book.ts)} quotes",
            "no valid quote (0 < bid < ask) at any decision instant: nothing to fit",
        )
    return idx[valid].astype(np.int64)


class _WindowVolumes:
    """Shares printed at or through each sample's limit after its instant, for any horizon up to the longest.

    All windows are laid out flat (one segment of prints per sample) and cumulated once, so each horizon is one
    lookup per sample: no Python loop over samples.
    """

    def __init__(
        self, trades: SymbolTrades, *, sell: bool, t_ns: I64, limit: I64, longest_ns: int, share_pct: int
    ) -> None:
        price = -trades.price if sell else trades.price
        self._trades_ts = trades.ts
        self._t = t_ns
        self._lo = np.searchsorted(trades.ts, t_ns, side="right").astype(np.int64)
        hi = np.searchsorted(trades.ts, t_ns + longest_ns, side="right").astype(np.int64)
        lengths = hi - self._lo
        self._starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        owner = np.repeat(np.arange(len(t_ns)), lengths)
        pos = (
            np.arange(int(lengths.sum()), dtype=np.int64)
            - np.repeat(self._starts, lengths)
            + np.repeat(self._lo, lengths)
        )
        counted = np.where(price[pos] <= limit[owner], trades.size[pos] * share_pct // 100, 0)
        self._cum = np.concatenate([[0], np.cumsum(counted)]).astype(np.int64)

    def within(self, horizon_ns: int) -> I64:
        count = np.searchsorted(self._trades_ts, self._t + horizon_ns, side="right") - self._lo
        return (self._cum[self._starts + count] - self._cum[self._starts]).astype(np.int64)


@dataclass(frozen=True)
class _Samples:
    cell: I64
    cost: F64


@dataclass(frozen=True)
class _Rest:
    """Grid instants where resting at one offset is possible, with the limit and (queue rule) who is ahead."""

    idx: I64
    limit: I64
    ahead: I64 | None
    volumes: _WindowVolumes | None


def _rest_at(
    book: Book, idx: I64, *, config: FitConfig, offset: int, queue: tuple[SymbolTrades, I64, bool] | None
) -> _Rest:
    limit = book.bid[idx] + offset * config.tick_units
    ok = limit < book.ask[idx]
    idx, limit = idx[ok], limit[ok]
    if queue is None:
        return _Rest(idx=idx, limit=limit, ahead=None, volumes=None)
    trades, displayed, sell = queue
    ahead = (displayed[idx] if offset == 0 else np.zeros(len(idx), dtype=np.int64)) + config.order_qty
    longest = int(max(config.horizons_s) * _NS)
    volumes = _WindowVolumes(
        trades,
        sell=sell,
        t_ns=book.ts[idx],
        limit=limit,
        longest_ns=longest,
        share_pct=config.print_share_pct,
    )
    return _Rest(idx=idx, limit=limit, ahead=ahead.astype(np.int64), volumes=volumes)


def _rest_samples(book: Book, rmin: _RangeMin, rest: _Rest, horizon_s: float) -> _Samples:
    """Outcome of resting at `rest.limit` for `horizon_s`, then crossing if not filled, from every instant."""
    idx, limit = rest.idx, rest.limit
    horizon_ns = int(horizon_s * _NS)
    end = np.searchsorted(book.ts, book.ts[idx] + horizon_ns, side="right") - 1
    filled = rmin.query(idx + 1, end.astype(np.int64)) <= limit
    if rest.volumes is not None and rest.ahead is not None:
        filled |= rest.volumes.within(horizon_ns) >= rest.ahead
    paid = np.where(filled, limit, book.ask[book.last_valid[end]])
    mid = (book.bid[idx] + book.ask[idx]) / 2.0
    return _Samples(cell=book.cell[idx], cost=paid - mid)


def _shrunk_table(samples: _Samples, config: FitConfig) -> tuple[tuple[float, ...], tuple[int, ...]]:
    n_cells = config.n_cells
    per_spread = n_cells // (len(config.spread_edges) + 1)
    sums = np.bincount(samples.cell, weights=samples.cost, minlength=n_cells)
    counts = np.bincount(samples.cell, minlength=n_cells)
    s_sums = sums.reshape(-1, per_spread).sum(axis=1)
    s_counts = counts.reshape(-1, per_spread).sum(axis=1)
    prior = np.repeat(
        np.divide(s_sums, s_counts, out=np.full(len(s_sums), np.nan), where=s_counts > 0), per_spread
    )
    weight = np.where(np.isfinite(prior), config.shrink, 0.0)
    prior = np.nan_to_num(prior)
    denom = counts + weight
    est = np.divide(sums + weight * prior, denom, out=np.full(n_cells, np.nan), where=denom > 0)
    return tuple(float(x) for x in est), tuple(int(c) for c in counts)


def fit_adaptive(
    quotes: SymbolQuotes,
    fit_data: DataRef,
    *,
    trades: SymbolTrades | None = None,
    config: FitConfig | None = None,
) -> AdaptiveParams:
    """Fit the wait-cost table on one symbol-day: the queue rule when `trades` are given, else the paper rule."""
    cfg = config or FitConfig()
    per_key: dict[str, list[_Samples]] = {}
    total = 0
    for sell in (False, True):
        book = oriented_book(quotes, cfg, sell=sell)
        rmin = _RangeMin(book.ask)
        idx = _grid(book, cfg)
        total += len(idx)
        displayed = quotes.ask_size if sell else quotes.bid_size
        queue = None if trades is None else (trades, displayed, sell)
        for offset in cfg.offsets_ticks:
            rest = _rest_at(book, idx, config=cfg, offset=offset, queue=queue)
            for h in cfg.horizons_s:
                per_key.setdefault(table_key(h, offset), []).append(_rest_samples(book, rmin, rest, h))
    wait_cost: dict[str, tuple[float, ...]] = {}
    counts: dict[str, tuple[int, ...]] = {}
    for key, parts in per_key.items():
        merged = _Samples(
            cell=np.concatenate([p.cell for p in parts]), cost=np.concatenate([p.cost for p in parts])
        )
        wait_cost[key], counts[key] = _shrunk_table(merged, cfg)
    return AdaptiveParams(
        rule=FitRule.PAPER if trades is None else FitRule.QUEUE,
        fit_data=fit_data,
        config=cfg,
        samples=total,
        invalid_quotes=int(len(quotes) - np.count_nonzero(valid_quotes(quotes))),
        wait_cost=wait_cost,
        counts=counts,
        fit_span=(from_ns(int(quotes.ts[0])), from_ns(int(quotes.ts[-1]))) if len(quotes) else None,
    )


def save_params(params: AdaptiveParams, path: Path) -> None:
    """Write the fitted parameters as JSON (NaN cells, never seen and without prior, are stored as null)."""
    data = json.loads(params.model_dump_json())
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def load_params(path: Path) -> AdaptiveParams:
    """Read parameters written by `save_params`; any unreadable file or other schema raises `ConfigError`."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError("params_file", str(path), f"cannot read: {exc}") from exc
    except RecursionError:  # arrays nested beyond the parser's depth: this file is at fault, not the caller's
        raise ConfigError("params_file", str(path), "cannot read: nested too deeply") from None
    if not isinstance(raw, dict) or raw.get("schema_version") != PARAMS_SCHEMA:
        found = raw.get("schema_version") if isinstance(raw, dict) else None
        raise ConfigError("params_file", str(path), f"schema {found!r} is not {PARAMS_SCHEMA!r}")
    table = raw.get("wait_cost")
    if isinstance(table, dict):  # anything else is left for validation to refuse
        raw["wait_cost"] = {
            k: [float("nan") if v is None else v for v in row] if isinstance(row, list) else row
            for k, row in table.items()
        }
    try:
        return AdaptiveParams.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("params_file", str(path), f"invalid parameters: {exc.errors()[0]['msg']}") from exc
