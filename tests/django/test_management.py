"""``manage.py hubspot ...``: the ``ambac-hubspot`` commands on the host's ORM, same output and exit codes."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from click.testing import CliRunner
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError
from integrations.models import IntegrationConfig
from Tracker.models import Tenant, User

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.contrib.django.apps import build_plugin_manager
from ambac_hubspot_plugin.contrib.django.cli import FACTORY, OPERATOR_EMAIL, DjangoHostContext, operator_username
from ambac_hubspot_plugin.contrib.django.management.commands.hubspot import Command
from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices, user_record
from ambac_hubspot_plugin.contrib.django.startup import ensure_started
from ambac_hubspot_plugin.contrib.django.tenant_settings import row_fields, settings_for
from ambac_hubspot_plugin.host import ContactDraft
from ambac_hubspot_plugin.sandbox import Sandbox

from .._world import plugin_settings

DB = pytest.mark.django_db(databases="__all__")


@pytest.fixture
def data_dir(tmp_path: Path, settings: Any) -> Path:
    """The plugin's files in a fresh directory, as the host's ``AMBAC_PLUGIN_DATA_DIR``."""
    settings.AMBAC_PLUGIN_DATA_DIR = str(tmp_path)
    return tmp_path


def _tenant(hs: Sandbox | None = None, *, enabled: bool = True) -> str:
    tenant = Tenant.objects.create(name="Acme", slug=f"t-{uuid.uuid4().hex}")
    if hs is not None:
        IntegrationConfig.objects.create(tenant=tenant, provider="hubspot", is_enabled=enabled,
                                         **row_fields(plugin_settings(hs)))
    return str(tenant.pk)


def _manage(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("hubspot", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@DB
def test_status_prints_what_the_cli_prints(hs: Sandbox, data_dir: Path) -> None:
    """``call_command("hubspot", "status", ...)`` prints exactly what ``ambac-hubspot status``
    with the Django host factory prints, the tenant's status as JSON, and returns normally."""
    tenant = _tenant(hs)

    printed, errors = _manage("status", "--tenant", tenant, "--json")
    cli = CliRunner().invoke(main, ["status", "--host-factory", FACTORY, "--tenant", tenant, "--json"])

    assert cli.exit_code == 0, cli.output
    assert (printed, errors) == (cli.stdout, "")
    status = json.loads(printed)
    assert (status["tenant_id"], status["enabled"]) == (tenant, True)
    assert hs.requests == [], "a status needs no HubSpot call"
    # The commands act as the host's operator user, who holds both integration permissions.
    operator = User.objects.get(username=operator_username(tenant))
    tenant_row = Tenant.objects.get(pk=tenant)  # the host's check takes the Tenant row
    assert operator.has_tenant_perm("manage_integrations", tenant_row)
    assert operator.has_tenant_perm("view_integrations", tenant_row)


@DB
def test_an_unknown_tenant_exits_2(data_dir: Path) -> None:
    """A tenant id naming no tenant is a usage error: exit code 2 from manage.py, and a
    ``CommandError`` with return code 2 from ``call_command``, the CLI's message on stderr."""
    unknown = str(uuid.uuid4())
    err = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("hubspot", "status", "--tenant", unknown, "--json", stderr=err)
    assert refused.value.returncode == 2
    assert unknown in err.getvalue()

    with pytest.raises(SystemExit) as exited:
        Command().run_from_argv(["manage.py", "hubspot", "status", "--tenant", unknown])
    assert exited.value.code == 2


@DB
def test_a_tenant_without_the_plugin_enabled_exits_2_saying_to_set_it_up(hs: Sandbox, data_dir: Path) -> None:
    """A tenant whose HubSpot configuration is switched off is not operated on: exit 2."""
    tenant = _tenant(hs, enabled=False)
    err = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("hubspot", "log", "--tenant", tenant, stderr=err)
    assert refused.value.returncode == 2
    assert "setup" in err.getvalue()


@DB
def test_setup_enables_the_plugin_in_the_tenants_integration_config(hs: Sandbox, data_dir: Path) -> None:
    """``manage.py hubspot setup`` checks the connection, saves the settings in the tenant's
    ``IntegrationConfig`` and switches it on; ``status`` then reads the enabled tenant."""
    tenant = _tenant()
    settings_file = data_dir / "settings.json"
    settings_file.write_text(json.dumps(plugin_settings(hs)))

    printed, _ = _manage("setup", "--tenant", tenant, "--settings", str(settings_file), "--json")

    assert json.loads(printed)["ok"] is True
    config = IntegrationConfig.objects.get(tenant_id=tenant, provider="hubspot")
    assert config.is_enabled and config.config["portal_id"] == str(hs.portal_id)
    assert json.loads(_manage("status", "--tenant", tenant, "--json")[0])["enabled"] is True


