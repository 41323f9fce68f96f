"""Conflicts: each strategy on simultaneous edits, the audit trail, manual holds and their resolution."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from ambac_hubspot_plugin import _conflict_resolution as resolution_module
from ambac_hubspot_plugin import _inbound as inbound_module
from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin._field_sync import HELD_FIELDS, reconcile_fields
from ambac_hubspot_plugin._job_kinds import RECHECK_KIND, RETRY_KIND
from ambac_hubspot_plugin._status import build_status
from ambac_hubspot_plugin.conflicts import HubSpotWins
from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.host import COMPANY_NAME_MAX
from ambac_hubspot_plugin.store import sync_health

from ._clock import ManualClock
from ._world import EVERY_FIELD, PluginWorld, open_world, plugin_settings

Clock = ManualClock


@attrs.define
class World(PluginWorld):
    """The plugin world with sandbox and host on one manual clock."""

    clock: ManualClock = attrs.field(factory=ManualClock)

    def linked(self, name: str = "Brackets"):
        deal = self.deal(dealname=name)
        self.runtime.run_sync(self.tenant)
        return deal, self.order_for(deal)

    def held_company(self, direction: str = "hubspot_to_ambac"):
        """A linked company whose phone the host set to A and HubSpot to B, held by ``manual``;
        companies flow in ``direction``."""
        self.configure(conflicts={"default": "hubspot_wins", "per_field": {"company.phone": "manual"}},
                       directions={"companies": direction})
        company = self.company(name="Phone Co", domain="phone.example", phone="0")
        deal = self.deal(companies=[company])
        self.runtime.run_sync(self.tenant)
        host_company = self.services.get_company(self.order_for(deal).company_id)
        self.clock.tick()
        self.services.update_company(host_company.id, {"phone": "A"})
        self.clock.tick()
        self.hubspot.update_object("companies", company, {"phone": "B"})
        self.clock.tick()
        self.runtime.inbound(self.tenant).update_linked("companies", [company])
        self.runtime.drain()
        return company, host_company

    def both_edit(self, deal: str, order, *, host_first: bool) -> None:
        """The same field edited on both sides since the last sync, one minute apart."""
        edits = [lambda: self.host.services(self.tenant).update_order(order.id, {"name": "Host name"}),
                 lambda: self.hubspot.update_object("deals", deal, {"dealname": "HubSpot name"})]
        for edit in edits if host_first else edits[::-1]:
            self.clock.tick()
            edit()
        self.clock.tick()

    def held(self):
        """A linked deal whose order's name both sides edited, held by ``manual`` for a person."""
        self.configure(conflicts={"default": "manual"})
        deal, order = self.linked()
        self.both_edit(deal, order, host_first=True)
        self.runtime.run_sync(self.tenant)
        return deal, order


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Sandbox and host on one manual clock, plugin enabled for one tenant."""
    clock = Clock()
    with open_world(tmp_path, World, on_clock=clock, check_enabled=False, clock=clock,
                    capabilities=EVERY_FIELD) as world:
        yield world


@pytest.mark.parametrize(("strategy", "host_first", "winner", "name"), [
    ("hubspot_wins", False, "hubspot", "HubSpot name"),
    ("tracker_wins", True, "ambac", "Host name"),
    ("newest_wins", True, "hubspot", "HubSpot name"),   # HubSpot edited last
    ("newest_wins", False, "ambac", "Host name"),       # the host edited last
    ("manual", True, "hold", "Host name"),
])
def test_each_strategy_decides_simultaneous_edits_and_the_audit_trail_says_so(
    world, strategy, host_first, winner, name
):
    """Both sides rename the order; the strategy picks the result and one audit row records it all."""
    world.configure(conflicts={"default": strategy})
    deal, order = world.linked()
    world.both_edit(deal, order, host_first=host_first)
    world.runtime.run_sync(world.tenant)
    assert world.order_for(deal).name == name
    (record,) = world.runtime.list_conflicts(world.tenant, status=None)
    assert (record.strategy, record.decision, record.field) == (strategy, winner, "name")
    assert (record.hubspot_value, record.host_value, record.last_synced) == ("HubSpot name", "Host name", "Brackets")
    assert record.hubspot_changed_at is not None and record.host_changed_at is not None
    assert record.is_open == (winner == "hold")
    assert (record.decided_by is None) == (winner == "hold")


def test_a_field_is_decided_once_not_at_every_sync(world):
    """After a decision, later syncs see no conflict: the trail holds exactly one row per conflict."""
    world.configure(conflicts={"default": "hubspot_wins", "per_field": {"order.name": "tracker_wins"}})
    deal, order = world.linked()
    world.both_edit(deal, order, host_first=True)
    for _ in range(3):
        world.runtime.run_sync(world.tenant)
        world.runtime.drain()
    assert len(world.runtime.list_conflicts(world.tenant, status=None)) == 1
    assert world.hubspot.get_object("deals", deal)["dealname"] == "Host name", "the host's value was pushed"
    assert world.order_for(deal).name == "Host name"


def test_a_held_conflict_stays_open_and_one_row_while_hubspot_keeps_changing(world):
    """manual: the host keeps its value; a further HubSpot edit refreshes the open conflict, not a new one."""
    deal, _ = world.held()
    world.hubspot.update_object("deals", deal, {"dealname": "HubSpot name 2"})
    world.clock.tick()
    world.runtime.run_sync(world.tenant)
    (record,) = world.runtime.list_conflicts(world.tenant)
    assert record.hubspot_value == "HubSpot name 2" and world.order_for(deal).name == "Host name"


@pytest.mark.parametrize(("settle", "name", "why"), [
    ("hubspot_agrees", "Host name", "both sides now hold 'Host name'"),
    ("host_agrees", "HubSpot name", "both sides now hold 'HubSpot name'"),
    ("host_goes_back", "HubSpot name", "the host went back to the last synced value"),
    ("hubspot_goes_back", "Host name", "HubSpot went back to the last synced value"),
    ("strategy_changes", "HubSpot name", "decided by strategy hubspot_wins"),
])
def test_a_held_conflict_no_longer_in_dispute_is_closed_by_the_next_sync(world, settle, name, why):
    """Held, then settled without a person: both sides came to one value, one side went back to
    the last synced value, or the settings now decide the field. The conflict does not stay open
    (a person would be asked about a dispute that is over), and the trail and log say how it ended."""
    deal, order = world.held()
    (held,) = world.runtime.list_conflicts(world.tenant)
    if settle == "hubspot_agrees":
        world.hubspot.update_object("deals", deal, {"dealname": "Host name"})
    elif settle == "hubspot_goes_back":
        world.hubspot.update_object("deals", deal, {"dealname": "Brackets"})
    else:
        edit = {"host_agrees": "HubSpot name", "host_goes_back": "Brackets"}.get(settle)
        if edit:
            world.host.services(world.tenant).update_order(order.id, {"name": edit})
        else:
            world.configure(conflicts={"default": "hubspot_wins"})
        world.clock.tick()
        world.hubspot.update_object("deals", deal, {"amount": "99"})  # the sync reads the deal again
    world.clock.tick()
    world.runtime.run_sync(world.tenant)
    assert world.runtime.list_conflicts(world.tenant) == []
    settled = world.store.get_conflict(world.tenant, held.id)
    assert (settled.status, settled.resolution, settled.resolved_value, settled.decided_by) == (
        "closed", "settled", name, "sync")
    assert why in settled.reason and world.order_for(deal).name == name
    assert any(f"conflict {held.id} " in line.message and why in line.message
               for line in world.store.read_log(world.tenant).entries)
    world.hubspot.update_object("deals", deal, {"amount": "98"})
    world.clock.tick()
    world.runtime.run_sync(world.tenant)
    assert world.store.get_conflict(world.tenant, held.id) == settled, "closed once"


@pytest.mark.parametrize(("edit", "why"), [
    ("HubSpot name", "both sides now hold 'HubSpot name'"),
    ("Brackets", "the host went back to the last synced value"),
])
def test_a_host_edit_that_ends_a_held_dispute_settles_it_without_a_hubspot_change(world, edit, why):
    """Someone edits the order in the host to HubSpot's value, or back to the last synced one:
    the dispute is over, but only a sync reading the deal again noticed, at the deal's next
    HubSpot change. The edit's push now queues a retry of the deal, which settles it."""
    deal, order = world.held()
    (held,) = world.runtime.list_conflicts(world.tenant)
    world.runtime.drain()  # what a running worker has done by now: the deal changes no more
    version = world.hubspot.get_object("deals", deal)["hs_lastmodifieddate"]
    assert world.store.get_conflict(world.tenant, held.id).is_open
    world.host.edit_order(world.tenant, order.id, name=edit)
    world.clock.tick()
    world.runtime.drain(max_jobs=1)  # the edit's push, which queues the deal's retry
    (queued,) = world.store.queued(world.tenant, [RETRY_KIND])
    assert queued.payload == {"deal_id": deal, "why": "held"}
    in_sync, failing = sync_health(world.store, world.tenant, str(world.hubspot.portal_id),
                                   record_kinds=[RETRY_KIND], retry_kind=RETRY_KIND)
    assert (in_sync, failing) == (1, 0), "a deal to recheck is not failing"
    world.runtime.drain()
    settled = world.store.get_conflict(world.tenant, held.id)
    assert (settled.resolution, settled.decided_by, settled.resolved_value) == ("settled", "sync", "HubSpot name")
    assert why in settled.reason
    assert world.order_for(deal).name == world.hubspot.get_object("deals", deal)["dealname"] == "HubSpot name"
    assert world.hubspot.get_object("deals", deal)["hs_lastmodifieddate"] == version, "settled on the same version"
    world.runtime.drain()
    assert world.store.queued(world.tenant, [RETRY_KIND]) == [], "no retry is queued again"


