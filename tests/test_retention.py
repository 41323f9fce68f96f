"""Bounded tables: old rows are pruned in small chunks, and what is still needed never is.

Store tests run on a SQLite file and on PostgreSQL (``store_url``), on the store's injected
clock; each puts a row just outside its retention and one just inside.
"""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ambac_hubspot_plugin._retention import CHECKPOINT, retention_ages, run_retention
from ambac_hubspot_plugin._settings_model import MAX_DAYS, MAX_MINUTES
from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.settings import RetentionSettings, parse_settings
from ambac_hubspot_plugin.store import InboxEventDraft, Job, JobState, LogLevel, RunStatus
from ambac_hubspot_plugin.store._retention import RetentionAges
from ambac_hubspot_plugin.store._schema import (
    integration_log,
    jobs,
    sync_runs,
    webhook_batches,
    webhook_events,
)
from tests._store_support import (  # noqa: F401  # fixtures are used by name
    FakeClock,
    clock,
    store,
    store_url,
)

from ._clock import ManualClock
from ._snapshot import store_file_rows
from .test_admin import world  # noqa: F401  # a fixture
from .test_cli_conflicts import Site, site  # noqa: F401  # site is a fixture

TENANT = "7"
AGES = retention_ages(RetentionSettings())  # 7 days of events, 30 of log, 90 of runs, 30 of dead jobs
JUST = timedelta(seconds=1)


def _event(store: Any, key: str, *, processed: bool) -> int:
    draft = InboxEventDraft(portal_id="1", dedupe_key=key, event_id=None,
                            subscription_type="object.propertyChange", object_type="deal",
                            object_id=key, property_name="dealstage", occurred_at_ms=1, payload="{}")
    store.accept_webhook_batch(TENANT, [draft], job_kind="webhook.object")
    (event,) = store.pending_webhook_events(TENANT, "deal", key)
    if processed:
        store.finish_webhook_events(TENANT, [event.id], [])
    return event.id


def _ids(store: Any, table: sa.Table) -> set[int]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.id).where(table.c.tenant_id == TENANT)).scalars())


def test_processed_events_go_after_their_retention_and_unprocessed_ones_never(store, clock):
    """An event processed 7 days and a second ago goes; one processed a second short of 7 days,
    and one never processed (however old), stay, as do the object jobs their delivery queued."""
    old = _event(store, "a", processed=True)
    waiting = _event(store, "b", processed=False)
    clock.advance(JUST * 2)
    young = _event(store, "c", processed=True)
    jobs_before = _ids(store, jobs)
    clock.advance(AGES.webhook_events - JUST)
    report = store.prune(TENANT, AGES)
    assert report.rows["webhook_events"] == 1 and report.complete
    assert _ids(store, webhook_events) == {waiting, young}
    assert _ids(store, jobs) == jobs_before  # pending jobs are never pruned
    assert old not in _ids(store, webhook_events)


def test_the_dedupe_window_can_never_be_shorter_than_a_day():
    """HubSpot retries for 24 hours: a shorter event retention is refused by the store's record
    and by the settings, which name the field and its minimum."""
    with pytest.raises(ValueError, match="at least"):
        RetentionAges(webhook_events=timedelta(hours=23), integration_log=AGES.integration_log,
                      sync_runs=AGES.sync_runs, dead_jobs=AGES.dead_jobs)
    base = {"portal_id": "1", "credentials": {"kind": "private_app", "access_token": "t"}}
    for field in ("webhook_events_days", "log_days", "sync_runs_days", "dead_jobs_days"):
        with pytest.raises(ConfigError) as refused:
            parse_settings({**base, "retention": {field: 0}})
        assert list(refused.value.problems) == [f"retention.{field}"]
        assert "must be at least 1" in refused.value.problems[f"retention.{field}"]
    assert parse_settings(base).retention == RetentionSettings(7, 30, 90, 30, 60)


def test_a_redelivery_within_the_window_is_still_a_duplicate(store, clock):
    """After pruning at the shortest retention, an event processed 23 hours ago is still stored,
    so HubSpot's retry of it is counted a duplicate, not stored again."""
    _event(store, "r", processed=True)
    clock.advance(hours=23)
    shortest = retention_ages(RetentionSettings(webhook_events_days=1))
    assert store.prune(TENANT, shortest).rows["webhook_events"] == 0
    draft = InboxEventDraft(portal_id="1", dedupe_key="r", event_id=None,
                            subscription_type="object.propertyChange", object_type="deal",
                            object_id="r", property_name="dealstage", occurred_at_ms=1, payload="{}")
    assert store.accept_webhook_batch(TENANT, [draft], job_kind="webhook.object").duplicates == 1


