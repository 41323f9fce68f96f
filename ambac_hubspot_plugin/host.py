"""The contract between Ambac Tracker (the host) and its plugins.

Ambac Tracker does not ship a plugin contract yet, so this package defines it, in this one
module, for any host to adopt:

.. code-block:: python

    import pluggy
    from ambac_hubspot_plugin import host as contract

    pm = pluggy.PluginManager(contract.PROJECT_NAME)
    pm.add_hookspecs(contract)
    pm.hook.ambac_add_hookspecs.call_historic(kwargs={"plugin_manager": pm})
    pm.load_setuptools_entrypoints(contract.PROJECT_NAME)
    pm.check_pending()

It holds: the ``ambac_*`` hook specifications the host calls; the :class:`HostServices`
Protocol, the tenant-scoped services a host hands to plugins; the host-side records (orders,
companies, contacts, shipments) as frozen attrs classes; the order status values and the
permission names; and the records plugins answer with (manifest, HTTP routes, periodic tasks).

This module imports nothing but the standard library, attrs and pluggy, so a host can import it
without pulling in the HubSpot integration itself. The enums come from ``_host_enums``; the
records and the services Protocol from ``_host_records``, loaded on first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

from ._host_enums import OrderStatus, UserType
from ._host_ids import MAX_HOST_ID_LENGTH, HostId, as_host_id

if TYPE_CHECKING:
    from ._host_records import (
        COMPANY_FIELDS,
        ORDER_FIELDS,
        Address,
        Company,
        CompanyDraft,
        Contact,
        ContactDraft,
        GroupsWrites,
        HostCapabilities,
        HostServices,
        HttpRequest,
        HttpResponse,
        HttpRoute,
        Milestone,
        Order,
        OrderDraft,
        PeriodicTask,
        PluginManifest,
        SavesPluginSettings,
        Shipment,
        User,
    )

__all__ = [
    "COMPANY_FIELDS",
    "MANAGE_INTEGRATIONS",
    "MAX_HOST_ID_LENGTH",
    "ORDER_FIELDS",
    "PERMISSIONS",
    "PROJECT_NAME",
    "VIEW_INTEGRATIONS",
    "Address",
    "Company",
    "CompanyDraft",
    "Contact",
    "ContactDraft",
    "GroupsWrites",
    "HostCapabilities",
    "HostId",
    "HostServices",
    "HttpRequest",
    "HttpResponse",
    "HttpRoute",
    "Milestone",
    "Order",
    "OrderDraft",
    "OrderStatus",
    "PeriodicTask",
    "PluginManifest",
    "SavesPluginSettings",
    "Shipment",
    "User",
    "UserType",
    "as_host_id",
    "hookimpl",
    "hookspec",
]

PROJECT_NAME = "ambac_tracker"
"""The pluggy project name, and the entry-point group plugins are discovered in."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

MANAGE_INTEGRATIONS = "manage_integrations"
"""Permission to change integration settings and run operations (sync, replay, resolve)."""
VIEW_INTEGRATIONS = "view_integrations"
"""Permission to read integration status, logs, history and conflicts."""
PERMISSIONS = (MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS)

# Field limits of the host's models, enforced by the reference host and by mapping code.
ORDER_NUMBER_MAX = 20
ORDER_NAME_MAX = 200
COMPANY_NAME_MAX = 50
EXTERNAL_ID_MAX = 255


_RECORDS = frozenset(
    {
        "Address", "COMPANY_FIELDS", "Company", "CompanyDraft", "Contact", "ContactDraft",
        "HostCapabilities", "HostServices", "ORDER_FIELDS",
        "HttpRequest", "HttpResponse", "HttpRoute", "Milestone", "Order", "OrderDraft", "PeriodicTask",
        "PluginManifest", "SavesPluginSettings", "GroupsWrites", "Shipment", "User",
    }
)


