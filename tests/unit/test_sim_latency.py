"""Latency: pending states, late confirmations, and fills that win the race against a cancel or replace."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sim_support import Sim, at, limit, run_sim

from repeg.brokers.simulator import LatencyModel, PaperFillModel, SimAccount
from repeg.domain.orders import OrderStatus, ReplaceRequest, Side
from repeg.errors import ConfigError, OrderNotCancelableError
from repeg.simulation import latency_from_mapping

SLOW = LatencyModel(
    submit_ack=timedelta(seconds=2), cancel=timedelta(seconds=1), replace=timedelta(seconds=1)
)


def test_submit_with_ack_latency_is_pending_new_until_acknowledged() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.10"))
        assert order.status is OrderStatus.PENDING_NEW
        await sim.until(1)
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.PENDING_NEW
        await sim.until(3)

    sim = run_sim(scenario, latency=SLOW)
    assert sim.events() == ["pending_new", "new", "fill"]
    ack, fill = sim.updates[1], sim.updates[2].fill
    assert ack.ts == at(2)
    assert fill is not None
    assert (fill.ts, fill.price) == (at(2), Decimal("10.03"))  # the quote current at the ack, not at submit


def test_cancel_with_latency_goes_pending_then_canceled() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.00"))
        await sim.until(2.5)
        await sim.broker.cancel_order(order.order_id)
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.PENDING_CANCEL
        await sim.broker.cancel_order(order.order_id)  # a repeated cancel is harmless
        await sim.until(10)

    sim = run_sim(scenario, latency=SLOW)
    assert sim.events() == ["pending_new", "new", "pending_cancel", "canceled"]
    assert sim.updates[-1].ts == at(3.5)


def test_fill_racing_a_cancel_wins_and_no_cancel_follows() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.00"))
        await sim.until(4.5)  # acknowledged at 2; the ask reaches 10.00 at 5
        await sim.broker.cancel_order(order.order_id)
        await sim.until(10)
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.FILLED

    sim = run_sim(scenario, latency=SLOW)
    assert sim.events() == ["pending_new", "new", "pending_cancel", "fill"]


def test_cancel_or_replace_while_a_replace_is_pending_is_refused() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.00"))
        await sim.until(2.5)
        await sim.broker.replace_order(
            ReplaceRequest(
                order_id=order.order_id, client_order_id="b2", qty=Decimal(10), limit_price=Decimal("9.5")
            )
        )
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.PENDING_REPLACE
        with pytest.raises(OrderNotCancelableError, match="pending_replace"):
            await sim.broker.cancel_order(order.order_id)
        with pytest.raises(OrderNotCancelableError, match="pending_replace"):
            await sim.broker.replace_order(
                ReplaceRequest(
                    order_id=order.order_id, client_order_id="b3", qty=Decimal(10), limit_price=Decimal(9)
                )
            )
        await sim.until(10)
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.REPLACED

    sim = run_sim(scenario, latency=SLOW)
    assert sim.events() == ["pending_new", "new", "pending_replace", "replaced", "new"]


def test_replace_fails_when_the_order_fills_while_it_is_pending() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.00"))
        await sim.until(4.5)
        new = await sim.broker.replace_order(
            ReplaceRequest(
                order_id=order.order_id, client_order_id="b2", qty=Decimal(10), limit_price=Decimal("9.9")
            )
        )
        await sim.until(10)
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.FILLED
        assert (await sim.broker.get_order(new.order_id)).status is OrderStatus.REJECTED
        assert await sim.broker.list_open_orders() == []

    sim = run_sim(scenario, latency=SLOW)
    assert sim.events() == ["pending_new", "new", "pending_replace", "fill", "rejected"]
    assert sim.updates[-1].order.replaces == sim.updates[0].order.order_id


def test_a_replace_failed_by_a_partial_fill_tells_the_original_stays_live() -> None:
    # Alpaca pushes `order_replace_rejected` for the original when a replace it accepted fails; the simulator
    # pushed nothing for it, so a subscriber's last word on the original was `pending_replace` for good (while
    # get_order said partially_filled); the engine and the run report read that event to put the original back.
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.00"))
        await sim.until(4.5)  # the ask touches 10.00 at 5 only: a part fills while the replace is pending
        await sim.broker.replace_order(
            ReplaceRequest(
                order_id=order.order_id, client_order_id="b2", qty=Decimal(10), limit_price=Decimal("9.9")
            )
        )
        await sim.until(60)
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.PARTIALLY_FILLED

    sim = run_sim(
        scenario, latency=SLOW, fill_model=lambda tape: PaperFillModel(tape, seed=1, partial_rate=1.0)
    )
    original = sim.updates[0].order.order_id
    assert sim.events() == [
        "pending_new",
        "new",
        "pending_replace",
        "partial_fill",
        "rejected",
        "order_replace_rejected",
    ]
    last = sim.updates[-1].order
    assert (last.order_id, last.status) == (original, OrderStatus.PARTIALLY_FILLED)


def test_a_fill_wins_the_race_against_a_pending_replace_even_with_all_the_cash_reserved() -> None:
    # The order and its pending replacement both hold a reservation for a moment; the order's own fill at its
    # limit is paid from its own reservation and must not be refused for want of cash.
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.00"))
        await sim.until(4.5)
        await sim.broker.replace_order(
            ReplaceRequest(
                order_id=order.order_id, client_order_id="b2", qty=Decimal(10), limit_price=Decimal("9.9")
            )
        )
        await sim.until(10)
        assert (await sim.broker.get_order(order.order_id)).filled_qty == Decimal(10)
        assert (await sim.broker.get_account()).cash == Decimal(0)

    sim = run_sim(scenario, latency=SLOW, account=SimAccount(cash=Decimal(100)))
    assert sim.events() == ["pending_new", "new", "pending_replace", "fill", "rejected"]


def test_cancel_before_the_ack_cancels_without_ever_working() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.10"))
        await sim.broker.cancel_order(order.order_id)
        await sim.until(10)
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.CANCELED

    sim = run_sim(scenario, latency=SLOW)
    assert sim.events() == ["pending_new", "pending_cancel", "canceled"]
    assert sim.broker.executions == ()


def test_replace_before_the_ack_or_during_a_cancel_is_refused() -> None:
    async def scenario(sim: Sim) -> None:
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.00"))
        with pytest.raises(OrderNotCancelableError, match="pending_new"):
            await sim.broker.replace_order(
                ReplaceRequest(
                    order_id=order.order_id, client_order_id="b2", qty=Decimal(10), limit_price=Decimal(9)
                )
            )
        await sim.until(2.5)
        await sim.broker.cancel_order(order.order_id)
        with pytest.raises(OrderNotCancelableError, match="pending_cancel"):
            await sim.broker.replace_order(
                ReplaceRequest(
                    order_id=order.order_id, client_order_id="b3", qty=Decimal(10), limit_price=Decimal(9)
                )
            )

    run_sim(scenario, latency=SLOW)


def _record_loop_errors(errors: list[str]) -> None:
    """Collect what the loop's exception handler would only log (an exception inside a simulator callback)."""
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context["message"]))


