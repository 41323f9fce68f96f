"""Deals become orders: the inbound engine through the real SDK, the sandbox and the real store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ambac_hubspot_plugin import _inbound as inbound_module
from ambac_hubspot_plugin import _linking as linking_module
from ambac_hubspot_plugin._deal_properties import DELETED_FLAG
from ambac_hubspot_plugin._job_kinds import RETRY_KIND
from ambac_hubspot_plugin._views import company_json
from ambac_hubspot_plugin._webhooks._apply import EngineApplier
from ambac_hubspot_plugin._webhooks._events import WebhookEvent
from ambac_hubspot_plugin.errors import ConfigError, HubSpotIntegrationError
from ambac_hubspot_plugin.host import (
    Address,
    CompanyDraft,
    ContactDraft,
    OrderStatus,
    UserType,
)

from ._world import EVERY_FIELD, PluginWorld, open_world, plugin_settings

World = PluginWorld


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Sandbox + reference host keeping every order and company field + enabled plugin."""
    with open_world(tmp_path, World, capabilities=EVERY_FIELD) as world:
        yield world


@pytest.fixture
def real_world(tmp_path: Path) -> Iterator[World]:
    """The world on a host with Ambac Tracker's fields: companies without website, phone or
    address, orders without value, currency or order date."""
    with open_world(tmp_path, World) as world:
        yield world


def test_each_closed_won_deal_becomes_exactly_one_order(world):
    """Won deals become orders; other stages are skipped; a second run creates nothing."""
    won = [world.deal(dealname=f"Won {i}") for i in range(3)]
    open_deal = world.deal(stage="contractsent", dealname="Open")
    first = world.sync()
    assert (first.created, first.skipped) == (3, 1)
    assert [world.order_for(d).name for d in won] == ["Won 0", "Won 1", "Won 2"]
    assert world.order_for(open_deal) is None
    second = world.sync()
    assert second.created == 0
    assert len(world.services.list_orders()) == 3


def test_default_mapping_lands_on_the_order(world):
    """Name, close date (no day shift), amount and currency reach the order."""
    deal = world.deal(dealname="Brackets", amount="1250.50", deal_currency_code="eur",
                      closedate="2026-11-02T00:00:00.000Z")
    world.sync()
    order = world.order_for(deal)
    assert (order.name, order.value, order.currency, order.order_date) == (
        "Brackets", Decimal("1250.50"), "EUR", date(2026, 11, 2))
    assert order.order_status is OrderStatus.PENDING
    assert order.order_number.startswith("ORD-")


def test_close_date_is_the_portal_day_west_of_utc(world):
    """A close time on the evening of the 2nd in Chicago is the 2nd, though UTC says the 3rd."""
    world.host.change_settings(world.tenant, "hubspot", {**world.settings, "portal_timezone": "America/Chicago"})
    deal = world.deal(closedate="2026-11-03T03:30:00.000Z")
    world.sync()
    assert world.order_for(deal).order_date == date(2026, 11, 2)


def test_triggers_come_from_the_pipelines_api_not_a_hard_coded_stage(world):
    """A custom pipeline's won stage (numeric id) triggers; its other stages do not."""
    pipeline = world.hubspot.add_pipeline("Custom", [
        {"id": "1001", "label": "Quoted", "metadata": {"isClosed": "false", "probability": "0.5"}},
        {"id": "1002", "label": "Signed", "metadata": {"isClosed": "true", "probability": "1.0"}},
    ])
    signed = world.hubspot.add_object("deals", {"dealname": "S", "pipeline": pipeline, "dealstage": "1002"})
    quoted = world.hubspot.add_object("deals", {"dealname": "Q", "pipeline": pipeline, "dealstage": "1001"})
    world.sync()
    assert world.order_for(signed) is not None and world.order_for(quoted) is None


def test_configured_trigger_stages_are_validated_with_choices(world):
    """Unknown pipelines or stages are refused, naming the id and the valid choices."""
    bad = {**world.settings, "trigger_stages": {"default": ["closedwon", "nope"], "ghost": ["x"]}}
    world.host.change_settings(world.tenant, "hubspot", bad)
    with pytest.raises(ConfigError) as info:
        world.runtime.inbound(world.tenant)
    problems = info.value.problems
    assert "nope" in problems["trigger_stages.default"] and "closedlost" in problems["trigger_stages.default"]
    assert "valid pipeline ids" in problems["trigger_stages.ghost"]


def test_leaving_the_trigger_stage_keeps_the_order_and_maps_status(world):
    """A deal moved out of closed won keeps its order; the stage map decides its status."""
    deal = world.deal()
    world.sync()
    world.host.change_settings(world.tenant, "hubspot",
                               {**world.settings, "stage_status_map": {"closedlost": "CANCELLED"}})
    world.hubspot.update_object("deals", deal, {"dealstage": "contractsent"})
    world.sync()
    assert world.order_for(deal).order_status is OrderStatus.PENDING
    world.hubspot.update_object("deals", deal, {"dealstage": "closedlost"})
    world.sync()
    assert world.order_for(deal).order_status is OrderStatus.CANCELLED


def test_bad_values_are_logged_with_field_value_and_fix_then_retried(world):
    """A deal whose mapped amount is 'abc' fails loudly, is queued for retry, and lands once fixed."""
    # HubSpot's own amount is a number property; a text property mapped as a decimal can be 'abc'.
    world.hubspot.add_property("deals", "budget_text")
    world.host.change_settings(world.tenant, "hubspot", {**world.settings, "mapping": {
        "strategy": "configurable",
        "options": {"order": {"value": {"property": "budget_text", "transforms": ["decimal"]}}}}})
    deal = world.deal(dealname="Bad amount", budget_text="abc")
    result = world.sync()
    assert result.failed == 1 and world.order_for(deal) is None
    (entry,) = world.store.read_log(world.tenant, record=f"deal:{deal}").entries
    assert "budget_text='abc'" in entry.message and "plain number" in entry.message
    assert any(kind == "inbound.deal" for (_state, kind) in world.store.depths(world.tenant))
    world.hubspot.update_object("deals", deal, {"budget_text": "12.5"})
    world.sync()
    assert world.order_for(deal).value == Decimal("12.5")


def test_retry_job_creates_the_order_once_the_mapping_is_fixed(world):
    """A name too long for the host fails; switching to a truncating mapping replays it."""
    deal = world.deal(dealname="x" * 250)
    world.sync()
    assert world.order_for(deal) is None
    world.host.change_settings(world.tenant, "hubspot", {**world.settings, "mapping": {
        "strategy": "configurable",
        "options": {"order": {"name": {"property": "dealname", "transforms": [{"truncate": 200}]}}}}})
    (job,) = world.store.claim("test", kinds=["inbound.deal"])
    world.runtime.handlers["inbound.deal"](job)
    assert len(world.order_for(deal).name) == 200


def test_updates_to_linked_deals_apply_hubspot_values(world):
    """A changed amount and name on a linked deal update the order (HubSpot wins by default)."""
    deal = world.deal(dealname="Before", amount="10")
    world.sync()
    world.hubspot.update_object("deals", deal, {"dealname": "After", "amount": "20"})
    result = world.sync()
    assert result.updated == 1
    order = world.order_for(deal)
    assert (order.name, order.value) == ("After", Decimal(20))


def test_host_only_edits_are_not_overwritten_by_unchanged_hubspot_fields(world):
    """A field edited only in the host keeps its value when HubSpot did not change it."""
    deal = world.deal(dealname="Same", amount="10")
    world.sync()
    order = world.order_for(deal)
    world.services.update_order(order.id, {"name": "Edited locally"})
    world.hubspot.update_object("deals", deal, {"amount": "11"})
    world.sync()
    order = world.order_for(deal)
    assert (order.name, order.value) == ("Edited locally", Decimal(11))


