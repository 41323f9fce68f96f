"""Settings changed through the plugin's admin API on the Django bridge are saved in the tenant's
``IntegrationConfig`` (``save_plugin_settings``): a restart and the other processes get them, the
secrets encrypted at rest and never in the plain ``config``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

import pluggy
from django.conf import settings as django_settings
from django.db import connections
from integrations.models import IntegrationConfig
from Tracker.models import Tenant

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.admin import Admin
from ambac_hubspot_plugin.contrib.django.apps import build_plugin_manager
from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices
from ambac_hubspot_plugin.contrib.django.startup import ensure_started
from ambac_hubspot_plugin.contrib.django.tenant_settings import settings_for
from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS
from ambac_hubspot_plugin.sandbox import Sandbox

from .._world import plugin_settings
from ..hostservices_conformance import EventRecorder
from ._double import DjangoHostUnderTest

OLD_WEBHOOK_SECRET = "whsec-old-0123456789"
NEW_WEBHOOK_SECRET = "whsec-new-9876543210"
ALIASES = [
    pytest.param("default", marks=pytest.mark.django_db),
    pytest.param("postgres", marks=[
        pytest.mark.postgres,
        pytest.mark.skipif("postgres" not in django_settings.DATABASES,
                           reason="PostgreSQL does not answer at 127.0.0.1:5432"),
        pytest.mark.django_db(transaction=True, databases=["postgres"])]),
]


def _runtime(pm: pluggy.PluginManager) -> Any:
    return pm.get_plugin(plugin_module.RUNTIME_NAME).runtime


@pytest.fixture
def processes(alias: str, managers: list[pluggy.PluginManager]) -> Iterator[list[pluggy.PluginManager]]:
    """``managers``; on PostgreSQL, the store tables the test made in the host's database are
    dropped after it (a flush keeps them, and another test counts the tables enabling makes)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        yield managers
        return
    before = set(connection.introspection.table_names())
    yield managers
    for pm in managers:  # the stores' connections first, or DROP waits for them
        _runtime(pm).close()
    made = [name for name in connection.introspection.table_names() if name not in before]
    with connection.cursor() as cursor:
        for name in made:
            cursor.execute("DROP TABLE IF EXISTS " + connection.ops.quote_name(name) + " CASCADE")


def _process(managers: list[pluggy.PluginManager], alias: str, data_dir: Path) -> pluggy.PluginManager:
    """A host process that has taken up the enabled tenants from their rows."""
    pm = build_plugin_manager()
    managers.append(pm)
    ensure_started(pm, using=alias, data_dir=data_dir)
    return pm


def _enabled_tenant(hs: Sandbox, alias: str) -> str:
    """A tenant whose HubSpot integration is enabled: plain settings in ``config``, the access
    token and the webhook secret in the encrypted fields (as the host's page saves them)."""
    tenant = Tenant.objects.using(alias).create(name="Acme", slug=f"t-{uuid.uuid4().hex}")
    config = {key: value for key, value in plugin_settings(hs).items() if key != "credentials"}
    IntegrationConfig.objects.using(alias).create(
        tenant=tenant, provider="hubspot", is_enabled=True, config=config,
        api_key=hs.access_token, webhook_secret=OLD_WEBHOOK_SECRET)
    return str(tenant.pk)


def _admin(pm: pluggy.PluginManager, tenant: str, alias: str, data_dir: Path) -> tuple[Admin, Any]:
    """The plugin's admin API in process ``pm``, and a user allowed to change the settings."""
    services = DjangoHostServices(tenant, using=alias, data_dir=data_dir)
    user = DjangoHostUnderTest(alias, data_dir, EventRecorder()).create_user(
        services, [MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS])
    return Admin(_runtime(pm), services), user


def _row(tenant: str, alias: str) -> Any:
    return IntegrationConfig.objects.using(alias).get(tenant_id=tenant, provider="hubspot")


def _stored_columns(tenant: str, alias: str) -> str:
    """The row's columns as the database holds them (ciphertext for the encrypted fields)."""
    connection = connections[alias]
    key = IntegrationConfig._meta.pk.get_db_prep_value(_row(tenant, alias).pk, connection)
    query = ("SELECT api_key, oauth_refresh_token, webhook_secret, config FROM "
             + IntegrationConfig._meta.db_table + " WHERE id = %s")
    with connection.cursor() as cursor:
        cursor.execute(query, [key])
        (values,) = cursor.fetchall()
    return " ".join(str(value) for value in values)


