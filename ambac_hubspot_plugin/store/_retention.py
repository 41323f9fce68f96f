"""Pruning old rows in small chunks, and counting what is stored: a mixin of the store.

Four tables grow with traffic and are pruned: processed webhook events, the integration log,
finished sync runs and dead jobs. Each chunk is one short transaction deleting at most
:data:`PRUNE_CHUNK` rows, so pruning a backlog never holds SQLite's single writer (or
PostgreSQL row locks) for long and interleaves with the receiver and the workers.

What is still needed is never selected: an event not processed yet (and every processed one
younger than :data:`MIN_EVENT_AGE`, the dedupe window HubSpot's retries need), a pending or
running job, a dead job that alone can still bring waiting webhook work in (see
:meth:`SqlRetentionMixin._still_needed`), a running sync run and the newest run of each kind
(the status view and the alerts read it). Claims that expired over :data:`EXPIRED_CLAIM_AGE`
ago (left by a worker that stopped) go too, reported as ``expired_claims``. Unsplit webhook
deliveries, conflicts (the audit trail), links and checkpoints are not pruned at all.
Completed jobs are deleted when they complete.

Each chunk picks its rows in the order of the index its WHERE clause is answered with (age,
then id), so the database reads the first :data:`PRUNE_CHUNK` rows of the index and stops:
ordered by id alone, every chunk sorted the whole backlog while holding SQLite's writer.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import _GeneratorContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ._ports import INBOX_JOB_KEY, JobState, RunStatus
from ._schema import claims, integration_log, jobs, sync_runs, webhook_batches, webhook_events

__all__ = ["EXPIRED_CLAIM_AGE", "MIN_EVENT_AGE", "PRUNED_TABLES", "PRUNE_CHUNK", "PruneReport", "RetentionAges",
           "SqlRetentionMixin"]

#: Rows per DELETE statement (and per transaction).
PRUNE_CHUNK = 1000
#: HubSpot retries a delivery for up to 24 hours; a processed event pruned sooner could come
#: back as a retry, pass deduplication and be applied a second time.
MIN_EVENT_AGE = timedelta(days=1)
#: The names pruning reports under, in the order it prunes.
PRUNED_TABLES = ("webhook_events", "integration_log", "sync_runs", "dead_jobs")
#: A claim expired this long ago was left by a worker that stopped (a live one renews its claims
#: every few seconds, or takes them again): pruning deletes it, whatever the retention settings.
EXPIRED_CLAIM_AGE = timedelta(hours=1)

#: A pruned table, the WHERE clause of its rows that may go, and the order chunks take them in.
_Prunable = tuple[sa.Table, sa.ColumnElement[bool], tuple[sa.ColumnElement[Any], ...]]


@attrs.frozen
class RetentionAges:
    """How old a row of each pruned table must be before it may go."""

    webhook_events: timedelta
    integration_log: timedelta
    sync_runs: timedelta
    dead_jobs: timedelta

    def __attrs_post_init__(self) -> None:
        if self.webhook_events < MIN_EVENT_AGE:
            raise ValueError(f"processed webhook events must be kept at least {MIN_EVENT_AGE} "
                             "(HubSpot's retries must still be deduplicated)")
        for name in PRUNED_TABLES:
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"retention of {name} must be positive")


@attrs.frozen
class PruneReport:
    """What one prune removed (or, dry, would remove), per table; ``complete`` is False when
    the time budget ran out with old rows left (the next prune continues); ``at`` is the
    store's time the retention was measured from."""

    rows: dict[str, int]
    dry_run: bool
    complete: bool
    at: datetime

    @property
    def total(self) -> int:
        return sum(self.rows.values())


