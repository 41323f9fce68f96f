"""The durable job queue and its runner, on SQLite and PostgreSQL, in one and many processes."""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from ambac_hubspot_plugin.store import (
    Backoff,
    Job,
    JobQueue,
    JobState,
    LeaseLostError,
    LogLevel,
    QueueRunner,
    RunStatus,
    create_store_engine,
    current_revision,
    keep_leases,
    migrate,
    open_store,
    utc_now,
)
from ambac_hubspot_plugin.store._schema import jobs
from tests._store_support import (  # noqa: F401  # fixtures are used by name
    COALESCE_DDL,
    RESULTS_DDL,
    FakeClock,
    clock,
    coalesce_drain_worker,
    coalesce_enqueue_worker,
    drain_worker,
    enqueue_worker,
    hanging_worker,
    results_url,
    store,
    store_url,
)

MINUTE = timedelta(minutes=1)


def test_store_satisfies_the_queue_port(store: Any) -> None:
    """The SQL store is a JobQueue as far as the runner's Protocol is concerned."""
    assert isinstance(store, JobQueue)


# -- enqueue and claim -----------------------------------------------------------------------


def test_enqueue_dedupes_against_pending_jobs_only(store: Any) -> None:
    """A pending job of the same tenant/kind/key absorbs an enqueue; running or done ones not."""
    first = store.enqueue("1", "push_deal", {"deal": "1"}, dedupe_key="deal:1")
    assert store.enqueue("1", "push_deal", {"deal": "1"}, dedupe_key="deal:1") == first
    assert store.enqueue("2", "push_deal", {"deal": "1"}, dedupe_key="deal:1") != first
    assert store.enqueue("1", "other", {}, dedupe_key="deal:1") != first
    [claimed] = store.claim("w1", kinds=["push_deal"])
    # The running job may have read the old state already: the new request gets its own job.
    behind = store.enqueue("1", "push_deal", {"deal": "1"}, dedupe_key="deal:1")
    assert behind != first
    assert store.enqueue("1", "push_deal", {}, dedupe_key="deal:1") == behind
    assert (store.get_job(first).state, store.get_job(behind).state) == (JobState.RUNNING,
                                                                         JobState.PENDING)
    store.complete(claimed.id, "w1")
    assert store.enqueue("1", "push_deal", {}, dedupe_key="deal:1") == behind
    assert store.depths("1") == {(JobState.PENDING, "push_deal"): 1,
                               (JobState.PENDING, "other"): 1}


def test_enqueue_after_completion_queues_again(store: Any) -> None:
    """Once the only job of a key is completed, the same key is queued as a new job."""
    store.enqueue("1", "k", {}, dedupe_key="deal:1")
    [job] = store.claim("w")
    store.complete(job.id, "w")
    assert store.depths("1") == {}
    again = store.enqueue("1", "k", {}, dedupe_key="deal:1")  # SQLite may reuse the id
    assert (store.get_job(again).state, store.get_job(again).attempts) == (JobState.PENDING, 0)
    assert store.depths("1") == {(JobState.PENDING, "k"): 1}


def test_claim_holds_a_duplicate_back_while_its_key_runs(store: Any) -> None:
    """A pending job is not claimed while a job of its key runs; other keys and keyless go on."""
    running = store.enqueue("1", "k", {}, dedupe_key="deal:1")
    store.claim("w1")
    behind = store.enqueue("1", "k", {}, dedupe_key="deal:1")
    other_key = store.enqueue("1", "k", {}, dedupe_key="deal:2")
    other_tenant = store.enqueue("2", "k", {}, dedupe_key="deal:1")
    keyless = store.enqueue("1", "k", {})
    claimed = {job.id for job in store.claim("w2", limit=10)}
    assert claimed == {other_key, other_tenant, keyless}
    assert store.get_job(behind).state is JobState.PENDING
    store.complete(running, "w1")
    [job] = store.claim("w2", limit=10)
    assert (job.id, job.attempts) == (behind, 1)


def test_jobs_without_dedupe_key_are_all_queued(store: Any) -> None:
    """Without a dedupe key every enqueue adds a job."""
    ids = {store.enqueue("1", "k", {"n": n}) for n in range(3)}
    assert len(ids) == 3


def test_claim_takes_only_due_jobs_of_requested_kinds(store: Any, clock: FakeClock) -> None:
    """Jobs scheduled later are not claimed until due; kinds and limit are respected."""
    later = store.enqueue("1", "k", {"n": 1}, run_after=clock() + 10 * MINUTE)
    now_a = store.enqueue("1", "k", {"n": 2})
    now_b = store.enqueue("1", "other", {"n": 3})
    assert [j.id for j in store.claim("w", kinds=["k"], limit=5)] == [now_a]
    assert [j.id for j in store.claim("w", limit=5)] == [now_b]
    assert store.claim("w", limit=5) == []
    store.complete(now_a, "w")
    store.complete(now_b, "w")
    clock.advance(10 * MINUTE)
    [job] = store.claim("w", limit=5)
    assert (job.id, job.payload, job.attempts, job.lease_owner) == (later, {"n": 1}, 1, "w")
    assert job.lease_expires_at > clock()


