"""A graceful stop's bounds on the Alpaca adapter's waits last as long as the stop, not as long as the adapter.

One adapter may serve run after run (or a run and its resume, docs/ALPACA.md): a stop (Ctrl-C, SIGTERM) of one of
them must leave the next one its retries and its waits for a rate window's reset.
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from tests.fakes.alpaca_fixtures import connect
from tests.fakes.alpaca_server import FakeAlpacaServer
from tests.integration.test_alpaca_end_to_end import FAST_RUN
from tests.integration.test_alpaca_orders import until

from repeg.brokers.alpaca import rest
from repeg.brokers.alpaca.adapter import AlpacaBroker
from repeg.cli.journal_run import journaled_session
from repeg.domain.orders import Side
from repeg.domain.plan import Plan, PlanKind, TradeIntent
from repeg.engine.clock import RealClock
from repeg.errors import RunStoppedError
from repeg.journal.sqlite import SqliteJournal
from repeg.market.alpaca_feed import AlpacaQuoteFeed

#: The stop's window, shortened from Alpaca's minute so that the test outlives it.
_WINDOW = 0.2
_BUY = Plan(
    source="test", kind=PlanKind.TRADES, trades=(TradeIntent(symbol="AAPL", side=Side.BUY, qty=Decimal(5)),)
)
_PATIENT = FAST_RUN.model_copy(update={"fill_wait_seconds": 600.0, "max_total_wait": 600.0})


async def _stopped_gracefully(
    server: FakeAlpacaServer, journal: SqliteJournal, broker: AlpacaBroker, feed: AlpacaQuoteFeed
) -> None:
    """Run 'rS' (a buy whose order rests) on `broker` as the CLI does (`on_stop`), stop it with SIGINT once its order
    works, and wait until the stop's window has passed."""
    run = asyncio.create_task(
        journaled_session(
            _BUY,
            _PATIENT,
            "rS",
            journal=journal,
            broker=broker,
            feed=feed,
            clock=RealClock(),
            on_stop=broker.stopping,
        )
    )
    await until(lambda: any(o.status == "new" for o in server.book.orders.values()))
    await asyncio.sleep(0.3)  # the engine has the answer: the order is working, not a submit in flight
    signal.raise_signal(signal.SIGINT)
    with pytest.raises(RunStoppedError):
        await asyncio.wait_for(run, 30)
    assert [o.status for o in server.book.orders.values()] == ["canceled"]
    await asyncio.sleep(2 * _WINDOW)


async def test_after_a_graceful_stop_the_same_adapter_retries_reads_and_waits_for_a_rate_reset(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The stop set the adapter's deadline and nothing cleared it: once the stop's window had passed, every later
    read on that adapter failed at its first 503 (never retried), and every request behind a 429's announced reset
    failed at once as rate limited (not sent) instead of waiting for it."""
    monkeypatch.setattr(rest, "_MAX_RATE_HOLD", timedelta(seconds=_WINDOW))
    journal = SqliteJournal(tmp_path / "j.db")
    broker, feed = await connect(fake_alpaca)
    try:
        await _stopped_gracefully(fake_alpaca, journal, broker, feed)
        fake_alpaca.fail("GET", "/v2/account", 503)
        await broker.get_account()  # retried past the 503
        assert fake_alpaca.count("GET", "/v2/account") >= 2
        fake_alpaca.rate_limited_until = time.time() + 0.3
        await broker.get_positions()  # its 429 announces a reset, waited for (at most a window)
    finally:
        journal.close()
        await feed.aclose()
        await broker.aclose()


async def test_a_resume_on_the_adapter_of_a_run_stopped_gracefully_rides_out_a_rate_limit(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The resume of a run stopped gracefully, on the same adapter (the Python API's run and resume), while the
    account is rate limited for a moment: its first request's 429 is waited out, and the run completes. With the
    stop's deadline left behind, the resume's requests were refused at once as rate limited."""
    monkeypatch.setattr(rest, "_MAX_RATE_HOLD", timedelta(seconds=_WINDOW))
    journal = SqliteJournal(tmp_path / "j.db")
    broker, feed = await connect(fake_alpaca)
    try:
        await _stopped_gracefully(fake_alpaca, journal, broker, feed)
        fake_alpaca.book.set_quote("AAPL", Decimal("99.90"), Decimal("100.00"))
        fake_alpaca.rate_limited_until = time.time() + 0.3
        result = await asyncio.wait_for(
            journaled_session(
                _BUY,
                FAST_RUN,
                "rS",
                journal=journal,
                broker=broker,
                feed=feed,
                clock=RealClock(),
                on_stop=broker.stopping,
            ),
            30,
        )
    finally:
        journal.close()
        await feed.aclose()
        await broker.aclose()
    assert result.status.value == "completed"
