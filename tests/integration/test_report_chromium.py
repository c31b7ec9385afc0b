"""The report opens in headless Chromium with every figure drawn, and each figure exports to a PNG.

Chromium is Debian's `chromium` package; `scripts/ensure-chromium.sh` installs it (root) and `make test` runs it.
When it is missing and this process is root, the test module installs it itself, so the test cannot skip on a
machine where the browser can be installed; only a non-root machine without it skips, and says so.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from repeg.cli.app import build_app
from repeg.errors import ReportError
from repeg.lab.backtest import file_digest
from repeg.lab.report_data import MarketSeries, ReportInput
from repeg.lab.report_figures import FIGURE_IDS, build_figures
from repeg.lab.report_html import export_pngs, figure_div_id, write_html
from repeg.lab.report_sample import sample_compare, sample_market

#: Generous: when Chromium is missing, the first test's setup installs it (apt-get), which can take minutes.
pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _find_browser() -> str | None:
    named = os.environ.get("BROWSER_PATH")
    if named and Path(named).is_file():
        return named
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> str:
    found = _find_browser()
    if found is None and os.geteuid() == 0:
        subprocess.run(["bash", str(REPO / "scripts" / "ensure-chromium.sh")], check=True, timeout=600)
        found = _find_browser()
    if found is None:
        pytest.skip(
            "chromium is not installed and this user cannot install it (run scripts/ensure-chromium.sh as root)"
        )
    return found


#: HTML elements without an end tag; the DOM serialiser closes every other element (SVG ones included).
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)


class _FigureScan(HTMLParser):
    """Collects, for each figure div, the classes of every element drawn inside it."""

    def __init__(self, div_ids: set[str]) -> None:
        super().__init__()
        self.div_ids = div_ids
        self.classes: dict[str, set[str]] = {d: set() for d in div_ids}
        self._stack: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        element_id = found.get("id")
        owner = element_id if element_id in self.div_ids else None
        if owner is None and self._stack:
            owner = self._stack[-1]
        if owner is not None:
            self.classes[owner].update((found.get("class") or "").split())
        if tag not in _VOID:
            self._stack.append(owner)

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID and self._stack:
            self._stack.pop()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    market = sample_market()
    compare = sample_compare(market)
    out = tmp_path_factory.mktemp("report") / "report.html"
    return write_html(ReportInput(source="sample.json", runs=compare.runs, compare=compare), market, out)


def _dump_dom(browser: str, page: Path, tmp_path: Path) -> str:
    cmd = [
        browser,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_every_figure_draws_its_traces_in_headless_chromium(
    browser: str, report_file: Path, tmp_path: Path
) -> None:
    dom = _dump_dom(browser, report_file, tmp_path)
    scan = _FigureScan({figure_div_id(f) for f in FIGURE_IDS})
    scan.feed(dom)
    for figure_id in FIGURE_IDS:
        drawn = scan.classes[figure_div_id(figure_id)]
        assert "main-svg" in drawn, f"figure {figure_id} has no plotly svg"
        assert "trace" in drawn, f"figure {figure_id} drew no trace"


def test_price_path_draws_the_run_menu(browser: str, report_file: Path, tmp_path: Path) -> None:
    dom = _dump_dom(browser, report_file, tmp_path)
    scan = _FigureScan({figure_div_id("price-path")})
    scan.feed(dom)
    assert "updatemenu-container" in scan.classes[figure_div_id("price-path")]


def test_each_figure_exports_to_a_png(browser: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWSER_PATH", browser)
    market = sample_market()
    compare = sample_compare(market)
    figures = build_figures(compare.runs, market, compare.frontier)
    paths = export_pngs(figures, tmp_path / "png", width=800)
    assert [p.stem for p in paths] == list(FIGURE_IDS)
    for path in paths:
        head = path.read_bytes()[:24]
        assert head[:8] == PNG_MAGIC
        assert int.from_bytes(head[16:20], "big") == 800


def _write_quotes_csv(market: MarketSeries, path: Path) -> None:
    lines = ["ts,symbol,bid,bid_size,ask,ask_size"]
    for ts, bid, ask in zip(
        market.quote_ts_ns.tolist(), market.bid_units.tolist(), market.ask_units.tolist(), strict=True
    ):
        stamp = str(np.datetime64(ts, "ns").astype("datetime64[us]")) + "Z"
        lines.append(f"{stamp},XXX,{bid / 10_000:.4f},100,{ask / 10_000:.4f},100")
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def test_report_command_writes_html_with_market_and_pngs(
    browser: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSER_PATH", browser)
    market = sample_market()
    _write_quotes_csv(market, tmp_path / "sample_quotes.csv.gz")
    compare = sample_compare(market)
    data = compare.data.model_copy(update={"digest": file_digest([tmp_path / "sample_quotes.csv.gz"])})
    (tmp_path / "c.json").write_text(compare.model_copy(update={"data": data}).model_dump_json())
    result = CliRunner().invoke(
        build_app(("repeg.cli.report_cmds",)),
        [
            "report",
            str(tmp_path / "c.json"),
            "--html",
            str(tmp_path / "r.html"),
            "--png-dir",
            str(tmp_path / "png"),
        ],
    )
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert "no market data drawn" not in page
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == sorted(f"{f}.png" for f in FIGURE_IDS)


def test_report_command_refuses_a_missing_result_with_exit_code_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        build_app(("repeg.cli.report_cmds",)),
        ["report", str(tmp_path / "none.json"), "--html", str(tmp_path / "r.html")],
    )
    assert result.exit_code == 2
    assert "no such result file" in result.output


def test_png_export_without_a_browser_is_a_report_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-browser"))
    figures = build_figures(sample_compare().runs, None, None)
    with pytest.raises(ReportError, match="PNG export failed"):
        export_pngs(figures, tmp_path / "png")


def test_report_of_a_journaled_run_draws_a_figure_per_symbol_in_headless_chromium(
    browser: str, tmp_path: Path
) -> None:
    """`repeg report RUN_ID`: a plan run on the simulator, reported from its journal, opens with every figure."""
    quotes = tmp_path / "q.csv"
    quotes.write_text(
        "ts,symbol,bid,bid_size,ask,ask_size\n"
        "2024-01-02T14:30:00Z,AAA,10.00,100,10.02,100\n"
        "2024-01-02T14:30:01Z,BBB,20.00,100,20.04,100\n"
        "2024-01-02T14:40:00Z,AAA,10.01,100,10.03,100\n"
        "2024-01-02T14:40:00Z,BBB,19.99,100,20.01,100\n"
    )
    (tmp_path / "p.csv").write_text("symbol,side,qty\nAAA,buy,10\nBBB,buy,5\n")
    journal, page = tmp_path / "j.db", tmp_path / "run.html"
    app = build_app()
    ran = CliRunner().invoke(
        app,
        [
            "run",
            str(tmp_path / "p.csv"),
            "--quotes",
            str(quotes),
            "--journal",
            str(journal),
            "--run-id",
            "r1",
        ],
    )
    assert ran.exit_code == 0, ran.output
    reported = CliRunner().invoke(
        app, ["report", "r1", "--journal", str(journal), "--quotes", str(quotes), "--html", str(page)]
    )
    assert reported.exit_code == 0, reported.output
    div_ids = {figure_div_id("price-AAA"), figure_div_id("price-BBB")}
    scan = _FigureScan(div_ids)
    scan.feed(_dump_dom(browser, page, tmp_path))
    for div_id in div_ids:
        assert "main-svg" in scan.classes[div_id], f"{div_id} has no plotly svg"
        assert "trace" in scan.classes[div_id], f"{div_id} drew no trace"
