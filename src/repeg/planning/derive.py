"""Turn a plan into the exact legs to execute, from the account as the broker reports it. Pure.

Rules (the README's "Inputs" section repeats them for users):

- A trade list is taken as written. A sell whose quantity equals the whole long position is a full exit.
  A sell given as a notional is sized here, at the arrival price, rounded down (the engine sizes notional buys
  only, at the start of the buy phase: a notional sell left unsized would never be sent), and never above the
  long position held: a notional worth more sells the exact position (a full exit), where selling more than
  held would be refused by the broker and sell nothing. In a list that repeats a symbol (built in Python: a plan
  file refuses it), "the long position" of a sell is what the earlier sells of its symbol that are kept leave;
  a notional sell that finds none of it left is skipped (`SOLD_BEFORE`), as selling it would be refused.
- Target weights are fractions of equity, where equity = cash + every position valued at the arrival prices
  (a position without an arrival price is valued at the broker's `market_value`). A positive weight against
  equity <= 0 is refused (`PlanError`): a share of it is meaningless, and a sell sized from it could exceed
  the position. Weight-0 exits need no equity. A symbol over its target is
  sold down, one under it is bought up.
- Weight 0 means exit: the exact position quantity is traded (`full_exit=True`), never rounded; of a
  non-fractionable asset held in a fraction of a share (a broker refuses a fractional quantity of it), its
  whole shares are traded instead, rounded down like any of its trades (not a full exit), and the fraction left
  held is reported as a `SkippedTrade` (`FRACTION_LEFT`), as it is for a sell of the whole position in a trade
  list or a notional sell capped at it.
- A held symbol that the weights plan does not name is left untouched: repeg never trades a symbol the plan
  does not mention. To exit it, list it with weight 0.
- Quantities of non-fractionable assets round down to whole shares, others down to 1e-9 shares
  (`ticks.round_qty_down`); rounding never makes a trade larger than asked.
- A trade whose estimated notional is under `config.min_notional`, that rounds to zero shares, or whose symbol
  has no valid arrival price, is skipped and reported as a `SkippedTrade`, not failed.
- Every plan symbol must be known to the broker (`UnknownSymbolError`) and tradable (`NotTradableError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from repeg.config import ExecutionConfig
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import Side
from repeg.domain.plan import MAX_AMOUNT, LegSpec, Plan, PlanKind, SkippedTrade, TargetWeight, TradeIntent
from repeg.domain.ticks import PENNY, ZERO, round_qty_down
from repeg.errors import NotTradableError, PlanError, UnknownSymbolError

NO_PRICE = "no valid arrival quote"
#: Why a notional sell of a symbol listed again sells nothing: the earlier rows' sells take the whole long position.
SOLD_BEFORE = "the earlier sells of this symbol take the whole long position: none is left to sell"
#: Why an exit leaves a fraction of a share of a non-fractionable asset held: no order can sell it.
FRACTION_LEFT = "a fraction of a share of a non-fractionable asset: the broker refuses it, left held"


@dataclass(frozen=True, slots=True)
class _Trade:
    """A trade before the minimum-notional filter: exactly one of qty and notional is set."""

    symbol: str
    side: Side
    qty: Decimal | None
    notional: Decimal | None
    whole_shares: bool
    full_exit: bool = False
    #: The long position a notional sell may not exceed (sized above it, it sells exactly that: a full exit).
    held: Decimal | None = None
    #: What an exit leaves held: the fraction of a share of a non-fractionable asset no order can sell.
    left: Decimal = ZERO


def plan_symbols(plan: Plan) -> list[str]:
    """The plan's symbols in plan order."""
    if plan.kind is PlanKind.TRADES:
        return [trade.symbol for trade in plan.trades]
    return [weight.symbol for weight in plan.weights]