def test_log_lines_go_after_their_retention(store, clock):
    """A log line 30 days and a second old goes; one a second short of 30 days stays; another
    tenant's old line stays until that tenant is pruned."""
    other = store.log("8", LogLevel.INFO, "x", "another tenant's, as old").id
    old = store.log(TENANT, LogLevel.INFO, "x", "old").id
    clock.advance(JUST * 2)
    young = store.log(TENANT, LogLevel.INFO, "x", "young").id
    clock.advance(AGES.integration_log - JUST)
    assert store.prune(TENANT, AGES).rows["integration_log"] == 1
    assert _ids(store, integration_log) == {young}
    assert old not in _ids(store, integration_log)
    assert [e.id for e in store.read_log("8").entries] == [other]  # pruned per tenant


def _dead(store: Any, clock: Any, key: str) -> int:
    job_id = store.enqueue(TENANT, "k", {}, dedupe_key=key, max_attempts=1)
    (claimed,) = store.claim("w", kinds=["k"])
    assert claimed.id == job_id
    assert store.fail(job_id, "w", "boom").state == JobState.DEAD
    return job_id


def test_dead_jobs_go_after_their_retention_and_live_jobs_never(store, clock):
    """A job dead 30 days and a second goes; one dead a second short of that stays; a pending
    and a running job as old stay."""
    old = _dead(store, clock, "a")
    pending = store.enqueue(TENANT, "k", {}, dedupe_key="p", run_after=clock() + timedelta(days=400))
    running = store.enqueue(TENANT, "r", {})
    assert [j.id for j in store.claim("w", kinds=["r"])] == [running]
    clock.advance(JUST * 2)
    young = _dead(store, clock, "b")
    clock.advance(AGES.dead_jobs - JUST)
    assert store.prune(TENANT, AGES).rows["dead_jobs"] == 1
    assert _ids(store, jobs) == {pending, running, young}
    assert old not in _ids(store, jobs)


def _run(store: Any, clock: Any, kind: str, *, finish: bool = True) -> int:
    run = store.start_run(TENANT, kind)
    if finish:
        store.finish_run(run.id, RunStatus.SUCCEEDED)
    return int(run.id)


def test_sync_runs_go_after_their_retention_but_never_a_running_one_or_the_newest_of_a_kind(store, clock):
    """Of runs older than 90 days only finished ones that are not their kind's newest go; one a
    second short of 90 days stays; a run still running stays; the newest of each kind stays."""
    old = _run(store, clock, "backfill")
    running = _run(store, clock, "incremental", finish=False)
    clock.advance(JUST)
    only = _run(store, clock, "reconcile")
    clock.advance(JUST)
    young = _run(store, clock, "backfill")
    newest_incremental = _run(store, clock, "incremental")
    clock.advance(JUST)
    newest_backfill = _run(store, clock, "backfill")
    clock.advance(AGES.sync_runs - JUST)
    assert store.prune(TENANT, AGES).rows["sync_runs"] == 1
    assert _ids(store, sync_runs) == {running, only, young, newest_incremental, newest_backfill}
    assert old not in _ids(store, sync_runs)
    clock.advance(days=400)
    assert store.prune(TENANT, AGES).rows["sync_runs"] == 1  # the young backfill, aged now
    assert _ids(store, sync_runs) == {running, only, newest_incremental, newest_backfill}


def test_conflicts_are_never_pruned(store, clock):
    """The conflicts table (the audit trail) is not touched, however old its rows."""
    from ambac_hubspot_plugin.store import ConflictDraft

    before = store.list_conflicts(TENANT, status=None)
    store.record_conflict(ConflictDraft(
        tenant_id=TENANT, portal_id="1", object_type="order", host_id="o1", hubspot_type="deal", hubspot_id="d1",
        field="name", hubspot_value="a", host_value="b", last_synced="c", hubspot_changed_at=None,
        host_changed_at=None, strategy="manual", decision="hold", reason="r"))
    clock.advance(days=10_000)
    store.prune(TENANT, AGES)
    assert len(store.list_conflicts(TENANT, status=None)) == len(before) + 1