class SqlRetentionMixin:
    """Pruning and table sizes of the store; needs ``_engine``, ``_clock`` and ``_writing``
    (the inbox's write transaction, in which SQLite writers of this process take turns)."""

    _engine: Engine
    _clock: Callable[[], datetime]

    if TYPE_CHECKING:
        def _writing(self) -> _GeneratorContextManager[Connection]:
            ...

    def _prunable(self, tenant_id: str, ages: RetentionAges, now: datetime) -> dict[str, _Prunable]:
        """Per pruned table: the table, the WHERE clause of its rows that may go, and the
        order a chunk takes them in.

        Each clause leads with the columns of an index (migration 0010 added the events' and
        the log's; the runs' and jobs' are from 0001 and 0002), and each order is that index's
        own (its columns after the tenant, then the id, which SQLite's indexes end with), so
        ``LIMIT`` stops after one chunk instead of sorting every prunable row first.
        """
        ev, log, run, job = webhook_events.c, integration_log.c, sync_runs.c, jobs.c
        keep = self._newest_runs(tenant_id)
        runs = sa.and_(run.tenant_id == tenant_id, run.started_at < now - ages.sync_runs,
                       run.status != RunStatus.RUNNING.value, run.ended_at.is_not(None),
                       run.ended_at < now - ages.sync_runs)
        if keep:
            runs = sa.and_(runs, run.id.not_in(keep))
        return {
            "webhook_events": (webhook_events, sa.and_(
                ev.tenant_id == tenant_id, ev.processed_at.is_not(None),
                ev.processed_at < now - max(ages.webhook_events, MIN_EVENT_AGE)),
                (ev.processed_at, ev.id)),
            "integration_log": (integration_log, sa.and_(
                log.tenant_id == tenant_id, log.created_at < now - ages.integration_log),
                (log.created_at, log.id)),
            "sync_runs": (sync_runs, runs, (run.started_at, run.id)),
            "dead_jobs": (jobs, sa.and_(job.tenant_id == tenant_id,
                                        job.state == JobState.DEAD.value,
                                        job.updated_at < now - ages.dead_jobs,
                                        sa.not_(self._still_needed(tenant_id))),
                          (job.kind, job.id)),
        }

    @staticmethod
    def _still_needed(tenant_id: str) -> sa.ColumnElement[bool]:
        """The dead jobs that alone can still bring waiting webhook work in: whatever their
        age, pruning one would leave work nothing ever processes (``replay_all`` would find
        nothing to replay).

        A dead split job (dedupe key ``inbox``) while the tenant has readable deliveries not
        split yet, and a dead object job (dedupe key ``<type>:<id>``, as ``object_job_key``
        makes it) while that object has unprocessed events. Matched by dedupe key alone (the
        store does not know the webhook job kinds), so another kind's dead job with such a key
        may be kept a little longer too: keeping too much is safe, pruning too much is not.
        Once the work is done (replayed, or a new event's job processed it) the job may go.
        """
        ev, batch, job = webhook_events.c, webhook_batches.c, jobs.c
        waiting_objects = sa.select(ev.object_type + ":" + ev.object_id).where(
            ev.tenant_id == tenant_id, ev.processed_at.is_(None))
        waiting_deliveries = sa.exists().where(batch.tenant_id == tenant_id, batch.error.is_(None))
        # ``is_not(None)`` first: a NULL key would make the whole clause NULL, and NOT NULL
        # would keep every dead job without a key forever.
        return sa.and_(job.dedupe_key.is_not(None), sa.or_(
            sa.and_(job.dedupe_key == INBOX_JOB_KEY, waiting_deliveries),
            job.dedupe_key.in_(waiting_objects)))

    def _newest_runs(self, tenant_id: str) -> list[int]:
        """The id of the tenant's newest run of each kind (as ``recent_runs`` orders them)."""
        run = sync_runs.c
        ranked = sa.select(run.id, sa.func.row_number().over(
            partition_by=run.kind, order_by=(run.started_at.desc(), run.id.desc())).label("n")
        ).where(run.tenant_id == tenant_id).subquery()
        with self._engine.connect() as conn:
            return sorted(conn.execute(sa.select(ranked.c.id).where(ranked.c.n == 1)).scalars())

    def prune(self, tenant_id: str, ages: RetentionAges, *, dry_run: bool = False,
              deadline: datetime | None = None, chunk: int = PRUNE_CHUNK) -> PruneReport:
        """Delete the tenant's rows older than their retention, ``chunk`` rows per transaction,
        until none is left or ``deadline`` (by the store's clock) has passed.

        ``dry_run`` counts the rows that would go and changes nothing.
        """
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        now = self._clock()
        rows = dict.fromkeys((*PRUNED_TABLES, "expired_claims"), 0)
        prunable = self._prunable(tenant_id, ages, now)
        left_claims = sa.and_(claims.c.tenant_id == tenant_id, claims.c.expires_at < now - EXPIRED_CLAIM_AGE)
        if dry_run:
            with self._engine.connect() as conn:
                for name, (table, where, _order) in [*prunable.items(), ("expired_claims", (claims, left_claims, ()))]:
                    rows[name] = int(conn.execute(
                        sa.select(sa.func.count()).select_from(table).where(where)).scalar_one())
            return PruneReport(rows, dry_run=True, complete=True, at=now)
        # Few (a stopped worker's), so first and without a turn of their own in the rounds below.
        removed = chunk
        while removed == chunk:
            if deadline is not None and self._clock() >= deadline:
                return PruneReport(rows, dry_run=False, complete=False, at=now)
            # In key order, skipping rows a taker has locked (PostgreSQL), as take_claims locks
            # them; the expiry is tested again on the row deleted: one taken over meanwhile stays.
            keys = (sa.select(claims.c.key).where(left_claims).order_by(claims.c.key).limit(chunk)
                    .with_for_update(skip_locked=True))
            with self._writing() as conn:
                removed = int(conn.execute(sa.delete(claims).where(
                    left_claims, claims.c.key.in_(keys.scalar_subquery()))).rowcount)
            rows["expired_claims"] += removed
        # One chunk of each table in turn: a table with a long backlog (webhook events under
        # load) must not spend the whole budget while the others' old rows wait forever. The
        # events come last in each round: a call whose budget one chunk of them can spend
        # (every call, under load) still reaches the runs, the log and the dead jobs.
        left = dict(sorted(prunable.items(), key=lambda item: item[0] == "webhook_events"))
        while left:
            for name, (table, where, order) in list(left.items()):
                if deadline is not None and self._clock() >= deadline:
                    return PruneReport(rows, dry_run=False, complete=False, at=now)
                ids = sa.select(table.c.id).where(where).order_by(*order).limit(chunk)
                with self._writing() as conn:
                    # Through a subquery: neither backend takes LIMIT on a DELETE directly.
                    removed = int(conn.execute(sa.delete(table).where(
                        table.c.id.in_(ids.scalar_subquery()))).rowcount)
                rows[name] += removed
                if removed < chunk:
                    del left[name]
        return PruneReport(rows, dry_run=False, complete=True, at=now)

    def table_sizes(self, tenant_id: str) -> dict[str, int]:
        """How many rows the tenant has in each pruned table (all events, all jobs' dead ones)."""
        ev, log, run, job = webhook_events.c, integration_log.c, sync_runs.c, jobs.c
        counts = {
            "webhook_events": sa.select(sa.func.count()).where(ev.tenant_id == tenant_id),
            "integration_log": sa.select(sa.func.count()).where(log.tenant_id == tenant_id),
            "sync_runs": sa.select(sa.func.count()).where(run.tenant_id == tenant_id),
            "dead_jobs": sa.select(sa.func.count()).where(
                job.tenant_id == tenant_id, job.state == JobState.DEAD.value),
        }
        with self._engine.connect() as conn:
            return {name: int(conn.execute(query).scalar_one()) for name, query in counts.items()}
