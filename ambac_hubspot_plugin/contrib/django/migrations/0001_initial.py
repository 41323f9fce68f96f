"""The event outbox, and the table-less model the integration permissions belong to."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = ()

    operations = (
        migrations.CreateModel(
            name="IntegrationAccess",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
            ],
            options={
                "permissions": (("manage_integrations", "Can manage the HubSpot integration"),
                                ("view_integrations", "Can view the HubSpot integration")),
                "managed": False,
                "default_permissions": (),
            },
        ),
        migrations.CreateModel(
            name="HostEventOutbox",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("kind", models.CharField(max_length=40)),
                ("tenant_id", models.CharField(max_length=64)),
                ("record_id", models.CharField(max_length=64)),
                ("details", models.JSONField(default=dict)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("last_error", models.TextField(blank=True, default="")),
                ("last_attempt_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "ordering": ("id",),
            },
        ),
    )
