"""The integration permissions, ``manage_integrations`` and ``view_integrations``, as Django
``auth.Permission`` rows (content type ``ambac_hubspot.integrationaccess``), granted to each
tenant's admin group: existing ones by migration ``0002_integration_permissions``, new ones
when the group is saved (:func:`connect`'s receiver).

An admin group is a ``TenantGroup`` whose :data:`ADMIN_GROUP_FLAG` is true. A host whose
``TenantGroup`` has no such field gets the permissions created and granted to no group (its
admins grant them like any other permission).
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save

__all__ = ["ADMIN_GROUP_FLAG", "PERMISSIONS", "PERMISSION_MODEL", "admin_groups", "connect",
           "grant_to_admin_groups", "integration_permissions"]

PERMISSIONS = {
    "manage_integrations": "Can manage the HubSpot integration",
    "view_integrations": "Can view the HubSpot integration",
}
"""Codename -> name of each permission (the contract's ``MANAGE_INTEGRATIONS`` / ``VIEW_INTEGRATIONS``)."""
PERMISSION_MODEL = "integrationaccess"
"""The (table-less) model of app ``ambac_hubspot`` the permissions belong to."""
ADMIN_GROUP_FLAG = "is_tenant_admin"
"""The ``TenantGroup`` field marking a tenant's admin group."""


def admin_groups(group_model: Any, using: str) -> Any:
    """The admin groups among ``group_model``'s rows (none when it has no admin flag)."""
    rows = group_model._base_manager.using(using)
    if ADMIN_GROUP_FLAG not in {field.name for field in group_model._meta.get_fields()}:
        return rows.none()
    return rows.filter(**{ADMIN_GROUP_FLAG: True})


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


def connect() -> None:
    """Grant the permissions to a tenant admin group whenever one is saved (the app's ready())."""
    from Tracker.models import TenantGroup

    post_save.connect(_group_saved, sender=TenantGroup, dispatch_uid="ambac_hubspot.admin_group_saved")


def _group_saved(sender: Any, instance: Any, raw: bool = False, using: str = "default", **kwargs: Any) -> None:
    if raw or not getattr(instance, ADMIN_GROUP_FLAG, False):
        return
    from django.contrib.auth.models import Permission

    instance.permissions.add(*integration_permissions(Permission, using))
