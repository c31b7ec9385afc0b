"""PostgresJournal's opening and its bounds on a server that does not answer. Reaches a real server only where
`REPEG_TEST_POSTGRES_DSN` names one (skipped otherwise, as in CI); the fake servers listen on 127.0.0.1."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from postgres_support import fresh_schema

from repeg.errors import JournalError
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
    schema = journal_dsn.rsplit("%3D", 1)[1]
    role = f"repeg_one_session_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    split = urlsplit(journal_dsn)
    as_role = urlunsplit(split._replace(netloc=f"{role}@{split.hostname}:{split.port}"))
    try:
        with pytest.raises(JournalError, match="too many connections") as refused:
            PostgresJournal(as_role)
        assert _sessions_of(role) == 0, refused.value
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
