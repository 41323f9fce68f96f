"""The reference host: field limits, numbering, idempotency, tenancy, hooks, HTTP and scheduling.

Every test runs a real ReferenceHost on a SQLite file in ``tmp_path``, with a test-local plugin
registered through ``plugins=`` that records each hook call with its keyword arguments.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pluggy
import pytest

from ambac_hubspot_plugin.errors import ConfigError, HostRecordError
from ambac_hubspot_plugin.host import (
    COMPANY_FIELDS,
    MANAGE_INTEGRATIONS,
    ORDER_FIELDS,
    VIEW_INTEGRATIONS,
    Address,
    CompanyDraft,
    ContactDraft,
    HostCapabilities,
    HostServices,
    HttpRequest,
    HttpResponse,
    HttpRoute,
    OrderDraft,
    OrderStatus,
    PeriodicTask,
    PluginManifest,
    Shipment,
    UserType,
    hookimpl,
)
from ambac_hubspot_plugin.reference_host import ReferenceHost, TenantServices, normalize_domain

from ._clock import ManualClock
from ._world import EVERY_FIELD

REPO_ROOT = Path(__file__).resolve().parent.parent
START = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


Clock = ManualClock


class Recorder:
    """A test plugin that records every host hook call and can be told to fail one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, Exception] = {}
        self.task_runs: list[tuple[str, HostServices]] = []
        self.requests: list[tuple[HttpRequest, object]] = []
        self.task_ran = threading.Event()
        self.host: ReferenceHost | None = None  # lets a handler read current_user() as plugins do

    def _record(self, hook: str, **kwargs: Any) -> None:
        self.calls.append((hook, kwargs))
        if hook in self.fail:
            raise self.fail[hook]

    def hooks_called(self) -> list[str]:
        return [name for name, _ in self.calls]

    @hookimpl
    def ambac_plugin_manifest(self) -> PluginManifest:
        return PluginManifest(
            "recorder", "Recorder", "1.0", (VIEW_INTEGRATIONS,), {"type": "object"}
        )

    @hookimpl
    def ambac_plugin_enabled(self, host, tenant_id, settings):
        self._record("ambac_plugin_enabled", host=host, tenant_id=tenant_id, settings=settings)
        return {"started": tenant_id}

    @hookimpl
    def ambac_plugin_started(self, host, tenant_id, settings):
        self._record("ambac_plugin_started", host=host, tenant_id=tenant_id, settings=settings)

    @hookimpl
    def ambac_plugin_disabled(self, host, tenant_id):
        self._record("ambac_plugin_disabled", host=host, tenant_id=tenant_id)

    @hookimpl
    def ambac_settings_changed(self, host, tenant_id, settings):
        self._record("ambac_settings_changed", host=host, tenant_id=tenant_id, settings=settings)

    @hookimpl
    def ambac_order_status_changed(self, host, order, previous_status):
        self._record(
            "ambac_order_status_changed", host=host, order=order, previous_status=previous_status
        )

    @hookimpl
    def ambac_order_updated(self, host, order, changed_fields):
        self._record("ambac_order_updated", host=host, order=order, changed_fields=changed_fields)

    @hookimpl
    def ambac_order_shipped(self, host, order, shipment):
        self._record("ambac_order_shipped", host=host, order=order, shipment=shipment)

    @hookimpl
    def ambac_company_saved(self, host, company, changed_fields):
        self._record(
            "ambac_company_saved", host=host, company=company, changed_fields=changed_fields
        )

    @hookimpl
    def ambac_http_routes(self):
        return [
            HttpRoute("echo", "POST", "recorder/echo/{item}", None, self._echo),
            HttpRoute("status", "GET", "recorder/status", VIEW_INTEGRATIONS, self._echo),
            HttpRoute("boom", "GET", "recorder/boom", None, self._boom),
        ]

    @hookimpl
    def ambac_periodic_tasks(self):
        return [
            PeriodicTask("recorder.fast", timedelta(seconds=10), self._task("recorder.fast")),
            PeriodicTask("recorder.slow", timedelta(minutes=5), self._task("recorder.slow")),
        ]

    def _echo(self, request: HttpRequest) -> HttpResponse:
        services = (
            self.host.services(request.user.tenant_id) if self.host and request.user else None
        )
        self.requests.append((request, services.current_user() if services else None))
        return HttpResponse(200, request.body, {"X-Item": request.path_params.get("item", "")})

    def _boom(self, request: HttpRequest) -> HttpResponse:
        raise RuntimeError("handler exploded")

    def _task(self, name: str):
        def run(services: HostServices) -> None:
            self.task_runs.append((name, services))
            self.task_ran.set()
            if name in self.fail:
                raise self.fail[name]

        return run


@pytest.fixture
def clock() -> Clock:
    """A clock standing at START."""
    return Clock(START)


@pytest.fixture
def recorder() -> Recorder:
    """The recording test plugin."""
    return Recorder()


@pytest.fixture
def host(tmp_path: Path, recorder: Recorder, clock: Clock) -> Iterator[ReferenceHost]:
    """A reference host keeping every order and company field, with only the recorder
    registered, closed after the test."""
    with ReferenceHost(
        tmp_path / "host", load_entrypoints=False, plugins=[recorder], clock=clock,
        capabilities=EVERY_FIELD,
    ) as built:
        recorder.host = built
        yield built


@pytest.fixture
def tenant(host: ReferenceHost) -> int:
    """One tenant."""
    return host.create_tenant("Acme Machining")


@pytest.fixture
def services(host: ReferenceHost, tenant: int) -> TenantServices:
    """The services of that tenant."""
    return host.services(tenant)


# --- construction and the contract ----------------------------------------------------------


def test_services_implement_the_host_services_protocol(services: TenantServices):
    """TenantServices is a HostServices and is scoped to its tenant."""
    assert isinstance(services, HostServices)
    assert services.for_tenant(services.tenant_id).tenant_id == services.tenant_id


def test_each_host_builds_its_own_plugin_manager(tmp_path: Path, recorder: Recorder):
    """Two hosts never share a plugin manager, and the test plugin is registered in each."""
    with (
        ReferenceHost(tmp_path / "a", load_entrypoints=False, plugins=[recorder]) as first,
        ReferenceHost(tmp_path / "b", load_entrypoints=False) as second,
    ):
        assert first.plugin_manager is not second.plugin_manager
        assert first.plugin_manager.is_registered(recorder)
        assert not second.plugin_manager.is_registered(recorder)


def test_unknown_ambac_hookimpl_fails_at_construction(tmp_path: Path):
    """check_pending() rejects a plugin implementing an ambac_ hook the contract lacks."""

    class Typo:
        @hookimpl
        def ambac_order_deleted(self, host, order):
            """Not a hook of the contract."""

    typo = Typo()
    with pytest.raises(pluggy.PluginValidationError) as refused:
        ReferenceHost(tmp_path / "host", load_entrypoints=False, plugins=[typo])
    assert refused.value.plugin is typo


