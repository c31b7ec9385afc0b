"""A whole run through the engine and the Alpaca adapter against the loopback fake Alpaca."""

from __future__ import annotations

import asyncio
from decimal import ROUND_DOWN, Decimal

import pytest
from aiohttp import web
from tests.fakes.alpaca_fixtures import connect
from tests.fakes.alpaca_server import FakeAlpacaServer

from repeg.api import execute_async
from repeg.brokers.alpaca.adapter import AlpacaBroker
from repeg.config import ExecutionConfig, classic_ladder
from repeg.domain.events import OrderFailed, OrderIntent, RunEvent
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import Side
from repeg.domain.plan import LegSpec, Plan, PlanKind, TradeIntent
from repeg.engine.clock import RealClock
from repeg.engine.runner import run_execution
from repeg.errors import NotTradableError, SafetyLimitError
from repeg.market.alpaca_feed import AlpacaQuoteFeed
from repeg.report.result import ExecutionResult, RunStatus

#: Short waits: the run is in real time against a real HTTP/websocket server.
#: The classic ladder (join, then 0.5/0.75/1.0), sped up: these scenarios need re-pegs to happen.
FAST_RUN = classic_ladder(
    fill_wait_seconds=0.15,
    wait_between_checks=0.05,
    max_total_wait=5.0,
    grace_window=0.05,
    quote_max_age=600.0,
    quote_wait=1.0,
)

SPECS = [
    LegSpec(index=0, symbol="MSFT", side=Side.SELL, qty=Decimal(20)),
    LegSpec(index=1, symbol="AAPL", side=Side.BUY, qty=Decimal(30)),
]


class Recorder:
    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    async def emit(self, event: RunEvent) -> None:
        self.events.append(event)


async def run_through_alpaca(
    server: FakeAlpacaServer, specs: list[LegSpec], config: ExecutionConfig = FAST_RUN, run_id: str = "rE2E"
) -> tuple[ExecutionResult, Recorder]:
    broker, feed = await connect(server)
    recorder = Recorder()
    try:
        result = await asyncio.wait_for(
            run_execution(specs, [], broker, feed, RealClock(), config, run_id=run_id, sinks=[recorder]), 20
        )
    finally:
        await feed.aclose()
        await broker.aclose()
    return result, recorder


async def test_a_sell_then_buy_run_completes_with_fills_from_filled_avg_price(fake_alpaca: FakeAlpacaServer):
    result, _ = await run_through_alpaca(fake_alpaca, SPECS)
    assert result.status is RunStatus.COMPLETED
    sell, buy = result.legs
    assert sell.filled_qty == Decimal(20)
    assert buy.filled_qty == Decimal(30)
    assert sell.avg_fill_price == Decimal("410.00")  # the bid: a sell fills once its limit reaches the bid
    assert buy.avg_fill_price == Decimal("100.10")  # the ask
    assert fake_alpaca.book.holdings["MSFT"].qty == Decimal(30)
    assert fake_alpaca.book.holdings["AAPL"].qty == Decimal(30)


async def test_re_pegs_go_through_patch_with_new_order_ids(fake_alpaca: FakeAlpacaServer):
    result, _ = await run_through_alpaca(fake_alpaca, SPECS[1:])
    (buy,) = result.legs
    assert buy.repegs >= 1
    assert len(set(buy.order_ids)) == len(buy.order_ids) >= 2
    assert any(method == "PATCH" for method, _ in fake_alpaca.requests)


async def test_partial_fills_are_completed_through_cancel_and_remainder(fake_alpaca: FakeAlpacaServer):
    fake_alpaca.book.partial_fill_probability = 0.5
    result, _ = await run_through_alpaca(fake_alpaca, SPECS[1:], run_id="rE2Epartial")
    (buy,) = result.legs
    assert buy.filled_qty == Decimal(30)
    orders = list(fake_alpaca.book.orders.values())
    assert any(
        o.status == "canceled" and 0 < o.filled_qty < o.qty for o in orders
    )  # a partial was worked out
    assert sum((o.filled_qty for o in orders), Decimal(0)) == Decimal(
        30
    )  # never over-filled across the chain


