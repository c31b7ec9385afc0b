"""What the built-in exchange asks of a request before it becomes an order (Alpaca's rules,
`../shared/alpaca/README.md`): market data for the symbol, a tradable asset, a whole quantity on a non-fractionable
one and a quantity on the 1e-9 share grid, a limit price below `MAX_PRICE` and on the tick grid. Each refusal is an
`OrderRejectedError` naming the symbol, the field and its value, in Alpaca's words where Alpaca has some."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from repeg.brokers.simulator.account import share_grid_fault
from repeg.domain.ticks import MAX_PRICE, is_legal_price
from repeg.errors import OrderRejectedError
from repeg.market.tape import QuoteTape

_SUB_PENNY_MESSAGE = "sub-penny increment does not fulfill minimum pricing criteria"


@dataclass(frozen=True, eq=False)
class Admission:
    """The exchange's checks of the symbol and quantity of a request (submit or replace)."""

    tape: QuoteTape
    non_tradable: frozenset[str]
    non_fractionable: frozenset[str]

    def check_tradable(self, symbol: str, qty: Decimal) -> None:
        if symbol not in self.tape:
            raise OrderRejectedError(
                f"{symbol}: no market data, cannot trade", broker_message="asset not found"
            )
        if symbol in self.non_tradable:
            raise OrderRejectedError(
                f"{symbol}: not tradable", broker_message=f"asset {symbol} is not tradable"
            )
        if symbol in self.non_fractionable and qty != qty.to_integral_value():
            raise OrderRejectedError(
                f"{symbol}: fractional qty {qty} on a non-fractionable asset",
                broker_message=f"asset {symbol} is not fractionable",
            )
        fault = share_grid_fault(qty)
        if fault is not None:
            raise OrderRejectedError(f"{symbol}: qty {qty} {fault}", broker_message="invalid qty")


def check_limit_price(symbol: str, limit: Decimal | None) -> None:
    """Refuse a limit price at or above `MAX_PRICE` as too large (it may be on the grid: not Alpaca's sub-penny
    words), and one off the tick grid in Alpaca's words and code."""
    if limit is None:
        return
    if limit >= MAX_PRICE:
        raise OrderRejectedError(
            f"{symbol}: limit price {limit} is too large: prices are below {MAX_PRICE:f}"
        )
    if not _on_tick_grid(limit):
        raise OrderRejectedError(
            f"{symbol}: limit price {limit} is off the tick grid",
            broker_message=_SUB_PENNY_MESSAGE,
            code="42210000",
        )


def _on_tick_grid(price: Decimal) -> bool:
    """`is_legal_price`, with a price too large for the Decimal context counted as illegal."""
    try:
        return is_legal_price(price)
    except InvalidOperation:
        return False


__all__ = ["Admission", "check_limit_price"]
