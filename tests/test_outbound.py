"""Status back to HubSpot: the outbound push through the real SDK, the sandbox and the real store."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa

from ambac_hubspot_plugin._deal_properties import DEAL_PROPERTIES, ensure_hubspot_properties
from ambac_hubspot_plugin._retry import RetryPolicy
from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.host import OrderStatus, Shipment
from ambac_hubspot_plugin.sandbox import Sandbox
from ambac_hubspot_plugin.store import JobState
from ambac_hubspot_plugin.store._schema import jobs as jobs_table

from ._world import PluginWorld, open_world, plugin_settings

BATCH_UPDATE = "/crm/objects/2026-09/deals/batch/update"
NOTES_BATCH = "/crm/objects/2026-09/notes/batch/create"


@attrs.define
class World(PluginWorld):
    """The plugin world, with helpers for reading what reached HubSpot."""

    def linked_orders(self, count: int) -> list[tuple[str, object]]:
        """Deals won in HubSpot and synced into orders, the new orders pushed to their deals:
        ``[(deal id, order)]``."""
        deals = [self.deal(dealname=f"Deal {i}") for i in range(count)]
        assert self.runtime.run_sync(self.tenant).created == count
        self.runtime.drain()
        return [(d, self.order_for(d)) for d in deals]

    def deal_props(self, deal_id: str) -> dict:
        """The deal's properties as HubSpot holds them now."""
        return self.hubspot.get_object("deals", deal_id)

    def calls(self, path: str) -> int:
        return sum(1 for r in self.hubspot.requests if r.path == path and r.status < 300)

    def make_due(self) -> None:
        """Move every backed-off job's retry time to now (what an hour of waiting would do)."""
        with self.store.engine.begin() as conn:
            conn.execute(sa.update(jobs_table).values(run_after=datetime.now(UTC) - timedelta(seconds=1)))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Sandbox + reference host + enabled plugin with a public URL and notes on status changes."""
    def settings(hubspot: Sandbox) -> dict:
        return plugin_settings(hubspot, public_base_url="https://tracker.example.com",
                               outbound={"notes_on_status_change": True})

    with open_world(tmp_path, World, settings=settings) as world:
        yield world


def _sandbox_notes(world: World) -> list[dict]:
    """The portal's notes, oldest first (ids grow in creation order)."""
    ids = sorted(world.hubspot.portal.objects["notes"], key=int)
    return [world.hubspot.get_object("notes", note_id) for note_id in ids]


def test_enable_creates_every_custom_deal_property_in_our_group_once(world):
    """The enable path made the group and all nine properties; running setup again creates none."""
    for spec in DEAL_PROPERTIES:
        assert world.hubspot.portal.properties["deals"][spec.name]["groupName"] == "ambac_tracker"
    assert ensure_hubspot_properties(world.runtime.tenant(world.tenant).client) == []


def test_status_shipment_and_link_reach_the_deal(world):
    """Status, progress, completion date, shipment and order link land in the deal properties."""
    ((deal, order),) = world.linked_orders(1)
    world.host.edit_order(world.tenant, order.id, estimated_completion=date(2026, 12, 24))
    world.host.set_order_status(world.tenant, order.id, OrderStatus.IN_PROGRESS)
    world.host.ship_order(world.tenant, order.id,
                          Shipment("UPS", "1Z999", "https://ups.example/1Z999", date(2026, 12, 1)))
    world.runtime.drain()
    props = world.deal_props(deal)
    assert {k: props[k] for k in props if k.startswith("ambac_")} == {
        "ambac_order_number": order.order_number, "ambac_order_status": "IN_PROGRESS",
        "ambac_progress_percent": "50", "ambac_completion_date": "2026-12-24",
        "ambac_carrier": "UPS", "ambac_tracking_number": "1Z999",
        "ambac_tracking_url": "https://ups.example/1Z999", "ambac_ship_date": "2026-12-01",
        "ambac_order_link": f"https://tracker.example.com/orders/{order.id}"}
    assert world.store.depths(world.tenant) == {}


def test_a_new_order_reaches_its_deal_without_a_host_edit(world):
    """A sync that creates an order queues its push: number, status, progress and link land on
    the deal with no host event, and without a status-change note."""
    world.configure(stage_status_map={"closedwon": "IN_PROGRESS"})
    deal = world.deal(dealname="Fresh deal")
    assert world.sync().created == 1
    order = world.order_for(deal)
    world.runtime.drain()
    props = world.deal_props(deal)
    assert {k: props.get(k) for k in ("ambac_order_number", "ambac_order_status",
                                      "ambac_progress_percent", "ambac_order_link")} == {
        "ambac_order_number": order.order_number, "ambac_order_status": "IN_PROGRESS",
        "ambac_progress_percent": "50",
        "ambac_order_link": f"https://tracker.example.com/orders/{order.id}"}
    assert world.calls(NOTES_BATCH) == 0 and _sandbox_notes(world) == []
    assert world.store.depths(world.tenant) == {}


