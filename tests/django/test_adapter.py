"""The plugin as the host's ``INTEGRATION_ADAPTERS[("hubspot", "plugin")]``: chosen by
``HUBSPOT_MODE``, driven by the Integrations page (Test, Sync now, sync logs, webhooks, the
enabled switch), with credentials from ``IntegrationConfig``'s encrypted fields."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

import pluggy
import sqlalchemy as sa
from django.apps import apps
from django.conf import settings
from django.db import connections, transaction
from integrations.adapters.base import BaseAdapter
from integrations.adapters.builtin import BuiltInHubSpotAdapter
from integrations.models import IntegrationConfig
from integrations.services.registry import get_adapter
from Tracker.models import Orders, Tenant
from Tracker.utils.tenant_context import tenant_context

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.contrib.django.adapter import HubSpotPluginAdapter, WebhookUnavailableError, apply_change
from ambac_hubspot_plugin.contrib.django.apps import build_plugin_manager
from ambac_hubspot_plugin.contrib.django.tenant_settings import host_store_url, settings_for
from ambac_hubspot_plugin.contrib.django.views import WEBHOOK_ROUTE, serve_signed
from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.sandbox import Sandbox, sign_v3

from .._world import plugin_settings

WEBHOOK_SECRET = "whsec-" + "s" * 30


@pytest.fixture
def process(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pluggy.PluginManager]:
    """A host process in plugin mode: the app's plugin manager is a fresh one, closed after."""
    settings.HUBSPOT_MODE = "plugin"
    settings.AMBAC_PLUGIN_DATA_DIR = str(tmp_path)
    pm = build_plugin_manager()
    monkeypatch.setattr(apps.get_app_config("ambac_hubspot"), "plugin_manager", pm)
    yield pm
    runtime = pm.get_plugin(plugin_module.RUNTIME_NAME)
    if runtime._runtime is not None:
        runtime._runtime.close()


def _runtime(pm: pluggy.PluginManager) -> Any:
    return pm.get_plugin(plugin_module.RUNTIME_NAME).runtime


def _config(hs: Sandbox, *, token: str | None = None, using: str = "default", **extra: Any) -> Any:
    """A disabled HubSpot configuration of a new tenant: plain settings in ``config``, the
    token and the webhook secret in the encrypted fields."""
    tenant = Tenant.objects.using(using).create(name="Acme", slug=f"t-{uuid.uuid4().hex}")
    config = {k: v for k, v in plugin_settings(hs, **extra).items() if k != "credentials"}
    return IntegrationConfig.objects.using(using).create(
        tenant=tenant, provider="hubspot", is_enabled=False, config=config,
        api_key=hs.access_token if token is None else token, webhook_secret=WEBHOOK_SECRET)


def _switch(row: Any, enabled: bool, capture: Any, using: str = "default") -> None:
    """The Integrations page's switch: the row saved in a committed transaction."""
    with capture(using=using, execute=True):
        row.is_enabled = enabled
        row.save(using=using)


# The registry --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_hubspot_mode_plugin_chooses_the_plugin_and_cloud_keeps_the_built_in(settings: Any, hs: Sandbox) -> None:
    """Without ``HUBSPOT_MODE`` the host's built-in adapter is chosen; ``plugin`` chooses ours."""
    _config(hs)
    assert type(get_adapter("hubspot")) is BuiltInHubSpotAdapter
    settings.HUBSPOT_MODE = "plugin"
    adapter = get_adapter("hubspot")
    assert type(adapter) is HubSpotPluginAdapter
    assert isinstance(adapter, BaseAdapter) and adapter.manifest["id"] == "hubspot"
    assert get_adapter("hubspot") is adapter, "the registry shares one adapter per (provider, mode)"


# Enabling from the host's page ----------------------------------------------------------------


