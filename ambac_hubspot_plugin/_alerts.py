"""Alerts on persistent failure: the tenant's admins hear once per incident, and again on recovery.

Five conditions open an incident: ``failed_runs`` (the last N finished sync runs all failed),
``auth`` (HubSpot refused the credentials on the latest run or connection check),
``dead_letters`` (N or more dead jobs), ``webhook_silence`` (no webhook event for longer
than the threshold while the scheduled sync keeps finding changes the webhooks should have
brought) and ``webhook_unreadable`` (an acknowledged webhook delivery could not be split into
events, so its events wait). Thresholds come from the tenant's ``alerts`` settings.

An incident notifies ``HostServices.notify_admins`` when it opens and says "resolved" when its
condition clears. If the admins heard about the same kind of incident (opened or resolved) less
than ``cooldown_minutes`` ago, a reopening is tracked but not notified (a flapping condition must
not flood the admins), and its recovery is silent too. Incident state lives in the store's
checkpoints table (one row per tenant, portal and kind), so every worker process sees the same
incidents.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ._tenants import Tenants
    from .host import HostServices
    from .settings import Settings
    from .store import SqlStateStore

__all__ = ["ALERT_KINDS", "Incident", "Notice", "check_tenant", "open_incidents", "run_alerts"]

log = logging.getLogger(__name__)

ALERT_KINDS = ("failed_runs", "auth", "dead_letters", "webhook_silence", "webhook_unreadable")
_PREFIX = "alert."


@attrs.frozen
class Incident:
    """The stored state of one kind of incident of a tenant."""

    kind: str
    open: bool
    opened_at: datetime | None = None
    notified: bool = False
    last_notified_at: datetime | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (also the stored form)."""
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {"kind": self.kind, "open": self.open, "opened_at": iso(self.opened_at),
                "notified": self.notified, "last_notified_at": iso(self.last_notified_at),
                "detail": self.detail}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Incident:
        """Read the stored form."""
        def moment(key: str) -> datetime | None:
            return datetime.fromisoformat(data[key]) if data.get(key) else None

        return cls(data["kind"], bool(data["open"]), moment("opened_at"), bool(data["notified"]),
                   moment("last_notified_at"), str(data.get("detail", "")))


@attrs.frozen
class Notice:
    """One notification sent (or held back by the cooldown)."""

    tenant_id: str
    kind: str
    event: str  # opened, resolved
    subject: str
    sent: bool


@attrs.frozen
class _Condition:
    """``active``: True the incident holds, False it is clear, None no new evidence either way."""

    kind: str
    active: bool | None
    subject: str = ""
    message: str = ""
    level: str = "error"


def _failed_runs(store: SqlStateStore, tenant_id: str, threshold: int) -> _Condition:
    from ._checks import doc
    from .store import RunStatus

    finished = [r for r in store.recent_runs(tenant_id, limit=threshold + 5)
                if r.status is not RunStatus.RUNNING][:threshold]
    if not finished:
        return _Condition("failed_runs", None)
    if len(finished) == threshold and all(r.status is RunStatus.FAILED for r in finished):
        return _Condition(
            "failed_runs", True, f"HubSpot sync failed {threshold} times in a row",
            f"The last {threshold} sync runs failed. Latest error: {finished[0].error}. "
            "Open Settings > Integrations > HubSpot, run Test connection, and see "
            f"{doc('troubleshooting.md')}.")
    return _Condition("failed_runs", False if finished[0].status is RunStatus.SUCCEEDED else None)


def _auth(store: SqlStateStore, tenant_id: str, portal_id: str) -> _Condition:
    from ._checks import load_last_report
    from .store import RunStatus

    evidence: list[tuple[datetime, bool | None, str]] = []
    finished = [r for r in store.recent_runs(tenant_id, limit=5) if r.status is not RunStatus.RUNNING]
    if finished:
        run = finished[0]
        refused = (run.error or "").startswith("HubSpotAuthError")
        evidence.append((run.ended_at or run.started_at,
                         True if refused else (False if run.status is RunStatus.SUCCEEDED else None),
                         run.error or ""))
    report = load_last_report(store, tenant_id, portal_id)
    if report is not None:
        token = next((c for c in report.checks if c.name == "token"), None)
        if token is not None and token.status == "ok":
            evidence.append((report.checked_at, False, token.summary))
        elif token is not None and "refused the credentials" in token.summary:
            evidence.append((report.checked_at, True, token.summary))
    if not evidence:
        return _Condition("auth", None)
    _when, active, why = max(evidence, key=lambda e: e[0])
    if active:
        return _Condition("auth", True, "HubSpot refused the integration's credentials",
                          f"HubSpot answered 401/403: {why}. The token was revoked, expired or lost a "
                          "scope; paste a new one in the HubSpot integration settings.")
    return _Condition("auth", active)


def _dead_letters(store: SqlStateStore, tenant_id: str, threshold: int) -> _Condition:
    from .store import JobState

    dead = sum(n for (state, _kind), n in store.depths(tenant_id).items() if state == JobState.DEAD)
    if dead >= threshold:
        return _Condition("dead_letters", True, f"{dead} HubSpot sync jobs gave up",
                          f"{dead} jobs failed every retry and wait in the dead-letter list. Fix "
                          "the cause shown in the integration log, then replay them.", "warning")
    return _Condition("dead_letters", False)


