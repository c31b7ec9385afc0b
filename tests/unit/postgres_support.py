"""A fresh schema of its own for each PostgreSQL journal test (the server named by `REPEG_TEST_POSTGRES_DSN`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


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
