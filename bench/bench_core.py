"""Benchmark of the core engine (issue 2, acceptance 5). Prints one JSON document.

Cases, each run in a fresh child process so that whole-process wall time and peak memory are its own:

- `replay200`: 200 alternating 100-share buy/sell parent orders spread over the replayed 2018-01-02 NYSE quotes
  (skipped when ../shared is absent);
- `synthetic300k`: the same basket over a synthetic day of 300,000 quotes;
- `scale5000`: 5,000 legs (sells then buys) over 500 synthetic symbols.

Engine seconds exclude interpreter start-up, imports and file loading: they time `run_basket`/`run_execution`
only (the tape's marketability index is built lazily inside that time, as in a real run). Like `repeg run`, each
case freezes its start-up heap (`repeg.runtime.freeze_startup_heap`) once its inputs are loaded. The whole process
is this script's child (interpreter, the engine's, simulator's and loader's imports, the input, the run, the exit),
not `repeg run` itself, which also imports the command line and journals every event (`bench_journal.py` measures
the journal's share). `quotes_per_second` is the quotes the replayed day holds over the engine seconds: the engine
does not visit each quote (a resting order's next marketable quote is found through an index), so it is a rate of
simulated market time, not of quotes processed. `peak_rss_mb` is the child's own peak resident set (it starts no
processes of its own).

Each case runs in `--repeat` fresh processes (default 5); timings are reported as the median with the range,
peak memory as the worst run. Usage: `python bench/bench_core.py [--repeat N]` (all cases) or
`python bench/bench_core.py --case NAME` (one run, in-process).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_QUOTES = REPO.parent / "shared" / "data" / "quotes" / "xxx_20180102_nyse_bbo.csv.gz"
CASES = ("replay200", "synthetic300k", "scale5000")


def _classic_ladder():  # type: ignore[no-untyped-def]
    """Issue 2's original schedule (join the touch, re-peg to 0.5/0.75/1.0 every 10 s): the heaviest default
    the engine has had, kept fixed so that figures stay comparable across releases whatever the default is."""
    from repeg.config import ExecutionConfig

    return ExecutionConfig(
        initial_offset=Decimal(0),
        repeg_steps=(Decimal("0.5"), Decimal("0.75"), Decimal("1.0")),
        fill_wait_seconds=10.0,
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _basket(tape, symbol: str, count: int):  # type: ignore[no-untyped-def]
    from repeg.domain.orders import Side
    from repeg.engine.runner import ParentOrder

    span = (tape.end - tape.start) - timedelta(minutes=5)
    return [
        ParentOrder(
            arrival=tape.start + span * i / count,
            symbol=symbol,
            side=Side.BUY if i % 2 == 0 else Side.SELL,
            qty=Decimal(100),
            whole_shares=True,
        )
        for i in range(count)
    ]


def _run_basket_case(tape, symbol: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from repeg.brokers.simulator import SimAccount, build_simulation
    from repeg.engine.clock import VirtualClock, run_virtual
    from repeg.engine.runner import run_basket
    from repeg.runtime import freeze_startup_heap

    orders = _basket(tape, symbol, 200)
    account = SimAccount(cash=Decimal(10_000_000), positions={symbol: Decimal(100_000)})
    config = _classic_ladder()

    async def main():  # type: ignore[no-untyped-def]
        clock = VirtualClock(tape.start)
        broker, feed = build_simulation(tape, clock, account, seed=7)
        started = time.perf_counter()
        result = await run_basket(orders, broker, feed, clock, config, run_id="bench")
        return result, time.perf_counter() - started

    freeze_startup_heap()  # as `repeg run` does once its inputs are loaded
    result, engine_s = run_virtual(main)
    quotes = len(tape)
    return {
        "orders": len(orders),
        "completed": sum(1 for leg in result.legs if leg.filled_qty == leg.requested_qty),
        "quotes": quotes,
        "engine_seconds": round(engine_s, 4),
        "quotes_per_second": round(quotes / engine_s),
    }


def case_replay200() -> dict[str, object]:
    from repeg.market.loaders import load_quotes

    if not SHARED_QUOTES.exists():
        return {"skipped": f"{SHARED_QUOTES} not found"}
    loaded = time.perf_counter()
    tape = load_quotes(SHARED_QUOTES)
    load_s = time.perf_counter() - loaded
    out = _run_basket_case(tape, tape.symbols[0])
    out["load_seconds"] = round(load_s, 4)
    return out


def case_synthetic300k() -> dict[str, object]:
    from repeg.market.synthetic import synthetic_symbols, synthetic_tape

    built = time.perf_counter()
    tape = synthetic_tape(synthetic_symbols(1, seed=3), seed=3, n_quotes=300_000)
    build_s = time.perf_counter() - built
    out = _run_basket_case(tape, tape.symbols[0])
    out["build_seconds"] = round(build_s, 4)
    return out


def case_scale5000() -> dict[str, object]:
    from repeg.brokers.simulator import SimAccount, build_simulation
    from repeg.domain.orders import Side
    from repeg.domain.plan import LegSpec
    from repeg.engine.clock import VirtualClock, run_virtual
    from repeg.engine.runner import run_execution
    from repeg.market.synthetic import synthetic_symbols, synthetic_tape
    from repeg.runtime import freeze_startup_heap

    symbols = synthetic_symbols(500, seed=11)
    # 1,000 quotes per symbol over 30 minutes: about one every 2 s, so quotes stay fresher than quote_max_age.
    tape = synthetic_tape(symbols, seed=11, n_quotes=500_000, duration=timedelta(minutes=30))
    names = list(tape.symbols)
    specs = [
        LegSpec(
            index=i,
            symbol=names[i % len(names)],
            side=Side.SELL if i < 2_500 else Side.BUY,
            qty=Decimal(10),
            whole_shares=True,
        )
        for i in range(5_000)
    ]
    account = SimAccount(cash=Decimal(100_000_000), positions={name: Decimal(1_000) for name in names})

    async def main():  # type: ignore[no-untyped-def]
        clock = VirtualClock(tape.start + timedelta(minutes=1))
        broker, feed = build_simulation(tape, clock, account, seed=5)
        started = time.perf_counter()
        result = await run_execution(specs, (), broker, feed, clock, _classic_ladder(), run_id="scale")
        return result, time.perf_counter() - started

    freeze_startup_heap()  # as `repeg run` does once its inputs are loaded
    result, engine_s = run_virtual(main)
    return {
        "legs": len(specs),
        "symbols": len(names),
        "completed": sum(1 for leg in result.legs if leg.filled_qty == leg.requested_qty),
        "engine_seconds": round(engine_s, 3),
    }


def run_case(name: str) -> dict[str, object]:
    from repeg.logging import configure_logging

    configure_logging(level="warning")  # as a production run would log: no per-order debug lines
    out = {"replay200": case_replay200, "synthetic300k": case_synthetic300k, "scale5000": case_scale5000}[
        name
    ]()
    out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return out


def _child(name: str) -> dict[str, object]:
    """One run of case `name` in a fresh interpreter, with that process's wall time."""
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "--case", name], capture_output=True, text=True, check=True
    )
    out: dict[str, object] = json.loads(child.stdout)
    out["process_wall_seconds"] = round(time.perf_counter() - started, 3)
    return out


def _summary(runs: list[dict[str, object]]) -> dict[str, object]:
    """The runs of one case: median and range of each timing (machines are noisy), worst memory and completion."""
    out = dict(runs[0])
    if "skipped" in out:
        return out
    for key in ("engine_seconds", "process_wall_seconds", "quotes_per_second"):
        if key in out:
            values = sorted(float(str(run[key])) for run in runs)
            out[key] = round(statistics.median(values), 4)
            out[f"{key}_range"] = [values[0], values[-1]]
    out["peak_rss_mb"] = max(float(str(run["peak_rss_mb"])) for run in runs)
    out["completed"] = min(int(str(run["completed"])) for run in runs)
    out["runs"] = len(runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", choices=CASES)
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per case (default 5)")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    report: dict[str, object] = {"benchmark": "core", "python": sys.version.split()[0]}
    for name in CASES:
        report[name] = _summary([_child(name) for _ in range(max(1, args.repeat))])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