@pytest.mark.django_db
def test_the_pages_switch_enables_changes_and_disables_the_tenant(
    process: pluggy.PluginManager, hs: Sandbox, django_capture_on_commit_callbacks: Any
) -> None:
    """Saving the row enabled calls ``ambac_plugin_enabled`` (the token from the encrypted
    field), a config change applies new settings, and switching off disables the tenant."""
    row = _config(hs)
    tenant = str(row.tenant_id)

    _switch(row, True, django_capture_on_commit_callbacks)
    assert _runtime(process).is_enabled(tenant)
    assert _runtime(process).tenant(tenant).settings.credentials.access_token.reveal() == hs.access_token

    with django_capture_on_commit_callbacks(execute=True):
        row.config = {**row.config, "sync_interval_seconds": 1800}
        row.save()
    assert _runtime(process).tenant(tenant).settings.sync_interval_seconds == 1800

    _switch(row, False, django_capture_on_commit_callbacks)
    assert not _runtime(process).is_enabled(tenant)


@pytest.mark.django_db
def test_a_rolled_back_switch_enables_nothing(
    process: pluggy.PluginManager, hs: Sandbox, django_capture_on_commit_callbacks: Any
) -> None:
    """The hook runs after the host's commit: a save whose transaction rolls back leaves the
    plugin untouched."""
    row = _config(hs)

    def failing_view() -> None:
        with transaction.atomic():
            row.is_enabled = True
            row.save()
            raise RuntimeError("the host's view failed after the save")

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        failing_view()

    assert callbacks == []
    assert not _runtime(process).is_enabled(str(row.tenant_id))


@pytest.mark.django_db
def test_the_cloud_mode_leaves_the_plugin_alone(
    settings: Any, hs: Sandbox, django_capture_on_commit_callbacks: Any, process: pluggy.PluginManager
) -> None:
    """With the host's built-in sync chosen, enabling its configuration does not start the plugin."""
    settings.HUBSPOT_MODE = "cloud"
    row = _config(hs)
    _switch(row, True, django_capture_on_commit_callbacks)
    assert not _runtime(process).is_enabled(str(row.tenant_id))


# Test, Sync now, sync logs, order status ----------------------------------------------------


@pytest.fixture
def enabled_row(process: pluggy.PluginManager, hs: Sandbox, django_capture_on_commit_callbacks: Any) -> Any:
    """A tenant's configuration switched on from the host's page, in plugin mode."""
    row = _config(hs)
    _switch(row, True, django_capture_on_commit_callbacks)
    return row


@pytest.mark.django_db
def test_test_connection_answers_the_hosts_shape(
    process: pluggy.PluginManager, hs: Sandbox, enabled_row: Any
) -> None:
    """"Test" runs the plugin's checks against HubSpot: success with each check listed."""
    row = enabled_row
    hs.clear_requests()

    success, message = get_adapter("hubspot").test_connection(row)

    assert success is True, message
    assert message
    assert hs.requests, "the test must call HubSpot"


