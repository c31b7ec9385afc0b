"""`repeg report RUN_ID`: a plan run on the simulator and journaled, then reported by its run id from the journal.

The expected fills are read from the journal's raw `order_updated` events, not through the report's own code.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tests.integration.test_journal_cli import UNREACHABLE_POSTGRES, journal_unreachable_in_two_lines
from typer.testing import CliRunner

from repeg.cli.app import build_app
from repeg.cli.exit_codes import ExitCode
from repeg.domain.events import LegPlanned, OrderUpdated
from repeg.journal.sqlite import SqliteJournal
from repeg.lab.run_report import plain

QUOTES = """ts,symbol,bid,bid_size,ask,ask_size
2024-01-02T14:30:00.000000Z,AAA,10.00,100,10.02,100
2024-01-02T14:30:01.000000Z,BBB,20.00,100,20.04,100
2024-01-02T14:30:20.000000Z,AAA,9.99,100,10.01,100
2024-01-02T14:30:40.000000Z,BBB,19.98,100,20.02,100
2024-01-02T14:31:00.000000Z,AAA,10.01,100,10.03,100
2024-01-02T14:40:00.000000Z,AAA,10.01,100,10.03,100
2024-01-02T14:40:00.000000Z,BBB,19.99,100,20.01,100
"""
PLAN = "symbol,side,qty\nAAA,buy,10\nBBB,buy,5\n"
RUN_ID = "r1"


@dataclass(frozen=True)
class Journaled:
    directory: Path
    journal: Path
    quotes: Path


def _repeg(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), [str(a) for a in args], env={"COLUMNS": "160"})
    return result.exit_code, result.stdout, result.stderr


def _run_in(directory: Path, quotes_name: str = "q.csv") -> Journaled:
    """`repeg run` of the two-leg plan over a quote file written into `directory`, journaled under RUN_ID."""
    quotes = directory / quotes_name
    quotes.write_text(QUOTES)
    (directory / "p.csv").write_text(PLAN)
    journal = directory / "j.db"
    code, _, err = _repeg(
        "run", directory / "p.csv", "--quotes", quotes, "--journal", journal, "--run-id", RUN_ID
    )
    assert code == ExitCode.OK, err
    return Journaled(directory, journal, quotes)


@pytest.fixture(scope="module")
def journaled(tmp_path_factory: pytest.TempPathFactory) -> Journaled:
    """A two-leg plan run on the simulator over a replayed quote file, journaled under RUN_ID."""
    return _run_in(tmp_path_factory.mktemp("run"))


def _journaled_fills(journal: Path) -> dict[str, list[str]]:
    """Per symbol, the hover text of every execution the broker reported, from the raw journal events."""
    store = SqliteJournal(journal, create=False)
    try:
        events = store.events(RUN_ID)
    finally:
        store.close()
    symbols = {e.spec.index: e.spec.symbol for e in events if isinstance(e, LegPlanned)}
    fills: dict[str, list[str]] = {symbol: [] for symbol in symbols.values()}
    for event in events:
        if isinstance(event, OrderUpdated) and event.update.fill is not None and event.leg_index is not None:
            execution = event.update.fill
            fills[symbols[event.leg_index]].append(f"fill {plain(execution.qty)} @ {execution.price}")
    return fills


def _report(journaled: Journaled, out: str, *extra: str | Path) -> tuple[int, str, str, str]:
    html = journaled.directory / out
    code, stdout, stderr = _repeg("report", RUN_ID, "--journal", journaled.journal, "--html", html, *extra)
    return code, stdout, stderr, html.read_text() if html.exists() else ""


def test_report_of_a_run_id_draws_every_legs_fills_over_the_quotes(journaled: Journaled) -> None:
    code, stdout, stderr, page = _report(journaled, "r1.html", "--quotes", journaled.quotes)
    assert code == ExitCode.OK, stderr
    assert stdout.strip() == str(journaled.directory / "r1.html")
    assert re.findall(r'<div id="(fig-[^"]+)"', page) == ["fig-price-AAA", "fig-price-BBB"]
    fills = _journaled_fills(journaled.journal)
    assert all(fills.values()), fills  # every leg filled something
    for symbol, texts in fills.items():
        for text in texts:
            assert f"leg {0 if symbol == 'AAA' else 1}: buy" in page
            assert text in page, f"{symbol}: {text} not drawn"
    assert '"name":"bid"' in page
    assert '"name":"ask"' in page
    assert "orders only" not in page


def test_report_of_a_run_id_has_the_legs_table_and_quality_summary(journaled: Journaled) -> None:
    code, _, stderr, page = _report(journaled, "tables.html")
    assert code == ExitCode.OK, stderr
    assert "Status <b>completed</b>" in page
    for symbol in ("AAA", "BBB"):
        assert re.search(rf'<td class="t">{symbol}</td><td class="t">buy</td><td class="t">filled</td>', page)
    assert "2/2 filled, 0 escalated" in page
    assert "r1-L0000-A00" in page  # the order chain


class _References(HTMLParser):
    """Every src/href attribute of the page's elements (script bodies are text, not elements)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [(tag, value or "") for name, value in attrs if name in {"src", "href"}]