def _webhook_unreadable(store: SqlStateStore, tenant_id: str) -> _Condition:
    unreadable = store.webhook_backlog(tenant_id).unreadable
    if unreadable:
        return _Condition(
            "webhook_unreadable", True, f"{unreadable} HubSpot webhook deliveries could not be read",
            f"{unreadable} webhook deliveries were acknowledged and stored but could not be split "
            "into events; they are kept. The integration log's webhook.unreadable entries say "
            "why. After fixing the cause (usually by upgrading the plugin), replay all dead "
            "letters to read them again.")
    return _Condition("webhook_unreadable", False)


def _webhook_silence(store: SqlStateStore, tenant_id: str, settings: Settings,
                     now: datetime) -> _Condition:
    from ._webhooks import webhook_secret
    from .store import RunStatus

    if webhook_secret(settings) is None:
        return _Condition("webhook_silence", False)  # webhooks are not set up: silence is expected
    stats = [s for s in store.webhook_portal_stats(tenant_id) if s.portal_id == settings.portal_id]
    last = max((s.last_received_at for s in stats if s.last_received_at), default=None)
    threshold = timedelta(minutes=settings.alerts.webhook_silence_minutes)
    if last is not None and now - last <= threshold:
        return _Condition("webhook_silence", False)
    runs = [r for r in store.recent_runs(tenant_id, kind="incremental", limit=20)
            if r.status is RunStatus.SUCCEEDED and (last is None or r.started_at > last)]
    found = [r for r in runs if r.created + r.updated > 0]
    if not found:
        return _Condition("webhook_silence", False if last is None else None)
    silent_since = last or min(r.started_at for r in runs)
    if last is None and now - silent_since <= threshold:
        return _Condition("webhook_silence", None)
    changes = sum(r.created + r.updated for r in found)
    since = f"since {last.isoformat()}" if last else "at all"
    return _Condition(
        "webhook_silence", True, "HubSpot webhooks have gone silent",
        f"No webhook event arrived {since}, yet the scheduled sync found {changes} changed "
        "record(s). Check the webhook target URL and subscriptions in the HubSpot app "
        "(Test connection prints the URL).", "warning")


def _load(store: SqlStateStore, tenant_id: str, portal_id: str, kind: str) -> Incident:
    saved = store.get_checkpoint(tenant_id, portal_id, _PREFIX + kind)
    return Incident(kind, False) if saved is None else Incident.from_json(json.loads(saved.value))


def open_incidents(store: SqlStateStore, tenant_id: str, portal_id: str) -> list[Incident]:
    """The tenant's open incidents (for the status view)."""
    return [i for kind in ALERT_KINDS if (i := _load(store, tenant_id, portal_id, kind)).open]


def check_tenant(store: SqlStateStore, host: HostServices, settings: Settings, tenant_id: str,
                 now: datetime) -> list[Notice]:
    """Evaluate every alert condition of one tenant; notify openings and recoveries."""
    thresholds = settings.alerts
    conditions = [
        _failed_runs(store, tenant_id, thresholds.failed_runs),
        _auth(store, tenant_id, settings.portal_id),
        _dead_letters(store, tenant_id, thresholds.dead_letters),
        _webhook_silence(store, tenant_id, settings, now),
        _webhook_unreadable(store, tenant_id),
    ]
    cooldown = timedelta(minutes=thresholds.cooldown_minutes)
    notices: list[Notice] = []
    for condition in conditions:
        incident = _load(store, tenant_id, settings.portal_id, condition.kind)
        if condition.active and not incident.open:
            quiet = incident.last_notified_at is not None and now - incident.last_notified_at < cooldown
            if not quiet:
                host.notify_admins(condition.subject, condition.message, condition.level)
            notices.append(Notice(tenant_id, condition.kind, "opened", condition.subject, not quiet))
            incident = Incident(condition.kind, True, now, not quiet,
                                incident.last_notified_at if quiet else now, condition.subject)
        elif condition.active is False and incident.open:
            subject = f"Resolved: {incident.detail}"
            if incident.notified:
                host.notify_admins(subject, "The condition cleared; the HubSpot integration works "
                                   "normally again.", "info")
            notices.append(Notice(tenant_id, condition.kind, "resolved", subject, incident.notified))
            incident = Incident(condition.kind, False, None, False,
                                now if incident.notified else incident.last_notified_at,
                                incident.detail)
        else:
            continue
        store.set_checkpoint(tenant_id, settings.portal_id, _PREFIX + condition.kind,
                             json.dumps(incident.to_json()))
    return notices


def run_alerts(tenants: Tenants, clock: Callable[[], datetime] | None = None) -> list[Notice]:
    """Check the alerts of every enabled tenant (called from the runtime's tick)."""
    now = (clock or tenants.clock)()
    notices: list[Notice] = []
    for tenant in tenants.enabled():
        try:
            notices.extend(check_tenant(tenant.store, tenant.host, tenant.settings,
                                        tenant.tenant_id, now))
        except Exception:  # one tenant's broken store must not stop the others' alerts
            log.exception("checking HubSpot alerts of tenant %s failed", tenant.tenant_id)
    return notices
