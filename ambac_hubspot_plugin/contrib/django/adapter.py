"""The plugin as the host's ``INTEGRATION_ADAPTERS[("hubspot", "plugin")]``.

With ``HUBSPOT_MODE = "plugin"`` in the host's settings, the host's Integrations page (Test,
Sync now, sync logs) and its webhook view use :class:`HubSpotPluginAdapter`, and the host's
built-in HubSpot sync is never chosen. The page's permission check is the host's own (its
integration views are for platform staff), so the adapter calls the plugin's admin API as the
host, without a second check.

Turning the integration on or off on that page saves the tenant's ``IntegrationConfig``:
:func:`connect_receivers` (called by the app's ``ready()``) watches those saves and, once the
host's transaction commits, calls ``ambac_plugin_enabled``, ``ambac_plugin_disabled`` or
``ambac_settings_changed``. Receivers rather than adapter methods, because the page saves the
row directly; after the commit, because a rolled-back save changed nothing. A save by the
bridge's own services (settings the plugin has already applied, ``save_plugin_settings``) is
no change to report. A hook that fails
there is logged (without secrets), and the enabled row is still taken up by every process
(``startup``), so the tenant runs and its status shows the failure.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models.signals import post_save, pre_save
from django.http import HttpRequest as DjangoRequest
from django.http import HttpResponse as DjangoResponse
from integrations.models import IntegrationConfig

from ... import plugin as plugin_module
from ...admin import Admin
from ...host import User, as_host_id
from . import plugin_manager
from .events import host_events_suppressed
from .services import DjangoHostServices
from .startup import PROVIDER, row_fingerprint
from .tenant_settings import scrub_row_secrets, settings_for
from .views import WEBHOOK_ROUTE, serve_signed

try:  # the host's base class, so its catalog and capability discovery see a real adapter
    from integrations.adapters.base import BaseAdapter
except ImportError:  # a host without the integrations framework
    class BaseAdapter:  # type: ignore[no-redef]
        manifest: dict[str, Any] | None = None

__all__ = ["HubSpotPluginAdapter", "WebhookUnavailableError", "connect_receivers", "plugin_mode"]

logger = logging.getLogger(__name__)

MODE = "plugin"
"""The ``HUBSPOT_MODE`` that chooses this adapter."""
_SERVED = "_ambac_hubspot_webhook_response"


def plugin_mode() -> bool:
    """Whether the host's settings choose the plugin (``HUBSPOT_MODE = "plugin"``)."""
    from django.conf import settings

    return getattr(settings, "HUBSPOT_MODE", "cloud") == MODE


class WebhookUnavailableError(RuntimeError):
    """The plugin cannot take a HubSpot delivery for the tenant now (see
    :meth:`HubSpotPluginAdapter.verify_webhook`); its message says why and what to fix."""


