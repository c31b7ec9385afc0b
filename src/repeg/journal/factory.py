"""Open a journal from what the user typed: a file path (SQLite) or a `postgresql://` DSN."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from repeg.errors import ConfigError, JournalError
from repeg.journal.base import Journal

DEFAULT_JOURNAL = "repeg.db"


def is_postgres(spec: str) -> bool:
    return spec.startswith(("postgresql://", "postgres://"))


def journal_path_is(spec: str, kind: Callable[[Path], bool]) -> bool:
    """`kind` (`Path.is_dir`, `Path.is_file`) of the SQLite journal `spec`: a directory on its path that may not be
    searched is the `JournalError` SQLite would raise opening it, not a PermissionError traceback."""
    try:
        return kind(Path(spec))
    except OSError as exc:
        raise JournalError(f"cannot open journal {spec}: {exc.strerror or exc}") from exc


#: A URL's scheme (two characters at least: `C://x` is a Windows path).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")


#: libpq's connection keywords (PostgreSQL 18).
LIBPQ_KEYWORDS = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "sslnegotiation",
    "requiressl",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslkeylogfile",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "min_protocol_version",
    "max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
    "scram_client_key",
    "scram_server_key",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
]
#: libpq's keywords whose value is a secret: `password`, `sslpassword` (the passphrase of the client's SSL key),
#: and its other secrets (libpq 18).
LIBPQ_SECRETS = ("password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key")
#: A libpq `key=value` connection string (as `psql` takes): it starts with a connection keyword and '='.
_CONNINFO = re.compile(rf"\s*(?:{'|'.join(LIBPQ_KEYWORDS)})\s*=", re.IGNORECASE)
#: A secret in one: up to the next blank ('\ ' is a blank in it), or quoted ('...', a quote in it written \'). Found
#: wherever it stands, so also one set in the `options` (`options='-c password=...'`): see `postgres.safe_dsn`.
CONNINFO_SECRET = re.compile(
    rf"((?:{'|'.join(LIBPQ_SECRETS)})\s*=\s*)" r"(?:'(?:[^'\\]|\\.)*'?|(?:\\.|[^\s\\])*\\?)",
    re.IGNORECASE,
)


def _is_a_connection_string(spec: str) -> bool:
    """`spec` starts as a libpq `key=value` connection string and names no SQLite file: not one that exists
    (`user=alice.db`), nor a new one in a directory that does (a Hive-style `host=prod1/repeg.db`)."""
    if not _CONNINFO.match(spec) or os.path.lexists(spec):
        return False
    parent = os.path.dirname(spec)
    return not (parent and os.path.isdir(parent))


def refuse_a_url_of_no_journal(spec: str) -> None:
    """Refuse (`ConfigError` naming `--journal`, its password masked) a URL that is no `postgresql://` DSN, as a
    SQLAlchemy one (`postgresql+psycopg://`), or a libpq `key=value` connection string: read as a SQLite path,
    every refusal printed its password (and `repeg run` journaled to a new local file named after it)."""
    if _is_a_connection_string(spec):
        shown = CONNINFO_SECRET.sub(r"\1***", spec)
        raise ConfigError(
            "--journal",
            shown,
            "a key=value connection string; name a PostgreSQL journal by a postgresql:// DSN"
            " (a new SQLite file of that name: write it ./NAME)",
        )
    if _URL.match(spec) and not is_postgres(spec):
        from repeg.journal.postgres import safe_dsn

        reason = (
            "a PostgreSQL journal is named by a postgresql:// (or postgres://) DSN, with no driver suffix"
        )
        raise ConfigError("--journal", safe_dsn(spec), f"a URL, not a SQLite file; {reason}")


def open_journal(
    spec: str = DEFAULT_JOURNAL, *, create: bool = True, threaded: bool | None = None
) -> Journal:
    """The journal `spec` names. `create=False` refuses a SQLite path that does not exist yet (for reading)."""
    if is_postgres(spec):
        from repeg.journal.postgres import PostgresJournal

        return PostgresJournal(spec, threaded=threaded)
    refuse_a_url_of_no_journal(spec)
    from repeg.journal.sqlite import SqliteJournal

    return SqliteJournal(Path(spec), create=create, threaded=threaded)