# -- failure, backoff, dead letters ----------------------------------------------------------


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    """The retry ceiling grows exponentially from base and stops at cap."""
    backoff = Backoff(base=timedelta(seconds=2), cap=timedelta(seconds=30))
    assert [backoff.ceiling(n).total_seconds() for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]
    assert backoff.ceiling(10_000) == timedelta(seconds=30)


@given(attempt=st.integers(min_value=1, max_value=200),
       fraction=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_jittered_delay_stays_within_zero_and_the_ceiling(attempt: int, fraction: float) -> None:
    """Full jitter: every delay lies in [0, ceiling] and scales with the random draw."""
    backoff = Backoff(base=timedelta(seconds=1), cap=timedelta(hours=1))
    delay = backoff.delay(attempt, lambda: fraction)
    assert timedelta(0) <= delay <= backoff.ceiling(attempt)
    assert abs(delay.total_seconds() - fraction * backoff.ceiling(attempt).total_seconds()) < 1e-3


def test_failures_reschedule_with_growing_jittered_backoff(store_url: str,
                                                           clock: FakeClock) -> None:
    """Each failure reschedules the job at now + jitter * ceiling, the ceiling doubling."""
    draws = iter([0.5, 0.25, 0.5, 0.9])
    backoff = Backoff(base=timedelta(seconds=10), cap=timedelta(seconds=60))
    queue = open_store(store_url, clock=clock, backoff=backoff, random_source=lambda: next(draws))
    try:
        job_id = queue.enqueue("1", "k", {}, max_attempts=10)
        delays = []
        for _ in range(4):
            [job] = queue.claim("w")
            failed = queue.fail(job.id, "w", "HubSpotUnavailableError: 503")
            assert failed.state is JobState.PENDING
            assert failed.lease_owner is None
            delays.append((failed.run_after - clock()).total_seconds())
            assert queue.claim("w") == []  # not due before its backoff
            clock.advance(failed.run_after - clock())
        assert delays == pytest.approx([5.0, 5.0, 20.0, 54.0])
        assert queue.get_job(job_id).attempts == 4
    finally:
        queue.close()


def test_dead_letter_after_max_attempts_keeps_the_reason(store: Any, clock: FakeClock) -> None:
    """After its last allowed attempt fails, a job is dead, listed, kept with its error."""
    job_id = store.enqueue("7", "push", {"x": 1}, max_attempts=3)
    for attempt in range(1, 4):
        [job] = store.claim("w")
        assert job.attempts == attempt
        failed = store.fail(job.id, "w", f"ValueError: bad #{attempt}")
        clock.advance(timedelta(hours=2))
    assert failed.state is JobState.DEAD
    assert store.claim("w") == []
    [dead] = store.dead_letters("7")
    assert (dead.id, dead.last_error, dead.attempts) == (job_id, "ValueError: bad #3", 3)
    assert store.dead_letters("8") == []
    assert store.depths() == {(JobState.DEAD, "push"): 1}


def test_default_max_attempts_is_eight(store: Any, clock: FakeClock) -> None:
    """Without max_attempts a job gets the store's default of eight attempts."""
    store.enqueue("1", "k", {})
    [job] = store.claim("w")
    assert job.max_attempts == 8


def test_replay_resets_dead_jobs(store: Any, clock: FakeClock) -> None:
    """replay puts a dead job back as pending with attempts reset; others are untouched."""
    job_id = store.enqueue("1", "k", {}, max_attempts=1)
    [job] = store.claim("w")
    store.fail(job.id, "w", "boom")
    assert store.replay(job_id) == job_id
    replayed = store.get_job(job_id)
    assert (replayed.state, replayed.attempts) == (JobState.PENDING, 0)
    assert store.replay(job_id) is None  # not dead (any more)
    [again] = store.claim("w")
    assert (again.id, again.attempts) == (job_id, 1)


def test_replay_all_filters_by_tenant_and_kind(store: Any) -> None:
    """replay_all revives a tenant's dead jobs, of one kind when asked, and counts them."""
    for tenant, kind in [(1, "a"), (1, "a"), (1, "b"), (2, "a")]:
        store.enqueue(tenant, kind, {}, max_attempts=1)
    for job in store.claim("w", limit=10):
        store.fail(job.id, "w", "x")
    assert store.replay_all("1", kind="a") == 2
    assert store.replay_all("1") == 1
    assert store.depths("1") == {(JobState.PENDING, "a"): 2, (JobState.PENDING, "b"): 1}
    assert store.depths("2") == {(JobState.DEAD, "a"): 1}


def test_replay_defers_to_a_pending_duplicate(store: Any) -> None:
    """Replaying a dead job whose dedupe key has a pending job again drops the dead one."""
    dead_id = store.enqueue("1", "k", {}, dedupe_key="deal:5", max_attempts=1)
    [job] = store.claim("w")
    store.fail(job.id, "w", "x")
    live_id = store.enqueue("1", "k", {}, dedupe_key="deal:5")
    assert live_id != dead_id
    assert store.replay(dead_id) == live_id
    assert store.get_job(dead_id) is None
    assert store.depths("1") == {(JobState.PENDING, "k"): 1}


def test_replay_beside_a_running_duplicate_queues_behind_it(store: Any) -> None:
    """A dead job replayed while only a running job has its key becomes pending behind it."""
    dead_id = store.enqueue("1", "k", {}, dedupe_key="deal:5", max_attempts=1)
    [job] = store.claim("w")
    store.fail(job.id, "w", "x")
    running_id = store.enqueue("1", "k", {}, dedupe_key="deal:5")
    store.claim("w")
    assert store.replay(dead_id) == dead_id
    assert store.get_job(dead_id).state is JobState.PENDING
    assert store.claim("w2") == []  # held back until the running one is done
    store.complete(running_id, "w")
    assert [j.id for j in store.claim("w2")] == [dead_id]


# -- a running job and a pending duplicate ---------------------------------------------------


def test_fail_merges_into_a_pending_duplicate(store: Any, clock: FakeClock) -> None:
    """A failing job with a pending duplicate is deleted; the duplicate keeps the work and error,
    and inherits the failure's attempt count and backoff."""
    first = store.enqueue("1", "k", {"v": 1}, dedupe_key="deal:1", max_attempts=5)
    [job] = store.claim("w")
    clock.advance(MINUTE)
    behind = store.enqueue("1", "k", {"v": 2}, dedupe_key="deal:1")
    failed = store.fail(job.id, "w", "HubSpotUnavailableError: 503")
    assert store.get_job(first) is None
    assert (failed.id, failed.state, failed.attempts, failed.last_error, failed.payload) == (
        behind, JobState.PENDING, 1, "HubSpotUnavailableError: 503", {"v": 2})
    assert failed.run_after > clock(), "the failure's backoff applies to the work that retries it"
    assert store.claim("w") == []
    assert store.depths("1") == {(JobState.PENDING, "k"): 1}
    clock.advance(2 * 60 * MINUTE)  # past the backoff (capped at an hour)
    [again] = store.claim("w")
    assert again.id == behind


def test_fail_on_the_last_attempt_merges_instead_of_dead_lettering(store: Any) -> None:
    """A job failing for good while a pending duplicate waits leaves no dead letter behind."""
    store.enqueue("1", "k", {}, dedupe_key="deal:1", max_attempts=1)
    [job] = store.claim("w")
    behind = store.enqueue("1", "k", {}, dedupe_key="deal:1")
    assert store.fail(job.id, "w", "boom").id == behind
    assert store.dead_letters("1") == []
    assert store.depths("1") == {(JobState.PENDING, "k"): 1}


def test_fail_without_a_duplicate_still_backs_off(store: Any, clock: FakeClock) -> None:
    """With no pending duplicate (only other keys and tenants), a failure reschedules the job."""
    job_id = store.enqueue("1", "k", {}, dedupe_key="deal:1")
    [job] = store.claim("w")
    store.enqueue("1", "k", {}, dedupe_key="deal:2")
    store.enqueue("2", "k", {}, dedupe_key="deal:1")
    failed = store.fail(job.id, "w", "x")
    assert (failed.id, failed.state) == (job_id, JobState.PENDING)
    assert failed.run_after > clock()


def test_expired_lease_is_reclaimed_before_its_pending_duplicate(store: Any,
                                                                 clock: FakeClock) -> None:
    """A dead worker's job is reclaimed first; its pending duplicate waits, then merges on fail."""
    first = store.enqueue("1", "k", {}, dedupe_key="deal:1", max_attempts=5)
    store.claim("w1", lease=MINUTE)
    behind = store.enqueue("1", "k", {}, dedupe_key="deal:1")
    clock.advance(2 * MINUTE)
    [job] = store.claim("w2", limit=10, lease=MINUTE)
    assert (job.id, job.attempts, job.lease_owner) == (first, 2, "w2")
    assert store.get_job(behind).state is JobState.PENDING
    assert store.claim("w3", limit=10) == []
    assert store.fail(first, "w2", "x").id == behind
    clock.advance(2 * 60 * MINUTE)  # past the inherited backoff
    assert [j.id for j in store.claim("w3")] == [behind]


def test_expired_last_attempt_frees_its_pending_duplicate(store: Any, clock: FakeClock) -> None:
    """A dead worker's job on its last attempt is dead-lettered and its duplicate runs at once."""
    first = store.enqueue("1", "k", {}, dedupe_key="deal:1", max_attempts=1)
    store.claim("w1", lease=MINUTE)
    behind = store.enqueue("1", "k", {}, dedupe_key="deal:1")
    clock.advance(2 * MINUTE)
    assert [j.id for j in store.claim("w2", limit=10)] == [behind]
    assert store.get_job(first).state is JobState.DEAD


# -- leases ----------------------------------------------------------------------------------


def test_expired_lease_is_reclaimed_and_the_old_owner_refused(store: Any,
                                                               clock: FakeClock) -> None:
    """A job whose lease expired goes to the next claimer; the old owner cannot clobber it."""
    job_id = store.enqueue("1", "k", {})
    store.claim("w1", lease=MINUTE)
    assert store.claim("w2", lease=MINUTE) == []  # still leased
    clock.advance(2 * MINUTE)
    [job] = store.claim("w2", lease=MINUTE)
    assert (job.id, job.lease_owner, job.attempts) == (job_id, "w2", 2)
    with pytest.raises(LeaseLostError):
        store.complete(job_id, "w1")
    with pytest.raises(LeaseLostError):
        store.fail(job_id, "w1", "late failure")
    with pytest.raises(LeaseLostError):
        store.extend_lease(job_id, "w1", MINUTE)
    after = store.get_job(job_id)
    assert (after.state, after.lease_owner, after.last_error) == (JobState.RUNNING, "w2", None)
    store.complete(job_id, "w2")
    assert store.get_job(job_id) is None


def test_extend_lease_keeps_the_job_from_other_workers(store: Any, clock: FakeClock) -> None:
    """A worker extending its lease keeps the job past the original expiry."""
    job_id = store.enqueue("1", "k", {})
    store.claim("w1", lease=MINUTE)
    clock.advance(timedelta(seconds=50))
    assert store.extend_lease(job_id, "w1", MINUTE) == clock() + MINUTE
    clock.advance(timedelta(seconds=50))
    assert store.claim("w2") == []


def test_extend_leases_moves_the_held_ones_and_names_the_rest(store: Any,
                                                              clock: FakeClock) -> None:
    """Many leases are extended at once; jobs the worker no longer holds are named, untouched."""
    ids = [store.enqueue("1", "k", {}) for _ in range(3)]
    store.claim("w1", lease=MINUTE, limit=3)
    store.complete(ids[2], "w1")
    clock.advance(timedelta(seconds=50))
    assert store.extend_leases([*ids, 999], "w1", MINUTE) == {ids[2], 999}
    clock.advance(timedelta(seconds=50))
    assert store.claim("w2", limit=3) == []
    assert store.get_job(ids[0]).lease_expires_at == clock() + timedelta(seconds=10)


def test_crash_on_the_last_attempt_dead_letters_the_job(store: Any, clock: FakeClock) -> None:
    """A job whose worker died on its last attempt is dead-lettered, not run forever."""
    job_id = store.enqueue("1", "k", {}, max_attempts=1)
    store.claim("w1", lease=MINUTE)
    clock.advance(2 * MINUTE)
    assert store.claim("w2") == []
    dead = store.get_job(job_id)
    assert dead.state is JobState.DEAD
    assert "lease expired" in dead.last_error


# -- migration 0005 -------------------------------------------------------------------------


def _job_row(clock: FakeClock, key: str | None, state: str, **extra: Any) -> dict[str, Any]:
    row = {"tenant_id": 1, "kind": "k", "payload": "{}", "state": state, "attempts": 0,
           "max_attempts": 8, "dedupe_key": key, "run_after": clock(), "lease_owner": None,
           "lease_expires_at": None, "last_error": None, "created_at": clock(),
           "updated_at": clock()}
    return row | extra


def _all_jobs(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(jobs).order_by(jobs.c.id))]


