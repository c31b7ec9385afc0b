"""`repeg report` (self-contained HTML of a backtest or comparison, PNG per figure) and `repeg sweep`.

Heavy imports (plotly, kaleido, Ray, the engine) happen inside the commands so that `repeg --help` stays fast.
Input errors (unreadable result or grid, data files that do not pair) exit with code 2; a data source failure
with 4; anything unexpected is a bug (1), per `repeg.cli.exit_codes`.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Annotated

import typer

from repeg.cli.exit_codes import ExitCode, exit_code_for_error
from repeg.errors import RepegError, ReportError, SweepError

_BAD_INPUT_ERRORS = (ReportError, SweepError)


def _fail(error: RepegError) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    code = ExitCode.BAD_INPUT if isinstance(error, _BAD_INPUT_ERRORS) else exit_code_for_error(error)
    return typer.Exit(int(code))


def report(
    source: Annotated[
        Path, typer.Argument(help="A backtest or compare result file (JSON, repeg.lab schema).")
    ],
    *,
    html: Annotated[Path, typer.Option("--html", help="Where to write the self-contained HTML report.")],
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
    """Write an interactive HTML report (price path, orders, frontier, tables) of a backtest or comparison."""
    from repeg.lab.report_data import decimate, load_market, load_result
    from repeg.lab.report_html import write_report

    if not source.is_file():
        raise _fail(ReportError(str(source), "no such result file (journal run ids are not supported yet)"))
    try:
        loaded = load_result(source)
        data = loaded.runs[0].data if loaded.compare is None else loaded.compare.data
        series = load_market(data, source.parent) if market else None
        shown = None if series is None else decimate(series, max_quotes, max_trades)
        written = write_report(loaded, shown, html, png_dir)
    except RepegError as exc:
        raise _fail(exc) from exc
    except OSError as exc:  # e.g. --html or --png-dir in a directory that does not exist
        raise _fail(ReportError(str(exc.filename or html), f"cannot write: {exc.strerror or exc}")) from exc
    for path in written:
        typer.echo(str(path))


def _files(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern))


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
    workers: Annotated[int, typer.Option(min=1, help="Worker processes / Ray CPUs.")] = 2,
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
        days = pair_files(_files(quotes), None if trades is None else _files(trades))
        points = expand(load_grid(grid), days)
        records = run_sweep(points, run_point, chosen, workers=workers, progress=progress)
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