def test_old_rows_go_in_chunks_and_a_spent_budget_stops_between_them(store, clock):
    """2,500 old log lines go in three DELETE statements of at most 1,000 rows; a prune whose
    deadline has passed removes nothing and says it is not complete."""
    old = clock() - timedelta(days=31)
    with store.engine.begin() as conn:
        conn.execute(sa.insert(integration_log), [
            {"tenant_id": TENANT, "level": "info", "what": "x", "message": str(i), "created_at": old}
            for i in range(2500)])
    late = store.prune(TENANT, AGES, deadline=clock())
    assert not late.complete and late.total == 0 and len(_ids(store, integration_log)) == 2500
    deletes: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM HUBSPOT_INTEGRATION_LOG"):
            deletes.append(cursor.rowcount)

    sa.event.listen(store.engine, "after_cursor_execute", count)
    try:
        report = store.prune(TENANT, AGES)
    finally:
        sa.event.remove(store.engine, "after_cursor_execute", count)
    assert report.rows["integration_log"] == 2500 and report.complete
    assert deletes == [1000, 1000, 500]
    assert _ids(store, integration_log) == set()


@contextlib.contextmanager
def _deletes_take(store: Any, clock: Any, seconds: Callable[[str], float]) -> Iterator[None]:
    """Within the block each DELETE moves the store's clock on by ``seconds(statement)``
    (the statement upper-cased): a prune's budget spent by slow deletes, deterministically."""
    def advance(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        text = statement.lstrip().upper()
        if text.startswith("DELETE"):
            clock.advance(seconds(text))

    sa.event.listen(store.engine, "after_cursor_execute", advance)
    try:
        yield
    finally:
        sa.event.remove(store.engine, "after_cursor_execute", advance)


def test_a_budget_is_shared_between_the_tables_not_spent_on_the_first_backlog(store, clock):
    """With more old log lines than the budget can remove, an old dead job (a later table) still
    goes: each table gets a chunk in turn (the 30-minute soak saw later tables never pruned)."""
    dead = _dead(store, clock, "a")
    old = clock() - timedelta(days=31)
    with store.engine.begin() as conn:
        conn.execute(sa.insert(integration_log), [
            {"tenant_id": TENANT, "level": "info", "what": "x", "message": str(i), "created_at": old}
            for i in range(2500)])
    clock.advance(days=31)

    with _deletes_take(store, clock, lambda statement: 1):
        report = store.prune(TENANT, AGES, deadline=clock() + timedelta(seconds=3.5))
    assert not report.complete
    assert report.rows["dead_jobs"] == 1 and dead not in _ids(store, jobs)
    assert report.rows["integration_log"] == 1000, "one chunk of the backlog, the rest next time"
    assert store.prune(TENANT, AGES).rows["integration_log"] == 1500


def test_a_budget_one_chunk_of_events_spends_still_prunes_the_other_tables(store, clock):
    """When deleting one chunk of old events takes the whole budget (under load, on every
    call), the old sync run, log line and dead job still go: the events come last in each
    round. (A soak at 1,000 events/s kept sync runs hours past their retention before.)"""
    for i in range(1500):
        _event(store, f"e{i}", processed=True)
    runs = [store.start_run(TENANT, "incremental") for _ in range(2)]  # the newest is always kept
    for run in runs:
        store.finish_run(run.id, RunStatus.SUCCEEDED)
    store.log(TENANT, LogLevel.INFO, "x", "old")
    dead = _dead(store, clock, "a")
    clock.advance(days=100)

    # By the table deleted from: the dead jobs' DELETE names the events too (in a subquery).
    with _deletes_take(store, clock, lambda statement: 10 if statement.startswith(
            "DELETE FROM HUBSPOT_WEBHOOK_EVENTS") else 0.1):
        report = store.prune(TENANT, AGES, deadline=clock() + timedelta(seconds=2))
    assert not report.complete
    assert (report.rows["sync_runs"], report.rows["integration_log"], report.rows["dead_jobs"]) == (1, 1, 1)
    assert _ids(store, sync_runs) == {runs[1].id} and dead not in _ids(store, jobs)
    assert report.rows["webhook_events"] == 1000, "one chunk of the events, the rest next time"


def test_a_dry_run_counts_and_changes_nothing(store, clock):
    """A dry run reports what would go, per table, and every row stays."""
    store.log(TENANT, LogLevel.INFO, "x", "old")
    _event(store, "a", processed=True)
    _dead(store, clock, "a")
    clock.advance(days=100)
    before = {t.name: _ids(store, t) for t in (integration_log, webhook_events, jobs, sync_runs)}
    report = store.prune(TENANT, AGES, dry_run=True)
    assert report.dry_run and report.rows == {"webhook_events": 1, "integration_log": 1,
                                              "sync_runs": 0, "dead_jobs": 1, "expired_claims": 0}
    assert {t.name: _ids(store, t) for t in (integration_log, webhook_events, jobs, sync_runs)} == before


def test_claims_a_stopped_worker_left_are_pruned_once_long_expired(store, clock):
    """A worker killed mid-chunk leaves its claims (each deal's, email's, domain's): they expire
    but nothing takes the same keys again, so pruning deletes those expired over an hour ago,
    whatever the retention settings; a held claim and a just-expired one stay."""
    assert store.take_claims(TENANT, {"deal:1", "deal:2"}, "killed", timedelta(seconds=10)) == {"deal:1", "deal:2"}
    clock.advance(minutes=30)
    assert store.take_claims(TENANT, {"deal:3"}, "killed later", timedelta(seconds=10)) == {"deal:3"}
    assert store.take_claims("other tenant", {"deal:1"}, "killed", timedelta(seconds=10)) == {"deal:1"}
    clock.advance(minutes=31)
    assert store.take_claims(TENANT, {"deal:4"}, "alive", timedelta(seconds=10)) == {"deal:4"}
    assert store.prune(TENANT, AGES, dry_run=True).rows["expired_claims"] == 2
    report = store.prune(TENANT, AGES, chunk=1)  # one claim per statement: the loop goes on
    assert report.rows["expired_claims"] == 2 and report.complete
    assert store.take_claims(TENANT, {"deal:1", "deal:2"}, "new", timedelta(seconds=10)) == {"deal:1", "deal:2"}
    assert store.take_claims(TENANT, {"deal:4"}, "new", timedelta(seconds=10)) == set(), "still held"
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM hubspot_claims")).scalar_one() == 5


def test_a_left_claim_taken_over_while_the_prune_runs_is_not_deleted(store, clock):
    """A worker takes over a long-expired claim (a resumed backfill, say) while a prune is
    about to delete it: the prune leaves it, live, to its new holder."""
    assert store.take_claims(TENANT, {"deal:9"}, "killed", timedelta(seconds=10))
    clock.advance(hours=2)
    taker = store.engine.connect()
    transaction = taker.begin()
    taker.execute(sa.text("UPDATE hubspot_claims SET holder = 'alive', expires_at = :e WHERE key = 'deal:9'"),
                  {"e": clock() + timedelta(minutes=10)})
    pruning = threading.Thread(target=store.prune, args=(TENANT, AGES))
    pruning.start()
    time.sleep(0.3)  # the prune has picked the row, or waits for the taker's lock
    transaction.commit()
    taker.close()
    pruning.join(30)
    assert not pruning.is_alive()
    assert not store.take_claim(TENANT, "deal:9", "third", timedelta(seconds=10)), "still the live holder's"


# ---- the periodic task, the admin API, the status view and the CLI ----------------------------

def _old_log_line(engine: sa.Engine, tenant: Any) -> int:
    with engine.begin() as conn:
        return int(conn.execute(sa.insert(integration_log).values(
            tenant_id=str(tenant), level="info", what="x", message="old",
            created_at=datetime(2020, 1, 1, tzinfo=UTC)).returning(integration_log.c.id)).scalar_one())


def _log_ids(engine: sa.Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(integration_log.c.id)).scalars())


