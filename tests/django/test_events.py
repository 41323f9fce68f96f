"""Events from the host, never lost: the receivers' outbox rows, written in the host's own
transaction, and the drain handing them to the plugin's hooks, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

import pluggy
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from Tracker.models import Companies, Orders, Tenant
from Tracker.utils.tenant_context import tenant_context

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.contrib.django.apps import build_plugin_manager
from ambac_hubspot_plugin.contrib.django.events import record_shipment, set_drain_trigger
from ambac_hubspot_plugin.contrib.django.models import HostEventOutbox
from ambac_hubspot_plugin.contrib.django.outbox import DrainReport, drain_outbox, retry_delay
from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices
from ambac_hubspot_plugin.host import CompanyDraft, OrderDraft, OrderStatus, Shipment, hookimpl


class Recorder:
    """A plugin keeping what each ``ambac_*`` event hook was called with; while ``failure`` is
    set its hooks raise it (as the plugin does when its store is unreachable)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.failure: Exception | None = None

    def _take(self, *call: Any) -> None:
        if self.failure is not None:
            raise self.failure
        self.calls.append(call)

    @hookimpl
    def ambac_order_status_changed(self, host: Any, order: Any, previous_status: OrderStatus) -> None:
        self._take("status", host.tenant_id, order.id, previous_status, order.order_status)

    @hookimpl
    def ambac_order_updated(self, host: Any, order: Any, changed_fields: Any) -> None:
        self._take("updated", host.tenant_id, order.id, tuple(changed_fields))

    @hookimpl
    def ambac_order_shipped(self, host: Any, order: Any, shipment: Shipment) -> None:
        self._take("shipped", host.tenant_id, order.id, shipment)

    @hookimpl
    def ambac_company_saved(self, host: Any, company: Any, changed_fields: Any) -> None:
        self._take("company", host.tenant_id, company.id, company.name, tuple(changed_fields))