async def test_a_run_survives_429s_a_lost_submit_and_a_stream_gap_with_exact_fills(
    fake_alpaca: FakeAlpacaServer,
):
    fake_alpaca.fail("POST", "/v2/orders", 429, times=2)
    fake_alpaca.lost_response_delay = 1.0
    fake_alpaca.lose_response("PATCH", "/v2/orders/")
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, lambda: loop.create_task(fake_alpaca.drop_trade_stream(refuse_for=0.3)))
    result, _ = await run_through_alpaca(fake_alpaca, SPECS, run_id="rE2Efaults")
    assert result.status is RunStatus.COMPLETED
    assert [leg.filled_qty for leg in result.legs] == [Decimal(20), Decimal(30)]
    orders = list(fake_alpaca.book.orders.values())
    assert len({o.client_order_id for o in orders}) == len(orders)
    assert sum((o.filled_qty for o in orders if o.symbol == "AAPL"), Decimal(0)) == Decimal(30)
    assert sum((o.filled_qty for o in orders if o.symbol == "MSFT"), Decimal(0)) == Decimal(20)
    assert all(fault.times == 0 for fault in fake_alpaca.faults)  # every injected fault was met
    assert fake_alpaca.trade_connections >= 2


#: Never re-pegs to the far side: the leg ends only through escalation (its working order's cancel, then market).
PASSIVE_THEN_ESCALATE = classic_ladder(
    repeg_steps=(Decimal("0.5"),),
    fill_wait_seconds=0.5,  # the hard stop comes 0.5 s after the deadline's escalation: ample for the retry
    wait_between_checks=0.05,
    max_total_wait=1.0,
    grace_window=0.05,
    quote_max_age=600.0,
    quote_wait=1.0,
)


async def test_a_cancel_the_stream_rejects_is_asked_again_and_the_leg_escalates_to_a_fill(
    fake_alpaca: FakeAlpacaServer,
):
    """Alpaca accepts the escalation's cancel (204) and then sends `order_cancel_rejected`: the order is still live.

    The leg must leave `canceling` and go on being managed (cancel asked again, remainder sent at market), and no
    order may be left open at the broker after the run.
    """
    fake_alpaca.reject_cancels = 1
    result, _ = await run_through_alpaca(
        fake_alpaca, SPECS[1:], config=PASSIVE_THEN_ESCALATE, run_id="rE2Ecxlrej"
    )
    (buy,) = result.legs
    assert buy.filled_qty == Decimal(30)
    assert result.status is RunStatus.COMPLETED
    assert fake_alpaca.reject_cancels == 0  # the refusal was met
    assert [o.id for o in fake_alpaca.book.orders.values() if o.is_open] == []


async def test_a_lost_cancel_answer_leaves_no_error_on_a_leg_that_completes(fake_alpaca: FakeAlpacaServer):
    """The escalation's DELETE cancels the order but its answer is lost; the retry meets the order `canceled`.
    The leg completes, and neither its result nor the run's events report a cancel failure."""
    fake_alpaca.lost_response_delay = 1.0
    fake_alpaca.lose_response("DELETE", "/v2/orders/")
    # the hard stop comes 1.5 s after the escalation: time for the read timeout (0.5 s) and the retry
    config = classic_ladder(
        repeg_steps=(Decimal("0.5"),),
        fill_wait_seconds=1.5,
        wait_between_checks=0.05,
        max_total_wait=1.5,
        grace_window=0.05,
        quote_max_age=600.0,
        quote_wait=1.0,
    )
    result, recorder = await run_through_alpaca(fake_alpaca, SPECS[1:], config=config, run_id="rE2Elostcxl")
    (buy,) = result.legs
    assert all(fault.times == 0 for fault in fake_alpaca.faults)  # the lost answer was met
    assert (result.status, buy.filled_qty, buy.error) == (RunStatus.COMPLETED, Decimal(30), None)
    assert [e for e in recorder.events if isinstance(e, OrderFailed)] == []


