"""The bounds of a PostgreSQL journal's sessions: no wait on the server lasts for ever.

libpq waits for a login's answer as long as `connect_timeout` says (psycopg: 130 s without one) and for a
statement's answer for ever: a hung server, a proxy in front of a dead one, a lock another session holds or a
synchronous standby gone held `repeg run` (and its stop) with it. A DSN that names none of libpq's bounds gets
these: a login answered within `CONNECT_TIMEOUT`, a peer that stops acknowledging found dead within about a minute
(TCP keepalives, `tcp_user_timeout`). Each statement is then bounded by the client itself (`bounded`): a server
that answers nothing, not even the error of its own `lock_timeout` or `statement_timeout`, for `READ_TIMEOUT`
seconds (`MIGRATION_TIMEOUT` while a migration is applied, which may build an index over every event) has its
session cut, and the wait is a `JournalTimeoutError` naming the journal and the bound.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from repeg.errors import JournalTimeoutError

if TYPE_CHECKING:
    import psycopg

#: Seconds a login may wait for the server (libpq's `connect_timeout`, where the DSN and PGCONNECT_TIMEOUT name none).
CONNECT_TIMEOUT = 10
#: Seconds a statement may wait for its first answer: no legitimate statement of a journal's (a batch of events,
#: a run's events, the list of runs) comes near it; the server's own lock or statement timeout, if shorter, wins.
READ_TIMEOUT = 300.0
#: The same for the statements that apply a migration (an index built over every event of a large journal).
MIGRATION_TIMEOUT = 3600.0
#: libpq's keywords bounding a dead peer, where the DSN names none: probes after 30 s idle, every 10 s, 3 unanswered
#: (dead within a minute), and sent data unacknowledged for 60 s.
_DEAD_PEER = {
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}
#: What a `JournalTimeoutError` says of each bound.
READ_BOUND = (
    "repeg's bound on one statement; the server's lock_timeout or statement_timeout, set in the DSN's options,"
    " ends it sooner"
)
CONNECT_BOUND = "connect_timeout, a parameter of the DSN"


def session_defaults(params: Mapping[str, object]) -> dict[str, str]:
    """The bounds a session opened with the DSN's `params` (libpq's keywords) lacks."""
    defaults = {key: value for key, value in _DEAD_PEER.items() if key not in params}
    if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in os.environ:
        defaults["connect_timeout"] = str(CONNECT_TIMEOUT)
    return defaults


def _cut(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """End `conn`'s socket under the statement waiting on it (which then fails as a lost connection); a session
    already closed or lost has nothing to end."""
    import psycopg

    with suppress(OSError, psycopg.Error), socket.socket(fileno=os.dup(conn.fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def bounded(
    conn: psycopg.Connection[tuple[object, ...]], seconds: float, journal: str, what: str
) -> Iterator[None]:
    """Cut `conn` when the block (statements on it) outlasts `seconds`, and raise `JournalTimeoutError` then."""
    import psycopg

    guard = threading.Lock()
    state = {"done": False, "cut": False}

    def expire() -> None:
        with guard:
            if not state["done"]:
                state["cut"] = True
                _cut(conn)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except psycopg.Error as exc:
        if state["cut"]:
            raise JournalTimeoutError(journal, seconds, what, READ_BOUND) from exc
        raise
    finally:
        with guard:
            state["done"] = True
        timer.cancel()