class _Events:
    alias = "default"

    @pytest.fixture(autouse=True)
    def drains_by_hand(self, no_drain_trigger: None) -> None:
        """These tests drain by hand (see ``no_drain_trigger``)."""

    @pytest.fixture
    def recorder(self) -> Recorder:
        return Recorder()

    @pytest.fixture
    def pm(self, recorder: Recorder) -> Iterator[pluggy.PluginManager]:
        manager = build_plugin_manager()
        manager.register(recorder)
        yield manager
        runtime = manager.get_plugin(plugin_module.RUNTIME_NAME)
        if runtime is not None and runtime._runtime is not None:
            runtime._runtime.close()

    @pytest.fixture
    def tenant(self) -> str:
        return str(Tenant.objects.using(self.alias).create(name="Acme", slug=f"t-{uuid.uuid4().hex}").pk)

    def order(self, tenant: str, **fields: Any) -> Any:
        with tenant_context(tenant):
            return Orders.objects.using(self.alias).create(tenant_id=tenant, name="Bracket", **fields)

    def save_status_then_fail(self, tenant: str, order: Any, status: str) -> None:
        """Save a status in a transaction that then fails (as a view raising after the save)."""
        with transaction.atomic(using=self.alias), tenant_context(tenant):
            order.order_status = status
            order.save(update_fields=["order_status"])
            raise RuntimeError("the view failed after the save")

    def rows(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [(r.kind, r.record_id, r.details) for r in HostEventOutbox.objects.using(self.alias)]

    def drain(self, pm: pluggy.PluginManager, tmp_path: Path, now: datetime | None = None) -> DrainReport:
        return drain_outbox(pm, using=self.alias, data_dir=tmp_path, now=now)

    def test_a_committed_status_change_is_one_row_and_the_drain_passes_the_previous_status(
            self, tenant: str, pm: pluggy.PluginManager, recorder: Recorder, tmp_path: Path) -> None:
        order = self.order(tenant)
        assert self.rows() == [], "creating an order is no event"
        with transaction.atomic(using=self.alias), tenant_context(tenant):
            order.order_status = "IN_PROGRESS"
            order.save(update_fields=["order_status"])  # as the host saves a status

        assert self.rows() == [("order_status_changed", str(order.pk), {"previous_status": "PENDING"})]
        assert self.drain(pm, tmp_path) == DrainReport(pushed=1)
        assert recorder.calls == [("status", tenant, str(order.pk), OrderStatus.PENDING, OrderStatus.IN_PROGRESS)]
        assert self.rows() == []
        assert self.drain(pm, tmp_path) == DrainReport(), "nothing is handed over twice"

    def test_a_rolled_back_save_leaves_no_row_and_pushes_nothing(
            self, tenant: str, pm: pluggy.PluginManager, recorder: Recorder, tmp_path: Path) -> None:
        order = self.order(tenant)
        with pytest.raises(RuntimeError, match="view failed"):
            self.save_status_then_fail(tenant, order, "COMPLETED")

        assert self.rows() == []
        assert self.drain(pm, tmp_path) == DrainReport()
        assert recorder.calls == []

    def test_a_status_saved_unchanged_is_no_event_and_a_rolled_back_savepoint_takes_its_row(
            self, tenant: str) -> None:
        """A status saved alone in a transaction (the receivers write its row before the
        ``UPDATE``): unchanged, no row; in a savepoint the host rolls back, the row goes with it."""
        order = self.order(tenant)

        def inner_block_failing_after_a_save() -> None:
            with transaction.atomic(using=self.alias):
                order.order_status = "COMPLETED"
                order.save(update_fields=["order_status"])
                raise RuntimeError("the host's inner block failed")

        with transaction.atomic(using=self.alias), tenant_context(tenant):
            order.save(update_fields=["order_status"])  # still PENDING
            with pytest.raises(RuntimeError, match="inner block"):
                inner_block_failing_after_a_save()
            order.order_status = "ON_HOLD"
            order.save(update_fields=["order_status"])

        assert self.rows() == [("order_status_changed", str(order.pk), {"previous_status": "PENDING"})]

    def test_a_hook_that_raises_leaves_the_row_for_a_later_drain(
            self, tenant: str, pm: pluggy.PluginManager, recorder: Recorder, tmp_path: Path) -> None:
        order = self.order(tenant)
        recorder.failure = ConnectionError("the plugin's store is unreachable")
        with tenant_context(tenant):
            order.order_status = "ON_HOLD"
            order.save(update_fields=["order_status"])

        start = timezone.now()
        assert self.drain(pm, tmp_path, now=start) == DrainReport(failed=1)
        assert self.drain(pm, tmp_path, now=start + timedelta(seconds=4)) == DrainReport(), \
            "a failed row waits for its back-off"
        assert self.drain(pm, tmp_path, now=start + timedelta(seconds=5)) == DrainReport(failed=1)
        (row,) = HostEventOutbox.objects.using(self.alias)
        assert row.attempts == 2
        assert row.next_attempt_at == start + timedelta(seconds=15), "5 s, then 10 s"
        assert "the plugin's store is unreachable" in row.last_error
        assert recorder.calls == []

        recorder.failure = None
        assert self.drain(pm, tmp_path, now=start + timedelta(seconds=15)) == DrainReport(pushed=1)
        assert recorder.calls == [("status", tenant, str(order.pk), OrderStatus.PENDING, OrderStatus.ON_HOLD)]
        assert self.rows() == []

    def test_only_the_fields_a_save_writes_are_compared(self, tenant: str) -> None:
        """``update_fields=['order_status']`` writes the status only: a name changed in memory
        is no event; a full save of the same instance then is."""
        order = self.order(tenant)
        with tenant_context(tenant):
            order.order_status = "COMPLETED"
            order.name = "Renamed"
            order.save(update_fields=["order_status"])
            order.save()

        assert self.rows() == [
            ("order_status_changed", str(order.pk), {"previous_status": "PENDING"}),
            ("order_updated", str(order.pk), {"changed_fields": ["name"]}),
        ]

    def test_edits_archiving_and_notes_are_order_updates_and_a_save_changing_nothing_is_none(
            self, tenant: str) -> None:
        order = self.order(tenant)
        company = Companies.unscoped.using(self.alias).create(tenant_id=tenant, name="Acme", description="")
        HostEventOutbox.objects.using(self.alias).all().delete()  # the company's own event
        with tenant_context(tenant):
            order.save()
            order.company_id = str(company.pk)  # the host may set a key as text
            order.order_status = "CANCELLED"
            order.save()
            order.save()
            order.add_note(None, "called the customer")
            order.save()  # the host's add_note does not save
            order.delete()  # the host only archives

        assert self.rows() == [
            ("order_status_changed", str(order.pk), {"previous_status": "PENDING"}),
            ("order_updated", str(order.pk), {"changed_fields": ["company_id"]}),
            ("order_updated", str(order.pk), {"changed_fields": ["customer_note"]}),
            ("order_updated", str(order.pk), {"changed_fields": ["archived"]}),
        ]

    def test_a_save_outside_a_tenant_context_is_recorded_too(self, tenant: str) -> None:
        """Background work of the host saving through the unscoped manager still has its
        old values read (the receivers do not use the tenant-scoped manager)."""
        order = self.order(tenant)
        row = Orders.unscoped.using(self.alias).get(pk=order.pk)
        row.name = "Outside"
        row.save()

        assert self.rows() == [("order_updated", str(order.pk), {"changed_fields": ["name"]})]

    def test_companies_new_and_new_versions_are_saved_events_of_the_new_row(
            self, tenant: str, pm: pluggy.PluginManager, recorder: Recorder, tmp_path: Path) -> None:
        with tenant_context(tenant):
            first = Companies.objects.using(self.alias).create(tenant_id=tenant, name="Acme", description="")
            second = first.create_new_version(name="Acme Machining")
            second.save()  # unchanged

        assert self.rows() == [
            ("company_saved", str(first.pk), {"changed_fields": ["name", "description", "external_id"]}),
            ("company_saved", str(second.pk), {"changed_fields": ["name"]}),
        ]
        assert self.drain(pm, tmp_path) == DrainReport(pushed=2)
        assert recorder.calls == [
            ("company", tenant, str(first.pk), "Acme", ("name", "description", "external_id")),
            ("company", tenant, str(second.pk), "Acme Machining", ("name",)),
        ]

    def test_the_bridges_own_writes_leave_no_rows(self, tenant: str, tmp_path: Path) -> None:
        services = DjangoHostServices(tenant, using=self.alias, data_dir=tmp_path)
        order = services.create_order(OrderDraft(name="Bracket", external_id="deal-1"))
        services.update_order(order.id, {"order_status": OrderStatus.COMPLETED, "name": "Renamed",
                                         "archived": True})
        services.add_order_note(order.id, "pushed to HubSpot")
        company = services.create_company(CompanyDraft(name="Acme"))
        services.update_company(company.id, {"name": "Acme Machining"})

        assert self.rows() == []

    def test_the_drain_trigger_is_called_after_a_commit_only(self, tenant: str) -> None:
        nudged: list[str] = []
        order = self.order(tenant)
        set_drain_trigger(nudged.append)
        try:
            with transaction.atomic(using=self.alias), tenant_context(tenant):
                order.order_status = "IN_PROGRESS"
                order.save(update_fields=["order_status"])
                assert nudged == [], "only after the commit"
            with pytest.raises(RuntimeError, match="view failed"):
                self.save_status_then_fail(tenant, order, "COMPLETED")
        finally:
            set_drain_trigger(None)

        assert nudged == [self.alias]

    def test_a_shipment_is_a_row_in_the_callers_transaction_and_reaches_the_hook(
            self, tenant: str, pm: pluggy.PluginManager, recorder: Recorder, tmp_path: Path) -> None:
        order = self.order(tenant)
        shipment = Shipment(carrier="UPS", tracking_number="1Z", tracking_url="", ship_date=date(2026, 12, 1))

        def ship_then_fail() -> None:
            with transaction.atomic(using=self.alias):
                record_shipment(order, shipment)
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError, match="rolled back"):
            ship_then_fail()
        assert self.rows() == []
        with transaction.atomic(using=self.alias):
            record_shipment(order, shipment)
            record_shipment(order, Shipment(carrier="DHL"))  # a second parcel is its own event

        assert self.drain(pm, tmp_path) == DrainReport(pushed=2)
        assert recorder.calls == [("shipped", tenant, str(order.pk), shipment),
                                  ("shipped", tenant, str(order.pk), Shipment(carrier="DHL"))]
        with pytest.raises(TypeError):
            record_shipment(order, {"carrier": "UPS"})  # type: ignore[arg-type]  # the wrong type, on purpose

    def test_an_order_that_is_gone_drops_its_row(
            self, tenant: str, pm: pluggy.PluginManager, recorder: Recorder, tmp_path: Path) -> None:
        order = self.order(tenant)
        with tenant_context(tenant):
            order.order_status = "IN_PROGRESS"
            order.save(update_fields=["order_status"])
        Orders.unscoped.using(self.alias).filter(pk=order.pk).delete()  # a queryset really deletes

        assert self.drain(pm, tmp_path) == DrainReport(dropped=1)
        assert (self.rows(), recorder.calls) == ([], [])


def test_the_retry_delay_doubles_from_5_seconds_up_to_5_minutes() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 6, 7, 50)] == [5, 10, 20, 160, 300, 300]


@pytest.mark.django_db(transaction=True, databases=["default"])
class TestEventsOnSQLite(_Events):
    alias = "default"


@pytest.mark.postgres
@pytest.mark.skipif("postgres" not in settings.DATABASES, reason="PostgreSQL does not answer at 127.0.0.1:5432")
@pytest.mark.django_db(transaction=True, databases=["postgres"])
class TestEventsOnPostgreSQL(_Events):
    alias = "postgres"
