"""One integration's configuration per tenant and provider (HOST.md): whether it is on, a JSON
``config``, and the credentials ``api_key``, ``oauth_refresh_token`` and ``webhook_secret``,
encrypted at rest (``EncryptedCharField``)."""

from __future__ import annotations

from django.db import models
from Tracker.models import Tenant
from Tracker.models.core import uuid7

from ..fields import EncryptedCharField


class IntegrationConfig(models.Model):
    class Provider(models.TextChoices):
        HUBSPOT = "hubspot", "HubSpot"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="integrations")
    provider = models.CharField(max_length=30, choices=Provider.choices)
    is_enabled = models.BooleanField(default=False)
    api_key = EncryptedCharField(max_length=1000, blank=True, default="")
    oauth_refresh_token = EncryptedCharField(max_length=1000, blank=True, default="")
    webhook_secret = EncryptedCharField(max_length=1000, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "provider"], name="one_config_per_provider")]
