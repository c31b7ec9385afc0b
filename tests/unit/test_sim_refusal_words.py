"""The simulator's refusals of a quantity or limit price say what is wrong with it (too large, too many digits,
too fine, off the tick grid), naming the field and the value, on a submit and on a replace alike."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sim_support import Sim, limit, run_sim

from repeg.brokers.simulator import SimAccount
from repeg.domain.orders import ReplaceRequest, Side
from repeg.errors import OrderRejectedError

_RICH = SimAccount(cash=Decimal(10) ** 15, positions={"ABC": Decimal(10) ** 18})


def _refusal(side: Side, qty: str, price: str, *, replace: bool = False) -> OrderRejectedError:
    """The refusal of a limit order of `qty` at `price` on ABC, submitted (or, with `replace`, as the replacement
    of a resting order of 1 share: a replacement's quantity is capped at what the order has left)."""
    seen: list[OrderRejectedError] = []

    async def send(sim: Sim) -> None:
        if not replace:
            await sim.broker.submit_order(limit("s0", side, qty, price))
            return
        resting = await sim.broker.submit_order(
            limit("r0", side, "1", "9.00" if side is Side.BUY else "11.00")
        )
        request = ReplaceRequest(
            order_id=resting.order_id, client_order_id="r1", qty=Decimal(qty), limit_price=Decimal(price)
        )
        await sim.broker.replace_order(request)

    async def scenario(sim: Sim) -> None:
        with pytest.raises(OrderRejectedError) as refused:
            await send(sim)
        seen.append(refused.value)

    run_sim(scenario, account=_RICH)
    return seen[0]


@pytest.mark.parametrize(
    ("side", "qty", "words"),
    [
        # 1e30 kept to 1e-9 shares needs 40 digits, more than Decimal's 28: it was refused as "finer than 1E-9"
        (Side.BUY, "1e30", "qty 1E+30 is too large"),
        (Side.SELL, "123456789012345678901.123456789", "qty 123456789012345678901.123456789 is too large"),
        (Side.SELL, "1.0000000001", "qty 1.0000000001 is finer than 1E-9 shares"),
    ],
)
def test_a_quantity_off_the_share_grid_is_refused_saying_what_is_wrong(
    side: Side, qty: str, words: str
) -> None:
    message = str(_refusal(side, qty, "10.00" if side is Side.BUY else "10.50"))
    assert words in message
    if "too large" in words:
        assert "finer" not in message
        assert "28 digits" in message


@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("price", ["1e30", "1000000000000"])
def test_a_limit_price_too_large_is_refused_as_too_large_not_as_a_sub_penny_price(
    price: str, replace: bool
) -> None:
    """A limit price of $1e30 (or the $1e12 ceiling) was refused as "off the tick grid", with Alpaca's sub-penny
    words and code: the price is on the penny grid, it is too large."""
    refusal = _refusal(Side.SELL, "1", price, replace=replace)
    assert f"limit price {Decimal(price)} is too large" in str(refusal)
    assert "1000000000000" in str(refusal)
    assert "tick grid" not in str(refusal)
    assert (refusal.broker_message, refusal.code) == (None, None)


def test_a_limit_price_off_the_tick_grid_keeps_alpacas_sub_penny_words_and_code() -> None:
    """Guard: the one refusal of a price the grid explains keeps the words and code Alpaca gives it."""
    refusal = _refusal(Side.BUY, "1", "10.001")
    assert "limit price 10.001 is off the tick grid" in str(refusal)
    assert refusal.code == "42210000"
    assert refusal.broker_message is not None
    assert "sub-penny" in refusal.broker_message
