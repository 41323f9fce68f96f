"""The plugin's admin alerts as an Ambac Tracker notification event.

The host's ``emit(event_code, tenant, payload)`` takes only a registered event code, and a payload
that is an instance of the event's registered ``payload_schema`` (a dataclass with a ``sample()``
classmethod and an ``id`` or ``correlation_id`` field). :func:`register_alert_event` (called by
the app's ``ready()``) registers :data:`EVENT_CODE` with :class:`HubSpotAlertPayload`;
``notify_admins`` emits :func:`alert_payload`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EVENT_CODE", "HubSpotAlertPayload", "alert_payload", "register_alert_event"]

EVENT_CODE = "integrations.hubspot.alert"
"""The notification event the plugin's admin alerts are emitted as (``services.ALERT_EVENT_CODE``)."""


@dataclass(frozen=True)
class HubSpotAlertPayload:
    """One admin alert: what went wrong with the tenant's HubSpot integration."""

    subject: str
    message: str
    level: str
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def sample(cls) -> HubSpotAlertPayload:
        """An example alert (the host's notification settings preview it)."""
        return cls(subject="HubSpot sync is failing",
                   message="The last 3 syncs failed: HubSpot refused the access token.", level="error",
                   correlation_id="sample")


def alert_payload(subject: str, message: str, level: str) -> HubSpotAlertPayload:
    """The payload ``notify_admins`` emits for one alert."""
    return HubSpotAlertPayload(subject=subject, message=message, level=level)


def register_alert_event() -> bool:
    """Register the alert event with the host's notification registry.

    The host refuses a second event type with a registered code, so one :class:`EventType` is
    built per process and registered again as itself (a no-op).

    :return: False when the host has no such registry (its ``emit`` then takes any code).
    """
    try:
        from Tracker.services.core.notifications.registry import EventType, register_event
    except ImportError:
        return False
    if not _event_type:
        _event_type.append(EventType(
            code=EVENT_CODE, label="HubSpot integration alert", domain="integrations",
            payload_schema=HubSpotAlertPayload,
            description="The HubSpot integration needs an administrator's attention."))
    register_event(_event_type[0])
    return True


_event_type: list[Any] = []  # the one EventType of this process, once built
