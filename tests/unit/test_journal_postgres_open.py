"""PostgresJournal's opening and its bounds on a server that does not answer. Reaches a real server only where
`REPEG_TEST_POSTGRES_DSN` names one (skipped otherwise, as in CI); the fake servers listen on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import pytest
from journal_support import intent, run_started
from postgres_support import fresh_schema, reading_role

from repeg.errors import JournalError, JournalTimeoutError
from repeg.journal import postgres_session
from repeg.journal.factory import open_journal
from repeg.journal.postgres import PostgresJournal

psycopg = pytest.importorskip("psycopg")

SERVER = os.environ.get("REPEG_TEST_POSTGRES_DSN")
needs_server = pytest.mark.skipif(SERVER is None, reason="REPEG_TEST_POSTGRES_DSN names no PostgreSQL server")


@pytest.fixture
def journal_dsn() -> Iterator[str]:
    assert SERVER is not None
    with fresh_schema(SERVER) as dsn:
        yield dsn


def _sessions_of(role: str) -> int:
    """How many sessions `role` holds, once the server has ended those just closed (bounded: 5 s)."""
    deadline = time.monotonic() + 5
    with psycopg.connect(SERVER, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role,)).fetchone()
            count = int(row[0]) if row else 0
            if count == 0 or time.monotonic() > deadline:
                return count
            time.sleep(0.05)


@needs_server
def test_a_journal_that_fails_to_open_leaves_no_session_open(journal_dsn: str) -> None:
    # The writer's session stayed open when the reader's could not be opened (here the role's connection limit), or
    # when reading the commit setting failed: held by the half-built journal for as long as its error lived.
    open_journal(journal_dsn).close()
    with reading_role(SERVER, journal_dsn, options="LOGIN CONNECTION LIMIT 1") as (role, as_role):
        with pytest.raises(JournalError, match="too many connections") as refused:
            PostgresJournal(as_role)
        assert _sessions_of(role) == 0, refused.value


class _SilentServer:
    """A PostgreSQL server on 127.0.0.1 that accepts connections and then answers nothing (`answers_startup`: it
    lets the client in, then stalls on every query), as a hung server or a proxy in front of a dead one does."""

    def __init__(self, *, answers_startup: bool) -> None:
        self._answers_startup = answers_startup
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # accept() wakes up to see `close`
        self._closed = threading.Event()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def dsn(self) -> str:
        port = self._listener.getsockname()[1]
        return f"postgresql://u:pw@127.0.0.1:{port}/db?sslmode=disable&gssencmode=disable"

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError):
                client.settimeout(None)
                self._clients.append(client)
                if self._answers_startup:
                    (length,) = struct.unpack("!i", client.recv(4))
                    client.recv(length - 4)  # the startup packet
                    client.sendall(b"R" + struct.pack("!ii", 8, 0) + b"Z" + struct.pack("!i", 5) + b"I")

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._listener.close()
        for client in self._clients:
            client.close()


@contextlib.contextmanager
def _silent_server(*, answers_startup: bool) -> Iterator[_SilentServer]:
    server = _SilentServer(answers_startup=answers_startup)
    try:
        yield server
    finally:
        server.close()


def _outcome_within(seconds: float, action: Callable[[], object]) -> BaseException | None:
    """The error `action` raised, None when it returned, run in a thread given `seconds`: a hang fails the test
    (the thread, a daemon, ends once the fake server or the lock holder lets it go)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # handed to the test, which asserts on it
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still waiting after {seconds} s"
    return outcome[0]


def test_a_server_that_never_answers_the_login_is_a_timeout_naming_the_journal_and_its_bound() -> None:
    # libpq waits for the login's answer as long as connect_timeout says, and without one for ever (psycopg's own
    # default, 130 s): the error then said only "connection timeout expired", naming no bound.
    with _silent_server(answers_startup=False) as server:
        refused = _outcome_within(15, lambda: PostgresJournal(f"{server.dsn}&connect_timeout=2"))
    assert isinstance(refused, JournalTimeoutError), refused
    assert "u:***@127.0.0.1" in str(refused)
    assert "pw@" not in str(refused)
    assert "cannot connect: no answer within 2 s (connect_timeout" in str(refused)


