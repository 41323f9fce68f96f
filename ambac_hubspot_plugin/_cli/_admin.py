"""How every ``ambac-hubspot`` command opens a host, plus the admin commands.

The admin commands are ``check``, ``setup``, ``status``, ``log``, ``history`` and ``replay``;
``sync`` (:mod:`._sync`) and ``conflicts`` (:mod:`._conflicts`) use the same plumbing.

They operate on a host. :func:`_host_context` picks it: ``--host-factory module:function``,
else the first entry point of group ``ambac_hubspot.host_factory``, else the reference host in
``--host-dir``. A factory is called as ``factory(host_dir=...)`` and returns a
:class:`HostContext`; that is how a real host (Ambac Tracker) plugs its own services in.
Options come from :func:`_host_options`; their environment variables are ``AMBAC_HUBSPOT_*``.

Every command acts as a host user and goes through :class:`~ambac_hubspot_plugin.admin.Admin`,
so permissions apply: ``--as-user EMAIL`` picks the user, else the host's operator user.
Tables on a terminal, ``--json`` for scripts. Exit codes: 0 success, 1 the operation failed
(a check failed, a deal failed to sync, a job could not be replayed, HubSpot refused a write),
2 bad usage, bad settings, an unknown tenant, user or record, or permission denied (the caller
must change something before trying again, so scripts never retry it blindly).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import click

from ..errors import ConfigError, HubSpotIntegrationError, StoreError
from ..host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS
from ._output import _console, _emit, _log_entries, _styled, _table, _when
from ._params import host_id_param

if TYPE_CHECKING:
    from .._runtime import Runtime
    from ..admin import Admin
    from ..host import HostServices, User

__all__ = ["FACTORY_GROUP", "HostContext", "ReferenceHostContext", "register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FACTORY_GROUP = "ambac_hubspot.host_factory"
PLUGIN_ID = "hubspot"
OPERATOR_EMAIL = "ambac-hubspot-cli@localhost"


class HostContext(Protocol):
    """What the CLI needs from a host: its services, the plugin runtime and an operator."""

    @property
    def runtime(self) -> Runtime:
        """The HubSpot plugin's runtime in this process."""

    def services(self, tenant_id: str) -> HostServices:
        """Host services scoped to a tenant (LookupError: no such tenant)."""

    def find_user(self, tenant_id: str, email: str) -> User | None:
        """The tenant's user with this email, or None."""

    def operator(self, tenant_id: str) -> User:
        """The user CLI commands act as when ``--as-user`` is not given."""

    def load_tenant(self, tenant_id: str) -> bool:
        """Make the runtime know the tenant from its saved settings; False if it is not enabled.

        Use :meth:`Runtime.attach <ambac_hubspot_plugin._runtime.Runtime.attach>`, not the
        enable hook: a command operates on an enabled tenant and must not enable it anew (no
        connection check, no HubSpot call, no log entry, no worker).
        """

    def enable(self, tenant_id: str, settings: Mapping[str, Any]) -> list[object]:
        """Save settings and enable the plugin the host's way; return the enable reports."""

    def saved_settings(self, tenant_id: str) -> dict[str, Any] | None:
        """The tenant's saved plugin settings, or None."""

    def close(self) -> None:
        """Stop the plugin's work and release the host."""