@pytest.mark.parametrize("direction", ["hubspot_to_ambac", "both"])
@pytest.mark.parametrize(("edit", "why"), [
    ("B", "both sides now hold 'B'"),
    ("0", "the host went back to the last synced value"),
])
def test_a_host_edit_that_ends_a_held_company_dispute_settles_it_without_a_hubspot_change(world, edit, why,
                                                                                          direction):
    """As for orders: the company's save queues a recheck of the company (read from HubSpot and
    reconciled), which settles the held conflict. Where companies are pushed too, the push
    leaves the held field alone: the outcome is the same either way."""
    company, host_company = world.held_company(direction)
    (held,) = world.runtime.list_conflicts(world.tenant)
    world.host.save_company(world.tenant, host_company.id, phone=edit)
    world.clock.tick()
    world.runtime.drain(max_jobs=1)  # the save's push, which queues the recheck
    (queued,) = world.store.queued(world.tenant, [RECHECK_KIND])
    assert queued.payload == {"object_type": "company", "object_id": company, "why": "held"}
    assert world.hubspot.get_object("companies", company)["phone"] == "B", "the push left the held field alone"
    world.runtime.drain()
    settled = world.store.get_conflict(world.tenant, held.id)
    assert (settled.resolution, settled.decided_by, settled.resolved_value) == ("settled", "sync", "B")
    assert why in settled.reason
    assert world.services.get_company(host_company.id).phone == "B"
    assert world.hubspot.get_object("companies", company)["phone"] == "B"
    world.host.save_company(world.tenant, host_company.id, phone="C")
    world.runtime.drain()
    assert world.store.queued(world.tenant, [RECHECK_KIND]) == [], "nothing held: no recheck"