def test_a_server_that_stalls_after_the_login_is_a_timeout_naming_the_journal_and_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing bounded a query: a server (or a proxy before it) that let the journal in and then answered nothing held
    # `repeg run` (and its stop) for ever.
    monkeypatch.setattr(postgres_session, "READ_TIMEOUT", 1.0)
    with _silent_server(answers_startup=True) as server:
        refused = _outcome_within(15, lambda: PostgresJournal(server.dsn))
    assert isinstance(refused, JournalTimeoutError), refused
    assert "journal postgresql://u:***@127.0.0.1" in str(refused)
    assert "pw@" not in str(refused)
    assert "no answer within 1 s" in str(refused)


@needs_server
async def test_a_read_waiting_on_a_lock_another_session_holds_is_a_timeout(
    journal_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = PostgresJournal(journal_dsn)
    await journal.emit(run_started())
    await journal.flush()
    monkeypatch.setattr(postgres_session, "READ_TIMEOUT", 1.0)
    with psycopg.connect(journal_dsn) as holder:
        holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")  # a DBA's maintenance, say
        refused = _outcome_within(15, lambda: journal.events("r1"))
    assert isinstance(refused, JournalTimeoutError), refused
    assert "cannot read the events of run 'r1': no answer within 1 s" in str(refused)
    journal.close()


def test_a_bounded_statement_block_starts_no_thread_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each statement block started a threading.Timer (a thread started and awaited until it ran, about 200 us): more
    # than a local statement itself costs, on the journal's hot path (reads per second fell by about two thirds).
    started: list[str] = []
    start = threading.Thread.start

    def counted(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counted)
    never_cut = cast("psycopg.Connection[tuple[object, ...]]", object())
    for _ in range(50):
        with postgres_session.bounded(never_cut, 300.0, "journal", "read"):
            pass
    assert len(started) <= 1, started  # the watchdog's own thread, started by the first bound of the process


def test_bounds_armed_together_each_expire_at_their_own_time() -> None:
    # Guard of the one watchdog serving every bound (the writer's thread and the reader's run theirs at once): a later
    # bound armed first does not hold back an earlier one, and a bound disarmed never expires.
    expired: list[str] = []
    late = postgres_session._WATCHDOG.arm(30.0, lambda: expired.append("late"))
    cancelled = postgres_session._WATCHDOG.arm(0.1, lambda: expired.append("cancelled"))
    postgres_session._WATCHDOG.disarm(cancelled)
    postgres_session._WATCHDOG.arm(0.2, lambda: expired.append("early"))
    deadline = time.monotonic() + 10
    while not expired and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    postgres_session._WATCHDOG.disarm(late)
    assert expired == ["early"]


@needs_server
def test_a_dsn_naming_no_bound_gets_repegs_and_one_naming_a_bound_keeps_it(journal_dsn: str) -> None:
    # Without them libpq waited on a login for psycopg's 130 s and found a dead peer after the kernel's two hours.
    journal = PostgresJournal(journal_dsn)
    given = PostgresJournal(f"{journal_dsn}&connect_timeout=3&keepalives_idle=120")
    try:
        for conn in (journal._conn, journal._reader):
            parameters = conn.info.get_parameters()
            assert (parameters["connect_timeout"], parameters["keepalives_idle"]) == ("10", "30")
            assert (parameters["keepalives_count"], parameters["tcp_user_timeout"]) == ("3", "60000")
        parameters = given._conn.info.get_parameters()
        assert (parameters["connect_timeout"], parameters["keepalives_idle"]) == ("3", "120")
    finally:
        journal.close()
        given.close()


@needs_server
@pytest.mark.parametrize("named_by", ["dsn", "PGSERVICE"])
def test_the_bounds_a_dsns_connection_service_sets_are_kept(
    journal_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named_by: str
) -> None:
    # repeg's defaults, written into the DSN, outranked its service's own: libpq reads a keyword from the service file
    # only where the DSN names none, so `service=` lost its connect_timeout, keepalives and tcp_user_timeout.
    split = urlsplit(journal_dsn)
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text(
        f"[journal]\nhost={split.hostname}\nport={split.port}\nuser={split.username}\ndbname={split.path[1:]}\n"
        "connect_timeout=25\nkeepalives_idle=600\ntcp_user_timeout=5000\n"
    )
    monkeypatch.setenv("PGSERVICEFILE", str(service_file))
    if named_by == "PGSERVICE":
        monkeypatch.setenv("PGSERVICE", "journal")
    journal = PostgresJournal(f"postgresql://?{'service=journal&' if named_by == 'dsn' else ''}{split.query}")
    try:
        parameters = journal._conn.info.get_parameters()
        assert (parameters["connect_timeout"], parameters["keepalives_idle"]) == ("25", "600")
        assert parameters["tcp_user_timeout"] == "5000"
        assert parameters["keepalives_count"] == "3"  # what the service leaves unset gets repeg's bound
    finally:
        journal.close()


@needs_server
def test_a_password_joined_to_the_user_by_an_encoded_colon_is_masked_in_the_servers_refusal() -> None:
    # libpq takes `u%3ASECRET` for the user "u:SECRET", which the server quotes back: "role "u:SECRET" does not exist".
    assert SERVER is not None
    split = urlsplit(SERVER)
    secret = "PKSECRET-0123456789abcdef"
    dsn = urlunsplit(split._replace(netloc=f"u%3A{secret}@{split.hostname}:{split.port}"))
    with pytest.raises(JournalError, match='role "u:\\*\\*\\*" does not exist') as refused:
        PostgresJournal(dsn)
    assert secret not in str(refused.value)


@needs_server
@pytest.mark.parametrize("where", ["database", "role"])
def test_a_piece_of_a_password_the_server_quotes_back_is_masked(where: str) -> None:
    # A password holding '/' is no user info to libpq, which sent its tail as the database name (the server quoted it
    # back: database "<secret>@host/db" does not exist); a role name after %3A is cut to 63 bytes by the server
    # (role "u:<the secret's head>"): the scrub masked a password only where it was quoted whole.
    assert SERVER is not None
    split = urlsplit(SERVER)
    secret = "PKSECRET-0123456789abcdef"
    address = f"{split.hostname}:{split.port}"
    dsn = (
        f"postgresql://{address}/{secret}@{address}/db?user={split.username}"
        if where == "database"
        else f"postgresql://u%3A{secret * 3}@{address}/postgres"
    )
    with pytest.raises(JournalError, match=f'{where} "') as refused:
        PostgresJournal(dsn)
    assert secret[:8] not in str(refused.value)


@needs_server
async def test_a_stop_reads_the_journal_after_its_idle_reading_session_was_dropped(journal_dsn: str) -> None:
    # The reading session, idle through a run, was dropped alone (a server's idle_session_timeout, a NAT): a Ctrl-C
    # stop, which reads the run back before cancelling, could not, and fell back to the unjournaled stop.
    journal = PostgresJournal(journal_dsn)
    journal.claim("r1")
    await journal.emit(run_started())
    await journal.flush()
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (journal._reader.info.backend_pid,))
    assert [event.kind for event in journal.events("r1")] == ["run_started"]
    await journal.emit(intent())
    journal.close()


@needs_server
async def test_a_reading_session_opened_again_as_another_role_is_refused(
    journal_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq reads what the DSN leaves out (here the role, PGUSER) again at each login: the reading session opened
    # again after it was lost read as whichever role (database, options) the environment named by then.
    assert SERVER is not None
    split = urlsplit(journal_dsn)
    no_user = urlunsplit(split._replace(netloc=f"{split.hostname}:{split.port}"))
    monkeypatch.setenv("PGUSER", str(split.username))
    journal = PostgresJournal(no_user)
    await journal.emit(run_started())
    await journal.flush()
    with reading_role(SERVER, journal_dsn) as (role, _):
        monkeypatch.setenv("PGUSER", role)
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (journal._reader.info.backend_pid,))
        with pytest.raises(JournalError, match="opened again, has another role than the journal's"):
            journal.events("r1")
        monkeypatch.setenv("PGUSER", str(split.username))
        assert [event.kind for event in journal.events("r1")] == [
            "run_started"
        ]  # opened again, as the journal's
        journal.close()
