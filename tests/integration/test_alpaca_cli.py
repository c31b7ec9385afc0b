"""`repeg check` and the `run --broker alpaca-*` entry point (dry run, live confirmation) against the fake Alpaca."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import typer
from tests.fakes.alpaca_fixtures import FAST
from tests.fakes.alpaca_server import FakeAlpacaServer
from tests.integration.test_alpaca_end_to_end import FAST_RUN
from tests.integration.test_alpaca_orders import until
from typer.testing import CliRunner

from repeg.brokers.alpaca.settings import AlpacaUrls, DataFeed
from repeg.cli.alpaca_cmds import check_alpaca, execute_on_alpaca, register
from repeg.cli.journal_cmds import market_line
from repeg.domain.events import AlpacaFeedSource, RunStarted
from repeg.domain.orders import Side
from repeg.domain.plan import Plan, PlanKind, TradeIntent
from repeg.errors import ConfigError, LiveTradingNotConfirmedError, NotTradableError, RepegError
from repeg.journal.factory import open_journal
from repeg.report.result import RunStatus

PLAN = Plan(
    source="test",
    kind=PlanKind.TRADES,
    trades=(
        TradeIntent(symbol="MSFT", side=Side.SELL, qty=Decimal(10)),
        TradeIntent(symbol="AAPL", side=Side.BUY, qty=Decimal(5)),
    ),
)


@pytest.fixture
def credentials_env(fake_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", fake_alpaca.key_id)
    monkeypatch.setenv("APCA_API_SECRET_KEY", fake_alpaca.secret_key)


async def test_check_prints_account_clock_positions_and_plan_assets_and_sends_no_order(
    fake_alpaca: FakeAlpacaServer, credentials_env: None, tmp_path: Path
):
    plan = tmp_path / "plan.csv"
    plan.write_text("symbol,side,qty\nBRK.A,buy,1\nHALT,sell,2\n", encoding="utf-8")
    lines: list[str] = []
    with pytest.raises(NotTradableError):  # HALT: printed, then refused as `repeg run` refuses it
        await check_alpaca(
            "alpaca-live", plan, lines.append, urls=AlpacaUrls.loopback(fake_alpaca.base_url), settings=FAST
        )
    text = "\n".join(lines)
    assert "alpaca-live: cash 100000" in text
    assert "market: open" in text
    assert "position MSFT" in text
    assert "asset BRK.A    tradable=yes fractionable=no" in text
    assert "asset HALT     tradable=NO" in text
    assert all(method == "GET" for method, _ in fake_alpaca.requests)


async def test_check_of_a_plan_with_a_symbol_not_tradable_prints_every_asset_then_refuses_it(
    fake_alpaca: FakeAlpacaServer, credentials_env: None, tmp_path: Path
):
    # `repeg check` printed "tradable=NO" and exited 0, while `repeg run` refuses that plan (exit 2) and `check`
    # itself exits 2 for an unknown symbol: a script reading the exit code took the plan for runnable.
    plan = tmp_path / "plan.csv"
    plan.write_text("symbol,side,qty\nHALT,sell,2\nBRK.A,buy,1\n", encoding="utf-8")
    lines: list[str] = []
    with pytest.raises(NotTradableError) as caught:
        await check_alpaca(
            "alpaca-paper", plan, lines.append, urls=AlpacaUrls.loopback(fake_alpaca.base_url), settings=FAST
        )
    assert str(caught.value) == f"{plan}, row 2, field 'symbol' = 'HALT': not tradable at the broker"
    assert [line for line in lines if line.startswith("asset")] == [
        "asset HALT     tradable=NO fractionable=no",
        "asset BRK.A    tradable=yes fractionable=no",
    ]


async def test_dry_run_prices_every_order_and_sends_none(
    fake_alpaca: FakeAlpacaServer, credentials_env: None
):
    lines: list[str] = []
    result = await execute_on_alpaca(
        PLAN,
        FAST_RUN,
        broker="alpaca-paper",
        confirm=False,
        allow_closed=False,
        dry_run=True,
        run_id="rDRY",
        echo=lines.append,
        urls=AlpacaUrls.loopback(fake_alpaca.base_url),
        settings=FAST,
    )
    assert fake_alpaca.count("POST", "/v2/orders") == 0
    assert fake_alpaca.book.orders == {}
    assert {method for method, _ in fake_alpaca.requests} == {
        "GET"
    }  # no replace, cancel either (run-end too)
    assert lines[0] == "dry run: 2 order(s) priced, none sent"
    assert any("MSFT" in line and "sell" in line and "limit 410.20" in line for line in lines)
    assert any("AAPL" in line and "buy" in line and "limit 100.00" in line for line in lines)
    assert result.status is not RunStatus.COMPLETED


async def test_a_dry_run_on_a_closed_market_does_not_say_its_orders_queue(
    fake_alpaca: FakeAlpacaServer, credentials_env: None
):
    # "market closed: DAY orders queue until ..." was printed for a dry run too, which queues nothing; and the
    # warning logged on stderr (default level) still named it `market_closed_orders_queue`.
    from structlog.testing import capture_logs

    fake_alpaca.book.market_open = False
    lines: list[str] = []
    with capture_logs() as logged:
        await execute_on_alpaca(
            PLAN,
            FAST_RUN,
            broker="alpaca-paper",
            confirm=False,
            allow_closed=True,
            dry_run=True,
            run_id="rDRYC",
            echo=lines.append,
            urls=AlpacaUrls.loopback(fake_alpaca.base_url),
            settings=FAST,
        )
    assert lines[0].startswith("market closed (next open ")
    assert not [line for line in lines if "queue" in line]
    assert not [entry for entry in logged if "queue" in str(entry["event"])]
    assert "dry run: 2 order(s) priced, none sent" in lines


async def test_a_paper_run_through_the_cli_entry_point_completes(
    fake_alpaca: FakeAlpacaServer, credentials_env: None
):
    result = await execute_on_alpaca(
        PLAN,
        FAST_RUN,
        broker="alpaca-paper",
        confirm=False,
        allow_closed=False,
        dry_run=False,
        run_id="rCLI",
        urls=AlpacaUrls.loopback(fake_alpaca.base_url),
        settings=FAST,
    )
    assert result.status is RunStatus.COMPLETED
    assert [leg.filled_qty for leg in result.legs] == [Decimal(10), Decimal(5)]


async def test_a_journaled_paper_run_is_recorded_write_ahead_and_never_sent_twice(
    fake_alpaca: FakeAlpacaServer, credentials_env: None, tmp_path: Path
):
    journal = open_journal(str(tmp_path / "runs.db"))
    try:
        run = {
            "broker": "alpaca-paper",
            "confirm": False,
            "allow_closed": False,
            "dry_run": False,
            "run_id": "rJRN",
            "urls": AlpacaUrls.loopback(fake_alpaca.base_url),
            "settings": FAST,
            "journal": journal,
        }
        first = await execute_on_alpaca(PLAN, FAST_RUN, **run)
        assert first.status is RunStatus.COMPLETED
        submits = fake_alpaca.count("POST", "/v2/orders")
        events = list(journal.events("rJRN"))
        kinds = [e.kind for e in events]
        assert kinds[0] == "run_started"
        assert kinds[-1] == "run_ended"
        intents = [i for i, e in enumerate(events) if e.kind == "order_intent" and e.action.value == "submit"]
        assert len(intents) == submits
        for i in intents:  # every submit intent precedes its answer
            answer = next(e for e in events[i + 1 :] if e.kind in {"order_accepted", "order_failed"})
            assert answer.leg_index == events[i].leg_index

        again = await execute_on_alpaca(PLAN, FAST_RUN, **run)
        assert fake_alpaca.count("POST", "/v2/orders") == submits
        assert [leg.filled_qty for leg in again.legs] == [leg.filled_qty for leg in first.legs]
    finally:
        journal.close()


async def test_a_journaled_alpaca_run_records_the_feed_it_priced_from(
    fake_alpaca: FakeAlpacaServer, credentials_env: None, tmp_path: Path
):
    # Nothing recorded the feed, so `repeg resume` of a run started with --feed sip went on with IEX quotes.
    journal = open_journal(str(tmp_path / "runs.db"))
    try:
        await execute_on_alpaca(
            PLAN,
            FAST_RUN,
            broker="alpaca-paper",
            confirm=False,
            allow_closed=False,
            dry_run=False,
            feed="sip",
            run_id="rFEED",
            urls=AlpacaUrls.loopback(fake_alpaca.base_url, DataFeed.SIP),
            settings=FAST,
            journal=journal,
        )
        started = journal.events("rFEED")[0]
    finally:
        journal.close()
    assert isinstance(started, RunStarted)
    assert started.market == AlpacaFeedSource(feed="sip")
    assert market_line([started]) == "market data: Alpaca sip feed (live quotes, not stored)"


async def test_a_live_run_without_confirm_is_refused_before_any_request(
    fake_alpaca: FakeAlpacaServer, credentials_env
):
    with pytest.raises(LiveTradingNotConfirmedError) as info:
        await execute_on_alpaca(
            PLAN,
            FAST_RUN,
            broker="alpaca-live",
            confirm=False,
            allow_closed=False,
            dry_run=False,
            urls=AlpacaUrls.loopback(fake_alpaca.base_url),
            settings=FAST,
        )
    assert info.value.key == "--confirm"
    assert fake_alpaca.requests == []


async def test_an_unknown_alpaca_broker_name_is_a_config_error(fake_alpaca: FakeAlpacaServer):
    with pytest.raises(ConfigError) as info:
        await check_alpaca("alpaca-demo", None, print, urls=AlpacaUrls.loopback(fake_alpaca.base_url))
    assert info.value.key == "--broker"


def test_check_is_registered_and_refuses_an_unknown_broker_with_exit_code_2():
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:
        """Keeps the app a command group."""

    outcome = CliRunner().invoke(app, ["check", "--broker", "alpaca-demo"])
    assert outcome.exit_code == 2
    assert "--broker" in outcome.output


async def test_a_dry_run_sizes_the_buys_with_the_proceeds_of_the_sells_it_priced(
    fake_alpaca: FakeAlpacaServer, credentials_env: None
):
    """A rebalance funds its buys with its sells: a real run buys after the sells filled, so the dry run must
    not show the buys cut down to the cash held before them (here 2,000 of cash, 5 AAPL cost ~500, but the
    sale of 10 MSFT brings ~4,100 and a buy of 30 AAPL ~3,000)."""
    fake_alpaca.book.cash = Decimal(2_000)
    plan = Plan(
        source="test",
        kind=PlanKind.TRADES,
        trades=(
            TradeIntent(symbol="MSFT", side=Side.SELL, qty=Decimal(10)),
            TradeIntent(symbol="AAPL", side=Side.BUY, qty=Decimal(30)),
        ),
    )
    lines: list[str] = []
    await execute_on_alpaca(
        plan,
        FAST_RUN,
        broker="alpaca-paper",
        confirm=False,
        allow_closed=False,
        dry_run=True,
        run_id="rDRYFUND",
        echo=lines.append,
        urls=AlpacaUrls.loopback(fake_alpaca.base_url),
        settings=FAST,
    )
    aapl = [line for line in lines if "AAPL" in line]
    assert len(aapl) == 1
    assert Decimal(aapl[0].split()[2]) == Decimal(30)


class _ClosableReader:
    """An Alpaca reader for `check` that records whether it was closed; `fail` makes the plan's asset read fail."""

    name = "alpaca-paper"

    def __init__(self, *, fail: bool = False) -> None:
        self.closed = False
        self._fail = fail

    async def get_account(self) -> object:
        from repeg.domain.account import Account

        return Account(cash=Decimal(1), buying_power=Decimal(1), equity=Decimal(1))

    async def get_market_clock(self) -> object:
        from datetime import UTC, datetime

        from repeg.brokers.alpaca.mapping import MarketClock

        now = datetime(2024, 1, 2, 15, tzinfo=UTC)
        return MarketClock(timestamp=now, is_open=True, next_open=now, next_close=now)

    async def get_positions(self) -> list[object]:
        return []

    async def get_asset(self, symbol: str) -> object:
        from repeg.domain.account import Asset
        from repeg.errors import UnknownSymbolError

        if self._fail:
            raise UnknownSymbolError(symbol)
        return Asset(symbol=symbol, tradable=True, fractionable=True)

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("tradable", "code"), [(True, 0), (False, 2)], ids=["tradable", "not-tradable"])
def test_check_exits_2_when_a_plan_symbol_is_not_tradable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tradable: bool, code: int
) -> None:
    # It exited 0 after printing "tradable=NO": the plan `repeg run` refuses (exit 2) passed the check.
    from repeg.brokers.alpaca import factory
    from repeg.domain.account import Asset

    reader = _ClosableReader()

    async def get_asset(symbol: str) -> Asset:
        return Asset(symbol=symbol, tradable=tradable or symbol != "HALT", fractionable=True)

    monkeypatch.setattr(reader, "get_asset", get_asset)
    monkeypatch.setattr(factory, "build_readonly_broker", lambda *_args, **_kwargs: reader)
    plan = tmp_path / "plan.csv"
    plan.write_text("symbol,side,qty\nMSFT,buy,1\nHALT,sell,2\n", encoding="utf-8")
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    outcome = CliRunner().invoke(app, ["check", str(plan)])
    assert outcome.exit_code == code, outcome.output
    assert "asset HALT" in outcome.stdout
    expected = (
        "" if tradable else f"error: {plan}, row 3, field 'symbol' = 'HALT': not tradable at the broker\n"
    )
    assert outcome.stderr == expected


