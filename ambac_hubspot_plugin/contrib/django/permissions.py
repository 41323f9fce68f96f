"""The integration permissions, ``manage_integrations`` and ``view_integrations``, as Django
``auth.Permission`` rows (content type ``ambac_hubspot.integrationaccess``), granted to each
tenant's admin group: existing ones by migration ``0002_integration_permissions``, new ones
when the group is saved (:func:`connect`'s receiver).

A tenant's admin group is its ``TenantGroup`` named :data:`ADMIN_GROUP_NAME` (the host has no
admin flag). The host's ``manage.py sync_tenant_permissions`` resets preset groups to their
preset and so revokes these grants: run :func:`grant_integration_permissions` (or the host's
preset including them) after it.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save

__all__ = ["ADMIN_GROUP_NAME", "PERMISSIONS", "PERMISSION_MODEL", "admin_groups", "connect",
           "grant_integration_permissions", "grant_to_admin_groups", "integration_permissions"]

PERMISSIONS = {
    "manage_integrations": "Can manage the HubSpot integration",
    "view_integrations": "Can view the HubSpot integration",
}
"""Codename -> name of each permission (the contract's ``MANAGE_INTEGRATIONS`` / ``VIEW_INTEGRATIONS``)."""
PERMISSION_MODEL = "integrationaccess"
"""The (table-less) model of app ``ambac_hubspot`` the permissions belong to."""
ADMIN_GROUP_NAME = "Tenant Admin"
"""The name of each tenant's admin group (the host's preset group)."""


def admin_groups(group_model: Any, using: str) -> Any:
    """The admin groups among ``group_model``'s rows."""
    return group_model._base_manager.using(using).filter(name=ADMIN_GROUP_NAME)


def integration_permissions(permission_model: Any, using: str) -> list[Any]:
    """The permission rows (they exist once the app's migrations ran)."""
    return list(permission_model._base_manager.using(using).filter(
        content_type__app_label="ambac_hubspot", content_type__model=PERMISSION_MODEL,
        codename__in=PERMISSIONS))


def grant_to_admin_groups(groups: Any, permissions: list[Any]) -> int:
    """Add ``permissions`` to each of ``groups``; return how many groups there were."""
    count = 0
    for group in groups:
        group.permissions.add(*permissions)
        count += 1
    return count


def grant_integration_permissions(using: str = "default") -> int:
    """Grant both permissions to every tenant's admin group again; return how many groups.

    Run it after the host's ``sync_tenant_permissions`` (which revokes them): from a shell,
    a deploy script or a data migration; it needs no ``manage.py hubspot``.
    """
    from django.contrib.auth.models import Permission
    from Tracker.models import TenantGroup

    return grant_to_admin_groups(admin_groups(TenantGroup, using), integration_permissions(Permission, using))


def connect() -> None:
    """Grant the permissions to a tenant admin group whenever one is saved (the app's ready())."""
    from Tracker.models import TenantGroup

    post_save.connect(_group_saved, sender=TenantGroup, dispatch_uid="ambac_hubspot.admin_group_saved")


def _group_saved(sender: Any, instance: Any, raw: bool = False, using: str = "default", **kwargs: Any) -> None:
    if raw or instance.name != ADMIN_GROUP_NAME:
        return
    from django.contrib.auth.models import Permission

    instance.permissions.add(*integration_permissions(Permission, using))
