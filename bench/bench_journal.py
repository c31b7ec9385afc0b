"""Journaling overhead on the 200-order replay (issue 3, acceptance 4). Prints one JSON document.

The 200 alternating 100-share buy/sell parent orders of the core benchmark (`bench_core.py`) are replayed over
the 2018-01-02 NYSE quotes without a journal, journaling every event to a fresh SQLite file with the default
durability (`sqlite`: WAL; under virtual time, against the in-process simulator, commits are not fsync'd), and
with fsync'd commits for every intent and answer (`sqlite_full`), each in its own child process. Reported per variant: engine seconds
(`run_basket` only, median of `--repeat` runs), whole-process wall seconds, events written. The overhead is the
engine-time difference, stated as a share of the journaled run's whole-process wall time (the issue's measure)
and of the engine time alone. Target: under 20% of the wall time.

Usage: `python bench/bench_journal.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import json
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


def _engine_run(tape, journal_path: Path | None, run_id: str, full: bool) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(REPO / "bench"))
    from bench_core import _basket  # the core benchmark's basket, unchanged
    from repeg.brokers.simulator import SimAccount, build_simulation
    from repeg.config import ExecutionConfig
    from repeg.engine.clock import VirtualClock, run_virtual
    from repeg.engine.runner import run_basket
    from repeg.journal.sqlite import SqliteJournal

    symbol = tape.symbols[0]
    orders = _basket(tape, symbol, 200)
    account = SimAccount(cash=Decimal(10_000_000), positions={symbol: Decimal(100_000)})
    durability = "full" if full else "auto"
    journal = None if journal_path is None else SqliteJournal(journal_path, durability=durability)

    async def main():  # type: ignore[no-untyped-def]
        clock = VirtualClock(tape.start)
        broker, feed = build_simulation(tape, clock, account, seed=7)
        sinks = () if journal is None else (journal,)
        started = time.perf_counter()
        result = await run_basket(orders, broker, feed, clock, ExecutionConfig(), run_id=run_id, sinks=sinks)
        if journal is not None:
            await journal.flush()
        return result, time.perf_counter() - started

    result, engine_s = run_virtual(main)
    if journal is None:
        return engine_s, 0
    closed = time.perf_counter()
    journal.close()
    engine_s += time.perf_counter() - closed
    reopened = SqliteJournal(journal_path, create=False)  # type: ignore[arg-type]
    events = len(reopened.events(run_id))
    reopened.close()
    assert all(leg.filled_qty == leg.requested_qty for leg in result.legs)
    return engine_s, events


def run_variant(variant: str, repeat: int) -> dict[str, object]:
    from repeg.logging import configure_logging
    from repeg.market.loaders import load_quotes

    configure_logging(level="warning")
    tape = load_quotes(SHARED_QUOTES)
    times: list[float] = []
    events = 0
    with tempfile.TemporaryDirectory() as scratch:
        for n in range(repeat):
            path = None if variant == "none" else Path(scratch) / f"bench{n}.db"
            engine_s, events = _engine_run(tape, path, f"bench{n}", variant == "sqlite_full")
            times.append(engine_s)
    return {"engine_seconds": round(statistics.median(times), 4), "events": events, "runs": repeat}


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
    for variant in VARIANTS:
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--repeat", "1"],
            capture_output=True,
            text=True,
            check=True,
        )
        out = json.loads(child.stdout)
        out["process_wall_seconds"] = round(time.perf_counter() - started, 3)
        out["engine_seconds_median"] = json.loads(
            subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--repeat", str(args.repeat)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )["engine_seconds"]
        report[variant] = out
    base = report["none"]
    assert isinstance(base, dict)
    for variant in VARIANTS[1:]:
        journaled = report[variant]
        assert isinstance(journaled, dict)
        overhead = journaled["engine_seconds_median"] - base["engine_seconds_median"]
        journaled["overhead_seconds"] = round(overhead, 4)
        journaled["overhead_pct_of_wall"] = round(100 * overhead / journaled["process_wall_seconds"], 1)
        journaled["overhead_pct_of_engine"] = round(100 * overhead / base["engine_seconds_median"], 1)
        journaled["meets_target"] = journaled["overhead_pct_of_wall"] < TARGET_PCT
    report["target_pct_of_wall"] = TARGET_PCT
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