def test_upgrade_from_0004_keeps_every_job_and_dedupes_on_pending_only(
        store_url: str, clock: FakeClock) -> None:
    """A store at 0004 with jobs in every state upgrades unchanged and then follows the new rule."""
    engine = create_store_engine(store_url)
    try:
        migrate(engine, "0004")
        # The jobs table as 0004 made it: tenant ids were integers then (0008 made them text).
        old_jobs = sa.Table("hubspot_jobs", sa.MetaData(), *(
            sa.Column(c.name, sa.Integer if c.name == "tenant_id" else c.type) for c in jobs.columns))
        with engine.begin() as conn:
            conn.execute(sa.insert(old_jobs), [
                _job_row(clock, "a", "pending"),
                _job_row(clock, "b", "running", attempts=1, lease_owner="w",
                         lease_expires_at=clock() + MINUTE),
                _job_row(clock, "b", "dead", attempts=8, last_error="boom"),
                _job_row(clock, None, "pending"),
            ])
        before = _all_jobs(engine)
        migrate(engine, "0005")
        assert current_revision(engine) == "0005"
        assert _all_jobs(engine) == before
        indexes = {ix["name"] for ix in sa.inspect(engine).get_indexes("hubspot_jobs")}
        assert {"uq_hubspot_jobs_pending_dedupe", "ix_hubspot_jobs_running_dedupe"} <= indexes
        assert "uq_hubspot_jobs_live_dedupe" not in indexes
    finally:
        engine.dispose()
    store = open_store(store_url, clock=clock)
    try:
        [pending_a, running_b, _dead_b, keyless] = [row[0] for row in before]
        assert store.enqueue("1", "k", {}, dedupe_key="a") == pending_a
        behind_b = store.enqueue("1", "k", {}, dedupe_key="b")
        assert behind_b not in {row[0] for row in before}
        assert {j.id for j in store.claim("w2", limit=10)} == {pending_a, keyless}
        store.complete(running_b, "w")
        assert [j.id for j in store.claim("w2", limit=10)] == [behind_b]
    finally:
        store.close()


