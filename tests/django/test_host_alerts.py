"""The plugin's admin alerts as the host's notification event: registered at app start with a
dataclass payload, so the host's ``emit`` accepts them (SMOKE_FINDINGS item 6)."""

from __future__ import annotations

import dataclasses

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from Tracker.services.core.notifications.registry import EVENT_REGISTRY

from ambac_hubspot_plugin.contrib.django.alerts import (
    EVENT_CODE,
    HubSpotAlertPayload,
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
