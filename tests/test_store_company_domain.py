"""Migration 0009 and the store's company domains: each company link keeps its HubSpot domain in
an indexed column, filled from the links' synced values on upgrade, kept current by the store,
and searched when the host's companies have no website; a link can follow a company's new
version. On SQLite and PostgreSQL."""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from ambac_hubspot_plugin.store import (
    HEAD,
    LinkConflictError,
    create_store_engine,
    current_revision,
    migrate,
    open_store,
)
from ambac_hubspot_plugin.store._engine import _alembic_config
from tests._store_support import store_url  # noqa: F401  # the fixture is used by name

INDEX = "ix_hubspot_links_match_domain"


def _link(hubspot_id: str, host_id: str, synced: str, object_type: str = "company",
          tenant_id: str = "t1") -> dict[str, object]:
    now = datetime.now(UTC).replace(tzinfo=None)
    return dict(tenant_id=tenant_id, portal_id="p1", object_type=object_type, hubspot_id=hubspot_id,
                host_type="company" if object_type == "company" else "order", host_id=host_id,
                synced=synced, created_at=now, updated_at=now)


@pytest.fixture
def old_store(store_url: str) -> Iterator[sa.Engine]:
    """A store at revision 0008 with company links (with and without a website) and a deal link."""
    engine = create_store_engine(store_url)
    try:
        migrate(engine, "0008")
        table = sa.Table("hubspot_links", sa.MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [
                _link("1", "c-a", '{"name":"Acme","website":"https://www.Acme.example/about"}'),
                _link("2", "c-b", '{"name":"Blank","website":""}'),
                _link("3", "c-c", '{"name":"No site"}'),
                _link("4", "c-d", '{"website":42}'),
                _link("5", "o-1", '{"website":"deal.example"}', object_type="deal"),
                _link("6", "c-e", '["not", "an object"]'),
            ])
        yield engine
    finally:
        engine.dispose()


