"""Alerts on persistent failure: the tenant's admins hear once per incident, and again on recovery.

Five conditions open an incident: ``failed_runs`` (the last N finished sync runs all failed),
``auth`` (HubSpot refused the credentials on the latest run or connection check),
``dead_letters`` (N or more dead jobs), ``webhook_silence`` (no webhook event for longer
than the threshold while the scheduled sync keeps finding changes the webhooks should have
brought) and ``webhook_unreadable`` (an acknowledged webhook delivery could not be split into
events, so its events wait). Thresholds come from the tenant's ``alerts`` settings.

An incident notifies ``HostServices.notify_admins`` when it opens and says "resolved" when its
condition clears. If the admins heard about the same kind of incident (opened or resolved) less
than ``cooldown_minutes`` ago, a reopening is tracked but not notified yet (a flapping condition
must not flood the admins): if it still holds once the cooldown has passed it is notified then;
if it clears first, its recovery is silent too. Incident state lives in the store's checkpoints
table (one row per tenant, portal and kind), so every worker process sees the same incidents.

Each condition is checked on its own, so one that fails does not hide the others. A send that
raises counts as an attempt (the host may have delivered it before failing): it is tried again
only after the cooldown, doubled for each failure in a row. A send runs in a thread of its own
that the tick waits for at most :data:`SEND_WAIT`, so a host whose notification hangs does not
stop the job queue; while it hangs, that tenant's sends wait. Such a send counts as a failed
attempt until it returns; if it then turns out to have delivered, the incident is marked
notified, so the cooldown does not send the same alert again.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ._tenants import Tenants
    from .host import HostServices
    from .settings import Settings
    from .store import SqlStateStore

__all__ = ["ALERT_KINDS", "SEND_WAIT", "Incident", "Notice", "check_tenant", "open_incidents",
           "run_alerts"]

log = logging.getLogger(__name__)

ALERT_KINDS = ("failed_runs", "auth", "dead_letters", "webhook_silence", "webhook_unreadable")
_PREFIX = "alert."
#: How long a check waits for the host's ``notify_admins`` before going on without it.
SEND_WAIT = timedelta(seconds=2)
#: A send that failed is retried after the cooldown, doubled per failure in a row this often.
_MAX_DOUBLINGS = 5


@attrs.frozen
class Incident:
    """The stored state of one kind of incident of a tenant."""

    kind: str
    open: bool
    opened_at: datetime | None = None
    notified: bool = False
    last_notified_at: datetime | None = None
    detail: str = ""
    #: Sends of this incident that raised or hung, in a row (``last_notified_at`` is then the
    #: last attempt): each doubles the wait before the next.
    failed_sends: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (also the stored form)."""
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {"kind": self.kind, "open": self.open, "opened_at": iso(self.opened_at),
                "notified": self.notified, "last_notified_at": iso(self.last_notified_at),
                "detail": self.detail, "failed_sends": self.failed_sends}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Incident:
        """Read the stored form."""
        def moment(key: str) -> datetime | None:
            return datetime.fromisoformat(data[key]) if data.get(key) else None

        return cls(data["kind"], bool(data["open"]), moment("opened_at"), bool(data["notified"]),
                   moment("last_notified_at"), str(data.get("detail", "")),
                   int(data.get("failed_sends", 0)))


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


