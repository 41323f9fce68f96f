"""The plugin's custom HubSpot deal properties, and host values written as property text.

What the outbound push (and a manual conflict resolution) writes to HubSpot: the property
group and :data:`DEAL_PROPERTIES` (created by :func:`ensure_hubspot_properties`), the progress a
status stands for, host values as HubSpot property text (:func:`hubspot_value`), which HubSpot
property a mapped host field goes back to (:func:`deal_property_for_field`,
:func:`record_properties`), the check of ``status_stage_map`` against the pipelines, and a typed
value read back as an order field's type (:func:`parse_field_value`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ._echo import normal_form
from .client import PropertyOption, PropertySpec
from .errors import ConfigError, HubSpotApiError
from .host import OrderStatus
from .mapping import ConfigurableMapping, DefaultMapping

if TYPE_CHECKING:
    from .client import HubSpotClient, Pipeline
    from .host import Order
    from .mapping import MappingStrategy

__all__ = [
    "DATETIME_PROPERTIES",
    "DEAL_PROPERTIES",
    "MILESTONE_PROPERTY",
    "PROPERTY_GROUP",
    "PROPERTY_GROUP_LABEL",
    "SHIPMENT_MARK",
    "STATUS_PROPERTY",
    "PropertyMissingError",
    "deal_property_for_field",
    "ensure_hubspot_properties",
    "hubspot_value",
    "missing_property",
    "parse_field_value",
    "progress_percent",
    "progress_properties",
    "record_properties",
    "shipment_properties",
    "status_options_missing",
    "validate_status_stage_map",
]

PROPERTY_GROUP = "ambac_tracker"
PROPERTY_GROUP_LABEL = "Ambac Tracker"

# Progress follows the status: the host keeps no percentage of its own. Statuses that say
# nothing about progress (on hold, cancelled) leave the deal's last value alone.
_PROGRESS = {OrderStatus.RFI: 0, OrderStatus.PENDING: 10, OrderStatus.IN_PROGRESS: 50,
             OrderStatus.COMPLETED: 100}

MILESTONE_PROPERTY = "ambac_milestone"
"""The deal property the name of the order's current milestone is written to."""

STATUS_PROPERTY = "ambac_order_status"
"""The deal property the order's status is written to: an enumeration, values as options."""

DEAL_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec("ambac_order_number", "Order number", description="The Ambac Tracker order number."),
    PropertySpec(STATUS_PROPERTY, "Order status", type="enumeration", field_type="select",
                 description="The order's status in Ambac Tracker.",
                 options=tuple(PropertyOption(label=s.label, value=s.value, display_order=i)
                               for i, s in enumerate(OrderStatus))),
    PropertySpec("ambac_progress_percent", "Order progress (%)", type="number", field_type="number",
                 description="How far the order is, from its milestone (or else its status)."),
    PropertySpec(MILESTONE_PROPERTY, "Order milestone",
                 description="The order's current milestone in Ambac Tracker."),
    PropertySpec("ambac_completion_date", "Order completion date", type="date", field_type="date",
                 description="The order's estimated completion date."),
    PropertySpec("ambac_carrier", "Shipping carrier"),
    PropertySpec("ambac_tracking_number", "Tracking number"),
    PropertySpec("ambac_tracking_url", "Tracking URL"),
    PropertySpec("ambac_ship_date", "Ship date", type="date", field_type="date"),
    PropertySpec("ambac_order_link", "Order link", description="The order in Ambac Tracker."),
)
"""The custom deal properties the push writes, in the plugin's property group."""

_OUR_PROPERTIES = frozenset(spec.name for spec in DEAL_PROPERTIES)

# The default mapping's host fields and the HubSpot properties they come from (and go back to).
_DEFAULT_PROPERTIES: dict[str, dict[str, str]] = {
    "order": {"name": "dealname", "order_date": "closedate", "value": "amount",
              "currency": "deal_currency_code"},
    "company": {"name": "name", "website": "domain", "phone": "phone",
                "address.street": "address", "address.city": "city", "address.state": "state",
                "address.zip": "zip", "address.country": "country"},
    "contact": {"email": "email", "first_name": "firstname", "last_name": "lastname"},
}
DATETIME_PROPERTIES = frozenset({"closedate"})
"""Deal properties HubSpot keeps as datetimes: a host date goes there as midnight UTC."""

_MISSING = re.compile(r'Property \\?"([A-Za-z0-9_]+)\\?" does not exist')


