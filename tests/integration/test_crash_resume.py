"""Crash test: real `repeg run` processes killed with SIGKILL at 50+ points, then `repeg resume`d.

The simulator lives in its own process (`python -m repeg.brokers.remote`), so its orders, fills and positions
survive each kill. Every case is an independent session of that server (its own account and tape) and its own
journal. The kill points (`REPEG_KILL_AT`, see `repeg.journal.faults`) cover submit, replace, cancel and fill
handling on both sides of every journal write; the first resume of each case is killed too, at a point of its
own. After the final resume of every case:

- each leg's filled quantity in the journal equals what the simulator filled for that leg's orders;
- no leg is over-filled;
- no client order id names two orders at the simulator, and none of the run's orders is left working;
- the account's positions equal the plan's targets.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from repeg.brokers.remote.client import RemoteBroker
from repeg.domain.events import OrderIntent, RunEvent
from repeg.domain.orders import Side
from repeg.domain.run import RunState, fold_run
from repeg.journal.sqlite import SqliteJournal

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SPEC = (
    '{"symbols": {"AAA": "20.00", "BBB": "50.00", "CCC": "8.00", "DDD": "120.00"},'
    ' "account": {"cash": "200000", "positions": {"AAA": "300", "CCC": "500"}}, "seed": 11}'
)
PLAN = "symbol,side,qty\nAAA,sell,100\nCCC,sell,200\nBBB,buy,40\nDDD,buy,10\n"
TARGETS = {"AAA": Decimal(200), "CCC": Decimal(300), "BBB": Decimal(40), "DDD": Decimal(10)}
# Short real-time waits; steps that never cross the spread, so every leg re-pegs, escalates and cancels.
CONFIG = """[execution]
fill_wait_seconds = 0.25
wait_between_checks = 0.1
max_total_wait = 15
grace_window = 0.2
initial_offset = 0
repeg_steps = ["0.25", "0.5"]
quote_wait = 5
"""
SIGKILLED = -signal.SIGKILL
WORKERS = 6
#: Safety nets, never what a test waits for: how long (seconds) a process may take to start, and to run or
#: resume to its end. A 2-core machine loaded by other test runs takes well over 10 s to start the server.
START_BUDGET = 120.0
PROCESS_BUDGET = 300.0


def _points(name: str, whens: tuple[str, ...], counts: range) -> list[str]:
    return [f"{name}:{when}:{n}" for n in counts for when in whens]


BOTH = ("before", "after")
#: Where the first process dies: early points (mostly the sell phase), so that the resume has work left.
RUN_KILLS: list[str] = [
    *_points("submit-intent", BOTH, range(1, 5)),
    *_points("submit-ack", ("before",), range(1, 5)),
    *_points("submit-ack", ("after",), range(1, 3)),
    *_points("replace-intent", BOTH, range(1, 3)),
    *_points("replace-ack", ("before",), range(1, 3)),
    *_points("cancel-intent", BOTH, range(1, 3)),
    *_points("cancel-confirm", BOTH, range(1, 3)),
    *_points("fill", BOTH, range(1, 3)),
]
#: Where the first resume dies (counted from the resume's own events): points the remaining work reaches.
RESUME_KILLS: list[str] = [
    "submit-intent:after:1",
    "submit-ack:before:1",
    "fill:before:1",
    "cancel-intent:after:1",
    "submit-intent:before:2",
    "cancel-confirm:before:1",
    "fill:after:1",
    "submit-ack:after:1",
    "cancel-intent:before:1",
    "cancel-confirm:after:1",
]
#: (kill point of the run, kill point of the first resume); a second resume always runs to the end.
CASES: list[tuple[str, str | None]] = [
    (run_kill, RESUME_KILLS[index % len(RESUME_KILLS)]) for index, run_kill in enumerate(RUN_KILLS)
]


def _repeg_executable() -> str:
    found = shutil.which("repeg", path=str(Path(sys.executable).parent)) or shutil.which("repeg")
    if found is None:
        pytest.skip("the repeg console script is not installed")
    return found


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash")
    (root / "plan.csv").write_text(PLAN)
    (root / "config.toml").write_text(CONFIG)
    (root / "spec.json").write_text(SPEC)
    return root


#: The remote simulator process serving each port (a test pauses it to hold a stop under way).
SERVERS: dict[int, subprocess.Popen[bytes]] = {}


@pytest.fixture(scope="module")
def sim_port(workdir: Path) -> Iterator[int]:
    port_file = workdir / "port"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "repeg.brokers.remote",
            str(workdir / "spec.json"),
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "server.log").open("w"),
    )
    try:
        deadline = time.monotonic() + START_BUDGET
        while not port_file.exists() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not port_file.exists():
            pytest.fail(f"remote simulator did not start: {(workdir / 'server.log').read_text()}")
        port = int(port_file.read_text())
        SERVERS[port] = server
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


@dataclass
class Outcome:
    case: int
    kills: int
    exits: list[int]
    journal: Path
    run_id: str


def _repeg(args: list[str], kill_at: str | None, log: Path) -> int:
    env = {key: value for key, value in os.environ.items() if key != "REPEG_KILL_AT"}
    if kill_at is not None:
        env["REPEG_KILL_AT"] = kill_at
    with log.open("a") as err:
        done = subprocess.run(
            [_repeg_executable(), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=PROCESS_BUDGET,
            check=False,
        )
    return done.returncode


def _run_case(index: int, kill_run: str, kill_resume: str | None, workdir: Path, port: int) -> Outcome:
    run_id = f"crash{index:02d}"
    journal = workdir / f"{run_id}.db"
    log = workdir / f"{run_id}.log"
    url = f"sim://127.0.0.1:{port}/{run_id}"
    common = ["--journal", str(journal), "--sim-url", url]
    exits = [
        _repeg(
            [
                "run",
                str(workdir / "plan.csv"),
                "--broker",
                "sim-remote",
                "--config",
                str(workdir / "config.toml"),
                "--run-id",
                run_id,
                "--json",
                *common,
            ],
            kill_run,
            log,
        )
    ]
    resume_kills = [kill_resume, None]
    while exits[-1] == SIGKILLED and len(exits) <= len(resume_kills):
        exits.append(_repeg(["resume", run_id, "--json", *common], resume_kills[len(exits) - 1], log))
    return Outcome(index, sum(code == SIGKILLED for code in exits), exits, journal, run_id)


def _journal_state(outcome: Outcome) -> RunState:
    journal = SqliteJournal(outcome.journal, create=False)
    try:
        return fold_run(journal.events(outcome.run_id))
    finally:
        journal.close()


async def _broker_view(port: int, run_id: str) -> tuple[list[tuple[str, Decimal]], dict[str, Decimal], int]:
    broker = RemoteBroker(f"sim://127.0.0.1:{port}/{run_id}")
    try:
        orders = await broker.all_orders()
        positions = await broker.get_positions()
        still_open = await broker.list_open_orders()
    finally:
        await broker.close()
    return (
        [(order.client_order_id, order.filled_qty) for order in orders],
        {position.symbol: position.qty for position in positions},
        len(still_open),
    )


def _check(outcome: Outcome, port: int) -> None:
    where = f"case {outcome.case} exits {outcome.exits} ({outcome.journal.with_suffix('.log')})"
    assert outcome.exits[-1] == 0, where
    state = _journal_state(outcome)
    orders, positions, still_open = asyncio.run(_broker_view(port, outcome.run_id))
    assert state.status == "completed", where
    cids = Counter(cid for cid, _ in orders)
    assert all(count == 1 for count in cids.values()), f"{where}: client order id reused {cids}"
    assert still_open == 0, where
    for leg in state.legs:
        prefix = f"{outcome.run_id}-L{leg.index:04d}-"
        at_broker = sum((filled for cid, filled in orders if cid.startswith(prefix)), Decimal(0))
        assert leg.qty is not None
        assert leg.filled_qty <= leg.qty, f"{where}: leg {leg.index} over-filled"
        assert leg.filled_qty == at_broker, (
            f"{where}: leg {leg.index} journal {leg.filled_qty} broker {at_broker}"
        )
        signed = leg.qty if leg.side is Side.BUY else -leg.qty
        assert leg.filled_qty == leg.qty, f"{where}: leg {leg.index} {signed} not complete"
    assert positions == TARGETS, where


def test_every_killed_run_resumes_to_the_plan_targets_without_duplicates(
    workdir: Path, sim_port: int
) -> None:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [
            pool.submit(_run_case, index, kill_run, kill_resume, workdir, sim_port)
            for index, (kill_run, kill_resume) in enumerate(CASES)
        ]
        outcomes = [future.result() for future in futures]
    failures: list[str] = []
    for outcome in outcomes:
        try:
            _check(outcome, sim_port)
        except AssertionError as exc:
            failures.append(f"{CASES[outcome.case]}: {exc}")
    assert not failures, "\n".join(failures)
    kills = sum(outcome.kills for outcome in outcomes)
    print(f"kill points reached: {kills} in {len(outcomes)} cases")
    assert kills >= 50, f"only {kills} kill points were reached: {[(o.case, o.exits) for o in outcomes]}"


# --- graceful stop ---------------------------------------------------------------------------------------------

#: Orders that rest far longer than a loaded machine can delay a signal (no re-peg for 10 min, no escalation for
#: 20), so they are still working when it lands; a stop that polls for its confirmations every second.
PATIENT_CONFIG = (
    CONFIG.replace("fill_wait_seconds = 0.25", "fill_wait_seconds = 600")
    .replace("max_total_wait = 15", "max_total_wait = 1200")
    .replace("wait_between_checks = 0.1", "wait_between_checks = 1")
    .replace("grace_window = 0.2", "grace_window = 5")
)


def _start_run(
    workdir: Path, port: int, run_id: str, config: str = PATIENT_CONFIG
) -> tuple[subprocess.Popen[bytes], Path]:
    (workdir / f"{run_id}.toml").write_text(config)
    journal = workdir / f"{run_id}.db"
    process = subprocess.Popen(
        [
            _repeg_executable(),
            "run",
            str(workdir / "plan.csv"),
            "--broker",
            "sim-remote",
            "--sim-url",
            f"sim://127.0.0.1:{port}/{run_id}",
            "--config",
            str(workdir / f"{run_id}.toml"),
            "--journal",
            str(journal),
            "--run-id",
            run_id,
            "--json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return process, journal


def _journaled(journal: Path, run_id: str, wanted: Callable[[RunEvent], bool]) -> int:
    if not journal.exists():
        return 0
    store = SqliteJournal(journal, create=False)
    try:
        return sum(1 for e in store.events(run_id) if wanted(e)) if store.has_run(run_id) else 0
    finally:
        store.close()


def _wait_until_journaled(
    process: subprocess.Popen[bytes],
    journal: Path,
    run_id: str,
    wanted: Callable[[RunEvent], bool],
    count: int,
) -> None:
    """Poll the run's journal until `count` events match `wanted`; fail at once, with the run's stderr, if the run
    exits first. The deadline is only a safety net against a run that hangs."""
    deadline = time.monotonic() + START_BUDGET
    while _journaled(journal, run_id, wanted) < count:
        if process.poll() is not None and _journaled(journal, run_id, wanted) < count:
            _, stderr = process.communicate()
            pytest.fail(f"{run_id} exited {process.returncode} before the awaited events: {stderr.decode()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{run_id}: the awaited events never appeared in {journal}")
        time.sleep(0.05)


@contextmanager
def _reaped(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Kill the run if the test fails before it exited, so that no process outlives its test."""
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _is_ack(event: RunEvent) -> bool:
    return event.kind == "order_accepted"