def test_rows_survive_reopening_the_data_dir(tmp_path: Path, clock: Clock):
    """Orders live in the SQLite file and are found again by a new host on the same directory."""
    with ReferenceHost(tmp_path / "host", load_entrypoints=False, clock=clock) as first:
        tenant = first.create_tenant("Acme")
        created = first.services(tenant).create_order(
            OrderDraft(name="Bracket", external_id="deal-1")
        )
    with ReferenceHost(tmp_path / "host", load_entrypoints=False, clock=clock) as second:
        assert second.services(tenant).find_order_by_external_id("deal-1") == created
        assert (tmp_path / "host" / "host.sqlite3").is_file()


def test_an_old_database_with_status_labels_and_staff_users_opens_with_the_values(tmp_path: Path, clock: Clock):
    """An earlier version stored status labels ("In progress") and ``STAFF`` users: opening the
    file turns them into the host's values, so every order and user reads back."""

    with ReferenceHost(tmp_path / "host", load_entrypoints=False, clock=clock) as first:
        tenant = first.create_tenant("Acme")
        services = first.services(tenant)
        orders = [services.create_order(OrderDraft(name=f"Order {s.name}", order_status=s)) for s in OrderStatus]
        user = first.create_user(tenant, "boss@example.com")
    with contextlib.closing(sqlite3.connect(tmp_path / "host" / "host.sqlite3")) as conn, conn:
        for status in OrderStatus:  # what the earlier version wrote
            conn.execute("UPDATE orders SET order_status = ? WHERE order_status = ?", (status.label, status.value))
        conn.execute("UPDATE users SET user_type = 'STAFF' WHERE id = ?", (user.id,))
    with ReferenceHost(tmp_path / "host", load_entrypoints=False, clock=clock) as second:
        services = second.services(tenant)
        assert [services.get_order(o.id).order_status for o in orders] == list(OrderStatus)
        (boss,) = services.find_contacts_by_email("boss@example.com")
        assert boss.user_type is UserType.INTERNAL
    with contextlib.closing(sqlite3.connect(tmp_path / "host" / "host.sqlite3")) as conn:
        stored = {row[0] for row in conn.execute("SELECT order_status FROM orders")}
    assert stored == {s.value for s in OrderStatus}


# --- field limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("draft_kwargs", "field"),
    [
        ({"name": "x" * 201}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "ok", "order_number": "N" * 21}, "order_number"),
        ({"name": "ok", "external_id": "e" * 256}, "external_id"),
        ({"name": "ok", "order_status": "Shipped"}, "order_status"),
        (
            {"name": "ok", "estimated_completion": datetime(2025, 1, 1, tzinfo=UTC)},
            "estimated_completion",
        ),
        ({"name": "ok", "order_date": "2025-01-01"}, "order_date"),
        ({"name": "ok", "value": 12.5}, "value"),
        ({"name": "ok", "value": Decimal("NaN")}, "value"),
        ({"name": "ok", "currency": "usd"}, "currency"),
        ({"name": "ok", "company_id": 999}, "company_id"),
        ({"name": "ok", "customer_id": 999}, "customer_id"),
    ],
)
def test_create_order_refuses_values_breaking_host_rules(
    services: TenantServices, draft_kwargs, field
):
    """Each rule violation raises HostRecordError naming the field, and no order is written."""
    with pytest.raises(HostRecordError) as caught:
        services.create_order(OrderDraft(**draft_kwargs))
    assert caught.value.field == field
    assert services.list_orders() == []


def test_values_at_the_limits_are_accepted(services: TenantServices):
    """Names of exactly 200/50 chars, a 20-char order number and a 255-char external id are fine."""
    order = services.create_order(
        OrderDraft(
            name="n" * 200, order_number="N" * 20, external_id="e" * 255, value=Decimal("0.10")
        )
    )
    company = services.create_company(CompanyDraft(name="c" * 50))
    assert (len(order.name), len(order.order_number), len(order.external_id or "")) == (
        200,
        20,
        255,
    )
    assert order.value == Decimal("0.10")
    assert str(order.value) == "0.10"
    assert len(company.name) == 50


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "x" * 201}, "name"),
        ({"order_number": ""}, "order_number"),
        ({"order_status": "Done"}, "order_status"),
        ({"archived": "yes"}, "archived"),
        ({"external_id": "e" * 256}, "external_id"),
        ({"customer_id": 12345}, "customer_id"),
    ],
)
def test_update_order_refuses_bad_values_and_changes_nothing(
    services: TenantServices, clock: Clock, changes, field
):
    """A bad update raises HostRecordError naming the field and leaves the order as it was."""
    order = services.create_order(OrderDraft(name="Bracket"))
    clock.advance(timedelta(minutes=1))
    with pytest.raises(HostRecordError) as caught:
        services.update_order(order.id, {"customer_note": "changed", **changes})
    assert caught.value.field == field
    assert services.get_order(order.id) == order


def test_order_number_and_external_id_are_unique_per_tenant(services: TenantServices):
    """Reusing another order's number or external id, on create or update, is refused by field."""
    first = services.create_order(OrderDraft(name="A", order_number="PO-1", external_id="deal-1"))
    second = services.create_order(OrderDraft(name="B"))
    with pytest.raises(HostRecordError) as on_create:
        services.create_order(OrderDraft(name="C", order_number="PO-1"))
    with pytest.raises(HostRecordError) as on_update:
        services.update_order(second.id, {"order_number": "PO-1"})
    with pytest.raises(HostRecordError) as on_external:
        services.update_order(second.id, {"external_id": "deal-1"})
    assert (on_create.value.field, on_update.value.field, on_external.value.field) == (
        "order_number", "order_number", "external_id",
    )  # fmt: skip
    assert [order.id for order in services.list_orders()] == [first.id, second.id]


@pytest.mark.parametrize(
    ("draft", "field"),
    [
        (CompanyDraft(name="c" * 51), "name"),
        (CompanyDraft(name=""), "name"),
        (CompanyDraft(name="Acme", external_id="e" * 256), "external_id"),
        (CompanyDraft(name="Acme", address=Address(city=7)), "address.city"),  # type: ignore[arg-type]
    ],
)
def test_create_company_refuses_bad_values(services: TenantServices, draft, field):
    """Company limits raise HostRecordError naming the field, and no company is written."""
    with pytest.raises(HostRecordError) as caught:
        services.create_company(draft)
    assert caught.value.field == field
    assert services.list_companies() == []


