"""The queue fill model on small scripted scenarios, every outcome computed by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from repeg.brokers.simulator.fill_models import FillPlan, RestingOrder
from repeg.brokers.simulator.queue_model import QueueFill, QueueFillModel, after_fill, join, next_fill
from repeg.domain.orders import Side
from repeg.market.loaders import load_trades
from repeg.market.tape import QuoteTape, SymbolQuotes, SymbolTrades, TradeTape

S = 1_000_000_000  # one second in ns
BID, ASK = 1_000_000, 1_000_200  # $100.00 / $100.02


def _tape(rows: list[tuple[int, int, int, int, int]]) -> QuoteTape:
    """Rows of (second, bid, bid_size, ask, ask_size)."""
    arr = np.array(rows, dtype=np.int64)
    return QuoteTape(
        [
            SymbolQuotes(
                "XXX", ts=arr[:, 0] * S, bid=arr[:, 1], bid_size=arr[:, 2], ask=arr[:, 3], ask_size=arr[:, 4]
            )
        ]
    )


def _prints(rows: list[tuple[int, int, int]]) -> SymbolTrades:
    """Rows of (second, price units, size)."""
    arr = np.array(rows, dtype=np.int64)
    return SymbolTrades("XXX", ts=arr[:, 0] * S, price=arr[:, 1], size=arr[:, 2])


STILL = _tape([(0, BID, 300, ASK, 500), (100, BID, 300, ASK, 500)])


def _fills(
    tape: QuoteTape, trades: SymbolTrades | None, side: Side, limit: int, qty: int, *, at: int
) -> list[QueueFill]:
    slot = join(tape, trades, symbol="XXX", side=side, limit_units=limit, qty=Decimal(qty), ts_ns=at * S)
    out: list[QueueFill] = []
    while (fill := next_fill(tape, trades, slot)) is not None:
        out.append(fill)
        slot = after_fill(slot, fill)
    return out


def test_order_behind_300_shares_fills_after_300_shares_print_at_its_price() -> None:
    prints = _prints([(2, BID, 100), (3, BID, 100), (4, BID, 100), (5, BID, 100)])
    fills = _fills(STILL, prints, Side.BUY, BID, 100, at=1)
    assert [(f.ts_ns // S, f.qty, f.price_units) for f in fills] == [(5, Decimal(100), BID)]


def test_partial_fills_follow_the_prints() -> None:
    prints = _prints([(2, BID, 250), (3, BID, 120), (4, BID, 200)])
    fills = _fills(STILL, prints, Side.BUY, BID, 100, at=1)
    # 300 ahead: 250 + 50 of the second print clear it, 70 are left for us; the third print fills the last 30.
    assert [(f.ts_ns // S, f.qty) for f in fills] == [(3, Decimal(70)), (4, Decimal(30))]


def test_prints_above_a_buy_limit_do_not_count() -> None:
    prints = _prints([(2, BID + 100, 1000), (3, ASK, 1000)])
    assert _fills(STILL, prints, Side.BUY, BID, 100, at=1) == []


def test_a_print_through_the_limit_counts_like_one_at_it() -> None:
    prints = _prints([(2, BID - 100, 300), (3, BID - 100, 100)])
    fills = _fills(STILL, prints, Side.BUY, BID, 100, at=1)
    assert [(f.ts_ns // S, f.qty, f.price_units) for f in fills] == [(3, Decimal(100), BID)]


def test_prints_at_the_join_instant_are_not_counted() -> None:
    prints = _prints([(1, BID, 1000), (2, BID, 350)])
    fills = _fills(STILL, prints, Side.BUY, BID, 100, at=1)
    assert [(f.ts_ns // S, f.qty) for f in fills] == [(2, Decimal(50))]


def test_cancel_replace_goes_to_the_back_of_the_queue() -> None:
    prints = _prints([(2, BID, 200), (4, BID, 200), (5, BID, 200)])
    slot = join(STILL, prints, symbol="XXX", side=Side.BUY, limit_units=BID, qty=Decimal(100), ts_ns=1 * S)
    assert slot.ahead == Decimal(300)
    # Had it stayed, 100 of the print at t=4 would be ours; re-joined at t=3 it is 300 back again.
    fill = next_fill(STILL, prints, slot)
    assert fill is not None
    assert (fill.ts_ns // S, fill.qty) == (4, Decimal(100))
    rejoined = join(
        STILL, prints, symbol="XXX", side=Side.BUY, limit_units=BID, qty=Decimal(100), ts_ns=3 * S
    )
    assert rejoined.ahead == Decimal(300)
    fill = next_fill(STILL, prints, rejoined)
    assert fill is not None
    assert (fill.ts_ns // S, fill.qty) == (5, Decimal(100))


def test_a_crossing_quote_fills_everything_at_once_at_the_limit() -> None:
    tape = _tape([(0, BID, 300, ASK, 500), (3, BID - 200, 100, BID, 400), (9, BID, 300, ASK, 500)])
    fills = _fills(tape, _prints([(2, BID, 100)]), Side.BUY, BID, 100, at=1)
    assert [(f.ts_ns // S, f.qty, f.price_units, f.by_quote) for f in fills] == [(3, Decimal(100), BID, True)]


def test_crossing_quote_without_any_trade_tape_still_fills() -> None:
    tape = _tape([(0, BID, 300, ASK, 500), (3, BID - 200, 100, BID, 400)])
    fills = _fills(tape, None, Side.BUY, BID, 100, at=1)
    assert [(f.ts_ns // S, f.qty) for f in fills] == [(3, Decimal(100))]


def test_limit_inside_the_spread_has_nobody_ahead() -> None:
    prints = _prints([(2, BID + 100, 40), (3, BID, 500)])
    fills = _fills(STILL, prints, Side.BUY, BID + 100, 100, at=1)
    assert [(f.ts_ns // S, f.qty) for f in fills] == [(2, Decimal(40)), (3, Decimal(60))]


def test_sell_queues_behind_the_displayed_ask_and_fills_on_prints_at_or_above() -> None:
    prints = _prints([(2, ASK, 300), (3, ASK - 100, 900), (4, ASK + 100, 450)])
    fills = _fills(STILL, prints, Side.SELL, ASK, 100, at=1)
    # 500 ahead at the ask: 300 at t=2, the t=3 print is below the limit, then 200 of 450 at t=4 -> 250 for us.
    assert [(f.ts_ns // S, f.qty) for f in fills] == [(4, Decimal(100))]


def test_queue_spanning_more_prints_than_one_numpy_chunk() -> None:
    n = 5000
    prints = SymbolTrades(
        "XXX",
        ts=(np.arange(n, dtype=np.int64) + 2) * S,
        price=np.full(n, BID, dtype=np.int64),
        size=np.ones(n, dtype=np.int64),
    )
    tape = _tape([(0, BID, 4500, ASK, 500), (10_000, BID, 300, ASK, 500)])
    fills = _fills(tape, prints, Side.BUY, BID, 2, at=1)
    assert [(f.ts_ns // S - 2, f.qty) for f in fills] == [(4500, Decimal(1)), (4501, Decimal(1))]


# --- through the simulator's FillModel contract ------------------------------------------------------------------


def _resting(order_id: str, limit: int | None, qty: int, since: int, side: Side = Side.BUY) -> RestingOrder:
    return RestingOrder(
        order_id=order_id,
        symbol="XXX",
        side=side,
        limit_units=limit,
        remaining=Decimal(qty),
        whole_shares=True,
        queued_since_ns=since * S,
    )


def _trade_tape(trades: SymbolTrades) -> TradeTape:
    return TradeTape([trades])


def test_fill_model_plans_the_print_that_clears_the_queue_then_the_remainder() -> None:
    prints = _prints([(2, BID, 250), (3, BID, 120), (4, BID, 200)])
    model = QueueFillModel(STILL, _trade_tape(prints), seed=1)
    first = model.next_fill(_resting("o1", BID, 100, 1), 1 * S, None)
    assert first is not None
    assert (first.ts_ns // S, first.qty, first.price_units) == (3, Decimal(70), BID)
    second = model.next_fill(_resting("o1", BID, 30, 1), first.ts_ns, first.cursor)
    assert second is not None
    assert (second.ts_ns // S, second.qty) == (4, Decimal(30))


def test_fill_model_replacement_is_a_new_order_at_the_back() -> None:
    prints = _prints([(2, BID, 200), (4, BID, 200), (5, BID, 200)])
    model = QueueFillModel(STILL, _trade_tape(prints), seed=1)
    assert model.next_fill(_resting("o1", BID, 100, 1), 1 * S, None) is not None
    assert model.release("o1", 3 * S, Decimal(100)) == ()
    plan = model.next_fill(_resting("o2", BID, 100, 3), 3 * S, None)
    assert plan is not None
    assert plan.ts_ns // S == 5


def test_fill_model_market_order_fills_at_the_far_touch_at_once() -> None:
    model = QueueFillModel(STILL, None, seed=1)
    plan = model.next_fill(_resting("m1", None, 100, 1), 1 * S, None)
    assert plan is not None
    assert (plan.ts_ns, plan.qty, plan.price_units) == (1 * S, Decimal(100), ASK)


def test_fill_model_marketable_limit_fills_at_once_at_the_quote() -> None:
    model = QueueFillModel(STILL, None, seed=1)
    plan = model.next_fill(_resting("l1", ASK + 100, 100, 1), 1 * S, None)
    assert plan is not None
    assert (plan.ts_ns, plan.price_units) == (1 * S, ASK)


def test_fill_model_never_plans_before_the_question() -> None:
    prints = _prints([(2, BID, 400)])
    model = QueueFillModel(STILL, _trade_tape(prints), seed=1)
    plan = model.next_fill(_resting("o1", BID, 100, 1), 3 * S, None)
    assert plan is not None
    assert plan.ts_ns == 3 * S


def test_two_of_our_orders_at_one_price_do_not_both_fill_from_one_print() -> None:
    # Both buys rest alone inside the spread at 100.01 (nobody displayed ahead); one 100-share print there. The
    # second counted the whole print too: 200 shares filled from a 100-share print. Ours came first: it is ahead.
    prints = _prints([(2, BID + 100, 100), (4, BID + 100, 100)])
    model = QueueFillModel(STILL, _trade_tape(prints), seed=1)
    first = model.next_fill(_resting("a", BID + 100, 100, 1), 1 * S, None)
    second = model.next_fill(_resting("b", BID + 100, 100, 1), 1 * S, None)
    assert first is not None
    assert second is not None
    assert [(p.ts_ns // S, p.qty) for p in (first, second)] == [(2, Decimal(100)), (4, Decimal(100))]


def test_our_order_at_a_worse_price_queues_behind_our_better_one_not_beside_it() -> None:
    # A sell of ours rests at 100.03, one tick above our other at 100.02 (the ask, 500 displayed): a print at 100.03
    # reaches 100.02 first, so 500 displayed and our 100 are ahead of the 100.03 order: of a 650-share print, 50
    # are left for it (it took 100 of the 150 beyond the displayed 500, as the other did: 200 of ours from 150).
    prints = _prints([(2, ASK + 100, 650)])
    model = QueueFillModel(STILL, _trade_tape(prints), seed=1)
    assert model.next_fill(_resting("a", ASK, 100, 1, Side.SELL), 1 * S, None) is not None
    assert model.next_fill(_resting("b", ASK + 100, 100, 1, Side.SELL), 1 * S, None) == FillPlan(
        ts_ns=2 * S, qty=Decimal(50), price_units=ASK + 100, cursor=1
    )


def _ours_at_100_01_then_ours_at_the_touch(
    tape: QuoteTape, prints: SymbolTrades, side: Side = Side.BUY
) -> tuple[FillPlan | None, FillPlan | None]:
    """The first plans of two orders of 100 of ours joining at 1 s: A at 100.01 (inside the spread), then B at the
    near touch (the bid 100.00 for buys, the ask 100.02 for sells)."""
    model = QueueFillModel(tape, _trade_tape(prints), seed=1)
    touch = BID if side is Side.BUY else ASK
    a = model.next_fill(_resting("a", BID + 100, 100, 1, side), 1 * S, None)
    return a, model.next_fill(_resting("b", touch, 100, 1, side), 1 * S, None)


def test_our_better_order_filled_by_prints_only_it_reaches_is_not_ahead_of_ours_behind_it() -> None:
    # A buys 100 at 100.01 (inside the spread, nobody ahead), B at the bid 100.00 behind 300 displayed. The print at
    # 100.01 fills A and never reaches 100.00: B's queue is the 300 displayed, so the 100 at 4 s fill it. B counted
    # all of A's 100 as ahead of it still: 400 to print at 100.00, and it never filled.
    prints = _prints([(2, BID + 100, 100), (3, BID, 300), (4, BID, 100)])
    assert _ours_at_100_01_then_ours_at_the_touch(STILL, prints) == (
        FillPlan(ts_ns=2 * S, qty=Decimal(100), price_units=BID + 100, cursor=1),
        FillPlan(ts_ns=4 * S, qty=Decimal(100), price_units=BID, cursor=3),
    )


def test_our_better_order_filled_by_a_quote_crossing_only_it_is_not_ahead_of_ours_behind_it() -> None:
    # As above, but the ask comes down to A's 100.01 at 2 s (not to B's 100.00) and fills A: B is behind the 300
    # displayed only, so the 100 printed at 4 s fill it. B counted A's 100 as ahead of it still, and never filled.
    tape = _tape(
        [
            (0, BID, 300, ASK, 500),
            (2, BID, 300, BID + 100, 500),
            (3, BID, 300, ASK, 500),
            (100, BID, 300, ASK, 500),
        ]
    )
    prints = _prints([(3, BID, 300), (4, BID, 100)])
    assert _ours_at_100_01_then_ours_at_the_touch(tape, prints) == (
        FillPlan(ts_ns=2 * S, qty=Decimal(100), price_units=BID + 100, cursor=0),
        FillPlan(ts_ns=4 * S, qty=Decimal(100), price_units=BID, cursor=2),
    )


def test_what_our_order_at_the_same_price_never_fills_stays_ahead_of_ours_joining_after_it() -> None:
    # A buys 100 at the bid behind 300; the bid shows 50 by 3 s, when B joins there behind 50. A 200-share print
    # never reaches A (300 ahead of it), so all of A's 100 is still ahead of B: of the 200, 50 + 100 go before B,
    # which fills 50. dd07c7a4 counted only what A would fill from prints (nothing): B took 100 of the print
    # while A, at the same price and there first, waited (3b6e101d's 'what ours never fills stays ahead').
    tape = _tape([(0, BID, 300, ASK, 500), (3, BID, 50, ASK, 500), (100, BID, 50, ASK, 500)])
    model = QueueFillModel(tape, _trade_tape(_prints([(4, BID, 200)])), seed=1)
    assert model.next_fill(_resting("a", BID, 100, 1), 1 * S, None) is None
    assert model.next_fill(_resting("b", BID, 100, 3), 3 * S, None) == FillPlan(
        ts_ns=4 * S, qty=Decimal(50), price_units=BID, cursor=1
    )


def test_sells_mirror_our_better_order_ahead_only_for_what_it_fills_from_prints_reaching_ours() -> None:
    # A sells 100 at 100.01 (inside the spread, nobody ahead), B at the ask 100.02 behind 500 displayed. 40 print at
    # 100.01 (A only: below B's limit), then 550 at 100.02 (A's last 60 at its better price, then 490 of the 500):
    # B has 500 + 60 ahead, and of the 100 printed at 4 s the last 90 are B's. A guard: the buys' tests hold only
    # the buy side of `_filled_elsewhere`'s price test.
    prints = _prints([(2, ASK - 100, 40), (3, ASK, 550), (4, ASK, 100)])
    assert _ours_at_100_01_then_ours_at_the_touch(STILL, prints, Side.SELL) == (
        FillPlan(ts_ns=2 * S, qty=Decimal(40), price_units=ASK - 100, cursor=1),
        FillPlan(ts_ns=4 * S, qty=Decimal(90), price_units=ASK, cursor=3),
    )


def test_sells_mirror_our_better_order_filled_by_a_quote_crossing_only_it() -> None:
    # The bid comes up to A's 100.01 at 2 s (not to B's 100.02) and fills A's 100: B is behind the 500 displayed
    # only, so of the 100 printed at 4 s, all are B's. A guard, as above.
    tape = _tape([(0, BID, 300, ASK, 500), (2, ASK - 100, 300, ASK, 500), (3, BID, 300, ASK, 500)])
    prints = _prints([(3, ASK, 500), (4, ASK, 100)])
    assert _ours_at_100_01_then_ours_at_the_touch(tape, prints, Side.SELL) == (
        FillPlan(ts_ns=2 * S, qty=Decimal(100), price_units=ASK - 100, cursor=0),
        FillPlan(ts_ns=4 * S, qty=Decimal(100), price_units=ASK, cursor=2),
    )


def test_print_share_counts_only_that_part_of_each_print() -> None:
    prints = _prints([(2, BID, 400), (3, BID, 400), (4, BID, 400)])
    slot = join(STILL, prints, symbol="XXX", side=Side.BUY, limit_units=BID, qty=Decimal(100), ts_ns=1 * S)
    # Half of each print counts: 200, 200 (queue of 300 cleared, 100 left over: ours) -> filled at t=3.
    fill = next_fill(STILL, prints, slot, print_share_pct=50)
    assert fill is not None
    assert (fill.ts_ns // S, fill.qty) == (3, Decimal(100))


def test_print_share_outside_its_range_is_refused() -> None:
    with pytest.raises(ValueError, match="print_share_pct"):
        QueueFillModel(STILL, None, seed=0, print_share_pct=0)


def _loaded_prints(tmp_path: Path, conditions: str) -> SymbolTrades:
    """A print at 2 s, 100 shares one cent below the bid, with `conditions`, read by the trade loader."""
    path = tmp_path / "trades.csv"
    path.write_text(
        "ts,symbol,price,size,exchange,conditions\n"
        f"1970-01-01T00:00:02Z,XXX,99.9900,100,K,{conditions}\n"
        "1970-01-01T00:00:03Z,XXX,100.0200,100,K,\n"
    )
    return load_trades(path).columns("XXX")


@pytest.mark.parametrize("conditions", ["Z", "ZI", "4 B", "7 V", "N  I", "C  I", "R", "P", "T"])
def test_a_non_regular_print_through_a_resting_limit_does_not_fill_it(
    tmp_path: Path, conditions: str
) -> None:
    # A buy alone inside the spread: any counted print at or below its limit would fill it.
    fills = _fills(STILL, _loaded_prints(tmp_path, conditions), Side.BUY, BID + 100, 100, at=1)
    assert fills == []


@pytest.mark.parametrize("conditions", ["", "@", "I", "F", "F I", "O", "6"])
def test_a_regular_print_through_a_resting_limit_fills_it(tmp_path: Path, conditions: str) -> None:
    fills = _fills(STILL, _loaded_prints(tmp_path, conditions), Side.BUY, BID + 100, 100, at=1)
    assert [(f.ts_ns // S, f.qty, f.price_units) for f in fills] == [(2, Decimal(100), BID + 100)]
