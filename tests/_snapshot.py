"""Everything a refused or read-only operation must leave as it was: store rows, saved settings,
the requests HubSpot (the sandbox) received."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def store_rows(engine: sa.engine.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a plugin store (the log, the last connection check, runs,
    jobs, links, conflicts, checkpoints), sorted, by table name."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        return {name: sorted((tuple(row) for row in conn.execute(sa.select(table))), key=repr)
                for name, table in sorted(metadata.tables.items())}


def store_file_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """:func:`store_rows` of a SQLite store file, read without the plugin."""
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        return store_rows(engine)
    finally:
        engine.dispose()


def host_settings_rows(host_dir: Path) -> list[tuple[Any, ...]]:
    """The reference host's saved plugin settings and enabled flags."""
    conn = sqlite3.connect(host_dir / "host.sqlite3")
    try:
        return conn.execute("SELECT * FROM plugin_settings ORDER BY tenant_id, plugin_id").fetchall()
    finally:
        conn.close()
