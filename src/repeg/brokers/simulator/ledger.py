"""The simulated account's books: cash, long positions, and what open orders have reserved.

Like Alpaca's cash account, buying power is cash less the worst-case cost of open buy orders, and a sell may
not exceed the shares held less those already committed to open sells (no shorting). Reservations are kept as
running totals, so checks cost O(1) however many orders are open.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from repeg.brokers.simulator.account import SimAccount
from repeg.brokers.simulator.state import SimOrder
from repeg.domain.account import Account, Position
from repeg.domain.orders import Side
from repeg.domain.ticks import ZERO, from_units
from repeg.errors import InsufficientBuyingPowerError, OrderRejectedError
from repeg.market.tape import QuoteTape

_PRICE_PRECISION = Decimal("0.000001")
_ONE_SHARE = Decimal(1)
_QTY_STEP = Decimal("0.000000001")


class Ledger:
    """Cash, positions and reservations. Fills are applied here; the broker decides when they happen."""

    def __init__(self, tape: QuoteTape, account: SimAccount) -> None:
        self._tape = tape
        self.cash = account.cash
        self._qty: dict[str, Decimal] = dict(account.positions)
        self._cost: dict[str, Decimal] = {}
        for symbol, qty in self._qty.items():
            entry = self._first_mid(symbol)
            self._cost[symbol] = qty * (entry if entry is not None else ZERO)
        self._reserved_cash = ZERO
        self._reserved_qty: dict[str, Decimal] = {}

    # --- checks ----------------------------------------------------------------------------------------------

    @property
    def buying_power(self) -> Decimal:
        return self.cash - self._reserved_cash

    def position(self, symbol: str) -> Decimal:
        return self._qty.get(symbol, ZERO)

    def check_affordable(self, order: SimOrder, *, freed: Decimal = ZERO) -> None:
        """Refuse a buy whose worst-case cost exceeds buying power (plus `freed`, e.g. the order it replaces)."""
        cost = order.qty * order.reserve_price
        available = self.buying_power + freed
        if cost > available:
            raise InsufficientBuyingPowerError(
                f"{order.symbol}: buy of {order.qty} at up to {order.reserve_price} costs {cost}, "
                f"buying power is {available}",
                broker_message="insufficient buying power",
                code="40310000",
            )

    def check_deliverable(self, order: SimOrder, *, freed: Decimal = ZERO) -> None:
        """Refuse a sell of more shares than are held and not already committed to other open sells."""
        available = self.position(order.symbol) - self._reserved_qty.get(order.symbol, ZERO) + freed
        if order.qty > available:
            raise OrderRejectedError(
                f"{order.symbol}: sell of {order.qty} exceeds the {available} shares available",
                broker_message=f"insufficient qty available for order (requested: {order.qty}, "
                f"available: {available})",
                code="40310000",
            )

    def affordable(self, order: SimOrder, qty: Decimal, price: Decimal) -> Decimal:
        """How much of an execution of `qty` at `price` the account can pay for (all of it for a sell).

        An execution that keeps the order's spending within what it reserved (its filled and new quantity at its
        reserve price) is paid from its own reservation, always in full: every limit buy's fill (at or below its
        limit), even while a pending replace holds a second reservation; a market buy's fill at or below the ask
        it reserved, unless earlier parts overspent it. Otherwise (a market buy meeting a higher ask, or whose
        overspend left the rest of its reservation short) it may spend only the cash not reserved by other open
        buys, so it is cut to what that covers, in whole shares when the order's remainder is whole: cash never
        goes below zero (a cash account).
        """
        if order.side is Side.SELL:
            return qty
        if order.filled_notional + qty * price <= (order.filled_qty + qty) * order.reserve_price:
            return qty
        spare = self.cash - (self._reserved_cash - order.reserved)
        if qty * price <= spare:
            return qty
        whole = order.whole_shares or order.remaining == order.remaining.to_integral_value()
        step = _ONE_SHARE if whole else _QTY_STEP
        return max(ZERO, min(qty, (spare / price).quantize(step, rounding=ROUND_DOWN)))

    # --- updates ---------------------------------------------------------------------------------------------

    def reserve(self, order: SimOrder, *, covered: Decimal = ZERO) -> None:
        """Bring the order's reservation in line with its remaining quantity (zero once it is closed).

        A buy reserves its remainder at its reserve price, but never more than what is left of its budget (its
        quantity at that price, less what it spent): a market buy whose parts met a higher ask already spent that
        cash, and reserving it again would take buying power below zero.

        `covered` is what another open order already reserves for the same exposure: a replacement, while the
        replace is pending, reserves only its excess over the order it replaces (only one of the two can ever
        execute: a fill of the original fails the replace), so the pair holds the larger reservation, not both.
        """
        wanted = ZERO
        if order.is_open and order.side is Side.BUY:
            budget_left = order.qty * order.reserve_price - order.filled_notional
            wanted = max(ZERO, min(order.remaining * order.reserve_price, budget_left) - covered)
        elif order.is_open:
            wanted = max(ZERO, order.remaining - covered)
        delta = wanted - order.reserved
        if delta == ZERO:
            return
        order.reserved = wanted
        if order.side is Side.BUY:
            self._reserved_cash += delta
        else:
            self._reserved_qty[order.symbol] = self._reserved_qty.get(order.symbol, ZERO) + delta

    def apply_fill(self, symbol: str, side: Side, qty: Decimal, price: Decimal) -> None:
        notional = qty * price
        held = self._qty.get(symbol, ZERO)
        if side is Side.BUY:
            self.cash -= notional
            self._qty[symbol] = held + qty
            self._cost[symbol] = self._cost.get(symbol, ZERO) + notional
            return
        self.cash += notional
        left = held - qty
        if left == ZERO:
            del self._qty[symbol]
            self._cost.pop(symbol, None)
        else:
            self._cost[symbol] = self._cost.get(symbol, ZERO) * left / held
            self._qty[symbol] = left

    # --- reports ---------------------------------------------------------------------------------------------

    def account(self, now_ns: int) -> Account:
        equity = self.cash + sum((p.market_value for p in self.positions(now_ns)), ZERO)
        return Account(cash=self.cash, buying_power=self.buying_power, equity=equity)

    def positions(self, now_ns: int) -> list[Position]:
        return [self._position(symbol, qty, now_ns) for symbol, qty in sorted(self._qty.items())]

    def _position(self, symbol: str, qty: Decimal, now_ns: int) -> Position:
        average = (self._cost.get(symbol, ZERO) / qty).quantize(_PRICE_PRECISION, rounding=ROUND_HALF_EVEN)
        mark = self.mark(symbol, now_ns)
        price = mark if mark is not None else average
        return Position(symbol=symbol, qty=qty, avg_entry_price=average, market_value=qty * price)

    def mark(self, symbol: str, now_ns: int) -> Decimal | None:
        """Mid of the last valid quote (0 < bid < ask) at or before now (else the first of the day), or None."""
        if symbol not in self._tape:
            return None
        current = self._tape.index_at_ns(symbol, now_ns)
        last = None if current is None else self._tape.last_tradable(symbol, current)
        return self._mid(symbol, last) if last is not None else self._first_mid(symbol)

    def _first_mid(self, symbol: str) -> Decimal | None:
        if symbol not in self._tape:
            return None
        first = self._tape.next_tradable(symbol, 0)
        return None if first is None else self._mid(symbol, first)

    def _mid(self, symbol: str, index: int) -> Decimal:
        cols = self._tape.columns(symbol)
        return from_units(int(cols.bid[index]) + int(cols.ask[index])) / 2
