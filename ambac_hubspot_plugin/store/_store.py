"""The SQLAlchemy Core implementation of the store ports, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic.util import CommandError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .._clock import Clock
from ..errors import StoreError
from ..mapping import normalize_domain
from ._claims import SqlClaimMixin
from ._conflicts import SqlConflictMixin
from ._engine import HEAD, SETTING, create_store_engine, migrate, redact, require_current, require_existing
from ._inbox import SqlInboxMixin
from ._inbox_sql import db_time, insert_rows, one_of, storable_text
from ._ports import (
    Checkpoint,
    Link,
    LinkConflictError,
    LogEntry,
    LogLevel,
    LogPage,
    RunStatus,
    SyncRun,
    utc_now,
)
from ._queue import Backoff, SqlJobQueue
from ._retention import SqlRetentionMixin
from ._schema import checkpoints, conflicts, integration_log, links, sync_runs

__all__ = ["Clock", "SqlStateStore", "open_store"]


_LINK_COLUMNS = ("tenant_id", "portal_id", "object_type", "hubspot_id", "host_type", "host_id", "synced",
                 "created_at", "updated_at", "match_domain")
# Either unique key taken (this link exists, or the record is linked elsewhere): the row is skipped.
_LINK_TAIL = "ON CONFLICT DO NOTHING RETURNING id, object_type, hubspot_id, host_type, host_id"


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))


def _match_domain(object_type: str, synced: Mapping[str, Any]) -> str | None:
    """A company link's domain for matching: its synced ``website``, normalised (see r0009)."""
    website = synced.get("website") if object_type == "company" else None
    return normalize_domain(website if isinstance(website, str) else None)[:255] or None


