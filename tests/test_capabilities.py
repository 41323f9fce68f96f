"""The host's capabilities: the plugin writes only the order fields the host keeps, refuses a
mapping onto one it lacks, and takes progress from the host's milestones.

The worlds here run on the reference host's default capabilities, Ambac Tracker's: orders
without value, currency or order date, with milestones.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from ambac_hubspot_plugin.admin import Admin
from ambac_hubspot_plugin.errors import ConfigError, HostRecordError
from ambac_hubspot_plugin.host import (
    VIEW_INTEGRATIONS,
    HostCapabilities,
    Milestone,
    OrderDraft,
    OrderStatus,
    hookimpl,
)
from ambac_hubspot_plugin.reference_host import ReferenceHost

from ._world import EVERY_FIELD, PluginWorld, open_world, plugin_settings

DEAL = {"dealname": "Brackets", "amount": "1250.50", "deal_currency_code": "eur",
        "closedate": "2026-11-02T00:00:00.000Z"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PluginWorld]:
    """Sandbox + a reference host with Ambac Tracker's capabilities + enabled plugin."""
    with open_world(tmp_path) as world:
        yield world


def _synced(world: PluginWorld, deal: str) -> dict[str, Any]:
    link = world.store.get_link_by_hubspot(world.tenant, str(world.hubspot.portal_id), "deal", deal)
    assert link is not None
    return dict(link.synced)


# ---- order fields the host lacks ---------------------------------------------------------------


def test_values_without_a_host_field_stay_in_the_plugins_records(world):
    """A deal's amount, currency and close date create no host field: the order is made
    without them, and the deal's link keeps them."""
    deal = world.deal(**DEAL)
    assert world.sync().created == 1
    order = world.order_for(deal)
    assert (order.name, order.value, order.currency, order.order_date) == ("Brackets", None, None, None)
    synced = _synced(world, deal)
    assert (synced["value"], synced["currency"], synced["order_date"]) == ("1250.5", "EUR", "2026-11-02")


def test_a_queued_push_of_a_field_the_host_lacks_leaves_the_deal_alone(world):
    """An ``outbound.fields`` job naming ``value`` (queued by a version before capabilities)
    pushes the order without blanking the deal's amount: the host has no value to push."""
    from ambac_hubspot_plugin._job_kinds import FIELDS_KIND

    deal = world.deal(**DEAL)
    assert world.sync().created == 1
    world.runtime.drain()
    order = world.order_for(deal)
    world.store.enqueue(world.tenant, FIELDS_KIND, {"object_type": "order", "host_id": order.id,
                                                    "fields": ["value", "order_date"]})
    world.runtime.drain()
    props = world.hubspot.get_object("deals", deal)
    assert (props["amount"], props["closedate"][:10]) == (DEAL["amount"], DEAL["closedate"][:10])
    assert world.store.dead_letters(world.tenant) == []


@pytest.mark.parametrize("strategy", ["hubspot_wins", "manual", "tracker_wins"])
def test_a_changed_amount_updates_the_plugins_record_and_opens_no_conflict(world, strategy):
    """A linked deal's new amount never reaches the host nor opens a conflict, whatever the
    strategy; the link remembers it."""
    world.configure(conflicts={"default": strategy})
    deal = world.deal(**DEAL)
    world.sync()
    order = world.order_for(deal)
    world.services.update_order(order.id, {"name": "Edited in the host"})
    world.hubspot.update_object("deals", deal, {"amount": "99", "deal_currency_code": "usd"})
    world.sync()
    assert world.runtime.list_conflicts(world.tenant, status=None) == []
    assert world.order_for(deal).value is None
    assert (_synced(world, deal)["value"], _synced(world, deal)["currency"]) == ("99", "USD")


def test_the_deal_preview_lists_what_the_plugin_keeps(world):
    """The preview's draft has no value for the host, and ``kept_by_plugin`` shows it."""
    admin = world.host.create_user(world.tenant, "admin@acme.example")
    world.host.grant(admin, VIEW_INTEGRATIONS)  # previewing reads; it needs view_integrations
    deal = world.deal(**DEAL)
    preview = Admin(world.runtime, world.services).preview_order(admin, deal)
    assert (preview["draft"]["value"], preview["draft"]["currency"]) == (None, None)
    assert preview["kept_by_plugin"] == {"value": "1250.50", "currency": "EUR", "order_date": "2026-11-02"}


def test_creating_from_a_deal_refuses_a_field_the_host_lacks(world):
    """A reviewer's change to a field the host has no place for is refused, naming it."""
    deal = world.deal(**DEAL)
    with pytest.raises(ConfigError, match="no field 'value'"):
        world.runtime.create_order_from_deal(world.tenant, deal, {"value": Decimal(5)})
    assert world.order_for(deal) is None