@pytest.mark.parametrize("fail", [False, True], ids=["read", "refused"])
async def test_check_closes_its_alpaca_client_whether_it_ends_or_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fail: bool
) -> None:
    """`repeg check` never closed the broker it built (its HTTP client, and its stream once started)."""
    from repeg.brokers.alpaca import factory

    reader = _ClosableReader(fail=fail)
    monkeypatch.setattr(factory, "build_readonly_broker", lambda *_args, **_kwargs: reader)
    plan = tmp_path / "plan.csv"
    plan.write_text("symbol,side,qty\nMSFT,buy,1\n", encoding="utf-8")
    try:
        await check_alpaca("alpaca-paper", plan, lambda _line: None)
    except RepegError:
        assert fail
    assert reader.closed


async def _stop_a_working_run_while_rate_limited(
    server: FakeAlpacaServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    window: float,
    limited_for: float,
    reads_fail: bool = False,
    reject_cancels: int = 0,
    grace: float | None = None,
) -> tuple[float, RepegError]:
    """Start a journaled buy on Alpaca whose order rests; once it works, rate-limit the account for
    `limited_for` s (`window` stands for Alpaca's one-minute rate window), send SIGINT and await the run: the
    seconds the stop took, and the error the run ended with (`RunStoppedError`, or the stop's own)."""
    import asyncio
    import signal
    import time
    from datetime import timedelta

    from repeg.brokers.alpaca import rest

    monkeypatch.setattr(rest, "_MAX_RATE_HOLD", timedelta(seconds=window))
    patient = FAST_RUN.model_copy(update={"fill_wait_seconds": 600.0, "max_total_wait": 600.0})
    if grace is not None:
        patient = patient.model_copy(update={"grace_window": grace})
    journal = open_journal(str(tmp_path / "j.db"))
    buy = Plan(
        source="test",
        kind=PlanKind.TRADES,
        trades=(TradeIntent(symbol="AAPL", side=Side.BUY, qty=Decimal(5)),),
    )
    run = asyncio.create_task(
        execute_on_alpaca(
            buy,
            patient,
            broker="alpaca-paper",
            confirm=False,
            allow_closed=False,
            dry_run=False,
            run_id="rSTOP",
            urls=AlpacaUrls.loopback(server.base_url),
            settings=FAST,
            journal=journal,
        )
    )
    try:
        await until(lambda: any(o.status == "new" for o in server.book.orders.values()))
        await asyncio.sleep(0.3)  # the engine has the answer: the order is working, not a submit in flight
        server.rate_limited_until = time.time() + limited_for
        if reads_fail:  # every order read answered 503 (the cancel, a DELETE, still works)
            server.fail("GET", "/v2/orders", 503, times=10_000)
        server.reject_cancels = reject_cancels
        started = time.monotonic()
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(RepegError) as info:
            await asyncio.wait_for(run, 30)
        return time.monotonic() - started, info.value
    finally:
        journal.close()


