"""Run a sweep's points in parallel, locally or on Ray, with identical results; write them to Parquet.

Guarantees:

- A point's record depends only on the point (its seed included), never on the engine, the worker or the order
  of completion: engines return records sorted by `point_id`, so `local` and `ray` give equal record lists and
  byte-identical Parquet files.
- A failing point fails the sweep with a `SweepError` naming the point; nothing is silently dropped.
- Progress is drawn with rich while points complete (to stderr, off when `progress=False`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import structlog
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from repeg.errors import ConfigError, RepegError, SweepError
from repeg.lab.backtest import QUEUE_WITHOUT_PRINTS, load_day, refuse_unusable_trades
from repeg.lab.models import FillModelName
from repeg.lab.sweep_grid import SweepPoint

log = structlog.get_logger(__name__)


class Engine(StrEnum):
    LOCAL = "local"
    RAY = "ray"


class SweepRecord(BaseModel):
    """One grid point's outcome: its coordinates and the aggregates of its backtest (one Parquet row)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    point_id: int
    policy: str
    kind: str
    params_json: str
    fill_model: str
    quotes_file: str
    trades_file: str | None
    symbol: str
    day: str
    seed: int
    n_orders: int
    completion_rate: float
    cost_bps_mean: float
    cost_bps_low: float
    cost_bps_high: float
    cost_half_spreads_mean: float
    cost_half_spreads_low: float
    cost_half_spreads_high: float
    cost_vs_oracle_half_spreads_mean: float
    half_spread_saved: float
    fill_rate_before_escalation: float
    escalation_rate: float
    time_to_fill_s_mean: float
    repegs_mean: float


PointRunner = Callable[[SweepPoint], SweepRecord]

#: Log level inside worker processes: a backtest logs every order event, which would swamp the terminal (and
#: cost more than the backtest) at the default level.
WORKER_LOG_LEVEL = "warning"
_worker_logging_done = False


def _point_name(point: SweepPoint) -> str:
    return f"point {point.point_id} ({point.policy})"


def run_in_worker(runner: PointRunner, point: SweepPoint) -> SweepRecord:
    """Run one point in a worker process, configuring that process's logging on its first point."""
    global _worker_logging_done  # noqa: PLW0603 - once per worker process, by design
    if not _worker_logging_done:
        from repeg.logging import configure_logging

        configure_logging(level=WORKER_LOG_LEVEL)
        _worker_logging_done = True
    try:
        return runner(point)
    except SweepError:
        raise
    except (RepegError, ValueError) as exc:
        # Re-raised as a SweepError: it names the point and, unlike some error classes, survives pickling. A
        # ValueError is the lab's refusal of a point's data (a basket where no order filled, a cost sample that
        # cannot be summarised), as `repeg backtest` reports it: a point's failure, not a crash of the sweep.
        raise SweepError(_point_name(point), f"{type(exc).__name__}: {exc}") from exc


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def _collect(
    done: Iterable[tuple[SweepPoint, Callable[[], SweepRecord]]], total: int, progress: bool
) -> list[SweepRecord]:
    """Drain completions in any order, with a progress bar; return the records in canonical order."""
    records: list[SweepRecord] = []
    with _progress(progress) as bar:
        task = bar.add_task("points", total=total)
        for point, result in done:
            try:
                records.append(result())
            except SweepError:
                raise
            except RepegError as exc:
                raise SweepError(_point_name(point), str(exc)) from exc
            bar.advance(task)
    return sorted(records, key=lambda r: r.point_id)


