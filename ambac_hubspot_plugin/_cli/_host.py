"""``ambac-hubspot host init|token|serve`` and ``ambac-hubspot worker``: a host without Python.

``host init`` makes a reference host directory with a tenant, ``host token`` issues a bearer
token for its admin routes, ``host serve`` serves that host's HTTP routes (the plugin's
webhook, admin and CRM card routes) with the plugin's background worker, and ``worker`` runs
the plugin's job queue of any host, once or until signalled. Hosts are opened the way every
command opens them (:mod:`._admin`).

These commands do what the host's own processes do (start, serve, run background work);
they are not admin operations, so they take no ``--as-user``. The admin routes ``serve``
exposes check each caller's permission, as the host's routes always do.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import click

from ..errors import ConfigError, HostRecordError, StoreError
from ._admin import (
    EXIT_FAILED,
    EXIT_USAGE,
    ReferenceHostContext,
    _fail,
    _host_context,
)
from ._params import host_id_param

if TYPE_CHECKING:
    from ._admin import HostContext

__all__ = ["host_group", "worker_command"]

_F = TypeVar("_F", bound=Callable[..., Any])
DEFAULT_TENANT_NAME = "My company"
_HOST_FILE = "host.sqlite3"


@runtime_checkable
class ListsTenants(Protocol):
    """A host context that can say which tenants have the plugin on (``worker`` needs it)."""

    def enabled_tenants(self) -> list[str]:
        """The ids of the tenants whose admin switched the HubSpot plugin on."""


@click.group("host")
def host_group() -> None:
    """Create and serve a reference host, to try the plugin without writing Python."""


def _host_dir_option(*, required: bool) -> Callable[[_F], _F]:
    return click.option(
        "--host-dir", type=click.Path(path_type=Path, file_okay=False), required=required,
        envvar="AMBAC_HUBSPOT_HOST_DIR",
        help="The reference host's data directory (env AMBAC_HUBSPOT_HOST_DIR).")


# ---- host init --------------------------------------------------------------------------------


@host_group.command("init")
@_host_dir_option(required=True)
@click.option("--tenant-name", default=DEFAULT_TENANT_NAME, show_default=True,
              help="The tenant to create (an existing tenant of this name is reused).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def init(host_dir: Path, tenant_name: str, as_json: bool) -> None:
    """Create a reference host directory and a tenant in it; print both.

    Safe to run again: an existing host and tenant are reused, never emptied. Refuses (exit 2)
    a directory that holds other files, and a blank tenant name.
    """
    from ..reference_host import ReferenceHost

    host_dir = host_dir.expanduser().resolve()
    database = host_dir / _HOST_FILE
    created_host = not database.exists()
    if created_host and host_dir.is_dir() and any(host_dir.iterdir()):
        _fail(f"--host-dir {host_dir} holds other files and no reference host; "
              "give a new or empty directory", EXIT_USAGE)
    if not tenant_name.strip():
        _fail("--tenant-name is blank; give the tenant a name", EXIT_USAGE)
    try:
        with ReferenceHost(host_dir) as host:
            tenant_id = host.find_tenant(tenant_name)
            created_tenant = tenant_id is None
            if tenant_id is None:
                tenant_id = host.create_tenant(tenant_name)
    except HostRecordError as exc:
        _fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        _fail(f"cannot create a reference host in {host_dir}: {exc.strerror or exc}", EXIT_USAGE)
    data = {"host_dir": str(host_dir), "database": str(database), "created_host": created_host,
            "tenant_id": tenant_id, "tenant_name": tenant_name, "created_tenant": created_tenant}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"Reference host: {host_dir} ({'created' if created_host else 'already there'})")
    click.echo(f"Tenant: {tenant_id} {tenant_name!r} "
               f"({'created' if created_tenant else 'already there'})")
    click.echo("Next, point the plugin at HubSpot:")
    click.echo(f"  ambac-hubspot setup --host-dir {host_dir} --tenant {tenant_id} "
               "--portal-id ID --token TOKEN --webhook-secret SECRET")
    click.echo("(at `ambac-hubspot sandbox` instead: add --api-base-url http://127.0.0.1:8765 "
               "--local-sandbox, with AMBAC_HUBSPOT_ALLOW_LOCAL_SANDBOX=1 in the environment)")


# ---- host token -------------------------------------------------------------------------------


@host_group.command("token")
@_host_dir_option(required=True)
@click.option("--tenant", "tenant_id", callback=host_id_param, required=True,
              help="The tenant id (a UUID or an integer, as the host shows it).")
@click.option("--user", "email", metavar="EMAIL",
              help="The tenant's user the token acts as (its permissions apply); default: the "
                   "operator user, who holds both of the plugin's permissions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def token(host_dir: Path, tenant_id: str, email: str | None, as_json: bool) -> None:
    """Issue a bearer token for calling the served admin routes as a user of the tenant.

    The token is printed once and stored hashed; each call with it has that user's permissions.
    """
    context = ReferenceHostContext(host_dir)
    try:
        try:
            context.services(tenant_id)
        except LookupError as exc:
            _fail(str(exc), EXIT_USAGE)
        user = context.find_user(tenant_id, email) if email else context.operator(tenant_id)
        if user is None:
            _fail(f"tenant {tenant_id} has no user {email!r}", EXIT_USAGE)
        issued = context.host.create_api_token(user)
    finally:
        context.close()
    if as_json:
        click.echo(json.dumps({"tenant_id": tenant_id, "user": user.email, "token": issued},
                              indent=2))
    else:
        click.echo(issued)


# ---- host serve -------------------------------------------------------------------------------


@contextmanager
def _until_signalled() -> Iterator[threading.Event]:
    """An event SIGINT and SIGTERM set, so the command can stop its threads and exit 0."""
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda _sig, _frame: stop.set()) for sig in signals}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait(stop: threading.Event) -> None:
    # Short waits: the main thread must come back to Python for the signal handler to run.
    while not stop.wait(0.5):
        pass


def _start_tenants(context: HostContext, tenant_ids: list[str]) -> list[dict[str, Any]]:
    """Start the plugin for each tenant from its saved settings; one failure stops no other."""
    started: list[dict[str, Any]] = []
    for tenant_id in tenant_ids:
        try:
            context.load_tenant(tenant_id)
            started.append({"tenant_id": tenant_id, "error": None})
        except (ConfigError, StoreError) as exc:
            started.append({"tenant_id": tenant_id, "error": f"the saved settings are not "
                                                             f"usable: {exc}"})
    return started


@host_group.command("serve")
@_host_dir_option(required=True)
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="The address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="The port to listen on (0 picks a free one).")
@click.option("--public-base-url", callback=lambda _ctx, _param, value: _public_base_url(value),
              help="The address clients and HubSpot call this host at, if not http://BIND:PORT "
                   "(behind a proxy or tunnel).")
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Run the plugin's job queue in this process (--no-worker: a separate "
                   "`ambac-hubspot worker` runs it).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON line saying where it serves, once it does.")
def serve(host_dir: Path, bind: str, port: int, public_base_url: str | None, worker: bool,
          as_json: bool) -> None:
    """Serve the reference host's HTTP routes with the plugin until SIGINT or SIGTERM.

    Every tenant with the plugin enabled starts from its saved settings; the plugin's webhook,
    admin and CRM card routes are mounted under /integrations. Restart it after `setup`.
    """
    from .._webhooks import ROUTE_PATH
    from .._wsgi_server import make_wsgi_server

    with _until_signalled() as stop:  # from the start: a SIGTERM while starting stops cleanly
        context = ReferenceHostContext(host_dir)
        try:
            try:
                server = make_wsgi_server(
                    context.host.wsgi_app(public_base_url=public_base_url), bind, port)
            except (OSError, OverflowError) as exc:
                _fail(f"cannot listen on {bind}:{port}: {getattr(exc, 'strerror', None) or exc}",
                      EXIT_USAGE)
            base = (public_base_url or f"http://{bind}:{server.server_address[1]}").rstrip("/")
            tenants = _start_tenants(context, context.enabled_tenants())
            for tenant in tenants:
                path = ROUTE_PATH.format(tenant_id=tenant["tenant_id"])
                tenant["webhook_url"] = f"{base}{context.host.mount_prefix}/{path}"
            if worker:
                context.runtime.start_worker()
            thread = threading.Thread(target=server.serve_forever, name="host-serve",
                                      daemon=True)
            thread.start()
            _announce(host_dir, base, worker, tenants, as_json)
            _wait(stop)
            server.shutdown()
            server.server_close()
            thread.join(10)
        finally:
            context.close()
    if not as_json:
        click.echo("Stopped.")


def _announce(host_dir: Path, base: str, worker: bool, tenants: list[dict[str, Any]],
              as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"host_dir": str(host_dir.resolve()), "url": base, "worker": worker,
                               "tenants": tenants}))
        return
    click.echo(f"Reference host {host_dir.resolve()} serving at {base} "
               f"(worker {'on' if worker else 'off'})")
    if not tenants:
        click.echo("No tenant has the HubSpot plugin enabled yet: run `ambac-hubspot setup`, "
                   "then restart this.")
    for tenant in tenants:
        if tenant["error"]:
            click.echo(f"tenant {tenant['tenant_id']}: not started, {tenant['error']}")
        else:
            click.echo(f"tenant {tenant['tenant_id']}: HubSpot webhook URL {tenant['webhook_url']}")
    click.echo("Press Ctrl-C to stop.")


# ---- worker -----------------------------------------------------------------------------------


@click.command("worker")
@_host_dir_option(required=False)
@click.option("--host-factory", metavar="MODULE:FUNCTION", envvar="AMBAC_HUBSPOT_HOST_FACTORY",
              help="A function returning the host context of a real host.")
@click.option("--once", is_flag=True, help="Run the due jobs once, report what became of them, "
                                           "and exit.")
@click.option("--poll", type=click.FloatRange(0.1, 3600), default=5.0, show_default=True,
              help="Without --once: seconds between rounds while the queue is idle.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the counts as JSON.")
def worker_command(host_dir: Path | None, host_factory: str | None, once: bool, poll: float,
                   as_json: bool) -> None:
    """Run the plugin's job queue for every tenant with it enabled: once, or until signalled.

    One round schedules due syncs, then runs every due job (webhook deliveries, pushes to
    HubSpot, syncs, retries), as the host's background worker does. --once exits 1 when a job
    failed for good (a dead letter; see `ambac-hubspot replay --list`).
    """
    with _host_context(host_dir, host_factory) as context:
        if not isinstance(context, ListsTenants):
            _fail("this host context cannot list its tenants; give it an enabled_tenants() "
                  "method", EXIT_USAGE)
        tenants = _start_tenants(context, context.enabled_tenants())
        broken = [t for t in tenants if t["error"]]
        if broken:
            # Their jobs share the store with the others': run without them and they would fail.
            _fail("; ".join(f"tenant {t['tenant_id']}: {t['error']}" for t in broken), EXIT_USAGE)
        if not tenants:
            _fail("no tenant has the HubSpot plugin enabled; run `ambac-hubspot setup` first",
                  EXIT_USAGE)
        runtime = context.runtime
        if once:
            counts = runtime.tick_counts()
        else:
            with _until_signalled() as stop:
                runtime.start_worker(poll_seconds=poll)
                if not as_json:
                    click.echo(f"Worker running for tenant(s) "
                               f"{', '.join(str(t['tenant_id']) for t in tenants)}; "
                               "press Ctrl-C to stop.")
                _wait(stop)
    if not once:
        if not as_json:
            click.echo("Stopped.")
        return
    data = {"tenants": [t["tenant_id"] for t in tenants], "ran": counts.claimed,
            "succeeded": counts.succeeded, "retried": counts.retried, "dead": counts.dead,
            "lost": counts.lost}
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"Ran {data['ran']} job(s): {data['succeeded']} succeeded, {data['retried']} "
                   f"will be retried, {data['dead']} failed for good, {data['lost']} taken over "
                   "by another worker.")
    if counts.dead:
        sys.exit(EXIT_FAILED)


def _public_base_url(value: str | None) -> str | None:
    """An http(s) URL with a host, as HubSpot and browsers are told to call: else a usage error."""
    from urllib.parse import urlsplit

    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise click.BadParameter("must be an http(s) URL such as https://tracker.example.com",
                                 param_hint="--public-base-url")
    return value