class SqlStateStore(SqlClaimMixin, SqlConflictMixin, SqlInboxMixin, SqlRetentionMixin, SqlJobQueue):
    """The :class:`StateStore`, :class:`JobQueue` and :class:`Inbox` on one SQLAlchemy engine.

    Build it with :func:`open_store`. Every method runs in its own short transaction, so the
    store is safe to share between threads and to use from several processes at once.
    """

    def __init__(self, engine: Engine, *, clock: Clock = utc_now, backoff: Backoff | None = None,
                 random_source: Callable[[], float] = random.random,
                 max_attempts: int = 8) -> None:
        super().__init__(engine, clock=clock, backoff=backoff or Backoff(),
                         random_source=random_source, max_attempts=max_attempts)

    @property
    def engine(self) -> Engine:
        """The underlying engine (for migrations tooling and tests)."""
        return self._engine

    def close(self) -> None:
        """Release every pooled connection; the store must not be used afterwards."""
        self._engine.dispose()

    # -- links -----------------------------------------------------------------------------

    @staticmethod
    def _link(row: sa.Row[Any]) -> Link:
        m = row._mapping
        return Link(id=m["id"], tenant_id=m["tenant_id"], portal_id=m["portal_id"],
                    object_type=m["object_type"], hubspot_id=m["hubspot_id"],
                    host_type=m["host_type"], host_id=m["host_id"],
                    synced=json.loads(m["synced"]), created_at=m["created_at"],
                    updated_at=m["updated_at"])

    def _one_link(self, conn: Connection, *where: sa.ColumnElement[bool]) -> Link | None:
        row = conn.execute(sa.select(links).where(*where)).first()
        return None if row is None else self._link(row)

    def get_link_by_hubspot(self, tenant_id: str, portal_id: str, object_type: str,
                            hubspot_id: str) -> Link | None:
        """The link of one HubSpot object, or None."""
        with self._engine.connect() as conn:
            return self._one_link(conn, links.c.tenant_id == tenant_id,
                                  links.c.portal_id == portal_id,
                                  links.c.object_type == object_type,
                                  links.c.hubspot_id == hubspot_id)

    def get_links_by_hubspot(self, tenant_id: str, portal_id: str, object_type: str,
                             hubspot_ids: Collection[str]) -> dict[str, Link]:
        """The links of many HubSpot objects of one type, by HubSpot id (one query per 512)."""
        found: dict[str, Link] = {}
        ids = list(dict.fromkeys(hubspot_ids))
        with self._engine.connect() as conn:
            for ids_in in one_of(conn, links.c.hubspot_id, ids):
                rows = conn.execute(sa.select(links).where(
                    links.c.tenant_id == tenant_id, links.c.portal_id == portal_id,
                    links.c.object_type == object_type, ids_in))
                for row in rows:
                    link = self._link(row)
                    found[link.hubspot_id] = link
        return found

    def get_link_by_host(self, tenant_id: str, host_type: str, host_id: str) -> Link | None:
        """The link of one host record, or None."""
        with self._engine.connect() as conn:
            return self._one_link(conn, links.c.tenant_id == tenant_id,
                                  links.c.host_type == host_type, links.c.host_id == host_id)

    def get_links_by_host(self, tenant_id: str, host_type: str,
                          host_ids: Collection[str]) -> dict[str, Link]:
        """The links of many host records of one type, by host id (one query per 512)."""
        found: dict[str, Link] = {}
        ids = list(dict.fromkeys(host_ids))
        with self._engine.connect() as conn:
            for ids_in in one_of(conn, links.c.host_id, ids):
                rows = conn.execute(sa.select(links).where(
                    links.c.tenant_id == tenant_id, links.c.host_type == host_type, ids_in))
                for row in rows:
                    link = self._link(row)
                    found[link.host_id] = link
        return found

    def links_page(self, tenant_id: str, portal_id: str, object_type: str, *,
                   after_id: int = 0, limit: int = 500) -> list[Link]:
        """One page of a tenant's links of one HubSpot object type, by link id (keyset paging:
        pass the last link's id as ``after_id`` for the next page; an empty page is the end)."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(links).where(
                links.c.tenant_id == tenant_id, links.c.portal_id == portal_id,
                links.c.object_type == object_type, links.c.id > after_id,
            ).order_by(links.c.id).limit(limit))
            return [self._link(row) for row in rows]

    def _conflict(self, exc: sa.exc.IntegrityError, tenant_id: str, portal_id: str,
                  object_type: str, hubspot_id: str, host_type: str,
                  host_id: str) -> LinkConflictError:
        return LinkConflictError(
            f"Cannot link {object_type} {hubspot_id} (portal {portal_id}) to {host_type} "
            f"{host_id} in tenant {tenant_id}: one of them is already linked. Re-read the "
            "existing link and use it.",
            hubspot_key=(tenant_id, portal_id, object_type, hubspot_id),
            host_key=(tenant_id, host_type, host_id),
        )

    def create_link(self, tenant_id: str, portal_id: str, object_type: str, hubspot_id: str,
                    host_type: str, host_id: str, *,
                    synced: Mapping[str, Any] | None = None) -> Link:
        """Link a HubSpot object to a host record.

        :raises LinkConflictError: the database already holds a link for the HubSpot object
            or for the host record (both are unique); re-read it, the other writer won.
        """
        now = self._clock()
        try:
            with self._engine.begin() as conn:
                new_id = conn.execute(sa.insert(links).values(
                    tenant_id=tenant_id, portal_id=portal_id, object_type=object_type,
                    hubspot_id=hubspot_id, host_type=host_type, host_id=host_id,
                    synced=_dumps(synced or {}), created_at=now, updated_at=now,
                    match_domain=_match_domain(object_type, synced or {}),
                ).returning(links.c.id)).scalar_one()
        except sa.exc.IntegrityError as exc:
            raise self._conflict(exc, tenant_id, portal_id, object_type, hubspot_id,
                                 host_type, host_id) from exc
        return Link(id=new_id, tenant_id=tenant_id, portal_id=portal_id,
                    object_type=object_type, hubspot_id=hubspot_id, host_type=host_type,
                    host_id=host_id, synced=dict(synced or {}), created_at=now, updated_at=now)

    def create_links(self, tenant_id: str, portal_id: str,
                     rows: Sequence[tuple[str, str, str, str, Mapping[str, Any]]]) -> list[Link | None]:
        """Link many records in one transaction; a row whose link exists already is skipped.

        ``rows`` are ``(object_type, hubspot_id, host_type, host_id, synced)``. Returns, per
        row, the new link, or None when either unique key was taken (another writer won, or an
        earlier row of ``rows`` took it). Multi-row ``INSERT ... ON CONFLICT DO NOTHING``
        statements (``insert_rows``): a concurrent writer's link makes its row None, never the
        whole batch fail.
        """
        if not rows:
            return []
        now = self._clock()
        # In one order for every writer (stable: of equal keys the first row stays first), so
        # two writers of overlapping batches do not lock each other's rows crosswise.
        ordered = sorted(rows, key=lambda row: (row[0], row[1]))
        with self._engine.begin() as conn:
            stamp = db_time(conn, now)
            values = [(tenant_id, portal_id, object_type, hubspot_id, host_type, host_id, _dumps(synced),
                       stamp, stamp, _match_domain(object_type, synced))
                      for object_type, hubspot_id, host_type, host_id, synced in ordered]
            # Multi-row VALUES on the driver (one JSON array of rows on PostgreSQL): through
            # SQLAlchemy's executemany psycopg parsed the long text anew for every batch, 40% of
            # a PostgreSQL backfill's store time.
            inserted = insert_rows(conn, links, _LINK_COLUMNS, values, _LINK_TAIL)
        # RETURNING gives the inserted rows in no promised order: match them by key.
        landed = {(row[1], row[2], row[3], row[4]): row[0] for row in inserted}
        created: list[Link | None] = []
        for object_type, hubspot_id, host_type, host_id, synced in rows:
            # pop: of identical rows only the first is the one that landed.
            new_id = landed.pop((object_type, hubspot_id, host_type, host_id), None)
            created.append(None if new_id is None else Link(
                id=new_id, tenant_id=tenant_id, portal_id=portal_id, object_type=object_type,
                hubspot_id=hubspot_id, host_type=host_type, host_id=host_id, synced=dict(synced),
                created_at=now, updated_at=now))
        return created

    def _update_link(self, link_id: int, values: dict[str, Any]) -> Link:
        with self._engine.begin() as conn:
            conn.execute(sa.update(links).where(links.c.id == link_id)
                         .values(updated_at=self._clock(), **values))
            link = self._one_link(conn, links.c.id == link_id)
        if link is None:
            raise KeyError(f"no link with id {link_id}")
        return link

    def update_link_synced(self, link_id: int, synced: Mapping[str, Any]) -> Link:
        """Replace the last-synced field values kept for conflict detection (and, for a
        company, the values the host has no field for; its ``website`` is its match domain)."""
        with self._engine.connect() as conn:
            object_type = conn.execute(sa.select(links.c.object_type).where(links.c.id == link_id)).scalar()
        return self._update_link(link_id, {"synced": _dumps(synced),
                                           "match_domain": _match_domain(str(object_type), synced)})

    def company_links_by_domain(self, tenant_id: str, portal_id: str, domain: str) -> list[Link]:
        """The company links of one tenant and portal whose HubSpot company's normalised domain
        is ``domain`` (normalised here too), oldest link first; ``[]`` for an empty domain.

        Domain matching on a host whose companies have no website goes through this.
        """
        return self.company_links_by_domains(tenant_id, portal_id, [domain]).get(normalize_domain(domain), [])

    def company_links_by_domains(self, tenant_id: str, portal_id: str,
                                 domains: Collection[str]) -> dict[str, list[Link]]:
        """:meth:`company_links_by_domain` for many domains in one query a few hundred: the
        links by normalised domain, oldest first; a domain without links is absent."""
        wanted = sorted({d for d in map(normalize_domain, domains) if d})
        found: dict[str, list[Link]] = {}
        with self._engine.connect() as conn:
            for domains_in in one_of(conn, links.c.match_domain, wanted):
                rows = conn.execute(sa.select(links).where(
                    links.c.tenant_id == tenant_id, links.c.portal_id == portal_id,
                    links.c.object_type == "company", domains_in,
                ).order_by(links.c.id))
                for row in rows:
                    found.setdefault(row.match_domain, []).append(self._link(row))
        return found

    def move_link_host(self, link_id: int, new_host_id: str) -> Link:
        """Re-point a link, and the open conflicts of its record, to another host record of
        the same type (the host made a new version of a company, with a new id): a conflict
        held on the old version is resolved on the new one, and the next sync's conflict on the
        same field folds into it. Decided conflicts keep the version they were decided on.

        :raises LinkConflictError: the new host record is linked already.
        """
        with self._engine.connect() as conn:
            old = self._one_link(conn, links.c.id == link_id)
        if old is None:
            raise KeyError(f"no link with id {link_id}")
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.update(links).where(links.c.id == link_id)
                             .values(host_id=new_host_id, updated_at=self._clock()))
                conn.execute(sa.update(conflicts).where(
                    conflicts.c.tenant_id == old.tenant_id, conflicts.c.portal_id == old.portal_id,
                    conflicts.c.object_type == old.host_type, conflicts.c.host_id == old.host_id,
                    conflicts.c.status == "open").values(host_id=new_host_id))
                link = self._one_link(conn, links.c.id == link_id)
        except sa.exc.IntegrityError as exc:
            raise self._conflict(exc, old.tenant_id, old.portal_id, old.object_type, old.hubspot_id,
                                 old.host_type, new_host_id) from exc
        assert link is not None
        return link

    def move_link(self, link_id: int, new_hubspot_id: str) -> Link:
        """Re-point a link to another HubSpot id (after HubSpot merged two objects).

        :raises LinkConflictError: the new HubSpot id is linked already.
        """
        return self._move(link_id, "hubspot_id", new_hubspot_id)

    def _move(self, link_id: int, column: str, new_id: str) -> Link:
        try:
            return self._update_link(link_id, {column: new_id})
        except sa.exc.IntegrityError as exc:
            with self._engine.connect() as conn:
                old = self._one_link(conn, links.c.id == link_id)
            assert old is not None  # the update could only conflict if the row exists
            hubspot_id = new_id if column == "hubspot_id" else old.hubspot_id
            host_id = new_id if column == "host_id" else old.host_id
            raise self._conflict(exc, old.tenant_id, old.portal_id, old.object_type,
                                 hubspot_id, old.host_type, host_id) from exc

    def delete_link(self, link_id: int) -> bool:
        """Forget a link; False when it did not exist."""
        with self._engine.begin() as conn:
            return conn.execute(sa.delete(links).where(links.c.id == link_id)).rowcount > 0

    # -- checkpoints -----------------------------------------------------------------------

    def get_checkpoint(self, tenant_id: str, portal_id: str, name: str) -> Checkpoint | None:
        """A sync checkpoint, or None when it was never set."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(checkpoints).where(
                checkpoints.c.tenant_id == tenant_id, checkpoints.c.portal_id == portal_id,
                checkpoints.c.name == name)).first()
        return None if row is None else Checkpoint(**row._mapping)

    def set_checkpoint(self, tenant_id: str, portal_id: str, name: str,
                       value: str) -> Checkpoint:
        """Create or overwrite a sync checkpoint (an atomic upsert)."""
        now = self._clock()
        dialect = sqlite if self._engine.dialect.name == "sqlite" else postgresql
        stmt = dialect.insert(checkpoints).values(
            tenant_id=tenant_id, portal_id=portal_id, name=name, value=value, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[checkpoints.c.tenant_id, checkpoints.c.portal_id,
                            checkpoints.c.name],
            set_={"value": value, "updated_at": now})
        with self._engine.begin() as conn:
            conn.execute(stmt)
        return Checkpoint(tenant_id=tenant_id, portal_id=portal_id, name=name, value=value,
                          updated_at=now)

    # -- sync runs -------------------------------------------------------------------------

    def start_run(self, tenant_id: str, kind: str, *, owner: str | None = None) -> SyncRun:
        """Record that a sync run started; ``owner`` names the worker, for operators."""
        now = self._clock()
        with self._engine.begin() as conn:
            run_id = conn.execute(sa.insert(sync_runs).values(
                tenant_id=tenant_id, kind=kind, status=RunStatus.RUNNING.value, owner=owner,
                started_at=now, heartbeat_at=now, created=0, updated=0, skipped=0, failed=0,
            ).returning(sync_runs.c.id)).scalar_one()
        run = self.get_run(run_id)
        assert run is not None
        return run

    def heartbeat_run(self, run_id: int) -> None:
        """Say the run's process is still alive, so :meth:`fail_stale_runs` spares it."""
        with self._engine.begin() as conn:
            conn.execute(sa.update(sync_runs).where(
                sync_runs.c.id == run_id, sync_runs.c.status == RunStatus.RUNNING.value,
            ).values(heartbeat_at=self._clock()))

    def finish_run(self, run_id: int, status: RunStatus, *, created: int = 0, updated: int = 0,
                   skipped: int = 0, failed: int = 0, error: str | None = None) -> SyncRun:
        """Record a run's outcome and counts."""
        if status is RunStatus.RUNNING:
            raise ValueError("finish_run needs a final status (succeeded or failed)")
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(sa.update(sync_runs).where(sync_runs.c.id == run_id).values(
                status=status.value, ended_at=now, heartbeat_at=now, created=created,
                updated=updated, skipped=skipped, failed=failed,
                error=None if error is None else storable_text(error)))
        run = self.get_run(run_id)
        if run is None:
            raise KeyError(f"no sync run with id {run_id}")
        return run

    def get_run(self, run_id: int) -> SyncRun | None:
        """One sync run, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(sync_runs).where(sync_runs.c.id == run_id)).first()
        return None if row is None else SyncRun(**row._mapping)

    def recent_runs(self, tenant_id: str, *, kind: str | None = None,
                    limit: int = 20, before: int | None = None) -> list[SyncRun]:
        """A tenant's runs, newest first; ``before`` (a run id, the cursor) starts after that run."""
        query = sa.select(sync_runs).where(sync_runs.c.tenant_id == tenant_id)
        if kind is not None:
            query = query.where(sync_runs.c.kind == kind)
        if before is not None:
            # Keyset on the order itself (start time, then id): ids of runs from several
            # processes need not follow their start times. An unknown cursor matches nothing.
            anchor = sa.select(sync_runs.c.started_at).where(
                sync_runs.c.id == before, sync_runs.c.tenant_id == tenant_id).scalar_subquery()
            query = query.where(sa.or_(sync_runs.c.started_at < anchor, sa.and_(
                sync_runs.c.started_at == anchor, sync_runs.c.id < before)))
        query = query.order_by(sync_runs.c.started_at.desc(), sync_runs.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [SyncRun(**row._mapping) for row in conn.execute(query)]

    def run_totals(self, tenant_id: str, edges: Sequence[datetime]) -> list[tuple[int, int, int, int]]:
        """Sums over the tenant's runs started in each interval ``[edges[i], edges[i + 1])``, in
        one query: ``(records created or updated, records failed, runs, failed runs)`` for each.

        The status page's chart of the last days reads this instead of every run of the week.
        """
        if len(edges) < 2:
            raise ValueError("edges needs at least two times (the start and end of one interval)")
        runs = sync_runs
        bucket = sa.case(*((runs.c.started_at < edge, n) for n, edge in enumerate(edges[1:])))
        query = (sa.select(bucket.label("bucket"), sa.func.sum(runs.c.created + runs.c.updated),
                           sa.func.sum(runs.c.failed), sa.func.count(),
                           sa.func.sum(sa.case((runs.c.status == RunStatus.FAILED.value, 1), else_=0)))
                 .where(runs.c.tenant_id == tenant_id, runs.c.started_at >= edges[0],
                        runs.c.started_at < edges[-1])
                 .group_by("bucket"))
        totals = [(0, 0, 0, 0)] * (len(edges) - 1)
        with self._engine.connect() as conn:
            for n, synced, failed, count, failed_runs in conn.execute(query):
                totals[n] = (int(synced), int(failed), int(count), int(failed_runs))
        return totals

    def fail_stale_runs(self, older_than: timedelta) -> int:
        """Mark failed every running run whose heartbeat is older than ``older_than``.

        A process that crashed mid-run never finishes its run; this is what keeps the
        integration from showing "syncing" forever. Returns how many runs it closed.
        """
        now = self._clock()
        with self._engine.begin() as conn:
            return conn.execute(sa.update(sync_runs).where(
                sync_runs.c.status == RunStatus.RUNNING.value,
                sync_runs.c.heartbeat_at < now - older_than,
            ).values(status=RunStatus.FAILED.value, ended_at=now,
                     error=f"abandoned: no heartbeat for more than {older_than} "
                           "(the process running it probably stopped)")).rowcount

    # -- integration log -------------------------------------------------------------------

    def log(self, tenant_id: str, level: LogLevel, what: str, message: str, *,
            record: str | None = None) -> LogEntry:
        """Append one line to a tenant's integration log."""
        now = self._clock()
        level = LogLevel(level)
        message = storable_text(message)
        with self._engine.begin() as conn:
            entry_id = conn.execute(sa.insert(integration_log).values(
                tenant_id=tenant_id, level=level.value, what=what, record=record,
                message=message, created_at=now,
            ).returning(integration_log.c.id)).scalar_one()
        return LogEntry(id=entry_id, tenant_id=tenant_id, level=level, what=what, record=record,
                        message=message, created_at=now)

    def log_many(self, tenant_id: str,
                 lines: Sequence[tuple[LogLevel, str, str, str | None]]) -> int:
        """Append many lines to a tenant's integration log in one transaction (a page of a sync
        writes its lines together); ``lines`` are ``(level, what, message, record)``. Returns
        how many were written."""
        if not lines:
            return 0
        now = self._clock()
        values = [{"tenant_id": tenant_id, "level": LogLevel(level).value, "what": what,
                   "record": record, "message": storable_text(message), "created_at": now}
                  for level, what, message, record in lines]
        with self._engine.begin() as conn:
            conn.execute(sa.insert(integration_log), values)  # an executemany: multi-row VALUES
        return len(values)

    def log_counts(self, tenant_id: str, *, since: datetime) -> dict[LogLevel, int]:
        """How many lines of each level the tenant logged since ``since``, in one query (levels
        with none are left out)."""
        log = integration_log
        query = (sa.select(log.c.level, sa.func.count())
                 .where(log.c.tenant_id == tenant_id, log.c.created_at >= since).group_by(log.c.level))
        with self._engine.connect() as conn:
            return {LogLevel(level): int(count) for level, count in conn.execute(query)}

    def read_log(self, tenant_id: str, *, min_level: LogLevel | None = None,
                 record: str | None = None, what: str | None = None, limit: int = 50,
                 before: int | None = None) -> LogPage:
        """A page of a tenant's log, newest first, filtered; keyset-paged by entry id.

        ``min_level`` keeps that level and the more severe ones. Pass the page's
        ``next_before`` as ``before`` to get the next (older) page; it is None on the last.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        log = integration_log
        query = sa.select(log).where(log.c.tenant_id == tenant_id)
        if min_level is not None:
            query = query.where(log.c.level.in_([lv.value for lv in
                                                 LogLevel(min_level).at_least()]))
        if record is not None:
            query = query.where(log.c.record == record)
        if what is not None:
            query = query.where(log.c.what == what)
        if before is not None:
            query = query.where(log.c.id < before)
        # One row more than asked tells whether another page exists without a COUNT.
        query = query.order_by(log.c.id.desc()).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        entries = tuple(LogEntry(**row._mapping) for row in rows[:limit])
        more = len(rows) > limit
        return LogPage(entries=entries, next_before=entries[-1].id if more else None)


def open_store(url: str, *, clock: Clock = utc_now, backoff: Backoff | None = None,
               random_source: Callable[[], float] = random.random, max_attempts: int = 8,
               auto_migrate: bool = True) -> SqlStateStore:
    """Connect to the store at ``url``, migrate it to the newest schema, and return it.

    :param url: the ``store_url`` setting: ``sqlite:///path/file.sqlite3`` or
        ``postgresql+psycopg://user:password@host:5432/database``.
    :param clock: returns tz-aware UTC now; every timestamp and lease uses it.
    :param backoff: retry delays of failed jobs; :param random_source: in [0, 1), the jitter.
    :param max_attempts: default attempts before a job is dead-lettered.
    :param auto_migrate: False to only read a store that exists: nothing is created or
        upgraded, and a missing store or one at another schema revision is a ``StoreError``.
    :raises StoreError: the setting is malformed, unsupported, or the database unreachable.
    """
    if not auto_migrate:
        require_existing(url)
    engine = create_store_engine(url)
    try:
        if not auto_migrate:
            try:
                require_current(engine, url)
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(f"Setting {SETTING} ({redact(url)}): the store could not be read "
                                 f"({type(exc).__name__})", setting=SETTING) from exc
        else:
            migrate(engine)
    except (CommandError, sa.exc.SQLAlchemyError) as exc:
        engine.dispose()
        raise StoreError(
            f"Setting {SETTING} ({redact(url)}): migrating the store schema to revision {HEAD} "
            f"failed ({type(exc).__name__}: {exc}). Check that the database user may create "
            "tables, and that the database is not from a newer plugin version.",
            setting=SETTING,
        ) from exc
    except BaseException:
        engine.dispose()
        raise
    return SqlStateStore(engine, clock=clock, backoff=backoff, random_source=random_source,
                         max_attempts=max_attempts)