def test_archived_orders_are_never_touched(world):
    """HubSpot changes never un-archive or edit an archived order."""
    deal = world.deal(dealname="Old")
    world.sync()
    order = world.order_for(deal)
    world.services.update_order(order.id, {"archived": True})
    world.hubspot.update_object("deals", deal, {"dealname": "New"})
    result = world.sync()
    assert result.skipped == 1
    order = world.order_for(deal)
    assert order.archived and order.name == "Old"


def test_company_match_order_link_domain_name_create(world):
    """Companies are matched by normalised domain, then name ignoring case, else created once."""
    by_domain = world.services.create_company(CompanyDraft(name="Old Name", website="https://www.acme.example/about"))
    by_name = world.services.create_company(CompanyDraft(name="Northwind Tooling"))
    c1 = world.company(name="Acme Inc", domain="ACME.example")
    c2 = world.company(name="northwind tooling")
    c3 = world.company(name="Brand New Co", domain="brandnew.example")
    deals = [world.deal(companies=[c]) for c in (c1, c2, c3, c3)]
    world.sync()
    orders = [world.order_for(d) for d in deals]
    assert orders[0].company_id == by_domain.id
    assert orders[1].company_id == by_name.id
    assert orders[2].company_id == orders[3].company_id not in (by_domain.id, by_name.id)
    assert len(world.services.list_companies()) == 3
    created = world.services.get_company(orders[2].company_id)
    assert (created.name, created.website) == ("Brand New Co", "brandnew.example")


def test_primary_company_association_wins(world):
    """With two companies on a deal, the primary (type 5) one is the order's company."""
    secondary = world.company(name="Second")
    primary = world.company(name="Primary")
    deal = world.hubspot.add_object("deals", {"dealname": "D", "pipeline": "default", "dealstage": "closedwon"},
                                    {"companies": [(secondary, 341), (primary, [5, 341])]})
    world.sync()
    assert world.services.get_company(world.order_for(deal).company_id).name == "Primary"


def test_contacts_are_linked_by_email_or_created_and_first_is_customer(world):
    """Contacts match by email ignoring case, others are created; the lowest id is the customer."""
    existing = world.services.create_contact(ContactDraft(email="ann@acme.example", first_name="Ann"))
    a = world.contact(email="ANN@Acme.example", firstname="Ann")
    b = world.contact(email="bob@acme.example", firstname="Bob", lastname="Lee")
    deal = world.deal(contacts=[b, a])
    world.sync()
    order = world.order_for(deal)
    assert order.customer_id == existing.id
    (bob,) = world.services.find_contacts_by_email("bob@acme.example")
    assert (bob.first_name, bob.last_name, bob.user_type) == ("Bob", "Lee", UserType.PORTAL)
    assert world.host.user_groups(bob.id) == ["Customer"]
    assert world.store.get_link_by_hubspot(world.tenant, str(world.hubspot.portal_id), "contact", b).host_id == bob.id


def test_dry_run_writes_nothing_and_says_what_it_would_do(world):
    """A dry run reports would-be creates and skips, and writes no order, link, run or checkpoint."""
    won = world.deal(dealname="Won", companies=[world.company(name="Dry Co")])
    world.deal(stage="contractsent")
    result = world.sync(dry_run=True, keep_outcomes=True)
    assert (result.created, result.skipped) == (1, 1)
    (create,) = [o for o in result.outcomes if o.action == "created"]
    assert create.deal_id == won and "would create" in create.reason and "Dry Co" in create.reason
    assert world.services.list_orders() == [] and world.services.list_companies() == []
    assert world.store.recent_runs(world.tenant) == []


def test_sync_history_records_each_run(world):
    """Each run is a sync-history row with its counts."""
    world.deal()
    world.deal(stage="appointmentscheduled")
    world.sync()
    (run,) = world.store.recent_runs(world.tenant)
    assert (run.kind, str(run.status), run.created, run.skipped) == ("incremental", "succeeded", 1, 1)
    assert run.ended_at is not None


def test_manual_preview_then_create_then_second_create_returns_existing(world):
    """Preview shows the draft and warnings; create links it; creating again returns that order."""
    deal = world.deal(stage="contractsent", dealname="Manual", amount="5")
    preview = world.runtime.preview_order(world.tenant, deal)
    assert preview.draft.name == "Manual" and preview.existing_order is None
    assert any("not in a trigger stage" in w for w in preview.warnings)
    assert world.services.list_orders() == []
    created = world.runtime.create_order_from_deal(world.tenant, deal, {"customer_note": "Rush"})
    order = world.services.get_order(created.order_id)
    assert (order.name, order.customer_note) == ("Manual", "Rush")
    again = world.runtime.create_order_from_deal(world.tenant, deal)
    assert again.order_id == order.id and len(world.services.list_orders()) == 1
    assert world.runtime.preview_order(world.tenant, deal).existing_order.id == order.id


def test_a_reviewed_create_of_a_merge_survivor_takes_the_merged_deals_order(world):
    """A person creates the order of a deal into which HubSpot merged a deal that has an order
    (the survivor not in a trigger stage, so no sync moved it): the order follows the survivor,
    as a sync would move it, instead of a second order being made."""
    linked = world.deal(dealname="Linked")
    world.sync()
    order = world.order_for(linked)
    survivor = world.deal(stage="contractsent", dealname="Other")
    world.hubspot.merge_objects("deals", survivor, linked)
    outcome = world.runtime.create_order_from_deal(world.tenant, survivor)
    assert (outcome.action, outcome.order_id) == ("unchanged", order.id)
    assert [o.id for o in world.services.list_orders()] == [order.id]
    assert world.store.get_link_by_host(world.tenant, "order", order.id).hubspot_id == survivor


def test_a_reviewed_create_waits_for_a_worker_applying_the_deal_then_says_try_again(world, monkeypatch):
    """Another worker holds the deal (a sync chunk making its order): the create waits for it,
    and when it waits in vain, nothing is created and the error says to try again."""
    deal = world.deal(stage="contractsent", dealname="Manual")
    key = f"deal:{deal}"
    assert world.store.take_claims(world.tenant, {key}, "a sync chunk", timedelta(minutes=5)) == {key}
    monkeypatch.setattr(linking_module, "CLAIM_WAIT", timedelta(seconds=0.3))
    with pytest.raises(ConfigError, match="being synced right now; nothing was created"):
        world.runtime.create_order_from_deal(world.tenant, deal)
    assert world.services.list_orders() == []
    threading.Timer(0.2, world.store.release_claims, (world.tenant, {key}, "a sync chunk")).start()
    monkeypatch.setattr(linking_module, "CLAIM_WAIT", timedelta(seconds=5))
    assert world.runtime.create_order_from_deal(world.tenant, deal).action == "created"
    # A deal with an order is said to have one at once, even while a worker holds it.
    assert world.store.take_claims(world.tenant, {key}, "a sync chunk", timedelta(minutes=5)) == {key}
    monkeypatch.setattr(linking_module, "CLAIM_WAIT", timedelta(seconds=0.3))
    assert world.runtime.create_order_from_deal(world.tenant, deal).action == "unchanged"


