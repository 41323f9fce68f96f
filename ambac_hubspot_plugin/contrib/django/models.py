"""The bridge's own tables in the host's database (app label ``ambac_hubspot``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

__all__ = ["HostEventOutbox", "IntegrationAccess"]


class HostEventOutbox(models.Model):
    """An ``ambac_*`` event of the host, written in the host's own transaction by the receivers
    (``events``) and handed to the plugin by the drain (``outbox.drain_outbox``).

    A row exists only if the host's save committed; it is deleted once the hook took it, and
    kept (``attempts`` counted, ``last_error`` kept, not tried again before ``next_attempt_at``)
    while the hook raises.
    """

    id = models.BigAutoField(primary_key=True)  # the host's DEFAULT_AUTO_FIELD does not matter
    kind = models.CharField(max_length=40)  # one of events.EVENT_KINDS
    tenant_id = models.CharField(max_length=64)  # host ids are opaque strings (as_host_id)
    record_id = models.CharField(max_length=64)
    details = models.JSONField(default=dict)  # previous_status / changed_fields
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)  # None: due now

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.kind} {self.record_id} (tenant {self.tenant_id})"


class IntegrationAccess(models.Model):
    """No table: the content type the integration permissions hang on, so that they are
    ``ambac_hubspot.manage_integrations`` and ``ambac_hubspot.view_integrations``."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = (
            ("manage_integrations", "Can manage the HubSpot integration"),
            ("view_integrations", "Can view the HubSpot integration"),
        )
