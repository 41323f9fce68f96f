"""The inbox's write statements (private to the store): multi-row inserts of events, jobs and
deliveries built once per shape, and the counters' upsert. :func:`insert_rows` is also how the
store writes links and queued jobs in batches (``create_links``, ``enqueue_many``).

Deliveries are written as multi-row ``INSERT ... VALUES (...), (...) RETURNING`` statements on
the driver directly (on PostgreSQL: one JSON array of rows, see :func:`insert_rows`). Through
SQLAlchemy's executemany each row paid ~13 us of parameter processing (mostly the UTC type's
conversion of the same timestamp, four times per event); here the timestamp is converted once
per transaction and the rows are plain tuples.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect

from ._ports import JobState
from ._schema import PENDING_DEDUPE, jobs, webhook_portals

CHUNK = 128  # rows per multi-row INSERT (a large one's prepared statement is large)
IN_LIST = 512  # values per IN list; both far below SQLite's bound-parameter limit
_T = TypeVar("_T")

__all__ = ["BATCH_COLUMNS", "CHUNK", "EVENT_COLUMNS", "EVENT_TAIL", "IN_LIST", "JOB_COLUMNS",
           "JOB_TAIL", "db_time", "in_lists", "insert_rows", "multi_row_sql", "one_of", "pending_jobs_sql",
           "portal_upsert_sql", "shaped"]


# Every row count of a multi-row INSERT (SQLAlchemy's executemany with RETURNING is one too),
# and every length of an IN list, is a statement text of its own, and SQLite's driver keeps up
# to 128 prepared statements per connection. A 50,000-deal backfill kept about 18 MB of
# SQLite's memory in such statements, 14 MB more with the read-ahead thread's connection.
# Batches come in powers of two instead: at most log2(size) + 1 texts a statement.

def shaped(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """``items`` in slices of CHUNK, then of falling powers of two (333: 128, 128, 64, 8, 4, 1)."""
    start, size = 0, CHUNK
    while start < len(items):
        while size > len(items) - start:
            size //= 2
        yield items[start:start + size]
        start += size


def _unbounded(column_type: Any) -> Any:
    """A string column's type without its length: PostgreSQL's explicit cast to VARCHAR(n)
    cuts a longer value silently (a lookup would match another row's prefix, an insert store a
    cut value); uncut, the column's own length refuses it on insert, and a lookup finds nothing.
    A native enum (a string type too) keeps its type: its values are its own."""
    if isinstance(column_type, sa.Enum) and column_type.native_enum:
        return column_type
    return sa.String() if isinstance(column_type, sa.String) and column_type.length else column_type


def one_of(conn: Connection, column: sa.ColumnElement[Any], values: Sequence[Any]) -> Iterator[sa.ColumnElement[bool]]:
    """``column IN values`` as conditions of statements each run once: on PostgreSQL one
    ``column = ANY(array)``, whatever the number of values (a single short statement psycopg
    converts once and the server prepares; IN lists of 512 values were new texts for psycopg
    to parse each time: a 1,000-link lookup took 66 ms, now 24 ms); elsewhere
    one IN list per :func:`in_lists` slice. None for no values."""
    if not values:
        return
    if conn.dialect.name == "postgresql":
        yield column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(_unbounded(column.type))))
        return
    for chunk in in_lists(values):
        yield column.in_(chunk)


def in_lists(values: Sequence[_T]) -> Iterator[list[_T]]:
    """``values`` as IN lists of at most IN_LIST, each filled up to a power of two by
    repeating its last value (a value twice in an IN list matches the same rows)."""
    for start in range(0, len(values), IN_LIST):
        chunk = list(values[start:start + IN_LIST])
        size = 1 << (len(chunk) - 1).bit_length()
        yield chunk + [chunk[-1]] * (size - len(chunk))


EVENT_COLUMNS = ("tenant_id", "portal_id", "dedupe_key", "event_id", "subscription_type",
                  "object_type", "object_id", "property_name", "occurred_at_ms", "payload",
                  "received_at")
# The unique index of migration 0011: the key hashes occurredAt, so this is "key stored once".
EVENT_TAIL = ("ON CONFLICT (tenant_id, occurred_at_ms, dedupe_key) DO NOTHING "
               "RETURNING tenant_id, dedupe_key")
BATCH_COLUMNS = ("tenant_id", "portal_id", "events", "body", "received_at")
JOB_COLUMNS = ("tenant_id", "kind", "payload", "state", "attempts", "max_attempts",
                "dedupe_key", "run_after", "created_at", "updated_at")
# PENDING_DEDUPE is the text of the partial unique index (migration 0005): ON CONFLICT names
# the index by it on both backends.
JOB_TAIL = (f"ON CONFLICT (tenant_id, kind, dedupe_key) WHERE {PENDING_DEDUPE.text} "
             "DO NOTHING RETURNING dedupe_key")


@functools.lru_cache(maxsize=512)
def multi_row_sql(paramstyle: str, table: str, columns: tuple[str, ...], rows: int,
                   tail: str) -> str:
    mark = "?" if paramstyle == "qmark" else "%s"  # sqlite3; psycopg takes %s positionally
    one = "(" + ", ".join([mark] * len(columns)) + ")"
    # Only the schema's own names and constants go into the text; every value is bound.
    values = ", ".join([one] * rows)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} {tail}"  # noqa: S608


@functools.lru_cache(maxsize=64)
def pending_jobs_sql(paramstyle: str, dialect: str, keys: int) -> str:
    """Which of ``keys`` dedupe keys have a pending job of (tenant, kind); locked on PostgreSQL."""
    mark = "?" if paramstyle == "qmark" else "%s"
    lock = " FOR UPDATE" if dialect == "postgresql" else ""
    # Only constants and placeholders go into the text; every value is bound.
    return (f"SELECT dedupe_key FROM {jobs.name} WHERE tenant_id = {mark} AND kind = {mark} "  # noqa: S608
            f"AND state = '{JobState.PENDING.value}' AND dedupe_key IN "
            f"({', '.join([mark] * keys)}) ORDER BY id{lock}")


@functools.lru_cache(maxsize=4)
def portal_upsert_sql(paramstyle: str) -> str:
    """Add to a portal's counters; a NULL time or occurredAt leaves the stored one."""
    mark = "?" if paramstyle == "qmark" else "%s"
    table = webhook_portals.name
    return (f"INSERT INTO {table} (tenant_id, portal_id, last_received_at, last_occurred_at_ms, "  # noqa: S608
            f"accepted, duplicates, echoes) VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, "
            f"{mark}, 0) ON CONFLICT (tenant_id, portal_id) DO UPDATE SET "
            f"accepted = {table}.accepted + excluded.accepted, "
            f"duplicates = {table}.duplicates + excluded.duplicates, "
            f"last_received_at = COALESCE(excluded.last_received_at, {table}.last_received_at), "
            f"last_occurred_at_ms = CASE WHEN {table}.last_occurred_at_ms > "
            f"excluded.last_occurred_at_ms THEN {table}.last_occurred_at_ms "
            f"ELSE COALESCE(excluded.last_occurred_at_ms, {table}.last_occurred_at_ms) END")