def test_concurrent_processing_of_one_new_customer_makes_one_company_and_one_order(world):
    """Two engines processing two deals of one new company and contact at once create one company
    and one user (the host's emails are not unique, so nothing in the host stops a second one)."""
    company = world.company(name="Race Co", domain="race.example")
    contact = world.contact(email="buyer@race.example")
    deals = [world.deal(companies=[company], contacts=[contact]) for _ in range(2)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run(deal_id: str) -> None:
        try:
            engine = world.runtime.inbound(world.tenant)
            barrier.wait()
            engine.process_ids([deal_id], trigger="webhook")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in (*deals, *deals)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(world.services.list_companies()) == 1
    assert len(world.services.list_orders()) == 2
    (user,) = world.services.find_contacts_by_email("buyer@race.example")
    assert {order.customer_id for order in world.services.list_orders()} == {user.id}


def test_a_deal_changed_during_a_run_is_picked_up_by_the_next(world):
    """With search index lag, a deal written just before a run is caught by the next run's overlap."""
    world.deal(dealname="Visible")
    assert world.sync().created == 1  # sets the checkpoint
    world.hubspot.portal.index_lag_ms = 3_600_000  # nothing written now is visible to search yet
    deal = world.deal(dealname="Laggy")
    assert world.sync().created == 0
    world.hubspot.portal.index_lag_ms = 0
    assert world.sync().created == 1
    assert world.order_for(deal) is not None


def test_checkpoint_never_moves_past_the_run_start(world):
    """The incremental checkpoint stays at or before the moment the run started."""
    world.deal()
    result = world.sync()
    run = world.store.get_run(result.run_id)
    saved = world.store.get_checkpoint(world.tenant, str(world.hubspot.portal_id), "deals.modified_since")
    from datetime import datetime

    assert datetime.fromisoformat(saved.value) <= run.started_at


def test_backfill_takes_every_deal_in_trigger_stages(world):
    """Backfill creates orders for won deals regardless of the incremental checkpoint."""
    deals = [world.deal() for _ in range(5)]
    world.store.set_checkpoint(world.tenant, str(world.hubspot.portal_id), "deals.modified_since",
                               "2999-01-01T00:00:00+00:00")
    assert world.sync().created == 0
    result = world.sync(backfill=True)
    assert result.created == 5 and all(world.order_for(d) for d in deals)


def test_a_sync_interrupted_by_ctrl_c_is_recorded_as_failed_not_left_running(world):
    """KeyboardInterrupt is no Exception: the run must still end, or the status view says a
    sync is running until a worker's staleness check, never in a CLI-only setup."""
    world.deal()
    world.deal()

    def interrupt(_outcome: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        world.runtime.run_sync(world.tenant, progress=interrupt)
    (run,) = world.store.recent_runs(world.tenant)
    assert run.status.value == "failed" and run.ended_at is not None
    assert "interrupted" in (run.error or "")


def _phone_edited_on_both_sides(world, strategy: str, **settings):
    """A linked company whose phone the host sets to A and HubSpot to B; HubSpot's edit applied."""
    world.host.change_settings(world.tenant, "hubspot", {**world.settings, **settings, "conflicts": {
        "default": "hubspot_wins", "per_field": {"company.phone": strategy}}})
    company = world.company(name="Phone Co", domain="phone.example", phone="0")
    deal = world.deal(companies=[company])
    world.sync()
    host_company = world.services.get_company(world.order_for(deal).company_id)
    world.services.update_company(host_company.id, {"phone": "A"})
    world.hubspot.update_object("companies", company, {"phone": "B"})
    world.runtime.inbound(world.tenant).update_linked("companies", [company])
    return company, host_company


@pytest.mark.parametrize(("choice", "host_phone", "hubspot_phone"), [("hubspot", "B", "B"), ("ambac", "A", "A")])
def test_company_conflict_held_by_manual_is_resolved_on_both_sides(world, choice, host_phone, hubspot_phone):
    """A company phone edited on both sides is held under 'manual', then resolved everywhere."""
    company, host_company = _phone_edited_on_both_sides(world, "manual")
    assert world.services.get_company(host_company.id).phone == "A", "held: the host keeps its value"
    (conflict,) = world.runtime.list_conflicts(world.tenant)
    assert (conflict.object_type, conflict.field) == ("company", "phone")
    world.runtime.resolve_conflict(world.tenant, conflict.id, choice, decided_by="admin@acme.example")
    assert world.services.get_company(host_company.id).phone == host_phone
    assert world.hubspot.get_object("companies", company)["phone"] == hubspot_phone
    assert world.runtime.list_conflicts(world.tenant) == []


def test_a_held_company_conflict_hubspot_settles_is_closed_and_the_company_view_hides_the_mark(world):
    """HubSpot comes round to the host's phone: the held conflict closes without a person, and
    the plugin's bookkeeping of held fields is not shown as a value it keeps for the company."""
    company, host_company = _phone_edited_on_both_sides(world, "manual")
    (held,) = world.runtime.list_conflicts(world.tenant)
    (link,) = world.store.get_links_by_hubspot(world.tenant, world.hubspot.portal_id, "company", [company]).values()
    assert "_held_fields" in link.synced
    kept = company_json(host_company.id, host_company, link, frozenset({"name"}))["kept"]
    assert "phone" in kept and "_held_fields" not in kept
    preview = world.runtime.inbound(world.tenant).preview(world.deal(companies=[company]))
    assert "_held_fields" not in preview.company_kept, "nor on the review page"
    world.hubspot.update_object("companies", company, {"phone": "A"})
    world.runtime.inbound(world.tenant).update_linked("companies", [company])
    assert world.runtime.list_conflicts(world.tenant) == []
    settled = world.store.get_conflict(world.tenant, held.id)
    assert (settled.resolution, settled.resolved_value) == ("settled", "A")


def test_a_company_decision_hubspot_refuses_changes_neither_side(world):
    """HubSpot refuses the decided value: the host's company gets its value back, and the
    conflict stays open to be decided again."""
    company, host_company = _phone_edited_on_both_sides(world, "manual")
    (conflict,) = world.runtime.list_conflicts(world.tenant)
    world.hubspot.faults.fail_next(10, status=400, path_prefix="/crm/objects/2026-09/companies/batch")
    with pytest.raises(HubSpotIntegrationError):
        world.runtime.resolve_conflict(world.tenant, conflict.id, "value", value="C", decided_by="admin@acme.example")
    world.hubspot.faults.clear()
    assert world.services.get_company(host_company.id).phone == "A"
    assert world.hubspot.get_object("companies", company)["phone"] == "B"
    assert [c.id for c in world.runtime.list_conflicts(world.tenant)] == [conflict.id]


def test_an_internal_user_on_the_deal_is_never_the_customer_nor_edited_by_hubspot(world):
    """A contact whose email is an internal user is not linked, not the customer, never rewritten."""
    staff = world.host.create_user(world.tenant, "rep@acme-machining.example", first_name="Rita")
    contact = world.contact(email="REP@acme-machining.example", firstname="Someone else")
    deal = world.deal(contacts=[contact])
    world.sync()
    assert world.order_for(deal).customer_id is None
    assert world.store.get_link_by_hubspot(world.tenant, str(world.hubspot.portal_id), "contact", contact) is None
    world.hubspot.update_object("contacts", contact, {"email": "hijack@example.com"})
    world.runtime.inbound(world.tenant).update_linked("contacts", [contact])
    assert world.host.get_user(staff.id).email == "rep@acme-machining.example"
    (entry,) = world.store.read_log(world.tenant, record=f"contact:{contact}").entries
    assert "internal user" in entry.message


def test_of_several_users_with_one_email_the_lowest_free_id_is_chosen_and_logged(world):
    """Emails are not unique in the host: a HubSpot contact matches the lowest-id PORTAL user not
    linked to another HubSpot contact (INTERNAL ones never), no user is created, the choice is logged."""
    staff = world.host.create_user(world.tenant, "ann@acme.example")
    taken = world.services.create_contact(ContactDraft(email="ann@acme.example", first_name="Taken"))
    free = world.services.create_contact(ContactDraft(email="ANN@acme.example", first_name="Free"))
    later = world.services.create_contact(ContactDraft(email="ann@Acme.example", first_name="Later"))
    portal = str(world.hubspot.portal_id)
    other = world.contact(email="someone@else.example")
    world.store.create_links(world.tenant, portal, [("contact", other, "contact", taken.id, {})])
    contact = world.contact(email="Ann@Acme.example", firstname="Ann")
    deal = world.deal(contacts=[contact])
    world.sync()
    assert world.order_for(deal).customer_id == free.id
    assert world.store.get_link_by_hubspot(world.tenant, portal, "contact", contact).host_id == free.id
    assert [u.id for u in world.services.find_contacts_by_email("ann@acme.example")] == [
        staff.id, taken.id, free.id, later.id]
    (entry,) = world.store.read_log(world.tenant, record=f"contact:{contact}").entries
    assert f"chose user {free.id}" in entry.message and f"{taken.id}, {later.id}" in entry.message


def test_an_older_version_of_a_deal_never_overwrites_a_newer_one(world):
    """A lagging search result (an older hs_lastmodifieddate) does not undo what was applied."""
    deal_id = world.deal(dealname="Old name")
    world.sync()
    engine = world.runtime.inbound(world.tenant)
    (old,) = engine.client.read_deals([deal_id], engine.mapping.deal_properties)
    world.hubspot.update_object("deals", deal_id, {"dealname": "New name"})
    engine.process_ids([deal_id], trigger="webhook")
    assert world.order_for(deal_id).name == "New name"
    (outcome,) = engine.process([old], trigger="incremental")  # the version search still shows
    assert outcome.action == "unchanged" and world.order_for(deal_id).name == "New name"


def _second_runs_while_first_is_paused(host, method: str, first, second) -> bool:
    """Run ``first`` in a thread until it calls ``host.<method>``, where it waits while
    ``second`` runs (for 2 s, or to its end); then let both finish. Unguarded, ``second``
    writes during the pause and ``first`` writes after it. Return whether ``second`` ended
    during the pause (it did not wait for ``first``)."""
    paused, go_on = threading.Event(), threading.Event()
    original = getattr(host, method)
    errors: list[BaseException] = []

    def pausing(*args, **kwargs):  # the host is the other engine's too: pause the first thread only
        if threading.current_thread() is threads[0]:
            paused.set()
            assert go_on.wait(10)
        return original(*args, **kwargs)

    def run(work) -> None:
        try:
            work()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(work,)) for work in (first, second)]
    setattr(host, method, pausing)
    threads[0].start()
    assert paused.wait(10)
    threads[1].start()
    threads[1].join(2)
    second_ended_first = not threads[1].is_alive()
    go_on.set()
    for thread in threads:
        thread.join(20)
    assert not errors and not any(thread.is_alive() for thread in threads)
    return second_ended_first