@pytest.mark.parametrize(
    ("draft", "field"),
    [
        (ContactDraft(email="not-an-email"), "email"),
        (ContactDraft(email=""), "email"),
        (ContactDraft(email="a" * 250 + "@x.io"), "email"),
        (ContactDraft(email="ann@example.com", first_name="f" * 151), "first_name"),
        (ContactDraft(email="ann@example.com", parent_company_id=404), "parent_company_id"),
    ],
)
def test_create_contact_refuses_bad_values(services: TenantServices, draft, field):
    """Contact rules raise HostRecordError naming the field, and no user is written."""
    with pytest.raises(HostRecordError) as caught:
        services.create_contact(draft)
    assert caught.value.field == field
    assert services.find_contacts_by_email(draft.email) == []


@pytest.mark.parametrize("method", ["update_order", "update_company", "update_contact"])
@pytest.mark.parametrize("field", ["no_such_field", "id", "tenant_id", "updated_at"])
def test_updates_reject_unknown_or_read_only_field_names(services: TenantServices, method, field):
    """Setting a field the record does not have, or one the host owns, is a ValueError."""
    order = services.create_order(OrderDraft(name="A"))
    company = services.create_company(CompanyDraft(name="A"))
    contact = services.create_contact(ContactDraft(email="a@example.com"))
    target = {"update_order": order.id, "update_company": company.id, "update_contact": contact.id}[
        method
    ]
    with pytest.raises(ValueError, match=field):
        getattr(services, method)(target, {field: 1})


def test_update_of_a_missing_record_names_the_id(services: TenantServices):
    """Updating an id that does not exist raises HostRecordError on field 'id'."""
    with pytest.raises(HostRecordError) as caught:
        services.update_order(404, {"name": "x"})
    assert (caught.value.field, caught.value.value) == ("id", 404)


# --- numbering and idempotency -----------------------------------------------------------------


def test_blank_order_numbers_follow_a_per_tenant_yearly_sequence(host: ReferenceHost, clock: Clock):
    """Blank numbers become ORD-YYYY-#### per tenant and year, skipping numbers typed by hand."""
    a, b = host.services(host.create_tenant("A")), host.services(host.create_tenant("B"))
    numbers = [
        a.create_order(OrderDraft(name="1")).order_number,
        a.create_order(OrderDraft(name="2")).order_number,
    ]
    a.create_order(OrderDraft(name="typed", order_number="ORD-2025-0003"))
    numbers.append(a.create_order(OrderDraft(name="4")).order_number)
    numbers.append(b.create_order(OrderDraft(name="b1")).order_number)
    clock.now = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    numbers.append(a.create_order(OrderDraft(name="new year")).order_number)
    assert numbers == [
        "ORD-2025-0001",
        "ORD-2025-0002",
        "ORD-2025-0004",
        "ORD-2025-0001",
        "ORD-2026-0001",
    ]


def test_create_order_with_a_known_external_id_returns_the_existing_order(
    services: TenantServices, clock: Clock
):
    """A second create with the same external id returns the first order unchanged."""
    first = services.create_order(
        OrderDraft(name="First", external_id="deal-7", value=Decimal("10.00"))
    )
    clock.advance(timedelta(hours=1))
    again = services.create_order(
        OrderDraft(name="Second", external_id="deal-7", value=Decimal("99"))
    )
    assert again == first
    assert len(services.list_orders()) == 1


def test_external_id_idempotency_holds_under_concurrent_threads(host: ReferenceHost, tenant: int):
    """Eight threads racing on one external id get one order; their own ids get distinct numbers."""
    barrier = threading.Barrier(8)
    results: list[Any] = [None] * 8
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait()
            services = host.services(tenant)
            same = services.create_order(
                OrderDraft(name=f"thread {index}", external_id="deal-shared")
            )
            own = services.create_order(
                OrderDraft(name=f"own {index}", external_id=f"deal-{index}")
            )
            results[index] = (same.id, own.order_number)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len({shared_id for shared_id, _ in results}) == 1
    numbers = [
        *sorted(number for _, number in results),
        host.services(tenant).get_order(results[0][0]).order_number,
    ]
    assert sorted(numbers) == [f"ORD-2025-{n:04d}" for n in range(1, 10)]
    assert len(host.services(tenant).list_orders()) == 9


_PROCESS_SNIPPET = """
import json, sys
from pathlib import Path
from ambac_hubspot_plugin.host import OrderDraft
from ambac_hubspot_plugin.reference_host import ReferenceHost
with ReferenceHost(Path(sys.argv[1]), load_entrypoints=False) as host:
    services = host.services(sys.argv[2])
    drafts = [OrderDraft(name="p", external_id=f"deal-{n}") for n in range(15)]
    ids = [services.create_order(draft).id for draft in drafts]
print(json.dumps(ids))
"""


def test_external_id_idempotency_holds_across_processes(tmp_path: Path):
    """Three processes creating the same fifteen external ids make 15 orders and agree on ids."""
    with ReferenceHost(tmp_path / "host", load_entrypoints=False) as host:
        tenant = host.create_tenant("A")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(  # our own interpreter and snippet
            [sys.executable, "-c", _PROCESS_SNIPPET, str(tmp_path / "host"), str(tenant)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err.decode() for _, err in outputs]
    seen = [json.loads(out) for out, _ in outputs]
    assert seen[0] == seen[1] == seen[2]
    with ReferenceHost(tmp_path / "host", load_entrypoints=False) as host:
        assert len(host.services(tenant).list_orders()) == 15


# --- tenancy ---------------------------------------------------------------------------------


def test_rows_of_one_tenant_are_invisible_to_another(host: ReferenceHost):
    """Tenant B sees none of tenant A's orders, companies, contacts or users, nor changes them."""
    a, b = host.services(host.create_tenant("A")), host.services(host.create_tenant("B"))
    company = a.create_company(CompanyDraft(name="Acme", external_id="c-1"))
    contact = a.create_contact(ContactDraft(email="ann@acme.com", parent_company_id=company.id))
    order = a.create_order(OrderDraft(name="Bracket", external_id="deal-1", company_id=company.id))
    staff = host.create_user(a.tenant_id, "boss@acme.com")
    host.grant(staff, MANAGE_INTEGRATIONS)

    assert b.get_order(order.id) is None
    assert b.get_orders([order.id]) == []
    assert b.find_order_by_external_id("deal-1") is None
    assert b.list_orders() == []
    assert b.get_company(company.id) is None
    assert b.find_companies_by_name("Acme") == []
    assert b.find_companies_by_domain("acme.com") == []
    assert b.get_contact(contact.id) is None
    assert b.find_contacts_by_email("ann@acme.com") == []
    assert not b.has_permission(staff, MANAGE_INTEGRATIONS)
    assert a.has_permission(staff, MANAGE_INTEGRATIONS)
    with host.acting_as(staff):
        assert (a.current_user(), b.current_user()) == (staff, None)
    with pytest.raises(HostRecordError):
        b.update_order(order.id, {"name": "stolen"})
    with pytest.raises(HostRecordError) as foreign_company:
        b.create_order(OrderDraft(name="x", company_id=company.id))
    assert foreign_company.value.field == "company_id"
    assert a.get_order(order.id) == order
    # The same external id and email are free in another tenant.
    assert b.create_order(OrderDraft(name="B's", external_id="deal-1")).id != order.id
    assert b.create_contact(ContactDraft(email="ann@acme.com")).id != contact.id


def test_get_orders_returns_the_existing_orders_of_many_ids(services: TenantServices):
    """get_orders reads many orders at once, archived ones too, and leaves out unknown ids."""
    orders = [services.create_order(OrderDraft(name=f"Order {i}")) for i in range(600)]
    services.update_order(orders[0].id, {"archived": True})
    wanted = [o.id for o in orders[::-1]] + ["0192f4c3-8d7e-7cc1-9b1a-3f2e1d0c4b5a", "1000"]
    found = services.get_orders(wanted)
    assert sorted(o.id for o in found) == sorted(o.id for o in orders)
    assert next(o for o in found if o.id == orders[0].id).archived


def test_services_for_an_unknown_tenant_are_refused(host: ReferenceHost):
    """Asking for services of a tenant that does not exist raises LookupError."""
    with pytest.raises(LookupError):
        host.services("42")


# --- companies and contacts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("website", "domain"),
    [
        ("https://www.Example.com/x", "example.com"),
        ("example.com", "example.com"),
        ("HTTP://Shop.Example.COM:8080/path?q=1", "shop.example.com"),
        ("www.example.co.uk.", "example.co.uk"),
        ("www.com", "www.com"),
        ("", ""),
        ("   ", ""),
        ("http://[::1", ""),
    ],
)
def test_normalize_domain(website: str, domain: str):
    """normalize_domain lower-cases, drops scheme, port, path and a leading www."""
    assert normalize_domain(website) == domain


