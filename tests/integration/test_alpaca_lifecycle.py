"""The Alpaca adapter across the life of its runs: what it still does once a run ended, and who may use it at once."""

from __future__ import annotations

import asyncio

from tests.fakes.alpaca_fixtures import FAST
from tests.fakes.alpaca_server import FakeAlpacaServer
from tests.integration.test_alpaca_orders import limit, until

from repeg.brokers.alpaca.adapter import AlpacaBroker
from repeg.domain.orders import Side
from repeg.market.alpaca_feed import AlpacaQuoteFeed

Pair = tuple[AlpacaBroker, AlpacaQuoteFeed]


def _order_reads(fake_alpaca: FakeAlpacaServer) -> int:
    """GETs of the orders endpoint (the open-orders list and single orders): what a silence poll sends."""
    return sum(
        1 for method, path in fake_alpaca.requests if method == "GET" and path.startswith("/v2/orders")
    )


async def test_an_order_an_ended_run_left_open_is_not_polled_for_the_adapters_life(alpaca: Pair, fake_alpaca):
    """The silence watchdog polled every open order the adapter knew, whether or not a run listened: an order an
    ended run left open (a cancel never confirmed) was read every `poll_every` for as long as the adapter lived,
    spending the account's rate budget on updates nobody could receive. Polls stop when the run ends."""
    broker, _ = alpaca
    leave = broker.subscribe_updates(lambda _update: None)  # a run listens
    fake_alpaca.trade_stream_muted = True
    await broker.submit_order(limit("r2-L0050-A00", Side.BUY, "1", "90.00"))  # rests
    await until(lambda: _order_reads(fake_alpaca) >= 2)  # the run's silence polls
    leave()  # the run ends, its order left open
    await asyncio.sleep(FAST.stream.poll_every * 2)  # a poll already under way lands
    after_the_run = _order_reads(fake_alpaca)
    await asyncio.sleep(4 * FAST.stream.silence_after)  # about 24 watchdog ticks
    assert _order_reads(fake_alpaca) == after_the_run
