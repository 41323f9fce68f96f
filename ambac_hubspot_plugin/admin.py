"""The admin API: what "Settings > Integrations > HubSpot" does, for the host, the routes and the CLI.

Every operation takes the acting host user and checks its permission through
:meth:`HostServices.has_permission` before doing anything: ``manage_integrations`` to change
settings, enable or disable, test the connection, run syncs, replay dead letters, prune old
rows, resolve conflicts and create an order from a deal; ``view_integrations`` to read the status, the log,
the sync history, conflicts and dead letters. A user without it gets
:class:`PermissionDeniedError`, which names the permission.

Results are JSON-ready dicts and lists, and never contain a secret: settings come back with
every secret as ``***``, and every result is scrubbed of the tenant's secret values as a last
line of defence.

.. code-block:: python

    admin = Admin(runtime, host_services)
    admin.status(user)                        # view_integrations
    admin.run_sync(user)                      # manage_integrations
"""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._filters import check_filters, filter_problems
from ._job_kinds import SYNC_KIND
from ._status import EXCLUDED_CHECKPOINT, build_status
from ._tenants import Tenants
from ._views import (
    company_json,
    conflict_json,
    iso,
    job_json,
    outcome_json,
    run_json,
    scrub_secrets,
    secret_values,
)
from .errors import ConfigError, HubSpotIntegrationError
from .host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS, OrderStatus, as_host_id

if TYPE_CHECKING:
    from ._checks import CheckReport
    from ._inbound_records import Outcome, Preview, RunResult
    from ._tenants import EnableReport
    from .host import HostServices, SavesPluginSettings, User
    from .settings import Settings
    from .store import ConflictRecord

