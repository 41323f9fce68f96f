"""``manage_integrations`` and ``view_integrations`` as Django permissions, granted to every
tenant's admin group: existing ones by the app's migration, new ones when they are saved."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management import call_command
from Tracker.groups import seed_tenant_groups
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

    def test_grant_integration_permissions_restores_grants_removed_behind_the_receivers(
            self, tmp_path: Path) -> None:
        tenant = self.tenant()
        admins = TenantGroup.objects.using(self.alias).create(tenant=tenant, name="Tenant Admin")
        admin = self.member(tenant, admins)
        # Deleted in bulk through the relation's table: no signal tells the receivers.
        admins.permissions.through.objects.using(self.alias).filter(tenantgroup=admins).delete()
        assert self.allowed(tenant, admin, tmp_path) == dict.fromkeys(BOTH, False)

        assert grant_integration_permissions(self.alias) >= 1

        assert self.allowed(tenant, admin, tmp_path) == dict.fromkeys(BOTH, True)

    def test_a_tenant_seeded_as_the_host_seeds_keeps_both_on_its_admin_group(self, tmp_path: Path) -> None:
        """The host creates the group, then sets its permissions to the preset (dropping ours):
        they are added back; the customer group gets none."""
        tenant = self.tenant()
        groups = seed_tenant_groups(tenant, self.alias)

        assert self.allowed(tenant, self.member(tenant, groups["Tenant Admin"]), tmp_path) == dict.fromkeys(BOTH, True)
        assert self.allowed(tenant, self.member(tenant, groups["Customer"]), tmp_path) == dict.fromkeys(BOTH, False)
        host_preset = set(groups["Tenant Admin"].permissions.exclude(codename__in=BOTH)
                          .values_list("codename", flat=True))
        assert host_preset == {"add_tenantgroup", "change_tenantgroup"}, "the host's own preset is untouched"

    @pytest.mark.parametrize("reset", ["migrate", "sync_tenant_permissions", "remove", "clear"])
    def test_the_hosts_preset_resets_do_not_take_them_away(self, tmp_path: Path, reset: str) -> None:
        """After every way the host resets a preset group (the end of each migrate, its
        sync command, a remove or clear of the group's permissions) its admins still hold both;
        a custom group's removal is left alone."""
        tenant = self.tenant()
        admins = seed_tenant_groups(tenant, self.alias)["Tenant Admin"]
        custom = TenantGroup.objects.using(self.alias).create(tenant=tenant, name="Integrators", is_custom=True)
        custom.permissions.add(*Permission.objects.using(self.alias).filter(codename__in=BOTH))
        admin, integrator = self.member(tenant, admins), self.member(tenant, custom)

        if reset == "migrate":
            call_command("migrate", database=self.alias, verbosity=0)
        elif reset == "sync_tenant_permissions":
            call_command("sync_tenant_permissions", database=self.alias, stdout=io.StringIO())
        elif reset == "remove":
            admins.permissions.remove(*Permission.objects.using(self.alias).filter(codename__in=BOTH))
            custom.permissions.remove(*Permission.objects.using(self.alias).filter(codename__in=BOTH))
        else:
            admins.permissions.clear()
            custom.permissions.clear()

        assert self.allowed(tenant, admin, tmp_path) == dict.fromkeys(BOTH, True)
        expected = reset not in ("remove", "clear")
        assert self.allowed(tenant, integrator, tmp_path) == dict.fromkeys(BOTH, expected)

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
