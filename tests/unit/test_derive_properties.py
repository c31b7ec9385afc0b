"""Properties of `derive_legs` and `check_safety` over random accounts and plans (guards).

Accounts hold cash and positions (long, short, fractional, zero, one 1e-9 share), priced on both tick regimes
(under and over $1), fractionable or not; plans are target weights or trade lists (repeating symbols, as a list
built in Python may). Each property is a rule of `repeg.planning.derive`'s docstring or the README's Inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from repeg.config import ExecutionConfig
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import Side
from repeg.domain.plan import LegSpec, Plan, PlanKind, SkippedTrade, TargetWeight, TradeIntent
from repeg.errors import SafetyLimitError
from repeg.planning.checks import check_safety
from repeg.planning.derive import FRACTION_LEFT, NO_PRICE, SOLD_BEFORE, derive_legs, portfolio_equity

D = Decimal
ZERO = D(0)
NANO = D("0.000000001")
SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
CONFIG = ExecutionConfig()

prices_st = st.one_of(
    st.decimals(min_value=D("0.0001"), max_value=D("0.9999"), places=4),
    st.decimals(min_value=D(1), max_value=D(5000), places=2),
)
qty_st = st.one_of(
    st.just(ZERO),
    st.just(NANO),
    st.integers(min_value=-50, max_value=500).map(D),
    st.decimals(min_value=D(-50), max_value=D(500), places=9),
)
amount_st = st.one_of(
    st.decimals(min_value=NANO, max_value=D(1000), places=9),
    st.integers(min_value=1, max_value=10**6).map(D),
)


class Book:
    """One random account: cash, positions, the arrival prices known, and the broker's asset facts."""

    def __init__(
        self, cash: Decimal, positions: list[Position], prices: dict[str, Decimal], whole: set[str]
    ) -> None:
        self.account = Account(cash=cash, buying_power=cash, equity=cash)
        self.positions = positions
        self.prices = prices
        self.assets = {s: Asset(symbol=s, tradable=True, fractionable=s not in whole) for s in SYMBOLS}
        self.held = {p.symbol: p.qty for p in positions}

    def derive(self, plan: Plan) -> tuple[list[LegSpec], list[SkippedTrade]]:
        return derive_legs(plan, self.account, self.positions, self.assets, self.prices, config=CONFIG)

    def whole(self, symbol: str) -> bool:
        return not self.assets[symbol].fractionable


@st.composite
def accounts(draw: st.DrawFn) -> Book:
    quoted = {s: draw(prices_st) for s in SYMBOLS}
    positions = []
    for symbol in draw(st.lists(st.sampled_from(SYMBOLS), unique=True)):
        qty = draw(qty_st)
        positions.append(
            Position(
                symbol=symbol, qty=qty, avg_entry_price=quoted[symbol], market_value=qty * quoted[symbol]
            )
        )
    prices = {s: p for s, p in quoted.items() if draw(st.integers(min_value=0, max_value=5))}
    whole = set(draw(st.lists(st.sampled_from(SYMBOLS), unique=True)))
    cash = draw(st.decimals(min_value=ZERO, max_value=D(100_000), places=2))
    return Book(cash, positions, prices, whole)


@st.composite
def weight_plans(draw: st.DrawFn) -> Plan:
    names = draw(st.lists(st.sampled_from(SYMBOLS), unique=True, min_size=1))
    places = draw(st.integers(min_value=0, max_value=6))
    raw = [draw(st.decimals(min_value=ZERO, max_value=D(1), places=places)) for _ in names]
    total = sum(raw, ZERO)
    scaled = raw if total <= 1 else [(w / total).quantize(D("0.000001"), rounding=ROUND_DOWN) for w in raw]
    rows = tuple(TargetWeight(symbol=s, weight=w) for s, w in zip(names, scaled, strict=True))
    return Plan(source="w.csv", kind=PlanKind.WEIGHTS, weights=rows)


@st.composite
def trade_plans(draw: st.DrawFn) -> Plan:
    rows = []
    for symbol in draw(st.lists(st.sampled_from(SYMBOLS[:2]), min_size=1, max_size=6)):  # repeats likely
        side = draw(st.sampled_from(Side))
        amount = draw(amount_st)
        as_qty = draw(st.booleans())
        rows.append(
            TradeIntent(
                symbol=symbol, side=side, qty=amount if as_qty else None, notional=None if as_qty else amount
            )
        )
    return Plan(source="<api>", kind=PlanKind.TRADES, trades=tuple(rows))


#: A row's dollars as a share of what its symbol's long position is worth: most rows of a symbol then sell part of
#: it, some the whole of it or more (capped), so that later rows meet a position earlier rows sold down or out.
worth_share_st = st.sampled_from([D("0.001"), D("0.3"), D("0.5"), D("0.999"), D(1), D(1), D("1.001"), D(2)])


