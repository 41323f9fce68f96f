"""End to end on the host double with the real plugin enabled against the sandbox: an order
status the host saves in a transaction -> outbox row -> ``drain_outbox`` -> the plugin's queue
-> ``runtime.drain()`` -> the deal's ``ambac_order_status`` in HubSpot."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

import pluggy
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from integrations.models import IntegrationConfig
from Tracker.models import Companies, Orders, Tenant
from Tracker.utils.tenant_context import tenant_context

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.contrib.django.apps import build_plugin_manager
from ambac_hubspot_plugin.contrib.django.events import record_shipment
from ambac_hubspot_plugin.contrib.django.models import HostEventOutbox
from ambac_hubspot_plugin.contrib.django.outbox import DrainReport, drain_outbox
from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices
from ambac_hubspot_plugin.contrib.django.tenant_settings import settings_for
from ambac_hubspot_plugin.host import Shipment
from ambac_hubspot_plugin.sandbox import Sandbox
from ambac_hubspot_plugin.store import ClaimTimeoutError

from .._world import plugin_settings
from ..test_store_outage import SqliteOutage


@attrs.define
class World:
    """A tenant of the double with the plugin enabled on ``pm``, and one order linked to a deal."""

    hubspot: Sandbox
    pm: pluggy.PluginManager
    alias: str
    data_dir: Path
    tenant: str
    deal: str = ""
    order_id: str = ""

    @property
    def runtime(self) -> Any:
        return self.pm.get_plugin(plugin_module.RUNTIME_NAME).runtime

    def deal_status(self) -> object:
        return self.hubspot.get_object("deals", self.deal).get("ambac_order_status")

    def drain_outbox(self, *, later: bool = False) -> DrainReport:
        """Drain now, or (``later``) once every failed row's back-off has passed."""
        now = timezone.now() + timedelta(minutes=10) if later else None
        return drain_outbox(self.pm, using=self.alias, data_dir=self.data_dir, now=now)

    def company_saved_as_a_new_version(self) -> tuple[str, str, str]:
        """A HubSpot company on a closed-won deal, synced into a host company (linked), which the
        host then saves as a new version, in a transaction, as it does: (HubSpot id, the linked
        version's id, the new version's id). The save's outbox row is not drained yet."""
        hs_company = self.hubspot.add_object("companies", {"name": "Acme Co", "domain": "acme.example"})
        deal = self.hubspot.add_object("deals", {"dealname": "With company", "pipeline": "default",
                                                 "dealstage": "closedwon"}, {"companies": [hs_company]})
        assert self.runtime.run_sync(self.tenant).created == 1
        self.runtime.drain()
        services = DjangoHostServices(self.tenant, using=self.alias, data_dir=self.data_dir)
        first = services.find_order_by_external_id(f"hubspot:{self.hubspot.portal_id}:deal:{deal}").company_id
        with transaction.atomic(using=self.alias), tenant_context(self.tenant):
            row = Companies.objects.using(self.alias).get(pk=first)
            second = str(row.create_new_version(description="Lathes and mills").pk)
        return hs_company, first, second

    def save_status(self, status: str, *, fail: bool = False) -> None:
        """The host saves an order status as it does (``update_fields``), in a transaction that
        commits, or raises after the save when ``fail``."""
        with transaction.atomic(using=self.alias), tenant_context(self.tenant):
            row = Orders.objects.using(self.alias).get(pk=self.order_id)
            row.order_status = status
            row.save(update_fields=["order_status"])
            if fail:
                raise RuntimeError("the view failed after the save")


