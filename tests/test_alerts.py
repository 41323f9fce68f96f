"""Alerts on persistent failure: each condition notifies once, respects its cooldown, and says resolved.

Time comes from an injected clock that the tests move; nothing sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from ambac_hubspot_plugin import _alerts
from ambac_hubspot_plugin._alerts import check_tenant, open_incidents, run_alerts
from ambac_hubspot_plugin._checks import CheckReport, CheckResult, save_report
from ambac_hubspot_plugin._retry import RetryPolicy
from ambac_hubspot_plugin._settings_model import MAX_FAILED_RUNS, MAX_MINUTES
from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.settings import parse_settings
from ambac_hubspot_plugin.store import InboxEventDraft, RunStatus, open_store

from ._clock import ManualClock
from .test_admin import world  # noqa: F401  # a fixture

PORTAL = "123"


Clock = ManualClock


@attrs.define
class Bench:
    """A store on the clock, a reference host tenant to notify, and settings with thresholds."""

    clock: Clock
    store: Any
    host: ReferenceHost
    tenant: int
    raw: dict

    @property
    def settings(self):
        return parse_settings(self.raw)

    def check(self) -> list:
        return check_tenant(self.store, self.host.services(self.tenant), self.settings, self.tenant,
                            self.clock())

    def notes(self) -> list[tuple[str, str]]:
        return [(n.level, n.subject) for n in self.host.notifications(self.tenant)]

    def run(self, ok: bool, *, error: str = "HubSpotUnavailableError: 503", created: int = 0,
            kind: str = "incremental") -> None:
        run = self.store.start_run(self.tenant, kind)
        self.clock.advance(seconds=30)
        self.store.finish_run(run.id, RunStatus.SUCCEEDED if ok else RunStatus.FAILED,
                              created=created, error=None if ok else error)
        self.clock.advance(minutes=15)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """Store and host sharing one hand-moved clock; alerts: 3 failed runs, 2 dead letters,
    30 minutes of webhook silence, 60 minutes cooldown."""
    clock = Clock()
    store = open_store(f"sqlite:///{tmp_path}/store.sqlite3", clock=clock)
    with ReferenceHost(tmp_path / "host", clock=clock) as host:
        tenant = host.create_tenant("Acme")
        raw = {"portal_id": PORTAL, "credentials": {"kind": "private_app", "access_token": "tok"},
               "alerts": {"failed_runs": 3, "dead_letters": 2, "webhook_silence_minutes": 30,
                          "cooldown_minutes": 60}}
        yield Bench(clock, store, host, tenant, raw)
    store.close()


def test_consecutive_failed_runs_notify_once_then_resolve(bench):
    """Two failures: quiet; the third: one error notification; more checks: no repeat; a success: resolved."""
    bench.run(False)
    bench.run(False)
    assert bench.check() == [] and bench.notes() == []
    bench.run(False)
    (notice,) = bench.check()
    assert (notice.kind, notice.event, notice.sent) == ("failed_runs", "opened", True)
    assert bench.notes() == [("error", "HubSpot sync failed 3 times in a row")]
    assert "503" in bench.host.notifications(bench.tenant)[0].message
    bench.run(False)
    assert bench.check() == [] and len(bench.notes()) == 1
    assert [i.kind for i in open_incidents(bench.store, bench.tenant, PORTAL)] == ["failed_runs"]
    bench.run(True)
    (resolved,) = bench.check()
    assert resolved.event == "resolved"
    assert bench.notes()[-1] == ("info", "Resolved: HubSpot sync failed 3 times in a row")
    assert open_incidents(bench.store, bench.tenant, PORTAL) == []


def test_a_running_run_neither_opens_nor_resolves(bench):
    """Runs still running are ignored: three failures then a running run keep the incident open."""
    for _ in range(3):
        bench.run(False)
    bench.check()
    bench.store.start_run(bench.tenant, "incremental")
    assert bench.check() == []
    assert [i.kind for i in open_incidents(bench.store, bench.tenant, PORTAL)] == ["failed_runs"]


def test_cooldown_silences_a_flapping_incident_until_it_has_passed(bench):
    """Reopened within the cooldown: tracked, not notified (nor its recovery); after it: notified."""
    for _ in range(3):
        bench.run(False)
    bench.check()
    bench.run(True)
    bench.check()
    assert len(bench.notes()) == 2  # opened, resolved
    for _ in range(3):
        bench.run(False)  # 3 x 15.5 minutes: still inside the 60-minute cooldown
    (quiet,) = bench.check()
    assert (quiet.event, quiet.sent) == ("opened", False) and len(bench.notes()) == 2
    bench.run(True)
    (quiet_recovery,) = bench.check()
    assert (quiet_recovery.event, quiet_recovery.sent) == ("resolved", False) and len(bench.notes()) == 2
    bench.clock.advance(minutes=61)
    for _ in range(3):
        bench.run(False)
    (loud,) = bench.check()
    assert loud.sent and len(bench.notes()) == 3


def test_authentication_failure_alerts_at_once(bench):
    """One run refused with 401 opens the auth incident (no need for three); a success resolves it."""
    bench.run(False, error="HubSpotAuthError: HubSpot refused the token (status=401)")
    (notice,) = bench.check()
    assert notice.kind == "auth" and bench.notes() == [("error", "HubSpot refused the integration's credentials")]
    bench.run(True)
    assert [n.event for n in bench.check()] == ["resolved"]


def test_a_refused_connection_check_opens_the_auth_incident(bench):
    """A saved connection test whose token check was refused is evidence too; a passing one clears it."""
    refused = CheckReport(bench.tenant, bench.clock(), (
        CheckResult("token", "failed", "HubSpot refused the credentials (status=401)"),))
    save_report(bench.store, PORTAL, refused)
    assert [n.kind for n in bench.check()] == ["auth"]
    bench.clock.advance(minutes=5)
    save_report(bench.store, PORTAL, CheckReport(bench.tenant, bench.clock(), (
        CheckResult("token", "ok", "HubSpot accepted the credentials"),)))
    assert [n.event for n in bench.check()] == ["resolved"]


def _dead_job(bench: Bench, key: str) -> int:
    job_id = bench.store.enqueue(bench.tenant, "inbound.deal", {"deal_id": key}, dedupe_key=key,
                                 max_attempts=1)
    (job,) = bench.store.claim("w", kinds=["inbound.deal"])
    bench.store.fail(job.id, "w", "boom")
    return job_id


def test_dead_letters_piling_up_warn_then_resolve_after_replay(bench):
    """One dead letter: quiet; two: a warning; replaying them: resolved."""
    _dead_job(bench, "deal:1")
    assert bench.check() == []
    _dead_job(bench, "deal:2")
    (notice,) = bench.check()
    assert notice.kind == "dead_letters" and bench.notes() == [("warning", "2 HubSpot sync jobs gave up")]
    bench.store.replay_all(bench.tenant)
    assert [n.event for n in bench.check()] == ["resolved"]


def _webhook_event(bench: Bench, n: int) -> None:
    draft = InboxEventDraft(portal_id=PORTAL, dedupe_key=f"e{n}", event_id=n,
                            subscription_type="deal.propertyChange", object_type="deal",
                            object_id=str(n), property_name="amount",
                            occurred_at_ms=int(bench.clock().timestamp() * 1000), payload="{}")
    bench.store.accept_webhook_batch(bench.tenant, [draft], job_kind="webhook.object")


def test_webhook_silence_while_sync_finds_changes_warns_then_resolves_on_an_event(bench):
    """Silent webhooks and a sync finding changes past the threshold warn; the next event resolves."""
    bench.raw["webhook_client_secret"] = "shh-secret"
    _webhook_event(bench, 1)
    bench.clock.advance(minutes=10)
    bench.run(True, created=2)  # silence of 10 min so far: under the 30-minute threshold
    assert bench.check() == []
    bench.clock.advance(minutes=10)
    bench.run(True, created=1)
    (notice,) = bench.check()
    assert notice.kind == "webhook_silence" and bench.notes() == [("warning", "HubSpot webhooks have gone silent")]
    assert "found 3 changed" in bench.host.notifications(bench.tenant)[0].message
    _webhook_event(bench, 2)
    assert [n.event for n in bench.check()] == ["resolved"]


def test_webhook_silence_without_changes_or_without_webhooks_is_no_alert(bench):
    """A quiet portal (sync finds nothing) is not an incident; nor silence when no secret is set."""
    bench.raw["webhook_client_secret"] = "shh-secret"
    _webhook_event(bench, 1)
    bench.clock.advance(hours=3)
    bench.run(True, created=0)
    assert bench.check() == []
    del bench.raw["webhook_client_secret"]
    bench.run(True, created=5)
    assert bench.check() == []


def test_the_runtime_tick_runs_the_alert_checks(world):  # noqa: F811  # fixture
    """The hubspot.tick periodic task checks alerts: three failed runs notify the tenant's admins."""
    store = world.store
    for _ in range(3):
        run = store.start_run(world.tenant, "backfill")
        store.finish_run(run.id, RunStatus.FAILED, error="HubSpotUnavailableError: 503")
    (task,) = [t for t in world.host.periodic_tasks() if t.name == "hubspot.tick"]
    world.hubspot.faults.fail_next(100, status=503)  # the sync the tick queues fails as well
    try:
        task.run(world.host.services(world.tenant))
    finally:
        world.hubspot.faults.clear()
    subjects = [n.subject for n in world.host.notifications(world.tenant)]
    assert "HubSpot sync failed 3 times in a row" in subjects
    assert run_alerts(world.runtime) == [], "the open incident is not notified twice"


