"""The Alpaca adapter against the loopback fake Alpaca: orders, replaces, cancels, updates, faults."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from tests.fakes.alpaca_fixtures import connect
from tests.fakes.alpaca_server import FakeAlpacaServer

from repeg.brokers.alpaca.adapter import AlpacaBroker
from repeg.domain.orders import (
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    ReplaceRequest,
    Side,
)
from repeg.errors import (
    DuplicateClientOrderIdError,
    FractionalQuantityError,
    OrderNotCancelableError,
    UnknownSymbolError,
)
from repeg.market.alpaca_feed import AlpacaQuoteFeed

Pair = tuple[AlpacaBroker, AlpacaQuoteFeed]


def limit(cid: str, side: Side, qty: str, price: str, symbol: str = "AAPL") -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=OrderType.LIMIT,
        limit_price=Decimal(price),
    )


def reprice(order_id: str, cid: str, qty: str, price: str) -> ReplaceRequest:
    return ReplaceRequest(
        order_id=order_id, client_order_id=cid, qty=Decimal(qty), limit_price=Decimal(price)
    )


def collect(broker: AlpacaBroker) -> list[OrderUpdate]:
    updates: list[OrderUpdate] = []
    broker.subscribe_updates(updates.append)
    return updates


async def until(predicate, timeout: float = 3.0) -> None:
    """Yield to the loop until `predicate()` holds (a liveness bound, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def filled(updates: list[OrderUpdate], order_id: str) -> Decimal:
    return sum(
        (u.fill.qty for u in updates if u.fill is not None and u.order.order_id == order_id), Decimal(0)
    )


async def test_passive_limit_rests_then_fills_at_the_ask_when_marketable(
    alpaca: Pair, fake_alpaca: FakeAlpacaServer
):
    broker, _ = alpaca
    updates = collect(broker)
    order = await broker.submit_order(limit("r1-L0000-A00", Side.BUY, "10", "100.00"))
    assert order.status is OrderStatus.NEW
    fake_alpaca.book.set_quote("AAPL", Decimal("99.90"), Decimal("99.95"))
    await until(lambda: filled(updates, order.order_id) == 10)
    fill = next(u for u in updates if u.event is OrderEvent.FILL)
    assert fill.fill is not None
    assert fill.fill.price == Decimal("99.95")
    assert fill.order.filled_avg_price == Decimal("99.95")


async def test_submit_sends_exact_decimal_strings_and_our_client_order_id(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    order = await broker.submit_order(limit("r1-L0001-A00", Side.BUY, "3", "99.01"))
    stored = fake_alpaca.book.orders[order.order_id]
    assert stored.client_order_id == "r1-L0001-A00"
    assert stored.limit_price == Decimal("99.01")
    assert order.limit_price == Decimal("99.01")


async def test_reused_client_order_id_is_a_typed_duplicate_error(alpaca: Pair):
    broker, _ = alpaca
    first = await broker.submit_order(limit("r1-dup", Side.BUY, "1", "90.00"))
    await broker.cancel_order(first.order_id)
    with pytest.raises(DuplicateClientOrderIdError) as info:
        await broker.submit_order(limit("r1-dup", Side.BUY, "1", "90.00"))
    assert info.value.client_order_id == "r1-dup"
    assert "unique" in (info.value.broker_message or "")


async def test_replace_creates_a_new_order_id_and_the_old_goes_replaced(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    updates = collect(broker)
    old = await broker.submit_order(limit("r1-L0002-A00", Side.BUY, "5", "99.00"))
    new = await broker.replace_order(reprice(old.order_id, "r1-L0002-A01", "5", "99.50"))
    assert new.order_id != old.order_id
    assert new.replaces == old.order_id
    assert new.limit_price == Decimal("99.50")
    await until(
        lambda: any(u.event is OrderEvent.REPLACED and u.order.order_id == old.order_id for u in updates)
    )


async def test_replace_of_a_partially_filled_order_is_refused_before_sending(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    order = await broker.submit_order(limit("r1-L0003-A00", Side.BUY, "10", "99.00"))
    fake_alpaca.book.partial_fill_probability = 1.0
    fake_alpaca.book.set_quote("AAPL", Decimal("98.90"), Decimal("99.00"))
    fake_alpaca.book.partial_fill_probability = 0.0
    patches = fake_alpaca.count("PATCH", f"/v2/orders/{order.order_id}")
    with pytest.raises(OrderNotCancelableError) as info:
        await broker.replace_order(reprice(order.order_id, "r1-L0003-A01", "10", "98.00"))
    assert info.value.status == "partially_filled"
    assert fake_alpaca.count("PATCH", f"/v2/orders/{order.order_id}") == patches


async def test_replace_racing_a_fill_reports_the_fill_and_refuses(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    updates = collect(broker)
    fake_alpaca.trade_stream_muted = True  # the fill happens, but its push has not reached us yet
    order = await broker.submit_order(limit("r1-L0004-A00", Side.BUY, "4", "99.00"))
    fake_alpaca.book.set_quote("AAPL", Decimal("98.90"), Decimal("99.00"))
    with pytest.raises(OrderNotCancelableError) as info:
        await broker.replace_order(reprice(order.order_id, "r1-L0004-A01", "4", "99.05"))
    assert info.value.status == "filled"
    assert filled(updates, order.order_id) == 4


async def test_replace_rejected_by_the_broker_because_the_order_filled(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    order = await broker.submit_order(limit("r1-L0005-A00", Side.SELL, "2", "101.00"))
    fake_alpaca.book.hold_replaces = True
    new = await broker.replace_order(reprice(order.order_id, "r1-L0005-A01", "2", "100.50"))
    updates = collect(broker)
    fake_alpaca.book.set_quote(
        "AAPL", Decimal("101.00"), Decimal("101.10")
    )  # the old order fills while pending
    fake_alpaca.book.complete_replace(order.order_id)
    await until(
        lambda: any(u.order.order_id == new.order_id and u.event is OrderEvent.REJECTED for u in updates)
    )
    assert filled(updates, order.order_id) == 2
    assert filled(updates, new.order_id) == 0


async def test_cancel_while_replace_pending_is_not_cancelable_with_that_state(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    order = await broker.submit_order(limit("r1-L0006-A00", Side.BUY, "2", "99.00"))
    fake_alpaca.book.hold_replaces = True
    await broker.replace_order(reprice(order.order_id, "r1-L0006-A01", "2", "99.10"))
    with pytest.raises(OrderNotCancelableError) as info:
        await broker.cancel_order(order.order_id)
    assert info.value.status == "pending_replace"
    assert "pending_replace" in (info.value.broker_message or "")


async def test_cancel_of_a_filled_order_reports_the_filled_state(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    updates = collect(broker)
    order = await broker.submit_order(limit("r1-L0007-A00", Side.BUY, "3", "100.10"))
    with pytest.raises(OrderNotCancelableError) as info:
        await broker.cancel_order(order.order_id)
    assert info.value.status == "filled"
    assert info.value.code == "42210000"  # Alpaca's code is kept
    await until(lambda: filled(updates, order.order_id) == 3)


async def test_cancel_is_confirmed_by_a_canceled_update(alpaca: Pair):
    broker, _ = alpaca
    updates = collect(broker)
    order = await broker.submit_order(limit("r1-L0008-A00", Side.BUY, "3", "90.00"))
    await broker.cancel_order(order.order_id)
    await until(
        lambda: any(u.event is OrderEvent.CANCELED and u.order.order_id == order.order_id for u in updates)
    )


async def test_get_by_client_order_id_finds_the_order_or_none(alpaca: Pair):
    broker, _ = alpaca
    order = await broker.submit_order(limit("r1-L0009-A00", Side.BUY, "1", "90.00"))
    found = await broker.get_order_by_client_id("r1-L0009-A00")
    assert found is not None
    assert found.order_id == order.order_id
    assert await broker.get_order_by_client_id("never-sent") is None


async def test_list_open_orders_has_only_working_orders(alpaca: Pair):
    broker, _ = alpaca
    working = await broker.submit_order(limit("r1-L0010-A00", Side.BUY, "1", "90.00"))
    await broker.submit_order(limit("r1-L0011-A00", Side.BUY, "1", "100.10"))  # fills at once
    assert [o.order_id for o in await broker.list_open_orders()] == [working.order_id]


async def test_fractional_qty_of_a_non_fractionable_asset_is_refused_before_sending(
    alpaca: Pair, fake_alpaca
):
    broker, _ = alpaca
    with pytest.raises(FractionalQuantityError) as info:
        await broker.submit_order(limit("r1-L0012-A00", Side.BUY, "0.5", "600000.00", symbol="BRK.A"))
    assert info.value.symbol == "BRK.A"
    assert fake_alpaca.count("POST", "/v2/orders") == 0


async def test_fractional_qty_of_a_fractionable_asset_is_sent(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    order = await broker.submit_order(limit("r1-L0013-A00", Side.BUY, "0.5", "90.00"))
    assert order.qty == Decimal("0.5")


async def test_account_positions_and_assets_are_read_into_our_models(alpaca: Pair):
    broker, _ = alpaca
    account = await broker.get_account()
    assert account.cash == Decimal(100_000)
    positions = await broker.get_positions()
    assert [(p.symbol, p.qty) for p in positions] == [("MSFT", Decimal(50))]
    asset = await broker.get_asset("BRK.A")
    assert (asset.tradable, asset.fractionable) == (True, False)
    assert (await broker.get_asset("HALT")).tradable is False
    with pytest.raises(UnknownSymbolError):
        await broker.get_asset("NOPE")


async def test_a_replace_refused_by_the_broker_reports_the_state_read_back(alpaca: Pair, fake_alpaca):
    broker, _ = alpaca
    order = await broker.submit_order(limit("r1-L0014-A00", Side.BUY, "2", "99.00"))
    fake_alpaca.book.hold_replaces = True
    await broker.replace_order(reprice(order.order_id, "r1-L0014-A01", "2", "99.10"))
    with pytest.raises(OrderNotCancelableError) as info:  # a second replace while the first is pending
        await broker.replace_order(reprice(order.order_id, "r1-L0014-A02", "2", "99.20"))
    assert info.value.status == "pending_replace"
    assert fake_alpaca.count("PATCH", f"/v2/orders/{order.order_id}") == 2


async def test_an_order_of_an_earlier_process_is_followed_once_the_run_asks_about_it(fake_alpaca):
    """Resume asks for the run's orders by client order id through a fresh adapter: their later fills must
    reach the engine as pushed updates (it does not poll a broker that pushes), each fill exactly once."""
    first, first_feed = await connect(fake_alpaca)
    order = await first.submit_order(limit("r1-L0015-A00", Side.BUY, "3", "99.00"))
    await first_feed.aclose()
    await first.aclose()
    broker, feed = await connect(fake_alpaca)
    try:
        updates = collect(broker)
        found = await broker.get_order_by_client_id("r1-L0015-A00")
        assert found is not None
        assert found.order_id == order.order_id
        fake_alpaca.book.set_quote("AAPL", Decimal("98.90"), Decimal("99.00"))
        await until(lambda: filled(updates, order.order_id) == 3)
        assert [u.fill.qty for u in updates if u.fill is not None] == [Decimal(3)]
    finally:
        await feed.aclose()
        await broker.aclose()


async def test_a_fractional_order_is_re_priced_without_patching_its_quantity(alpaca: Pair, fake_alpaca):
    """Alpaca patches only full shares and never a fractional order's qty: a re-peg of a fractional order keeps
    its quantity by leaving `qty` out of the PATCH, and changes only the limit price."""
    broker, _ = alpaca
    old = await broker.submit_order(limit("r1-L0016-A00", Side.BUY, "0.5", "90.00"))
    new = await broker.replace_order(reprice(old.order_id, "r1-L0016-A01", "0.5", "90.50"))
    assert (new.replaces, new.qty, new.limit_price) == (old.order_id, Decimal("0.5"), Decimal("90.50"))


async def test_an_order_not_yet_routed_cannot_be_replaced(alpaca: Pair, fake_alpaca):
    """Alpaca: "Order cannot be replaced when the status is `accepted`, `pending_new`, `pending_cancel` or
    `pending_replace`." An order queued while the market is closed is `accepted`: its replace is refused with
    that state, and no replacement order exists."""
    broker, _ = alpaca
    fake_alpaca.book.market_open = False
    order = await broker.submit_order(limit("r1-L0017-A00", Side.BUY, "2", "99.00"))
    assert order.status is OrderStatus.ACCEPTED
    with pytest.raises(OrderNotCancelableError) as info:
        await broker.replace_order(reprice(order.order_id, "r1-L0017-A01", "2", "99.10"))
    assert info.value.status == "accepted"
    assert list(fake_alpaca.book.orders) == [order.order_id]


async def test_open_orders_are_read_page_by_page_from_the_fake_as_from_alpaca(
    alpaca: Pair, fake_alpaca, monkeypatch: pytest.MonkeyPatch
):
    """The fake honours `limit`, `direction` and `after_order_id` of `GET /v2/orders` as Alpaca does (it answered
    every open order whatever the limit, so a page as long as the limit was read again and again)."""
    from repeg.brokers.alpaca import adapter

    broker, _ = alpaca
    monkeypatch.setattr(adapter, "_ORDERS_PAGE", 2)
    sent = [await broker.submit_order(limit(f"r1-L00{50 + i}-A00", Side.BUY, "1", "90.00")) for i in range(5)]
    listed = await asyncio.wait_for(broker.list_open_orders(), 5)
    assert [o.order_id for o in listed] == [o.order_id for o in sent]
    assert fake_alpaca.count("GET", "/v2/orders") == 3