@pytest.mark.parametrize("first", ["sync", "webhook"])
def test_a_deal_two_workers_apply_at_once_ends_at_its_newest_version(world, monkeypatch, first):
    """A sync chunk pages an older version of a linked deal while a webhook job applies it.
    Unguarded, the chunk (its links read before the webhook's write) wrote its older version
    over the newer one, which stayed until the deal changed again. Now whichever worker comes
    second finds the deal claimed, and neither fails: a webhook job skips the deal and queues a
    retry job, which applies its newest version; a sync chunk finishes its other deals, gives up
    its claims, then waits for the deal and applies it (the version it paged is older: unchanged)."""
    monkeypatch.setattr(inbound_module, "BUSY_RETRY", timedelta(0))  # due at once, for the drain below
    deal_id = world.deal(dealname="First name")
    world.sync()
    syncing, webhook = world.runtime.inbound(world.tenant), world.runtime.inbound(world.tenant)
    world.hubspot.update_object("deals", deal_id, {"dealname": "Older name"})
    (older,) = syncing.client.read_deals([deal_id], syncing.mapping.deal_properties)  # what the sync paged
    world.hubspot.update_object("deals", deal_id, {"dealname": "Newer name"})
    results: dict[str, list] = {}

    def sync() -> None:
        results["sync"] = syncing.process([older], trigger="incremental")

    def hook() -> None:
        results["webhook"] = webhook.process_ids([deal_id], trigger="webhook").outcomes

    works = {"sync": (syncing, sync), "webhook": (webhook, hook)}
    second = "webhook" if first == "sync" else "sync"
    second_ended_first = _second_runs_while_first_is_paused(works[first][0].host, "get_order", works[first][1],
                                                            works[second][1])
    (outcome,) = results[second]
    if second == "webhook":
        assert second_ended_first, "the webhook job did not wait"
        assert outcome.action == "skipped" and "another worker is applying this deal" in outcome.reason
        (job,) = world.store.queued(world.tenant, [RETRY_KIND])
        assert job.payload == {"deal_id": deal_id, "why": "busy"}
        world.runtime.drain()
    else:
        assert not second_ended_first, "the sync waited for the webhook job"
        assert outcome.action == "unchanged" and "already applied" in outcome.reason, outcome
    assert world.order_for(deal_id).name == "Newer name"
    assert world.store.queued(world.tenant, [RETRY_KIND]) == []
    assert world.sync().updated == 0  # nothing left for the next sync to repair


def test_a_sync_chunk_that_waits_in_vain_for_a_deal_leaves_it_to_a_retry_job(world, monkeypatch):
    """Another worker holds a deal for longer than a sync run waits (15 s): the run does not
    fail, the deal is skipped and a retry job applies it once it is free."""
    monkeypatch.setattr(inbound_module, "BUSY_RETRY", timedelta(0))
    monkeypatch.setattr(linking_module, "CLAIM_WAIT", timedelta(seconds=0.3))
    deal_id = world.deal(dealname="First name")
    world.sync()
    world.hubspot.update_object("deals", deal_id, {"dealname": "Newer name"})
    key, other = f"deal:{deal_id}", "another worker"
    assert world.store.take_claims(world.tenant, {key}, other, timedelta(minutes=5)) == {key}
    result = world.sync()
    assert (result.skipped, result.failed, result.updated) == (1, 0, 0)
    (job,) = world.store.queued(world.tenant, [RETRY_KIND])
    assert job.payload == {"deal_id": deal_id, "why": "busy"}
    world.store.release_claims(world.tenant, {key}, other)
    world.runtime.drain(max_jobs=5)
    assert world.order_for(deal_id).name == "Newer name"
    assert world.store.queued(world.tenant, [RETRY_KIND]) == []


DEALS_BATCH_READ = "/crm/objects/2026-09/deals/batch/read"


def test_a_sync_run_that_cannot_read_a_busy_deal_again_leaves_it_to_a_retry_job(world, monkeypatch):
    """The other worker is done, but HubSpot fails the run's second read of the deal: the run
    does not fail (its other deals are done), the deal is left to a retry job, the log says so."""
    monkeypatch.setattr(inbound_module, "BUSY_RETRY", timedelta(0))
    deal_id, other_deal = world.deal(dealname="First name"), world.deal(dealname="Other")
    world.sync()
    world.hubspot.update_object("deals", deal_id, {"dealname": "Newer name"})
    world.hubspot.update_object("deals", other_deal, {"dealname": "Other, renamed"})
    key, other = f"deal:{deal_id}", "another worker"
    assert world.store.take_claims(world.tenant, {key}, other, timedelta(minutes=5)) == {key}
    first_pass = inbound_module.InboundSync._process_once

    def then_done_and_outage(self, *args, **kwargs):
        try:
            return first_pass(self, *args, **kwargs)
        finally:
            if world.store.release_claims(world.tenant, {key}, other):
                world.hubspot.faults.fail_next(1000, status=503, path_prefix=DEALS_BATCH_READ)

    monkeypatch.setattr(inbound_module.InboundSync, "_process_once", then_done_and_outage)
    result = world.sync()
    assert (result.skipped, result.failed, result.updated) == (1, 0, 1)
    assert world.store.get_run(result.run_id).status == "succeeded"
    assert world.order_for(other_deal).name == "Other, renamed"
    (job,) = world.store.queued(world.tenant, [RETRY_KIND])
    assert job.payload == {"deal_id": deal_id, "why": "busy"}
    (line,) = world.store.read_log(world.tenant, what="sync.busy").entries
    assert deal_id in line.message and "retry jobs apply them" in line.message
    world.hubspot.faults.clear()
    world.runtime.drain(max_jobs=5)
    assert world.order_for(deal_id).name == "Newer name"
    assert world.store.queued(world.tenant, [RETRY_KIND]) == []


