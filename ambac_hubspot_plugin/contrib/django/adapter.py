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
row directly; after the commit, because a rolled-back save changed nothing. A hook that fails
there is logged (without secrets), and the enabled row is still taken up by every process
(``startup``), so the tenant runs and its status shows the failure.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models.signals import post_save, pre_save
from django.http import HttpRequest as DjangoRequest
from django.http import HttpResponse as DjangoResponse
from integrations.models import IntegrationConfig

from ... import plugin as plugin_module
from ...admin import Admin
from ...host import User, as_host_id
from . import plugin_manager
from .services import DjangoHostServices
from .startup import PROVIDER
from .tenant_settings import scrub_row_secrets, settings_for
from .views import WEBHOOK_ROUTE, serve_signed

__all__ = ["HubSpotPluginAdapter", "connect_receivers", "plugin_mode"]

logger = logging.getLogger(__name__)

MODE = "plugin"
"""The ``HUBSPOT_MODE`` that chooses this adapter."""


def plugin_mode() -> bool:
    """Whether the host's settings choose the plugin (``HUBSPOT_MODE = "plugin"``)."""
    from django.conf import settings

    return getattr(settings, "HUBSPOT_MODE", "cloud") == MODE


class _HostAdmin(Admin):
    """The admin API acting as the host: the host's view has checked its own permission."""

    def require(self, user: User | None, permission: str, operation: str) -> None:
        return None


class HubSpotPluginAdapter:
    """The host's adapter contract (``BaseAdapter``'s methods) on the plugin, for one tenant.

    :param config: the tenant's ``IntegrationConfig`` row (provider ``hubspot``).
    :param using: the database alias of the host's models.
    """

    def __init__(self, config: Any, *, using: str = DEFAULT_DB_ALIAS) -> None:
        self.config = config
        self._using = using
        self.tenant_id = as_host_id(config.tenant_id, "tenant_id")

    def __repr__(self) -> str:
        return f"HubSpotPluginAdapter(tenant_id={self.tenant_id!r})"

    def _runtime(self) -> Any:
        """The plugin's runtime, with this tenant taken up when its row is enabled.

        A tenant enabled by another process since this one swept is started here; when its
        start fails (bad settings, store unreachable) the error propagates, so the page can
        show why (scrubbed of secrets by the callers).
        """
        pm = plugin_manager()
        runtime = pm.get_plugin(plugin_module.RUNTIME_NAME).runtime
        if self.config.is_enabled and not runtime.is_enabled(self.tenant_id):
            pm.hook.ambac_plugin_started(
                host=DjangoHostServices(self.tenant_id, using=self._using), tenant_id=self.tenant_id,
                plugin_id=plugin_module.PLUGIN_ID, settings=settings_for(self.config, using=self._using))
        return runtime

    def _admin(self) -> Admin:
        return _HostAdmin(self._runtime(), DjangoHostServices(self.tenant_id, using=self._using))

    def _failure(self, what: str, exc: Exception) -> dict[str, Any]:
        return {"success": False, "message": scrub_row_secrets(f"{what}: {exc}", self.config)}

    def test_connection(self) -> dict[str, Any]:
        """Run the plugin's connection checks now (kept for its status view).

        :return: ``{"success", "message", "checks"}``; ``message`` names each failed check.
        """
        try:
            report = self._admin().test_connection(None)
        except Exception as exc:  # the page shows the message; it must not become a 500
            return self._failure("HubSpot connection test could not run", exc)
        failed = [check for check in report.checks if not check.ok]
        message = ("; ".join(f"{check.name}: {check.summary}" for check in failed) if failed
                   else "connected; every check passed")
        checks = [{"name": check.name, "ok": check.ok, "summary": check.summary}
                  for check in report.checks]
        return {"success": report.ok, "message": scrub_row_secrets(message, self.config),
                "checks": [{**check, "summary": scrub_row_secrets(check["summary"], self.config)}
                           for check in checks]}

    def dispatch_sync_task(self, sync_type: str = "incremental") -> dict[str, Any]:
        """Queue an incremental sync ("Sync now"): the plugin's worker runs it.

        A backfill is not queued from the page: ``manage.py hubspot sync --backfill`` runs it.
        """
        if sync_type not in ("incremental", "sync"):
            return {"queued": False, "message": f"a {sync_type!r} sync is not queued from this page; "
                                                "run `ambac-hubspot sync --backfill` for a backfill"}
        try:
            result = self._admin().run_sync(None, wait=False)
        except Exception as exc:
            return {"queued": False, **self._failure("HubSpot sync could not be queued", exc)}
        self._runtime().wake()
        return dict(result)

    def push_order_status(self, order: Any, previous_status: str | None = None) -> None:
        """Record the order's status change for the plugin's push (it coalesces with the same
        change recorded from the host's save; the push reads the order's latest state)."""
        status = previous_status or getattr(order, "order_status", None)
        self._runtime().record_host_event(
            DjangoHostServices(self.tenant_id, using=self._using), self.tenant_id, "order",
            as_host_id(order.pk, "order_id"), "status_changed", {"previous_status": status})

    def verify_webhook(self, request: DjangoRequest) -> bool:
        """Always true: the plugin's webhook route verifies HubSpot's signature on the raw body
        in :meth:`handle_webhook` and answers 401 itself, before anything is stored."""
        return True

    def handle_webhook(self, request: DjangoRequest) -> DjangoResponse:
        """Hand the delivery to the plugin's webhook route for this tenant: 200 only once it is
        stored; 401 for a bad signature; 404 when the tenant has the plugin disabled."""
        route = next(r for r in plugin_manager().get_plugin(plugin_module.RUNTIME_NAME).runtime.http_routes()
                     if r.name == WEBHOOK_ROUTE)
        self._runtime()  # takes the tenant up in this process when another one enabled it
        return serve_signed(route, request, {"tenant_id": self.tenant_id})

    def get_sync_logs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The plugin's sync runs, newest first (the host page's sync logs)."""
        return self._admin().history(None, limit=limit)


# Enabling, disabling and settings changes from the host's page -----------------------------

_BEFORE = "_ambac_hubspot_before"
_DOING = {"enabled": "enabling", "disabled": "disabling", "settings_changed": "applying new settings"}


def _remember_before(sender: Any, instance: Any, raw: bool = False, using: str = DEFAULT_DB_ALIAS,
                     **kwargs: Any) -> None:
    if raw or instance.provider != PROVIDER or not plugin_mode():
        return
    before = type(instance).objects.using(using).filter(pk=instance.pk).first() if instance.pk else None
    setattr(instance, _BEFORE, None if before is None else _state(before))


def _state(row: Any) -> tuple[Any, ...]:
    return (row.is_enabled, row.config, row.api_key, row.oauth_refresh_token, row.webhook_secret)


def _after_save(sender: Any, instance: Any, created: bool = False, raw: bool = False,
                using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    if raw or instance.provider != PROVIDER or not plugin_mode():
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
