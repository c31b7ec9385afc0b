"""`PostgresJournal`: the same journal in PostgreSQL (psycopg 3), for teams that keep runs in a shared database.

Durable events commit with `synchronous_commit = on` (the server flushes its WAL before answering), set for their
transaction where the database or role defaults to `off`; group commits holding only order updates use
`synchronous_commit = off` for that transaction alone. The schema and its
migrations are those of SQLite in the postgres dialect (`repeg.journal.schema`); migrations run under an advisory
lock so that two processes opening a fresh database do not race.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote

import structlog

from repeg.errors import ConfigError, JournalError, JournalTimeoutError
from repeg.journal import postgres_session
from repeg.journal.factory import CONNINFO_SECRET, LIBPQ_KEYWORDS, LIBPQ_SECRETS
from repeg.journal.postgres_session import CONNECT_BOUND, bounded, session_defaults
from repeg.journal.schema import VERSION_TABLE_POSTGRES, not_a_journal, pending_migrations
from repeg.journal.store import SUMMARY_KINDS, SqlJournal
from repeg.journal.writer import Record

if TYPE_CHECKING:
    import psycopg

    Session = psycopg.Connection[tuple[object, ...]]

R = TypeVar("R")
log = structlog.get_logger("repeg.journal")

POSTGRES_INSTALL = "pip install -e '.[postgres]'"
_MIGRATION_LOCK = 0x7265706567  # "repeg"
_INSERT_EVENT = "INSERT INTO events (run_id, seq, leg, ts, correlation_id, kind, payload) VALUES (%s, %s, %s, %s, %s, %s, %s)"
#: The user of the user info, to its ':'; or to a ':' written %3A, which libpq decodes into the user ("u:SECRET",
#: quoted back by the server's refusal): the text after it is most likely the password meant, and masked too.
_USER = r"://(?:[^:/@%]|%(?!3[aA]))*(?::|%3[aA])"
#: The password of the user info; one holding bare '@'s (not written %40) is masked up to the host's '@'.
_PASSWORD = re.compile(rf"({_USER})[^@]*(?:@[^@/?#]*)*@")
#: The same as libpq reads it: user info ends at an '@' before any '/' (its password may hold '?' and '&').
_PASSWORD_BEFORE_PATH = re.compile(rf"({_USER})[^@/]*(?:@[^@/?#]*)*@")
#: What `_PASSWORD` takes for a password may be a port, a path and a query instead (`host:5432/db?...`).
_PORT_PATH_QUERY = re.compile(r"\d+/[^?@]*\?")
#: User info holding a bare '@': libpq ends it at its first '@' and takes the rest (a password's tail) for the host.
_BARE_AT = re.compile(r"://[^/@]*@[^/?#]*@")
#: A parameter's keyword; its value runs to the next '&' (a '?' in it may start another keyword, masked too).
_PARAM_KEY = re.compile(r"[?&]([^=&?]*)=")
#: What ends a host, a port or a database in a URI, to libpq (a query's parameters end at '&', keywords at '=').
_ADDRESS_DELIMITER = re.compile(r"[/,:]")
_QUERY_DELIMITER = re.compile(r"[&=]")
#: What ends a user info's first token when libpq reads it as a host (no '@' before a '/').
_HOST_END = re.compile(r"[/?,:]")
#: What ends a piece of a password within a token a driver quotes.
_TOKEN_DELIMITER = re.compile(r"[@/?&=,:\s]")
#: The shortest end of a token taken for a password's piece cut short (shorter ones are as likely a name's end).
_CUT_PIECE = 6
#: A token a driver's error quotes.
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_PASSWORD_KEYS = frozenset(LIBPQ_SECRETS)
_KEYWORDS = frozenset(LIBPQ_KEYWORDS)


def _is_keyword(text: str) -> bool:
    """`text` is a libpq keyword: percent-decoded (`%70assword` is `password`), unpadded, in any case."""
    return unquote(text).strip().lower() in _KEYWORDS


def _password_value_end(dsn: str, start: int) -> int:
    """Where the password parameter's value starting at `start` ends: at the next '&' that starts a parameter of
    libpq's; text after a bare '&' (not written %26), which libpq refuses and quotes back, is the password's tail."""
    end = dsn.find("&", start)
    while end >= 0:
        following = dsn.find("&", end + 1)
        key, separator, _ = dsn[end + 1 : len(dsn) if following < 0 else following].partition("=")
        if separator and _is_keyword(key):
            return end
        end = following
    return len(dsn)


def _is_secret(key: str, value: str) -> bool:
    """The parameter `key=value` (as written) is a secret: a password parameter, or `options` setting one (which
    libpq does not read and the server refuses, naming only the setting, but which holds the password meant).
    libpq percent-decodes a keyword (`%70assword` is `password`) and reads `password =` as `password`: each
    keyword is compared decoded, unpadded, in any case."""
    name = unquote(key).strip().lower()
    return name in _PASSWORD_KEYS or (
        name == "options" and CONNINFO_SECRET.search(unquote(value)) is not None
    )


def _password_values(dsn: str) -> list[tuple[int, int]]:
    """Where the values of `dsn`'s secret parameters are (`_is_secret`)."""
    found = ((key, _password_value_end(dsn, key.end())) for key in _PARAM_KEY.finditer(dsn))
    return [(key.end(), end) for key, end in found if _is_secret(key.group(1), dsn[key.end() : end])]