def check_assets(plan: Plan, assets: Mapping[str, Asset]) -> None:
    """Refuse a plan naming a symbol the broker does not know or will not trade (naming its file and row)."""
    for symbol in plan_symbols(plan):
        asset = assets.get(symbol)
        if asset is None:
            raise UnknownSymbolError(symbol, plan.source, plan.row_of(symbol))
        if not asset.tradable:
            raise NotTradableError(symbol, plan.source, plan.row_of(symbol))


def portfolio_equity(
    account: Account, positions: Sequence[Position], prices: Mapping[str, Decimal]
) -> Decimal:
    """Cash plus every position at its arrival price (the broker's market value when it has none)."""
    total = account.cash
    for position in positions:
        price = prices.get(position.symbol)
        total += position.market_value if price is None else position.qty * price
    return total


def derive_legs(
    plan: Plan,
    account: Account,
    positions: Sequence[Position],
    assets: Mapping[str, Asset],
    prices: Mapping[str, Decimal],
    *,
    config: ExecutionConfig,
) -> tuple[list[LegSpec], list[SkippedTrade]]:
    """The legs to execute (indexed 0.. in plan order) and the trades skipped, with their reasons.

    `prices` holds the arrival mid of every symbol that had a valid quote; `assets` the broker's facts for at
    least every plan symbol. Raises `UnknownSymbolError` / `NotTradableError` before deriving anything.
    """
    check_assets(plan, assets)
    held = {position.symbol: position.qty for position in positions}
    skipped: list[SkippedTrade] = []
    if plan.kind is PlanKind.TRADES:
        trades = _intent_trades(plan, held, assets, prices, config)
    else:
        equity = portfolio_equity(account, positions, prices)
        _check_equity(plan, equity)
        for target in plan.weights:
            if target.symbol not in prices:
                skipped.extend(_unpriced(target, positions, equity, assets[target.symbol]))
        trades = _weights_trades(plan, held, assets, prices, equity)
    return _filter(trades, prices, config, skipped)


def _intent_trades(
    plan: Plan,
    held: Mapping[str, Decimal],
    assets: Mapping[str, Asset],
    prices: Mapping[str, Decimal],
    config: ExecutionConfig,
) -> list[_Trade]:
    """The trade of each row, each sell measured against the long position the earlier rows of its symbol leave
    (a list built in Python may repeat a symbol): the sells kept before it are sent with it, and all of them
    above the position would have the broker refuse the last ones. A sell skipped leaves the position as it was."""
    left = dict(held)
    trades: list[_Trade] = []
    for intent in plan.trades:
        current = left.get(intent.symbol, ZERO)
        # What is left of a long position (0 once the earlier sells take it all); None: the account held none.
        long_left = max(current, ZERO) if held.get(intent.symbol, ZERO) > ZERO else None
        trade = _from_intent(intent, assets[intent.symbol], current, long_left)
        trades.append(trade)
        price = prices.get(intent.symbol)
        qty = _estimated_qty(trade, price)
        if trade.side is Side.SELL and _skip_reason(trade, qty, price, config) is None:
            left[intent.symbol] = left.get(intent.symbol, ZERO) - qty
    return trades


def _unpriced(
    target: TargetWeight, positions: Sequence[Position], equity: Decimal, asset: Asset
) -> list[SkippedTrade]:
    """The skip of a weight without an arrival price: its side from the broker's mark of the position (what
    equity counts it at), a full exit with the quantity it would have sold (`_exit_qty`); none if nothing is
    to trade."""
    held = next((p for p in positions if p.symbol == target.symbol), None)
    current, mark = (ZERO, ZERO) if held is None else (held.qty, held.market_value)
    if target.weight == ZERO:
        if current == ZERO:
            return []
        qty, left = _exit_split(current, not asset.fractionable)
        skip = SkippedTrade(symbol=target.symbol, side=_side_of(current), qty=qty, reason=NO_PRICE)
        return [skip, *_fraction_left(target.symbol, _side_of(current), qty, left)]
    side = Side.BUY if target.weight * equity > mark else Side.SELL
    return [SkippedTrade(symbol=target.symbol, side=side, qty=ZERO, reason=NO_PRICE)]