def test_an_old_conflict_on_a_lacking_field_is_resolved_without_the_host(tmp_path: Path):
    """A conflict recorded while the host kept ``value`` is resolved with HubSpot's value on a
    host that no longer keeps it: the plugin's record takes it; 'ambac' is refused."""
    with open_world(tmp_path, capabilities=EVERY_FIELD) as world:
        world.configure(conflicts={"default": "manual"})
        deal = world.deal(**DEAL)
        world.sync()
        world.services.update_order(world.order_for(deal).id, {"value": Decimal(7)})
        world.hubspot.update_object("deals", deal, {"amount": "99"})
        world.sync()
        (record,) = world.runtime.list_conflicts(world.tenant)
        world.host.capabilities = HostCapabilities()  # the host drops the field
        with pytest.raises(ConfigError, match="no field 'value'"):
            world.runtime.resolve_conflict(world.tenant, record.id, "ambac")
        resolved = world.runtime.resolve_conflict(world.tenant, record.id, "hubspot")
        assert resolved.resolved_value == "99"
        assert world.order_for(deal).value == Decimal(7), "the host's old value is left alone"
        assert _synced(world, deal)["value"] == "99"


# ---- mappings onto fields the host lacks -------------------------------------------------------


def _mapping(table: str, field: str) -> dict[str, Any]:
    return {"strategy": "configurable", "options": {table: {field: {"property": "dealname"}}}}


@pytest.mark.parametrize(("table", "field", "noun"), [
    ("order", "value", "orders"), ("order", "order_date", "orders"),
    ("company", "website", "companies"), ("company", "address.city", "companies")])
def test_saving_a_mapping_onto_a_lacking_field_is_refused_naming_it(world, table, field, noun):
    """Changed settings mapping onto a field the host lacks are refused with the rule's path,
    and the old settings stay."""
    with pytest.raises(ConfigError) as refused:
        world.configure(mapping=_mapping(table, field))
    (path, message), = refused.value.problems.items()
    assert path == f"mapping.options.{table}.{field}"
    assert f"this host's {noun} have no field '{field.split('.')[0]}'" in message
    assert "remove it or map to one of" in message and "'name'" in message
    assert world.host.plugin_settings(world.tenant, "hubspot").get("mapping") is None


def test_enabling_with_a_mapping_onto_a_lacking_field_is_refused(world):
    """Enable checks the mapping against the host too."""
    tenant = world.host.create_tenant("Other Machining")
    with pytest.raises(ConfigError, match=r"mapping\.options\.order\.currency"):
        world.host.enable_plugin(tenant, "hubspot", plugin_settings(
            world.hubspot, mapping=_mapping("order", "currency")))
    assert not world.host.is_plugin_enabled(tenant, "hubspot")


def test_mapping_onto_a_kept_field_or_removing_a_lacking_one_is_accepted(world):
    """Rules onto fields the host keeps are fine, and so is removing a default the host lacks."""
    world.configure(mapping={"strategy": "configurable", "options": {
        "order": {"customer_note": {"property": "dealname"}, "value": {"property": None}}}})
    deal = world.deal(**DEAL)
    world.sync()
    assert world.order_for(deal).customer_note == "Brackets"


# ---- milestones ------------------------------------------------------------------------------


def _props(world: PluginWorld, deal: str) -> dict[str, Any]:
    props = world.hubspot.get_object("deals", deal)
    return {k: props.get(k) for k in ("ambac_progress_percent", "ambac_milestone")}


def test_progress_comes_from_the_orders_milestone(world):
    """An order at step 2 of 3 has 67 % progress and the step's name on its deal; without a
    milestone the status gives it."""
    deal = world.deal(dealname="Housing")
    world.sync()
    world.runtime.drain()
    assert _props(world, deal) == {"ambac_progress_percent": "10", "ambac_milestone": None}
    steps = world.host.create_milestone_template(world.tenant, "Machining", ["Kickoff", "Machining", "Inspection"])
    world.host.set_order_milestone(world.tenant, world.order_for(deal).id, steps[1].id)
    world.runtime.drain()
    assert _props(world, deal) == {"ambac_progress_percent": "67", "ambac_milestone": "Machining"}


def test_a_host_without_milestones_keeps_status_progress(tmp_path: Path):
    """A host saying it has no milestones: progress follows the status, no milestone is pushed."""
    with open_world(tmp_path, capabilities=HostCapabilities(milestones=False)) as world:
        deal = world.deal(dealname="Housing")
        world.sync()
        (step,) = world.host.create_milestone_template(world.tenant, "One", ["Only"])
        world.host.set_order_milestone(world.tenant, world.order_for(deal).id, step.id)
        world.host.set_order_status(world.tenant, world.order_for(deal).id, OrderStatus.IN_PROGRESS)
        world.runtime.drain()
        assert _props(world, deal) == {"ambac_progress_percent": "50", "ambac_milestone": None}


