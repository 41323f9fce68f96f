"""Settings of the host double: SQLite as ``default``, and PostgreSQL as ``postgres`` when the
server at 127.0.0.1:5432 answers (trust auth, database ``test``).

Test databases get this process's id and a random part in their names, so runs sharing the
machine never meet, nor do runs in containers (each with its own process ids) sharing one server.
Like the real host, every view runs in a transaction (``ATOMIC_REQUESTS``).
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path

from tests._store_support import PG_HOST, PG_PORT, postgres_answers

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # ``Tracker`` is a top-level package, as in the host

POSTGRES_AVAILABLE = postgres_answers()
_RUN = f"{os.getpid()}_{secrets.token_hex(4)}"

SECRET_KEY = "host-double-" + "x" * 40
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.django_host.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "Tracker.User"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "Tracker",
    "integrations",
    "django_celery_beat",
    "rest_framework",
    "rest_framework.authtoken",
    "ambac_hubspot_plugin.contrib.django",
]
# The host's API authenticates with DRF: browser sessions (CSRF enforced) and API tokens.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
}
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast users in tests

# The host's integration registry (HOST.md); HUBSPOT_MODE is left unset (``cloud``) as in a host
# that has not switched to the plugin yet: tests set it to ``plugin``.
FIELD_ENCRYPTION_KEY = "Dj5-qK0L0yTgQp0Ql8m7a9yqG2f7mJ0c7t2Sg7a2d0E="  # the double's Fernet key
INTEGRATION_ADAPTERS = {
    ("hubspot", "cloud"): "integrations.adapters.builtin.BuiltInHubSpotAdapter",
    ("hubspot", "plugin"): "ambac_hubspot_plugin.contrib.django.adapter.HubSpotPluginAdapter",
}

_SQLITE = str(Path(tempfile.gettempdir()) / f"ambac-django-host-{_RUN}.sqlite3")
DATABASES: dict[str, dict[str, object]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _SQLITE,
        "ATOMIC_REQUESTS": True,
        # Writers queue at BEGIN instead of failing on a read-to-write lock upgrade.
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
        "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"test-ambac-django-host-{_RUN}.sqlite3")},
    },
}
if POSTGRES_AVAILABLE:
    DATABASES["postgres"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "USER": "postgres",
        "HOST": PG_HOST,
        "PORT": PG_PORT,
        "ATOMIC_REQUESTS": True,
        "TEST": {"NAME": f"test_ambac_django_host_{_RUN}", "DEPENDENCIES": []},
    }

# Celery (tests/django_host/celery_app.py): eager in the test process; a worker subprocess
# started by a test gets a Redis broker, and the test's database and data directory, from its
# environment.
CELERY_BROKER_URL = os.environ.get("AMBAC_TEST_CELERY_BROKER", "memory://")
CELERY_TASK_ALWAYS_EAGER = "AMBAC_TEST_CELERY_BROKER" not in os.environ
CELERY_TASK_EAGER_PROPAGATES = True
if "AMBAC_TEST_DJANGO_DB" in os.environ:
    DATABASES["default"]["NAME"] = os.environ["AMBAC_TEST_DJANGO_DB"]
if "AMBAC_PLUGIN_DATA_DIR" in os.environ:
    AMBAC_PLUGIN_DATA_DIR = os.environ["AMBAC_PLUGIN_DATA_DIR"]
