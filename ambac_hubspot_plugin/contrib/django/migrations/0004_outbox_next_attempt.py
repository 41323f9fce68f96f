"""An outbox row that failed is tried again after a growing delay, not at every drain."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = (("ambac_hubspot", "0003_celery_beat_schedule"),)

    operations = (
        migrations.AddField(
            model_name="hosteventoutbox",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    )