def test_a_pushed_company_save_of_another_field_keeps_the_hold_and_hubspots_value(world):
    """Companies pushed to HubSpot, the phone held: a save of the name writes the name, not the
    host's phone (which would have made both sides agree, and the conflict close, unasked)."""
    company, host_company = world.held_company("both")
    (held,) = world.runtime.list_conflicts(world.tenant)
    world.host.save_company(world.tenant, host_company.id, name="Phone Co Renamed")
    world.runtime.drain()
    assert world.hubspot.get_object("companies", company)["name"] == "Phone Co Renamed"
    assert world.hubspot.get_object("companies", company)["phone"] == "B"
    assert world.services.get_company(host_company.id).phone == "A"
    assert [c.id for c in world.runtime.list_conflicts(world.tenant)] == [held.id]


def test_a_recheck_the_host_refuses_is_logged_once_not_retried(world):
    """HubSpot's company holds a value the host refuses (a name too long): the recheck logs the
    error, as a webhook would, and is done; the company is applied at its next HubSpot change.
    Retrying the same values would fail the same way, then dead-letter the recheck."""
    company, host_company = world.held_company()
    world.hubspot.update_object("companies", company, {"name": "n" * (COMPANY_NAME_MAX + 1)})
    world.host.save_company(world.tenant, host_company.id, phone="B")
    world.runtime.drain()
    assert world.store.queued(world.tenant, [RECHECK_KIND]) == []
    (error,) = world.store.read_log(world.tenant, what="inbound.company").entries
    assert error.level == "error" and "name" in error.message
    assert world.runtime.list_conflicts(world.tenant) != [], "not settled: the company was not applied"


