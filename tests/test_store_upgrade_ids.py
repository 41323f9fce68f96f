"""Migration 0008: a store written with integer host ids is upgraded to string ids, every row
kept, every index and constraint as it was, and the running code reads and uses the rows."""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from ambac_hubspot_plugin.store import (
    HEAD,
    ConflictDraft,
    create_store_engine,
    current_revision,
    migrate,
    open_store,
)
from ambac_hubspot_plugin.store._engine import _alembic_config
from tests._store_support import store_url  # noqa: F401  # the fixture is used by name

# The columns migration 0008 turns into strings: every one that holds a host id.
ID_COLUMNS = {
    "hubspot_links": ("tenant_id", "host_id"),
    "hubspot_checkpoints": ("tenant_id",),
    "hubspot_sync_runs": ("tenant_id",),
    "hubspot_integration_log": ("tenant_id",),
    "hubspot_jobs": ("tenant_id",),
    "hubspot_webhook_batches": ("tenant_id",),
    "hubspot_webhook_events": ("tenant_id",),
    "hubspot_webhook_portals": ("tenant_id",),
    "hubspot_webhook_refusals": ("tenant_id",),
    "hubspot_conflicts": ("tenant_id", "host_id"),
    "hubspot_pushed_values": ("tenant_id",),
    "hubspot_claims": ("tenant_id",),
}


def _rows(now: datetime) -> dict[str, list[dict[str, Any]]]:
    """One or two rows per table, as revisions up to 0007 stored them: integer ids."""
    later = now + timedelta(hours=1)
    return {
        "hubspot_links": [
            dict(tenant_id=1, portal_id="p1", object_type="deal", hubspot_id="900",
                 host_type="order", host_id=5, synced='{"amount":"10"}', created_at=now,
                 updated_at=now),
            dict(tenant_id=2, portal_id="p1", object_type="contact", hubspot_id="901",
                 host_type="user", host_id=5, synced="{}", created_at=now, updated_at=now)],
        "hubspot_checkpoints": [dict(tenant_id=1, portal_id="p1", name="deals", value="c-1",
                                     updated_at=now)],
        "hubspot_sync_runs": [dict(tenant_id=1, kind="full", status="succeeded", started_at=now,
                                   heartbeat_at=now, ended_at=now, created=3, updated=0,
                                   skipped=0, failed=0)],
        "hubspot_integration_log": [dict(tenant_id=1, level="info", what="sync",
                                         record="deal:900", message="hi", created_at=now)],
        "hubspot_jobs": [dict(tenant_id=1, kind="push", payload='{"deal":"900"}',
                              state="pending", attempts=0, max_attempts=8, dedupe_key="deal:900",
                              run_after=now - timedelta(minutes=1), created_at=now,
                              updated_at=now)],
        "hubspot_webhook_batches": [dict(tenant_id=1, portal_id="p1", events=1, body=b"[]",
                                         received_at=now)],
        "hubspot_webhook_events": [dict(
            tenant_id=1, portal_id="p1", dedupe_key="e1", event_id=77,
            subscription_type="deal.propertyChange", object_type="deal", object_id="900",
            property_name="amount", occurred_at_ms=1_700_000_000_000, payload="{}",
            received_at=now)],
        "hubspot_webhook_portals": [dict(tenant_id=1, portal_id="p1", last_received_at=now,
                                         last_occurred_at_ms=1_700_000_000_000, accepted=3,
                                         duplicates=1, echoes=0)],
        "hubspot_webhook_refusals": [dict(tenant_id=1, reason="signature", refused=2,
                                          suppressed=0, last_refused_at=now)],
        "hubspot_conflicts": [dict(
            tenant_id=1, portal_id="p1", object_type="deal", host_id=5, hubspot_type="deal",
            hubspot_id="900", field="amount", hubspot_value='"1"', host_value='"2"',
            last_synced='"0"', strategy="manual", decision="hold", reason="", status="open",
            created_at=now, updated_at=now)],
        "hubspot_pushed_values": [dict(tenant_id=1, object_type="deal", object_id="900",
                                       property_name="amount", value="10", written_at=now)],
        "hubspot_claims": [dict(tenant_id=1, key="email:ann", holder="h1", expires_at=later)],
    }


def _schema(engine: sa.Engine) -> dict[str, Any]:
    """Every table's indexes, constraints and columns, the id columns' types left out."""
    inspector = sa.inspect(engine)
    shape: dict[str, Any] = {}
    for table in ID_COLUMNS:
        columns = [{k: (None if k == "type" and c["name"] in ID_COLUMNS[table] else str(v))
                    for k, v in c.items()} for c in inspector.get_columns(table)]
        indexes = [{**ix, "dialect_options": {k: str(v) for k, v in
                                              ix.get("dialect_options", {}).items()}}
                   for ix in inspector.get_indexes(table)]
        shape[table] = {
            "columns": columns, "pk": inspector.get_pk_constraint(table),
            "unique": sorted(inspector.get_unique_constraints(table), key=str),
            "checks": sorted(inspector.get_check_constraints(table), key=str),
            "indexes": sorted(indexes, key=lambda ix: str(ix["name"])),
        }
    # The indexes' own text: the jobs' partial unique index must keep its exact predicate.
    query = ("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
             if engine.dialect.name == "sqlite" else
             "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()")
    with engine.connect() as conn:
        shape["index_text"] = sorted(tuple(row) for row in conn.execute(sa.text(query)))
    return shape


def _id_types(engine: sa.Engine) -> set[str]:
    inspector = sa.inspect(engine)
    return {type(c["type"]).__name__ for table, names in ID_COLUMNS.items()
            for c in inspector.get_columns(table) if c["name"] in names}