def test_companies_have_the_real_hosts_fields_only_by_default(tmp_path: Path, clock: Clock):
    """By default the reference host's companies are Ambac Tracker's (name and description): a
    website, phone or address is refused naming the field, and no domain finds a company."""
    with ReferenceHost(tmp_path / "real", load_entrypoints=False, clock=clock) as host:
        services = host.services(host.create_tenant("Acme"))
        assert services.capabilities() == HostCapabilities()
        assert services.capabilities().company_fields == {"name", "description", "external_id"}
        for field, value in (("website", "acme.com"), ("phone", "5"), ("address", Address(city="X"))):
            with pytest.raises(HostRecordError, match=f"this host's companies have no {field}") as refused:
                services.create_company(CompanyDraft(name="Acme", **{field: value}))
            assert refused.value.field == field
        company = services.create_company(CompanyDraft(name="Acme", description=""))
        with pytest.raises(HostRecordError, match="have no website"):
            services.update_company(company.id, {"website": "acme.com"})
        assert services.update_company(company.id, {"website": ""}) == company  # empty: no value
        assert services.find_companies_by_domain("acme.com") == []


def test_find_companies_by_domain_matches_normalised_websites(tmp_path: Path):
    """On a host whose companies keep a website, companies are found by its normalised domain,
    whatever form the query takes."""
    every = HostCapabilities(company_fields=COMPANY_FIELDS)
    with ReferenceHost(tmp_path / "full", load_entrypoints=False, capabilities=every) as full:
        _find_by_domain(full.services(full.create_tenant("Acme")))


def _find_by_domain(services: TenantServices) -> None:
    acme = services.create_company(CompanyDraft(name="Acme", website="https://www.Acme.com/about"))
    twin = services.create_company(CompanyDraft(name="Acme Two", website="acme.com"))
    services.create_company(CompanyDraft(name="Other", website="https://notacme.com"))
    services.create_company(CompanyDraft(name="Blank"))
    assert [c.id for c in services.find_companies_by_domain("ACME.com")] == [acme.id, twin.id]
    assert [c.id for c in services.find_companies_by_domain("http://www.acme.com")] == [
        acme.id,
        twin.id,
    ]
    assert services.find_companies_by_domain("") == []
    moved = services.update_company(twin.id, {"website": "https://twin.example"})
    assert [c.id for c in services.find_companies_by_domain("acme.com")] == [acme.id]
    assert services.find_companies_by_domain("twin.example") == [moved]


def test_find_companies_by_name_ignores_case(services: TenantServices):
    """Company names match ignoring case, and renames are found under the new name only."""
    acme = services.create_company(CompanyDraft(name="Acme GmbH"))
    assert services.find_companies_by_name("ACME gmbh") == [acme]
    renamed = services.update_company(acme.id, {"name": "Acme AG"})
    assert services.find_companies_by_name("acme gmbh") == []
    assert services.find_companies_by_name("acme ag") == [renamed]


def test_create_company_with_a_known_external_id_returns_it(services: TenantServices):
    """Creating a company twice with one external id yields one company."""
    first = services.create_company(CompanyDraft(name="Acme", external_id="hs-1"))
    assert services.create_company(CompanyDraft(name="Renamed", external_id="hs-1")) == first
    assert len(services.list_companies()) == 1


def test_concurrent_company_creates_with_one_external_id_make_one_company(
    host: ReferenceHost, tenant: int
):
    """Six threads creating a company with the same external id at once all get the same one."""
    barrier = threading.Barrier(6)
    ids: list[int] = []

    def worker(index: int) -> None:
        barrier.wait()
        draft = CompanyDraft(name=f"Acme {index}", external_id="hs-company-9")
        ids.append(host.services(tenant).create_company(draft).id)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(ids) == 6
    assert len(set(ids)) == 1
    assert len(host.services(tenant).list_companies()) == 1


def test_contact_emails_repeat_and_are_found_ignoring_case(host: ReferenceHost, services: TenantServices):
    """Emails are not unique (portal and internal users alike) and are found ignoring case, by
    id; every user gets its own ``<tenant>-<local part>-<n>`` username; only portal users are
    in the Customer group."""
    ann = services.create_contact(ContactDraft(email="Ann@Example.com", first_name="Ann"))
    bob = services.create_contact(ContactDraft(email="bob@example.com"))
    boss = host.create_user(services.tenant_id, "Boss@Example.com")
    twin = services.create_contact(ContactDraft(email="ANN@example.com"))
    bob = services.update_contact(bob.id, {"email": "ann@example.COM"})
    boss_twin = services.create_contact(ContactDraft(email="boss@example.com"))
    assert services.find_contacts_by_email("ann@EXAMPLE.com") == [ann, bob, twin]
    assert [(c.id, c.user_type) for c in services.find_contacts_by_email("boss@example.com")] == [
        (boss.id, UserType.INTERNAL), (boss_twin.id, UserType.PORTAL)]
    tenant = services.tenant_id
    assert (ann.username, bob.username, twin.username) == (f"{tenant}-ann-1", f"{tenant}-bob-1", f"{tenant}-ann-2")
    assert (host.user_groups(ann.id), host.user_groups(boss.id)) == (["Customer"], [])
    updated = services.update_contact(ann.id, {"email": "ann@new.example", "last_name": "Lee"})
    assert services.find_contacts_by_email("ANN@NEW.EXAMPLE") == [updated]
    assert updated.username == ann.username