@functools.lru_cache(maxsize=16)
def json_rows_sql(table: sa.Table, columns: tuple[str, ...], tail: str) -> str:
    """``INSERT ... SELECT (r->>0)::type, ... FROM jsonb_array_elements(%s::jsonb) r``: all rows
    in one JSON array parameter, so the text is the same for any number of rows (PostgreSQL)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy's dialect class is untyped
    values = ", ".join(f"(r->>{n})::{_unbounded(table.c[name].type).compile(dialect=dialect)}"
                       for n, name in enumerate(columns))
    # Only the schema's own names, types and constants go into the text; every value is bound.
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608
            f"SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS r {tail}")


def _rows_json(rows: Sequence[tuple[Any, ...]]) -> str:
    """The rows as one JSON array text; a datetime as its ISO text, written once however many
    rows carry it (a batch's rows share their time stamps: 60,000 conversions of a few values
    for a 10,000-deal backfill, and a Python call per value, were most of the encoding)."""
    texts: dict[datetime, str] = {}

    def iso(value: object) -> str:
        if not isinstance(value, datetime):
            raise TypeError(f"a {type(value).__name__} cannot be stored in a JSON row")
        text = texts.get(value)
        if text is None:
            text = texts[value] = value.isoformat()
        return text

    # The C encoder writes strings, numbers and None itself and calls ``iso`` for the rest.
    return json.JSONEncoder(separators=(",", ":"), default=iso).encode(rows)


def insert_rows(conn: Connection, table: sa.Table, columns: tuple[str, ...],
                rows: Sequence[tuple[Any, ...]], tail: str,
                tail_params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Insert ``rows`` in chunks of multi-row statements; the RETURNING rows of all chunks.
    ``tail`` (``ON CONFLICT ... RETURNING``) may bind ``tail_params``, each written ``%s``.

    On PostgreSQL one statement takes all rows as one JSON text: a multi-row VALUES text of
    100 rows was longer than psycopg caches, and converting it again for each round was a
    third of the split's time there (and the server parsed and planned it again too); column
    arrays instead cost as much in psycopg's pure-Python array quoting. The C json encoder
    writes the text in microseconds, and psycopg prepares the one short statement.
    """
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        text = _rows_json(rows)
        return [tuple(row) for row in conn.exec_driver_sql(json_rows_sql(table, columns, tail),
                                                             (text, *tail_params))]
    returned: list[tuple[Any, ...]] = []
    paramstyle = conn.dialect.paramstyle
    if paramstyle == "qmark":
        tail = tail.replace("%s", "?")
    for chunk in shaped(rows):
        sql = multi_row_sql(paramstyle, table.name, columns, len(chunk), tail)
        flat = tuple(value for row in chunk for value in row)
        returned.extend(tuple(row) for row in conn.exec_driver_sql(sql, (*flat, *tail_params)))
    return returned


def storable_text(text: str) -> str:
    """``text`` as every store can keep it: PostgreSQL refuses NUL in text, and no driver
    encodes a lone surrogate (an error quoting bytes that were not UTF-8); both are written
    escaped (``\\x00``, ``\\udcff``), so an error message is recorded, never a second error."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def db_time(conn: Connection, now: datetime) -> Any:
    """``now`` as the UTC column type binds it on this connection's dialect.

    The dialect's implementation matters: on SQLite it formats the text with microseconds
    always, as every other write does, so stored times keep comparing as strings.
    """
    process = _time_binder(conn.dialect)
    return now if process is None else process(now)


@functools.lru_cache(maxsize=8)
def _time_binder(dialect: Dialect) -> Callable[[Any], Any] | None:
    return jobs.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)


