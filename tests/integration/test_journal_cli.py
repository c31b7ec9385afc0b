"""The journal from the command line: `repeg run` journals, `repeg show` reproduces the results exactly from the
journal alone, `repeg runs` lists the run, and `--run-id` of a finished run never executes twice.

Runs use the repository's demo plan on the in-process simulator (virtual time: milliseconds).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from tests.integration.test_cli import _to_a_closed_pipe, _to_a_full_disk
from typer.testing import CliRunner

from repeg.cli.app import build_app
from repeg.cli.exit_codes import ExitCode
from repeg.cli.settings import load_settings
from repeg.config import ExecutionConfig
from repeg.domain.events import RunStarted, SyntheticSource
from repeg.journal.sqlite import SqliteJournal
from repeg.market.source import quote_file_source
from repeg.planning.derive import plan_symbols
from repeg.planning.parse import load_plan
from repeg.simulation import synthetic_market, synthetic_tape_of

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLAN = EXAMPLES / "rebalance.csv"
CONFIG = EXAMPLES / "demo.toml"

pytestmark = pytest.mark.skipif(not (PLAN.exists() and CONFIG.exists()), reason="examples/ not present")


def _repeg(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(args), env={"COLUMNS": "160"})
    return result.exit_code, result.stdout + (result.stderr if result.exit_code else "")


def _run(journal: Path, run_id: str, *extra: str) -> tuple[int, str]:
    return _repeg(
        "run", str(PLAN), "--config", str(CONFIG), "--journal", str(journal), "--run-id", run_id, *extra
    )


@pytest.fixture(scope="module")
def journaled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One demo run, journaled: (journal, the run's table output, the run's JSON output)."""
    journal = tmp_path_factory.mktemp("journal") / "repeg.db"
    code, table = _run(journal, "demo1")
    assert code == 0, table
    json_journal = journal.with_name("json.db")
    code, as_json = _run(json_journal, "demo1", "--json")
    assert code == 0, as_json
    return journal, table, as_json


def test_show_reproduces_the_results_table_exactly(journaled: tuple[Path, str, str]) -> None:
    journal, table, _ = journaled
    code, shown = _repeg("show", "demo1", "--journal", str(journal), "--no-events")
    assert code == 0
    assert "filled" in table
    assert shown == table


def test_show_json_without_events_is_the_run_id_and_the_result_alone(
    journaled: tuple[Path, str, str],
) -> None:
    # --no-events was silently ignored with --json: the document still listed every event.
    journal, _, as_json = journaled
    json_journal = str(journal.with_name("json.db"))
    code, shown = _repeg("show", "demo1", "--journal", json_journal, "--json", "--no-events")
    assert code == 0
    assert json.loads(shown) == {"run_id": "demo1", "result": json.loads(as_json)}


def test_show_json_result_equals_the_runs_json_result(journaled: tuple[Path, str, str]) -> None:
    journal, _, as_json = journaled
    code, shown = _repeg("show", "demo1", "--journal", str(journal.with_name("json.db")), "--json")
    assert code == 0
    assert json.loads(shown)["result"] == json.loads(as_json)


def test_show_lists_every_event_in_journal_order(journaled: tuple[Path, str, str]) -> None:
    journal, _, _ = journaled
    store = SqliteJournal(journal, create=False)
    kinds = [event.kind for event in store.events("demo1")]
    store.close()
    code, shown = _repeg("show", "demo1", "--journal", str(journal), "--json")
    assert code == 0
    assert [event["kind"] for event in json.loads(shown)["events"]] == kinds
    assert kinds[0] == "run_started"
    assert kinds[-1] == "run_ended"


def test_show_json_gives_the_run_started_config_and_market_settings_as_json_values_not_json_text(
    journaled: tuple[Path, str, str],
) -> None:
    """The journal keeps each of them as JSON text: `--json` printed "null", "[\\"0.5\\", ...]" and
    "\\"2024-...\\"" as strings inside the document, for every reader to parse again (and "null" is truthy)."""
    journal, _, _ = journaled
    code, shown = _repeg("show", "demo1", "--journal", str(journal), "--json")
    assert code == 0
    started = json.loads(shown)["events"][0]
    config, settings = started["config"], started["market"]["settings"]
    assert (config["repeg_steps"], config["max_order_notional"], config["on_no_quote"]) == (
        ["0.5", "0.75"],
        "300000",
        "skip",
    )
    assert config["price_collar_pct"] == "5"  # decimals stay exact text, as everywhere in the document
    assert settings["start"] == "2024-01-02T14:30:00Z"
    assert settings["symbols"]["AAPL"]["price"] == "190.00"
    assert settings["duration_seconds"] == "1800.0"


