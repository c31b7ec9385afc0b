"""Benchmark of the execution-quality lab; prints one JSON document.

1. `backtest`: the issue's 200-order basket (alternating 100-share orders, 60 s budget) on one real symbol-day
   (`xxx_20180102`, quotes and trades) under the queue model, and under the paper model for reference: file
   loading and backtest wall seconds, separately; each model's backtest on a freshly loaded day (cold tape).
2. `sweep`: 100 grid points (a 5 x 5 ladder grid x 2 fill models x 2 symbol-days, 200-order baskets), on the
   local process pool (2 workers) and, with `--engine ray` or `both`, on a local Ray cluster; checks that both
   engines gave identical records.

Memory: peak resident set of this process (`ru_maxrss` of RUSAGE_SELF) and of the largest reaped child process
(RUSAGE_CHILDREN: the pool's workers; Ray's workers are not children of this process and are not counted).

Usage: `.venv/bin/python bench/bench_lab.py [--engine local|ray|both] [--basket 200]`
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from repeg.lab.backtest import day_basket, load_day, run_backtest
from repeg.lab.baskets import BasketSpec
from repeg.lab.models import FillModelName
from repeg.lab.policies import policy_spec
from repeg.lab.sweep import Engine, run_sweep
from repeg.lab.sweep_grid import expand, grid_from_mapping, pair_files
from repeg.lab.sweep_point import run_point
from repeg.logging import configure_logging

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "quotes"
DAYS = ("20180102", "20180103")


def _files(day: str) -> tuple[Path, Path]:
    return DATA / f"xxx_{day}_nyse_bbo.csv.gz", DATA / f"xxx_{day}_trades.csv.gz"


def _peak_mb(who: int) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


def bench_backtest(basket_size: int) -> dict[str, object]:
    """Each fill model's backtest runs on a day loaded afresh for it: the tape builds its search index and quote
    cache lazily during a run, so a second backtest on the same loaded day would be timed warm (about 10-25%
    faster) and the model run second would be flattered."""
    quotes, trades = _files(DAYS[0])
    out: dict[str, object] = {}
    for model in (FillModelName.QUEUE, FillModelName.PAPER):
        t0 = time.perf_counter()
        day = load_day(quotes, trades)
        out.setdefault("load_s", round(time.perf_counter() - t0, 3))
        basket = day_basket(day, BasketSpec(count=basket_size), seed=1)
        out["orders"] = len(basket)
        t1 = time.perf_counter()
        result = run_backtest(day, basket, policy_spec("default"), fill_model=model, seed=1)
        out[f"{model.value}_backtest_s"] = round(time.perf_counter() - t1, 3)
        out[f"{model.value}_completion"] = result.summary.completion_rate
        out[f"{model.value}_cost_half_spreads"] = round(result.summary.cost_half_spreads.mean, 4)
    return out


def _grid(basket_size: int) -> dict[str, object]:
    return {
        "seed": 1,
        "fill_models": ["paper", "queue"],
        "basket": {"count": basket_size},
        "policy": [
            {
                "name": "ladder",
                "kind": "ladder",
                "grid": {
                    "initial_offset": [0.0, 0.1, 0.25, 0.4, 0.5],
                    "fill_wait_seconds": [2.0, 5.0, 10.0, 15.0, 20.0],
                },
            }
        ],
    }


def bench_sweep(engines: list[Engine], basket_size: int) -> dict[str, object]:
    days = pair_files([str(_files(d)[0]) for d in DAYS], [str(_files(d)[1]) for d in DAYS])
    points = expand(grid_from_mapping(_grid(basket_size)), days)
    out: dict[str, object] = {
        "points": len(points),
        "symbol_days": len(days),
        "orders_per_point": basket_size,
    }
    results = {}
    for engine in engines:
        t0 = time.perf_counter()
        results[engine] = run_sweep(points, run_point, engine, workers=2, progress=False)
        out[f"{engine.value}_wall_s"] = round(time.perf_counter() - t0, 2)
    if len(results) == 2:
        out["ray_equals_local"] = results[Engine.RAY] == results[Engine.LOCAL]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["local", "ray", "both"], default="both")
    parser.add_argument("--basket", type=int, default=200)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"bench_lab: {DATA} is absent; the benchmark needs the shared quote files")
    configure_logging(level="warning")
    engines = [Engine.LOCAL, Engine.RAY] if args.engine == "both" else [Engine(args.engine)]
    t0 = time.perf_counter()
    report = {
        "backtest_200_orders_one_day": bench_backtest(args.basket),
        "sweep_100_points_two_days": bench_sweep(engines, args.basket),
        "process_wall_s": None,
        "peak_rss_mb_self": None,
        "peak_rss_mb_largest_child": None,
    }
    report["process_wall_s"] = round(time.perf_counter() - t0, 2)
    report["peak_rss_mb_self"] = _peak_mb(resource.RUSAGE_SELF)
    report["peak_rss_mb_largest_child"] = _peak_mb(resource.RUSAGE_CHILDREN)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