def test_the_tick_prunes_at_most_once_per_interval(world):
    """The runtime's tick prunes an enabled tenant's old rows; the next ticks within
    ``prune_every_minutes`` leave a newly old row alone, and the first one after it prunes."""
    engine = world.store.engine
    first = _old_log_line(engine, world.tenant)
    world.runtime.tick()
    assert first not in _log_ids(engine)
    second = _old_log_line(engine, world.tenant)
    world.runtime.tick()
    assert second in _log_ids(engine)
    later = ManualClock(datetime.now(UTC) + timedelta(minutes=30))
    assert run_retention(world.runtime, clock=later) == {}
    assert second in _log_ids(engine)
    later.advance(minutes=31)
    assert run_retention(world.runtime, clock=later)[world.tenant].rows["integration_log"] == 1
    assert second not in _log_ids(engine)
    saved = world.store.get_checkpoint(world.tenant, world.runtime.tenant(world.tenant).portal_id, CHECKPOINT)
    assert saved is not None


def test_admin_prune_and_the_status_view_show_retention(world):
    """The status view shows the retention settings and each table's rows and rows due; the
    admin's dry run counts without removing, and its prune removes."""
    engine = world.store.engine
    old = _old_log_line(engine, world.tenant)
    retention = world.admin.status(world.admin_user)["retention"]
    assert retention["settings"]["log_days"] == 30
    assert retention["tables"]["integration_log"]["due"] == 1
    assert retention["tables"]["integration_log"]["rows"] >= 1
    dry = world.admin.prune(world.admin_user, dry_run=True)
    assert dry["dry_run"] and dry["rows"]["integration_log"] == 1 and old in _log_ids(engine)
    done = world.admin.prune(world.admin_user)
    assert done["rows"]["integration_log"] == 1 and old not in _log_ids(engine)
    assert world.admin.status(world.admin_user)["retention"]["tables"]["integration_log"]["due"] == 0


