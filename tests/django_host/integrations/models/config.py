"""One integration's configuration per tenant and provider (HOST.md): whether it is on, and a
JSON ``config``. The host encrypts ``api_key``, ``oauth_refresh_token`` and ``webhook_secret``;
this double keeps them as plain text (the bridge does not read them yet)."""

from __future__ import annotations

from django.db import models
from Tracker.models import Tenant
from Tracker.models.core import uuid7


class IntegrationConfig(models.Model):
    class Provider(models.TextChoices):
        HUBSPOT = "hubspot", "HubSpot"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="integrations")
    provider = models.CharField(max_length=30, choices=Provider.choices)
    is_enabled = models.BooleanField(default=False)
    api_key = models.CharField(max_length=500, blank=True, default="")
    oauth_refresh_token = models.CharField(max_length=500, blank=True, default="")
    webhook_secret = models.CharField(max_length=500, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "provider"], name="one_config_per_provider")]
