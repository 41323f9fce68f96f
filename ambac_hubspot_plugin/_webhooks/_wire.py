"""The wire format of a HubSpot webhook delivery, and the one parser that reads it.

A delivery is a JSON array of 1 to 1,000 event objects. :func:`read_batch` is the only code
that reads a delivery body: the receiver calls it before it answers, and the inbox split calls
it again on the stored body. Whatever the receiver accepts, the split can read, so a delivery
acknowledged with 200 is never found unreadable later (invalid UTF-8 in a key the schema
ignores, say, is refused at receipt).

msgspec reads the body (every byte: keys and values it ignores are still decoded as UTF-8
JSON) and checks it against :class:`WireEvent`: about 1 us per event. The schema states every
rule that fits a type: ids of 1 to 20 digits, sent as a number or as a string; integer ranges;
text lengths; the subscription type's shape. The rules across fields are in :func:`_checked`.

Messages are the project's own words, never msgspec's: when msgspec refuses a body, the
culprit is found by converting it again event by event and field by field, and named with the
rule in :data:`RULES` (``body[2]: lacks objectId``, ``body[0].portalId: must be an id ...``).

Imported on first use, so registering the plugin does not import msgspec. No
``from __future__ import annotations`` here: msgspec reads these annotations at run time.
"""

import json
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from ..errors import WebhookPayloadError

__all__ = ["MAX_DEPTH", "MAX_EVENTS", "RULES", "WireEvent", "read_batch", "read_event"]

MAX_EVENTS = 1000
#: Events of these kinds are skipped: the plugin does not act on them, and they carry no
#: ``objectId`` (an association change names both ends instead). HubSpot sends every
#: subscription of an app in one delivery, and does not retry a 400: refusing them would lose
#: the deal events beside them. They stay in the stored delivery.
SKIPPED_CHANGES = (".associationChange",)
MAX_TEXT = 255
MAX_INT = 2**63 - 1
MAX_DEPTH = 32
"""How many arrays and objects may nest, an event's own object counting as the first (so 31
levels inside an event). HubSpot's events are flat; the bound keeps every later step (the
split's canonical encoding, in any thread) far from the recursion limit."""
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


_ID = "must be an id: a number, or a string of 1 to 20 digits"
_COUNT = f"must be a whole number from 0 to {MAX_INT}, or null"
_TEXT = f"must be text of at most {MAX_TEXT} characters, or null"
_SUBSCRIPTION = "must be a subscription type like 'deal.propertyChange', or null"
RULES: dict[str, str] = {
    "portalId": _ID,
    "objectId": _ID,
    "occurredAt": "must be a time in epoch milliseconds, from the year 2000 to 9999",
    "subscriptionType": _SUBSCRIPTION,
    "eventType": _SUBSCRIPTION,
    "eventId": _COUNT,
    "subscriptionId": _COUNT,
    "appId": _COUNT,
    "attemptNumber": _COUNT,
    "propertyName": _TEXT,
    "propertyValue": "must be a string, a number, true, false or null",
    "changeSource": _TEXT,
    "sourceId": _TEXT,
    "changeFlag": _TEXT,
    "primaryObjectId": f"{_ID}, or null",
    "mergedObjectIds": f"must be an array of at most {MAX_EVENTS} ids",
    "newObjectId": f"{_ID}, or null",
}
"""What each field of an event must be, in the words a refusal uses: one entry per field of
:class:`WireEvent`, by the name HubSpot sends."""

_JSON = msgspec.json.Decoder()
_FIELDS = msgspec.structs.fields(WireEvent)


def read_batch(body: bytes) -> tuple[list[dict[str, Any]], list[WireEvent]]:
    """Read a delivery body: the events as sent (plain JSON values) and as validated structs,
    but for those of :data:`SKIPPED_CHANGES` (so both lists may be empty).

    :raises WebhookPayloadError: saying what was wrong and where (``body[3]: lacks objectId``).
    """
    try:
        raw = _JSON.decode(body)
    except RecursionError:  # deep arrays anywhere, even in a key the schema ignores
        raise WebhookPayloadError("body", _TOO_DEEP) from None
    except msgspec.DecodeError:
        raise _unreadable(body) from None
    if not isinstance(raw, list):
        raise WebhookPayloadError("body", f"is {_kind(raw)}; HubSpot sends an array of events")
    if not raw:
        raise WebhookPayloadError("body", "is an empty array; HubSpot sends at least one event")
    if len(raw) > MAX_EVENTS:
        raise WebhookPayloadError("body", f"holds {len(raw)} events, more than {MAX_EVENTS}")
    # Every opening bracket beyond the array and its event objects may nest one level deeper
    # inside an event: only a body with MAX_DEPTH or more of them (rare: merges, brackets in
    # text) can be too deep, and only such a body is walked.
    if body.count(b"[") + body.count(b"{") - 1 - len(raw) >= MAX_DEPTH:
        _check_depth(raw)
    kept = [n for n, item in enumerate(raw) if not _skipped(item)]
    items = raw if len(kept) == len(raw) else [raw[n] for n in kept]
    try:
        events = msgspec.convert(items, list[WireEvent], strict=True)
    except msgspec.ValidationError:
        raise _culprit(raw) from None
    for n, event in zip(kept, events, strict=True):
        _checked(event, f"body[{n}]")
    return items, events


