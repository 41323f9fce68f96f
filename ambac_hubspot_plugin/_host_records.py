"""The host-side types of the contract: the records, and the :class:`HostServices` Protocol.

Import them from :mod:`ambac_hubspot_plugin.host`, which loads this module on first use of one
of them. The services Protocol lives here, beside the records its methods take and return
(and :class:`PeriodicTask`, whose ``run`` takes the services), so neither needs the other's
module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from ._host_enums import OrderStatus, UserType
from ._host_ids import HostId, as_host_id, as_optional_host_id

__all__ = [
    "COMPANY_FIELDS",
    "ORDER_FIELDS",
    "Address",
    "Company",
    "CompanyDraft",
    "Contact",
    "ContactDraft",
    "GroupsWrites",
    "HostCapabilities",
    "HostServices",
    "HttpRequest",
    "HttpResponse",
    "HttpRoute",
    "Milestone",
    "Order",
    "OrderDraft",
    "PeriodicTask",
    "PluginManifest",
    "SavesPluginSettings",
    "Shipment",
    "User",
]


@attrs.frozen
class Address:
    """A postal address as the host keeps it on a company."""

    street: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    country: str = ""


@attrs.frozen
class User:
    """A host user, as far as plugins need one (the actor of admin operations)."""

    id: HostId = attrs.field(converter=as_host_id)
    tenant_id: HostId = attrs.field(converter=as_host_id)
    email: str
    name: str = ""


def _positive(_instance: Any, attribute: Any, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number of at least 1, got {value!r}")


@attrs.frozen
class Milestone:
    """An order's current milestone: one step of the tenant's milestone template.

    ``position`` is the step's place in its template (1 for the first step), ``count`` how many
    steps the template has; the customer's progress bar, and the deal's progress, come from them.

    .. versionadded:: 0.1.0
    """

    id: HostId = attrs.field(converter=as_host_id)
    name: str
    position: int = attrs.field(validator=_positive)
    count: int = attrs.field(validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.position > self.count:
            raise ValueError(f"milestone position {self.position} is past the template's {self.count} steps")

    @property
    def percent(self) -> int:
        """How far an order at this milestone is, in whole percent (the last step is 100)."""
        return round(self.position / self.count * 100)


@attrs.frozen
class Order:
    """An order (``Orders`` in the host), as the host returns it."""

    id: HostId = attrs.field(converter=as_host_id)
    tenant_id: HostId = attrs.field(converter=as_host_id)
    order_number: str
    name: str
    order_status: OrderStatus
    created_at: datetime
    updated_at: datetime
    company_id: HostId | None = attrs.field(default=None, converter=as_optional_host_id)
    customer_id: HostId | None = attrs.field(default=None, converter=as_optional_host_id)
    estimated_completion: date | None = None
    order_date: date | None = None
    current_milestone: Milestone | None = None
    customer_note: str = ""
    archived: bool = False
    external_id: str | None = None
    value: Decimal | None = None
    currency: str | None = None


@attrs.frozen
class OrderDraft:
    """An order the plugin asks the host to create; ``order_number`` blank lets the host number it.

    It has no milestone: progress flows from the host to HubSpot only. ``order_date``, ``value``
    and ``currency`` stay None for a host whose orders lack them (see :class:`HostCapabilities`).
    """

    name: str
    order_number: str = ""
    order_status: OrderStatus = OrderStatus.PENDING
    company_id: HostId | None = attrs.field(default=None, converter=as_optional_host_id)
    customer_id: HostId | None = attrs.field(default=None, converter=as_optional_host_id)
    estimated_completion: date | None = None
    order_date: date | None = None
    customer_note: str = ""
    external_id: str | None = None
    value: Decimal | None = None
    currency: str | None = None


@attrs.frozen
class Company:
    """A customer company (``Companies`` in the host)."""

    id: HostId = attrs.field(converter=as_host_id)
    tenant_id: HostId = attrs.field(converter=as_host_id)
    name: str
    updated_at: datetime
    description: str = ""
    website: str = ""
    phone: str = ""
    address: Address = Address()
    external_id: str | None = None
    #: The id of the version this company replaced, for a host that saves a company's change as
    #: a new row with a new id (Ambac Tracker's ``previous_version``); None otherwise. The
    #: plugin follows it from a saved company to the version it linked.
    previous_id: HostId | None = attrs.field(default=None, converter=as_optional_host_id)


@attrs.frozen
class CompanyDraft:
    """A company the plugin asks the host to create."""

    name: str
    description: str = ""
    website: str = ""
    phone: str = ""
    address: Address = Address()
    external_id: str | None = None


@attrs.frozen
class Contact:
    """A customer contact: a host ``User`` row (``PORTAL`` for customers' contacts).

    ``username`` is the host's, unique across every tenant and chosen by the host. ``email`` is
    not unique, not even in one tenant. A host keeping names as NULL gives ``""``. The host
    keeps no phone and no modification time for users, so neither is here.
    """

    id: HostId = attrs.field(converter=as_host_id)
    tenant_id: HostId = attrs.field(converter=as_host_id)
    email: str
    username: str
    first_name: str = ""
    last_name: str = ""
    parent_company_id: HostId | None = attrs.field(default=None, converter=as_optional_host_id)
    user_type: UserType = UserType.PORTAL


@attrs.frozen
class ContactDraft:
    """A contact the plugin asks the host to create; the host chooses its ``username``."""

    email: str
    first_name: str = ""
    last_name: str = ""
    parent_company_id: HostId | None = attrs.field(default=None, converter=as_optional_host_id)


ORDER_FIELDS = frozenset({
    "name", "order_number", "order_status", "company_id", "customer_id", "estimated_completion",
    "order_date", "current_milestone", "customer_note", "archived", "external_id", "value",
    "currency"})
"""Every :class:`Order` field a host may have (``id``, ``tenant_id`` and the times aside)."""

COMPANY_FIELDS = frozenset({"name", "description", "website", "phone", "address", "external_id"})
"""Every :class:`Company` field a host may have (``id``, ``tenant_id`` and the time aside)."""


def _field_set(names: Iterable[str]) -> frozenset[str]:
    return frozenset(names)


def _subset(allowed: frozenset[str], what: str) -> Callable[[Any, Any, frozenset[str]], None]:
    def check(_instance: Any, attribute: Any, value: frozenset[str]) -> None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"{attribute.name} names {unknown}, which are not {what} fields; "
                             f"use some of {sorted(allowed)}")
    return check


@attrs.frozen
class HostCapabilities:
    """What a host keeps: which :class:`Order` and :class:`Company` fields, and whether orders
    have milestones. The plugin writes only these fields; a value with no host field stays in
    the plugin's own records, and a mapping onto a field the host lacks is refused when saved.

    The default is Ambac Tracker's: orders without value, currency or order date; companies
    with a name and a description only.
    """

    order_fields: frozenset[str] = attrs.field(
        default=frozenset(ORDER_FIELDS - {"value", "currency", "order_date"}),
        converter=_field_set, validator=_subset(ORDER_FIELDS, "order"))
    company_fields: frozenset[str] = attrs.field(
        default=frozenset({"name", "description", "external_id"}),
        converter=_field_set, validator=_subset(COMPANY_FIELDS, "company"))
    milestones: bool = True


@attrs.frozen
class Shipment:
    """What the host knows about an order's shipment."""

    carrier: str = ""
    tracking_number: str = ""
    tracking_url: str = ""
    ship_date: date | None = None


@attrs.frozen
class PluginManifest:
    """What a plugin tells the host about itself (``ambac_plugin_manifest``)."""

    id: str
    name: str
    version: str
    permissions: tuple[str, ...]
    settings_schema: Mapping[str, Any]


@attrs.frozen
class HttpRequest:
    """A framework-neutral HTTP request the host hands to a plugin route.

    ``url`` is the full public URL the client called (scheme and host as seen from outside);
    ``body`` is the raw bytes as received, never re-serialised; ``user`` is the authenticated
    host user, or None for unauthenticated routes such as webhooks.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""
    user: User | None = None
    path_params: Mapping[str, str] = attrs.field(factory=dict)
    query: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class HttpResponse:
    """A framework-neutral HTTP response."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class HttpRoute:
    """A route the host mounts for a plugin.

    ``path`` is relative to the plugin's mount point and may hold ``{name}`` parameters.
    ``permission`` is the permission the host checks before calling ``handler`` (None: the
    route authenticates requests itself, as the webhook receiver does with signatures).

    ``verifies_csrf``: the handler guards its unsafe methods against cross-site request
    forgery itself (the admin pages: a token bound to the user and tenant in every form, and a
    same-origin ``Origin``/``Referer``). A host whose authentication holds browser sessions to
    a CSRF check of its own skips that check for this route, since the route's forms cannot
    carry the host's token; it still authenticates the user and checks ``permission``.
    ``refusal``: how a refusal the host answers for this route looks (the admin pages: an HTML
    page). A host that refuses a request before or instead of calling ``handler`` (401, 403,
    405, 500) answers ``refusal(request, status, message)``, adding its own headers such as
    ``WWW-Authenticate``; None: the host's usual error body.
    """

    name: str
    method: str
    path: str
    permission: str | None
    handler: Callable[[HttpRequest], HttpResponse]
    verifies_csrf: bool = False
    refusal: Callable[[HttpRequest, int, str], HttpResponse] | None = None


@attrs.frozen
class PeriodicTask:
    """Work the host's scheduler runs every ``interval``.

    ``run`` receives the host services (any tenant scope) and does bounded work for every
    tenant that has the plugin enabled; the host may run it in any worker process.
    """

    name: str
    interval: timedelta
    run: Callable[[HostServices], object]


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
    def tenant_id(self) -> str:
        """The tenant these services are scoped to."""

    def for_tenant(self, tenant_id: str) -> HostServices:
        """Return the same services scoped to another tenant (for background work)."""

    def plugin_data_dir(self, plugin_id: str) -> Path:
        """Return a writable directory for a plugin's own files (its default store lives there)."""

    def capabilities(self) -> HostCapabilities:
        """Return which order and company fields this host keeps (see :class:`HostCapabilities`).

        .. versionadded:: 0.1.0
        """

    # Orders
    def get_order(self, order_id: str) -> Order | None:
        """Return the order with this id, archived or not, or None."""

    def get_orders(self, order_ids: Sequence[str]) -> Sequence[Order]:
        """Return the orders with these ids, archived or not, in any order; ids without an
        order are left out. Used to compare many orders with what reached HubSpot; a host
        answers with one query per few hundred ids.

        .. versionadded:: 0.1.0
        """

    def find_order_by_external_id(self, external_id: str) -> Order | None:
        """Return the order carrying this external id, archived or not, or None."""

    def create_order(self, draft: OrderDraft) -> Order:
        """Create an order; an existing order with the same external id is returned unchanged."""

    def update_order(self, order_id: str, changes: Mapping[str, object]) -> Order:
        """Set the named :class:`Order` fields and return the updated order."""

    def add_order_note(self, order_id: str, text: str) -> None:
        """Add an internal note to an order's history (staff-visible, not the customer note).

        .. versionadded:: 0.1.0
        """

    # Companies
    def get_company(self, company_id: str) -> Company | None:
        """Return the company with this id, or None."""

    def find_companies_by_name(self, name: str) -> Sequence[Company]:
        """Return the companies whose name equals ``name`` ignoring case."""

    def find_companies_by_domain(self, domain: str) -> Sequence[Company]:
        """Return the companies whose website's normalised domain equals ``domain``.

        The plugin calls this only when ``website`` is one of :meth:`capabilities`'
        ``company_fields``; a host whose companies have no website returns ``[]`` (the plugin
        then matches domains through its own records of the linked HubSpot companies).
        """

    def create_company(self, draft: CompanyDraft) -> Company:
        """Create a company; an existing company with the same external id is returned unchanged.

        Like :meth:`create_order`, this must be atomic, so that two workers creating the same
        HubSpot company at once (or one retrying after a crash) end with one company. A
        non-empty value for a field not in :meth:`capabilities`' ``company_fields`` raises
        :class:`~ambac_hubspot_plugin.errors.HostRecordError` naming the field (the plugin
        never sends one); an empty one (the draft's default) is ignored.
        """

    def update_company(self, company_id: str, changes: Mapping[str, object]) -> Company:
        """Set the named :class:`Company` fields and return the company's current version.

        A host that versions companies (Ambac Tracker: a new version is a new row) returns the
        new version, whose ``id`` differs from ``company_id``; the plugin then re-points its
        link to that id. A non-empty value for a field the host lacks is refused as in
        :meth:`create_company`.
        """

    # Contacts
    def get_contact(self, contact_id: str) -> Contact | None:
        """Return the contact with this id, or None."""

    def find_contacts_by_email(self, email: str) -> Sequence[Contact]:
        """Return every user of this tenant whose email equals ``email`` ignoring case,
        ``INTERNAL`` ones included, in any order (empty when none has it); the plugin chooses among
        them itself.

        Emails are not unique in the host: several users of one tenant may share one. (This
        replaces ``find_contact_by_email``, which assumed one contact per email.)
        """

    def create_contact(self, draft: ContactDraft) -> Contact:
        """Create a ``PORTAL`` user in this tenant's ``Customer`` group and return it.

        An email other users already have is no error: the host creates another user. The host
        chooses the ``username``, unique across every tenant (e.g. from the tenant and the
        email's local part). ``parent_company_id`` must be a company of this tenant.
        """

    def update_contact(self, contact_id: str, changes: Mapping[str, object]) -> Contact:
        """Set the named :class:`Contact` fields and return the updated contact."""

    # Users, permissions, notifications
    def current_user(self) -> User | None:
        """Return the user performing the current admin operation, or None in background work."""

    def has_permission(self, user: User, permission: str) -> bool:
        """Return whether ``user`` holds ``permission`` in this tenant."""

    def notify_admins(self, subject: str, message: str, level: str) -> None:
        """Send a notification to this tenant's admins; ``level`` is info, warning or error."""


@runtime_checkable
class SavesPluginSettings(Protocol):
    """Host services that can also save a plugin's settings (optional, beside :class:`HostServices`).

    A plugin whose settings can be changed on its own pages or admin API (the HubSpot plugin's
    ``hubspot/admin/settings`` and ``PUT hubspot/settings``) validates and applies them itself,
    as ``ambac_settings_changed`` does, then calls this so that the host keeps them: the next
    process start (``ambac_plugin_started``) gets them. Services without this method get such
    changes only in the process that made them, until it restarts.

    .. versionadded:: 0.1.0
    """

    def save_plugin_settings(self, plugin_id: str, settings: Mapping[str, Any]) -> None:
        """Save ``settings`` (complete, secrets included, JSON-compatible) as this tenant's
        settings for ``plugin_id``, where the host's own settings page saves them; keep whether
        the plugin is enabled. Call no hook: the plugin has already accepted them."""


@runtime_checkable
class GroupsWrites(Protocol):
    """Host services that can commit many of a plugin's writes at once (optional, beside
    :class:`HostServices`).

    A sync or a batch of webhook events creates hundreds of orders, companies and contacts; in
    a transaction each, the host pays a commit (a disk flush, a round trip) per record. Inside
    :meth:`grouped_writes` the services' writes share one transaction: they commit together
    when the block ends. Each write stays atomic on its own (a savepoint): one that raises
    undoes only itself and the block goes on. If the block raises, every write in it is rolled
    back. The plugin groups the writes of at most 100 new orders (with their companies and
    contacts), so the transaction's locks are held briefly, and writes a group's links to its
    store only once the group has committed. Services without this method commit each write on
    its own, as before.

    .. versionadded:: 0.1.0
    """

    def grouped_writes(self) -> contextlib.AbstractContextManager[None]:
        """A block whose writes through these services commit together when it ends, and are
        rolled back together if it raises; each write inside is atomic on its own."""
