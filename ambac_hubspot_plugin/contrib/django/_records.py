"""The host's rows as the contract's records, and the checks on values before they are written.

Limits are read from the host's model fields (``max_length``), so they follow the host. A value
breaking one raises :class:`~ambac_hubspot_plugin.errors.HostRecordError` naming the contract's
field; a field name the contract does not let a caller set is programmer misuse (ValueError).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

from django.db import models

from ...errors import HostRecordError
from ...host import Address, Company, Contact, Milestone, Order, OrderStatus, UserType

__all__ = [
    "ORDER_FIELDS_KEPT",
    "check_date",
    "check_external_id",
    "check_text",
    "company_record",
    "contact_record",
    "int_pk",
    "order_record",
    "refuse_missing_fields",
    "uuid_pk",
]

ORDER_FIELDS_KEPT = frozenset({
    "name", "order_number", "order_status", "company_id", "customer_id", "estimated_completion",
    "current_milestone", "customer_note", "archived", "external_id"})
"""The contract's order fields Ambac Tracker's ``Orders`` has (no value, currency, order date)."""
COMPANY_FIELDS_KEPT = frozenset({"name", "description", "external_id"})
"""The contract's company fields ``Companies`` has (no website, phone or address)."""
_EMPTY = (None, "", Address())
_MAX_BIGINT = 2**63 - 1


def uuid_pk(host_id: object) -> uuid.UUID | None:
    """The UUID a host id names, or None when it cannot name a row of a UUID-keyed table."""
    try:
        return uuid.UUID(str(host_id))
    except ValueError:
        return None


def int_pk(host_id: object) -> int | None:
    """The integer a host id names, or None when it cannot name a row of an integer-keyed table."""
    text = str(host_id)
    if not (text.isascii() and text.isdigit()) or int(text) > _MAX_BIGINT:
        return None
    return int(text)


def _limit(model: type[models.Model], column: str) -> int | None:
    limit: int | None = getattr(model._meta.get_field(column), "max_length", None)  # a relation has none
    return limit


def check_text(field: str, value: object, model: type[models.Model], column: str,
               *, required: bool = False) -> str:
    """``value`` as text within the host column's length (not blank when ``required``)."""
    if not isinstance(value, str):
        raise HostRecordError(field, value, "must be text")
    if required and not value.strip():
        raise HostRecordError(field, value, "is required; give a non-blank value")
    limit = _limit(model, column)
    if limit is not None and len(value) > limit:
        raise HostRecordError(field, value, f"is {len(value)} characters long; the host allows at most {limit}")
    return value


def check_external_id(value: object, model: type[models.Model]) -> str | None:
    """An external id as stored: None for none, else text within the column's length."""
    if value is None or value == "":
        return None
    return check_text("external_id", value, model, "external_id")


def check_date(field: str, value: object) -> date | None:
    if value is not None and not isinstance(value, date):
        raise HostRecordError(field, value, "must be a date")
    return value


def refuse_missing_fields(values: Mapping[str, object], kept: frozenset[str], what: str) -> None:
    """Refuse a non-empty value for a contract field the host's model does not have."""
    for field, value in values.items():
        if field not in kept and value not in _EMPTY:
            raise HostRecordError(field, value, f"Ambac Tracker's {what} have no {field}; leave it empty")


def milestone_record(milestone: Any, steps: dict[Any, list[Any]] | None = None) -> Milestone | None:
    """A ``Milestone`` row as a :class:`Milestone`: its place among its template's milestones
    (by ``position``) and their number. ``steps`` caches each template's ordered milestone ids
    across the rows of one read."""
    if milestone is None:
        return None
    steps = {} if steps is None else steps
    template = milestone.template_id
    if template not in steps:
        steps[template] = list(type(milestone).objects.using(milestone._state.db).filter(
            template_id=template).order_by("position", "pk").values_list("pk", flat=True))
    ordered = steps[template]
    return Milestone(id=milestone.pk, name=milestone.name, position=ordered.index(milestone.pk) + 1,
                     count=len(ordered))


def order_record(row: Any, steps: dict[Any, list[Any]] | None = None) -> Order:
    """An ``Orders`` row (with ``current_milestone`` selected) as an :class:`Order`.

    ``customer_note`` is the host's notes timeline; only its customer-visible notes (oldest
    first) become the record's, so internal notes never leave the host.
    """
    visible = [note["message"] for note in reversed(row.get_notes(customer_view=True))]
    return Order(
        id=row.pk, tenant_id=row.tenant_id, order_number=row.order_number, name=row.name,
        order_status=OrderStatus(row.order_status), created_at=row.created_at,
        updated_at=row.updated_at, company_id=row.company_id, customer_id=row.customer_id,
        estimated_completion=row.estimated_completion,
        current_milestone=milestone_record(row.current_milestone, steps),
        customer_note="\n".join(visible), archived=row.archived, external_id=row.external_id,
    )


def company_record(row: Any) -> Company:
    return Company(id=row.pk, tenant_id=row.tenant_id, name=row.name, updated_at=row.updated_at,
                   description=row.description, external_id=row.external_id,
                   previous_id=getattr(row, "previous_version_id", None))


def contact_record(row: Any) -> Contact:
    return Contact(id=row.pk, tenant_id=row.tenant_id, email=row.email, username=row.username,
                   first_name=row.first_name or "", last_name=row.last_name or "",
                   parent_company_id=row.parent_company_id, user_type=UserType(row.user_type))