def _skipped(item: object) -> bool:
    """Whether ``item`` is an event of a kind in :data:`SKIPPED_CHANGES`."""
    if not isinstance(item, dict):
        return False
    kind = item.get("subscriptionType") or item.get("eventType")
    return isinstance(kind, str) and kind.endswith(SKIPPED_CHANGES)


def read_event(item: object, path: str = "event") -> WireEvent:
    """Validate one event object as HubSpot sends it (e.g. one stored in the inbox).

    :raises WebhookPayloadError: naming the field that is missing or wrong.
    """
    try:
        event = msgspec.convert(item, WireEvent, strict=True)
    except msgspec.ValidationError:
        raise _event_problem(item, path) or WebhookPayloadError(path, "is not a valid event") from None
    return _checked(event, path)


def _checked(event: WireEvent, path: str) -> WireEvent:
    """The rules across fields: a subscription type (or the older eventType) is present, and
    a property change names its property."""
    subscription = event.subscription_type or event.event_type
    if subscription is None:
        raise WebhookPayloadError(path, "lacks subscriptionType")
    if event.property_name is None and subscription.endswith(".propertyChange"):
        raise WebhookPayloadError(path, "is a propertyChange but lacks propertyName")
    return event


_TOO_DEEP = "is nested too deeply for a batch of events"


def _unreadable(body: bytes) -> WebhookPayloadError:
    """Why msgspec could not read ``body`` as JSON, found again with the standard library
    (only for a refused body): not UTF-8, not JSON (and where), or a value JSON readers
    disagree on."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return WebhookPayloadError("body", f"is not UTF-8 text (byte {exc.start} is invalid); "
                                           "HubSpot sends UTF-8 JSON")
    try:
        json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        return WebhookPayloadError("body", f"is not valid JSON (line {exc.lineno}, column {exc.colno})")
    except RecursionError:
        return WebhookPayloadError("body", _TOO_DEEP)
    except ValueError:  # NaN or Infinity
        return WebhookPayloadError("body", "is not valid JSON (NaN and Infinity are not JSON values)")
    return WebhookPayloadError("body", "holds a number out of range or an unpaired surrogate escape "
                                       "(\\ud800 to \\udfff alone)")


def _no_constants(name: str) -> Any:
    raise ValueError(name)


def _culprit(raw: list[Any]) -> WebhookPayloadError:
    """The first event of ``raw`` msgspec refuses, and its first wrong field."""
    for n, item in enumerate(raw):
        problem = None if _skipped(item) else _event_problem(item, f"body[{n}]")
        if problem is not None:
            return problem
    return WebhookPayloadError("body", "is not a valid batch of HubSpot events")


def _event_problem(item: object, path: str) -> WebhookPayloadError | None:
    """What is wrong with one event, or None when msgspec accepts it. Each field is checked
    against its own type, so the answer never depends on how msgspec words an error."""
    if not isinstance(item, dict):
        return WebhookPayloadError(path, f"is {_kind(item)}; each event is a JSON object")
    try:
        msgspec.convert(item, WireEvent, strict=True)
    except msgspec.ValidationError:
        pass
    else:
        return None
    for field in _FIELDS:
        if field.encode_name not in item:
            if field.required:
                return WebhookPayloadError(path, f"lacks {field.encode_name}")
            continue
        try:
            msgspec.convert(item[field.encode_name], field.type, strict=True)
        except msgspec.ValidationError:
            return WebhookPayloadError(f"{path}.{field.encode_name}", RULES[field.encode_name])
    return WebhookPayloadError(path, "is not a valid event")


def _check_depth(raw: list[Any]) -> None:
    """Refuse arrays and objects nested more than :data:`MAX_DEPTH` deep, each event's object
    being depth 1 (no recursion; scalars do not count)."""
    stack: list[tuple[Any, int]] = [(item, 1) for item in raw]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise WebhookPayloadError("body", _TOO_DEEP)
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")
