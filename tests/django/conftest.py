"""The Django bridge's tests run only where Django and pytest-django are installed.

``python3 dev.py test`` runs them in ``.venv-django`` (Python 3.12, extras
``[test,postgres,django,django-test]``). In the main ``.venv`` (no Django) each test module
skips itself with :data:`SKIP_REASON`; this conftest then does nothing, since raising a skip
here would stop a run that names this directory.
"""

from __future__ import annotations

import importlib.util
import os

SKIP_REASON = "the Django bridge's tests need Django and pytest-django: `python3 dev.py test` runs them in .venv-django"
HAVE_DJANGO = all(importlib.util.find_spec(name) is not None for name in ("django", "pytest_django"))

if HAVE_DJANGO:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_host.settings")

    from django.conf import settings

    # Loading the settings here lets pytest-django set Django up in its pytest_configure,
    # without a DJANGO_SETTINGS_MODULE in tox.ini that the main environment would not know.
    settings.INSTALLED_APPS  # noqa: B018