def test_downgrade_to_0004_keeps_the_running_job_of_a_key(store_url: str, store: Any) -> None:
    """Downgrading drops a pending job queued behind a running one, so the old index holds."""
    from alembic import command

    from ambac_hubspot_plugin.store._engine import _alembic_config

    running = store.enqueue("1", "k", {}, dedupe_key="a")
    store.claim("w")
    store.enqueue("1", "k", {}, dedupe_key="a")
    lone = store.enqueue("1", "k", {}, dedupe_key="b")
    with store.engine.connect() as conn, conn.begin():
        command.downgrade(_alembic_config(conn), "0004")
    assert current_revision(store.engine) == "0004"
    assert [row[0] for row in _all_jobs(store.engine)] == [running, lone]
    indexes = {ix["name"] for ix in sa.inspect(store.engine).get_indexes("hubspot_jobs")}
    assert "uq_hubspot_jobs_live_dedupe" in indexes


# -- runner ----------------------------------------------------------------------------------


def test_runner_drains_successes_failures_and_unknown_kinds(store: Any) -> None:
    """drain runs handlers, fails raising ones with their message, and unknown kinds clearly."""
    seen: list[dict[str, Any]] = []

    def ok(job: Job) -> None:
        seen.append(job.payload)

    def broken(job: Job) -> None:
        raise RuntimeError("HubSpot said no")

    store.enqueue("1", "ok", {"n": 1})
    bad = store.enqueue("1", "broken", {})
    stray = store.enqueue("1", "mystery", {}, max_attempts=1)
    counts = QueueRunner(store, {"ok": ok, "broken": broken}, worker_id="w").drain()
    assert (counts.claimed, counts.succeeded, counts.retried, counts.dead) == (3, 1, 1, 1)
    assert seen == [{"n": 1}]
    assert store.get_job(bad).last_error == "RuntimeError: HubSpot said no"
    reason = store.get_job(stray).last_error
    assert "no handler registered for job kind 'mystery'" in reason
    assert "Traceback" not in store.get_job(bad).last_error


