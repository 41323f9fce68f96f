# Placeholder in the Celery branch: the events helper's 0002 replaces it at merge.
from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("ambac_hubspot", "0001_initial")]
    operations: list[migrations.operations.base.Operation] = []