class ReferenceHostContext:
    """:class:`HostContext` over a :class:`~ambac_hubspot_plugin.reference_host.ReferenceHost` dir."""

    def __init__(self, host_dir: Path) -> None:
        import sqlite3

        from ..reference_host import ReferenceHost

        database = host_dir / "host.sqlite3"
        if not database.exists():
            raise click.UsageError(f"--host-dir {host_dir} holds no reference host (host.sqlite3)")
        try:
            self.host = ReferenceHost(host_dir)
        except sqlite3.Error as exc:  # corrupt, not a database, locked past the busy timeout
            raise click.UsageError(f"the reference host's database {database} cannot be opened "
                                   f"({type(exc).__name__}: {str(exc)[:200]}); restore it from a backup, or "
                                   "wait for the process holding it") from None

    @property
    def runtime(self) -> Runtime:
        from ..plugin import RUNTIME_NAME

        plugin = self.host.plugin_manager.get_plugin(RUNTIME_NAME)
        if plugin is None:
            raise click.ClickException("the HubSpot plugin is not installed in this host")
        runtime: Runtime = plugin.runtime
        return runtime

    def services(self, tenant_id: str) -> HostServices:
        return self.host.services(tenant_id)

    def find_user(self, tenant_id: str, email: str) -> User | None:
        row = self.host._db.row("SELECT id FROM users WHERE tenant_id = ? AND lower(email) = lower(?)",
                                (tenant_id, email))
        return None if row is None else self.host.get_user(str(row["id"]))

    def operator(self, tenant_id: str) -> User:
        # Whoever runs the CLI on the host machine administers it; the operator is a real
        # user with both permissions so that every command still goes through the checks.
        from ..host import PERMISSIONS

        user = self.find_user(tenant_id, OPERATOR_EMAIL)
        if user is None:
            user = self.host.create_user(tenant_id, OPERATOR_EMAIL, first_name="HubSpot CLI")
        for permission in PERMISSIONS:
            self.host.grant(user, permission)
        return user

    def saved_settings(self, tenant_id: str) -> dict[str, Any] | None:
        return self.host.plugin_settings(tenant_id, PLUGIN_ID)

    def load_tenant(self, tenant_id: str) -> bool:
        settings = self.saved_settings(tenant_id)
        if settings is None or not self.host.is_plugin_enabled(tenant_id, PLUGIN_ID):
            return False
        # Attach, not enable: enabling checks HubSpot, overwrites the saved connection check
        # and logs plugin.enabled, which no command but setup (and check) may do.
        self.runtime.attach(self.services(tenant_id), tenant_id,
                            {**settings, "run_background_worker": False})
        return True

    def enable(self, tenant_id: str, settings: Mapping[str, Any]) -> list[object]:
        return self.host.enable_plugin(tenant_id, PLUGIN_ID, settings)

    def enabled_tenants(self) -> list[str]:
        """The tenants whose admin has the HubSpot plugin switched on (``worker``, ``host serve``)."""
        return [t for t in self.host.tenant_ids() if self.host.is_plugin_enabled(t, PLUGIN_ID)]

    def close(self) -> None:
        self.runtime.close()
        self.host.close()


def _load_factory(spec: str) -> Callable[..., HostContext]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise click.BadParameter("must be module:function", param_hint="--host-factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {spec!r}: {exc}", param_hint="--host-factory") from exc
    if not callable(factory):
        raise click.BadParameter(f"{spec!r} is a {type(factory).__name__}, not a function making a host context",
                                 param_hint="--host-factory")
    return factory  # type: ignore[no-any-return]  # user code


@contextmanager
def _host_context(host_dir: Path | None, host_factory: str | None) -> Iterator[HostContext]:
    """Open the host the command operates on (see the module docstring for the order)."""
    context: HostContext
    if host_factory:
        context = _load_factory(host_factory)(host_dir=host_dir)
    else:
        found = list(entry_points(group=FACTORY_GROUP))
        if found and host_dir is None:
            context = found[0].load()(host_dir=host_dir)
        elif host_dir is None:
            raise click.UsageError("give --host-dir (a reference host's data dir) or "
                                   "--host-factory module:function")
        else:
            context = ReferenceHostContext(host_dir)
    try:
        yield context
    finally:
        context.close()


# ---- shared plumbing --------------------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


_URL = re.compile(r"https?://\S+")