async def test_a_graceful_stop_under_a_persistent_429_ends_within_one_rate_window(
    fake_alpaca: FakeAlpacaServer,
    credentials_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """Ctrl-C while another client of the account keeps it rate limited: every request is held until the reset
    Alpaca announces (at most a minute per 429). The stop's first read then waited that long on every attempt
    (5 attempts: about 4 minutes) before the stop gave up, and each cancel as long again. A stop waits for a rate
    window's reset at most one window from its start; then it ends at once, saying what it could not cancel (the run
    stays resumable, and the stop exits as one: the read failing first no longer ends it before any cancel)."""
    from repeg.errors import RunStoppedError

    window = 0.25
    took, error = await _stop_a_working_run_while_rate_limited(
        fake_alpaca, tmp_path, monkeypatch, window=window, limited_for=3600
    )
    assert isinstance(error, RunStoppedError)
    assert "cancel FAILED for: " in str(error)
    assert took < 2 * window


async def test_a_graceful_stop_whose_reads_fail_still_cancels_the_working_order(
    fake_alpaca: FakeAlpacaServer,
    credentials_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """Ctrl-C while Alpaca answers every order read 503: the stop's first reconcile read failed after the retries
    and the stop ended there (exit 4), its order left working at Alpaca, unmanaged. The cancel still goes out."""
    from repeg.errors import RunStoppedError

    _, error = await _stop_a_working_run_while_rate_limited(
        fake_alpaca, tmp_path, monkeypatch, window=0.25, limited_for=0, reads_fail=True
    )
    assert isinstance(error, RunStoppedError)
    assert [o.status for o in fake_alpaca.book.orders.values()] == ["canceled"]


async def test_a_graceful_stop_requests_again_a_cancel_refused_after_it_was_accepted(
    fake_alpaca: FakeAlpacaServer,
    credentials_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """Alpaca accepts the stop's cancel (204), then refuses it by stream (`order_cancel_rejected`, the order back
    in `new`). The stop only polled it until its grace window passed: the order stayed working, unmanaged, while
    the summary listed it among the cancelled orders. Within the window the cancel is requested again."""
    from repeg.errors import RunStoppedError

    _, error = await _stop_a_working_run_while_rate_limited(
        fake_alpaca, tmp_path, monkeypatch, window=0.25, limited_for=0, reject_cancels=1, grace=1.0
    )
    assert isinstance(error, RunStoppedError)
    assert [o.status for o in fake_alpaca.book.orders.values()] == ["canceled"]


async def test_a_graceful_stop_still_waits_out_a_rate_window_that_resets_within_it(
    fake_alpaca: FakeAlpacaServer,
    credentials_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """The bound does not weaken an ordinary 429: a reset within a window of the stop is waited for, and the
    stop's cancel then reaches Alpaca (the fake announces its reset rounded up to a whole second)."""
    from repeg.errors import RunStoppedError

    _, error = await _stop_a_working_run_while_rate_limited(
        fake_alpaca, tmp_path, monkeypatch, window=2.5, limited_for=0.2
    )
    assert isinstance(error, RunStoppedError)
    assert [o.status for o in fake_alpaca.book.orders.values()] == ["canceled"]


async def test_a_confirmed_paper_run_pointed_at_the_live_host_is_journaled_as_live(
    fake_alpaca: FakeAlpacaServer, credentials_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`build_alpaca("paper", urls=<live trading host>, confirm_live=True)` trades real money (a17cbf04 demands the
    confirmation), but the broker was named by the mode: the run was journaled as `alpaca-paper`, so `repeg runs`
    and `show` told of a paper run, and its resume needed no `--confirm`. The live host is reached here through the
    fake (the trading client's url is redirected to it; nothing leaves 127.0.0.1)."""
    from alpaca.trading.client import TradingClient

    from repeg.brokers.alpaca import factory

    def to_the_fake(key_id: str, secret: str, *, paper: bool, url_override: str) -> TradingClient:
        assert (url_override, paper) == ("https://api.alpaca.markets", False)
        return TradingClient(key_id, secret, paper=paper, url_override=fake_alpaca.base_url)

    monkeypatch.setattr(factory, "TradingClient", to_the_fake)
    urls = AlpacaUrls.loopback(fake_alpaca.base_url).model_copy(
        update={"trading": "https://api.alpaca.markets"}
    )
    journal = open_journal(str(tmp_path / "runs.db"))
    try:
        await execute_on_alpaca(
            PLAN,
            FAST_RUN,
            broker="alpaca-paper",
            confirm=True,
            allow_closed=False,
            dry_run=False,
            run_id="rVENUE",
            urls=urls,
            settings=FAST,
            journal=journal,
        )
        started = journal.events("rVENUE")[0]
    finally:
        journal.close()
    assert isinstance(started, RunStarted)
    assert started.broker == "alpaca-live"
    assert fake_alpaca.count("POST", "/v2/orders") >= 2  # it did trade there
