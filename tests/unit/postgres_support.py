"""A fresh schema of its own for each PostgreSQL journal test (the server named by `REPEG_TEST_POSTGRES_DSN`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit


@contextmanager
def fresh_schema(server: str) -> Iterator[str]:
    """`server`'s DSN with a new schema as its search path, dropped (with all in it) when the block ends."""
    import psycopg  # here: a module importing this skips without psycopg (pytest.importorskip)

    schema = f"repeg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def reading_role(server: str, dsn: str, *, options: str = "LOGIN") -> Iterator[tuple[str, str]]:
    """A new role (`CREATE ROLE name options`) that may read the journal of `dsn` (made by `fresh_schema`), and `dsn`
    as that role; dropped when the block ends."""
    import psycopg

    schema = dsn.rsplit("%3D", 1)[1]
    role = f"repeg_reader_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} {options}")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    split = urlsplit(dsn)
    try:
        yield role, urlunsplit(split._replace(netloc=f"{role}@{split.hostname}:{split.port}"))
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
