"""The host double's Celery app, as a Django project declares one (``celery -A`` names it)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_host.settings")

app = Celery("django_host")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