def test_many_changes_to_one_order_become_one_update_with_the_latest_state(world):
    """Ten status changes and edits of one order make one batch update carrying the last state."""
    ((deal, order),) = world.linked_orders(1)
    world.hubspot.clear_requests()
    statuses = [OrderStatus.IN_PROGRESS, OrderStatus.ON_HOLD, OrderStatus.IN_PROGRESS] * 3 + [OrderStatus.COMPLETED]
    steps = world.host.create_milestone_template(world.tenant, "Ten steps", [f"step {i}" for i in range(10)])
    for status, step in zip(statuses, steps, strict=True):
        world.host.set_order_status(world.tenant, order.id, status)
        world.host.set_order_milestone(world.tenant, order.id, step.id)
    world.runtime.drain()
    assert world.calls(BATCH_UPDATE) == 1
    props = world.deal_props(deal)
    assert (props["ambac_order_status"], props["ambac_milestone"], props["ambac_progress_percent"]) == (
        "COMPLETED", "step 9", "100")
    assert world.calls(NOTES_BATCH) == 1 and len(_sandbox_notes(world)) == 1, "coalesced changes make one note"


def test_pushes_for_many_deals_go_out_in_batches_of_at_most_100(world):
    """250 orders changed at once cost ceil(250/100) = 3 batch updates, and every deal is updated."""
    world.configure(outbound={"notes_on_status_change": False})
    pairs = world.linked_orders(250)
    world.hubspot.clear_requests()
    for _deal, order in pairs:
        world.host.set_order_status(world.tenant, order.id, OrderStatus.COMPLETED)
    world.runtime.drain()
    assert world.calls(BATCH_UPDATE) == math.ceil(250 / 100)
    assert {world.deal_props(d)["ambac_order_status"] for d, _o in pairs} == {"COMPLETED"}


def test_deal_stage_moves_by_the_status_stage_map(world):
    """A status with a stage in the map moves the deal; a status without one leaves it alone."""
    world.configure(status_stage_map={"default": {"CANCELLED": "closedlost"}})
    ((deal, order),) = world.linked_orders(1)
    world.host.set_order_status(world.tenant, order.id, OrderStatus.IN_PROGRESS)
    world.runtime.drain()
    assert world.deal_props(deal)["dealstage"] == "closedwon"
    world.host.set_order_status(world.tenant, order.id, OrderStatus.CANCELLED)
    world.runtime.drain()
    assert world.deal_props(deal)["dealstage"] == "closedlost"


def test_unknown_stage_in_the_status_stage_map_fails_only_that_stage_move(world):
    """A stage id the pipelines API does not list fails the status job with a message naming
    the choices; the deal's other properties, and the other orders of the same push, go out."""
    world.configure(status_stage_map={"default": {"COMPLETED": "nope"}})
    (deal, order), (other_deal, other) = world.linked_orders(2)
    world.runtime.drain()
    stage = world.deal_props(deal)["dealstage"]
    world.host.set_order_status(world.tenant, order.id, OrderStatus.COMPLETED)
    world.host.ship_order(world.tenant, other.id, Shipment("UPS", "1Z999", "", date(2026, 12, 1)))
    world.runtime.drain()
    (job,) = world.store.claim("inspect", kinds=["host.order.status_changed"]) or [None]
    assert job is None  # it is backing off, not due
    with world.store.engine.connect() as conn:
        (row,) = conn.execute(sa.select(jobs_table.c.last_error).where(
            jobs_table.c.kind == "host.order.status_changed")).all()
    assert "nope" in row[0] and "closedwon" in row[0]
    props = world.deal_props(deal)
    assert (props["ambac_order_status"], props["dealstage"]) == ("COMPLETED", stage)
    assert world.deal_props(other_deal)["ambac_tracking_number"] == "1Z999"
    # The stage is added in HubSpot: the retry finds it (the stages are read again), no restart.
    with world.hubspot.portal.lock:
        stages = world.hubspot.portal.pipelines["default"]["stages"]
        stages.append({**stages[-1], "id": "nope", "label": "Nope", "displayOrder": len(stages)})
    world.make_due()
    world.runtime.drain()
    assert world.deal_props(deal)["dealstage"] == "nope" and world.store.depths(world.tenant) == {}