def test_runner_stops_at_max_jobs_and_deadline(store: Any, clock: FakeClock) -> None:
    """drain stops after max_jobs, and does not start a job once the deadline passed."""
    for n in range(5):
        store.enqueue("1", "k", {"n": n})

    def slow(job: Job) -> None:
        clock.advance(MINUTE)

    runner = QueueRunner(store, {"k": slow}, clock=clock)
    assert runner.drain(max_jobs=2).claimed == 2
    assert runner.drain(deadline=clock() + timedelta(seconds=90)).claimed == 2
    assert store.depths("1") == {(JobState.PENDING, "k"): 1}


def test_background_thread_runs_jobs_until_stopped(store: Any) -> None:
    """start() drains in a daemon thread, picking up jobs enqueued later; stop() ends it."""
    done: list[int] = []
    runner = QueueRunner(store, {"k": lambda job: done.append(job.payload["n"])},
                         poll_interval=timedelta(milliseconds=20))
    runner.start()
    try:
        for n in range(3):
            store.enqueue("1", "k", {"n": n})
        limit = time.monotonic() + 20
        while len(done) < 3 and time.monotonic() < limit:
            time.sleep(0.01)
    finally:
        runner.stop()
    assert sorted(done) == [0, 1, 2]
    assert store.depths() == {}


