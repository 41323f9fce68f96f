"""The webhook inbox on SQLAlchemy Core: a mixin of :class:`~._store.SqlStateStore`.

A batch is stored and its processing jobs queued in one transaction, so a delivery HubSpot saw
acknowledged always has its work in the queue, and one it saw refused left nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import threading
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from ._ports import (
    InboxEvent,
    InboxEventDraft,
    InboxReceipt,
    JobState,
    LogLevel,
    WebhookPortalStats,
    WebhookRefusalStats,
)
from ._schema import integration_log, jobs, webhook_events, webhook_portals, webhook_refusals

__all__ = ["FOLLOW_UP_SUFFIX", "SqlInboxMixin", "object_job_key"]

FOLLOW_UP_SUFFIX = ":next"
"""Dedupe-key suffix of the job queued for events that arrive while an object's job runs."""

# Must be the text of the partial unique index of migration 0002: ON CONFLICT infers the index
# from it on both backends.
_LIVE_JOB = sa.text("dedupe_key IS NOT NULL AND state IN ('pending', 'running')")
_CHUNK = 500  # rows per INSERT: far below SQLite's bound-parameter limit
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_SQLITE_WRITERS_GUARD = threading.Lock()


def object_job_key(object_type: str, object_id: str) -> str:
    """The dedupe key of the processing job of one HubSpot object: ``<type>:<id>``."""
    return f"{object_type}:{object_id}"


def _inbox_event(row: sa.Row[Any]) -> InboxEvent:
    m = dict(row._mapping)
    m["payload"] = json.loads(m["payload"])
    return InboxEvent(**m)