class PropertyMissingError(ConfigError):
    """A property the push writes does not exist in the portal (deleted, or setup never ran)."""

    def __init__(self, property_name: str, object_type: str = "deals") -> None:
        self.property_name = property_name
        self.object_type = object_type
        super().__init__(
            f"HubSpot {object_type} property {property_name!r} does not exist in the portal. Run "
            "`ambac-hubspot setup` (or disable and enable the plugin) to create the plugin's "
            "properties, then replay the failed jobs.",
            {f"hubspot.{object_type}.{property_name}": "missing; run `ambac-hubspot setup`"},
        )


def ensure_hubspot_properties(client: HubSpotClient) -> list[str]:
    """Create the property group and the custom deal properties that do not exist yet.

    Idempotent: existing ones are left as they are. Returns the names created now.
    """
    client.ensure_property_group("deals", PROPERTY_GROUP, PROPERTY_GROUP_LABEL)
    return client.ensure_properties("deals", DEAL_PROPERTIES)


def status_options_missing(existing: PropertySpec | None) -> list[str]:
    """The status values the portal's status property has no option for (none when the
    property is absent: ``ensure_hubspot_properties`` creates it whole)."""
    if existing is None:
        return []
    have = {option.value for option in existing.options}
    return [status.value for status in OrderStatus if status.value not in have]


def validate_status_stage_map(pipelines: Sequence[Pipeline],
                              status_stage_map: Mapping[str, Mapping[OrderStatus, str]]) -> None:
    """Check every pipeline and stage of ``status_stage_map`` exists; ConfigError lists choices."""
    stages = {p.id: {s.id for s in p.stages} for p in pipelines}
    problems: list[tuple[str, str]] = []
    for pipeline, by_status in status_stage_map.items():
        if pipeline not in stages:
            problems.append((f"status_stage_map.{pipeline}",
                             f"no such pipeline; valid pipeline ids: {sorted(stages)}"))
            continue
        for status, stage in by_status.items():
            if stage not in stages[pipeline]:
                problems.append((f"status_stage_map.{pipeline}.{OrderStatus(status).value}",
                                 f"unknown stage id {stage!r}; valid stage ids of this pipeline: "
                                 f"{sorted(stages[pipeline])}"))
    if problems:
        raise ConfigError.from_problems(problems)


def missing_stage(stages: Mapping[str, set[str]], pipeline: str, status: OrderStatus, stage: str) -> str | None:
    """Why ``stage`` (``status_stage_map``'s for ``status`` in ``pipeline``) cannot be used:
    its pipeline lacks it (``stages``: each pipeline's stage ids); None when it can."""
    known = stages.get(pipeline, set())
    if stage in known:
        return None
    return (f"status_stage_map.{pipeline}.{status.value}: HubSpot's pipeline {pipeline!r} has no stage "
            f"{stage!r} (its stages: {sorted(known)}); fix the setting")


def progress_percent(status: OrderStatus) -> int | None:
    """The progress a status stands for, or None when the status says nothing about it."""
    return _PROGRESS.get(status)


def progress_properties(order: Order, *, milestones: bool) -> dict[str, str]:
    """The deal properties of an order's progress: from its milestone when the host has
    milestones and the order is at one (position of count, and the milestone's name), else from
    its status (none when the status says nothing about progress)."""
    milestone = order.current_milestone if milestones else None
    if milestone is not None:
        return {"ambac_progress_percent": str(milestone.percent), MILESTONE_PROPERTY: milestone.name}
    progress = progress_percent(order.order_status)
    return {} if progress is None else {"ambac_progress_percent": str(progress)}


def hubspot_value(value: object, *, datetime_property: bool = False) -> str:
    """A host value as HubSpot property text (dates as ``YYYY-MM-DD``, or midnight UTC for
    datetime properties such as ``closedate``; empty clears)."""
    if value is None:
        return ""
    if isinstance(value, OrderStatus):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00.000Z" if datetime_property else value.isoformat()
    if isinstance(value, Decimal):
        return str(value.normalize()) if value == value.to_integral_value() else str(value)
    return str(value)


DELETED_FLAG = "_deleted_in_hubspot"
"""The key a deal's link holds among its synced values (the time) once HubSpot deleted the
deal: the order is kept, but nothing is pushed to the deal until it is restored."""


def deal_property_for_field(mapping: MappingStrategy, field: str) -> str | None:
    """The deal property a mapped order field comes from (None: not mapped from a property,
    or another package's strategy that does not say).

    Configurable mappings name their sources; another package's strategy says it with a
    ``hubspot_property_for(field)`` method (docs/strategies.md).
    """
    own = getattr(mapping, "hubspot_property_for", None)
    if callable(own):
        result = own(field)
        return None if result is None else str(result)
    return _property_for(mapping, "order", field)