def _mask_password_params(dsn: str) -> str:
    shown: list[str] = []
    last = 0
    for start, end in _password_values(dsn):
        if start >= last:  # not inside a value masked already
            shown += [dsn[last:start], "***"]
            last = end
    return "".join(shown) + dsn[last:]


def _user_info_password(found: re.Match[str]) -> str | None:
    """The password `_PASSWORD` found; None when it is a port, a path and a query holding a parameter of libpq's
    whose value holds the '@' (`host:5432/db?application_name=a@b`: no user info)."""
    password = found.group(0)[len(found.group(1)) : -1]
    head = _PORT_PATH_QUERY.match(password)
    if head is not None and any(
        _is_keyword(key.group(1)) for key in _PARAM_KEY.finditer(password, head.end() - 1)
    ):
        return None
    return password


def _mask_user_info(found: re.Match[str]) -> str:
    return found.group(0) if _user_info_password(found) is None else f"{found.group(1)}***@"


def _user_infos(dsn: str) -> list[tuple[str, str]]:
    """The user (to the ':' or %3A ending it) and password of each user info `_PASSWORD` finds."""
    found = ((match.group(1)[len("://") :], _user_info_password(match)) for match in _PASSWORD.finditer(dsn))
    return [(user, password) for user, password in found if password is not None]


def _encoded_colon(user: str) -> bool:
    return user.lower().endswith("%3a")


def _passwords(dsn: str) -> set[str]:
    """Every password `dsn` holds (`_spellings`)."""
    found = [password for _, password in _user_infos(dsn)]
    found += [dsn[start:end] for start, end in _password_values(dsn)]
    return _spellings(found) - {""}


def _password_pieces(dsn: str) -> set[str]:
    """The pieces of each password that libpq may read as something else (a user-info password holding a '/', no
    user info to libpq: a host, a port, a database, query parameters, more hosts; after %3A, part of the user; a
    password parameter's value holding a bare '&'): libpq and the server quote one from where it starts
    (`"RETB@host/db"` of `u:ab/cd?RETB@host/db`, `database "SECRET@host/db"`, `"u%3Asecret%"`), in each of their
    `_spellings`."""
    pieces: list[str] = []
    as_written: list[str] = []
    for user, password in _user_infos(dsn):
        address, _, query = password.partition("?")
        pieces += _between(address, _ADDRESS_DELIMITER) + _between(query, _QUERY_DELIMITER)
        # After %3A, libpq's user runs on to a bare ':' ("u:secret", or `"u%3Asecret%"` as written), its password on.
        if _encoded_colon(user):
            pieces += password.partition(":")[::2]
            as_written += [user + password[: end.start()] for end in _HOST_END.finditer(f"{password}/")]
    # and of a password parameter's value: libpq ends it at a bare '&' and quotes a head or a tail, or a tail's
    # keyword (`password=pa%&b&c=d`: "pa%" is no token, "b" is no parameter, "c" no keyword)
    pieces += [
        piece for start, end in _password_values(dsn) for piece in _between(dsn[start:end], _QUERY_DELIMITER)
    ]
    return _spellings(pieces) | set(as_written)


def _spellings(texts: list[str]) -> set[str]:
    """Each of `texts` as written and percent-decoded, each also unpadded (libpq trims a keyword, a host, a user)."""
    return {
        spelling
        for text in texts
        for decoded in (text, unquote(text))
        for spelling in (decoded, decoded.strip())
    }