def test_an_unreadable_webhook_delivery_alerts_until_it_is_read(bench):
    """A stored delivery the split cannot read opens an error incident; once a retry reads it
    (after the fix), the incident resolves."""
    import sqlalchemy as sa

    from ambac_hubspot_plugin._webhooks import INBOX_JOB_KIND, JOB_KIND
    from ambac_hubspot_plugin._webhooks import split_drafts as _split_drafts

    ok = b'[{"portalId": 123, "objectId": 9, "occurredAt": 1714564800000, "subscriptionType": "deal.creation"}]'
    bench.store.receive_webhook_batch(bench.tenant, PORTAL, ok.replace(b'"objectId": 9, ', b""),
                                      events=1, latest_occurred_ms=1, job_kind=INBOX_JOB_KIND)
    done = bench.store.expand_webhook_batches(bench.tenant, _split_drafts, job_kind=JOB_KIND)
    assert (done.batches, done.unreadable) == (0, 1)
    (notice,) = bench.check()
    assert notice.kind == "webhook_unreadable"
    assert bench.notes() == [("error", "1 HubSpot webhook deliveries could not be read")]
    assert bench.check() == []  # still unreadable: no repeat
    with bench.store.engine.begin() as conn:  # what a fixed version would read: the same events
        conn.execute(sa.text("UPDATE hubspot_webhook_batches SET body = :body"), {"body": ok})
    assert bench.store.retry_unreadable_webhook_batches(bench.tenant, job_kind=INBOX_JOB_KIND) == 1
    assert bench.store.expand_webhook_batches(bench.tenant, _split_drafts, job_kind=JOB_KIND).accepted == 1
    assert [n.event for n in bench.check()] == ["resolved"]