def test_usernames_stay_unique_across_tenants_whatever_the_email(host: ReferenceHost):
    """Usernames are global: the tenant id in front keeps two tenants' same emails apart, and
    characters Django refuses in a username become underscores."""
    first, second = (host.services(host.create_tenant(name)) for name in ("A", "B"))
    made = [s.create_contact(ContactDraft(email=e)) for s in (first, second, first)
            for e in ("ann@acme.example", "o'brien+x@acme.example")]
    assert len({c.username for c in made}) == len(made)
    assert made[1].username == f"{first.tenant_id}-o_brien+x-1"
    assert made[3].username == f"{second.tenant_id}-o_brien+x-1"


def test_an_old_database_with_unique_emails_and_phones_opens_with_the_user_model(tmp_path: Path, clock: Clock):
    """An earlier version kept users' phones, emails unique per tenant and no usernames or groups:
    opening the file drops the phone and the unique index, names every user, puts portal users
    in the Customer group, and a second user with one email can then be made."""
    with ReferenceHost(tmp_path / "host", load_entrypoints=False, clock=clock) as first:
        services = first.services(first.create_tenant("Acme"))
        ann = services.create_contact(ContactDraft(email="ann@acme.example"))
        boss = first.create_user(services.tenant_id, "boss@acme.example")
    with contextlib.closing(sqlite3.connect(tmp_path / "host" / "host.sqlite3")) as conn, conn:
        for statement in (  # what the earlier version had
            "DROP INDEX users_username", "DROP INDEX users_email_key", "DELETE FROM user_groups",
            "ALTER TABLE users DROP COLUMN username",
            "ALTER TABLE users ADD COLUMN phone TEXT NOT NULL DEFAULT '+1 555'",
            "CREATE UNIQUE INDEX users_email ON users (tenant_id, email_key)",
        ):
            conn.execute(statement)
    with ReferenceHost(tmp_path / "host", load_entrypoints=False, clock=clock) as second:
        services = second.services(services.tenant_id)
        twin = services.create_contact(ContactDraft(email="ANN@acme.example"))
        found = services.find_contacts_by_email("ann@acme.example")
        assert [c.id for c in found] == [ann.id, twin.id]
        assert len({c.username for c in (*found, services.get_contact(boss.id))}) == 3
        assert (second.user_groups(ann.id), second.user_groups(boss.id)) == (["Customer"], [])
    with contextlib.closing(sqlite3.connect(tmp_path / "host" / "host.sqlite3")) as conn:
        assert "phone" not in {row[1] for row in conn.execute("PRAGMA table_info(users)")}


