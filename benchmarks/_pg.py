"""The benchmarks' PostgreSQL: a fresh schema in database ``test`` on 127.0.0.1:5432."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def pg_schema(prefix: str) -> Iterator[str | None]:
    """The store URL of a fresh schema (``prefix`` + a random part), dropped after the block;
    None when nothing answers on 127.0.0.1:5432."""
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
    except OSError:
        yield None
        return
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
