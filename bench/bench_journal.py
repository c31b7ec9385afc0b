"""Journaling overhead on the 200-order replay (issue 3, acceptance 4). Prints one JSON document.

The 200 alternating 100-share buy/sell parent orders of the core benchmark (`bench_core.py`), under its fixed
classic schedule (issue 2's join-then-0.5/0.75/1.0 ladder, 3,040 events), are replayed over the 2018-01-02 NYSE
quotes three ways, each in fresh child processes: without a journal (`none`); journaling every event to a fresh
SQLite file with the default durability (`sqlite`: against the in-process simulator, group commits without fsync,
see `repeg.journal.sqlite`); and with the real-time write-ahead contract forced (`sqlite_full`: each intent fsync'd
before its broker call). Reported per variant: engine seconds (opening the journal file and its schema,
`run_basket`, the journal's final commit), engine CPU seconds, whole-process wall seconds, events written, as
medians over `--repeat` rounds; each round runs one process per variant, back to back. The overhead is the median
over rounds of the engine-time difference with the round's `none` run (so a slow spell of a shared machine cancels
out), as a share of the unjournaled run's median whole-process wall time (the issue's measure, taken against the run
without the journal so that the journal's own time does not dilute its share) and of the engine time alone. Every
variant checks that every order filled. Target: under 20% of the wall time.

Usage: `python bench/bench_journal.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_QUOTES = REPO.parent / "shared" / "data" / "quotes" / "xxx_20180102_nyse_bbo.csv.gz"
VARIANTS = ("none", "sqlite", "sqlite_full")
TARGET_PCT = 20.0


def _engine_run(tape, journal_path: Path | None, run_id: str, full: bool) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(REPO / "bench"))
    from bench_core import _basket, _classic_ladder  # the core benchmark's basket and schedule, unchanged
    from repeg.brokers.simulator import SimAccount, build_simulation
    from repeg.engine.clock import VirtualClock, run_virtual
    from repeg.engine.runner import run_basket
    from repeg.journal.sqlite import SqliteJournal

    symbol = tape.symbols[0]
    orders = _basket(tape, symbol, 200)
    account = SimAccount(cash=Decimal(10_000_000), positions={symbol: Decimal(100_000)})
    durability = "full" if full else "auto"

    async def main():  # type: ignore[no-untyped-def]
        clock = VirtualClock(tape.start)
        broker, feed = build_simulation(tape, clock, account, seed=7)
        started, started_cpu = time.perf_counter(), time.process_time()
        journal = None if journal_path is None else SqliteJournal(journal_path, durability=durability)
        sinks = () if journal is None else (journal,)
        result = await run_basket(orders, broker, feed, clock, _classic_ladder(), run_id=run_id, sinks=sinks)
        if journal is not None:
            await journal.flush()
            journal.close()
        return result, time.perf_counter() - started, time.process_time() - started_cpu

    result, engine_s, engine_cpu = run_virtual(main)
    unfilled = [leg.symbol for leg in result.legs if leg.filled_qty != leg.requested_qty]
    if unfilled or len(result.legs) != len(orders):
        sys.exit(f"bench_journal: {len(unfilled)} of {len(orders)} orders did not fill completely")
    if journal_path is None:
        return engine_s, engine_cpu, 0
    with contextlib.closing(sqlite3.connect(str(journal_path))) as raw:
        events = int(raw.execute("SELECT COUNT(*) FROM events WHERE run_id = ?", (run_id,)).fetchone()[0])
    return engine_s, engine_cpu, events


def run_variant(variant: str, repeat: int) -> dict[str, object]:
    from repeg.logging import configure_logging
    from repeg.market.loaders import load_quotes
    from repeg.runtime import freeze_startup_heap

    configure_logging(level="warning")
    tape = load_quotes(SHARED_QUOTES)
    freeze_startup_heap()  # as `repeg run` does once its inputs are loaded
    times: list[float] = []
    cpu: list[float] = []
    events = 0
    with tempfile.TemporaryDirectory() as scratch:
        for n in range(repeat):
            path = None if variant == "none" else Path(scratch) / f"bench{n}.db"
            engine_s, engine_cpu, events = _engine_run(tape, path, f"bench{n}", variant == "sqlite_full")
            times.append(engine_s)
            cpu.append(engine_cpu)
    return {
        "engine_seconds": round(statistics.median(times), 4),
        "engine_cpu_seconds": round(statistics.median(cpu), 4),
        "events": events,
        "runs": repeat,
    }


def _child(variant: str) -> tuple[float, dict[str, object]]:
    """One run of `variant` in a fresh interpreter: (whole-process wall seconds, its report)."""
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "--variant", variant, "--repeat", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        sys.stderr.write(child.stderr)  # why (an order that did not fill, a traceback): its own words
        sys.exit(f"bench_journal: the {variant} run failed (exit {child.returncode})")
    return time.perf_counter() - started, json.loads(child.stdout)


def _summary(runs: list[tuple[float, dict[str, object]]]) -> dict[str, object]:
    """Medians over the fresh processes of one variant."""
    return {
        "process_wall_seconds": round(statistics.median(wall for wall, _ in runs), 3),
        "engine_seconds": round(statistics.median(float(str(out["engine_seconds"])) for _, out in runs), 4),
        "engine_cpu_seconds": round(
            statistics.median(float(str(out["engine_cpu_seconds"])) for _, out in runs), 4
        ),
        "events": int(str(runs[-1][1]["events"])),
        "runs": len(runs),
    }


def _paired_median(
    journaled: list[tuple[float, dict[str, object]]], base: list[tuple[float, dict[str, object]]], key: str
) -> float:
    """Median over rounds of (journaled - base) for `key`: each pair ran back to back, so drift cancels."""
    return statistics.median(
        float(str(j[key])) - float(str(b[key])) for (_, j), (_, b) in zip(journaled, base, strict=True)
    )


def _measure(repeat: int) -> dict[str, list[tuple[float, dict[str, object]]]]:
    """`repeat` rounds of one fresh process per variant, interleaved so that a slow spell of the machine
    weighs on every variant alike."""
    runs: dict[str, list[tuple[float, dict[str, object]]]] = {variant: [] for variant in VARIANTS}
    for _ in range(repeat):
        for variant in VARIANTS:
            runs[variant].append(_child(variant))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not SHARED_QUOTES.exists():
        print(json.dumps({"benchmark": "journal", "skipped": f"{SHARED_QUOTES} not found"}))
        return
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.repeat)))
        return
    report: dict[str, object] = {
        "benchmark": "journal",
        "case": "replay200",
        "python": sys.version.split()[0],
    }
    runs = _measure(args.repeat)
    base = _summary(runs["none"])
    report["none"] = base
    for variant in VARIANTS[1:]:
        journaled = _summary(runs[variant])
        overhead = _paired_median(runs[variant], runs["none"], "engine_seconds")
        journaled["overhead_seconds"] = round(overhead, 4)
        journaled["overhead_pct_of_wall"] = round(
            100 * overhead / float(str(base["process_wall_seconds"])), 1
        )
        journaled["overhead_pct_of_engine"] = round(100 * overhead / float(str(base["engine_seconds"])), 1)
        journaled["cpu_overhead_seconds"] = round(
            _paired_median(runs[variant], runs["none"], "engine_cpu_seconds"), 4
        )
        journaled["meets_target"] = float(str(journaled["overhead_pct_of_wall"])) < TARGET_PCT
        report[variant] = journaled
    report["target_pct_of_wall"] = TARGET_PCT
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
