"""Building the engine from the ``store_url`` setting, and migrating the schema under a lock.

Everything that can go wrong with the setting is turned into one :class:`StoreError` naming
``store_url`` and what to fix, with the password redacted and the driver error chained.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

from .._secrets import redact_url, scrub, url_passwords
from ..errors import StoreError

__all__ = ["HEAD", "SETTING", "VERSION_TABLE", "create_store_engine", "current_revision",
           "migrate", "redact"]

SETTING = "store_url"
VERSION_TABLE = "hubspot_alembic_version"
HEAD = "0013"
"""The newest migration revision this code knows (and needs)."""

_SQLITE_BUSY_MS = 30_000
_PG_CONNECT_TIMEOUT_S = 5
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_PG_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}
_PG_DRIVER = "psycopg[binary]>=3.1"  # what the [postgres] extra installs


def redact(url: str | URL) -> str:
    """The URL without its password, safe for messages and logs."""
    text = url.render_as_string(hide_password=True) if isinstance(url, URL) else url
    return redact_url(text)


def _bad(message: str, url: str | URL) -> StoreError:
    return StoreError(f"Setting {SETTING} ({redact(url)}): {message}", setting=SETTING)


def _parse(raw: str) -> URL:
    try:
        url = sa.make_url(raw)
    except Exception as exc:  # ArgumentError, ValueError (bad port): all mean "malformed"
        raise _bad(
            "is not a valid database URL; use sqlite:////absolute/path/hubspot.sqlite3 or "
            "postgresql+psycopg://user:password@host:5432/database", raw,
        ) from exc
    if url.drivername in _PG_DRIVERS:
        # psycopg 3 is the PostgreSQL driver we ship with; plain postgresql:// would pick psycopg2.
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in _SQLITE_DRIVERS:
        return url.set(drivername="sqlite+pysqlite")
    raise _bad(
        f"scheme {url.drivername!r} is not supported; use sqlite:///<path> (embedded default) "
        "or postgresql+psycopg://...", raw,
    )


def _check_sqlite_path(url: URL, raw: str) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise _bad("SQLite needs a file path (an in-memory database would lose the queue); "
                   "use sqlite:////absolute/path/hubspot.sqlite3", raw)
    parent = Path(database).expanduser().absolute().parent
    if not parent.is_dir():
        raise _bad(f"directory {parent} does not exist; create it or point the setting "
                   "at an existing directory", raw)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _bad(f"directory {parent} is not writable by this process; fix its permissions "
                   "or choose a writable directory", raw)
    foreign = _foreign_tables(Path(database).expanduser().resolve())
    if foreign:
        raise _bad(f"the file holds tables that are not the plugin's ({', '.join(foreign[:5])}): "
                   "it is another application's database, perhaps the host's own; give the "
                   "plugin a file of its own", raw)


# The plugin's tables, SQLite's own, and what alembic's batch mode leaves mid-migration.
_OWN_TABLES = ("hubspot_", "sqlite_", "_alembic_tmp_hubspot_")


def _foreign_tables(path: Path) -> list[str]:
    """Tables of an existing SQLite file that the plugin did not create."""
    import sqlite3

    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return []  # not a database at all: connecting says so, naming the file
    return sorted(name for name in names if not name.startswith(_OWN_TABLES))


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent, so only the first opener really changes it).

    Two processes opening a brand-new file at once both try the switch; SQLite answers the
    loser "database is locked" at once, without its busy timeout. Retry briefly and stop as
    soon as the file reports WAL.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + _SQLITE_BUSY_MS / 1000
    mode = "unknown"
    while True:
        try:
            mode = str(cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            if mode == "wal":
                return
        except sqlite3.OperationalError as exc:
            # By SQLite's error code, not its message text.
            if getattr(exc, "sqlite_errorname", None) not in {"SQLITE_BUSY", "SQLITE_LOCKED"}:
                raise
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"could not switch the SQLite file to WAL mode (it stays {mode})")
        time.sleep(0.02)


def _sqlite_setup(engine: Engine) -> None:
    import sqlite3

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below: pysqlite's own
        # implicit BEGIN is deferred, and a deferred reader that later writes can fail with
        # SQLITE_BUSY at once instead of waiting (the lock upgrade cannot wait in WAL).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the single write lock up front: writers queue on busy_timeout
        # instead of deadlocking, which is what makes claim() safe across processes.
        # Straight to the driver: exec_driver_sql's execution context cost ten times the
        # statement, on every transaction. Its error is wrapped as SQLAlchemy would.
        try:
            conn.connection.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]  # a live pysqlite connection here
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error) from exc


def create_store_engine(raw_url: str) -> Engine:
    """An engine for ``raw_url`` that has been proven to connect; else :class:`StoreError`."""
    url = _parse(raw_url)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        _check_sqlite_path(url, raw_url)
        connect_args = {"timeout": _SQLITE_BUSY_MS / 1000, "check_same_thread": False}
    elif "connect_timeout" not in url.query:
        connect_args = {"connect_timeout": _PG_CONNECT_TIMEOUT_S}
    try:
        # Pinging before each checkout finds connections a PostgreSQL restart cut; a SQLite
        # file has no server to lose, so there the ping would only cost time.
        engine = sa.create_engine(url, connect_args=connect_args,
                                  pool_pre_ping=url.get_backend_name() != "sqlite")
    except ImportError as exc:  # the dialect imports its driver here
        if url.get_backend_name() == "sqlite":
            raise _bad("this Python has no sqlite3 module; use a Python built with SQLite, or a "
                       "PostgreSQL store", raw_url) from exc
        raise _bad(f"the PostgreSQL driver ({url.get_driver_name()}) is not installed; install the "
                   f"plugin with its [postgres] extra (pip install '<checkout or wheel>[postgres]'), "
                   f"or the driver alone: pip install '{_PG_DRIVER}'", raw_url) from exc
    except Exception as exc:  # e.g. an unknown query option the dialect rejects
        raise _bad(f"cannot build an engine ({type(exc).__name__}); check the URL's options",
                   raw_url) from exc
    if url.get_backend_name() == "sqlite":
        _sqlite_setup(engine)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        raise _bad(_why_unreachable(url, exc), raw_url) from exc
    return engine


def _why_unreachable(url: URL, exc: BaseException) -> str:
    if url.get_backend_name() == "sqlite":
        return (f"cannot open SQLite file {url.database} ({type(exc).__name__}); check that "
                "it is a writable database file, not a directory or another kind of file")
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    detail = str(getattr(exc, "orig", exc)).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    # The driver message names host/user/database but never the password; strip it anyway,
    # as written and decoded, in the userinfo or a password= option.
    first = scrub(first, url_passwords(url.render_as_string(hide_password=False)))
    return (f"cannot connect to PostgreSQL at {where} database {url.database!r} as user "
            f"{url.username!r} ({first}); check host, port, credentials and that the server "
            "is running and reachable")


def _alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "ambac_hubspot_plugin.store:migrations")
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["connection"] = conn
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def require_existing(raw_url: str) -> None:
    """Refuse a SQLite store file that does not exist (before connecting would create it)."""
    url = _parse(raw_url)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and not database.startswith("file:") \
            and not Path(database).expanduser().exists():
        raise _bad(f"there is no store file at {database}; check the path (the plugin makes its "
                   "store when it is enabled)", raw_url)


def require_current(engine: Engine, raw_url: str) -> None:
    """Refuse a database that holds no plugin store, or one at another schema revision."""
    revision = current_revision(engine)
    if revision is None:
        raise _bad("the database holds no plugin store; check the setting (the plugin makes "
                   "its store when it is enabled)", raw_url)
    if revision != HEAD:
        raise _bad(f"the store is at schema revision {revision} and this plugin version reads "
                   f"{HEAD}; the plugin upgrades it when it starts", raw_url)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` while holding a lock, so concurrent starts are safe.

    PostgreSQL: a session advisory lock keyed on the schema, held across the migration.
    SQLite: the migration runs in one ``BEGIN IMMEDIATE`` transaction (SQLite's DDL is
    transactional), so a second process waits on busy_timeout and then finds nothing to do.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            lock_key = sa.text(
                "SELECT hashtext('ambac_hubspot_plugin.migrate:' || current_schema())")
            key = conn.execute(lock_key).scalar_one()
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                with conn.begin():
                    command.upgrade(_alembic_config(conn), revision)
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        else:
            with conn.begin():
                command.upgrade(_alembic_config(conn), revision)