class _Box:
    """One call of the host's ``notify_admins`` in its own thread, and how it ended."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.started = time.monotonic()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.late = False  # the tick stopped waiting for it
        self.recorded = threading.Event()  # ... and has stored the incident as it then stood


class _Sender:
    """Calls ``notify_admins`` in a daemon thread and waits for it at most ``wait``.

    The alerts run in the tick, between the queue's drains: a send that never returns (an
    SMTP call without a timeout) would stop the queue of the whole process. Such a send keeps
    its thread; while it is outstanding, the tenant's next sends are not tried (``busy``), so
    at most one thread per tenant waits on the host.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outstanding: dict[str, _Box] = {}

    def send(self, tenant_id: str, host: HostServices, subject: str, message: str, level: str,
             wait: timedelta, on_late: Callable[[BaseException | None], None] | None = None,
             ) -> tuple[str, BaseException | None]:
        """``("sent", None)``, ``("failed", error)``, ``("pending", None)`` (still running after
        ``wait``: it may get through later; when it returns, ``on_late`` is called with its
        error or None, before the tenant's next send may start) or ``("busy", None)`` (not
        tried)."""
        with self._lock:
            hung = self._outstanding.get(tenant_id)
            if hung is not None:
                log.debug("HubSpot alert %r of tenant %s waits: the host's notify_admins has "
                          "not returned from %r", subject, tenant_id, hung.subject)
                return "busy", None
            box = self._outstanding[tenant_id] = _Box(subject)

        def call() -> None:
            try:
                host.notify_admins(subject, message, level)
            except BaseException as exc:  # even SystemExit: it is this send's outcome
                box.error = exc
            finally:
                with self._lock:
                    box.done.set()
                    late = box.late
                    if not late:  # the tick has the outcome: the tenant's next send may start
                        self._outstanding.pop(tenant_id, None)
                if late:
                    self._returned_late(tenant_id, box, on_late)

        threading.Thread(target=call, name=f"hubspot-alert-{tenant_id}", daemon=True).start()
        box.done.wait(wait.total_seconds())
        with self._lock:
            finished = box.done.is_set()
            box.late = not finished
        if not finished:
            log.warning("the host's notify_admins for tenant %s has not returned after %s s "
                        "(alert %r); the tick goes on without it, and the tenant's alerts wait "
                        "until it returns", tenant_id, wait.total_seconds(), subject)
            return "pending", None
        return ("sent", None) if box.error is None else ("failed", box.error)

    def _returned_late(self, tenant_id: str, box: _Box,
                       on_late: Callable[[BaseException | None], None] | None) -> None:
        """A send the tick stopped waiting for has returned: tell ``on_late`` once the tick has
        stored the incident (else the tick's save would undo what ``on_late`` stores), then
        let the tenant's next send start."""
        log.warning("the host's notify_admins for tenant %s returned after %.0f s (%s); the tenant's "
                    "alerts are sent again", tenant_id, time.monotonic() - box.started,
                    "failed" if box.error is not None else "delivered")
        if on_late is not None:
            box.recorded.wait(_RECORDED_WAIT)
            try:
                on_late(box.error)
            except Exception:  # the store is out: the attempt stays counted as failed
                log.exception("could not record the late outcome of HubSpot alert %r of tenant %s",
                              box.subject, tenant_id)
        with self._lock:
            self._outstanding.pop(tenant_id, None)

    def recorded(self, tenant_id: str) -> None:
        """The tick has stored the incident of the tenant's send still outstanding."""
        with self._lock:
            box = self._outstanding.get(tenant_id)
        if box is not None:
            box.recorded.set()


_SENDER = _Sender()
#: How long a late send's outcome waits for the tick to store the incident (it saves at once,
#: unless the store is out).
_RECORDED_WAIT = 30.0


def _may_send(incident: Incident, now: datetime, cooldown: timedelta) -> bool:
    """Whether the cooldown since the last message (or attempt) has passed; after sends that
    failed in a row it doubles with each, up to 32 times the cooldown."""
    if incident.last_notified_at is None:
        return True
    doublings = min(max(incident.failed_sends - 1, 0), _MAX_DOUBLINGS)
    return now - incident.last_notified_at >= cooldown * (1 << doublings)