async def test_a_fractional_leg_whose_replacement_is_larger_than_its_remainder_is_not_over_filled(
    fake_alpaca: FakeAlpacaServer,
):
    """Alpaca sizes a replacement from the PATCH, and a PATCH without `qty` keeps the replaced order's quantity
    (its fills not deducted): an order that fills in part while its replace is pending leaves a replacement larger
    than the leg's remainder. A whole-share leg's next re-peg patches `qty` down to the remainder; Alpaca refuses
    to patch a fractional order's `qty`, so each re-peg of a fractional leg was refused and the oversized order
    kept working until it filled past the leg. It must be re-pegged by cancel, confirm and submit instead."""
    book = fake_alpaca.book
    book.hold_replaces = True
    config = classic_ladder(
        fill_wait_seconds=0.6,
        wait_between_checks=0.05,
        max_total_wait=30.0,
        grace_window=0.05,
        quote_max_age=600.0,
        quote_wait=1.0,
    )
    spec = LegSpec(index=0, symbol="AAPL", side=Side.BUY, qty=Decimal("10.5"))
    run = asyncio.create_task(run_through_alpaca(fake_alpaca, [spec], config, run_id="rFRAC"))

    def orders(status: str) -> list[str]:
        return [o.id for o in book.orders.values() if o.status == status]

    await _until(lambda: orders("pending_replace"))
    (first,) = orders("pending_replace")
    book.partial_fill_probability = 1.0  # a fractional order fills half
    book.set_quote("AAPL", Decimal("99.90"), Decimal("100.00"))  # the joined bid becomes the ask: it fills
    book.partial_fill_probability = 0.0
    book.set_quote("AAPL", Decimal("100.20"), Decimal("100.30"))
    book.complete_replace(first)
    replacement = book.orders[str(book.orders[first].replaced_by)]
    assert (book.orders[first].filled_qty, replacement.qty) == (Decimal("5.25"), Decimal("10.5"))
    # The next re-peg step: a refused PATCH of qty (before) or a cancel of the oversized order (after).
    await _until(
        lambda: replacement.status == "canceled" or fake_alpaca.count("PATCH", f"/v2/orders/{replacement.id}")
    )
    book.hold_replaces = False
    book.set_quote("AAPL", Decimal("99.00"), Decimal("99.05"))  # every working buy fills now
    result, _ = await run
    (leg,) = result.legs
    assert sum((o.filled_qty for o in book.orders.values()), Decimal(0)) == Decimal("10.5")
    assert leg.filled_qty == Decimal("10.5")