def _is_stop_cancel(event: RunEvent) -> bool:
    return isinstance(event, OrderIntent) and event.reason == "user_stop"


def _resume_to_the_end(workdir: Path, port: int, run_id: str) -> Outcome:
    journal = workdir / f"{run_id}.db"
    code = _repeg(
        [
            "resume",
            run_id,
            "--journal",
            str(journal),
            "--sim-url",
            f"sim://127.0.0.1:{port}/{run_id}",
            "--config",
            str(workdir / "config.toml"),
        ],
        None,
        workdir / f"{run_id}.log",
    )
    return Outcome(0, 0, [code], journal, run_id)


def test_ctrl_c_cancels_the_runs_orders_reports_and_leaves_a_resumable_run(
    workdir: Path, sim_port: int
) -> None:
    process, journal = _start_run(workdir, sim_port, "stop1")
    with _reaped(process):
        _wait_until_journaled(process, journal, "stop1", _is_ack, 2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=PROCESS_BUDGET)
    open_orders = asyncio.run(_broker_view(sim_port, "stop1"))[2]
    store = SqliteJournal(journal, create=False)
    cancels = [e for e in store.events("stop1") if _is_stop_cancel(e)]
    store.close()
    assert process.returncode == 3, stderr.decode()
    assert "run stop1 stopped" in stderr.decode()
    assert "repeg resume stop1" in stderr.decode()
    assert cancels
    assert open_orders == 0
    _check(_resume_to_the_end(workdir, sim_port, "stop1"), sim_port)


def test_a_second_ctrl_c_exits_at_once_and_the_run_still_resumes(workdir: Path, sim_port: int) -> None:
    # The simulator is paused before the first Ctrl-C: the stop's first cancel (journaled before it is sent) then
    # waits for its answer, so that the second signal lands while the stop is under way, however late.
    process, journal = _start_run(workdir, sim_port, "stop2")
    with _reaped(process):
        _wait_until_journaled(process, journal, "stop2", _is_ack, 2)
        SERVERS[sim_port].send_signal(signal.SIGSTOP)
        try:
            process.send_signal(signal.SIGINT)
            _wait_until_journaled(process, journal, "stop2", _is_stop_cancel, 1)
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=PROCESS_BUDGET)
        finally:
            SERVERS[sim_port].send_signal(signal.SIGCONT)
    assert process.returncode == 130, stderr.decode()
    _check(_resume_to_the_end(workdir, sim_port, "stop2"), sim_port)
