"""Events waiting to be told to the tenant's people (the double keeps them; nothing is sent)."""

from __future__ import annotations

from django.db import models

from .core import SecureModel


class NotificationOutbox(SecureModel):
    event_code = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
