"""The host-side records of the contract; import them from :mod:`ambac_hubspot_plugin.host`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from .host import OrderStatus, UserType

if TYPE_CHECKING:
    from .host import HostServices

__all__ = [
    "Address",
    "Company",
    "CompanyDraft",
    "Contact",
    "ContactDraft",
    "HttpRequest",
    "HttpResponse",
    "HttpRoute",
    "Order",
    "OrderDraft",
    "PeriodicTask",
    "PluginManifest",
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

    id: int
    tenant_id: int
    email: str
    name: str = ""


@attrs.frozen
class Order:
    """An order (``Orders`` in the host), as the host returns it."""

    id: int
    tenant_id: int
    order_number: str
    name: str
    order_status: OrderStatus
    created_at: datetime
    updated_at: datetime
    company_id: int | None = None
    customer_id: int | None = None
    estimated_completion: date | None = None
    order_date: date | None = None
    current_milestone: str = ""
    customer_note: str = ""
    archived: bool = False
    external_id: str | None = None
    value: Decimal | None = None
    currency: str | None = None


@attrs.frozen
class OrderDraft:
    """An order the plugin asks the host to create; ``order_number`` blank lets the host number it."""

    name: str
    order_number: str = ""
    order_status: OrderStatus = OrderStatus.PENDING
    company_id: int | None = None
    customer_id: int | None = None
    estimated_completion: date | None = None
    order_date: date | None = None
    current_milestone: str = ""
    customer_note: str = ""
    external_id: str | None = None
    value: Decimal | None = None
    currency: str | None = None


@attrs.frozen
class Company:
    """A customer company (``Companies`` in the host)."""

    id: int
    tenant_id: int
    name: str
    updated_at: datetime
    description: str = ""
    website: str = ""
    phone: str = ""
    address: Address = Address()
    external_id: str | None = None


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
    """A customer contact: a host ``User`` row of type ``PORTAL``."""

    id: int
    tenant_id: int
    email: str
    updated_at: datetime
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    parent_company_id: int | None = None
    user_type: UserType = UserType.PORTAL


@attrs.frozen
class ContactDraft:
    """A contact the plugin asks the host to create."""

    email: str
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    parent_company_id: int | None = None


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
    """

    name: str
    method: str
    path: str
    permission: str | None
    handler: Callable[[HttpRequest], HttpResponse]


@attrs.frozen
class PeriodicTask:
    """Work the host's scheduler runs every ``interval``.

    ``run`` receives the host services (any tenant scope) and does bounded work for every
    tenant that has the plugin enabled; the host may run it in any worker process.
    """

    name: str
    interval: timedelta
    run: Callable[[HostServices], object]