def _check_equity(plan: Plan, equity: Decimal) -> None:
    """A positive weight of a non-positive equity means nothing, and a sell sized from it could go short."""
    if equity <= ZERO and any(target.weight > ZERO for target in plan.weights):
        raise PlanError(f"{plan.source}: equity {equity} is not positive: target weights cannot apply")


def _weights_trades(
    plan: Plan,
    held: Mapping[str, Decimal],
    assets: Mapping[str, Asset],
    prices: Mapping[str, Decimal],
    equity: Decimal,
) -> list[_Trade]:
    """The trades of the weights that have an arrival price (those without one are skipped: `_unpriced`)."""
    trades: list[_Trade] = []
    for target in plan.weights:
        price = prices.get(target.symbol)
        if price is None:
            continue
        current = held.get(target.symbol, ZERO)
        trade = _from_weight(target, assets[target.symbol], current, price, equity, source=plan.source)
        if trade is not None:
            trades.append(trade)
    return trades


def _sendable(position: Decimal, whole: bool) -> bool:
    """Whether the exact position can be sent as one order: a broker refuses a fractional quantity of a
    non-fractionable asset (its whole shares are traded instead, the rest left held)."""
    return not whole or position == position.to_integral_value()


def _exit_split(current: Decimal, whole: bool) -> tuple[Decimal, Decimal]:
    """What an exit of `current` trades, and what it leaves held: the exact position and nothing, or, when it
    cannot be sent, its whole shares and the fraction of a share left."""
    if _sendable(current, whole):
        return abs(current), ZERO
    qty = round_qty_down(abs(current), whole)
    return qty, abs(current) - qty


def _fraction_left(symbol: str, side: Side, qty: Decimal, left: Decimal) -> list[SkippedTrade]:
    """The skip reporting the fraction of a share an exit of `qty` whole shares leaves held (none when it leaves
    nothing, or sells nothing: that trade is itself skipped, as rounding to zero whole shares)."""
    if left <= ZERO or qty <= ZERO:
        return []
    return [SkippedTrade(symbol=symbol, side=side, qty=left, reason=FRACTION_LEFT)]


def _side_of(current: Decimal) -> Side:
    return Side.SELL if current > ZERO else Side.BUY


def _from_intent(intent: TradeIntent, asset: Asset, current: Decimal, long_left: Decimal | None) -> _Trade:
    whole = not asset.fractionable
    if intent.qty is None:
        held = long_left if intent.side is Side.SELL else None
        return _Trade(intent.symbol, intent.side, None, intent.notional, whole, held=held)
    if intent.side is Side.SELL and intent.qty == current:
        qty, left = _exit_split(current, whole)
        return _Trade(intent.symbol, intent.side, qty, None, whole, full_exit=left == ZERO, left=left)
    return _Trade(intent.symbol, intent.side, round_qty_down(intent.qty, whole), None, whole)


def _from_weight(
    target: TargetWeight, asset: Asset, current: Decimal, price: Decimal, equity: Decimal, *, source: str
) -> _Trade | None:
    """The trade that moves `current` shares to `target.weight` of `equity`, or None when already there.

    A trade of more than `MAX_AMOUNT` shares is refused (`PlanError`), as a plan row asking for it is: rounding
    it to 1e-9 shares would exceed Decimal's 28 digits."""
    whole = not asset.fractionable
    if target.weight == ZERO:
        if current == ZERO:
            return None
        qty, left = _exit_split(current, whole)
        return _Trade(target.symbol, _side_of(current), qty, None, whole, full_exit=left == ZERO, left=left)
    delta_value = target.weight * equity - current * price
    if delta_value == ZERO:
        return None
    side = Side.BUY if delta_value > ZERO else Side.SELL
    shares = abs(delta_value) / price
    if shares > MAX_AMOUNT:
        reason = f"the trade to weight {target.weight} is {shares:.6E} shares, more than {MAX_AMOUNT:,}"
        raise PlanError(f"{source}: {target.symbol}: {reason}")
    qty = round_qty_down(shares, whole)
    return _Trade(target.symbol, side, qty, None, whole)


