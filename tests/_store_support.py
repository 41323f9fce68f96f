"""Fixtures and worker processes shared by the store and queue tests.

Imported explicitly by ``test_store.py`` and ``test_queue.py``. Every test using
``store_url`` runs on a SQLite file in ``tmp_path`` and on PostgreSQL in a schema of its own
(dropped afterwards), or is skipped with the reason when PostgreSQL does not answer.
"""

from __future__ import annotations

import functools
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ._clock import ManualClock

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_DSN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"


class FakeClock(ManualClock):
    """Starts at the real now, so it stays compatible with worker processes on the real clock."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start or datetime.now(UTC))


class FixedRandom:
    """A random source returning one chosen value, to pin jitter."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


@functools.cache
def postgres_answers() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def pg_schema_url(prefix: str, *, port: int = PG_PORT, user: str = "postgres",
                  query: str = "") -> Iterator[str]:
    """The store URL of a fresh PostgreSQL schema (``prefix`` + a random part), dropped after;
    skips the test when PostgreSQL does not answer. ``port``: a proxy's in front of it;
    ``user``: the URL's user info (the server trusts any password); ``query``: more options."""
    if not postgres_answers():
        pytest.skip(f"PostgreSQL does not answer at {PG_HOST}:{PG_PORT}")
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql+psycopg://{user}@{PG_HOST}:{port}/test?options=-csearch_path%3D{schema}{query}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    with pg_schema_url("t_store") as url:
        yield url


@pytest.fixture
def clock() -> FakeClock:
    """The injected clock of the ``store`` fixture."""
    return FakeClock()


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[Any]:
    """An opened, migrated store on the ``clock``, with jitter pinned to half the ceiling."""
    from ambac_hubspot_plugin.store import open_store

    opened = open_store(store_url, clock=clock, random_source=FixedRandom(0.5))
    try:
        yield opened
    finally:
        opened.close()


# -- worker processes (module-level so multiprocessing's spawn can import them) ---------------

RESULTS_DDL = "CREATE TABLE mp_results (job_id INTEGER NOT NULL, pid INTEGER NOT NULL)"


def results_url(store_url: str) -> str:
    """Where worker processes note what they did: beside a SQLite store (the store refuses a
    file holding tables that are not its own), or the same PostgreSQL database."""
    if not store_url.startswith("sqlite"):
        return store_url
    return "sqlite:///" + str(Path(store_url.removeprefix("sqlite:///")).with_name("results.sqlite3"))


def open_store_worker(url: str, barrier: Any) -> None:
    """Child process: wait for the others, then open (and so migrate) the store at once."""
    from ambac_hubspot_plugin.store import open_store

    barrier.wait(timeout=60)
    open_store(url).close()


def drain_worker(url: str, start: Any, results: str) -> None:
    """Child process: drain the queue, recording each job id with this process id."""
    import sqlalchemy as sa

    from ambac_hubspot_plugin.store import Job, QueueRunner, open_store

    store = open_store(url)
    noted = sa.create_engine(results)
    insert = sa.text("INSERT INTO mp_results (job_id, pid) VALUES (:job, :pid)")

    def record(job: Job) -> None:
        with noted.begin() as conn:
            conn.execute(insert, {"job": job.id, "pid": os.getpid()})
        time.sleep(0.002)  # long enough for the workers to interleave

    start.wait(timeout=60)
    QueueRunner(store, {"record": record}, lease=timedelta(minutes=5)).drain()
    store.close()


def hanging_worker(url: str) -> None:
    """Child process: run the one "hang" job, which marks that it started and never ends."""
    from ambac_hubspot_plugin.store import Job, QueueRunner, open_store

    store = open_store(url)

    def hang(job: Job) -> None:
        Path(job.payload["marker"]).write_text(str(os.getpid()))
        time.sleep(600)

    QueueRunner(store, {"hang": hang}, lease=timedelta(seconds=30)).drain()


COALESCE_DDL = ("CREATE TABLE mp_coalesce (what VARCHAR(8) NOT NULL, "
                "dedupe_key VARCHAR(32) NOT NULL, started DOUBLE PRECISION NOT NULL, "
                "ended DOUBLE PRECISION NOT NULL)")


def coalesce_enqueue_worker(url: str, start: Any, keys: int, rounds: int, results: str) -> None:
    """Child process: enqueue each key ``rounds`` times, noting when each enqueue began."""
    import sqlalchemy as sa

    from ambac_hubspot_plugin.store import open_store

    store = open_store(url)
    noted = sa.create_engine(results)
    note = sa.text("INSERT INTO mp_coalesce VALUES ('enqueue', :key, :at, :at)")
    start.wait(timeout=60)
    for n in range(rounds):
        for key in range(keys):
            began = time.time()  # before the commit: a run starting later must follow it
            store.enqueue("1", "coalesce", {"n": n}, dedupe_key=f"key:{key}")
            with noted.begin() as conn:
                conn.execute(note, {"key": f"key:{key}", "at": began})
        time.sleep(0.003)
    store.close()


def coalesce_drain_worker(url: str, start: Any, enqueued: Any, results: str) -> None:
    """Child process: run "coalesce" jobs, noting each run's span, until all work is done."""
    import sqlalchemy as sa

    from ambac_hubspot_plugin.store import Job, QueueRunner, open_store

    store = open_store(url)
    noted = sa.create_engine(results)
    note = sa.text("INSERT INTO mp_coalesce VALUES ('run', :key, :started, :ended)")

    def run(job: Job) -> None:
        started = time.time()
        time.sleep(0.004)  # a push that takes a while: enqueues land while it runs
        with noted.begin() as conn:
            conn.execute(note, {"key": job.dedupe_key, "started": started, "ended": time.time()})

    runner = QueueRunner(store, {"coalesce": run}, lease=timedelta(minutes=5))
    start.wait(timeout=60)
    # A held-back job makes drain() return early: keep going until nothing is left.
    while not (enqueued.is_set() and not store.depths()):
        if runner.drain().claimed == 0:
            time.sleep(0.005)
    store.close()


def enqueue_worker(url: str, start: Any, keys: int, rounds: int) -> None:
    """Child process: enqueue every one of ``keys`` dedupe keys ``rounds`` times, at once."""
    from ambac_hubspot_plugin.store import open_store

    store = open_store(url)
    start.wait(timeout=60)
    for n in range(rounds):
        for key in range(keys):
            store.enqueue("1", "dedupe", {"n": n}, dedupe_key=f"key:{key}")
    store.close()