@pytest.mark.parametrize("payload", [{"object_type": "company"}, {"object_type": "company", "object_id": None},
                                     {"object_type": "deal", "object_id": "1"}, {"object_id": "1"}])
def test_a_recheck_that_names_no_record_is_dead_lettered_saying_so(world, payload):
    """A recheck job no version writes (no usable id or type) is not guessed at: its dead letter
    says what is wrong with it."""
    job_id = world.store.enqueue(world.tenant, RECHECK_KIND, payload, max_attempts=1)
    world.runtime.drain()
    job = world.store.get_job(job_id)
    assert job.state.value == "dead" and "names no company or contact to recheck" in job.last_error


def test_a_recheck_that_errs_counts_its_company_as_failing(world):
    """The status view counts a company whose recheck failed (HubSpot down), as a deal's retry."""
    _company, host_company = world.held_company()
    world.hubspot.faults.fail_next(1000, status=503, path_prefix="/crm/objects/2026-09/companies/batch/read")
    world.host.save_company(world.tenant, host_company.id, phone="B")
    world.runtime.drain(max_jobs=2)  # the push, then the recheck's first attempt
    (job,) = world.store.queued(world.tenant, [RECHECK_KIND])
    assert job.last_error is not None and job.state.value == "pending"
    assert build_status(world.runtime, world.tenant)["records"]["failing"] == 1


@pytest.mark.parametrize("record", ["order", "company"])
def test_a_host_edit_of_a_held_record_does_not_revive_its_dead_retry(world, record):
    """A deal's retry or a company's recheck that failed every attempt (dead-lettered, alerted)
    is not queued again at each host edit of the record, which would only fail it again: the
    dead letter is replayed."""
    if record == "order":
        deal, order = world.held()
        kind, payload, key = RETRY_KIND, {"deal_id": deal}, f"deal:{deal}"
        edit = functools.partial(world.host.edit_order, world.tenant, order.id, name="HubSpot name")
    else:
        company, host_company = world.held_company()
        kind, payload, key = RECHECK_KIND, {"object_type": "company", "object_id": company}, f"company:{company}"
        edit = functools.partial(world.host.save_company, world.tenant, host_company.id, phone="B")
    world.runtime.drain()
    job_id = world.store.enqueue(world.tenant, kind, payload, dedupe_key=key, max_attempts=1)
    (claimed,) = world.store.claim("test", kinds=[kind])
    assert claimed.id == job_id
    world.store.fail(job_id, "test", "an error, every time")
    edit()
    world.runtime.drain()
    (job,) = world.store.queued(world.tenant, [kind])
    assert job.id == job_id and job.state.value == "dead"
    assert world.runtime.list_conflicts(world.tenant) != []