def run_local(
    points: Sequence[SweepPoint], runner: PointRunner, workers: int = 2, progress: bool = True
) -> list[SweepRecord]:
    """Run every point in a process pool of `workers` (spawned: safe beside Ray or other threads)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: dict[Future[SweepRecord], SweepPoint] = {
            pool.submit(run_in_worker, runner, p): p for p in points
        }

        def completions() -> Iterator[tuple[SweepPoint, Callable[[], SweepRecord]]]:
            for future in as_completed(futures):
                yield futures[future], future.result

        try:
            records = _collect(completions(), len(points), progress)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # fail now: do not run the points still queued
            raise
    log.info("sweep_done", engine="local", points=len(records), workers=workers)
    return records


def _ray_completions(
    ray: Any, refs: dict[Any, SweepPoint]
) -> Iterator[tuple[SweepPoint, Callable[[], SweepRecord]]]:
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        ref = ready[0]

        def result(ref: Any = ref) -> SweepRecord:
            try:
                record: SweepRecord = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, RepegError):
                    raise exc.cause from None  # the point's own error, not Ray's wrapper with its traceback
                raise
            return record

        yield refs[ref], result


def run_ray(
    points: Sequence[SweepPoint], runner: PointRunner, progress: bool = True, num_cpus: int | None = None
) -> list[SweepRecord]:
    """Run every point as a Ray task; starts a local Ray (with `num_cpus`) unless one is already running.

    A point's repeg error arrives as the cause of Ray's task error and is re-raised as itself (a `SweepError`
    naming the point); any other failure is a bug and propagates as Ray reports it.
    """
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(run_in_worker)
    refs = {remote.remote(runner, p): p for p in points}
    try:
        records = _collect(_ray_completions(ray, refs), len(points), progress)
    except BaseException:
        for ref in refs:
            ray.cancel(ref)  # fail now: do not run the points still queued
        raise
    log.info("sweep_done", engine="ray", points=len(records))
    return records


def max_workers() -> int:
    """The most worker processes (or Ray CPUs) a sweep asks for: 4 per CPU of this machine. More only queue for
    the same CPUs, each a process of its own (a typo'd `--workers 10000` started thousands)."""
    return 4 * (os.cpu_count() or 1)


def _note_queue_without_prints(points: Sequence[SweepPoint]) -> None:
    """Say so (on stderr, as the progress is drawn) when queue points run without trade prints (no `--trades`),
    as `repeg backtest` and `compare` say it; once every input is read, before the points run."""
    if any(p.fill_model is FillModelName.QUEUE and p.data.trades_file is None for p in points):
        Console(stderr=True, soft_wrap=True).print(f"[yellow]note:[/] {QUEUE_WITHOUT_PRINTS}")


def _refuse_unusable_trade_files(points: Sequence[SweepPoint]) -> None:
    """`ConfigError` naming `--trades` and the file, before any point runs, when a queue point's trade file cannot
    feed the queue rule (`repeg.lab.backtest.trades_problem`), as `backtest` and `compare` refuse it; a worker
    found it only at the first such point, after the points before it had run. Each such symbol-day is read once."""
    days = {
        (p.data.quotes_file, p.data.trades_file)
        for p in points
        if p.fill_model is FillModelName.QUEUE and p.data.trades_file is not None
    }
    for quotes, trades in sorted(days, key=str):
        refuse_unusable_trades(
            load_day(Path(quotes), None if trades is None else Path(trades), one_per_file=True)
        )


def run_sweep(
    points: Sequence[SweepPoint], runner: PointRunner, engine: Engine, workers: int = 2, progress: bool = True
) -> list[SweepRecord]:
    """Every point's record, on `engine` with `workers` (1 to `max_workers()`; `ConfigError` naming `--workers`
    otherwise, before any process starts)."""
    if not 1 <= workers <= max_workers():
        raise ConfigError("--workers", workers, f"must be 1 to {max_workers()} (4 per CPU of this machine)")
    _note_queue_without_prints(points)
    _refuse_unusable_trade_files(points)
    if engine is Engine.RAY:
        return run_ray(points, runner, progress=progress, num_cpus=workers)
    return run_local(points, runner, workers=workers, progress=progress)


def records_table(records: Sequence[SweepRecord]) -> pa.Table:
    """The records as an Arrow table, columns in the model's field order, rows in the given order."""
    names = list(SweepRecord.model_fields)
    columns = {name: [getattr(r, name) for r in records] for name in names}
    fields = [pa.field(name, _arrow_type(name)) for name in names]
    return pa.Table.from_pydict(columns, schema=pa.schema(fields))


def _arrow_type(name: str) -> pa.DataType:
    annotation = SweepRecord.model_fields[name].annotation
    if annotation is int:
        return pa.int64()
    if annotation is float:
        return pa.float64()
    return pa.string()


def write_parquet(records: Sequence[SweepRecord], path: Path) -> Path:
    pq.write_table(records_table(records), path)
    log.info("sweep_written", path=str(path), rows=len(records))
    return path


def read_parquet(path: Path) -> list[SweepRecord]:
    table = pq.read_table(path)
    return [SweepRecord.model_validate(row) for row in table.to_pylist()]
