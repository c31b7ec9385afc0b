"""A sweep gives the same records on a local process pool and on a local Ray cluster, and writes them to Parquet.

The data are two small synthetic symbol-days written by the test (quotes and trades), so the test never skips;
each point is a real backtest through the engine and simulator. One Ray session serves the whole module.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from repeg.cli.app import build_app
from repeg.errors import ConfigError, SweepError
from repeg.lab.backtest import load_day
from repeg.lab.fit import fit_adaptive, save_params
from repeg.lab.sweep import Engine, SweepRecord, read_parquet, run_local, run_ray, run_sweep, write_parquet
from repeg.lab.sweep_grid import SweepPoint, SymbolDay, expand, grid_from_mapping, pair_files
from repeg.lab.sweep_point import run_point

GRID = {
    "seed": 11,
    "fill_models": ["paper", "queue"],
    "basket": {"count": 4, "budget_seconds": 30.0, "margin_seconds": 10.0},
    "policy": [
        {"name": "market", "kind": "market"},
        {"name": "ladder", "kind": "ladder", "grid": {"fill_wait_seconds": [3.0, 8.0]}},
    ],
}


def _write_day(folder: Path, day: datetime, seed: int) -> tuple[Path, Path]:
    """Ten minutes of a random-walk quote (one a second, 2-4 cent spread) and prints around it."""
    rng = np.random.default_rng(seed)
    n = 600
    bid = 15_000 + np.cumsum(rng.integers(-1, 2, size=n))  # cents
    spread = rng.integers(2, 5, size=n)
    stamp = day.strftime("%Y%m%d")
    quotes = folder / f"syn_{stamp}_bbo.csv"
    trades = folder / f"syn_{stamp}_trades.csv"
    rows = ["ts,symbol,bid,bid_size,ask,ask_size"]
    prints = ["ts,symbol,price,size,exchange,conditions"]
    for k in range(n):
        ts = (day + timedelta(seconds=k)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows.append(f"{ts},SYN,{bid[k] / 100:.2f},{100 * (1 + k % 5)},{(bid[k] + spread[k]) / 100:.2f},300")
        side_px = bid[k] if k % 2 else bid[k] + spread[k]
        half = (day + timedelta(seconds=k, milliseconds=500)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        prints.append(f"{half},SYN,{side_px / 100:.2f},{100 * (1 + k % 4)},N,@")
    quotes.write_text("\n".join(rows) + "\n")
    trades.write_text("\n".join(prints) + "\n")
    return quotes, trades


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sweep_data")
    _write_day(folder, datetime(2018, 1, 2, 14, 30, tzinfo=UTC), seed=1)
    _write_day(folder, datetime(2018, 1, 3, 14, 30, tzinfo=UTC), seed=2)
    return folder


@pytest.fixture(scope="module")
def points(data_dir: Path) -> tuple[SweepPoint, ...]:
    days = pair_files(
        [str(p) for p in data_dir.glob("*_bbo.csv")], [str(p) for p in data_dir.glob("*_trades.csv")]
    )
    return expand(grid_from_mapping(GRID), days)


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_records(points: tuple[SweepPoint, ...]) -> list[SweepRecord]:
    return run_local(points, run_point, workers=2, progress=False)


def test_grid_covers_policies_fill_models_and_days(points: tuple[SweepPoint, ...]) -> None:
    assert len(points) == 3 * 2 * 2


def test_local_records_are_real_backtests_in_canonical_order(
    points: tuple[SweepPoint, ...], local_records: list[SweepRecord]
) -> None:
    assert [r.point_id for r in local_records] == [p.point_id for p in points]
    assert {r.day for r in local_records} == {"2018-01-02", "2018-01-03"}
    assert all(r.n_orders == 4 and r.completion_rate == 1.0 for r in local_records)
    market = [r for r in local_records if r.kind == "market"]
    assert all(r.escalation_rate == 0.0 and r.fill_rate_before_escalation == 0.0 for r in market)


def test_records_do_not_depend_on_the_number_of_workers(
    points: tuple[SweepPoint, ...], local_records: list[SweepRecord]
) -> None:
    assert run_local(points[::-1], run_point, workers=1, progress=False) == local_records


def test_ray_engine_gives_identical_records(
    ray_session: None, points: tuple[SweepPoint, ...], local_records: list[SweepRecord]
) -> None:
    assert run_ray(points, run_point, progress=False) == local_records


def test_parquet_round_trips_and_is_engine_independent(
    ray_session: None, points: tuple[SweepPoint, ...], local_records: list[SweepRecord], tmp_path: Path
) -> None:
    local_file = write_parquet(local_records, tmp_path / "local.parquet")
    ray_file = write_parquet(
        run_sweep(points, run_point, Engine.RAY, progress=False), tmp_path / "ray.parquet"
    )
    assert read_parquet(local_file) == local_records
    assert pq.read_table(local_file).equals(pq.read_table(ray_file))


def _bad_point(points: tuple[SweepPoint, ...]) -> SweepPoint:
    return points[0].model_copy(update={"kind": "ladder", "params": {"fill_wait_seconds": -1.0}})


def test_a_failing_point_fails_the_local_sweep_naming_the_point(points: tuple[SweepPoint, ...]) -> None:
    with pytest.raises(SweepError, match=r"^point 0 .*fill_wait_seconds"):
        run_local([_bad_point(points)], run_point, workers=1, progress=False)


def test_a_failing_point_fails_the_ray_sweep_naming_the_point(
    ray_session: None, points: tuple[SweepPoint, ...]
) -> None:
    with pytest.raises(SweepError, match=r"^point 0 .*fill_wait_seconds"):
        run_ray([_bad_point(points)], run_point, progress=False)


def _adaptive_point(points: tuple[SweepPoint, ...], params_file: Path, day: str) -> SweepPoint:
    on_day = next(p for p in points if p.fill_model.value == "paper" and day in p.data.quotes_file)
    return on_day.model_copy(
        update={"kind": "adaptive", "policy": "adaptive", "params": {"params_file": str(params_file)}}
    )


def test_an_adaptive_point_on_its_own_fit_day_is_refused_as_in_sample(
    data_dir: Path, points: tuple[SweepPoint, ...], tmp_path: Path
) -> None:
    fit_day = load_day(next(data_dir.glob("*_20180102_bbo.csv")))
    params_file = tmp_path / "params.json"
    save_params(fit_adaptive(fit_day.quotes.columns(fit_day.symbol), fit_day.ref), params_file)
    assert run_point(_adaptive_point(points, params_file, "20180103")).n_orders == 4  # out of sample: runs
    with pytest.raises(SweepError, match=r"^point \d+ \(adaptive\).*in-sample"):
        run_point(_adaptive_point(points, params_file, "20180102"))


def test_sweep_command_writes_parquet(data_dir: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(
        'seed = 3\nfill_models = ["paper"]\n[basket]\ncount = 2\nbudget_seconds = 20.0\n'
        '[[policy]]\nname = "market"\nkind = "market"\n'
    )
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(
        build_app(("repeg.cli.report_cmds",)),
        [
            "sweep",
            "--quotes",
            str(data_dir / "*_bbo.csv"),
            "--grid",
            str(grid),
            "--out",
            str(out),
            "--engine",
            "local",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).num_rows == 2


def test_a_sweep_on_a_quote_file_of_several_symbols_names_the_quotes_option(
    points: tuple[SweepPoint, ...], tmp_path: Path
) -> None:
    # A sweep has no --symbol: it said "config symbol: ... name one", which the user could not do.
    quotes = tmp_path / "two_20180102_bbo.csv"
    quotes.write_text(
        "ts,symbol,bid,bid_size,ask,ask_size\n"
        "2018-01-02T14:30:00.000000Z,AAA,10.00,100,10.02,100\n"
        "2018-01-02T14:30:01.000000Z,BBB,20.00,100,20.02,100\n"
    )
    point = points[0].model_copy(update={"data": SymbolDay(quotes_file=str(quotes))})
    with pytest.raises(
        ConfigError, match=r"^config --quotes: .* holds 2 symbols .*one symbol per quote file"
    ):
        run_point(point)


def test_a_point_where_no_order_fills_fails_the_sweep_naming_the_point(tmp_path: Path) -> None:
    # The book goes one-sided after 5 s (a halt): no order can fill, and the backtest's summary refuses the
    # basket. That refusal was a bare ValueError, which neither named the point nor was caught by `repeg sweep`
    # (a traceback instead of an error line).
    day = datetime(2018, 1, 2, 14, 30, tzinfo=UTC)
    quotes = tmp_path / "halt_20180102_bbo.csv"
    rows = ["ts,symbol,bid,bid_size,ask,ask_size"]
    for k in range(120):
        ts = (day + timedelta(seconds=k)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows.append(f"{ts},HLT,10.00,100,{'10.02,100' if k < 5 else '0,0'}")
    quotes.write_text("\n".join(rows) + "\n")
    grid = grid_from_mapping(
        {
            "basket": {"count": 2, "budget_seconds": 20.0, "margin_seconds": 10.0},
            "policy": [{"name": "market", "kind": "market"}],
        }
    )
    points = expand(grid, pair_files([str(quotes)], None))
    with pytest.raises(SweepError, match=r"^point 0 \(market\).*no order filled"):
        run_local(points, run_point, workers=1, progress=False)


def test_a_sweep_whose_out_is_its_grid_file_is_refused_before_any_point_runs(
    data_dir: Path, tmp_path: Path
) -> None:
    # `--out grid.toml` ran the whole sweep, then wrote the Parquet over the grid it was read from.
    grid = tmp_path / "grid.toml"
    text = 'seed = 3\nfill_models = ["paper"]\n[basket]\ncount = 2\nbudget_seconds = 20.0\n'
    text += '[[policy]]\nname = "market"\nkind = "market"\n'
    grid.write_text(text)
    result = CliRunner().invoke(
        build_app(("repeg.cli.report_cmds",)),
        ["sweep", "--quotes", str(data_dir / "*_bbo.csv"), "--grid", str(grid), "--out", str(grid)],
    )
    assert result.exit_code == 2, result.output
    assert "--out" in result.output
    assert grid.read_text() == text


def test_a_sweep_of_the_queue_model_without_trades_says_it_fills_on_crossing_quotes_only(
    data_dir: Path, tmp_path: Path
) -> None:
    # Without --trades the queue points have no print to fill a resting order from: their rows (fill_model
    # "queue") are more pessimistic than paper's, and the sweep said nothing, where backtest and compare say so.
    grid = tmp_path / "grid.toml"
    text = 'fill_models = ["queue"]\n[basket]\ncount = 2\nbudget_seconds = 20.0\n'
    grid.write_text(text + '[[policy]]\nname = "market"\nkind = "market"\n')
    args = ["sweep", "--quotes", str(data_dir / "*_bbo.csv"), "--grid", str(grid)]
    args += ["--out", str(tmp_path / "s.parquet"), "--workers", "1", "--no-progress"]
    result = CliRunner().invoke(build_app(("repeg.cli.report_cmds",)), args)
    assert result.exit_code == 0, result.output
    assert "queue model has no trade prints (--trades)" in result.stderr


def test_a_sweep_whose_out_is_an_adaptive_policys_params_file_is_refused_before_any_point_runs(
    data_dir: Path, tmp_path: Path
) -> None:
    # `--out params.json`, the file an adaptive policy of the grid reads its fitted parameters from, ran the whole
    # sweep, then wrote the Parquet over it (the file began `PAR1`): the fit was lost.
    fit_day = load_day(next(data_dir.glob("*_20180102_bbo.csv")))
    params_file = tmp_path / "params.json"
    save_params(fit_adaptive(fit_day.quotes.columns(fit_day.symbol), fit_day.ref), params_file)
    fitted = params_file.read_bytes()
    grid = tmp_path / "grid.toml"
    grid.write_text(
        'fill_models = ["paper"]\n[basket]\ncount = 2\nbudget_seconds = 20.0\n'
        f'[[policy]]\nname = "adaptive"\nkind = "adaptive"\n[policy.fixed]\nparams_file = "{params_file}"\n'
    )
    args = ["sweep", "--quotes", str(data_dir / "*_20180103_bbo.csv"), "--grid", str(grid)]
    args += ["--out", str(params_file), "--workers", "1", "--no-progress"]
    result = CliRunner().invoke(build_app(("repeg.cli.report_cmds",)), args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --out")
    assert str(params_file) in result.stderr
    assert params_file.read_bytes() == fitted


def test_a_trades_pattern_that_matches_no_file_is_refused_naming_the_option(
    data_dir: Path, tmp_path: Path
) -> None:
    # A --trades glob with a typo matched nothing, and the sweep blamed the first quote file ("no trade file with day
    # key ..."), where a --quotes glob that matches nothing is named as such.
    grid = tmp_path / "grid.toml"
    grid.write_text('[basket]\ncount = 2\n[[policy]]\nname = "market"\nkind = "market"\n')
    args = ["sweep", "--quotes", str(data_dir / "*_bbo.csv"), "--trades", str(tmp_path / "typo_*.csv")]
    args += ["--grid", str(grid), "--out", str(tmp_path / "s.parquet"), "--no-progress"]
    result = CliRunner().invoke(build_app(("repeg.cli.report_cmds",)), args)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: --trades: {str(tmp_path / 'typo_*.csv')!r} matched no file\n"


def test_a_queue_sweep_with_another_days_trade_file_is_refused_before_any_point_runs(data_dir: Path) -> None:
    # The 2018-01-03 prints paired with the 2018-01-02 quotes can feed no queue point. The sweep found it only
    # when a worker reached the first queue point (a SweepError naming that point), after the points before it
    # had run; it is refused up front, naming --trades and the file, as backtest and compare refuse it.
    trades = next(data_dir.glob("*_20180103_trades.csv"))
    day = SymbolDay(quotes_file=str(next(data_dir.glob("*_20180102_bbo.csv"))), trades_file=str(trades))
    grid = grid_from_mapping(
        {
            "fill_models": ["paper", "queue"],
            "basket": {"count": 2, "budget_seconds": 20.0, "margin_seconds": 10.0},
            "policy": [{"name": "market", "kind": "market"}],
        }
    )
    with pytest.raises(
        ConfigError, match=r"^config --trades=.*20180103_trades\.csv.* outside the quotes' span"
    ):
        run_sweep(expand(grid, [day]), run_point, Engine.LOCAL, workers=1, progress=False)