def test_a_reopened_incident_that_persists_past_the_cooldown_is_notified_then(bench):
    """Opened, resolved, back 45 minutes later (inside the 60-minute cooldown: tracked, quiet)
    and still failing a day later: the admins hear about it once the cooldown has passed, and
    only once; their last message is not "Resolved" while it holds."""
    for _ in range(3):
        bench.run(False)
    bench.check()
    bench.run(True)
    bench.check()
    for _ in range(3):
        bench.run(False)
    (quiet,) = bench.check()
    assert not quiet.sent and len(bench.notes()) == 2
    for _ in range(96):  # a day of failing runs, checked after each
        bench.run(False)
        bench.check()
    assert [s for _l, s in bench.notes()] == [
        "HubSpot sync failed 3 times in a row", "Resolved: HubSpot sync failed 3 times in a row",
        "HubSpot sync failed 3 times in a row"]
    bench.run(True)
    assert [n.event for n in bench.check()] == ["resolved"]
    assert bench.notes()[-1] == ("info", "Resolved: HubSpot sync failed 3 times in a row")


class FlakySink:
    """The reference host's services with a notify_admins that fails for some alerts: after
    delivering (the host's bookkeeping after the send fails) or before (it refuses it)."""

    def __init__(self, services: Any, *, refuse: str | None = None,
                 fail_after_send: bool = False, secret: str = "") -> None:
        self._services, self._refuse, self._after, self._secret = (
            services, refuse, fail_after_send, secret)

    def notify_admins(self, subject: str, message: str, level: str) -> None:
        if self._refuse and self._refuse in subject:
            raise ValueError(f"notification refused by the host's channel {self._secret}")
        self._services.notify_admins(subject, message, level)
        if self._after:
            raise RuntimeError("host failed after sending")


