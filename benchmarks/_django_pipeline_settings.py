"""Settings of the host double for ``bench_django_pipeline.py`` (its process and its Celery worker).

The double's own settings (``tests/django_host/settings.py``), with what a deployed host has and
the tests do without: one database chosen by the benchmark (``AMBAC_BENCH_DATABASE``, a JSON
``DATABASES`` entry), a cache and a Celery broker shared by all processes (Redis), a queue of
the run's own, and tasks sent to a worker rather than run eagerly.
"""

from __future__ import annotations

import json
import os

from tests.django_host.settings import *  # noqa: F403  # the double's settings, amended below

_REDIS = os.environ["AMBAC_BENCH_REDIS"]

DATABASES = {"default": {"ATOMIC_REQUESTS": True, **json.loads(os.environ["AMBAC_BENCH_DATABASE"])}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _REDIS}}
CELERY_BROKER_URL = _REDIS
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_DEFAULT_QUEUE = os.environ["AMBAC_BENCH_QUEUE"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
ALLOWED_HOSTS = ["127.0.0.1"]
AMBAC_PLUGIN_DATA_DIR = os.environ["AMBAC_PLUGIN_DATA_DIR"]