def _host_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--host-dir", type=click.Path(path_type=Path, file_okay=False),
                     envvar="AMBAC_HUBSPOT_HOST_DIR",
                     help="The reference host's data directory (env AMBAC_HUBSPOT_HOST_DIR)."),
        click.option("--host-factory", metavar="MODULE:FUNCTION", envvar="AMBAC_HUBSPOT_HOST_FACTORY",
                     help="A function returning the host context of a real host."),
        click.option("--tenant", "tenant_id", callback=host_id_param, required=True,
                     help="The tenant id (a UUID or an integer, as the host shows it)."),
        click.option("--as-user", "as_user", metavar="EMAIL",
                     help="Act as this host user (its permissions apply); default: the operator."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _acting_user(context: HostContext, tenant_id: str, as_user: str | None,
                 permission: str) -> User:
    """The tenant's user the command acts as, once it holds ``permission`` (else exit 2).

    Called before the command opens the store, loads the tenant or calls HubSpot, so a
    refused command does nothing at all.
    """
    from ..admin import Admin

    try:
        services = context.services(tenant_id)
    except LookupError as exc:
        _fail(str(exc), EXIT_USAGE)
    if as_user:
        found = context.find_user(tenant_id, as_user)
        if found is None:
            _fail(f"tenant {tenant_id} has no user {as_user!r}", EXIT_USAGE)
        user = found
    else:
        user = context.operator(tenant_id)
    path = click.get_current_context().command_path.split(maxsplit=1)[1:]
    command = " ".join(["ambac-hubspot", *path])
    _guard(lambda: Admin(context.runtime, services).require(user, permission,
                                                            f"The `{command}` command"))
    return user


@contextmanager
def _admin(host_dir: Path | None, host_factory: str | None, tenant_id: str,
           as_user: str | None, *, permission: str) -> Iterator[tuple[Admin, User, HostContext]]:
    """Open the host, check the acting user's ``permission``, then attach the tenant.

    Attaching opens the store and nothing else (see :meth:`HostContext.load_tenant`), so a
    read-only command only reads.
    """
    from ..admin import Admin

    with _host_context(host_dir, host_factory) as context:
        user = _acting_user(context, tenant_id, as_user, permission)
        try:
            loaded = context.load_tenant(tenant_id)
        except (ConfigError, StoreError) as exc:
            _fail(f"the saved settings are not usable: {exc}", EXIT_USAGE)
        if not loaded:
            _fail(f"the HubSpot plugin is not set up for tenant {tenant_id}; run "
                  "`ambac-hubspot setup` first", EXIT_USAGE)
        yield Admin(context.runtime, context.services(tenant_id)), user, context


def _guard(func: Callable[[], Any]) -> Any:
    """Run an admin call; map refusals and failures to messages and exit codes."""
    from ..admin import PermissionDeniedError

    try:
        return func()
    except PermissionDeniedError as exc:
        # Like a usage error: retrying will not help until someone grants the permission.
        _fail(str(exc), EXIT_USAGE)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    except LookupError as exc:
        _fail(str(exc.args[0]) if exc.args else "not found", EXIT_USAGE)
    except StoreError as exc:
        # A store error naming a setting (unreachable database, missing driver) is fixed there.
        _fail(str(exc), EXIT_USAGE if exc.setting else EXIT_FAILED)
    except HubSpotIntegrationError as exc:
        _fail(str(exc), EXIT_FAILED)


# ---- commands ---------------------------------------------------------------------------------

_MARK = {"ok": ("ok", "green"), "warning": ("warning", "yellow"), "failed": ("FAILED", "red"),
         "skipped": ("skipped", "")}


def _render_checks(data: dict[str, Any]) -> None:
    # The webhook URL to paste goes on a line of its own, printed as is: inside a table cell
    # it would be folded at the terminal's width and could not be copied whole.
    url = None
    rows = []
    for c in data["checks"]:
        summary = c["summary"]
        found = _URL.search(summary) if c["name"] == "webhook_url" else None
        if found:
            url = found.group()
            summary = summary.replace(url, "the URL below")
        rows.append([c["name"], _styled(*_MARK[c["status"]]), summary, c["fix"]])
    _table(f"HubSpot connection test, tenant {data['tenant_id']}", ["check", "result", "detail", "what to do"],
           rows, empty="No checks ran.")
    if url:
        click.echo(f"Webhook URL to paste into the HubSpot app's webhook settings:\n{url}")


@click.command()
@_host_options
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too (e.g. no webhook secret).")
def check(host_dir: Path | None, host_factory: str | None, tenant_id: str, as_user: str | None,
          as_json: bool, strict: bool) -> None:
    """Test the tenant's HubSpot connection, one line per check with what to do when it fails.

    Checks the token, the read scopes, the pipelines and trigger stages, the custom
    properties, the webhook secret, and prints the webhook URL to paste into HubSpot.
    """
    with _admin(host_dir, host_factory, tenant_id, as_user,
                permission=MANAGE_INTEGRATIONS) as (admin, user, _ctx):
        report = _guard(lambda: admin.test_connection(user))
    data = report.to_json()
    _emit(data, as_json, _render_checks)
    if not report.ok or (strict and report.warnings):
        sys.exit(EXIT_FAILED)


@click.command()
@_host_options
# ``--settings-file`` too: ``manage.py`` takes every ``--settings`` as its own settings module.
@click.option("--settings", "--settings-file", "settings_file", type=click.File("r"),
              help="A JSON file with the settings (merged over the saved ones); under "
                   "manage.py write --settings-file.")
@click.option("--portal-id", help="The HubSpot account (hub) id.")
@click.option("--token", envvar="AMBAC_HUBSPOT_TOKEN",
              help="Private-app access token or service key (better: env AMBAC_HUBSPOT_TOKEN).")
@click.option("--webhook-secret", envvar="AMBAC_HUBSPOT_WEBHOOK_SECRET",
              help="The app's client secret that signs webhooks (env AMBAC_HUBSPOT_WEBHOOK_SECRET).")
@click.option("--public-base-url", help="The https address HubSpot reaches this host at.")
@click.option("--api-base-url", help="HubSpot's API address (the sandbox's, for tests).")
@click.option("--local-sandbox", is_flag=True,
              help="Allow a loopback --api-base-url: the bundled sandbox (sets local_sandbox).")
def setup(host_dir: Path | None, host_factory: str | None, tenant_id: str, as_user: str | None,
          as_json: bool, settings_file: Any, portal_id: str | None, token: str | None,
          webhook_secret: str | None, public_base_url: str | None, api_base_url: str | None,
          local_sandbox: bool) -> None:
    """Save the tenant's HubSpot settings, enable the plugin and print what enabling did.

    Settings not given keep their saved values. Bad settings exit 2 naming each field; a
    failed connection check exits 1 (the settings are saved and the plugin enabled anyway).
    """
    with _host_context(host_dir, host_factory) as context:
        _acting_user(context, tenant_id, as_user, MANAGE_INTEGRATIONS)
        settings: dict[str, Any] = dict(context.saved_settings(tenant_id) or {})
        if settings_file is not None:
            try:
                loaded = json.load(settings_file)
            except ValueError as exc:
                _fail(f"--settings is not valid JSON: {exc}", EXIT_USAGE)
            if not isinstance(loaded, dict):
                _fail("--settings must hold a JSON object", EXIT_USAGE)
            settings.update(loaded)
        overrides = {"portal_id": portal_id, "webhook_client_secret": webhook_secret,
                     "public_base_url": public_base_url, "api_base_url": api_base_url}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        if local_sandbox:
            settings["local_sandbox"] = True
        if token is not None:
            settings["credentials"] = {"kind": "private_app", "access_token": token}
        # Enabling the host's way also saves the settings.
        reports = _guard(lambda: context.enable(tenant_id, settings))
        report = next((r for r in reports if r is not None), None)
        if report is None:
            _fail("the plugin did not report back; is it installed?", EXIT_FAILED)
        data = {"tenant_id": tenant_id, "ok": report.ok,
                "steps": [{"step": s.name, "ok": s.ok, "detail": s.detail} for s in report.steps],
                "checks": [c.to_json() for c in getattr(report, "checks", ())]}
        from .._views import scrub_secrets, secret_values
        from ..settings import parse_settings

        data = scrub_secrets(data, secret_values(parse_settings(settings)))
    _emit(data, as_json, _render_setup)
    if not data["ok"]:
        sys.exit(EXIT_FAILED)


def _render_setup(data: dict[str, Any]) -> None:
    _table(f"Enabling HubSpot for tenant {data['tenant_id']}", ["step", "ok", "detail"],
           [[s["step"], "yes" if s["ok"] else _styled("no", "red"), s["detail"]] for s in data["steps"]],
           empty="Enabling reported no steps.")
    if data["checks"]:
        _render_checks({"tenant_id": data["tenant_id"], "checks": data["checks"]})


def _render_status(data: dict[str, Any]) -> None:
    console = _console()
    if not data.get("enabled", True):
        console.print(f"HubSpot is not enabled for tenant {data['tenant_id']}.")
        return
    if "connection" not in data:  # store-only status (--store-url)
        console.print_json(json.dumps(data, default=str))
        return
    records = data["records"]
    excluded = records["excluded"].get("count")
    console.print(f"HubSpot portal {data['portal_id']}, tenant {data['tenant_id']}", style="bold")
    console.print(f"Connection: {data['connection']['state']}   "
                  f"In sync: {records['in_sync']}   Excluded: {'?' if excluded is None else excluded}   "
                  f"Failing: {records['failing']}")
    hooks = data["webhooks"]
    console.print(f"Webhooks: {'configured' if hooks['configured'] else 'not configured'}, "
                  f"last event {hooks['last_event_at'] or 'never'}, {hooks['accepted']} accepted")
    console.print(f"Dead letters: {data['dead_letters']['count']}   "
                  f"Open conflicts: {data['conflicts'].get('open', 'n/a')}   "
                  f"Open alerts: {', '.join(a['kind'] for a in data['alerts']) or 'none'}")
    _render_runs(data["recent_runs"])


def _render_runs(runs: list[dict[str, Any]]) -> None:
    # The four counts share one column ("2 created, 1 failed"): ten columns do not fit 80.
    _table("Sync history", ["id", "kind", "status", "started (UTC)", "seconds", "deals", "error"],
           [[r["id"], r["kind"], r["status"], _when(r["started_at"]),
             None if r["duration_seconds"] is None else f"{r['duration_seconds']:.1f}",
             ", ".join(f"{r[k]} {k}" for k in ("created", "updated", "skipped", "failed") if r[k])
             or "none", r["error"]] for r in runs],
           empty="No sync runs yet.")


@click.command()
@_host_options
@click.option("--store-url", envvar="AMBAC_HUBSPOT_STORE_URL",
              help="Read the plugin's store directly instead (no host needed; fewer details).")
def status(host_dir: Path | None, host_factory: str | None, tenant_id: str, as_user: str | None,
           as_json: bool, store_url: str | None) -> None:
    """Show the status view: connection, records in sync / excluded / failing, webhooks, queue."""
    if store_url:
        from .._status import store_status
        from ..store import open_store

        try:
            store = open_store(store_url, auto_migrate=False)  # read-only: create or upgrade nothing
        except StoreError as exc:
            _fail(str(exc), EXIT_USAGE)
        try:
            data = store_status(store, tenant_id)
        finally:
            store.close()
    else:
        with _admin(host_dir, host_factory, tenant_id, as_user,
                    permission=VIEW_INTEGRATIONS) as (admin, user, _ctx):
            data = _guard(lambda: admin.status(user))
    _emit(data, as_json, _render_status)


@click.command("log")
@_host_options
@click.option("--level", type=click.Choice(["debug", "info", "warning", "error"]),
              help="Show this level and more severe ones.")
@click.option("--record", help="Only entries about one record, e.g. deal:123.")
@click.option("--what", help="Only entries of one kind, e.g. inbound.deal.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--before", type=int, help="Entries older than this id (the next_before of a page).")
def log_command(host_dir: Path | None, host_factory: str | None, tenant_id: str,
                as_user: str | None, as_json: bool, level: str | None, record: str | None,
                what: str | None, limit: int, before: int | None) -> None:
    """Show the integration log, newest first, one page at a time."""
    with _admin(host_dir, host_factory, tenant_id, as_user,
                permission=VIEW_INTEGRATIONS) as (admin, user, _ctx):
        page = _guard(lambda: admin.log(user, level=level, record=record, what=what, limit=limit,
                                        before=before))

    def render(data: dict[str, Any]) -> None:
        _log_entries(data["entries"],
                     empty="No log entries" + (" match." if level or record or what or before else "."))
        if data["next_before"]:
            click.echo(f"more: --before {data['next_before']}")

    _emit(page, as_json, render)


@click.command()
@_host_options
@click.option("--kind", type=click.Choice(["incremental", "backfill"]), help="Only runs of one kind.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
def history(host_dir: Path | None, host_factory: str | None, tenant_id: str, as_user: str | None,
            as_json: bool, kind: str | None, limit: int) -> None:
    """Show sync runs, newest first, with counts and duration."""
    with _admin(host_dir, host_factory, tenant_id, as_user,
                permission=VIEW_INTEGRATIONS) as (admin, user, _ctx):
        runs = _guard(lambda: admin.history(user, kind=kind, limit=limit))
    _emit({"runs": runs}, as_json, lambda data: _render_runs(data["runs"]))


@click.command()
@_host_options
@click.argument("job_ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@click.option("--kind", help="With --all: only dead letters of this job kind.")
@click.option("--list", "list_only", is_flag=True, help="Only list the dead letters.")
def replay(host_dir: Path | None, host_factory: str | None, tenant_id: str, as_user: str | None,
           as_json: bool, job_ids: tuple[int, ...], replay_all: bool, kind: str | None,
           list_only: bool) -> None:
    """Put dead letters (jobs that failed every retry) back in the queue.

    Give job ids, or --all (optionally with --kind); --list shows them. Exits 1 when a given
    job could not be replayed (it is not dead, or another live job does its work).
    """
    chosen = sum(bool(x) for x in (job_ids, replay_all, list_only))
    if chosen != 1:
        raise click.UsageError("give job ids, --all or --list (exactly one of them)")
    permission = VIEW_INTEGRATIONS if list_only else MANAGE_INTEGRATIONS
    with _admin(host_dir, host_factory, tenant_id, as_user,
                permission=permission) as (admin, user, _ctx):
        if list_only:
            jobs = _guard(lambda: admin.dead_letters(user, kind=kind))
            _emit({"dead_letters": jobs}, as_json, lambda data: _table(
                "Dead letters", ["id", "kind", "record", "attempts", "last error"],
                [[j["id"], j["kind"], j["record"], j["attempts"], j["last_error"]]
                 for j in data["dead_letters"]], empty="No dead letters."))
            return
        if replay_all:
            result = _guard(lambda: admin.replay_all(user, kind))
            _emit(result, as_json, lambda data: click.echo(
                f"replayed {data['replayed']} job(s)" + (
                    f"; {data['webhook_deliveries']} unreadable webhook deliveries queued to be "
                    "read again" if data["webhook_deliveries"] else "")))
            return
        results: list[dict[str, Any]] = []
        unknown: list[int] = []

        def replay_one(job_id: int) -> dict[str, Any]:
            # An unknown id is a row of the answer (and exit 2), not the end of the command:
            # the ids around it are replayed, and the person must see which were.
            try:
                return admin.replay(user, job_id)
            except LookupError as exc:
                unknown.append(job_id)
                return {"replayed": False, "job_id": None, "reason": str(exc.args[0]) if exc.args else "unknown"}

        for job_id in dict.fromkeys(job_ids):
            results.append({"job": job_id, **_guard(lambda: replay_one(job_id))})  # noqa: B023  # called at once
    _emit({"results": results}, as_json, lambda data: _table(
        "Replay", ["job", "replayed", "now job", "why not"],
        [[r["job"], r["replayed"], r["job_id"], r["reason"]] for r in data["results"]],
        empty="No jobs given."))
    if unknown:
        sys.exit(EXIT_USAGE)
    if not all(r["replayed"] for r in results):
        sys.exit(EXIT_FAILED)


COMMANDS: tuple[click.Command, ...] = (check, setup, status, log_command, history, replay)


def register(group: click.Group) -> None:
    """Add the admin commands to the ``ambac-hubspot`` group (replacing a same-named one)."""
    for command in COMMANDS:
        group.add_command(command, name=command.name)
