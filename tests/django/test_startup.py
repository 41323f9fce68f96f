"""A host process taking up the tenants whose HubSpot integration is enabled (``ensure_started``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

import pluggy
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from integrations.models import IntegrationConfig
from Tracker.models import Tenant

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.contrib.django.apps import build_plugin_manager
from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices
from ambac_hubspot_plugin.contrib.django.startup import enabled_tenant_ids, enabled_tenants, ensure_started
from ambac_hubspot_plugin.sandbox import Sandbox

from .._world import plugin_settings


def _runtime(pm: pluggy.PluginManager) -> Any:
    return pm.get_plugin(plugin_module.RUNTIME_NAME).runtime


def _tenant(settings: dict[str, Any], *, enabled: bool) -> str:
    """A tenant whose configuration holds ``settings``, its access token in the encrypted field."""
    tenant = Tenant.objects.create(name="Acme", slug=f"t-{uuid.uuid4().hex}")
    config = {key: value for key, value in settings.items() if key != "credentials"}
    token = settings.get("credentials", {}).get("access_token", "")
    IntegrationConfig.objects.create(tenant=tenant, provider="hubspot", is_enabled=enabled,
                                     config=config, api_key=token)
    return str(tenant.pk)


@pytest.mark.django_db
def test_a_new_process_takes_up_enabled_tenants_once_without_calling_hubspot(
    tmp_path: Path, hs: Sandbox, managers: list[pluggy.PluginManager]
) -> None:
    """After an admin enabled the plugin in one process, another process's ``ensure_started``
    starts that tenant (and not a disabled one) with zero HubSpot requests, once however often
    it is called."""
    settings = plugin_settings(hs)
    enabled = _tenant(settings, enabled=True)
    disabled = _tenant(settings, enabled=False)
    admin = build_plugin_manager()
    managers.append(admin)
    (report,) = [r for r in admin.hook.ambac_plugin_enabled(
        host=DjangoHostServices(enabled, data_dir=tmp_path), tenant_id=enabled,
        plugin_id=plugin_module.PLUGIN_ID, settings=settings) if r is not None]
    assert report.ok, report
    _runtime(admin).close()
    hs.clear_requests()

    second = build_plugin_manager()
    managers.append(second)
    first_call = ensure_started(second, data_dir=tmp_path)
    again = ensure_started(second, data_dir=tmp_path)

    assert (first_call, again) == ([enabled], [])
    assert _runtime(second).is_enabled(enabled)
    assert not _runtime(second).is_enabled(disabled)
    assert hs.requests == [], "taking a tenant up must not call HubSpot"


@pytest.mark.django_db
def test_a_tenant_that_cannot_start_is_left_for_the_next_call(
    tmp_path: Path, hs: Sandbox, managers: list[pluggy.PluginManager], caplog: pytest.LogCaptureFixture
) -> None:
    """Saved settings the plugin refuses are logged naming the tenant; the tenant is not marked
    started, so a later call tries it again."""
    broken = _tenant({"portal_id": "not a number"}, enabled=True)
    pm = build_plugin_manager()
    managers.append(pm)

    assert ensure_started(pm, data_dir=tmp_path) == []
    assert broken in caplog.text
    assert ensure_started(pm, data_dir=tmp_path) == []
    assert caplog.text.count(f"tenant {broken} could not start") == 2


@pytest.mark.django_db
def test_a_tenant_whose_settings_cannot_be_built_hides_no_other_tenant(
    hs: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """``enabled_tenants`` leaves out a tenant whose row gives no settings (an API key and an
    OAuth refresh token both set), logging it without its secrets, and returns the others;
    ``enabled_tenant_ids`` builds no settings and lists both."""
    good = _tenant(plugin_settings(hs), enabled=True)
    bad = Tenant.objects.create(name="Broken", slug=f"t-{uuid.uuid4().hex}")
    IntegrationConfig.objects.create(tenant=bad, provider="hubspot", is_enabled=True,
                                     api_key="pat-na1-secret-key", oauth_refresh_token="rt-secret-token",
                                     config={"portal_id": "1"})

    assert [tenant for tenant, _ in enabled_tenants()] == [good]
    assert sorted(enabled_tenant_ids()) == sorted([good, str(bad.pk)])
    assert f"tenant {bad.pk} is skipped" in caplog.text
    assert "pat-na1-secret-key" not in caplog.text and "rt-secret-token" not in caplog.text


@pytest.mark.django_db
def test_the_first_request_of_a_process_takes_up_enabled_tenants(
    tmp_path: Path, hs: Sandbox, managers: list[pluggy.PluginManager], client: Any, settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A web process's first request starts the enabled tenants on the app's plugin manager
    (before its view runs); later requests do not read the configurations again."""
    settings.AMBAC_PLUGIN_DATA_DIR = str(tmp_path)
    hubspot_settings = plugin_settings(hs)
    tenant = _tenant(hubspot_settings, enabled=True)
    admin = build_plugin_manager()
    managers.append(admin)
    admin.hook.ambac_plugin_enabled(host=DjangoHostServices(tenant), tenant_id=tenant,
                                    plugin_id=plugin_module.PLUGIN_ID, settings=hubspot_settings)
    _runtime(admin).close()
    process = build_plugin_manager()
    managers.append(process)
    monkeypatch.setattr(apps.get_app_config("ambac_hubspot"), "plugin_manager", process)

    client.get("/any-page")
    with CaptureQueriesContext(connection) as later:
        client.get("/any-page")

    assert _runtime(process).is_enabled(tenant)
    assert not [q for q in later.captured_queries if IntegrationConfig._meta.db_table in q["sql"]]