def _filter(
    trades: list[_Trade], prices: Mapping[str, Decimal], config: ExecutionConfig, skipped: list[SkippedTrade]
) -> tuple[list[LegSpec], list[SkippedTrade]]:
    legs: list[LegSpec] = []
    for trade in trades:
        price = prices.get(trade.symbol)
        qty = _estimated_qty(trade, price)
        reason = _skip_reason(trade, qty, price, config)
        if reason is not None:
            skipped.append(
                SkippedTrade(
                    symbol=trade.symbol, side=trade.side, qty=qty, notional=trade.notional, reason=reason
                )
            )
        else:
            legs.append(_leg(len(legs), trade, qty))
        skipped.extend(_fraction_left(trade.symbol, trade.side, qty, _left_held(trade, qty, price)))
    return legs, skipped


def _leg(index: int, trade: _Trade, qty: Decimal) -> LegSpec:
    """The leg of a kept trade; a notional sell becomes its arrival-price quantity (`qty`), as only buys are
    sized from a notional by the engine (at the start of the buy phase)."""
    sized_sell = trade.side is Side.SELL and trade.notional is not None
    return LegSpec(
        index=index,
        symbol=trade.symbol,
        side=trade.side,
        qty=qty if sized_sell else trade.qty,
        notional=None if sized_sell else trade.notional,
        whole_shares=trade.whole_shares,
        full_exit=trade.full_exit or (sized_sell and qty == trade.held),
    )


def _estimated_qty(trade: _Trade, price: Decimal | None) -> Decimal:
    """The trade's quantity; for a notional trade, what it would buy or sell at the arrival price."""
    if trade.qty is not None:
        return trade.qty
    if price is None or trade.notional is None:
        return ZERO
    qty = round_qty_down(trade.notional / price, trade.whole_shares)
    return qty if trade.held is None else min(qty, _exit_split(trade.held, trade.whole_shares)[0])


def _left_held(trade: _Trade, qty: Decimal, price: Decimal | None) -> Decimal:
    """What the trade leaves held of the position it exits: a notional sell asking for at least the whole long
    position, capped at its whole shares (`_estimated_qty`), leaves the fraction of a share no order can sell."""
    if trade.held is None or trade.notional is None or price is None or trade.notional / price < trade.held:
        return trade.left
    if not trade.whole_shares:
        return ZERO
    return trade.held - qty


def _counts_as_asked(trade: _Trade, qty: Decimal) -> bool:
    """Whether min_notional judges a notional trade by the dollars asked, not by what its quantity trades:
    not when whole-share rounding, or a sell held to the position, makes it trade much less than asked."""
    capped = trade.held is not None and qty == trade.held
    return not trade.whole_shares and not capped


def _skip_reason(trade: _Trade, qty: Decimal, price: Decimal | None, config: ExecutionConfig) -> str | None:
    if price is None:
        return NO_PRICE
    if trade.held is not None and trade.held <= ZERO:
        return SOLD_BEFORE
    if qty <= ZERO:
        return "rounds to zero whole shares" if trade.whole_shares else "rounds to zero shares"
    asked = trade.notional
    notional = asked if asked is not None and _counts_as_asked(trade, qty) else qty * price
    if notional < config.min_notional:
        shown = notional.quantize(PENNY, rounding=ROUND_DOWN)  # ".2f" shows $0.999 as 1.00: "1.00 below 1"
        return f"notional {shown} is below min_notional {config.min_notional}"
    return None
