"""The records of the HubSpot client port, and its call counters.

Frozen attrs classes the port returns (objects, associations, batch outcomes, pipelines,
property specs), :func:`parse_timestamp` for HubSpot's two timestamp forms, and the
thread-safe :class:`ClientStats`. Import them from :mod:`ambac_hubspot_plugin.client`; this
module exists so the adapter (``_hubspot``) can use them without importing the port, which
imports the adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Union

import attrs

__all__ = [
    "Association",
    "AssociationInput",
    "BatchResult",
    "ClientStats",
    "Company",
    "Contact",
    "Deal",
    "DealNote",
    "HubSpotObject",
    "ItemError",
    "Note",
    "NoteBatch",
    "Pipeline",
    "Properties",
    "PropertyOption",
    "PropertySpec",
    "Stage",
    "StatsSnapshot",
    "parse_timestamp",
]

Properties = Mapping[str, Union[str, None]]  # noqa: UP007  # a runtime alias; | needs 3.10 objects


def parse_timestamp(value: object) -> datetime | None:
    """Parse a HubSpot timestamp (ISO 8601 or epoch milliseconds) into tz-aware UTC.

    Empty values give ``None``; a naive ISO value is taken as UTC (HubSpot's are always UTC).

    :raises ValueError: when the value is neither form.
    """
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _from_millis(value)
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    if value.isdigit():
        return _from_millis(int(value))
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _from_millis(millis: float) -> datetime:
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, OSError) as exc:  # beyond the years datetime or the platform holds
        raise ValueError(f"timestamp out of range: {millis!r}") from exc


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


def _frozen_mapping(value: Mapping[str, str | None]) -> Mapping[str, str | None]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


# Tuple converters named per element type rather than ``converter=tuple``: mypy's attrs plugin
# cannot bind tuple's (or any generic converter's) type variable, so passing a list to these
# fields would not type-check; a plain named function gives the field an ``Iterable[X]`` input.


def _int_tuple(items: Iterable[int]) -> tuple[int, ...]:
    return tuple(items)


@attrs.frozen
class HubSpotObject:
    """A CRM object as HubSpot returned it: all property values are strings (or ``None``)."""

    id: str
    properties: Properties = attrs.field(converter=_frozen_mapping)
    updated_at: datetime
    archived: bool = False
    created_at: datetime | None = None

    #: HubSpot's object type name, as used in API paths.
    object_type: str = attrs.field(default="objects", init=False)


@attrs.frozen
class Deal(HubSpotObject):
    """A deal (``dealname``, ``amount``, ``dealstage``, ``pipeline``, ``closedate``, ...)."""

    object_type: str = attrs.field(default="deals", init=False)


@attrs.frozen
class Company(HubSpotObject):
    """A company (``name``, ``domain``, ``website``, ``phone``, address fields, ...)."""

    object_type: str = attrs.field(default="companies", init=False)


@attrs.frozen
class Contact(HubSpotObject):
    """A contact (``firstname``, ``lastname``, ``email``, ``phone``, ...)."""

    object_type: str = attrs.field(default="contacts", init=False)


@attrs.frozen
class Note(HubSpotObject):
    """A note (``hs_note_body``, ``hs_timestamp``)."""

    object_type: str = attrs.field(default="notes", init=False)


@attrs.frozen
class Association:
    """One associated object and every association type id linking it (5 = primary company)."""

    to_id: str
    type_ids: tuple[int, ...] = attrs.field(converter=_int_tuple)


@attrs.frozen
class AssociationInput:
    """An association to create with an object: target id and type id."""

    to_id: str
    type_id: int
    category: str = "HUBSPOT_DEFINED"


@attrs.frozen
class ItemError:
    """One input of a batch that HubSpot refused; ``id`` is the input's id when HubSpot says it."""

    id: str | None
    status: str
    category: str | None
    message: str


def _object_tuple(items: Iterable[HubSpotObject]) -> tuple[HubSpotObject, ...]:
    return tuple(items)


def _item_error_tuple(items: Iterable[ItemError]) -> tuple[ItemError, ...]:
    return tuple(items)


@attrs.frozen
class BatchResult:
    """Per-item outcome of a batch write: the objects written and the items refused."""

    succeeded: tuple[HubSpotObject, ...] = attrs.field(converter=_object_tuple)
    failed: tuple[ItemError, ...] = attrs.field(converter=_item_error_tuple)

    @property
    def ok(self) -> bool:
        """Whether every item was written."""
        return not self.failed


def _frozen_ids(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen
class DealNote:
    """A note to create on a deal. ``key`` is the caller's name for it (unique in one call):
    the answer tells each note's outcome by it (HubSpot's ``objectWriteTraceId``)."""

    key: str
    deal_id: str
    body: str
    when: datetime = attrs.field()

    @when.validator
    def _aware(self, _attribute: object, value: datetime) -> None:
        if value.tzinfo is None:
            raise ValueError("when must be tz-aware")


@attrs.frozen
class NoteBatch:
    """What one batch create of notes did: the note id per key created, and the inputs
    HubSpot refused (``id`` is the key when HubSpot names it). A key in neither has an
    unknown outcome: HubSpot answered without a word about it."""

    created: Mapping[str, str] = attrs.field(converter=_frozen_ids)
    failed: tuple[ItemError, ...] = attrs.field(converter=_item_error_tuple)


@attrs.frozen
class Stage:
    """A pipeline stage; ``is_won`` means closed with probability 1.0."""

    id: str
    label: str
    is_closed: bool
    probability: Decimal | None
    display_order: int = 0

    @property
    def is_won(self) -> bool:
        """Closed and certain: HubSpot's definition of a won stage."""
        return self.is_closed and self.probability == Decimal(1)


def _stage_tuple(items: Iterable[Stage]) -> tuple[Stage, ...]:
    return tuple(items)


@attrs.frozen
class Pipeline:
    """A deal pipeline and its stages in display order."""

    id: str
    label: str
    stages: tuple[Stage, ...] = attrs.field(converter=_stage_tuple)
    archived: bool = False


@attrs.frozen
class PropertyOption:
    """One choice of an enumeration property."""

    label: str
    value: str
    display_order: int = 0


def _option_tuple(items: Iterable[PropertyOption]) -> tuple[PropertyOption, ...]:
    return tuple(items)


@attrs.frozen
class PropertySpec:
    """A custom property to make sure exists (``type``/``field_type`` as HubSpot names them)."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    group_name: str = "ambac_tracker"
    description: str = ""
    options: tuple[PropertyOption, ...] = attrs.field(default=(), converter=_option_tuple)
    has_unique_value: bool = False


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


@attrs.frozen
class StatsSnapshot:
    """Counters at one moment: calls per endpoint, retries, 429s, token refreshes, errors."""

    calls: Mapping[str, int]
    retries: int
    rate_limited: int
    refreshes: int
    errors: int
    limiter_wait_seconds: float

    @property
    def total_calls(self) -> int:
        """Every HTTP request sent, retries included."""
        return sum(self.calls.values())


class ClientStats:
    """Thread-safe call counters for the status view and the benchmarks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._retries = 0
        self._rate_limited = 0
        self._refreshes = 0
        self._errors = 0
        self._wait = 0.0

    def record_call(self, endpoint: str) -> None:
        """Count one request sent to ``endpoint``."""
        with self._lock:
            self._calls[endpoint] = self._calls.get(endpoint, 0) + 1

    def record_retry(self) -> None:
        """Count one retry."""
        with self._lock:
            self._retries += 1

    def record_rate_limited(self) -> None:
        """Count one 429 answer."""
        with self._lock:
            self._rate_limited += 1

    def record_refresh(self) -> None:
        """Count one OAuth token refresh."""
        with self._lock:
            self._refreshes += 1

    def record_error(self) -> None:
        """Count one operation that failed for good."""
        with self._lock:
            self._errors += 1

    def record_wait(self, seconds: float) -> None:
        """Add time spent waiting for the local rate limiter."""
        with self._lock:
            self._wait += seconds

    def snapshot(self) -> StatsSnapshot:
        """Copy the counters."""
        with self._lock:
            return StatsSnapshot(
                calls=MappingProxyType(dict(self._calls)),
                retries=self._retries,
                rate_limited=self._rate_limited,
                refreshes=self._refreshes,
                errors=self._errors,
                limiter_wait_seconds=self._wait,
            )