def _between(text: str, delimiter: re.Pattern[str]) -> list[str]:
    """Each span of `text` from its start or a `delimiter` to a `delimiter` or its end (`u::%x/`: libpq's port is
    ':%x', from the first ':' to the '/')."""
    starts = [0, *(found.end() for found in delimiter.finditer(text))]
    ends = [*(found.start() for found in delimiter.finditer(text)), len(text)]
    return [text[start:end] for start in starts for end in ends if end > start]


def _scrub(text: str, dsn: str) -> str:
    """`text` (a driver's error) with the passwords of `dsn` masked: libpq quotes a malformed one back, or a token
    holding a piece of one (`_password_pieces`: masked where it stands between delimiters in the token)."""
    secrets = _passwords(dsn)
    pieces = sorted((_password_pieces(dsn) | secrets) - {""}, key=len, reverse=True)
    if pieces:  # first the quoted tokens, the longest piece first (a shorter one may be part of a longer one)
        alternatives = "|".join(re.escape(piece) for piece in pieces)
        within = re.compile(rf"(?<![^@/?&=,:\s])(?:{alternatives})(?![^@/?&=,:#%\s])")
        text = _QUOTED.sub(lambda token: _masked_within(token.group(0), within, pieces), text)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _masked_within(token: str, within: re.Pattern[str], pieces: list[str]) -> str:
    """A quoted `token` with what `within` finds in it masked, its quotes kept; and its end, from a delimiter, where
    it begins a piece of a password: the server cuts a name it quotes to 63 bytes (`role "u:secr"`)."""
    inner = within.sub("***", token[1:-1])
    starts = [0, *(found.end() for found in _TOKEN_DELIMITER.finditer(inner))]
    for start in starts:
        tail = inner[start:]
        if len(tail) >= _CUT_PIECE and any(piece.startswith(tail) for piece in pieces):
            return f"{token[0]}{inner[:start]}***{token[-1]}"
    return f"{token[0]}{inner}{token[-1]}"


def safe_dsn(dsn: str) -> str:
    """The DSN with its passwords masked (in the user info, after its ':' or a ':' written %3A, or as a `password=`
    or `sslpassword=` parameter, or libpq's other secrets: `oauth_client_secret=`, `scram_client_key=`,
    `scram_server_key=`, or `options=` setting one, masked whole), for messages and `repeg runs`. The user info
    as libpq reads it first (a password holding '?password=' is no parameter), then the parameters (one holding '@'
    is no user info), then whatever else may be a password: text up to an '@' that a '/' makes no user info to
    libpq (`u:ab/cd@host`: a password holding '/', not written %2F; not `host:5432/db?application_name=a@b`)."""
    masked = _mask_password_params(_PASSWORD_BEFORE_PATH.sub(r"\1***@", dsn))
    return _PASSWORD.sub(_mask_user_info, masked)


def _refuse_bare_at(dsn: str) -> None:
    """Refuse, before libpq quotes its tail back as a host name, user info holding a bare '@' (shown masked whole)."""
    found = _BARE_AT.search(dsn)
    if found is not None:
        shown = safe_dsn(f"{dsn[: found.start()]}://***@{dsn[found.end() :]}")
        reason = (
            "its user or password holds a bare '@', which ends them early: percent-encode each '@' as %40"
        )
        raise ConfigError("--journal", shown, reason)


def _connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    _refuse_bare_at(dsn)
    try:
        import psycopg
    except ImportError as exc:
        # A missing optional extra is bad input (exit 2) naming it, as the lab extras are (cli/extras.py).
        missing = isinstance(exc, ModuleNotFoundError) and exc.name == "psycopg"
        why = "psycopg is not installed" if missing else f"psycopg cannot be imported ({exc})"
        raise ConfigError(
            "--journal", safe_dsn(dsn), f"needs the postgres extra, and {why}: {POSTGRES_INSTALL}"
        ) from exc
    from psycopg.conninfo import conninfo_to_dict, make_conninfo, timeout_from_conninfo

    try:
        conninfo = make_conninfo(dsn, **session_defaults(conninfo_to_dict(dsn)))
        return psycopg.connect(conninfo, autocommit=False)
    # Refused before connecting: the DSN itself is malformed (or a percent-encoded value of it is no UTF-8).
    except (psycopg.ProgrammingError, UnicodeDecodeError) as exc:
        raise ConfigError("--journal", safe_dsn(dsn), f"not a usable DSN: {_scrub(str(exc), dsn)}") from None
    except psycopg.errors.ConnectionTimeout:
        seconds = timeout_from_conninfo(conninfo_to_dict(conninfo))
        raise JournalTimeoutError(safe_dsn(dsn), seconds, "connect", CONNECT_BOUND) from None
    except psycopg.Error as exc:
        raise JournalError(f"cannot open journal {safe_dsn(dsn)}: {_scrub(str(exc), dsn)}") from None


