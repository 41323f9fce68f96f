# Placeholder in the Celery branch: the events helper's 0001_initial replaces it at merge.
from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations: list[migrations.operations.base.Operation] = []