@DB
def test_setup_through_manage_py_reads_its_settings_file_from_settings_file(
    hs: Sandbox, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through ``manage.py`` itself (``ManagementUtility``, which takes every ``--settings`` as
    Django's settings module, as the real host's smoke run showed), ``hubspot setup
    --settings-file FILE`` reads the plugin's settings from FILE and enables the tenant."""
    tenant = _tenant()
    settings_file = data_dir / "settings.json"
    settings_file.write_text(json.dumps(plugin_settings(hs)))

    ManagementUtility(["manage.py", "hubspot", "setup", "--tenant", tenant,
                       "--settings-file", str(settings_file), "--json"]).execute()

    # (run_from_argv closed the test's database connection: the JSON is the evidence)
    enabled = json.loads(capsys.readouterr().out)
    assert (enabled["tenant_id"], enabled["ok"]) == (tenant, True)


@DB
def test_setup_saves_secrets_encrypted_and_the_web_processes_start_the_tenant(
    hs: Sandbox, data_dir: Path, settings: Any
) -> None:
    """``setup`` keeps the access token and the webhook secret in the row's encrypted fields
    and only plain settings in ``config``; ``settings_for(row)`` (what web and worker processes
    read) gives back the settings the tenant was enabled with, and ``ensure_started`` starts it."""
    tenant = _tenant()
    given = {**plugin_settings(hs), "webhook_client_secret": "whsec-" + "w" * 30}
    settings_file = data_dir / "settings.json"
    settings_file.write_text(json.dumps(given))

    printed, _ = _manage("setup", "--tenant", tenant, "--settings", str(settings_file), "--json")

    assert json.loads(printed)["ok"] is True
    row = IntegrationConfig.objects.get(tenant_id=tenant, provider="hubspot")
    assert (row.api_key, row.webhook_secret) == (hs.access_token, given["webhook_client_secret"])
    assert hs.access_token not in json.dumps(row.config)
    assert given["webhook_client_secret"] not in json.dumps(row.config)
    built = settings_for(row)
    assert built["credentials"]["access_token"] == hs.access_token
    assert {k: built[k] for k in given} == given
    pm = build_plugin_manager()
    try:
        assert ensure_started(pm) == [tenant]
    finally:
        pm.get_plugin(plugin_module.RUNTIME_NAME).runtime.close()


@DB
def test_worker_reports_a_tenant_with_invalid_saved_settings_by_name(hs: Sandbox, data_dir: Path) -> None:
    """``manage.py hubspot worker --once`` with one tenant whose saved settings cannot be built
    (an API key and an OAuth refresh token) lists the tenants without building their settings,
    so the command's own per-tenant check names that tenant (exit 2), without its secrets."""
    _tenant(hs)
    bad = Tenant.objects.create(name="Broken", slug=f"t-{uuid.uuid4().hex}")
    IntegrationConfig.objects.create(tenant=bad, provider="hubspot", is_enabled=True,
                                     api_key="pat-na1-secret-key", oauth_refresh_token="rt-secret-token",
                                     config={"portal_id": "1"})
    err = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("hubspot", "worker", "--once", stderr=err)
    assert refused.value.returncode == 2
    assert f"tenant {bad.pk}: the saved settings are not usable" in err.getvalue()
    assert "pat-na1-secret-key" not in err.getvalue() and "rt-secret-token" not in err.getvalue()


def _integration_permissions_of(tenant: str, row: Any) -> set[str]:
    services = DjangoHostServices(tenant)
    return {p for p in ("manage_integrations", "view_integrations") if services.has_permission(user_record(row), p)}


@DB
def test_a_portal_user_with_the_operators_email_is_not_made_the_operator(data_dir: Path) -> None:
    """A HubSpot contact the plugin made into a portal user, whose email is the operator's (in
    any case), is not the user the commands act as, and gets no integration permission."""
    tenant = _tenant()
    contact = DjangoHostServices(tenant).create_contact(ContactDraft(email=OPERATOR_EMAIL.upper(), first_name="Eve"))
    context = DjangoHostContext(data_dir=data_dir)
    try:
        operator = context.operator(tenant)
    finally:
        context.close()
    assert operator.id != contact.id
    assert _integration_permissions_of(tenant, User.objects.get(pk=int(contact.id))) == set()
    assert User.objects.get(pk=int(operator.id)).username == operator_username(tenant)


@DB
def test_an_employee_who_takes_the_operators_email_gains_no_integration_permission(data_dir: Path) -> None:
    """An internal user who sets their email to the operator's, after the operator was made, is
    not adopted by the next command: the operator is found by its reserved username alone."""
    tenant = _tenant()
    employee = User.objects.create_user(username=f"emp-{uuid.uuid4().hex}", email="emp@acme.example",
                                        tenant_id=tenant, user_type=User.UserType.INTERNAL, password="pw")
    context = DjangoHostContext(data_dir=data_dir)
    try:
        first = context.operator(tenant)
        employee.email = OPERATOR_EMAIL
        employee.save()
        assert context.operator(tenant) == first
    finally:
        context.close()
    assert _integration_permissions_of(tenant, employee) == set()


@DB
def test_a_user_holding_the_reserved_username_who_is_not_the_operator_is_refused(data_dir: Path) -> None:
    """A user with the operator's username that can sign in (or is a portal user) is not given
    the integration permissions: the command exits 2 saying why, and grants nothing."""
    tenant = _tenant()
    squatter = User.objects.create_user(username=operator_username(tenant), email="eve@acme.example",
                                        tenant_id=tenant, user_type=User.UserType.INTERNAL, password="pw")
    err = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("hubspot", "status", "--tenant", tenant, "--json", stderr=err)
    assert refused.value.returncode == 2
    assert "is not the HubSpot CLI's operator" in err.getvalue()
    assert _integration_permissions_of(tenant, squatter) == set()