def test_the_cli_dry_run_changes_nothing_and_prune_removes(site: Site):
    """``prune --dry-run`` reports the old line and leaves every store row; ``prune`` removes it."""
    path: Path = site.host_dir / "plugins" / "hubspot" / "hubspot.sqlite3"
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        old = _old_log_line(engine, site.tenant)
    finally:
        engine.dispose()
    before = store_file_rows(path)
    base = ["--host-dir", str(site.host_dir), "--tenant", str(site.tenant), "--json"]
    dry = CliRunner().invoke(main, ["prune", *base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["rows"]["integration_log"] == 1
    assert store_file_rows(path) == before
    done = CliRunner().invoke(main, ["prune", *base])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["rows"]["integration_log"] == 1
    assert old not in [row[0] for row in store_file_rows(path)["hubspot_integration_log"]]


def test_the_settings_schema_shows_retention_defaults_and_limits():
    """The host's settings form learns each retention field's default, minimum (a day for the
    dedupe window) and maximum (a century), and a value outside them fails the schema as it
    fails parsing."""
    import jsonschema

    from ambac_hubspot_plugin.settings import settings_schema

    schema = settings_schema()
    fields = schema["properties"]["retention"]["properties"]
    assert fields["webhook_events_days"] == {"type": "integer", "minimum": 1, "maximum": 36_500, "default": 7}
    assert {name: (f["default"], f["minimum"], f["maximum"]) for name, f in fields.items()} == {
        "webhook_events_days": (7, 1, 36_500), "log_days": (30, 1, 36_500), "sync_runs_days": (90, 1, 36_500),
        "dead_jobs_days": (30, 1, 36_500), "prune_every_minutes": (60, 5, 36_500 * 24 * 60)}
    base = {"portal_id": "1", "credentials": {"kind": "private_app", "access_token": "t"}}
    for bad in (0, 36_501):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**base, "retention": {"webhook_events_days": bad}}, schema)


@pytest.mark.parametrize(("table", "column", "index"), [
    ("hubspot_webhook_events", "processed_at", "ix_hubspot_webhook_events_processed"),
    ("hubspot_integration_log", "created_at", "ix_hubspot_integration_log_created"),
])
def test_each_prune_finds_its_rows_through_its_index(store, table, column, index):
    """Migration 0010 indexes (tenant, age) for the prune's WHERE clause, and SQLite's planner
    answers that clause with it (PostgreSQL's picks by table statistics, so only the index is
    checked there)."""
    found = {ix["name"]: ix["column_names"] for ix in sa.inspect(store.engine).get_indexes(table)}
    assert found.get(index) == ["tenant_id", column], found
    if store.engine.dialect.name == "sqlite":
        sql = f"SELECT id FROM {table} WHERE tenant_id = '7' AND {column} < CURRENT_TIMESTAMP"
        with store.engine.connect() as conn:
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        assert index in plan, plan


# ---- what pruning must never remove: the only job of waiting webhook work -----------------------

