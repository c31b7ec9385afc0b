"""Client order id ownership on both simulators: an order found under one of the run's ids that is not the one sent
is another run's (same run id), refused as the Alpaca adapter refuses it (`ClientOrderIdConflictError`), never
adopted; a fresh run whose first id already names an order on a remote session is refused (`RunIdInUseError`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sim_support import DEFAULT_TAPE, T0, Sim, limit, run_sim

from repeg.api import execute, execute_async
from repeg.brokers.base import ExpectsSent, Sent
from repeg.brokers.remote.client import RemoteBroker, RemoteFeed
from repeg.brokers.remote.server import Session, SimServer
from repeg.brokers.remote.sessions import SessionSpec, build_session
from repeg.brokers.simulator import SimAccount, build_simulation
from repeg.domain.ids import client_order_id
from repeg.domain.orders import OrderType, ReplaceRequest, Side
from repeg.engine.clock import RealClock, VirtualClock
from repeg.errors import ClientOrderIdConflictError, DuplicateClientOrderIdError, RunIdInUseError
from repeg.planning.parse import parse_csv


@pytest.fixture
async def sim_port() -> AsyncIterator[int]:
    """A remote simulator on 127.0.0.1 whose sessions trade AAA (at 10) from the default account."""

    async def factory(name: str) -> Session:
        return await build_session(SessionSpec(symbols={"AAA": Decimal(10)}), name)

    server = SimServer(factory)
    port = await server.start()
    try:
        yield port
    finally:
        await server.close()


async def _client(port: int) -> RemoteBroker:
    return RemoteBroker(f"sim://127.0.0.1:{port}/shared")


def test_an_in_process_simulator_refuses_another_runs_order_under_an_id_it_sent_differently() -> None:
    """Two runs under one run id on one `SimulatedBroker` (the Python API reuses a broker): the second's submit met
    the first's order under its id (a duplicate), and its lookup handed back that order (a buy of 5 where it sent
    a sell of 3), which the engine adopts, fills and all."""
    seen: list[BaseException] = []

    async def scenario(sim: Sim) -> None:
        theirs = await sim.broker.submit_order(limit("rA-L0000-A00", Side.BUY, "5", "9.00"))
        with pytest.raises(DuplicateClientOrderIdError):
            await sim.broker.submit_order(limit("rA-L0000-A00", Side.SELL, "3", "11.00"))
        with pytest.raises(ClientOrderIdConflictError) as refused:
            await sim.broker.get_order_by_client_id("rA-L0000-A00")
        seen.append(refused.value)
        assert refused.value.order_id == theirs.order_id

    run_sim(scenario)
    (conflict,) = seen
    assert isinstance(conflict, ClientOrderIdConflictError)
    assert set(conflict.differences) == {"side", "qty", "limit_price"}


def test_an_in_process_simulator_takes_its_own_order_and_its_own_replacement_as_its_own() -> None:
    """Guard (the ownership check must not refuse the run's own orders): a re-sent submit and a replacement are
    found as sent."""

    async def scenario(sim: Sim) -> None:
        mine = await sim.broker.submit_order(limit("rA-L0000-A00", Side.BUY, "5", "9.00"))
        with pytest.raises(DuplicateClientOrderIdError):
            await sim.broker.submit_order(limit("rA-L0000-A00", Side.BUY, "5", "9.00"))
        assert await sim.broker.get_order_by_client_id("rA-L0000-A00") == mine
        new = await sim.broker.replace_order(
            ReplaceRequest(
                order_id=mine.order_id,
                client_order_id="rA-L0000-A01",
                qty=Decimal(5),
                limit_price=Decimal("9.01"),
            )
        )
        found = await sim.broker.get_order_by_client_id("rA-L0000-A01")
        assert found is not None
        assert found.order_id == new.order_id

    run_sim(scenario)


def test_a_fresh_run_under_a_run_id_already_used_on_a_reused_in_process_simulator_is_refused() -> None:
    """The Python API may run plan after plan on one `SimulatedBroker`: a second run under the first's run id sent
    its buy under the id the first's filled buy holds, met the duplicate, adopted that order and reported the leg
    filled, though it bought nothing. Refused before any order, as on Alpaca."""
    clock = VirtualClock(T0)
    broker, feed = build_simulation(DEFAULT_TAPE, clock, SimAccount(cash=Decimal(10_000)), seed=1)
    plan = parse_csv("symbol,side,qty\nABC,buy,1\n", "p.csv")
    first = execute(plan, broker, feed, clock, run_id="rA")
    assert first.legs[0].filled_qty == 1
    with pytest.raises(RunIdInUseError):
        execute(plan, broker, feed, clock, run_id="rA")
    assert len(broker.executions) == 1


async def test_a_remote_client_refuses_another_clients_order_under_an_id_it_sent_differently(
    sim_port: int,
) -> None:
    """Two runs under one run id on one `sim-remote` session (two processes, two clients): the second's lookup of
    its duplicate id handed back the first's order, adopted as its own."""
    first, second = await _client(sim_port), await _client(sim_port)
    try:
        theirs = await first.submit_order(limit("rA-L0000-A00", Side.BUY, "5", "9.00", symbol="AAA"))
        with pytest.raises(DuplicateClientOrderIdError):
            await second.submit_order(limit("rA-L0000-A00", Side.BUY, "3", "8.00", symbol="AAA"))
        with pytest.raises(ClientOrderIdConflictError) as refused:
            await second.get_order_by_client_id("rA-L0000-A00")
        assert await first.get_order_by_client_id("rA-L0000-A00") == await first.get_order(theirs.order_id)
    finally:
        await first.close()
        await second.close()
    assert refused.value.order_id == theirs.order_id
    assert set(refused.value.differences) == {"qty", "limit_price"}


async def test_a_remote_client_checks_what_a_resumed_runs_journal_says_was_sent(sim_port: int) -> None:
    """A resumed run (a new process) knows what was sent only from its journal: `RemoteBroker` took no
    expectation (it was no `ExpectsSent`), so the resume adopted whatever order held the journaled id."""
    first, resumed = await _client(sim_port), await _client(sim_port)
    try:
        await first.submit_order(limit("rA-L0000-A00", Side.BUY, "5", "9.00", symbol="AAA"))
        assert isinstance(resumed, ExpectsSent)
        resumed.expect("rA-L0000-A00", Sent("AAA", Side.SELL, OrderType.LIMIT, Decimal("11.00"), Decimal(20)))
        with pytest.raises(ClientOrderIdConflictError) as refused:
            await resumed.get_order_by_client_id("rA-L0000-A00")
    finally:
        await first.close()
        await resumed.close()
    assert set(refused.value.differences) == {"side", "qty", "limit_price"}


async def test_a_fresh_run_under_a_run_id_already_used_on_a_remote_session_is_refused_before_any_order(
    sim_port: int,
) -> None:
    """A fresh run on a `sim-remote` session that an earlier run under the same run id used: nothing asked, the run
    sent its orders under the ids the other run's orders hold, and adopted them. Refused as on Alpaca."""
    other, broker = await _client(sim_port), await _client(sim_port)
    clock = RealClock()
    feed = RemoteFeed(broker, clock)
    try:
        theirs = await other.submit_order(
            limit(client_order_id("rA", 0, 0), Side.BUY, "5", "9.00", symbol="AAA")
        )
        with pytest.raises(RunIdInUseError) as refused:
            await execute_async(
                parse_csv("symbol,side,qty\nAAA,buy,1\n", "p.csv"), broker, feed, clock, run_id="rA"
            )
        orders = await broker.all_orders()
    finally:
        await feed.close()
        await other.close()
        await broker.close()
    assert [order.order_id for order in orders] == [theirs.order_id]
    assert theirs.order_id in str(refused.value)


async def test_a_resumed_process_finds_its_own_order_on_a_session_another_client_sent_to_under_its_id(
    sim_port: int,
) -> None:
    """Guard: the session's simulator leaves the check to its clients. Were it to check as an in-process one does
    (against whatever was sent last under the id), the other run's refused duplicate would make the rightful run's
    resumed process meet its own order refused as another's."""
    mine, theirs, resumed = await _client(sim_port), await _client(sim_port), await _client(sim_port)
    try:
        sent = await mine.submit_order(limit("rA-L0000-A00", Side.BUY, "5", "9.00", symbol="AAA"))
        with pytest.raises(DuplicateClientOrderIdError):
            await theirs.submit_order(limit("rA-L0000-A00", Side.SELL, "3", "11.00", symbol="AAA"))
        resumed.expect("rA-L0000-A00", Sent("AAA", Side.BUY, OrderType.LIMIT, Decimal("9.00"), Decimal(5)))
        found = await resumed.get_order_by_client_id("rA-L0000-A00")
    finally:
        for client in (mine, theirs, resumed):
            await client.close()
    assert found is not None
    assert found.order_id == sent.order_id
