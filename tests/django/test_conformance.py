"""The HostServices conformance suite on the Django bridge's services over the host double,
on SQLite and on PostgreSQL (skipped with a reason when the server does not answer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from django.conf import settings

from ambac_hubspot_plugin.contrib.django import plugin_manager

from ..hostservices_conformance import EventRecorder, HostServicesConformance, HostUnderTest
from ._double import DjangoHostUnderTest


class _OnAlias(HostServicesConformance):
    alias = "default"

    @pytest.fixture
    def host_under_test(self, tmp_path: Path) -> Iterator[HostUnderTest]:
        """The double on this class's database, with an event recorder in the app's plugin manager."""
        recorder = EventRecorder()
        pm = plugin_manager()
        pm.register(recorder)
        try:
            yield DjangoHostUnderTest(self.alias, tmp_path / "plugin-data", recorder)
        finally:
            pm.unregister(recorder)


@pytest.mark.django_db(transaction=True, databases=["default"])
class TestDjangoBridgeOnSQLite(_OnAlias):
    """The whole suite on the double's SQLite database."""

    alias = "default"


@pytest.mark.postgres
@pytest.mark.skipif("postgres" not in settings.DATABASES, reason="PostgreSQL does not answer at 127.0.0.1:5432")
@pytest.mark.django_db(transaction=True, databases=["postgres"])
class TestDjangoBridgeOnPostgreSQL(_OnAlias):
    """The whole suite on PostgreSQL, where concurrent creates really run in parallel."""

    alias = "postgres"