async def _until(predicate: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def _bookkeeping(broker: AlpacaBroker) -> int:
    """How many entries the adapter's order tracker holds, all its per-order maps together."""
    tracker = broker._tracker
    owned = tracker._owned  # what was sent, and what a resumed run's journal says was sent, under each id
    maps = (tracker._latest, tracker._reported, tracker._priced, tracker._notional, owned._sent)
    return sum(len(m) for m in maps) + len(tracker._client_ids) + len(owned._expected)


async def test_an_adapter_reused_for_several_runs_releases_each_runs_bookkeeping_when_it_ends(
    fake_alpaca: FakeAlpacaServer,
):
    """The Python API lets one adapter serve run after run. Its tracker kept every order of every past run (ids
    sent, states reported, notionals): memory grew with each order for the adapter's life. Once no run listens any
    more, the orders that are closed are forgotten (an order still open stays followed)."""
    broker, feed = await connect(fake_alpaca)
    held: list[int] = []
    try:
        for run in range(3):
            result = await asyncio.wait_for(
                run_execution(SPECS[1:], [], broker, feed, RealClock(), FAST_RUN, run_id=f"rReuse{run}"), 20
            )
            assert result.status is RunStatus.COMPLETED
            held.append(_bookkeeping(broker))
    finally:
        await feed.aclose()
        await broker.aclose()
    assert held == [0, 0, 0]


def _a_buy_of_aapl() -> Plan:
    return Plan(
        source="plan.csv",
        kind=PlanKind.TRADES,
        trades=(TradeIntent(symbol="AAPL", side=Side.BUY, qty=Decimal(5)),),
    )


async def _refused_once_aapl_is_halted(
    fake_alpaca: FakeAlpacaServer, broker: AlpacaBroker, feed: AlpacaQuoteFeed
) -> None:
    """Halt AAPL; a run of `_a_buy_of_aapl` on `broker` must then refuse the plan before any order."""
    fake_alpaca.book.assets["AAPL"] = (False, True)  # halted
    posts = fake_alpaca.count("POST", "/v2/orders")
    with pytest.raises(NotTradableError):
        await asyncio.wait_for(
            execute_async(_a_buy_of_aapl(), broker, feed, RealClock(), FAST_RUN, run_id="rHalted"),
            20,
        )
    assert fake_alpaca.count("POST", "/v2/orders") == posts


async def test_an_adapter_reused_for_a_later_run_reads_the_asset_flags_afresh(fake_alpaca: FakeAlpacaServer):
    """The asset flags were cached for the adapter's life, not the run's: a symbol halted (no longer tradable)
    after an earlier run on the same adapter was still taken as tradable, and the later run sent its orders instead
    of refusing the plan before any order (`NotTradableError`)."""
    broker, feed = await connect(fake_alpaca)
    try:
        first = await asyncio.wait_for(
            execute_async(_a_buy_of_aapl(), broker, feed, RealClock(), FAST_RUN, run_id="rA1"), 20
        )
        assert first.status is RunStatus.COMPLETED
        await _refused_once_aapl_is_halted(fake_alpaca, broker, feed)
    finally:
        await feed.aclose()
        await broker.aclose()


async def test_an_adapter_reused_after_a_plan_refused_before_any_order_reads_the_asset_flags_afresh(
    fake_alpaca: FakeAlpacaServer,
):
    """99f6e4c6 clears the asset flags once a run's subscription leaves; a plan refused before its run started
    (here by max_order_notional) never subscribed, so the flags it read stayed: a later run on the same adapter
    still took a symbol halted since as tradable and sent its orders."""
    too_small = FAST_RUN.model_copy(update={"max_order_notional": Decimal(1)})
    broker, feed = await connect(fake_alpaca)
    try:
        with pytest.raises(SafetyLimitError):
            await asyncio.wait_for(
                execute_async(_a_buy_of_aapl(), broker, feed, RealClock(), too_small, run_id="rB1"), 20
            )
        await _refused_once_aapl_is_halted(fake_alpaca, broker, feed)
    finally:
        await feed.aclose()
        await broker.aclose()


async def test_an_escalation_alpaca_refuses_for_want_of_buying_power_goes_again_cut_to_what_the_account_covers(
    fake_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch
):
    """The escalation's market buy is answered HTTP 403, code 40310000, "insufficient buying power" (the ask rose
    past the sizing's buffer: here the cash falls to what 10 shares cost at the ask). Through the Alpaca adapter as
    through the simulator: the refusal is typed, `GET /v2/account`'s `buying_power` is read once, and the largest
    quantity it covers at the ask plus `escalation_collar_bps` goes out under the next attempt's id; the leg ends
    incomplete with the cut's reason, nothing more sent. (Before 6668cf3 the leg failed with nothing bought.)"""
    book = fake_alpaca.book
    check_order = fake_alpaca._check_order
    refused: list[str] = []

    def refuse_the_first_market_buy(body: dict[str, object]) -> web.Response | None:
        if body.get("type") == "market" and not refused:
            refused.append(str(body.get("client_order_id")))
            book.cash = Decimal("1001.00")  # ten shares at the ask of 100.10
            return web.json_response({"code": 40310000, "message": "insufficient buying power"}, status=403)
        return check_order(body)

    monkeypatch.setattr(fake_alpaca, "_check_order", refuse_the_first_market_buy)
    result, recorder = await run_through_alpaca(
        fake_alpaca, SPECS[1:], config=PASSIVE_THEN_ESCALATE, run_id="rE2Ebp"
    )
    (refusal,) = [e for e in recorder.events if isinstance(e, OrderFailed)]
    assert (refusal.client_order_id, refusal.error) == (refused[0], "InsufficientBuyingPowerError")
    (cut,) = [e for e in recorder.events if isinstance(e, OrderIntent) and e.capped is not None]
    price = Decimal("100.10") * (1 + PASSIVE_THEN_ESCALATE.escalation_collar_bps / 10_000)
    sent = (Decimal("1001.00") / price).quantize(Decimal("1e-9"), rounding=ROUND_DOWN)
    assert cut.capped is not None
    assert (cut.qty, cut.capped.sent_qty, cut.capped.requested_qty, cut.capped.buying_power) == (
        sent,
        sent,
        Decimal(30),
        Decimal("1001.00"),
    )
    (buy,) = result.legs
    assert buy.status is LegStatus.INCOMPLETE
    assert buy.filled_qty == sent
    assert buy.reason is not None
    assert buy.reason.startswith("insufficient buying power for the escalation: requested 30, sent ")
    assert result.status is RunStatus.PARTIAL
    assert book.cash >= 0
    assert [o.id for o in book.orders.values() if o.is_open] == []
