"""Webhooks end to end: the sandbox delivers signed events to the reference host over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from ambac_hubspot_plugin.host import OrderStatus
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from ._world import PluginWorld, plugin_settings, serving


@attrs.define
class Live(PluginWorld):
    """The plugin world with the host served on loopback and the sandbox delivering webhooks."""

    def deliver(self) -> None:
        """Wait for the sandbox to deliver, then run the queued webhook jobs."""
        assert self.hubspot.webhooks.flush(10)
        self.runtime.drain()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """Sandbox, served reference host and subscriptions as the docs tell admins to set them up."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot, ReferenceHost(tmp_path / "host") as host, \
            serving(host) as base:
        tenant = host.create_tenant("Acme")
        settings = plugin_settings(hubspot, webhook_client_secret=hubspot.client_secret, public_base_url=base)
        host.enable_plugin(tenant, "hubspot", settings)
        hubspot.webhooks.set_target(f"{base}/integrations/hubspot/webhooks/{tenant}")
        for kind in ("creation", "deletion", "merge", "restore"):
            hubspot.webhooks.subscribe(f"deal.{kind}")
        for prop in ("dealstage", "dealname", "amount", "ambac_order_status"):
            hubspot.webhooks.subscribe("deal.propertyChange", prop)
        hubspot.webhooks.subscribe("company.propertyChange", "phone")
        yield Live(hubspot, host, tenant, settings)


def test_closed_won_webhook_creates_the_order_without_a_sync(live):
    """A deal moved to closed won becomes an order from its webhook alone."""
    deal = live.deal(stage="contractsent", dealname="Webhook deal")
    live.deliver()
    assert live.order_for(deal) is None
    live.hubspot.update_object("deals", deal, {"dealstage": "closedwon"})
    live.deliver()
    assert live.order_for(deal).name == "Webhook deal"
    assert live.store.recent_runs(live.tenant) == [], "no sync run was needed"


def test_webhook_and_sync_for_the_same_deal_make_one_order(live):
    """Whichever path sees a deal first, there is exactly one order."""
    deal = live.deal()
    live.runtime.run_sync(live.tenant)
    live.deliver()
    live.runtime.run_sync(live.tenant)
    assert len(live.services.list_orders()) == 1 and live.order_for(deal) is not None


def test_redelivered_and_shuffled_batches_apply_once(live):
    """Duplicate and out-of-order delivery still end with one order holding the latest name."""
    live.hubspot.webhooks.configure(duplicate=True, shuffle=True)
    deal = live.deal(stage="contractsent", dealname="v1")
    for name in ("v2", "v3"):
        live.hubspot.update_object("deals", deal, {"dealname": name})
    live.hubspot.update_object("deals", deal, {"dealstage": "closedwon"})
    live.deliver()
    assert [o.name for o in live.services.list_orders()] == ["v3"]


def test_deletion_flags_the_order_and_restore_clears_it(live):
    """A deleted deal keeps its order with a note and a log entry; restoring clears the flag."""
    deal = live.deal(dealname="Doomed")
    live.deliver()
    order = live.order_for(deal)
    live.hubspot.archive_object("deals", deal)
    live.deliver()
    assert live.services.get_order(order.id) is not None
    notes = live.host.order_notes(live.tenant, order.id)
    assert len(notes) == 1 and "deleted in HubSpot" in notes[0]
    assert live.store.read_log(live.tenant, record=f"deal:{deal}", what="webhook.deletion").entries
    live.hubspot.restore_object("deals", deal)
    live.deliver()
    assert "restored" in live.host.order_notes(live.tenant, order.id)[-1]
    link = live.store.get_link_by_hubspot(live.tenant, str(live.hubspot.portal_id), "deal", deal)
    assert "_deleted_in_hubspot" not in link.synced


def test_a_deleted_deals_order_is_not_pushed_nor_requeued_until_it_is_restored(live):
    """Pushes to a deleted deal would fail (not found) until dead-lettered, and reconciliation
    would queue them again every cycle: while the deal is deleted its order's changes are not
    pushed, and once it is restored reconciliation brings the deal up to date."""
    deal = live.deal(dealname="Doomed")
    live.deliver()
    order = live.order_for(deal)
    live.runtime.drain()
    live.hubspot.archive_object("deals", deal)
    live.deliver()
    live.host.set_order_status(live.tenant, order.id, OrderStatus.COMPLETED)
    live.runtime.drain()
    assert live.store.dead_letters(live.tenant) == [] and live.store.depths() == {}
    assert live.runtime.reconcile_outbound(live.tenant) == 0
    live.hubspot.restore_object("deals", deal)
    live.deliver()
    assert live.runtime.reconcile_outbound(live.tenant) == 1
    live.runtime.drain()
    assert live.hubspot.get_object("deals", deal)["ambac_order_status"] == "COMPLETED"


def test_a_restore_whose_webhook_was_missed_is_seen_by_the_next_sync(live):
    """The deal changes after its deletion (restored): the sync clears the flag, so the order's
    pushes resume, as they would after the restore webhook."""
    deal = live.deal(dealname="Doomed")
    live.deliver()
    live.hubspot.archive_object("deals", deal)
    live.deliver()
    live.hubspot.restore_object("deals", deal)
    live.hubspot.update_object("deals", deal, {"dealname": "Back"})
    live.sync()
    link = live.store.get_link_by_hubspot(live.tenant, str(live.hubspot.portal_id), "deal", deal)
    assert "_deleted_in_hubspot" not in link.synced
    assert live.store.read_log(live.tenant, record=f"deal:{deal}", what="sync.restore").entries


