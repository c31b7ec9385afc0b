"""`repeg run` end to end on the simulator: exit codes, the JSON document, and one-line input errors."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import structlog
from click.testing import Result
from tests.fakes.alpaca_server import FakeAlpacaServer
from typer.testing import CliRunner

import repeg.planning.parse
import repeg.simulation
from repeg.cli.app import build_app
from repeg.cli.exit_codes import ExitCode
from repeg.journal.sqlite import SqliteJournal

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

QUOTES = """ts,symbol,bid,bid_size,ask,ask_size
2024-01-02T14:30:00.000000Z,AAA,10.00,100,10.02,100
2024-01-02T14:30:01.000000Z,BBB,20.00,100,20.04,100
2024-01-02T14:31:00.000000Z,AAA,10.01,100,10.03,100
2024-01-02T14:40:00.000000Z,AAA,10.01,100,10.03,100
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in its own directory, so that nothing (e.g. a journal) lands in the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(build_app(), ["run", *(str(a) for a in args)])


def test_demo_plan_completes_and_prints_exactly_one_json_document(workdir: Path) -> None:
    result = invoke(
        EXAMPLES / "rebalance.csv", "--config", EXAMPLES / "demo.toml", "--json", "--run-id", "t1"
    )
    assert result.exit_code == ExitCode.OK, result.stderr
    document = json.loads(result.stdout)  # the whole of stdout is one document
    assert document["run_id"] == "t1"
    assert document["status"] == "completed"
    assert {leg["side"] for leg in document["legs"]} == {"buy", "sell"}
    assert all(leg["status"] == "filled" for leg in document["legs"])
    assert len(document["legs"]) >= 10


def test_demo_shows_passive_fills_repegs_and_an_escalation(workdir: Path) -> None:
    result = invoke(
        EXAMPLES / "rebalance.csv", "--config", EXAMPLES / "demo.toml", "--json", "--run-id", "t2"
    )
    legs = json.loads(result.stdout)["legs"]
    assert any(leg["repegs"] == 0 and not leg["escalated"] for leg in legs)
    assert any(leg["repegs"] > 0 and not leg["escalated"] for leg in legs)
    assert any(leg["escalated"] for leg in legs)


def test_weight_zero_exits_the_whole_position(workdir: Path) -> None:
    result = invoke(
        EXAMPLES / "rebalance.csv", "--config", EXAMPLES / "demo.toml", "--json", "--run-id", "t3"
    )
    intc = next(leg for leg in json.loads(result.stdout)["legs"] if leg["symbol"] == "INTC")
    assert (intc["side"], Decimal(intc["filled_qty"])) == ("sell", Decimal(4000))


def test_same_seed_and_run_id_give_the_same_result(workdir: Path) -> None:
    args = (
        EXAMPLES / "trades.csv",
        "--config",
        EXAMPLES / "demo.toml",
        "--seed",
        "3",
        "--json",
        "--run-id",
        "same",
    )
    first = invoke(*args, "--journal", workdir / "a.db")
    second = invoke(*args, "--journal", workdir / "b.db")
    assert first.exit_code == ExitCode.OK, first.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)


def test_json_run_keeps_logs_off_stdout(workdir: Path) -> None:
    result = invoke(
        EXAMPLES / "trades.json", "--config", EXAMPLES / "demo.toml", "--json", "--log-json", "--run-id", "t4"
    )
    assert result.exit_code == ExitCode.OK, result.stderr
    json.loads(result.stdout)
    log_lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(line.get("run_id") == "t4" for line in log_lines)


