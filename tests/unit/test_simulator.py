"""The built-in exchange: Alpaca paper fill rules, order states, replace and cancel semantics."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sim_support import Sim, at, ioc, limit, make_tape, market, run_sim

from repeg.brokers.simulator import PaperFillModel
from repeg.brokers.simulator.state import SimEvent, next_status
from repeg.domain.orders import OrderRequest, OrderStatus, ReplaceRequest, Side
from repeg.errors import (
    DuplicateClientOrderIdError,
    IllegalTransitionError,
    OrderNotCancelableError,
    OrderNotFoundError,
    OrderRejectedError,
)


def test_submit_returns_accepted_order_and_fill_comes_in_a_later_callback() -> None:
    seen_at_return: list[int] = []

    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.10"))
        seen_at_return.append(len(sim.updates))
        assert order.status is OrderStatus.NEW
        assert order.order_id == "sim-00000001"
        await sim.until(0.5)

    sim = run_sim(scenario)
    assert seen_at_return == [0]
    assert sim.events() == ["new", "fill"]


def test_marketable_buy_limit_fills_at_the_ask_not_its_limit() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.10"))
        await sim.until(0.5)

    fill = run_sim(scenario).updates[-1].fill
    assert fill is not None
    assert (fill.price, fill.qty, fill.ts) == (Decimal("10.05"), Decimal(10), at(0))


def test_resting_buy_fills_at_first_quote_whose_ask_reaches_the_limit() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.until(0.5)
        await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.00"))
        await sim.until(60)

    sim = run_sim(scenario)
    fill = sim.updates[-1].fill
    assert fill is not None
    assert (fill.price, fill.ts) == (Decimal("10.00"), at(5))


def test_resting_sell_fills_when_the_bid_reaches_the_limit_at_the_bid() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(limit("s1", Side.SELL, "10", "10.08"))
        await sim.until(60)

    fill = run_sim(scenario).updates[-1].fill
    assert fill is not None
    assert (fill.price, fill.ts) == (Decimal("10.10"), at(10))


def test_limit_that_never_becomes_marketable_stays_open() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.50"))
        await sim.until(3600)
        assert [o.order_id for o in await sim.broker.list_open_orders()] == [order.order_id]
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.NEW

    assert run_sim(scenario).events() == ["new"]


def test_market_buy_fills_at_the_current_ask() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.until(1.5)
        await sim.broker.submit_order(market("m1", Side.BUY, "5"))
        await sim.until(2)

    fill = run_sim(scenario).updates[-1].fill
    assert fill is not None
    assert (fill.price, fill.ts) == (Decimal("10.04"), at(1.5))


def test_market_order_on_a_one_sided_quote_waits_for_the_next_two_sided_one() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(market("m1", Side.BUY, "5", symbol="ONE"))
        await sim.until(10)

    fill = run_sim(scenario).updates[-1].fill
    assert fill is not None
    assert (fill.price, fill.ts) == (Decimal("10.06"), at(3))


#: A valid book, then a crossed quote (bid above ask) at 2 s, a locked one at 3 s, and a valid one again at 4 s.
CROSSED = make_tape(
    {"ABC": ((0, "10.00", "10.05"), (2, "10.06", "10.02"), (3, "10.03", "10.03"), (4, "10.01", "10.04"))}
)


def _fills(sim: Sim) -> list[tuple[object, Decimal]]:
    return [(u.fill.ts, u.fill.price) for u in sim.updates if u.fill is not None]


def test_resting_buy_does_not_fill_on_a_crossed_or_locked_quote() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.04"))
        await sim.until(10)

    # Not at 10.02 at 2 s (below that quote's 10.06 bid) nor at 10.03 at 3 s: at the next valid ask.
    assert _fills(run_sim(scenario, tape=CROSSED)) == [(at(4), Decimal("10.04"))]


def test_resting_sell_does_not_fill_on_a_crossed_or_locked_quote() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(limit("s1", Side.SELL, "10", "10.01"))
        await sim.until(10)

    # Not at the crossed bid 10.06 (above that quote's 10.02 ask) nor the locked 10.03: at the next valid bid.
    assert _fills(run_sim(scenario, tape=CROSSED)) == [(at(4), Decimal("10.01"))]


def test_market_order_on_a_crossed_quote_waits_for_the_next_valid_one() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.until(2.5)
        await sim.broker.submit_order(market("m1", Side.SELL, "10"))
        await sim.until(10)

    assert _fills(run_sim(scenario, tape=CROSSED)) == [(at(4), Decimal("10.01"))]


def test_market_sell_fills_at_the_bid() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.until(2)
        await sim.broker.submit_order(market("m1", Side.SELL, "5"))
        await sim.until(3)

    fill = run_sim(scenario).updates[-1].fill
    assert fill is not None
    assert fill.price == Decimal("10.02")


def test_filled_order_reports_average_price_and_filled_qty() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.10"))
        await sim.until(1)
        final = await sim.broker.get_order(order.order_id)
        assert (final.status, final.filled_qty, final.filled_avg_price) == (
            OrderStatus.FILLED,
            Decimal(10),
            Decimal("10.05"),
        )
        assert await sim.broker.list_open_orders() == []

    run_sim(scenario)


def test_cancel_stops_a_resting_order_from_ever_filling() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.00"))
        await sim.until(1)
        await sim.broker.cancel_order(order.order_id)
        await sim.until(60)
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.CANCELED

    sim = run_sim(scenario)
    assert sim.events() == ["new", "canceled"]
    assert sim.broker.executions == ()


def test_cancel_confirmation_arrives_as_an_update_after_the_call_returns() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.00"))
        await sim.until(1)
        before = len(sim.updates)
        await sim.broker.cancel_order(order.order_id)
        assert len(sim.updates) == before
        await sim.until(1.001)
        assert sim.updates[-1].order.status is OrderStatus.CANCELED

    run_sim(scenario)


def test_cancel_of_a_filled_order_is_refused_naming_the_state() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.10"))
        await sim.until(1)
        with pytest.raises(OrderNotCancelableError) as info:
            await sim.broker.cancel_order(order.order_id)
        assert info.value.status == "filled"
        assert info.value.broker_message == 'order is already in "filled" state'

    run_sim(scenario)


def test_cancel_of_a_cancelled_order_is_refused() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.00"))
        await sim.broker.cancel_order(order.order_id)
        with pytest.raises(OrderNotCancelableError, match="canceled"):
            await sim.broker.cancel_order(order.order_id)

    run_sim(scenario)


def test_unknown_order_id_is_not_found() -> None:
    async def scenario(sim: Sim) -> None:
        with pytest.raises(OrderNotFoundError):
            await sim.broker.cancel_order("nope")
        with pytest.raises(OrderNotFoundError):
            await sim.broker.get_order("nope")
        assert await sim.broker.get_order_by_client_id("nope") is None

    run_sim(scenario)


def test_replace_creates_a_new_order_id_and_the_old_goes_replaced() -> None:
    async def scenario(sim: Sim) -> None:
        old = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.90"))
        await sim.until(1)
        new = await sim.broker.replace_order(
            ReplaceRequest(
                order_id=old.order_id, client_order_id="b1-2", qty=Decimal(10), limit_price=Decimal("10.00")
            )
        )
        assert new.order_id != old.order_id
        assert new.replaces == old.order_id
        assert new.status is OrderStatus.NEW
        replaced = await sim.broker.get_order(old.order_id)
        assert (replaced.status, replaced.replaced_by) == (OrderStatus.REPLACED, new.order_id)
        await sim.until(60)

    sim = run_sim(scenario)
    assert sim.events() == ["new", "replaced", "new", "fill"]
    fill = sim.updates[-1].fill
    assert fill is not None
    assert (fill.order_id, fill.price, fill.ts) == ("sim-00000002", Decimal("10.00"), at(5))


def test_replaced_order_never_fills_at_its_old_price() -> None:
    async def scenario(sim: Sim) -> None:
        old = await sim.broker.submit_order(limit("s1", Side.SELL, "10", "10.10"))
        await sim.broker.replace_order(
            ReplaceRequest(
                order_id=old.order_id, client_order_id="s1-2", qty=Decimal(10), limit_price=Decimal("11.00")
            )
        )
        await sim.until(60)

    assert run_sim(scenario).broker.executions == ()


def test_replace_of_a_filled_order_is_refused() -> None:
    async def scenario(sim: Sim) -> None:
        old = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.10"))
        await sim.until(1)
        with pytest.raises(OrderNotCancelableError, match="filled"):
            await sim.broker.replace_order(
                ReplaceRequest(
                    order_id=old.order_id, client_order_id="b1-2", qty=Decimal(10), limit_price=Decimal(10)
                )
            )
        assert await sim.broker.get_order_by_client_id("b1-2") is None

    run_sim(scenario)


def test_replace_of_a_market_order_is_refused() -> None:
    async def scenario(sim: Sim) -> None:
        old = await sim.broker.submit_order(market("m1", Side.BUY, "5", symbol="ONE"))
        with pytest.raises(OrderRejectedError, match="only limit orders"):
            await sim.broker.replace_order(
                ReplaceRequest(
                    order_id=old.order_id, client_order_id="m1-2", qty=Decimal(5), limit_price=Decimal(10)
                )
            )

    run_sim(scenario)


def test_client_order_id_cannot_be_reused_even_after_cancel() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.00"))
        await sim.broker.cancel_order(order.order_id)
        with pytest.raises(DuplicateClientOrderIdError) as info:
            await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.00"))
        assert info.value.client_order_id == "b1"
        other = await sim.broker.submit_order(limit("b2", Side.BUY, "10", "9.00"))
        with pytest.raises(DuplicateClientOrderIdError):
            await sim.broker.replace_order(
                ReplaceRequest(
                    order_id=other.order_id, client_order_id="b1", qty=Decimal(1), limit_price=Decimal(9)
                )
            )
        assert (await sim.broker.get_order(other.order_id)).status is OrderStatus.NEW

    run_sim(scenario)


def test_order_is_found_by_client_order_id() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.00"))
        assert await sim.broker.get_order_by_client_id("b1") == order

    run_sim(scenario)


# A price too large ($1e30) is refused as too large, not in these words (test_sim_refusal_words).
@pytest.mark.parametrize("price", ["10.001", "10.0050", "0.43215"])
def test_limit_off_the_tick_grid_is_rejected_like_alpaca(price: str) -> None:
    async def scenario(sim: Sim) -> None:
        with pytest.raises(OrderRejectedError) as info:
            await sim.broker.submit_order(limit("b1", Side.BUY, "10", price))
        assert info.value.broker_message == "sub-penny increment does not fulfill minimum pricing criteria"
        assert await sim.broker.get_order_by_client_id("b1") is None

    run_sim(scenario)


def test_sub_dollar_limit_takes_four_decimals() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(limit("b1", Side.BUY, "100", "0.4331", symbol="SUB"))
        await sim.until(1)

    fill = run_sim(scenario).updates[-1].fill
    assert fill is not None
    assert fill.price == Decimal("0.4330")


def test_ioc_that_is_not_marketable_is_cancelled_at_once() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(ioc("i1", Side.BUY, "10", "9.00"))
        await sim.until(60)

    sim = run_sim(scenario)
    assert sim.events() == ["new", "canceled"]
    assert sim.updates[-1].ts == at(0)


def test_marketable_ioc_fills() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(ioc("i1", Side.BUY, "10", "10.05"))
        await sim.until(1)

    assert run_sim(scenario).events() == ["new", "fill"]


def test_replacement_of_an_ioc_is_an_ioc_not_a_resting_day_order() -> None:
    # Alpaca: a replace keeps every attribute it does not name, the time in force included.
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(ioc("i1", Side.BUY, "10", "9.00"))
        new = await sim.broker.replace_order(
            ReplaceRequest(
                order_id=order.order_id, client_order_id="i1-r", qty=Decimal(10), limit_price=Decimal("9.01")
            )
        )
        await sim.until(60)
        assert (await sim.broker.get_order(new.order_id)).status is OrderStatus.CANCELED

    sim = run_sim(scenario)
    assert sim.updates[-1].ts == at(0)


def test_partial_fills_continue_on_later_quotes_until_complete() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(limit("b1", Side.BUY, "50", "10.20"))
        await sim.until(60)

    sim = run_sim(scenario, fill_model=lambda tape: PaperFillModel(tape, seed=3, partial_rate=1.0))
    fills = [u.fill for u in sim.updates if u.fill is not None]
    assert sum(f.qty for f in fills) == Decimal(50)
    assert len(fills) >= 2
    assert len({f.ts for f in fills}) == len(fills)  # one execution per quote
    assert all(f.qty == f.qty.to_integral_value() for f in fills)
    assert sim.events()[-1] == "fill"
    assert set(sim.events()[1:-1]) == {"partial_fill"}
    assert sim.updates[-1].order.filled_qty == Decimal(50)


#: Two quotes: after 1 s nothing more arrives, so the quote at 1 s stays current for good.
SHORT = make_tape({"ABC": ((0, "9.99", "10.00"), (1, "10.00", "10.01"))})


def _split_on_the_last_quote(request: OrderRequest) -> Sim:
    async def scenario(sim: Sim) -> None:
        await sim.until(2)
        await sim.broker.submit_order(request)
        await sim.until(3600)

    return run_sim(
        scenario, tape=SHORT, fill_model=lambda tape: PaperFillModel(tape, seed=3, partial_rate=1.0)
    )


def test_market_remainder_after_a_partial_fill_on_the_last_quote_fills_against_it() -> None:
    sim = _split_on_the_last_quote(market("m1", Side.BUY, "50"))
    assert sim.events()[-1] == "fill"
    assert sim.updates[-1].order.filled_qty == Decimal(50)
    assert {(f.ts, f.price) for f in sim.broker.executions} == {(at(2), Decimal("10.01"))}


def test_limit_remainder_after_a_partial_fill_on_the_last_quote_fills_against_it() -> None:
    sim = _split_on_the_last_quote(limit("b1", Side.BUY, "50", "10.01"))
    assert sim.events()[-1] == "fill"
    assert sum(f.qty for f in sim.broker.executions) == Decimal(50)
    assert len(sim.broker.executions) >= 2


def test_ioc_remainder_after_a_partial_fill_on_the_last_quote_is_cancelled() -> None:
    request = ioc("i1", Side.BUY, "50", "10.01")
    sim = _split_on_the_last_quote(request)
    assert sim.events() == ["new", "partial_fill", "canceled"]


def test_partially_filled_order_can_be_cancelled_keeping_its_fills() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "50", "10.05"))
        await sim.until(0.5)
        await sim.broker.cancel_order(order.order_id)
        await sim.until(60)
        final = await sim.broker.get_order(order.order_id)
        assert final.status is OrderStatus.CANCELED
        assert Decimal(0) < final.filled_qty < Decimal(50)

    sim = run_sim(scenario, fill_model=lambda tape: PaperFillModel(tape, seed=3, partial_rate=1.0))
    assert sim.events() == ["new", "partial_fill", "canceled"]


def test_replacement_never_exceeds_the_remainder_of_a_partly_filled_order() -> None:
    # The race: the caller asks to replace for the full quantity, not having seen a partial fill yet.
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "50", "10.05"))
        await sim.until(0.5)
        filled = (await sim.broker.get_order(order.order_id)).filled_qty
        assert Decimal(0) < filled < Decimal(50)
        new = await sim.broker.replace_order(
            ReplaceRequest(
                order_id=order.order_id, client_order_id="b1-r", qty=Decimal(50), limit_price=Decimal("10.04")
            )
        )
        assert new.qty == Decimal(50) - filled
        await sim.until(60)
        total = sum((u.fill.qty for u in sim.updates if u.fill is not None), Decimal(0))
        assert total <= Decimal(50)

    run_sim(scenario, fill_model=lambda tape: PaperFillModel(tape, seed=3, partial_rate=1.0))


def test_simulator_identifies_itself_as_a_pushing_broker_with_replace() -> None:
    async def scenario(sim: Sim) -> None:
        assert sim.broker.name == "simulator"
        assert sim.broker.supports_replace
        assert sim.broker.pushes_updates
        assert sim.broker.fill_model.name == "paper"

    run_sim(scenario)


def test_qty_finer_than_alpaca_precision_is_rejected() -> None:
    async def scenario(sim: Sim) -> None:
        with pytest.raises(OrderRejectedError, match="finer"):
            await sim.broker.submit_order(limit("b1", Side.BUY, "0.0000000001", "10.00"))
        with pytest.raises(OrderRejectedError, match="qty 1E\\+30 is too large"):  # it was "finer than 1E-9"
            await sim.broker.submit_order(limit("b2", Side.BUY, "1e30", "10.00"))

    run_sim(scenario)


def test_market_buy_without_any_two_sided_quote_is_rejected() -> None:
    async def scenario(sim: Sim) -> None:
        with pytest.raises(OrderRejectedError, match="no quote"):
            await sim.broker.submit_order(market("m1", Side.BUY, "1", symbol="NIL"))

    run_sim(scenario)


def test_limit_on_a_symbol_that_never_quotes_two_sided_never_fills() -> None:
    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(limit("b1", Side.BUY, "1", "100.00", symbol="NIL"))
        await sim.until(60)

    assert run_sim(scenario).broker.executions == ()


def test_order_ids_are_sequential_and_refused_orders_take_none() -> None:
    async def scenario(sim: Sim) -> None:
        first = await sim.broker.submit_order(limit("a", Side.BUY, "1", "9.00"))
        with pytest.raises(OrderRejectedError):
            await sim.broker.submit_order(limit("b", Side.BUY, "1", "9.001"))
        second = await sim.broker.submit_order(limit("c", Side.BUY, "1", "9.00"))
        assert (first.order_id, second.order_id) == ("sim-00000001", "sim-00000002")

    run_sim(scenario)


def test_order_state_table_refuses_transitions_it_does_not_list() -> None:
    with pytest.raises(IllegalTransitionError):
        next_status(OrderStatus.FILLED, SimEvent.CANCEL_REQUEST)
    assert next_status(OrderStatus.PENDING_REPLACE, SimEvent.FILL) is OrderStatus.FILLED