def test_report_of_a_run_id_is_self_contained(journaled: Journaled) -> None:
    _, _, _, page = _report(journaled, "alone.html", "--quotes", journaled.quotes)
    references = _References()
    references.feed(page)
    assert references.found == []
    assert re.search(r"<script[^>]+src=", page) is None
    assert "<link" not in page


def test_report_of_a_run_id_draws_the_recorded_quote_file_without_quotes(journaled: Journaled) -> None:
    code, _, stderr, page = _report(journaled, "recorded.html")
    assert code == ExitCode.OK, stderr
    assert '"name":"bid"' in page
    assert '"name":"ask"' in page
    assert "orders only" not in page
    named = _report(journaled, "named.html", "--quotes", journaled.quotes)[3]
    figures = re.compile(r'<div id="fig-.*?</script>', re.S)
    assert figures.findall(page) == figures.findall(named)  # the very quotes `--quotes` draws


def test_report_header_names_the_recorded_quote_file_and_its_hash(journaled: Journaled) -> None:
    _, _, _, page = _report(journaled, "header.html")
    digest = hashlib.sha256(journaled.quotes.read_bytes()).hexdigest()
    assert f"Market data: quote file {journaled.quotes.resolve()}" in page
    assert digest in page


def _own_run(tmp_path: Path) -> Journaled:
    """A run of its own (its quote file may be changed or removed without touching the module's run)."""
    return _run_in(tmp_path, quotes_name="own.csv")


def test_report_of_a_run_whose_quote_file_changed_says_so_and_draws_the_orders_only(tmp_path: Path) -> None:
    run = _own_run(tmp_path)
    recorded = hashlib.sha256(run.quotes.read_bytes()).hexdigest()
    run.quotes.write_text(QUOTES.replace("10.00,100,10.02", "10.50,100,10.52"))
    code, _, stderr, page = _report(run, "changed.html")
    assert code == ExitCode.OK, stderr
    assert f"The quote file the run replayed, {run.quotes.resolve()}, has changed since the run" in page
    assert recorded in page
    assert "The figures show the orders only" in page
    assert '"name":"bid"' not in page


def test_report_of_a_run_whose_quote_file_is_gone_says_so_and_draws_the_orders_only(tmp_path: Path) -> None:
    run = _own_run(tmp_path)
    run.quotes.unlink()
    code, _, stderr, page = _report(run, "gone.html")
    assert code == ExitCode.OK, stderr
    assert f"The quote file the run replayed, {run.quotes.resolve()}, is no longer there." in page
    assert '"name":"bid"' not in page


