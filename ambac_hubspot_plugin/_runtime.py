"""The plugin's state in one host process: enabled tenants, their stores and the queue runner.

One :class:`Runtime` exists per plugin manager. It opens stores lazily (the first enable that
needs one), never at registration, and runs the job queue either in a background thread of the
host process or from the host's scheduler (``ambac_periodic_tasks``), whichever the host uses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from ._clock import Clock, due_on_schedule
from ._engines import EngineBuilder
from ._job_kinds import RETRY_KIND, SYNC_KIND, report_failed
from ._strategies import Strategies
from ._tenants import EnableReport, Step, TenantContext, check_portal_free
from .errors import ConfigError, TenantNotStartedError
from .host import HostServices, HttpRequest, HttpResponse, HttpRoute, PeriodicTask

if TYPE_CHECKING:
    # settings (cattrs) and the store (SQLAlchemy) load on first enable, not at registration.
    from ._facade import PluginHooks
    from ._inbound_records import Outcome, Preview, RunResult
    from .settings import Settings
    from .store import ConflictRecord, DrainCounts, Job, QueueRunner, SqlStateStore

__all__ = ["EnableReport", "Runtime"]

log = logging.getLogger(__name__)


class Runtime(EngineBuilder):
    """Enabled tenants, open stores and queue runners of one plugin manager; builds their
    engines (:class:`~._engines.EngineBuilder`)."""

    def __init__(self, hooks: PluginHooks, *, clock: Clock | None = None) -> None:
        from .store import DEFAULT_LEASE, default_worker_id, utc_now

        self.hooks = hooks
        self.strategies = Strategies(hooks)
        self.clock = clock or utc_now
        # Random per runtime: a restarted process (same host, maybe the same pid in a container)
        # must never pass for the dead one and act on the jobs it held.
        self.worker_id = default_worker_id()
        #: The lease of every job this runtime claims, renewed while the job runs: a crashed
        #: process holds its jobs this long at most. Change it before the first drain (tests).
        self.job_lease: timedelta = DEFAULT_LEASE
        self._lock = threading.RLock()
        self._tenants: dict[str, TenantContext] = {}
        self._stores: dict[str, SqlStateStore] = {}
        self._runners: dict[str, QueueRunner] = {}
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        # Tenants whose event hooks could not record an event in this process: reconciled at
        # the next tick that can reach their store, not only at the next interval.
        self._unrecorded: set[str] = set()
        self._pipelines: dict[str, tuple[datetime, Any]] = {}
        self._portal_checked: dict[str, Any] = {}
        #: The webhook receiver and every job kind this version processes (see ``_jobs``).
        from ._echo import WebhookEchoes
        from ._jobs import job_handlers

        self.webhooks, self.handlers = job_handlers(self, is_echo=WebhookEchoes(self))
        #: Extra :class:`~.client.ClientSettings` fields for every client built (tests: retries).
        self.client_overrides: dict[str, Any] = {}

    # ---- tenants ---------------------------------------------------------------------------

    def enable(self, host: HostServices, tenant_id: str, raw: Mapping[str, Any]) -> EnableReport:
        """Validate settings, open the store, check HubSpot and start the tenant's work.

        Bad settings or an unusable store raise. A HubSpot that cannot be reached, or trigger
        stages it does not have, are reported as failed steps: the tenant stays enabled, the
        status view shows the failure and the scheduled sync tries again.
        """
        from ._store_place import bind
        from .store import redact

        self.attach(host, tenant_id, raw, saving=True)
        tenant = self.tenant(tenant_id)
        hubspot, checks = self._check_hubspot(tenant_id)
        steps = [
            Step("settings", True, "settings are valid"),
            Step("store", True, f"state store ready at {redact(tenant.store_url)}"),
            hubspot,
        ]
        self._stores[tenant.store_url].log(tenant_id, _level("info"), "plugin.enabled",
                                           "HubSpot integration enabled")
        # Last: an enable that failed before here leaves no binding to refuse the next try.
        bind(host, tenant_id, tenant.store_url)
        if tenant.settings.run_background_worker:
            self.start_worker()
        return EnableReport("hubspot", tenant_id, tuple(steps), checks)

    def attach(self, host: HostServices, tenant_id: str, raw: Mapping[str, Any], *, saving: bool = False) -> None:
        """Know a tenant the host has enabled, from its saved settings, without enabling it anew.

        Validates the settings, opens the store and builds the HubSpot client, and does nothing
        else: no connection check (no HubSpot call), no log entry, no worker. For a process that
        only operates on an enabled tenant, such as a CLI command; :meth:`enable` starts here.
        Bad settings or an unusable store raise, as for :meth:`enable`, and so does a
        ``store_url`` other than the one the tenant was enabled with (``saving``: ``enable``'s).
        """
        from ._store_place import check_binding
        from .client import ClientSettings, build_client
        from .settings import ALLOW_LOCAL_SANDBOX_ENV, local_sandbox_allowed, parse_settings

        settings = parse_settings(raw)
        check_portal_free(self.enabled(), tenant_id, settings.portal_id)
        if settings.local_sandbox and not local_sandbox_allowed():
            raise ConfigError.from_problems([("local_sandbox", (
                f"is not allowed in this process: its operator allows the bundled sandbox (tests, "
                f"demos) by setting {ALLOW_LOCAL_SANDBOX_ENV}=1 in its environment; in "
                "production, remove local_sandbox and use HubSpot's API"))])
        self.strategies.check(settings, host.capabilities(), saving=saving)
        url = self._store_url(host, settings)
        check_binding(host, tenant_id, url)
        store = self._store(url)
        client = build_client(ClientSettings.from_plugin_settings(settings, **self.client_overrides),
                              clock=self.clock)
        with self._lock:
            old = self._tenants.get(tenant_id)
            self._tenants[tenant_id] = TenantContext(tenant_id, settings, host, url, store, client)
            self._pipelines.pop(tenant_id, None)  # the portal may have changed: read them again
        if old is not None:
            old.client.close()

    def take_up(self, host: HostServices, tenant_id: str, raw: Mapping[str, Any]) -> None:
        """Take up a tenant enabled earlier (``ambac_plugin_started``): :meth:`attach`, then the
        worker if the settings ask for it; no HubSpot call, no connection check, no log entry."""
        self.attach(host, tenant_id, raw)
        if self.tenant(tenant_id).settings.run_background_worker:
            self.start_worker()

    def _check_hubspot(self, tenant_id: str) -> tuple[Step, tuple[Any, ...]]:
        # The connection test (token, portal, scopes, trigger stages, custom properties, webhooks),
        # kept as the tenant's last check for the status view.
        from ._checks import run_checks, save_report

        tenant = self.tenant(tenant_id)
        report = run_checks(tenant.settings, tenant.client, tenant_id, clock=self.clock)
        save_report(self._stores[tenant.store_url], tenant.settings.portal_id, report)
        failed = [c for c in report.checks if not c.ok]
        if failed:
            detail = "; ".join(f"{c.name}: {c.summary}" for c in failed)
            return Step("hubspot", False, detail), report.checks
        notes = "; ".join(f"{c.name}: {c.summary}" for c in report.warnings)
        detail = "connected; pipelines and trigger stages checked" + (f" (warnings: {notes})" if notes else "")
        return Step("hubspot", True, detail), report.checks

    def disable(self, tenant_id: str, host: HostServices | None = None) -> None:
        """Forget the tenant (:meth:`stop`) and release its store binding (``host``, the hook's,
        releases it even if this process never enabled the tenant); its data stays."""
        from ._store_place import unbind

        tenant = self.stop(tenant_id)
        services = host if host is not None else (tenant.host if tenant is not None else None)
        if services is not None:
            unbind(services, tenant_id)
        if tenant is not None:
            self._stores[tenant.store_url].log(tenant_id, _level("info"), "plugin.disabled",
                                               "HubSpot integration disabled")

    def stop(self, tenant_id: str) -> TenantContext | None:
        """Forget the tenant in this process only (``ambac_plugin_stopped``): no new work is
        started for it here; its binding, data and log stay. Returns what was forgotten."""
        with self._lock:
            tenant = self._tenants.pop(tenant_id, None)
            if tenant is None:
                return None
            if not any(t.store_url == tenant.store_url for t in self._tenants.values()):
                self._runners.pop(tenant.store_url, None)
            idle = not self._tenants
        tenant.client.close()
        if idle:
            self.stop_worker()
        return tenant

    def settings_changed(self, host: HostServices, tenant_id: str, raw: Mapping[str, Any]) -> None:
        """Validate new settings; apply them at once when the tenant is enabled."""
        from ._store_place import check_binding
        from .settings import parse_settings

        settings = parse_settings(raw)
        self.strategies.check(settings, host.capabilities(), saving=True)
        url = self._store_url(host, settings)
        # Enabled here or in another process (the binding says so): the store stays.
        check_binding(host, tenant_id, url)
        with self._lock:
            current = self._tenants.get(tenant_id)
        if current is not None:
            self.enable(host, tenant_id, raw)
            if settings.mapping != current.settings.mapping:
                # Deals that failed to map get another chance under the new mapping.
                self._stores[url].replay_all(tenant_id, kind=RETRY_KIND)

    def is_enabled(self, tenant_id: str) -> bool:
        """Return whether the tenant has the plugin enabled in this process."""
        with self._lock:
            return tenant_id in self._tenants

    def store_for(self, tenant_id: str) -> SqlStateStore:
        """Return the store of an enabled tenant."""
        return self.tenant(tenant_id).store

    def report_failed(self, job: Job) -> None:
        """Tell ``hubspot_sync_step_failed``'s listeners of a job the queue has just failed."""
        report_failed(self.hooks, getattr(self._tenants.get(job.tenant_id), "store", None), job)  # never raises

    def enabled(self) -> list[TenantContext]:
        """Every enabled tenant, at the moment of the call."""
        with self._lock:
            return list(self._tenants.values())

    # ---- host events -----------------------------------------------------------------------

    def record_host_event(self, host: HostServices, tenant_id: str, record_type: str, record_id: str,
                          event: str, details: Mapping[str, Any]) -> int | None:
        """Store a host domain event durably as a job; return its id (None: the tenant has the
        plugin enabled nowhere, so there is nothing to record).

        Events for the same record that change its state coalesce into one pending job (the
        push reads the record's latest state); shipments carry data of their own and do not.

        :raises TenantNotStartedError: the tenant is enabled, but not taken up in this process.
        :raises HostEventNotRecordedError: the store refused the write (an outage). Order
            changes are then found by the next reconciliation; see ``docs/hooks.md``.
        """
        from ._job_kinds import PUSH_MAX_ATTEMPTS, host_event_job
        from ._store_place import is_bound

        with self._lock:
            tenant = self._tenants.get(tenant_id)
        if tenant is None:
            if is_bound(host, tenant_id):  # enabled by another process: never drop it silently
                raise TenantNotStartedError(tenant_id=tenant_id, record_type=record_type,
                                            record_id=record_id, event=event)
            return None
        store = self._stores[tenant.store_url]
        kind, payload, dedupe = host_event_job(record_type, record_id, event, details)
        try:
            return store.enqueue(tenant_id, kind, payload, dedupe_key=dedupe,
                                 max_attempts=PUSH_MAX_ATTEMPTS)
        except Exception as exc:
            from sqlalchemy.exc import SQLAlchemyError

            if not isinstance(exc, SQLAlchemyError | OSError):
                raise
            from ._secrets import failure_cause
            from .errors import HostEventNotRecordedError

            recovered = record_type == "order" and event != "shipped"
            with self._lock:
                self._unrecorded.add(tenant_id)
            raise HostEventNotRecordedError(
                tenant_id=tenant_id, record_type=record_type, record_id=record_id, event=event,
                recovered=recovered, cause=failure_cause(exc, tenant.store_url)) from None  # the
            # driver's exception may quote the URL; the cause above is its first line, scrubbed

    # ---- routes and periodic work ----------------------------------------------------------

    def http_routes(self) -> Sequence[HttpRoute]:
        """Return the routes this version serves: the admin API and pages, the CRM card, webhooks."""
        from ._admin_routes import admin_routes
        from ._crm_card import card_route
        from ._pages import page_routes
        return (*admin_routes(self), *page_routes(self), card_route(self), self._webhook_route())

    def periodic_tasks(self) -> Sequence[PeriodicTask]:
        """Return the work the host's scheduler may run."""
        return (PeriodicTask("hubspot.tick", timedelta(seconds=10), self._tick_task),)

    def status(self, tenant_id: str) -> dict[str, Any]:
        """Return the tenant's status as JSON-compatible data (no secrets)."""
        if not self.is_enabled(tenant_id):
            return {"tenant_id": tenant_id, "enabled": False}
        stats = self.tenant(tenant_id).client.stats.snapshot()
        calls = {"total": stats.total_calls, "by_endpoint": dict(stats.calls), "retries": stats.retries,
                 "rate_limited": stats.rate_limited, "token_refreshes": stats.refreshes,
                 "errors": stats.errors}
        from ._status import store_status
        return {"enabled": True, **store_status(self.store_for(tenant_id), tenant_id), "hubspot_calls": calls}

    def drain(self, *, max_jobs: int | None = None, deadline: datetime | None = None) -> int:
        """Run due jobs of every open store once; return how many ran."""
        return self.drain_counts(max_jobs=max_jobs, deadline=deadline).claimed

    def drain_counts(self, *, max_jobs: int | None = None, deadline: datetime | None = None) -> DrainCounts:
        """:meth:`drain`, returning what became of the jobs, summed over the stores."""
        from .store import DrainCounts

        with self._lock:
            urls = {t.store_url for t in self._tenants.values()}
        total = DrainCounts()
        for url in sorted(urls):
            counts = self._runner(url).drain(max_jobs=max_jobs, deadline=deadline)
            total = DrainCounts(**{field.name: getattr(total, field.name) + getattr(counts, field.name)
                                   for field in attrs.fields(DrainCounts)})
        return total

    def close(self) -> None:
        """Stop the worker and close every client and store (host shutdown, tests)."""
        self.stop_worker()
        with self._lock:
            self._runners.clear()
            stores, self._stores = list(self._stores.values()), {}
            tenants = list(self._tenants.values())
            self._tenants.clear()
        for tenant in tenants:
            tenant.client.close()
        for store in stores:
            store.close()

    # ---- internals -------------------------------------------------------------------------

    def _tick_task(self, host: HostServices) -> int:
        return self.tick(deadline=self.clock() + timedelta(seconds=8))

    def tick(self, *, deadline: datetime | None = None) -> int:
        """One round of background work: schedule due syncs, then run due jobs; return jobs run."""
        return self.tick_counts(deadline=deadline).claimed

    def tick_counts(self, *, deadline: datetime | None = None) -> DrainCounts:
        """:meth:`tick`, returning what became of the jobs it ran (alerts and pruning follow)."""
        from ._alerts import run_alerts
        from ._retention import run_retention

        self.schedule_due_syncs()
        self.schedule_due_reconciles()
        ran = self.drain_counts(deadline=deadline)
        run_alerts(self)
        run_retention(self)
        try:
            # Refusals flood protection held back in memory reach the counters at least
            # once a tick, not only with the next refusal that is logged.
            self.webhooks.flush_refusal_counts()
        except Exception:
            log.warning("could not write held-back webhook refusal counts", exc_info=True)
        return ran

    def start_worker(self, poll_seconds: float = 5.0) -> None:
        """Run :meth:`tick` in a daemon thread of the host process until :meth:`stop_worker`."""
        with self._lock:
            self._stop.clear()  # a worker still finishing a job after stop_worker() carries on
            if self._worker is not None and self._worker.is_alive():
                return
            self._worker = threading.Thread(target=self._work, args=(poll_seconds,),
                                            name="hubspot-worker", daemon=True)
            self._worker.start()

    def stop_worker(self, timeout: float = 30.0) -> None:
        """Stop the background thread after the job it is running."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            # A stopped runner stays stopped: drop them; the next drain builds fresh ones.
            runners = list(self._runners.values())
            self._runners.clear()
        for runner in runners:
            runner.stop(timeout=0)
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
            if worker.is_alive():
                # Still finishing a job: keep it, so start_worker() does not add a second thread.
                log.warning("the HubSpot worker is still finishing a job after %s s", timeout)
                return
        self._worker = None

    def wake(self) -> None:
        """Ask the background worker to run now instead of at its next poll."""
        self._wake.set()

    def _webhook_route(self) -> HttpRoute:
        """The webhook receiver's route, waking the worker once a batch is stored."""
        route = self.webhooks.route()
        receive = route.handler

        def handler(request: HttpRequest) -> HttpResponse:
            response = receive(request)
            if response.status < 300:
                self.wake()  # closed-won to order in well under a second, not at the next poll
            return response

        return attrs.evolve(route, handler=handler)

    def _work(self, poll_seconds: float) -> None:
        from ._failure_log import FailureLog

        # A store outage fails every tick: one line when it starts, one when it ends.
        failures = FailureLog(log, "HubSpot background work")
        while not self._stop.is_set():
            try:
                # Bounded, so stop_worker() is honoured within a tick even with a backlog.
                self.tick(deadline=self.clock() + timedelta(seconds=max(poll_seconds, 10)))
            except BaseException as exc:  # a SystemExit from host code must not end the thread
                failures.failed(exc, poll_seconds)
            else:
                failures.succeeded()
            # Sleep until the next poll, or until new work arrives (see wake()).
            if self._wake.wait(poll_seconds):
                self._wake.clear()

    # ---- sync ----------------------------------------------------------------------------------

    def settings_for(self, tenant_id: str) -> Settings:
        """The settings an enabled tenant runs with."""
        return self.tenant(tenant_id).settings

    def run_sync(
        self, tenant_id: str, *, backfill: bool = False, since: datetime | None = None,
        dry_run: bool = False, keep_outcomes: bool = False,
        progress: Callable[[Outcome], None] | None = None,
    ) -> RunResult:
        """Run an incremental sync or a backfill now, in this thread."""
        engine = self.inbound(tenant_id)
        if backfill:
            return engine.run_backfill(since=since, dry_run=dry_run, keep_outcomes=keep_outcomes,
                                       progress=progress)
        return engine.run_incremental(dry_run=dry_run, keep_outcomes=keep_outcomes, progress=progress)

    def preview_order(self, tenant_id: str, deal_id: str) -> Preview:
        """Show the order a deal would become, for review."""
        return self.inbound(tenant_id).preview(deal_id)

    def create_order_from_deal(self, tenant_id: str, deal_id: str, changes: Mapping[str, object] | None = None,
                               reviewed: str | None = None) -> Outcome:
        """Create a deal's order with the reviewer's changes (an existing order is returned)."""
        return self.inbound(tenant_id).create_from_deal(deal_id, changes, reviewed)

    def schedule_due_syncs(self) -> int:
        """Queue an incremental sync for every tenant whose interval has passed; return how many."""
        with self._lock:
            tenants = list(self._tenants.values())
        queued = 0
        now = self.clock()
        for tenant in tenants:
            store = self._stores[tenant.store_url]
            store.fail_stale_runs(timedelta(minutes=15))
            last = store.recent_runs(tenant.tenant_id, kind="incremental", limit=1)
            interval = timedelta(seconds=tenant.settings.sync_interval_seconds)
            if due_on_schedule(last[0].started_at if last else None, now, interval, tenant.tenant_id):
                store.enqueue(tenant.tenant_id, SYNC_KIND, {}, dedupe_key="sync:incremental")
                queued += 1
        return queued

    def schedule_due_reconciles(self) -> int:
        """Queue the outbound reconciliation of every tenant whose hooks lost an event here or
        whose last one is ``sync_interval_seconds`` old; return how many were queued."""
        from ._reconcile import RECONCILE_KIND, reconcile_due

        with self._lock:
            tenants = list(self._tenants.values())
        queued = 0
        for tenant in tenants:
            store = self._stores[tenant.store_url]
            with self._lock:
                lost = tenant.tenant_id in self._unrecorded
            interval = timedelta(seconds=tenant.settings.sync_interval_seconds)
            if lost or reconcile_due(store, tenant.tenant_id, tenant.settings.portal_id,
                                     now=self.clock(), interval=interval):
                store.enqueue(tenant.tenant_id, RECONCILE_KIND, {}, dedupe_key="outbound:reconcile")
                queued += 1
                if lost:
                    with self._lock:
                        self._unrecorded.discard(tenant.tenant_id)
        return queued

    def reconcile_outbound(self, tenant_id: str) -> int:
        """Queue a push for every linked order whose state never reached its deal (events the
        hooks could not record); return how many. See :mod:`._reconcile`."""
        from ._reconcile import reconcile_orders

        tenant = self.tenant(tenant_id)
        return reconcile_orders(tenant_id=tenant_id, portal_id=tenant.settings.portal_id,
                                host=tenant.host, store=self._stores[tenant.store_url],
                                push=self.outbound(tenant_id), clock=self.clock)

    # ---- outbound and conflicts (deal properties: created by each enable's connection test) --

    def is_echo(self, tenant_id: str, object_type: str, object_id: str, property_name: str,
                property_value: str | None, occurred_at: datetime | None = None) -> bool:
        """Whether a webhook's property change is our own write coming back (see _echo.is_echo)."""
        from ._echo import is_echo

        if not self.is_enabled(tenant_id):
            return False
        return is_echo(self.store_for(tenant_id), tenant_id, object_type, object_id,
                       property_name, property_value, occurred_at)

    def list_conflicts(self, tenant_id: str, *, status: str | None = "open",
                       limit: int = 100) -> list[ConflictRecord]:
        """The tenant's open conflicts (``status=None``: the whole audit trail), newest first."""
        return self.store_for(tenant_id).list_conflicts(tenant_id, status=status, limit=limit)

    def resolve_conflict(self, tenant_id: str, conflict_id: int, choice: str, *,
                         value: str | None = None, decided_by: str | None = None) -> ConflictRecord:
        """Resolve an open conflict with ``hubspot``, ``ambac`` or ``value`` (and the value):
        applied to the host and to HubSpot, and recorded with who decided."""
        return self.outbound(tenant_id).resolve_conflict(conflict_id, choice, value=value,
                                                         decided_by=decided_by)

    def tenant(self, tenant_id: str) -> TenantContext:
        """The context of an enabled tenant; ``ConfigError`` naming it when it is not."""
        with self._lock:
            tenant = self._tenants.get(tenant_id)
        if tenant is None:
            raise ConfigError(f"The HubSpot plugin is not enabled for tenant {tenant_id}; enable it first.")
        return tenant

    def _store_url(self, host: HostServices, settings: Settings) -> str:
        from ._store_place import store_url_for

        return store_url_for(host, settings)

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
                runner = QueueRunner(self._stores[url], self.handlers, worker_id=self.worker_id, lease=self.job_lease,
                                     clock=self.clock, kinds=tuple(self.handlers), on_failed=self.report_failed)
                self._runners[url] = runner
            return runner


def _level(name: str) -> Any:
    from .store import LogLevel

    return LogLevel(name)
