"""The remote simulator server's sessions: one per name, kept for the server's life, and at most a documented
number of them, a new name past it refused on the wire (a long-lived test server is never grown without bound)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from repeg.brokers.remote.server import Session, SimServer
from repeg.brokers.remote.sessions import SessionSpec, build_session
from repeg.brokers.remote.wire import decode_error, parse_answer, request_line
from repeg.errors import BrokerError

_SPEC = SessionSpec(symbols={"AAA": Decimal(10)}, duration=timedelta(minutes=1))


async def _factory(name: str) -> Session:
    return await build_session(_SPEC, name)


async def _answers(server: SimServer, sessions: list[str]) -> list[tuple[bool, str]]:
    """The server's answers to one `get_account` of each session in `sessions`, in turn on one connection."""
    port = await server.start()
    answers = []
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for session in sessions:
            writer.write(request_line("get_account", session, "{}"))
            await writer.drain()
            answers.append(parse_answer(await asyncio.wait_for(reader.readline(), 5)))
        writer.close()
        await writer.wait_closed()
    finally:
        await server.close()
    return answers


async def test_a_long_lived_server_refuses_new_sessions_past_its_limit_and_keeps_serving_the_others() -> None:
    """Every new session name built a tape and a simulator that the server kept for its life, without a cap: any
    client on the loopback grew a long-lived test server until it ran out of memory. Past the default limit a new
    name is refused, saying why and what to do; the sessions it holds (a crashed run's orders) are still served."""
    names = [f"s{i}" for i in range(200)]
    answers = await _answers(SimServer(_factory), [*names, "s0"])
    refused = [name for name, (ok, _) in zip(names, answers, strict=False) if not ok]
    assert refused, "a default server took 200 sessions"
    limit = names.index(refused[0])
    assert refused == names[limit:]
    error = decode_error(answers[limit][1])
    assert type(error) is BrokerError
    assert all(words in str(error) for words in (repr(f"s{limit}"), f"{limit} sessions", "--max-sessions"))
    assert answers[-1][0]  # s0, held, still answered


async def test_a_server_holds_the_number_of_sessions_it_is_given() -> None:
    answers = await _answers(SimServer(_factory, max_sessions=2), ["a", "b", "a", "c", "b"])
    assert [ok for ok, _ in answers] == [True, True, True, False, True]
    assert "2 sessions" in str(decode_error(answers[3][1]))


@pytest.mark.parametrize("given", ["0", "-3", "many"])
def test_a_session_limit_that_is_no_positive_number_is_refused_with_exit_2_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    from repeg.brokers.remote.__main__ import main

    spec = tmp_path / "spec.json"
    spec.write_text('{"symbols": {"AAA": "10"}}', encoding="utf-8")
    monkeypatch.setattr("sys.argv", ["python -m repeg.brokers.remote", str(spec), f"--max-sessions={given}"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    assert (
        "--max-sessions: " + repr(given) + " is not a positive number of sessions" in capsys.readouterr().err
    )