def _dead_letter(store: Any, clock: Any, kind: str) -> Job:
    """Fail the one due job of ``kind`` on every attempt (the host is down) until it is dead."""
    while True:
        claimed = store.claim("w", kinds=[kind])
        if not claimed:
            clock.advance(timedelta(hours=2))  # past the longest backoff
            continue
        (job,) = claimed
        failed = store.fail(job.id, "w", "HostUnavailable: host down")
        if failed.state is JobState.DEAD:
            return failed


def test_a_dead_webhook_job_is_kept_while_its_events_wait(store, clock):
    """An event whose webhook.object job dead-lettered (the host down for a while) keeps that
    job however old: replay can still process it. Once it is processed, the job may go."""
    waiting = _event(store, "d1", processed=False)
    dead = _dead_letter(store, clock, "webhook.object")
    assert dead.dedupe_key == "deal:d1"
    clock.advance(AGES.dead_jobs + timedelta(days=1))
    assert store.prune(TENANT, AGES, dry_run=True).rows["dead_jobs"] == 0
    assert store.prune(TENANT, AGES).rows["dead_jobs"] == 0
    assert [j.id for j in store.queued(TENANT, ["webhook.object"])] == [dead.id]
    assert store.replay_all(TENANT) == 1, "replay finds the job that processes the event"
    store.finish_webhook_events(TENANT, [waiting], [])  # what the replayed job does
    _dead_letter(store, clock, "webhook.object")  # its job then dies of something else
    clock.advance(AGES.dead_jobs + timedelta(days=1))
    assert store.prune(TENANT, AGES).rows["dead_jobs"] == 1
    assert store.queued(TENANT, ["webhook.object"]) == []


def _orphaned_work(store: Any) -> list[str]:
    """Webhook work of the tenant that no job (pending, running or dead, so replayable) of the
    right key would ever do: unprocessed events and readable deliveries not split yet."""
    ev, batch, job = webhook_events.c, webhook_batches.c, jobs.c
    with store.engine.connect() as conn:
        keys = set(conn.execute(sa.select(job.dedupe_key).where(job.tenant_id == TENANT)).scalars())
        objects = conn.execute(sa.select(ev.object_type, ev.object_id).where(
            ev.tenant_id == TENANT, ev.processed_at.is_(None))).all()
        deliveries = conn.execute(sa.select(batch.id).where(
            batch.tenant_id == TENANT, batch.error.is_(None))).scalars().all()
    orphans = [f"{t}:{i}" for t, i in objects if f"{t}:{i}" not in keys]
    return orphans + [f"delivery {d}" for d in deliveries if "inbox" not in keys]


def test_pruning_never_removes_the_only_job_of_waiting_webhook_work(store, clock):
    """Every mix of dead jobs, waiting and processed events, and waiting deliveries: after a
    prune long past every retention, no waiting event or delivery is left without a job to
    replay, and every dead job whose work is done (or that had none) is gone."""
    # An object's events waiting behind a dead job; processed, and then the job died anyway;
    # processed by a job that completed.
    for n, (event_fate, job_fate) in enumerate((("waiting", "dead"), ("processed", "dead"),
                                                ("processed", "done"))):
        event = _event(store, f"o{n}", processed=False)
        if job_fate == "dead":
            _dead_letter(store, clock, "webhook.object")
        else:
            (job,) = store.claim("w", kinds=["webhook.object"])
            store.complete(job.id, "w")
        if event_fate == "processed":
            store.finish_webhook_events(TENANT, [event], [])
    store.receive_webhook_batch(TENANT, "1", b"[]", events=0, latest_occurred_ms=1,
                                job_kind="webhook.inbox", max_attempts=1)
    _dead_letter(store, clock, "webhook.inbox")  # the split died: the delivery waits
    keyless = store.enqueue(TENANT, "k", {}, max_attempts=1)
    _dead_letter(store, clock, "k")
    clock.advance(days=365)
    report = store.prune(TENANT, AGES)
    assert _orphaned_work(store) == []
    kept = {j.dedupe_key for j in store.queued(TENANT, ["webhook.object", "webhook.inbox", "k"])}
    assert kept == {"inbox", "deal:o0"}, "only the dead jobs of waiting work stay"
    assert keyless not in _ids(store, jobs) and report.rows["dead_jobs"] == 2


