"""Fixtures for tests of the Alpaca adapter: a fake server per test and a connected adapter pointed at it.

`tests/integration/conftest.py` makes `fake_alpaca` and `alpaca` available to every integration test.
Settings are shortened (millisecond backoffs, sub-second silence) so every scenario runs in well under a second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from pydantic import SecretStr
from tests.fakes.alpaca_matching import FakeBook, Holding
from tests.fakes.alpaca_server import FakeAlpacaServer

from repeg.brokers.alpaca.adapter import AlpacaBroker
from repeg.brokers.alpaca.credentials import AlpacaCredentials
from repeg.brokers.alpaca.factory import build_alpaca
from repeg.brokers.alpaca.retry import BackoffPolicy
from repeg.brokers.alpaca.settings import AlpacaSettings, AlpacaUrls
from repeg.brokers.alpaca.stream import StreamSettings
from repeg.engine.clock import RealClock
from repeg.market.alpaca_feed import AlpacaQuoteFeed

FAST = AlpacaSettings(
    requests_per_minute=60_000,
    burst=1_000,
    connect_timeout=1.0,
    read_timeout=0.5,
    retry=BackoffPolicy(max_attempts=5, base_delay=0.005, max_delay=0.02, seed=1),
    stream=StreamSettings(
        silence_after=0.3,
        poll_every=0.05,
        open_timeout=2.0,
        stable_after=0.5,
        reconnect=BackoffPolicy(max_attempts=1_000_000, base_delay=0.02, max_delay=0.1, seed=2),
    ),
    quote_poll_every=0.05,
)


def default_book() -> FakeBook:
    book = FakeBook(seed=11, cash=Decimal(100_000))
    book.assets = {"AAPL": (True, True), "MSFT": (True, True), "BRK.A": (True, False), "HALT": (False, False)}
    book.holdings = {"MSFT": Holding(Decimal(50), Decimal("400.00"))}
    book.set_quote("AAPL", Decimal("100.00"), Decimal("100.10"))
    book.set_quote("MSFT", Decimal("410.00"), Decimal("410.20"))
    book.set_quote("BRK.A", Decimal("600000.00"), Decimal("600100.00"))
    return book


@pytest.fixture
async def fake_alpaca() -> AsyncIterator[FakeAlpacaServer]:
    server = FakeAlpacaServer(book=default_book())
    await server.start()
    yield server
    await server.stop()


def credentials_for(server: FakeAlpacaServer) -> AlpacaCredentials:
    return AlpacaCredentials(key_id=server.key_id, secret_key=SecretStr(server.secret_key))


async def connect(
    server: FakeAlpacaServer,
    *,
    mode: str = "paper",
    confirm_live: bool = False,
    allow_closed: bool = False,
    settings: AlpacaSettings = FAST,
) -> tuple[AlpacaBroker, AlpacaQuoteFeed]:
    return await build_alpaca(
        mode,
        confirm_live=confirm_live,
        allow_closed=allow_closed,
        clock=RealClock(),
        credentials=credentials_for(server),
        urls=AlpacaUrls.loopback(server.base_url),
        settings=settings,
    )


@pytest.fixture
async def alpaca(fake_alpaca: FakeAlpacaServer) -> AsyncIterator[tuple[AlpacaBroker, AlpacaQuoteFeed]]:
    broker, feed = await connect(fake_alpaca)
    yield broker, feed
    await feed.aclose()
    await broker.aclose()


def locals_a_traceback_renderer_shows(exc: BaseException | None) -> list[str]:
    """The repr of every local of every frame outside the tests that a traceback printer (rich's, with
    `show_locals`, as structlog's rich tracebacks) renders for `exc`: its own frames and those of the exceptions
    it chains to. A secret must be in none."""
    shown: list[str] = []
    while exc is not None:
        tb = exc.__traceback__
        while tb is not None:
            if "/tests/" not in tb.tb_frame.f_code.co_filename:
                shown += [repr(value) for value in tb.tb_frame.f_locals.values()]
            tb = tb.tb_next
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return shown
