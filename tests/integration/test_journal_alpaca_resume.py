"""Resume on Alpaca: a run killed mid-flight is finished through a fresh adapter against the loopback fake.

The fake Alpaca keeps its orders and positions across the "crash" (it is not the process that dies), like the
real one. After the resume every leg is filled exactly once and no client order id names two orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from tests.fakes.alpaca_fixtures import FAST, connect, credentials_for, default_book
from tests.fakes.alpaca_matching import FakeOrder
from tests.fakes.alpaca_server import FakeAlpacaServer
from tests.integration.test_alpaca_orders import limit
from typer.testing import CliRunner

from repeg.brokers.alpaca.adapter import AlpacaBroker
from repeg.brokers.alpaca.settings import AlpacaUrls, DataFeed
from repeg.cli.app import build_app
from repeg.cli.exit_codes import ExitCode, exit_code_for_error
from repeg.cli.journal_run import journaled_session
from repeg.config import ExecutionConfig, classic_ladder
from repeg.domain.events import (
    AlpacaFeedSource,
    LegFinished,
    MarketSource,
    OrderFailed,
    RunEnded,
    RunEvent,
    RunStarted,
)
from repeg.domain.orders import Side
from repeg.domain.plan import LegSpec, Plan, PlanKind, TradeIntent
from repeg.domain.run import RunState, fold_run
from repeg.engine.clock import RealClock
from repeg.engine.runner import run_execution
from repeg.errors import JournalError, RunIdInUseError
from repeg.journal.faults import point_of
from repeg.journal.sqlite import SqliteJournal
from repeg.market.alpaca_feed import AlpacaQuoteFeed
from repeg.report.result import ExecutionResult

CONFIG = ExecutionConfig(
    fill_wait_seconds=0.15,
    wait_between_checks=0.05,
    max_total_wait=5.0,
    grace_window=0.05,
    quote_max_age=600.0,
    quote_wait=1.0,
)
#: A ladder of one re-peg step, then the escalation's market order, within 0.6 s: a replace and an escalation
#: both happen before the run ends.
ONE_STEP: dict[str, Any] = {
    "repeg_steps": (Decimal("0.5"),),
    "wait_between_checks": 0.05,
    "grace_window": 0.05,
    "quote_max_age": 600.0,
    "quote_wait": 1.0,
}
ONE_STEP_LADDER = classic_ladder(**ONE_STEP, fill_wait_seconds=0.3, max_total_wait=0.6)
#: `ONE_STEP_LADDER`'s re-peg step, due well before its stall or its escalation: under ONE_STEP_LADDER a loop
#: starved 0.6 s after the submit (a loaded machine) escalated first, and the run never journaled the replace.
REPLACE_FIRST = classic_ladder(**ONE_STEP, fill_wait_seconds=1.5, max_total_wait=600.0)
SPECS = [
    LegSpec(index=0, symbol="MSFT", side=Side.SELL, qty=Decimal(20)),
    LegSpec(index=1, symbol="AAPL", side=Side.BUY, qty=Decimal(30)),
]
PLAN = Plan(
    source="alpaca.csv",
    kind=PlanKind.TRADES,
    trades=tuple(TradeIntent(symbol=s.symbol, side=s.side, qty=s.qty) for s in SPECS),
)


class Crash(BaseException):
    """Stands for SIGKILL: the engine's error handling never sees it."""


class CrashAt:
    def __init__(self, journal: SqliteJournal, point: str) -> None:
        self._journal, self._point = journal, point
        self.crashed = False

    async def emit(self, event: RunEvent) -> None:
        if point_of(event) == self._point:
            self.crashed = True
            raise Crash
        await self._journal.emit(event)


@pytest.mark.parametrize("point", ["submit-ack", "fill", "replace-intent"])
async def test_a_crashed_alpaca_run_resumes_to_completion_without_duplicates(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, point: str
) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    crash = CrashAt(journal, point)
    await _crashed(fake_alpaca, crash)

    broker, feed = await connect(fake_alpaca)
    try:
        result = await journaled_session(
            PLAN, CONFIG, "rA", journal=journal, broker=broker, feed=feed, clock=RealClock()
        )
    finally:
        await feed.aclose()
        await broker.aclose()
    state = fold_run(journal.events("rA"))
    journal.close()

    assert crash.crashed
    assert result.status.value == "completed"
    assert state.status == "completed"
    _assert_each_leg_filled_once(fake_alpaca, state)


