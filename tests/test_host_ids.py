"""Host ids are opaque strings: a UUID tenant, an integer-looking one, UUIDs in routes and JSON."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.host import MAX_HOST_ID_LENGTH, Order, OrderStatus, as_host_id
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from ._world import plugin_settings, serving

A_UUID = uuid.UUID("0192f4c3-8d7e-7cc1-9b1a-3f2e1d0c4b5a")


@pytest.mark.parametrize(("given", "kept"), [
    (A_UUID, "0192f4c3-8d7e-7cc1-9b1a-3f2e1d0c4b5a"),
    (42, "42"),
    ("42", "42"),
    ("007", "007"),
    ("tenant_a.b-c", "tenant_a.b-c"),
    ("x" * MAX_HOST_ID_LENGTH, "x" * MAX_HOST_ID_LENGTH),
])
def test_a_host_id_is_kept_as_its_text(given, kept):
    """UUID objects give their canonical text, integers their digits, strings stay as they are
    (leading zeros too: an id is never a number)."""
    assert as_host_id(given) == kept


@pytest.mark.parametrize("bad", ["", " 1", "1 ", "a/b", "../etc", ".hidden", "x" * (MAX_HOST_ID_LENGTH + 1),
                                 "ü", "1\n", "a%2Fb"])
def test_an_unusable_id_string_is_refused_naming_what_it_is(bad):
    with pytest.raises(ValueError, match="tenant_id"):
        as_host_id(bad, "tenant_id")


@pytest.mark.parametrize("bad", [None, True, 1.5, b"1", object()])
def test_a_value_of_another_type_is_refused(bad):
    with pytest.raises(TypeError, match="order id"):
        as_host_id(bad, "order id")


def test_records_convert_the_ids_a_host_hands_over():
    """A host whose ORM gives UUID objects builds records with them; the plugin sees strings."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    order = Order(id=A_UUID, tenant_id=uuid.UUID(int=7), order_number="ORD-1", name="x",
                  order_status=OrderStatus.PENDING, created_at=now, updated_at=now, company_id=A_UUID,
                  customer_id=12)
    assert (order.id, order.company_id, order.customer_id) == (str(A_UUID), str(A_UUID), "12")
    assert order.tenant_id == "00000000-0000-0000-0000-000000000007"
    with pytest.raises(ValueError, match="is not a usable host id"):
        Order(id="a b", tenant_id="1", order_number="ORD-1", name="x", order_status=OrderStatus.PENDING,
              created_at=now, updated_at=now)


@pytest.fixture(params=["uuid", "integer-looking"])
def served(request, tmp_path: Path) -> Iterator[tuple[Sandbox, ReferenceHost, str, str]]:
    """A served reference host with a tenant whose id is a UUID, or digits, and the sandbox."""
    tenant_id: object = A_UUID if request.param == "uuid" else 42
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot, ReferenceHost(tmp_path / "host") as host, \
            serving(host) as base:
        yield hubspot, host, host.create_tenant("Acme", tenant_id=tenant_id), base


def test_enabling_a_tenant_by_its_uuid_object_or_integer_works_end_to_end(served):
    """The hook takes the id as the host's ORM gives it (a UUID object, an int); the tenant's
    webhook route carries its id, a closed-won deal becomes one order, and JSON says the id as
    a string."""
    hubspot, host, tenant, base = served
    as_given: object = uuid.UUID(tenant) if "-" in tenant else int(tenant)
    settings = plugin_settings(hubspot, webhook_client_secret=hubspot.client_secret, public_base_url=base)
    (report,) = [r for r in host.plugin_manager.hook.ambac_plugin_enabled(
        host=host.services(tenant), tenant_id=as_given, plugin_id="hubspot", settings=settings) if r]
    assert report.ok, report
    runtime = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime
    assert runtime.is_enabled(tenant)
    assert report.tenant_id == tenant
    assert json.loads(json.dumps(attrs.asdict(report), default=str))["tenant_id"] == tenant
    assert runtime.status(tenant)["tenant_id"] == tenant

    hubspot.webhooks.set_target(f"{base}/integrations/hubspot/webhooks/{tenant}")
    hubspot.webhooks.subscribe("deal.propertyChange", "dealstage")
    deal = hubspot.add_object("deals", {"dealname": "Opaque", "pipeline": "default", "dealstage": "contractsent"})
    hubspot.update_object("deals", deal, {"dealstage": "closedwon"})
    assert hubspot.webhooks.flush(10)
    runtime.drain()
    order = host.services(tenant).find_order_by_external_id(f"hubspot:{hubspot.portal_id}:deal:{deal}")
    assert order is not None and order.tenant_id == tenant and order.name == "Opaque"
    link = runtime.store_for(tenant).get_link_by_hubspot(tenant, str(hubspot.portal_id), "deal", deal)
    assert link is not None and link.host_id == order.id and link.tenant_id == tenant


