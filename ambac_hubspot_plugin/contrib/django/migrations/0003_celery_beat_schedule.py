"""The django-celery-beat entry running the plugin's drain every few seconds: the safety net
under the nudges (``contrib.django.tasks``). Removed when the migration is reversed."""

from __future__ import annotations

from typing import Any

from django.db import migrations

# Written out, not imported from tasks: a migration must not change when the code does.
TASK = "ambac_hubspot.drain"
ENTRY = "HubSpot integration: drain (safety net)"
SECONDS = 10


def create_entry(apps: Any, schema_editor: Any) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    db = schema_editor.connection.alias
    interval, _ = interval_model.objects.using(db).get_or_create(every=SECONDS, period="seconds")
    task_model.objects.using(db).update_or_create(
        name=ENTRY, defaults={"task": TASK, "interval": interval, "enabled": True,
                              "description": "Runs the HubSpot plugin's queued work; "
                                             "webhooks and host saves also start it at once."})


def remove_entry(apps: Any, schema_editor: Any) -> None:
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    task_model.objects.using(schema_editor.connection.alias).filter(name=ENTRY).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ambac_hubspot", "0002_integration_permissions"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_entry, remove_entry)]