@pytest.fixture
def old_store(store_url: str) -> Iterator[tuple[sa.Engine, datetime]]:
    """A store at revision 0007 holding a row or two in every table, with integer ids."""
    engine = create_store_engine(store_url)
    try:
        migrate(engine, "0007")
        now = datetime.now(UTC).replace(microsecond=0)
        stored = now.replace(tzinfo=None) if engine.dialect.name == "sqlite" else now
        old = sa.MetaData()
        with engine.begin() as conn:
            for table, rows in _rows(stored).items():
                conn.execute(sa.Table(table, old, autoload_with=conn).insert(), rows)
        yield engine, now
    finally:
        engine.dispose()


def _downgrade(engine: sa.Engine, revision: str) -> None:
    with engine.connect() as conn, conn.begin():
        command.downgrade(_alembic_config(conn), revision)


def test_upgrade_keeps_every_row_with_its_ids_as_the_equal_strings(
        old_store: tuple[sa.Engine, datetime]) -> None:
    engine, _now = old_store
    before = _schema(engine)
    assert _id_types(engine) <= {"INTEGER", "BIGINT", "Integer", "BigInteger"}
    migrate(engine, "0008")
    assert current_revision(engine) == "0008"
    assert _id_types(engine) == {"VARCHAR"}
    assert _schema(engine) == before  # every index and constraint as it was
    expected = _rows(datetime.now(UTC))
    with engine.connect() as conn:
        for table, names in ID_COLUMNS.items():
            stored = [tuple(row) for row in conn.execute(sa.text(
                f"SELECT {', '.join(names)} FROM {table} ORDER BY {', '.join(names)}"))]
            assert stored == sorted(tuple(str(row[n]) for n in names) for row in expected[table]), table
        if engine.dialect.name == "sqlite":  # stored as text, not folded back into integers
            kinds = conn.execute(sa.text("SELECT DISTINCT typeof(tenant_id) FROM hubspot_links"))
            assert kinds.scalars().all() == ["text"]


def test_the_store_reads_and_uses_the_upgraded_rows(store_url: str,
                                                    old_store: tuple[sa.Engine, datetime]) -> None:
    engine, now = old_store
    migrate(engine)
    store = open_store(store_url)
    try:
        link = store.get_link_by_host("1", "order", "5")
        assert link is not None
        assert (link.tenant_id, link.host_id, link.hubspot_id) == ("1", "5", "900")
        contact = store.get_link_by_hubspot("2", "p1", "contact", "901")
        assert contact is not None and contact.host_id == "5"
        assert set(store.get_links_by_host("1", "order", ["5", "6"])) == {"5"}
        checkpoint = store.get_checkpoint("1", "p1", "deals")
        assert checkpoint is not None and checkpoint.value == "c-1"
        assert [run.tenant_id for run in store.recent_runs("1")] == ["1"]
        assert [entry.message for entry in store.read_log("1").entries] == ["hi"]
        # The jobs' partial unique index still dedupes against the migrated pending job.
        [pending] = store.queued("1", ["push"])
        assert store.enqueue("1", "push", {"deal": "900"}, dedupe_key="deal:900") == pending.id
        [job] = store.claim("w1", kinds=["push"])
        assert (job.id, job.tenant_id, job.payload) == (pending.id, "1", {"deal": "900"})
        store.complete(job.id, "w1")
        # The open-conflict index still folds a held field into the migrated conflict.
        [conflict] = store.list_conflicts("1", host_id="5")
        again = store.record_conflict(ConflictDraft(
            tenant_id="1", portal_id="p1", object_type="deal", host_id="5", hubspot_type="deal",
            hubspot_id="900", field="amount", hubspot_value="3", host_value="2", last_synced="0",
            hubspot_changed_at=None, host_changed_at=None, strategy="manual", decision="hold"))
        assert again.id == conflict.id and again.hubspot_value == "3"
        assert store.pushed_value("1", "deal", "900", "amount") == "10"
        assert store.webhook_backlog("1").batches == 1
        assert [e.event_id for e in store.pending_webhook_events("1", "deal", "900")] == [77]
        assert [s.accepted for s in store.webhook_portal_stats("1")] == [3]
        assert [s.refused for s in store.webhook_refusal_stats("1")] == [2]
        assert not store.take_claim("1", "email:ann", "h2")  # h1 holds it for an hour
        assert store.take_claim("1", "email:ann", "h1")
        assert store.get_link_by_host("1", "order", "05") is None  # strings, not numbers
        assert now <= link.created_at + timedelta(seconds=1)
    finally:
        store.close()


def test_downgrade_turns_integer_looking_ids_back_into_integers(
        old_store: tuple[sa.Engine, datetime]) -> None:
    engine, _now = old_store
    before = _schema(engine)
    migrate(engine)
    _downgrade(engine, "0007")
    assert current_revision(engine) == "0007"
    assert _schema(engine) == before
    assert _id_types(engine) <= {"INTEGER", "BIGINT", "Integer", "BigInteger"}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT tenant_id, host_id FROM hubspot_links "
                                    "ORDER BY tenant_id")).all() == [(1, 5), (2, 5)]


@pytest.mark.parametrize("kept", ["0192f4c3-8d7e-7cc1-9b1a-3f2e1d0c4b5a", "007"])
def test_downgrade_refuses_ids_an_integer_column_cannot_keep(
        old_store: tuple[sa.Engine, datetime], kept: str) -> None:
    engine, _now = old_store
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE hubspot_conflicts SET host_id = :v"), {"v": kept})
    with pytest.raises(RuntimeError, match=r"hubspot_conflicts\.host_id"):
        _downgrade(engine, "0007")
    assert current_revision(engine) == HEAD  # nothing changed
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT host_id FROM hubspot_conflicts")).scalar() == kept