@pytest.mark.django_db
def test_a_failing_test_connection_never_shows_the_token(
    process: pluggy.PluginManager, hs: Sandbox, django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a token HubSpot refuses, "Test" fails and names the failed check; the token is in
    no part of the answer nor in the log."""
    token = "pat-na1-" + "f" * 36
    row = _config(hs, token=token)
    _switch(row, True, django_capture_on_commit_callbacks)

    success, message = get_adapter("hubspot").test_connection(row)

    assert success is False
    assert message
    assert token not in message
    assert token not in caplog.text


@pytest.mark.django_db
def test_secrets_are_scrubbed_from_errors_that_quote_them(
    process: pluggy.PluginManager, hs: Sandbox, django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A token pasted into a plain field (here the time zone) is quoted by the settings error;
    the failed enable's log line and "Test"'s message show ``***`` instead."""
    token = "pat-na1-" + "e" * 36
    row = _config(hs, token=token, portal_timezone=token)
    _switch(row, True, django_capture_on_commit_callbacks)

    success, message = get_adapter("hubspot").test_connection(row)

    assert "portal_timezone" in caplog.text and "***" in caplog.text
    assert success is False and "***" in message
    assert token not in caplog.text and token not in message


@pytest.mark.django_db
def test_sync_now_queues_an_incremental_sync_whose_run_is_in_the_sync_logs(
    process: pluggy.PluginManager, hs: Sandbox, enabled_row: Any
) -> None:
    """"Sync now" queues one incremental sync (twice: still one job); once the worker ran it,
    the page's sync logs list the run."""
    row = enabled_row
    adapter = get_adapter("hubspot")

    first, second = adapter.dispatch_sync_task(row), adapter.dispatch_sync_task(row)
    assert first["queued"] is True and first["job_id"] == second["job_id"]
    assert adapter.get_sync_logs(row) == []
    _runtime(process).drain()

    (run,) = adapter.get_sync_logs(row)
    assert run["kind"] == "incremental" and run["status"] == "succeeded"


@pytest.mark.django_db
def test_push_order_status_records_the_change_for_the_push(
    process: pluggy.PluginManager, hs: Sandbox, enabled_row: Any
) -> None:
    """The host's ``push_order_status`` records a status-change job in the plugin's queue."""
    row = enabled_row
    with tenant_context(str(row.tenant_id)):
        order = Orders.objects.create(tenant_id=row.tenant_id, name="Bracket", order_status="COMPLETED")

    link = SimpleNamespace(order=order)  # the host's order link row: its ``order`` is the order
    get_adapter("hubspot").push_order_status(row, link=link, status="closedwon")

    store = _runtime(process).store_for(str(row.tenant_id))
    (job,) = store.queued(str(row.tenant_id), ["host.order.status_changed"])
    assert job.payload["record_id"] == str(order.pk)


# Webhooks through the host's view ----------------------------------------------------------


def _delivery(hs: Sandbox, url: str, secret: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps([{"eventId": 1, "subscriptionId": 1, "portalId": int(hs.portal_id), "appId": 9,
                        "occurredAt": int(datetime.now(UTC).timestamp() * 1000),
                        "subscriptionType": "deal.propertyChange", "attemptNumber": 0,
                        "objectId": 42, "propertyName": "dealstage", "propertyValue": "closedwon",
                        "changeSource": "CRM_UI"}]).encode()
    stamp = str(int(datetime.now(UTC).timestamp() * 1000))
    return body, {"HTTP_X_HUBSPOT_REQUEST_TIMESTAMP": stamp,
                  "HTTP_X_HUBSPOT_SIGNATURE_V3": sign_v3(secret, "POST", url, body, stamp)}


@pytest.mark.django_db(transaction=True, databases="__all__")  # ATOMIC_REQUESTS opens every alias
def test_the_hosts_webhook_view_hands_deliveries_to_the_plugin(
    process: pluggy.PluginManager, hs: Sandbox, client: Any
) -> None:
    """In plugin mode the host's webhook view stores a signed delivery in the plugin's inbox
    (200) and refuses a forged one (403, as the host answers an unverified delivery); the
    built-in adapter is never asked."""
    BuiltInHubSpotAdapter.calls.clear()
    row = _config(hs)
    report = apply_change(row, "enabled")
    assert report is not None
    url = f"http://testserver/integrations/hubspot/webhook/{row.tenant_id}/"
    body, headers = _delivery(hs, url, WEBHOOK_SECRET)
    forged_body, forged = _delivery(hs, url, "not-the-secret")

    stored = client.post(url, body, content_type="application/json", **headers)
    refused = client.post(url, forged_body, content_type="application/json", **forged)

    assert (stored.status_code, refused.status_code) == (200, 403)
    assert BuiltInHubSpotAdapter.calls == []
    assert _runtime(process).drain() >= 1  # the stored delivery became work


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_delivery_for_a_tenant_that_cannot_start_is_retried_never_refused(
    process: pluggy.PluginManager, hs: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Saved settings this process refuses (the tenant enabled, then broken): the host's view
    answers 5xx (the adapter raises rather than answer False, a 403 HubSpot never retries) and
    the plugin's own route 503 with Retry-After, naming the cause without a secret; nothing is
    stored. Once the settings are fixed the same delivery is stored."""
    from django.test import Client

    row = _config(hs)
    assert apply_change(row, "enabled") is not None
    good = dict(row.config)
    _runtime(process).close()  # a fresh process: the tenant is not started here
    fresh = build_plugin_manager()
    apps.get_app_config("ambac_hubspot").plugin_manager = fresh  # undone by the process fixture
    IntegrationConfig.objects.filter(pk=row.pk).update(is_enabled=True,
                                                        config={**good, "sync_interval_minutes": "never"})
    row.refresh_from_db()
    host_url = f"http://testserver/integrations/hubspot/webhook/{row.tenant_id}/"
    body, headers = _delivery(hs, host_url, WEBHOOK_SECRET)
    client = Client(raise_request_exception=False)
    try:
        with pytest.raises(WebhookUnavailableError, match="could not start in this process"):
            HubSpotPluginAdapter().verify_webhook(_request(host_url, body, headers), row)
        assert client.post(host_url, body, content_type="application/json", **headers).status_code == 500

        own = serve_signed(_webhook_route(fresh), _request(host_url, body, headers),
                           {"tenant_id": str(row.tenant_id)}, fresh)
        assert (own.status_code, own["Retry-After"]) == (503, "60")
        assert "sync_interval_minutes" in caplog.text
        assert WEBHOOK_SECRET not in caplog.text and hs.access_token not in caplog.text

        IntegrationConfig.objects.filter(pk=row.pk).update(config=good)
        stored = client.post(host_url, body, content_type="application/json", **headers)
        assert stored.status_code == 200, "the plugin answers 200 only for a stored delivery"
        assert _runtime(fresh).is_enabled(str(row.tenant_id))
    finally:
        _runtime(fresh).close()


def _request(url: str, body: bytes, headers: dict[str, str]) -> Any:
    from django.test import RequestFactory

    return RequestFactory().post(url, body, content_type="application/json", **headers)


def _webhook_route(pm: pluggy.PluginManager) -> Any:
    return next(route for routes in pm.hook.ambac_http_routes() for route in routes
                if route.name == WEBHOOK_ROUTE)


# Credentials and the store ----------------------------------------------------------------


@pytest.mark.django_db
def test_credentials_are_encrypted_at_rest(hs: Sandbox) -> None:
    """The double keeps the token and the webhook secret encrypted in their columns."""
    row = _config(hs)
    with connections["default"].cursor() as cursor:
        cursor.execute(f"SELECT api_key, webhook_secret FROM {IntegrationConfig._meta.db_table} WHERE id = %s",
                       [row.pk.hex])
        stored = cursor.fetchone()
    assert hs.access_token not in stored[0] and WEBHOOK_SECRET not in stored[1]
    assert IntegrationConfig.objects.get(pk=row.pk).api_key == hs.access_token


@pytest.mark.django_db
def test_settings_come_from_config_and_the_encrypted_fields(settings: Any, hs: Sandbox) -> None:
    """``config`` gives the plain settings; ``api_key`` the access token, ``webhook_secret``
    the webhook client secret; on the host's SQLite no ``store_url`` is added (the plugin's own
    file); an OAuth refresh token becomes OAuth credentials with the host's client secret."""
    settings.HUBSPOT_CLIENT_ID = "client-from-settings"
    settings.HUBSPOT_CLIENT_SECRET = "client-secret-" + "c" * 20
    row = _config(hs)

    built = settings_for(row)
    assert built["credentials"] == {"kind": "private_app", "access_token": hs.access_token}
    assert built["webhook_client_secret"] == WEBHOOK_SECRET
    assert "store_url" not in built
    assert built["portal_id"] == str(hs.portal_id)

    row.api_key, row.oauth_refresh_token = "", "refresh-" + "r" * 20
    row.config = {**row.config, "credentials": {"kind": "oauth", "client_id": "client-from-config"}}
    assert settings_for(row)["credentials"] == {
        "kind": "oauth", "client_id": "client-from-config", "client_secret": settings.HUBSPOT_CLIENT_SECRET,
        "refresh_token": row.oauth_refresh_token}


@pytest.mark.django_db
@pytest.mark.parametrize(("config", "api_key", "refresh", "field"), [
    ({"credentials": {"kind": "private_app", "access_token": "pat-in-plain-config"}}, "", "",
     "config.credentials.access_token"),
    ({"webhook_client_secret": "whsec-in-plain-config"}, "pat-x", "", "config.webhook_client_secret"),
    ({}, "pat-both", "refresh-both", "api_key"),
], ids=["token-in-config", "webhook-secret-in-config", "both-credentials"])
def test_secrets_in_plain_config_or_two_credentials_are_refused(
    hs: Sandbox, config: dict[str, Any], api_key: str, refresh: str, field: str
) -> None:
    """A secret in the plain ``config``, or both an API key and a refresh token, is a
    ConfigError naming the field and quoting no value."""
    row = _config(hs)
    row.config, row.api_key, row.oauth_refresh_token = {**row.config, **config}, api_key, refresh

    with pytest.raises(ConfigError) as raised:
        settings_for(row)

    assert field in raised.value.problems
    for value in ("pat-in-plain-config", "whsec-in-plain-config", "pat-both", "refresh-both"):
        assert value not in str(raised.value)


# The store in the host's PostgreSQL -------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.skipif("postgres" not in settings.DATABASES, reason="PostgreSQL does not answer at 127.0.0.1:5432")
@pytest.mark.django_db(transaction=True, databases=["postgres"])
def test_enabling_in_a_postgresql_host_puts_the_plugins_tables_in_its_database(
    process: pluggy.PluginManager, hs: Sandbox, django_capture_on_commit_callbacks: Any
) -> None:
    """On a host whose database is PostgreSQL, a tenant without ``store_url`` keeps its state
    in that database: enabling creates the ``hubspot_*`` tables there, beside the host's."""
    alias = "postgres"
    row = _config(hs, using=alias)
    url = settings_for(row, using=alias)["store_url"]
    assert url.startswith("postgresql+psycopg://")
    assert connections[alias].settings_dict["NAME"] in url
    before = set(connections[alias].introspection.table_names())

    _switch(row, True, django_capture_on_commit_callbacks, using=alias)

    assert _runtime(process).is_enabled(str(row.tenant_id))
    created = set(connections[alias].introspection.table_names()) - before
    assert "hubspot_alembic_version" in created
    assert created and all(name.startswith("hubspot_") for name in created)
    assert IntegrationConfig._meta.db_table in before


@pytest.mark.skipif("postgres" not in settings.DATABASES, reason="PostgreSQL does not answer at 127.0.0.1:5432")
def test_the_host_database_url_keeps_an_awkward_password_and_its_ssl_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's connection settings become one psycopg 3 URL: a password with URL
    characters survives, libpq options such as ``sslmode`` are kept, Django's own are not."""
    params = connections["postgres"].settings_dict
    monkeypatch.setitem(params, "PASSWORD", "p@ss:w/rd?#")
    monkeypatch.setitem(params, "OPTIONS", {"sslmode": "require", "server_side_binding": True})

    url = sa.make_url(host_store_url("postgres") or "")

    assert (url.drivername, url.password, url.database) == ("postgresql+psycopg", "p@ss:w/rd?#", params["NAME"])
    assert dict(url.query) == {"sslmode": "require"}


@pytest.mark.skipif("postgres" not in settings.DATABASES, reason="PostgreSQL does not answer at 127.0.0.1:5432")
@pytest.mark.django_db
def test_a_tenants_store_url_wins_over_the_hosts_database(hs: Sandbox) -> None:
    """On a PostgreSQL host, a ``store_url`` in the tenant's config is kept as given."""
    row = _config(hs, store_url="postgresql+psycopg://plugin@db.internal/hubspot")
    assert settings_for(row, using="postgres")["store_url"] == "postgresql+psycopg://plugin@db.internal/hubspot"