class SqlInboxMixin:
    """The :class:`~._ports.Inbox` port; needs ``_engine``, ``_clock`` and ``_max_attempts``."""

    _engine: Engine
    _clock: Callable[[], datetime]
    _max_attempts: int

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction; on SQLite, threads of this process take turns first.

        SQLite has one writer at a time, and a thread waiting in its busy handler sleeps in
        growing steps: under ten concurrent deliveries that made p99 answers take seconds.
        Queueing on a lock hands the database over without sleeping. Other processes still
        wait on busy_timeout.
        """
        if self._engine.dialect.name != "sqlite":
            with self._engine.begin() as conn:
                yield conn
            return
        with _SQLITE_WRITERS_GUARD:
            lock = _SQLITE_WRITERS.setdefault(self._engine, threading.Lock())
        with lock, self._engine.begin() as conn:
            yield conn

    def _insert(self, table: sa.Table) -> Any:
        dialect = sqlite if self._engine.dialect.name == "sqlite" else postgresql
        return dialect.insert(table)

    # -- receiving ---------------------------------------------------------------------------

    def accept_webhook_batch(self, tenant_id: int, drafts: Sequence[InboxEventDraft], *,
                             job_kind: str, max_attempts: int | None = None) -> InboxReceipt:
        """Store the events not stored yet and queue one job per object that got new events.

        Everything happens in one transaction: when this returns, the events and their jobs
        are committed; when it raises, nothing was written.
        """
        now = self._clock()
        attempts = self._max_attempts if max_attempts is None else max_attempts
        unique = {draft.dedupe_key: draft for draft in reversed(drafts)}  # first copy wins
        # Sorted inserts take row locks in one global order: concurrent duplicate batches on
        # PostgreSQL then wait for each other instead of deadlocking.
        ordered = [unique[key] for key in sorted(unique)]
        with self._writing() as conn:
            inserted: set[str] = set()
            for start in range(0, len(ordered), _CHUNK):
                rows = [{
                    "tenant_id": tenant_id, "portal_id": d.portal_id, "dedupe_key": d.dedupe_key,
                    "event_id": d.event_id, "subscription_type": d.subscription_type,
                    "object_type": d.object_type, "object_id": d.object_id,
                    "property_name": d.property_name, "occurred_at_ms": d.occurred_at_ms,
                    "payload": d.payload, "received_at": now,
                } for d in ordered[start:start + _CHUNK]]
                # executemany (batched into multi-row INSERTs by SQLAlchemy) compiles once and
                # is cached; a .values(rows) statement would be compiled anew for every batch.
                stmt = (self._insert(webhook_events)
                        .on_conflict_do_nothing(index_elements=["tenant_id", "dedupe_key"])
                        .returning(webhook_events.c.dedupe_key))
                inserted.update(conn.execute(stmt, rows).scalars())
            objects = sorted({(d.object_type, d.object_id) for d in ordered
                              if d.dedupe_key in inserted})
            self._queue_object_jobs(conn, tenant_id, job_kind, objects, attempts, now)
            self._count_batch(conn, tenant_id, ordered, inserted, now)
        return InboxReceipt(accepted=len(inserted), duplicates=len(drafts) - len(inserted),
                            jobs=len(objects))

    def _insert_jobs(self, conn: Connection, tenant_id: int, kind: str,
                     keyed: Sequence[tuple[str, dict[str, Any]]], attempts: int,
                     now: datetime) -> set[str]:
        created: set[str] = set()
        for start in range(0, len(keyed), _CHUNK):
            rows = [{
                "tenant_id": tenant_id, "kind": kind, "payload": json.dumps(payload),
                "state": JobState.PENDING.value, "attempts": 0, "max_attempts": attempts,
                "dedupe_key": key, "run_after": now, "created_at": now, "updated_at": now,
            } for key, payload in keyed[start:start + _CHUNK]]
            if not rows:
                continue
            stmt = (self._insert(jobs)
                    .on_conflict_do_nothing(index_elements=["tenant_id", "kind", "dedupe_key"],
                                            index_where=_LIVE_JOB)
                    .returning(jobs.c.dedupe_key))
            created.update(conn.execute(stmt, rows).scalars())
        return created

    def _queue_object_jobs(self, conn: Connection, tenant_id: int, kind: str,
                           objects: Sequence[tuple[str, str]], attempts: int,
                           now: datetime) -> None:
        """Make sure a job that has not yet read the inbox exists for every object.

        A pending job will read the new events when it runs. A running one may have read the
        inbox already, so a follow-up job (key ``<type>:<id>:next``) is queued behind it; the
        handler makes the follow-up wait while the first still runs.
        """
        wanted = {object_job_key(t, i): {"object_type": t, "object_id": i} for t, i in objects}
        for _ in range(5):
            created = self._insert_jobs(conn, tenant_id, kind, list(wanted.items()), attempts,
                                        now)
            clashing = sorted(set(wanted) - created)
            if not clashing:
                return
            # Lock the live jobs we collided with: a claim on PostgreSQL skips locked rows, so
            # a pending job cannot start reading before this batch is committed.
            live: dict[str, str] = {key: state for key, state in conn.execute(
                sa.select(jobs.c.dedupe_key, jobs.c.state).where(
                    jobs.c.tenant_id == tenant_id, jobs.c.kind == kind,
                    jobs.c.dedupe_key.in_(clashing),
                    jobs.c.state.in_([JobState.PENDING.value, JobState.RUNNING.value]),
                ).order_by(jobs.c.id).with_for_update())}
            follow = [(key + FOLLOW_UP_SUFFIX, wanted[key]) for key in clashing
                      if live.get(key) == JobState.RUNNING.value]
            # An existing follow-up (pending or running-and-waiting) serves as well: no error.
            self._insert_jobs(conn, tenant_id, kind, follow, attempts, now)
            # A clashing job that finished meanwhile is gone: insert that object's job again.
            wanted = {key: wanted[key] for key in clashing if key not in live}
            if not wanted:
                return
        raise RuntimeError("could not queue webhook jobs: their dedupe keys kept colliding")

    def _count_batch(self, conn: Connection, tenant_id: int, drafts: Sequence[InboxEventDraft],
                     inserted: set[str], now: datetime) -> None:
        per_portal: dict[str, list[InboxEventDraft]] = defaultdict(list)
        for draft in drafts:
            per_portal[draft.portal_id].append(draft)
        col = webhook_portals.c
        for portal_id in sorted(per_portal):
            batch = per_portal[portal_id]
            new = sum(1 for d in batch if d.dedupe_key in inserted)
            latest = max(d.occurred_at_ms for d in batch)
            stmt = self._insert(webhook_portals).values(
                tenant_id=tenant_id, portal_id=portal_id, last_received_at=now,
                last_occurred_at_ms=latest, accepted=new, duplicates=len(batch) - new, echoes=0)
            stmt = stmt.on_conflict_do_update(
                index_elements=["tenant_id", "portal_id"],
                set_={"accepted": col.accepted + new,
                      "duplicates": col.duplicates + (len(batch) - new),
                      "last_received_at": now,
                      "last_occurred_at_ms": sa.case(
                          (col.last_occurred_at_ms > latest, col.last_occurred_at_ms),
                          else_=latest)})
            conn.execute(stmt)

    def record_webhook_refusal(self, tenant_id: int, reason: str, *, refused: int = 1,
                               suppressed: int = 0, message: str | None = None) -> None:
        """Count refused requests and, when ``message`` is given, log one warning line.

        The caller rate-limits messages; ``suppressed`` counts refusals it did not log.
        """
        now = self._clock()
        col = webhook_refusals.c
        stmt = self._insert(webhook_refusals).values(
            tenant_id=tenant_id, reason=reason, refused=refused, suppressed=suppressed,
            last_refused_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "reason"],
            set_={"refused": col.refused + refused, "suppressed": col.suppressed + suppressed,
                  "last_refused_at": now})
        with self._writing() as conn:
            conn.execute(stmt)
            if message is not None:
                conn.execute(sa.insert(integration_log).values(
                    tenant_id=tenant_id, level=LogLevel.WARNING.value, what="webhook.refused",
                    record=f"webhook:{reason}", message=message, created_at=now))

    # -- processing --------------------------------------------------------------------------

    def pending_webhook_events(self, tenant_id: int, object_type: str,
                               object_id: str) -> list[InboxEvent]:
        """One object's stored events that were not processed yet, oldest stored first."""
        ev = webhook_events.c
        query = sa.select(webhook_events).where(
            ev.tenant_id == tenant_id, ev.object_type == object_type, ev.object_id == object_id,
            ev.processed_at.is_(None)).order_by(ev.id)
        with self._engine.connect() as conn:
            return [_inbox_event(row) for row in conn.execute(query)]

    def finish_webhook_events(self, tenant_id: int, applied: Collection[int],
                              echoes: Collection[int]) -> int:
        """Mark events processed (``applied`` or ``echo``); count the echoes per portal.

        Events processed already are left alone (and not counted again). Returns how many
        events this call marked.
        """
        now = self._clock()
        ev = webhook_events.c
        marked = 0
        with self._writing() as conn:
            for outcome, ids in (("applied", sorted(applied)), ("echo", sorted(echoes))):
                for start in range(0, len(ids), _CHUNK):
                    chunk = ids[start:start + _CHUNK]
                    where = (ev.tenant_id == tenant_id, ev.id.in_(chunk), ev.processed_at.is_(None))
                    portals = Counter(conn.execute(
                        sa.select(ev.portal_id).where(*where)).scalars())
                    marked += conn.execute(sa.update(webhook_events).where(*where).values(
                        processed_at=now, outcome=outcome)).rowcount
                    if outcome != "echo":
                        continue
                    for portal_id, count in sorted(portals.items()):
                        conn.execute(sa.update(webhook_portals).where(
                            webhook_portals.c.tenant_id == tenant_id,
                            webhook_portals.c.portal_id == portal_id,
                        ).values(echoes=webhook_portals.c.echoes + count))
        return marked

    def webhook_object_busy(self, tenant_id: int, job_kind: str, object_type: str,
                            object_id: str, job_id: int) -> bool:
        """Whether an older job of the same object is running under a live lease.

        Only older jobs count, so of two jobs of one object exactly one defers: the older
        (e.g. the first job, over a follow-up queued while it ran) goes on.
        """
        key = object_job_key(object_type, object_id)
        query = sa.select(sa.func.count()).select_from(jobs).where(
            jobs.c.tenant_id == tenant_id, jobs.c.kind == job_kind,
            jobs.c.dedupe_key.in_([key, key + FOLLOW_UP_SUFFIX]), jobs.c.id < job_id,
            jobs.c.state == JobState.RUNNING.value, jobs.c.lease_expires_at > self._clock())
        with self._engine.connect() as conn:
            return bool(conn.execute(query).scalar_one())

    # -- reading and housekeeping -----------------------------------------------------------

    def webhook_portal_stats(self, tenant_id: int) -> list[WebhookPortalStats]:
        """The webhook counters of each of the tenant's portals."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(webhook_portals).where(
                webhook_portals.c.tenant_id == tenant_id).order_by(webhook_portals.c.portal_id))
            result = []
            for row in rows:
                m = dict(row._mapping)
                occurred = m.pop("last_occurred_at_ms")
                m["last_occurred_at"] = (None if occurred is None
                                         else datetime.fromtimestamp(occurred / 1000, UTC))
                result.append(WebhookPortalStats(**m))
            return result

    def webhook_refusal_stats(self, tenant_id: int) -> list[WebhookRefusalStats]:
        """How many requests of the tenant were refused, per reason."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(webhook_refusals).where(
                webhook_refusals.c.tenant_id == tenant_id).order_by(webhook_refusals.c.reason))
            return [WebhookRefusalStats(**row._mapping) for row in rows]

    def prune_webhook_events(self, processed_before: datetime) -> int:
        """Delete events processed before ``processed_before``; returns how many.

        Keep at least a few days: a redelivery of a pruned event would be stored (and
        applied) again. HubSpot stops retrying after about a day.
        """
        with self._engine.begin() as conn:
            return int(conn.execute(sa.delete(webhook_events).where(
                webhook_events.c.processed_at < processed_before)).rowcount)
