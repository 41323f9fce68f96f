"""The ``ambac-hubspot`` commands' host context on Ambac Tracker (``manage.py hubspot ...``).

:class:`DjangoHostContext` is the CLI's ``HostContext`` (``_cli._admin``) on the host's ORM:
tenants are ``Tenant`` rows, the saved settings and the enabled flag the tenant's
``IntegrationConfig`` of provider ``hubspot``, users the host's users. ``manage.py hubspot``
(:mod:`.management.commands.hubspot`) runs the CLI with it; the plain CLI reaches it with
``ambac-hubspot <command> --host-factory ambac_hubspot_plugin.contrib.django.cli:host_context``
once ``DJANGO_SETTINGS_MODULE`` names the host's settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import django
from django.apps import apps

if not apps.ready:  # the plain CLI loaded this factory outside manage.py: start Django first
    django.setup()

# The host's models need Django set up, hence after the guard above.
from django.contrib.auth.models import Permission
from django.db import transaction
from integrations.models import IntegrationConfig
from Tracker.models import Tenant, TenantGroup, User, UserRole

from ... import plugin as plugin_module
from ...host import PERMISSIONS, HostServices
from ...host import User as UserRecord
from ._records import uuid_pk
from .apps import build_plugin_manager
from .permissions import integration_permissions
from .services import DjangoHostServices, user_record
from .startup import PROVIDER, enabled_tenant_ids
from .tenant_settings import row_fields, saved_settings, settings_for

__all__ = ["FACTORY", "OPERATOR_EMAIL", "OPERATOR_GROUP", "OPERATOR_USERNAME_PREFIX", "DjangoHostContext",
           "host_context", "operator_username"]

FACTORY = f"{__name__}:host_context"
"""The ``--host-factory`` value naming :func:`host_context`."""
OPERATOR_EMAIL = "ambac-hubspot-cli@localhost"
"""The email the operator user (the user the commands act as when ``--as-user`` is not given)
is made with. Only shown: the operator is found by its username (:func:`operator_username`)."""
OPERATOR_USERNAME_PREFIX = "ambac-hubspot-cli-"
"""The start of the operator user's reserved username; the tenant id follows."""
OPERATOR_GROUP = "HubSpot CLI"
"""The tenant group that gives the operator both integration permissions."""


