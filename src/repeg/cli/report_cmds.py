"""`repeg report` (self-contained HTML of a backtest, comparison or journaled run, PNG per figure) and `repeg sweep`.

Heavy imports (plotly, kaleido, Ray, the engine) happen inside the commands so that `repeg --help` stays fast.
Input errors (unreadable result or grid, data files that do not pair, a report source that is neither a result
file nor a run id of the journal) exit with code 2; a data source or journal failure, or a PNG export that failed
(the browser that renders it), with 4; anything unexpected is a bug (1), per `repeg.cli.exit_codes`.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repeg.cli.exit_codes import ExitCode, exit_code_for_error, one_line
from repeg.cli.extras import lab_extras_needed
from repeg.cli.journal_cmds import JournalOption
from repeg.errors import ConfigError, FigureExportError, RepegError, ReportError, RunNotFoundError, SweepError
from repeg.journal.factory import DEFAULT_JOURNAL

if TYPE_CHECKING:
    from repeg.domain.events import RunEvent
    from repeg.lab.sweep_grid import SweepPoint

_BAD_INPUT_ERRORS = (ReportError, SweepError)


def _fail(error: RepegError) -> typer.Exit:
    typer.echo(f"error: {one_line(str(error))}", err=True)
    if isinstance(error, FigureExportError):  # a ReportError, but of the export, not of what the user gave
        code = ExitCode.FAILED
    elif isinstance(error, _BAD_INPUT_ERRORS):
        code = ExitCode.BAD_INPUT
    else:
        code = exit_code_for_error(error)
    return typer.Exit(int(code))


def report(
    source: Annotated[
        str,
        typer.Argument(
            help="A backtest or compare result file (JSON, repeg.lab schema), or a run id of the journal."
        ),
    ],
    *,
    html: Annotated[Path, typer.Option("--html", help="Where to write the self-contained HTML report.")],
    journal: JournalOption = DEFAULT_JOURNAL,
    quotes: Annotated[
        Path | None,
        typer.Option(
            "--quotes",
            help=(
                "Run id only: draw this quote file's bid and ask "
                "(default: the quote file or synthetic market the run recorded)."
            ),
        ),
    ] = None,
    png_dir: Annotated[
        Path | None, typer.Option("--png-dir", help="Also write one PNG per figure here (needs chromium).")
    ] = None,
    max_quotes: Annotated[int, typer.Option(min=100, help="Most quotes drawn (sampled beyond).")] = 50_000,
    max_trades: Annotated[
        int, typer.Option(min=100, help="Most trade prints drawn (sampled beyond).")
    ] = 20_000,
    market: Annotated[
        bool, typer.Option(help="Draw the quotes and trades the result names, when found.")
    ] = True,
) -> None:
    """Write an interactive HTML report (prices, orders, fills, tables) of a backtest, comparison or journaled run.

    SOURCE is read as a result file when such a file exists, else as a run id of the journal (`repeg runs`).
    """
    path = Path(source)
    try:
        _refuse_unwritable(html, png_dir)
        for read in (path if path.is_file() else Path(journal), quotes):
            _refuse_overwriting(html, read)
        if not path.is_file():
            _refuse_journal_companion(html, Path(journal))
            if quotes is not None and not market:
                raise ReportError(
                    str(quotes), "--quotes draws this file's quotes, --no-market none: give one"
                )
        if path.is_file():
            if quotes is not None:
                raise ReportError(str(quotes), "--quotes applies to a run id; a result names its own quotes")
            written = _report_result(path, html, png_dir, (max_quotes, max_trades) if market else None)
        else:
            written = _report_run(source, journal, html, png_dir, (quotes, max_quotes) if market else None)
    except RepegError as exc:
        raise _fail(exc) from exc
    except ModuleNotFoundError as exc:  # plotly or kaleido: the lab extras (`repeg.cli.extras`)
        raise _fail(ReportError("repeg report", lab_extras_needed(exc))) from exc
    except OSError as exc:  # e.g. --html or --png-dir in a directory that does not exist
        raise _fail(ReportError(str(exc.filename or html), f"cannot write: {exc.strerror or exc}")) from exc
    for written_path in written:
        typer.echo(str(written_path))


def _refuse_unwritable(html: Path, png_dir: Path | None) -> None:
    """`--html` a directory, or `--png-dir` a file, refused naming the option before anything is built or
    written (the HTML was otherwise written before the PNGs failed, and left behind by a refused command)."""
    if html.is_dir():
        raise ConfigError("--html", str(html), "a directory, not a file")
    if not html.parent.is_dir():
        raise ConfigError("--html", str(html), f"cannot write: no directory {html.parent}")
    if png_dir is not None and png_dir.exists() and not png_dir.is_dir():
        raise ConfigError("--png-dir", str(png_dir), "a file, not a directory")
    # A folder to create under a file cannot be: mkdir failed only once the HTML had been written.
    if png_dir is not None:
        _refuse_png_dir_at_html(html, png_dir)
        existing = next(p for p in png_dir.absolute().parents if p.exists())
        if not existing.is_dir():
            raise ConfigError("--png-dir", str(png_dir), f"{existing} is a file, not a directory")


def _refuse_png_dir_at_html(html: Path, png_dir: Path) -> None:
    """`--png-dir` that is the `--html` path or under it, refused though neither exists yet: the HTML was written,
    then the PNG folder could not be made where the HTML now was."""
    page = html.resolve()
    if png_dir.resolve() == page or page in png_dir.resolve().parents:
        raise ConfigError("--png-dir", str(png_dir), "the --html file's path; name another directory")


def _same_file(written: Path, read: Path) -> bool:
    """True when writing `written` replaces the file `read`, by whatever path (`./x`, a symlink, a hard link)."""
    return written.is_file() and read.is_file() and written.samefile(read)


def _refuse_overwriting(
    html: Path, read: Path | str | None, *, option: str = "--html", reader: str = "report"
) -> None:
    """`--html` naming a file the report reads (the result file, the SQLite journal, the --quotes file) refused:
    the page replaced it, the run's journal, saved result or quotes lost to a slip of the command line. The lab
    commands refuse their `--out` over what they read through it too (`option`, and the `reader` said)."""
    if read is not None and _same_file(html, Path(read)):
        raise ConfigError(option, str(html), f"the file the {reader} reads ({read}); name another file")


#: SQLite's companions of a WAL-mode journal: the write-ahead log holds committed events not yet checkpointed.
_JOURNAL_COMPANIONS = ("-wal", "-shm")


def _refuse_journal_companion(html: Path, journal: Path) -> None:
    """`--html` naming the journal's `-wal` or `-shm` file refused, whether or not it exists now (a run may open
    the journal at any time): the page replaced the write-ahead log, and the events committed to it were lost.
    SQLite keeps them beside the file a symbolic link names, so they are looked for there too."""
    named = (journal, journal.resolve()) if journal.name else ()
    for companion in (base.with_name(base.name + suffix) for base in named for suffix in _JOURNAL_COMPANIONS):
        if html.resolve() == companion.resolve() or _same_file(html, companion):
            raise ConfigError("--html", str(html), f"a file of the journal ({companion}); name another file")


def _report_result(
    source: Path, html: Path, png_dir: Path | None, bounds: tuple[int, int] | None
) -> list[Path]:
    """The report of a backtest or comparison file; `bounds` (most quotes, most prints) or None for no market."""
    from repeg.lab.report_data import decimate, load_market, load_result
    from repeg.lab.report_html import FILES_NOT_AVAILABLE, NO_MARKET_ASKED, write_report

    loaded = load_result(source)
    data = loaded.runs[0].data if loaded.compare is None else loaded.compare.data
    for name in (
        data.quotes_file,
        data.trades_file,
    ):  # where `load_market` looks: as given, then beside the result
        for read in () if name is None else (Path(name), source.parent / name):
            _refuse_overwriting(html, read)
    series = None if bounds is None else load_market(data, source.parent)
    shown = None if series is None or bounds is None else decimate(series, *bounds)
    note = NO_MARKET_ASKED if bounds is None else FILES_NOT_AVAILABLE
    return write_report(loaded, shown, html, png_dir, no_market_note=note)


def _run_events(run_id: str, journal: str) -> tuple[list[RunEvent], str]:
    """The events of `run_id`, looked up as `repeg show` does; not there (or no journal file) is bad input."""
    from repeg.cli.journal_run import refuse_unusable_journal
    from repeg.journal.factory import is_postgres, open_journal

    refuse_unusable_journal(journal)
    if not is_postgres(journal) and not Path(journal).exists():
        raise ReportError(run_id, f"no such result file, and no journal at {journal} to find it as a run id")
    store = open_journal(journal, create=False)
    try:
        return store.events(run_id), store.location
    except RunNotFoundError as exc:
        raise ReportError(run_id, f"no such result file, and {exc}") from exc
    finally:
        store.close()


def _report_run(
    run_id: str, journal: str, html: Path, png_dir: Path | None, quotes: tuple[Path | None, int] | None
) -> list[Path]:
    """The report of a journaled run, rebuilt from its events; `quotes` (quote file or None, most quotes drawn),
    or None for `--no-market`. Without a named file, the quote file the run recorded is drawn when it is still
    there unchanged (`repeg.lab.run_report.recorded_market_view`)."""
    from repeg.domain.events import QuoteFileSource
    from repeg.lab.run_report import NO_MARKET_NOTE, MarketView, recorded_market_view, run_report
    from repeg.lab.run_report_html import write_run_report

    events, location = _run_events(run_id, journal)
    built = run_report(run_id, events, location)
    if isinstance(built.started.market, QuoteFileSource):
        _refuse_overwriting(html, Path(built.started.market.path))
    view = (
        MarketView(series={}, note=NO_MARKET_NOTE) if quotes is None else recorded_market_view(built, *quotes)
    )
    return write_run_report(built, view, html, png_dir)


def _files(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern))


def _sweep_quotes(pattern: str, out: Path) -> list[str]:
    """The quote files `--quotes` matches, refused when none; `--out` refused before any point runs when it
    cannot be written (it was found only once the whole sweep had run, its results then lost)."""
    if out.is_dir():
        raise SweepError("--out", f"cannot write {out}: a directory, not a file")
    if not out.parent.is_dir():
        raise SweepError("--out", f"cannot write {out}: no directory {out.parent}")
    files = _files(pattern)
    if not files:
        raise SweepError("--quotes", f"{pattern!r} matched no file")
    return files


def _sweep_trades(pattern: str) -> list[str]:
    """The trade files `--trades` matches, refused naming the option when none (a typo was otherwise blamed on the
    first quote file, as one without a trade file of its day)."""
    files = _files(pattern)
    if not files:
        raise SweepError("--trades", f"{pattern!r} matched no file")
    return files


def _refuse_out_over_input(out: Path, inputs: list[str]) -> None:
    """`--out` naming a file the sweep reads (its grid, a quote or trade file, an adaptive policy's `params_file`)
    refused before any point runs: the Parquet was written over it once the whole sweep had run."""
    for name in inputs:
        if _same_file(out, Path(name)):
            raise SweepError("--out", f"cannot write {out}: the sweep reads it ({name}); name another file")


def _params_files(points: tuple[SweepPoint, ...]) -> list[str]:
    """The fitted-parameter files the points' adaptive policies read (`params_file`), each once."""
    named = (point.params.get("params_file") for point in points)
    return sorted({name for name in named if isinstance(name, str)})


def sweep(
    *,
    quotes: Annotated[
        str, typer.Option("--quotes", help="Glob of quote files, one per symbol-day (quote it).")
    ],
    grid: Annotated[
        Path, typer.Option("--grid", help="TOML grid of policy parameters (see repeg.lab.sweep_grid).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Parquet file of one row per grid point.")],
    trades: Annotated[
        str | None, typer.Option("--trades", help="Glob of trade files, paired with quotes by day.")
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local (process pool) or ray (local Ray cluster).")
    ] = "local",
    workers: Annotated[int, typer.Option(min=1, help="Worker processes / Ray CPUs (at most 4 per CPU).")] = 2,
    progress: Annotated[bool, typer.Option(help="Draw a progress bar on stderr.")] = True,
) -> None:
    """Backtest every grid point on every symbol-day in parallel; identical results on either engine."""
    from repeg.lab.sweep import Engine, run_sweep, write_parquet
    from repeg.lab.sweep_grid import expand, load_grid, pair_files
    from repeg.lab.sweep_point import run_point

    try:
        chosen = Engine(engine)
    except ValueError:
        raise _fail(SweepError("--engine", f"{engine!r} is not one of {[e.value for e in Engine]}")) from None
    try:
        quote_files = _sweep_quotes(quotes, out)
        trade_files = None if trades is None else _sweep_trades(trades)
        _refuse_out_over_input(out, [str(grid), *quote_files, *(trade_files or [])])
        days = pair_files(quote_files, trade_files)
        points = expand(load_grid(grid), days)
        _refuse_out_over_input(out, _params_files(points))
        try:
            records = run_sweep(points, run_point, chosen, workers=workers, progress=progress)
        except ModuleNotFoundError as exc:  # ray: the lab extras (`repeg.cli.extras`)
            raise SweepError("--engine", f"{engine} {lab_extras_needed(exc)}") from exc
        try:
            write_parquet(records, out)
        except OSError as exc:  # e.g. --out in a directory that does not exist
            raise SweepError("--out", f"cannot write {out}: {exc.strerror or exc}") from exc
    except RepegError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{len(records)} points on {len(days)} symbol-days -> {out}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("sweep")(sweep)
