"""Tenancy, the secure base model, companies, users and tenant groups of the host double.

Written from HOST.md: UUIDv7 keys for tenants and every ``SecureModel``; a default manager
that raises ``TenantContextRequired`` outside ``tenant_context``; ``delete()`` only archives;
companies versioned (a new version is a new row); users with integer keys, not scoped by
their manager; permissions granted through per-tenant groups.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

from django.contrib.auth.models import AbstractUser, Permission, UserManager
from django.db import models
from django.utils import timezone
from Tracker.utils.tenant_context import get_current_tenant_id

_last_uuid7 = 0
_uuid7_lock = threading.Lock()


def uuid7() -> uuid.UUID:
    """A UUID version 7: 48 bits of Unix milliseconds, then random bits (RFC 9562), rising
    strictly within the process so that ids give creation order, as the host relies on."""
    global _last_uuid7
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant
    with _uuid7_lock:
        if value <= _last_uuid7:
            value = _last_uuid7 + 1  # the random tail has room: its top bits stay the variant
        _last_uuid7 = value
    return uuid.UUID(int=value)


class TenantContextRequired(Exception):
    """A tenant-scoped model was queried outside ``tenant_context``."""


class Tenant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)


class SecureManager(models.Manager):  # type: ignore[type-arg]
    """The default manager of tenant data: the current tenant's rows, or an error."""

    def get_queryset(self) -> models.QuerySet[Any]:
        tenant_id = get_current_tenant_id()
        if tenant_id is None:
            raise TenantContextRequired(
                f"{self.model.__name__} was queried outside tenant_context(); enter one first"
            )
        return super().get_queryset().filter(tenant_id=tenant_id)


class SecureModel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    external_id = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    archived = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)
    previous_version = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    is_current_version = models.BooleanField(default=True)

    objects = SecureManager()
    unscoped = models.Manager()

    class Meta:
        abstract = True

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:  # type: ignore[override]
        """Archive instead of deleting: the row stays, visible to the default manager."""
        self.archived = True
        self.deleted_at = timezone.now()
        self.save(update_fields=["archived", "deleted_at", "updated_at"])
        return (0, {})

    def create_new_version(self, *, user: Any = None, change_description: str | None = None,
                           supersede_source: bool = True, **field_updates: Any) -> SecureModel:
        """Save ``field_updates`` as a new row (new id) that becomes the current version (the
        source stays current too when not ``supersede_source``). No ``new_version``: the host
        has none."""
        db = self._state.db or "default"
        if supersede_source:
            type(self).unscoped.using(db).filter(pk=self.pk).update(is_current_version=False)
        fields = {f.attname: getattr(self, f.attname) for f in self._meta.concrete_fields}
        fields.update(field_updates)
        fields.update(id=uuid7(), version=self.version + 1, previous_version_id=self.pk,
                      is_current_version=True, created_at=timezone.now())
        row = type(self)(**fields)
        row.save(using=db, force_insert=True)
        return row


class Companies(SecureModel):
    name = models.CharField(max_length=50)
    description = models.TextField()


class TenantGroup(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    is_custom = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    permissions = models.ManyToManyField(Permission, blank=True, related_name="tenant_groups")
    # As the host's: no admin flag; a tenant's administrators are its group named 'Tenant Admin'.

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="tenant_group_name")]


class User(AbstractUser):
    class UserType(models.TextChoices):
        INTERNAL = "INTERNAL", "Internal"
        PORTAL = "PORTAL", "Portal"

    first_name = models.CharField(max_length=150, null=True, blank=True)  # type: ignore[assignment]
    last_name = models.CharField(max_length=150, null=True, blank=True)  # type: ignore[assignment]
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    user_type = models.CharField(max_length=20, choices=UserType.choices, default=UserType.INTERNAL)
    parent_company = models.ForeignKey(
        Companies, on_delete=models.SET_NULL, null=True, blank=True, default=None, related_name="+"
    )

    objects = UserManager()  # type: ignore[misc]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.parent_company_id is not None:
            db = kwargs.get("using") or self._state.db or "default"
            company = Companies.unscoped.using(db).filter(pk=self.parent_company_id).first()
            # As the host's: compared as they are, so a tenant id set as text never matches.
            if company is None or company.tenant_id != self.tenant_id:
                raise ValueError("a user's parent company must belong to the user's tenant")
        super().save(*args, **kwargs)

    def get_tenant_permissions(self, tenant: Tenant) -> set[str]:
        """Codenames granted to this user in ``tenant`` (an instance, as the host's reads
        ``tenant.id``) through its groups there."""
        tenant_id = tenant.id
        return set(
            Permission.objects.using(self._state.db or "default")
            .filter(tenant_groups__tenant_id=tenant_id, tenant_groups__roles__user=self)
            .values_list("codename", flat=True)
        )

    def has_tenant_perm(self, perm: str, tenant: Tenant) -> bool:
        """Whether this user holds permission codename ``perm`` in ``tenant``."""
        return perm in self.get_tenant_permissions(tenant)


class UserRole(models.Model):
    """Membership of a user in a tenant group."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="roles")
    group = models.ForeignKey(TenantGroup, on_delete=models.CASCADE, related_name="roles")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "group"], name="user_role_once")]
