"""Conflicts: a mapped field changed in HubSpot and in Ambac Tracker since the last sync.

The engine keeps, per link, the last value it synced for every mapped field (in JSON form).
For each field HubSpot now maps to a new value, :func:`compare` says whether only HubSpot
changed it (apply it), nothing changed, or both sides changed it to different values — a
conflict, which a :class:`ConflictStrategy` decides. Strategies are registered by name through
``hubspot_register_conflict_strategies``; ``hubspot_wins`` is built in and the default.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "Change",
    "ConflictStrategy",
    "Decision",
    "FieldConflict",
    "HubSpotWins",
    "compare",
    "to_json",
]


def to_json(value: object) -> Any:
    """The JSON form a synced value is kept in (dates ISO, Decimals and enums as strings)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, Decimal):
        return str(value.normalize()) if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if attrs.has(type(value)):
        return {k: to_json(v) for k, v in attrs.asdict(value, recurse=False).items()}  # type: ignore[arg-type]  # an attrs instance
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    return str(value)


class Change(enum.Enum):
    """What happened to one field since the last sync."""

    NONE = "none"
    """HubSpot maps the field to what was last synced: nothing to do."""
    HUBSPOT = "hubspot"
    """Only HubSpot changed: apply its value."""
    CONVERGED = "converged"
    """Both sides changed to the same value: just remember it."""
    CONFLICT = "conflict"
    """Both sides changed, to different values: a strategy decides."""


def compare(hubspot_value: object, host_value: object, synced: Mapping[str, Any], field: str) -> Change:
    """Classify a field. A field never synced before counts as unchanged in the host."""
    new, current = to_json(hubspot_value), to_json(host_value)
    if field not in synced:
        return Change.NONE if new == current else Change.HUBSPOT
    last = synced[field]
    if new == last:
        return Change.NONE
    if current == last:
        return Change.HUBSPOT
    return Change.CONVERGED if new == current else Change.CONFLICT


@attrs.frozen
class FieldConflict:
    """Both sides changed one field: everything a strategy may weigh."""

    tenant_id: int
    object_type: str
    record: str
    field: str
    hubspot_value: object
    host_value: object
    last_synced: Any
    hubspot_changed_at: datetime | None
    host_changed_at: datetime | None


@attrs.frozen
class Decision:
    """A strategy's answer: ``hubspot`` (apply HubSpot's value), ``ambac`` (keep the host's),
    or ``hold`` (change nothing until a person decides)."""

    winner: str = attrs.field(validator=attrs.validators.in_(("hubspot", "ambac", "hold")))
    reason: str = ""


@runtime_checkable
class ConflictStrategy(Protocol):
    """Decides conflicts."""

    def decide(self, conflict: FieldConflict) -> Decision:
        """Return who wins this conflict."""


class HubSpotWins:
    """HubSpot is the source of truth for the fields it maps (the default, as documented)."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        del options  # takes none

    def decide(self, conflict: FieldConflict) -> Decision:
        """HubSpot's value wins."""
        return Decision("hubspot", "hubspot_wins: HubSpot is preferred for mapped fields")