def test_a_handler_raising_systemexit_fails_its_job_and_the_background_runner_goes_on(
        store: Any) -> None:
    """Host code reached from a handler calls sys.exit(): the job fails (retried with backoff,
    its reason saying so) and the runner's thread runs the next job, instead of dying without
    a word and leaving every later job of the process waiting."""
    calls: list[int] = []

    def handler(job: Job) -> None:
        calls.append(job.payload["n"])
        if job.payload["n"] == 1:
            raise SystemExit(3)

    first = store.enqueue("7", "k", {"n": 1})
    reported: list[Job] = []
    runner = QueueRunner(store, {"k": handler}, lease=timedelta(seconds=1),
                         poll_interval=timedelta(milliseconds=50), on_failed=reported.append)
    runner.start()
    try:
        limit = time.monotonic() + 20
        while calls != [1] and time.monotonic() < limit:
            time.sleep(0.01)
        later = store.enqueue("7", "k", {"n": 2})
        while store.get_job(later) is not None and time.monotonic() < limit:
            time.sleep(0.01)
        assert store.get_job(later) is None, f"job 2 never ran: handler calls {calls}"
    finally:
        runner.stop(timeout=5)
    failed = store.get_job(first)
    assert (failed.state, failed.attempts) == (JobState.PENDING, 1)
    assert failed.last_error == "interrupted: SystemExit: 3"
    assert [(job.id, job.last_error) for job in reported] == [(first, failed.last_error)], \
        "hubspot_sync_step_failed's listeners hear of it like any failed job"


def test_a_keyboard_interrupt_in_a_main_thread_drain_fails_the_job_then_propagates(
        store: Any) -> None:
    """Ctrl-C during a CLI drain stops the drain, and the job it interrupted is failed (due
    again after its backoff), not left running until its lease runs out."""
    def handler(job: Job) -> None:
        raise KeyboardInterrupt

    job_id = store.enqueue("7", "k", {})
    store.enqueue("7", "k", {})
    with pytest.raises(KeyboardInterrupt):
        QueueRunner(store, {"k": handler}).drain()
    job = store.get_job(job_id)
    assert (job.state, job.attempts, job.last_error) == (
        JobState.PENDING, 1, "interrupted: KeyboardInterrupt")
    assert store.depths("7") == {(JobState.PENDING, "k"): 2}, "the drain stopped at once"


def test_handler_longer_than_its_lease_keeps_the_job(store_url: str) -> None:
    """The runner extends the lease while a handler outlives it, so nobody else takes the job."""
    queue = open_store(store_url, clock=utc_now)
    stolen: list[list[Job]] = []

    def long(job: Job) -> None:
        time.sleep(2.0)  # more than three leases
        stolen.append(queue.claim("thief", lease=timedelta(seconds=5)))

    try:
        queue.enqueue("1", "long", {})
        # 600 ms, renewed every 150 ms: no busy wait or loaded scheduler misses a renewal.
        counts = QueueRunner(queue, {"long": long}, lease=timedelta(milliseconds=600)).drain()
        assert stolen == [[]]
        assert (counts.succeeded, counts.lost) == (1, 0)
    finally:
        queue.close()


def test_jobs_a_handler_claims_itself_keep_their_leases(store_url: str) -> None:
    """keep_leases extends the leases of jobs a handler claimed besides the runner's, so no
    other worker takes them while the handler runs; afterwards they expire as usual."""
    queue = open_store(store_url, clock=utc_now)
    lease = timedelta(milliseconds=600)  # renewed every 150 ms, with room for a loaded machine
    stolen: list[list[Job]] = []

    def batch(job: Job) -> None:
        extra = queue.claim(job.lease_owner or "", kinds=["batch"], limit=5, lease=lease)
        with keep_leases(queue, extra, job.lease_owner or "", lease):
            time.sleep(2.0)  # more than three leases
            stolen.append(queue.claim("thief", lease=timedelta(seconds=5), limit=5))
        for other in extra:
            queue.complete(other.id, job.lease_owner or "")

    try:
        for _ in range(4):
            queue.enqueue("1", "batch", {})
        counts = QueueRunner(queue, {"batch": batch}, lease=lease).drain()
        assert stolen == [[]]
        assert (counts.claimed, counts.succeeded, counts.lost) == (1, 1, 0)
        assert queue.depths("1") == {}
    finally:
        queue.close()


def test_a_renewed_job_is_never_claimed_and_an_unrenewed_one_is_after_its_lease(
        store_url: str) -> None:
    """Another worker claiming every 50 ms for four leases never gets the job a live worker
    renews, and gets the job nobody renews (its worker died) once, after its lease.

    The lease is long enough (1.2 s, renewed every 0.3 s) that a loaded machine's scheduling
    and SQLite's busy waits (sleeps of up to 100 ms) never delay a renewal past it."""
    queue = open_store(store_url, clock=utc_now)
    lease = timedelta(milliseconds=1200)
    try:
        live, dead = queue.enqueue("1", "k", {}), queue.enqueue("1", "k", {})
        claimed_at = time.monotonic()
        assert {job.id for job in queue.claim("w1", limit=2, lease=lease)} == {live, dead}
        taken: list[tuple[int, float]] = []
        with keep_leases(queue, [queue.get_job(live)], "w1", lease) as kept:
            while time.monotonic() - claimed_at < 4 * lease.total_seconds():
                taken += [(job.id, time.monotonic() - claimed_at)
                          for job in queue.claim("w2", limit=5, lease=timedelta(minutes=1))]
                time.sleep(0.05)
        assert [job_id for job_id, _ in taken] == [dead]
        assert taken[0][1] >= lease.total_seconds()
        assert kept.lost == set()
        assert queue.get_job(live).lease_owner == "w1"
    finally:
        queue.close()