def test_quotes_other_than_the_recorded_file_are_drawn_and_the_mismatch_stated(tmp_path: Path) -> None:
    run = _own_run(tmp_path)
    other = tmp_path / "other.csv"
    other.write_text(QUOTES.replace("10.00,100,10.02", "10.50,100,10.52"))
    code, _, stderr, page = _report(run, "other.html", "--quotes", other)
    assert code == ExitCode.OK, stderr
    assert '"name":"bid"' in page
    assert f"The quote file {other} (SHA-256 {hashlib.sha256(other.read_bytes()).hexdigest()}) is not" in page
    assert "the quotes drawn may not be those the run saw" in page


def test_show_names_the_replayed_quote_file_its_size_and_hash(journaled: Journaled) -> None:
    code, stdout, stderr = _repeg("show", RUN_ID, "--journal", journaled.journal)
    assert code == ExitCode.OK, stderr
    size = journaled.quotes.stat().st_size
    digest = hashlib.sha256(journaled.quotes.read_bytes()).hexdigest()
    expected = f"market data: quote file {journaled.quotes.resolve()} ({size:,} bytes, sha256 {digest})"
    assert stdout.splitlines()[0] == expected


def test_report_of_an_unknown_run_id_exits_2_naming_it(journaled: Journaled) -> None:
    out = journaled.directory / "none.html"
    code, stdout, stderr = _repeg("report", "nope", "--journal", journaled.journal, "--html", out)
    assert code == ExitCode.BAD_INPUT
    assert stderr.startswith("error: nope: no such result file, and run 'nope' is not in the journal")
    assert stdout == ""
    assert not out.exists()


def test_report_of_a_value_that_is_neither_a_file_nor_in_a_journal_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "results.json"
    code, _, stderr = _repeg(
        "report", missing, "--journal", tmp_path / "none.db", "--html", tmp_path / "r.html"
    )
    assert code == ExitCode.BAD_INPUT
    assert f"error: {missing}: no such result file, and no journal at {tmp_path / 'none.db'}" in stderr
    assert not (tmp_path / "none.db").exists()  # looking a run up never creates a journal


def test_report_of_a_run_id_with_a_quote_file_that_is_not_there_exits_2(journaled: Journaled) -> None:
    missing = journaled.directory / "no-quotes.csv"
    code, _, stderr, _ = _report(journaled, "q.html", "--quotes", missing)
    assert code == ExitCode.BAD_INPUT
    assert str(missing) in stderr


def test_quotes_are_refused_for_a_result_file_which_names_its_own(
    journaled: Journaled, tmp_path: Path
) -> None:
    result = tmp_path / "result.json"
    result.write_text("{}")
    code, _, stderr = _repeg("report", result, "--html", tmp_path / "r.html", "--quotes", journaled.quotes)
    assert code == ExitCode.BAD_INPUT
    assert "--quotes applies to a run id" in stderr


def test_no_market_draws_no_quotes_and_says_so(journaled: Journaled) -> None:
    code, _, stderr, page = _report(journaled, "nomarket.html", "--no-market")
    assert code == ExitCode.OK, stderr
    assert '"name":"bid"' not in page
    assert "No quotes are drawn (--no-market)" in page


def test_no_market_with_quotes_is_refused_naming_both_before_anything_is_written(
    journaled: Journaled,
) -> None:
    # --quotes was silently ignored: the user asked for a file's quotes and got a page without any.
    code, stdout, stderr, page = _report(journaled, "both.html", "--no-market", "--quotes", journaled.quotes)
    assert code == ExitCode.BAD_INPUT
    assert "--quotes" in stderr
    assert "--no-market" in stderr
    assert stdout == ""
    assert page == ""


