"""The Django bridge beyond the conformance suite: its app, and the host rules its services
rely on (tenant context, versioned companies, non-unique external ids, the notes timeline)."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from Tracker.models import (
    Companies,
    Milestone,
    MilestoneTemplate,
    NotificationOutbox,
    Orders,
    Tenant,
    TenantContextRequired,
)
from Tracker.utils.tenant_context import get_current_tenant_id, tenant_context

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.contrib.django import plugin_manager
from ambac_hubspot_plugin.contrib.django.apps import build_plugin_manager
from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices
from ambac_hubspot_plugin.errors import HostRecordError
from ambac_hubspot_plugin.host import CompanyDraft, OrderDraft, OrderStatus

SECURE_MODELS = [Companies, Orders, Milestone, MilestoneTemplate, NotificationOutbox]


@pytest.fixture
def services(tmp_path: Path) -> DjangoHostServices:
    """Services of a fresh tenant on the default (SQLite) database."""
    tenant = Tenant.objects.create(name="Acme", slug=f"t-{uuid.uuid4().hex}")
    return DjangoHostServices(tenant.pk, data_dir=tmp_path)


# The app ---------------------------------------------------------------------------------------


def test_the_app_built_the_plugin_manager_with_the_plugin_from_its_entry_point() -> None:
    """Django's start left a manager on which the ``hubspot`` entry point and its runtime are
    registered and answer the contract's hooks."""
    pm = plugin_manager()

    assert pm.get_plugin(plugin_module.PLUGIN_ID) is plugin_module
    assert pm.get_plugin(plugin_module.RUNTIME_NAME) is not None
    assert [m.id for m in pm.hook.ambac_plugin_manifest()] == [plugin_module.PLUGIN_ID]


def test_building_the_plugin_manager_touches_no_database(django_db_blocker: Any) -> None:
    """``ready()``'s work runs with every database refused (as during ``migrate`` on an empty
    database, any query would raise here)."""
    with django_db_blocker.block():
        pm = build_plugin_manager()

    assert pm.get_plugin(plugin_module.PLUGIN_ID) is plugin_module


# The double's rules the bridge relies on ------------------------------------------------------


@pytest.mark.parametrize("model", SECURE_MODELS, ids=lambda m: m.__name__)
def test_the_hosts_managers_raise_outside_a_tenant_context(model: type) -> None:
    """Every tenant-scoped model's default manager refuses to build a query without a tenant."""
    with pytest.raises(TenantContextRequired):
        model.objects.all()  # type: ignore[attr-defined]
    with tenant_context(uuid.uuid4()):
        model.objects.all()  # type: ignore[attr-defined]


def test_the_tenant_context_holds_a_string() -> None:
    """A UUID entered as the tenant reads back as its text, and leaving restores None."""
    tenant_id = uuid.uuid4()

    with tenant_context(tenant_id):
        assert get_current_tenant_id() == str(tenant_id)
    assert get_current_tenant_id() is None


# The services -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_services_enter_their_tenant_and_leave_the_callers_context_as_it_was(
    services: DjangoHostServices,
) -> None:
    """Calls work outside any tenant context and inside another tenant's, reading their own
    tenant's rows, and leave the caller's context unchanged."""
    order = services.create_order(OrderDraft(name="Bracket", external_id="deal-1"))
    elsewhere = str(uuid.uuid4())

    assert get_current_tenant_id() is None
    with tenant_context(elsewhere):
        assert services.get_order(order.id) == order
        assert get_current_tenant_id() == elsewhere


def test_capabilities_name_only_fields_the_hosts_models_have() -> None:
    """Each order and company field the services report maps to a field of ``Orders`` or
    ``Companies``, and the contract fields those models lack are not reported."""
    capabilities = DjangoHostServices(uuid.uuid4()).capabilities()
    order_columns = {f.name for f in Orders._meta.get_fields()}
    company_columns = {f.name for f in Companies._meta.get_fields()}

    relations = {"company_id": "company", "customer_id": "customer"}
    assert {relations.get(f, f) for f in capabilities.order_fields} <= order_columns
    assert capabilities.company_fields <= company_columns
    assert not {"value", "currency", "order_date"} & (capabilities.order_fields | order_columns)
    assert not {"website", "phone", "address"} & (capabilities.company_fields | company_columns)
    assert capabilities.milestones


@pytest.mark.django_db
def test_updating_a_company_saves_a_new_version(services: DjangoHostServices) -> None:
    """A change is a new row that becomes current and is what name and external-id lookups find;
    the old row stays, pointed to by the new one."""
    first = services.create_company(CompanyDraft(name="Acme", description="Lathes", external_id="co-1"))

    second = services.update_company(first.id, {"name": "Acme Machining"})

    assert second.id != first.id
    assert (second.name, second.description, second.external_id) == ("Acme Machining", "Lathes", "co-1")
    assert list(services.find_companies_by_name("Acme Machining")) == [second]
    assert list(services.find_companies_by_name("Acme")) == []
    assert services.create_company(CompanyDraft(name="Other", external_id="co-1")) == second
    with tenant_context(services.tenant_id):
        old, new = Companies.objects.get(pk=first.id), Companies.objects.get(pk=second.id)
    assert (old.is_current_version, new.is_current_version) == (False, True)
    assert (new.previous_version_id, new.version) == (old.pk, 2)
    assert services.update_company(second.id, {"name": "Acme Machining"}) == second


