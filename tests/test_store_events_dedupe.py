"""Migration 0011: the webhook events' "stored once" index leads with the time of the change.
Upgrading keeps every event and its other indexes, a redelivery of a stored event is still a
duplicate afterwards, and a downgrade restores the constraint on (tenant, key). On SQLite and
PostgreSQL."""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command

from ambac_hubspot_plugin.store import HEAD, InboxEventDraft, create_store_engine, migrate, open_store
from ambac_hubspot_plugin.store._engine import _alembic_config
from tests._store_support import store_url  # noqa: F401  # the fixture is used by name

TABLE = "hubspot_webhook_events"
NEW = "uq_hubspot_webhook_events_occurred"
OLD = "uq_hubspot_webhook_events_dedupe"


def _row(key: str, occurred_ms: int, processed: bool) -> dict[str, object]:
    now = datetime.now(UTC).replace(tzinfo=None)
    return dict(tenant_id="7", portal_id="1", dedupe_key=key, event_id=None,
                subscription_type="deal.propertyChange", object_type="deal", object_id=key,
                property_name="dealstage", occurred_at_ms=occurred_ms, payload="{}",
                received_at=now, processed_at=now if processed else None,
                outcome="applied" if processed else None)


def _draft(key: str, occurred_ms: int) -> InboxEventDraft:
    return InboxEventDraft(portal_id="1", dedupe_key=key, event_id=None,
                           subscription_type="deal.propertyChange", object_type="deal",
                           object_id=key, property_name="dealstage", occurred_at_ms=occurred_ms,
                           payload="{}")


@pytest.fixture
def old_store(store_url: str) -> Iterator[sa.Engine]:
    """A store at revision 0010 holding a processed and an unprocessed event."""
    engine = create_store_engine(store_url)
    try:
        migrate(engine, "0010")
        table = sa.Table(TABLE, sa.MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [_row("a", 1_700_000_000_000, True),
                                          _row("b", 1_700_000_000_001, False)])
        yield engine
    finally:
        engine.dispose()


def _unique_indexes(engine: sa.Engine) -> dict[str, list[str]]:
    inspector = sa.inspect(engine)
    found = {str(ix["name"]): list(ix["column_names"]) for ix in inspector.get_indexes(TABLE)
             if ix["unique"]}
    found.update({str(uq["name"]): list(uq["column_names"])
                  for uq in inspector.get_unique_constraints(TABLE)})
    return found


def test_upgrade_keeps_events_and_their_dedupe(old_store: sa.Engine) -> None:
    """After 0011 the events are all there, their other indexes too (the partial pending index
    included), and an event already stored is refused as a duplicate while a new one is
    stored."""
    url = old_store.url.render_as_string(hide_password=False)
    before = {str(ix["name"]) for ix in sa.inspect(old_store).get_indexes(TABLE)} - {OLD}
    store = open_store(url)  # upgrades to HEAD
    try:
        assert _unique_indexes(store.engine) == {NEW: ["tenant_id", "occurred_at_ms", "dedupe_key"]}
        assert before <= {str(ix["name"]) for ix in sa.inspect(store.engine).get_indexes(TABLE)}
        assert [e.dedupe_key for e in store.pending_webhook_events("7", "deal", "b")] == ["b"]
        receipt = store.accept_webhook_batch(
            "7", [_draft("a", 1_700_000_000_000), _draft("b", 1_700_000_000_001),
                  _draft("c", 1_700_000_000_002)], job_kind="webhook.object")
        assert (receipt.accepted, receipt.duplicates) == (1, 2)
        with store.engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar() == 3
    finally:
        store.close()


def test_downgrade_restores_the_key_constraint(old_store: sa.Engine) -> None:
    """Downgrading from 0011 to 0010 puts back the unique constraint on (tenant, key) and
    keeps the events."""
    migrate(old_store, HEAD)
    with old_store.begin() as conn:
        command.downgrade(_alembic_config(conn), "0010")
    assert _unique_indexes(old_store) == {OLD: ["tenant_id", "dedupe_key"]}
    with old_store.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar() == 2
    table = sa.Table(TABLE, sa.MetaData(), autoload_with=old_store)
    with pytest.raises(sa.exc.IntegrityError), old_store.begin() as conn:
        conn.execute(table.insert(), [_row("a", 1_700_000_000_999, False)])