# ---- the longest retention a setting may ask for -----------------------------------------------

BASE = {"portal_id": "1", "credentials": {"kind": "private_app", "access_token": "tttt"}}


@pytest.mark.parametrize("field", ["webhook_events_days", "log_days", "sync_runs_days",
                                   "dead_jobs_days", "prune_every_minutes"])
def test_a_retention_beyond_a_century_is_refused_naming_the_field(field):
    """1,000,000 days would pass as "keep forever" and then break every prune and status view
    (now minus it is before year 1): refused, naming the field and its maximum."""
    with pytest.raises(ConfigError) as refused:
        parse_settings({**BASE, "retention": {field: 1_000_000_000_000}})
    assert list(refused.value.problems) == [f"retention.{field}"]
    assert "must be at most" in refused.value.problems[f"retention.{field}"]


def test_the_longest_retention_allowed_still_prunes(store, clock):
    """Every retention at its maximum (a century): a prune and a dry run work, and remove
    nothing younger."""
    longest = parse_settings({**BASE, "retention": {
        "webhook_events_days": MAX_DAYS, "log_days": MAX_DAYS, "sync_runs_days": MAX_DAYS,
        "dead_jobs_days": MAX_DAYS, "prune_every_minutes": MAX_MINUTES}})
    store.log(TENANT, LogLevel.INFO, "x", "kept")
    assert store.prune(TENANT, retention_ages(longest.retention), dry_run=True).total == 0
    report = store.prune(TENANT, retention_ages(longest.retention))
    assert report.complete and report.total == 0


def test_a_huge_retention_leaves_the_status_view_working(world):
    """An operator asking for 1,000,000 days is told the maximum, the settings stay as they
    were, and the status view works; the maximum itself is accepted and shown."""
    current = world.admin.settings(world.admin_user)
    current = dict(current.get("settings", current))
    with pytest.raises(ConfigError) as refused:
        world.admin.change_settings(world.admin_user, {**current, "retention": {
            **current.get("retention", {}), "dead_jobs_days": 1_000_000}})
    assert "retention.dead_jobs_days" in refused.value.problems
    assert world.admin.status(world.admin_user)["retention"]["settings"]["dead_jobs_days"] == 30
    world.admin.change_settings(world.admin_user, {**current, "retention": {
        **current.get("retention", {}), "dead_jobs_days": MAX_DAYS}})
    status = world.admin.status(world.admin_user)
    assert status["retention"]["settings"]["dead_jobs_days"] == MAX_DAYS


# ---- each chunk stops after its rows: no sort of the whole backlog ------------------------------

def test_each_prune_chunk_reads_its_index_in_order_without_sorting(tmp_path):
    """Each table's chunk is ordered by the columns of the index its WHERE clause uses, so
    SQLite reads the first 1,000 rows of the index and stops; ordered by id, each chunk sorted
    every prunable row (a temp B-tree) while holding the writer. (PostgreSQL plans by its
    statistics: an incremental sort on the index there.)"""
    from ambac_hubspot_plugin.store import open_store

    clock = FakeClock()
    store = open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}", clock=clock)
    try:
        _event(store, "a", processed=True)
        store.log(TENANT, LogLevel.INFO, "x", "old")
        for _ in range(2):  # the newest run of a kind is kept: two, so one goes
            store.finish_run(store.start_run(TENANT, "incremental").id, RunStatus.SUCCEEDED)
        _dead(store, clock, "a")
        clock.advance(days=365)
        statements: dict[str, tuple[str, Any]] = {}

        def keep(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
            if statement.lstrip().upper().startswith("DELETE FROM"):
                statements[statement.split()[2]] = (statement, params)

        sa.event.listen(store.engine, "after_cursor_execute", keep)
        try:
            assert store.prune(TENANT, AGES).total == 4
        finally:
            sa.event.remove(store.engine, "after_cursor_execute", keep)
        assert sorted(statements) == ["hubspot_claims", "hubspot_integration_log", "hubspot_jobs",
                                      "hubspot_sync_runs", "hubspot_webhook_events"]
        with store.engine.connect() as conn:
            for table, (statement, params) in sorted(statements.items()):
                plan = [str(row[-1]) for row in
                        conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)]
                assert not any("TEMP B-TREE FOR ORDER BY" in step for step in plan), (table, plan)
    finally:
        store.close()
