"""Migration 0013: the links of conflicts held open before it name their held fields, so the sync
can close such a conflict once it is no longer in dispute. On SQLite and PostgreSQL."""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from ambac_hubspot_plugin.store import create_store_engine, migrate
from ambac_hubspot_plugin.store._engine import _alembic_config
from tests._store_support import store_url  # noqa: F401  # the fixture is used by name

NOW = datetime(2026, 12, 1, tzinfo=UTC).replace(tzinfo=None)


def _link(hubspot_id: str, synced: str, object_type: str = "deal", tenant_id: str = "t1") -> dict[str, object]:
    return dict(tenant_id=tenant_id, portal_id="p1", object_type=object_type, hubspot_id=hubspot_id,
                host_type="order" if object_type == "deal" else object_type, host_id=f"h{hubspot_id}",
                synced=synced, created_at=NOW, updated_at=NOW)


def _conflict(hubspot_id: str, field: str, status: str = "open", hubspot_type: str = "deal",
              tenant_id: str = "t1") -> dict[str, object]:
    return dict(tenant_id=tenant_id, portal_id="p1", object_type="order" if hubspot_type == "deal" else hubspot_type,
                host_id=f"h{hubspot_id}", hubspot_type=hubspot_type, hubspot_id=hubspot_id, field=field,
                hubspot_value='"B"', host_value='"A"', last_synced='"0"', strategy="manual", decision="hold",
                reason="held", status=status, created_at=NOW, updated_at=NOW)


def _synced(engine: sa.Engine) -> dict[tuple[str, str, str], str]:
    with engine.connect() as conn:
        return {(t, o, h): s for t, o, h, s in conn.execute(sa.text(
            "SELECT tenant_id, object_type, hubspot_id, synced FROM hubspot_links"))}


def test_upgrade_0013_marks_the_fields_of_open_conflicts_and_downgrade_unmarks_them(store_url: str) -> None:
    """Each open conflict's field is added to its link's ``_held_fields`` (sorted, once, beside a
    mark already there); closed conflicts, other links and links that are not a JSON object are
    left as they were; the downgrade takes the mark away again and nothing else."""
    engine = create_store_engine(store_url)
    try:
        migrate(engine, "0012")
        meta = sa.MetaData()
        links = sa.Table("hubspot_links", meta, autoload_with=engine)
        conflicts = sa.Table("hubspot_conflicts", meta, autoload_with=engine)
        before = {
            "1": '{"dealname":"A","name":"A"}', "2": '{"name":"X"}', "3": '["not an object"]',
            "4": '{"_held_fields":["stage"],"name":"A"}', "5": "not json",
        }
        with engine.begin() as conn:
            conn.execute(links.insert(), [_link(h, s) for h, s in before.items()]
                         + [_link("1", '{"phone":"1"}', object_type="company"),
                            _link("1", '{"name":"A"}', tenant_id="t2"),
                            {**_link("8", '{"name":"M"}'), "host_id": "h7"}])  # deal 7 merged into 8
            conn.execute(conflicts.insert(), [
                _conflict("1", "name"), _conflict("1", "value"), _conflict("2", "name", status="closed"),
                _conflict("3", "name"), _conflict("4", "name"), _conflict("5", "name"),
                _conflict("1", "phone", hubspot_type="company"), _conflict("9", "name"), _conflict("7", "name")])
        original = _synced(engine)
        migrate(engine)
        after = _synced(engine)
        assert json.loads(after[("t1", "deal", "1")]) == {"dealname": "A", "name": "A",
                                                          "_held_fields": ["name", "value"]}
        assert json.loads(after[("t1", "deal", "4")]) == {"name": "A", "_held_fields": ["name", "stage"]}
        assert json.loads(after[("t1", "company", "1")]) == {"phone": "1", "_held_fields": ["phone"]}
        assert json.loads(after[("t1", "deal", "8")]) == {"name": "M", "_held_fields": ["name"]}
        unchanged = {k for k in original if k[2] in ("2", "3", "5")} | {("t2", "deal", "1")}
        assert {k: after[k] for k in unchanged} == {k: original[k] for k in unchanged}
        with engine.connect() as conn, conn.begin():
            command.downgrade(_alembic_config(conn), "0012")
        downgraded = _synced(engine)
        assert json.loads(downgraded[("t1", "deal", "4")]) == {"name": "A"}
        assert {k: json.loads(v) for k, v in downgraded.items() if k[2] == "1"} == {
            k: json.loads(v) for k, v in original.items() if k[2] == "1"}
    finally:
        engine.dispose()
