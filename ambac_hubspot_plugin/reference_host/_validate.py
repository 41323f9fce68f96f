"""Field limits and value checks of the reference host, the real host's model validation.

Each check returns the value as the database stores it, or raises
:class:`~ambac_hubspot_plugin.errors.HostRecordError` naming the field; field *names* a caller
may not set are programmer misuse and raise ValueError.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

import attrs

from ..errors import HostRecordError
from ..host import (
    COMPANY_NAME_MAX,
    EXTERNAL_ID_MAX,
    ORDER_NAME_MAX,
    ORDER_NUMBER_MAX,
    Address,
    OrderStatus,
    as_host_id,
)

EMAIL_MAX = 254
"""Django's ``EmailField`` limit, which the host's ``User.email`` uses."""
PERSON_NAME_MAX = 150
"""Django's ``AbstractUser`` limit for ``first_name``, ``last_name`` and ``username``."""

# The fields callers may set, in the order events name them.
ORDER_FIELDS = (
    "order_number", "name", "order_status", "company_id", "customer_id", "estimated_completion",
    "order_date", "current_milestone", "customer_note", "archived", "external_id", "value",
    "currency",
)  # fmt: skip
COMPANY_FIELDS = ("name", "description", "website", "phone", "address", "external_id")
CONTACT_FIELDS = ("email", "first_name", "last_name", "parent_company_id")
_READ_ONLY_FIELDS = frozenset({"id", "tenant_id", "created_at", "updated_at", "user_type", "username"})
ADDRESS_FIELDS = tuple(field.name for field in attrs.fields(Address))
_PLUGIN_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def to_utc(moment: datetime, what: str) -> datetime:
    """Return ``moment`` in UTC; a naive datetime is refused, since its zone is anyone's guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {moment!r}")
    return moment.astimezone(UTC)


def check_text(
    field: str, value: object, *, max_length: int | None = None, required: bool = False
) -> str:
    """Return ``value`` if it is text within ``max_length`` (and not blank when ``required``)."""
    if not isinstance(value, str):
        raise HostRecordError(field, value, "must be text")
    if required and not value.strip():
        raise HostRecordError(field, value, "is required; give a non-blank value")
    if max_length is not None and len(value) > max_length:
        raise HostRecordError(
            field, value, f"is {len(value)} characters long; the host allows at most {max_length}"
        )
    return value


def _external_id(field: str, value: object) -> str | None:
    if value is None or value == "":
        return None  # blank means "no external id", as a nullable unique column must store it
    return check_text(field, value, max_length=EXTERNAL_ID_MAX)


def _optional_id(field: str, value: object) -> str | None:
    if value is None:
        return None
    try:
        return as_host_id(value, field)
    except (TypeError, ValueError):
        raise HostRecordError(field, value, "must be a record id (a host id string) or None") from None


def check_optional_date(field: str, value: object) -> str | None:
    """Return a date (not a datetime) as ISO text, or None."""
    if value is None:
        return None
    if not isinstance(value, date) or isinstance(value, datetime):
        raise HostRecordError(field, value, "must be a date (not a datetime) or None")
    return value.isoformat()


def _order_status(field: str, value: object) -> str:
    try:
        return OrderStatus(value).value
    except ValueError:
        allowed = ", ".join(repr(status.value) for status in OrderStatus)
        raise HostRecordError(
            field, value, f"is not an order status; use one of {allowed}"
        ) from None


def _bool(field: str, value: object) -> int:
    if not isinstance(value, bool):
        raise HostRecordError(field, value, "must be True or False")
    return int(value)


def _money(field: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise HostRecordError(field, value, "must be a Decimal (floats would lose cents) or None")
    amount = Decimal(value)
    if not amount.is_finite():
        raise HostRecordError(field, value, "must be a finite amount")
    return str(amount)  # text keeps the exact digits SQLite's REAL would round


def _currency(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise HostRecordError(field, value, "must be a three-letter upper-case ISO 4217 code")
    return value


def _email(field: str, value: object) -> str:
    email = check_text(field, value, max_length=EMAIL_MAX, required=True)
    if not _EMAIL.match(email):
        raise HostRecordError(field, value, "is not an email address (expected name@domain)")
    return email


def _address(field: str, value: object) -> Address:
    if not isinstance(value, Address):
        raise HostRecordError(field, value, "must be an Address")
    for name in ADDRESS_FIELDS:
        check_text(f"{field}.{name}", getattr(value, name))
    return value


ORDER_CHECKS: dict[str, Callable[[str, object], object]] = {
    "order_number": lambda f, v: check_text(f, v, max_length=ORDER_NUMBER_MAX).strip(),
    "name": lambda f, v: check_text(f, v, max_length=ORDER_NAME_MAX, required=True),
    "order_status": _order_status,
    "company_id": _optional_id,
    "customer_id": _optional_id,
    "estimated_completion": check_optional_date,
    "order_date": check_optional_date,
    "current_milestone": _optional_id,  # a milestone's id (the host's own edit; never a plugin's)
    "customer_note": check_text,
    "archived": _bool,
    "external_id": _external_id,
    "value": _money,
    "currency": _currency,
}
COMPANY_CHECKS: dict[str, Callable[[str, object], object]] = {
    "name": lambda f, v: check_text(f, v, max_length=COMPANY_NAME_MAX, required=True),
    "description": check_text,
    "website": check_text,
    "phone": check_text,
    "address": _address,
    "external_id": _external_id,
}
CONTACT_CHECKS: dict[str, Callable[[str, object], object]] = {
    "email": _email,
    "first_name": lambda f, v: check_text(f, v, max_length=PERSON_NAME_MAX),
    "last_name": lambda f, v: check_text(f, v, max_length=PERSON_NAME_MAX),
    "parent_company_id": _optional_id,
}


def check_plugin_id(plugin_id: str) -> None:
    """Refuse a plugin id that is not a safe directory name: it names a directory on disk."""
    if not _PLUGIN_ID.match(plugin_id):
        raise ValueError(
            f"plugin id {plugin_id!r} is not a safe directory name ([a-z0-9_.-], <= 64)"
        )


def same_value(name: str, stored: object, new: object) -> bool:
    """Compare a stored column with a checked value; amounts compare as numbers (1.1 == 1.10)."""
    if name == "value" and stored is not None and new is not None:
        return Decimal(str(stored)) == Decimal(str(new))
    return stored == new


def check_names(kind: str, changes: Mapping[str, object], allowed: Sequence[str]) -> None:
    """Reject field names a caller may not set: programmer misuse, hence ValueError."""
    for name in changes:
        if name in _READ_ONLY_FIELDS:
            raise ValueError(f"{kind} field {name!r} is read-only; the host sets it")
        if name not in allowed:
            raise ValueError(f"{kind} has no field {name!r}; known fields: {', '.join(allowed)}")


def checked(
    checks: Mapping[str, Callable[[str, object], object]], values: Mapping[str, object]
) -> dict[str, object]:
    """Return ``values`` as stored, each run through its field's check."""
    return {name: checks[name](name, value) for name, value in values.items()}
