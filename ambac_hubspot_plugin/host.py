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
without pulling in the HubSpot integration itself.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pluggy

if TYPE_CHECKING:
    from ._host_records import (
        Address,
        Company,
        CompanyDraft,
        Contact,
        ContactDraft,
        HttpRequest,
        HttpResponse,
        HttpRoute,
        Order,
        OrderDraft,
        PeriodicTask,
        PluginManifest,
        Shipment,
        User,
    )

__all__ = [
    "MANAGE_INTEGRATIONS",
    "PERMISSIONS",
    "PROJECT_NAME",
    "VIEW_INTEGRATIONS",
    "Address",
    "Company",
    "CompanyDraft",
    "Contact",
    "ContactDraft",
    "HostServices",
    "HttpRequest",
    "HttpResponse",
    "HttpRoute",
    "Order",
    "OrderDraft",
    "OrderStatus",
    "PeriodicTask",
    "PluginManifest",
    "Shipment",
    "User",
    "UserType",
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


class OrderStatus(str, enum.Enum):  # noqa: UP042  # StrEnum would change str()/format() of members
    """The host's order status values, exactly as it stores them."""

    RFI = "RFI"
    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    ON_HOLD = "On hold"
    CANCELLED = "Cancelled"


class UserType(str, enum.Enum):  # noqa: UP042  # StrEnum would change str()/format() of members
    """What kind of user a host user row is; customers' contacts are ``PORTAL`` users."""

    PORTAL = "PORTAL"
    STAFF = "STAFF"


@runtime_checkable
class HostServices(Protocol):
    """The services a host gives plugins, scoped to one tenant.

    Every method reads or writes only rows of :attr:`tenant_id`. Write methods raise
    :class:`~ambac_hubspot_plugin.errors.HostRecordError` naming the field when a value breaks a
    host rule (a length limit, a unique order number), and write nothing in that case;
    ``update_*`` of a record that does not exist raises it for field ``id``. Changes made
    through these services never fire the host's ``ambac_*`` events back at plugins.
    """

    @property
    def tenant_id(self) -> int:
        """The tenant these services are scoped to."""

    def for_tenant(self, tenant_id: int) -> HostServices:
        """Return the same services scoped to another tenant (for background work)."""

    def plugin_data_dir(self, plugin_id: str) -> Path:
        """Return a writable directory for a plugin's own files (its default store lives there)."""

    # Orders
    def get_order(self, order_id: int) -> Order | None:
        """Return the order with this id, archived or not, or None."""

    def get_orders(self, order_ids: Sequence[int]) -> Sequence[Order]:
        """Return the orders with these ids, archived or not, in any order; ids without an
        order are left out. Used to compare many orders with what reached HubSpot; a host
        answers with one query per few hundred ids.

        .. versionadded:: 0.1.0
        """

    def find_order_by_external_id(self, external_id: str) -> Order | None:
        """Return the order carrying this external id, archived or not, or None."""

    def create_order(self, draft: OrderDraft) -> Order:
        """Create an order; an existing order with the same external id is returned unchanged."""

    def update_order(self, order_id: int, changes: Mapping[str, object]) -> Order:
        """Set the named :class:`Order` fields and return the updated order."""

    def add_order_note(self, order_id: int, text: str) -> None:
        """Add an internal note to an order's history (staff-visible, not the customer note).

        .. versionadded:: 0.1.0
        """

    # Companies
    def get_company(self, company_id: int) -> Company | None:
        """Return the company with this id, or None."""

    def find_companies_by_name(self, name: str) -> Sequence[Company]:
        """Return the companies whose name equals ``name`` ignoring case."""

    def find_companies_by_domain(self, domain: str) -> Sequence[Company]:
        """Return the companies whose website's normalised domain equals ``domain``."""

    def create_company(self, draft: CompanyDraft) -> Company:
        """Create a company; an existing company with the same external id is returned unchanged.

        Like :meth:`create_order`, this must be atomic, so that two workers creating the same
        HubSpot company at once (or one retrying after a crash) end with one company.
        """

    def update_company(self, company_id: int, changes: Mapping[str, object]) -> Company:
        """Set the named :class:`Company` fields and return the updated company."""

    # Contacts
    def get_contact(self, contact_id: int) -> Contact | None:
        """Return the contact with this id, or None."""

    def find_contact_by_email(self, email: str) -> Contact | None:
        """Return the contact whose email equals ``email`` ignoring case, or None."""

    def create_contact(self, draft: ContactDraft) -> Contact:
        """Create a portal user for a customer contact and return it.

        Emails are unique per tenant ignoring case: an email in use raises ``HostRecordError``
        for field ``email`` (the caller then finds the existing contact by email).
        """

    def update_contact(self, contact_id: int, changes: Mapping[str, object]) -> Contact:
        """Set the named :class:`Contact` fields and return the updated contact."""

    # Users, permissions, notifications
    def current_user(self) -> User | None:
        """Return the user performing the current admin operation, or None in background work."""

    def has_permission(self, user: User, permission: str) -> bool:
        """Return whether ``user`` holds ``permission`` in this tenant."""

    def notify_admins(self, subject: str, message: str, level: str) -> None:
        """Send a notification to this tenant's admins; ``level`` is info, warning or error."""


_RECORDS = frozenset(
    {
        "Address", "Company", "CompanyDraft", "Contact", "ContactDraft", "HttpRequest",
        "HttpResponse", "HttpRoute", "Order", "OrderDraft", "PeriodicTask", "PluginManifest",
        "Shipment", "User",
    }
)


def __getattr__(name: str) -> object:
    # The records load on first use: registering hooks needs none of them, and attrs class
    # creation is most of this module's import cost (see benchmarks/bench_import.py).
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
    host: HostServices, tenant_id: int, plugin_id: str, settings: Mapping[str, Any]
) -> object:
    """Start a plugin for a tenant whose admin switched it on.

    Called when an admin enables the plugin, and at host start for every tenant that has it
    enabled. Every plugin is called; only the one whose manifest id is ``plugin_id`` acts. It
    validates ``settings`` (raising ``ConfigError`` naming each bad field), prepares its state
    and starts work. Results are collected; the plugin returns a report of what it did, the
    others None.

    :param host: host services scoped to ``tenant_id``.
    :param tenant_id: the tenant.
    :param plugin_id: the manifest id of the plugin being enabled.
    :param settings: the tenant's settings for the plugin, as JSON-compatible data.
    :return: a report of what was done (plugin-specific), or None.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_plugin_disabled(host: HostServices, tenant_id: int, plugin_id: str) -> None:
    """Stop all work of a plugin for a tenant whose admin switched it off; keep its data.

    Every plugin is called; only the one whose manifest id is ``plugin_id`` acts.

    :param host: host services scoped to ``tenant_id``.
    :param tenant_id: the tenant.
    :param plugin_id: the manifest id of the plugin being disabled.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def ambac_settings_changed(
    host: HostServices, tenant_id: int, plugin_id: str, settings: Mapping[str, Any]
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
