"""The plugin's admin alerts as the host's notification event: registered at app start with a
dataclass payload, so the host's ``emit`` accepts them (SMOKE_FINDINGS item 6)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from Tracker.models import NotificationOutbox, Tenant
from Tracker.services.core.notifications.emit import emit
from Tracker.services.core.notifications.registry import EVENT_REGISTRY
from Tracker.utils.tenant_context import tenant_context

from ambac_hubspot_plugin.contrib.django.alerts import (
    EVENT_CODE,
    HubSpotAlertPayload,
    alert_payload,
    register_alert_event,
)
from ambac_hubspot_plugin.contrib.django.services import ALERT_EVENT_CODE


def test_the_alert_event_is_registered_when_the_app_starts() -> None:
    """By the time Django is ready the alert code is registered with the dataclass schema the
    host asks for: ``sample()`` and a ``correlation_id``."""
    assert EVENT_CODE == ALERT_EVENT_CODE
    event_type = EVENT_REGISTRY[ALERT_EVENT_CODE]
    assert event_type.payload_schema is HubSpotAlertPayload
    assert isinstance(HubSpotAlertPayload.sample(), HubSpotAlertPayload)
    assert "correlation_id" in {f.name for f in dataclasses.fields(HubSpotAlertPayload)}
    assert register_alert_event() is True, "registering again (ready() twice) is refused by no host"
    assert EVENT_REGISTRY[ALERT_EVENT_CODE] is event_type


@pytest.mark.django_db
def test_the_hosts_emit_takes_an_alert_payload() -> None:
    """``emit`` accepts ``alert_payload(...)`` (it refuses a dict) and the outbox row keeps
    subject, message and level; each alert has its own correlation id."""
    tenant = Tenant.objects.create(name="Acme", slug=f"t-{uuid.uuid4().hex}")
    with pytest.raises(TypeError):
        emit(ALERT_EVENT_CODE, tenant, {"subject": "s", "message": "m", "level": "error"})

    emit(ALERT_EVENT_CODE, tenant, alert_payload("Sync failing", "HubSpot refused the token", "error"))
    emit(ALERT_EVENT_CODE, tenant, alert_payload("Sync failing", "again", "error"))

    with tenant_context(tenant.pk):
        first, second = NotificationOutbox.objects.filter(event_code=ALERT_EVENT_CODE).order_by("pk")
    assert (first.payload["subject"], first.payload["message"], first.payload["level"]) == (
        "Sync failing", "HubSpot refused the token", "error")
    assert first.payload["correlation_id"] != second.payload["correlation_id"]