def _tick(bench: Bench, sink: Any, seconds: float = 10) -> list:
    bench.clock.advance(seconds=seconds)
    return check_tenant(bench.store, sink, bench.settings, bench.tenant, bench.clock())


def test_a_sink_that_raises_after_sending_is_tried_again_only_after_the_cooldown(bench):
    """A send that raises may have been delivered: it is not repeated every tick (10 s), but
    once the cooldown has passed, then after twice the cooldown, and so on."""
    for _ in range(3):
        bench.run(False)
    sink = FlakySink(bench.host.services(bench.tenant), fail_after_send=True)
    for _ in range(6):  # a minute of ticks
        _tick(bench, sink)
    assert len(bench.notes()) == 1
    _tick(bench, sink, 60 * 60)  # over an hour after the first attempt
    assert len(bench.notes()) == 2
    _tick(bench, sink, 60 * 60)  # the wait has doubled: not yet
    assert len(bench.notes()) == 2
    _tick(bench, sink, 60 * 60)
    assert len(bench.notes()) == 3
    assert [i.failed_sends for i in open_incidents(bench.store, bench.tenant, PORTAL)] == [3]


def test_a_sink_refusing_one_alert_still_gets_the_other_kinds_and_the_log_has_no_secret(
        bench, caplog):
    """The host refuses the failed_runs alert: the dead-letter alert is still checked and
    sent, and the refusal is logged once, without the token its message carried."""
    token = "pat-na1-0123456789abcdef"
    bench.raw["credentials"]["access_token"] = token
    for _ in range(3):
        bench.run(False)
    _dead_job(bench, "deal:1")
    _dead_job(bench, "deal:2")
    sink = FlakySink(bench.host.services(bench.tenant), refuse="sync failed", secret=token)
    with caplog.at_level("WARNING", logger="ambac_hubspot_plugin._alerts"):
        for _ in range(6):
            _tick(bench, sink)
    assert [s for _l, s in bench.notes()] == ["2 HubSpot sync jobs gave up"]
    refusals = [r for r in caplog.records if "could not be sent" in r.getMessage()
                or "failed" in r.getMessage()]
    assert len(refusals) == 1 and "refused by the host's channel" in refusals[0].getMessage()
    assert token not in caplog.text


