"""The CRM API's JSON both ways: the request bodies the adapter sends, the records it reads.

Pure logic, no SDK: the adapter (``_hubspot``) sends these bodies and hands each answer's
items here. A reader raises ``AttributeError``, ``KeyError``, ``TypeError``, ``ValueError``
or ``InvalidOperation`` on an item it cannot read; the adapter turns that into a "malformed
answer" error naming the operation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ._client_records import (
    Association,
    AssociationInput,
    Company,
    Contact,
    Deal,
    DealNote,
    HubSpotObject,
    ItemError,
    Note,
    Pipeline,
    PropertyOption,
    PropertySpec,
    Stage,
    parse_timestamp,
)
from ._hubspot_errors import word
from .errors import HubSpotApiError

__all__ = [
    "ASSOCIATION_BATCH",
    "ASSOCIATION_PAGE",
    "NOTE_TO_DEAL",
    "OBJECT_BATCH",
    "StatusAnswer",
    "account_portal",
    "association_read_body",
    "associations",
    "batch_read_body",
    "create_body",
    "create_inputs",
    "item_errors",
    "json_object",
    "modified_property",
    "next_after",
    "note_batch",
    "note_inputs",
    "note_properties",
    "pipeline",
    "property_body",
    "record",
    "update_inputs",
    "upsert_inputs",
]

#: HubSpot's batch limits.
OBJECT_BATCH = 100
ASSOCIATION_BATCH = 1000
#: Links HubSpot returns per object in one association read.
ASSOCIATION_PAGE = 500
#: The association type linking a note to a deal.
NOTE_TO_DEAL = 214

_RECORD_TYPES: dict[str, type[HubSpotObject]] = {
    "deals": Deal,
    "companies": Company,
    "contacts": Contact,
    "notes": Note,
}

#: Contacts carry their modification time under another name than every other object.
_MODIFIED_PROPERTY = {"contacts": "lastmodifieddate"}


def account_portal(answer: Mapping[str, Any]) -> str:
    """The account (portal) id of an account-details answer: a positive whole number, not a
    bool, a fraction or a string."""
    portal = answer["portalId"]
    if type(portal) is not int or portal <= 0:
        raise ValueError(f"{portal!r} is not an account id")
    return str(portal)


def modified_property(object_type: str) -> str:
    """The property holding an object's last-modified time."""
    return _MODIFIED_PROPERTY.get(object_type, "hs_lastmodifieddate")


def next_after(answer: Mapping[str, Any]) -> str | None:
    """The ``paging.next.after`` cursor of an answer or result, or None on the last page."""
    after = ((answer.get("paging") or {}).get("next") or {}).get("after")
    return None if after in (None, "") else str(after)


# -- requests --------------------------------------------------------------------------------


def create_body(
    properties: Mapping[str, str | None], associations: Sequence[AssociationInput]
) -> dict[str, Any]:
    """The body creating one object with its associations."""
    return {
        "properties": dict(properties),
        "associations": [
            {
                "to": {"id": a.to_id},
                "types": [{"associationCategory": a.category, "associationTypeId": a.type_id}],
            }
            for a in associations
        ],
    }


def batch_read_body(ids: Sequence[str], properties: Sequence[str]) -> dict[str, Any]:
    """The body reading a batch of objects by id."""
    return {
        "inputs": [{"id": i} for i in ids],
        "properties": list(properties),
        "propertiesWithHistory": [],  # required by the specs; no history is read
    }


def association_read_body(batch: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
    """The body of an association batch read: each id, with its cursor when it continues."""
    return {
        "inputs": [
            {"id": i} if after is None else {"id": i, "after": after} for i, after in batch
        ]
    }


def note_properties(body: str, when: datetime) -> dict[str, str | None]:
    """A note's properties: its text and its time, in UTC milliseconds as HubSpot writes it."""
    stamp = when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"hs_note_body": body, "hs_timestamp": stamp}


def note_inputs(notes: Sequence[DealNote]) -> list[dict[str, Any]]:
    """The inputs of a batch create of notes, each with its deal association and its key as
    ``objectWriteTraceId`` (how the answer names each input); keys must differ."""
    if len({n.key for n in notes}) != len(notes):
        raise ValueError("each note of one call needs its own key")
    return [
        {
            **create_body(note_properties(n.body, n.when),
                          [AssociationInput(to_id=str(n.deal_id), type_id=NOTE_TO_DEAL)]),
            "objectWriteTraceId": n.key,
        }
        for n in notes
    ]


def note_batch(
    keys: Sequence[str], results: Iterable[Mapping[str, Any]], errors: Iterable[ItemError]
) -> tuple[dict[str, str], list[ItemError]]:
    """The note id per key of a batch create's answer, and its refusals.

    Results are matched by ``objectWriteTraceId``. Only when no result carries one, and as
    many results came as notes were sent with no error, are they matched in order (HubSpot
    answers in input order; nothing else could tell them apart).
    """
    items = list(results)
    failed = list(errors)
    traced = {str(r["objectWriteTraceId"]): str(r["id"]) for r in items if r.get("objectWriteTraceId")}
    if traced or failed or len(items) != len(keys):
        wanted = set(keys)
        return {k: v for k, v in traced.items() if k in wanted}, failed
    return {k: str(r["id"]) for k, r in zip(keys, items, strict=True)}, failed


def create_inputs(inputs: Sequence[Mapping[str, str | None]]) -> list[dict[str, Any]]:
    """The inputs of a batch create: properties only, no associations."""
    return [{"properties": dict(p), "associations": []} for p in inputs]