def test_orders_are_not_pushed_when_the_direction_is_hubspot_to_ambac(world):
    """directions.orders = hubspot_to_ambac: host changes are consumed without any HubSpot write."""
    world.configure(directions={"orders": "hubspot_to_ambac"})
    ((deal, order),) = world.linked_orders(1)
    world.hubspot.clear_requests()
    world.host.set_order_status(world.tenant, order.id, OrderStatus.COMPLETED)
    world.runtime.drain()
    assert world.calls(BATCH_UPDATE) == 0 and not world.deal_props(deal).get("ambac_order_status")
    assert world.store.depths(world.tenant) == {}


def test_companies_are_pushed_only_when_the_direction_sends_them(world):
    """By default company edits stay in the host; with companies = both they reach HubSpot."""
    company = world.hubspot.add_object("companies", {"name": "Acme", "domain": "acme.example"})
    deal = world.hubspot.add_object("deals", {"dealname": "D", "pipeline": "default", "dealstage": "closedwon"},
                                    {"companies": [company]})
    world.runtime.run_sync(world.tenant)
    external_id = f"hubspot:{world.hubspot.portal_id}:deal:{deal}"
    order = world.host.services(world.tenant).find_order_by_external_id(external_id)
    world.host.save_company(world.tenant, order.company_id, name="Acme Renamed")
    world.runtime.drain()
    assert world.hubspot.get_object("companies", company)["name"] == "Acme"
    world.configure(directions={"companies": "both"})
    world.host.save_company(world.tenant, order.company_id, name="Acme Again")
    world.runtime.drain()
    assert world.hubspot.get_object("companies", company)["name"] == "Acme Again"


def test_a_company_push_carries_only_the_fields_the_host_keeps(world):
    """The real host's companies have no website, phone or address: a company push sends the
    name and leaves HubSpot's domain, phone and address as they are (never blanks them)."""
    world.configure(directions={"companies": "both"})
    company = world.hubspot.add_object("companies", {"name": "Acme", "domain": "acme.example",
                                                     "phone": "+1 555 0100", "city": "Springfield"})
    deal = world.hubspot.add_object("deals", {"dealname": "D", "pipeline": "default", "dealstage": "closedwon"},
                                    {"companies": [company]})
    world.runtime.run_sync(world.tenant)
    order = world.host.services(world.tenant).find_order_by_external_id(
        f"hubspot:{world.hubspot.portal_id}:deal:{deal}")
    world.host.save_company(world.tenant, order.company_id, name="Acme Renamed")
    world.runtime.drain()
    stored = world.hubspot.get_object("companies", company)
    assert (stored["name"], stored["domain"], stored["phone"], stored["city"]) == (
        "Acme Renamed", "acme.example", "+1 555 0100", "Springfield")


def test_a_sync_reading_back_our_own_stage_move_keeps_the_hosts_newer_status(world):
    """Cancelled, pushed (closedlost); taken back, but that push waits out a 503; the sync
    meanwhile reads closedlost. That is our own write, not a person's edit: the host keeps
    IN_PROGRESS (no conflict), and the retried push moves the deal back to closedwon."""
    from ambac_hubspot_plugin._retry import RetryPolicy

    world.runtime.client_overrides = {"retry": RetryPolicy(max_attempts=1)}
    world.configure(stage_status_map={"closedwon": "IN_PROGRESS", "closedlost": "CANCELLED"},
                    status_stage_map={"default": {"IN_PROGRESS": "closedwon", "CANCELLED": "closedlost"}})
    deal = world.deal(dealname="D")
    assert world.sync().created == 1
    order = world.order_for(deal)
    world.runtime.drain()
    world.host.set_order_status(world.tenant, order.id, OrderStatus.CANCELLED)
    world.runtime.drain()
    assert world.deal_props(deal)["dealstage"] == "closedlost"
    world.hubspot.faults.fail_next(1, status=503, path_prefix=BATCH_UPDATE)
    world.host.set_order_status(world.tenant, order.id, OrderStatus.IN_PROGRESS)
    world.runtime.drain()
    world.sync()
    assert world.services.get_order(order.id).order_status is OrderStatus.IN_PROGRESS
    assert world.runtime.list_conflicts(world.tenant, status=None) == []
    world.make_due()
    world.runtime.drain()
    assert world.deal_props(deal)["dealstage"] == "closedwon"
    # A person's later move in HubSpot is still a HubSpot change.
    world.hubspot.update_object("deals", deal, {"dealstage": "closedlost"})
    world.sync()
    assert world.services.get_order(order.id).order_status is OrderStatus.CANCELLED


