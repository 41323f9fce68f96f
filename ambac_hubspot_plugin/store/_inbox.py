"""The webhook inbox on SQLAlchemy Core: a mixin of :class:`~._store.SqlStateStore`.

A delivery is stored whole with the job that will split it, in one transaction, so a delivery
HubSpot saw acknowledged always has its work in the queue, and one it saw refused left nothing
behind. The split stores its events once each, queues their per-object jobs and deletes the
delivery, again in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import threading
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from ._group_commit import GroupCommit, Received
from ._inbox_sql import (
    BATCH_COLUMNS,
    EVENT_COLUMNS,
    EVENT_TAIL,
    JOB_COLUMNS,
    JOB_TAIL,
    db_time,
    in_lists,
    insert_rows,
    multi_row_sql,
    one_of,
    pending_jobs_sql,
    portal_upsert_sql,
)
from ._ports import (
    INBOX_JOB_KEY,
    InboxEvent,
    InboxEventDraft,
    InboxReceipt,
    JobState,
    LogLevel,
    WebhookBacklog,
    WebhookExpansion,
    WebhookPortalStats,
    WebhookRefusalStats,
)
from ._schema import (
    integration_log,
    jobs,
    webhook_batches,
    webhook_events,
    webhook_portals,
    webhook_refusals,
)

__all__ = ["SqlInboxMixin", "object_job_key"]

_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_SQLITE_WRITERS_GUARD = threading.Lock()
_GROUP_GUARD = threading.Lock()
# Events per split transaction (at least one delivery). On SQLite the receiver waits for the
# split's write: a 100-event transaction holds the writer for about 7 ms, a 5,000-event one
# for a third of a second. Smaller transactions split more slowly (each commit writes the
# index pages it dirtied: about 9,000 events/s at 100, 15,000 at 5,000), still well above
# the 5,000 events/s the receiver is sized for.
#
# On PostgreSQL the receiver never waits for the split's transaction (rows are locked, not the
# database; the one row both write, the portal's counters, is written last, just before the
# commit), and each commit waits for its WAL flush: rounds of 1,000 events split about twice
# as fast as rounds of 100 there.
_SPLIT_EVENTS = {"sqlite": 100}
_SPLIT_EVENTS_DEFAULT = 1000


def object_job_key(object_type: str, object_id: str) -> str:
    """The dedupe key of the processing job of one HubSpot object: ``<type>:<id>``."""
    return f"{object_type}:{object_id}"


def _inbox_event(row: sa.Row[Any]) -> InboxEvent:
    m = dict(row._mapping)
    m["payload"] = json.loads(m["payload"])
    return InboxEvent(**m)


class _Delivery:
    """A batch of event drafts to store, and the job kind and attempts of its object jobs."""

    __slots__ = ("attempts", "drafts", "job_kind", "tenant_id")

    def __init__(self, tenant_id: str, drafts: Sequence[InboxEventDraft], job_kind: str,
                 attempts: int) -> None:
        self.tenant_id, self.drafts = tenant_id, drafts
        self.job_kind, self.attempts = job_kind, attempts


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

    def receive_webhook_batch(self, tenant_id: str, portal_id: str, body: bytes, *,
                              events: int, latest_occurred_ms: int, job_kind: str,
                              max_attempts: int | None = None) -> int:
        """Store a verified delivery whole and make sure a ``job_kind`` job (dedupe key
        ``inbox``) will split it; returns the delivery's id.

        When this returns, the delivery and its job are committed, and the portal's
        ``last_received_at`` is now; when it raises, nothing was written. Concurrent calls on
        one store are committed together (see :class:`~._group_commit.GroupCommit`), each still
        all-or-nothing: a delivery the database refuses fails alone.
        """
        attempts = self._max_attempts if max_attempts is None else max_attempts
        committer: GroupCommit | None = getattr(self, "_group_commit", None)
        if committer is None:
            with _GROUP_GUARD:
                committer = getattr(self, "_group_commit", None)
                if committer is None:
                    committer = GroupCommit(self._store_received)
                    self._group_commit = committer
        return committer.submit(Received(tenant_id, portal_id, body, events, latest_occurred_ms,
                                          job_kind, attempts))

    def _store_received(self, group: Sequence[Received]) -> list[int]:
        """Store every delivery of ``group`` in one transaction; the id of each."""
        now = self._clock()
        latest: dict[tuple[str, str], int] = {}
        wanted: set[tuple[str, str, int]] = set()
        for item in group:
            key = (item.tenant_id, item.portal_id)
            latest[key] = max(latest.get(key, 0), item.latest_ms)
            wanted.add((item.tenant_id, item.job_kind, item.attempts))
        with self._writing() as conn:
            stamp = db_time(conn, now)
            sql = multi_row_sql(conn.dialect.paramstyle, webhook_batches.name, BATCH_COLUMNS, 1,
                                 "RETURNING id")
            ids = [int(conn.exec_driver_sql(sql, (item.tenant_id, item.portal_id, item.events,
                                                  item.body, stamp)).scalar_one())
                   for item in group]
            for tenant_id, kind, attempts in sorted(wanted):
                self._queue_keyed_jobs(conn, tenant_id, kind, {INBOX_JOB_KEY: {}}, attempts, stamp)
            for (tenant_id, portal_id), occurred in sorted(latest.items()):
                self._count_portal(conn, tenant_id, portal_id, occurred, received_at=now)
        return ids

    def expand_webhook_batches(self, tenant_id: str,
                               drafts_of: Callable[[bytes], Sequence[InboxEventDraft]], *,
                               job_kind: str, max_attempts: int | None = None,
                               limit: int = 50) -> WebhookExpansion:
        """Split the tenant's oldest stored deliveries into events: at most ``limit`` of them
        and about 100 events on SQLite (so a receiver never waits long for this transaction),
        1,000 on PostgreSQL; at least one delivery.

        In one transaction: the events not stored yet are stored, a ``job_kind`` job is
        queued for each object that got new events (as :meth:`accept_webhook_batch` does),
        and the deliveries are deleted. The bodies are read and parsed before that
        transaction, so on SQLite the receiver never waits for the parsing.

        A delivery is **kept**, with its reason, logged and counted as unreadable, never
        dropped, when ``drafts_of`` refuses its body (``ValueError``, or ``RecursionError``
        for nesting deeper than this thread can parse), or when the database refuses one of
        its values (found by halving the round); the others are still split. Any other
        database error propagates, and the caller's job retries.
        """
        attempts = self._max_attempts if max_attempts is None else max_attempts
        b = webhook_batches.c
        waiting = (b.tenant_id == tenant_id, b.error.is_(None))
        per_round = _SPLIT_EVENTS.get(self._engine.dialect.name, _SPLIT_EVENTS_DEFAULT)
        with self._engine.connect() as conn:
            chosen: list[int] = []
            events = 0
            # One more than it may take: whether any is left over is known without asking
            # again. (One arriving after this read queues the split again anyway.)
            waiting_now = conn.execute(
                sa.select(b.id, b.events).where(*waiting).order_by(b.id).limit(limit + 1)).all()
            for batch_id, count in waiting_now[:limit]:
                if chosen and events + count > per_round:
                    break
                chosen.append(batch_id)
                events += count
            bodies = dict(conn.execute(sa.select(b.id, b.body).where(b.id.in_(chosen))).all())
        parsed: list[tuple[int, Sequence[InboxEventDraft]]] = []
        unreadable: list[tuple[int, str]] = []
        for batch_id in chosen:
            if batch_id not in bodies:
                continue  # split or deleted meanwhile
            try:
                parsed.append((batch_id, drafts_of(bytes(bodies[batch_id]))))
            except (ValueError, RecursionError) as exc:
                unreadable.append((batch_id, f"{exc}" or type(exc).__name__))
        receipts, kept = self._split(tenant_id, parsed, unreadable, job_kind, attempts)
        return WebhookExpansion(tuple(receipts), kept, len(waiting_now) > len(chosen))

    def _split(self, tenant_id: str, parsed: Sequence[tuple[int, Sequence[InboxEventDraft]]],
               unreadable: Sequence[tuple[int, str]], job_kind: str,
               attempts: int) -> tuple[list[tuple[int, InboxReceipt]], int]:
        """:meth:`_write_split`; when the database refuses a value, halve ``parsed`` until the
        delivery at fault is alone, and keep that one as unreadable. Returns the receipts and
        how many deliveries were kept as unreadable."""
        try:
            return self._write_split(tenant_id, parsed, unreadable, job_kind, attempts), len(unreadable)
        except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
            if not parsed:
                raise  # not a delivery's values: marking them failed
            if len(parsed) == 1:
                reason = f"the database refused a value: {str(exc.orig).splitlines()[0]}"
                self._write_split(tenant_id, [], [*unreadable, (parsed[0][0], reason)], job_kind,
                                  attempts)
                return [], len(unreadable) + 1
            middle = len(parsed) // 2
            first, kept_first = self._split(tenant_id, parsed[:middle], unreadable, job_kind,
                                            attempts)
            second, kept_second = self._split(tenant_id, parsed[middle:], [], job_kind, attempts)
            return first + second, kept_first + kept_second

    def _write_split(self, tenant_id: str, parsed: Sequence[tuple[int, Sequence[InboxEventDraft]]],
                     unreadable: Sequence[tuple[int, str]], job_kind: str,
                     attempts: int) -> list[tuple[int, InboxReceipt]]:
        """One transaction: store the events of the ``parsed`` deliveries that are still
        waiting, delete those deliveries, and keep the ``unreadable`` ones with their reason."""
        now = self._clock()
        b = webhook_batches.c
        with self._writing() as conn:
            present: set[int] = set()
            if parsed:
                query = sa.select(b.id).where(b.id.in_([i for i, _d in parsed]), b.error.is_(None))
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update()  # a concurrent split of them waits, then skips
                present = set(conn.execute(query).scalars())
            kept = [(batch_id, drafts) for batch_id, drafts in parsed if batch_id in present]
            if kept:  # first: _write_deliveries ends with the portal's counters (see _SPLIT_EVENTS)
                conn.execute(sa.delete(webhook_batches).where(b.id.in_([i for i, _d in kept])))
            receipts = self._write_deliveries(
                conn, [_Delivery(tenant_id, drafts, job_kind, attempts) for _i, drafts in kept],
                now) if kept else []
            for batch_id, error in unreadable:
                conn.execute(sa.update(webhook_batches).where(b.id == batch_id)
                             .values(error=error[:2000]))
                conn.execute(sa.insert(integration_log).values(
                    tenant_id=tenant_id, level=LogLevel.ERROR.value, what="webhook.unreadable",
                    record=f"webhook-batch:{batch_id}", created_at=now,
                    message=f"stored webhook delivery {batch_id} could not be split into events "
                            f"and is kept in hubspot_webhook_batches: {error[:500]}"))
        return [(batch_id, receipt) for (batch_id, _d), receipt in zip(kept, receipts, strict=True)]

    def webhook_backlog(self, tenant_id: str) -> WebhookBacklog:
        """The tenant's deliveries acknowledged but not split into events yet."""
        b = webhook_batches.c
        readable = b.error.is_(None)
        query = sa.select(
            sa.func.count(b.id).filter(readable), sa.func.sum(b.events).filter(readable),
            sa.func.min(b.received_at).filter(readable), sa.func.count(b.id).filter(~readable),
        ).where(b.tenant_id == tenant_id)
        with self._engine.connect() as conn:
            batches, events, oldest, unreadable = conn.execute(query).one()
        return WebhookBacklog(tenant_id, int(batches or 0), int(events or 0), oldest,
                              int(unreadable or 0))

    def retry_unreadable_webhook_batches(self, tenant_id: str, *, job_kind: str,
                                         max_attempts: int | None = None) -> int:
        """Clear the error of the tenant's unreadable deliveries and queue their split again
        (after an upgrade that reads them); returns how many."""
        attempts = self._max_attempts if max_attempts is None else max_attempts
        b = webhook_batches.c
        with self._writing() as conn:
            retried = int(conn.execute(sa.update(webhook_batches).where(
                b.tenant_id == tenant_id, b.error.is_not(None)).values(error=None)).rowcount)
            if retried:
                self._queue_keyed_jobs(conn, tenant_id, job_kind, {INBOX_JOB_KEY: {}}, attempts,
                                       db_time(conn, self._clock()))
        return retried

    def accept_webhook_batch(self, tenant_id: str, drafts: Sequence[InboxEventDraft], *,
                             job_kind: str, max_attempts: int | None = None) -> InboxReceipt:
        """Store the events not stored yet and queue one job per object that got new events.

        When this returns, the events and their jobs are committed; when it raises, nothing
        of this batch was written. (The receiver stores deliveries whole with
        :meth:`receive_webhook_batch`; their split goes through the same code.)
        """
        attempts = self._max_attempts if max_attempts is None else max_attempts
        now = self._clock()
        with self._writing() as conn:
            [receipt] = self._write_deliveries(
                conn, [_Delivery(tenant_id, drafts, job_kind, attempts)], now)
            for portal_id in sorted({draft.portal_id for draft in drafts}):
                latest = max(d.occurred_at_ms for d in drafts if d.portal_id == portal_id)
                self._count_portal(conn, tenant_id, portal_id, latest, received_at=now)
        return receipt

    def _write_deliveries(self, conn: Connection, group: Sequence[_Delivery],
                          now: datetime) -> list[InboxReceipt]:
        """Store every delivery of ``group`` on ``conn``; one receipt per delivery.

        An event sent twice within the group counts as accepted for the first delivery that
        holds it and as a duplicate for the others, as if they had been stored one by one.
        """
        owner: dict[tuple[str, str], tuple[int, InboxEventDraft]] = {}
        for index, delivery in enumerate(group):
            for draft in delivery.drafts:
                owner.setdefault((delivery.tenant_id, draft.dedupe_key), (index, draft))
        stamp = db_time(conn, now)
        # Sorted inserts take row locks in one global order: concurrent duplicate batches
        # on PostgreSQL then wait for each other instead of deadlocking.
        rows = [(tenant_id, d.portal_id, key, d.event_id, d.subscription_type,
                 d.object_type, d.object_id, d.property_name, d.occurred_at_ms, d.payload,
                 stamp)
                for (tenant_id, key), (_i, d) in sorted(owner.items())]
        inserted = {(str(row[0]), str(row[1])) for row in
                    insert_rows(conn, webhook_events, EVENT_COLUMNS, rows, EVENT_TAIL)}
        accepted = [0] * len(group)
        objects: list[set[tuple[str, str]]] = [set() for _ in group]
        for key in inserted:
            index, draft = owner[key]
            accepted[index] += 1
            objects[index].add((draft.object_type, draft.object_id))
        wanted: dict[tuple[str, str, int], set[tuple[str, str]]] = defaultdict(set)
        for delivery, mine in zip(group, objects, strict=True):
            wanted[(delivery.tenant_id, delivery.job_kind, delivery.attempts)] |= mine
        for (tenant_id, kind, attempts), wanted_objects in sorted(wanted.items()):
            if wanted_objects:
                self._queue_keyed_jobs(
                    conn, tenant_id, kind,
                    {object_job_key(t, i): {"object_type": t, "object_id": i}
                     for t, i in sorted(wanted_objects)}, attempts, stamp)
        self._count_deliveries(conn, group, owner, inserted)
        return [InboxReceipt(accepted=accepted[i], duplicates=len(d.drafts) - accepted[i],
                             jobs=len(objects[i])) for i, d in enumerate(group)]

    def _insert_jobs(self, conn: Connection, tenant_id: str, kind: str,
                     keyed: Sequence[tuple[str, dict[str, Any]]], attempts: int,
                     stamp: Any) -> set[str]:
        pending = JobState.PENDING.value
        rows = [(tenant_id, kind, json.dumps(payload), pending, 0, attempts, key, stamp, stamp,
                 stamp) for key, payload in keyed]
        return {str(row[0]) for row in insert_rows(conn, jobs, JOB_COLUMNS, rows, JOB_TAIL)}

    def _queue_keyed_jobs(self, conn: Connection, tenant_id: str, kind: str,
                          wanted: dict[str, dict[str, Any]], attempts: int,
                          stamp: Any) -> None:
        """Make sure a pending job exists for every dedupe key of ``wanted`` (key -> payload).

        A pending job reads the inbox when it runs, so it will see what this transaction
        stores. A job of the key that is running may have read the inbox already; it does not
        absorb the new work (the unique index covers pending jobs only, migration 0005), and
        the queue holds the new job back until the running one is done. ``stamp`` is the
        current time as :func:`db_time` bound it.
        """
        for _ in range(5):
            created = self._insert_jobs(conn, tenant_id, kind, list(wanted.items()), attempts,
                                        stamp)
            clashing = sorted(set(wanted) - created)
            if not clashing:
                return
            # Lock the pending jobs we collided with: a claim on PostgreSQL skips locked rows,
            # so none of them can start reading the inbox before this batch is committed.
            pending: set[str] = set()
            for chunk in in_lists(clashing):
                sql = pending_jobs_sql(conn.dialect.paramstyle, conn.dialect.name, len(chunk))
                pending.update(str(row[0]) for row in
                               conn.exec_driver_sql(sql, (tenant_id, kind, *chunk)))
            # A clashing job claimed (or finished) since our insert is no longer pending and
            # may have read the inbox without this batch: queue that object's job again.
            wanted = {key: wanted[key] for key in clashing if key not in pending}
            if not wanted:
                return
        raise RuntimeError("could not queue webhook jobs: their dedupe keys kept colliding")

    def _count_deliveries(self, conn: Connection, group: Sequence[_Delivery],
                          owner: Mapping[tuple[str, str], tuple[int, InboxEventDraft]],
                          inserted: set[tuple[str, str]]) -> None:
        """Add the group's events to the per-portal counters: one upsert per portal.

        Like the receipts, an event counts as accepted for the copy that was stored and as a
        duplicate for every other copy, within a delivery or across deliveries.
        """
        totals: dict[tuple[str, str], list[int]] = {}  # -> [accepted, duplicates]
        for delivery in group:
            for draft in delivery.drafts:
                total = totals.setdefault((delivery.tenant_id, draft.portal_id), [0, 0])
                key = (delivery.tenant_id, draft.dedupe_key)
                total[0 if key in inserted and owner[key][1] is draft else 1] += 1
        for (tenant_id, portal_id), (new, duplicates) in sorted(totals.items()):
            self._count_portal(conn, tenant_id, portal_id, accepted=new, duplicates=duplicates)

    def _count_portal(self, conn: Connection, tenant_id: str, portal_id: str,
                      latest_occurred_ms: int | None = None, *, received_at: datetime | None = None,
                      accepted: int = 0, duplicates: int = 0) -> None:
        """Upsert one portal's counters; ``received_at`` and ``latest_occurred_ms`` (when
        given) move its last-received time and its newest ``occurredAt`` forward."""
        received = None if received_at is None else db_time(conn, received_at)
        conn.exec_driver_sql(portal_upsert_sql(conn.dialect.paramstyle),
                             (tenant_id, portal_id, received, latest_occurred_ms, accepted,
                              duplicates))

    def record_webhook_refusal(self, tenant_id: str, reason: str, *, refused: int = 1,
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

    def pending_webhook_events(self, tenant_id: str, object_type: str,
                               object_id: str) -> list[InboxEvent]:
        """One object's stored events that were not processed yet, oldest stored first."""
        ev = webhook_events.c
        query = sa.select(webhook_events).where(
            ev.tenant_id == tenant_id, ev.object_type == object_type, ev.object_id == object_id,
            ev.processed_at.is_(None)).order_by(ev.id)
        with self._engine.connect() as conn:
            return [_inbox_event(row) for row in conn.execute(query)]

    def pending_webhook_events_of(self, tenant_id: str, objects: Collection[tuple[str, str]]
                                  ) -> dict[tuple[str, str], list[InboxEvent]]:
        """Many objects' unprocessed events, oldest stored first: (type, id) -> events, one
        query per 512 objects of a type (an object without any maps to an empty list)."""
        ev = webhook_events.c
        found: dict[tuple[str, str], list[InboxEvent]] = {key: [] for key in objects}
        by_type: dict[str, list[str]] = defaultdict(list)
        for object_type, object_id in found:
            by_type[object_type].append(object_id)
        with self._engine.connect() as conn:
            for object_type, ids in sorted(by_type.items()):
                for ids_in in one_of(conn, ev.object_id, ids):
                    query = sa.select(webhook_events).where(
                        ev.tenant_id == tenant_id, ev.object_type == object_type, ids_in,
                        ev.processed_at.is_(None)).order_by(ev.id)
                    for row in conn.execute(query):
                        event = _inbox_event(row)
                        found[(event.object_type, event.object_id)].append(event)
        return found

    def finish_webhook_events(self, tenant_id: str, applied: Collection[int],
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
                for ids_in in one_of(conn, ev.id, ids):
                    where = (ev.tenant_id == tenant_id, ids_in, ev.processed_at.is_(None))
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

    # -- reading and housekeeping -----------------------------------------------------------

    def webhook_portal_stats(self, tenant_id: str) -> list[WebhookPortalStats]:
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

    def webhook_refusal_stats(self, tenant_id: str) -> list[WebhookRefusalStats]:
        """How many requests of the tenant were refused, per reason."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(webhook_refusals).where(
                webhook_refusals.c.tenant_id == tenant_id).order_by(webhook_refusals.c.reason))
            return [WebhookRefusalStats(**row._mapping) for row in rows]
