"""Conflicts: a mapped field changed in HubSpot and in Ambac Tracker since the last sync.

The engine keeps, per link, the last value it synced for every mapped field (in JSON form).
For each field HubSpot now maps to a new value, :func:`compare` says whether only HubSpot
changed it (apply it), nothing changed, or both sides changed it to different values — a
conflict, which a :class:`ConflictStrategy` decides. Strategies are registered by name through
``hubspot_register_conflict_strategies``; ``hubspot_wins`` (the default), ``tracker_wins``,
``newest_wins`` and ``manual`` are built in (registered through that same hook). Every conflict,
whatever decided it, goes to the audit trail (see ``docs/conflicts.md``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import attrs

from .errors import StrategyError

__all__ = [
    "Change",
    "ConflictStrategy",
    "Decision",
    "FieldConflict",
    "HubSpotWins",
    "Manual",
    "NamedStrategy",
    "NewestWins",
    "TrackerWins",
    "compare",
    "strategy_name",
    "to_json",
]


def to_json(value: object) -> Any:
    """The JSON form a synced value is kept in (dates ISO, Decimals and enums as strings)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, Decimal):
        # One form per amount: 10.50 and 10.5 are the same value, and 100 is never '1E+2'.
        return format(value.normalize(), "f")
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
    """Classify a field. A field never synced before (newly mapped) whose two values differ is a
    conflict: nothing says which side is newer, so the strategy decides (and it is audited)."""
    new, current = to_json(hubspot_value), to_json(host_value)
    if field not in synced:
        return Change.NONE if new == current else Change.CONFLICT
    last = synced[field]
    if new == last:
        return Change.NONE
    if current == last:
        return Change.HUBSPOT
    return Change.CONVERGED if new == current else Change.CONFLICT


@attrs.frozen
class FieldConflict:
    """Both sides changed one field: everything a strategy may weigh."""

    tenant_id: str
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

    name = "hubspot_wins"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        del options  # takes none

    def decide(self, conflict: FieldConflict) -> Decision:
        """HubSpot's value wins."""
        return Decision("hubspot", "hubspot_wins: HubSpot is preferred for mapped fields")


class TrackerWins:
    """Ambac Tracker is the source of truth: the host keeps its value, HubSpot gets it."""

    name = "tracker_wins"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        del options  # takes none

    def decide(self, conflict: FieldConflict) -> Decision:
        """The host's value wins."""
        return Decision("ambac", "tracker_wins: Ambac Tracker is preferred for this field")


class NewestWins:
    """The side changed last wins: HubSpot's ``hs_lastmodifieddate`` against the host's
    ``updated_at``. A tie, or a side whose time is unknown, goes to HubSpot (the default rule).

    Both are record-level times (the newest change to any field of the record), the finest
    grain both systems give without reading property history.
    """

    name = "newest_wins"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        del options  # takes none

    def decide(self, conflict: FieldConflict) -> Decision:
        """Compare the two modification times."""
        hubspot, host = conflict.hubspot_changed_at, conflict.host_changed_at
        if hubspot is not None and host is not None and host > hubspot:
            return Decision("ambac", f"newest_wins: the host changed it last ({host.isoformat()} > "
                                     f"{hubspot.isoformat()})")
        if hubspot is None or host is None:
            return Decision("hubspot", "newest_wins: a modification time is unknown; HubSpot wins ties")
        return Decision("hubspot", f"newest_wins: HubSpot changed it last ({hubspot.isoformat()} >= "
                                   f"{host.isoformat()})")


class Manual:
    """A person decides: the field keeps its host value and the conflict stays open."""

    name = "manual"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        del options  # takes none

    def decide(self, conflict: FieldConflict) -> Decision:
        """Hold the field until someone resolves the conflict."""
        return Decision("hold", "manual: held until a person resolves it")


@attrs.frozen
class NamedStrategy:
    """A strategy with the name it was registered under (the name goes to the audit trail)."""

    name: str
    strategy: ConflictStrategy

    def decide(self, conflict: FieldConflict) -> Decision:
        """Ask the wrapped strategy.

        :raises StrategyError: it raised, or answered with something other than a
            :class:`Decision` (that record fails; the run goes on).
        """
        record = f"{conflict.record}, field {conflict.field}"
        try:
            decision = self.strategy.decide(conflict)
        except Exception as exc:
            raise StrategyError("conflict", self.name, record, f"raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(decision, Decision):
            raise StrategyError("conflict", self.name, record,
                                f"answered {type(decision).__name__}, not a Decision")
        return decision


def strategy_name(strategy: object) -> str:
    """The name a strategy is recorded under: its registered name when known."""
    name = getattr(strategy, "name", None)
    return name if isinstance(name, str) and name else type(strategy).__name__