def test_a_weights_run_tells_on_stderr_which_held_symbols_it_leaves_untouched(workdir: Path) -> None:
    """A held symbol that a weights plan does not name is never traded (README, Inputs): the run said nothing of
    it, so a user who expected it sold saw only the plan's symbols in the result."""
    plan = write(workdir, "w.csv", "symbol,weight\nAAA,0.1\n")
    config = write(workdir, "c.toml", "[simulator]\ncash = 10000\n[simulator.positions]\nZZZ = 5\nYYY = 1\n")
    result = invoke(plan, "--config", config, "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert [leg["symbol"] for leg in json.loads(result.stdout)["legs"]] == ["AAA"]
    (line,) = [line for line in result.stderr.splitlines() if "untouched" in line]
    assert "YYY" in line
    assert "ZZZ" in line
    assert "weight 0" in line


def test_table_output_has_results_and_quality_but_no_live_view_when_not_a_terminal(workdir: Path) -> None:
    result = invoke(EXAMPLES / "trades.csv", "--config", EXAMPLES / "demo.toml", "--run-id", "t5")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "run t5: completed" in result.stdout
    assert "execution quality" in result.stdout
    assert "phase" not in result.stdout  # the live view's title never reached a non-terminal stdout


def test_bad_plan_exits_2_naming_file_row_field_and_value(workdir: Path) -> None:
    plan = write(workdir, "bad.csv", "symbol,side,qty\nAAPL,buy,10\nMSFT,buy,-5\n")
    result = invoke(plan, "--json")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: {plan}, row 3, field 'qty' = '-5': qty must be greater than 0"


def test_bad_config_key_exits_2_naming_the_key(workdir: Path) -> None:
    config = write(workdir, "c.toml", "[execution]\nrepeg_steps = [0.5, 0.4]\n")
    result = invoke(EXAMPLES / "trades.csv", "--config", config)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "repeg_steps" in result.stderr
    assert "strictly increasing" in result.stderr


@pytest.mark.parametrize(
    ("name", "reason"), [("d", "a directory, not a file"), ("absent.toml", "no such file")]
)
def test_a_config_path_that_is_no_file_is_refused_naming_the_option(
    workdir: Path, name: str, reason: str
) -> None:
    # It printed "error: config d: cannot read TOML: [Errno 21] Is a directory: 'd'": the bare OSError, naming
    # the path as if it were a key, and no option.
    (workdir / "d").mkdir()
    result = invoke(EXAMPLES / "trades.csv", "--config", workdir / name)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr == f"error: config --config='{workdir / name}': {reason}\n"


def test_unknown_config_table_exits_2(workdir: Path) -> None:
    config = write(workdir, "c.toml", "[executon]\nfill_wait_seconds = 5\n")
    result = invoke(EXAMPLES / "trades.csv", "--config", config)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "executon" in result.stderr


def test_safety_limit_refuses_the_plan_with_exit_2(workdir: Path) -> None:
    config = write(workdir, "c.toml", "[execution]\nmax_order_notional = 1000\n")
    result = invoke(EXAMPLES / "trades.csv", "--config", config, "--json")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "max_order_notional is 1000, refused value" in result.stderr
    assert result.stdout == ""


def test_symbol_unknown_to_the_broker_exits_2(workdir: Path) -> None:
    quotes = write(workdir, "q.csv", QUOTES)
    plan = write(workdir, "p.csv", "symbol,side,qty\nAAA,buy,10\nZZZ,buy,1\n")
    result = invoke(plan, "--quotes", quotes)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.strip() == f"error: {plan}, row 3, field 'symbol' = 'ZZZ': unknown to the broker"


def test_missing_quotes_file_exits_2(workdir: Path) -> None:
    result = invoke(EXAMPLES / "trades.csv", "--quotes", workdir / "nope.csv")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "nope.csv" in result.stderr


def test_replayed_quotes_fill_a_trade_list(workdir: Path) -> None:
    quotes = write(workdir, "q.csv", QUOTES)
    plan = write(workdir, "p.csv", "symbol,side,qty\nAAA,buy,10\n")
    result = invoke(plan, "--quotes", quotes, "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    (leg,) = json.loads(result.stdout)["legs"]
    assert Decimal(leg["filled_qty"]) == Decimal(10)
    assert Decimal("10.00") <= Decimal(leg["avg_fill_price"]) <= Decimal("10.03")


def test_a_replayed_quote_file_is_parsed_once_and_its_tape_handed_to_the_simulator(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quote file runs to gigabytes: `run --quotes` parses it once (it is hashed for the journal, not parsed)."""
    from repeg.market import loaders

    parsed: list[object] = []
    load = loaders.load_quotes

    def counted(path: Path | str) -> object:
        parsed.append(load(path))
        return parsed[-1]

    monkeypatch.setattr(loaders, "load_quotes", counted)
    handed: list[object] = []
    simulate = repeg.simulation.simulate
    monkeypatch.setattr(
        repeg.simulation, "simulate", lambda *a, **k: handed.append(k["tape"]) or simulate(*a, **k)
    )
    plan = write(workdir, "p.csv", "symbol,side,qty\nAAA,buy,10\n")
    result = invoke(plan, "--quotes", write(workdir, "q.csv", QUOTES), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert len(parsed) == 1
    assert handed == parsed


def test_a_quote_file_changed_while_it_is_read_is_refused_not_recorded_by_its_new_digest(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is parsed, then hashed for the journal: a writer finishing it in between had the run replay the
    old quotes under the SHA-256 of the new ones (which `repeg report` would then draw as the run's)."""
    from repeg.market import loaders

    quotes = write(workdir, "q.csv", QUOTES)
    load = loaders.load_quotes

    def load_then_rewrite(path: Path | str) -> object:
        tape = load(path)
        quotes.write_text(QUOTES.replace("10.03", "10.05"), encoding="utf-8")
        os.utime(quotes, ns=(0, 0))  # another time, whatever the file system's clock resolution
        return tape

    monkeypatch.setattr(loaders, "load_quotes", load_then_rewrite)
    plan = write(workdir, "p.csv", "symbol,side,qty\nAAA,buy,10\n")
    result = invoke(plan, "--quotes", quotes, "--journal", workdir / "j.db", "--run-id", "moved")
    assert result.exit_code == ExitCode.BAD_INPUT, result.stdout
    assert result.stderr.startswith(f"error: {quotes}: ")
    assert "changed while" in result.stderr


def test_partly_refused_run_exits_3(workdir: Path) -> None:
    plan = write(workdir, "p.csv", "symbol,side,qty\nAAA,buy,10\nBBB,sell,10\n")  # BBB is not held
    result = invoke(plan, "--json")
    assert result.exit_code == ExitCode.PARTIAL
    assert json.loads(result.stdout)["status"] == "partial"


def test_wholly_refused_run_exits_4(workdir: Path) -> None:
    plan = write(workdir, "p.csv", "symbol,side,qty\nBBB,sell,10\n")
    result = invoke(plan, "--json")
    assert result.exit_code == ExitCode.FAILED
    assert json.loads(result.stdout)["status"] == "failed"


def test_unknown_broker_exits_2(workdir: Path) -> None:
    result = invoke(EXAMPLES / "trades.csv", "--broker", "nyse-direct")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "nyse-direct" in result.stderr


def test_unexpected_exception_exits_1_with_one_line(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(repeg.simulation, "simulate", explode)
    result = invoke(EXAMPLES / "trades.csv")
    assert result.exit_code == ExitCode.INTERNAL
    assert "internal error: RuntimeError: boom" in result.stderr


def test_an_empty_run_id_is_refused_with_exit_2_before_any_order(workdir: Path) -> None:
    # `--run-id "$ID"` with ID unset ran the plan under a fresh id each time: the retry a run id is there to make
    # safe traded the plan again. Refused, and nothing is journaled.
    result = invoke(EXAMPLES / "rebalance.csv", "--run-id", "", "--json")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "run_id ''" in result.stderr
    assert result.stdout == ""
    assert not (workdir / "repeg.db").exists()


def test_help_lists_the_run_command() -> None:
    result = CliRunner().invoke(build_app(), ["--help"])
    assert result.exit_code == 0
    # Not just "run" anywhere: `runs` and the app's own description contain it too.
    assert re.search(r"^\W*run\s+Execute PLAN", result.stdout, re.MULTILINE), result.stdout


def test_exchange_latency_from_the_config_still_completes(workdir: Path) -> None:
    config = write(workdir, "c.toml", "[simulator.latency]\nsubmit_ack = 0.2\ncancel = 0.5\nreplace = 0.5\n")
    result = invoke(EXAMPLES / "rebalance.csv", "--config", config, "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"


def test_terminal_run_draws_the_live_view_then_the_results(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stdout as a terminal
    monkeypatch.setenv("COLUMNS", "160")
    result = invoke(EXAMPLES / "rebalance.csv", "--config", EXAMPLES / "demo.toml", "--run-id", "t6")
    assert result.exit_code == ExitCode.OK, result.stderr
    live_title = result.stdout.find("legs filled")
    assert live_title != -1
    assert result.stdout.find("execution quality") > live_title


def test_unknown_log_level_is_refused_with_exit_2_in_one_line(workdir: Path) -> None:
    result = invoke(EXAMPLES / "trades.csv", "--log-level", "loud", "--json")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: config --log-level='loud': must be one of debug, info, warning, error"
    ]


def test_lab_error_prints_the_refused_value_verbatim_with_exit_2() -> None:
    result = CliRunner().invoke(build_app(), ["backtest", "--quotes", "q.csv", "--fill-model", "[/]paper[x]"])
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert "'[/]paper[x]'" in result.stderr


def test_a_known_run_id_given_another_plan_is_refused_not_reported_as_that_run(workdir: Path) -> None:
    first = invoke(EXAMPLES / "trades.csv", "--config", EXAMPLES / "demo.toml", "--run-id", "r", "--json")
    assert first.exit_code == ExitCode.OK, first.stderr
    other = write(workdir, "other.csv", "symbol,side,qty\nMSFT,buy,1\n")
    second = invoke(other, "--config", EXAMPLES / "demo.toml", "--run-id", "r", "--json")
    assert second.exit_code == ExitCode.BAD_INPUT
    assert second.stdout == ""
    assert "--run-id" in second.stderr


def test_a_known_run_id_given_the_same_plan_prints_the_journaled_result(workdir: Path) -> None:
    # The simulator is deterministic: executing the plan again under the same id gives the same document, so the
    # journal must show that nothing ran a second time (the comparison alone passed with the plan run twice).
    args = (EXAMPLES / "trades.csv", "--config", EXAMPLES / "demo.toml", "--run-id", "r", "--json")
    first = invoke(*args)
    journaled = _journaled_events(workdir / "repeg.db", "r")
    again = invoke(*args)
    assert again.exit_code == ExitCode.OK, again.stderr
    assert json.loads(again.stdout) == json.loads(first.stdout)
    assert _journaled_events(workdir / "repeg.db", "r") == journaled


def _journaled_events(path: Path, run_id: str) -> int:
    store = SqliteJournal(path, create=False)
    try:
        return len(store.events(run_id))
    finally:
        store.close()


def test_unknown_alpaca_feed_is_refused_with_exit_2_before_any_request(workdir: Path) -> None:
    result = invoke(EXAMPLES / "trades.csv", "--broker", "alpaca-paper", "--feed", "xyz")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.strip() == "error: config --feed='xyz': unknown feed (known: iex, sip)"


def test_the_feeds_run_accepts_are_the_alpaca_adapters() -> None:
    from repeg.brokers.alpaca.settings import DataFeed
    from repeg.cli.run import FEEDS

    assert set(FEEDS) == {feed.value for feed in DataFeed}


def test_quotes_file_with_a_broker_that_cannot_replay_it_is_refused(workdir: Path) -> None:
    quotes = write(workdir, "q.csv", QUOTES)
    result = invoke(EXAMPLES / "trades.csv", "--quotes", quotes, "--broker", "alpaca-live", "--confirm")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.startswith("error: config --quotes=")


def _small_quotes(directory: Path) -> Path:
    """Twenty minutes of one symbol's quotes, every 5 s: enough for a small backtest or a fit."""
    rows = [
        f"2024-01-02T14:{30 + i // 12:02d}:{i % 12 * 5:02d}.000000Z,AAA,100.00,100,100.02,100"
        for i in range(240)
    ]
    return write(directory, "q.csv", "ts,symbol,bid,bid_size,ask,ask_size\n" + "\n".join(rows) + "\n")


def _small_backtest_result(directory: Path) -> Path:
    quotes = _small_quotes(directory)
    out = directory / "result.json"
    args = ["backtest", "--quotes", str(quotes), "--basket", "2", "--policy", "market", "--out", str(out)]
    assert CliRunner().invoke(build_app(), args).exit_code == 0
    return out


def test_report_prints_only_the_written_paths_on_stdout(workdir: Path) -> None:
    result_file = _small_backtest_result(workdir)
    structlog.reset_defaults()  # as in a fresh `repeg report` process, where nothing configured logging yet
    html = workdir / "r.html"
    result = CliRunner().invoke(build_app(), ["report", str(result_file), "--html", str(html), "--no-market"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{html}\n"


def test_resume_refuses_an_unknown_log_level_with_exit_2(workdir: Path) -> None:
    result = CliRunner().invoke(build_app(), ["resume", "r1", "--log-level", "loud"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert (
        result.stderr.strip()
        == "error: config --log-level='loud': must be one of debug, info, warning, error"
    )


def _readme_table(heading: str) -> dict[str, list[str]]:
    """The first table after `heading` in README.md: first cell (backticks dropped) -> the other cells."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    cells = [
        [cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in lines[start + 2 : end]
    ]
    return {row[0]: row[1:] for row in cells}


def test_readme_configuration_lists_exactly_the_execution_keys_with_their_defaults() -> None:
    from repeg.config import ExecutionConfig

    documented = _readme_table("## Configuration")
    assert set(documented) == set(ExecutionConfig.model_fields)
    for key, (default, _meaning) in documented.items():
        value = ExecutionConfig.model_fields[key].default
        if value is None:
            assert default == "none", key
        elif isinstance(value, tuple):
            assert default == "[" + ", ".join(str(step) for step in value) + "]", key
        elif isinstance(value, str):  # the enums
            assert default == f'"{value}"', key
        else:
            assert Decimal(default) == Decimal(str(value)), key


def test_fill_wait_beyond_the_default_total_wait_is_refused_naming_max_total_wait(workdir: Path) -> None:
    config = write(workdir, "c.toml", "[execution]\nfill_wait_seconds = 200\n")  # max_total_wait left at 120
    result = invoke(EXAMPLES / "trades.csv", "--config", config, "--json")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "max_total_wait" in result.stderr


def test_fit_names_the_file_it_wrote_verbatim(workdir: Path) -> None:
    out = workdir / "params[b].json"
    result = CliRunner().invoke(
        build_app(), ["fit", "--quotes", str(_small_quotes(workdir)), "--out", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    assert out.is_file()
    assert result.stdout.strip().endswith(f"-> {out}")


def test_lab_error_is_one_line_however_long() -> None:
    value = "x" * 120
    result = CliRunner().invoke(build_app(), ["backtest", "--quotes", "q.csv", "--fill-model", value])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.strip() == f"error: config --fill-model='{value}': must be one of paper, queue"


def _alpaca_runs_on_the_fake(fake_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run --broker alpaca-paper` trades on `fake_alpaca`, with its keys in the environment."""
    import asyncio

    from tests.fakes.alpaca_fixtures import FAST

    from repeg.brokers.alpaca.settings import AlpacaUrls
    from repeg.cli import alpaca_cmds

    def on_the_fake(*args: object, **kwargs: object) -> object:
        kwargs.update(urls=AlpacaUrls.loopback(fake_alpaca.base_url), settings=FAST)
        return asyncio.run(alpaca_cmds.execute_on_alpaca(*args, **kwargs))  # type: ignore[arg-type]

    monkeypatch.setattr(alpaca_cmds, "run_on_alpaca", on_the_fake)
    monkeypatch.setenv("APCA_API_KEY_ID", fake_alpaca.key_id)
    monkeypatch.setenv("APCA_API_SECRET_KEY", fake_alpaca.secret_key)


async def test_a_dry_run_that_priced_every_order_exits_0(
    workdir: Path, fake_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run sends nothing by design, so its legs cannot fill; that is its success, not a failed run (4)."""
    import asyncio

    _alpaca_runs_on_the_fake(fake_alpaca, monkeypatch)
    plan = write(workdir, "p.csv", "symbol,side,qty\nMSFT,sell,10\nAAPL,buy,5\n")
    config = write(
        workdir, "c.toml", "[execution]\nquote_max_age = 600\nquote_wait = 1\n"
    )  # the fake's quotes are old
    args = (plan, "--config", config, "--broker", "alpaca-paper", "--dry-run", "--json")
    result = await asyncio.to_thread(invoke, *args)
    assert "dry run: 2 order(s) priced, none sent" in result.stderr
    assert fake_alpaca.count("POST", "/v2/orders") == 0
    assert result.exit_code == ExitCode.OK, result.stderr


async def _dry_run_collared(
    workdir: Path, fake_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, rows: str
) -> Result:
    """`repeg run --dry-run --json` on the fake Alpaca of a trade list of `rows`, under a 3 bps price collar that
    refuses AAPL's joining limit (its bid is 5 bps from the mid)."""
    import asyncio

    _alpaca_runs_on_the_fake(fake_alpaca, monkeypatch)
    plan = write(workdir, "p.csv", "symbol,side,qty\n" + rows)
    config = write(
        workdir,
        "c.toml",
        "[execution]\nquote_max_age = 600\nquote_wait = 1\ninitial_offset = 0\nprice_collar_pct = 0.03\n",
    )
    args = (plan, "--config", config, "--broker", "alpaca-paper", "--dry-run", "--json")
    return await asyncio.to_thread(invoke, *args)


async def test_a_dry_run_that_could_not_price_a_leg_does_not_exit_0(
    workdir: Path, fake_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run promises to price the first order of every leg. One whose AAPL limit the price collar refuses (the
    bid is 5 bps from the mid, the collar 3) printed "1 order(s) priced" and still exited 0, as if every leg had
    been priced, though the real run would end partial (3). It now exits as that run would, and names the leg."""
    result = await _dry_run_collared(workdir, fake_alpaca, monkeypatch, "MSFT,sell,10\nAAPL,buy,5\n")
    assert "dry run: 1 order(s) priced, none sent" in result.stderr
    assert "AAPL     not priced: AAPL: price_collar_pct is 0.03" in result.stderr
    assert fake_alpaca.count("POST", "/v2/orders") == 0
    assert result.exit_code == ExitCode.PARTIAL, result.stderr


async def test_a_dry_run_that_could_price_no_leg_exits_4(
    workdir: Path, fake_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard (3a470e5 tested only the partial case): a dry run whose only leg the price collar refuses priced
    nothing, as the real run would fill nothing: it exits 4 (failed), not 3, and names the leg."""
    result = await _dry_run_collared(workdir, fake_alpaca, monkeypatch, "AAPL,buy,5\n")
    assert "dry run: 0 order(s) priced, none sent" in result.stderr
    assert "AAPL     not priced: AAPL: price_collar_pct is 0.03" in result.stderr
    assert fake_alpaca.count("POST", "/v2/orders") == 0
    assert result.exit_code == ExitCode.FAILED, result.stderr


def test_an_unknown_run_id_is_bad_input_not_a_journal_failure(workdir: Path) -> None:
    _ = invoke(EXAMPLES / "trades.csv", "--config", EXAMPLES / "demo.toml", "--json")  # the journal exists
    result = CliRunner().invoke(build_app(), ["show", "nope"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.strip() == "error: run 'nope' is not in the journal repeg.db"


def test_backtest_out_that_cannot_be_written_exits_2_in_one_line(workdir: Path) -> None:
    out = workdir / "missing" / "result.json"
    args = ["backtest", "--quotes", str(_small_quotes(workdir)), "--basket", "2", "--policy", "market"]
    result = CliRunner().invoke(build_app(), [*args, "--out", str(out)])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.startswith("error: ")
    assert str(out) in result.stderr


def test_report_html_that_cannot_be_written_exits_2_in_one_line(workdir: Path) -> None:
    html = workdir / "missing" / "r.html"
    args = ["report", str(_small_backtest_result(workdir)), "--html", str(html), "--no-market"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.startswith("error: ")
    assert str(html) in result.stderr


def test_sweep_out_that_cannot_be_written_exits_2_in_one_line(workdir: Path) -> None:
    (workdir / "days").mkdir()
    _small_quotes(workdir).rename(workdir / "days" / "aaa_20240102.csv")
    grid = write(workdir, "grid.toml", '[basket]\ncount = 2\n[[policy]]\nname = "m"\nkind = "market"\n')
    out = workdir / "missing" / "o.parquet"
    args = ["sweep", "--quotes", str(workdir / "days" / "*.csv"), "--grid", str(grid), "--out", str(out)]
    result = CliRunner().invoke(build_app(), [*args, "--workers", "1", "--no-progress"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.startswith("error: ")
    assert str(out) in result.stderr


DEEP_JSON = "[" * 100_000 + "]" * 100_000
DEEP_TOML = "x = " + DEEP_JSON + "\n"


def test_a_report_source_nested_too_deeply_exits_2_in_one_line(workdir: Path) -> None:
    # The result loader's RecursionError escaped `report`: a traceback and exit 1 for a malformed file.
    source = write(workdir, "deep.json", DEEP_JSON)
    result = CliRunner().invoke(build_app(), ["report", str(source), "--html", str(workdir / "r.html")])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr == f"error: {source}: nested too deeply\n"


def test_a_sweep_grid_nested_too_deeply_exits_2_in_one_line(workdir: Path) -> None:
    grid = write(workdir, "deep.toml", DEEP_TOML)
    args = ["sweep", "--quotes", str(_small_quotes(workdir)), "--grid", str(grid), "--out", "o.parquet"]
    result = CliRunner().invoke(build_app(), [*args, "--workers", "1", "--no-progress"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr == f"error: {grid}: nested too deeply\n"


def test_a_backtest_policy_file_nested_too_deeply_exits_2_in_one_line(workdir: Path) -> None:
    policy = write(workdir, "deep.toml", DEEP_TOML)
    args = ["backtest", "--quotes", str(_small_quotes(workdir)), "--basket", "2", "--policy", str(policy)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "nested too deeply" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_params_file_nested_too_deeply_is_named_not_the_policy_that_points_to_it(workdir: Path) -> None:
    # c924733 caught the RecursionError around the whole backtest and blamed --policy: "--policy='p.toml': nested
    # too deeply" for a p.toml that is fine, where the fault is in the parameters file it names.
    params = write(workdir, "deep.json", DEEP_JSON)
    policy = write(workdir, "p.toml", f'[policy]\nkind = "adaptive"\nparams_file = "{params}"\n')
    args = ["backtest", "--quotes", str(_small_quotes(workdir)), "--basket", "2", "--policy", str(policy)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr == f"error: config params_file='{params}': cannot read: nested too deeply\n"


def test_a_refused_value_is_printed_verbatim_not_as_an_emoji_code(workdir: Path) -> None:
    plan = write(workdir, "p.csv", "symbol,side,qty\nAAPL,buy,:fire:\n")
    result = invoke(plan)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.strip() == f"error: {plan}, row 2, field 'qty' = ':fire:': not a number"


def test_a_lab_refused_value_is_printed_verbatim_not_as_an_emoji_code() -> None:
    result = CliRunner().invoke(build_app(), ["backtest", "--quotes", "q.csv", "--fill-model", ":fire:"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "':fire:'" in result.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_output_to_a_closed_pipe_exits_quietly_with_the_runs_own_code(workdir: Path, as_json: bool) -> None:
    # `repeg run plan.csv | head -1` exited 1 ("internal error") once head had gone, hiding how the run ended.
    # The pipe's read end is closed before repeg starts, so its first write fails: no timing involved.
    args = [EXAMPLES / "rebalance.csv", "--config", EXAMPLES / "demo.toml", "--run-id", "p1"]
    reader, writer = os.pipe()
    os.close(reader)
    entry = "from repeg.cli.app import main; main()"
    command = [sys.executable, "-c", entry, "run", *map(str, args), *(["--json"] if as_json else [])]
    try:
        done = subprocess.run(command, stdout=writer, stderr=subprocess.PIPE, timeout=300, check=False)
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr.decode()) == (ExitCode.OK, "")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--latency", "inf"),
        ("--latency", "1e300"),
        ("--qty", "-5"),
        ("--qty", "NaN"),
        ("--qty", "abc"),
        (
            "--qty",
            "1e-10",
        ),  # rounds to zero shares: every order refused, "no order filled" after the whole run
        ("--qty", "0.0000000015"),  # finer than the simulator's 1e-9 share step: every order refused
        ("--qty", "1e25"),  # more than the largest amount (1e12): refused by the basket, before any order
        ("--qty", "\u0661\u0660\u0660"),  # Arabic-Indic digits: Decimal read them as 100 shares
        ("--qty", "1_00"),  # Python's digit separator: Decimal read it as 100 shares
        ("--budget", "1e9"),
    ],
)
def test_a_bad_backtest_option_exits_2_in_one_line_naming_the_option(
    workdir: Path, option: str, value: str
) -> None:
    # --latency inf crashed with OverflowError (exit 1); a --qty or --budget the basket refused printed
    # pydantic's multi-line report naming the model's field, not the option.
    args = ["backtest", "--quotes", str(_small_quotes(workdir)), "--basket", "2", "--policy", "market"]
    result = CliRunner().invoke(build_app(), [*args, option, value])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.startswith(f"error: config {option}=")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["backtest", "compare"])
def test_a_basket_larger_than_a_trading_day_holds_is_refused_naming_the_option(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    # No upper bound: --basket 5000000 generated millions of parent orders and ran for hours.
    from repeg.lab import backtest

    def generated(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the basket was generated")

    monkeypatch.setattr(backtest, "day_basket", generated)
    policy = ["--policy", "market"] if command == "backtest" else ["--policies", "market"]
    args = [command, "--quotes", str(_small_quotes(workdir)), *policy, "--basket", "23401"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert result.stderr.startswith("error: config --basket=23401: ")
    assert "23400" in result.stderr or "23,400" in result.stderr


def test_sweep_workers_beyond_four_per_cpu_are_refused_naming_the_option(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No upper bound: --workers 100000 spawned a process per point, thousands of them.
    import os

    from repeg.lab import sweep

    def pooled(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the pool was started")

    monkeypatch.setattr(sweep, "run_local", pooled)
    grid = write(workdir, "grid.toml", '[basket]\ncount = 2\n[[policy]]\nname = "m"\nkind = "market"\n')
    too_many = 4 * (os.cpu_count() or 1) + 1
    args = ["sweep", "--quotes", str(_small_quotes(workdir)), "--grid", str(grid), "--out", "s.parquet"]
    result = CliRunner().invoke(build_app(), [*args, "--workers", str(too_many), "--no-progress"])
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert result.stderr.startswith(f"error: config --workers={too_many}: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_negative_lab_seed_is_refused_naming_the_option(workdir: Path) -> None:
    # It reached numpy, whose "expected non-negative integer" named neither the option nor the value.
    args = ["backtest", "--quotes", str(_small_quotes(workdir)), "--basket", "2", "--policy", "market"]
    result = CliRunner().invoke(build_app(), [*args, "--seed", "-1"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "--seed" in result.stderr


# --- Ctrl-C before any order --------------------------------------------------------------------------------


def _interrupt() -> None:
    raise KeyboardInterrupt


def _ctrl_c_caught_by_a_library(wrap: bool) -> None:
    """A real SIGINT, delivered now (`raise_signal` runs the handler before it returns), whose KeyboardInterrupt a
    library catches: pydantic raises its SchemaError instead, a finalizer's is printed "Exception ignored"."""
    import signal

    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        if wrap:
            raise ValueError("Error building validator: KeyboardInterrupt") from None


@pytest.mark.parametrize("library", ["none", "wraps", "swallows"])
def test_ctrl_c_while_the_commands_load_exits_130_in_one_line_not_a_traceback(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], library: str
) -> None:
    # A Ctrl-C in the first half second of `repeg run` (the command modules still importing) escaped `main` as
    # a raw KeyboardInterrupt: a Python traceback, where a later Ctrl-C exits 130 cleanly. Caught by a library
    # the import ran, it was a traceback of that library's error, or lost (and the run went on).
    import importlib

    import repeg.cli.app

    real = importlib.import_module

    def import_module(name: str, package: str | None = None) -> object:
        if name == "repeg.cli.lab_cmds":
            _interrupt() if library == "none" else _ctrl_c_caught_by_a_library(wrap=library == "wraps")
        return real(name, package)

    monkeypatch.setattr(repeg.cli.app.importlib, "import_module", import_module)
    monkeypatch.setattr(sys, "argv", ["repeg", "run", str(EXAMPLES / "trades.csv"), "--journal", "j.db"])
    try:
        with pytest.raises(SystemExit) as stopped:
            repeg.cli.app.main()
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C while the commands load escaped main() as a KeyboardInterrupt (a traceback)")
    assert (stopped.value.code, capsys.readouterr().err) == (130, "interrupted\n")
    assert not (workdir / "j.db").exists()


def test_the_entry_points_module_imports_neither_typer_nor_rich() -> None:
    # The console script imports `repeg.cli.app` before `main()` can catch a Ctrl-C: what that import loads is
    # a window in which Ctrl-C prints a traceback, so it must stay tiny.
    probe = "import sys, repeg.cli.app; print(sorted({'typer', 'rich'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_ctrl_c_while_the_plan_loads_exits_130_with_the_same_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("repeg.planning.parse.load_plan", lambda path: _interrupt())
    result = invoke(EXAMPLES / "trades.csv", "--run-id", "c1")
    assert (result.exit_code, result.stderr) == (130, "interrupted\n")
    assert result.stdout == ""


def test_ctrl_c_during_an_in_process_run_exits_130_and_keeps_what_was_journaled(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repeg.domain.events import RunStarted

    class _CtrlC:
        async def emit(self, event: object) -> None:
            if isinstance(event, RunStarted):
                _interrupt()

    real = repeg.simulation.simulate
    monkeypatch.setattr(
        repeg.simulation, "simulate", lambda *a, **kw: real(*a, **{**kw, "sinks": [*kw["sinks"], _CtrlC()]})
    )
    result = invoke(EXAMPLES / "trades.csv", "--run-id", "c2", "--journal", workdir / "j.db")
    store = SqliteJournal(workdir / "j.db", create=False)
    try:
        kinds = [type(event) for event in store.events("c2")]
    finally:
        store.close()
    assert (result.exit_code, result.stderr) == (130, "interrupted\n")
    assert kinds == [RunStarted]


def test_ctrl_c_a_library_turned_into_its_own_error_while_loading_is_no_internal_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen with a real Ctrl-C 0.6 s into `repeg run`: "internal error: SchemaError ... KeyboardInterrupt", exit 1,
    # after a logged traceback.
    real = repeg.planning.parse.load_plan
    monkeypatch.setattr(
        "repeg.planning.parse.load_plan", lambda path: (_ctrl_c_caught_by_a_library(True), real(path))[1]
    )
    result = invoke(EXAMPLES / "trades.csv", "--run-id", "c3")
    assert (result.exit_code, result.stderr) == (130, "interrupted\n")


def test_a_sigint_the_process_was_started_ignoring_stays_ignored_while_the_run_loads(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shell starts a script's background job (`repeg run ... &`) with SIGINT ignored, so that a Ctrl-C at the
    # terminal is not its: the loading-phase handler (2ecea50) was armed over SIG_IGN, and that Ctrl-C stopped the
    # run ('interrupted', exit 130) where the process was started not to heed it.
    import signal

    real = repeg.planning.parse.load_plan
    monkeypatch.setattr(
        "repeg.planning.parse.load_plan", lambda path: (signal.raise_signal(signal.SIGINT), real(path))[1]
    )
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = invoke(EXAMPLES / "trades.csv", "--run-id", "c6", "--journal", workdir / "j.db")
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.exit_code != ExitCode.INTERRUPTED, result.stderr
    assert "run c6" in result.stdout


def test_ctrl_c_a_library_swallowed_while_loading_still_stops_the_run_before_any_order(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen with a real Ctrl-C while a large quote file loaded: "Exception ignored in: <function
    # _get_module_lock.<locals>.cb>... KeyboardInterrupt", and then the run traded the whole plan, exit 0.
    real = repeg.planning.parse.load_plan
    monkeypatch.setattr(
        "repeg.planning.parse.load_plan", lambda path: (_ctrl_c_caught_by_a_library(False), real(path))[1]
    )
    result = invoke(EXAMPLES / "trades.csv", "--run-id", "c4", "--journal", workdir / "j.db")
    assert (result.exit_code, result.stderr, result.stdout) == (130, "interrupted\n", "")
    store = SqliteJournal(workdir / "j.db", create=False)
    try:
        assert not store.has_run("c4")
    finally:
        store.close()


def test_compare_refuses_a_qty_that_rounds_to_zero_shares_naming_the_option(workdir: Path) -> None:
    args = ["compare", "--quotes", str(_small_quotes(workdir)), "--basket", "2", "--policies", "market"]
    result = CliRunner().invoke(build_app(), [*args, "--fill-models", "paper", "--qty", "1e-10"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert (
        result.stderr.strip()
        == "error: config --qty='1e-10': rounds to zero shares (orders trade in steps of 0.000000001 shares)"
    )


def test_a_backtest_arrival_whose_qty_rounds_to_zero_shares_is_refused_naming_it(workdir: Path) -> None:
    arrivals = write(workdir, "arrivals.csv", "ts,side,qty\n2024-01-02T14:30:30Z,buy,0.0000000001\n")
    args = [
        "backtest",
        "--quotes",
        str(_small_quotes(workdir)),
        "--arrivals",
        str(arrivals),
        "--policy",
        "market",
    ]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.startswith(
        f"error: {arrivals}, row 2, field 'qty' = '0.0000000001': rounds to zero shares"
    )


def test_an_arrivals_file_of_more_orders_than_a_basket_holds_is_refused_naming_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cap of --basket held for generated baskets only: a file of millions of arrivals ran for hours.
    from repeg.lab import backtest

    def ran(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the backtest ran")

    monkeypatch.setattr(backtest, "run_backtest", ran)
    rows = "".join(f"2024-01-02T14:31:00.{k:06d}Z,buy,1\n" for k in range(23_401))
    arrivals = write(workdir, "arrivals.csv", "ts,side,qty\n" + rows)
    args = ["backtest", "--quotes", str(_small_quotes(workdir)), "--arrivals", str(arrivals)]
    result = CliRunner().invoke(build_app(), [*args, "--policy", "market"])
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert result.stderr.startswith(f"error: {arrivals}")
    assert "23,401 arrivals" in result.stderr


def test_an_arrival_budget_beyond_a_year_is_refused_naming_its_row(workdir: Path) -> None:
    # It was refused as "config max_total_wait=1000000000000.0: ...", a key the user never wrote.
    arrivals = write(
        workdir, "arrivals.csv", "ts,side,qty,budget_seconds\n2024-01-02T14:31:00Z,buy,100,1e12\n"
    )
    args = ["backtest", "--quotes", str(_small_quotes(workdir)), "--arrivals", str(arrivals)]
    result = CliRunner().invoke(build_app(), [*args, "--policy", "market"])
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert result.stderr.startswith(
        f"error: {arrivals}, row 2, field 'budget_seconds' = '1e12': must be at most"
    )


def test_a_sweep_grid_basket_qty_that_rounds_to_zero_shares_is_refused_when_the_grid_is_read(
    workdir: Path,
) -> None:
    # It ran every point, and the first ended "no order filled at all" in a worker: a traceback, exit 1.
    grid = write(
        workdir, "g.toml", '[basket]\ncount = 2\nqty = "1e-10"\n[[policy]]\nname = "m"\nkind = "market"\n'
    )
    args = ["sweep", "--quotes", str(_small_quotes(workdir)), "--grid", str(grid), "--out", "s.parquet"]
    result = CliRunner().invoke(build_app(), [*args, "--no-progress", "--workers", "1"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "basket.qty" in result.stderr
    assert "rounds to zero shares" in result.stderr


def test_a_run_id_another_process_is_working_is_refused_on_the_simulator_too(workdir: Path) -> None:
    # README (6eb5aba): `run --run-id` of a run another process is still working is refused before anything is
    # read or sent (exit 4). The in-process simulator never claimed the run: a second `repeg run --run-id` ran the
    # plan beside the first and journaled under the same id.
    from repeg.journal.lock import RunLock, lock_path

    held = RunLock.acquire(lock_path(workdir / "repeg.db", "busy"))
    assert held is not None
    try:
        result = invoke(EXAMPLES / "rebalance.csv", "--run-id", "busy", "--json")
    finally:
        held.release()
    assert result.exit_code == ExitCode.FAILED, result.stderr
    assert "run busy is being worked by another repeg process" in result.stderr
    assert result.stdout == ""
    store = SqliteJournal(workdir / "repeg.db", create=False)
    try:
        assert not store.has_run("busy")
    finally:
        store.close()


def _to_a_closed_pipe(args: list[str], cwd: Path) -> tuple[int, str]:
    """`repeg ARGS` through the console script's entry point, its stdout a pipe whose reader is gone before it
    starts (so its first write fails: no timing involved): the exit code and stderr."""
    reader, writer = os.pipe()
    os.close(reader)
    entry = "from repeg.cli.app import main; main()"
    try:
        done = subprocess.run(
            [sys.executable, "-c", entry, *args],
            stdout=writer,
            stderr=subprocess.PIPE,
            cwd=cwd,
            timeout=300,
            check=False,
        )
    finally:
        os.close(writer)
    return done.returncode, done.stderr.decode()


@pytest.mark.parametrize("as_json", [False, True], ids=["tables", "json"])
def test_compare_to_a_closed_pipe_exits_0_quietly(workdir: Path, as_json: bool) -> None:
    # `repeg compare ... | head -1` exited 1, "internal error" by the exit table, with nothing on stderr: only
    # run, runs, show and resume handled a reader that went away.
    quotes = _small_quotes(workdir)
    args = [
        "compare",
        "--quotes",
        str(quotes),
        "--basket",
        "2",
        "--policies",
        "market",
        "--fill-models",
        "paper",
    ]
    assert _to_a_closed_pipe([*args, *(["--json"] if as_json else [])], workdir) == (ExitCode.OK, "")


def test_backtest_to_a_closed_pipe_exits_0_quietly(workdir: Path) -> None:
    args = ["backtest", "--quotes", str(_small_quotes(workdir)), "--basket", "2", "--policy", "market"]
    assert _to_a_closed_pipe(args, workdir) == (ExitCode.OK, "")


def test_a_refusal_to_a_closed_pipe_keeps_its_exit_code_and_its_line(workdir: Path) -> None:
    # Only stdout's reader went away: an error still says what it is on stderr, with its own code.
    code, stderr = _to_a_closed_pipe(["compare", "--quotes", "missing.csv", "--policies", "market"], workdir)
    assert code == ExitCode.BAD_INPUT
    assert stderr.startswith("error: ")


def _without(package: str, args: list[str], cwd: Path) -> tuple[int, str]:
    """`repeg ARGS` in a process where `package` cannot be imported (as without the lab extras): exit code and
    stderr (a process of its own: repeg's modules that imported it stay as they are in this one)."""
    entry = f"import sys; sys.modules[{package!r}] = None; from repeg.cli.app import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", entry, *args], capture_output=True, cwd=cwd, timeout=300, check=False
    )
    return done.returncode, done.stderr.decode()


def test_report_without_the_lab_extras_is_refused_naming_the_extra(workdir: Path) -> None:
    # It ended in a ModuleNotFoundError traceback (exit 1, "internal error"): plotly comes with the lab extras.
    result_file = _small_backtest_result(workdir)
    code, stderr = _without("plotly", ["report", str(result_file), "--html", "r.html"], workdir)
    assert (code, stderr) == (
        ExitCode.BAD_INPUT,
        "error: repeg report: needs the lab extras, and plotly is not installed: pip install -e '.[lab]'\n",
    )
    assert not (workdir / "r.html").exists()


def test_sweep_on_ray_without_the_lab_extras_is_refused_naming_the_extra(workdir: Path) -> None:
    quotes = _small_quotes(workdir)
    grid = write(workdir, "grid.toml", '[basket]\ncount = 2\n[[policy]]\nname = "m"\nkind = "market"\n')
    args = ["sweep", "--quotes", str(quotes), "--grid", str(grid), "--out", "o.parquet", "--engine", "ray"]
    code, stderr = _without("ray", [*args, "--no-progress"], workdir)
    assert (code, stderr) == (
        ExitCode.BAD_INPUT,
        "error: --engine: ray needs the lab extras, and ray is not installed: pip install -e '.[lab]'\n",
    )


def test_a_missing_module_that_is_no_lab_extra_is_still_an_internal_error(workdir: Path) -> None:
    # Only the lab extras' packages are refused as not installed: repeg's own module missing is a bug.
    result_file = _small_backtest_result(workdir)
    code, stderr = _without(
        "repeg.lab.report_html", ["report", str(result_file), "--html", "r.html"], workdir
    )
    assert code == ExitCode.INTERNAL
    assert "ModuleNotFoundError" in stderr


def test_ctrl_c_during_a_lab_command_says_interrupted_and_exits_130(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C during `repeg compare` (or backtest, fit, report, sweep, check) exited 130 with nothing on stderr,
    # where the exit table has 130 say `interrupted`, as run and resume do.
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("repeg.lab.compare"), "compare", interrupted)
    args = ["compare", "--quotes", str(_small_quotes(workdir)), "--basket", "2", "--policies", "market"]
    # Paper only: the queue model without --trades adds its note to stderr.
    result = CliRunner().invoke(build_app(), [*args, "--fill-models", "paper"])
    assert (result.exit_code, result.stdout, result.stderr) == (ExitCode.INTERRUPTED, "", "interrupted\n")


@pytest.mark.parametrize(
    ("command", "option"),
    [("backtest", "--fill-model"), ("compare", "--fill-models")],
    ids=["backtest", "compare"],
)
def test_an_unknown_fill_model_is_refused_naming_the_option_given(
    workdir: Path, command: str, option: str
) -> None:
    # It said "config fill-model='bogus'", an option neither command has (compare's is --fill-models).
    args = [command, "--quotes", str(_small_quotes(workdir)), "--basket", "2", option, "bogus"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr == f"error: config {option}='bogus': must be one of paper, queue\n"


def _compare_refused(workdir: Path, flags: list[str]) -> str:
    """The last line on stderr of `repeg compare` with `flags`, which must refuse them (exit 2)."""
    args = ["compare", "--quotes", str(_small_quotes(workdir)), "--basket", "2", *flags]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    return str(result.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--policies", "adaptive"], "config --policies='adaptive': no policy to compare"),
        (["--policies", ","], "config --policies=',': no policy to compare"),
        (
            ["--policies", "market", "--fill-models", ""],
            "config --fill-models='': no fill model to compare under",
        ),
    ],
    ids=["only-adaptive-unfittable", "blank-policies", "blank-fill-models"],
)
def test_compare_with_nothing_to_compare_names_the_option_and_the_value_given(
    workdir: Path, flags: list[str], expected: str
) -> None:
    # `--policies adaptive` (skipped: nothing to fit it on) was refused as "config policies=''": a value the user
    # never gave, under a key that is no option.
    assert _compare_refused(workdir, flags) == f"error: {expected}"


@pytest.mark.parametrize(
    ("command", "option"), [("backtest", "--policy"), ("compare", "--policies")], ids=["backtest", "compare"]
)
def test_an_unknown_policy_is_refused_naming_the_option_the_value_and_the_known_policies(
    workdir: Path, command: str, option: str
) -> None:
    # It said "config policy='bogus'" (neither command has a `policy` option) and quoted an OSError.
    args = [command, "--quotes", str(_small_quotes(workdir)), "--basket", "2", option, "bogus"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr == (
        f"error: config {option}='bogus': unknown policy (known: adaptive, default, ladder, market, "
        "touch-then-market) and no such TOML file\n"
    )


@pytest.mark.parametrize(
    ("name", "reason"), [("d", "a directory, not a file"), ("absent.csv", "no such file")]
)
def test_an_arrivals_path_that_is_no_file_is_refused_naming_the_option(
    workdir: Path, name: str, reason: str
) -> None:
    # It printed the bare OSError, "error: [Errno 21] Is a directory: 'd'", naming no option.
    (workdir / "d").mkdir()
    args = ["backtest", "--quotes", str(_small_quotes(workdir)), "--arrivals", str(workdir / name)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr == f"error: config --arrivals='{workdir / name}': {reason}\n"


def test_fit_out_that_cannot_be_written_is_refused_naming_the_option(workdir: Path) -> None:
    # It printed the bare OSError, "error: [Errno 21] Is a directory: 'd'", naming no option.
    (workdir / "d").mkdir()
    args = ["fit", "--quotes", str(_small_quotes(workdir)), "--out", str(workdir / "d")]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr == f"error: config --out='{workdir / 'd'}': cannot write: Is a directory\n"


def test_a_symbol_not_in_the_quote_file_is_refused_naming_the_option(workdir: Path) -> None:
    # It said "config symbol='ZZZZ'", an option the command does not have (it has --symbol).
    quotes = _small_quotes(workdir)
    args = ["backtest", "--quotes", str(quotes), "--basket", "2", "--symbol", "ZZZZ"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.startswith(f"error: config --symbol='ZZZZ': not in {quotes} (it holds (")


@pytest.mark.parametrize(
    ("out", "reason"), [("days", "a directory, not a file"), ("missing/o.parquet", "no directory")]
)
def test_a_sweep_out_that_cannot_be_written_is_refused_before_the_sweep_runs(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, out: str, reason: str
) -> None:
    # The whole sweep ran (hours on many days) before --out was found unwritable, and its results were lost.
    import repeg.lab.sweep

    def must_not_run(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the sweep ran")

    monkeypatch.setattr(repeg.lab.sweep, "run_sweep", must_not_run)
    (workdir / "days").mkdir()
    _small_quotes(workdir).rename(workdir / "days" / "aaa_20240102.csv")
    grid = write(workdir, "grid.toml", '[basket]\ncount = 2\n[[policy]]\nname = "m"\nkind = "market"\n')
    args = [
        "sweep",
        "--quotes",
        str(workdir / "days" / "*.csv"),
        "--grid",
        str(grid),
        "--out",
        str(workdir / out),
    ]
    result = CliRunner().invoke(build_app(), [*args, "--workers", "1", "--no-progress"])
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert result.stderr.startswith(f"error: --out: cannot write {workdir / out}: {reason}")


def test_a_sweep_quotes_pattern_matching_no_file_is_refused_naming_the_pattern(workdir: Path) -> None:
    grid = write(workdir, "grid.toml", '[basket]\ncount = 2\n[[policy]]\nname = "m"\nkind = "market"\n')
    pattern = str(workdir / "none-*.csv")
    args = ["sweep", "--quotes", pattern, "--grid", str(grid), "--out", "o.parquet"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr == f"error: --quotes: {pattern!r} matched no file\n"


@pytest.mark.parametrize(
    ("command", "work"),
    [("backtest", "run_backtest"), ("compare", "compare"), ("fit", "fit_adaptive")],
    ids=["backtest", "compare", "fit"],
)
def test_an_out_that_cannot_be_written_is_refused_before_the_work_it_would_save(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, command: str, work: str
) -> None:
    # --out in a directory that does not exist was found only once the backtest, comparison or fit had run.
    import repeg.lab.backtest
    import repeg.lab.compare
    import repeg.lab.fit

    def must_not_run(*_args: object, **_kwargs: object) -> None:
        raise AssertionError(f"{work} ran")

    for module in (repeg.lab.backtest, repeg.lab.compare, repeg.lab.fit):
        if hasattr(module, work):
            monkeypatch.setattr(module, work, must_not_run)
    out = workdir / "missing" / "o.json"
    args = [command, "--quotes", str(_small_quotes(workdir)), "--out", str(out)]
    result = CliRunner().invoke(build_app(), [*args, *(["--basket", "2"] if command != "fit" else [])])
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert result.stderr == f"error: config --out='{out}': cannot write: no directory {out.parent}\n"


@pytest.mark.parametrize("command", [["run", "PLAN"], ["runs"], ["show", "r1"]], ids=["run", "runs", "show"])
def test_an_empty_repeg_journal_variable_is_refused_not_read_as_unset(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # REPEG_JOURNAL= (a variable set from an unset one) was read as no variable: the run journaled to ./repeg.db,
    # where `repeg resume` with the intended journal never finds it. The README refuses it (exit 2).
    plan = write(workdir, "p.csv", "symbol,side,qty\nAAA,buy,1\n")
    journaled = invoke(plan, "--journal", workdir / "other.db", "--run-id", "r1", "--json")
    assert journaled.exit_code == ExitCode.OK
    # a journal of the working directory, not the intended one
    (workdir / "other.db").rename(workdir / "repeg.db")
    monkeypatch.setenv("REPEG_JOURNAL", "")
    args = [str(plan) if arg == "PLAN" else arg for arg in command]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "error: config REPEG_JOURNAL='': empty" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "command", [["runs"], ["show", "r1"], ["resume", "r1"]], ids=["runs", "show", "resume"]
)
def test_an_empty_repeg_journal_variable_without_a_journal_here_is_refused_naming_the_variable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # With no ./repeg.db, runs and show said "no journal at repeg.db" (a file the user never named) rather than
    # that REPEG_JOURNAL was set but empty, as run says since 4b7ee656.
    monkeypatch.setenv("REPEG_JOURNAL", "")
    result = CliRunner().invoke(build_app(), command)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert result.stderr.startswith("error: config REPEG_JOURNAL='': empty"), result.stderr
    assert not (workdir / "repeg.db").exists()


def test_an_explicit_journal_is_used_whatever_repeg_journal_holds(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = write(workdir, "p.csv", "symbol,side,qty\nAAA,buy,1\n")
    monkeypatch.setenv("REPEG_JOURNAL", "")
    result = invoke(plan, "--journal", workdir / "mine.db", "--json")
    assert result.exit_code == ExitCode.OK, result.output
    assert (workdir / "mine.db").exists()


def _run_with_stdout(
    stdout: int | None, *args: str | Path, close_stdout: bool = False
) -> subprocess.CompletedProcess[bytes]:
    entry = "from repeg.cli.app import main; main()"
    command = [sys.executable, "-c", entry, "run", *map(str, args)]
    return subprocess.run(
        command,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=300,
        check=False,
        preexec_fn=(lambda: os.close(1)) if close_stdout else None,
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("as_json", [False, True])
def test_a_result_stdout_cannot_hold_is_one_line_naming_the_run_not_a_traceback(
    workdir: Path, as_json: bool
) -> None:
    # `repeg run plan.csv --json > result.json` on a full disk ended in a traceback, exit 1 ("a bug"), after the
    # run had traded: now one line says the result was not written, how the run ended and where to read it.
    args = [EXAMPLES / "rebalance.csv", "--run-id", "full1", *(["--json"] if as_json else [])]
    with open("/dev/full", "w") as full:
        done = _run_with_stdout(full.fileno(), *args)
    stderr = done.stderr.decode()
    assert done.returncode == ExitCode.FAILED, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("error: the result could not be written to stdout (No space left on device)")
    assert "run full1 ended completed: `repeg show full1` prints it" in stderr
    assert len(stderr.splitlines()) == 1


def test_a_json_result_with_stdout_closed_ends_quietly_with_the_runs_own_code(workdir: Path) -> None:
    # With stdout closed (`>&-`) the table run exited 0, the --json run with a traceback and exit 1.
    done = _run_with_stdout(None, EXAMPLES / "rebalance.csv", "--json", close_stdout=True)
    assert (done.returncode, done.stderr.decode()) == (ExitCode.OK, "")


def test_an_error_whose_text_spans_lines_is_printed_on_one_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PostgreSQL journal that could not connect printed libpq's two-line text ("... Connection refused\n\tIs the
    # server running on that host ...?"), where every error is one line on stderr.
    from repeg.errors import JournalError

    def unreachable(*_args: object, **_kwargs: object) -> None:
        raise JournalError(
            "cannot open journal postgresql://u:***@127.0.0.1:1/db: connection failed: Connection refused\n"
            "\tIs the server running on that host and accepting TCP/IP connections?"
        )

    monkeypatch.setattr(repeg.simulation, "simulate", unreachable)
    result = invoke(EXAMPLES / "trades.csv", "--config", EXAMPLES / "demo.toml")
    assert result.exit_code == ExitCode.FAILED
    assert result.stderr == (
        "error: cannot open journal postgresql://u:***@127.0.0.1:1/db: connection failed: Connection refused "
        "Is the server running on that host and accepting TCP/IP connections?\n"
    )


def _to_a_full_disk(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`repeg ARGS` through the console script's entry point, its stdout /dev/full (every write: ENOSPC)."""
    entry = "from repeg.cli.app import main; main()"
    with open("/dev/full", "w") as full:
        command = [sys.executable, "-c", entry, *map(str, args)]
        return subprocess.run(
            command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300, check=False
        )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    "command",
    [
        ["report", "r1", "--journal", "j.db", "--html", "r.html"],
        ["backtest", "--quotes", "q.csv", "--basket", "2", "--policy", "market", "--json"],
        ["backtest", "--quotes", "q.csv", "--basket", "2", "--policy", "market"],
        ["fit", "--quotes", "q.csv", "--out", "f.json"],
    ],
    ids=["report", "backtest-json", "backtest", "fit"],
)
def test_any_command_whose_output_stdout_refuses_says_so_in_one_line_and_exits_4(
    workdir: Path, command: list[str]
) -> None:
    # `repeg report RUN --html r.html > out` or `repeg backtest --json > out` on a full disk ended in a traceback
    # and exit 1 ("a bug"), where run, resume, runs and show say it in one line and exit 4 (since ea4daa04).
    _small_quotes(workdir)
    assert invoke(EXAMPLES / "rebalance.csv", "--journal", "j.db", "--run-id", "r1").exit_code == ExitCode.OK
    done = _to_a_full_disk(*command)
    assert (done.returncode, done.stderr) == (
        ExitCode.FAILED,
        f"error: the output of repeg {command[0]} could not be written to stdout (No space left on device)\n",
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--help"], []], ids=["help", "no-command"])
def test_the_help_stdout_refuses_is_said_in_one_line_and_exits_4(args: list[str]) -> None:
    # `repeg --help > out` (or a bare `repeg`, which prints the help) on a full disk ended in a traceback and exit 1
    # ("a bug"): the help is printed before any command runs, where f301fb29's command group does not look.
    done = _to_a_full_disk(*args)
    assert (done.returncode, done.stderr) == (
        ExitCode.FAILED,
        "error: the output of repeg could not be written to stdout (No space left on device)\n",
    )


@pytest.mark.parametrize(
    "command",
    [["run", "PLAN"], ["runs"], ["show", "r1"], ["resume", "r1"]],
    ids=["run", "runs", "show", "resume"],
)
def test_a_blank_repeg_journal_variable_is_refused_naming_the_variable_not_journal_option(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # REPEG_JOURNAL="  " was refused as "config --journal='  ': empty", naming an option the user never gave.
    plan = write(workdir, "p.csv", "symbol,side,qty\nAAA,buy,1\n")
    monkeypatch.setenv("REPEG_JOURNAL", "  ")
    args = [str(plan) if arg == "PLAN" else arg for arg in command]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert result.stderr.startswith("error: config REPEG_JOURNAL='  ': empty"), result.stderr


@pytest.mark.parametrize("command", ["backtest", "compare"])
def test_a_lab_json_document_with_stdout_closed_ends_quietly_with_the_commands_own_code(
    workdir: Path, command: str
) -> None:
    # With stdout closed (`>&-`) `repeg backtest --json` ended in a traceback (AttributeError), exit 1, where
    # `run --json` ends quietly since ea4daa04 and the README says every command does.
    quotes = _small_quotes(workdir)
    policy = (
        ["--policy", "market"]
        if command == "backtest"
        else ["--policies", "market", "--fill-models", "paper"]
    )
    args = [command, "--quotes", str(quotes), "--basket", "2", *policy, "--json"]
    entry = "from repeg.cli.app import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", entry, *args],
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=lambda: os.close(1),
    )
    assert (done.returncode, done.stderr) == (ExitCode.OK, "")


async def test_a_dry_run_result_stdout_refuses_points_to_the_journal_that_holds_it(
    workdir: Path, fake_alpaca: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dry run is journaled (as "alpaca-paper (dry run)", since 6945d548), yet its refused result said "nothing was
    # sent or journaled" (74b595b2), while `repeg show RUN` prints it.
    import asyncio
    import errno

    from repeg.cli import run as run_module

    def full_disk(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    _alpaca_runs_on_the_fake(fake_alpaca, monkeypatch)
    monkeypatch.setattr(run_module, "_print_result", full_disk)
    plan = write(workdir, "p.csv", "symbol,side,qty\nMSFT,sell,10\n")
    config = write(workdir, "c.toml", "[execution]\nquote_max_age = 600\nquote_wait = 1\n")
    args = (plan, "--config", config, "--broker", "alpaca-paper", "--dry-run", "--json", "--run-id", "dry1")
    result = await asyncio.to_thread(invoke, *args)
    assert result.exit_code == ExitCode.FAILED, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: the result could not be written to stdout (No space left on device); ")
    assert "dry run dry1" in last
    assert "journaled" not in last
    assert "`repeg show dry1`" in last
    shown = CliRunner().invoke(build_app(), ["show", "dry1"])
    assert shown.exit_code == ExitCode.OK, shown.stderr


def test_a_lab_error_whose_text_spans_lines_is_printed_on_one_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `repeg backtest/compare/fit` printed a library's two-line error text (a hint on a line of its own) as two
    # lines, where every error is one line on stderr (README, Exit codes), as `run` does since 2a7fc05d.
    from repeg.errors import MarketDataError

    def unreadable(*_args: object, **_kwargs: object) -> None:
        raise MarketDataError(
            "cannot read the quotes: connection failed\n\tIs the server running on that host?"
        )

    monkeypatch.setattr(importlib.import_module("repeg.lab.backtest"), "load_day", unreadable)
    args = ["backtest", "--quotes", str(_small_quotes(workdir)), "--basket", "2", "--policy", "market"]
    result = CliRunner().invoke(build_app(), args)
    assert (result.exit_code, result.stderr) == (
        ExitCode.FAILED,
        "error: cannot read the quotes: connection failed Is the server running on that host?\n",
    )


def test_a_check_error_whose_text_spans_lines_is_printed_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # `repeg check` printed an error's text as it came, so a broker's text spanning lines (a proxy's page) was
    # several lines on stderr, where every error is one line (README, Exit codes), as in every other command.
    from repeg.errors import BrokerUnavailableError

    def unreachable(*_args: object, **_kwargs: object) -> None:
        raise BrokerUnavailableError("Alpaca answered 502:\n<html>\n  <body>Bad Gateway</body>\n</html>")

    monkeypatch.setattr(
        importlib.import_module("repeg.brokers.alpaca.factory"), "build_readonly_broker", unreachable
    )
    result = CliRunner().invoke(build_app(), ["check"])
    assert (result.exit_code, result.stderr) == (
        ExitCode.FAILED,
        "error: Alpaca answered 502: <html> <body>Bad Gateway</body> </html>\n",
    )


@pytest.mark.parametrize(
    "command",
    [
        ["backtest", "--basket", "2", "--policy", "market"],
        ["compare", "--basket", "2", "--policies", "market"],
        ["fit"],
    ],
    ids=["backtest", "compare", "fit"],
)
def test_a_lab_out_that_is_the_quote_file_is_refused_and_the_quotes_kept(
    workdir: Path, command: list[str]
) -> None:
    # `--out q.csv` ran the command, then wrote its JSON over the quotes it had read (exit 0): the day's data was
    # lost to a slip of the command line, where `report --html` and `sweep --out` refuse naming what they read.
    quotes = _small_quotes(workdir)
    text = quotes.read_text()
    result = CliRunner().invoke(build_app(), [*command, "--quotes", str(quotes), "--out", str(quotes)])
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert result.stderr.startswith("error: config --out=")
    assert quotes.read_text() == text


def test_a_lab_out_that_is_the_policy_file_or_its_params_file_is_refused_and_the_file_kept(
    workdir: Path,
) -> None:
    # A policy TOML given by --policy, or the params_file it names, was overwritten with the result's JSON.
    quotes = _small_quotes(workdir)
    fit_quotes = write(workdir, "fit.csv", quotes.read_text().replace("2024-01-02", "2024-01-03"))
    params = workdir / "params.json"
    fitted = CliRunner().invoke(build_app(), ["fit", "--quotes", str(fit_quotes), "--out", str(params)])
    assert fitted.exit_code == 0, fitted.output
    policy = write(workdir, "adaptive.toml", f'[policy]\nkind = "adaptive"\nparams_file = "{params}"\n')
    args = ["backtest", "--quotes", str(quotes), "--basket", "2", "--policy", str(policy)]
    assert CliRunner().invoke(build_app(), args).exit_code == 0  # out of sample: it runs
    for written in (policy, params):
        kept = written.read_text()
        result = CliRunner().invoke(build_app(), [*args, "--out", str(written)])
        assert result.exit_code == ExitCode.BAD_INPUT, result.output
        assert result.stderr.startswith("error: config --out=")
        assert written.read_text() == kept


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--policies", "market, market"],
            "config --policies='market, market': policy names must be unique; repeated: ['market']",
        ),
        (
            ["--policies", "market", "--fill-models", "paper,paper"],
            "config --fill-models='paper,paper': each fill model at most once",
        ),
    ],
    ids=["repeated-policy", "repeated-fill-model"],
)
def test_compare_with_a_repeated_policy_or_fill_model_names_the_option_and_the_value_given(
    workdir: Path, flags: list[str], expected: str
) -> None:
    # Refused as "config policies='market,market'" and "config fill-models='paper,paper'": keys that are no option
    # (the options are --policies and --fill-models), the first with a value rebuilt from the names, not as given.
    assert _compare_refused(workdir, flags) == f"error: {expected}"


@pytest.mark.parametrize(
    "command",
    [["backtest", "--policy", "adaptive"], ["compare", "--policies", "market,adaptive"]],
    ids=["backtest", "compare"],
)
def test_fit_trades_without_fit_quotes_is_refused_naming_the_option(
    workdir: Path, command: list[str]
) -> None:
    # `--fit-trades` alone was dropped without a word: backtest then said the adaptive policy "needs fit data
    # (--fit-quotes/--fit-trades)", one of which the user had given; compare skipped adaptive and ran on (exit 0).
    quotes = _small_quotes(workdir)
    args = [*command, "--quotes", str(quotes), "--basket", "2", "--fit-trades", str(quotes)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: config --fit-trades='{quotes}': needs --fit-quotes, the quotes of the same fit day"
    )