@pytest.mark.parametrize(("field", "prop", "host_value", "hubspot_value", "kept"), [
    ("value", "amount", Decimal("12.50"), "15", "12.5"),
    ("order_date", "closedate", date(2026, 3, 2), "2026-04-01T12:00:00Z", "2026-03-02"),
])
def test_a_held_decimal_or_date_conflict_settles_in_its_json_form(world, field, prop, host_value, hubspot_value,
                                                                   kept):
    """A settled value that is no string (a Decimal amount, a date) is kept and shown in its JSON
    form; it does not break the sync that settles it (and would again at every run)."""
    world.configure(conflicts={"default": "manual"})
    deal = world.hubspot.add_object("deals", {"dealname": "D", "pipeline": "default", "dealstage": "closedwon",
                                              "amount": "10", "closedate": "2026-01-05T12:00:00Z"})
    world.runtime.run_sync(world.tenant)
    world.clock.tick()
    world.host.services(world.tenant).update_order(world.order_for(deal).id, {field: host_value})
    world.hubspot.update_object("deals", deal, {prop: hubspot_value})
    world.clock.tick()
    world.runtime.run_sync(world.tenant)
    (held,) = world.runtime.list_conflicts(world.tenant)
    world.hubspot.update_object("deals", deal, {prop: {"amount": "12.50", "closedate": "2026-03-02T12:00:00Z"}[prop]})
    world.clock.tick()
    run = world.runtime.run_sync(world.tenant)
    assert run.failed == 0 and world.runtime.list_conflicts(world.tenant) == []
    settled = world.store.get_conflict(world.tenant, held.id)
    assert (settled.resolution, settled.resolved_value) == ("settled", kept)
    assert settled.reason.endswith(f"both sides now hold {kept!r}")


def test_a_field_held_again_after_settling_opens_a_new_conflict(world):
    """Settled, then both sides part again: a new conflict opens (the marker follows each hold)."""
    deal, order = world.held()
    world.hubspot.update_object("deals", deal, {"dealname": "Host name"})
    world.clock.tick()
    world.runtime.run_sync(world.tenant)
    assert world.runtime.list_conflicts(world.tenant) == []
    world.host.services(world.tenant).update_order(order.id, {"name": "Host again"})
    world.clock.tick()
    world.hubspot.update_object("deals", deal, {"dealname": "HubSpot again"})
    world.clock.tick()
    world.runtime.run_sync(world.tenant)
    (again,) = world.runtime.list_conflicts(world.tenant)
    assert (again.host_value, again.hubspot_value) == ("Host again", "HubSpot again")


@pytest.mark.parametrize(("choice", "value", "expected"), [
    ("hubspot", None, "HubSpot name"), ("ambac", None, "Host name"), ("value", "Agreed name", "Agreed name")])
def test_resolving_a_held_conflict_applies_to_both_sides_and_is_recorded(world, choice, value, expected):
    """Resolution sets the host field and the deal property to the decided value and closes the record."""
    deal, _ = world.held()
    (record,) = world.runtime.list_conflicts(world.tenant)
    resolved = world.runtime.resolve_conflict(world.tenant, record.id, choice, value=value, decided_by="ops@acme")
    assert world.order_for(deal).name == expected
    assert world.hubspot.get_object("deals", deal)["dealname"] == expected
    assert (resolved.status, resolved.resolution, resolved.resolved_value, resolved.decided_by) == (
        "closed", choice, expected, "ops@acme")
    assert resolved.decided_at is not None
    world.clock.tick()
    world.runtime.run_sync(world.tenant)
    assert world.runtime.list_conflicts(world.tenant) == [], "no conflict comes back after resolution"
    assert world.store.get_conflict(world.tenant, record.id).resolution == choice


def test_resolving_twice_or_with_a_bad_value_is_refused(world):
    """A closed conflict cannot be resolved again; a typed value must fit the field's type."""
    world.configure(conflicts={"default": "manual"})
    deal = world.hubspot.add_object("deals", {"dealname": "D", "pipeline": "default", "dealstage": "closedwon",
                                              "amount": "10"})
    world.runtime.run_sync(world.tenant)
    order = world.order_for(deal)
    world.clock.tick()
    world.host.services(world.tenant).update_order(order.id, {"value": 12})
    world.hubspot.update_object("deals", deal, {"amount": "15"})
    world.clock.tick()
    world.runtime.run_sync(world.tenant)
    (record,) = world.runtime.list_conflicts(world.tenant)
    with pytest.raises(ConfigError, match="not a valid value"):
        world.runtime.resolve_conflict(world.tenant, record.id, "value", value="twelve")
    world.runtime.resolve_conflict(world.tenant, record.id, "value", value="13.50")
    assert str(world.order_for(deal).value) == "13.50"
    assert world.hubspot.get_object("deals", deal)["amount"] == "13.50"
    with pytest.raises(ConfigError, match="was decided already"):
        world.runtime.resolve_conflict(world.tenant, record.id, "hubspot")