def update_inputs(updates: Mapping[str, Mapping[str, str | None]]) -> list[dict[str, Any]]:
    """The inputs of a batch update, by object id."""
    return [{"id": str(i), "properties": dict(p)} for i, p in updates.items()]


def upsert_inputs(
    id_property: str, inputs: Mapping[str, Mapping[str, str | None]]
) -> list[dict[str, Any]]:
    """The inputs of a batch upsert, keyed by the value of the unique ``id_property``."""
    return [
        {"id": str(v), "idProperty": id_property, "properties": dict(p)}
        for v, p in inputs.items()
    ]


def property_body(spec: PropertySpec) -> dict[str, Any]:
    """The body creating one custom property."""
    return {
        "name": spec.name,
        "label": spec.label,
        "type": spec.type,
        "fieldType": spec.field_type,
        "groupName": spec.group_name,
        "description": spec.description,
        "hasUniqueValue": spec.has_unique_value,
        "options": [
            {
                "label": o.label,
                "value": o.value,
                "displayOrder": o.display_order,
                "hidden": False,
            }
            for o in spec.options
        ],
    }


# -- answers ---------------------------------------------------------------------------------


class StatusAnswer:
    """An error status the caller asked to handle itself, with its parsed body."""

    __slots__ = ("body", "status")

    def __init__(self, status: int, body: Mapping[str, object]) -> None:
        self.status = status
        self.body = body


def json_object(operation: str, status: int, raw: bytes) -> Any:
    """The JSON object of an answer's body (``{}`` for none).

    :raises HubSpotApiError: when the body is not JSON, or not an object.
    """
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        # Not quoted: whatever answered is not HubSpot, and its page is nobody's business.
        raise HubSpotApiError(
            f"HubSpot answered {status} with a body that is not JSON ({len(raw)} bytes); "
            "a proxy or outage page may be in the way",
            status=status,
            operation=operation,
        ) from exc
    if not isinstance(data, dict):
        raise HubSpotApiError(
            f"HubSpot answered {status} with JSON that is not an object ({type(data).__name__})",
            status=status,
            operation=operation,
        )
    return data


def record(object_type: str, item: Any) -> HubSpotObject:
    """One CRM object of an answer, as the record class of its type."""
    cls = _RECORD_TYPES.get(object_type, HubSpotObject)
    props = item.get("properties") or {}
    modified = props.get(modified_property(object_type)) or item.get("updatedAt")
    updated = parse_timestamp(modified)
    if updated is None:
        raise ValueError("no modification time")
    created = item.get("createdAt")
    return cls(
        id=str(item["id"]),
        properties=props,
        updated_at=updated,
        archived=bool(item.get("archived", False)),
        created_at=parse_timestamp(created) if created else None,
    )


def association_result(result: Mapping[str, Any]) -> tuple[str, list[Association], str | None]:
    """One object's result of an association batch read: its id, its links on this page, and
    the cursor of its next page (None on the last)."""
    return str(result["from"]["id"]), list(associations(result.get("to") or ())), next_after(result)


def associations(items: Iterable[Mapping[str, Any]]) -> Iterator[Association]:
    """The links of one association result (or page), each with all its type ids."""
    for item in items:
        types = tuple(int(t["typeId"]) for t in item.get("associationTypes") or ())
        yield Association(to_id=str(item["toObjectId"]), type_ids=types)


def pipeline(item: Mapping[str, Any]) -> Pipeline:
    """A deal pipeline, its stages in display order."""
    stages = []
    for stage in item.get("stages") or ():
        meta = stage.get("metadata") or {}
        # Metadata values are strings: "true", "1.0".
        probability = meta.get("probability")
        stages.append(
            Stage(
                id=str(stage["id"]),
                label=str(stage.get("label") or ""),
                is_closed=str(meta.get("isClosed", "false")).lower() == "true",
                probability=Decimal(str(probability))
                if probability not in (None, "")
                else None,
                display_order=int(stage.get("displayOrder") or 0),
            )
        )
    stages.sort(key=lambda s: s.display_order)
    return Pipeline(
        id=str(item["id"]),
        label=str(item.get("label") or ""),
        stages=tuple(stages),
        archived=bool(item.get("archived", False)),
    )


def property_spec(item: Mapping[str, Any]) -> PropertySpec:
    """A property's definition as read back (its options with their values and labels)."""
    return PropertySpec(
        name=str(item.get("name") or ""),
        label=str(item.get("label") or ""),
        type=str(item.get("type") or ""),
        field_type=str(item.get("fieldType") or ""),
        group_name=str(item.get("groupName") or ""),
        description=str(item.get("description") or ""),
        options=tuple(
            PropertyOption(label=str(o.get("label") or ""), value=str(o.get("value") or ""),
                           display_order=int(o.get("displayOrder") or 0))
            for o in item.get("options") or () if isinstance(o, Mapping)),
        has_unique_value=bool(item.get("hasUniqueValue", False)),
    )


def item_errors(
    errors: Iterable[Mapping[str, Any]], remote: Callable[[object], str]
) -> Iterator[ItemError]:
    """One :class:`ItemError` per refused input of a batch; ``remote`` cleans their messages."""
    for err in errors:
        context = err.get("context") or {}
        ids = (
            context.get("ids")
            or context.get("id")
            or context.get("objectWriteTraceId")
            or ([err["id"]] if err.get("id") else [None])
        )
        for item_id in ids:
            yield ItemError(
                id=None if item_id is None else str(item_id),
                status=word(err.get("status")) or "error",
                category=word(err.get("category")),
                message=remote(err.get("message") or ""),
            )