def test_a_keeper_stops_renewing_a_job_another_worker_took_and_names_it(store_url: str) -> None:
    """A renewal that finds its job leased to another worker leaves that lease alone and names
    the job in ``lost``, so the handler can skip work it has not started."""
    queue = open_store(store_url, clock=utc_now)
    lease = timedelta(milliseconds=100)
    try:
        job_id = queue.enqueue("1", "k", {})
        [job] = queue.claim("w1", lease=lease)
        time.sleep(0.15)  # w1 stalled past its lease
        [taken] = queue.claim("w2", lease=timedelta(minutes=1))
        with keep_leases(queue, [job], "w1", lease) as kept:
            deadline = time.monotonic() + 10  # its first renewal is due after 25 ms; a busy machine is late
            while not kept.lost and time.monotonic() < deadline:
                time.sleep(0.02)
        assert kept.lost == {job_id}
        assert queue.get_job(job_id).lease_expires_at == taken.lease_expires_at
    finally:
        queue.close()


def test_a_lease_must_be_longer_than_zero(store: Any) -> None:
    """A zero lease, which would let another worker claim a running job at once, is refused."""
    job_id = store.enqueue("1", "k", {})
    with pytest.raises(ValueError, match="longer than zero"):
        store.claim("w", lease=timedelta(0))
    [job] = store.claim("w", lease=MINUTE)
    for call in (lambda: store.extend_lease(job_id, "w", timedelta(0)),
                 lambda: store.extend_leases([job_id], "w", -MINUTE),
                 lambda: keep_leases(store, [job], "w", timedelta(0)),
                 lambda: QueueRunner(store, {}, lease=timedelta(0))):
        with pytest.raises(ValueError, match="longer than zero"):
            call()
    assert store.get_job(job_id).lease_expires_at == job.lease_expires_at


# -- many processes --------------------------------------------------------------------------


def _run_together(procs: list[Any]) -> None:
    """Start the processes (they wait on a barrier of them all once their store is open, so
    none starts its work before the others can) and expect clean exits."""
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(180)
    assert [proc.exitcode for proc in procs] == [0] * len(procs)


def test_workers_in_several_processes_run_every_job_exactly_once(store_url: str,
                                                                  store: Any) -> None:
    """Three worker processes draining 200 jobs run each exactly once between them."""
    results = sa.create_engine(results_url(store_url))
    noted = results.url.render_as_string(hide_password=False)
    with results.begin() as conn:
        conn.execute(sa.text(RESULTS_DDL))
    ids = {store.enqueue("1", "record", {"n": n}) for n in range(200)}
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(3)
    _run_together([ctx.Process(target=drain_worker, args=(store_url, start, noted)) for _ in range(3)])
    with results.connect() as conn:
        rows = conn.execute(sa.text("SELECT job_id, pid FROM mp_results")).all()
        conn.execute(sa.text("DROP TABLE mp_results"))
        conn.commit()
    results.dispose()
    runs = Counter(job_id for job_id, _ in rows)
    assert set(runs) == ids
    assert set(runs.values()) == {1}
    assert len({pid for _, pid in rows}) >= 2
    assert store.depths() == {}


def test_concurrent_enqueues_of_one_key_in_several_processes_queue_it_once(
        store_url: str, store: Any) -> None:
    """Three processes enqueueing the same 20 keys at once leave exactly one pending job each."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(3)
    _run_together([ctx.Process(target=enqueue_worker, args=(store_url, start, 20, 15)) for _ in range(3)])
    with store.engine.connect() as conn:
        keys = Counter(conn.execute(sa.select(jobs.c.dedupe_key)).scalars())
    assert keys == {f"key:{n}": 1 for n in range(20)}


def test_coalesced_jobs_never_run_twice_at_once_and_the_last_enqueue_is_run(
        store_url: str, store: Any) -> None:
    """With enqueuers and workers in separate processes, jobs of one key never overlap, and
    every key's last enqueue is followed by a run that started after it (no update lost)."""
    results = sa.create_engine(results_url(store_url))
    noted = results.url.render_as_string(hide_password=False)
    with results.begin() as conn:
        conn.execute(sa.text(COALESCE_DDL))
    ctx = multiprocessing.get_context("spawn")
    start, enqueued = ctx.Event(), ctx.Event()
    enqueuers = [ctx.Process(target=coalesce_enqueue_worker, args=(store_url, start, 5, 30, noted))
                 for _ in range(2)]
    workers = [ctx.Process(target=coalesce_drain_worker, args=(store_url, start, enqueued, noted))
               for _ in range(2)]
    for proc in enqueuers + workers:
        proc.start()
    start.set()
    for proc in enqueuers:
        proc.join(180)
    enqueued.set()
    for proc in workers:
        proc.join(180)
    assert [proc.exitcode for proc in enqueuers + workers] == [0, 0, 0, 0]
    with results.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT what, dedupe_key, started, ended FROM mp_coalesce")).all()
        conn.execute(sa.text("DROP TABLE mp_coalesce"))
        conn.commit()
    results.dispose()
    runs: dict[str, list[tuple[float, float]]] = {}
    last_enqueue: dict[str, float] = {}
    for what, key, started, ended in rows:
        if what == "run":
            runs.setdefault(key, []).append((started, ended))
        else:
            last_enqueue[key] = max(last_enqueue.get(key, 0.0), started)
    assert set(runs) == set(last_enqueue) == {f"key:{n}" for n in range(5)}
    for key, spans in runs.items():
        spans.sort()
        assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(spans)), key
        assert spans[-1][0] >= last_enqueue[key], key
    assert store.depths() == {}


