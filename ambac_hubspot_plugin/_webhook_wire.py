"""The msgspec schema of a HubSpot webhook delivery: a JSON array of event objects.

A delivery is validated by msgspec against this schema straight from the bytes: about 1.5 us
per event, against 15 us for ``json.loads`` plus checks in Python, which was most of the
receiver's CPU time per batch. The schema states every rule that fits a type: ids of 1 to 20
digits, sent as a number or as a string; integer ranges; text lengths; the subscription
type's shape. :mod:`.webhooks` adds the rules that span fields.

Imported on first use, so registering the plugin does not import msgspec. No
``from __future__ import annotations`` here: msgspec reads these annotations at run time.
"""

from typing import Annotated, Any

import msgspec
from msgspec import Meta

__all__ = ["BATCH", "DECODE_ERROR", "MAX_EVENTS", "WireEvent"]

MAX_EVENTS = 1000
MAX_TEXT = 255
MAX_INT = 2**63 - 1
# occurredAt must be a plausible epoch-milliseconds value (2000-01-01 .. 9999-12-31).
MIN_MS, MAX_MS = 946_684_800_000, 253_402_300_799_999
# msgspec searches a pattern, and $ would also match before a final newline: \A and \Z.
SUBSCRIPTION_PATTERN = r"\A[a-z][a-z0-9_]{0,31}\.[A-Za-z][A-Za-z_]{0,31}\Z"

Count = Annotated[int, Meta(ge=0, le=MAX_INT)]
Id = Annotated[int, Meta(ge=1, le=MAX_INT)] | Annotated[str, Meta(pattern=r"\A[0-9]{1,20}\Z")]
Text = Annotated[str, Meta(max_length=MAX_TEXT)]
# At most 64 characters: the inbox's subscription_type column.
Subscription = Annotated[str, Meta(pattern=SUBSCRIPTION_PATTERN, max_length=64)]


class WireEvent(msgspec.Struct, rename="camel", frozen=True):
    """One event as HubSpot sends it; fields it does not name are ignored here."""

    portal_id: Id
    object_id: Id
    occurred_at: Annotated[int, Meta(ge=MIN_MS, le=MAX_MS)]
    subscription_type: Subscription | None = None
    event_type: Subscription | None = None  # the older name of subscriptionType
    event_id: Count | None = None
    subscription_id: Count | None = None
    app_id: Count | None = None
    attempt_number: Count | None = None
    property_name: Text | None = None
    property_value: str | int | float | bool | None = None
    change_source: Text | None = None
    source_id: Text | None = None
    change_flag: Text | None = None
    primary_object_id: Id | None = None
    merged_object_ids: Annotated[tuple[Id, ...], Meta(max_length=MAX_EVENTS)] = ()
    new_object_id: Id | None = None


BATCH: Any = msgspec.json.Decoder(
    Annotated[list[WireEvent], Meta(min_length=1, max_length=MAX_EVENTS)])
"""Decodes and validates a whole delivery body."""

DECODE_ERROR = msgspec.DecodeError
"""What :data:`BATCH` raises for a body that is not valid JSON or not a valid batch
(``msgspec.ValidationError`` is a subclass)."""
