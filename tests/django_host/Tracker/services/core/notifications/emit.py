"""The double's notification entry point: one outbox row per emitted event (SMOKE_FINDINGS item
6): the code must be registered and the payload an instance of its registered schema."""

from __future__ import annotations

import dataclasses
from typing import Any

from Tracker.models import NotificationOutbox, Tenant
from Tracker.utils.tenant_context import tenant_context

from .registry import EVENT_REGISTRY


def emit(event_code: str, tenant: Tenant, payload: Any) -> NotificationOutbox:
    """Queue ``event_code`` with ``payload`` for ``tenant``'s recipients; returns the row.

    :raises KeyError: ``event_code`` is not registered.
    :raises TypeError: ``payload`` is not an instance of the registered ``payload_schema``.
    """
    event_type = EVENT_REGISTRY[event_code]
    if not isinstance(payload, event_type.payload_schema):
        raise TypeError(f"{event_code}: payload must be a {event_type.payload_schema.__name__}")
    with tenant_context(tenant.pk):
        return NotificationOutbox.objects.using(tenant._state.db or "default").create(
            tenant=tenant, event_code=event_code, payload=dataclasses.asdict(payload)
        )