@attrs.frozen
class _Check:
    """What one tenant's alert check works with."""

    store: SqlStateStore
    host: HostServices
    settings: Settings
    tenant_id: str
    now: datetime
    send_wait: timedelta

    def send(self, subject: str, message: str, level: str,
             on_late: Callable[[BaseException | None], None] | None = None) -> tuple[str, BaseException | None]:
        return _SENDER.send(self.tenant_id, self.host, subject, message, level, self.send_wait, on_late)

    def delivered_late(self, kind: str, subject: str, error: BaseException | None) -> None:
        """An opening's send that the tick stopped waiting for has returned: if it delivered,
        the admins heard, so the cooldown must not send it again (a failure stays counted)."""
        if error is not None:
            return
        incident = _load(self.store, self.tenant_id, self.settings.portal_id, kind)
        if incident.open and not incident.notified and incident.detail == subject:
            self.save(attrs.evolve(incident, notified=True, failed_sends=0))

    def save(self, incident: Incident) -> None:
        self.store.set_checkpoint(self.tenant_id, self.settings.portal_id,
                                  _PREFIX + incident.kind, json.dumps(incident.to_json()))

    def scrub(self, text: str) -> str:
        from ._secrets import scrub
        from .settings import secret_values

        return scrub(text, secret_values(self.settings))

    def apply(self, condition: _Condition) -> Notice | None:
        """Move the condition's incident on: open, notify (once the cooldown allows), resolve."""
        incident = _load(self.store, self.tenant_id, self.settings.portal_id, condition.kind)
        if condition.active:
            return self._holds(condition, incident)
        if condition.active is False and incident.open:
            return self._cleared(incident)
        return None

    def _holds(self, condition: _Condition, incident: Incident) -> Notice | None:
        opening = not incident.open
        if not opening and incident.notified:
            return None  # the admins heard about it
        if opening:
            incident = attrs.evolve(incident, open=True, opened_at=self.now, notified=False,
                                    detail=condition.subject)
        outcome = "quiet"
        if _may_send(incident, self.now, timedelta(minutes=self.settings.alerts.cooldown_minutes)):
            # An incident reopened within the cooldown gets here too once it has passed: the
            # admins' last word must not stay "Resolved" while it holds.
            outcome, error = self.send(condition.subject, condition.message, condition.level,
                                       functools.partial(self.delivered_late, condition.kind, condition.subject))
            if outcome == "sent":
                incident = attrs.evolve(incident, notified=True, last_notified_at=self.now,
                                        failed_sends=0, detail=condition.subject)
            elif outcome != "busy":
                # The host may have delivered it before failing: counted as an attempt, so it
                # is tried again only after the (doubling) cooldown, never every tick.
                incident = attrs.evolve(incident, last_notified_at=self.now,
                                        failed_sends=incident.failed_sends + 1,
                                        detail=condition.subject)
                self._log_failure(condition.subject, outcome, error)
        if not opening and outcome in ("quiet", "busy"):
            return None
        self.save(incident)
        if outcome == "pending":
            _SENDER.recorded(self.tenant_id)
        return Notice(self.tenant_id, condition.kind, "opened", condition.subject,
                      outcome == "sent")

    def _cleared(self, incident: Incident) -> Notice | None:
        subject = f"Resolved: {incident.detail}"
        outcome, error = "quiet", None
        if incident.notified:
            outcome, error = self.send(subject, "The condition cleared; the HubSpot integration "
                                       "works normally again.", "info")
            if outcome == "busy":
                return None  # nothing was tried: the next tick tries again
            if outcome != "sent":
                self._log_failure(subject, outcome, error)
        last = incident.last_notified_at if outcome == "quiet" else self.now
        failures = incident.failed_sends + (outcome in ("failed", "pending"))
        self.save(Incident(incident.kind, False, None, False, last, incident.detail,
                           0 if outcome == "sent" else failures))
        return Notice(self.tenant_id, incident.kind, "resolved", subject, outcome == "sent")

    def _log_failure(self, subject: str, outcome: str, error: BaseException | None) -> None:
        if error is not None:
            why = self.scrub(f"{type(error).__name__}: {_first_line(error)}")
            log.warning("HubSpot alert %r to the admins of tenant %s failed (%s); it is tried "
                        "again after the cooldown if its condition still holds",
                        self.scrub(subject), self.tenant_id, why)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "(no message)"


def check_tenant(store: SqlStateStore, host: HostServices, settings: Settings, tenant_id: str,
                 now: datetime, *, send_wait: timedelta = SEND_WAIT) -> list[Notice]:
    """Evaluate every alert condition of one tenant; notify openings and recoveries.

    Each condition is checked and notified on its own: one that fails (a store error, a
    ``notify_admins`` that raises) is logged and the others are still checked. A send waits
    at most ``send_wait`` for the host.
    """
    thresholds = settings.alerts
    conditions: dict[str, Callable[[], _Condition]] = {
        "failed_runs": lambda: _failed_runs(store, tenant_id, thresholds.failed_runs),
        "auth": lambda: _auth(store, tenant_id, settings.portal_id),
        "dead_letters": lambda: _dead_letters(store, tenant_id, thresholds.dead_letters),
        "webhook_silence": lambda: _webhook_silence(store, tenant_id, settings, now),
        "webhook_unreadable": lambda: _webhook_unreadable(store, tenant_id),
    }
    check = _Check(store, host, settings, tenant_id, now, send_wait)
    notices: list[Notice] = []
    failed: list[str] = []
    for kind, evaluate in conditions.items():
        try:
            notice = check.apply(evaluate())
        except Exception as exc:
            failed.append(f"{kind}: {type(exc).__name__}: {_first_line(exc)}")
            continue
        if notice is not None:
            notices.append(notice)
    if failed:
        # One line per tenant and tick, as one failure of the whole check was before.
        log.warning("checking HubSpot alerts of tenant %s failed for %s (the other alerts were "
                    "checked)", tenant_id, check.scrub("; ".join(failed)))
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
