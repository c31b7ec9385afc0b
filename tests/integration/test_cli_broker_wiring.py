"""`repeg run --broker alpaca-*` reaches the Alpaca adapter and its safety checks, before any request."""

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from tests.fakes.alpaca_fixtures import FAST
from tests.fakes.alpaca_server import FakeAlpacaServer
from typer.testing import CliRunner

from repeg.cli.app import build_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(
        build_app(),
        ["run", str(EXAMPLES / "rebalance.csv"), "--journal", str(tmp_path / "j.db"), *args],
        env=env,
    )


def _journal_an_alpaca_run(
    tmp_path: Path,
    run_id: str,
    feed: str | None = None,
    config: dict[str, str] | None = None,
    ordered: bool = False,
    *,
    broker: str = "alpaca-paper",
) -> None:
    """Make the run's journal know `run_id` as a run of examples/rebalance.csv on `broker` (that recorded
    Alpaca's `feed`, if given, under the journaled `config`, and announced an order when `ordered`)."""
    import asyncio
    from datetime import UTC, datetime

    from repeg.domain.events import AlpacaFeedSource, IntentAction, OrderIntent, RunStarted
    from repeg.journal.sqlite import SqliteJournal
    from repeg.planning.parse import load_plan

    journal = SqliteJournal(tmp_path / "j.db")
    started = RunStarted(
        run_id=run_id,
        ts=datetime(2026, 3, 2, 15, tzinfo=UTC),
        correlation_id=run_id,
        plan=load_plan(EXAMPLES / "rebalance.csv"),
        config=config or {},
        broker=broker,
        code_version="test",
        market=None if feed is None else AlpacaFeedSource(feed=feed),
    )
    intent = OrderIntent(
        run_id=run_id,
        ts=started.ts,
        correlation_id=f"{run_id}-L0000-A00",
        leg_index=0,
        action=IntentAction.SUBMIT,
        client_order_id=f"{run_id}-L0000-A00",
    )
    try:
        asyncio.run(journal.emit(started))
        if ordered:
            asyncio.run(journal.emit(intent))
    finally:
        journal.close()