def test_merge_moves_the_order_to_the_surviving_deal(live):
    """Merging a linked deal into an unlinked one moves the link and records why."""
    linked = live.deal(dealname="Linked")
    other = live.deal(stage="contractsent", dealname="Other")
    live.deliver()
    order = live.order_for(linked)
    live.hubspot.merge_objects("deals", other, linked)
    live.deliver()
    link = live.store.get_link_by_hubspot(live.tenant, str(live.hubspot.portal_id), "deal", other)
    assert link is not None and link.host_id == order.id
    assert "merged into deal" in live.host.order_notes(live.tenant, order.id)[0]
    assert len(live.services.list_orders()) == 1


def test_our_own_writes_come_back_as_echoes_and_are_dropped(live):
    """The status we push to the deal returns as a webhook that is recognised and not applied."""
    deal = live.deal()
    live.deliver()
    order = live.order_for(deal)
    live.host.set_order_status(live.tenant, order.id, OrderStatus.IN_PROGRESS)
    live.runtime.drain()  # pushes ambac_order_status to the deal
    assert live.hubspot.get_object("deals", deal)["ambac_order_status"] == "IN_PROGRESS"
    live.deliver()
    (stats,) = live.store.webhook_portal_stats(live.tenant)
    assert stats.echoes >= 1
    order = live.services.get_order(order.id)
    assert order.order_status is OrderStatus.IN_PROGRESS, "the echo did not bounce back into the order"


def test_company_property_change_updates_the_linked_host_company(live):
    """A name edit on a linked company in HubSpot reaches the host company; a phone edit (the
    host's companies have no phone) reaches the plugin's record of the company."""
    company = live.hubspot.add_object("companies", {"name": "Acme", "domain": "acme.example", "phone": "1"})
    live.hubspot.add_object("deals", {"dealname": "D", "pipeline": "default", "dealstage": "closedwon"},
                            {"companies": [company]})
    live.deliver()
    live.hubspot.update_object("companies", company, {"name": "Acme Renamed", "phone": "+1 555 0100"})
    live.deliver()
    (host_company,) = live.services.list_companies()
    assert host_company.name == "Acme Renamed"
    link = live.runtime.store_for(live.tenant).get_link_by_host(live.tenant, "company", host_company.id)
    assert link.synced["phone"] == "+1 555 0100"


def test_a_drain_reads_many_deals_in_batches(live):
    """Twenty deals moved to closed won at once cost one deal read and one association read
    per direction, not twenty of each."""
    deals = [live.deal(stage="contractsent", dealname=f"Bulk {i}") for i in range(20)]
    live.deliver()
    live.hubspot.clear_requests()
    for deal in deals:
        live.hubspot.update_object("deals", deal, {"dealstage": "closedwon"})
    assert live.hubspot.webhooks.flush(10)
    live.runtime.drain()
    assert all(live.order_for(d) is not None for d in deals)
    paths = [r.path for r in live.hubspot.requests]
    assert paths.count("/crm/objects/2026-09/deals/batch/read") == 1
    assert paths.count("/crm/associations/2026-09/deals/companies/batch/read") == 1
    assert paths.count("/crm/associations/2026-09/deals/contacts/batch/read") == 1


def test_the_same_value_set_again_later_by_a_person_is_not_an_echo(live):
    """Only a change right after our write is our echo; the value set again an hour later is a person's."""
    from datetime import UTC, datetime, timedelta

    deal = live.deal()
    live.deliver()
    order = live.order_for(deal)
    live.host.set_order_status(live.tenant, order.id, OrderStatus.IN_PROGRESS)
    live.runtime.drain()
    now = datetime.now(UTC)
    check = live.runtime.is_echo
    assert check(live.tenant, "deal", deal, "ambac_order_status", "IN_PROGRESS", now)
    assert not check(live.tenant, "deal", deal, "ambac_order_status", "IN_PROGRESS", now + timedelta(hours=1))
    assert not check(live.tenant, "deal", deal, "ambac_order_status", "COMPLETED", now)


def test_refusals_held_back_by_flood_protection_are_counted_at_the_next_tick(live):
    """Refusals over the per-minute log budget are counted in memory; the worker's tick writes
    them to the counters even when no further refusal comes to carry them."""
    import http.client

    port = int(live.runtime.settings_for(live.tenant).public_base_url.rsplit(":", 1)[1])
    for _ in range(15):  # 10 are logged per minute and reason; 5 are held back
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", f"/integrations/hubspot/webhooks/{live.tenant}", body=b"[]",
                     headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 401
        conn.close()
    store = live.runtime.store_for(live.tenant)
    [before] = store.webhook_refusal_stats(live.tenant)
    assert (before.refused, before.suppressed) == (10, 0)
    live.runtime.tick()
    [after] = store.webhook_refusal_stats(live.tenant)
    assert (after.refused, after.suppressed) == (15, 5)