def test_cancelling_the_replacement_while_the_replace_is_pending_still_completes_the_replace() -> None:
    errors: list[str] = []

    async def scenario(sim: Sim) -> None:
        _record_loop_errors(errors)
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "9.00"))
        new = await sim.broker.replace_order(
            ReplaceRequest(
                order_id=order.order_id, client_order_id="b2", qty=Decimal(10), limit_price=Decimal("10.00")
            )
        )
        await sim.broker.cancel_order(new.order_id)
        await sim.until(10)
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.REPLACED
        assert (await sim.broker.get_order(new.order_id)).status is OrderStatus.CANCELED

    sim = run_sim(scenario, latency=LatencyModel(replace=timedelta(seconds=1)))
    assert errors == []
    assert sim.events() == ["new", "pending_replace", "canceled", "replaced"]
    assert sim.broker.executions == ()


def test_cancelling_the_replacement_of_an_order_that_fills_meanwhile_leaves_both_final() -> None:
    errors: list[str] = []

    async def scenario(sim: Sim) -> None:
        _record_loop_errors(errors)
        order = await sim.broker.submit_order(limit("b1", Side.BUY, "10", "10.00"))
        await sim.until(4.5)  # the ask reaches 10.00 at 5, while the replace is pending
        new = await sim.broker.replace_order(
            ReplaceRequest(
                order_id=order.order_id, client_order_id="b2", qty=Decimal(10), limit_price=Decimal("9.90")
            )
        )
        await sim.broker.cancel_order(new.order_id)
        await sim.until(10)
        assert (await sim.broker.get_order(order.order_id)).status is OrderStatus.FILLED
        assert (await sim.broker.get_order(new.order_id)).status is OrderStatus.CANCELED
        assert await sim.broker.list_open_orders() == []

    sim = run_sim(scenario, latency=LatencyModel(replace=timedelta(seconds=1)))
    assert errors == []
    assert sim.events() == ["new", "pending_replace", "canceled", "fill"]


@pytest.mark.parametrize("key", ["submit_ack", "cancel", "replace"])
def test_boolean_latency_is_refused_not_read_as_one_second(key: str) -> None:
    # TOML `submit_ack = true` was read as a one-second delay.
    with pytest.raises(ConfigError) as info:
        latency_from_mapping({key: True})
    assert (info.value.key, info.value.value) == (f"simulator.latency.{key}", True)


@pytest.mark.parametrize("seconds", [1e-7, 5e-7])
def test_positive_latency_below_one_microsecond_is_refused(seconds: float) -> None:
    # 1e-7 s silently became no delay at all (and 5e-7 s became 1 us): the clock keeps microseconds.
    with pytest.raises(ConfigError) as info:
        latency_from_mapping({"cancel": seconds})
    assert (info.value.key, info.value.value) == ("simulator.latency.cancel", seconds)


def test_latency_longer_than_a_year_is_refused() -> None:
    # 1e12 s validated, then overflowed the clock's datetime when the answer was scheduled.
    with pytest.raises(ConfigError) as info:
        latency_from_mapping({"replace": 1e12})
    assert info.value.key == "simulator.latency.replace"


def test_latency_of_zero_one_microsecond_and_one_year_are_accepted() -> None:
    model = latency_from_mapping({"submit_ack": 0, "cancel": 1e-6, "replace": 366 * 24 * 3600})
    assert (model.submit_ack, model.cancel, model.replace) == (
        timedelta(0),
        timedelta(microseconds=1),
        timedelta(days=366),
    )
