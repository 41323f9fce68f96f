"""The plugin's hookimpls, called the way a host calls them, with the real store underneath."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import jsonschema
import pluggy
import pytest

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.errors import ConfigError, StoreError
from ambac_hubspot_plugin.events import OrderCreated, SyncStepFailed
from ambac_hubspot_plugin.host import (
    MANAGE_INTEGRATIONS,
    VIEW_INTEGRATIONS,
    OrderDraft,
    OrderStatus,
    PluginManifest,
    Shipment,
    hookimpl,
)
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from .conftest import make_plugin_manager

SETTINGS: dict = {}  # filled by the sandbox fixture: the sandbox's URL and token


@pytest.fixture(scope="module", autouse=True)
def hubspot():
    """One sandbox portal for this module's tests; SETTINGS point the plugin at it."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as hs:
        SETTINGS.clear()
        SETTINGS.update({"portal_id": str(hs.portal_id), "api_base_url": hs.base_url, "local_sandbox": True,
                         "credentials": {"kind": "private_app", "access_token": hs.access_token},
                         "run_background_worker": False})
        yield hs


@pytest.fixture
def ref_host(tmp_path: Path):
    """A reference host with the plugin discovered through its entry point, and one tenant."""
    host = ReferenceHost(tmp_path / "host")
    yield host
    host.close()


def _runtime(host: ReferenceHost):
    return host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime


def _enable(host: ReferenceHost, settings=None) -> int:
    tenant = host.create_tenant("Acme Machining")
    host.enable_plugin(tenant, "hubspot", settings or SETTINGS)
    return tenant


def test_hook_ambac_add_hookspecs_gives_each_manager_its_own_runtime():
    """Each plugin manager gets the hubspot_* specs and a runtime of its own."""
    first, second = make_plugin_manager(), make_plugin_manager()
    assert hasattr(first.hook, "hubspot_register_mapping_strategies")
    one = first.get_plugin(plugin_module.RUNTIME_NAME)
    two = second.get_plugin(plugin_module.RUNTIME_NAME)
    assert one is not None and two is not None and one is not two


def test_hook_ambac_plugin_manifest_describes_permissions_and_settings():
    """The manifest names the plugin, both permissions, and a schema that accepts valid settings."""
    pm = make_plugin_manager()
    (manifest,) = pm.hook.ambac_plugin_manifest()
    assert isinstance(manifest, PluginManifest)
    assert manifest.id == "hubspot"
    assert set(manifest.permissions) == {MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS}
    schema = manifest.settings_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(SETTINGS, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**SETTINGS, "unknown": 1}, schema)
    token_schema = schema["properties"]["credentials"]["anyOf"][0]["properties"]["access_token"]
    assert token_schema["writeOnly"] is True


def test_hook_ambac_plugin_enabled_opens_the_store_and_reports_steps(ref_host):
    """Enabling validates settings, creates the SQLite store in the plugin's data dir, reports."""
    tenant = ref_host.create_tenant("Acme")
    (report,) = ref_host.enable_plugin(tenant, "hubspot", SETTINGS)
    assert report.ok and [s.name for s in report.steps] == ["settings", "store", "hubspot"]
    store_file = ref_host.services(tenant).plugin_data_dir("hubspot") / "hubspot.sqlite3"
    assert store_file.exists()
    status = _runtime(ref_host).status(tenant)
    assert status["enabled"] is True
    assert status["log"][0]["what"] == "plugin.enabled"
    token = SETTINGS["credentials"]["access_token"]
    assert token not in repr(report) + json.dumps(status)


def test_hook_ambac_plugin_enabled_reports_an_unreachable_hubspot(ref_host):
    """A HubSpot that does not answer is a failed step of the report, not a refusal."""
    tenant = ref_host.create_tenant("Acme")
    (report,) = ref_host.enable_plugin(tenant, "hubspot", {**SETTINGS, "api_base_url": "http://127.0.0.1:9"})
    assert not report.ok
    (step,) = [s for s in report.steps if not s.ok]
    assert step.name == "hubspot" and "could not talk to HubSpot" in step.detail
    assert _runtime(ref_host).is_enabled(tenant)


