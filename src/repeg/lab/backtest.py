"""Backtest: replay one symbol-day with a basket of parent orders through the real engine and simulator.

Nothing here re-implements execution: the basket goes through `repeg.engine.runner.run_basket` (the same monitor,
gateway and policy seam a live run uses) against the built-in simulator (`build_simulation`) on a `VirtualClock`
under `run_virtual`, with the chosen fill model (`paper`: Alpaca's paper rule; `queue`: queue position from the
trade prints). The run's events are collected and turned into TCA records (`repeg.lab.tca`) against the tape.

Determinism: the basket, the simulator's seed and the data fully determine a result.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from repeg.brokers.simulator.account import AS_WRITTEN, MAX_CASH, SimAccount
from repeg.brokers.simulator.factory import build_simulation
from repeg.brokers.simulator.fill_models import FillModel, PaperFillModel
from repeg.brokers.simulator.latency import LatencyModel
from repeg.brokers.simulator.queue_model import QueueFillModel
from repeg.config import ExecutionConfig, classic_ladder, config_from_mapping
from repeg.domain.events import RunEvent
from repeg.domain.orders import Side
from repeg.domain.plan import plan_symbol
from repeg.domain.quote import Quote
from repeg.domain.ticks import from_units
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.engine.runner import ParentOrder as EngineOrder
from repeg.engine.runner import run_basket
from repeg.errors import ConfigError
from repeg.lab.baskets import BasketSpec, make_basket
from repeg.lab.fit import AdaptiveParams
from repeg.lab.models import BacktestResult, DataRef, FillModelName, ParentOrder
from repeg.lab.policies import (
    NextQuoteAt,
    PolicySpec,
    QuoteInForceAt,
    build_policy,
    run_config,
    spec_params,
)
from repeg.lab.tca import basket_references, basket_tca, summarize
from repeg.market.loaders import load_quotes, load_trades
from repeg.market.tape import Int64Array, QuoteTape, TradeTape, from_ns
from repeg.report.result import ExecutionResult

#: Starting account of a backtest, at the least: cash and a position large enough that no order of a usual
#: basket is ever refused (a larger basket gets more, see `_lab_account`).
_CASH = Decimal(100_000_000)
_POSITION = Decimal(1_000_000)
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class DayData:
    """One symbol-day of quotes (and optionally trades), with the reference that names it in results."""

    quotes: QuoteTape
    trades: TradeTape | None
    ref: DataRef

    @property
    def symbol(self) -> str:
        return self.ref.symbol


def file_digest(paths: Sequence[Path]) -> str:
    """sha256 over the raw bytes of `paths`, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_day(
    quotes: Path, trades: Path | None = None, *, symbol: str | None = None, one_per_file: bool = False
) -> DayData:
    """Load a symbol-day; `symbol` may be omitted when the quote file holds exactly one (`_only_symbol`)."""
    tape = load_quotes(quotes)
    if symbol is None:
        symbol = _only_symbol(tape, quotes, one_per_file=one_per_file)
    elif symbol.strip():  # named as the quote file's symbols are read: as a plan names them ("xxx" is XXX)
        symbol = plan_symbol(symbol)
    if symbol not in tape:
        raise ConfigError("--symbol", symbol, f"not in {quotes} (it holds {tape.symbols})")
    prints = None if trades is None else load_trades(trades)
    files = [quotes] if trades is None else [quotes, trades]
    ref = DataRef(
        symbol=symbol,
        day=tape.start.date(),
        quotes_file=str(quotes),
        trades_file=None if trades is None else str(trades),
        digest=file_digest(files),
    )
    return DayData(quotes=tape, trades=prints, ref=ref)


def _only_symbol(tape: QuoteTape, quotes: Path, *, one_per_file: bool) -> str:
    """The quote file's one symbol. A file of several is refused naming what the user must change: `--symbol`,
    or, for a sweep (`one_per_file`: no `--symbol`, one symbol-day per quote file), the files `--quotes` matches."""
    if len(tape.symbols) == 1:
        return tape.symbols[0]
    held = f"{quotes} holds {len(tape.symbols)} symbols {tape.symbols}"
    if one_per_file:
        raise ConfigError(
            "--quotes", None, f"{held}; a sweep reads one symbol per quote file: match only such files"
        )
    raise ConfigError("--symbol", None, f"not given, and {held}: name one")


def day_basket(day: DayData, spec: BasketSpec, *, seed: int) -> tuple[ParentOrder, ...]:
    """`spec`'s basket over the day's quoted session."""
    return make_basket(spec, day.symbol, day.quotes.start, day.quotes.end, seed=seed)


