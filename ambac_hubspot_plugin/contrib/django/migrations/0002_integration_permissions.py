"""The ``manage_integrations`` and ``view_integrations`` permissions, granted to every existing
tenant's admin group (new admin groups get them from ``permissions``' receiver)."""

from typing import Any

from django.db import migrations

from ambac_hubspot_plugin.contrib.django.permissions import (
    PERMISSION_MODEL,
    PERMISSIONS,
    admin_groups,
    grant_to_admin_groups,
    integration_permissions,
)


def create_and_grant(apps: Any, schema_editor: Any) -> None:
    using = schema_editor.connection.alias
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    kind, _ = content_type_model.objects.using(using).get_or_create(
        app_label="ambac_hubspot", model=PERMISSION_MODEL)
    for codename, name in PERMISSIONS.items():
        permission_model.objects.using(using).get_or_create(
            content_type=kind, codename=codename, defaults={"name": name})
    grant_to_admin_groups(admin_groups(apps.get_model("Tracker", "TenantGroup"), using),
                          integration_permissions(permission_model, using))


def remove(apps: Any, schema_editor: Any) -> None:
    """Going back deletes the permissions (and so every grant of them)."""
    permission_model = apps.get_model("auth", "Permission")
    for row in integration_permissions(permission_model, schema_editor.connection.alias):
        row.delete()


class Migration(migrations.Migration):

    dependencies = (
        ("ambac_hubspot", "0001_initial"),
        ("auth", "0002_alter_permission_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("Tracker", "__first__"),  # TenantGroup
    )

    operations = (migrations.RunPython(create_and_grant, remove),)
