"""The integration permissions, ``manage_integrations`` and ``view_integrations``, as Django
``auth.Permission`` rows (content type ``ambac_hubspot.integrationaccess``), held by each
tenant's admin group as if they were part of the host's preset for it.

A tenant's admin group is its ``TenantGroup`` named :data:`ADMIN_GROUP_NAME` (the host has no
admin flag). Ambac Tracker treats its preset groups' permissions as its own: it resets them
to the preset at the end of every ``manage.py migrate``, in ``sync_tenant_permissions``, and
when it seeds a new tenant's groups (after the group's first save). So the grant is kept by
:func:`connect`'s receivers, not made once:

- a group saved under that name gets both;
- when both or either is removed from such a group (the host's reset, ``set()``/``remove()``/
  ``clear()``), they are added back in the same transaction;
- after every ``migrate`` (after the host's own post-migrate reset, whatever the order of
  ``INSTALLED_APPS``), every admin group gets them again;
- migration ``0002_integration_permissions`` grants them to the groups existing when it runs.

A tenant that wants them withheld from some admins gives the integration to a custom group
instead; the preset group always holds them, as it holds the host's own preset permissions.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db.models.signals import m2m_changed, post_migrate, post_save

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
    """Keep the permissions on every tenant admin group (the app's ready(); see above)."""
    from Tracker.models import TenantGroup

    post_save.connect(_group_saved, sender=TenantGroup, dispatch_uid="ambac_hubspot.admin_group_saved")
    m2m_changed.connect(_group_permissions_changed, sender=TenantGroup.permissions.through,
                        dispatch_uid="ambac_hubspot.admin_group_permissions")
    post_migrate.connect(_after_migrate, dispatch_uid="ambac_hubspot.after_migrate")


def _group_permissions_changed(sender: Any, instance: Any, action: str, reverse: bool = False,
                               pk_set: set[Any] | None = None, using: str = "default", **kwargs: Any) -> None:
    if reverse or action not in ("post_remove", "post_clear"):
        return  # reverse: permissions taken from groups through the Permission side (deleting one)
    if getattr(instance, "name", None) != ADMIN_GROUP_NAME:
        return
    from django.contrib.auth.models import Permission

    ours = integration_permissions(Permission, using)
    if action == "post_clear" or any(permission.pk in (pk_set or ()) for permission in ours):
        instance.permissions.add(*ours)  # a post_add: this receiver does not act on it


def _after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    # Django sends post_migrate once per app, in INSTALLED_APPS order; the host's preset reset
    # runs on its own app's. Acting on the last one runs after it, wherever this app is listed.
    with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
    if not with_models or sender is not with_models[-1]:
        return
    grant_integration_permissions(using)


def _group_saved(sender: Any, instance: Any, raw: bool = False, using: str = "default", **kwargs: Any) -> None:
    if raw or instance.name != ADMIN_GROUP_NAME:
        return
    from django.contrib.auth.models import Permission

    instance.permissions.add(*integration_permissions(Permission, using))