def test_a_deletion_webhook_during_a_sync_chunks_update_of_the_deal_keeps_its_flag(world):
    """The deletion flag set on a deal's link while a sync chunk updates that deal (from its
    link read before) is not overwritten by the chunk: the webhook waits for the chunk's claim."""
    deal_id = world.deal(dealname="First name")
    world.sync()
    syncing, webhook = world.runtime.inbound(world.tenant), world.runtime.inbound(world.tenant)
    world.hubspot.update_object("deals", deal_id, {"dealname": "Older name"})
    (older,) = syncing.client.read_deals([deal_id], syncing.mapping.deal_properties)  # paged before the deletion
    world.hubspot.archive_object("deals", deal_id)
    deletion = WebhookEvent(portal_id=str(world.hubspot.portal_id), subscription_type="deal.deletion",
                            object_id=deal_id, occurred_at_ms=1)
    _second_runs_while_first_is_paused(
        syncing.host, "get_order", lambda: syncing.process([older], trigger="incremental"),
        lambda: EngineApplier(lambda _tenant: webhook).apply(world.tenant, "deal", deal_id, [deletion]))
    link = world.store.get_link_by_hubspot(world.tenant, str(world.hubspot.portal_id), "deal", deal_id)
    assert DELETED_FLAG in link.synced and link.synced["name"] == "Older name"


def test_a_merge_webhook_while_a_sync_chunk_reads_the_surviving_deal_makes_no_second_order(world, monkeypatch):
    """A sync chunk reads the surviving deal of a merge unlinked; the merge webhook then moves
    the merged-away deal's order to it before the chunk looks for merged deals' orders. The
    chunk made a second order, whose link it then lost to the moved one: an order no link
    tracks. Now the webhook waits for the deal's claim, which the chunk took before reading."""
    linked = world.deal(dealname="Linked")
    world.sync()
    order = world.order_for(linked)
    survivor = world.deal(stage="contractsent", dealname="Other")
    world.hubspot.merge_objects("deals", survivor, linked)
    world.hubspot.update_object("deals", survivor, {"dealstage": "closedwon"})
    syncing, webhook = world.runtime.inbound(world.tenant), world.runtime.inbound(world.tenant)
    (deal,) = syncing.client.read_deals([survivor], syncing.mapping.deal_properties)
    merge = WebhookEvent(portal_id=str(world.hubspot.portal_id), subscription_type="deal.merge",
                         object_id=survivor, occurred_at_ms=1, primary_object_id=survivor,
                         merged_object_ids=(linked,))

    monkeypatch.setattr(inbound_module, "adopt_merged_deals", inbound_module.adopt_merged_deals)  # restored after
    # The chunk pauses after reading the deal's link, before it looks for merged deals' orders.
    webhook_ended_first = _second_runs_while_first_is_paused(
        inbound_module, "adopt_merged_deals", lambda: syncing.process([deal], trigger="incremental"),
        lambda: EngineApplier(lambda _tenant: webhook).apply(world.tenant, "deal", survivor, [merge]))
    assert not webhook_ended_first, "the merge waited for the chunk"
    assert [o.id for o in world.services.list_orders()] == [order.id]
    link = world.store.get_link_by_host(world.tenant, "order", order.id)
    assert link.hubspot_id == survivor


@pytest.mark.parametrize("note_fails", [False, True])
def test_a_merge_webhook_while_a_sync_chunk_makes_the_order_of_a_deal_read_before_it_says_so(
        world, monkeypatch, note_fails):
    """A sync chunk reads a won deal before HubSpot merges a linked deal into it (no merged ids
    yet, so it takes no claim), and is making its order when the merge webhook moves the merged
    deal's order to it. Both orders exist: the chunk's new order lost the deal's link, and it
    said that another worker had made and linked "this order". Now the log and the new order
    say that the deal follows the merged deal's order, and to archive the new one; a host that
    fails to take the note (down) fails nothing else: the warning in the log stands."""
    linked = world.deal(dealname="Linked")
    world.sync()
    order = world.order_for(linked)
    survivor = world.deal(dealname="Other")
    syncing, webhook = world.runtime.inbound(world.tenant), world.runtime.inbound(world.tenant)
    (deal,) = syncing.client.read_deals([survivor], syncing.mapping.deal_properties)  # before the merge
    world.hubspot.merge_objects("deals", survivor, linked)
    merge = WebhookEvent(portal_id=str(world.hubspot.portal_id), subscription_type="deal.merge",
                         object_id=survivor, occurred_at_ms=1, primary_object_id=survivor,
                         merged_object_ids=(linked,))
    if note_fails:
        add_note = syncing.host.add_order_note

        def down(order_id, text):
            if "Archive order" in text:
                raise OSError("the host's database is down")
            return add_note(order_id, text)

        monkeypatch.setattr(syncing.host, "add_order_note", down)
    results: list[list] = []
    _second_runs_while_first_is_paused(
        syncing.host, "create_order", lambda: results.append(syncing.process([deal], trigger="incremental")),
        lambda: EngineApplier(lambda _tenant: webhook).apply(world.tenant, "deal", survivor, [merge]))
    ((outcome,),) = results
    assert world.store.get_link_by_hubspot(world.tenant, str(world.hubspot.portal_id), "deal",
                                           survivor).host_id == order.id
    (extra,) = [o for o in world.services.list_orders() if o.id != order.id]
    assert outcome.action == "created" and outcome.order_id == extra.id
    assert f"Archive order {extra.id}" in outcome.reason
    assert any(f"Archive order {extra.id}" in e.message and e.level == "warning"
               for e in world.store.read_log(world.tenant).entries)
    notes = world.host.order_notes(world.tenant, extra.id)
    assert (notes == []) if note_fails else (f"Archive order {extra.id}" in notes[0])


def test_a_busy_deals_retry_job_waits_for_the_deal_and_is_backed_off_if_in_vain(world, monkeypatch):
    """The retry job of a deal another worker held does not skip it again (a retry every 2 s for
    as long as the other holds it, never failing): holding nothing else, it waits for the claim,
    then applies the deal; if it waits in vain, the job fails and the queue backs it off."""
    monkeypatch.setattr(inbound_module, "BUSY_RETRY", timedelta(0))
    deal_id = world.deal(dealname="First name")
    world.sync()
    world.hubspot.update_object("deals", deal_id, {"dealname": "Newer name"})
    key, other = f"deal:{deal_id}", "another worker"
    assert world.store.take_claims(world.tenant, {key}, other, timedelta(minutes=5)) == {key}
    (outcome,) = world.runtime.inbound(world.tenant).process_ids([deal_id], trigger="webhook").outcomes
    assert outcome.action == "skipped"
    threading.Timer(0.5, world.store.release_claims, (world.tenant, {key}, other)).start()
    world.runtime.drain(max_jobs=5)  # the retry job, due at once, waits for the claim (unfixed: skips it again)
    assert world.order_for(deal_id).name == "Newer name"
    assert world.store.queued(world.tenant, [RETRY_KIND]) == []

    world.hubspot.update_object("deals", deal_id, {"dealname": "Newest name"})
    assert world.store.take_claims(world.tenant, {key}, other, timedelta(minutes=5)) == {key}
    world.runtime.inbound(world.tenant).process_ids([deal_id], trigger="webhook")
    monkeypatch.setattr(linking_module, "CLAIM_WAIT", timedelta(seconds=0.3))
    world.runtime.drain(max_jobs=5)
    (job,) = world.store.queued(world.tenant, [RETRY_KIND])
    assert job.attempts == 1 and job.last_error and job.run_after > datetime.now(UTC), "backed off"
    assert world.order_for(deal_id).name == "Newer name"


@pytest.mark.parametrize("object_type", ["companies", "contacts"])
def test_two_workers_applying_one_record_leave_its_newest_values(world, object_type):
    """Two webhook jobs of one linked company (or contact) at once: the one that read the older
    values cannot write them after the other wrote the newer ones."""
    if object_type == "companies":
        record = world.company(name="Old Co", domain="old.example")
        world.deal(companies=[record])
        host_type, field, prop = "company", "name", "name"
    else:
        record = world.contact(email="buyer@old.example", firstname="Old")
        world.deal(contacts=[record])
        host_type, field, prop = "contact", "first_name", "firstname"
    world.sync()
    first, second = world.runtime.inbound(world.tenant), world.runtime.inbound(world.tenant)
    world.hubspot.update_object(object_type, record, {prop: "Older"})
    (link,) = world.store.get_links_by_hubspot(world.tenant, world.hubspot.portal_id, host_type, [record]).values()

    def later_edit_then_apply() -> None:
        world.hubspot.update_object(object_type, record, {prop: "Newer"})
        second.update_linked(object_type, [record])

    _second_runs_while_first_is_paused(first.host, f"get_{host_type}",
                                       lambda: first.update_linked(object_type, [record]), later_edit_then_apply)
    assert getattr(getattr(world.services, f"get_{host_type}")(link.host_id), field) == "Newer"