def test_two_people_resolving_one_conflict_at_once_never_both_write(world):
    """While one resolution is writing (the host's write held open here), a second is refused at
    once, writing nothing; the audit trail then names the value both sides hold."""
    deal, _ = world.held()
    (record,) = world.runtime.list_conflicts(world.tenant)
    host = world.runtime.tenant(world.tenant).host
    writing, go_on = threading.Event(), threading.Event()
    real_update = host.update_order

    def slow_update(order_id, changes):
        writing.set()
        assert go_on.wait(10)
        return real_update(order_id, changes)

    host.update_order = slow_update
    first: list[object] = []
    thread = threading.Thread(target=lambda: first.append(world.runtime.resolve_conflict(
        world.tenant, record.id, "value", value="A name", decided_by="a")))
    thread.start()
    try:
        assert writing.wait(10)
        with pytest.raises(ConfigError, match="being decided by someone else"):
            world.runtime.resolve_conflict(world.tenant, record.id, "value", value="B name", decided_by="b")
    finally:
        go_on.set()
        thread.join(10)
        host.update_order = real_update
    assert len(first) == 1
    closed = world.store.get_conflict(world.tenant, record.id)
    assert (closed.decided_by, world.order_for(deal).name, world.hubspot.get_object("deals", deal)["dealname"]) == (
        "a", "A name", "A name")
    assert "A name" in str(closed.resolved_value)
    with pytest.raises(ConfigError, match="decided already by a"):
        world.runtime.resolve_conflict(world.tenant, record.id, "hubspot", decided_by="b")


def test_a_sync_meanwhile_leaves_a_conflict_being_resolved_to_the_person(world, monkeypatch):
    """While a person's decision is being written, HubSpot comes round to the host's value and a
    sync runs: it does not close the conflict as settled under the person (whose decision then
    failed to be recorded after both sides were written), it applies the deal once it is done."""
    monkeypatch.setattr(inbound_module, "BUSY_RETRY", timedelta(0))
    deal, _ = world.held()
    (record,) = world.runtime.list_conflicts(world.tenant)
    host = world.runtime.tenant(world.tenant).host
    writing, go_on = threading.Event(), threading.Event()
    real_update = host.update_order
    decided: list[object] = []

    def slow_update(order_id, changes):
        if threading.current_thread() is thread:
            writing.set()
            assert go_on.wait(10)
        return real_update(order_id, changes)

    monkeypatch.setattr(host, "update_order", slow_update)
    thread = threading.Thread(target=lambda: decided.append(world.runtime.resolve_conflict(
        world.tenant, record.id, "value", value="A name", decided_by="a")))
    thread.start()
    try:
        assert writing.wait(10)
        world.hubspot.update_object("deals", deal, {"dealname": "Host name"})
        world.clock.tick()
        threading.Timer(0.5, go_on.set).start()  # the person's decision is written meanwhile
        run = world.runtime.run_sync(world.tenant)  # it waits for the deal's claim, then applies it
    finally:
        go_on.set()
        thread.join(10)
    assert run.failed == 0 and len(decided) == 1
    closed = world.store.get_conflict(world.tenant, record.id)
    assert (closed.resolution, closed.decided_by, closed.resolved_value) == ("value", "a", "A name")
    world.runtime.drain()  # the sync's retry of the deal
    assert world.order_for(deal).name == world.hubspot.get_object("deals", deal)["dealname"] == "A name"