def test_live_alpaca_without_confirm_is_refused_with_exit_2(tmp_path: Path):
    result = _run(
        tmp_path, "--broker", "alpaca-live", env={"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    )
    assert result.exit_code == 2
    assert "--confirm" in result.output


def test_paper_alpaca_without_credentials_is_refused_with_exit_2(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/repeg/alpaca.toml either
    result = _run(tmp_path, "--broker", "alpaca-paper")
    assert result.exit_code == 2
    assert "APCA_API_KEY_ID" in result.output


def test_unknown_broker_is_refused_naming_the_known_ones(tmp_path: Path):
    result = _run(tmp_path, "--broker", "nyse-direct")
    assert result.exit_code == 2
    assert "alpaca-paper" in result.output


def test_a_dry_run_under_a_run_id_the_journal_knows_never_resumes_that_run(tmp_path: Path, monkeypatch):
    """`--dry-run` promises that nothing is sent; with the id of a journaled (e.g. interrupted) Alpaca run it
    must be refused, not turned into a real resume of that run that sends its remaining orders."""
    from repeg.cli import journal_run

    _journal_an_alpaca_run(tmp_path, "rKNOWN")
    resumed: list[str] = []

    def resume_for_real(*_args: object, **kwargs: object) -> None:
        resumed.append(str(kwargs.get("run_id")))
        raise AssertionError("a dry run resumed a journaled run")

    monkeypatch.setattr(journal_run, "resume_on_alpaca", resume_for_real)
    env = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    result = _run(tmp_path, "--broker", "alpaca-paper", "--dry-run", "--run-id", "rKNOWN", env=env)
    assert resumed == []
    assert result.exit_code == 2
    assert "--dry-run" in result.output


def _resume_settings(
    tmp_path: Path, monkeypatch, *flags: str, recorded: str | None = None
) -> dict[str, object]:
    """The keyword arguments a resume of a journaled run (that recorded the feed `recorded`) gives `build_alpaca`
    (stopped right there)."""
    from repeg.brokers.alpaca import factory
    from repeg.errors import MarketClosedError

    _journal_an_alpaca_run(tmp_path, "rRESUME", recorded)
    seen: dict[str, object] = {}

    async def build(*args: object, **kwargs: object) -> None:
        seen.update(kwargs, mode=args[0])
        raise MarketClosedError("stopped by the test")

    monkeypatch.setattr(factory, "build_alpaca", build)
    env = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    result = _run(tmp_path, "--broker", "alpaca-paper", "--run-id", "rRESUME", *flags, env=env)
    assert "stopped by the test" in result.output
    return seen


def test_a_resumed_alpaca_run_keeps_the_chosen_quote_feed(tmp_path: Path, monkeypatch):
    assert _resume_settings(tmp_path, monkeypatch, "--feed", "sip").get("feed") == "sip"


def test_a_run_id_resumed_without_feed_reads_the_feed_the_run_recorded(tmp_path: Path, monkeypatch):
    # run --run-id of a run started with --feed sip resumed it on IEX: --feed defaulted to iex whatever it recorded.
    assert _resume_settings(tmp_path, monkeypatch, recorded="sip").get("feed") == "sip"


def test_a_run_id_resumed_with_feed_reads_the_feed_given(tmp_path: Path, monkeypatch):
    assert _resume_settings(tmp_path, monkeypatch, "--feed", "iex", recorded="sip").get("feed") == "iex"


def test_a_run_id_resumed_that_recorded_no_feed_reads_iex(tmp_path: Path, monkeypatch):
    assert _resume_settings(tmp_path, monkeypatch).get("feed") == "iex"


def _resumed_under(tmp_path: Path, monkeypatch, *flags: str) -> list[object]:
    """The configuration `run --run-id` resumes a journaled Alpaca run (that announced an order) under."""
    from repeg.cli import journal_run
    from repeg.errors import BrokerUnavailableError

    _journal_an_alpaca_run(tmp_path, "rCFG", config={"fill_wait_seconds": "7"}, ordered=True)
    reached: list[object] = []

    async def alpaca_session(_plan: object, execution: object, *_args: object, **_kwargs: object) -> None:
        reached.append(execution)
        raise BrokerUnavailableError("stopped by the test")

    monkeypatch.setattr(journal_run, "alpaca_session", alpaca_session)
    env = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    result = _run(tmp_path, "--broker", "alpaca-paper", "--run-id", "rCFG", *flags, env=env)
    assert "stopped by the test" in result.output
    return reached


def test_a_run_id_resumed_without_config_goes_on_under_the_configuration_it_journaled(
    tmp_path: Path, monkeypatch
):
    # README: a resumed run goes on under the configuration it journaled. `run --run-id` resumed it under
    # the defaults (its own absent --config): other waits, and none of the run's safety limits.
    from repeg.config import ExecutionConfig

    assert _resumed_under(tmp_path, monkeypatch) == [ExecutionConfig(fill_wait_seconds=7.0)]


def test_a_run_id_resumed_with_config_goes_on_under_that_configuration(tmp_path: Path, monkeypatch):
    from repeg.config import ExecutionConfig

    replacement = tmp_path / "c.toml"
    replacement.write_text("[execution]\nfill_wait_seconds = 3\n", encoding="utf-8")
    assert _resumed_under(tmp_path, monkeypatch, "--config", str(replacement)) == [
        ExecutionConfig(fill_wait_seconds=3.0)
    ]


def test_the_live_view_of_a_resumed_run_shows_the_legs_the_journal_holds(tmp_path: Path, monkeypatch):
    # The live view folded only the events of the resume: a resumed run showed "0/0 legs filled" and no leg
    # while it worked, its legs planned before the crash left out.
    from repeg.cli import journal_run
    from repeg.cli.live import LiveView
    from repeg.domain.events import LegPlanned
    from repeg.domain.orders import Side
    from repeg.domain.plan import LegSpec
    from repeg.errors import BrokerUnavailableError
    from repeg.journal.sqlite import SqliteJournal

    _journal_an_alpaca_run(tmp_path, "rLIVE", ordered=True)
    journal = SqliteJournal(tmp_path / "j.db")
    spec = LegSpec(index=0, symbol="AAPL", side=Side.BUY, qty=Decimal(5))
    started = journal.events("rLIVE")[0]
    planned = LegPlanned(run_id="rLIVE", ts=started.ts, correlation_id="rLIVE", leg_index=0, spec=spec)
    asyncio.run(journal.emit(planned))
    journal.close()
    shown: list[int] = []

    async def alpaca_session(*_args: object, sinks: Sequence[object] = (), **_kwargs: object) -> None:
        shown.extend(len(sink._folder.snapshot().legs) for sink in sinks if isinstance(sink, LiveView))
        raise BrokerUnavailableError("stopped by the test")

    monkeypatch.setattr(journal_run, "alpaca_session", alpaca_session)
    env = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s", "FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"}
    result = _run(tmp_path, "--broker", "alpaca-paper", "--run-id", "rLIVE", env=env)
    assert "stopped by the test" in result.output
    assert shown == [1]


def test_a_resumed_alpaca_run_on_a_closed_market_needs_allow_closed_like_a_fresh_run(
    tmp_path: Path, monkeypatch
):
    assert _resume_settings(tmp_path, monkeypatch)["allow_closed"] is False


def test_a_resumed_alpaca_run_passes_allow_closed_on(tmp_path: Path, monkeypatch):
    assert _resume_settings(tmp_path, monkeypatch, "--allow-closed")["allow_closed"] is True


async def test_check_names_the_plan_file_and_row_of_a_symbol_unknown_to_alpaca(
    fake_alpaca: FakeAlpacaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # `repeg check plan.csv` read "symbol 'ZZZZ' is unknown to the broker": no file, no row, where
    # `repeg run` names both for the same plan.
    from repeg.brokers.alpaca.settings import AlpacaUrls
    from repeg.cli.alpaca_cmds import check_alpaca
    from repeg.errors import UnknownSymbolError

    monkeypatch.setenv("APCA_API_KEY_ID", fake_alpaca.key_id)
    monkeypatch.setenv("APCA_API_SECRET_KEY", fake_alpaca.secret_key)
    plan = tmp_path / "plan.csv"
    plan.write_text("symbol,side,qty\nMSFT,buy,1\nZZZZ,sell,2\n", encoding="utf-8")
    with pytest.raises(UnknownSymbolError) as caught:
        await check_alpaca(
            "alpaca-paper",
            plan,
            lambda _line: None,
            urls=AlpacaUrls.loopback(fake_alpaca.base_url),
            settings=FAST,
        )
    assert str(caught.value) == f"{plan}, row 3, field 'symbol' = 'ZZZZ': unknown to the broker"


def test_a_sim_url_of_another_form_is_bad_input_naming_the_option(tmp_path: Path) -> None:
    """`--sim-url http://...` was a raw ValueError: 'internal error', exit 1. It is bad input (exit 2)."""
    result = _run(tmp_path, "--broker", "sim-remote", "--sim-url", "http://127.0.0.1:9/x")
    assert result.exit_code == 2, result.output
    assert "--sim-url='http://127.0.0.1:9/x'" in result.output
    assert "internal error" not in result.output


@pytest.mark.parametrize(
    ("broker", "flags", "option"),
    [
        ("simulator", ["--dry-run"], "--dry-run"),
        ("simulator", ["--confirm"], "--confirm"),
        ("simulator", ["--allow-closed"], "--allow-closed"),
        ("simulator", ["--feed", "sip"], "--feed"),
        ("simulator", ["--sim-url", "sim://127.0.0.1:9/x"], "--sim-url"),
        ("sim-remote", ["--sim-url", "sim://127.0.0.1:9/x", "--dry-run"], "--dry-run"),
        ("sim-remote", ["--sim-url", "sim://127.0.0.1:9/x", "--feed", "iex"], "--feed"),
        ("sim-remote", ["--sim-url", "sim://127.0.0.1:9/x", "--seed", "3"], "--seed"),
        ("alpaca-paper", ["--sim-url", "sim://127.0.0.1:9/x"], "--sim-url"),
        ("alpaca-paper", ["--seed", "3"], "--seed"),
    ],
)
def test_an_option_the_chosen_broker_does_not_read_is_refused_naming_both(
    tmp_path: Path, broker: str, flags: list[str], option: str
) -> None:
    """`repeg run plan.csv --dry-run` (no --broker) ran the whole plan on the simulator and journaled it, exit 0:
    the Alpaca options, --sim-url and --seed were silently ignored by the brokers that do not read them, while
    --quotes with an Alpaca broker was refused. Each is refused before anything runs (exit 2), naming the option
    and the broker, and nothing is journaled."""
    env = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    result = _run(tmp_path, "--broker", broker, *flags, env=env)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert line.startswith(f"error: config {option}"), line
    assert broker in line
    assert len(line.splitlines()) == 1
    assert not (tmp_path / "j.db").exists()


def test_confirm_is_accepted_on_alpaca_paper(tmp_path: Path, monkeypatch) -> None:
    """--confirm, required on alpaca-live, is harmless on alpaca-paper (a script that switches only --broker)."""
    from repeg.brokers.alpaca import factory
    from repeg.errors import MarketClosedError

    async def build(*_args: object, **_kwargs: object) -> None:
        raise MarketClosedError("stopped by the test")

    monkeypatch.setattr(factory, "build_alpaca", build)
    env = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    result = _run(
        tmp_path, "--broker", "alpaca-paper", "--confirm", "--feed", "sip", "--allow-closed", env=env
    )
    assert "stopped by the test" in result.stderr


def _end_the_journaled_run(tmp_path: Path, run_id: str, status: str = "completed") -> None:
    from datetime import UTC, datetime

    from repeg.domain.events import RunEnded
    from repeg.journal.sqlite import SqliteJournal

    journal = SqliteJournal(tmp_path / "j.db")
    ended = RunEnded(
        run_id=run_id, ts=datetime(2026, 3, 2, 16, tzinfo=UTC), correlation_id=run_id, status=status
    )
    try:
        asyncio.run(journal.emit(ended))
    finally:
        journal.close()


def test_run_id_of_an_ended_alpaca_run_prints_its_result_without_contacting_alpaca(
    tmp_path: Path, monkeypatch
) -> None:
    """README: an id already in the journal prints that run's journaled result if it finished. On Alpaca it
    built the client and read the clock first, so that after hours (or without credentials, or in an outage)
    the finished run was refused as 'market closed' (exit 2) instead of answered from the journal."""
    from repeg.brokers.alpaca import factory
    from repeg.errors import MarketClosedError

    _journal_an_alpaca_run(tmp_path, "rDONE", ordered=True)
    _end_the_journaled_run(tmp_path, "rDONE", "partial")
    contacted: list[object] = []

    async def build(*args: object, **_kwargs: object) -> None:
        contacted.append(args)
        raise MarketClosedError("market closed (the test)")

    monkeypatch.setattr(factory, "build_alpaca", build)
    result = _run(tmp_path, "--broker", "alpaca-paper", "--run-id", "rDONE", env={"COLUMNS": "200"})
    assert (contacted, result.exit_code) == ([], 3), result.output
    assert "run rDONE: partial" in result.stdout


def test_run_id_of_an_ended_run_asked_on_another_broker_is_still_refused_naming_it(
    tmp_path: Path, monkeypatch
) -> None:
    from repeg.brokers.alpaca import factory
    from repeg.errors import MarketClosedError

    async def build(*_args: object, **_kwargs: object) -> None:
        raise MarketClosedError("market closed (the test)")

    monkeypatch.setattr(factory, "build_alpaca", build)
    _journal_an_alpaca_run(tmp_path, "rDONE", ordered=True)
    _end_the_journaled_run(tmp_path, "rDONE")
    env = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    result = _run(tmp_path, "--broker", "alpaca-live", "--confirm", "--run-id", "rDONE", env=env)
    assert result.exit_code == 2, result.output
    assert "run rDONE was started on alpaca-paper, not alpaca-live" in result.stderr


def test_a_dry_run_under_the_id_of_an_ended_run_is_still_refused(tmp_path: Path) -> None:
    """An ended run is answered from the journal, but never for a --dry-run: that id is refused, as before."""
    _journal_an_alpaca_run(tmp_path, "rDONE", ordered=True)
    _end_the_journaled_run(tmp_path, "rDONE")
    env = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    result = _run(tmp_path, "--broker", "alpaca-paper", "--dry-run", "--run-id", "rDONE", env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: config --dry-run='rDONE': the journal knows this run id")


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        ([], "config --sim-url: --broker sim-remote needs --sim-url sim://127.0.0.1:PORT/SESSION"),
        (["--sim-url", "bad"], "config --sim-url='bad': must look like sim://127.0.0.1:PORT/SESSION"),
    ],
    ids=["missing", "malformed"],
)
def test_sim_remote_without_a_usable_sim_url_is_refused_before_the_journal_is_touched(
    tmp_path: Path, args: list[str], refusal: str
) -> None:
    # It was refused only after the journal file had been created and the run claimed ("run r... (journal ...)").
    result = _run(tmp_path, "--broker", "sim-remote", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {refusal}")
    assert not (tmp_path / "j.db").exists()


def test_run_id_of_an_ended_sim_remote_run_prints_its_result_without_sim_url(tmp_path: Path) -> None:
    """An ended run that left nothing open is answered from the journal, never reaching the broker (as `resume`
    answers it since 230f4bd), but `run --run-id` of an ended sim-remote run still demanded --sim-url, exit 2."""
    _journal_an_alpaca_run(tmp_path, "rDONE", ordered=True, broker="sim-remote")
    _end_the_journaled_run(tmp_path, "rDONE", "partial")
    result = _run(tmp_path, "--broker", "sim-remote", "--run-id", "rDONE", "--json")
    assert result.exit_code == 3, result.output
    assert '"status": "partial"' in result.stdout


@pytest.mark.parametrize("journaled", ["unfinished", "none"])
def test_run_id_of_a_sim_remote_run_not_answered_from_the_journal_still_needs_sim_url(
    tmp_path: Path, journaled: str
) -> None:
    # Guard: an unfinished run is resumed at the remote simulator; an id the journal lacks is a new run there.
    if journaled == "unfinished":
        _journal_an_alpaca_run(tmp_path, "rGO", ordered=True, broker="sim-remote")
    result = _run(tmp_path, "--broker", "sim-remote", "--run-id", "rGO")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: config --sim-url: --broker sim-remote needs --sim-url")
    assert (tmp_path / "j.db").exists() == (journaled == "unfinished")


def test_run_id_of_an_ended_sim_remote_run_that_left_an_order_open_still_needs_sim_url(
    tmp_path: Path,
) -> None:
    # Guard: its order may still work at the remote simulator; the run must reach it to close it.
    from datetime import UTC, datetime

    from repeg.domain.events import IntentAction, LegPlanned, OrderIntent
    from repeg.domain.orders import Side
    from repeg.domain.plan import LegSpec
    from repeg.journal.sqlite import SqliteJournal

    _journal_an_alpaca_run(tmp_path, "rOPEN", broker="sim-remote")
    ts, cid = datetime(2026, 3, 2, 15, 1, tzinfo=UTC), "rOPEN-L0000-A00"
    spec = LegSpec(index=0, symbol="AAA", side=Side.BUY, qty=Decimal(1))
    journal = SqliteJournal(tmp_path / "j.db")
    try:
        asyncio.run(
            journal.emit(LegPlanned(run_id="rOPEN", ts=ts, correlation_id="rOPEN", leg_index=0, spec=spec))
        )
        intent = OrderIntent(
            run_id="rOPEN",
            ts=ts,
            correlation_id=cid,
            leg_index=0,
            action=IntentAction.SUBMIT,
            client_order_id=cid,
        )
        asyncio.run(journal.emit(intent))
    finally:
        journal.close()
    _end_the_journaled_run(tmp_path, "rOPEN", "partial")
    result = _run(tmp_path, "--broker", "sim-remote", "--run-id", "rOPEN")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: config --sim-url: --broker sim-remote needs --sim-url"), (
        result.stderr
    )