def _reader(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    """A session for reading: autocommit, so it holds no transaction (nor a snapshot) between reads."""
    conn = _connect(dsn)
    conn.autocommit = True
    return conn


_IDENTITY = ("database", "role", "options")


def _identity(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[str, str, str]:
    """The database, role and options `conn` logged in with (as libpq holds them: no statement)."""
    return conn.info.dbname, conn.info.user, conn.info.options


def _tables(conn: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
    return {str(row[0]) for row in rows}


def _version(conn: psycopg.Connection[tuple[object, ...]], location: str) -> int:
    tables = _tables(conn)
    if "schema_version" not in tables:
        if tables:
            raise not_a_journal(location, tables)
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return 0 if row is None or row[0] is None else int(str(row[0]))


def _migrate(conn: psycopg.Connection[tuple[object, ...]], location: str) -> None:
    """Apply the migrations the journal lacks. One at this repeg's version is left untouched (nothing created, no
    lock taken), so a role that may only read it (or a read replica) can list and show its runs."""
    with (
        bounded(conn, postgres_session.READ_TIMEOUT, location, "read its schema version"),
        conn.transaction(),
    ):
        if not pending_migrations(_version(conn, location), location):
            return
    migrating = bounded(conn, postgres_session.MIGRATION_TIMEOUT, location, "bring its schema up to date")
    with migrating, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        found = _version(conn, location)
        conn.execute(VERSION_TABLE_POSTGRES)
        for migration in pending_migrations(found, location):
            for statement in migration.statements("postgres"):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (%s, now())", (migration.version,)
            )


def _commits_asynchronously(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Whether the session commits without waiting for its log to be flushed, as a DBA may set for speed."""
    row = conn.execute("SHOW synchronous_commit").fetchone()
    return row is not None and str(row[0]) == "off"


class PostgresJournal(SqlJournal):
    """A journal in a PostgreSQL database named by a `postgresql://` DSN."""

    def __init__(self, dsn: str, *, threaded: bool | None = None) -> None:
        super().__init__(safe_dsn(dsn), threaded)
        # Each session opened is closed again if opening fails later (the reader's refused, a setting unreadable):
        # the half-built journal held it for as long as its error lived.
        with contextlib.ExitStack() as on_failure:
            self._conn = _connect(dsn)
            on_failure.callback(self._conn.close)
            with self._store_errors("bring its schema up to date"):
                _migrate(self._conn, self._location)
            self._reader = _reader(dsn)
            on_failure.callback(self._reader.close)
            #: The database's (or role's) default is `synchronous_commit = off`: durable batches then set it on.
            with self._answered(self._reader, "read its commit setting"):
                self._asynchronous = _commits_asynchronously(self._reader)
            on_failure.pop_all()
        #: Never shown (`location` is it, masked): kept to open the reading session again (`_read`).
        self._dsn = dsn

    def _read(self, what: str, read: Callable[[Session], R]) -> R:
        """`read` on the reading session. One lost since its last use (a server's idle_session_timeout, a NAT, a
        restart) is opened again, once: it holds no lock and no transaction, so a new one reads the same."""
        try:
            with self._answered(self._reader, what):
                return read(self._reader)
        except JournalTimeoutError:
            raise  # lost to its bound: the server answers nothing
        except JournalError as lost:
            if not (self._reader.broken or self._reader.closed):
                raise
            log.warning("journal_reader_reopened", journal=self._location, error=str(lost))
        self._reader.close()
        try:
            self._reader = _reader(self._dsn)
        except JournalTimeoutError:
            raise
        except JournalError as exc:
            raise JournalError(
                f"journal {self._location}: cannot {what} (its session was lost: {exc})"
            ) from exc
        self._check_reader_identity(what)
        with self._answered(self._reader, what):
            return read(self._reader)

    def _check_reader_identity(self, what: str) -> None:
        """The reading session opened again reads the writer's database, as its role, with its options: libpq reads
        what the DSN leaves out (PGUSER, PGDATABASE, PGOPTIONS, a service file) again at each login."""
        found, journal = _identity(self._reader), _identity(self._conn)
        differ = [
            name for name, *values in zip(_IDENTITY, found, journal, strict=True) if len(set(values)) > 1
        ]
        if differ:
            self._reader.close()  # opened again at the next read
            raise JournalError(  # named, not shown: a role or options may hold a password (`u%3Asecret`)
                f"journal {self._location}: cannot {what}: its reading session, opened again, has another "
                f"{' and '.join(differ)} than the journal's writing session (an environment variable or a service "
                "file changed since the journal was opened)"
            )

    @contextlib.contextmanager
    def _answered(self, conn: psycopg.Connection[tuple[object, ...]], what: str) -> Iterator[None]:
        """Statements on `conn` in the block: answered within the read bound, a failure a `JournalError`."""
        with self._store_errors(what), bounded(conn, postgres_session.READ_TIMEOUT, self._location, what):
            yield

    @property
    def schema_version(self) -> int:
        return self._read("read its schema version", lambda conn: _version(conn, self._location))

    def has_run(self, run_id: str) -> bool:
        query = "SELECT 1 FROM runs WHERE run_id = %s"
        row = self._read(f"look up run {run_id!r}", lambda conn: conn.execute(query, (run_id,)).fetchone())
        return row is not None

    def _payloads(self, run_id: str) -> list[str]:
        query = "SELECT payload FROM events WHERE run_id = %s ORDER BY seq"
        rows = self._read(
            f"read the events of run {run_id!r}", lambda conn: conn.execute(query, (run_id,)).fetchall()
        )
        return [str(row[0]) for row in rows]

    def _summary_rows(self) -> list[tuple[str, datetime, str | None]]:
        query = (
            "SELECT r.run_id, r.started, e.payload FROM runs r LEFT JOIN events e "
            "ON e.run_id = r.run_id AND e.kind = ANY(%s) ORDER BY r.started, r.run_id, e.seq"
        )
        rows = self._read(
            "list its runs", lambda conn: conn.execute(query, (list(SUMMARY_KINDS),)).fetchall()
        )
        result: list[tuple[str, datetime, str | None]] = []
        for run_id, started, payload in rows:
            if not isinstance(started, datetime):
                raise JournalError(f"journal {self._location}: run {run_id} has no start time")
            # In UTC, as SQLite stores it and every event says: the server answers in its session's TimeZone.
            result.append((str(run_id), started.astimezone(UTC), None if payload is None else str(payload)))
        return result

    def _max_seq(self, run_id: str) -> int:
        query = "SELECT MAX(seq) FROM events WHERE run_id = %s"
        what = f"read the last sequence number of run {run_id!r}"
        row = self._read(what, lambda conn: conn.execute(query, (run_id,)).fetchone())
        return 0 if row is None or row[0] is None else int(str(row[0]))

    def _lock_run(self, run_id: str) -> bool:
        """A session-level advisory lock on the writer's session (claimed before anything is emitted): released
        when it closes, or when the process dies and the server drops the session. Not on the reader's, idle
        through a run: a server or a NAT dropping that session alone freed the run while this one still wrote it."""
        with self._answered(self._conn, f"lock run {run_id!r}"), self._conn.transaction():
            # Advisory locks are database-wide: the key names the journal's schema too, as SQLite's lock file
            # sits beside its journal, so journals of two schemas each work their own run of one id.
            schema = self._conn.execute("SELECT current_schema()").fetchone()
            journal_run = f"repeg run {None if schema is None else schema[0]} {run_id}"
            key = int.from_bytes(hashlib.sha256(journal_run.encode()).digest()[:8], "big", signed=True)
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        return row is not None and row[0] is True

    def _close_store(self) -> None:
        if self._claimed:
            # Released now: the server ends a closed session (and frees its locks) only once it notices.
            with (
                contextlib.suppress(JournalError),
                self._answered(self._conn, "release its runs"),
                self._conn.transaction(),
            ):
                self._conn.execute("SELECT pg_advisory_unlock_all()")
        self._conn.close()
        self._reader.close()

    def _driver_error(self) -> type[Exception]:
        import psycopg

        return psycopg.Error

    def _commit_batch(self, records: Sequence[Record], durable: bool) -> None:
        conn = self._conn
        what = f"commit {len(records)} events"
        with bounded(conn, postgres_session.READ_TIMEOUT, self._location, what), conn.transaction():
            if not durable:
                conn.execute("SET LOCAL synchronous_commit = off")
            elif self._asynchronous:
                conn.execute("SET LOCAL synchronous_commit = on")
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO runs (run_id, started) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(r.run_id, r.ts) for r in records if r.seq == 1],
                )
                cursor.executemany(_INSERT_EVENT, records)
