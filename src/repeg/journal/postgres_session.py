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

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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
    """The bounds a session opened with the DSN's `params` (libpq's keywords) lacks. Those its connection service
    sets are its own: passed as the service file says (psycopg reads no service file for its own login timeout)."""
    service = _service_entry(params)
    named = {key: value for key, value in service.items() if key not in params}
    defaults = {key: value for key, value in _DEAD_PEER.items() if key not in params and key not in service}
    if not {"connect_timeout"} & {*params, *service} and "PGCONNECT_TIMEOUT" not in os.environ:
        defaults["connect_timeout"] = str(CONNECT_TIMEOUT)
    bounds = {*_DEAD_PEER, "connect_timeout"}
    return {**defaults, **{key: value for key, value in named.items() if key in bounds}}


def _service_entry(params: Mapping[str, object]) -> dict[str, str]:
    """The keywords the connection service of `params` (or PGSERVICE) sets, from the first service file holding it
    that libpq reads (the DSN's `servicefile`, PGSERVICEFILE or ~/.pg_service.conf, then PGSYSCONFDIR's); none when
    no file repeg can find holds it (libpq's own system file, at the place it was built with)."""
    service = str(params.get("service") or os.environ.get("PGSERVICE") or "")
    if not service:
        return {}
    user_file = params.get("servicefile") or os.environ.get("PGSERVICEFILE") or "~/.pg_service.conf"
    files = [os.path.expanduser(str(user_file))]
    if "PGSYSCONFDIR" in os.environ:
        files.append(os.path.join(os.environ["PGSYSCONFDIR"], "pg_service.conf"))
    for path in files:
        entry = _read_service(path, service)
        if entry is not None:
            return entry
    return {}


def _read_service(path: str, service: str) -> dict[str, str] | None:
    """The `key=value` lines under `[service]` in the service file at `path`; None when it holds no such service."""
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            text = lines.read().splitlines()
    except OSError:
        return None
    entry: dict[str, str] | None = None
    for line in (raw.strip() for raw in text):
        if line.startswith("["):
            if entry is not None:  # libpq reads the first section of the name only
                break
            entry = {} if line == f"[{service}]" else None
        elif entry is not None and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            entry[key.strip()] = value.strip()
    return entry


def _cut(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """End `conn`'s socket under the statement waiting on it (which then fails as a lost connection); a session
    already closed or lost has nothing to end."""
    import psycopg

    with suppress(OSError, psycopg.Error), socket.socket(fileno=os.dup(conn.fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One thread (per process) running each bound's expiry when it is due. A bound is armed and disarmed around
    every statement block of a journal's sessions, its hot path: a dict entry under a lock each, the thread woken
    only for a bound due before it wakes anyway (a `threading.Timer` per block, a thread started and awaited each
    time, cut a journal's reads per second by two thirds)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """No bound armed, no thread yet (also a forked child's: it inherits neither the thread nor a free lock)."""
        self._ready = threading.Condition()
        self._due: dict[int, tuple[float, Callable[[], None]]] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None
        self._wakes_at = 0.0

    def arm(self, seconds: float, expire: Callable[[], None]) -> int:
        """`expire` run on the watchdog's thread in `seconds` unless disarmed before: the token that disarms it."""
        deadline = time.monotonic() + seconds
        with self._ready:
            token = next(self._tokens)
            self._due[token] = (deadline, expire)
            if self._thread is None or not self._thread.is_alive():  # its first bound (or a forked child's)
                self._thread = threading.Thread(target=self._watch, name="repeg-journal-bounds", daemon=True)
                self._thread.start()
            elif deadline < self._wakes_at:
                self._ready.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._ready:
            self._due.pop(token, None)

    def _watch(self) -> None:
        while True:
            with self._ready:
                now = time.monotonic()
                expired = [token for token, (deadline, _) in self._due.items() if deadline <= now]
                expiries = [self._due.pop(token)[1] for token in expired]
                self._wakes_at = min((deadline for deadline, _ in self._due.values()), default=now + _IDLE)
                if not expiries:
                    self._ready.wait(self._wakes_at - now)
            for expire in expiries:  # off the lock: arming and disarming never wait on a socket's end
                expire()


#: Seconds the watchdog sleeps with no bound armed: a bound armed sooner than it wakes wakes it.
_IDLE = 60.0
_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG.reset)


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

    token = _WATCHDOG.arm(seconds, expire)
    try:
        yield
    except psycopg.Error as exc:
        if state["cut"]:
            raise JournalTimeoutError(journal, seconds, what, READ_BOUND) from exc
        raise
    finally:
        with guard:
            state["done"] = True
        _WATCHDOG.disarm(token)
