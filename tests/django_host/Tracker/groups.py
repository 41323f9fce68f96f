"""The double's preset tenant groups, as the host treats them: a preset group's permissions are
the host's to set. Each ``migrate`` ends by resetting every preset group of every tenant to its
preset (additions removed, missing ones added), through the group's permission relation; so
does ``manage.py sync_tenant_permissions``; seeding a new tenant's groups creates each group,
then sets its permissions to the preset. (Facts seen by running the host; written from them.)
"""

from __future__ import annotations

from typing import Any

PRESETS = {"Tenant Admin": ("add_tenantgroup", "change_tenantgroup"), "Customer": ()}
"""Preset group name -> the permission codenames the host gives it (a stand-in list)."""


def _preset(codenames: tuple[str, ...], using: str) -> list[Any]:
    from django.contrib.auth.models import Permission

    return list(Permission.objects.using(using).filter(codename__in=codenames))


def sync_permissions(using: str = "default") -> int:
    """Reset every preset group of every tenant to its preset; return how many groups."""
    from .models import TenantGroup

    count = 0
    for group in TenantGroup.objects.using(using).filter(name__in=PRESETS, is_custom=False):
        group.permissions.set(_preset(PRESETS[group.name], using))
        count += 1
    return count


def seed_tenant_groups(tenant: Any, using: str = "default") -> dict[str, Any]:
    """A new tenant's preset groups, created then set to their presets, as the host seeds them."""
    from .models import TenantGroup

    groups = {}
    for name, codenames in PRESETS.items():
        group = TenantGroup.objects.using(using).create(tenant=tenant, name=name)
        group.permissions.set(_preset(codenames, using))
        groups[name] = group
    return groups


def reset_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """The host's post-migrate receiver, on its own app's signal."""
    if sender.name == "Tracker":
        sync_permissions(using)
