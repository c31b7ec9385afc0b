"""The simulated cash account: buying power, positions, asset flags, and its configuration."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sim_support import Sim, limit, make_tape, market, run_sim

from repeg.brokers.simulator import LatencyModel, PaperFillModel, SimAccount
from repeg.domain.orders import OrderStatus, ReplaceRequest, Side
from repeg.errors import ConfigError, InsufficientBuyingPowerError, OrderRejectedError, UnknownSymbolError

SMALL = SimAccount(cash=Decimal(1000), positions={"ABC": Decimal(20)})


def test_buy_fill_debits_cash_and_adds_to_the_position() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.10"))
        await sim.until(1)
        account = await sim.broker.get_account()
        assert account.cash == Decimal("1000") - Decimal("100.50")
        (position,) = await sim.broker.get_positions()
        assert (position.symbol, position.qty) == ("ABC", Decimal(30))

    run_sim(scenario, account=SMALL)


def test_sell_fill_credits_cash_and_a_full_exit_removes_the_position() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(market("s1", Side.SELL, "20"))
        await sim.until(1)
        assert (await sim.broker.get_account()).cash == Decimal(1000) + 20 * Decimal("10.00")
        assert await sim.broker.get_positions() == []

    run_sim(scenario, account=SMALL)


def test_average_entry_price_blends_the_opening_mark_and_buys() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(limit("b1", Side.BUY, "20", "10.10"))
        await sim.until(1)
        (position,) = await sim.broker.get_positions()
        # 20 shares marked at the first mid (10.025) and 20 bought at 10.05.
        assert position.avg_entry_price == Decimal("10.037500")

    run_sim(scenario, account=SMALL)


def test_positions_are_marked_at_the_current_mid() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.until(12)
        (position,) = await sim.broker.get_positions()
        assert position.market_value == 20 * Decimal("10.125")
        account = await sim.broker.get_account()
        assert account.equity == Decimal(1000) + 20 * Decimal("10.125")

    run_sim(scenario, account=SMALL)


def test_buy_costing_more_than_buying_power_is_rejected() -> None:
    async def scenario(sim: Sim) -> None:
        with pytest.raises(InsufficientBuyingPowerError) as info:  # typed as Alpaca's 403 is (mapping.py)
            await sim.broker.submit_order(limit("b1", Side.BUY, "100", "10.01"))
        assert info.value.broker_message == "insufficient buying power"
        assert info.value.code == "40310000"
        assert await sim.broker.get_order_by_client_id("b1") is None

    run_sim(scenario, account=SMALL)


def test_open_buys_reserve_buying_power_until_cancelled() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "90", "9.00"))
        assert (await sim.broker.get_account()).buying_power == Decimal(1000) - Decimal(810)
        with pytest.raises(OrderRejectedError):
            await sim.broker.submit_order(limit("b2", Side.BUY, "30", "9.00"))
        await sim.broker.cancel_order(order.order_id)
        assert (await sim.broker.get_account()).buying_power == Decimal(1000)
        await sim.broker.submit_order(limit("b3", Side.BUY, "30", "9.00"))

    run_sim(scenario, account=SMALL)


def test_replace_may_use_the_buying_power_of_the_order_it_replaces() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "99", "9.00"))
        new = await sim.broker.replace_order(
            ReplaceRequest(
                order_id=order.order_id, client_order_id="b2", qty=Decimal(99), limit_price=Decimal("10")
            )
        )
        assert (await sim.broker.get_account()).buying_power == Decimal(1000) - Decimal(990)
        with pytest.raises(OrderRejectedError):
            await sim.broker.replace_order(
                ReplaceRequest(
                    order_id=new.order_id, client_order_id="b3", qty=Decimal(99), limit_price=Decimal(11)
                )
            )

    run_sim(scenario, account=SMALL)


def test_a_pending_replace_holds_the_larger_of_its_two_reservations_not_both() -> None:
    # Only one of an order and its pending replacement can ever execute (a fill of the original fails the
    # replace), so the pair needs the larger reservation. Holding both took 90 more buying power for the whole
    # replace latency, and another buy that fits either outcome was refused ("insufficient buying power").
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.00"))
        await sim.broker.replace_order(
            ReplaceRequest(
                order_id=order.order_id, client_order_id="b2", qty=Decimal(10), limit_price=Decimal("9.50")
            )
        )
        assert (await sim.broker.get_account()).buying_power == Decimal(200) - Decimal(95)
        await sim.broker.submit_order(limit("b3", Side.BUY, "10", "10.00"))  # 95 + 100 <= 200
        await sim.until(2)
        assert (await sim.broker.get_account()).buying_power == Decimal(200) - Decimal(95) - Decimal(100)

    run_sim(
        scenario, account=SimAccount(cash=Decimal(200)), latency=LatencyModel(replace=timedelta(seconds=1))
    )


def test_market_buy_is_checked_against_the_current_ask() -> None:
    async def scenario(sim: Sim) -> None:
        with pytest.raises(OrderRejectedError, match="buying power"):
            await sim.broker.submit_order(market("m1", Side.BUY, "100"))
        await sim.broker.submit_order(market("m2", Side.BUY, "99"))

    run_sim(scenario, account=SMALL)


#: A valid 10.00 ask, then a crossed quote (bid 10.00 / ask 5.00) current when the market buy is sent.
CROSSED_NOW = make_tape({"ABC": ((0, "9.99", "10.00"), (1, "10.00", "5.00"), (30, "9.99", "10.00"))})


def test_market_buy_is_not_checked_against_the_ask_of_a_crossed_quote() -> None:
    # A crossed quote is no market (48b5156): a market buy waits for the next valid one, so its cost is the ask of
    # a valid quote. Checked at the crossed 5.00 ask, 150 shares ($1,500 at 10.00) passed $1,000 of buying power.
    async def scenario(sim: Sim) -> None:
        await sim.until(2)
        with pytest.raises(OrderRejectedError, match="buying power"):
            await sim.broker.submit_order(market("m1", Side.BUY, "150"))

    run_sim(scenario, tape=CROSSED_NOW, account=SMALL)


#: The ask a market buy is checked against (10.00) rises to 10.50 a second later and stays there.
RISING = make_tape({"ABC": ((0, "9.99", "10.00"), *((t, "10.49", "10.50") for t in range(1, 40)))})


def _market_buy_into_a_rising_ask(*, resting_buy: bool) -> Sim:
    """A market buy for all the cash at the 10.00 ask, split by partial fills that meet the 10.50 ask."""

    async def scenario(sim: Sim) -> None:
        if resting_buy:
            await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.00"))  # reserves 90
        await sim.broker.submit_order(market("m1", Side.BUY, "91" if resting_buy else "100"))
        await sim.until(60)

    return run_sim(
        scenario,
        tape=RISING,
        account=SimAccount(cash=Decimal(1000)),
        fill_model=lambda tape: PaperFillModel(tape, seed=3, partial_rate=1.0),
    )


def test_market_buy_filling_above_its_reserved_ask_never_takes_cash_below_zero() -> None:
    sim = _market_buy_into_a_rising_ask(resting_buy=False)
    spent = sum(f.qty * f.price for f in sim.broker.executions)
    assert spent <= Decimal(1000)
    assert sim.updates[-1].order.filled_qty < Decimal(100)


def test_market_buy_filling_above_its_reserved_ask_leaves_other_buys_their_reservation() -> None:
    sim = _market_buy_into_a_rising_ask(resting_buy=True)
    spent = sum(f.qty * f.price for f in sim.broker.executions)
    assert spent <= Decimal(1000) - Decimal(90)


def test_market_buy_remainder_the_cash_cannot_pay_for_is_cancelled() -> None:
    sim = _market_buy_into_a_rising_ask(resting_buy=False)
    final = sim.updates[-1].order
    assert (sim.updates[-1].event.value, final.status) == ("canceled", OrderStatus.CANCELED)
    assert all(f.qty == f.qty.to_integral_value() for f in sim.broker.executions)


#: The ask a market buy is checked against (10.00) jumps to 10.50 for one second, then comes back to 10.00.
SPIKE = make_tape(
    {"ABC": ((0, "9.99", "10.00"), (1, "10.49", "10.50"), *((t, "9.99", "10.00") for t in range(2, 40)))}
)


def test_market_buy_that_overspent_its_reservation_pays_the_rest_at_its_reserved_ask_only_from_cash() -> None:
    # A part bought at 10.50 spent more than its 10.00 reservation; the rest, at 10.00 again, was taken as paid in
    # full from the order's own reservation, which the overspend had left short: $1,000.50 to $1,031 was spent of
    # $1,000 (seeds 1 to 4 under partial fills), cash below zero.
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(market("m1", Side.BUY, "100"))
        await sim.until(45)

    for seed in range(1, 5):
        sim = run_sim(
            scenario,
            tape=SPIKE,
            account=SimAccount(cash=Decimal(1000)),
            fill_model=lambda tape, seed=seed: PaperFillModel(tape, seed=seed, partial_rate=1.0),
        )
        assert sum(f.qty * f.price for f in sim.broker.executions) <= Decimal(1000), seed


def test_market_buy_filling_at_its_reserved_ask_during_another_buys_pending_replace_fills_in_full() -> None:
    # While a replace is pending the buy and its replacement both hold a reservation (1,400 of 1,000 cash here),
    # but only one can ever fill: a market buy filling at the ask it reserved is paid from its own reservation.
    async def scenario(sim: Sim) -> None:
        resting = await sim.broker.submit_order(limit("b1", Side.BUY, "50", "9.00"))  # reserves 450
        await sim.until(3)
        await sim.broker.submit_order(market("m1", Side.BUY, "50"))  # reserves 500 at the 10.00 ask
        await sim.broker.replace_order(
            ReplaceRequest(
                order_id=resting.order_id, client_order_id="b2", qty=Decimal(50), limit_price=Decimal("9.00")
            )
        )
        await sim.until(20)

    latency = LatencyModel(submit_ack=timedelta(seconds=2), replace=timedelta(seconds=10))
    sim = run_sim(scenario, account=SimAccount(cash=Decimal(1000)), latency=latency)
    assert [(f.qty, f.price) for f in sim.broker.executions] == [(Decimal(50), Decimal("10.00"))]


def test_buying_power_never_goes_negative_while_a_market_buy_that_overspent_is_open() -> None:
    # After parts bought at 10.50, the order still reserved its remainder at 10.00 although its overspend had
    # already come out of that cash: buying power read -10.00 (cash 90.00, 10 shares reserved at 10.00).
    seen: list[Decimal] = []

    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(market("m1", Side.BUY, "100"))
        for second in range(1, 40):
            await sim.until(second + 0.5)
            seen.append((await sim.broker.get_account()).buying_power)

    run_sim(
        scenario,
        tape=RISING,
        account=SimAccount(cash=Decimal(1000)),
        fill_model=lambda tape: PaperFillModel(tape, seed=3, partial_rate=1.0),
    )
    assert min(seen) >= 0


def test_sell_beyond_the_shares_held_is_rejected() -> None:
    async def scenario(sim: Sim) -> None:
        with pytest.raises(OrderRejectedError, match="insufficient qty") as info:
            await sim.broker.submit_order(limit("s1", Side.SELL, "21", "10.00"))
        assert not isinstance(info.value, InsufficientBuyingPowerError)  # shares, not buying power
        await sim.broker.submit_order(limit("s2", Side.SELL, "15", "11.00"))
        with pytest.raises(OrderRejectedError, match="available: 5"):
            await sim.broker.submit_order(limit("s3", Side.SELL, "6", "11.00"))

    run_sim(scenario, account=SMALL)


def test_asset_flags_follow_the_account_configuration() -> None:
    account = SimAccount(non_tradable=("ONE",), non_fractionable=("SUB",))

    async def scenario(sim: Sim) -> None:
        abc = await sim.broker.get_asset("ABC")
        assert (abc.tradable, abc.fractionable, abc.shortable) == (True, True, False)
        assert not (await sim.broker.get_asset("ONE")).tradable
        assert not (await sim.broker.get_asset("SUB")).fractionable
        with pytest.raises(UnknownSymbolError):
            await sim.broker.get_asset("ZZZ")

    run_sim(scenario, account=account)


def test_orders_for_not_tradable_or_unknown_symbols_are_rejected() -> None:
    async def scenario(sim: Sim) -> None:
        with pytest.raises(OrderRejectedError, match="not tradable"):
            await sim.broker.submit_order(limit("b1", Side.BUY, "1", "10.00", symbol="ONE"))
        with pytest.raises(OrderRejectedError, match="no market data"):
            await sim.broker.submit_order(limit("b2", Side.BUY, "1", "10.00", symbol="ZZZ"))

    run_sim(scenario, account=SimAccount(non_tradable=("ONE",)))


def test_fractional_qty_is_rejected_for_a_non_fractionable_asset() -> None:
    async def scenario(sim: Sim) -> None:
        with pytest.raises(OrderRejectedError, match="not fractionable"):
            await sim.broker.submit_order(limit("b1", Side.BUY, "1.5", "0.4300", symbol="SUB"))
        await sim.broker.submit_order(limit("b2", Side.BUY, "1.5", "10.00"))

    run_sim(scenario, account=SimAccount(non_fractionable=("SUB",)))


def test_sim_account_reads_a_toml_style_mapping() -> None:
    account = SimAccount.from_mapping(
        {"cash": 250000.5, "positions": {"ABC": 100, "SUB": "2.5"}, "non_tradable": ["ONE"]}
    )
    assert account.cash == Decimal("250000.5")
    assert account.positions == {"ABC": Decimal(100), "SUB": Decimal("2.5")}
    assert account.non_tradable == ("ONE",)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"cash": "lots"}, "cash"),
        ({"cash": -1}, "cash"),
        ({"positions": {"ABC": 0}}, "positions.ABC"),
        ({"positions": {"ABC": "x"}}, "positions.ABC"),
        ({"leverage": 2}, "leverage"),
    ],
)
def test_sim_account_errors_name_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SimAccount.from_mapping(data)
    assert info.value.key == key


def test_sim_account_refuses_a_position_finer_than_the_share_precision() -> None:
    # A holding of 1.0000000001 shares was accepted, then its full exit (the exact position quantity) was
    # refused by the same simulator as "finer than 1E-9": the leg could never complete.
    with pytest.raises(ConfigError, match="1E-9") as info:
        SimAccount.from_mapping({"positions": {"ABC": "1.0000000001"}})
    assert info.value.key == "positions.ABC"
    assert SimAccount.from_mapping({"positions": {"ABC": "1.000000001"}}).positions == {
        "ABC": Decimal("1.000000001")
    }


@pytest.mark.parametrize(
    ("qty", "reason"),
    [(-5.5, "must be over 0"), ("1.0000000001", "must be a multiple of 1E-9 shares")],
)
def test_a_bad_position_is_named_by_its_symbol_with_its_value_as_written(qty: object, reason: str) -> None:
    # It read "config positions: Value error, position ABC must be > 0, got -5.5 (got a table)": the whole table
    # named as the key, a note that a table was given (the value is a number), pydantic's "Value error, " prefix.
    with pytest.raises(ConfigError) as info:
        SimAccount.from_mapping({"positions": {"ABC": qty}})
    assert (info.value.key, info.value.value, info.value.reason) == ("positions.ABC", qty, reason)


@pytest.mark.parametrize("qty", [1e19, "1e19", 10**20])
def test_sim_account_refuses_a_huge_position_as_too_large_not_as_off_the_share_grid(qty: object) -> None:
    # 1e19 shares is a whole number, on the 1e-9 grid; it was refused as "must be a multiple of 1E-9 shares"
    # (quantizing it to 1e-9 needs 29 digits, more than Decimal's 28, which the grid check read as off-grid).
    with pytest.raises(ConfigError) as info:
        SimAccount.from_mapping({"positions": {"ABC": qty}})
    assert info.value.key == "positions.ABC"
    assert "multiple of" not in info.value.reason
    assert "at most 1,000,000,000,000,000,000 shares" in info.value.reason


def test_latency_model_reads_seconds_and_names_a_bad_key() -> None:
    assert LatencyModel.from_mapping({"cancel": 0.25}).cancel == timedelta(milliseconds=250)
    with pytest.raises(ConfigError) as info:
        LatencyModel.from_mapping({"replace": -1})
    assert (info.value.key, info.value.value) == ("latency.replace", -1)


@pytest.mark.parametrize("cash", [1e28, "1e16", 10**15 + 1])
def test_sim_account_refuses_cash_too_large_to_stay_exact_to_the_fill(cash: object) -> None:
    # Positions are bounded (c7a4357), cash was not: $1e28 was accepted and a buy of $100.50 left
    # 9999999999999999999999999900, not ...899.50 (Decimal's 28 digits rounded the books). Cash is bounded at
    # $1e15, where a fill's notional (9-decimal shares at 4-decimal prices) still fits exactly.
    with pytest.raises(ConfigError) as info:
        SimAccount.from_mapping({"cash": cash})
    assert (info.value.key, info.value.value) == ("cash", cash)
    assert info.value.reason == "must be at most 1,000,000,000,000,000"
    assert SimAccount.from_mapping({"cash": 10**15}).cash == Decimal(10**15)