def test_an_old_database_with_integer_keys_opens_with_its_ids_as_text(tmp_path: Path, clock: Clock):
    """An earlier version keyed tenants, companies and orders with integers: opening the file
    rebuilds the tables on text keys, every row kept with its id as text ("1"), and new rows get
    UUIDv7s beside them."""
    with ReferenceHost(tmp_path / "new", load_entrypoints=False, clock=clock):
        pass
    with contextlib.closing(sqlite3.connect(tmp_path / "new" / "host.sqlite3")) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")]
    (tmp_path / "host").mkdir()
    with contextlib.closing(sqlite3.connect(tmp_path / "host" / "host.sqlite3")) as conn, conn:
        for sql in tables:  # the same tables as an earlier version had them: integer keys
            conn.execute(re.sub(r"\b(id|tenant_id|company_id|order_id|parent_company_id) TEXT", r"\1 INTEGER", sql))
        now = clock().isoformat()
        conn.execute("INSERT INTO tenants (id, name, created_at) VALUES (1, 'Acme', ?)", (now,))
        conn.execute("INSERT INTO companies (id, tenant_id, name, name_key, description, website, domain, phone,"
                     " street, city, state, zip, country, created_at, updated_at) VALUES"
                     " (2, 1, 'Acme', 'acme', '', '', '', '', '', '', '', '', '', ?, ?)", (now, now))
        conn.execute("INSERT INTO orders (id, tenant_id, order_number, name, order_status, company_id,"
                     " customer_note, archived, created_at, updated_at) VALUES"
                     " (3, 1, 'ORD-2026-0001', 'Old order', 'PENDING', 2, '', 0, ?, ?)", (now, now))
        conn.execute("INSERT INTO plugin_settings VALUES (1, 'hubspot', '{}', 0, ?)", (now,))
    with ReferenceHost(tmp_path / "host", load_entrypoints=False, clock=clock) as host:
        assert host.tenant_ids() == ["1"] and host.find_tenant("Acme") == "1"
        services = host.services("1")
        old = services.get_order("3")
        assert (old.id, old.tenant_id, old.company_id, old.name) == ("3", "1", "2", "Old order")
        assert services.get_company("2").name == "Acme"
        new = services.create_order(OrderDraft(name="New order", company_id="2"))
        uuid.UUID(new.id)
        assert host.plugin_settings("1", "hubspot") == {}
    with contextlib.closing(sqlite3.connect(tmp_path / "host" / "host.sqlite3")) as conn:
        kinds = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(orders)")}
        assert (kinds["id"], kinds["tenant_id"]) == ("TEXT", "TEXT")
        assert not [row for row in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'old_%'")]


# --- hooks: TenantServices never fires, domain operations fire exactly theirs -------------------


def test_plugin_writes_through_services_fire_no_hooks(services: TenantServices, recorder: Recorder):
    """Changes made through TenantServices (the plugin's own writes) never call a hook."""
    company = services.create_company(CompanyDraft(name="Acme"))
    services.update_company(company.id, {"description": "Lathes"})
    contact = services.create_contact(ContactDraft(email="a@acme.com"))
    services.update_contact(contact.id, {"first_name": "Ann"})
    order = services.create_order(OrderDraft(name="Bracket"))
    services.update_order(order.id, {"order_status": OrderStatus.COMPLETED, "name": "Renamed"})
    assert recorder.calls == []


def test_set_order_status_fires_status_changed_only(
    host: ReferenceHost, services: TenantServices, recorder: Recorder
):
    """A status change fires ambac_order_status_changed with the new order and previous status."""
    order = services.create_order(OrderDraft(name="Bracket"))
    changed = host.set_order_status(services.tenant_id, order.id, OrderStatus.IN_PROGRESS)
    host.set_order_status(services.tenant_id, order.id, "IN_PROGRESS")  # unchanged: no event
    assert recorder.hooks_called() == ["ambac_order_status_changed"]
    kwargs = recorder.calls[0][1]
    assert kwargs["order"] == changed
    assert changed.order_status is OrderStatus.IN_PROGRESS
    assert kwargs["previous_status"] is OrderStatus.PENDING
    assert kwargs["host"].tenant_id == services.tenant_id


def test_edit_order_fires_order_updated_with_the_changed_fields(
    host: ReferenceHost, services: TenantServices, recorder: Recorder, clock: Clock
):
    """edit_order fires ambac_order_updated with the changed fields; status goes to its own hook."""
    order = services.create_order(OrderDraft(name="Bracket", value=Decimal("1.10")))
    clock.advance(timedelta(minutes=5))
    edited = host.edit_order(
        services.tenant_id, order.id, name="Bracket v2", value=Decimal("1.1"), customer_note="x"
    )
    host.edit_order(services.tenant_id, order.id, name="Bracket v2")  # no change, no event
    both = host.edit_order(services.tenant_id, order.id, order_status="ON_HOLD", archived=True)
    assert recorder.hooks_called() == [
        "ambac_order_updated",
        "ambac_order_status_changed",
        "ambac_order_updated",
    ]
    assert recorder.calls[0][1]["changed_fields"] == ("name", "customer_note")
    assert recorder.calls[0][1]["order"] == edited
    assert edited.updated_at == clock.now
    assert recorder.calls[1][1]["previous_status"] is OrderStatus.PENDING
    assert recorder.calls[2][1] == {
        "host": recorder.calls[2][1]["host"],
        "order": both,
        "changed_fields": ("archived",),
    }


def test_ship_order_fires_order_shipped(
    host: ReferenceHost, services: TenantServices, recorder: Recorder
):
    """ship_order records the shipment and fires ambac_order_shipped with order and shipment."""
    order = services.create_order(OrderDraft(name="Bracket"))
    shipment = Shipment(carrier="UPS", tracking_number="1Z999", ship_date=date(2025, 3, 5))
    host.ship_order(services.tenant_id, order.id, shipment)
    assert recorder.hooks_called() == ["ambac_order_shipped"]
    assert recorder.calls[0][1]["order"] == order
    assert recorder.calls[0][1]["shipment"] == shipment
    assert host.shipments(services.tenant_id, order.id) == [shipment]


def test_save_company_fires_company_saved_on_create_and_edit(
    host: ReferenceHost, services: TenantServices, recorder: Recorder
):
    """save_company fires ambac_company_saved with all fields on create, the changed on edit."""
    created = host.save_company(services.tenant_id, name="Acme", description="Lathes")
    edited = host.save_company(
        services.tenant_id, created.id, description="Lathes and mills", name="Acme"
    )
    host.save_company(services.tenant_id, created.id, name="Acme")  # unchanged: no event
    assert recorder.hooks_called() == ["ambac_company_saved", "ambac_company_saved"]
    assert recorder.calls[0][1]["company"] == created
    assert recorder.calls[0][1]["changed_fields"] == (
        "name",
        "description",
        "website",
        "phone",
        "address",
        "external_id",
    )
    assert (recorder.calls[1][1]["company"], recorder.calls[1][1]["changed_fields"]) == (
        edited,
        ("description",),
    )


# --- plugin administration ---------------------------------------------------------------------


def test_enable_plugin_validates_then_enables_and_stores(
    host: ReferenceHost, tenant: int, recorder: Recorder
):
    """enable_plugin calls settings_changed, then plugin_enabled, then stores the settings."""
    reports = host.enable_plugin(tenant, "recorder", {"portal_id": "123"})
    assert reports == [{"started": tenant}]
    assert recorder.hooks_called() == ["ambac_settings_changed", "ambac_plugin_enabled"]
    assert {key: value for key, value in recorder.calls[1][1].items() if key != "host"} == {
        "tenant_id": tenant, "settings": {"portal_id": "123"},
    }  # fmt: skip
    assert host.plugin_settings(tenant, "recorder") == {"portal_id": "123"}
    assert host.is_plugin_enabled(tenant, "recorder")


@pytest.mark.parametrize("failing_hook", ["ambac_settings_changed", "ambac_plugin_enabled"])
def test_settings_are_not_stored_when_a_hook_raises(
    host: ReferenceHost, tenant: int, recorder: Recorder, failing_hook
):
    """If validating or enabling raises, the error reaches the admin and nothing is stored."""
    recorder.fail[failing_hook] = ConfigError.from_problems([("portal_id", "is required")])
    with pytest.raises(ConfigError, match="portal_id"):
        host.enable_plugin(tenant, "recorder", {})
    assert host.plugin_settings(tenant, "recorder") is None
    assert not host.is_plugin_enabled(tenant, "recorder")


def test_change_settings_keeps_old_settings_when_refused(
    host: ReferenceHost, tenant: int, recorder: Recorder
):
    """change_settings stores accepted settings and keeps the old ones when the hook refuses."""
    host.enable_plugin(tenant, "recorder", {"v": 1})
    host.change_settings(tenant, "recorder", {"v": 2})
    recorder.fail["ambac_settings_changed"] = ConfigError("bad")
    with pytest.raises(ConfigError):
        host.change_settings(tenant, "recorder", {"v": 3})
    assert host.plugin_settings(tenant, "recorder") == {"v": 2}
    assert host.is_plugin_enabled(tenant, "recorder")


def test_disable_plugin_keeps_settings_and_calls_the_hook(
    host: ReferenceHost, tenant: int, recorder: Recorder
):
    """disable_plugin switches off, keeps the settings and calls ambac_plugin_disabled."""
    host.enable_plugin(tenant, "recorder", {"v": 1})
    host.disable_plugin(tenant, "recorder")
    assert recorder.hooks_called()[-1] == "ambac_plugin_disabled"
    assert recorder.calls[-1][1]["tenant_id"] == tenant
    assert not host.is_plugin_enabled(tenant, "recorder")
    assert host.plugin_settings(tenant, "recorder") == {"v": 1}


def test_enable_unknown_plugin_is_refused(host: ReferenceHost, tenant: int, recorder: Recorder):
    """Enabling a plugin id no installed plugin declares raises LookupError and calls no hook."""
    with pytest.raises(LookupError, match="nope"):
        host.enable_plugin(tenant, "nope", {})
    assert recorder.calls == []


def test_list_plugins_returns_manifests(host: ReferenceHost):
    """list_plugins collects ambac_plugin_manifest from every registered plugin."""
    assert [manifest.id for manifest in host.list_plugins()] == ["recorder"]


def test_start_calls_plugin_started_for_each_enabled_tenant_and_reports_failures(
    host: ReferenceHost, recorder: Recorder
):
    """start() calls plugin_started (never plugin_enabled) for enabled tenants only; a failure
    is reported and notified."""
    on, off = host.create_tenant("On"), host.create_tenant("Off")
    host.enable_plugin(on, "recorder", {"v": 1})
    host.enable_plugin(off, "recorder", {"v": 2})
    host.disable_plugin(off, "recorder")
    recorder.calls.clear()
    outcomes = host.start()
    assert [(call[0], call[1]["tenant_id"], call[1]["settings"]) for call in recorder.calls] == [
        ("ambac_plugin_started", on, {"v": 1})
    ]
    assert [(o.tenant_id, o.reports, o.error) for o in outcomes] == [(on, (), None)]
    recorder.fail["ambac_plugin_started"] = RuntimeError("portal unreachable")
    failed = host.start()
    assert failed[0].error == "RuntimeError: portal unreachable"
    assert [(n.level, n.subject) for n in host.notifications(on)] == [
        ("error", "Plugin recorder could not start")
    ]


def test_a_new_host_starts_a_tenants_plugins_once_before_their_first_event(
    tmp_path: Path, host: ReferenceHost, tenant: int, recorder: Recorder
):
    """A second host on the same data dir calls plugin_started for the tenant's enabled plugins
    before its first event there, once; the host that enabled them never calls it."""
    host.enable_plugin(tenant, "recorder", {"v": 1})
    order = host.create_order(tenant, OrderDraft(name="Bracket"))
    host.set_order_status(tenant, order.id, OrderStatus.IN_PROGRESS)
    assert "ambac_plugin_started" not in recorder.hooks_called()
    other = Recorder()
    with ReferenceHost(tmp_path / "host", load_entrypoints=False, plugins=[other]) as second:
        second.set_order_status(tenant, order.id, OrderStatus.ON_HOLD)
        second.edit_order(tenant, order.id, customer_note="rush")
        second.save_company(tenant, name="Acme Corp")
    assert other.hooks_called() == [
        "ambac_plugin_started", "ambac_order_status_changed", "ambac_order_updated",
        "ambac_company_saved",
    ]
    assert (other.calls[0][1]["tenant_id"], other.calls[0][1]["settings"]) == (tenant, {"v": 1})


# --- users, notifications, data dirs -------------------------------------------------------------


def test_notify_admins_records_notifications(
    host: ReferenceHost, services: TenantServices, clock: Clock
):
    """notify_admins stores subject, message, level and time per tenant; bad levels are refused."""
    services.notify_admins("Sync failing", "3 runs failed", "warning")
    assert [
        (n.subject, n.message, n.level, n.created_at)
        for n in host.notifications(services.tenant_id)
    ] == [("Sync failing", "3 runs failed", "warning", clock.now)]
    assert host.notifications(host.create_tenant("Other")) == []
    with pytest.raises(ValueError, match="level"):
        services.notify_admins("x", "y", "critical")


def test_plugin_data_dir_is_a_created_directory_under_the_data_dir(
    host: ReferenceHost, services: TenantServices
):
    """plugin_data_dir creates <data_dir>/plugins/<id> and refuses ids that could escape it."""
    path = services.plugin_data_dir("hubspot")
    assert path.is_dir()
    assert path == host.data_dir / "plugins" / "hubspot"
    with pytest.raises(ValueError, match="escape"):
        services.plugin_data_dir("../escape")


def test_current_user_follows_acting_as(host: ReferenceHost, services: TenantServices):
    """current_user() is None outside acting_as and the acting user inside it."""
    admin = host.create_user(
        services.tenant_id, "admin@acme.com", first_name="Ada", last_name="Min"
    )
    assert services.current_user() is None
    with host.acting_as(admin):
        assert services.current_user() == admin
        assert admin.name == "Ada Min"
    assert services.current_user() is None


# --- HTTP ----------------------------------------------------------------------------------------


def test_routes_are_matched_with_params_and_raw_body(host: ReferenceHost, recorder: Recorder):
    """A matching route gets the exact body bytes, public URL, path params, query and headers."""
    body = b'{"a": 1,   "b": "\xc3\xa9"}\n\x00\xff'
    response = host.handle_http(
        "post",
        "/integrations/recorder/echo/deal%2042?x=1&y=",
        headers={"X-HubSpot-Signature-v3": "sig"},
        body=body,
        public_base_url="https://tracker.example.com/",
    )
    assert (response.status, response.body, response.headers["X-Item"]) == (200, body, "deal 42")
    request, _ = recorder.requests[0]
    assert request.url == "https://tracker.example.com/integrations/recorder/echo/deal%2042?x=1&y="
    assert request.body == body
    assert request.method == "POST"
    assert request.path_params == {"item": "deal 42"}
    assert request.query == {"x": "1", "y": ""}
    assert request.headers["x-hubspot-signature-V3"] == "sig"


def test_route_permissions_answer_401_403_200(host: ReferenceHost, tenant: int, recorder: Recorder):
    """A permission route answers 401 without a user, 403 without the permission and 200 with it."""
    viewer = host.create_user(tenant, "viewer@acme.com")
    other_tenant_user = host.create_user(host.create_tenant("B"), "viewer@b.com")
    host.grant(other_tenant_user, VIEW_INTEGRATIONS)
    path = "/integrations/recorder/status"
    assert host.handle_http("GET", path).status == 401
    assert host.handle_http("GET", path, user=viewer).status == 403
    host.grant(viewer, VIEW_INTEGRATIONS)
    assert host.handle_http("GET", path, user=viewer).status == 200
    assert recorder.requests[-1][1] == viewer  # the handler runs acting as the request's user
    host.revoke(viewer, VIEW_INTEGRATIONS)
    assert host.handle_http("GET", path, user=viewer).status == 403
    assert len(recorder.requests) == 1
    assert host.handle_http("GET", path, user=other_tenant_user).status == 200


def test_unrouted_wrong_method_and_failing_handler(host: ReferenceHost):
    """Unknown paths answer 404, a wrong method 405 with Allow, and a raising handler 500."""
    assert host.handle_http("GET", "/integrations/nothing").status == 404
    wrong = host.handle_http("GET", "/integrations/recorder/echo/1")
    assert (wrong.status, wrong.headers["Allow"]) == (405, "POST")
    assert host.handle_http("GET", "/integrations/recorder/boom").status == 500


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep wsgiref's access log out of the test output."""


def test_wsgi_app_serves_routes_over_loopback(host: ReferenceHost, tenant: int, recorder: Recorder):
    """The WSGI app, served by wsgiref on loopback, routes real HTTP requests with bearer tokens."""
    viewer = host.create_user(tenant, "viewer@acme.com")
    host.grant(viewer, VIEW_INTEGRATIONS)
    token = host.create_api_token(viewer)
    server = make_server("127.0.0.1", 0, host.wsgi_app(), handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        body = b"raw \r\n bytes \xff"
        with urllib.request.urlopen(
            urllib.request.Request(
                f"{base}/integrations/recorder/echo/7?q=1", data=body, method="POST"
            ),
            timeout=10,
        ) as response:
            assert (response.status, response.read(), response.headers["X-Item"]) == (
                200,
                body,
                "7",
            )
        request, _ = recorder.requests[0]
        assert request.url == f"{base}/integrations/recorder/echo/7?q=1"
        assert request.body == body
        with pytest.raises(urllib.error.HTTPError) as unauthenticated:
            urllib.request.urlopen(f"{base}/integrations/recorder/status", timeout=10)
        assert unauthenticated.value.code == 401
        unauthenticated.value.close()
        authorised = urllib.request.Request(
            f"{base}/integrations/recorder/status", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(authorised, timeout=10) as response:
            assert response.status == 200
        assert recorder.requests[-1][0].user == viewer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


_BAD_LENGTHS = [
    # (headers after the request line, body sent, expected status)
    ("Content-Length: abc", b"hello", 400),
    ("Content-Length: -5", b"hello", 400),
    ("Content-Length: 5, 5", b"hello", 400),
    ("Content-Length: \u00b2", b"hello", 400),  # a digit to str.isdigit, not to HTTP
    ("Content-Length: 1000000000000", b"", 413),
    ("Content-Length: " + "9" * 5000, b"", 413),  # longer than int() may even parse
    ("Content-Length: 2001", b"", 413),
    ("Transfer-Encoding: chunked", b"5\r\nhello\r\n0\r\n\r\n", 411),
    ("Transfer-Encoding: chunked\nContent-Length: 5", b"hello", 400),
]


@pytest.mark.parametrize(("headers", "body", "status"), _BAD_LENGTHS)
def test_wsgi_app_refuses_bad_body_lengths_before_reading(
    host: ReferenceHost, tenant: int, recorder: Recorder, headers: str, body: bytes, status: int
):
    """Over a real socket, a Content-Length that is not one number is a 400, one over the
    limit a 413 answered without waiting for the body, a chunked body a 411; no route runs."""
    from ambac_hubspot_plugin._wsgi_server import make_wsgi_server

    from ._raw_http import exchange

    server = make_wsgi_server(host.wsgi_app(max_body_bytes=2000))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        answer = exchange(port, f"POST /integrations/recorder/echo/1 HTTP/1.1\n"
                                f"Host: 127.0.0.1\n{headers}", body)
        assert answer.status == status
        assert json.loads(answer.body)["error"]
        assert recorder.requests == []
        ok = exchange(port, "POST /integrations/recorder/echo/1 HTTP/1.1\nHost: 127.0.0.1\n"
                            "Content-Length: 2000", b"x" * 2000)
        assert (ok.status, ok.body) == (200, b"x" * 2000)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_wsgi_app_refuses_a_body_shorter_than_announced(host: ReferenceHost, recorder: Recorder):
    """A client that announces more bytes than it sends before closing gets a 400, and the
    route never sees the truncated body."""
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/integrations/recorder/echo/1",
               "CONTENT_LENGTH": "10", "wsgi.input": io.BytesIO(b"short"),
               "wsgi.url_scheme": "http", "SERVER_NAME": "localhost", "SERVER_PORT": "80"}
    started: list[str] = []
    body = b"".join(host.wsgi_app()(environ, lambda status, headers: started.append(status)))
    assert started == ["400 Bad Request"]
    assert "10 bytes" in json.loads(body)["error"]
    assert recorder.requests == []


def test_wsgi_app_refuses_a_limit_below_one_byte(host: ReferenceHost):
    """``max_body_bytes`` under 1 is a programming error, refused when the app is built."""
    with pytest.raises(ValueError, match="max_body_bytes"):
        host.wsgi_app(max_body_bytes=0)


# --- scheduler -----------------------------------------------------------------------------------


def test_run_due_tasks_runs_each_task_when_its_interval_elapsed(
    host: ReferenceHost, tenant: int, recorder: Recorder
):
    """Tasks run first at once, then only when their interval has passed since their last run."""

    def ran_at(offset: timedelta) -> list[str]:
        return [run.name for run in host.run_due_tasks(START + offset)]

    assert ran_at(timedelta(0)) == ["recorder.fast", "recorder.slow"]
    assert ran_at(timedelta(seconds=9)) == []
    assert ran_at(timedelta(seconds=10)) == ["recorder.fast"]
    assert ran_at(timedelta(seconds=15)) == []
    assert ran_at(timedelta(minutes=5)) == ["recorder.fast", "recorder.slow"]
    assert all(services.tenant_id == tenant for _, services in recorder.task_runs)
    assert isinstance(recorder.task_runs[0][1], HostServices)


def test_a_failing_task_is_reported_and_does_not_block_others(
    host: ReferenceHost, tenant: int, recorder: Recorder
):
    """A raising task is reported, the next still runs, and the failed one waits its interval."""
    recorder.fail["recorder.fast"] = RuntimeError("HubSpot down")
    runs = host.run_due_tasks(START)
    assert [(run.name, run.error) for run in runs] == [
        ("recorder.fast", "RuntimeError: HubSpot down"),
        ("recorder.slow", None),
    ]
    assert host.run_due_tasks(START + timedelta(seconds=1)) == []


def test_run_due_tasks_needs_a_tenant_and_an_aware_time(host: ReferenceHost, recorder: Recorder):
    """With no tenant nothing runs; a naive time is refused."""
    assert host.run_due_tasks(START) == []
    assert recorder.task_runs == []
    with pytest.raises(ValueError, match="timezone"):
        host.run_due_tasks(datetime(2025, 1, 1))  # the naive time is the point


def test_background_scheduler_runs_tasks(host: ReferenceHost, tenant: int, recorder: Recorder):
    """start_scheduler runs due tasks in a thread until stop_scheduler."""
    host.start_scheduler(poll_seconds=0.05)
    try:
        assert recorder.task_ran.wait(10)
    finally:
        host.stop_scheduler()
    assert {name for name, _ in recorder.task_runs} == {"recorder.fast", "recorder.slow"}


def test_a_hosts_capabilities_are_kept_with_its_file(tmp_path: Path, clock: Clock):
    """Capabilities given once are the host's from then on: a later open of the same directory
    without them (another process, the CLI) has the same fields; a new directory has Ambac
    Tracker's."""
    every = HostCapabilities(order_fields=ORDER_FIELDS, company_fields=COMPANY_FIELDS, milestones=False)
    with ReferenceHost(tmp_path / "host", load_entrypoints=False, clock=clock, capabilities=every):
        pass
    with ReferenceHost(tmp_path / "host", load_entrypoints=False, clock=clock) as reopened:
        assert reopened.services(reopened.create_tenant("Acme")).capabilities() == every
    with ReferenceHost(tmp_path / "other", load_entrypoints=False, clock=clock) as fresh:
        assert fresh.capabilities == HostCapabilities()
