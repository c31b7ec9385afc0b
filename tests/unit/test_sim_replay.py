"""The simulator over whole days: fills consistent with the quotes, determinism, and invariants under random use."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_support import DEFAULT_TAPE, T0, Sim, at, limit, market, run_sim

from repeg.brokers.simulator import FillPlan, PaperFillModel, RestingOrder, SimAccount
from repeg.domain.orders import Fill, OrderStatus, ReplaceRequest, Side
from repeg.domain.ticks import Rounding, round_to_tick, to_units
from repeg.errors import BrokerError, InvariantViolationError
from repeg.market.loaders import load_quotes
from repeg.market.synthetic import SyntheticSymbol, synthetic_tape
from repeg.market.tape import QuoteTape, to_ns

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "quotes"


async def _basket(sim: Sim, tape: QuoteTape, symbol: str, count: int) -> None:
    """`count` alternating 100-share orders over the day: join the touch, cross after 60 s if still open."""
    span = tape.end - tape.start
    for k in range(count):
        await sim.clock.sleep_until(tape.start + span * k / count + timedelta(seconds=1))
        quote = sim.feed.latest(symbol)
        while quote is None or quote.bid <= 0 or quote.ask <= 0:
            following = sim.feed.next_quote_time(symbol)
            assert following is not None
            await sim.clock.sleep_until(following)
            quote = sim.feed.latest(symbol)
        side = Side.BUY if k % 2 == 0 else Side.SELL
        # Real NBBO quotes may sit on half pennies; a limit must be on the tick grid.
        price = (
            round_to_tick(quote.bid, Rounding.DOWN)
            if side is Side.BUY
            else round_to_tick(quote.ask, Rounding.UP)
        )
        order = await sim.broker.submit_order(limit(f"o{k}", side, "100", str(price), symbol=symbol))
        await sim.clock.sleep_until(sim.clock.now() + timedelta(seconds=60))
        current = await sim.broker.get_order(order.order_id)
        if current.status.is_open:
            await sim.broker.cancel_order(order.order_id)
            await sim.clock.sleep_until(sim.clock.now())
            left = (await sim.broker.get_order(order.order_id)).remaining_qty
            if left > 0:
                await sim.broker.submit_order(market(f"o{k}-m", side, str(left), symbol=symbol))
    await sim.clock.sleep_until(tape.end + timedelta(seconds=1))


def _check_against_quotes(sim: Sim, tape: QuoteTape, symbol: str) -> None:
    orders = {u.order.order_id: u.order for u in sim.updates}
    for fill in sim.broker.executions:
        order = orders[fill.order_id]
        quote = tape.quote_at(symbol, fill.ts)
        assert quote is not None
        far = quote.ask if order.side is Side.BUY else quote.bid
        assert fill.price == far, (fill, quote)
        if order.limit_price is not None:
            assert (
                fill.price <= order.limit_price if order.side is Side.BUY else fill.price >= order.limit_price
            )


@pytest.mark.shared_data
def test_real_day_basket_completes_with_fills_at_the_quote_of_the_moment() -> None:
    path = SHARED / "xxx_20180102_nyse_bbo.csv.gz"
    if not path.exists():
        pytest.skip("../shared data is absent")
    tape = load_quotes(path)
    account = SimAccount(cash=Decimal(10_000_000), positions={"XXX": Decimal(100_000)})

    async def scenario(sim: Sim) -> None:
        await _basket(sim, tape, "XXX", 200)

    sim = run_sim(scenario, tape=tape, account=account, start=tape.start, fill_model=None)
    filled = {
        u.order.client_order_id.split("-")[0] for u in sim.updates if u.order.status is OrderStatus.FILLED
    }
    assert len(filled) == 200
    _check_against_quotes(sim, tape, "XXX")


def test_synthetic_day_with_invalid_quotes_never_fills_on_an_invalid_quote() -> None:
    tape = synthetic_tape(
        [SyntheticSymbol(symbol="SYN", start_price=Decimal("42.00"))],
        seed=5,
        n_quotes=20_000,
        invalid_rate=0.05,
    )

    async def scenario(sim: Sim) -> None:
        await _basket(sim, tape, "SYN", 40)

    sim = run_sim(
        scenario, tape=tape, account=SimAccount(positions={"SYN": Decimal(10_000)}), start=tape.start
    )
    assert len(sim.broker.executions) >= 40
    for fill in sim.broker.executions:
        quote = tape.quote_at("SYN", fill.ts)
        assert quote is not None
        assert 0 < quote.bid < quote.ask
    _check_against_quotes(sim, tape, "SYN")


def _seeded_run(seed: int) -> tuple[Fill, ...]:
    tape = synthetic_tape([SyntheticSymbol(symbol="SYN", start_price=Decimal(42))], seed=1, n_quotes=5_000)

    async def scenario(sim: Sim) -> None:
        await _basket(sim, tape, "SYN", 30)

    account = SimAccount(positions={"SYN": Decimal(10_000)})
    sim = run_sim(
        scenario,
        tape=tape,
        account=account,
        start=tape.start,
        fill_model=lambda t: PaperFillModel(t, seed=seed),
    )
    return sim.broker.executions


def test_runs_are_deterministic_given_the_seed() -> None:
    assert _seeded_run(11) == _seeded_run(11)
    assert _seeded_run(11) != _seeded_run(12)


def test_about_one_fill_in_ten_is_partial() -> None:
    model = PaperFillModel(DEFAULT_TAPE, seed=2)
    order = RestingOrder("o", "ABC", Side.BUY, to_units(Decimal("10.10")), Decimal(100), True, 0)
    plans = [model.next_fill(order, to_ns(T0), None) for _ in range(4_000)]
    partial = sum(1 for p in plans if p is not None and p.qty < 100)
    assert 0.08 < partial / 4_000 < 0.12


def test_fractional_partial_fills_keep_nine_decimals() -> None:
    model = PaperFillModel(DEFAULT_TAPE, seed=2, partial_rate=1.0)
    order = RestingOrder("o", "ABC", Side.BUY, to_units(Decimal("10.10")), Decimal("0.5"), False, 0)
    plan = model.next_fill(order, to_ns(T0), None)
    assert plan is not None
    assert Decimal(0) < plan.qty < Decimal("0.5")
    assert plan.qty == plan.qty.quantize(Decimal("1e-9"))


class _ScriptedModel:
    """A fill model that executes everything 3 s after it is asked, and records releases."""

    def __init__(self) -> None:
        self.released: list[str] = []

    @property
    def name(self) -> str:
        return "scripted"

    def next_fill(self, order: RestingOrder, now_ns: int, after: int | None) -> FillPlan | None:
        return FillPlan(ts_ns=now_ns + 3_000_000_000, qty=order.remaining, price_units=99_000, cursor=0)

    def release(self, order_id: str, now_ns: int, left: Decimal) -> tuple[str, ...]:
        self.released.append(order_id)
        return ()


def test_any_fill_model_plugs_in_and_is_told_when_orders_leave_the_book() -> None:
    model = _ScriptedModel()

    async def scenario(sim: Sim) -> None:
        kept = await sim.broker.submit_order(limit("a", Side.BUY, "1", "9.00"))
        gone = await sim.broker.submit_order(limit("b", Side.BUY, "1", "9.00"))
        await sim.broker.cancel_order(gone.order_id)
        await sim.until(5)
        assert (await sim.broker.get_order(kept.order_id)).filled_avg_price == Decimal("9.9")

    sim = run_sim(scenario, fill_model=lambda tape: model)
    assert model.released == ["sim-00000002", "sim-00000001"]
    assert sim.broker.executions[0].ts == at(3)


def test_tape_feed_serves_the_quote_current_at_the_clock() -> None:
    async def scenario(sim: Sim) -> None:
        assert sim.feed.latest("ABC") == DEFAULT_TAPE.quote("ABC", 0)
        assert sim.feed.next_quote_time("ABC") == at(1)
        await sim.until(2.5)
        latest = sim.feed.latest("ABC")
        assert latest is not None
        assert latest.bid == Decimal("10.02")
        assert sim.feed.latest("ZZZ") is None
        assert sim.feed.next_quote_time("ZZZ") is None
        await sim.until(50)
        assert sim.feed.next_quote_time("ABC") is None
        await sim.feed.subscribe(["ABC"])

    run_sim(scenario)


def test_tape_feed_has_no_quote_before_the_first() -> None:
    async def scenario(sim: Sim) -> None:
        assert sim.feed.latest("ABC") is None
        assert sim.feed.next_quote_time("ABC") == T0

    run_sim(scenario, start=T0 - timedelta(seconds=1))


def test_tape_feed_wakes_when_a_nanosecond_quote_is_current_not_before() -> None:
    base = to_ns(T0)
    tape = QuoteTape.from_arrays(
        {
            "NS": {
                "ts": np.array([base, base + 1_500], dtype=np.int64),
                "bid": np.array([99_000, 99_500], dtype=np.int64),
                "ask": np.array([101_000, 100_500], dtype=np.int64),
                "bid_size": np.ones(2, dtype=np.int64),
                "ask_size": np.ones(2, dtype=np.int64),
            }
        }
    )

    async def scenario(sim: Sim) -> None:
        wake = sim.feed.next_quote_time("NS")
        assert wake is not None
        await sim.clock.sleep_until(wake)
        assert sim.feed.latest("NS") == tape.quote("NS", 1)

    run_sim(scenario, tape=tape, account=SimAccount())


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell", "market", "market_buy", "cancel", "replace", "wait"]),
        st.integers(0, 9),  # order pick / price offset in cents
        st.integers(1, 40),  # qty
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, seed=st.integers(0, 1000))
def test_random_use_keeps_fills_within_quantity_and_cash_consistent(
    ops: list[tuple[str, int, int]], seed: int
) -> None:
    async def scenario(sim: Sim) -> None:
        ids: list[str] = []
        for step, op in enumerate(ops):
            # Refusals are part of the contract; the invariants must hold regardless.
            with contextlib.suppress(BrokerError):
                await _apply(sim, ids, step, op)
        await sim.until(60)
        await _check_invariants(sim)

    account = SimAccount(cash=Decimal(2000), positions={"ABC": Decimal(100)})
    run_sim(
        scenario, account=account, fill_model=lambda tape: PaperFillModel(tape, seed=seed, partial_rate=0.5)
    )


async def _apply(sim: Sim, ids: list[str], step: int, action: tuple[str, int, int]) -> None:
    op, pick, qty = action
    price = str(Decimal("10.00") + Decimal(pick - 5) / 100)
    if op in {"buy", "sell"}:
        side = Side.BUY if op == "buy" else Side.SELL
        ids.append((await sim.broker.submit_order(limit(f"c{step}", side, str(qty), price))).order_id)
    elif op in {"market", "market_buy"}:
        side = Side.BUY if op == "market_buy" else Side.SELL
        ids.append((await sim.broker.submit_order(market(f"c{step}", side, str(qty)))).order_id)
    elif op == "cancel" and ids:
        await sim.broker.cancel_order(ids[pick % len(ids)])
    elif op == "replace" and ids:
        request = ReplaceRequest(
            order_id=ids[pick % len(ids)],
            client_order_id=f"c{step}",
            qty=Decimal(qty),
            limit_price=Decimal(price),
        )
        ids.append((await sim.broker.replace_order(request)).order_id)
    else:
        await sim.clock.sleep_until(sim.clock.now() + timedelta(seconds=pick))


async def _check_invariants(sim: Sim) -> None:
    """Per order: fills never exceed its quantity and add up to its filled_qty; none after it closed.
    Account: cash moved by exactly the executions, buying power never negative, positions never short."""
    cash = Decimal(2000)
    position = Decimal(100)
    by_order: dict[str, Decimal] = {}
    for fill in sim.broker.executions:
        order = await sim.broker.get_order(fill.order_id)
        by_order[fill.order_id] = by_order.get(fill.order_id, Decimal(0)) + fill.qty
        sign = 1 if order.side is Side.BUY else -1
        cash -= sign * fill.qty * fill.price
        position += sign * fill.qty
        if order.status in {OrderStatus.CANCELED, OrderStatus.REPLACED}:
            assert fill.ts <= order.updated_at
        assert cash >= 0  # a cash account: no execution may spend more than it holds
    for order_id, filled in by_order.items():
        order = await sim.broker.get_order(order_id)
        assert filled <= order.qty
        assert filled == order.filled_qty
    account = await sim.broker.get_account()
    assert account.cash == cash
    assert account.buying_power >= 0
    assert position >= 0
    held = {p.symbol: p.qty for p in await sim.broker.get_positions()}
    assert held.get("ABC", Decimal(0)) == position


class _OverfillingModel(_ScriptedModel):
    def next_fill(self, order: RestingOrder, now_ns: int, after: int | None) -> FillPlan | None:
        return FillPlan(ts_ns=now_ns, qty=order.remaining + 1, price_units=99_000, cursor=0)


def test_a_fill_model_planning_more_than_remains_is_caught_as_a_bug() -> None:
    async def scenario(sim: Sim) -> None:
        with pytest.raises(InvariantViolationError, match="scripted"):
            await sim.broker.submit_order(limit("a", Side.BUY, "1", "9.00"))

    run_sim(scenario, fill_model=lambda tape: _OverfillingModel())


def test_fill_on_a_nanosecond_quote_is_never_before_that_quote() -> None:
    base = to_ns(T0)
    tape = QuoteTape.from_arrays(
        {
            "NS": {
                "ts": np.array([base, base + 1_500], dtype=np.int64),
                "bid": np.array([99_000, 99_000], dtype=np.int64),
                "ask": np.array([101_000, 100_000], dtype=np.int64),
                "bid_size": np.array([1, 1], dtype=np.int64),
                "ask_size": np.array([1, 1], dtype=np.int64),
            }
        }
    )

    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(limit("a", Side.BUY, "1", "10.00", symbol="NS"))
        await sim.until(1)

    (fill,) = run_sim(scenario, tape=tape, account=SimAccount()).broker.executions
    assert to_ns(fill.ts) >= base + 1_500
    assert tape.quote_at("NS", fill.ts) == tape.quote("NS", 1)


def test_a_quote_superseded_within_its_microsecond_never_fills() -> None:
    # The clock ticks in microseconds: at base + 2 us the quote of the moment is the one at base + 1.8 us, so the
    # 10.00 ask at base + 1.5 us was never current to anyone (the feed never shows it) and must not fill.
    base = to_ns(T0)
    tape = QuoteTape.from_arrays(
        {
            "NS": {
                "ts": np.array([base, base + 1_500, base + 1_800, base + 1_000_000], dtype=np.int64),
                "bid": np.array([99_000, 99_000, 99_000, 99_000], dtype=np.int64),
                "ask": np.array([101_000, 100_000, 105_000, 100_000], dtype=np.int64),
                "bid_size": np.ones(4, dtype=np.int64),
                "ask_size": np.ones(4, dtype=np.int64),
            }
        }
    )

    async def scenario(sim: Sim) -> None:
        await sim.broker.submit_order(limit("a", Side.BUY, "1", "10.00", symbol="NS"))
        await sim.until(1)

    (fill,) = run_sim(scenario, tape=tape, account=SimAccount()).broker.executions
    assert tape.quote_at("NS", fill.ts) == tape.quote("NS", 3)
    assert (to_ns(fill.ts), fill.price) == (base + 1_000_000, Decimal("10.00"))
