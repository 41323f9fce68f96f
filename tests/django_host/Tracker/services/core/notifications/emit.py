"""The double's notification entry point: one outbox row per emitted event."""

from __future__ import annotations

from typing import Any

from Tracker.models import NotificationOutbox, Tenant
from Tracker.utils.tenant_context import tenant_context


def emit(event_code: str, tenant: Tenant, payload: dict[str, Any]) -> NotificationOutbox:
    """Queue ``event_code`` with ``payload`` for ``tenant``'s recipients; returns the row."""
    with tenant_context(tenant.pk):
        return NotificationOutbox.objects.using(tenant._state.db or "default").create(
            tenant=tenant, event_code=event_code, payload=payload
        )