def trades_problem(day: DayData) -> str | None:
    """Why the day's trade file cannot feed the queue rule, or None (None too without one): it holds no print of
    the day's symbol (none at all, or every one excluded by its sale conditions), or its prints of it all lie
    outside the quotes' span (another day's), so that no print would ever fall inside an order's window."""
    if day.trades is None:
        return None
    if day.symbol not in day.trades:
        return f"holds no prints of {day.symbol} (it holds {list(day.trades.symbols)})"
    prints, quotes = day.trades.columns(day.symbol), day.quotes.columns(day.symbol)
    if len(prints) == 0:
        return f"holds no print of {day.symbol} that counts (its sale conditions exclude every one)"
    if prints.ts[-1] >= quotes.ts[0] and prints.ts[0] <= quotes.ts[-1]:
        return None
    return (
        f"its prints of {day.symbol} ({from_ns(int(prints.ts[0]))} to {from_ns(int(prints.ts[-1]))}) lie outside "
        f"the quotes' span ({from_ns(int(quotes.ts[0]))} to {from_ns(int(quotes.ts[-1]))})"
    )


def refuse_unusable_trades(day: DayData, option: str = "--trades") -> None:
    """`ConfigError` naming `option` and the file when the day's trade file cannot feed the queue rule
    (`trades_problem`)."""
    problem = trades_problem(day)
    if problem is not None:
        raise ConfigError(option, day.ref.trades_file, problem)


#: What the queue model's figures mean without trade prints, as `repeg backtest`, `compare` and `sweep` say it.
QUEUE_WITHOUT_PRINTS = (
    "the queue model has no trade prints (--trades): resting limits fill only on crossing quotes, more "
    "pessimistic than paper (docs/FILL_MODELS.md)"
)


def fill_model_for(name: FillModelName, day: DayData, *, seed: int, print_share_pct: int = 100) -> FillModel:
    """The simulator's fill model by name; `queue` without trades fills resting limits on crossing quotes only. A
    trade file the queue rule cannot use (`trades_problem`) is refused, as the fit refuses it."""
    if name is FillModelName.QUEUE:
        refuse_unusable_trades(day)
        return QueueFillModel(day.quotes, day.trades, seed=seed, print_share_pct=print_share_pct)
    return PaperFillModel(day.quotes, seed=seed)


def _budget(basket: Sequence[ParentOrder]) -> float:
    budgets = {o.budget_seconds for o in basket}
    if len(budgets) != 1:
        raise ConfigError("budget_seconds", sorted(budgets), "the engine runs one time budget per basket")
    return budgets.pop()


#: The monitoring settings every lab policy runs under (ladder specs then set their own schedule on top). Pinned
#: rather than `ExecutionConfig()`: the engine's default `fill_wait_seconds` (1 s) also sets its stall guard
#: (2 x fill_wait without an update or a quote), which would cut resting policies (touch-then-market, adaptive)
#: short and make the lab's figures move whenever the engine's default schedule does.
LAB_BASE_CONFIG = classic_ladder()


def budget_config(base: ExecutionConfig, budget_seconds: float) -> ExecutionConfig:
    """`base` with the basket's time budget as `max_total_wait` (waits longer than the budget are shortened)."""
    data = base.model_dump()
    data["max_total_wait"] = budget_seconds
    data["fill_wait_seconds"] = min(base.fill_wait_seconds, budget_seconds)
    return config_from_mapping(data)  # refused as any configuration is (`refused`), not chained to pydantic's


def _next_quote_at(tape: QuoteTape) -> NextQuoteAt:
    """The replay's quote schedule: when each symbol's quote next changes after `now`."""

    def next_at(symbol: str, now: datetime) -> datetime | None:
        if symbol not in tape:
            return None
        current = tape.index_at(symbol, now)
        following = 0 if current is None else current + 1
        return tape.time_of(symbol, following) if following < tape.count(symbol) else None

    return next_at


def _quote_in_force_at(tape: QuoteTape) -> QuoteInForceAt:
    """The replay's past quotes: the last valid quote (0 < bid < ask) of a symbol at or before `at`."""
    last_valid: dict[str, Int64Array] = {}

    def in_force(symbol: str, at: datetime) -> Quote | None:
        if symbol not in tape:
            return None
        i = tape.index_at(symbol, at)
        if i is None:
            return None
        if symbol not in last_valid:
            col = tape.columns(symbol)
            valid = (col.bid > 0) & (col.bid < col.ask)
            last_valid[symbol] = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), -1))
        j = int(last_valid[symbol][i])
        return None if j < 0 else tape.quote(symbol, j)

    return in_force


def _model_params(
    fill_model: FillModelName, latency: LatencyModel | None, print_share_pct: int
) -> dict[str, str]:
    params = {} if latency is None else {k: str(v.total_seconds()) for k, v in latency}
    if fill_model is FillModelName.QUEUE:
        params["print_share_pct"] = str(print_share_pct)
    return params


def _fit_params(params: AdaptiveParams | None) -> dict[str, str]:
    """Which fit an adaptive run used (rule, data, digest), so that each saved run names its own parameters."""
    if params is None:
        return {}
    data = params.fit_data
    return {
        "fit_rule": params.rule.value,
        "fit_day": data.day.isoformat(),
        "fit_quotes_file": data.quotes_file,
        "fit_digest": data.digest,
        "fit_samples": str(params.samples),
    }


