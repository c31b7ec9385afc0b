"""Backtests through the real engine and simulator on a scripted, still market: every cost is known by hand.

The book is 100.00 / 100.04 (half-spread 2 cents) for ten minutes. A market order pays exactly one half-spread;
under the paper rule a resting limit on a still book never fills, so touch-then-market pays one half-spread
after its wait; under the queue rule, prints at both touches larger than the displayed size fill it at the touch,
earning one half-spread.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from repeg.config import classic_ladder
from repeg.domain.orders import Side
from repeg.lab.backtest import DayData, budget_config, run_backtest
from repeg.lab.models import BacktestResult, DataRef, FillModelName, ParentOrder
from repeg.lab.policies import TouchThenMarketSpec, policy_spec
from repeg.market.tape import QuoteTape, SymbolQuotes, SymbolTrades, TradeTape, to_ns

T0 = datetime(2018, 1, 3, 15, 0, tzinfo=UTC)
S = 1_000_000_000
SECONDS = 600
BID, ASK = 1_000_000, 1_000_400


def _day(with_prints: bool, symbol: str = "XXX", start: datetime = T0) -> DayData:
    ts = to_ns(start) + np.arange(SECONDS, dtype=np.int64) * S
    quotes = QuoteTape(
        [
            SymbolQuotes(
                symbol,
                ts=ts,
                bid=np.full(SECONDS, BID, dtype=np.int64),
                bid_size=np.full(SECONDS, 200, dtype=np.int64),
                ask=np.full(SECONDS, ASK, dtype=np.int64),
                ask_size=np.full(SECONDS, 200, dtype=np.int64),
            )
        ]
    )
    trades = None
    if with_prints:
        n = 2 * SECONDS
        trades = TradeTape(
            [
                SymbolTrades(
                    "XXX",
                    ts=to_ns(start) + np.arange(n, dtype=np.int64) * (S // 2) + S // 4,
                    price=np.where(np.arange(n) % 2 == 0, BID, ASK).astype(np.int64),
                    size=np.full(n, 1000, dtype=np.int64),
                )
            ]
        )
    ref = DataRef(
        symbol=symbol, day=date(2018, 1, 3), quotes_file="scripted", trades_file=None, digest="scripted"
    )
    return DayData(quotes=quotes, trades=trades, ref=ref)


BASKET = tuple(
    ParentOrder(
        index=k,
        symbol="XXX",
        side=Side.BUY if k % 2 == 0 else Side.SELL,
        qty=Decimal(100),
        arrival=T0 + timedelta(seconds=60 + 90 * k),
        budget_seconds=60,
    )
    for k in range(4)
)


def _costs(day: DayData, policy: str, model: FillModelName) -> list[float | None]:
    spec = (
        policy_spec(policy) if policy != "touch10" else TouchThenMarketSpec(name="touch10", wait_seconds=10)
    )
    result = run_backtest(day, BASKET, spec, fill_model=model, seed=0)
    assert result.summary.completion_rate == 1.0
    return [o.cost_half_spreads for o in result.orders]


def test_market_orders_pay_exactly_one_half_spread() -> None:
    assert _costs(_day(False), "market", FillModelName.PAPER) == [1.0, 1.0, 1.0, 1.0]


def test_paper_rule_never_fills_a_resting_limit_on_a_still_book() -> None:
    result = run_backtest(
        _day(True),
        BASKET,
        TouchThenMarketSpec(name="t", wait_seconds=10),
        fill_model=FillModelName.PAPER,
        seed=0,
    )
    assert [o.cost_half_spreads for o in result.orders] == [1.0, 1.0, 1.0, 1.0]
    assert all(o.escalated and o.filled_before_escalation == 0 for o in result.orders)
    assert all(o.time_to_fill_s == pytest.approx(10.0, abs=1.0) for o in result.orders)


def test_queue_rule_fills_at_the_touch_once_prints_clear_the_queue() -> None:
    assert _costs(_day(True), "touch10", FillModelName.QUEUE) == [-1.0, -1.0, -1.0, -1.0]


def test_oracle_on_a_still_book_is_the_far_touch() -> None:
    result = run_backtest(_day(False), BASKET, policy_spec("market"), fill_model=FillModelName.PAPER, seed=0)
    assert {o.oracle_cost_half_spreads for o in result.orders} == {1.0}
    assert {o.cost_vs_oracle_half_spreads for o in result.orders} == {0.0}


@pytest.mark.parametrize("symbol", ["xxx", "brk b"])
def test_a_day_whose_symbol_is_no_plan_symbol_backtests_as_its_quote_file_names_it(symbol: str) -> None:
    # The lab trades the quote file's symbol as written (a basket is no plan). Since 69574a9 the lab's account
    # refused a holding of "xxx" or "brk b" (not as a plan names it): repeg backtest ended in a pydantic traceback.
    basket = tuple(order.model_copy(update={"symbol": symbol}) for order in BASKET)
    result = run_backtest(
        _day(False, symbol), basket, policy_spec("market"), fill_model=FillModelName.PAPER, seed=0
    )
    assert result.summary.completion_rate == 1.0
    assert [o.cost_half_spreads for o in result.orders] == [1.0, 1.0, 1.0, 1.0]


def test_budget_config_shortens_waits_longer_than_the_budget() -> None:
    cfg = budget_config(classic_ladder(), 5.0)
    assert (cfg.max_total_wait, cfg.fill_wait_seconds) == (5.0, 5.0)


def test_a_budget_the_config_refuses_is_a_config_error_naming_the_key_not_chained_to_pydantic() -> None:
    # budget_config chained pydantic's error (its text prints the input), where every other configuration reader
    # raises its ConfigError on its own (`repeg.config.refused`).
    from repeg.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        budget_config(classic_ladder(), 1e300)
    assert (caught.value.key, caught.value.value) == ("max_total_wait", 1e300)
    assert caught.value.__cause__ is None


def _sparse_day(every_seconds: int) -> DayData:
    """The same still book, quoted only every `every_seconds` (each quote still fresher than quote_max_age)."""
    n = SECONDS // every_seconds
    ts = to_ns(T0) + np.arange(n, dtype=np.int64) * every_seconds * S
    quotes = QuoteTape(
        [
            SymbolQuotes(
                "XXX",
                ts=ts,
                bid=np.full(n, BID, dtype=np.int64),
                bid_size=np.full(n, 200, dtype=np.int64),
                ask=np.full(n, ASK, dtype=np.int64),
                ask_size=np.full(n, 200, dtype=np.int64),
            )
        ]
    )
    ref = DataRef(
        symbol="XXX", day=date(2018, 1, 3), quotes_file="scripted", trades_file=None, digest="scripted"
    )
    return DayData(quotes=quotes, trades=None, ref=ref)


def test_resting_policies_rest_their_whole_wait_whatever_the_engine_default_schedule() -> None:
    # The engine's stall guard escalates after 2 x fill_wait without an update or a quote. The lab runs every
    # policy on its own pinned base, so a 1 s engine default (a 2 s guard) cannot cut a 20 s rest short on a
    # book that is quoted every 4 s: the order rests 20 s, then crosses.
    result = run_backtest(
        _sparse_day(4),
        BASKET,
        TouchThenMarketSpec(name="t", wait_seconds=20),
        fill_model=FillModelName.PAPER,
        seed=0,
    )
    assert all(o.time_to_fill_s == pytest.approx(20.0, abs=4.0) for o in result.orders)


def test_compare_refuses_two_policies_with_the_same_name() -> None:
    # Results, tables and the frontier are keyed by policy name: two "ladder" runs would show one's verdict twice.
    from repeg.errors import ConfigError
    from repeg.lab.compare import compare
    from repeg.lab.policies import LadderSpec

    specs = [policy_spec("market"), LadderSpec(name="ladder"), LadderSpec(name="ladder", fill_wait_seconds=5)]
    with pytest.raises(ConfigError, match="ladder"):
        compare(_day(False), BASKET, specs, [FillModelName.PAPER], seed=0)


def test_each_adaptive_run_records_the_fit_it_used() -> None:
    # Under two fill models the adaptive policy runs on two fits (paper rule, queue rule); the comparison kept
    # only the last one, so the paper run's parameters were attributed to the queue-rule fit.
    from dataclasses import replace

    from repeg.lab.compare import compare
    from repeg.lab.policies import AdaptiveSpec

    scripted = _day(True)
    # The same still market, a day earlier: out of sample.
    day_before = _day(True, start=T0 - timedelta(days=1))
    fit_day = replace(
        day_before, ref=day_before.ref.model_copy(update={"day": date(2018, 1, 2), "digest": "fit"})
    )
    result = compare(
        scripted,
        BASKET,
        [policy_spec("market"), AdaptiveSpec(name="adaptive")],
        [FillModelName.PAPER, FillModelName.QUEUE],
        seed=0,
        fit_day=fit_day,
    )
    fits = {r.fill_model: r.policy_params.get("fit_rule") for r in result.runs if r.policy == "adaptive"}
    assert fits == {FillModelName.PAPER: "paper", FillModelName.QUEUE: "queue"}
    assert {r.policy_params.get("fit_digest") for r in result.runs if r.policy == "adaptive"} == {"fit"}


def test_orders_larger_than_the_default_lab_account_still_trade_in_full() -> None:
    # The lab account (cash 100M, position 1M shares) promised that no sell is ever refused, yet a basket of
    # 2M-share orders ended "no order filled at all", and one of 700k shares completed 75% (its first buy
    # refused for cash): the account's limits read as the policy's costs.
    big = tuple(order.model_copy(update={"qty": Decimal(2_000_000)}) for order in BASKET)
    result = run_backtest(_day(False), big, policy_spec("market"), fill_model=FillModelName.PAPER, seed=0)
    assert result.summary.completion_rate == 1.0
    assert [o.cost_half_spreads for o in result.orders] == [1.0, 1.0, 1.0, 1.0]


def test_an_all_sell_basket_beyond_the_default_position_trades_in_full() -> None:
    sells = tuple(order.model_copy(update={"qty": Decimal(400_000), "side": Side.SELL}) for order in BASKET)
    result = run_backtest(_day(False), sells, policy_spec("market"), fill_model=FillModelName.PAPER, seed=0)
    assert result.summary.completion_rate == 1.0


def test_the_replay_tells_the_last_valid_quote_at_or_before_a_past_instant() -> None:
    # What the adaptive policy measures its trend from: a one-sided quote is no market, so the one before it counts.
    from repeg.lab.backtest import _quote_in_force_at

    ts = to_ns(T0) + np.arange(3, dtype=np.int64) * S
    tape = QuoteTape(
        [
            SymbolQuotes(
                "XXX",
                ts=ts,
                bid=np.array([BID, BID + 100, 0], dtype=np.int64),
                bid_size=np.full(3, 200, dtype=np.int64),
                ask=np.array([ASK, ASK + 100, ASK], dtype=np.int64),
                ask_size=np.full(3, 200, dtype=np.int64),
            )
        ]
    )
    in_force = _quote_in_force_at(tape)
    assert in_force("XXX", T0 - timedelta(seconds=1)) is None
    first = in_force("XXX", T0 + timedelta(milliseconds=500))
    assert first is not None
    assert first.bid == Decimal("100.00")
    last = in_force("XXX", T0 + timedelta(seconds=5))
    assert last is not None
    assert last.bid == Decimal("100.01")
    assert in_force("YYY", T0) is None


def test_a_basket_not_starting_at_order_zero_is_costed_from_its_own_executions() -> None:
    # The engine makes the i-th order of a basket leg i, whatever the order's own index; the TCA looked each order
    # up by its index, so the afternoon half of a basket (orders 2 and 3) read legs 2 and 3, which do not exist:
    # both were reported as never filled and charged the clean-up, though each was filled at once.
    result = run_backtest(
        _day(False), BASKET[2:], policy_spec("market"), fill_model=FillModelName.PAPER, seed=0
    )
    assert [o.index for o in result.orders] == [2, 3]
    assert [o.filled_qty for o in result.orders] == [Decimal(100), Decimal(100)]
    assert result.summary.completion_rate == 1.0


def _queue_backtest(day: DayData, basket: tuple[ParentOrder, ...] = BASKET) -> BacktestResult:
    """A resting policy's backtest of `basket` under the queue model, which reads `day`'s trade file."""
    return run_backtest(
        day, basket, TouchThenMarketSpec(name="t", wait_seconds=10), fill_model=FillModelName.QUEUE, seed=0
    )


def test_the_queue_model_refuses_a_trade_file_without_the_days_symbol() -> None:
    # The prints are of XXX, the quotes of YYY: the queue model found no print of YYY and silently filled resting
    # limits on crossing quotes only (every order paid the spread), where the fit refuses such a trade file.
    from repeg.errors import ConfigError

    basket = tuple(order.model_copy(update={"symbol": "YYY"}) for order in BASKET)
    with pytest.raises(ConfigError, match=r"--trades.*no prints of YYY"):
        _queue_backtest(_day(True, "YYY"), basket)


def test_the_queue_model_refuses_a_trade_file_of_another_day() -> None:
    # The prints are of the day before the quotes: none falls inside any order's window, so the queue model
    # silently filled resting limits on crossing quotes only (every order paid the spread).
    from dataclasses import replace

    from repeg.errors import ConfigError

    quotes_day = _day(False)
    day_before = _day(True, start=T0 - timedelta(days=1))
    mismatched = replace(quotes_day, trades=day_before.trades)
    with pytest.raises(ConfigError, match=r"--trades.*prints of XXX .*outside"):
        _queue_backtest(mismatched)


def test_the_queue_rule_fit_refuses_fit_trades_of_another_day() -> None:
    # --fit-trades of another day than --fit-quotes: no print fell inside any sample's window, and the queue-rule
    # fit silently valued resting as the crossing-quote rule does.
    from dataclasses import replace

    from repeg.errors import ConfigError
    from repeg.lab.compare import fit_trades_of

    later = _day(True, start=T0 + timedelta(days=1))
    mismatched = replace(_day(False), trades=later.trades)
    with pytest.raises(ConfigError, match=r"--fit-trades.*outside the quotes' span"):
        fit_trades_of(mismatched)


def test_the_queue_rule_fit_assumes_the_baskets_order_size() -> None:
    # The fit values a rest by whether the prints clear the queue ahead plus our own order; it always assumed a
    # 100-share order, so an adaptive policy run on 5,000-share orders was fitted as if 50 times smaller would do.
    from dataclasses import replace

    from repeg.lab.compare import compare
    from repeg.lab.policies import AdaptiveSpec

    day_before = _day(True, start=T0 - timedelta(days=1))
    fit_day = replace(
        day_before, ref=day_before.ref.model_copy(update={"day": date(2018, 1, 2), "digest": "fit"})
    )
    big = tuple(order.model_copy(update={"qty": Decimal(5000)}) for order in BASKET)
    result = compare(
        _day(True), big, [AdaptiveSpec(name="adaptive")], [FillModelName.QUEUE], seed=0, fit_day=fit_day
    )
    (fit,) = result.fits
    assert '"order_qty":5000' in fit.params["config"]


def test_the_queue_rule_fit_assumes_the_size_holding_most_of_a_mixed_baskets_shares() -> None:
    # The lab's costs are per share (every order weighted by its shares): three 100-share orders and one of 10,000
    # are read almost wholly on the large one, yet the fit assumed the median order, 100 shares, so the policy
    # rested the 10,000 shares that carry 97% of the figure as if 100 had to fill.
    from repeg.lab.compare import fit_order_qty

    sizes = (100, 100, 100, 10_000)
    mixed = tuple(o.model_copy(update={"qty": Decimal(q)}) for o, q in zip(BASKET, sizes, strict=True))
    assert fit_order_qty(mixed) == 10_000


def test_a_compare_with_a_trade_file_the_queue_model_refuses_runs_no_backtest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another day's prints: the queue model refuses them, but only when its first backtest started, after every
    # paper backtest of the comparison had run (minutes, on a large basket), where refusals come before any run.
    from dataclasses import replace

    from repeg.errors import ConfigError
    from repeg.lab import compare as compare_module

    def ran(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a backtest ran")

    monkeypatch.setattr(compare_module, "run_backtest", ran)
    mismatched = replace(_day(False), trades=_day(True, start=T0 - timedelta(days=1)).trades)
    models = [FillModelName.PAPER, FillModelName.QUEUE]
    with pytest.raises(ConfigError, match=r"--trades.*outside the quotes' span"):
        compare_module.compare(mismatched, BASKET, [policy_spec("market")], models, seed=0)


def test_the_queue_model_refuses_a_trade_file_whose_prints_of_the_symbol_are_all_excluded() -> None:
    # A trade file whose every print of the day's symbol its sale conditions exclude loads with the symbol and no
    # print: the queue model then saw no print and filled resting limits on crossing quotes only, unsaid, as it
    # did for a file without the symbol (which is refused).
    from dataclasses import replace

    from repeg.errors import ConfigError

    empty = np.array([], dtype=np.int64)
    excluded = replace(_day(False), trades=TradeTape([SymbolTrades("XXX", empty, empty, empty)]))
    with pytest.raises(ConfigError, match=r"--trades.*no print of XXX"):
        _queue_backtest(excluded)


def test_a_basket_with_an_order_after_the_last_quote_is_refused_before_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An --arrivals file's last order comes after the day's last quote: the TCA refuses to cost it, but only once
    # the engine had run the whole basket (and a compare, its first backtest): minutes on a large basket.
    from repeg.errors import ConfigError
    from repeg.lab import backtest as backtest_module

    def ran(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the basket ran")

    monkeypatch.setattr(backtest_module, "run_basket_events", ran)
    late = BASKET[-1].model_copy(update={"arrival": T0 + timedelta(seconds=SECONDS + 60)})
    with pytest.raises(ConfigError, match=r"order 3 arrives after the last quote"):
        run_backtest(
            _day(False), (*BASKET[:-1], late), policy_spec("market"), fill_model=FillModelName.PAPER, seed=0
        )
