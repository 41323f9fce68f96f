"""The durable job queue: leases, exponential backoff with full jitter, dead letters.

At-least-once: a job is deleted only when its worker completes it while still holding the
lease. A worker that dies leaves its lease to expire, and the job is claimed again.

Leases are short (:data:`DEFAULT_LEASE`) and renewed while a job runs (see ``_runner``): a
live worker keeps its jobs however long they take, and a crashed one stalls its jobs, and
every job waiting behind one of them on a dedupe key, for one lease at most.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from . import _queue_sql as sql
from ._inbox_sql import JOB_COLUMNS, JOB_TAIL, db_time, insert_rows, one_of, storable_text
from ._ports import Job, JobState, LeaseLostError
from ._schema import PENDING_DEDUPE, jobs

__all__ = ["DEFAULT_LEASE", "Backoff", "SqlJobQueue", "check_lease"]

#: Short, so a crashed worker's jobs are claimed again within seconds; a live worker renews it
#: every quarter lease, so a job may run for any length of time and a renewal may fail twice.
DEFAULT_LEASE = timedelta(seconds=15)
_ERROR_MAX = 4000


@attrs.frozen
class Backoff:
    """Retry delays: exponential from ``base``, capped at ``cap``, with full jitter.

    Full jitter (a uniform delay between zero and the exponential ceiling) spreads retries of
    jobs that failed together, e.g. all at one HubSpot outage, instead of retrying in lockstep.
    """

    base: timedelta = timedelta(seconds=10)
    cap: timedelta = timedelta(hours=1)

    def ceiling(self, attempt: int) -> timedelta:
        """The longest delay after failed attempt number ``attempt`` (1-based)."""
        # In float seconds: base * 2**n overflows timedelta long before attempts run out.
        exponent = min(max(attempt - 1, 0), 1000)
        seconds = self.base.total_seconds() * 2.0**exponent
        return timedelta(seconds=min(self.cap.total_seconds(), seconds))

    def delay(self, attempt: int, random_source: Callable[[], float]) -> timedelta:
        """A jittered delay in ``[0, ceiling(attempt)]``; ``random_source`` gives [0, 1)."""
        return self.ceiling(attempt) * random_source()


def check_lease(lease: timedelta) -> None:
    """Refuse a lease that is not positive (a programmer's mistake)."""
    if lease <= timedelta(0):
        raise ValueError(f"a lease must be longer than zero, not {lease}: another worker could "
                         "claim the job at once and run it twice")


def _due_order(job: Job) -> tuple[datetime, int]:
    return job.run_after, job.id


def _job(row: sa.Row[Any]) -> Job:
    m = dict(row._mapping)
    m.pop("updated_at")
    m["payload"] = json.loads(m["payload"])
    return Job(**m)


class SqlJobQueue:
    """The :class:`JobQueue` port on SQLAlchemy Core; :class:`SqlStateStore` extends it."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime], backoff: Backoff,
                 random_source: Callable[[], float], max_attempts: int) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._engine = engine
        self._clock = clock
        self._backoff = backoff
        self._random = random_source
        self._max_attempts = max_attempts
        # Built once: SQLAlchemy then reuses their compiled form on every enqueue.
        dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
        self._insert_plain = sa.insert(jobs).returning(jobs.c.id)
        self._insert_deduped = (
            dialect.insert(jobs)
            .on_conflict_do_nothing(index_elements=["tenant_id", "kind", "dedupe_key"],
                                    index_where=PENDING_DEDUPE)
            .returning(jobs.c.id))

    def _pending_duplicate(self, conn: Connection, tenant_id: str, kind: str,
                           dedupe_key: str, *, lock: bool = False) -> int | None:
        query = sa.select(jobs.c.id).where(
            jobs.c.tenant_id == tenant_id, jobs.c.kind == kind, jobs.c.dedupe_key == dedupe_key,
            jobs.c.state == JobState.PENDING.value)
        if lock:
            query = query.with_for_update()
        return conn.execute(query).scalar()

    def enqueue(self, tenant_id: str, kind: str, payload: Mapping[str, Any], *,
                dedupe_key: str | None = None, run_after: datetime | None = None,
                max_attempts: int | None = None) -> int:
        """Queue a job and return its id.

        With a ``dedupe_key``, a *pending* job of the same tenant, kind and key absorbs this
        one: its id is returned instead (a partial unique index decides races). A *running*
        job does not: it may have read the state its work depends on already, so a new
        pending job is queued, and :meth:`claim` holds it back until the running one is done.
        """
        now = self._clock()
        attempts_allowed = self._max_attempts if max_attempts is None else max_attempts
        if attempts_allowed < 1:
            raise ValueError("max_attempts must be at least 1")
        values = {
            "tenant_id": tenant_id, "kind": kind, "payload": json.dumps(dict(payload)),
            "state": JobState.PENDING.value, "attempts": 0, "max_attempts": attempts_allowed,
            "dedupe_key": dedupe_key, "run_after": run_after or now, "created_at": now,
            "updated_at": now,
        }
        with self._engine.begin() as conn:
            if dedupe_key is None:
                return int(conn.execute(self._insert_plain, values).scalar_one())
            # One statement in the common case. On PostgreSQL the pending job we collided with
            # can be claimed before the re-read; then the next insert goes through.
            for _ in range(5):
                new_id = conn.execute(self._insert_deduped, values).scalar()
                if new_id is not None:
                    return int(new_id)
                existing = self._pending_duplicate(conn, tenant_id, kind, dedupe_key)
                if existing is not None:
                    return int(existing)
        raise RuntimeError(f"could not enqueue {kind} {dedupe_key!r}: dedupe kept colliding")

    def enqueue_many(self, tenant_id: str, items: Sequence[tuple[str, Mapping[str, Any], str | None]], *,
                     max_attempts: int | None = None, run_after: datetime | None = None) -> int:
        """Queue many jobs in one transaction, as :meth:`enqueue` would one by one (due at
        ``run_after``, else now); return how many were added.

        ``items`` are ``(kind, payload, dedupe_key)``. A pending job of the same tenant, kind
        and key absorbs an item (and of two items with one key, the first absorbs the second):
        multi-row ``INSERT ... ON CONFLICT DO NOTHING`` statements (``insert_rows``) decide it.
        """
        if not items:
            return 0
        now = self._clock()
        attempts_allowed = self._max_attempts if max_attempts is None else max_attempts
        if attempts_allowed < 1:
            raise ValueError("max_attempts must be at least 1")
        # One key order for every writer (stable: of equal keys the first item stays first), so
        # two writers of overlapping batches do not lock each other's rows crosswise.
        ordered = sorted(items, key=lambda item: (item[0], item[2] or ""))
        with self._engine.begin() as conn:
            stamp = db_time(conn, now)
            due = stamp if run_after is None else db_time(conn, run_after)
            rows = [(tenant_id, kind, json.dumps(dict(payload)), JobState.PENDING.value, 0, attempts_allowed,
                     dedupe_key, due, stamp, stamp) for kind, payload, dedupe_key in ordered]
            # Multi-row VALUES on the driver (one JSON array of rows on PostgreSQL): through
            # SQLAlchemy's executemany psycopg parsed the long text anew for every batch.
            return len(insert_rows(conn, jobs, JOB_COLUMNS, rows, JOB_TAIL))

    def claim(self, worker_id: str, *, kinds: Collection[str] | None = None, limit: int = 1,
              lease: timedelta = DEFAULT_LEASE) -> list[Job]:
        """Lease up to ``limit`` due jobs to ``worker_id`` for ``lease``.

        Due means pending with ``run_after`` reached and no job of the same dedupe key
        running, or running with an expired lease (its worker died). So at most one job per
        dedupe key runs at a time. Each claim counts as an attempt. Safe across processes:
        PostgreSQL skips rows other claimers locked, SQLite serializes writers
        (``BEGIN IMMEDIATE``).
        """
        check_lease(lease)
        now = self._clock()
        params: dict[str, Any] = {"now": now, "limit": limit, "owner": worker_id, "expires": now + lease}
        query = sql.CLAIM_ANY
        if kinds is not None:
            query, params["kinds"] = sql.CLAIM_KINDS, list(kinds)
        with self._engine.begin() as conn:
            while True:
                rows = conn.execute(query, params).all()
                claimed = [_job(row) for row in rows if row.state != JobState.DEAD.value]
                if claimed or len(rows) == 0:
                    break
                # Every pick was dead-lettered (rare: workers died on last attempts); the
                # next round sees past them, so a due job is not left for the next poll.
        # RETURNING gives no order: restore the claim's, due first.
        return sorted(claimed, key=_due_order)

    def complete(self, job_id: int, worker_id: str) -> None:
        """Finish a job (it is deleted).

        :raises LeaseLostError: ``worker_id`` no longer holds the job; nothing changed.
        """
        with self._engine.begin() as conn:
            if conn.execute(sql.COMPLETE, {"job_id": job_id, "owner": worker_id}).rowcount == 0:
                raise LeaseLostError(job_id, worker_id)

    def fail(self, job_id: int, worker_id: str, error: str) -> Job:
        """Record a failed attempt: retry later with backoff, or dead-letter after the last.

        Returns the job that will retry the work. If a pending job with the same dedupe key
        was queued while this one ran, that one is it: it will do the same work later (with
        the state of then), so this job is deleted instead of going back to pending, and
        ``error`` is recorded as the survivor's ``last_error``. The survivor inherits the
        failure's backoff (its ``run_after`` becomes the later of the two) and attempt count
        (the larger), so work that keeps failing is spaced out and dead-lettered in the end.

        :raises LeaseLostError: ``worker_id`` no longer holds the job; nothing changed.
        """
        now = self._clock()
        error = storable_text(error[:_ERROR_MAX])
        # PostgreSQL: an enqueue committing a pending duplicate after our check makes the
        # update violate the unique index; the next round finds that job and merges.
        for _ in range(5):
            try:
                with self._engine.begin() as conn:
                    return self._fail(conn, job_id, worker_id, error, now)
            except sa.exc.IntegrityError:
                continue
        raise RuntimeError(f"could not fail job {job_id}: a pending duplicate kept colliding")

    def _fail(self, conn: Connection, job_id: int, worker_id: str, error: str,
              now: datetime) -> Job:
        row = conn.execute(sql.HELD, {"job_id": job_id, "owner": worker_id}).first()
        if row is None:
            raise LeaseLostError(job_id, worker_id)
        job = _job(row)
        survivor = None if job.dedupe_key is None else self._pending_duplicate(
            conn, job.tenant_id, job.kind, job.dedupe_key, lock=True)
        if survivor is not None:
            conn.execute(sa.delete(jobs).where(jobs.c.id == job_id))
            waiting = _job(conn.execute(sa.select(jobs).where(jobs.c.id == survivor)).one())
            # The failure still backs off and still counts: a work item that keeps failing
            # (an outage) must not retry at once on every new enqueue, and must dead-letter.
            conn.execute(sa.update(jobs).where(jobs.c.id == survivor).values(
                last_error=error, updated_at=now, attempts=max(waiting.attempts, job.attempts),
                run_after=max(waiting.run_after, now + self._backoff.delay(job.attempts, self._random))))
            return _job(conn.execute(sa.select(jobs).where(jobs.c.id == survivor)).one())
        values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None,
                                  "last_error": error, "updated_at": now}
        if job.attempts >= job.max_attempts:
            values["state"] = JobState.DEAD.value
        else:
            values["state"] = JobState.PENDING.value
            values["run_after"] = now + self._backoff.delay(job.attempts, self._random)
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(values))
        return _job(conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one())

    def extend_lease(self, job_id: int, worker_id: str, lease: timedelta) -> datetime:
        """Keep a long job: its lease now ends ``lease`` from now. Returns the new expiry.

        :raises LeaseLostError: ``worker_id`` no longer holds the job.
        """
        check_lease(lease)
        expires = self._clock() + lease
        with self._engine.begin() as conn:
            changed = conn.execute(sql.EXTEND_LEASE, {"job_id": job_id, "owner": worker_id,
                                                      "expires": expires}).rowcount
        if changed == 0:
            raise LeaseLostError(job_id, worker_id)
        return expires

    def extend_leases(self, job_ids: Collection[int], worker_id: str,
                      lease: timedelta) -> set[int]:
        """:meth:`extend_lease` for many jobs in one transaction; returns the ids of those
        ``worker_id`` no longer holds (their leases are left alone)."""
        check_lease(lease)
        expires = self._clock() + lease
        ids = sorted(set(job_ids))
        held: set[int] = set()
        with self._engine.begin() as conn:
            for start in range(0, len(ids), 500):
                held.update(conn.execute(sql.EXTEND_LEASES, {
                    "ids": ids[start:start + 500], "owner": worker_id, "expires": expires,
                }).scalars())
        return set(ids) - held

    def get_job(self, job_id: int) -> Job | None:
        """One queued job (pending, running or dead), or None once completed."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else _job(row)

    def queued(self, tenant_id: str, kinds: Collection[str], *,
               dedupe_keys: Collection[str] | None = None) -> list[Job]:
        """A tenant's jobs of these kinds in any state (pending, running or dead), by id; with
        ``dedupe_keys``, only the jobs with one of those keys."""
        query = sa.select(jobs).where(jobs.c.tenant_id == tenant_id, jobs.c.kind.in_(list(kinds)))
        with self._engine.connect() as conn:
            if dedupe_keys is None:
                return [_job(row) for row in conn.execute(query.order_by(jobs.c.id))]
            found = [_job(row) for condition in one_of(conn, jobs.c.dedupe_key, sorted(set(dedupe_keys)))
                     for row in conn.execute(query.where(condition))]
        return sorted(found, key=lambda job: job.id)

    def dead_letters(self, tenant_id: str, *, kind: str | None = None,
                     limit: int = 100) -> list[Job]:
        """A tenant's dead-lettered jobs, most recently failed first."""
        query = sa.select(jobs).where(jobs.c.tenant_id == tenant_id,
                                      jobs.c.state == JobState.DEAD.value)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        query = query.order_by(jobs.c.updated_at.desc(), jobs.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_job(row) for row in conn.execute(query)]

    def replay(self, job_id: int) -> int | None:
        """Put a dead job back in the queue, attempts reset; None if it is not dead.

        Returns the id of the job that will do the work: this one, or a pending job with the
        same dedupe key queued meanwhile, in which case the dead one is dropped.
        """
        now = self._clock()
        dead = sa.and_(jobs.c.id == job_id, jobs.c.state == JobState.DEAD.value)
        # PostgreSQL: a pending duplicate committed after our check fails the update on the
        # unique index; the next round finds it.
        for _ in range(5):
            try:
                with self._engine.begin() as conn:
                    row = conn.execute(sa.select(jobs).where(dead).with_for_update()).first()
                    if row is None:
                        return None
                    job = _job(row)
                    live = None if job.dedupe_key is None else self._pending_duplicate(
                        conn, job.tenant_id, job.kind, job.dedupe_key)
                    if live is not None:
                        conn.execute(sa.delete(jobs).where(dead))
                        return live
                    conn.execute(sa.update(jobs).where(dead).values(
                        state=JobState.PENDING.value, attempts=0, run_after=now,
                        lease_owner=None, lease_expires_at=None, updated_at=now))
                    return job_id
            except sa.exc.IntegrityError:
                continue
        raise RuntimeError(f"could not replay job {job_id}: a pending duplicate kept colliding")

    def replay_all(self, tenant_id: str, kind: str | None = None) -> int:
        """Replay every dead job of a tenant (optionally of one kind); returns how many."""
        query = sa.select(jobs.c.id).where(jobs.c.tenant_id == tenant_id,
                                           jobs.c.state == JobState.DEAD.value)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        with self._engine.connect() as conn:
            ids = list(conn.execute(query.order_by(jobs.c.id)).scalars())
        return sum(1 for job_id in ids if self.replay(job_id) is not None)

    def depths(self, tenant_id: str | None = None) -> dict[tuple[JobState, str], int]:
        """How many jobs are in each (state, kind), for one tenant or all."""
        query = sa.select(jobs.c.state, jobs.c.kind, sa.func.count()).group_by(
            jobs.c.state, jobs.c.kind)
        if tenant_id is not None:
            query = query.where(jobs.c.tenant_id == tenant_id)
        with self._engine.connect() as conn:
            return {(JobState(state), kind): count for state, kind, count in conn.execute(query)}

    def complete_many(self, job_ids: Collection[int], worker_id: str) -> set[int]:
        """Finish many jobs in one transaction (they are deleted); returns the ids of those
        ``worker_id`` no longer held, which were left alone (:meth:`complete` would raise
        :class:`LeaseLostError` for each)."""
        wanted = sorted(set(job_ids))
        done: set[int] = set()
        with self._engine.begin() as conn:
            for ids_in in one_of(conn, jobs.c.id, wanted):
                done.update(conn.execute(sa.delete(jobs).where(
                    ids_in, jobs.c.state == JobState.RUNNING.value,
                    jobs.c.lease_owner == worker_id).returning(jobs.c.id)).scalars())
        return set(wanted) - done