@pytest.mark.parametrize("merged", [False, True])
def test_a_resolution_waiting_in_vain_for_a_syncing_deal_changes_nothing_and_says_so(world, monkeypatch, merged):
    """A sync holds the deal (its claim) for longer than the resolution waits: the person is
    told the deal is being synced and that nothing was changed, not an error about HubSpot.
    After a merge in HubSpot the conflict still names the merged-away deal; the claim that
    counts is the surviving deal's, which the link now names and the sync takes."""
    deal, order = world.held()
    (record,) = world.runtime.list_conflicts(world.tenant)
    if merged:
        link = world.store.get_link_by_host(world.tenant, "order", order.id)
        survivor = world.deal(dealname="HubSpot name")
        world.store.move_link(link.id, survivor)
        deal = survivor
    monkeypatch.setattr(resolution_module, "RECORD_WAIT", timedelta(seconds=0.3))
    assert world.store.take_claims(world.tenant, {f"deal:{deal}"}, "a sync", timedelta(minutes=5))
    with pytest.raises(ConfigError, match="being synced right now; nothing was changed"):
        world.runtime.resolve_conflict(world.tenant, record.id, "hubspot", decided_by="a")
    assert world.store.get_conflict(world.tenant, record.id).is_open
    assert world.services.get_order(order.id).name == "Host name"


def test_archived_orders_are_never_touched_by_hubspot_edits(world):
    """An archived order keeps its values and stays archived whatever HubSpot changes; no conflict opens."""
    deal, order = world.linked()
    world.host.services(world.tenant).update_order(order.id, {"archived": True, "name": "Host name"})
    world.hubspot.update_object("deals", deal, {"dealname": "HubSpot name"})
    world.clock.tick()
    world.runtime.run_sync(world.tenant)
    after = world.order_for(deal)
    assert (after.archived, after.name) == (True, "Host name")
    assert world.runtime.list_conflicts(world.tenant, status=None) == []


def test_an_ambac_decision_hubspot_cannot_carry_is_not_undone_by_the_next_sync(tmp_path):
    """Resolving a status conflict as 'ambac' without a status-to-stage map keeps the host's status
    through later, unrelated HubSpot edits (HubSpot's own value is what is remembered as synced)."""

    from ambac_hubspot_plugin.host import OrderStatus
    from ambac_hubspot_plugin.reference_host import ReferenceHost
    from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

    clock = Clock()
    with Sandbox(rate_limits=RateLimits.unlimited(), clock=clock) as hs, \
            ReferenceHost(tmp_path / "host", clock=clock) as host:
        tenant = host.create_tenant("Acme")
        host.enable_plugin(tenant, "hubspot", plugin_settings(
            hs, conflicts={"default": "manual"},
            stage_status_map={"closedwon": "PENDING", "closedlost": "CANCELLED"}))
        runtime = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime
        services = host.services(tenant)
        deal = hs.add_object("deals", {"dealname": "D", "pipeline": "default", "dealstage": "closedwon",
                                       "amount": "10"})
        runtime.run_sync(tenant)
        order = services.find_order_by_external_id(f"hubspot:{hs.portal_id}:deal:{deal}")
        clock.tick()
        services.update_order(order.id, {"order_status": OrderStatus.IN_PROGRESS})
        clock.tick()
        hs.update_object("deals", deal, {"dealstage": "closedlost"})
        clock.tick()
        runtime.run_sync(tenant)
        (conflict,) = runtime.list_conflicts(tenant)
        runtime.resolve_conflict(tenant, conflict.id, "ambac", decided_by="ops")
        clock.tick()
        hs.update_object("deals", deal, {"amount": "11"})  # an unrelated HubSpot edit
        clock.tick(400)
        runtime.run_sync(tenant)
        assert services.get_order(order.id).order_status is OrderStatus.IN_PROGRESS
        assert runtime.list_conflicts(tenant) == []


def test_a_held_field_the_host_no_longer_keeps_stays_held():
    """Nothing compares a field the host has stopped keeping, so nothing says its dispute ended:
    it stays marked held (its open conflict is not forgotten), while a compared one settles."""
    current = attrs.make_class("Order", ["name", "value"])(name="Same", value=None)
    done = reconcile_fields("t", "order", "deal:1", {"name": "Same", "value": "15"}, current,
                            {"name": "Old", "value": "10", HELD_FIELDS: ["name", "value"]}, (None, None),
                            lambda *_: HubSpotWins(), host_fields=frozenset({"name"}))
    assert done.synced[HELD_FIELDS] == ["value"]
    assert done.settled == {"name": ("Same", "both sides now hold 'Same'")}