def _amount(draw: st.DrawFn, acct: Book, symbol: str) -> Decimal:
    """Any amount, or (for a long position with a price) a share of what the position is worth."""
    held, price = acct.held.get(symbol, ZERO), acct.prices.get(symbol)
    if held <= ZERO or price is None or not draw(st.integers(min_value=0, max_value=3)):
        return draw(amount_st)
    return max(NANO, (held * price * draw(worth_share_st)).quantize(NANO, rounding=ROUND_DOWN))


@st.composite
def notional_sells(draw: st.DrawFn, acct: Book) -> Plan:
    """Sells in dollars of two symbols, each likely named more than once."""
    symbols = draw(st.lists(st.sampled_from(SYMBOLS[:2]), min_size=2, max_size=5))
    rows = tuple(TradeIntent(symbol=s, side=Side.SELL, notional=_amount(draw, acct, s)) for s in symbols)
    return Plan(source="<api>", kind=PlanKind.TRADES, trades=rows)


@st.composite
def sized_trade_plans(draw: st.DrawFn, acct: Book) -> Plan:
    """A trade list of two symbols (repeats likely), amounts often a share of the long position or all of it."""
    rows = []
    for symbol in draw(st.lists(st.sampled_from(SYMBOLS[:2]), min_size=1, max_size=6)):
        side, held = draw(st.sampled_from(Side)), acct.held.get(symbol, ZERO)
        if draw(st.booleans()):
            rows.append(TradeIntent(symbol=symbol, side=side, notional=_amount(draw, acct, symbol)))
        else:
            qty = held if held > ZERO and draw(st.booleans()) else draw(amount_st)
            rows.append(TradeIntent(symbol=symbol, side=side, qty=qty))
    return Plan(source="<api>", kind=PlanKind.TRADES, trades=tuple(rows))


def _plan_order(legs: Sequence[LegSpec], rows: Sequence[tuple[str, Side | None]]) -> None:
    """Legs indexed 0.. in the order of the rows they come from (a subsequence of them; side None: any)."""
    assert [leg.index for leg in legs] == list(range(len(legs)))
    remaining = iter(rows)
    for leg in legs:
        assert any(s == leg.symbol and side in (None, leg.side) for s, side in remaining)


def _skips_explained(skipped: Sequence[SkippedTrade], prices: Mapping[str, Decimal]) -> None:
    """Every skip is unpriced, rounds to nothing, is under min_notional, or is a fraction an exit leaves held."""
    for skip in skipped:
        if skip.reason in (NO_PRICE, FRACTION_LEFT, SOLD_BEFORE) or skip.reason.startswith("rounds to zero"):
            continue
        assert "below min_notional" in skip.reason
        assert skip.notional is not None or skip.qty * prices[skip.symbol] < CONFIG.min_notional


@settings(deadline=None)  # derivation time varies with CI load; nothing here is timed
@given(accounts(), weight_plans())
def test_weight_legs_never_overshoot_the_target_and_miss_it_by_under_one_step(acct: Book, plan: Plan) -> None:
    equity = portfolio_equity(acct.account, acct.positions, acct.prices)
    assume(equity > ZERO)
    legs, skipped = acct.derive(plan)
    targets = {w.symbol: w.weight for w in plan.weights}
    _plan_order(legs, [(w.symbol, None) for w in plan.weights])
    _skips_explained(skipped, acct.prices)
    for leg in legs:
        assert leg.qty is not None
        held, price = acct.held.get(leg.symbol, ZERO), acct.prices[leg.symbol]
        assert leg.qty * price >= CONFIG.min_notional
        if leg.side is Side.SELL:
            assert leg.qty <= held  # never more than the long position
        if targets[leg.symbol] == ZERO:  # a full exit: the position, or its whole shares
            assert leg.qty == (int(abs(held)) if acct.whole(leg.symbol) else abs(held))
            assert leg.full_exit == (leg.qty == abs(held))
            continue
        after = (held + leg.qty if leg.side is Side.BUY else held - leg.qty) * price
        gap = targets[leg.symbol] * equity - after  # rounding toward not trading more than asked
        step = (D(1) if acct.whole(leg.symbol) else NANO) * price
        assert (ZERO <= gap < step) if leg.side is Side.BUY else (-step < gap <= ZERO)
    assert acct.derive(plan) == (legs, skipped)  # deterministic