def test_show_json_gives_an_absent_limit_as_null(tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    code, _ = _repeg("run", str(PLAN), "--journal", str(journal), "--run-id", "nolimits")
    assert code == 0
    code, shown = _repeg("show", "nolimits", "--journal", str(journal), "--json")
    config = json.loads(shown)["events"][0]["config"]
    assert (config["max_order_notional"], config["max_run_notional"]) == (None, None)


def test_runs_lists_the_run_with_its_plan_status_and_legs(journaled: tuple[Path, str, str]) -> None:
    journal, _, _ = journaled
    code, listed = _repeg("runs", "--journal", str(journal))
    assert code == 0
    row = next(line for line in listed.splitlines() if "demo1" in line)
    assert "rebalance.csv" in row
    assert "completed" in row


def test_same_run_id_again_returns_the_journaled_result_without_trading(
    journaled: tuple[Path, str, str],
) -> None:
    journal, table, _ = journaled
    store = SqliteJournal(journal, create=False)
    before = len(store.events("demo1"))
    store.close()
    code, again = _run(journal, "demo1")
    store = SqliteJournal(journal, create=False)
    after = len(store.events("demo1"))
    store.close()
    assert code == 0
    assert again == table
    assert after == before


def test_show_of_an_unknown_run_fails_with_its_id(journaled: tuple[Path, str, str]) -> None:
    journal, _, _ = journaled
    result = CliRunner().invoke(build_app(), ["show", "nope", "--journal", str(journal)])
    assert result.exit_code == ExitCode.BAD_INPUT  # README: a run id the journal does not hold
    assert "'nope'" in result.stderr


@pytest.mark.parametrize("command", [["show", "x"], ["runs"], ["resume", "x"]])
def test_a_journal_file_that_does_not_exist_is_bad_input_named_in_the_error(
    tmp_path: Path, command: list[str]
) -> None:
    # README: a path the user typed that does not exist is bad input (2), as `repeg report` has it; show, runs
    # and resume exited 4, the code of a journal that failed.
    missing = tmp_path / "none.db"
    result = CliRunner().invoke(build_app(), [*command, "--journal", str(missing)])
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert f"no journal at {missing}" in result.stderr
    assert not missing.exists()


def test_a_run_journal_in_a_directory_that_does_not_exist_is_bad_input_named_in_the_error(
    tmp_path: Path,
) -> None:
    # It exited 4 ("cannot open journal ...: unable to open database file"), the code of a journal that failed,
    # for a path the user typed into a directory that is not there (as `backtest --out` there exits 2).
    journal = tmp_path / "missing" / "j.db"
    code, out = _run(journal, "n1")
    assert code == ExitCode.BAD_INPUT, out
    assert f"config --journal='{journal}': " in out
    assert not journal.parent.exists()


def test_runs_of_a_journal_with_an_unreadable_event_fails_with_a_clear_error(tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    SqliteJournal(journal).close()
    raw = sqlite3.connect(journal)
    raw.execute("INSERT INTO runs VALUES ('r1', '2026-01-02T14:30:00+00:00')")
    raw.execute(
        "INSERT INTO events VALUES ('r1', 1, NULL, '2026-01-02T14:30:00+00:00', 'r1', 'run_started', '{')"
    )
    raw.commit()
    raw.close()
    result = CliRunner().invoke(build_app(), ["runs", "--journal", str(journal)])
    assert isinstance(result.exception, SystemExit), result.exception
    assert f"journal {journal}: an event of run 'r1' cannot be read" in result.stderr


def test_show_of_an_unknown_run_names_the_journal_it_looked_in(journaled: tuple[Path, str, str]) -> None:
    journal, _, _ = journaled
    result = CliRunner().invoke(build_app(), ["show", "nope", "--journal", str(journal)])
    assert f"run 'nope' is not in the journal {journal}" in result.stderr


def test_resume_of_an_unknown_run_names_the_run_and_the_journal(journaled: tuple[Path, str, str]) -> None:
    journal, _, _ = journaled
    result = CliRunner().invoke(build_app(), ["resume", "nope", "--journal", str(journal)])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert f"run 'nope' is not in the journal {journal}" in result.stderr


def test_resume_without_broker_resumes_on_the_broker_the_run_started_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: `repeg resume RUN_ID` after a crash; the journal knows the run's broker, so it needs no --broker."""

    from repeg.cli import journal_run
    from repeg.errors import BrokerUnavailableError

    journal = tmp_path / "j.db"
    _journal_started_with(journal, {}, run_id="rA")
    reached: list[str] = []

    async def alpaca_session(*_args: object, broker: str, **_kwargs: object) -> None:
        reached.append(broker)
        raise BrokerUnavailableError("stopped by the test")

    monkeypatch.setattr(journal_run, "alpaca_session", alpaca_session)
    result = CliRunner().invoke(build_app(), ["resume", "rA", "--journal", str(journal)])
    assert reached == ["alpaca-paper"], result.stderr


def _journal_started_with(
    journal: Path, config: dict[str, str], run_id: str = "rC", broker: str = "alpaca-paper"
) -> None:
    """`journal` holds run `run_id` on `broker`, started (and interrupted) under the journaled `config`."""
    import asyncio

    from repeg.domain.orders import Side
    from repeg.domain.plan import Plan, PlanKind, TradeIntent

    store = SqliteJournal(journal)
    trade = TradeIntent(symbol="AAA", side=Side.BUY, qty=Decimal(1))
    started = RunStarted(
        run_id=run_id,
        ts=datetime(2026, 3, 2, 15, tzinfo=UTC),
        correlation_id=run_id,
        plan=Plan(source="plan.csv", kind=PlanKind.TRADES, trades=(trade,)),
        config=config,
        broker=broker,
        code_version="earlier",
    )
    asyncio.run(store.emit(started))
    store.close()


def test_resume_of_a_dry_run_says_it_was_a_dry_run(tmp_path: Path) -> None:
    # It said "config --broker='alpaca-paper (dry run)': not an Alpaca broker (known: alpaca-paper, ...)",
    # as if the user had named a broker, where `repeg run --run-id` says the run was a dry run.
    journal = tmp_path / "j.db"
    _journal_started_with(journal, {}, run_id="rD", broker="alpaca-paper (dry run)")
    result = CliRunner().invoke(build_app(), ["resume", "rD", "--journal", str(journal)])
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert "run rD was a dry run on alpaca-paper" in result.stderr


def test_resume_of_a_dry_run_on_a_broker_named_says_it_was_a_dry_run_naming_the_run(tmp_path: Path) -> None:
    # With --broker given it said "config --run-id='rD': run rD was a dry run ...": resume has no --run-id.
    journal = tmp_path / "j.db"
    _journal_started_with(journal, {}, run_id="rD", broker="alpaca-paper (dry run)")
    args = ["resume", "rD", "--journal", str(journal), "--broker", "alpaca-paper"]
    result = CliRunner().invoke(build_app(), args, env={"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"})
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert result.stderr.startswith("error: config RUN_ID='rD': run rD was a dry run on alpaca-paper"), (
        result.stderr
    )


def test_resume_of_an_ended_alpaca_run_answers_from_the_journal_without_contacting_alpaca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Resuming an ended run only rebuilds its result from the journal (`resume_run`), but resume first built the
    # Alpaca client and read its clock: after hours it was refused "market closed" (exit 2), without keys too.
    journal = tmp_path / "j.db"
    _journal_an_order_announced(journal, "rE", ended="partial")
    reached = _alpaca_sessions_reached(monkeypatch)
    result = CliRunner().invoke(build_app(), ["resume", "rE", "--journal", str(journal), "--json"])
    assert (reached, result.exit_code) == ([], ExitCode.PARTIAL), result.stderr
    assert json.loads(result.stdout)["status"] == "partial"


def test_resume_of_a_run_stopped_after_announcing_an_order_still_goes_to_its_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Guard of 549bf91: only a journaled run_ended is an end. A run stopped by Ctrl-C/SIGTERM, or killed, journals
    # none: it may have orders working at the broker, so resume reconciles it there, never answers from the journal.
    journal = tmp_path / "j.db"
    _journal_an_order_announced(journal, "rS", ended=None)
    reached = _alpaca_sessions_reached(monkeypatch)
    result = CliRunner().invoke(build_app(), ["resume", "rS", "--journal", str(journal)])
    assert (reached, result.exit_code) == (["alpaca-paper"], ExitCode.BAD_INPUT), result.stderr


def _journal_an_order_announced(
    journal: Path, run_id: str, *, ended: str | None, broker: str = "alpaca-paper", planned: bool = False
) -> None:
    """`journal` holds `run_id` on `broker` with an order announced, and ended with status `ended` if given. With
    `planned`, the order's leg was planned first, so the order counts: never answered, it may be open at the
    broker (`left_open`)."""
    import asyncio

    from repeg.domain.events import IntentAction, LegPlanned, OrderIntent, RunEnded
    from repeg.domain.orders import Side
    from repeg.domain.plan import LegSpec

    _journal_started_with(journal, {}, run_id=run_id, broker=broker)
    store = SqliteJournal(journal)
    ts = datetime(2026, 3, 2, 15, 1, tzinfo=UTC)
    cid = f"{run_id}-L0000-A00"
    intent = OrderIntent(
        run_id=run_id, ts=ts, correlation_id=cid, leg_index=0, action=IntentAction.SUBMIT, client_order_id=cid
    )
    spec = LegSpec(index=0, symbol="AAA", side=Side.BUY, qty=Decimal(1))
    try:
        if planned:
            asyncio.run(
                store.emit(LegPlanned(run_id=run_id, ts=ts, correlation_id=run_id, leg_index=0, spec=spec))
            )
        asyncio.run(store.emit(intent))
        if ended is not None:
            asyncio.run(store.emit(RunEnded(run_id=run_id, ts=ts, correlation_id=run_id, status=ended)))
    finally:
        store.close()


def _alpaca_sessions_reached(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The brokers resume opened an Alpaca session on (each refused 'market closed' by the test)."""
    from repeg.cli import journal_run
    from repeg.errors import MarketClosedError

    reached: list[str] = []

    async def alpaca_session(*_args: object, broker: str, **_kwargs: object) -> None:
        reached.append(broker)
        raise MarketClosedError("market closed (the test)")

    monkeypatch.setattr(journal_run, "alpaca_session", alpaca_session)
    return reached


def test_resume_of_a_simulator_run_names_the_run_not_a_broker_option_never_given(
    journaled: tuple[Path, str, str],
) -> None:
    # It said "config --broker='simulator': resume needs a broker that outlives the process" to a user who gave
    # no --broker: the broker is the run's own, read from the journal.
    journal, _, _ = journaled
    result = CliRunner().invoke(build_app(), ["resume", "demo1", "--journal", str(journal)])
    assert result.exit_code == ExitCode.BAD_INPUT
    line = result.stderr.strip()
    assert line.startswith("error: config RUN_ID='demo1': run demo1 ran on the in-process simulator"), line
    assert "--broker" not in line


def test_resume_on_sim_remote_without_sim_url_names_the_missing_option(
    journaled: tuple[Path, str, str],
) -> None:
    # It blamed "--broker='sim-remote'", the option given right, for the --sim-url that was missing.
    journal, _, _ = journaled
    args = ["resume", "demo1", "--journal", str(journal), "--broker", "sim-remote"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.strip().startswith("error: config --sim-url: "), result.stderr


@pytest.mark.parametrize(
    ("broker", "flags", "option"),
    [
        ("sim-remote", ["--sim-url", "sim://127.0.0.1:9/x", "--confirm"], "--confirm"),
        ("sim-remote", ["--sim-url", "sim://127.0.0.1:9/x", "--allow-closed"], "--allow-closed"),
        ("sim-remote", ["--sim-url", "sim://127.0.0.1:9/x", "--feed", "sip"], "--feed"),
        ("alpaca-paper", ["--sim-url", "sim://127.0.0.1:9/x"], "--sim-url"),
    ],
)
def test_resume_refuses_an_option_its_broker_does_not_read(
    tmp_path: Path, broker: str, flags: list[str], option: str
) -> None:
    # As `repeg run`: an option the broker does not read was silently ignored (--feed sip on sim-remote).
    journal = tmp_path / "j.db"
    _journal_started_with(journal, {}, run_id="rF", broker=broker)
    result = CliRunner().invoke(build_app(), ["resume", "rF", "--journal", str(journal), *flags])
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"error: config {option}: "), line
    assert broker in line


def _resumed_config(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[list[object], str]:
    """Resume 'rC' with `args`; the configuration the Alpaca session was given (none if refused), and stderr."""
    from repeg.cli import journal_run
    from repeg.errors import BrokerUnavailableError

    reached: list[object] = []

    async def alpaca_session(_plan: object, execution: object, *_args: object, **_kwargs: object) -> None:
        reached.append(execution)
        raise BrokerUnavailableError("stopped by the test")

    monkeypatch.setattr(journal_run, "alpaca_session", alpaca_session)
    result = CliRunner().invoke(build_app(), ["resume", "rC", *args])
    return reached, result.stderr


def test_resume_goes_on_under_the_journaled_configuration_an_earlier_repeg_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """initial_offset 0.5 (the default) with repeg_steps [0.25, 0.5] started runs before 3a72e71 refused it: such
    an interrupted run, its orders possibly working at the broker, must still resume under what it ran with."""
    journal = tmp_path / "j.db"
    _journal_started_with(journal, {"initial_offset": "0.5", "repeg_steps": '["0.25", "0.5"]'})
    reached, stderr = _resumed_config(monkeypatch, "--journal", str(journal))
    assert len(reached) == 1, stderr
    config = reached[0]
    assert isinstance(config, ExecutionConfig)
    assert config.initial_offset == Decimal("0.5")
    assert config.repeg_steps == (Decimal("0.25"), Decimal("0.5"))


def test_resume_with_config_replaces_a_journaled_configuration_repeg_no_longer_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config replaces the journaled configuration: a journaled one that cannot be read today (a key since
    removed) must not stop the resume the replacement was given for."""
    journal = tmp_path / "j.db"
    _journal_started_with(journal, {"a_key_since_removed": "1"})
    replacement = tmp_path / "resume.toml"
    replacement.write_text("[execution]\nfill_wait_seconds = 3\n", encoding="utf-8")
    reached, stderr = _resumed_config(monkeypatch, "--journal", str(journal), "--config", str(replacement))
    assert reached == [ExecutionConfig(fill_wait_seconds=3.0)], stderr


def test_resume_goes_on_under_the_configuration_and_broker_of_the_start_in_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that announced no order may be started afresh under its id (`repeg run --run-id`), with another
    --config or broker; its orders then worked under that last start. resume took the first start's
    configuration and broker (and was then refused: "started on alpaca-live, not alpaca-paper")."""
    from repeg.cli import journal_run
    from repeg.errors import BrokerUnavailableError

    journal = tmp_path / "j.db"
    _journal_started_with(journal, {"fill_wait_seconds": "5"})
    _journal_started_with(journal, {"fill_wait_seconds": "3"}, broker="alpaca-live")
    reached: list[tuple[object, object]] = []

    async def alpaca_session(
        _plan: object, execution: object, *_args: object, broker: str, **_: object
    ) -> None:
        reached.append((execution, broker))
        raise BrokerUnavailableError("stopped by the test")

    monkeypatch.setattr(journal_run, "alpaca_session", alpaca_session)
    result = CliRunner().invoke(build_app(), ["resume", "rC", "--journal", str(journal), "--confirm"])
    assert reached == [(ExecutionConfig(fill_wait_seconds=3.0), "alpaca-live")], result.stderr


def _unfinished_copy(journal: Path, target: Path, run_id: str = "demo1") -> None:
    """`target` holds the first half of the run's events: a run that crashed mid-way (no RunEnded)."""
    from repeg.engine.clock import run_virtual

    source = SqliteJournal(journal, create=False)
    events = source.events(run_id)
    source.close()
    copy = SqliteJournal(target)

    async def write() -> None:
        for event in events[: len(events) // 2]:
            await copy.emit(event)
        await copy.flush()

    run_virtual(write)
    copy.close()


def test_show_and_runs_both_call_a_run_without_its_end_unfinished(
    journaled: tuple[Path, str, str], tmp_path: Path
) -> None:
    # `repeg runs` said "unfinished" while `repeg show` of the same run said "failed" (or "partial").
    journal, _, _ = journaled
    crashed = tmp_path / "crashed.db"
    _unfinished_copy(journal, crashed)
    code, listed = _repeg("runs", "--journal", str(crashed))
    assert code == 0
    assert "unfinished" in next(line for line in listed.splitlines() if "demo1" in line)
    code, shown = _repeg("show", "demo1", "--journal", str(crashed), "--json")
    assert code == 0
    assert json.loads(shown)["result"]["status"] == "unfinished"
    code, table = _repeg("show", "demo1", "--journal", str(crashed), "--no-events")
    assert code == 0
    assert "run demo1: unfinished" in table


def test_run_with_a_journal_path_that_is_not_sqlite_is_bad_input_naming_the_option_and_keeps_the_file(
    tmp_path: Path,
) -> None:
    # A 1-byte file given as --journal was silently overwritten by a new SQLite journal. Then it was refused as a
    # journal that failed (exit 4); the path given is wrong, as a directory given as --journal is (exit 2).
    notes = tmp_path / "notes"
    notes.write_bytes(b"x")
    result = CliRunner().invoke(build_app(), ["run", str(PLAN), "--journal", str(notes)])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr == (
        f"error: config --journal='{notes}': not a SQLite database, so not a journal (left as it is)\n"
    )
    assert notes.read_bytes() == b"x"


def test_a_sqlite_database_that_is_no_journal_is_bad_input_naming_the_option(tmp_path: Path) -> None:
    # Another application's database given as --journal was refused as a journal that failed (exit 4), though
    # its own message said what is wrong: the path ("choose another --journal path").
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(build_app(), ["runs", "--journal", str(other)])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr == (
        f"error: config --journal='{other}': not a repeg journal (it has tables customers but no schema_version); "
        "choose another --journal path\n"
    )


@pytest.mark.parametrize(
    "command", [["runs"], ["show", "demo1"], ["show", "demo1", "--json"]], ids=["runs", "show", "show-json"]
)
def test_runs_and_show_to_a_closed_pipe_exit_0_quietly(
    journaled: tuple[Path, str, str], command: list[str]
) -> None:
    # `repeg runs | head -1` exited 1 ("internal error") once head had gone. The pipe's read end is closed
    # before repeg starts, so its first write fails: no timing involved.
    journal, _, _ = journaled
    assert _to_a_closed_pipe([*command, "--journal", str(journal)], journal.parent) == (0, "")


def test_report_of_a_run_to_a_closed_pipe_exits_0_quietly(
    journaled: tuple[Path, str, str], tmp_path: Path
) -> None:
    # `repeg report RUN --html r.html | true` exited 1 ("internal error") with nothing on stderr, though the
    # report was written: only run, runs, show and resume handled a reader that went away.
    journal, _, _ = journaled
    html = tmp_path / "r.html"
    command = ["report", "demo1", "--journal", str(journal), "--html", str(html), "--no-market"]
    assert _to_a_closed_pipe(command, tmp_path) == (0, "")
    assert html.is_file()


# --- the market data a run ran on (RunStarted.market) ----------------------------------------------------


def _started(journal: Path, run_id: str) -> RunStarted:
    store = SqliteJournal(journal, create=False)
    try:
        started = store.events(run_id)[0]
    finally:
        store.close()
    assert isinstance(started, RunStarted)
    return started


def test_a_synthetic_run_records_what_generates_its_market_again(journaled: tuple[Path, str, str]) -> None:
    journal, _, _ = journaled
    source = _started(journal, "demo1").market
    assert isinstance(source, SyntheticSource)
    settings = load_settings(CONFIG)
    assert source.seed == settings.seed == 1
    symbols = [*plan_symbols(load_plan(PLAN)), *settings.account.positions]
    used = synthetic_market(settings.market, symbols, seed=settings.seed)
    again = synthetic_tape_of(source)  # from the journal alone
    assert again.symbols == used.symbols
    for symbol in used.symbols:
        for name in ("ts", "bid", "ask", "bid_size", "ask_size"):
            assert (getattr(again.columns(symbol), name) == getattr(used.columns(symbol), name)).all(), (
                symbol,
                name,
            )


def test_seed_option_is_the_seed_recorded(tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    code, out = _run(journal, "seeded", "--seed", "5")
    assert code == 0, out
    source = _started(journal, "seeded").market
    assert isinstance(source, SyntheticSource)
    assert source.seed == 5


def test_show_names_the_market_data_the_run_ran_on(journaled: tuple[Path, str, str]) -> None:
    journal, _, _ = journaled
    code, shown = _repeg("show", "demo1", "--journal", str(journal))
    assert code == 0
    assert shown.startswith("market data: synthetic market, seed 1, symbols AAPL MSFT")


def _old_journal(journal: Path) -> None:
    """`journal` holds run `old`, completed, journaled by a repeg that did not record the market (no field)."""
    SqliteJournal(journal).close()
    old_start = (
        '{"run_id":"old","ts":"2026-01-02T14:30:00Z","correlation_id":"old","leg_index":null,'
        '"kind":"run_started","plan":{"source":"plan.csv","kind":"trades","trades":[{"symbol":"AAA",'
        '"side":"buy","qty":"100","notional":null}],"weights":[]},"config":{"fill_wait_seconds":"10"},'
        '"broker":"simulator","code_version":"0.1.0"}'
    )
    end = '{"run_id":"old","ts":"2026-01-02T14:30:05Z","correlation_id":"old","kind":"run_ended","status":"completed"}'
    raw = sqlite3.connect(journal)
    raw.execute("INSERT INTO runs VALUES ('old', '2026-01-02T14:30:00+00:00')")
    for seq, (kind, payload) in enumerate((("run_started", old_start), ("run_ended", end)), 1):
        raw.execute(
            "INSERT INTO events VALUES ('old', ?, NULL, '2026-01-02T14:30:00+00:00', 'old', ?, ?)",
            (seq, kind, payload),
        )
    raw.commit()
    raw.close()


def test_show_of_a_run_journaled_before_sources_were_recorded_says_not_recorded(tmp_path: Path) -> None:
    journal = tmp_path / "old.db"
    _old_journal(journal)
    code, shown = _repeg("show", "old", "--journal", str(journal))
    assert code == 0, shown
    assert shown.startswith("market data: not recorded")
    assert "run old: completed" in shown


# --- a known run id given another market -----------------------------------------------------------------------

_QUOTES = """ts,symbol,bid,bid_size,ask,ask_size
2024-01-02T14:30:00.000000Z,AAA,10.00,100,10.02,100
2024-01-02T14:31:00.000000Z,AAA,10.01,100,10.03,100
2024-01-02T14:40:00.000000Z,AAA,10.01,100,10.03,100
"""


def _replay(tmp_path: Path, run_id: str, quotes: Path | None, *extra: str) -> tuple[int, str]:
    plan = tmp_path / "aaa.csv"
    plan.write_text("symbol,side,qty\nAAA,buy,10\n")
    given = ("--quotes", str(quotes)) if quotes is not None else ()
    return _repeg("run", str(plan), "--journal", str(tmp_path / "j.db"), "--run-id", run_id, *given, *extra)


def _quote_files(tmp_path: Path) -> tuple[Path, Path]:
    """(the file a run replays, another file of the same symbol and times but other prices)."""
    recorded, other = tmp_path / "recorded.csv", tmp_path / "other.csv"
    recorded.write_text(_QUOTES)
    other.write_text(_QUOTES.replace("10.03", "10.05"))
    return recorded, other


def test_a_finished_runs_id_with_another_quote_file_is_refused_naming_both(tmp_path: Path) -> None:
    # It answered with the run's journaled result, as if `other.csv` had been replayed: a result of another market.
    recorded, other = _quote_files(tmp_path)
    code, out = _replay(tmp_path, "q1", recorded)
    assert code in (0, 3), out
    code, out = _replay(tmp_path, "q1", other)
    assert code == 2, out
    assert out.startswith("error: config --quotes=")
    assert str(recorded.resolve()) in out
    assert str(other) in out
    assert _started(tmp_path / "j.db", "q1").market == quote_file_source(recorded)  # nothing journaled


def test_a_finished_runs_id_with_its_quote_file_moved_returns_its_result(tmp_path: Path) -> None:
    recorded, _ = _quote_files(tmp_path)
    first = _replay(tmp_path, "q2", recorded)
    moved = recorded.rename(tmp_path / "moved.csv")  # same bytes, same SHA-256
    assert _replay(tmp_path, "q2", moved) == first


def test_an_unfinished_runs_id_with_another_quote_file_is_refused_naming_both(tmp_path: Path) -> None:
    recorded, other = _quote_files(tmp_path)
    _replay(tmp_path, "q3", recorded)
    (tmp_path / "j.db").rename(tmp_path / "finished.db")
    _unfinished_copy(tmp_path / "finished.db", tmp_path / "j.db", "q3")
    code, out = _replay(tmp_path, "q3", other)
    assert code == 2, out
    assert str(recorded.resolve()) in out
    assert str(other) in out


def test_a_replayed_runs_id_without_quotes_is_refused_as_another_market(tmp_path: Path) -> None:
    recorded, _ = _quote_files(tmp_path)
    _replay(tmp_path, "q4", recorded)
    code, out = _replay(tmp_path, "q4", None)
    assert code == 2, out
    assert str(recorded.resolve()) in out
    assert "synthetic market" in out


def test_a_synthetic_runs_id_with_a_quote_file_is_refused_as_another_market(
    journaled: tuple[Path, str, str], tmp_path: Path
) -> None:
    journal, _, _ = journaled
    recorded, _ = _quote_files(tmp_path)
    code, out = _run(journal, "demo1", "--quotes", str(recorded))
    assert code == 2, out
    assert "synthetic market, seed 1" in out
    assert str(recorded) in out


def test_a_synthetic_runs_id_with_another_seed_is_refused_naming_both(
    journaled: tuple[Path, str, str],
) -> None:
    journal, _, _ = journaled
    code, out = _run(journal, "demo1", "--seed", "2")
    assert code == 2, out
    assert out.startswith("error: config --seed=2")
    assert "seed 1" in out


def test_a_synthetic_runs_id_recorded_by_another_generator_version_is_refused_naming_both(
    journaled: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same seed and settings make another tape under another version of the generator: not the run's market.
    from repeg import simulation
    from repeg.market.synthetic import GENERATOR_VERSION

    journal, _, _ = journaled
    monkeypatch.setattr(simulation, "GENERATOR_VERSION", GENERATOR_VERSION + 1)
    code, out = _run(journal, "demo1")
    assert code == 2, out
    assert out.startswith("error: config --run-id='demo1'")  # not --config: no option makes that market again
    assert f"generator version {GENERATOR_VERSION}" in out
    assert f"generator version {GENERATOR_VERSION + 1}" in out


def test_a_synthetic_runs_id_with_its_own_seed_returns_its_result(journaled: tuple[Path, str, str]) -> None:
    journal, table, _ = journaled
    assert _run(journal, "demo1", "--seed", "1") == (0, table)


def test_a_synthetic_runs_id_with_its_settings_written_otherwise_returns_its_result(tmp_path: Path) -> None:
    """The settings were compared as JSON text: a start price of "157.00", written again as 157.0 (the same
    price, the same tape), was refused as another market (exit 2) instead of answered with the run's result."""
    plan = tmp_path / "aaa.csv"
    plan.write_text("symbol,side,qty\nAAA,buy,10\n")
    table = "[simulator.market]\nduration_seconds = {}\n[simulator.market.symbols]\nAAA = {{ price = {} }}\n"
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text(table.format("600", '"157.00"'))
    second.write_text(table.format("600.0", "157.0"))
    journal = str(tmp_path / "j.db")
    ran = _repeg("run", str(plan), "--journal", journal, "--run-id", "s1", "--config", str(first))
    assert ran[0] == 0, ran[1]
    assert _repeg("run", str(plan), "--journal", journal, "--run-id", "s1", "--config", str(second)) == ran


def test_a_run_journaled_before_markets_were_recorded_returns_its_result_with_any_quotes(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j.db"
    _old_journal(journal)
    recorded, _ = _quote_files(tmp_path)
    plan = tmp_path / "plan.csv"
    plan.write_text("symbol,side,qty\nAAA,buy,100\n")
    code, out = _repeg(
        "run", str(plan), "--journal", str(journal), "--run-id", "old", "--quotes", str(recorded)
    )
    assert code == 0, out


def test_a_ctrl_c_swallowed_while_resume_loads_stops_it_before_the_broker_is_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C whose KeyboardInterrupt a library caught while the run was read from the journal was lost: the
    # resume went on to the broker and traded the rest of the run.
    import contextlib
    import signal

    from repeg.cli import journal_cmds, journal_run

    journal = tmp_path / "j.db"
    _journal_started_with(journal, {}, run_id="rI")
    reached: list[str] = []

    async def alpaca_session(*_args: object, broker: str, **_kwargs: object) -> None:
        reached.append(broker)

    def config_from_record(record: dict[str, str]) -> ExecutionConfig:
        # Delivered now (the handler runs before raise_signal returns), and dropped as a finalizer's exception is.
        with contextlib.suppress(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        return real(record)

    real = journal_cmds.config_from_record
    monkeypatch.setattr(journal_run, "alpaca_session", alpaca_session)
    monkeypatch.setattr(journal_cmds, "config_from_record", config_from_record)
    result = CliRunner().invoke(build_app(), ["resume", "rI", "--journal", str(journal)])
    assert (reached, result.exit_code, result.stderr) == ([], 130, "interrupted\n")


# --- output to a pipe or a file ----------------------------------------------------------------------------


def _piped(*args: str) -> str:
    """stdout of `repeg ARGS` written to a pipe or file (not a terminal) without COLUMNS: 80 columns for rich."""
    result = CliRunner().invoke(build_app(), list(args), env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_show_to_a_pipe_prints_the_results_table_whole_as_run_does(tmp_path: Path) -> None:
    # run widens a pipe's tables to 160 columns; show (and resume) printed 80, cutting prices to "10.…".
    journal = str(tmp_path / "j.db")
    ran = _piped("run", str(PLAN), "--config", str(CONFIG), "--journal", journal, "--run-id", "p1")
    assert _piped("show", "p1", "--journal", journal, "--no-events") == ran
    assert "…" not in ran


def test_runs_to_a_pipe_prints_whole_start_times(journaled: tuple[Path, str, str]) -> None:
    journal, _, _ = journaled
    listed = _piped("runs", "--journal", str(journal))
    started = _started(journal, "demo1").ts.isoformat(timespec="seconds")
    assert started in listed


def test_runs_and_show_print_a_plan_path_with_brackets_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tables read their cells as rich markup: "dir[red]/p[b].csv" was listed as "dir/p.csv".
    monkeypatch.chdir(tmp_path)
    plan = Path("dir[red]") / "p[b].csv"
    plan.parent.mkdir()
    plan.write_text(PLAN.read_text())
    code, out = _repeg("run", str(plan), "--config", str(CONFIG), "--journal", "j.db", "--run-id", "b1")
    assert code == 0, out
    assert "dir[red]/p[b].csv" in _piped("runs", "--journal", "j.db")
    assert '"source":"dir[red]/p[b].csv"' in _piped("show", "b1", "--journal", "j.db").replace(" │\n│", "")


def test_runs_names_a_journal_path_with_brackets_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The title read the journal's location as rich markup: "runs [old]/j.db" was titled "runs in runs /j.db",
    # another journal than the one listed, and a "[/x]" in the path crashed the command (exit 1).
    monkeypatch.chdir(tmp_path)
    for name in ("runs [old]", "a[", "a[/b]"):
        journal = Path(name) / "j.db"
        journal.parent.mkdir(parents=True, exist_ok=True)
        code, out = _run(journal, "n1")
        assert code == 0, out
        assert f"runs in {journal}" in _piped("runs", "--journal", str(journal))


def test_the_id_of_an_unfinished_alpaca_run_on_the_simulator_names_its_broker_not_a_new_run_id(
    tmp_path: Path,
) -> None:
    # It said "the in-process simulator it ran on is gone; use a new --run-id": advice to trade the plan again
    # while the run's own orders may still work at Alpaca.
    journal = tmp_path / "j.db"
    _journal_started_with(journal, {}, run_id="rU")
    plan = tmp_path / "plan.csv"
    plan.write_text("symbol,side,qty\nAAA,buy,1\n")
    code, out = _repeg("run", str(plan), "--journal", str(journal), "--run-id", "rU")
    assert code == 2, out
    assert "run rU was started on alpaca-paper, not simulator: resume it on alpaca-paper" in out
    assert "new --run-id" not in out


def test_resume_whose_journal_refuses_a_commit_exits_4_naming_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resumed session's commit is refused (another writer took the run's next sequence number): the failure
    is a JournalError (exit 4, 'error: journal ...'), also when closing the journal then reports it again, not a
    traceback (exit 1) from the close."""
    from repeg.cli import journal_run
    from repeg.domain.events import RunEnded

    journal = tmp_path / "j.db"
    _journal_started_with(journal, {}, run_id="rE")

    def ended(seconds: int) -> RunEnded:
        ts = datetime(2026, 3, 2, 15, 0, seconds, tzinfo=UTC)
        return RunEnded(run_id="rE", ts=ts, correlation_id="rE", status="failed")

    async def alpaca_session(*_args: object, journal: SqliteJournal, **_kwargs: object) -> None:
        await journal.emit(ended(1))
        await journal.flush()
        other = SqliteJournal(journal_path)
        await other.emit(ended(2))  # takes the sequence number the session's journal writes next
        other.close()
        await journal.emit(ended(3))
        await journal.flush()

    journal_path = journal
    monkeypatch.setattr(journal_run, "alpaca_session", alpaca_session)
    result = CliRunner().invoke(build_app(), ["resume", "rE", "--journal", str(journal)])
    assert result.exit_code == ExitCode.FAILED, result.exception
    assert result.stderr.startswith("error: journal")
    assert f"{journal}: cannot commit 1 events (UNIQUE constraint failed" in result.stderr


_JOURNAL_COMMANDS = [
    ["run", str(PLAN), "--config", str(CONFIG)],
    ["runs"],
    ["show", "x"],
    ["resume", "x"],
    ["report", "x", "--html", "r.html"],
]
_COMMAND_IDS = ["run", "runs", "show", "resume", "report"]


@pytest.mark.parametrize("command", _JOURNAL_COMMANDS, ids=_COMMAND_IDS)
def test_a_directory_as_the_journal_is_bad_input_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # It exited 4, "cannot open journal /tmp: unable to open database file", the code of a journal that failed.
    monkeypatch.chdir(tmp_path)
    code, out = _repeg(*command, "--journal", str(tmp_path))
    assert code == ExitCode.BAD_INPUT, out
    assert f"error: config --journal='{tmp_path}': a directory, not a journal file" in out
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("command", _JOURNAL_COMMANDS, ids=_COMMAND_IDS)
def test_an_empty_journal_is_bad_input_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # It exited 4, "cannot open journal .: unable to open database file": an empty --journal (or an unset
    # variable's REPEG_JOURNAL=) read as the working directory.
    monkeypatch.chdir(tmp_path)
    code, out = _repeg(*command, "--journal", "")
    assert code == ExitCode.BAD_INPUT, out
    assert "error: config --journal='': empty" in out
    assert list(tmp_path.iterdir()) == []


def test_a_directory_as_repeg_journal_is_bad_input_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPEG_JOURNAL", str(tmp_path))
    code, out = _repeg("runs")
    assert code == ExitCode.BAD_INPUT, out
    assert f"error: config --journal='{tmp_path}': a directory, not a journal file" in out


@pytest.mark.parametrize("command", _JOURNAL_COMMANDS, ids=_COMMAND_IDS)
def test_a_postgres_journal_without_psycopg_is_refused_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # It exited 4 (a JournalError: the journal failed) where a missing lab extra exits 2 naming the extra.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg: ModuleNotFoundError
    code, out = _repeg(*command, "--journal", "postgresql://u:secret@localhost/db")
    assert code == ExitCode.BAD_INPUT, out
    assert (
        "error: config --journal='postgresql://u:***@localhost/db': needs the postgres extra, and psycopg is not "
        "installed: pip install -e '.[postgres]'"
    ) in out
    assert "secret" not in out


@pytest.mark.parametrize("command", _JOURNAL_COMMANDS, ids=_COMMAND_IDS)
@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "POSTGRESQL"])
def test_a_url_that_is_no_postgresql_dsn_is_refused_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], scheme: str
) -> None:
    # A SQLAlchemy URL (or an upper-case scheme, which libpq does not take either) was read as a SQLite path:
    # "no journal at postgresql+psycopg://u:<password>@host/db", the password printed twice.
    monkeypatch.chdir(tmp_path)
    code, out = _repeg(*command, "--journal", f"{scheme}://u:secret@localhost/db")
    assert code == ExitCode.BAD_INPUT, out
    assert out.strip() == (
        f"error: config --journal='{scheme}://u:***@localhost/db': a URL, not a SQLite file; a PostgreSQL "
        "journal is named by a postgresql:// (or postgres://) DSN, with no driver suffix"
    )


def test_a_malformed_postgres_dsn_is_bad_input_naming_the_journal_option() -> None:
    # psycopg refuses it before connecting (ProgrammingError); it exited 4, as a database that failed.
    pytest.importorskip("psycopg")
    code, out = _repeg("runs", "--journal", "postgresql://u:secret@localhost/db?bogus=1")
    assert code == ExitCode.BAD_INPUT, out
    assert out.strip() == (
        "error: config --journal='postgresql://u:***@localhost/db?bogus=1': not a usable DSN: invalid URI query "
        'parameter: "bogus"'
    )


def test_resume_of_a_simulator_run_that_ended_points_to_its_result_not_to_running_the_plan_again(
    journaled: tuple[Path, str, str],
) -> None:
    # demo1 ended completed; resume told the user to "run its plan again under a new --run-id", for a finished plan.
    journal, _, _ = journaled
    result = CliRunner().invoke(build_app(), ["resume", "demo1", "--journal", str(journal)])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "it ended completed: `repeg show demo1` prints its result" in result.stderr
    assert "run its plan again" not in result.stderr


def _journal_an_idle_leg_finished_skipped(journal: Path, run_id: str) -> None:
    """`journal` holds `run_id` on alpaca-paper whose leg sent a submit the broker refused (the leg is idle), then a
    `leg_finished` `skipped` the leg machine refuses (only a leg that never sent may be skipped): a hand-edited
    journal, or one another repeg version wrote. The run ended `failed`."""
    import asyncio

    from repeg.domain.events import IntentAction, LegFinished, LegPlanned, OrderFailed, OrderIntent, RunEnded
    from repeg.domain.orders import Side
    from repeg.domain.plan import LegSpec

    _journal_started_with(journal, {}, run_id=run_id)
    store = SqliteJournal(journal)
    ts = datetime(2026, 3, 2, 15, 1, tzinfo=UTC)
    cid = f"{run_id}-L0000-A00"
    leg = {"run_id": run_id, "ts": ts, "leg_index": 0}
    events = (
        LegPlanned(
            **leg, correlation_id=run_id, spec=LegSpec(index=0, symbol="AAA", side=Side.BUY, qty=Decimal(1))
        ),
        OrderIntent(**leg, correlation_id=cid, action=IntentAction.SUBMIT, client_order_id=cid),
        OrderFailed(
            **leg,
            correlation_id=cid,
            action=IntentAction.SUBMIT,
            client_order_id=cid,
            error="E",
            message="no",
        ),
        LegFinished(**leg, correlation_id=run_id, status="skipped"),
        RunEnded(run_id=run_id, ts=ts, correlation_id=run_id, status="failed"),
    )
    try:
        for event in events:
            asyncio.run(store.emit(event))
    finally:
        store.close()


@pytest.mark.parametrize("command", ["show", "resume"])
def test_a_journaled_event_the_leg_machine_refuses_is_a_journal_error_naming_the_run_and_the_event(
    tmp_path: Path, command: str
) -> None:
    """`repeg runs` listed the run, but `show` died with a raw `IllegalTransitionError` traceback and `resume`
    said only "leg: event 'finish_skipped' is illegal in state 'idle'", both exit 1 (a bug) without naming the
    run, the journal or the event. A damaged journal is a failed journal: exit 4, naming them, nothing written."""
    journal = tmp_path / "j.db"
    _journal_an_idle_leg_finished_skipped(journal, "rI")
    before = journal.read_bytes()
    result = CliRunner().invoke(build_app(), [command, "rI", "--journal", str(journal)])
    assert result.exit_code == ExitCode.FAILED, result.stderr or result.exception
    assert f"journal {journal}: event 5 (leg_finished) of run 'rI'" in result.stderr
    assert "'finish_skipped' is illegal in state 'idle'" in result.stderr
    assert journal.read_bytes() == before


def test_resume_of_an_ended_sim_remote_run_answers_from_the_journal_without_sim_url(tmp_path: Path) -> None:
    """A run that ended leaving nothing open is answered from the journal without a broker (as on Alpaca since
    5cdb00a), but `resume` of an ended sim-remote run still refused it, exit 2, for want of a --sim-url it never
    contacts."""
    journal = tmp_path / "j.db"
    _journal_an_order_announced(journal, "rE", ended="partial", broker="sim-remote")
    result = CliRunner().invoke(build_app(), ["resume", "rE", "--journal", str(journal), "--json"])
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    assert json.loads(result.stdout)["status"] == "partial"


def test_resume_of_an_ended_sim_remote_run_with_an_order_left_open_still_needs_sim_url(
    tmp_path: Path,
) -> None:
    # Guard: its order may still work at the remote simulator, so the resume must reach it to close it.
    journal = tmp_path / "j.db"
    _journal_an_order_announced(journal, "rO", ended="partial", broker="sim-remote", planned=True)
    result = CliRunner().invoke(build_app(), ["resume", "rO", "--journal", str(journal)])
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert result.stderr.strip().startswith("error: config --sim-url: "), result.stderr


def test_a_journaled_leg_status_this_repeg_does_not_know_is_a_journal_error_naming_the_run_and_the_event(
    tmp_path: Path,
) -> None:
    """A `leg_finished` with a status another repeg version may write (here `deferred`): `show` died with a raw
    ValueError traceback (exit 1); it is a failed journal, exit 4, naming the run and the event."""
    import asyncio

    from repeg.domain.events import LegFinished, LegPlanned
    from repeg.domain.orders import Side
    from repeg.domain.plan import LegSpec

    journal = tmp_path / "j.db"
    _journal_started_with(journal, {}, run_id="rU")
    store = SqliteJournal(journal)
    leg = {
        "run_id": "rU",
        "ts": datetime(2026, 3, 2, 15, 1, tzinfo=UTC),
        "correlation_id": "rU",
        "leg_index": 0,
    }
    try:
        asyncio.run(
            store.emit(LegPlanned(**leg, spec=LegSpec(index=0, symbol="AAA", side=Side.BUY, qty=Decimal(1))))
        )
        asyncio.run(store.emit(LegFinished(**leg, status="deferred")))
    finally:
        store.close()
    result = CliRunner().invoke(build_app(), ["show", "rU", "--journal", str(journal)])
    assert result.exit_code == ExitCode.FAILED, result.stderr or result.exception
    assert f"journal {journal}: event 3 (leg_finished) of run 'rU'" in result.stderr
    assert "unknown leg status 'deferred'" in result.stderr


@pytest.mark.parametrize(
    "broker", [["--broker", "sim-remote", "--sim-url", "sim://127.0.0.1:9/x"], ["--broker", "alpaca-paper"]]
)
def test_resume_of_a_simulator_run_on_another_broker_points_to_its_result_not_to_resuming_it_on_the_simulator(
    journaled: tuple[Path, str, str], broker: list[str]
) -> None:
    """demo1 ran on the in-process simulator and ended: resume with another --broker told the user to "resume it on
    simulator", which resume refuses (its orders died with its process): advice that leads nowhere."""
    journal, _, _ = journaled
    result = CliRunner().invoke(build_app(), ["resume", "demo1", "--journal", str(journal), *broker])
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert "resume it on simulator" not in result.stderr
    assert "it ended completed: `repeg show demo1` prints its result" in result.stderr


def _as_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    """`repeg ARGS` as a user that file permissions bind (root keeps them only without its override capabilities)."""
    return _unprivileged(str(Path(sys.executable).with_name("repeg")), *args)


def _unprivileged(*command: str) -> subprocess.CompletedProcess[str]:
    import shutil

    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root without setpriv: permissions cannot bind")
        command = (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--", *command)
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=120)


def _archived(journal: Path, tmp_path: Path) -> Path:
    """A copy of `journal` in a directory `archive`: the caller makes it read-only (and writable again after)."""
    archive = tmp_path / "archive"
    archive.mkdir()
    copy = archive / "repeg.db"
    copy.write_bytes(journal.read_bytes())
    copy.chmod(0o444)
    return copy


def test_a_run_of_a_journal_archived_read_only_is_refused_to_be_worked_naming_the_journal(
    journaled: tuple[Path, str, str], tmp_path: Path
) -> None:
    """A journal read only because it is archived (`repeg show` reads it) is not worked: claiming a run is refused
    before anything is read or sent, saying the journal is read-only (its writes would all fail)."""
    copy = _archived(journaled[0], tmp_path)
    claim = "from pathlib import Path; from repeg.journal.sqlite import SqliteJournal; "
    claim += f"SqliteJournal(Path({str(copy)!r}), create=False).claim('demo1')"
    copy.parent.chmod(0o555)
    try:
        claimed = _unprivileged(sys.executable, "-c", claim)
    finally:
        copy.parent.chmod(0o755)
    assert claimed.returncode != 0
    assert f"JournalError: journal {copy} is read-only: its runs can be listed and shown" in claimed.stderr


def test_runs_and_show_read_a_journal_archived_in_a_read_only_directory(
    journaled: tuple[Path, str, str], tmp_path: Path
) -> None:
    """An archived journal (its directory made read-only): `runs` and `show` only read it, yet failed with exit 4
    'attempt to write a readonly database' (SQLite in WAL mode creates its -shm file beside the journal)."""
    journal, table, _ = journaled
    copy = _archived(journal, tmp_path)
    copy.parent.chmod(0o555)
    try:
        listed = _as_unprivileged("runs", "--journal", str(copy))
        shown = _as_unprivileged("show", "demo1", "--journal", str(copy), "--no-events")
    finally:
        copy.parent.chmod(0o755)
    assert listed.returncode == 0, listed.stderr
    assert "demo1" in listed.stdout
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == table.strip()


def test_an_archive_holding_a_write_ahead_log_without_its_index_is_refused_saying_what_to_do(
    journaled: tuple[Path, str, str], tmp_path: Path
) -> None:
    """An archived journal copied with its `-wal` (commits not yet in the file) but not its `-shm`, in a read-only
    directory: SQLite cannot create the index, and `runs` failed with its bare 'unable to open database file'."""
    import sqlite3

    copy = _archived(journaled[0], tmp_path)
    copy.chmod(0o644)
    holder = sqlite3.connect(
        copy
    )  # commits left in the log, as a run killed before its checkpoint leaves them
    try:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("CREATE TABLE held (x INTEGER)")
        holder.commit()
        wal = copy.with_name("repeg.db-wal")
        log = wal.read_bytes()
    finally:
        holder.close()
    wal.write_bytes(log)  # closing checkpointed and removed it: put the log back, without the index
    copy.with_name("repeg.db-shm").unlink(missing_ok=True)
    copy.chmod(0o444)
    copy.parent.chmod(0o555)
    try:
        listed = _as_unprivileged("runs", "--journal", str(copy))
    finally:
        copy.parent.chmod(0o755)
    assert listed.returncode == ExitCode.FAILED
    assert listed.stderr.count("\n") == 1, listed.stderr
    assert f"its write-ahead log {wal} holds commits not yet in it" in listed.stderr
    assert "make the journal and its directory writable once" in listed.stderr


def test_a_journal_in_a_directory_that_may_not_be_searched_is_a_journal_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    # Looking for a write-ahead log stranded beside the journal raised PermissionError from `Path.exists` there.
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o600)
    opened = "from pathlib import Path; from repeg.journal.sqlite import SqliteJournal; "
    opened += f"SqliteJournal(Path({str(closed / 'j.db')!r}))"
    try:
        done = _unprivileged(sys.executable, "-c", opened)
    finally:
        closed.chmod(0o755)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("repeg.errors.JournalError: cannot open journal"), done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["runs"],
        ["show", "demo1"],
        ["resume", "demo1"],
        ["run", str(PLAN), "--config", str(CONFIG), "--run-id", "demo1"],
    ],
    ids=["runs", "show", "resume", "run"],
)
def test_a_journal_path_through_a_directory_that_may_not_be_searched_is_one_line_not_a_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    # `Path.is_dir` raised PermissionError while checking that --journal was no directory: a traceback, exit 1.
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o600)
    journal = closed / "repeg.db"
    try:
        done = _as_unprivileged(*command, "--journal", str(journal))
    finally:
        closed.chmod(0o755)
    assert (done.returncode, done.stderr) == (
        ExitCode.FAILED,
        f"error: cannot open journal {journal}: Permission denied\n",
    )


# --- a stdout that refuses the output (a full disk) -------------------------------------------------------


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["runs"], "the runs of JOURNAL"),
        (["show", "demo1"], "run demo1"),
        (["show", "demo1", "--json"], "run demo1"),
        (["show", "demo1", "--no-events"], "run demo1"),
    ],
    ids=["runs", "show", "show-json", "show-no-events"],
)
def test_runs_and_show_to_a_stdout_that_cannot_hold_them_are_one_line_and_exit_4_not_a_traceback(
    journaled: tuple[Path, str, str], command: list[str], said: str
) -> None:
    # `repeg show RUN --json > run.json` on a full disk ended in a traceback, exit 1 ("a bug"), as `run` did
    # before ea4daa04: a script could not tell the document was cut.
    journal, _, _ = journaled
    done = _to_a_full_disk(*command, "--journal", str(journal))
    what = said.replace("JOURNAL", str(journal))
    assert (done.returncode, done.stderr) == (
        ExitCode.FAILED,
        f"error: {what} could not be written to stdout (No space left on device)\n",
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_a_resume_result_stdout_cannot_hold_is_one_line_naming_the_run_not_a_traceback(
    tmp_path: Path, as_json: bool
) -> None:
    # As `repeg run` since ea4daa04: the run's end and where to read it, exit 4, not a traceback and exit 1.
    journal = tmp_path / "j.db"
    _journal_an_order_announced(journal, "rE", ended="partial", broker="sim-remote")
    done = _to_a_full_disk("resume", "rE", "--journal", str(journal), *(["--json"] if as_json else []))
    assert (done.returncode, done.stderr) == (
        ExitCode.FAILED,
        "error: the result could not be written to stdout (No space left on device); run rE ended partial: "
        "`repeg show rE` prints it from the journal\n",
    )


#: A PostgreSQL journal no server answers (`journal_unreachable_in_two_lines` makes opening it fail).
UNREACHABLE_POSTGRES = "postgresql://u:pw@127.0.0.1:1/db"


def journal_unreachable_in_two_lines(monkeypatch: pytest.MonkeyPatch) -> str:
    """Opening a journal fails with libpq's two-line text (the hint on a line of its own); returns the one line
    stderr must read instead."""
    from repeg.errors import JournalError
    from repeg.journal import factory

    refused = "cannot open journal postgresql://u:***@127.0.0.1:1/db: connection failed: Connection refused"
    hint = "Is the server running on that host and accepting TCP/IP connections?"

    def unreachable(*_args: object, **_kwargs: object) -> None:
        raise JournalError(f"{refused}\n\t{hint}")

    monkeypatch.setattr(factory, "open_journal", unreachable)
    return f"error: {refused} {hint}\n"


@pytest.mark.parametrize(
    "command", [["runs"], ["show", "r1"], ["resume", "r1"]], ids=["runs", "show", "resume"]
)
def test_a_journal_error_whose_text_spans_lines_is_printed_on_one_line(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # A PostgreSQL journal that could not connect printed libpq's two-line text ("... Connection refused\n\tIs the
    # server running on that host ...?"), where every error is one line on stderr (as `run` since 2a7fc05d).
    said = journal_unreachable_in_two_lines(monkeypatch)
    result = CliRunner().invoke(build_app(), [*command, "--journal", UNREACHABLE_POSTGRES])
    assert (result.exit_code, result.stderr) == (ExitCode.FAILED, said)