def _assert_each_leg_filled_once(server: FakeAlpacaServer, state: RunState) -> None:
    """Each leg of run 'rA' filled in full at the broker, as its journal says; no client order id names two orders,
    and no order of the run is left open (a resume that took a live order for one never sent, and sent the leg
    again, left it working: a second fill to come)."""
    ours = [o for o in server.book.orders.values() if o.client_order_id.startswith("rA-")]
    assert set(Counter(o.client_order_id for o in ours).values()) == {1}
    assert not any(o.is_open for o in ours)
    for leg in state.legs:
        at_broker = sum(
            (o.filled_qty for o in ours if o.client_order_id.startswith(f"rA-L{leg.index:04d}-")), Decimal(0)
        )
        assert leg.filled_qty == leg.qty == at_broker


# --- `repeg resume` on Alpaca: the closed-market refusal and the quote feed of a fresh run ----------------------


@pytest.fixture
def threaded_alpaca() -> Iterator[FakeAlpacaServer]:
    """The fake Alpaca on an event loop of its own thread: `repeg resume` runs its own loop in this one."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = FakeAlpacaServer(book=default_book())
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _on_the_fake(server: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Point every `build_alpaca` at `server` (with the feed asked); the keyword arguments each call was given."""
    from repeg.brokers.alpaca import factory

    real = factory.build_alpaca
    seen: list[dict[str, object]] = []

    async def build(mode: str, **kwargs: Any) -> tuple[AlpacaBroker, AlpacaQuoteFeed]:
        seen.append(dict(kwargs))
        urls = AlpacaUrls.loopback(server.base_url, DataFeed(kwargs["feed"]))
        kwargs.update(credentials=credentials_for(server), urls=urls, settings=FAST)
        return await real(mode, **kwargs)

    monkeypatch.setattr(factory, "build_alpaca", build)
    return seen


def _interrupted(tmp_path: Path, market: MarketSource | None = None) -> list[str]:
    """A journal holding run 'rR' on alpaca-paper, started (recording `market`) and interrupted; resume's args."""
    journal = SqliteJournal(tmp_path / "j.db")
    started = RunStarted(
        run_id="rR",
        ts=datetime(2026, 3, 2, 15, tzinfo=UTC),
        correlation_id="rR",
        plan=PLAN,
        config={},
        broker="alpaca-paper",
        code_version="test",
        market=market,
    )
    asyncio.run(journal.emit(started))
    journal.close()
    fast = tmp_path / "fast.toml"
    fast.write_text(
        "[execution]\nfill_wait_seconds = 0.15\nwait_between_checks = 0.05\nmax_total_wait = 1.0\n"
        "grace_window = 0.05\nquote_max_age = 600.0\nquote_wait = 1.0\n",
        encoding="utf-8",
    )
    return ["resume", "rR", "--journal", str(tmp_path / "j.db"), "--config", str(fast)]


def _resume(args: list[str]) -> Result:
    return CliRunner().invoke(build_app(), args)