class _Collector:
    """An `EventSink` keeping every event of the run in order."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    async def emit(self, event: RunEvent) -> None:
        self.events.append(event)


def _run_id(policy: str, fill_model: FillModelName, day: date) -> str:
    return _RUN_ID_UNSAFE.sub("-", f"bt-{day:%Y%m%d}-{fill_model.value}-{policy}")[:32]


def backtest_config(
    policy_spec: PolicySpec, basket: Sequence[ParentOrder], base_config: ExecutionConfig | None = None
) -> ExecutionConfig:
    """The configuration a backtest of `basket` runs `policy_spec` under; `ConfigError` when it cannot be."""
    return run_config(policy_spec, budget_config(base_config or LAB_BASE_CONFIG, _budget(basket)))


def run_basket_events(
    day: DayData,
    basket: Sequence[ParentOrder],
    policy_spec: PolicySpec,
    *,
    fill_model: FillModelName,
    seed: int,
    base_config: ExecutionConfig | None = None,
    adaptive_params: AdaptiveParams | None = None,
    latency: LatencyModel | None = None,
    print_share_pct: int = 100,
) -> tuple[list[RunEvent], ExecutionResult]:
    """Run the basket through the engine on the simulator; return the run's events and its result (the engine's
    fold of those events: the TCA reads each leg's re-pegs and escalation there, not folding them again)."""
    config = backtest_config(policy_spec, basket, base_config)
    policy = build_policy(
        policy_spec,
        config,
        adaptive_params=adaptive_params,
        next_quote_at=_next_quote_at(day.quotes),
        quote_in_force_at=_quote_in_force_at(day.quotes),
    )
    orders = [
        EngineOrder(arrival=o.arrival, symbol=o.symbol, side=o.side, qty=o.qty, whole_shares=True)
        for o in basket
    ]
    account = _lab_account(day, basket)
    collector = _Collector()
    run_id = _run_id(policy_spec.name or policy_spec.kind, fill_model, day.ref.day)

    async def main() -> ExecutionResult:
        clock = VirtualClock(day.quotes.start - timedelta(seconds=1))
        model = fill_model_for(fill_model, day, seed=seed, print_share_pct=print_share_pct)
        broker, feed = build_simulation(
            day.quotes, clock, account, seed=seed, fill_model=model, latency=latency
        )
        return await run_basket(
            orders, broker, feed, clock, config, run_id=run_id, sinks=[collector], policy=policy
        )

    result = run_virtual(main)
    return collector.events, result


def _lab_account(day: DayData, basket: Sequence[ParentOrder]) -> SimAccount:
    """An account that refuses no order of `basket`: the lab measures execution, not an account's limits (a
    refused order would count as the policy's failure). At least `_CASH` and `_POSITION`; more when the basket
    needs it: every sell of the basket delivered from the start, every buy paid at twice the day's highest ask."""
    buys = sum((order.qty for order in basket if order.side is Side.BUY), Decimal(0))
    sells = sum((order.qty for order in basket if order.side is Side.SELL), Decimal(0))
    asks = day.quotes.columns(day.symbol).ask
    highest = from_units(int(asks.max())) if len(asks) else Decimal(0)
    cash = min(MAX_CASH, max(_CASH, 2 * buys * highest))  # an account holds at most MAX_CASH
    holdings = {"cash": cash, "positions": {day.symbol: max(_POSITION, sells)}}
    # The day's symbol as its quote file names it: the basket trades it so, whatever its case or shape.
    return SimAccount.model_validate(holdings, context=AS_WRITTEN)


def run_backtest(
    day: DayData,
    basket: Sequence[ParentOrder],
    policy_spec: PolicySpec,
    *,
    fill_model: FillModelName,
    seed: int,
    base_config: ExecutionConfig | None = None,
    adaptive_params: AdaptiveParams | None = None,
    latency: LatencyModel | None = None,
    print_share_pct: int = 100,
) -> BacktestResult:
    """Backtest one policy under one fill model; per-order TCA plus the summary with bootstrap intervals. An order
    the TCA cannot cost (arriving before any usable quote or after the day's last) is refused before the run."""
    quotes = day.quotes.columns(day.symbol)
    spread_bound = backtest_config(policy_spec, basket, base_config).max_spread_pct  # the run's own
    references = basket_references(quotes, basket, max_spread_pct=spread_bound)
    events, run_result = run_basket_events(
        day,
        basket,
        policy_spec,
        fill_model=fill_model,
        seed=seed,
        base_config=base_config,
        adaptive_params=adaptive_params,
        latency=latency,
        print_share_pct=print_share_pct,
    )
    name = policy_spec.name or policy_spec.kind
    orders = basket_tca(quotes, basket, events, run_result, references=references)
    return BacktestResult(
        data=day.ref,
        policy=name,
        policy_params=spec_params(policy_spec) | _fit_params(adaptive_params),
        fill_model=fill_model,
        fill_model_params=_model_params(fill_model, latency, print_share_pct),
        seed=seed,
        basket=tuple(basket),
        orders=orders,
        summary=summarize(name, fill_model, orders, seed=seed),
    )
