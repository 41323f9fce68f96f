"""``manage_integrations`` and ``view_integrations`` as Django permissions, granted to every
tenant's admin group: existing ones by the app's migration, new ones when they are saved."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management import call_command
from Tracker.models import Tenant, TenantGroup, User, UserRole

from ambac_hubspot_plugin.contrib.django.permissions import grant_integration_permissions
from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices, user_record
from ambac_hubspot_plugin.host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS

BOTH = (MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS)


class _Permissions:
    alias = "default"

    def tenant(self) -> Tenant:
        return Tenant.objects.using(self.alias).create(name="Acme", slug=f"t-{uuid.uuid4().hex}")

    def member(self, tenant: Tenant, group: TenantGroup | None) -> User:
        user = User.objects.db_manager(self.alias).create_user(
            username=f"u-{uuid.uuid4().hex}", email="someone@acme.example", tenant_id=tenant.pk)
        if group is not None:
            UserRole.objects.using(self.alias).create(user=user, group=group)
        return user

    def allowed(self, tenant: Tenant, user: User, tmp_path: Path) -> dict[str, bool]:
        services = DjangoHostServices(tenant.pk, using=self.alias, data_dir=tmp_path)
        return {perm: services.has_permission(user_record(user), perm) for perm in BOTH}

    def test_the_permissions_exist_on_the_apps_content_type(self) -> None:
        rows = Permission.objects.using(self.alias).filter(codename__in=BOTH, content_type__app_label="ambac_hubspot")
        assert sorted(rows.values_list("codename", flat=True)) == sorted(BOTH)

    def test_a_new_tenants_admin_group_is_granted_both(self, tmp_path: Path) -> None:
        tenant = self.tenant()
        admins = TenantGroup.objects.using(self.alias).create(tenant=tenant, name="Tenant Admin")
        staff = TenantGroup.objects.using(self.alias).create(tenant=tenant, name="Operators")

        assert self.allowed(tenant, self.member(tenant, admins), tmp_path) == dict.fromkeys(BOTH, True)
        assert self.allowed(tenant, self.member(tenant, staff), tmp_path) == dict.fromkeys(BOTH, False)
        assert self.allowed(tenant, self.member(tenant, None), tmp_path) == dict.fromkeys(BOTH, False)

    def test_an_admin_of_another_tenant_is_refused(self, tmp_path: Path) -> None:
        tenant, other = self.tenant(), self.tenant()
        admins = TenantGroup.objects.using(self.alias).create(tenant=other, name="Tenant Admin")
        outsider = self.member(other, admins)

        assert self.allowed(tenant, outsider, tmp_path) == dict.fromkeys(BOTH, False)

    def test_grant_integration_permissions_restores_grants_the_hosts_sync_revoked(self, tmp_path: Path) -> None:
        tenant = self.tenant()
        admins = TenantGroup.objects.using(self.alias).create(tenant=tenant, name="Tenant Admin")
        admin = self.member(tenant, admins)
        admins.permissions.clear()  # what the host's sync_tenant_permissions does to the grant
        assert self.allowed(tenant, admin, tmp_path) == dict.fromkeys(BOTH, False)

        assert grant_integration_permissions(self.alias) >= 1

        assert self.allowed(tenant, admin, tmp_path) == dict.fromkeys(BOTH, True)

    def test_the_migration_grants_both_to_admin_groups_that_existed_before_it(self, tmp_path: Path) -> None:
        call_command("migrate", "ambac_hubspot", "0001", database=self.alias, verbosity=0)
        tenant = self.tenant()
        # Saved without signals: an admin group from before the app was installed.
        (admins,) = TenantGroup.objects.using(self.alias).bulk_create(
            [TenantGroup(tenant=tenant, name="Tenant Admin")])
        admin = self.member(tenant, admins)
        assert self.allowed(tenant, admin, tmp_path) == dict.fromkeys(BOTH, False)

        call_command("migrate", "ambac_hubspot", database=self.alias, verbosity=0)

        assert self.allowed(tenant, admin, tmp_path) == dict.fromkeys(BOTH, True)


@pytest.mark.django_db(transaction=True, databases=["default"])
class TestPermissionsOnSQLite(_Permissions):
    alias = "default"


@pytest.mark.postgres
@pytest.mark.skipif("postgres" not in settings.DATABASES, reason="PostgreSQL does not answer at 127.0.0.1:5432")
@pytest.mark.django_db(transaction=True, databases=["postgres"])
class TestPermissionsOnPostgreSQL(_Permissions):
    alias = "postgres"