@pytest.mark.django_db
def test_updating_a_superseded_company_version_changes_the_current_one(services: DjangoHostServices) -> None:
    """An update naming an old version (the plugin's link not moved yet) goes to the newest: one
    current version, with the host's own edit kept, not a second one forked from the old row."""
    first = services.create_company(CompanyDraft(name="Acme", description="Lathes"))
    with tenant_context(services.tenant_id):
        second = Companies.objects.get(pk=first.id).create_new_version(description="Lathes and mills")

    third = services.update_company(first.id, {"name": "Acme Machining"})

    assert (third.name, third.description, third.previous_id) == ("Acme Machining", "Lathes and mills", str(second.pk))
    with tenant_context(services.tenant_id):
        current = list(Companies.objects.filter(is_current_version=True).values_list("pk", flat=True))
    assert [str(pk) for pk in current] == [third.id]


@pytest.mark.django_db
def test_create_order_adopts_the_oldest_host_order_with_the_external_id(services: DjangoHostServices) -> None:
    """The host lets several orders share an external id; the services find and return the
    oldest rather than creating one more."""
    with tenant_context(services.tenant_id):
        oldest = Orders.objects.create(tenant_id=services.tenant_id, name="First", external_id="deal-9")
        Orders.objects.create(tenant_id=services.tenant_id, name="Second", external_id="deal-9")

    adopted = services.create_order(OrderDraft(name="Plugin's", external_id="deal-9"))

    assert adopted.id == str(oldest.pk)
    assert services.find_order_by_external_id("deal-9") == adopted
    with tenant_context(services.tenant_id):
        assert Orders.objects.filter(external_id="deal-9").count() == 2


@pytest.mark.django_db
def test_internal_notes_stay_in_the_hosts_timeline_and_out_of_the_order(services: DjangoHostServices) -> None:
    """A note goes into the host's timeline as INTERNAL through ``Orders.add_note``; the order
    record's ``customer_note`` keeps only the customer-visible text and is never overwritten."""
    order = services.create_order(OrderDraft(name="Bracket", customer_note="Gate 2 only"))

    services.add_order_note(order.id, "Deal moved to Closed won")

    with tenant_context(services.tenant_id):
        notes = Orders.objects.get(pk=order.id).get_notes()
    assert [(n["visibility"], n["message"]) for n in notes] == [
        ("INTERNAL", "Deal moved to Closed won"), ("VISIBLE", "Gate 2 only")]
    assert services.get_order(order.id) == order
    with pytest.raises(HostRecordError) as refused:
        services.update_order(order.id, {"customer_note": "Replaced", "order_status": OrderStatus.RFI})
    assert refused.value.field == "customer_note"
    assert services.get_order(order.id) == order


@pytest.mark.django_db
def test_order_status_is_stored_as_the_hosts_value(services: DjangoHostServices) -> None:
    """The host's column holds the status value (``IN_PROGRESS``), not its label."""
    order = services.create_order(OrderDraft(name="Bracket", order_status=OrderStatus.IN_PROGRESS))

    with tenant_context(services.tenant_id):
        assert Orders.objects.get(pk=order.id).order_status == "IN_PROGRESS"


def test_plugin_data_dir_comes_from_the_hosts_settings(tmp_path: Path, settings: Any) -> None:
    """Without a directory given, ``AMBAC_PLUGIN_DATA_DIR`` is the root; unset, the error says
    which setting to add."""
    services = DjangoHostServices(uuid.uuid4())

    with pytest.raises(ImproperlyConfigured, match="AMBAC_PLUGIN_DATA_DIR"):
        services.plugin_data_dir("hubspot")
    settings.AMBAC_PLUGIN_DATA_DIR = str(tmp_path)
    assert services.plugin_data_dir("hubspot") == tmp_path / "hubspot"
    assert (tmp_path / "hubspot").is_dir()


@pytest.mark.django_db(transaction=True)
def test_a_call_from_a_thread_without_a_connection_closes_the_one_it_opened(services: DjangoHostServices) -> None:
    """The plugin's own threads have no request to close their connections: a call that opened
    the thread's connection closes it, while a connection the caller already had stays open."""
    seen: list[object] = []

    def work() -> None:
        order = services.create_order(OrderDraft(name="Threaded", external_id="deal-t"))
        seen.append(connections["default"].connection)
        seen.append(services.get_order(order.id))
        seen.append(connections["default"].connection)
        connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    connections["default"].ensure_connection()
    services.find_order_by_external_id("deal-t")

    assert seen[0] is None and seen[2] is None
    assert seen[1] is not None
    assert connections["default"].connection is not None