def _domains(engine: sa.Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT hubspot_id, match_domain FROM hubspot_links"))
        return {str(hubspot_id): domain for hubspot_id, domain in rows}


def _indexes(engine: sa.Engine) -> set[str]:
    return {str(ix["name"]) for ix in sa.inspect(engine).get_indexes("hubspot_links")}


def test_upgrade_fills_each_company_links_domain_from_its_synced_website(old_store: sa.Engine) -> None:
    """Upgrading keeps every link and sets match_domain to the normalised website of company
    links that have one (NULL otherwise, and for other objects), with its index."""
    migrate(old_store)
    assert current_revision(old_store) == HEAD
    assert _domains(old_store) == {"1": "acme.example", "2": None, "3": None, "4": None, "5": None, "6": None}
    assert INDEX in _indexes(old_store)


def test_downgrade_drops_the_column_and_keeps_every_link(old_store: sa.Engine) -> None:
    """Downgrading to 0008 removes the column and index; the links and their synced values stay."""
    migrate(old_store)
    with old_store.connect() as conn, conn.begin():
        command.downgrade(_alembic_config(conn), "0008")
    assert "match_domain" not in {c["name"] for c in sa.inspect(old_store).get_columns("hubspot_links")}
    assert INDEX not in _indexes(old_store)
    with old_store.connect() as conn:
        synced = conn.execute(sa.text("SELECT synced FROM hubspot_links WHERE hubspot_id = '1'")).scalar_one()
    assert "Acme.example" in synced


def test_the_store_keeps_company_domains_current_and_finds_links_by_them(store_url: str) -> None:
    """Links created or re-synced keep their domain; the search is per tenant, portal and
    normalised domain, oldest link first; other objects never match."""
    store = open_store(store_url)
    try:
        first, second, deal = store.create_links("t1", "p1", [
            ("company", "1", "company", "c-1", {"website": "acme.example"}),
            ("company", "2", "company", "c-2", {"website": "https://www.ACME.example"}),
            ("deal", "3", "order", "o-1", {"website": "acme.example"}),
        ])
        assert first is not None and second is not None and deal is not None
        store.create_link("t2", "p1", "company", "1", "company", "c-1", synced={"website": "acme.example"})
        store.create_link("t1", "p2", "company", "1", "company", "c-9", synced={"website": "acme.example"})
        assert [link.host_id for link in store.company_links_by_domain("t1", "p1", "http://acme.example/x")] == [
            "c-1", "c-2"]
        assert store.company_links_by_domain("t1", "p1", "") == []
        store.update_link_synced(second.id, {"website": "other.example"})
        assert [link.host_id for link in store.company_links_by_domain("t1", "p1", "acme.example")] == ["c-1"]
        assert [link.host_id for link in store.company_links_by_domain("t1", "p1", "other.example")] == ["c-2"]
        store.update_link_synced(second.id, {"name": "No site any more"})
        assert store.company_links_by_domain("t1", "p1", "other.example") == []
    finally:
        store.close()


def test_a_link_follows_a_new_version_of_its_host_record(store_url: str) -> None:
    """move_link_host re-points a link to the host record's new id; an id linked already is a
    LinkConflictError and the link stays."""
    store = open_store(store_url)
    try:
        link = store.create_link("t1", "p1", "company", "1", "company", "c-1", synced={"website": "a.example"})
        store.create_link("t1", "p1", "company", "2", "company", "c-taken")
        moved = store.move_link_host(link.id, "c-1-v2")
        assert (moved.id, moved.hubspot_id, moved.host_id) == (link.id, "1", "c-1-v2")
        assert store.get_link_by_host("t1", "company", "c-1") is None
        assert [f.host_id for f in store.company_links_by_domain("t1", "p1", "a.example")] == ["c-1-v2"]
        with pytest.raises(LinkConflictError):
            store.move_link_host(link.id, "c-taken")
        assert store.get_link_by_hubspot("t1", "p1", "company", "1").host_id == "c-1-v2"
    finally:
        store.close()


def test_the_open_conflicts_of_a_record_follow_its_new_version(store_url: str) -> None:
    """A conflict held on the old version moves with the link (so it resolves, and the next
    sync's conflict on the field folds into it); a decided one keeps its version."""
    from ambac_hubspot_plugin.store import ConflictDraft

    def conflict(field: str, decision: str, host_id: str = "c-1") -> Any:
        return store.record_conflict(ConflictDraft(
            tenant_id="t1", portal_id="p1", object_type="company", host_id=host_id, hubspot_type="company",
            hubspot_id="1", field=field, hubspot_value="B", host_value="A", last_synced="0",
            hubspot_changed_at=None, host_changed_at=None, strategy="manual", decision=decision))

    store = open_store(store_url)
    try:
        link = store.create_link("t1", "p1", "company", "1", "company", "c-1")
        held, decided = conflict("description", "hold"), conflict("name", "hubspot")
        store.move_link_host(link.id, "c-1-v2")
        assert [c.id for c in store.list_conflicts("t1", host_id="c-1-v2")] == [held.id]
        assert store.get_conflict("t1", decided.id).host_id == "c-1"
        assert conflict("description", "hold", host_id="c-1-v2").id == held.id, "the next sync's folds in"
    finally:
        store.close()


def test_upgrade_0012_gives_ascii_spelled_domains_their_unicode_form(store_url: str) -> None:
    """Links stored before 0012 with a punycode domain match the Unicode spelling after it;
    other domains are left alone, and so is every row by the downgrade."""
    engine = create_store_engine(store_url)
    try:
        migrate(engine, "0011")
        table = sa.Table("hubspot_links", sa.MetaData(), autoload_with=engine)
        rows = [("1", "xn--bcher-kva.example"), ("2", "acme.example"), ("3", "bücher.example"), ("4", None),
                ("5", "xn--zz.example")]
        with engine.begin() as conn:
            conn.execute(table.insert(), [{**_link(h, f"c-{h}", "{}"), "match_domain": d} for h, d in rows])
            conn.execute(table.insert(), [{**_link("6", "o-6", "{}", object_type="deal"),
                                           "match_domain": "xn--bcher-kva.example"}])
        migrate(engine)
        after = {"1": "bücher.example", "2": "acme.example", "3": "bücher.example", "4": None,
                 "5": "xn--zz.example", "6": "xn--bcher-kva.example"}
        assert _domains(engine) == after
        with engine.connect() as conn, conn.begin():
            command.downgrade(_alembic_config(conn), "0011")
        assert _domains(engine) == after
    finally:
        engine.dispose()
    store = open_store(store_url)
    try:
        assert [link.host_id for link in store.company_links_by_domain("t1", "p1", "xn--bcher-kva.example")] == [
            "c-1", "c-3"]
    finally:
        store.close()