@pytest.mark.parametrize(("position", "count", "percent"), [(1, 1, 100), (1, 3, 33), (2, 3, 67), (1, 8, 12)])
def test_milestone_percent_is_its_place_in_the_template(position, count, percent):
    assert Milestone("m", "Step", position, count).percent == percent


@pytest.mark.parametrize(("position", "count"), [(0, 3), (4, 3), (1, 0), (True, 1)])
def test_a_milestone_out_of_its_template_is_refused(position, count):
    with pytest.raises(ValueError, match=r"position|count"):
        Milestone("m", "Step", position, count)


# ---- the reference host ------------------------------------------------------------------------


class _Updates:
    def __init__(self) -> None:
        self.changed: list[tuple[str, ...]] = []

    @hookimpl
    def ambac_order_updated(self, host: Any, order: Any, changed_fields: tuple[str, ...]) -> None:
        self.changed.append(tuple(changed_fields))


def test_reference_host_milestones_fire_order_updated_and_stay_in_their_tenant(tmp_path: Path):
    """Moving an order to a milestone fires ``ambac_order_updated`` with ``current_milestone``
    (not again for the same one); another tenant's milestone is refused."""
    updates = _Updates()
    with ReferenceHost(tmp_path / "host", load_entrypoints=False, plugins=[updates]) as host:
        tenant, other = host.create_tenant("A"), host.create_tenant("B")
        order = host.create_order(tenant, OrderDraft(name="Bracket"))
        first, second = host.create_milestone_template(tenant, "Steps", ["Cut", "Ship"])
        (foreign,) = host.create_milestone_template(other, "Theirs", ["Elsewhere"])
        moved = host.set_order_milestone(tenant, order.id, second.id)
        host.set_order_milestone(tenant, order.id, second.id)
        assert moved.current_milestone == Milestone(second.id, "Ship", 2, 2)
        assert first == Milestone(first.id, "Cut", 1, 2)
        assert updates.changed == [("current_milestone",)]
        with pytest.raises(HostRecordError) as refused:
            host.set_order_milestone(tenant, order.id, foreign.id)
        assert refused.value.field == "current_milestone"
        assert host.services(tenant).get_order(order.id) == moved


@pytest.mark.parametrize(("field", "value"), [
    ("value", Decimal(1)), ("currency", "EUR"), ("order_date", date(2026, 1, 2))])
def test_reference_host_refuses_order_fields_it_lacks(tmp_path: Path, field, value):
    with ReferenceHost(tmp_path / "host", load_entrypoints=False) as host:
        services = host.services(host.create_tenant("A"))
        with pytest.raises(HostRecordError) as refused:
            services.create_order(attrs.evolve(OrderDraft(name="Bracket"), **{field: value}))
        assert refused.value.field == field
        order = services.create_order(OrderDraft(name="Bracket"))
        with pytest.raises(HostRecordError):
            services.update_order(order.id, {field: value})
        assert services.list_orders() == [order]


def test_an_old_file_with_text_milestones_opens_with_a_template(tmp_path: Path):
    """An earlier version kept ``current_milestone`` as text: each tenant's texts become the
    steps of one template, in order of first use, and the orders point at them."""
    with ReferenceHost(tmp_path / "host", load_entrypoints=False) as first:
        tenant = first.create_tenant("A")
        orders = [first.create_order(tenant, OrderDraft(name=f"O{i}")) for i in range(3)]
    with contextlib.closing(sqlite3.connect(tmp_path / "host" / "host.sqlite3")) as conn, conn:
        conn.execute("ALTER TABLE orders DROP COLUMN milestone_id")  # the earlier version's table
        conn.execute("ALTER TABLE orders ADD COLUMN current_milestone TEXT NOT NULL DEFAULT ''")
        for order, text in zip(orders, ["Cutting", "Welding", "Cutting"], strict=True):
            conn.execute("UPDATE orders SET current_milestone = ? WHERE id = ?", (text, order.id))
    with ReferenceHost(tmp_path / "host", load_entrypoints=False) as second:
        services = second.services(tenant)
        read = [services.get_order(o.id).current_milestone for o in orders]
        assert [(m.name, m.position, m.count) for m in read] == [
            ("Cutting", 1, 2), ("Welding", 2, 2), ("Cutting", 1, 2)]
        made = services.create_order(OrderDraft(name="New"))
        assert made.current_milestone is None