def test_two_hubspot_companies_with_one_name_and_no_domain_stay_two_companies(world):
    """Same-named companies without a domain are not merged (the incumbent's bug)."""
    first = world.company(name="Acme")
    second = world.company(name="ACME")
    deals = [world.deal(companies=[first]), world.deal(companies=[second])]
    world.sync()
    a, b = (world.order_for(d).company_id for d in deals)
    assert a != b and len(world.services.list_companies()) == 2


def test_a_hubspot_duplicate_by_domain_reuses_the_host_company(world):
    """Two HubSpot companies with one domain are one customer: one host company."""
    first = world.company(name="Acme Inc", domain="acme.example")
    second = world.company(name="Acme Incorporated", domain="https://www.acme.example/")
    deals = [world.deal(companies=[first]), world.deal(companies=[second])]
    world.sync()
    assert len({world.order_for(d).company_id for d in deals}) == 1
    assert len(world.services.list_companies()) == 1


def test_a_newly_mapped_field_that_differs_goes_to_the_conflict_strategy(world):
    """Mapping the stage to a status after the order exists holds a locally edited status under
    'manual' (and records it) instead of overwriting it silently."""
    deal = world.deal()
    world.sync()
    order = world.order_for(deal)
    world.services.update_order(order.id, {"order_status": OrderStatus.IN_PROGRESS})
    world.host.change_settings(world.tenant, "hubspot", {
        **world.settings, "stage_status_map": {"closedlost": "CANCELLED"},
        "conflicts": {"default": "hubspot_wins", "per_field": {"order.order_status": "manual"}}})
    world.hubspot.update_object("deals", deal, {"dealstage": "closedlost"})
    world.sync()
    assert world.order_for(deal).order_status is OrderStatus.IN_PROGRESS
    (conflict,) = world.runtime.list_conflicts(world.tenant)
    assert (conflict.field, conflict.decision) == ("order_status", "hold")


def test_a_company_field_the_host_wins_is_pushed_when_companies_flow_to_hubspot(world):
    """Under tracker_wins the host's company phone stays and reaches HubSpot via the company push."""
    company, host_company = _phone_edited_on_both_sides(world, "tracker_wins", directions={"companies": "both"})
    assert world.services.get_company(host_company.id).phone == "A"
    world.runtime.drain()
    assert world.hubspot.get_object("companies", company)["phone"] == "A"


def test_a_deal_in_a_stage_the_pipelines_do_not_list_is_logged_not_dropped(world):
    """An unknown stage id is skipped with a warning naming the stage and what to do."""
    deal = world.deal(stage="contractsent")
    # HubSpot's API refuses unknown stages; a stage deleted from the pipeline leaves one behind.
    world.hubspot.portal.objects["deals"][deal].props["dealstage"] = "ghost-stage"
    result = world.sync()
    assert result.skipped == 1 and world.order_for(deal) is None
    (entry,) = world.store.read_log(world.tenant, record=f"deal:{deal}").entries
    assert "ghost-stage" in entry.message and "existing stage" in entry.message


def test_a_won_stage_added_after_the_pipelines_were_cached_still_triggers(world):
    """Pipelines are cached; a deal in a stage the cache does not know re-reads them first."""
    world.sync()  # caches the pipelines
    pipeline = world.hubspot.add_pipeline("Late", [
        {"id": "2001", "label": "Signed", "metadata": {"isClosed": "true", "probability": "1.0"}}])
    deal = world.hubspot.add_object("deals", {"dealname": "Late", "pipeline": pipeline, "dealstage": "2001"})
    world.runtime.run_sync(world.tenant)
    assert world.order_for(deal) is not None


def test_a_deal_retry_for_a_tenant_disabled_here_is_kept_not_dropped(world):
    """The retry job of a tenant not enabled in this process fails (and backs off), not completes."""
    from ambac_hubspot_plugin._jobs import RetryLater

    world.store.enqueue(world.tenant, "inbound.deal", {"deal_id": "123"}, dedupe_key="deal:123")
    store = world.store
    world.host.disable_plugin(world.tenant, "hubspot")
    (job,) = store.claim("test", kinds=["inbound.deal"])
    with pytest.raises(RetryLater, match="not enabled"):
        world.runtime.handlers["inbound.deal"](job)


def test_a_company_conflict_resolved_for_ambac_is_written_where_the_mapping_reads_it(world):
    """With the company phone mapped from a custom property, resolving for Ambac writes that
    property, not HubSpot's default 'phone' (which the mapping does not read)."""
    world.hubspot.add_property("companies", "phone_direct")
    mapping = {"strategy": "configurable",
               "options": {"company": {"phone": {"property": "phone_direct"}}}}
    world.host.change_settings(world.tenant, "hubspot", {
        **world.settings, "mapping": mapping,
        "conflicts": {"default": "hubspot_wins", "per_field": {"company.phone": "manual"}}})
    company = world.company(name="Direct Co", domain="direct.example", phone="0", phone_direct="1")
    deal = world.deal(companies=[company])
    world.sync()
    host_company = world.services.get_company(world.order_for(deal).company_id)
    assert host_company.phone == "1"
    world.services.update_company(host_company.id, {"phone": "A"})
    world.hubspot.update_object("companies", company, {"phone_direct": "B"})
    world.runtime.inbound(world.tenant).update_linked("companies", [company])
    (conflict,) = world.runtime.list_conflicts(world.tenant)
    world.runtime.resolve_conflict(world.tenant, conflict.id, "ambac", decided_by="admin@acme.example")
    stored = world.hubspot.get_object("companies", company)
    assert (stored["phone_direct"], stored["phone"]) == ("A", "0")


def test_record_properties_follow_the_mapping_including_the_address_parts():
    """Company and contact fields go back to the properties the mapping reads them from."""
    from ambac_hubspot_plugin._deal_properties import record_properties
    from ambac_hubspot_plugin.host import Address, Company
    from ambac_hubspot_plugin.mapping import ConfigurableMapping, DefaultMapping

    company = Company(id=1, tenant_id=1, name="Acme", website="acme.example", phone="5",
                      address=Address(street="1 Main St", city="Springfield", zip="12345"),
                      updated_at=datetime.now(UTC))
    assert record_properties(DefaultMapping(), "company", company, ["website", "address"]) == {
        "domain": "acme.example", "address": "1 Main St", "city": "Springfield", "state": "",
        "zip": "12345", "country": ""}
    mapped = ConfigurableMapping({"company": {"address.city": {"property": "town"},
                                              "phone": {"constant": "n/a"},
                                              "website": {"property": None}}})
    assert record_properties(mapped, "company", company, ["website", "phone", "address"]) == {
        "address": "1 Main St", "town": "Springfield", "state": "", "zip": "12345", "country": ""}
    assert record_properties(ConfigurableMapping({"company": {"address": {"property": None}}}),
                             "company", company, ["address"]) == {}


# ---- a host whose companies lack fields (Ambac Tracker's: name and description only) ------------


