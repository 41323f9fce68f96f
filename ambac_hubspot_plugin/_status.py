"""The status view of a tenant: connection, sync activity, records in sync, webhooks, queue,
dead letters, conflicts, alerts, retention and log, as JSON-ready data without secrets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._job_kinds import RECHECK_KIND, RETRY_KIND
from ._views import conflict_json, iso, job_json, run_json, scrub_secrets, secret_values
from ._webhooks import JOB_KIND as WEBHOOK_OBJECT_KIND
from ._webhooks import webhook_secret

if TYPE_CHECKING:
    from ._tenants import Tenants
    from .settings import Settings
    from .store import SqlStateStore

__all__ = ["EXCLUDED_CHECKPOINT", "build_status", "store_status"]

#: Where the last sync run keeps its count of deals outside the trigger stages.
EXCLUDED_CHECKPOINT = "status.excluded"
# Job kinds whose failures mean a record is failing to sync (the rest are housekeeping).
_RECORD_JOB_KINDS = (RETRY_KIND, RECHECK_KIND, WEBHOOK_OBJECT_KIND)


def _record_counts(store: SqlStateStore, tenant_id: str, portal_id: str) -> dict[str, Any]:
    """Records in sync, failing, and excluded (HubSpot's sync-health vocabulary)."""
    from .store import sync_health

    in_sync, failing = sync_health(store, tenant_id, portal_id, record_kinds=_RECORD_JOB_KINDS,
                                   retry_kind=RETRY_KIND)
    saved = store.get_checkpoint(tenant_id, portal_id, EXCLUDED_CHECKPOINT)
    excluded: dict[str, Any] = (json.loads(saved.value) if saved is not None else
                                {"count": None, "as_of": None,
                                 "note": "counted by the next sync run from the admin API or CLI"})
    return {"in_sync": in_sync, "failing": failing, "excluded": excluded}


def _webhook_health(store: SqlStateStore, tenant_id: str, settings: Settings,
                    now: datetime) -> dict[str, Any]:
    stats = [s for s in store.webhook_portal_stats(tenant_id) if s.portal_id == settings.portal_id]
    last = max((s.last_received_at for s in stats if s.last_received_at), default=None)
    refusals = {r.reason: {"refused": r.refused, "last_refused_at": iso(r.last_refused_at)}
                for r in store.webhook_refusal_stats(tenant_id)}
    backlog = store.webhook_backlog(tenant_id)
    return {
        "configured": webhook_secret(settings) is not None,
        "last_event_at": iso(last),
        "silent_for_seconds": (now - last).total_seconds() if last else None,
        "silence_threshold_seconds": settings.alerts.webhook_silence_minutes * 60,
        "accepted": sum(s.accepted for s in stats),
        "duplicates": sum(s.duplicates for s in stats),
        "echoes": sum(s.echoes for s in stats),
        "refused": refusals,
        # Acknowledged deliveries the worker has not split into events yet, and ones it could
        # not read (kept; see the log's webhook.unreadable entries and `replay --all`).
        "waiting": {"deliveries": backlog.batches, "events": backlog.events,
                    "oldest_received_at": iso(backlog.oldest_received_at)},
        "unreadable_deliveries": backlog.unreadable,
    }


def build_status(tenants: Tenants, tenant_id: str, *, log_limit: int = 20) -> dict[str, Any]:
    """The whole status view of a tenant as JSON-ready data (no secrets)."""
    from ._alerts import open_incidents
    from ._checks import load_last_report
    from ._retention import retention_status

    if not tenants.is_enabled(tenant_id):
        return {"tenant_id": tenant_id, "enabled": False}
    tenant = tenants.tenant(tenant_id)
    settings = tenant.settings
    store = tenant.store
    now = tenants.clock()
    depths = store.depths(tenant_id)
    report = load_last_report(store, tenant_id, settings.portal_id)
    dead = store.dead_letters(tenant_id, limit=20)
    # Counted by the store: a page of 1,000 decoded conflicts cost the admin pages ~25 ms.
    conflicts = {"open": store.count_conflicts(tenant_id, status="open"),
                 "items": [conflict_json(c) for c in store.list_conflicts(tenant_id, status="open", limit=20)]}
    runs = store.recent_runs(tenant_id, limit=10)
    last_ok = next((r for r in runs if str(r.status) == "succeeded"), None)
    status = {
        "tenant_id": tenant_id,
        "enabled": True,
        "portal_id": settings.portal_id,
        "connection": {
            "state": "never checked" if report is None else ("ok" if report.ok else "failed"),
            "last_check": report.to_json() if report else None,
        },
        "sync": {
            "running": any(str(r.status) == "running" for r in runs),
            "last_success_at": iso(last_ok.ended_at) if last_ok else None,
            "interval_seconds": settings.sync_interval_seconds,
        },
        "records": _record_counts(store, tenant_id, settings.portal_id),
        "webhooks": _webhook_health(store, tenant_id, settings, now),
        "queue": _by_state(depths),
        "recent_runs": [run_json(r) for r in runs],
        "dead_letters": {"count": sum(n for (s, _k), n in depths.items() if str(s) == "dead"),
                         "recent": [job_json(j) for j in dead]},
        "conflicts": conflicts,
        "alerts": [i.to_json() for i in open_incidents(store, tenant_id, settings.portal_id)],
        # The retention settings, each pruned table's rows and how many are due for pruning.
        "retention": retention_status(tenant),
        "log": [{"id": e.id, "level": str(e.level), "what": e.what, "record": e.record,
                 "message": e.message, "at": iso(e.created_at)}
                for e in store.read_log(tenant_id, limit=log_limit).entries],
    }
    return dict(scrub_secrets(status, secret_values(settings)))


def _by_state(depths: Mapping[tuple[Any, str], int]) -> dict[str, dict[str, int]]:
    """Queue depths as ``{state: {kind: count}}``."""
    by_state: dict[str, dict[str, int]] = {}
    for (state, kind), count in depths.items():
        by_state.setdefault(str(state), {})[kind] = count
    return by_state


def store_status(store: SqlStateStore, tenant_id: str) -> dict[str, Any]:
    """Return a tenant's queue depths, recent runs and log from its store, as JSON-ready data."""
    depths = _by_state(store.depths(tenant_id))
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
