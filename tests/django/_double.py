"""The host double as the conformance suite's ``HostUnderTest``, on one database alias."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from Tracker.models import (
    Milestone,
    MilestoneTemplate,
    NotificationOutbox,
    Orders,
    Tenant,
    TenantGroup,
    User,
    UserRole,
)
from Tracker.utils.tenant_context import tenant_context

from ambac_hubspot_plugin.contrib.django import plugin_manager
from ambac_hubspot_plugin.contrib.django.outbox import drain_outbox
from ambac_hubspot_plugin.contrib.django.services import (
    ALERT_EVENT_CODE,
    DjangoHostServices,
    acting_as,
    user_record,
)
from ambac_hubspot_plugin.host import HostServices
from ambac_hubspot_plugin.host import User as UserRecord

from ..hostservices_conformance import EventRecorder


class DjangoHostUnderTest:
    """Tenants, staff users, notes and notifications of the double, on database ``alias``."""

    def __init__(self, alias: str, data_dir: Path, recorder: EventRecorder) -> None:
        self.alias = alias
        self._data_dir = data_dir
        self._recorder = recorder
        self._serial = itertools.count(1)

    def new_tenant(self) -> HostServices:
        serial = next(self._serial)
        tenant = Tenant.objects.using(self.alias).create(name=f"Tenant {serial}", slug=f"t-{uuid.uuid4().hex}")
        return DjangoHostServices(tenant.pk, using=self.alias, data_dir=self._data_dir)

    def create_user(self, services: HostServices, permissions: Iterable[str] = ()) -> UserRecord:
        serial = next(self._serial)
        user = User.objects.db_manager(self.alias).create_user(
            username=f"staff-{uuid.uuid4().hex}", email=f"staff{serial}@host.example",
            tenant_id=services.tenant_id, user_type=User.UserType.INTERNAL)
        wanted = list(permissions)
        if wanted:
            ContentType.objects.clear_cache()  # flushed between tests
            kind = ContentType.objects.db_manager(self.alias).get_for_model(Tenant)
            rows = [Permission.objects.using(self.alias).get_or_create(
                codename=codename, content_type=kind, defaults={"name": codename})[0] for codename in wanted]
            group = TenantGroup.objects.using(self.alias).create(
                tenant_id=services.tenant_id, name=f"Integrations {serial}")
            group.permissions.set(rows)
            UserRole.objects.using(self.alias).create(user=user, group=group)
        return user_record(user)

    def acting_as(self, user: UserRecord) -> AbstractContextManager[object]:
        return acting_as(user)

    def order_notes(self, services: HostServices, order_id: str) -> Sequence[str]:
        with tenant_context(services.tenant_id):
            row = Orders.objects.using(self.alias).get(pk=order_id)
            return [note["message"] for note in reversed(row.get_notes()) if note["visibility"] == "INTERNAL"]

    def notifications(self, services: HostServices) -> Sequence[tuple[str, str, str]]:
        with tenant_context(services.tenant_id):
            payloads = NotificationOutbox.objects.using(self.alias).filter(
                event_code=ALERT_EVENT_CODE).order_by("pk").values_list("payload", flat=True)
            return [(p["subject"], p["message"], p["level"]) for p in payloads]

    def fired_events(self) -> Sequence[str]:
        # Host events reach hooks through the outbox: drain it, so a write of the services that
        # left a row would show here as a fired event.
        drain_outbox(plugin_manager(), using=self.alias, data_dir=self._data_dir)
        return list(self._recorder.fired)

    def user_groups(self, services: HostServices, user_id: str) -> Collection[str]:
        return set(TenantGroup.objects.using(self.alias).filter(
            tenant_id=services.tenant_id, roles__user_id=int(user_id)).values_list("name", flat=True))

    def milestone_template(self, services: HostServices, steps: Sequence[str]) -> Sequence[str]:
        with tenant_context(services.tenant_id):
            template = MilestoneTemplate.objects.using(self.alias).create(
                tenant_id=services.tenant_id, name=f"Steps {next(self._serial)}")
            return [str(Milestone.objects.using(self.alias).create(
                tenant_id=services.tenant_id, template=template, name=name, position=10 * (i + 1)).pk)
                for i, name in enumerate(steps)]

    def set_order_milestone(self, services: HostServices, order_id: str, milestone_id: str) -> None:
        # The host's own edit, as its UI makes it (the plugin never sets a milestone).
        with tenant_context(services.tenant_id):
            Orders.objects.using(self.alias).filter(pk=order_id).update(current_milestone_id=milestone_id)