class DjangoHostContext:
    """The CLI's host: Ambac Tracker's ORM and a plugin manager of its own.

    The commands get a plugin manager built as the app builds its own, not the app's: a
    command closes its runtime when it ends, and may run in-process (``call_command``) beside a
    runtime that serves requests.

    :param data_dir: the root of the plugin's files; default ``settings.AMBAC_PLUGIN_DATA_DIR``.
    """

    def __init__(self, data_dir: Path | str | None = None) -> None:
        self._data_dir = data_dir
        self.plugin_manager = build_plugin_manager()

    @property
    def runtime(self) -> Any:
        """The plugin's runtime in this plugin manager."""
        return self.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime

    def services(self, tenant_id: str) -> HostServices:
        pk = uuid_pk(tenant_id)
        if pk is None or not Tenant.objects.filter(pk=pk).exists():
            raise LookupError(f"no tenant with id {tenant_id}")
        return DjangoHostServices(tenant_id, data_dir=self._data_dir)

    def find_user(self, tenant_id: str, email: str) -> UserRecord | None:
        row = User.objects.filter(tenant_id=uuid_pk(tenant_id), email__iexact=email).order_by("pk").first()
        return None if row is None else user_record(row)

    def operator(self, tenant_id: str) -> UserRecord:
        """The tenant's operator user, made on first use; it gets both integration permissions.

        Whoever runs manage.py on the host's machine administers it; the operator is a real
        user holding both permissions, so every command still goes through the checks. It is
        found by its reserved username alone (:func:`operator_username`), never by email:
        anyone can give a user an email, the plugin itself makes HubSpot contacts into users.

        :raises click.ClickException: (exit 2) a user with the reserved username exists but is
            not the operator (another tenant's, a portal user, or one that can sign in).
        """
        tenant = uuid_pk(tenant_id)
        if tenant is None:
            raise LookupError(f"no tenant with id {tenant_id}")
        username = operator_username(tenant_id)
        with transaction.atomic():
            row = User.objects.select_for_update().filter(username=username).first()
            if row is None:
                row = User.objects.create_user(
                    username=username, email=OPERATOR_EMAIL, tenant_id=tenant,
                    first_name="HubSpot CLI", user_type=User.UserType.INTERNAL)
                row.set_unusable_password()
                row.save(update_fields=["password"])
            elif (row.tenant_id != tenant or row.user_type != User.UserType.INTERNAL
                  or row.has_usable_password()):
                refused = click.ClickException(
                    f"user {username!r} is not the HubSpot CLI's operator of tenant {tenant_id} "
                    f"(that must be an INTERNAL user of the tenant without a usable password), "
                    f"so it gets no integration permissions: rename or remove that user, or "
                    f"pass --as-user EMAIL")
                refused.exit_code = 2  # like a refused permission: retrying does not help
                raise refused
            group, _ = TenantGroup.objects.get_or_create(tenant_id=tenant, name=OPERATOR_GROUP)
            group.permissions.add(*_integration_permissions())
            UserRole.objects.get_or_create(user=row, group=group)
        return user_record(row)

    def saved_settings(self, tenant_id: str) -> dict[str, Any] | None:
        config = self._config(tenant_id)
        return None if config is None else saved_settings(config)

    def load_tenant(self, tenant_id: str) -> bool:
        config = self._config(tenant_id)
        if config is None or not config.is_enabled:
            return False
        # Attach, not enable: enabling checks HubSpot and logs plugin.enabled, which no command
        # but setup may do; the host's own web and worker processes run the background work.
        self.runtime.attach(self.services(tenant_id), tenant_id,
                            {**settings_for(config), "run_background_worker": False})
        return True

    def enable(self, tenant_id: str, settings: Mapping[str, Any]) -> list[object]:
        """Enable the plugin as the host's Integrations page does: the plugin accepts the
        settings, then they are saved in the tenant's ``IntegrationConfig`` and switched on.

        The secrets go into the row's encrypted fields, the rest into its ``config``; the
        plugin gets the settings the row gives back (``settings_for``: the store the host's
        web and worker processes open too)."""
        services = self.services(tenant_id)
        row = self._config(tenant_id) or IntegrationConfig(tenant_id=uuid_pk(tenant_id), provider=PROVIDER)
        for field, value in row_fields(settings).items():
            setattr(row, field, value)
        effective = settings_for(row)
        hook = self.plugin_manager.hook
        hook.ambac_settings_changed(host=services, tenant_id=tenant_id, plugin_id=plugin_module.PLUGIN_ID,
                                    settings=dict(effective))
        reports: list[object] = hook.ambac_plugin_enabled(
            host=services, tenant_id=tenant_id, plugin_id=plugin_module.PLUGIN_ID, settings=dict(effective))
        row.is_enabled = True
        row.save()
        return reports

    def enabled_tenants(self) -> list[str]:
        """The tenants whose HubSpot integration is enabled (``worker``): ids only, so a tenant
        with invalid saved settings fails alone, in its own ``load_tenant``."""
        return enabled_tenant_ids()

    def close(self) -> None:
        self.runtime.close()

    def _config(self, tenant_id: str) -> Any:
        return IntegrationConfig.objects.filter(tenant_id=uuid_pk(tenant_id), provider=PROVIDER).first()


def operator_username(tenant_id: str) -> str:
    """The reserved username of ``tenant_id``'s operator user (the id's canonical spelling)."""
    return f"{OPERATOR_USERNAME_PREFIX}{uuid_pk(tenant_id) or tenant_id}"


def _integration_permissions() -> list[Permission]:
    """The app's ``manage_integrations`` and ``view_integrations`` (its migration 0002 makes them)."""
    found = integration_permissions(Permission, "default")
    if len(found) != len(PERMISSIONS):
        raise click.ClickException("the integration permissions are missing: run `manage.py migrate` first")
    return found


def host_context(host_dir: Path | None = None) -> DjangoHostContext:
    """The CLI's host factory (``--host-factory``); ``host_dir`` is a reference host's option and
    is ignored: the plugin's files are in ``AMBAC_PLUGIN_DATA_DIR``."""
    return DjangoHostContext()