def test_report_of_a_synthetic_run_draws_the_market_rebuilt_from_its_recorded_seed(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(PLAN)
    journal = tmp_path / "j.db"
    code, _, err = _repeg("run", tmp_path / "p.csv", "--journal", journal, "--run-id", RUN_ID)  # no --quotes
    assert code == ExitCode.OK, err
    code, _, stderr, page = _report(Journaled(tmp_path, journal, tmp_path / "none"), "synthetic.html")
    assert code == ExitCode.OK, stderr
    assert re.findall(r'<div id="(fig-[^"]+)"', page) == ["fig-price-AAA", "fig-price-BBB"]
    assert page.count('"name":"bid"') == 2
    assert page.count('"name":"ask"') == 2
    assert "synthetic market rebuilt from the seed (0) and settings the run recorded" in page
    assert "orders only" not in page


def test_an_html_path_that_is_a_directory_is_refused_naming_the_option(
    journaled: Journaled, tmp_path: Path
) -> None:
    # It said "d: cannot write: Is a directory", naming no option, once the report had been built.
    code, out, err = _repeg("report", RUN_ID, "--journal", journaled.journal, "--html", tmp_path)
    assert (code, out) == (ExitCode.BAD_INPUT, "")
    assert err == f"error: config --html='{tmp_path}': a directory, not a file\n"


def test_a_png_dir_that_is_a_file_is_refused_before_the_html_is_written(
    journaled: Journaled, tmp_path: Path
) -> None:
    # The HTML was written, then the PNGs failed ("p: cannot write: File exists", exit 2): a refused command
    # left its HTML behind.
    (tmp_path / "p").write_text("x")
    html = tmp_path / "r.html"
    code, _, err = _repeg(
        "report", RUN_ID, "--journal", journaled.journal, "--html", html, "--png-dir", tmp_path / "p"
    )
    assert code == ExitCode.BAD_INPUT
    assert err == f"error: config --png-dir='{tmp_path / 'p'}': a file, not a directory\n"
    assert not html.exists()


def test_a_failed_png_export_exits_4_not_2(
    journaled: Journaled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The browser that renders the PNGs failed after the inputs were read and the HTML written: it exited 2, the
    # code of a refused input, though nothing the user gave was wrong (README's exit codes: 4, a failure).
    import kaleido

    def no_browser(jobs: object) -> None:
        raise RuntimeError("no browser started")

    monkeypatch.setattr(kaleido, "write_fig_from_object_sync", no_browser)
    code, out, err = _repeg(
        "report",
        RUN_ID,
        "--journal",
        journaled.journal,
        "--html",
        tmp_path / "r.html",
        "--png-dir",
        tmp_path / "p",
    )
    assert (code, out) == (ExitCode.FAILED, "")
    assert err.startswith(
        f"error: {tmp_path / 'p'}: PNG export failed (is chromium installed?): RuntimeError("
    )


def test_an_html_path_in_a_missing_directory_is_refused_naming_the_option(
    journaled: Journaled, tmp_path: Path
) -> None:
    # It said "r.html: cannot write: No such file or directory", naming no option, once the report was built.
    html = tmp_path / "missing" / "r.html"
    code, out, err = _repeg("report", RUN_ID, "--journal", journaled.journal, "--html", html)
    assert (code, out) == (ExitCode.BAD_INPUT, "")
    assert err == f"error: config --html='{html}': cannot write: no directory {html.parent}\n"


def test_a_png_dir_under_a_file_is_refused_before_the_html_is_written(
    journaled: Journaled, tmp_path: Path
) -> None:
    # `--png-dir f/figs` with `f` a file does not exist (so 3e759ce's check let it by): the HTML was written, then
    # creating the PNG folder failed ("Not a directory"), leaving the HTML of a refused command behind.
    (tmp_path / "f").write_text("x")
    html = tmp_path / "r.html"
    png_dir = tmp_path / "f" / "figs"
    code, _, err = _repeg(
        "report", RUN_ID, "--journal", journaled.journal, "--html", html, "--png-dir", png_dir
    )
    assert code == ExitCode.BAD_INPUT
    assert err == f"error: config --png-dir='{png_dir}': {tmp_path / 'f'} is a file, not a directory\n"
    assert not html.exists()


def test_an_html_path_that_is_the_journal_is_refused_and_the_journal_kept(tmp_path: Path) -> None:
    # `--html j.db` (the journal named twice by mistake) overwrote the run's journal with the page.
    run = _run_in(tmp_path)
    before = hashlib.sha256(run.journal.read_bytes()).hexdigest()
    code, _, err = _repeg("report", RUN_ID, "--journal", run.journal, "--html", run.journal)
    assert code == ExitCode.BAD_INPUT
    assert "--html" in err
    assert hashlib.sha256(run.journal.read_bytes()).hexdigest() == before


def test_an_html_path_that_is_the_reported_result_file_is_refused_and_the_file_kept(tmp_path: Path) -> None:
    # `repeg report result.json --html result.json` replaced the saved result with the page.
    from repeg.lab.report_sample import sample_compare

    result = tmp_path / "result.json"
    saved = sample_compare().model_dump_json()
    result.write_text(saved)
    code, _, err = _repeg("report", result, "--html", result, "--no-market")
    assert code == ExitCode.BAD_INPUT
    assert "--html" in err
    assert result.read_text() == saved


@contextmanager
def _held_open(journal: Path) -> Iterator[None]:
    """`journal` held open as a live run holds it, with an event committed to its write-ahead log and not yet
    checkpointed: its -wal and -shm files exist."""
    holder = sqlite3.connect(journal)
    try:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("CREATE TABLE held (x INTEGER)")
        holder.execute("INSERT INTO held VALUES (1)")
        holder.commit()
        yield
    finally:
        holder.close()


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_an_html_path_that_is_a_companion_file_of_the_journal_is_refused_and_the_file_kept(
    tmp_path: Path, suffix: str
) -> None:
    # `--html j.db-wal` while the journal is open (a live run): the page replaced the write-ahead log, and the
    # events committed to it but not yet checkpointed into j.db were lost.
    run = _run_in(tmp_path)
    with _held_open(run.journal):
        companion = run.journal.with_name(run.journal.name + suffix)
        before = hashlib.sha256(companion.read_bytes()).hexdigest()
        code, _, err = _repeg("report", RUN_ID, "--journal", run.journal, "--html", companion)
        assert code == ExitCode.BAD_INPUT
        assert "--html" in err
        assert hashlib.sha256(companion.read_bytes()).hexdigest() == before


def test_an_html_path_that_is_the_quote_file_named_is_refused_and_the_file_kept(tmp_path: Path) -> None:
    run = _run_in(tmp_path)
    code, _, err = _repeg(
        "report", RUN_ID, "--journal", run.journal, "--quotes", run.quotes, "--html", run.quotes
    )
    assert code == ExitCode.BAD_INPUT
    assert "--html" in err
    assert run.quotes.read_text() == QUOTES


def test_an_html_path_that_is_the_quote_file_the_run_recorded_is_refused_and_the_file_kept(
    tmp_path: Path,
) -> None:
    run = _run_in(tmp_path)
    code, _, err = _repeg("report", RUN_ID, "--journal", run.journal, "--html", run.quotes)
    assert code == ExitCode.BAD_INPUT
    assert "--html" in err
    assert run.quotes.read_text() == QUOTES


def test_an_html_path_that_is_a_data_file_the_result_names_is_refused_and_the_file_kept(
    tmp_path: Path,
) -> None:
    from repeg.lab.report_sample import sample_compare

    result = tmp_path / "result.json"
    result.write_text(sample_compare().model_dump_json())
    quotes = tmp_path / "sample_quotes.csv.gz"  # the quote file the sample result names, beside it
    quotes.write_bytes(b"the day's quotes")
    code, _, err = _repeg("report", result, "--html", quotes, "--no-market")
    assert code == ExitCode.BAD_INPUT
    assert "--html" in err
    assert quotes.read_bytes() == b"the day's quotes"


@pytest.mark.parametrize("alias", ["symlink", "hard link", "dotted"])
def test_an_html_path_that_reaches_the_journal_by_another_name_is_refused(tmp_path: Path, alias: str) -> None:
    # Guard: the refusal compares files, not spellings (a symlink, a hard link, ./j.db).
    run = _run_in(tmp_path)
    before = hashlib.sha256(run.journal.read_bytes()).hexdigest()
    other = tmp_path / "other.html"
    if alias == "symlink":
        other.symlink_to(run.journal)
    elif alias == "hard link":
        other.hardlink_to(run.journal)
    else:
        other = run.journal.parent / "." / run.journal.name
    code, _, err = _repeg("report", RUN_ID, "--journal", run.journal, "--html", other)
    assert code == ExitCode.BAD_INPUT
    assert "--html" in err
    assert hashlib.sha256(run.journal.read_bytes()).hexdigest() == before


def test_an_html_path_that_is_the_write_ahead_log_of_a_symlinked_journal_is_refused(tmp_path: Path) -> None:
    # SQLite keeps the -wal and -shm of a journal named by a symbolic link beside the file the link names: with
    # `--journal link.db`, `--html j.db-wal` replaced the write-ahead log of the run holding the journal open.
    run = _run_in(tmp_path)
    link = tmp_path / "link.db"
    link.symlink_to(run.journal)
    with _held_open(link):
        wal = run.journal.with_name(run.journal.name + "-wal")
        before = hashlib.sha256(wal.read_bytes()).hexdigest()
        code, _, err = _repeg("report", RUN_ID, "--journal", link, "--html", wal)
        assert code == ExitCode.BAD_INPUT
        assert "--html" in err
        assert hashlib.sha256(wal.read_bytes()).hexdigest() == before


def test_a_journal_error_whose_text_spans_lines_is_printed_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PostgreSQL journal that could not connect made `repeg report RUN_ID` print libpq's two-line text ("...
    # Connection refused\n\tIs the server running on that host ...?"), where every error is one line on stderr
    # (README, Exit codes), as `run`, `runs`, `show` and `resume` print it.
    said = journal_unreachable_in_two_lines(monkeypatch)
    code, _, err = _repeg(
        "report", RUN_ID, "--journal", UNREACHABLE_POSTGRES, "--html", str(tmp_path / "r.html")
    )
    assert (code, err) == (ExitCode.FAILED, said)


@pytest.mark.parametrize("under", ["", "figs"], ids=["the-html-path", "under-the-html-path"])
def test_a_png_dir_at_or_under_the_html_path_is_refused_before_the_html_is_written(
    journaled: Journaled, tmp_path: Path, under: str
) -> None:
    # `--html r.html --png-dir r.html` (or r.html/figs), r.html not there yet, passed the checks: the HTML was
    # written, then creating the PNG folder failed ("cannot write: File exists" or "Not a directory", exit 2),
    # leaving the HTML of a refused command behind.
    html = tmp_path / "r.html"
    png_dir = html / under if under else html
    code, _, err = _repeg(
        "report", RUN_ID, "--journal", journaled.journal, "--html", html, "--png-dir", png_dir
    )
    assert code == ExitCode.BAD_INPUT
    assert err == f"error: config --png-dir='{png_dir}': the --html file's path; name another directory\n"
    assert not html.exists()


def test_a_result_reported_with_no_market_says_so_not_that_its_files_were_not_available(
    tmp_path: Path,
) -> None:
    # The page said "The quote and trade files named by the result were not available" of files at hand, which
    # the user had only asked not to draw.
    rows = [
        f"2024-01-02T14:{30 + i // 12:02d}:{i % 12 * 5:02d}.000000Z,AAA,100.00,100,100.02,100"
        for i in range(240)
    ]
    quotes = tmp_path / "q.csv"
    quotes.write_text("ts,symbol,bid,bid_size,ask,ask_size\n" + "\n".join(rows) + "\n")
    result = tmp_path / "result.json"
    code, _, err = _repeg(
        "backtest", "--quotes", quotes, "--basket", "2", "--policy", "market", "--out", result
    )
    assert code == ExitCode.OK, err
    html = tmp_path / "r.html"
    code, _, err = _repeg("report", result, "--html", html, "--no-market")
    assert code == ExitCode.OK, err
    page = html.read_text()
    assert "were not available" not in page
    assert "--no-market" in page
