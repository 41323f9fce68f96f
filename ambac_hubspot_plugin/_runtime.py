"""The plugin's state in one host process: enabled tenants, their stores and the queue runner.

One :class:`Runtime` exists per plugin manager. It opens stores lazily (the first enable that
needs one), never at registration, and runs the job queue either in a background thread of the
host process or from the host's scheduler (``ambac_periodic_tasks``), whichever the host uses.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ConfigError
from .host import (
    VIEW_INTEGRATIONS,
    HostServices,
    HttpRequest,
    HttpResponse,
    HttpRoute,
    PeriodicTask,
)

if TYPE_CHECKING:
    # settings (cattrs) and the store (SQLAlchemy) load on first enable, not at registration.
    from ._facade import PluginHooks
    from .settings import Settings
    from .store import Job, QueueRunner, SqlStateStore

__all__ = ["EnableReport", "Runtime", "store_status"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
JobHandler = Callable[["Job"], None]

STORE_FILE = "hubspot.sqlite3"


@attrs.frozen
class Step:
    """One thing enabling did (or could not do yet), for the admin to read."""

    name: str
    ok: bool
    detail: str


@attrs.frozen
class EnableReport:
    """What ``ambac_plugin_enabled`` did for a tenant."""

    plugin_id: str
    tenant_id: int
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        """Whether every step succeeded."""
        return all(step.ok for step in self.steps)


@attrs.frozen
class _Tenant:
    tenant_id: int
    settings: Settings
    host: HostServices
    store_url: str


class Runtime:
    """Enabled tenants, open stores and queue runners of one plugin manager."""

    def __init__(self, hooks: PluginHooks, *, clock: Clock | None = None) -> None:
        from .store import utc_now

        self.hooks = hooks
        self.clock = clock or utc_now
        self.worker_id = f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        self._lock = threading.RLock()
        self._tenants: dict[int, _Tenant] = {}
        self._stores: dict[str, SqlStateStore] = {}
        self._runners: dict[str, QueueRunner] = {}
        # Job kinds this version processes, filled by the features that own them. Jobs of other
        # kinds stay queued (they are not claimed) until a version that handles them runs.
        self.handlers: dict[str, JobHandler] = {}

    # ---- tenants ---------------------------------------------------------------------------

    def enable(self, host: HostServices, tenant_id: int, raw: Mapping[str, Any]) -> EnableReport:
        """Validate settings, open the store and start the tenant's work."""
        from .settings import parse_settings

        settings = parse_settings(raw)
        url = self._store_url(host, settings)
        store = self._store(url)
        with self._lock:
            self._tenants[tenant_id] = _Tenant(tenant_id, settings, host, url)
        store.log(tenant_id, _level("info"), "plugin.enabled", "HubSpot integration enabled")
        self._ensure_runner(url)
        from .store import redact

        steps = (
            Step("settings", True, "settings are valid"),
            Step("store", True, f"state store ready at {redact(url)}"),
        )
        return EnableReport("hubspot", tenant_id, steps)

    def disable(self, tenant_id: int) -> None:
        """Forget the tenant: no new work is started for it; its data stays in the store."""
        with self._lock:
            tenant = self._tenants.pop(tenant_id, None)
            if tenant is None:
                return
            still_used = any(t.store_url == tenant.store_url for t in self._tenants.values())
            runner = None if still_used else self._runners.pop(tenant.store_url, None)
        self._stores[tenant.store_url].log(
            tenant_id, _level("info"), "plugin.disabled", "HubSpot integration disabled"
        )
        if runner is not None:
            runner.stop()

    def settings_changed(self, host: HostServices, tenant_id: int, raw: Mapping[str, Any]) -> None:
        """Validate new settings; apply them at once when the tenant is enabled."""
        from .settings import parse_settings

        settings = parse_settings(raw)
        with self._lock:
            current = self._tenants.get(tenant_id)
        if current is not None:
            url = self._store_url(host, settings)
            if url != current.store_url:
                raise ConfigError.from_problems(
                    [("store_url", "cannot change while the plugin is enabled; disable it first, "
                      "move the data, then enable it with the new URL")]
                )
            with self._lock:
                self._tenants[tenant_id] = _Tenant(tenant_id, settings, host, url)

    def is_enabled(self, tenant_id: int) -> bool:
        """Return whether the tenant has the plugin enabled in this process."""
        with self._lock:
            return tenant_id in self._tenants

    def store_for(self, tenant_id: int) -> SqlStateStore:
        """Return the store of an enabled tenant."""
        with self._lock:
            tenant = self._tenants.get(tenant_id)
            if tenant is None:
                raise ConfigError(f"The HubSpot plugin is not enabled for tenant {tenant_id}.")
            return self._stores[tenant.store_url]

    # ---- host events -----------------------------------------------------------------------

    def record_host_event(
        self, tenant_id: int, record_type: str, record_id: int, event: str, details: Mapping[str, Any]
    ) -> int | None:
        """Store a host domain event durably as a job; return its id (None: tenant not enabled).

        Events for the same record that change its state coalesce into one pending job (the
        push reads the record's latest state); shipments carry data of their own and do not.
        """
        with self._lock:
            tenant = self._tenants.get(tenant_id)
        if tenant is None:
            return None
        store = self._stores[tenant.store_url]
        kind = f"host.{record_type}.{event}"
        dedupe = None if event == "shipped" else f"{record_type}:{record_id}:{event}"
        payload = {"record_type": record_type, "record_id": record_id, "event": event, **details}
        return store.enqueue(tenant_id, kind, payload, dedupe_key=dedupe)

    # ---- routes and periodic work ----------------------------------------------------------

    def http_routes(self) -> Sequence[HttpRoute]:
        """Return the routes this version serves."""
        return (HttpRoute("hubspot-status", "GET", "hubspot/status", VIEW_INTEGRATIONS, self._status_route),)

    def periodic_tasks(self) -> Sequence[PeriodicTask]:
        """Return the work the host's scheduler may run."""
        return (PeriodicTask("hubspot.drain_queue", timedelta(seconds=10), self._drain_task),)

    def status(self, tenant_id: int) -> dict[str, Any]:
        """Return the tenant's status as JSON-compatible data (no secrets)."""
        if not self.is_enabled(tenant_id):
            return {"tenant_id": tenant_id, "enabled": False}
        return {"enabled": True, **store_status(self.store_for(tenant_id), tenant_id)}

    def drain(self, *, max_jobs: int | None = None, deadline: datetime | None = None) -> int:
        """Run due jobs of every open store once; return how many ran."""
        if not self.handlers:
            return 0
        with self._lock:
            urls = {t.store_url for t in self._tenants.values()}
        total = 0
        for url in sorted(urls):
            total += self._runner(url).drain(max_jobs=max_jobs, deadline=deadline).claimed
        return total

    def close(self) -> None:
        """Stop every runner and close every store (host shutdown, tests)."""
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
            stores, self._stores = list(self._stores.values()), {}
            self._tenants.clear()
        for runner in runners:
            runner.stop()
        for store in stores:
            store.close()

    # ---- internals -------------------------------------------------------------------------

    def _status_route(self, request: HttpRequest) -> HttpResponse:
        assert request.user is not None  # the host checked the permission, so a user is there
        body = json.dumps(self.status(request.user.tenant_id)).encode()
        return HttpResponse(200, body, {"Content-Type": "application/json"})

    def _drain_task(self, host: HostServices) -> int:
        return self.drain(deadline=self.clock() + timedelta(seconds=8))

    def _store_url(self, host: HostServices, settings: Settings) -> str:
        if settings.store_url:
            return settings.store_url
        return f"sqlite:///{host.plugin_data_dir('hubspot') / STORE_FILE}"

    def _store(self, url: str) -> SqlStateStore:
        with self._lock:
            store = self._stores.get(url)
            if store is None:
                from .store import open_store

                store = open_store(url, clock=self.clock)
                self._stores[url] = store
            return store

    def _runner(self, url: str) -> QueueRunner:
        with self._lock:
            runner = self._runners.get(url)
            if runner is None:
                from .store import QueueRunner

                # Claim only kinds this version handles: the others wait for a version that does.
                runner = QueueRunner(
                    self._stores[url], self.handlers, worker_id=self.worker_id,
                    clock=self.clock, kinds=tuple(self.handlers),
                )
                self._runners[url] = runner
            return runner

    def _ensure_runner(self, url: str) -> None:
        # No thread while this version has nothing to run: jobs wait for a version that does.
        if self.handlers:
            self._runner(url).start()


def store_status(store: SqlStateStore, tenant_id: int) -> dict[str, Any]:
    """Return a tenant's queue depths, recent runs and log from its store, as JSON-ready data."""
    depths: dict[str, dict[str, int]] = {}
    for (state, kind), count in store.depths(tenant_id).items():
        depths.setdefault(str(state), {})[kind] = count
    runs = [
        {
            "id": run.id,
            "kind": run.kind,
            "status": str(run.status),
            "started_at": run.started_at.isoformat(),
            "ended_at": run.ended_at.isoformat() if run.ended_at else None,
            "created": run.created,
            "updated": run.updated,
            "skipped": run.skipped,
            "failed": run.failed,
            "error": run.error,
        }
        for run in store.recent_runs(tenant_id, limit=10)
    ]
    entries = [
        {
            "level": str(e.level),
            "what": e.what,
            "record": e.record,
            "message": e.message,
            "at": e.created_at.isoformat(),
        }
        for e in store.read_log(tenant_id, limit=20).entries
    ]
    return {"tenant_id": tenant_id, "queue": depths, "recent_runs": runs, "log": entries}


def _level(name: str) -> Any:
    from .store import LogLevel

    return LogLevel(name)