class HangingSink:
    """The reference host's services with a notify_admins that hangs until released (an SMTP
    send without a timeout)."""

    def __init__(self, services: Any) -> None:
        self._services = services
        self.release = threading.Event()
        self.calls = 0

    def notify_admins(self, subject: str, message: str, level: str) -> None:
        self.calls += 1
        self.release.wait(60)
        self._services.notify_admins(subject, message, level)


def test_a_hanging_sink_is_waited_for_briefly_and_never_twice_at_once(bench):
    """A check whose send hangs returns after send_wait; while the send hangs, later checks
    do not call the host again; once it returns, the tenant's alerts go out again."""
    for _ in range(3):
        bench.run(False)
    _dead_job(bench, "deal:1")
    _dead_job(bench, "deal:2")
    sink = HangingSink(bench.host.services(bench.tenant))
    wait = timedelta(milliseconds=200)
    try:
        started = time.monotonic()
        notices = check_tenant(bench.store, sink, bench.settings, bench.tenant, bench.clock(),
                               send_wait=wait)
        assert time.monotonic() - started < 30
        assert [(n.kind, n.sent) for n in notices] == [("failed_runs", False),
                                                       ("dead_letters", False)]
        assert sink.calls == 1, "the dead-letter alert waits while the first send hangs"
        bench.clock.advance(seconds=10)
        assert check_tenant(bench.store, sink, bench.settings, bench.tenant, bench.clock(),
                            send_wait=wait) == []
        assert sink.calls == 1
    finally:
        sink.release.set()
    limit = time.monotonic() + 20
    notices = []
    while not notices and time.monotonic() < limit:  # until the hung send's thread is done
        bench.clock.advance(seconds=10)
        notices = check_tenant(bench.store, sink, bench.settings, bench.tenant, bench.clock(),
                               send_wait=wait)
    assert [(n.kind, n.sent) for n in notices] == [("dead_letters", True)]


@pytest.mark.parametrize("late", ["delivered", "failed"])
def test_a_send_that_returns_after_the_wait_counts_as_what_it_did(bench, late):
    """A send still running after send_wait was counted as a failed attempt, so once the cooldown
    had passed the admins got the same alert again although the late send had delivered it. A
    late send that delivers now marks the incident notified; one that fails still counts."""
    for _ in range(3):
        bench.run(False)
    sink = HangingSink(bench.host.services(bench.tenant))
    if late == "failed":
        sink._services = FlakySink(sink._services, refuse="sync failed")
    wait = timedelta(milliseconds=100)
    (notice,) = check_tenant(bench.store, sink, bench.settings, bench.tenant, bench.clock(), send_wait=wait)
    assert (notice.kind, notice.sent) == ("failed_runs", False)
    sink.release.set()
    limit = time.monotonic() + 20
    while time.monotonic() < limit and bench.tenant in _alerts._SENDER._outstanding:  # its thread is done
        time.sleep(0.01)
    bench.clock.advance(minutes=61)  # past the cooldown: the condition still holds
    check_tenant(bench.store, sink, bench.settings, bench.tenant, bench.clock(), send_wait=wait)
    (incident,) = open_incidents(bench.store, bench.tenant, PORTAL)
    if late == "delivered":
        assert sink.calls == 1 and len(bench.notes()) == 1
        assert (incident.notified, incident.failed_sends) == (True, 0)
    else:
        assert sink.calls == 2 and bench.notes() == [], "a failed late send is tried again after the cooldown"


