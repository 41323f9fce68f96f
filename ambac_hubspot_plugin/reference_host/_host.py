"""The reference host itself: :class:`ReferenceHost`, its plugin manager and its lifecycle.

It owns the plugin manager and the database, keeps tenants, users and permissions, switches
plugins on and off per tenant, and makes the host's own edits that fire the ``ambac_*`` hooks.
What plugins get is :mod:`._services`; HTTP (:mod:`._http`) and periodic tasks
(:mod:`._scheduler`) are the host's methods too, kept in their own modules and delegated to.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pluggy

from .. import host as contract
from .._clock import utc_now
from ..errors import HostRecordError
from ..host import (
    Company,
    CompanyDraft,
    HostCapabilities,
    HttpResponse,
    HttpRoute,
    Milestone,
    Order,
    OrderDraft,
    OrderStatus,
    PeriodicTask,
    PluginManifest,
    Shipment,
    User,
    UserType,
    as_host_id,
)
from ._db import (
    Database,
    notification_from_row,
    order_from_row,
    shipment_from_row,
    user_from_row,
)
from ._http import DEFAULT_MAX_BODY_BYTES, DEFAULT_MOUNT_PREFIX, Router, WsgiApp
from ._milestones import create_template
from ._optional_services import ReferenceServices
from ._records import Notification, PluginStart, TaskRun, new_uuid7
from ._scheduler import Scheduler
from ._services import TenantServices
from ._validate import (
    COMPANY_FIELDS,
    CONTACT_CHECKS,
    check_optional_date,
    check_plugin_id,
    check_text,
    checked,
    to_utc,
)

__all__ = ["ReferenceHost"]

# The package's name, not the module's: records keep the logger name they had when the host
# was one module, so log configuration and filters written for it still apply.
logger = logging.getLogger(__package__)


class ReferenceHost:
    """A multi-tenant host in one SQLite file under ``data_dir``, with its own plugin manager.

    :param data_dir: where the database (``host.sqlite3``) and plugin directories live.
    :param load_entrypoints: discover plugins through the ``ambac_tracker`` entry-point group.
    :param plugins: extra plugin objects to register (tests), after entry points.
    :param clock: returns the current tz-aware time; timestamps and order years use it.
    :param mount_prefix: the URL path plugin routes are mounted under.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        load_entrypoints: bool = True,
        plugins: Iterable[object] = (),
        clock: Callable[[], datetime] = utc_now,
        mount_prefix: str = DEFAULT_MOUNT_PREFIX,
        capabilities: HostCapabilities | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self.mount_prefix = "/" + mount_prefix.strip("/")
        # A ContextVar, not a plain attribute: each thread or task acts as its own user.
        self._acting_user: contextvars.ContextVar[User | None] = contextvars.ContextVar(
            f"reference_host_user_{id(self)}", default=None
        )
        self._router = Router(self)
        self._scheduler = Scheduler(self)
        self.plugin_manager = pluggy.PluginManager(contract.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(contract)
        self.plugin_manager.hook.ambac_add_hookspecs.call_historic(
            kwargs={"plugin_manager": self.plugin_manager}
        )
        if load_entrypoints:
            self.plugin_manager.load_setuptools_entrypoints(contract.PROJECT_NAME)
        for plugin in plugins:
            self.plugin_manager.register(plugin)
        self.plugin_manager.check_pending()
        # (tenant, plugin) pairs enabled or started in this process: the others are started
        # before their tenant's first event here (a second process on the same data dir).
        self._started: set[tuple[str, str]] = set()
        # Opened last: a plugin that fails validation above leaves no connection to close.
        self._db = Database(self.data_dir / "host.sqlite3")
        #: The fields this host keeps (``HostServices.capabilities``): as given, and saved in
        #: the host's file for later opens without them; by default Ambac Tracker's.
        self.capabilities = self._db.capabilities(capabilities)

    def __enter__(self) -> ReferenceHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the scheduler thread, if any, and close every database connection."""
        self.stop_scheduler()
        self._db.close()

    def _now(self) -> datetime:
        return to_utc(self._clock(), "the host clock's time")

    @property
    def database_path(self) -> Path:
        """The SQLite file holding every tenant's rows."""
        return self._db.path

    # Tenants, users, permissions -------------------------------------------------------------

    def create_tenant(self, name: str, *, tenant_id: object = None) -> str:
        """Create a tenant and return its id: a new UUIDv7, as Ambac Tracker makes them, unless
        ``tenant_id`` (any host id: a UUID, an integer, a string) is given."""
        check_text("name", name, required=True)
        new_id = new_uuid7() if tenant_id is None else as_host_id(tenant_id, "tenant_id")
        with self._db.write() as conn:
            if conn.execute("SELECT 1 FROM tenants WHERE id = ?", (new_id,)).fetchone() is not None:
                raise HostRecordError("id", new_id, "is already the id of a tenant")
            conn.execute("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)",
                         (new_id, name, self._now().isoformat()))
        return new_id

    def find_tenant(self, name: str) -> str | None:
        """Return the id of the oldest tenant with exactly this name, or None."""
        row = self._db.row("SELECT id FROM tenants WHERE name = ? ORDER BY created_at, id LIMIT 1", (name,))
        return None if row is None else str(row[0])

    def tenant_ids(self) -> list[str]:
        """Return the ids of all tenants, in creation order."""
        return [str(row[0]) for row in self._db.rows("SELECT id FROM tenants ORDER BY created_at, id")]

    def services(self, tenant_id: str) -> TenantServices:
        """Return the host services scoped to ``tenant_id`` (LookupError if no such tenant)."""
        if self._db.row("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)) is None:
            raise LookupError(f"no tenant with id {tenant_id}")
        return ReferenceServices(self, tenant_id)

    def create_user(
        self, tenant_id: str, email: str, *, first_name: str = "", last_name: str = ""
    ) -> User:
        """Create an ``INTERNAL`` user of the tenant (in no group; emails may repeat)."""
        values = checked(
            CONTACT_CHECKS, {"email": email, "first_name": first_name, "last_name": last_name}
        )
        row = self.services(tenant_id)._insert_user(values, UserType.INTERNAL)
        return user_from_row(row)

    def user_groups(self, user_id: str) -> list[str]:
        """Return the names of the tenant groups a user belongs to (``Customer`` for contacts)."""
        rows = self._db.rows("SELECT name FROM user_groups WHERE user_id = ? ORDER BY name", (user_id,))
        return [str(row[0]) for row in rows]

    def get_user(self, user_id: str) -> User | None:
        """Return the user with this id, of any tenant, or None."""
        row = self._db.row("SELECT * FROM users WHERE id = ?", (user_id,))
        return None if row is None else user_from_row(row)

    def grant(self, user: User, permission: str) -> None:
        """Give ``user`` a permission in its tenant (idempotent)."""
        check_text("permission", permission, required=True)
        with self._db.write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO permissions (user_id, permission) VALUES (?, ?)",
                (user.id, permission),
            )

    def revoke(self, user: User, permission: str) -> None:
        """Take a permission away from ``user`` (idempotent)."""
        with self._db.write() as conn:
            conn.execute(
                "DELETE FROM permissions WHERE user_id = ? AND permission = ?",
                (user.id, permission),
            )

    @contextlib.contextmanager
    def acting_as(self, user: User | None) -> Iterator[User | None]:
        """Make ``user`` the current user (``current_user()``) of this thread inside the block."""
        token = self._acting_user.set(user)
        try:
            yield user
        finally:
            self._acting_user.reset(token)

    def create_api_token(self, user: User) -> str:
        """Issue a bearer token that authenticates ``user`` on :meth:`wsgi_app` (stored hashed)."""
        token = secrets.token_urlsafe(32)
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO api_tokens (token_hash, user_id, created_at) VALUES (?, ?, ?)",
                (hashlib.sha256(token.encode()).hexdigest(), user.id, self._now().isoformat()),
            )
        return token

    def user_for_token(self, token: str) -> User | None:
        """Return the user a bearer token was issued to, or None."""
        row = self._db.row(
            "SELECT users.* FROM api_tokens JOIN users ON users.id = api_tokens.user_id "
            "WHERE token_hash = ?",
            (hashlib.sha256(token.encode()).hexdigest(),),
        )
        return None if row is None else user_from_row(row)

    def notifications(self, tenant_id: str) -> list[Notification]:
        """Return the notifications recorded for the tenant's admins, oldest first."""
        rows = self._db.rows(
            "SELECT * FROM notifications WHERE tenant_id = ? ORDER BY id", (tenant_id,)
        )
        return [notification_from_row(row) for row in rows]

    def plugin_data_dir(self, plugin_id: str) -> Path:
        """Return (creating it) ``<data dir>/plugins/<plugin_id>``."""
        check_plugin_id(plugin_id)
        path = self.data_dir / "plugins" / plugin_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    # Plugin administration -------------------------------------------------------------------

    def list_plugins(self) -> list[PluginManifest]:
        """Return the manifests of all registered plugins (``ambac_plugin_manifest``), by id."""
        manifests: list[PluginManifest] = list(self.plugin_manager.hook.ambac_plugin_manifest())
        seen: set[str] = set()
        for manifest in manifests:
            if not isinstance(manifest, PluginManifest):
                raise TypeError(
                    f"ambac_plugin_manifest returned {manifest!r}, not a PluginManifest"
                )
            if manifest.id in seen:
                raise ValueError(
                    f"two installed plugins declare the id {manifest.id!r}; uninstall one"
                )
            seen.add(manifest.id)
        return sorted(manifests, key=lambda manifest: manifest.id)

    def _require_plugin(self, plugin_id: str) -> None:
        if plugin_id not in {manifest.id for manifest in self.list_plugins()}:
            raise LookupError(f"no installed plugin has the id {plugin_id!r}")

    def plugin_settings(self, tenant_id: str, plugin_id: str) -> dict[str, Any] | None:
        """Return the settings stored for the plugin in the tenant, or None if never saved."""
        row = self._db.row(
            "SELECT settings FROM plugin_settings WHERE tenant_id = ? AND plugin_id = ?",
            (tenant_id, plugin_id),
        )
        return None if row is None else dict(json.loads(row["settings"]))

    def is_plugin_enabled(self, tenant_id: str, plugin_id: str) -> bool:
        """Return whether the tenant's admin has the plugin switched on."""
        row = self._db.row(
            "SELECT enabled FROM plugin_settings WHERE tenant_id = ? AND plugin_id = ?",
            (tenant_id, plugin_id),
        )
        return row is not None and bool(row["enabled"])

    def _store_settings(
        self, tenant_id: str, plugin_id: str, settings: str | None, enabled: bool
    ) -> None:
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO plugin_settings (tenant_id, plugin_id, settings, enabled, updated_at) "
                "VALUES (?, ?, coalesce(?, '{}'), ?, ?) "
                "ON CONFLICT (tenant_id, plugin_id) DO UPDATE SET "
                "settings = coalesce(?, settings), enabled = excluded.enabled, "
                "updated_at = excluded.updated_at",
                (tenant_id, plugin_id, settings, int(enabled), self._now().isoformat(), settings),
            )

    def enable_plugin(
        self, tenant_id: str, plugin_id: str, settings: Mapping[str, Any]
    ) -> list[object]:
        """Switch a plugin on for a tenant, as the admin's "Enable" button does.

        Calls ``ambac_settings_changed`` then ``ambac_plugin_enabled``; stores the settings and
        the enabled flag only when neither raised (the error propagates). Returns the reports
        ``ambac_plugin_enabled`` collected.
        """
        services = self.services(tenant_id)
        self._require_plugin(plugin_id)
        text = json.dumps(settings, sort_keys=True)  # fails early on settings JSON cannot hold
        settings = json.loads(text)  # plugins see exactly what the host will store
        self.plugin_manager.hook.ambac_settings_changed(
            host=services, tenant_id=tenant_id, plugin_id=plugin_id, settings=settings
        )
        reports: list[object] = self.plugin_manager.hook.ambac_plugin_enabled(
            host=services, tenant_id=tenant_id, plugin_id=plugin_id, settings=settings
        )
        self._store_settings(tenant_id, plugin_id, text, enabled=True)
        self._started.add((tenant_id, plugin_id))
        return reports

    def change_settings(self, tenant_id: str, plugin_id: str, settings: Mapping[str, Any]) -> None:
        """Save new settings for a plugin, after ``ambac_settings_changed`` accepted them."""
        services = self.services(tenant_id)
        self._require_plugin(plugin_id)
        text = json.dumps(settings, sort_keys=True)
        self.plugin_manager.hook.ambac_settings_changed(
            host=services, tenant_id=tenant_id, plugin_id=plugin_id, settings=json.loads(text)
        )
        self._store_settings(
            tenant_id, plugin_id, text, enabled=self.is_plugin_enabled(tenant_id, plugin_id)
        )

    def disable_plugin(self, tenant_id: str, plugin_id: str) -> None:
        """Switch a plugin off for a tenant, keeping its settings, then call the disabled hook.

        The flag is stored first, so a plugin whose hook fails is still off at the next start:
        an admin must always be able to switch an integration off.
        """
        services = self.services(tenant_id)
        self._store_settings(tenant_id, plugin_id, None, enabled=False)
        self._started.discard((tenant_id, plugin_id))
        self.plugin_manager.hook.ambac_plugin_disabled(
            host=services, tenant_id=tenant_id, plugin_id=plugin_id
        )

    def start(self) -> list[PluginStart]:
        """Call ``ambac_plugin_started`` for every tenant with a plugin enabled (process start).

        Every process on the data dir does this at its start; it enables nothing again (the
        admin's enable did, with its checks). One tenant's failure does not stop the others:
        it is logged, notified to that tenant's admins and reported in the returned list.
        """
        outcomes: list[PluginStart] = []
        for tenant_id, plugin_id, settings in self._enabled_plugins(warn=True):
            try:
                reports = self._start_plugin(tenant_id, plugin_id, settings)
            except Exception as exc:
                logger.exception("plugin %r failed to start for tenant %s", plugin_id, tenant_id)
                self.services(tenant_id).notify_admins(
                    f"Plugin {plugin_id} could not start", str(exc), "error"
                )
                outcomes.append(
                    PluginStart(tenant_id, plugin_id, error=f"{type(exc).__name__}: {exc}")
                )
            else:
                outcomes.append(PluginStart(tenant_id, plugin_id, tuple(reports)))
        return outcomes

    def _enabled_plugins(
        self, tenant_id: str | None = None, *, warn: bool = False
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """(tenant, plugin id, saved settings) of every installed plugin a tenant has on."""
        installed = {manifest.id for manifest in self.list_plugins()}
        rows = self._db.rows(
            "SELECT tenant_id, plugin_id, settings FROM plugin_settings WHERE enabled = 1 "
            "AND (? IS NULL OR tenant_id = ?) ORDER BY tenant_id, plugin_id",
            (tenant_id, tenant_id),
        )
        found = []
        for row in rows:
            tenant, plugin_id = str(row["tenant_id"]), str(row["plugin_id"])
            if plugin_id in installed:
                found.append((tenant, plugin_id, dict(json.loads(row["settings"]))))
            elif warn:
                logger.warning(
                    "tenant %s has plugin %r enabled but it is not installed", tenant, plugin_id
                )
        return found

    def _start_plugin(
        self, tenant_id: str, plugin_id: str, settings: dict[str, Any]
    ) -> list[object]:
        reports: list[object] = self.plugin_manager.hook.ambac_plugin_started(
            host=self.services(tenant_id), tenant_id=tenant_id, plugin_id=plugin_id,
            settings=settings,
        )
        self._started.add((tenant_id, plugin_id))
        return reports

    def _ensure_started(self, tenant_id: str) -> None:
        """Start the tenant's plugins this process has not started, before its first event
        here: a host calls ``ambac_plugin_started`` whenever a process first needs a tenant.
        An error reaches the caller; the change that fired the event stays."""
        for tenant, plugin_id, settings in self._enabled_plugins(tenant_id):
            if (tenant, plugin_id) not in self._started:
                self._start_plugin(tenant, plugin_id, settings)

    # Domain operations: the host's own edits, which fire events like its model signals ------

    def create_order(self, tenant_id: str, draft: OrderDraft) -> Order:
        """Create an order as a host user would (the contract has no "order created" event)."""
        return self.services(tenant_id).create_order(draft)

    def set_order_status(self, tenant_id: str, order_id: str, status: OrderStatus | str) -> Order:
        """Change an order's status; fires ``ambac_order_status_changed`` if it really changed."""
        return self.edit_order(tenant_id, order_id, order_status=status)

    def create_milestone_template(self, tenant_id: str, name: str, steps: Sequence[str]) -> list[Milestone]:
        """Create one of the tenant's milestone templates, steps in order; return its milestones."""
        return create_template(self._db, tenant_id, name, steps, self._now())

    def set_order_milestone(self, tenant_id: str, order_id: str, milestone_id: str | None) -> Order:
        """Move an order to a milestone of the tenant (None: none); fires ``ambac_order_updated``
        with ``current_milestone`` if it really changed."""
        return self.edit_order(tenant_id, order_id, current_milestone=milestone_id)

    def edit_order(self, tenant_id: str, order_id: str, **changes: object) -> Order:
        """Edit order fields; commits, then fires one event per kind of change.

        A status change fires ``ambac_order_status_changed``; other changed fields fire
        ``ambac_order_updated`` with their names (``order_status`` is never among them, so each
        change reaches plugins once). Unchanged values fire nothing. As with a post-commit
        signal, the change is saved before hooks run; a hook's error reaches the caller and the
        change stays.
        """
        services = self.services(tenant_id)
        before, after, changed = services._update_order(order_id, changes)
        if changed:
            self._ensure_started(tenant_id)
        if "order_status" in changed:
            self.plugin_manager.hook.ambac_order_status_changed(
                host=services, order=after, previous_status=before.order_status
            )
        others = tuple(name for name in changed if name != "order_status")
        if others:
            self.plugin_manager.hook.ambac_order_updated(
                host=services, order=after, changed_fields=others
            )
        return after

    def ship_order(self, tenant_id: str, order_id: str, shipment: Shipment) -> Order:
        """Record a shipment of the order, then fire ``ambac_order_shipped``."""
        if not isinstance(shipment, Shipment):
            raise TypeError(f"ship_order takes a Shipment, not {type(shipment).__name__}")
        for field in ("carrier", "tracking_number", "tracking_url"):
            check_text(field, getattr(shipment, field))
        ship_date = check_optional_date("ship_date", shipment.ship_date)
        services = self.services(tenant_id)
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT * FROM orders WHERE tenant_id = ? AND id = ?", (tenant_id, order_id)
            ).fetchone()
            if row is None:
                raise HostRecordError(
                    "id", order_id, f"no order with this id in tenant {tenant_id}"
                )
            conn.execute(
                "INSERT INTO shipments (tenant_id, order_id, carrier, tracking_number, "
                "tracking_url, ship_date, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant_id,
                    order_id,
                    shipment.carrier,
                    shipment.tracking_number,
                    shipment.tracking_url,
                    ship_date,
                    self._now().isoformat(),
                ),
            )
        order = order_from_row(row, self._db.connection())
        self._ensure_started(tenant_id)
        self.plugin_manager.hook.ambac_order_shipped(host=services, order=order, shipment=shipment)
        return order

    def order_notes(self, tenant_id: str, order_id: str) -> list[str]:
        """Return the internal notes of an order, oldest first."""
        rows = self._db.rows(
            "SELECT text FROM order_notes WHERE tenant_id = ? AND order_id = ? ORDER BY id",
            (tenant_id, order_id),
        )
        return [str(row["text"]) for row in rows]

    def shipments(self, tenant_id: str, order_id: str) -> list[Shipment]:
        """Return the shipments recorded for an order, oldest first."""
        rows = self._db.rows(
            "SELECT * FROM shipments WHERE tenant_id = ? AND order_id = ? ORDER BY id",
            (tenant_id, order_id),
        )
        return [shipment_from_row(row) for row in rows]

    def save_company(
        self, tenant_id: str, company_id: str | None = None, /, **fields: object
    ) -> Company:
        """Create (no ``company_id``) or edit a company, then fire ``ambac_company_saved``.

        On create every field counts as changed; an edit that changes nothing fires nothing.
        """
        services = self.services(tenant_id)
        changed: tuple[str, ...]
        if company_id is None:
            company = services.create_company(CompanyDraft(**fields))  # type: ignore[arg-type]  # checked inside
            changed = COMPANY_FIELDS
        else:
            company, changed = services._update_company(company_id, fields)
        if changed:
            self._ensure_started(tenant_id)
            self.plugin_manager.hook.ambac_company_saved(
                host=services, company=company, changed_fields=changed
            )
        return company

    # HTTP ------------------------------------------------------------------------------------

    def routes(self) -> list[HttpRoute]:
        """Return the routes of all plugins (``ambac_http_routes``, called once and kept)."""
        return self._router.routes()

    def handle_http(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        user: User | None = None,
        public_base_url: str = "http://localhost",
    ) -> HttpResponse:
        """Route one request to a plugin handler, checking the route's permission first.

        ``path`` is the raw request path, query string included. Answers 404 (no route), 405
        (wrong method), 401 (permission needed, no user), 403 (user lacks it), 500 (the handler
        raised or returned something else than an HttpResponse), else the handler's response.
        """
        return self._router.handle_http(
            method, path, headers=headers, body=body, user=user, public_base_url=public_base_url
        )

    def wsgi_app(
        self,
        *,
        public_base_url: str | None = None,
        authenticate: Callable[[Mapping[str, str]], User | None] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> WsgiApp:
        """Return a WSGI application serving :meth:`handle_http` (e.g. with ``wsgiref``).

        Users authenticate with ``Authorization: Bearer <token>`` from :meth:`create_api_token`
        unless ``authenticate`` is given. ``public_base_url`` overrides the URL the request
        names (behind a proxy, set it to what clients call). The body is read no further than
        ``max_body_bytes``: a ``Content-Length`` that is not a number is answered 400, one over
        the limit 413 before anything is read, a chunked body 411, all without routing.
        """
        return self._router.wsgi_app(
            public_base_url=public_base_url, authenticate=authenticate, max_body_bytes=max_body_bytes
        )

    # Scheduler -------------------------------------------------------------------------------

    def periodic_tasks(self) -> list[PeriodicTask]:
        """Return the tasks of all plugins (``ambac_periodic_tasks``, called once and kept)."""
        return self._scheduler.periodic_tasks()

    def run_due_tasks(self, now: datetime | None = None) -> list[TaskRun]:
        """Run every task whose interval has elapsed since its last run (never run: due).

        A task is claimed (its last run set to ``now``) in a write transaction before it runs,
        so two workers sharing the database never both run it, and a failing task waits a full
        interval instead of spinning. Tasks get services scoped to the first tenant (the
        contract lets them switch with ``for_tenant``); with no tenant nothing runs.
        """
        return self._scheduler.run_due_tasks(now)

    def start_scheduler(self, poll_seconds: float = 1.0) -> None:
        """Run :meth:`run_due_tasks` in a background thread every ``poll_seconds``."""
        self._scheduler.start(poll_seconds)

    def stop_scheduler(self, timeout: float = 10.0) -> None:
        """Stop the background scheduler thread, if running, and wait for it."""
        self._scheduler.stop(timeout)