def test_a_resume_on_a_closed_market_is_refused_like_a_fresh_run(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # resume always allowed a closed market: it queued the run's DAY orders for the open, unasked.
    seen = _on_the_fake(threaded_alpaca, monkeypatch)
    threaded_alpaca.book.market_open = False
    result = _resume(_interrupted(tmp_path))
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert "--allow-closed" in result.stderr
    assert [call["allow_closed"] for call in seen] == [False]
    assert threaded_alpaca.count("POST", "/v2/orders") == 0


def test_a_resume_with_allow_closed_queues_its_orders_on_a_closed_market(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = _on_the_fake(threaded_alpaca, monkeypatch)
    threaded_alpaca.book.market_open = False
    result = _resume([*_interrupted(tmp_path), "--allow-closed"])
    assert [call["allow_closed"] for call in seen] == [True], result.stderr
    assert threaded_alpaca.count("POST", "/v2/orders") > 0


def test_a_resume_with_allow_closed_says_on_stderr_that_its_orders_queue_as_a_fresh_run_does(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A fresh `repeg run --allow-closed` prints "market closed: DAY orders queue until ..."; a resume only logged it.
    _on_the_fake(threaded_alpaca, monkeypatch)
    threaded_alpaca.book.market_open = False
    result = _resume([*_interrupted(tmp_path), "--allow-closed", "--json"])
    assert "market closed: DAY orders queue until " in result.stderr
    assert "market closed" not in result.stdout  # --json: stdout is the result alone


def test_a_run_id_resumed_by_run_with_allow_closed_says_on_stderr_that_its_orders_queue(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `repeg run --broker alpaca-paper --run-id ID` of a known unfinished ID resumes it: it only logged this too.
    _on_the_fake(threaded_alpaca, monkeypatch)
    threaded_alpaca.book.market_open = False
    resume_args = _interrupted(tmp_path)
    plan = tmp_path / "plan.csv"
    plan.write_text("symbol,side,qty\nMSFT,sell,20\nAAPL,buy,30\n", encoding="utf-8")
    args = ["run", str(plan), "--broker", "alpaca-paper", "--run-id", "rR", *resume_args[2:]]
    result = _resume([*args, "--allow-closed", "--json"])
    assert "resuming it" in result.stderr
    assert "market closed: DAY orders queue until " in result.stderr
    assert "market closed" not in result.stdout


def test_a_resume_reads_the_feed_given_with_feed(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # resume always priced from IEX: a run started with --feed sip went on with other quotes than it began with.
    seen = _on_the_fake(threaded_alpaca, monkeypatch)
    result = _resume([*_interrupted(tmp_path), "--feed", "sip"])
    assert result.exit_code == ExitCode.OK, result.stderr
    assert [call["feed"] for call in seen] == ["sip"]


def test_a_resume_feed_that_is_not_alpacas_is_refused_naming_it(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = _on_the_fake(threaded_alpaca, monkeypatch)
    result = _resume([*_interrupted(tmp_path), "--feed", "nasdaq"])
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert result.stderr.startswith("error: config --feed='nasdaq': ")
    assert seen == []


@pytest.mark.parametrize(("asked", "read"), [([], "sip"), (["--feed", "iex"], "iex")])
def test_a_resume_reads_the_feed_the_run_recorded_unless_another_is_given(
    threaded_alpaca: FakeAlpacaServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    asked: list[str],
    read: str,
) -> None:
    seen = _on_the_fake(threaded_alpaca, monkeypatch)
    result = _resume([*_interrupted(tmp_path, AlpacaFeedSource(feed="sip")), *asked])
    assert result.exit_code == ExitCode.OK, result.stderr
    assert [call["feed"] for call in seen] == [read]


def test_a_resume_of_a_run_that_recorded_no_feed_reads_iex(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = _on_the_fake(threaded_alpaca, monkeypatch)
    result = _resume(_interrupted(tmp_path))
    assert result.exit_code == ExitCode.OK, result.stderr
    assert [call["feed"] for call in seen] == ["iex"]


# --- a run that ended: answered from the journal, or its order left open closed ---------------------------------


def _run_args(
    tmp_path: Path, resume_args: list[str], plan_text: str = "symbol,side,qty\nMSFT,sell,20\nAAPL,buy,30\n"
) -> list[str]:
    plan = tmp_path / "plan.csv"
    plan.write_text(plan_text, encoding="utf-8")
    return ["run", str(plan), "--broker", "alpaca-paper", "--run-id", "rR", *resume_args[2:]]


def test_a_run_that_ended_sending_nothing_is_answered_from_the_journal_not_run_again(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """README: an id already in the journal prints that run's journaled result if it finished. A run on Alpaca
    that ended without announcing an order (every trade skipped, or it failed first) was run again: its plan sold
    and bought under the old id, and neither `run --run-id` nor `resume` said it had ended."""
    seen = _on_the_fake(threaded_alpaca, monkeypatch)
    resume_args = _interrupted(tmp_path)
    journal = SqliteJournal(tmp_path / "j.db")
    ended = RunEnded(
        run_id="rR", ts=datetime(2026, 3, 2, 16, tzinfo=UTC), correlation_id="rR", status="failed"
    )
    asyncio.run(journal.emit(ended))
    journal.close()
    for args in (
        _run_args(tmp_path, resume_args),
        resume_args,
    ):
        result = _resume(args)
        assert result.exit_code == ExitCode.FAILED, result.stderr
    assert (seen, threaded_alpaca.count("POST", "/v2/orders")) == ([], 0)


def _ended_with_its_order_open(
    server: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[list[str], FakeOrder, Result]:
    """Every cancel of the sell is accepted and then refused by the stream, and every replace refused: run 'rR'
    ends `failed` (nothing sold) with its order open at the fake Alpaca, which takes cancels again afterwards.
    resume's args, that order, and the run's outcome."""
    _on_the_fake(server, monkeypatch)
    resume_args = _interrupted(tmp_path)
    server.reject_cancels = 10**6
    server.fail("PATCH", "/v2/orders", 422, times=10**6)
    ran = _resume(_run_args(tmp_path, resume_args))
    (order,) = server.book.orders.values()
    assert order.is_open, ran.stderr
    server.reject_cancels = 0
    server.faults.clear()
    return resume_args, order, ran


def test_resume_of_a_run_that_ended_with_its_order_open_cancels_it_and_sends_nothing(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every cancel of the sell is accepted and then refused by the stream, and every replace refused: the run
    ends `failed` (nothing sold) with the order open at Alpaca. `repeg resume` answered the journaled result and
    left it working: the user had to cancel it by hand. It is cancelled now, no order is sent, and the run stays
    `failed`."""
    resume_args, order, ran = _ended_with_its_order_open(threaded_alpaca, monkeypatch, tmp_path)
    assert ran.exit_code == ExitCode.FAILED, ran.stderr
    posted = threaded_alpaca.count("POST", "/v2/orders")
    result = _resume(resume_args)
    assert order.status == "canceled", result.stderr
    assert threaded_alpaca.count("POST", "/v2/orders") == posted == 1
    assert result.exit_code == ExitCode.FAILED, result.stderr


def test_resume_of_a_run_that_ended_with_its_order_open_cancels_it_on_a_closed_market_without_allow_closed(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Closing an ended run sends no order, only cancels, which Alpaca takes while the market is closed; the
    closed-market refusal ('pass --allow-closed to queue DAY orders') stopped it, so an order queued for the open
    could not be cancelled then without a flag that says orders will be queued."""
    resume_args, order, _ = _ended_with_its_order_open(threaded_alpaca, monkeypatch, tmp_path)
    threaded_alpaca.book.market_open = False
    result = _resume(resume_args)
    assert order.status == "canceled", result.stderr
    assert result.exit_code == ExitCode.FAILED, result.stderr
    assert "DAY orders queue" not in result.stderr
    assert threaded_alpaca.count("POST", "/v2/orders") == 1


def test_a_run_that_ended_with_its_order_open_asked_on_the_simulator_is_refused_naming_its_broker(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """README: an unfinished run of another broker, asked on the simulator, is refused naming its broker, since its
    orders may still work there. An Alpaca run that ended with its order still open there, asked without
    `--broker`, was answered with its journaled result instead: nothing said the order was still working, nor that
    a resume on alpaca-paper closes it."""
    resume_args, order, _ = _ended_with_its_order_open(threaded_alpaca, monkeypatch, tmp_path)
    on_the_simulator = [
        arg for arg in _run_args(tmp_path, resume_args) if arg not in ("--broker", "alpaca-paper")
    ]
    result = _resume(on_the_simulator)
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert "alpaca-paper" in result.stderr
    assert order.is_open


# --- another run's order under one of the journaled client order ids -------------------------------------------


async def _session(
    server: FakeAlpacaServer, journal: SqliteJournal, plan: Plan = PLAN, config: ExecutionConfig = CONFIG
) -> ExecutionResult:
    """`journaled_session` of run 'rA' through a fresh adapter (a new process) on `server`, closed after."""
    broker, feed = await connect(server)
    try:
        return await journaled_session(
            plan, config, "rA", journal=journal, broker=broker, feed=feed, clock=RealClock()
        )
    finally:
        await feed.aclose()
        await broker.aclose()


class CrashAfter(CrashAt):
    """Journals the event of `point`, then stands for SIGKILL: the broker call it announced is never made."""

    async def emit(self, event: RunEvent) -> None:
        await self._journal.emit(event)
        if point_of(event) == self._point:
            self.crashed = True
            raise Crash


async def _submit_announced_then_taken(fake_alpaca: FakeAlpacaServer, journal: SqliteJournal) -> str:
    """Run 'rA' journals its first submit (leg 0: a MSFT sell of 20, 'rA-L0000-A00') and dies before sending it;
    another run under the same run id (another journal) then sends an AAPL buy of 5 under that id. Its order id."""
    broker, feed = await connect(fake_alpaca)
    with contextlib.suppress(Crash):
        await run_execution(
            SPECS,
            [],
            broker,
            feed,
            RealClock(),
            CONFIG,
            run_id="rA",
            sinks=[CrashAfter(journal, "submit-intent")],
        )
    try:
        theirs = await broker.submit_order(limit("rA-L0000-A00", Side.BUY, "5", "90.00", symbol="AAPL"))
    finally:
        await feed.aclose()
        await broker.aclose()
    return theirs.order_id


def _conflicts(journal: SqliteJournal) -> list[OrderFailed]:
    events = journal.events("rA")
    return [e for e in events if isinstance(e, OrderFailed) and e.error == "ClientOrderIdConflictError"]


async def test_a_resume_does_not_adopt_another_runs_order_under_a_journaled_client_order_id(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path
) -> None:
    """A resumed process has no record of what it sent but the journal: its lookup of the journaled submit's id
    found the other run's order (another symbol, side and quantity) and took it, and its fills, for the leg's."""
    journal = SqliteJournal(tmp_path / "j.db")
    theirs = await _submit_announced_then_taken(fake_alpaca, journal)
    await _session(fake_alpaca, journal)
    state = fold_run(journal.events("rA"))
    conflicts = _conflicts(journal)
    journal.close()
    assert all(theirs not in leg.order_ids for leg in state.legs)
    assert fake_alpaca.book.orders[theirs].is_open
    (conflict,) = conflicts
    assert all(word in conflict.message for word in ("rA-L0000-A00", theirs, "symbol", "side", "qty"))


async def test_closing_an_ended_run_does_not_cancel_another_runs_order_under_its_client_order_id(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path
) -> None:
    """A run that ended with a submit of unknown outcome is closed by resume: the order found under that submit's
    id, another run's, was adopted and cancelled (the other run's order, at the user's account)."""
    journal = SqliteJournal(tmp_path / "j.db")
    theirs = await _submit_announced_then_taken(fake_alpaca, journal)
    ts = datetime(2026, 3, 2, 16, tzinfo=UTC)
    await journal.emit(RunEnded(run_id="rA", ts=ts, correlation_id="rA", status="failed"))
    await _session(fake_alpaca, journal)
    state = fold_run(journal.events("rA"))
    conflicts = _conflicts(journal)
    journal.close()
    assert fake_alpaca.book.orders[theirs].is_open
    assert all(theirs not in leg.order_ids for leg in state.legs)
    assert [c.client_order_id for c in conflicts] == ["rA-L0000-A00"]


async def test_a_fresh_run_under_a_run_id_already_used_on_the_account_is_refused_before_any_order(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path
) -> None:
    """Nothing at the start of a fresh run asked whether its run id already had orders at Alpaca (another journal
    under the same --run-id, or a deleted one): the run sent its orders under ids the other run's orders hold. The
    first id it would use (leg 0, attempt 0) is looked up: found, the run is refused (exit 2), nothing sent."""
    broker, feed = await connect(fake_alpaca)
    try:
        theirs = (await broker.submit_order(limit("rA-L0000-A00", Side.BUY, "5", "90.00"))).order_id
    finally:
        await feed.aclose()
        await broker.aclose()
    journal = SqliteJournal(tmp_path / "j.db")
    with pytest.raises(RunIdInUseError) as refused:
        await _session(fake_alpaca, journal)
    started = journal.has_run("rA")
    journal.close()
    assert fake_alpaca.count("POST", "/v2/orders") == 1
    assert not started
    assert exit_code_for_error(refused.value) is ExitCode.BAD_INPUT
    message = str(refused.value)
    assert all(words in message for words in ("rA", "already used", theirs, "--run-id", "resume"))


def test_repeg_run_under_a_run_id_already_used_on_the_account_exits_2_saying_so(
    threaded_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The refusal on the command line: exit 2 (bad input, nothing sent), stderr naming the run id and the way
    out, and the journal (new) holds no run of that id."""
    _on_the_fake(threaded_alpaca, monkeypatch)

    async def taken() -> None:
        broker, feed = await connect(threaded_alpaca)
        try:
            await broker.submit_order(limit("rN-L0000-A00", Side.BUY, "5", "90.00"))
        finally:
            await feed.aclose()
            await broker.aclose()

    asyncio.run(taken())
    plan = tmp_path / "plan.csv"
    plan.write_text("symbol,side,qty\nMSFT,sell,20\n", encoding="utf-8")
    journal = tmp_path / "j.db"
    result = _resume(
        ["run", str(plan), "--broker", "alpaca-paper", "--run-id", "rN", "--journal", str(journal)]
    )
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert "run id rN was already used on this account" in result.stderr
    assert threaded_alpaca.count("POST", "/v2/orders") == 1


async def test_resuming_an_ended_run_again_journals_nothing_for_another_runs_order_under_its_given_up_submit(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path
) -> None:
    """Leg 0 ended given up with its submit's outcome unknown, and the order under its id is another run's: each
    resume journaled that refusal (a change to nothing: the leg had ended) and ended the run again, so the journal
    grew at every look. The other run's order is left alone, and a second resume journals nothing."""
    journal = SqliteJournal(tmp_path / "j.db")
    theirs = await _submit_announced_then_taken(fake_alpaca, journal)
    ts = datetime(2026, 3, 2, 16, tzinfo=UTC)
    given_up = LegFinished(
        run_id="rA", ts=ts, correlation_id="rA-L0000", leg_index=0, status="failed", reason="gave up"
    )
    await journal.emit(given_up)
    await journal.emit(RunEnded(run_id="rA", ts=ts, correlation_id="rA", status="failed"))
    counts = []
    for _ in range(2):
        await _session(fake_alpaca, journal)
        counts.append(len(journal.events("rA")))
    journal.close()
    assert fake_alpaca.book.orders[theirs].is_open
    assert counts[0] == counts[1]


async def _crashed(
    server: FakeAlpacaServer,
    crash: CrashAt,
    specs: list[LegSpec] = SPECS,
    config: ExecutionConfig = CONFIG,
    plan: Plan = PLAN,
) -> None:
    """Run 'rA' on `server` until `crash` stands for SIGKILL (its adapter closed after, as a dead process's)."""
    broker, feed = await connect(server)
    try:
        with contextlib.suppress(Crash):
            await run_execution(
                specs, [], broker, feed, RealClock(), config, run_id="rA", sinks=[crash], plan=plan
            )
    finally:
        await feed.aclose()
        await broker.aclose()


async def test_a_resume_retries_its_lookup_of_a_journaled_submit_through_a_transient_503(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path
) -> None:
    """Resume asks for each journaled order it never heard of by client order id, retried as any read. Telling the
    adapter what was sent under it (5e4f8f4) marked the id as a submit of this process of unknown outcome, whose
    lookup is one request (the engine asks again each check): a single 503 at that lookup ended the resume failed."""
    journal = SqliteJournal(tmp_path / "j.db")
    await _crashed(fake_alpaca, CrashAt(journal, "submit-ack"))
    fake_alpaca.fail("GET", "/v2/orders:by_client_order_id", 503, times=1)
    result = await _session(fake_alpaca, journal)
    journal.close()
    assert fake_alpaca.count("GET", "/v2/orders:by_client_order_id") >= 2
    assert result.status.value == "completed"


class CrashAtNth(CrashAt):
    """Stands for SIGKILL at the `nth` event of `point` (the broker call it answers was made, not journaled)."""

    def __init__(self, journal: SqliteJournal, point: str, nth: int) -> None:
        super().__init__(journal, point)
        self._left = nth

    async def emit(self, event: RunEvent) -> None:
        if point_of(event) == self._point:
            self._left -= 1
            if self._left == 0:
                self.crashed = True
                raise Crash
        await self._journal.emit(event)


@pytest.mark.parametrize(("point", "nth"), [("replace-ack", 1), ("submit-ack", 2)])
async def test_a_resume_after_a_replace_or_an_escalation_ack_takes_its_own_order_as_its_own(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, point: str, nth: int
) -> None:
    """The journal's intent of a replace (its quantity unchecked) or of the escalation's market order (no limit)
    is what resume expects under its id: the order this run sent there must not be refused as another run's."""
    config = ONE_STEP_LADDER
    journal = SqliteJournal(tmp_path / "j.db")
    crash = CrashAtNth(journal, point, nth)
    plan = Plan(
        source="alpaca.csv",
        kind=PlanKind.TRADES,
        trades=(TradeIntent(symbol="AAPL", side=Side.BUY, qty=Decimal(30)),),
    )
    spec = [LegSpec(index=0, symbol="AAPL", side=Side.BUY, qty=Decimal(30))]
    await _crashed(fake_alpaca, crash, spec, config, plan)
    result = await _session(fake_alpaca, journal, plan, config)
    conflicts = _conflicts(journal)
    journal.close()
    assert crash.crashed
    assert conflicts == []
    assert result.status.value == "completed"
    assert sum((o.filled_qty for o in fake_alpaca.book.orders.values()), Decimal(0)) == Decimal(30)


async def test_a_fresh_run_whose_run_id_lookup_meets_an_unreachable_broker_fails_typed_before_any_order(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path
) -> None:
    """The first client order id's lookup is retried as any read; a broker that stays unreachable fails the run
    with `BrokerUnavailableError` (exit 4, as its first submit would), never taken for an unused run id: nothing is
    sent and no run is journaled, so the same command can be given again."""
    from repeg.errors import BrokerUnavailableError

    fake_alpaca.fail("GET", "/v2/orders:by_client_order_id", 503, times=50)
    journal = SqliteJournal(tmp_path / "j.db")
    with pytest.raises(BrokerUnavailableError) as failed:
        await _session(fake_alpaca, journal)
    started = journal.has_run("rA")
    journal.close()
    assert (started, fake_alpaca.count("POST", "/v2/orders")) == (False, 0)
    assert exit_code_for_error(failed.value) is ExitCode.FAILED


async def test_a_resume_refuses_another_runs_order_under_a_journaled_replace_and_the_leg_goes_on(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path
) -> None:
    """A replace journaled and never sent (the process died first), and another run's order under its id: resume
    records the replace refused (its error names the id), the leg works on with its own order and completes, and
    the other run's order is neither counted nor cancelled."""
    config = ONE_STEP_LADDER
    plan = Plan(
        source="alpaca.csv",
        kind=PlanKind.TRADES,
        trades=(TradeIntent(symbol="AAPL", side=Side.BUY, qty=Decimal(30)),),
    )
    spec = [LegSpec(index=0, symbol="AAPL", side=Side.BUY, qty=Decimal(30))]
    journal = SqliteJournal(tmp_path / "j.db")
    crash = CrashAfter(journal, "replace-intent")
    await _crashed(fake_alpaca, crash, spec, REPLACE_FIRST, plan)
    # Else 'rA-L0000-A01' named the run's own escalation, which the order below would collide with.
    assert crash.crashed
    broker, feed = await connect(fake_alpaca)
    try:
        theirs = (await broker.submit_order(limit("rA-L0000-A01", Side.SELL, "5", "500.00"))).order_id
    finally:
        await feed.aclose()
        await broker.aclose()
    result = await _session(fake_alpaca, journal, plan, config)
    state = fold_run(journal.events("rA"))
    conflicts = _conflicts(journal)
    journal.close()
    assert [(c.action.value, c.client_order_id) for c in conflicts] == [("replace", "rA-L0000-A01")]
    assert result.status.value == "completed"
    assert fake_alpaca.book.orders[theirs].is_open
    assert all(theirs not in leg.order_ids for leg in state.legs)
    ours = [o for o in fake_alpaca.book.orders.values() if o.id != theirs]
    assert sum((o.filled_qty for o in ours), Decimal(0)) == Decimal(30)


# --- the journal failing mid-run: the orders the run knows working are cancelled, unjournaled, and named ---------


class JournalFailsAt:
    """Stands for a journal whose writer broke (disk full): from the event of `point` on, every write fails."""

    def __init__(self, journal: SqliteJournal, point: str) -> None:
        self.journal, self.point = journal, point
        self.failed = False
        self.written_after: list[RunEvent] = []
        self._emit = journal.emit

    async def emit(self, event: RunEvent) -> None:
        self.failed = self.failed or point_of(event) == self.point
        if self.failed:
            self.written_after.append(event)
            raise JournalError("journal write failed: disk full")
        await self._emit(event)


async def test_a_journal_failure_cancels_the_working_order_and_names_it(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal broke as the first submit was accepted: the run stopped (right), but left that order working at
    the broker, unmanaged, since no cancel intent could be journaled, and the error did not say it was live."""
    journal = SqliteJournal(tmp_path / "j.db")
    failing = JournalFailsAt(journal, "submit-ack")
    monkeypatch.setattr(journal, "emit", failing.emit)
    with pytest.raises(JournalError) as raised:
        await _session(fake_alpaca, journal)
    committed = journal.events("rA")
    journal.close()
    ours = [o for o in fake_alpaca.book.orders.values() if o.client_order_id.startswith("rA-")]
    assert ours
    assert not any(o.is_open for o in ours)
    assert all(f"{o.id} ({o.symbol})" in str(raised.value) for o in ours)
    assert not [e for e in committed if point_of(e) in ("cancel-intent", "cancel-confirm")]
    assert [type(e).__name__ for e in failing.written_after] == ["OrderAccepted", "RunEnded"]


async def test_a_journal_failure_names_the_order_whose_cancel_the_broker_refused_as_maybe_working(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    monkeypatch.setattr(journal, "emit", JournalFailsAt(journal, "submit-ack").emit)
    fake_alpaca.fail("DELETE", "/v2/orders", 422, times=10**6)
    with pytest.raises(JournalError) as raised:
        await _session(fake_alpaca, journal)
    journal.close()
    (ours,) = [o for o in fake_alpaca.book.orders.values() if o.client_order_id.startswith("rA-")]
    assert ours.is_open
    assert f"cancel FAILED for: {ours.id} (MSFT)" in str(raised.value)
    assert exit_code_for_error(raised.value) is ExitCode.FAILED


async def test_a_journal_whose_writer_broke_still_names_the_cancelled_order_once_it_is_closed(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal closed after the run (`opened_journal`, as `repeg run` has it) raised its writer's error again,
    which replaced the one naming the orders cancelled: stderr never said which orders had been live."""
    from repeg.cli.journal_run import opened_journal

    commit = SqliteJournal._commit_batch
    broken: list[bool] = []

    def disk_full(self: SqliteJournal, records: Any, durable: bool) -> None:
        if broken or any(r.kind == "order_accepted" for r in records):
            broken.append(True)
            raise OSError(28, "No space left on device")
        commit(self, records, durable)

    monkeypatch.setattr(SqliteJournal, "_commit_batch", disk_full)
    with pytest.raises(JournalError) as raised, opened_journal(str(tmp_path / "j.db")) as journal:
        await _session(fake_alpaca, journal)
    (ours,) = [o for o in fake_alpaca.book.orders.values() if o.client_order_id.startswith("rA-")]
    assert not ours.is_open
    assert f"cancelled orders: {ours.id} (MSFT)" in str(raised.value)
    # The close's own error, suppressed, is that failure again ("writer failed earlier: ..."): the user is told it.
    assert "No space left on device" in str(raised.value)


async def test_a_submit_intent_the_journal_refused_is_not_reported_as_sent(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal failed writing the first submit's intent, so that order was never sent (write-ahead): the
    unjournaled stop took the kept intent for a submit sent and unanswered, and named it 'may be working'."""
    journal = SqliteJournal(tmp_path / "j.db")
    failing = JournalFailsAt(journal, "submit-intent")
    monkeypatch.setattr(journal, "emit", failing.emit)
    with pytest.raises(JournalError) as raised:
        await _session(fake_alpaca, journal)
    journal.close()
    assert not [o for o in fake_alpaca.book.orders.values() if o.client_order_id.startswith("rA-")]
    assert "no answer from the broker" not in str(raised.value)


async def test_a_run_another_process_works_is_refused_without_cancelling_or_reading_any_order(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path
) -> None:
    """A JournalError at start-up (the run claimed elsewhere) is no journal failing mid-run: nothing of the run is
    cancelled nor asked of the broker (guards 08f61d8: the unjournaled stop runs only once the run is under way)."""
    holder = SqliteJournal(tmp_path / "j.db")
    holder.claim("rA")
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        with pytest.raises(JournalError, match="rA") as raised:
            await _session(fake_alpaca, journal)
    finally:
        journal.close()
        holder.close()
    assert not [path for _, path in fake_alpaca.requests if path.startswith("/v2/orders")]
    assert "cancelled orders" not in str(raised.value)


async def test_a_journal_failure_before_any_order_says_to_start_the_run_again_not_to_resume_it(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal failed at the first submit's intent, so the run announced no order: stderr said 'finish it with:
    repeg resume rA', which then refuses the run as one that sent no order yet; nor need the broker be read."""
    journal = SqliteJournal(tmp_path / "j.db")
    monkeypatch.setattr(journal, "emit", JournalFailsAt(journal, "submit-intent").emit)
    with pytest.raises(JournalError) as raised:
        await _session(fake_alpaca, journal)
    journal.close()
    assert "repeg resume" not in str(raised.value)
    assert "--run-id rA" in str(raised.value)
    # Only the run's own start-up lookup of its run id (dc82b00): the stop polled the intent's id until grace_window.
    assert [path for _, path in fake_alpaca.requests if path.startswith("/v2/orders")] == [
        "/v2/orders:by_client_order_id"
    ]


@pytest.mark.parametrize(
    "point", ["submit-ack", "fill", "replace-intent", "replace-ack", "cancel-intent", "cancel-confirm"]
)
async def test_a_run_stopped_by_a_journal_failure_resumes_to_completion_without_duplicates(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    """The journal failed mid-run (its tail lost: the answer, fill or intent of `point` on), and the run cancelled
    its working orders unjournaled; `repeg resume` with the journal mended then reads each order from the broker
    by its client order id (the acknowledgements and cancels never journaled) and finishes every leg exactly once.
    No fill is lost at these points: at 'fill' the escalation's fill came with its acknowledgement, journaled, and
    the orders the failure cancelled hold none (a resume that recorded no fill from the broker passes here)."""
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    failing = JournalFailsAt(journal, point)
    monkeypatch.setattr(journal, "emit", failing.emit)
    with pytest.raises(JournalError):
        await _session(fake_alpaca, journal, PLAN, ONE_STEP_LADDER)
    journal.close()
    mended = SqliteJournal(path)  # a new process, the disk freed
    result = await _session(fake_alpaca, mended, PLAN, ONE_STEP_LADDER)
    state = fold_run(mended.events("rA"))
    mended.close()
    assert failing.failed
    assert (result.status.value, state.status) == ("completed", "completed")
    _assert_each_leg_filled_once(fake_alpaca, state)


async def test_a_fill_the_journal_failure_lost_is_counted_once_by_the_resume(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The market came to the working sell as the journal broke: its fill (pushed, not in an acknowledgement) was
    never journaled, the order filled at the broker. The resume takes the fill from the broker: the sell is not sent
    again, and each leg is filled once (a guard: 72ff4617's failure points lose no fill)."""
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    failing = JournalFailsAt(journal, "fill")

    async def market_comes_to_the_sell(event: RunEvent) -> None:
        await failing.emit(event)
        if point_of(event) == "submit-ack" and event.leg_index == 0:
            fake_alpaca.book.set_quote("MSFT", Decimal("410.30"), Decimal("410.40"))

    monkeypatch.setattr(journal, "emit", market_comes_to_the_sell)
    with pytest.raises(JournalError):
        await _session(fake_alpaca, journal, PLAN, REPLACE_FIRST)
    journal.close()
    at_the_broker = [o.filled_qty for o in fake_alpaca.book.orders.values()]
    mended = SqliteJournal(path)  # a new process, the disk freed
    journaled = fold_run(mended.events("rA")).legs[0].filled_qty
    result = await _session(fake_alpaca, mended, PLAN, ONE_STEP_LADDER)
    state = fold_run(mended.events("rA"))
    mended.close()
    assert failing.failed
    assert (journaled, at_the_broker) == (0, [20])
    assert (result.status.value, state.status) == ("completed", "completed")
    assert [r.client_order_id for r in state.legs[0].orders] == ["rA-L0000-A00"]
    _assert_each_leg_filled_once(fake_alpaca, state)
