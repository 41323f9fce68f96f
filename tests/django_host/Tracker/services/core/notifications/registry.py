"""The double's notification event registry (SMOKE_FINDINGS item 6): an event code must be
registered, with a dataclass payload schema, before ``emit`` accepts it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EventType:
    code: str
    label: str
    domain: str
    payload_schema: type
    default_channels: list[str] = field(default_factory=lambda: ["in_app"])
    description: str = ""


EVENT_REGISTRY: dict[str, EventType] = {}


def register_event(event_type: EventType) -> EventType:
    """Register ``event_type``; its schema must be a dataclass with a ``sample()`` classmethod
    and an ``id`` or ``correlation_id`` field. Registering the same object again is a no-op;
    another one with a registered code is refused (ValueError)."""
    if event_type.code in EVENT_REGISTRY:
        if EVENT_REGISTRY[event_type.code] is event_type:
            return event_type
        raise ValueError(f"{event_type.code} is already registered")
    schema: Any = event_type.payload_schema
    if not dataclasses.is_dataclass(schema) or not callable(getattr(schema, "sample", None)):
        raise TypeError(f"{event_type.code}: payload_schema must be a dataclass with sample()")
    if not {"id", "correlation_id"} & {f.name for f in dataclasses.fields(schema)}:
        raise TypeError(f"{event_type.code}: payload_schema needs an id or correlation_id field")
    EVENT_REGISTRY[event_type.code] = event_type
    return event_type
