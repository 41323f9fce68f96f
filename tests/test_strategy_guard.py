"""What another package's strategy does wrong on one record fails that record only, naming the
strategy: the rest of the run goes on, nothing is half-written, and the audit trail claims only
decisions that were applied. Settings that could never apply are refused when saved."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.host import hookimpl
from ambac_hubspot_plugin.mapping import DefaultMapping

from ._world import PluginWorld, open_world, plugin_settings


def _registering(name: str, factory: Callable[..., Any], kind: str = "mapping") -> types.ModuleType:
    """A module of another package that registers ``factory`` as the ``kind`` strategy ``name``."""
    module = types.ModuleType(f"acme_{name}")

    @hookimpl(specname=f"hubspot_register_{kind}_strategies")
    def register(register: Callable[[str, Callable[..., Any]], None]) -> None:
        register(name, factory)

    module.register = register  # type: ignore[attr-defined]
    return module


class Buggy(DefaultMapping):
    """Raises (a bug of its own, not a MappingError) on deals named 'boom', answers None on 'none'."""

    def order_fields(self, context):  # type: ignore[no-untyped-def]
        name = context.deal.properties.get("dealname")
        if name == "boom":
            raise KeyError("shop_note")
        if name == "none":
            return None
        return super().order_fields(context)


class Archiving(DefaultMapping):
    """Sets the order's ``archived`` flag and external id: fields no mapping may set."""

    deal_properties = (*DefaultMapping.deal_properties, "archive_me")

    def order_fields(self, context):  # type: ignore[no-untyped-def]
        fields = dict(super().order_fields(context))
        if context.deal.properties.get("archive_me"):
            fields.update(archived=True, external_id="hijacked")
        return fields


class ContactPhone(DefaultMapping):
    """Written for an older API: sets a contact ``phone``, which host contacts do not have."""

    contact_properties = (*DefaultMapping.contact_properties, "phone")

    def contact_fields(self, contact):  # type: ignore[no-untyped-def]
        return {**super().contact_fields(contact), "phone": contact.properties.get("phone") or ""}


class AnswersText:
    """A conflict strategy answering a bare string instead of a Decision."""

    def __init__(self, options: object) -> None:
        pass

    def decide(self, conflict: object) -> str:
        return "hubspot"