@pytest.mark.parametrize("alias", ALIASES)
def test_a_settings_change_survives_a_restart_and_reaches_the_other_processes(
    alias: str, tmp_path: Path, hs: Sandbox, processes: list[pluggy.PluginManager]
) -> None:
    """``change_settings`` (the secrets read back masked, the webhook secret replaced) is saved
    in the row: a process started afterwards and one already running (at its next recheck) run
    with it; the secrets are ciphertext at rest and absent from ``config``."""
    tenant = _enabled_tenant(hs, alias)
    changing = _process(processes, alias, tmp_path)
    other = _process(processes, alias, tmp_path)
    admin, user = _admin(changing, tenant, alias, tmp_path)
    sent = {**admin.settings(user), "sync_interval_seconds": 1234, "webhook_client_secret": NEW_WEBHOOK_SECRET}
    assert sent["credentials"]["access_token"] == "***"

    admin.change_settings(user, sent)

    saved = settings_for(_row(tenant, alias), using=alias)
    assert saved["sync_interval_seconds"] == 1234
    assert saved["webhook_client_secret"] == NEW_WEBHOOK_SECRET
    assert saved["credentials"]["access_token"] == hs.access_token
    config = _row(tenant, alias).config
    assert config.get("store_url") is None and config.get("rate_limit_backend") is None
    at_rest = _stored_columns(tenant, alias)
    for secret in (hs.access_token, NEW_WEBHOOK_SECRET, OLD_WEBHOOK_SECRET):
        assert secret not in json.dumps(config) and secret not in at_rest

    restarted = _process(processes, alias, tmp_path)
    assert ensure_started(other, using=alias, data_dir=tmp_path) == [tenant]
    for pm in (restarted, other):
        running = _runtime(pm).tenant(tenant).settings
        assert running.sync_interval_seconds == 1234
        assert running.webhook_client_secret.reveal() == NEW_WEBHOOK_SECRET


@pytest.mark.parametrize("alias", ALIASES)
def test_a_refused_change_saves_nothing(
    alias: str, tmp_path: Path, hs: Sandbox, processes: list[pluggy.PluginManager]
) -> None:
    """Settings the plugin refuses, and a URL whose password the plain ``config`` would hold,
    raise ConfigError and leave the row exactly as it was."""
    tenant = _enabled_tenant(hs, alias)
    pm = _process(processes, alias, tmp_path)
    admin, user = _admin(pm, tenant, alias, tmp_path)
    before = _stored_columns(tenant, alias)
    current = admin.settings(user)

    with pytest.raises(ConfigError) as refused:
        admin.change_settings(user, {**current, "sync_interval_seconds": 5})
    assert "sync_interval_seconds" in refused.value.problems
    with pytest.raises(ConfigError) as leaking:
        admin.host.save_plugin_settings(  # type: ignore[attr-defined]  # the bridge's services save
            "hubspot", {**plugin_settings(hs), "store_url": "postgresql+psycopg://u:pw-in-url@db.invalid/x"})
    assert "store_url" in leaking.value.problems and "pw-in-url" not in str(leaking.value)

    assert _stored_columns(tenant, alias) == before  # Fernet tokens differ at each save


@pytest.mark.django_db
def test_saving_settings_calls_no_hook_of_the_plugin(
    tmp_path: Path, hs: Sandbox, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """With the plugin as the host's adapter, the services' save of the row queues no
    ``ambac_settings_changed`` (the plugin has applied the settings); the host's own save does."""
    settings.HUBSPOT_MODE = "plugin"
    tenant = _enabled_tenant(hs, "default")
    services = DjangoHostServices(tenant, data_dir=tmp_path)

    with django_capture_on_commit_callbacks() as by_services:
        services.save_plugin_settings("hubspot", {**plugin_settings(hs), "sync_interval_seconds": 600})
    with django_capture_on_commit_callbacks() as by_host:
        row = _row(tenant, "default")
        row.config = {**row.config, "sync_interval_seconds": 700}
        row.save()

    assert (len(by_services), len(by_host)) == (0, 1)
    assert _row(tenant, "default").config["sync_interval_seconds"] == 700
