"""What the webhook benchmarks share: the store a run uses (``--store-url``), and how a
figure over several runs is printed (median and range, with the machine's load beside it)."""

from __future__ import annotations

import os
import statistics
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def store_url_option(value: str) -> str:
    """``--store-url``: ``sqlite`` (a temp file, the default), ``postgresql`` (db ``test`` on
    127.0.0.1:5432) or a ``postgresql+psycopg://`` URL of a database."""
    if value == "postgresql":
        return DEFAULT_PG
    return value


@contextmanager
def fresh_store_url(spec: str) -> Iterator[str]:
    """The URL of an empty store for one run: a SQLite file in a temp dir, or a PostgreSQL
    schema of its own (``bench_wh_<random>``), created here and dropped afterwards."""
    if spec == "sqlite" or spec.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        return
    import psycopg

    admin = spec.replace("postgresql+psycopg://", "postgresql://")
    schema = f"bench_wh_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        glue = "&" if "?" in spec else "?"
        yield f"{spec}{glue}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def store_name(spec: str) -> str:
    return "SQLite" if spec.startswith("sqlite") else "PostgreSQL"


def load() -> str:
    """The 1/5/15-minute load averages, to print beside a figure."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}/{fifteen:.2f}"


def spread(values: Sequence[float], fmt: str = ",.0f", unit: str = "") -> str:
    """``median (min-max) unit`` of ``values``."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:{fmt}}{unit} (range {low:{fmt}}-{high:{fmt}}{unit}, {len(values)} runs)"