def test_hook_ambac_plugin_enabled_rejects_bad_settings_naming_fields(ref_host):
    """Bad settings raise one ConfigError naming each field, and the plugin stays disabled."""
    tenant = ref_host.create_tenant("Acme")
    bad = {"portal_id": "abc", "credentials": {"kind": "private_app", "access_token": ""}, "x": 1}
    with pytest.raises(ConfigError) as info:
        ref_host.enable_plugin(tenant, "hubspot", bad)
    assert set(info.value.problems) == {"portal_id", "credentials.access_token", "settings"}
    assert not _runtime(ref_host).is_enabled(tenant)


def test_hook_ambac_plugin_enabled_names_store_url_when_it_cannot_open(ref_host, tmp_path):
    """An unusable store_url gives a StoreError naming the setting, not a driver traceback."""
    tenant = ref_host.create_tenant("Acme")
    settings = {**SETTINGS, "store_url": f"sqlite:///{tmp_path}/missing/dir/store.sqlite3",
                "store_outside_data_dir": True}
    with pytest.raises(StoreError) as info:
        ref_host.enable_plugin(tenant, "hubspot", settings)
    assert info.value.setting == "store_url"
    assert "store_url" in str(info.value)


def test_hook_ambac_plugin_disabled_stops_work_and_keeps_data(ref_host):
    """After disabling, host events are ignored; the store keeps what it had."""
    tenant = _enable(ref_host)
    order = ref_host.services(tenant).create_order(OrderDraft(name="Brackets"))
    ref_host.set_order_status(tenant, order.id, OrderStatus.IN_PROGRESS)
    runtime = _runtime(ref_host)
    store = runtime.store_for(tenant)
    ref_host.disable_plugin(tenant, "hubspot")
    assert not runtime.is_enabled(tenant)
    ref_host.set_order_status(tenant, order.id, OrderStatus.COMPLETED)
    depths = store.depths(tenant)
    assert depths == {("pending", "host.order.status_changed"): 1}, "the later event is ignored"
    assert store.read_log(tenant, limit=1).entries[0].what == "plugin.disabled"


def test_hook_ambac_settings_changed_validates_and_applies(ref_host, tmp_path):
    """Changed settings are validated; a store_url change is refused while enabled."""
    tenant = _enable(ref_host)
    with pytest.raises(ConfigError) as info:
        ref_host.change_settings(tenant, "hubspot", {**SETTINGS, "sync_interval_seconds": 1})
    assert "sync_interval_seconds" in info.value.problems
    other = ref_host.services(tenant).plugin_data_dir("hubspot") / "o.db"
    with pytest.raises(ConfigError) as info:
        ref_host.change_settings(tenant, "hubspot", {**SETTINGS, "store_url": f"sqlite:///{other}"})
    assert "disable the plugin first" in info.value.problems["store_url"]
    ref_host.change_settings(tenant, "hubspot", {**SETTINGS, "account_tier": "starter"})
    assert _runtime(ref_host)._tenants[tenant].settings.account_tier == "starter"


def test_hook_ambac_order_status_changed_is_recorded_durably_and_coalesced(ref_host):
    """Status changes become one pending job per order, surviving a new runtime on the same store."""
    tenant = _enable(ref_host)
    services = ref_host.services(tenant)
    first = services.create_order(OrderDraft(name="Brackets"))
    second = services.create_order(OrderDraft(name="Flanges"))
    for status in (OrderStatus.IN_PROGRESS, OrderStatus.ON_HOLD, OrderStatus.IN_PROGRESS):
        ref_host.set_order_status(tenant, first.id, status)
    ref_host.set_order_status(tenant, second.id, OrderStatus.COMPLETED)
    store = _runtime(ref_host).store_for(tenant)
    assert store.depths(tenant) == {("pending", "host.order.status_changed"): 2}
    from ambac_hubspot_plugin.store import open_store

    path = ref_host.services(tenant).plugin_data_dir("hubspot") / "hubspot.sqlite3"
    other = open_store(f"sqlite:///{path}")
    try:
        assert other.depths(tenant) == {("pending", "host.order.status_changed"): 2}
    finally:
        other.close()