@settings(deadline=None)  # derivation time varies with CI load; nothing here is timed
@given(accounts(), weight_plans())
def test_weight_legs_trade_only_the_plan_symbols_that_are_off_target(acct: Book, plan: Plan) -> None:
    assume(portfolio_equity(acct.account, acct.positions, acct.prices) > ZERO)
    legs, skipped = acct.derive(plan)
    named = {w.symbol for w in plan.weights}
    assert {leg.symbol for leg in legs} <= named
    assert {skip.symbol for skip in skipped} <= named
    assert not {leg.symbol for leg in legs} & {s.symbol for s in skipped if s.reason != FRACTION_LEFT}


@settings(deadline=None)  # derivation time varies with CI load; nothing here is timed
@given(accounts(), trade_plans())
def test_trade_list_legs_keep_row_order_and_whole_shares(acct: Book, plan: Plan) -> None:
    legs, skipped = acct.derive(plan)
    _plan_order(legs, [(t.symbol, t.side) for t in plan.trades])
    _skips_explained(skipped, acct.prices)
    for leg in legs:
        if leg.whole_shares and leg.qty is not None:
            assert leg.qty == leg.qty.to_integral_value()
    assert acct.derive(plan) == (legs, skipped)  # deterministic


@settings(deadline=None)  # derivation time varies with CI load; nothing here is timed
@given(st.data())
def test_notional_sells_of_a_symbol_together_never_exceed_its_long_position(data: st.DataObject) -> None:
    acct = data.draw(accounts())
    legs, _ = acct.derive(data.draw(notional_sells(acct)))
    for symbol, held in acct.held.items():
        sold = sum((leg.qty or ZERO for leg in legs if leg.symbol == symbol), ZERO)
        assert held <= ZERO or sold <= held


def _with_held(acct: Book, symbol: str, qty: Decimal) -> Book:
    """The same account holding `qty` of `symbol` (the long position earlier sells leave)."""
    price = acct.prices[symbol]
    held = Position(symbol=symbol, qty=qty, avg_entry_price=price, market_value=qty * price)
    positions = [p for p in acct.positions if p.symbol != symbol] + [held]
    whole = {s for s in SYMBOLS if acct.whole(s)}
    return Book(acct.account.cash, positions, acct.prices, whole)


@settings(deadline=None)  # derivation time varies with CI load; nothing here is timed
@given(st.data())
def test_each_row_of_a_trade_list_derives_as_alone_on_what_the_earlier_rows_legs_leave(
    data: st.DataObject,
) -> None:
    """README: a list may repeat a symbol, each sell meeting what the earlier sells of it leave of the position
    (a skipped one leaves it as it was); a notional sell that finds none of a long position left is skipped."""
    acct = data.draw(accounts())
    rows = data.draw(sized_trade_plans(acct)).trades
    before: tuple[list[LegSpec], list[SkippedTrade]] = ([], [])
    for k, row in enumerate(rows):
        legs, skipped = acct.derive(Plan(source="<api>", kind=PlanKind.TRADES, trades=rows[: k + 1]))
        # A later row changes nothing of what the earlier ones derived.
        assert legs[: len(before[0])] == before[0]
        assert skipped[: len(before[1])] == before[1]
        new = (
            [leg.model_copy(update={"index": 0}) for leg in legs[len(before[0]) :]],
            skipped[len(before[1]) :],
        )
        held = acct.held.get(row.symbol, ZERO)
        sold = sum(
            (leg.qty or ZERO for leg in before[0] if leg.symbol == row.symbol and leg.side is Side.SELL), ZERO
        )
        alone = _with_held(acct, row.symbol, held - sold) if row.symbol in acct.prices else acct
        if row.side is Side.SELL and row.notional is not None and held > ZERO >= held - sold:
            assert new[0] == []
            assert [s.reason for s in new[1]] == [SOLD_BEFORE]
        else:
            assert new == alone.derive(Plan(source="<api>", kind=PlanKind.TRADES, trades=(row,)))
        before = (legs, skipped)


@settings(deadline=None)  # derivation time varies with CI load; nothing here is timed
@given(
    accounts(),
    trade_plans(),
    st.decimals(min_value=D(1), max_value=D(10**6), places=2),
    st.decimals(min_value=D(1), max_value=D(10**7), places=2),
)
def test_rails_refuse_exactly_the_legs_to_be_sent_over_a_limit(
    acct: Book, plan: Plan, order_limit: Decimal, run_limit: Decimal
) -> None:
    legs, _ = acct.derive(plan)
    sizes = [leg.notional if leg.qty is None else leg.qty * acct.prices[leg.symbol] for leg in legs]
    config = CONFIG.model_copy(update={"max_order_notional": order_limit, "max_run_notional": run_limit})
    if any(size > order_limit for size in sizes) or sum(sizes, ZERO) > run_limit:
        with pytest.raises(SafetyLimitError):
            check_safety(legs, acct.prices, config)
    else:
        assert check_safety(legs, acct.prices, config) == sum(sizes, ZERO)