def _property_for(mapping: MappingStrategy, table: str, field: str) -> str | None:
    """The HubSpot property a host field of ``table`` (``order``, ``company``, ``contact``;
    ``address.city`` for a part of a company's address) is read from, so it is written back
    there; None when it is not read from a property (a constant, or removed)."""
    # Only the built-in strategies are known to read the default properties: another package's
    # may read the name from anywhere (it says where with hubspot_property_for, or nothing is
    # written back: guessing would overwrite a property it never reads).
    if type(getattr(mapping, "strategy", mapping)) not in (DefaultMapping, ConfigurableMapping):
        return None
    # ConfigurableMapping keeps its rules privately; reading them keeps the mapping port small.
    for rule in getattr(mapping, "_rules", {}).get(table, ()):
        if rule.target == field:
            return str(rule.source) if rule.source else None
    removed = getattr(mapping, "_removed", {}).get(table, set())
    if field in removed or field.partition(".")[0] in removed:
        return None
    return _DEFAULT_PROPERTIES[table].get(field)


def record_properties(mapping: MappingStrategy, kind: str, record: Any,
                      fields: Iterable[str]) -> dict[str, str]:
    """The HubSpot properties that carry ``fields`` of a host company or contact (``kind``),
    named as ``mapping`` reads them, with the record's values as text."""
    props: dict[str, str] = {}
    for field in fields:
        if kind == "company" and field == "address":
            from .mapping import ADDRESS_FIELDS

            parts = [(f"address.{part}", getattr(record.address, part)) for part in ADDRESS_FIELDS]
        else:
            parts = [(field, getattr(record, field))]
        for name, value in parts:
            prop = _property_for(mapping, kind, name)
            if prop is not None:
                props[prop] = "" if value is None else str(value)
    return props


def parse_field_value(field: str, text: str) -> object:
    """A typed value (CLI, admin form) as the order field's type; ConfigError says what is wrong."""
    import typing

    from .host import Order

    hints = typing.get_type_hints(Order)
    if field not in hints:
        raise ConfigError(f"Orders have no field {field!r}.")
    hint = hints[field]
    text = text.strip()
    args = set(typing.get_args(hint)) or {hint}
    if text == "" and type(None) in args:
        return None
    try:
        if OrderStatus in args:
            return OrderStatus.parse(text)  # a value, or its label as people type it
        if date in args:
            return date.fromisoformat(text)
        if Decimal in args:
            return Decimal(text)
    except (ValueError, InvalidOperation) as exc:
        raise ConfigError(f"{text!r} is not a valid value for {field} ({hint}).") from exc
    return text


SHIPMENT_MARK = "ambac:shipment_job"
"""Kept with a deal's pushed values (never sent: no HubSpot property name has a colon): the id
of the newest shipment job written to the deal. Shipments carry data of their own, so an older
shipment's retry must not overwrite a newer one (job ids grow in the order events happen)."""


def shipment_properties(shipment: Mapping[str, Any]) -> dict[str, str]:
    """The deal properties that carry one ``host.order.shipped`` event's shipment."""
    return {"ambac_carrier": str(shipment.get("carrier") or ""),
            "ambac_tracking_number": str(shipment.get("tracking_number") or ""),
            "ambac_tracking_url": str(shipment.get("tracking_url") or ""),
            "ambac_ship_date": str(shipment.get("ship_date") or "")}


def missing_property(exc: HubSpotApiError) -> str | None:
    """The name of the property a 400 says does not exist, if that is what it says."""
    if exc.status != 400:
        return None
    text = str(exc)
    match = _MISSING.search(text)
    if match:
        return match.group(1)
    if "PROPERTY_DOESNT_EXIST" in text:
        found = [name for name in sorted(_OUR_PROPERTIES) if name in text]
        return found[0] if found else "(unknown)"
    return None


def own_values(mapping: MappingStrategy, fields: Iterable[str], deal_properties: Mapping[str, str | None],
               pushed: Mapping[str, str]) -> list[str]:
    """The mapped order ``fields`` whose deal property still holds what the push last wrote
    there (``pushed``): HubSpot shows our own value, not a person's edit, so a sync must not
    take it for one (the host may have moved on since, its push still queued). The status is
    carried by the stage (``dealstage``)."""
    own = []
    for field in fields:
        prop = "dealstage" if field == "order_status" else deal_property_for_field(mapping, field)
        if prop is not None and prop in pushed and normal_form(pushed[prop]) == normal_form(deal_properties.get(prop)):
            own.append(field)
    return own