class _EndToEnd:
    alias = "default"

    @pytest.fixture(autouse=True)
    def drains_by_hand(self, no_drain_trigger: None) -> None:
        """These tests drain by hand (see ``no_drain_trigger``)."""

    @pytest.fixture
    def world(self, hs: Sandbox, tmp_path: Path) -> Iterator[World]:
        # The store stays a SQLite file (the outage test breaks it); the token is kept as the host
        # keeps it, in the encrypted field, the rest in the plain config.
        raw = plugin_settings(hs, store_url=f"sqlite:///{tmp_path}/hubspot/hubspot.sqlite3")
        tenant = Tenant.objects.using(self.alias).create(name="Acme", slug=f"t-{uuid.uuid4().hex}")
        row = IntegrationConfig.objects.using(self.alias).create(
            tenant=tenant, provider="hubspot", is_enabled=True, api_key=raw["credentials"]["access_token"],
            config={key: value for key, value in raw.items() if key != "credentials"})
        chosen = settings_for(row, using=self.alias)
        pm = build_plugin_manager()
        world = World(hs, pm, self.alias, tmp_path, str(tenant.pk))
        try:
            services = DjangoHostServices(world.tenant, using=self.alias, data_dir=tmp_path)
            (report,) = [r for r in pm.hook.ambac_plugin_enabled(
                host=services, tenant_id=world.tenant, plugin_id=plugin_module.PLUGIN_ID,
                settings=chosen) if r is not None]
            assert report.ok, report
            world.deal = hs.add_object("deals", {"dealname": "Deal", "pipeline": "default",
                                                 "dealstage": "closedwon"})
            assert world.runtime.run_sync(world.tenant).created == 1
            world.runtime.drain()
            order = services.find_order_by_external_id(f"hubspot:{hs.portal_id}:deal:{world.deal}")
            assert order is not None
            world.order_id = order.id
            assert world.deal_status() == "PENDING"
            assert not HostEventOutbox.objects.using(self.alias).exists(), "the plugin's writes are no events"
            yield world
        finally:
            runtime = pm.get_plugin(plugin_module.RUNTIME_NAME)
            if runtime is not None and runtime._runtime is not None:
                runtime._runtime.close()

    def test_a_committed_status_reaches_the_deal(self, world: World) -> None:
        world.save_status("IN_PROGRESS")
        world.runtime.drain()
        assert world.deal_status() == "PENDING", "nothing is pushed before the outbox is drained"

        assert world.drain_outbox() == DrainReport(pushed=1)
        world.runtime.drain()

        assert world.deal_status() == "IN_PROGRESS"

    def test_a_worker_process_that_never_saw_the_enable_takes_the_tenant_up_and_pushes(
            self, world: World) -> None:
        """The drain starts the enabled tenants of its process first (``ensure_started``)."""
        world.runtime.close()
        worker = build_plugin_manager()
        try:
            world.save_status("ON_HOLD")
            assert drain_outbox(worker, using=world.alias, data_dir=world.data_dir) == DrainReport(pushed=1)
            worker.get_plugin(plugin_module.RUNTIME_NAME).runtime.drain()
        finally:
            worker.get_plugin(plugin_module.RUNTIME_NAME).runtime.close()

        assert world.deal_status() == "ON_HOLD"

    def test_an_event_of_a_tenant_enabled_in_the_host_but_not_startable_here_is_kept(
            self, world: World) -> None:
        """A worker whose start of the tenant fails (its saved settings refused here) and that
        sees no store binding (another data directory) has the hook record nothing: the row is
        kept with the error, and pushed once the tenant starts (the smoke run lost it)."""
        row = IntegrationConfig.objects.using(world.alias).get(tenant_id=world.tenant)
        good = dict(row.config)
        row.config = {**good, "sync_interval_minutes": "never"}
        row.save()
        worker = build_plugin_manager()
        try:
            world.save_status("ON_HOLD")
            assert drain_outbox(worker, using=world.alias, data_dir=world.data_dir / "worker") == \
                DrainReport(failed=1)
            (kept,) = HostEventOutbox.objects.using(world.alias)
            assert (kept.attempts, "could not start" in kept.last_error) == (1, True)

            row.config = good
            row.save()
            assert drain_outbox(worker, using=world.alias, data_dir=world.data_dir) == DrainReport(), \
                "the failed row waits for its back-off"
            assert drain_outbox(worker, using=world.alias, data_dir=world.data_dir,
                                now=timezone.now() + timedelta(minutes=10)) == DrainReport(pushed=1)
            worker.get_plugin(plugin_module.RUNTIME_NAME).runtime.drain()
        finally:
            worker.get_plugin(plugin_module.RUNTIME_NAME).runtime.close()
        assert world.deal_status() == "ON_HOLD"

    def test_a_shipment_recorded_in_the_hosts_transaction_reaches_the_deal(self, world: World) -> None:
        """The host has no shipping fields: its code calls record_shipment in its transaction;
        a rolled-back one records nothing, a committed one writes the deal's shipping properties."""
        shipment = Shipment(carrier="UPS", tracking_number="1Z999", tracking_url="https://ups.example/1Z999",
                            ship_date=date(2026, 12, 1))

        def ship(parcel: Shipment, *, fail: bool = False) -> None:
            with transaction.atomic(using=world.alias), tenant_context(world.tenant):
                record_shipment(Orders.objects.using(world.alias).get(pk=world.order_id), parcel)
                if fail:
                    raise RuntimeError("the label printer failed")

        with pytest.raises(RuntimeError, match="label printer"):
            ship(attrs.evolve(shipment, carrier="DHL"), fail=True)
        ship(shipment)

        assert world.drain_outbox() == DrainReport(pushed=1)
        world.runtime.drain()

        deal = world.hubspot.get_object("deals", world.deal)
        assert {name: deal.get(name) for name in ("ambac_carrier", "ambac_tracking_number", "ambac_tracking_url")} == \
            {"ambac_carrier": "UPS", "ambac_tracking_number": "1Z999", "ambac_tracking_url": "https://ups.example/1Z999"}
        assert str(deal.get("ambac_ship_date", "")).startswith("2026-12-01")

    def test_a_rolled_back_status_pushes_nothing(self, world: World) -> None:
        with pytest.raises(RuntimeError, match="view failed"):
            world.save_status("CANCELLED", fail=True)

        assert world.drain_outbox() == DrainReport()
        world.runtime.drain()
        assert world.deal_status() == "PENDING"

    def test_a_status_saved_while_the_store_is_unreachable_is_pushed_once_it_is_back(self, world: World) -> None:
        outage = SqliteOutage(world.data_dir / plugin_module.PLUGIN_ID / "hubspot.sqlite3",
                              lambda: world.runtime.store_for(world.tenant))
        outage.cut()
        try:
            world.save_status("COMPLETED")  # the host's save is not disturbed by the outage
            assert world.drain_outbox() == DrainReport(failed=1)
        finally:
            outage.restore()
        (row,) = HostEventOutbox.objects.using(world.alias)
        assert row.attempts == 1

        assert world.drain_outbox(later=True) == DrainReport(pushed=1)
        world.runtime.drain()

        assert world.deal_status() == "COMPLETED"
        assert not HostEventOutbox.objects.using(world.alias).exists()

    def test_a_company_saved_as_a_new_version_keeps_its_link(self, world: World) -> None:
        """The host saves a company edit as a new row (new id) and names that one in its event:
        the link, on the version the plugin made, follows it, so HubSpot's next change of the
        company is applied to the current version (not to the old one, which would fork it)."""
        hs_company, _first, second = world.company_saved_as_a_new_version()
        assert world.drain_outbox() == DrainReport(pushed=1)
        world.runtime.drain()

        store = world.runtime.store_for(world.tenant)
        link = store.get_link_by_hubspot(world.tenant, str(world.hubspot.portal_id), "company", hs_company)
        assert link.host_id == second
        world.hubspot.update_object("companies", hs_company, {"name": "Acme Machining"})
        (outcome,) = world.runtime.inbound(world.tenant).update_linked("companies", [hs_company])
        assert outcome.action == "updated"
        with tenant_context(world.tenant):
            (current,) = Companies.objects.using(world.alias).filter(is_current_version=True, name="Acme Machining")
        assert (str(current.previous_version_id), current.description) == (second, "Lathes and mills")

    def test_a_company_link_that_cannot_move_now_fails_its_push_alone(self, world: World, monkeypatch) -> None:
        """The company's claim is held too long (a worker applying it): that company's push fails
        and is retried; the order pushed in the same batch is not failed with it."""
        hs_company, first, _second = world.company_saved_as_a_new_version()
        world.save_status("IN_PROGRESS")
        store = world.runtime.store_for(world.tenant)
        held = store.hold_claim

        def held_elsewhere(tenant_id, key, **kwargs):
            if key.startswith("company:"):
                raise ClaimTimeoutError(tenant_id, key, timedelta(seconds=15))
            return held(tenant_id, key, **kwargs)

        monkeypatch.setattr(store, "hold_claim", held_elsewhere)
        assert world.drain_outbox() == DrainReport(pushed=2)
        world.runtime.drain()
        assert world.deal_status() == "IN_PROGRESS", "the order's push went out"
        (job,) = store.queued(world.tenant, ["host.company.saved"])
        assert job.last_error is not None and "was not moved" in job.last_error
        link = store.get_link_by_hubspot(world.tenant, str(world.hubspot.portal_id), "company", hs_company)
        assert (link.host_id, job.state.value) == (first, "pending"), "moved by the job's retry"


@pytest.mark.django_db(transaction=True, databases=["default"])
class TestEndToEndOnSQLite(_EndToEnd):
    alias = "default"


@pytest.mark.postgres
@pytest.mark.skipif("postgres" not in settings.DATABASES, reason="PostgreSQL does not answer at 127.0.0.1:5432")
@pytest.mark.django_db(transaction=True, databases=["postgres"])
class TestEndToEndOnPostgreSQL(_EndToEnd):
    alias = "postgres"