def test_hook_ambac_order_updated_is_recorded(ref_host):
    """An order edit is queued with the changed field names."""
    tenant = _enable(ref_host)
    order = ref_host.services(tenant).create_order(OrderDraft(name="Brackets"))
    ref_host.edit_order(tenant, order.id, customer_note="Rush")
    store = _runtime(ref_host).store_for(tenant)
    (job,) = store.claim("test-worker", kinds=["host.order.updated"])
    assert job.payload["record_id"] == order.id
    assert job.payload["changed_fields"] == ["customer_note"]


def test_hook_ambac_order_shipped_keeps_each_shipment(ref_host):
    """Two shipments of one order are two jobs carrying their tracking data."""
    tenant = _enable(ref_host)
    order = ref_host.services(tenant).create_order(OrderDraft(name="Brackets"))
    ref_host.ship_order(tenant, order.id, Shipment("UPS", "1Z1", "https://ups.example/1Z1", date(2026, 11, 2)))
    ref_host.ship_order(tenant, order.id, Shipment("DHL", "JD2", "", None))
    store = _runtime(ref_host).store_for(tenant)
    jobs = store.claim("test-worker", kinds=["host.order.shipped"], limit=10)
    assert sorted(j.payload["carrier"] for j in jobs) == ["DHL", "UPS"]
    assert {j.payload["ship_date"] for j in jobs} == {"2026-11-02", None}


def test_hook_ambac_company_saved_is_recorded(ref_host):
    """A company edit in the host is queued for the (direction-dependent) push."""
    tenant = _enable(ref_host)
    company = ref_host.save_company(tenant, name="Acme Corp", description="Lathes")
    store = _runtime(ref_host).store_for(tenant)
    (job,) = store.claim("test-worker", kinds=["host.company.saved"])
    assert job.payload["record_id"] == company.id


def test_hook_ambac_http_routes_status_needs_view_permission(ref_host):
    """The status route answers JSON to a viewer, 403 without the permission, 401 anonymous."""
    tenant = _enable(ref_host)
    viewer = ref_host.create_user(tenant, "viewer@acme.example")
    ref_host.grant(viewer, VIEW_INTEGRATIONS)
    stranger = ref_host.create_user(tenant, "stranger@acme.example")
    path = "/integrations/hubspot/status"
    ok = ref_host.handle_http("GET", path, headers={}, body=b"", user=viewer)
    assert ok.status == 200 and json.loads(ok.body)["enabled"] is True
    assert ref_host.handle_http("GET", path, headers={}, body=b"", user=stranger).status == 403
    assert ref_host.handle_http("GET", path, headers={}, body=b"", user=None).status == 401


def test_hook_ambac_periodic_tasks_schedules_and_runs_the_sync(ref_host):
    """The tick task queues the due sync and outbound reconciliation and runs them with the
    queued host event's push."""
    tenant = _enable(ref_host)
    order = ref_host.services(tenant).create_order(OrderDraft(name="Brackets"))
    ref_host.set_order_status(tenant, order.id, OrderStatus.IN_PROGRESS)
    (task,) = [t for t in ref_host.periodic_tasks() if t.name == "hubspot.tick"]
    store = _runtime(ref_host).store_for(tenant)
    assert task.run(ref_host.services(tenant)) == 3, "the sync, the reconciliation and the status push"
    (run,) = store.recent_runs(tenant)
    assert (run.kind, str(run.status)) == ("incremental", "succeeded")
    assert task.run(ref_host.services(tenant)) == 0, "neither is due again before the interval"
    assert store.depths(tenant) == {}


def test_drain_runs_registered_handlers(ref_host):
    """When a feature registers a handler for a job kind, the periodic drain runs those jobs."""
    tenant = _enable(ref_host)
    order = ref_host.services(tenant).create_order(OrderDraft(name="Brackets"))
    seen = []
    _runtime(ref_host).handlers["host.order.status_changed"] = lambda job: seen.append(job.payload)
    ref_host.set_order_status(tenant, order.id, OrderStatus.IN_PROGRESS)
    assert _runtime(ref_host).drain() == 1
    assert seen == [{"record_type": "order", "record_id": order.id, "event": "status_changed",
                     "previous_status": "PENDING"}]