def _message(response: DjangoResponse) -> str:
    try:
        return str(json.loads(response.content)["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


class _HostAdmin(Admin):
    """The admin API acting as the host: the host's view has checked its own permission."""

    def require(self, user: User | None, permission: str, operation: str) -> None:
        return None


class _Tenant:
    """The plugin's admin API for one tenant's ``IntegrationConfig`` row (provider ``hubspot``)."""

    def __init__(self, integration: Any) -> None:
        self.config = integration
        self._using = integration._state.db or DEFAULT_DB_ALIAS
        self.tenant_id = as_host_id(integration.tenant_id, "tenant_id")

    def runtime(self) -> Any:
        """The plugin's runtime, with this tenant taken up when its row is enabled.

        A tenant enabled by another process since this one swept is started here; when its
        start fails (bad settings, store unreachable) the error propagates, so the page can
        show why (scrubbed of secrets by the callers).
        """
        pm = plugin_manager()
        runtime = pm.get_plugin(plugin_module.RUNTIME_NAME).runtime
        if self.config.is_enabled and not runtime.is_enabled(self.tenant_id):
            pm.hook.ambac_plugin_started(
                host=self.services(), tenant_id=self.tenant_id,
                plugin_id=plugin_module.PLUGIN_ID, settings=settings_for(self.config, using=self._using))
        return runtime

    def services(self) -> DjangoHostServices:
        return DjangoHostServices(self.tenant_id, using=self._using)

    def admin(self) -> Admin:
        return _HostAdmin(self.runtime(), self.services())

    def scrub(self, text: str) -> str:
        return scrub_row_secrets(text, self.config)


class HubSpotPluginAdapter(BaseAdapter):
    """The host's adapter contract (``BaseAdapter``) on the plugin.

    The host's registry builds it with no arguments and shares one instance per process, so it
    keeps no tenant: every method takes the tenant's ``IntegrationConfig`` row.
    """

    manifest: ClassVar[dict[str, Any]] = {"id": PROVIDER, "name": "HubSpot (ambac-hubspot-plugin)",
                                "mode": MODE}

    def test_connection(self, integration: Any) -> tuple[bool, str]:
        """Run the plugin's connection checks now: ``(success, message)``, the message naming
        each failed check."""
        tenant = _Tenant(integration)
        try:
            report = tenant.admin().test_connection(None)
        except Exception as exc:  # the page shows the message; it must not become a 500
            return False, tenant.scrub(f"HubSpot connection test could not run: {exc}")
        failed = [check for check in report.checks if not check.ok]
        message = ("; ".join(f"{check.name}: {check.summary}" for check in failed) if failed
                   else "connected; every check passed")
        return bool(report.ok), tenant.scrub(message)

    def dispatch_sync_task(self, integration: Any) -> dict[str, Any]:
        """Queue an incremental sync ("Sync now"): the plugin's worker runs it. A backfill is
        not queued from the page: ``manage.py hubspot sync --backfill`` runs it."""
        tenant = _Tenant(integration)
        try:
            result = tenant.admin().run_sync(None, wait=False)
        except Exception as exc:
            return {"queued": False, "success": False,
                    "message": tenant.scrub(f"HubSpot sync could not be queued: {exc}")}
        tenant.runtime().wake()
        return dict(result)

    def push_order_status(self, integration: Any, link: Any = None, status: Any = None) -> None:
        """Record the linked order's status change for the plugin's push (it coalesces with the
        same change recorded from the host's save; the push reads the order's latest state)."""
        tenant = _Tenant(integration)
        order = getattr(link, "order", link)
        tenant.runtime().record_host_event(
            tenant.services(), tenant.tenant_id, "order", as_host_id(order.pk, "order_id"),
            "status_changed", {"previous_status": None})

    def verify_webhook(self, request: DjangoRequest, integration: Any) -> bool:
        """Check HubSpot's signature on the raw body; a signed delivery is stored here, before
        the host answers (the plugin's webhook route verifies and stores in one step).

        :raises WebhookUnavailableError: the plugin cannot take deliveries for this tenant now
            (it cannot start here: invalid saved settings). The host's view answers 500 and
            HubSpot retries; False would make it answer 403, which HubSpot never retries.
        """
        response = self._serve(request, integration)
        if response.status_code == 503:
            raise WebhookUnavailableError(_message(response))
        return response.status_code != 401

    def handle_webhook(self, request: DjangoRequest, integration: Any) -> dict[str, Any]:
        """The stored delivery's answer (the host returns it as JSON, 200). A delivery the
        plugin could not store raises, so the host answers 500 and HubSpot retries."""
        response = self._serve(request, integration)
        if response.status_code != 200:
            raise RuntimeError(f"the HubSpot delivery was not stored (HTTP {response.status_code})")
        try:
            body = json.loads(response.content or b"{}")
        except ValueError:
            body = None
        return body if isinstance(body, dict) else {"status": "stored"}

    def _serve(self, request: DjangoRequest, integration: Any) -> DjangoResponse:
        # verify_webhook and handle_webhook see the same request: serve it once.
        response: DjangoResponse | None = getattr(request, _SERVED, None)
        if response is None:
            route = next(r for r in plugin_manager().get_plugin(plugin_module.RUNTIME_NAME).runtime.http_routes()
                         if r.name == WEBHOOK_ROUTE)
            tenant = _Tenant(integration)
            try:
                tenant.runtime()  # takes the tenant up in this process when another one enabled it
            except Exception as exc:  # serve_signed answers 503 for a tenant that cannot start
                logger.error("HubSpot integration of tenant %s could not start for a delivery "
                             "(%s: %s)", tenant.tenant_id, type(exc).__name__, tenant.scrub(str(exc)))
            response = serve_signed(route, request, {"tenant_id": tenant.tenant_id}, plugin_manager())
            setattr(request, _SERVED, response)
        return response

    def get_sync_logs(self, integration: Any, limit: int = 20) -> list[dict[str, Any]]:
        """The plugin's sync runs, newest first (not on the host's ``BaseAdapter``: for the
        plugin's own status view)."""
        return _Tenant(integration).admin().history(None, limit=limit)


# Enabling, disabling and settings changes from the host's page -----------------------------

_BEFORE = "_ambac_hubspot_before"
_DOING = {"enabled": "enabling", "disabled": "disabling", "settings_changed": "applying new settings"}


def _remember_before(sender: Any, instance: Any, raw: bool = False, using: str = DEFAULT_DB_ALIAS,
                     **kwargs: Any) -> None:
    if raw or instance.provider != PROVIDER or not plugin_mode() or host_events_suppressed():
        return
    before = type(instance).objects.using(using).filter(pk=instance.pk).first() if instance.pk else None
    setattr(instance, _BEFORE, None if before is None else _state(before))


def _state(row: Any) -> tuple[bool, str]:
    return (row.is_enabled, row_fingerprint(row))


def _after_save(sender: Any, instance: Any, created: bool = False, raw: bool = False,
                using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    if raw or instance.provider != PROVIDER or not plugin_mode() or host_events_suppressed():
        return
    before = getattr(instance, _BEFORE, None)
    was_enabled = before is not None and before[0]
    now = _state(instance)
    if instance.is_enabled and not was_enabled:
        action = "enabled"
    elif was_enabled and not instance.is_enabled:
        action = "disabled"
    elif instance.is_enabled and before != now:
        action = "settings_changed"
    else:
        return
    transaction.on_commit(lambda: apply_change(instance, action, using=using), using=using)


def apply_change(row: Any, action: str, *, using: str = DEFAULT_DB_ALIAS) -> object:
    """Call the plugin's hook for ``action`` (``enabled``, ``disabled``, ``settings_changed``)
    on ``row``'s tenant; log a failure without secrets and return None for it.

    :return: the ``EnableReport`` for ``enabled``, else None.
    """
    pm = plugin_manager()
    tenant_id = as_host_id(row.tenant_id, "tenant_id")
    host = DjangoHostServices(tenant_id, using=using)
    try:
        if action == "disabled":
            pm.hook.ambac_plugin_disabled(host=host, tenant_id=tenant_id, plugin_id=plugin_module.PLUGIN_ID)
            return None
        settings = settings_for(row, using=using)
        if action == "enabled":
            reports = pm.hook.ambac_plugin_enabled(host=host, tenant_id=tenant_id,
                                                   plugin_id=plugin_module.PLUGIN_ID, settings=settings)
            return next((report for report in reports if report is not None), None)
        pm.hook.ambac_settings_changed(host=host, tenant_id=tenant_id,
                                       plugin_id=plugin_module.PLUGIN_ID, settings=settings)
    except Exception as exc:  # after the commit: nothing to roll back; the page shows the status
        logger.error("HubSpot integration of tenant %s: %s failed (%s): %s", tenant_id,
                     _DOING[action], type(exc).__name__, scrub_row_secrets(str(exc), row))
    return None


def connect_receivers() -> None:
    """Watch ``IntegrationConfig`` saves (the app's ``ready()`` calls this once)."""
    pre_save.connect(_remember_before, sender=IntegrationConfig, dispatch_uid="ambac_hubspot.config.before")
    post_save.connect(_after_save, sender=IntegrationConfig, dispatch_uid="ambac_hubspot.config.after")
