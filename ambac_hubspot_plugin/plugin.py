"""The plugin's entry point (``ambac_tracker`` group, name ``hubspot``): the composition root.

Importing and registering this module is cheap and has no side effects: it imports neither
the HubSpot SDK nor the store, opens nothing and starts no thread. When the host calls
``ambac_add_hookspecs``, the module adds the ``hubspot_*`` specs, registers the built-in
strategies through those same hooks, and registers one :class:`HubSpotPlugin` per plugin
manager, which implements the host's hooks. Hookimpls stay thin: they translate arguments and
call :class:`~ambac_hubspot_plugin._runtime.Runtime`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

from ._version import __version__
from .host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS, OrderStatus, as_host_id, hookimpl

if TYPE_CHECKING:
    from ._clock import Clock
    from ._runtime import Runtime
    from .host import (
        Company,
        HostServices,
        HttpRoute,
        Order,
        PeriodicTask,
        PluginManifest,
        Shipment,
    )

__all__ = ["PLUGIN_ID", "HubSpotPlugin"]

PLUGIN_ID = "hubspot"
RUNTIME_NAME = "hubspot.runtime"

# Modules registered through the same hooks third parties use (datasette's DEFAULT_PLUGINS).
DEFAULT_PLUGINS: tuple[str, ...] = ("ambac_hubspot_plugin._builtins",)


@hookimpl
def ambac_add_hookspecs(plugin_manager: pluggy.PluginManager) -> None:
    """Add the ``hubspot_*`` specs and register the per-manager runtime and built-ins."""
    import importlib

    from . import hookspecs

    plugin_manager.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        plugin_manager.register(importlib.import_module(name), name=f"hubspot.{name.rsplit('.', 1)[-1]}")
    plugin_manager.register(HubSpotPlugin(plugin_manager), name=RUNTIME_NAME)


@hookimpl
def ambac_plugin_manifest() -> PluginManifest:
    """Describe the plugin to the host, with the JSON Schema of its settings."""
    from .host import PluginManifest
    from .settings import settings_schema

    return PluginManifest(
        id=PLUGIN_ID,
        name="HubSpot CRM",
        version=__version__,
        permissions=(MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS),
        settings_schema=settings_schema(),
    )


class HubSpotPlugin:
    """The host hooks of one plugin manager; all state lives in its runtime."""

    def __init__(self, plugin_manager: pluggy.PluginManager) -> None:
        self._pm = plugin_manager
        self._runtime: Runtime | None = None
        self._clock: Clock | None = None
        self._lock = threading.Lock()

    def use_clock(self, clock: Clock) -> None:
        """Take every time the plugin reads (row stamps, leases, retention, intervals, v3
        timestamps) from ``clock`` instead of the system's: for a host with a clock of its own
        (simulated time in a test or a soak). Call before the first hook call.

        :raises RuntimeError: the runtime was already built on another clock.
        """
        with self._lock:
            if self._runtime is not None and self._runtime.clock is not clock:
                raise RuntimeError("the HubSpot plugin's runtime is already running on another "
                                   "clock; call use_clock before the first hook call")
            self._clock = clock

    @property
    def runtime(self) -> Runtime:
        """The plugin's state, built on the first hook call rather than at registration."""
        with self._lock:
            if self._runtime is None:
                from ._facade import PluginHooks
                from ._runtime import Runtime

                self._runtime = Runtime(PluginHooks(self._pm), clock=self._clock)
            return self._runtime

    @hookimpl
    def ambac_plugin_enabled(
        self, host: HostServices, tenant_id: str, plugin_id: str, settings: Mapping[str, Any]
    ) -> object:
        """Validate settings, open the store and start the tenant's work."""
        if plugin_id != PLUGIN_ID:
            return None
        return self.runtime.enable(host, as_host_id(tenant_id, "tenant_id"), settings)

    @hookimpl
    def ambac_plugin_started(
        self, host: HostServices, tenant_id: str, plugin_id: str, settings: Mapping[str, Any]
    ) -> None:
        """Take up a tenant enabled earlier, in this process: no HubSpot call, no check."""
        if plugin_id == PLUGIN_ID:
            self.runtime.take_up(host, as_host_id(tenant_id, "tenant_id"), settings)

    @hookimpl
    def ambac_plugin_disabled(self, host: HostServices, tenant_id: str, plugin_id: str) -> None:
        """Stop the tenant's work; keep its data."""
        if plugin_id == PLUGIN_ID:
            self.runtime.disable(as_host_id(tenant_id, "tenant_id"), host)

    @hookimpl
    def ambac_plugin_stopped(self, host: HostServices, tenant_id: str, plugin_id: str) -> None:
        """Forget, in this process, a tenant disabled elsewhere; nothing else changes."""
        if plugin_id == PLUGIN_ID:
            self.runtime.stop(as_host_id(tenant_id, "tenant_id"))

    @hookimpl
    def ambac_settings_changed(
        self, host: HostServices, tenant_id: str, plugin_id: str, settings: Mapping[str, Any]
    ) -> None:
        """Validate new settings (raising ConfigError) and apply them if the tenant is enabled."""
        if plugin_id == PLUGIN_ID:
            self.runtime.settings_changed(host, as_host_id(tenant_id, "tenant_id"), settings)

    @hookimpl
    def ambac_order_status_changed(
        self, host: HostServices, order: Order, previous_status: OrderStatus
    ) -> None:
        """Record the status change durably for the outbound push."""
        self.runtime.record_host_event(
            host, order.tenant_id, "order", order.id, "status_changed",
            {"previous_status": previous_status.value},
        )

    @hookimpl
    def ambac_order_updated(self, host: HostServices, order: Order, changed_fields: Sequence[str]) -> None:
        """Record the order edit durably for the outbound push."""
        self.runtime.record_host_event(
            host, order.tenant_id, "order", order.id, "updated", {"changed_fields": list(changed_fields)}
        )

    @hookimpl
    def ambac_order_shipped(self, host: HostServices, order: Order, shipment: Shipment) -> None:
        """Record the shipment durably for the outbound push."""
        self.runtime.record_host_event(
            host, order.tenant_id, "order", order.id, "shipped",
            {
                "carrier": shipment.carrier,
                "tracking_number": shipment.tracking_number,
                "tracking_url": shipment.tracking_url,
                "ship_date": shipment.ship_date.isoformat() if shipment.ship_date else None,
            },
        )

    @hookimpl
    def ambac_company_saved(
        self, host: HostServices, company: Company, changed_fields: Sequence[str]
    ) -> None:
        """Record the company edit durably: its push moves the link to a new version, writes the
        company only if settings send companies to HubSpot, and rechecks a held conflict."""
        self.runtime.record_host_event(
            host, company.tenant_id, "company", company.id, "saved", {"changed_fields": list(changed_fields)}
        )

    @hookimpl
    def ambac_http_routes(self) -> Sequence[HttpRoute]:
        """Return the admin routes that exist so far."""
        return self.runtime.http_routes()

    @hookimpl
    def ambac_periodic_tasks(self) -> Sequence[PeriodicTask]:
        """Return the queue drain the host's scheduler can run."""
        return self.runtime.periodic_tasks()