class _Strategies:
    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def hubspot_register_mapping_strategies(self, register):
        register(self.name, dict)

    @hookimpl
    def hubspot_register_conflict_strategies(self, register):
        register(self.name, dict)


def _hooks(pm: pluggy.PluginManager):
    return pm.get_plugin(plugin_module.RUNTIME_NAME).runtime.hooks


def test_hook_hubspot_register_mapping_strategies_collects_by_name():
    """Strategies from every package are collected under their names."""
    pm = make_plugin_manager(_Strategies("custom-a"))
    assert _hooks(pm).mapping_strategies()["custom-a"] is dict


def test_hook_hubspot_register_mapping_strategies_rejects_duplicate_names():
    """Two packages registering one name is a ConfigError naming both packages."""
    pm = make_plugin_manager()
    pm.register(_Strategies("same"), name="pkg-one")
    pm.register(_Strategies("same"), name="pkg-two")
    with pytest.raises(ConfigError, match="pkg-one and pkg-two"):
        _hooks(pm).mapping_strategies()


def test_hook_hubspot_register_conflict_strategies_collects_by_name():
    """Conflict strategies are collected apart from mapping strategies."""
    pm = make_plugin_manager(_Strategies("custom-c"))
    assert "custom-c" in _hooks(pm).conflict_strategies()


class _Listener:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.events: list[object] = []

    @hookimpl
    def hubspot_order_created(self, event):
        self.events.append(event)
        if self.fail:
            raise RuntimeError("listener broke")

    @hookimpl
    def hubspot_sync_step_failed(self, event):
        self.events.append(event)
        if self.fail:
            raise RuntimeError("listener broke")


def test_hook_hubspot_order_created_reaches_every_listener_despite_failures(ref_host, caplog):
    """A failing listener is logged and the others still receive the event."""
    tenant = _enable(ref_host)
    order = ref_host.services(tenant).create_order(OrderDraft(name="Brackets"))
    broken, fine = _Listener(fail=True), _Listener(fail=False)
    ref_host.plugin_manager.register(broken)
    ref_host.plugin_manager.register(fine)
    event = OrderCreated(tenant_id=tenant, portal_id="12345", deal_id="9", order=order, trigger="manual")
    with caplog.at_level(logging.ERROR):
        _runtime(ref_host).hooks.order_created(event)
    assert broken.events == [event] and fine.events == [event]
    assert "listener broke" in caplog.text


def test_hook_hubspot_sync_step_failed_reaches_listeners():
    """The failure event reaches listeners with its fields intact."""
    listener = _Listener(fail=False)
    pm = make_plugin_manager(listener)
    event = SyncStepFailed(tenant_id=1, step="inbound.deal", record="deal:9", error="boom",
                           attempt=2, will_retry=True)
    _hooks(pm).sync_step_failed(event)
    assert listener.events == [event]


class _OtherPlugin:
    """Another installed plugin, with settings the HubSpot plugin would reject."""

    def __init__(self) -> None:
        self.enabled: list[object] = []

    @hookimpl
    def ambac_plugin_manifest(self):
        return PluginManifest(id="other", name="Other", version="1", permissions=(), settings_schema={})

    @hookimpl
    def ambac_plugin_enabled(self, host, tenant_id, plugin_id, settings):
        if plugin_id == "other":
            self.enabled.append(settings)
            return "other-report"
        return None


def test_hook_ambac_plugin_enabled_ignores_other_plugins(tmp_path):
    """Enabling another plugin does not validate its settings as HubSpot settings."""
    other = _OtherPlugin()
    with ReferenceHost(tmp_path / "host", plugins=[other]) as host:
        tenant = host.create_tenant("Acme")
        reports = host.enable_plugin(tenant, "other", {"colour": "blue"})
        assert [r for r in reports if r is not None] == ["other-report"]
        assert other.enabled == [{"colour": "blue"}]
        assert not _runtime(host).is_enabled(tenant)
