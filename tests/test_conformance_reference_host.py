"""The HostServices conformance suite (``tests/hostservices_conformance.py``) on the reference host.

A fresh ReferenceHost per test, on a SQLite file in ``tmp_path`` and a manual clock, with only a
plugin registered that records which ``ambac_*`` hooks the host calls.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest

from ambac_hubspot_plugin.host import HostCapabilities, HostServices, User
from ambac_hubspot_plugin.reference_host import ReferenceHost

from ._clock import ManualClock
from ._world import EVERY_FIELD
from .hostservices_conformance import EventRecorder, HostServicesConformance, HostUnderTest


class ReferenceHostUnderTest:
    """The reference host as the suite's :class:`HostUnderTest`."""

    def __init__(self, host: ReferenceHost, recorder: EventRecorder) -> None:
        self._host = host
        self._recorder = recorder
        self._serial = itertools.count(1)

    def new_tenant(self) -> HostServices:
        return self._host.services(self._host.create_tenant(f"Tenant {next(self._serial)}"))

    def create_user(self, services: HostServices, permissions: Iterable[str] = ()) -> User:
        user = self._host.create_user(services.tenant_id, f"staff{next(self._serial)}@host.example")
        for permission in permissions:
            self._host.grant(user, permission)
        return user

    def acting_as(self, user: User) -> AbstractContextManager[object]:
        return self._host.acting_as(user)

    def order_notes(self, services: HostServices, order_id: str) -> Sequence[str]:
        return self._host.order_notes(services.tenant_id, order_id)

    def notifications(self, services: HostServices) -> Sequence[tuple[str, str, str]]:
        return [(n.subject, n.message, n.level) for n in self._host.notifications(services.tenant_id)]

    def fired_events(self) -> Sequence[str]:
        return list(self._recorder.fired)

    def user_groups(self, services: HostServices, user_id: str) -> Collection[str]:
        return self._host.user_groups(user_id)

    def milestone_template(self, services: HostServices, steps: Sequence[str]) -> Sequence[str]:
        return [m.id for m in self._host.create_milestone_template(services.tenant_id, "Steps", steps)]

    def set_order_milestone(self, services: HostServices, order_id: str, milestone_id: str) -> None:
        self._host.set_order_milestone(services.tenant_id, order_id, milestone_id)


class TestReferenceHostConformance(HostServicesConformance):
    """The whole suite, each test on a fresh reference host with Ambac Tracker's capabilities."""

    capabilities: HostCapabilities | None = None

    @pytest.fixture
    def host_under_test(self, tmp_path: Path) -> Iterator[HostUnderTest]:
        """A reference host with only the event recorder registered, closed after the test."""
        recorder = EventRecorder()
        clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
        with ReferenceHost(
            tmp_path / "host", load_entrypoints=False, plugins=[recorder], clock=clock,
            capabilities=self.capabilities,
        ) as host:
            yield ReferenceHostUnderTest(host, recorder)


class TestReferenceHostKeepingEveryFieldConformance(TestReferenceHostConformance):
    """The whole suite again on a reference host keeping every order and company field (a host
    unlike Ambac Tracker, whose companies have a website, phone and address), without milestones."""

    capabilities = attrs.evolve(EVERY_FIELD, milestones=False)
