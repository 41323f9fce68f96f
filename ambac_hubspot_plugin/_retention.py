"""Bounded tables: each enabled tenant's old rows are pruned by the periodic task.

The tenant's ``retention`` settings say how old a row of each growing table may get
(:class:`~.settings.RetentionSettings`); the store deletes older ones in small chunks
(``SqlStateStore.prune``). The runtime's tick calls :func:`run_retention`, which prunes a tenant
at most every ``prune_every_minutes``: the time of its last complete prune is a checkpoint, so
every worker process sharing the store sees it. A prune the tick's time budget cut short keeps
the old checkpoint and goes on at the next tick. The admin API's ``prune`` (and the CLI's
``ambac-hubspot prune``) runs one now, or counts what it would remove.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._tenants import TenantContext, Tenants
    from .settings import RetentionSettings
    from .store import SqlStateStore
    from .store._retention import PruneReport, RetentionAges

__all__ = ["CHECKPOINT", "TICK_BUDGET", "prune_tenant", "retention_ages", "retention_status",
           "run_retention"]

log = logging.getLogger(__name__)

#: The checkpoint holding the time of the tenant's last complete prune (ISO 8601).
CHECKPOINT = "retention.last_prune"
#: How long one tick may spend pruning one tenant; what is left goes on at the next tick.
TICK_BUDGET = timedelta(seconds=2)


def retention_ages(retention: RetentionSettings) -> RetentionAges:
    """The store's retention record of a tenant's ``retention`` settings."""
    from .store._retention import RetentionAges

    return RetentionAges(webhook_events=timedelta(days=retention.webhook_events_days),
                         integration_log=timedelta(days=retention.log_days),
                         sync_runs=timedelta(days=retention.sync_runs_days),
                         dead_jobs=timedelta(days=retention.dead_jobs_days))


def prune_tenant(tenant: TenantContext, *, dry_run: bool = False,
                 deadline: datetime | None = None) -> PruneReport:
    """Prune one tenant's store now (``dry_run``: count only); a complete prune is recorded
    as the tenant's last one."""
    store = tenant.store
    report = store.prune(tenant.tenant_id, retention_ages(tenant.settings.retention),
                         dry_run=dry_run, deadline=deadline)
    if report.complete and not dry_run:
        store.set_checkpoint(tenant.tenant_id, tenant.portal_id, CHECKPOINT,
                             report.at.isoformat())
    return report


def _last_prune(store: SqlStateStore, tenant: TenantContext) -> datetime | None:
    saved = store.get_checkpoint(tenant.tenant_id, tenant.portal_id, CHECKPOINT)
    return None if saved is None else datetime.fromisoformat(saved.value)


def run_retention(tenants: Tenants,
                  clock: Callable[[], datetime] | None = None) -> dict[str, PruneReport]:
    """Prune every enabled tenant whose last prune is ``prune_every_minutes`` old (called from
    the runtime's tick); returns the reports of the tenants it pruned."""
    now = (clock or tenants.clock)()
    pruned: dict[str, PruneReport] = {}
    for tenant in tenants.enabled():
        try:
            last = _last_prune(tenant.store, tenant)
            interval = timedelta(minutes=tenant.settings.retention.prune_every_minutes)
            if last is not None and now - last < interval:
                continue
            report = prune_tenant(tenant, deadline=now + TICK_BUDGET)
        except Exception:  # one tenant's broken store must not stop the others' pruning
            log.exception("pruning the HubSpot store of tenant %s failed", tenant.tenant_id)
            continue
        pruned[tenant.tenant_id] = report
        if report.total:
            log.info("pruned %s old rows of tenant %s: %s", report.total, tenant.tenant_id,
                     report.rows)
    return pruned


def retention_status(tenant: TenantContext) -> dict[str, Any]:
    """The status view's ``retention``: the settings, the last prune, and per pruned table its
    rows and the rows due for pruning."""
    import attrs

    store = tenant.store
    due = store.prune(tenant.tenant_id, retention_ages(tenant.settings.retention), dry_run=True)
    sizes = store.table_sizes(tenant.tenant_id)
    last = _last_prune(store, tenant)
    return {
        "settings": attrs.asdict(tenant.settings.retention),
        "last_prune_at": last.isoformat() if last else None,
        "tables": {name: {"rows": sizes[name], "due": due.rows[name]} for name in sizes},
    }
