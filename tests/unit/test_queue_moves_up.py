"""Queue model rule 6 on the exchange: an order of ours behind another of ours that is cancelled or replaced
before the prints reach it moves up by what that order still had to fill (it used to keep waiting for it)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from sim_support import Sim, at, limit, make_tape, run_sim

from repeg.brokers.simulator.queue_model import QueueFillModel
from repeg.domain.orders import ReplaceRequest, Side
from repeg.domain.ticks import to_units
from repeg.market.tape import QuoteTape, SymbolTrades, TradeTape, to_ns

#: ABC quoted 10.00 x 10.05 all along: a buy at 10.02 rests inside the spread, nobody displayed ahead of it.
STILL = make_tape({"ABC": ((0, "10.00", "10.05"), (100, "10.00", "10.05"))})


def _queue(prints: list[tuple[float, str, int]]) -> QueueFillModel:
    trades = SymbolTrades(
        "ABC",
        ts=np.array([to_ns(at(t)) for t, _, _ in prints], dtype=np.int64),
        price=np.array([to_units(Decimal(p)) for _, p, _ in prints], dtype=np.int64),
        size=np.array([n for _, _, n in prints], dtype=np.int64),
    )
    return QueueFillModel(STILL, TradeTape([trades]), seed=1)


def _fills_of_b(
    prints: list[tuple[float, str, int]], leave: str, side: Side = Side.BUY
) -> list[tuple[float, Decimal]]:
    """Buys a then b, 100 each at 10.02, join at 1 s (sells: at 10.03); a leaves at 3 s (`leave`: cancel, or
    replace to a worse price, or nothing); b's fills as (seconds, qty)."""
    ids: dict[str, str] = {}
    price, worse = ("10.02", "10.01") if side is Side.BUY else ("10.03", "10.04")

    async def scenario(sim: Sim) -> None:
        await sim.until(1)
        a = await sim.broker.submit_order(limit("a", side, "100", price))
        ids["b"] = (await sim.broker.submit_order(limit("b", side, "100", price))).order_id
        await sim.until(3)
        if leave == "cancel":
            await sim.broker.cancel_order(a.order_id)
        elif leave == "replace":
            request = ReplaceRequest(
                order_id=a.order_id, client_order_id="a2", qty=Decimal(100), limit_price=Decimal(worse)
            )
            await sim.broker.replace_order(request)
        await sim.until(60)

    def model(_: QuoteTape) -> QueueFillModel:
        return _queue(prints)

    sim = run_sim(scenario, fill_model=model)
    return [
        ((u.fill.ts - at(0)).total_seconds(), u.fill.qty)
        for u in sim.updates
        if u.fill is not None and u.order.order_id == ids["b"]
    ]


PRINTS = [(4, "10.02", 100), (6, "10.02", 100)]


def test_our_order_behind_one_of_ours_that_stays_waits_for_it() -> None:
    """Guard: a stays, so the print at 4 s is a's and b fills at 6 s."""
    assert _fills_of_b(PRINTS, "none") == [(6, Decimal(100))]


def test_our_order_behind_one_of_ours_cancelled_moves_up() -> None:
    """a is cancelled at 3 s: b was left waiting for a's 100 shares (its fill at 6 s), now the 4 s print is its."""
    assert _fills_of_b(PRINTS, "cancel") == [(4, Decimal(100))]


def test_our_order_behind_one_of_ours_replaced_to_a_worse_price_moves_up() -> None:
    """a's replacement at 10.01 joins behind b (a worse price): b takes the 4 s print."""
    assert _fills_of_b(PRINTS, "replace") == [(4, Decimal(100))]


def test_our_order_moves_up_only_by_what_the_one_ahead_had_left() -> None:
    """a fills 50 from the 2 s print (b's queue ahead drops to 50 with it); cancelled at 3 s with 50 left, b has
    nobody ahead: the 4 s print fills it whole (it used to fill 50 there, the rest at 6 s)."""
    assert _fills_of_b([(2, "10.02", 50), *PRINTS], "cancel") == [(4, Decimal(100))]


def test_sells_mirror_our_order_behind_one_of_ours_cancelled_moving_up() -> None:
    prints = [(4, "10.03", 100), (6, "10.03", 100)]
    assert _fills_of_b(prints, "none", Side.SELL) == [(6, Decimal(100))]
    assert _fills_of_b(prints, "cancel", Side.SELL) == [(4, Decimal(100))]
    assert _fills_of_b(prints, "replace", Side.SELL) == [(4, Decimal(100))]


def _fills_after_a_is_cancelled(
    orders: list[tuple[str, str]], prints: list[tuple[float, str, int]]
) -> dict[str, list[tuple[float, Decimal]]]:
    """Buys of 100 (`orders`: name and limit, in join order) join at 1 s; the first, "a", is cancelled at 3 s: each
    other's fills as (seconds, qty)."""
    ids: dict[str, str] = {}

    async def scenario(sim: Sim) -> None:
        await sim.until(1)
        for name, price in orders:
            ids[(await sim.broker.submit_order(limit(name, Side.BUY, "100", price))).order_id] = name
        await sim.until(3)
        await sim.broker.cancel_order(next(oid for oid, name in ids.items() if name == "a"))
        await sim.until(60)

    sim = run_sim(scenario, fill_model=lambda _: _queue(prints))
    fills: dict[str, list[tuple[float, Decimal]]] = {name: [] for name, _ in orders[1:]}
    for u in sim.updates:
        if u.fill is not None:
            fills[ids[u.order.order_id]].append(((u.fill.ts - at(0)).total_seconds(), u.fill.qty))
    return fills


def test_two_of_ours_behind_a_cancelled_one_do_not_both_fill_from_one_print() -> None:
    """Guard (fails if an order behind moves up past what left: a print filling two of ours beyond its size): a, b
    and c buy 100 each at 10.02, nobody displayed ahead; a is cancelled: b moves up by a's 100 to the front, c by
    a's 100 behind b's, so the 4 s print fills b only and c waits for the 6 s one."""
    assert _fills_after_a_is_cancelled([("a", "10.02"), ("b", "10.02"), ("c", "10.02")], PRINTS) == {
        "b": [(4, Decimal(100))],
        "c": [(6, Decimal(100))],
    }


def test_ours_behind_moves_up_only_by_what_the_cancelled_one_would_fill_from_prints_reaching_it() -> None:
    """Guard (fails if an order behind moves up by all the cancelled one had left): a buys 100 at 10.02 (inside the
    spread), b at the bid 10.00 behind the 300 displayed. Of a's 100, 50 would fill from the 4 s print at 10.02,
    which never reaches b; only the other 50 were ahead of b. a cancelled, b is behind the 300 displayed alone: the
    5 s print of 300 clears them, the 7 s one fills b (moved up by all of a's 100, b took 50 of the 5 s print)."""
    prints = [(4, "10.02", 50), (5, "10.00", 300), (7, "10.00", 100)]
    assert _fills_after_a_is_cancelled([("a", "10.02"), ("b", "10.00")], prints) == {"b": [(7, Decimal(100))]}
