"""claim() on its prebuilt statements: values never baked in, due order, locks between connections."""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from ambac_hubspot_plugin.store import JobState, open_store
from ambac_hubspot_plugin.store._queue import DEFAULT_LEASE
from ambac_hubspot_plugin.store._queue_sql import CLAIM_ANY
from tests._store_support import (  # noqa: F401  # fixtures are used by name
    FakeClock,
    clock,
    store,
    store_url,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def test_each_claim_binds_its_own_kinds_limit_time_and_worker(store: Any,
                                                               clock: FakeClock) -> None:
    """Claims in a row on the same store take each call's kinds, limit, clock and worker."""
    a1 = store.enqueue("1", "a", {"n": 1})
    b1 = store.enqueue("1", "b", {"n": 2})
    a2 = store.enqueue("1", "a", {"n": 3}, run_after=clock() + 5 * MINUTE)
    b2 = store.enqueue("2", "b", {"n": 4})
    c1 = store.enqueue("1", "c", {"n": 5})
    assert [(j.id, j.lease_owner) for j in store.claim("w1", kinds=["a"], limit=5, lease=HOUR)] == [(a1, "w1")]
    assert [(j.id, j.lease_owner) for j in store.claim("w2", kinds=["b"], limit=1, lease=HOUR)] == [(b1, "w2")]
    assert store.claim("w3", kinds=["a"], limit=5) == []  # a2 is not due yet
    assert store.claim("w3", kinds=[], limit=5) == []
    assert [j.id for j in store.claim("w3", kinds=["b", "c"], limit=5, lease=HOUR)] == [b2, c1]
    clock.advance(5 * MINUTE)
    [job] = store.claim("w4", limit=5)
    assert (job.id, job.lease_owner, job.lease_expires_at) == (a2, "w4", clock() + DEFAULT_LEASE)


def test_expired_and_pending_jobs_are_claimed_together_in_due_order(store: Any,
                                                                    clock: FakeClock) -> None:
    """An expired running job takes its place among pending ones by run_after, then id."""
    expired = store.enqueue("1", "k", {"n": 1})
    [job] = store.claim("dead-worker", lease=MINUTE)
    assert job.id == expired
    clock.advance(MINUTE)
    early = store.enqueue("1", "k", {"n": 2}, run_after=clock() - 10 * MINUTE)
    late = store.enqueue("1", "k", {"n": 3})
    clock.advance(MINUTE)  # the lease of "expired" has run out
    claimed = store.claim("w", limit=2)
    assert [(j.id, j.attempts, j.state) for j in claimed] == [
        (early, 1, JobState.RUNNING), (expired, 2, JobState.RUNNING)]
    assert [j.id for j in store.claim("w", limit=5)] == [late]


def test_a_claim_skips_jobs_another_connection_locked(store_url: str, store: Any,
                                                       clock: FakeClock) -> None:
    """PostgreSQL: a job locked by an uncommitted claim elsewhere is skipped, not waited for."""
    if store_url.startswith("sqlite"):
        pytest.skip("SQLite has no row locks: BEGIN IMMEDIATE makes claimers take turns")
    first = store.enqueue("1", "k", {"n": 1})
    second = store.enqueue("1", "k", {"n": 2})
    other = sa.create_engine(store.engine.url)
    # Were the lock waited for, this claimer would fail after 5 s instead of hanging.
    claimer = open_store(store_url.replace("options=-c", "options=-clock_timeout%3D5000%20-c"))
    try:
        with other.connect() as conn:
            claiming = conn.begin()  # a claim elsewhere that has not committed yet
            locked = [row.id for row in conn.execute(CLAIM_ANY, {"now": clock(), "limit": 1, "owner": "other",
                                                                  "expires": clock() + HOUR})]
            assert locked == [first]
            assert [j.id for j in claimer.claim("w", limit=5)] == [second]
            claiming.rollback()  # it never commits: its lease is undone and the lock let go
        assert [j.id for j in claimer.claim("w", limit=5)] == [first]
    finally:
        claimer.close()
        other.dispose()


def test_a_sqlite_begin_that_cannot_lock_raises_sqlalchemy_error(store_url: str,
                                                                 store: Any) -> None:
    """SQLite: a BEGIN IMMEDIATE refused by a held write lock surfaces as a SQLAlchemy error."""
    if not store_url.startswith("sqlite"):
        pytest.skip("only SQLite begins its transactions with BEGIN IMMEDIATE")
    holder = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with store.engine.connect() as conn:
            conn.connection.driver_connection.execute("PRAGMA busy_timeout = 10")
            with pytest.raises(sa.exc.OperationalError):
                conn.begin()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