__all__ = ["Admin", "AdminRuntime", "PermissionDeniedError", "build_status", "conflict_json",
           "job_json", "order_changes", "run_json", "secret_values"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class _WebhookIntake(Protocol):
    @property
    def max_attempts(self) -> int | None:
        ...


class AdminRuntime(Tenants, Protocol):
    """What the admin API asks of the runtime beyond :class:`~._tenants.Tenants`: a tenant's
    lifecycle and the engines' operations."""

    @property
    def webhooks(self) -> _WebhookIntake:
        ...

    def enable(self, host: HostServices, tenant_id: str, raw: Mapping[str, Any]) -> EnableReport:
        ...

    def disable(self, tenant_id: str, host: HostServices | None = None) -> None:
        ...

    def settings_changed(self, host: HostServices, tenant_id: str, raw: Mapping[str, Any]) -> None:
        ...

    def run_sync(self, tenant_id: str, *, backfill: bool = False, since: datetime | None = None,
                 dry_run: bool = False, keep_outcomes: bool = False,
                 progress: Callable[[Outcome], None] | None = None) -> RunResult:
        ...

    def preview_order(self, tenant_id: str, deal_id: str) -> Preview:
        ...

    def create_order_from_deal(self, tenant_id: str, deal_id: str,
                               changes: Mapping[str, object] | None = None,
                               reviewed: str | None = None) -> Outcome:
        ...

    def resolve_conflict(self, tenant_id: str, conflict_id: int, choice: str, *,
                         value: str | None = None, decided_by: str | None = None) -> ConflictRecord:
        ...


class PermissionDeniedError(HubSpotIntegrationError):
    """The acting user lacks the permission an admin operation needs (or nobody is signed in)."""

    def __init__(self, permission: str, operation: str, user: User | None) -> None:
        self.permission = permission
        self.operation = operation
        self.user_id = user.id if user is not None else None
        who = f"user {user.id} ({user.email})" if user is not None else "nobody (no signed-in user)"
        super().__init__(f"{operation} needs the {permission!r} permission, which {who} does not "
                         "have in this tenant; ask a tenant admin to grant it.")


_DATE_FIELDS = {"estimated_completion", "order_date"}


def order_changes(raw: Mapping[str, Any]) -> dict[str, object]:
    """Turn reviewer changes given as JSON into order draft values; ConfigError names bad fields."""
    from .mapping import ORDER_FIELDS

    changes: dict[str, object] = {}
    problems: list[tuple[str, str]] = []
    for name, value in raw.items():
        where = f"changes.{name}"
        if name not in ORDER_FIELDS:
            problems.append((where, f"not an editable order field; editable: {sorted(ORDER_FIELDS)}"))
            continue
        try:
            if value is None:
                changes[name] = None
            elif name in _DATE_FIELDS:
                changes[name] = date.fromisoformat(str(value))
            elif name == "value":
                changes[name] = Decimal(str(value))
            elif name == "order_status":
                changes[name] = OrderStatus.parse(value)  # a value, or a label as people type it
            elif isinstance(value, str):
                changes[name] = value
            else:
                raise ValueError("must be a string")
        except (ValueError, InvalidOperation) as exc:
            allowed = {"order_status": f"one of {OrderStatus.allowed()}",
                       "value": "a decimal number such as \"1250.50\""}.get(
                name, "a date YYYY-MM-DD" if name in _DATE_FIELDS else str(exc))
            problems.append((where, f"{value!r} is not valid: must be {allowed}"))
    if problems:
        raise ConfigError.from_problems(problems, what="order changes")
    return changes


class Admin:
    """The admin operations of one tenant, on behalf of host users.

    :param runtime: the plugin's runtime (``HubSpotPlugin.runtime``), through the
        :class:`AdminRuntime` port.
    :param host: host services scoped to the tenant.
    """

    def __init__(self, runtime: AdminRuntime, host: HostServices) -> None:
        self.runtime = runtime
        self.host = host

    @property
    def tenant_id(self) -> str:
        """The tenant this admin API acts on (as a host id string, whatever the host gives)."""
        return as_host_id(self.host.tenant_id, "tenant_id")

    def require(self, user: User | None, permission: str, operation: str) -> None:
        """Raise :class:`PermissionDeniedError` unless ``user`` holds ``permission`` here."""
        if user is None or user.tenant_id != self.tenant_id or not self.host.has_permission(user, permission):
            raise PermissionDeniedError(permission, operation, user)

    def _secrets(self) -> list[str]:
        if not self.runtime.is_enabled(self.tenant_id):
            return []
        return secret_values(self.runtime.tenant(self.tenant_id).settings)

    def _clean(self, data: _T) -> _T:
        return typing.cast(_T, scrub_secrets(data, self._secrets()))

    # ---- manage_integrations ----------------------------------------------------------------

    def enable(self, user: User | None, settings: Mapping[str, Any]) -> EnableReport:
        """Validate settings, test the connection, prepare HubSpot and start syncing."""
        self.require(user, MANAGE_INTEGRATIONS, "Enabling the HubSpot integration")
        return self.runtime.enable(self.host, self.tenant_id, settings)

    def disable(self, user: User | None) -> None:
        """Stop all work of the tenant; its data stays."""
        self.require(user, MANAGE_INTEGRATIONS, "Disabling the HubSpot integration")
        self.runtime.disable(self.tenant_id)

    def change_settings(self, user: User | None, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and apply new settings (ConfigError names each bad field); return them redacted.

        A secret given as ``***`` (as :meth:`settings` shows it) keeps the stored one, so the
        settings read back can be changed and sent again. When the host's services can save
        settings (:class:`~.host.SavesPluginSettings`), the host keeps them for its next start;
        :attr:`settings_saved_by_host` says whether it does. When the host fails to save them,
        the settings it still has are applied again and its error is raised: this process
        never runs with settings the host's next start would not have.
        """
        from ._store_place import PLUGIN_ID
        from .settings import restore_masked, unstructure_settings

        self.require(user, MANAGE_INTEGRATIONS, "Changing the HubSpot settings")
        settings, parsed = self._restored(settings)
        before = self._current()
        self.runtime.settings_changed(self.host, self.tenant_id, settings)
        if self.settings_saved_by_host:
            try:
                typing.cast("SavesPluginSettings", self.host).save_plugin_settings(PLUGIN_ID, settings)
            except BaseException:
                if before is not None:
                    try:
                        self.runtime.settings_changed(
                            self.host, self.tenant_id, restore_masked(unstructure_settings(before), before))
                    except Exception as exc:  # the host's error is the one raised; this one is logged
                        # Its first line only, scrubbed: a driver's error may quote a store URL.
                        first = (str(exc).strip().splitlines() or [""])[0]
                        cause = scrub_secrets(f"{type(exc).__name__}: {first}",
                                              secret_values(before) + secret_values(parsed))
                        logger.error("tenant %s: the host did not save the new HubSpot settings, and going "
                                     "back to its settings failed too (%s): this process runs with unsaved "
                                     "settings until it restarts", self.tenant_id, cause)
                raise
        return unstructure_settings(parsed)

    def check_settings(self, user: User | None, settings: Mapping[str, Any]) -> None:
        """Check each field of settings (ConfigError names each bad one) without applying or
        saving them; :meth:`change_settings` checks more (strategies, the store)."""
        self.require(user, MANAGE_INTEGRATIONS, "Checking HubSpot settings")
        self._restored(settings)

    @property
    def settings_saved_by_host(self) -> bool:
        """Whether settings changed here outlast a restart: the host's services save them."""
        from .host import SavesPluginSettings

        return isinstance(self.host, SavesPluginSettings)

    def _current(self) -> Settings | None:
        """The settings this process runs the tenant with; None when it is not enabled here."""
        return self.runtime.tenant(self.tenant_id).settings if self.runtime.is_enabled(self.tenant_id) else None

    def _restored(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any], Settings]:
        from .settings import parse_settings, restore_masked

        settings = restore_masked(raw, self._current())
        return settings, parse_settings(settings)

    def test_connection(self, user: User | None) -> CheckReport:
        """Run every connection check now, keep the result for the status view, and return it."""
        from ._checks import run_checks, save_report

        self.require(user, MANAGE_INTEGRATIONS, "Testing the HubSpot connection")
        tenant = self.runtime.tenant(self.tenant_id)
        report = run_checks(tenant.settings, tenant.client, self.tenant_id, clock=self.runtime.clock)
        save_report(self.runtime.store_for(self.tenant_id), tenant.settings.portal_id, report)
        return report

    def run_sync(self, user: User | None, *, backfill: bool = False, since: datetime | None = None,
                 dry_run: bool = False, wait: bool = True,
                 progress: Callable[[Outcome], None] | None = None) -> dict[str, Any]:
        """Run an incremental sync (or a backfill) now; ``wait=False`` queues the sync instead.

        ``progress`` is called with each deal's outcome as the run goes (the CLI's progress bar);
        it is not called for a queued sync.
        """
        self.require(user, MANAGE_INTEGRATIONS, "Running a HubSpot sync")
        if not wait:
            if backfill or dry_run:
                raise ConfigError.from_problems([("wait", "only an incremental, real sync can be "
                                                  "queued; backfills and dry runs run at once")])
            job_id = self.runtime.store_for(self.tenant_id).enqueue(
                self.tenant_id, SYNC_KIND, {}, dedupe_key="sync:incremental")
            return {"queued": True, "job_id": job_id}
        excluded = 0

        def count(outcome: Outcome) -> None:
            nonlocal excluded
            if outcome.action == "skipped" and "excluded" in outcome.reason:
                excluded += 1
            if progress is not None:
                progress(outcome)

        result = self.runtime.run_sync(self.tenant_id, backfill=backfill, since=since,
                                       dry_run=dry_run, progress=count)
        if not dry_run:
            tenant = self.runtime.tenant(self.tenant_id)
            self.runtime.store_for(self.tenant_id).set_checkpoint(
                self.tenant_id, tenant.settings.portal_id, EXCLUDED_CHECKPOINT,
                json.dumps({"count": excluded, "as_of": iso(self.runtime.clock()),
                            "note": f"deals outside the trigger stages seen by the last "
                                    f"{result.kind} sync"}))
        return self._clean({"queued": False, "kind": result.kind, "dry_run": result.dry_run,
                            "run_id": result.run_id, "created": result.created,
                            "updated": result.updated, "unchanged": result.unchanged,
                            "skipped": result.skipped, "excluded": excluded,
                            "failed": result.failed})

    def replay(self, user: User | None, job_id: int) -> dict[str, Any]:
        """Put one dead letter back in the queue."""
        self.require(user, MANAGE_INTEGRATIONS, "Replaying a dead letter")
        check_filters("replay", job_id=job_id)
        store = self.runtime.store_for(self.tenant_id)
        job = store.get_job(job_id)
        if job is None or job.tenant_id != self.tenant_id:
            raise LookupError(f"no job {job_id} in this tenant")
        new_id = store.replay(job_id)
        return {"replayed": new_id is not None, "job_id": new_id,
                "reason": None if new_id is not None else f"job {job_id} is not dead ({job.state})"}

    def replay_all(self, user: User | None, kind: str | None = None) -> dict[str, Any]:
        """Put every dead letter (of one kind) back in the queue; without a kind (or with
        ``webhook.inbox``), stored webhook deliveries that could not be read are retried too."""
        from ._webhooks import INBOX_JOB_KIND

        self.require(user, MANAGE_INTEGRATIONS, "Replaying dead letters")
        check_filters("replay", kind=kind)
        store = self.runtime.store_for(self.tenant_id)
        replayed = store.replay_all(self.tenant_id, kind)
        retried = (store.retry_unreadable_webhook_batches(
            self.tenant_id, job_kind=INBOX_JOB_KIND,
            max_attempts=self.runtime.webhooks.max_attempts) if kind in (None, INBOX_JOB_KIND)
            else 0)
        return {"replayed": replayed, "webhook_deliveries": retried}

    def prune(self, user: User | None, *, dry_run: bool = False) -> dict[str, Any]:
        """Prune the tenant's rows older than its ``retention`` settings now, in small chunks
        (``dry_run``: only count them); what is still needed is never removed."""
        from ._retention import prune_tenant

        self.require(user, MANAGE_INTEGRATIONS, "Pruning the HubSpot store")
        report = prune_tenant(self.runtime.tenant(self.tenant_id), dry_run=dry_run)
        return {"dry_run": report.dry_run, "rows": dict(report.rows), "total": report.total,
                "complete": report.complete, "at": iso(report.at)}

    def resolve_conflict(self, user: User | None, conflict_id: int, choice: str,
                         value: str | None = None) -> dict[str, Any]:
        """Resolve an open conflict: ``choice`` is ``hubspot``, ``ambac`` or ``value`` (with
        ``value``); recorded as decided by the user's email."""
        self.require(user, MANAGE_INTEGRATIONS, "Resolving a conflict")
        assert user is not None  # require() refused None
        check_filters("conflict resolution", conflict_id=conflict_id, value=value)
        self._conflict(conflict_id)  # ConfigError: no such conflict
        record = self.runtime.resolve_conflict(self.tenant_id, conflict_id, choice, value=value,
                                               decided_by=user.email)
        return dict(self._clean(conflict_json(record)))

    def create_order_from_deal(self, user: User | None, deal_id: str,
                               changes: Mapping[str, Any] | None = None,
                               reviewed: str | None = None) -> dict[str, Any]:
        """Create the deal's order with the reviewer's changes (JSON values); return the outcome.

        ``reviewed``: the ``version`` of the preview the reviewer saw; when the deal, its
        company or its contacts changed since, nothing is created (``DealChangedError``).
        """
        self.require(user, MANAGE_INTEGRATIONS, "Creating an order from a deal")
        check_filters("order creation", deal_id=deal_id)
        if reviewed is not None and not (isinstance(reviewed, str) and reviewed.isascii()
                                         and reviewed.isalnum() and len(reviewed) <= 64):
            raise ConfigError("reviewed_version must be the 'version' of the deal's preview")
        values = order_changes(changes or {})
        outcome = self.runtime.create_order_from_deal(self.tenant_id, deal_id, values or None, reviewed)
        order = self.host.get_order(outcome.order_id) if outcome.order_id is not None else None
        data = outcome_json(outcome)
        data["order"] = None if order is None else {"id": order.id, "order_number": order.order_number,
                                                    "order_status": order.order_status.value}
        return self._clean(data)

    # ---- view_integrations ------------------------------------------------------------------

    def preview_order(self, user: User | None, deal_id: str) -> dict[str, Any]:
        """Show the order a deal would become, for review; writes nothing, so reading it needs
        only ``view_integrations`` (it reads the deal and its associations from HubSpot)."""
        import attrs

        self.require(user, VIEW_INTEGRATIONS, "Previewing an order from a deal")
        check_filters("preview", deal_id=deal_id)
        preview = self.runtime.preview_order(self.tenant_id, deal_id)
        existing = preview.existing_order
        return self._clean(json.loads(json.dumps({
            "deal_id": preview.deal_id,
            "draft": attrs.asdict(preview.draft),
            "warnings": list(preview.warnings),
            "existing_order": None if existing is None else
            {"id": existing.id, "order_number": existing.order_number,
             "order_status": existing.order_status.value},
            "company": preview.company,
            "company_kept": dict(preview.company_kept),
            "contacts": list(preview.contacts),
            # Mapped values the host has no order field for (e.g. the deal's amount): the
            # plugin keeps them with the deal's link.
            "kept_by_plugin": dict(preview.kept_by_plugin),
            # Sent back with the creation, it makes sure what is created is what was reviewed.
            "version": preview.version,
        }, default=lambda v: v.value if isinstance(v, OrderStatus) else str(v))))

    def settings(self, user: User | None) -> dict[str, Any]:
        """The tenant's current settings, every secret shown as ``***``."""
        from .settings import unstructure_settings

        self.require(user, VIEW_INTEGRATIONS, "Reading the HubSpot settings")
        return unstructure_settings(self.runtime.tenant(self.tenant_id).settings)

    def status(self, user: User | None) -> dict[str, Any]:
        """The status view: connection, sync activity, records, webhooks, queue, alerts."""
        self.require(user, VIEW_INTEGRATIONS, "Reading the HubSpot status")
        return build_status(self.runtime, self.tenant_id)

    def log(self, user: User | None, *, level: str | None = None, record: str | None = None,
            what: str | None = None, limit: int = 50, before: int | None = None) -> dict[str, Any]:
        """A page of the integration log, newest first; ``next_before`` fetches the next page."""
        from .store import LogLevel

        self.require(user, VIEW_INTEGRATIONS, "Reading the HubSpot log")
        problems = filter_problems(record=record, what=what, before=before)
        if level is not None and level not in {lv.value for lv in LogLevel}:
            problems.append(("level", f"must be one of {[lv.value for lv in LogLevel]}"))
        if not 1 <= limit <= 500:
            problems.append(("limit", "must be between 1 and 500"))
        if problems:
            raise ConfigError.from_problems(problems, what="log query")
        page = self.runtime.store_for(self.tenant_id).read_log(
            self.tenant_id, min_level=LogLevel(level) if level else None, record=record, what=what,
            limit=limit, before=before)
        return self._clean({
            "entries": [{"id": e.id, "level": str(e.level), "what": e.what, "record": e.record,
                         "message": e.message, "at": iso(e.created_at)} for e in page.entries],
            "next_before": page.next_before,
        })

    def history(self, user: User | None, *, kind: str | None = None, limit: int = 20,
                before: int | None = None) -> list[dict[str, Any]]:
        """Sync runs newest first, with counts and duration; ``before`` (a run's id) gives the
        runs after that one, the next page."""
        self.require(user, VIEW_INTEGRATIONS, "Reading the HubSpot sync history")
        check_filters("history query", kind=kind, before=before)
        if not 1 <= limit <= 500:
            raise ConfigError.from_problems([("limit", "must be between 1 and 500")], what="history query")
        runs = self.runtime.store_for(self.tenant_id).recent_runs(self.tenant_id, kind=kind, limit=limit,
                                                                  before=before)
        return list(self._clean([run_json(r) for r in runs]))

    def dead_letters(self, user: User | None, *, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Jobs that failed every retry, most recent first."""
        self.require(user, VIEW_INTEGRATIONS, "Reading the HubSpot dead letters")
        check_filters("query", kind=kind)
        if not 1 <= limit <= 1000:
            raise ConfigError.from_problems([("limit", "must be between 1 and 1000")], what="query")
        jobs = self.runtime.store_for(self.tenant_id).dead_letters(self.tenant_id, kind=kind, limit=limit)
        return list(self._clean([job_json(j) for j in jobs]))

    def conflict(self, user: User | None, conflict_id: int) -> dict[str, Any]:
        """One conflict, open or decided; ConfigError when the tenant has none with this id."""
        self.require(user, VIEW_INTEGRATIONS, "Reading a HubSpot conflict")
        check_filters("conflict", conflict_id=conflict_id)
        return dict(self._clean(conflict_json(self._conflict(conflict_id))))

    def company(self, user: User | None, company_id: str) -> dict[str, Any]:
        """A host company, its HubSpot link and the values the plugin keeps for it (the linked
        HubSpot company's domain, phone, address... that the host has no field for);
        ConfigError when the tenant has neither the company nor a link to it."""
        from ._host_ids import is_host_id

        self.require(user, VIEW_INTEGRATIONS, "Reading a HubSpot-linked company")
        if not isinstance(company_id, str) or not is_host_id(company_id):
            raise ConfigError.from_problems([("company_id", "must be a host id (letters, digits, '-', '_', "
                                              "'.'; at most 64)")], what="company")
        company = self.host.get_company(company_id)
        link = self.runtime.store_for(self.tenant_id).get_link_by_host(self.tenant_id, "company", company_id)
        if company is None and link is None:
            raise ConfigError(f"Tenant {self.tenant_id} has no company {company_id}.")
        return self._clean(company_json(company_id, company, link, self.host.capabilities().company_fields))

    def companies(self, user: User | None, *, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of the linked companies, oldest link first, each with the values the plugin
        keeps for it; ``next_after`` fetches the next page (None: the last one)."""
        self.require(user, VIEW_INTEGRATIONS, "Reading HubSpot-linked companies")
        check_filters("query", after=after)
        if not 1 <= limit <= 500:
            raise ConfigError.from_problems([("limit", "must be between 1 and 500")], what="query")
        context = self.runtime.tenant(self.tenant_id)
        links = context.store.links_page(self.tenant_id, context.portal_id, "company", after_id=after, limit=limit)
        fields = self.host.capabilities().company_fields
        return self._clean({
            "companies": [company_json(link.host_id, self.host.get_company(link.host_id), link, fields)
                          for link in links],
            "next_after": links[-1].id if len(links) == limit else None,
        })

    def _conflict(self, conflict_id: int) -> ConflictRecord:
        record = self.runtime.store_for(self.tenant_id).get_conflict(self.tenant_id, conflict_id)
        if record is None:
            raise ConfigError(f"Tenant {self.tenant_id} has no conflict {conflict_id}.")
        return record

    def conflicts(self, user: User | None, *, status: str | None = "open",
                  limit: int = 100) -> list[dict[str, Any]]:
        """Conflicts newest first: the open ones waiting for a person, or (``status=None``)
        the whole audit trail."""
        self.require(user, VIEW_INTEGRATIONS, "Reading HubSpot conflicts")
        if status not in (None, "open", "closed"):
            raise ConfigError.from_problems([("status", "must be open, closed or all")], what="query")
        if not 1 <= limit <= 1000:
            raise ConfigError.from_problems([("limit", "must be between 1 and 1000")], what="query")
        records = self.runtime.store_for(self.tenant_id).list_conflicts(
            self.tenant_id, status=status, limit=limit)
        return list(self._clean([conflict_json(r) for r in records]))