def _config(tenant: str) -> IntegrationConfig:
    return IntegrationConfig.objects.get(tenant_id=tenant, provider="hubspot")


@pytest.mark.django_db
def test_a_disable_or_settings_change_in_another_process_reaches_this_one(
    tmp_path: Path, hs: Sandbox, managers: list[pluggy.PluginManager], caplog: pytest.LogCaptureFixture
) -> None:
    """Another process changed the row: new settings are applied here (started again with
    them, still no HubSpot call), and a disable makes this process forget the tenant without a
    log entry of its own; a re-enable takes it up again."""
    settings = plugin_settings(hs)
    tenant = _tenant(settings, enabled=True)
    pm = build_plugin_manager()
    managers.append(pm)
    admin = build_plugin_manager()
    managers.append(admin)
    services = DjangoHostServices(tenant, data_dir=tmp_path)
    admin.hook.ambac_plugin_enabled(host=services, tenant_id=tenant, plugin_id=plugin_module.PLUGIN_ID,
                                    settings=settings)
    assert ensure_started(pm, data_dir=tmp_path) == [tenant]
    runtime = _runtime(pm)
    assert runtime.tenant(tenant).settings.account_tier != "starter"
    hs.clear_requests()

    row = _config(tenant)
    row.config = {**row.config, "account_tier": "starter"}
    row.save()
    assert ensure_started(pm, data_dir=tmp_path) == [tenant]
    assert runtime.tenant(tenant).settings.account_tier == "starter"
    assert ensure_started(pm, data_dir=tmp_path) == [], "unchanged rows start nothing"
    row.api_key = "pat-na1-rotated-token"
    row.save()
    assert ensure_started(pm, data_dir=tmp_path) == [tenant], "a rotated credential applies too"
    assert "pat-na1-rotated-token" not in caplog.text

    store = runtime.store_for(tenant)
    entries = len(store.read_log(tenant, limit=500).entries)
    row.is_enabled = False
    row.save()
    assert ensure_started(pm, data_dir=tmp_path) == []
    assert not runtime.is_enabled(tenant)
    assert _runtime(admin).is_enabled(tenant), "only this process's copy is forgotten"
    assert len(store.read_log(tenant, limit=500).entries) == entries, "the disabling process logs"
    assert hs.requests == []

    row.is_enabled = True
    row.save()
    assert ensure_started(pm, data_dir=tmp_path) == [tenant]
    assert runtime.is_enabled(tenant)


@pytest.mark.django_db
def test_requests_recheck_the_rows_after_the_interval(
    tmp_path: Path, hs: Sandbox, managers: list[pluggy.PluginManager], client: Any, settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the interval passed, a web process's next request notices a disable made elsewhere."""
    settings.AMBAC_PLUGIN_DATA_DIR = str(tmp_path)
    settings.HUBSPOT_TENANT_RECHECK_SECONDS = 0
    hubspot_settings = plugin_settings(hs)
    tenant = _tenant(hubspot_settings, enabled=True)
    admin = build_plugin_manager()
    managers.append(admin)
    admin.hook.ambac_plugin_enabled(host=DjangoHostServices(tenant), tenant_id=tenant,
                                    plugin_id=plugin_module.PLUGIN_ID, settings=hubspot_settings)
    process = build_plugin_manager()
    managers.append(process)
    monkeypatch.setattr(apps.get_app_config("ambac_hubspot"), "plugin_manager", process)

    client.get("/any-page")
    assert _runtime(process).is_enabled(tenant)
    IntegrationConfig.objects.filter(tenant_id=tenant).update(is_enabled=False)
    client.get("/any-page")
    assert not _runtime(process).is_enabled(tenant)