@pytest.fixture
def strategy_world(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``open(*plugins, **settings)``: a world with these packages' strategies, these settings."""
    opened: list[Any] = []

    def open_(*plugins: object, **settings: Any) -> PluginWorld:
        context = open_world(tmp_path / str(len(opened)), plugins=plugins,
                             settings=lambda hubspot: plugin_settings(hubspot, **settings))
        opened.append(context)
        return context.__enter__()

    yield open_
    for context in reversed(opened):
        context.__exit__(None, None, None)


def _log(world: PluginWorld) -> list[str]:
    return [entry.message for entry in world.store.read_log(world.tenant, limit=200).entries]


@pytest.mark.parametrize("bad_name", ["boom", "none"])
def test_a_strategy_failing_on_one_deal_fails_that_deal_and_names_the_strategy(strategy_world, bad_name):
    world = strategy_world(_registering("buggy", Buggy), mapping={"strategy": "buggy"})
    bad = world.deal(dealname=bad_name)
    good = world.deal(dealname="Brackets")
    result = world.sync()
    assert (result.created, result.failed) == (1, 1)
    assert world.order_for(good) is not None and world.order_for(bad) is None
    (line,) = [m for m in _log(world) if f"deal {bad}" in m]
    assert "mapping strategy 'buggy'" in line
    assert ("KeyError" if bad_name == "boom" else "NoneType") in line
    # Later deals keep syncing: the checkpoint moves on past the failed one.
    later = world.deal(dealname="Later")
    assert world.sync().created == 1 and world.order_for(later) is not None


def test_fields_no_mapping_may_set_are_refused_on_update_as_on_create(strategy_world):
    world = strategy_world(_registering("archiving", Archiving), mapping={"strategy": "archiving"})
    deal = world.deal(dealname="Brackets")
    assert world.sync().created == 1
    order = world.order_for(deal)
    world.hubspot.update_object("deals", deal, {"archive_me": "yes", "dealname": "Renamed"})
    assert world.sync().failed == 1
    after = world.services.get_order(order.id)
    assert (after.archived, after.external_id, after.name) == (False, order.external_id, "Brackets")
    assert any("archived" in m and "does not own" in m for m in _log(world))
    fresh = world.deal(dealname="Fresh", archive_me="yes")
    assert world.sync().failed >= 1 and world.order_for(fresh) is None


def test_a_contact_field_hosts_lack_fails_its_deal_not_the_run(strategy_world):
    world = strategy_world(_registering("cphone", ContactPhone), mapping={"strategy": "cphone"})
    contact = world.contact(email="a@acme.example", phone="555")
    with_contact = world.deal(dealname="With contact", contacts=[contact])
    plain = world.deal(dealname="Plain")
    result = world.sync()
    assert (result.created, result.failed) == (1, 1)
    assert world.order_for(plain) is not None and world.order_for(with_contact) is None
    assert any("phone" in m and "cphone" in m for m in _log(world))


def test_a_conflict_strategy_answering_no_decision_fails_that_deal_only(strategy_world):
    world = strategy_world(_registering("texty", AnswersText, "conflict"), conflicts={"default": "texty"})
    deal = world.deal(dealname="Brackets")
    assert world.sync().created == 1
    order = world.order_for(deal)
    world.services.update_order(order.id, {"name": "Host name"})
    world.hubspot.update_object("deals", deal, {"dealname": "HubSpot name"})
    other = world.deal(dealname="Other")
    result = world.sync()
    assert (result.created, result.failed) == (1, 1)
    assert world.order_for(other) is not None
    assert world.services.get_order(order.id).name == "Host name"
    assert world.runtime.list_conflicts(world.tenant, status=None) == []
    assert any("conflict strategy 'texty'" in m and "not a Decision" in m for m in _log(world))


@pytest.mark.parametrize("key", ["order.nmae", "deal.amount", "order", "invoice.name", "order.archived"])
def test_a_per_field_key_that_names_no_field_is_refused_when_saved(strategy_world, key):
    world = strategy_world()
    with pytest.raises(ConfigError) as raised:
        world.configure(conflicts={"default": "hubspot_wins", "per_field": {key: "manual"}})
    assert f"conflicts.per_field.{key}" in raised.value.problems
    world.configure(conflicts={"default": "hubspot_wins",
                               "per_field": {"order.name": "manual", "company.website": "tracker_wins",
                                             "contact.email": "manual"}})


def test_a_saved_per_field_key_naming_no_field_still_starts_the_tenant(strategy_world, caplog):
    """Settings saved before such keys were refused (the schema's own old example,
    ``deal.amount``) must not stop the tenant when a process takes it up: the key is ignored,
    and Python's log says so."""
    world = strategy_world()
    raw = {**world.settings, "conflicts": {"default": "hubspot_wins", "per_field": {"deal.amount": "manual"}}}
    world.runtime.take_up(world.runtime.tenant(world.tenant).host, world.tenant, raw)
    assert world.runtime.tenant(world.tenant).settings.conflicts.per_field == {"deal.amount": "manual"}
    assert any("conflicts.per_field.deal.amount is ignored" in r.getMessage() for r in caplog.records)
    world.deal(dealname="Brackets")
    assert world.sync().created == 1


def test_no_audit_row_claims_a_decision_the_host_refused_to_apply(strategy_world):
    """A name conflict decided for HubSpot, in an update the host refuses (an order number in
    use): the name is not applied, so no audit row says it was, on the run or its retries."""
    world = strategy_world(mapping={"strategy": "configurable",
                                    "options": {"order": {"order_number": {"property": "po_number"}}}})
    world.deal(dealname="First", po_number="PO-1")
    deal = world.deal(dealname="Brackets", po_number="PO-2")
    assert world.sync().created == 2
    order = world.order_for(deal)
    world.services.update_order(order.id, {"name": "Host name"})
    world.hubspot.update_object("deals", deal, {"dealname": "HubSpot name", "po_number": "PO-1"})
    assert world.sync().failed == 1
    world.runtime.drain()
    assert world.services.get_order(order.id).name == "Host name"
    assert world.runtime.list_conflicts(world.tenant, status=None) == []
    # Once the host takes the update, the decision is applied and recorded, once.
    world.hubspot.update_object("deals", deal, {"po_number": "PO-3"})
    assert world.sync().updated == 1
    assert world.services.get_order(order.id).name == "HubSpot name"
    (row,) = world.runtime.list_conflicts(world.tenant, status=None)
    assert (row.field, row.decision) == ("name", "hubspot")


class TitleMapping(DefaultMapping):
    """Names orders from the custom deal property ``project_title``; says nothing of where."""

    deal_properties = (*DefaultMapping.deal_properties, "project_title")

    def order_fields(self, context):  # type: ignore[no-untyped-def]
        fields = dict(super().order_fields(context))
        fields["name"] = (context.deal.properties.get("project_title") or "").strip() or fields["name"]
        return fields


class SaysWhere(TitleMapping):
    def hubspot_property_for(self, field: str) -> str | None:
        return {"name": "project_title"}.get(field)


@pytest.mark.parametrize("strategy", [TitleMapping, SaysWhere])
def test_a_host_value_that_won_goes_where_the_strategy_reads_it_or_nowhere(strategy_world, strategy):
    """tracker_wins on a name another package's strategy reads from ``project_title``: without
    hubspot_property_for the deal's own name is never overwritten (a warning says why); with it
    the host's value lands in ``project_title``."""
    world = strategy_world(_registering("title", strategy), mapping={"strategy": "title"},
                           conflicts={"default": "tracker_wins"})
    world.hubspot.add_property("deals", "project_title")
    deal = world.deal(dealname="Q3 deal - Acme", project_title="Manifold")
    assert world.sync().created == 1
    order = world.order_for(deal)
    world.services.update_order(order.id, {"name": "Manifold rev B"})
    world.hubspot.update_object("deals", deal, {"project_title": "Manifold rev C"})
    world.sync()
    world.runtime.drain()
    props = world.hubspot.get_object("deals", deal)
    assert props["dealname"] == "Q3 deal - Acme"
    if strategy is SaysWhere:
        assert props["project_title"] == "Manifold rev B"
    else:
        assert props["project_title"] == "Manifold rev C"
        assert any("hubspot_property_for" in m and "'title'" in m for m in _log(world))


class RaisingWhere(TitleMapping):
    def hubspot_property_for(self, field: str) -> str | None:
        return {"name": "project_title"}[field]  # a KeyError for any other field


def test_a_hubspot_property_for_that_raises_fails_its_deal_not_the_run(strategy_world):
    world = strategy_world(_registering("where", RaisingWhere), mapping={"strategy": "where"})
    world.hubspot.add_property("deals", "project_title")
    deal = world.deal(dealname="Q3 deal - Acme", project_title="Manifold", amount="10")
    assert world.sync().created == 1
    world.hubspot.update_object("deals", deal, {"project_title": "Manifold rev C"})
    other = world.deal(dealname="Other")
    result = world.sync()
    assert (result.created, result.failed) == (1, 1) and world.order_for(other) is not None
    assert any("mapping strategy 'where'" in m and "KeyError" in m for m in _log(world))