def __getattr__(name: str) -> object:
    # The records (and the HostServices Protocol beside them) load on first use: registering
    # hooks needs none of them, and attrs class creation is most of this module's import cost
    # (see benchmarks/bench_import.py).
    if name in _RECORDS:
        from . import _host_records

        return getattr(_host_records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# Hook specifications. Hosts call these with keyword arguments only.
# --------------------------------------------------------------------------------------------


@hookspec(historic=True)
def ambac_add_hookspecs(plugin_manager: pluggy.PluginManager) -> None:
    """Add a plugin's own hook specifications to the host's plugin manager.

    The host calls it once, historically, right after adding this module's specs and before
    loading entry points, so every plugin registered later is called too. A plugin adds its own
    specs here and may register further objects. Results are not collected.

    :param plugin_manager: the host's plugin manager.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_plugin_manifest() -> PluginManifest:
    """Describe the plugin: id, name, version, declared permissions, settings JSON Schema.

    Called when the host lists its plugins or draws a plugin's settings form. Results of all
    plugins are collected.

    :return: the plugin's manifest.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_plugin_enabled(
    host: HostServices, tenant_id: str, plugin_id: str, settings: Mapping[str, Any]
) -> object:
    """Start a plugin for a tenant whose admin switched it on.

    Called when an admin enables the plugin, in the process serving the admin; every other
    process (and every process at its start) calls :func:`ambac_plugin_started` instead. Every
    plugin is called; only the one whose manifest id is ``plugin_id`` acts. It validates
    ``settings`` (raising ``ConfigError`` naming each bad field), prepares its state, checks
    the outside services it needs and starts work. Results are collected; the plugin returns
    a report of what it did, the others None.

    :param host: host services scoped to ``tenant_id``.
    :param tenant_id: the tenant.
    :param plugin_id: the manifest id of the plugin being enabled.
    :param settings: the tenant's settings for the plugin, as JSON-compatible data.
    :return: a report of what was done (plugin-specific), or None.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_plugin_started(
    host: HostServices, tenant_id: str, plugin_id: str, settings: Mapping[str, Any]
) -> None:
    """Take up, in this process, a tenant that has the plugin enabled.

    Called in each of the host's processes (web and worker) at its start, and whenever a
    process first needs a tenant it has not started yet (before that tenant's first event
    hook), for every tenant that has the plugin enabled, with its saved settings. Not called
    when an admin enables the plugin: that is :func:`ambac_plugin_enabled`, which checks
    everything. Every plugin is called; only the one whose manifest id is ``plugin_id`` acts.
    It validates ``settings`` (raising ``ConfigError`` naming each bad field), prepares its
    state and starts its background work, without calling outside services and without
    checking them again. Calling it again for a started tenant is safe. Results are not
    collected.

    :param host: host services scoped to ``tenant_id``.
    :param tenant_id: the tenant.
    :param plugin_id: the manifest id of the plugin being started.
    :param settings: the tenant's saved settings for the plugin, as JSON-compatible data.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_plugin_disabled(host: HostServices, tenant_id: str, plugin_id: str) -> None:
    """Stop all work of a plugin for a tenant whose admin switched it off; keep its data.

    Every plugin is called; only the one whose manifest id is ``plugin_id`` acts.

    :param host: host services scoped to ``tenant_id``.
    :param tenant_id: the tenant.
    :param plugin_id: the manifest id of the plugin being disabled.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_plugin_stopped(host: HostServices, tenant_id: str, plugin_id: str) -> None:
    """Forget, in this process only, a tenant whose plugin was disabled in another process.

    The counterpart of :func:`ambac_plugin_started`: a process that learns the plugin was
    switched off elsewhere (where :func:`ambac_plugin_disabled` ran) calls it, and the plugin
    starts no new work for the tenant here. It writes nothing (no log entry, no state change)
    and calls no outside service; calling it for a tenant this process never started does
    nothing. Only the plugin whose manifest id is ``plugin_id`` acts.

    :param host: host services scoped to ``tenant_id``.
    :param tenant_id: the tenant.
    :param plugin_id: the manifest id of the plugin disabled elsewhere.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_settings_changed(
    host: HostServices, tenant_id: str, plugin_id: str, settings: Mapping[str, Any]
) -> None:
    """Validate and apply a tenant's changed settings for one plugin.

    Called before the host saves new settings; an error (``ConfigError`` naming each bad field)
    means the host must not save them. Only the plugin whose manifest id is ``plugin_id`` acts.

    :param host: host services scoped to ``tenant_id``.
    :param tenant_id: the tenant.
    :param plugin_id: the manifest id of the plugin whose settings changed.
    :param settings: the complete new settings.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_order_status_changed(host: HostServices, order: Order, previous_status: OrderStatus) -> None:
    """Record that an order's status changed; the plugin stores the event durably and returns fast.

    :param host: host services scoped to the order's tenant.
    :param order: the order after the change.
    :param previous_status: its status before the change.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_order_updated(host: HostServices, order: Order, changed_fields: Sequence[str]) -> None:
    """Record that order fields changed; durable and fast, like status changes.

    :param host: host services scoped to the order's tenant.
    :param order: the order after the change.
    :param changed_fields: names of the :class:`Order` fields that changed.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_order_shipped(host: HostServices, order: Order, shipment: Shipment) -> None:
    """Record that an order shipped; durable and fast.

    :param host: host services scoped to the order's tenant.
    :param order: the shipped order.
    :param shipment: carrier, tracking and ship date.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_company_saved(host: HostServices, company: Company, changed_fields: Sequence[str]) -> None:
    """Record that a company was created or changed in the host; durable and fast.

    :param host: host services scoped to the company's tenant.
    :param company: the company after the change.
    :param changed_fields: names of the :class:`Company` fields that changed (all, on create).
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_http_routes() -> Sequence[HttpRoute]:
    """List the HTTP routes a plugin wants mounted, each with the permission it needs.

    Called once when the host builds its URL map. Results of all plugins are collected.

    :return: the plugin's routes.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_periodic_tasks() -> Sequence[PeriodicTask]:
    """List the work the host's scheduler runs, and how often.

    Called once when the host builds its schedule. Results of all plugins are collected.

    :return: the plugin's periodic tasks.

    .. versionadded:: 0.1.0
    """