def test_an_older_shipments_retry_never_overwrites_a_newer_shipment(world):
    """Shipment 1's push waits out a 503; shipment 2 lands meanwhile. The retry of shipment 1
    must not put the older tracking number back on the deal: it is done, and the log says why."""
    world.runtime.client_overrides = {"retry": RetryPolicy(max_attempts=1)}
    world.configure()
    ((deal, order),) = world.linked_orders(1)
    world.hubspot.faults.fail_next(1, status=503, path_prefix=BATCH_UPDATE)
    world.host.ship_order(world.tenant, order.id, Shipment("UPS", "OLD-1", "", date(2026, 12, 1)))
    world.runtime.drain()
    assert "ambac_tracking_number" not in world.deal_props(deal) or \
        world.deal_props(deal)["ambac_tracking_number"] in (None, "")
    world.host.ship_order(world.tenant, order.id, Shipment("DHL", "NEW-2", "", date(2026, 12, 3)))
    world.runtime.drain()  # shipment 1 is backed off; shipment 2 goes out alone
    assert world.deal_props(deal)["ambac_tracking_number"] == "NEW-2"
    world.make_due()
    world.runtime.drain()
    props = world.deal_props(deal)
    assert (props["ambac_carrier"], props["ambac_tracking_number"], props["ambac_ship_date"]) == (
        "DHL", "NEW-2", "2026-12-03")
    assert world.store.depths(world.tenant) == {}, "the older shipment's job is done, not retried"
    assert world.store.dead_letters(world.tenant) == []
    lines = [entry.message for entry in world.store.read_log(world.tenant).entries]
    assert any("OLD-1" in line and "newer shipment" in line for line in lines), lines
    # A shipment recorded later still lands (the mark only holds back older ones).
    world.host.ship_order(world.tenant, order.id, Shipment("FedEx", "NEWER-3", "", date(2026, 12, 5)))
    world.runtime.drain()
    assert world.deal_props(deal)["ambac_tracking_number"] == "NEWER-3"


def test_values_we_wrote_are_recognised_as_echoes_and_others_are_not(world):
    """is_echo is true for each value we wrote (in HubSpot's webhook spelling too), false otherwise."""
    ((deal, order),) = world.linked_orders(1)
    world.host.ship_order(world.tenant, order.id, Shipment("DHL", "JD01", "", date(2026, 12, 1)))
    world.runtime.drain()
    echo = world.runtime.is_echo
    assert echo(world.tenant, "deal", deal, "ambac_carrier", "DHL")
    assert echo(world.tenant, "deal", deal, "ambac_order_number", order.order_number)
    midnight_ms = str(int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000))
    assert echo(world.tenant, "deal", deal, "ambac_ship_date", midnight_ms)
    assert echo(world.tenant, "deals", deal, "ambac_progress_percent", "10.0")
    assert not echo(world.tenant, "deal", deal, "ambac_carrier", "UPS"), "a user's later edit"
    assert not echo(world.tenant, "deal", deal, "dealname", "Deal 0"), "a property we never wrote"
    assert not echo(world.tenant, "deal", "999999", "ambac_carrier", "DHL"), "another deal"


def test_an_hour_of_503s_holds_every_push_and_drains_them_in_order_afterwards(world):
    """HubSpot answering 503 for an hour of retries loses nothing; afterwards all land, in job order."""
    world.runtime.client_overrides = {"retry": RetryPolicy(max_attempts=1)}
    world.configure()  # rebuild the client without its own retries: the queue does the waiting
    (deal_a, order_a), (deal_b, order_b) = world.linked_orders(2)
    world.hubspot.faults.fail_next(10_000, status=503, path_prefix="/crm/objects/2026-09/deals/batch")
    world.host.set_order_status(world.tenant, order_a.id, OrderStatus.IN_PROGRESS)
    world.host.set_order_status(world.tenant, order_b.id, OrderStatus.ON_HOLD)
    for round_ in range(12):  # twelve backoff rounds (each at least as long as the last)
        world.make_due()
        world.runtime.drain()
        if round_ == 5:  # changes keep coming during the outage
            world.host.set_order_status(world.tenant, order_a.id, OrderStatus.COMPLETED)
            world.host.ship_order(world.tenant, order_b.id, Shipment("UPS", "1Z", "", None))
    assert world.store.dead_letters(world.tenant) == []
    depths = world.store.depths(world.tenant)
    assert depths and all(state is JobState.PENDING for state, _kind in depths)
    assert world.deal_props(deal_a)["ambac_order_status"] == "PENDING", "still the new order's state"
    world.hubspot.faults.clear()
    world.hubspot.clear_requests()
    world.make_due()
    world.runtime.drain()
    assert world.store.depths(world.tenant) == {}
    assert world.deal_props(deal_a)["ambac_order_status"] == "COMPLETED"
    props_b = world.deal_props(deal_b)
    assert (props_b["ambac_order_status"], props_b["ambac_carrier"]) == ("ON_HOLD", "UPS")
    assert world.calls(BATCH_UPDATE) == 1, "the backlog went out as one batch"
    assert world.calls(NOTES_BATCH) == 1, "both notes in one batch create"
    note_bodies = [o["hs_note_body"] for o in _sandbox_notes(world)]
    assert note_bodies[0].startswith(f"Ambac Tracker: order {order_a.order_number}")
    assert "from Pending to Completed" in note_bodies[0]
    assert note_bodies[1].startswith(f"Ambac Tracker: order {order_b.order_number}")


