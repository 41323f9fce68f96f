"""The store's counts for the admin pages (runs per day, log lines per level, open conflicts),
each one aggregate query, on SQLite and PostgreSQL."""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ambac_hubspot_plugin.store import ConflictDraft, LogLevel, RunStatus
from tests._store_support import (  # noqa: F401  # fixtures are used by name
    FakeClock,
    clock,
    store,
    store_url,
)


def _run(store: Any, tenant: str, status: RunStatus, **counts: int) -> None:
    run = store.start_run(tenant, "incremental")
    store.finish_run(run.id, status, **counts)


def test_run_totals_sums_each_interval_and_leaves_out_runs_outside(store: Any, clock: FakeClock) -> None:
    """Runs fall in the interval they started in; before the first edge, after the last or of
    another tenant they count nowhere; an interval without runs is all zeros."""
    start = clock()
    edges = [start + timedelta(days=n) for n in range(4)]
    clock.advance(hours=-1)
    _run(store, "t1", RunStatus.SUCCEEDED, created=100)  # before the first edge
    clock.now = start
    _run(store, "t1", RunStatus.SUCCEEDED, created=2, updated=3, failed=1)  # on the edge: counted
    clock.advance(hours=5)
    _run(store, "t1", RunStatus.FAILED, failed=4)
    _run(store, "t2", RunStatus.SUCCEEDED, created=50)  # another tenant
    clock.now = start + timedelta(days=2, hours=23)
    _run(store, "t1", RunStatus.SUCCEEDED, updated=7)
    clock.now = edges[-1]
    _run(store, "t1", RunStatus.SUCCEEDED, created=100)  # on the last edge: outside
    assert store.run_totals("t1", edges) == [(5, 5, 2, 1), (0, 0, 0, 0), (7, 0, 1, 0)]
    with pytest.raises(ValueError, match="edges"):
        store.run_totals("t1", edges[:1])


def test_log_counts_counts_each_level_since_a_time(store: Any, clock: FakeClock) -> None:
    """Only the tenant's lines at or after ``since`` count, per level; absent levels are left out."""
    store.log_many("t1", [(LogLevel.ERROR, "deal.sync", "old", None)])
    since = clock.advance(hours=1)
    store.log_many("t1", [(LogLevel.ERROR, "deal.sync", "e", None)] * 3
                   + [(LogLevel.WARNING, "deal.sync", "w", "deal:1")] * 2)
    store.log("t2", LogLevel.ERROR, "deal.sync", "another tenant")
    assert store.log_counts("t1", since=since) == {LogLevel.ERROR: 3, LogLevel.WARNING: 2}
    assert store.log_counts("t1", since=clock.advance(seconds=1)) == {}


def test_count_conflicts_counts_the_open_ones_of_the_tenant(store: Any) -> None:
    """Held conflicts count as open, automatic decisions as closed, other tenants not at all."""
    def draft(tenant: str, host_id: str, decision: str) -> ConflictDraft:
        return ConflictDraft(tenant_id=tenant, portal_id="1", object_type="order", host_id=host_id,
                             hubspot_type="deal", hubspot_id=host_id, field="name", hubspot_value="a",
                             host_value="b", last_synced="c", hubspot_changed_at=None, host_changed_at=None,
                             strategy="manual", decision=decision)

    for n in range(3):
        store.record_conflict(draft("t1", str(n), "hold"))
    store.record_conflict(draft("t1", "9", "hubspot"))
    store.record_conflict(draft("t2", "1", "hold"))
    assert store.count_conflicts("t1") == 3
    assert store.count_conflicts("t1", status="closed") == 1
    assert store.count_conflicts("t3") == 0