def test_a_webhook_to_another_tenant_id_is_not_found(served):
    """A route id that names no enabled tenant (another UUID, an id with a slash) answers 404."""
    hubspot, host, tenant, base = served
    host.enable_plugin(tenant, "hubspot", plugin_settings(hubspot, webhook_client_secret=hubspot.client_secret,
                                                          public_base_url=base))
    for other in (str(uuid.UUID(int=5)), "42" if tenant != "42" else "43", "..", "a%20b"):
        response = host.handle_http("POST", f"/integrations/hubspot/webhooks/{other}", body=b"[]",
                                    headers={"Content-Type": "application/json"})
        assert response.status == 404, other


def test_events_of_an_order_push_its_status_by_its_uuid(served):
    """An order status change for a UUID-keyed order reaches the deal in HubSpot."""
    hubspot, host, tenant, _base = served
    host.enable_plugin(tenant, "hubspot", plugin_settings(hubspot))
    runtime = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime
    deal = hubspot.add_object("deals", {"dealname": "Pushed", "pipeline": "default", "dealstage": "closedwon"})
    runtime.run_sync(tenant)
    runtime.drain()
    order = host.services(tenant).find_order_by_external_id(f"hubspot:{hubspot.portal_id}:deal:{deal}")
    uuid.UUID(order.id)  # the reference host keys orders with UUIDs, like Ambac Tracker
    host.set_order_status(tenant, order.id, OrderStatus.IN_PROGRESS)
    runtime.drain()
    assert hubspot.get_object("deals", deal)["ambac_order_status"] == OrderStatus.IN_PROGRESS.value


def test_the_oldest_id_sorts_first_whatever_its_kind():
    """The plugin's deterministic choices (of several users with one email, of several
    companies with one name) take integer-looking ids by value and UUIDv7s by their text."""
    from ambac_hubspot_plugin._host_ids import host_id_key

    assert sorted(["10", "9", "100"], key=host_id_key) == ["9", "10", "100"]
    assert sorted(["7", "007"], key=host_id_key) == sorted(["007", "7"], key=host_id_key)
    older, newer = "0192f4c3-8d7e-7cc1-9b1a-3f2e1d0c4b5a", "0193a000-0000-7000-8000-000000000000"
    assert sorted([newer, "7", older], key=host_id_key) == ["7", older, newer]


def test_the_admin_api_keys_a_uuid_tenant_of_its_host_as_text(tmp_path):
    """A host whose services give the tenant as a UUID object (an ORM's) still gets an admin API
    working on the string: its status reads the tenant's store."""
    from ambac_hubspot_plugin.admin import Admin

    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot, ReferenceHost(tmp_path / "host") as host:
        tenant = host.create_tenant("Acme", tenant_id=A_UUID)
        host.enable_plugin(tenant, "hubspot", plugin_settings(hubspot))
        services = host.services(tenant)

        class UuidTenant:  # the reference host's services, with the tenant as the ORM gives it
            def __getattr__(self, name: str) -> object:
                return getattr(services, name)

            @property
            def tenant_id(self) -> uuid.UUID:
                return A_UUID

        runtime = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime
        admin = Admin(runtime, UuidTenant())  # type: ignore[arg-type]  # duck-typed services
        assert admin.tenant_id == tenant
        user = host.create_user(tenant, "viewer@acme.example")
        host.grant(user, "view_integrations")
        assert admin.status(user)["tenant_id"] == tenant