def test_a_refused_push_is_dead_lettered_after_its_attempts_and_replays(world):
    """A deal HubSpot no longer has fails per item until dead; restored and replayed, it lands."""
    ((deal, order),) = world.linked_orders(1)
    world.hubspot.archive_object("deals", deal)
    world.host.set_order_status(world.tenant, order.id, OrderStatus.COMPLETED)
    for _ in range(25):
        world.make_due()
        world.runtime.drain()
    (dead,) = world.store.dead_letters(world.tenant)
    assert dead.kind == "host.order.status_changed" and "refused" in dead.last_error
    world.hubspot.restore_object("deals", deal)
    assert world.store.replay(dead.id) == dead.id
    world.runtime.drain()
    assert world.deal_props(deal)["ambac_order_status"] == "COMPLETED"
    assert world.store.dead_letters(world.tenant) == []


def test_a_missing_property_names_it_and_says_to_run_setup(world):
    """A property deleted in HubSpot fails the push with its name and `ambac-hubspot setup`; setup fixes it."""
    ((deal, order),) = world.linked_orders(1)
    del world.hubspot.portal.properties["deals"]["ambac_order_link"]
    world.host.set_order_status(world.tenant, order.id, OrderStatus.COMPLETED)
    world.runtime.drain()
    # One line per failed attempt: the job's backoff has full jitter, so its retry can come
    # due within the same drain (seen once in CI).
    entries = world.store.read_log(world.tenant, what="outbound.push").entries
    assert entries
    assert all("'ambac_order_link'" in e.message and "ambac-hubspot setup" in e.message for e in entries)
    assert ensure_hubspot_properties(world.runtime.tenant(world.tenant).client) == ["ambac_order_link"]
    world.make_due()
    world.runtime.drain()
    assert world.deal_props(deal)["ambac_order_status"] == "COMPLETED"


def test_resolving_a_status_conflict_checks_only_the_stage_it_needs(world):
    """A stale stage elsewhere in status_stage_map does not block the decision; the stage the
    decision needs, missing, refuses it naming the setting, and changes nothing."""
    world.configure(conflicts={"default": "manual"},
                    stage_status_map={"closedwon": "IN_PROGRESS", "closedlost": "CANCELLED",
                                      "contractsent": "ON_HOLD"},
                    status_stage_map={"default": {"IN_PROGRESS": "closedwon", "CANCELLED": "closedlost",
                                                  "ON_HOLD": "gone"}})
    deal = world.deal(dealname="D")
    world.sync()
    order = world.order_for(deal)
    world.runtime.drain()
    world.host.set_order_status(world.tenant, order.id, OrderStatus.CANCELLED)
    world.hubspot.update_object("deals", deal, {"dealstage": "contractsent"})
    world.sync()
    (conflict,) = world.runtime.list_conflicts(world.tenant)
    assert conflict.field == "order_status"
    settings = world.host.plugin_settings(world.tenant, "hubspot")
    world.configure(status_stage_map={"default": {**settings["status_stage_map"]["default"], "CANCELLED": "nope"}})
    with pytest.raises(ConfigError) as info:
        world.runtime.resolve_conflict(world.tenant, conflict.id, "ambac", decided_by="ops@acme")
    assert "status_stage_map.default.CANCELLED" in str(info.value)
    assert world.deal_props(deal)["dealstage"] == "contractsent" and world.runtime.list_conflicts(world.tenant)
    world.configure(status_stage_map=settings["status_stage_map"])
    resolved = world.runtime.resolve_conflict(world.tenant, conflict.id, "ambac", decided_by="ops@acme")
    assert resolved.status == "closed" and world.deal_props(deal)["dealstage"] == "closedlost"