def test_a_send_returning_while_the_tick_stores_its_attempt_is_still_counted_delivered(bench, monkeypatch):
    """The send returns just after the tick stopped waiting, before the tick stored the attempt:
    the late outcome is recorded after the tick's save, not overwritten by it."""
    for _ in range(3):
        bench.run(False)
    sink = HangingSink(bench.host.services(bench.tenant))
    real_save = _alerts._Check.save

    def save_as_the_send_returns(check: Any, incident: Any) -> None:
        sink.release.set()  # the host returns now, while the tick is about to store the attempt
        limit = time.monotonic() + 10
        while not bench.notes() and time.monotonic() < limit:
            time.sleep(0.01)
        time.sleep(0.3)  # room for the late outcome to be stored first, as it was before the fix
        real_save(check, incident)

    monkeypatch.setattr(_alerts._Check, "save", save_as_the_send_returns)
    (notice,) = check_tenant(bench.store, sink, bench.settings, bench.tenant, bench.clock(),
                             send_wait=timedelta(milliseconds=100))
    assert not notice.sent
    monkeypatch.setattr(_alerts._Check, "save", real_save)
    limit = time.monotonic() + 20
    while time.monotonic() < limit and bench.tenant in _alerts._SENDER._outstanding:
        time.sleep(0.01)
    (incident,) = open_incidents(bench.store, bench.tenant, PORTAL)
    assert incident.notified
    bench.clock.advance(minutes=61)
    check_tenant(bench.store, sink, bench.settings, bench.tenant, bench.clock())
    assert sink.calls == 1 and len(bench.notes()) == 1


def test_a_hanging_sink_does_not_stop_the_queue(world, monkeypatch):  # noqa: F811  # fixture
    """The runtime's worker: while the host's notify_admins hangs, a job queued meanwhile is
    still run (the alerts ran in the drain's tick and held it)."""
    from ambac_hubspot_plugin.reference_host._services import TenantServices

    store = world.store
    for _ in range(3):
        run = store.start_run(world.tenant, "backfill")
        store.finish_run(run.id, RunStatus.FAILED, error="HubSpotUnavailableError: 503")
    release, entered = threading.Event(), threading.Event()

    def hanging_notify(self: Any, subject: str, message: str, level: str) -> None:
        entered.set()
        release.wait(60)

    # The reference host has no hanging channel: its send is swapped for one (fault injection).
    monkeypatch.setattr(TenantServices, "notify_admins", hanging_notify)
    # HubSpot is down throughout; calls fail at once instead of backing off for up to 15 s each,
    # so the worker stops at the end as soon as it is asked (a backoff under load outlived the
    # fixture's wait for the worker and failed CI).
    world.runtime.client_overrides = {"retry": RetryPolicy(max_attempts=1)}
    world.configure()
    world.hubspot.faults.fail_next(1000, status=503)
    world.runtime.start_worker(poll_seconds=0.1)
    try:
        assert entered.wait(20), "the alert never fired"
        job = store.enqueue(world.tenant, "inbound.deal", {"deal_id": "999"})
        limit = time.monotonic() + 20
        while store.get_job(job) is not None and store.get_job(job).attempts == 0 \
                and time.monotonic() < limit:
            time.sleep(0.05)
        ran = store.get_job(job)
        assert ran is None or ran.attempts > 0, "a job queued while the alert hangs never ran"
    finally:
        world.hubspot.faults.clear()
        release.set()
        world.runtime.stop_worker(timeout=10)


@pytest.mark.parametrize(("field", "longest"), [("cooldown_minutes", MAX_MINUTES),
                                                ("webhook_silence_minutes", MAX_MINUTES),
                                                ("failed_runs", MAX_FAILED_RUNS)])
def test_alert_thresholds_have_a_maximum_and_the_checks_work_at_it(bench, field, longest):
    """A threshold past its maximum is refused naming the field (a cooldown of 10**12 minutes
    used to break every check with OverflowError); at the maximum the checks run."""
    bench.raw["alerts"][field] = longest + 1
    with pytest.raises(ConfigError) as refused:
        bench.settings  # noqa: B018  # parsing is the point
    assert list(refused.value.problems) == [f"alerts.{field}"]
    assert "must be at most" in refused.value.problems[f"alerts.{field}"]
    bench.raw["alerts"][field] = longest
    bench.raw["webhook_client_secret"] = "shh-secret"
    _webhook_event(bench, 1)
    bench.run(True, created=1)
    for _ in range(3):
        bench.run(False)
    bench.check()
    bench.run(True)
    bench.check()