def test_company_values_the_host_has_no_field_for_stay_in_the_plugins_records(real_world):
    """On the real host's companies the company is created with its name alone; the HubSpot
    company's domain, phone and address are kept in its link, the domain findable by the store."""
    portal = str(real_world.hubspot.portal_id)
    company = real_world.company(name="Acme Inc", domain="https://www.Acme.example/", phone="+1 555 0100",
                            address="1 Main St", city="Springfield")
    deal = real_world.deal(companies=[company])
    assert real_world.sync().created == 1
    host_company = real_world.services.get_company(real_world.order_for(deal).company_id)
    assert (host_company.name, host_company.website, host_company.phone, host_company.address) == (
        "Acme Inc", "", "", Address())
    link = real_world.store.get_link_by_hubspot(real_world.tenant, portal, "company", company)
    assert (link.synced["website"], link.synced["phone"]) == ("acme.example", "+1 555 0100")
    assert (link.synced["address"]["street"], link.synced["address"]["city"]) == ("1 Main St", "Springfield")
    found = real_world.store.company_links_by_domain(real_world.tenant, portal, "http://ACME.example")
    assert [f.host_id for f in found] == [host_company.id]


def test_a_domain_duplicate_in_a_later_run_finds_the_company_through_the_plugins_records(real_world):
    """With no website in the host, a second HubSpot company with the same domain (synced in a
    later run) reuses the host company the first one's link points to."""
    first = real_world.company(name="Acme Inc", domain="acme.example")
    real_world.deal(companies=[first])
    real_world.sync()
    second = real_world.company(name="Acme Incorporated", domain="https://www.acme.example/")
    deal = real_world.deal(companies=[second])
    real_world.sync()
    (only,) = real_world.services.list_companies()
    assert real_world.order_for(deal).company_id == only.id


def test_an_internationalised_domain_spelled_two_ways_is_one_host_company(real_world):
    """One website in Unicode, the other in its ASCII (punycode) form: one domain, in one run
    and in a later one."""
    first = real_world.company(name="Bücher GmbH", domain="https://bücher.example/")
    second = real_world.company(name="Buecher", domain="www.xn--bcher-kva.example")
    deals = [real_world.deal(companies=[first]), real_world.deal(companies=[second])]
    real_world.sync()
    third = real_world.company(name="BÜCHER", domain="XN--BCHER-KVA.example")
    deals.append(real_world.deal(companies=[third]))
    real_world.sync()
    (only,) = real_world.services.list_companies()
    assert {real_world.order_for(d).company_id for d in deals} == {only.id}


def test_a_hubspot_edit_of_a_field_the_host_lacks_is_kept_without_a_conflict(real_world):
    """A phone or domain edited in HubSpot is kept in the link (domain re-indexed); the host is
    not written and no conflict is recorded, even under 'manual', for there is no host value."""
    portal = str(real_world.hubspot.portal_id)
    real_world.configure(conflicts={"default": "manual"})
    company = real_world.company(name="Phone Co", domain="phone.example", phone="0")
    deal = real_world.deal(companies=[company])
    real_world.sync()
    host_company = real_world.services.get_company(real_world.order_for(deal).company_id)
    real_world.hubspot.update_object("companies", company, {"phone": "B", "domain": "phone2.example"})
    (outcome,) = real_world.runtime.inbound(real_world.tenant).update_linked("companies", [company])
    assert outcome.action == "unchanged"
    assert real_world.runtime.list_conflicts(real_world.tenant) == []
    assert real_world.services.get_company(host_company.id) == host_company
    link = real_world.store.get_link_by_hubspot(real_world.tenant, portal, "company", company)
    assert (link.synced["phone"], link.synced["website"]) == ("B", "phone2.example")
    found = real_world.store.company_links_by_domain(real_world.tenant, portal, "phone2.example")
    assert [f.host_id for f in found] == [host_company.id]
    assert real_world.store.company_links_by_domain(real_world.tenant, portal, "phone.example") == []


class _VersioningServices:
    """The reference host's services, except that updating a company makes a new version with
    a new id (as Ambac Tracker's versioned companies do)."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def update_company(self, company_id, changes):
        updated = self._inner.update_company(company_id, changes)
        return self._inner.create_company(CompanyDraft(name=updated.name, description=updated.description))


def test_a_company_update_answered_by_a_new_version_re_points_the_link(world):
    """When the host answers a company update with a new version (a new id), the link follows."""
    portal = str(world.hubspot.portal_id)
    company = world.company(name="Old Co", domain="old.example")
    deal = world.deal(companies=[company])
    world.sync()
    first_id = world.order_for(deal).company_id
    engine = world.runtime.inbound(world.tenant)
    engine.host = _VersioningServices(engine.host)
    world.hubspot.update_object("companies", company, {"name": "New Co"})
    (outcome,) = engine.update_linked("companies", [company])
    link = world.store.get_link_by_hubspot(world.tenant, portal, "company", company)
    assert outcome.action == "updated" and link.host_id != first_id
    assert world.services.get_company(link.host_id).name == "New Co"
    assert world.store.get_link_by_host(world.tenant, "company", first_id) is None


def test_a_held_company_conflict_settled_by_an_update_that_makes_a_new_version_is_closed(world):
    """HubSpot comes round to the host's phone in the same edit that renames the company, and
    the host answers the rename with a new version (a new id), taking the open conflict along:
    the conflict is closed on the new version, not looked for on the old one and left open."""
    company, _host_company = _phone_edited_on_both_sides(world, "manual")
    (held,) = world.runtime.list_conflicts(world.tenant)
    engine = world.runtime.inbound(world.tenant)
    engine.host = _VersioningServices(engine.host)
    world.hubspot.update_object("companies", company, {"phone": "A", "name": "Renamed Co"})
    (outcome,) = engine.update_linked("companies", [company])
    assert outcome.action == "updated" and outcome.order_id != held.host_id
    assert world.runtime.list_conflicts(world.tenant) == []
    settled = world.store.get_conflict(world.tenant, held.id)
    assert (settled.resolution, settled.host_id) == ("settled", outcome.order_id)


def test_an_old_conflict_on_a_company_field_the_host_lacks_is_refused_clearly(real_world):
    """A company phone conflict recorded before the host said it has no phone cannot be
    resolved into the host: a ConfigError says the plugin keeps HubSpot's value."""
    from ambac_hubspot_plugin.store import ConflictDraft

    portal = str(real_world.hubspot.portal_id)
    company = real_world.company(name="Phone Co", phone="0")
    deal = real_world.deal(companies=[company])
    real_world.sync()
    host_id = real_world.order_for(deal).company_id
    conflict = real_world.store.record_conflict(ConflictDraft(
        tenant_id=real_world.tenant, portal_id=portal, object_type="company", host_id=host_id,
        hubspot_type="company", hubspot_id=company, field="phone", hubspot_value="B", host_value="A",
        last_synced="0", hubspot_changed_at=None, host_changed_at=None, strategy="manual", decision="hold"))
    with pytest.raises(ConfigError, match="companies have no phone"):
        real_world.runtime.resolve_conflict(real_world.tenant, conflict.id, "ambac", decided_by="admin@acme.example")
    assert real_world.hubspot.get_object("companies", company)["phone"] == "0"


def test_a_deal_edited_while_a_sync_pages_past_it_makes_no_other_deal_skipped(tmp_path):
    """300 won deals; a person edits the oldest right after the first search page was served.
    With offset paging every later deal moved up one place and the second page skipped one,
    which the checkpoint then left behind for good. Pages are anchored on the last deal read
    (keyset paging): every deal becomes an order in the first run."""
    from ._clock import ManualClock

    clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    with open_world(tmp_path, on_clock=clock) as world:  # the host hands its clock to the plugin
        deals = []
        for i in range(300):  # one won deal a minute, e.g. after an outage
            deals.append(world.deal(dealname=f"Won {i}"))
            clock.advance(minutes=1)
        portal = world.hubspot.portal
        real_search, pages = portal.search, []

        def search(object_type: str, body: dict) -> dict:
            answer = real_search(object_type, body)
            pages.append(body)
            if len(pages) == 1:
                clock.advance(seconds=1)
                world.hubspot.update_object("deals", deals[0], {"dealname": "Won 0 (edited)"})
            return answer

        portal.search = search
        try:
            result = world.sync()
        finally:
            portal.search = real_search
        assert [i for i, deal in enumerate(deals) if world.order_for(deal) is None] == []
        assert result.created == 300 and len(pages) >= 2