def test_job_of_a_sigkilled_worker_runs_again_after_its_lease(store_url: str, store: Any,
                                                               clock: FakeClock,
                                                               tmp_path: Path) -> None:
    """A worker killed mid-job loses nothing: once the lease expires another worker runs it."""
    marker = tmp_path / "started"
    job_id = store.enqueue("1", "hang", {"marker": str(marker)})
    proc = multiprocessing.get_context("spawn").Process(target=hanging_worker,
                                                        args=(store_url,))
    proc.start()
    try:
        limit = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < limit:
            time.sleep(0.05)
        assert marker.exists(), "the worker never started the job"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    running = store.get_job(job_id)
    assert running.state is JobState.RUNNING
    assert store.claim("rescuer") == []  # the dead worker's lease has not expired yet

    clock.now = running.lease_expires_at + timedelta(seconds=1)
    ran: list[Job] = []
    counts = QueueRunner(store, {"hang": ran.append}, worker_id="rescuer", clock=clock).drain()
    assert counts.succeeded == 1
    assert [(job.id, job.attempts) for job in ran] == [(job_id, 2)]
    assert store.get_job(job_id) is None


@pytest.mark.parametrize("text", ["bad\x00byte", "bad \udcff name"], ids=["nul", "surrogate"])
def test_an_error_text_no_store_can_hold_is_recorded_escaped(store, text):
    """A handler's message with a NUL (PostgreSQL refuses it) or a lone surrogate (no driver
    encodes it): the failure is still recorded, retried with backoff, and shown readably, as
    is the same text in the log and in a sync run's error."""
    def boom(job):
        raise ValueError(text)

    job_id = store.enqueue("1", "k", {})
    counts = QueueRunner(store, {"k": boom}, worker_id="w1", lease=timedelta(minutes=1)).drain()
    job = store.get_job(job_id)
    assert counts.retried == 1 and job.state is JobState.PENDING and job.lease_owner is None
    assert "bad" in job.last_error and "\x00" not in job.last_error and "\\" in job.last_error
    entry = store.log("1", LogLevel.ERROR, "test", text)
    assert "\x00" not in entry.message
    run = store.start_run("1", "incremental")
    assert store.finish_run(run.id, RunStatus.FAILED, error=text).error.startswith("bad")


def test_each_claim_of_a_runner_has_its_own_lease_owner_so_a_stale_attempt_is_fenced(store, clock):
    """One runner drains from two threads (the background worker and the host's tick): an
    attempt that stalled past its lease, its job claimed again, must not complete, fail or
    renew the new attempt, nor free the job's dedupe key while it runs."""
    owners = []
    runner = QueueRunner(store, {"k": lambda job: owners.append(job.lease_owner)}, worker_id="w1",
                         lease=timedelta(seconds=15), clock=clock)
    for n in range(2):
        store.enqueue("1", "k", {"n": n})
    assert runner.drain().succeeded == 2
    assert len(set(owners)) == 2 and all(owner.startswith("w1#") for owner in owners)
    # What the two threads do with those owners, when the first attempt stalls:
    store.enqueue("1", "k", {}, dedupe_key="deal:1")
    (first,) = store.claim(runner._owner(), kinds=["k"], lease=timedelta(seconds=15))
    clock.advance(timedelta(seconds=30))
    (second,) = store.claim(runner._owner(), kinds=["k"], lease=timedelta(seconds=15))
    assert second.id == first.id and second.lease_owner != first.lease_owner
    for stale in (lambda: store.complete(first.id, first.lease_owner),
                  lambda: store.fail(first.id, first.lease_owner, "stale"),
                  lambda: store.extend_lease(first.id, first.lease_owner, timedelta(seconds=15))):
        with pytest.raises(LeaseLostError):
            stale()
    store.enqueue("1", "k", {}, dedupe_key="deal:1")
    assert store.claim("other", kinds=["k"]) == [], "the key stays held while the new attempt runs"
    store.complete(second.id, second.lease_owner)
