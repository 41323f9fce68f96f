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

    from collections.abc import Iterator

    import pluggy
    import pytest

    @pytest.fixture
    def no_drain_trigger() -> Iterator[None]:
        """No drain on commit for the test: it drains the outbox by hand. The app sets Celery's
        ``nudge`` as the trigger, which the double's eager Celery runs at once once loaded."""
        from ambac_hubspot_plugin.contrib.django.events import drain_trigger, set_drain_trigger

        kept = drain_trigger()
        set_drain_trigger(None)
        yield
        set_drain_trigger(kept)


    @pytest.fixture
    def managers() -> Iterator[list[pluggy.PluginManager]]:
        """Plugin managers built as the app builds them (one per simulated process), closed after."""
        from ambac_hubspot_plugin import plugin as plugin_module

        built: list[pluggy.PluginManager] = []
        yield built
        for pm in built:
            runtime = pm.get_plugin(plugin_module.RUNTIME_NAME)
            if runtime is not None and runtime._runtime is not None:
                runtime._runtime.close()