def test_a_merge_a_sync_sees_first_moves_the_order_instead_of_making_a_second(tmp_path):
    """No merge webhook (lost, or a service key that gets none): the surviving deal, won later,
    carries the merged-away deal in ``hs_merged_object_ids``. The sync moves that deal's order
    to it, and says so, rather than creating a second order."""
    with open_world(tmp_path) as world:
        linked = world.deal(dealname="Linked")
        assert world.sync().created == 1
        order = world.order_for(linked)
        survivor = world.deal(stage="contractsent", dealname="Other")
        world.hubspot.merge_objects("deals", survivor, linked)
        world.hubspot.update_object("deals", survivor, {"dealstage": "closedwon"})
        assert world.sync(dry_run=True).created == 0, "a dry run sees the merge too"
        result = world.sync()
        assert result.created == 0
        assert [o.id for o in world.services.list_orders()] == [order.id]
        link = world.store.get_link_by_host(world.tenant, "order", order.id)
        assert link.hubspot_id == survivor
        assert any(f"merged into deal {survivor}" in e.message
                   for e in world.store.read_log(world.tenant).entries if e.what == "sync.merge")


@pytest.mark.parametrize("change", ["since", "stages"])
def test_a_backfill_over_other_deals_does_not_resume_a_killed_ones_checkpoint(tmp_path, change):
    """A backfill since last month is killed in its second chunk. A full backfill (no since),
    or one over a trigger stage added since, must look at every deal of its own: resuming at
    the killed run's checkpoint skipped the older deals, and its finish reset the checkpoint,
    so nothing ever came back for them. The same backfill again still resumes."""
    from ._clock import ManualClock

    class Killed(Exception):
        pass

    clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    with open_world(tmp_path, on_clock=clock) as world:
        older = [world.deal(stage="contractsent" if change == "stages" else "closedwon", dealname=f"Old {i}")
                 for i in range(3)]
        clock.advance(days=30)
        since = clock() if change == "since" else None
        for i in range(1_005):
            world.deal(dealname=f"Recent {i}")
            clock.advance(seconds=1)
        clock.advance(days=1)
        seen = 0

        def kill(outcome: object) -> None:
            nonlocal seen
            seen += 1
            if seen == 1_002:  # the process dies in the second chunk
                raise Killed()

        with pytest.raises(Killed):
            world.runtime.run_sync(world.tenant, backfill=True, since=since, progress=kill)
        if change == "stages":
            world.configure(trigger_stages={"default": ["closedwon", "contractsent"]})
        result = world.sync(backfill=True)
        assert [deal for deal in older if world.order_for(deal) is None] == []
        assert result.created == 3 and result.created + result.unchanged == 3 + 1_005


@pytest.mark.parametrize("kind", ["companies", "contacts"])
def test_a_company_or_contact_merged_in_hubspot_keeps_its_host_record(tmp_path, kind):
    """HubSpot merges a linked company (contact) into another one. The survivor's next won deal
    resolves to the same host company (portal user) through the merged-away record's link,
    instead of making a second one; a dry run sees it too and moves nothing."""
    with open_world(tmp_path) as world:
        props = {"companies": {"name": "Acme"}, "contacts": {"email": "buyer@acme.example"}}[kind]
        first = world.hubspot.add_object(kind, props)
        before_deal = world.deal(dealname="D1", **{kind: [first]})
        assert world.sync().created == 1
        before = world.order_for(before_deal)
        survivor = world.hubspot.add_object(kind, {"name": "Acme"} if kind == "companies"
                                            else {"email": "ann@acme.example"})
        world.hubspot.merge_objects(kind, survivor, first)
        second = world.deal(dealname="D2", **{kind: [survivor]})
        assert world.sync(dry_run=True).created == 1
        assert world.sync().created == 1
        after = world.order_for(second)
        field = "company_id" if kind == "companies" else "customer_id"
        assert getattr(after, field) == getattr(before, field) is not None
        singular = {"companies": "company", "contacts": "contact"}[kind]
        link = world.store.get_link_by_host(world.tenant, singular, getattr(before, field))
        assert link.hubspot_id == survivor
        assert any(f"was merged into {singular} {survivor}" in e.message
                   for e in world.store.read_log(world.tenant).entries)


def test_two_companies_of_one_domain_resolved_at_once_make_one_host_company(tmp_path):
    """A sync creates company A (acme.example) and writes its link only at the end of its
    chunk (paused there); a webhook meanwhile resolves company B (www.acme.example). It waits
    for the domain's claim, then finds A's link: one domain, one host company."""
    import time

    with open_world(tmp_path) as world:
        first = world.company(name="Acme Inc", domain="acme.example")
        second = world.company(name="Acme Incorporated", domain="https://www.acme.example/")
        deals = [world.deal(companies=[first]), world.deal(companies=[second])]
        sync_engine, webhook_engine = world.runtime.inbound(world.tenant), world.runtime.inbound(world.tenant)
        paused, go_on = threading.Event(), threading.Event()
        real_write = sync_engine._linker.write_pending

        def write_pending_later() -> object:
            paused.set()
            assert go_on.wait(20)
            return real_write()

        sync_engine._linker.write_pending = write_pending_later  # type: ignore[method-assign]
        runs = [threading.Thread(target=engine.process_ids, args=([deal],), kwargs={"trigger": trigger})
                for engine, deal, trigger in ((sync_engine, deals[0], "incremental"),
                                              (webhook_engine, deals[1], "webhook"))]
        runs[0].start()
        assert paused.wait(20)
        runs[1].start()
        time.sleep(0.5)  # the webhook is waiting for the domain's claim now
        go_on.set()
        for run in runs:
            run.join(30)
        assert [c.name for c in world.services.list_companies()] == ["Acme Inc"]
        assert world.order_for(deals[0]).company_id == world.order_for(deals[1]).company_id


def test_a_deal_moved_into_a_stage_just_made_won_becomes_an_order(tmp_path):
    """The admin marks a stage closed won in HubSpot; a deal moved into it is read by the next
    scheduled run within the pipelines' 5-minute cache. The run reads the pipelines again
    rather than skip it as excluded (with a short overlap, the checkpoint would pass it)."""
    from ._clock import ManualClock

    clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    short_overlap = lambda hs: plugin_settings(hs, sync_overlap_seconds=60)  # noqa: E731
    with open_world(tmp_path, on_clock=clock, settings=short_overlap) as world:
        pipeline = world.hubspot.add_pipeline("Custom", [
            {"id": "1001", "label": "Quoted", "isClosed": "false", "probability": "0.5"},
            {"id": "1002", "label": "Signed", "isClosed": "false", "probability": "0.9"}])
        world.deal(dealname="warm-up")
        assert world.sync().created == 1  # reads (and caches) the pipelines
        stage = next(s for s in world.hubspot.portal.pipelines[pipeline]["stages"] if s["id"] == "1002")
        stage["metadata"].update({"isClosed": "true", "probability": "1.0"})
        clock.advance(minutes=1)
        deal = world.hubspot.add_object("deals", {"dealname": "Signed deal", "pipeline": pipeline,
                                                  "dealstage": "1002"})
        clock.advance(minutes=1)
        assert world.sync().created == 1
        assert world.order_for(deal) is not None


def test_a_link_without_an_applied_version_is_updated_not_failed(world):
    """A deal link whose applied version is null (written by hand, or an older store) is updated
    from the deal, as one without the key is; it does not fail its chunk."""
    deal_id = world.deal(dealname="First name")
    world.sync()
    link = world.store.get_link_by_hubspot(world.tenant, str(world.hubspot.portal_id), "deal", deal_id)
    world.store.update_link_synced(link.id, {**link.synced, inbound_module.APPLIED_VERSION: None})
    world.hubspot.update_object("deals", deal_id, {"dealname": "Newer name"})
    result = world.sync()
    assert (result.updated, result.failed) == (1, 0)
    assert world.order_for(deal_id).name == "Newer name"
