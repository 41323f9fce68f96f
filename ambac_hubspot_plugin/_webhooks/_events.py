"""One webhook event: its record, reading a delivery body into events, its identity across
redeliveries and its inbox draft; and the job kinds that carry events through the queue.

The body itself is read by the one parser in :mod:`._wire` (loaded on first use, so
registering the plugin does not import msgspec); this module turns what it read into
:class:`WebhookEvent` records and inbox rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ..store import InboxEventDraft

__all__ = [
    "INBOX_JOB_KIND",
    "JOB_KIND",
    "WebhookEvent",
    "check_batch",
    "dedupe_key",
    "event_drafts",
    "parse_batch",
]

JOB_KIND = "webhook.object"
"""The job kind of per-object webhook processing; its dedupe key is ``<type>:<id>``."""
INBOX_JOB_KIND = "webhook.inbox"
"""The job kind that splits a tenant's stored deliveries into events; its dedupe key is
``inbox``."""


@attrs.frozen
class WebhookEvent:
    """One HubSpot webhook event, validated (build it with :meth:`from_payload` or
    :func:`parse_batch`, which check it against the schema in ``_wire``).

    Ids are strings of digits (HubSpot sends numbers); ``property_value`` is the new value as
    text (None when absent). ``raw`` is the event object as received, for fields this record
    does not name.
    """

    portal_id: str
    subscription_type: str
    object_id: str
    occurred_at_ms: int
    event_id: int | None = None
    subscription_id: int | None = None
    app_id: int | None = None
    attempt_number: int = 0
    property_name: str | None = None
    property_value: str | None = None
    change_source: str | None = None
    source_id: str | None = None
    change_flag: str | None = None
    primary_object_id: str | None = None
    merged_object_ids: tuple[str, ...] = ()
    new_object_id: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def object_type(self) -> str:
        """``deal`` of ``deal.propertyChange``."""
        return self.subscription_type.partition(".")[0]

    @property
    def change(self) -> str:
        """``propertyChange`` of ``deal.propertyChange``."""
        return self.subscription_type.partition(".")[2]

    @property
    def occurred_at(self) -> datetime:
        """When the change happened in HubSpot (tz-aware UTC)."""
        return datetime.fromtimestamp(self.occurred_at_ms / 1000, UTC)

    @classmethod
    def from_payload(cls, item: object, path: str = "event") -> WebhookEvent:
        """Validate one event object as HubSpot sends it (e.g. one stored in the inbox).

        :raises WebhookPayloadError: naming the field that is missing or wrong.
        """
        from ._wire import read_event

        return _event(read_event(item, path), item)  # type: ignore[arg-type]  # a dict, as it was read


# -- the wire format (schema and parser in _wire) ---------------------------------------------


def _text_id(value: int | str | None) -> str | None:
    return None if value is None else str(value)


def _event(wire: Any, raw: Mapping[str, Any]) -> WebhookEvent:
    value = wire.property_value
    return WebhookEvent(
        portal_id=str(wire.portal_id),
        subscription_type=wire.subscription_type or wire.event_type,
        object_id=str(wire.object_id),
        occurred_at_ms=wire.occurred_at,
        event_id=wire.event_id,
        subscription_id=wire.subscription_id,
        app_id=wire.app_id,
        attempt_number=wire.attempt_number or 0,
        property_name=wire.property_name,
        property_value=value if value is None or isinstance(value, str) else json.dumps(value),
        change_source=wire.change_source,
        source_id=wire.source_id,
        change_flag=wire.change_flag,
        primary_object_id=_text_id(wire.primary_object_id),
        merged_object_ids=tuple(str(m) for m in wire.merged_object_ids),
        new_object_id=_text_id(wire.new_object_id),
        raw=raw,
    )


def check_batch(body: bytes) -> list[Any]:
    """Validate a delivery body (a JSON array of 1 to 1,000 event objects) without building
    :class:`WebhookEvent` records: what the receiver needs before it answers.

    Returns msgspec structs with the wire's (camelCase-derived) field names. It reads the
    body exactly as the split does (:func:`._wire.read_batch`), so what it accepts
    the split can read.

    :raises WebhookPayloadError: saying what was wrong and where (``body[3]: lacks objectId``).
    """
    from ._wire import read_batch

    return read_batch(body)[1]


def parse_batch(body: bytes) -> tuple[WebhookEvent, ...]:
    """Parse a delivery body: a non-empty JSON array of event objects.

    :raises WebhookPayloadError: saying what was wrong and where (``body[3]: lacks objectId``).
    """
    from ._wire import read_batch

    raw, events = read_batch(body)
    return tuple(_event(event, item) for event, item in zip(events, raw, strict=True))


def dedupe_key(event: WebhookEvent) -> str:
    """The identity of an event across redeliveries: a hash of what it says, not its eventId.

    HubSpot does not promise ``eventId`` is unique, and retries change ``attemptNumber``; the
    portal, subscription type, object, property, value and time of the change identify it.
    """
    parts = [event.portal_id, event.subscription_type, event.object_id, event.property_name,
             event.property_value, event.occurred_at_ms, event.primary_object_id,
             list(event.merged_object_ids), event.new_object_id]
    return hashlib.sha256(_COMPACT.encode(parts).encode()).hexdigest()


# Built once: json.dumps with any non-default option builds a new encoder on every call, which
# was a tenth of the receiver's CPU time (three encodings per event). Same output as dumps.
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def event_drafts(events: Sequence[WebhookEvent]) -> list[InboxEventDraft]:
    """The inbox rows of ``events``: each with its :func:`dedupe_key` and its canonical JSON."""
    # Imported here, once per batch: the store package is loaded lazily (its __getattr__),
    # and an import statement per event went through that every time.
    from ..store import InboxEventDraft

    return [InboxEventDraft(
        portal_id=event.portal_id, dedupe_key=dedupe_key(event), event_id=event.event_id,
        subscription_type=event.subscription_type, object_type=event.object_type,
        object_id=event.object_id, property_name=event.property_name,
        occurred_at_ms=event.occurred_at_ms, payload=_CANONICAL.encode(dict(event.raw)),
    ) for event in events]
