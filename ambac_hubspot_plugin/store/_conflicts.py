"""The conflict audit trail, open conflicts and remembered pushes: a mixin of the SQL store.

Every conflict the sync meets is one row of ``hubspot_conflicts``, whatever decided it. A held
conflict (strategy ``manual``) stays ``open`` until a person resolves it; the resolution is
written onto the same row (``resolution``, ``resolved_value``, ``decided_by``, ``decided_at``),
so the row tells the whole story. A partial unique index keeps one open conflict per field of a
record: meeting the held field again refreshes that row rather than opening a second.

``hubspot_pushed_values`` keeps the last value the outbound push wrote to each HubSpot property
of each object, so the webhook echo of our own write can be recognised.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from ._inbox_sql import one_of, shaped
from ._ports import ConflictDraft, ConflictRecord
from ._schema import conflicts, pushed_values

__all__ = ["SqlConflictMixin"]

_DECISIONS = ("hubspot", "ambac", "hold")
_RESOLUTIONS = ("hubspot", "ambac", "value")


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _record(row: sa.Row[Any]) -> ConflictRecord:
    m = dict(row._mapping)
    for key in ("hubspot_value", "host_value", "last_synced"):
        m[key] = json.loads(m[key])
    m["resolved_value"] = None if m["resolved_value"] is None else json.loads(m["resolved_value"])
    return ConflictRecord(**m)


class SqlConflictMixin:
    """The :class:`~._ports.ConflictLog` port but its two link queries (those are with the other
    links, in :class:`~._store.SqlStateStore`); needs ``_engine`` and ``_clock``."""

    _engine: Engine
    _clock: Callable[[], datetime]

    def _dialect_insert(self, table: sa.Table) -> Any:
        dialect = sqlite if self._engine.dialect.name == "sqlite" else postgresql
        return dialect.insert(table)

    # -- the audit trail ---------------------------------------------------------------------

    def record_conflict(self, draft: ConflictDraft) -> ConflictRecord:
        """Write one conflict to the audit trail and return it.

        A ``hold`` decision opens the conflict; when the field already has an open conflict,
        that one is refreshed with the new values (and returned) instead.
        """
        if draft.decision not in _DECISIONS:
            raise ValueError(f"decision must be one of {_DECISIONS}, not {draft.decision!r}")
        now = self._clock()
        held = draft.decision == "hold"
        values = {
            "tenant_id": draft.tenant_id, "portal_id": draft.portal_id,
            "object_type": draft.object_type, "host_id": draft.host_id,
            "hubspot_type": draft.hubspot_type, "hubspot_id": draft.hubspot_id,
            "field": draft.field, "hubspot_value": _dump(draft.hubspot_value),
            "host_value": _dump(draft.host_value), "last_synced": _dump(draft.last_synced),
            "hubspot_changed_at": draft.hubspot_changed_at,
            "host_changed_at": draft.host_changed_at, "strategy": draft.strategy,
            "decision": draft.decision, "reason": draft.reason,
            "status": "open" if held else "closed", "resolution": None, "resolved_value": None,
            # An automatic decision is made by its strategy, now; a held one waits for a person.
            "decided_by": None if held else (draft.decided_by or f"strategy:{draft.strategy}"),
            "decided_at": None if held else now, "created_at": now, "updated_at": now,
        }
        with self._engine.begin() as conn:
            if held:
                existing = conn.execute(sa.select(conflicts.c.id).where(
                    conflicts.c.tenant_id == draft.tenant_id,
                    conflicts.c.object_type == draft.object_type,
                    conflicts.c.host_id == draft.host_id, conflicts.c.field == draft.field,
                    conflicts.c.status == "open")).scalar()
                if existing is not None:
                    conn.execute(sa.update(conflicts).where(conflicts.c.id == existing).values(
                        hubspot_value=values["hubspot_value"], host_value=values["host_value"],
                        hubspot_changed_at=draft.hubspot_changed_at,
                        host_changed_at=draft.host_changed_at, reason=draft.reason,
                        updated_at=now))
                    row = conn.execute(sa.select(conflicts).where(conflicts.c.id == existing)).one()
                    return _record(row)
            new_id = conn.execute(sa.insert(conflicts).values(values)
                                  .returning(conflicts.c.id)).scalar_one()
            row = conn.execute(sa.select(conflicts).where(conflicts.c.id == new_id)).one()
        return _record(row)

    def list_conflicts(self, tenant_id: str, *, status: str | None = "open",
                       object_type: str | None = None, host_id: str | None = None,
                       limit: int = 100) -> list[ConflictRecord]:
        """A tenant's conflicts, newest first; ``status`` None lists the whole audit trail."""
        query = sa.select(conflicts).where(conflicts.c.tenant_id == tenant_id)
        if status is not None:
            query = query.where(conflicts.c.status == status)
        if object_type is not None:
            query = query.where(conflicts.c.object_type == object_type)
        if host_id is not None:
            query = query.where(conflicts.c.host_id == host_id)
        query = query.order_by(conflicts.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def count_conflicts(self, tenant_id: str, *, status: str = "open") -> int:
        """How many of the tenant's conflicts have ``status`` (one COUNT, no rows read)."""
        query = sa.select(sa.func.count()).select_from(conflicts).where(
            conflicts.c.tenant_id == tenant_id, conflicts.c.status == status)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def get_conflict(self, tenant_id: str, conflict_id: int) -> ConflictRecord | None:
        """One conflict of the tenant, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(conflicts).where(
                conflicts.c.tenant_id == tenant_id, conflicts.c.id == conflict_id)).first()
        return None if row is None else _record(row)

    def close_conflict(self, tenant_id: str, conflict_id: int, *, resolution: str,
                       resolved_value: Any, decided_by: str | None) -> ConflictRecord:
        """Record a person's decision on an open conflict and close it.

        :raises KeyError: the tenant has no open conflict with this id (closed already, or
            never existed); nothing changed.
        """
        if resolution not in _RESOLUTIONS:
            raise ValueError(f"resolution must be one of {_RESOLUTIONS}, not {resolution!r}")
        now = self._clock()
        with self._engine.begin() as conn:
            changed = conn.execute(sa.update(conflicts).where(
                conflicts.c.tenant_id == tenant_id, conflicts.c.id == conflict_id,
                conflicts.c.status == "open",
            ).values(status="closed", resolution=resolution, resolved_value=_dump(resolved_value),
                     decided_by=decided_by, decided_at=now, updated_at=now)).rowcount
            if not changed:
                raise KeyError(f"tenant {tenant_id} has no open conflict {conflict_id}")
            row = conn.execute(sa.select(conflicts).where(conflicts.c.id == conflict_id)).one()
        return _record(row)

    def settle_conflicts(self, tenant_id: str, object_type: str, host_id: str,
                         settled: Mapping[str, tuple[Any, str]]) -> list[ConflictRecord]:
        """Close the open conflicts of a record's fields that the sync found no longer in
        dispute (``settled``: field -> the value the host keeps, and why), with resolution
        ``settled`` by ``sync``; return those closed (a field with no open one is skipped)."""
        if not settled:
            return []
        now = self._clock()
        closed: list[ConflictRecord] = []
        with self._engine.begin() as conn:
            for field, (kept, why) in sorted(settled.items()):
                row = conn.execute(sa.update(conflicts).where(
                    conflicts.c.tenant_id == tenant_id, conflicts.c.object_type == object_type,
                    conflicts.c.host_id == host_id, conflicts.c.field == field, conflicts.c.status == "open",
                ).values(status="closed", resolution="settled", resolved_value=_dump(kept),
                         reason=conflicts.c.reason + f"; settled: {why}", decided_by="sync",
                         decided_at=now, updated_at=now).returning(*conflicts.c)).first()
                if row is not None:
                    closed.append(_record(row))
        return closed

    # -- remembered pushes (echo recognition) ------------------------------------------------

    def remember_pushed(self, tenant_id: str, object_type: str,
                        values: Mapping[str, Mapping[str, str]]) -> None:
        """Keep, per object id and property, the value just written to HubSpot (upsert)."""
        now = self._clock()
        rows = [{"tenant_id": tenant_id, "object_type": object_type, "object_id": str(object_id),
                 "property_name": name, "value": value, "written_at": now}
                for object_id, props in values.items() for name, value in props.items()]
        if not rows:
            return
        with self._engine.begin() as conn:
            for chunk in shaped(rows):
                stmt = self._dialect_insert(pushed_values).values(list(chunk))
                stmt = stmt.on_conflict_do_update(
                    index_elements=[pushed_values.c.tenant_id, pushed_values.c.object_type,
                                    pushed_values.c.object_id, pushed_values.c.property_name],
                    set_={"value": stmt.excluded.value, "written_at": stmt.excluded.written_at})
                conn.execute(stmt)

    def pushed_value(self, tenant_id: str, object_type: str, object_id: str,
                     property_name: str) -> str | None:
        """The last value we wrote to this property of this object, or None."""
        pushed = self.pushed(tenant_id, object_type, object_id, property_name)
        return None if pushed is None else pushed[0]

    def pushed(self, tenant_id: str, object_type: str, object_id: str,
               property_name: str) -> tuple[str, datetime] | None:
        """The last value we wrote to this property of this object and when, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(pushed_values.c.value, pushed_values.c.written_at).where(
                pushed_values.c.tenant_id == tenant_id,
                pushed_values.c.object_type == object_type,
                pushed_values.c.object_id == str(object_id),
                pushed_values.c.property_name == property_name)).first()
        return None if row is None else (str(row[0]), row[1])

    def pushed_of(self, tenant_id: str, object_type: str, object_ids: Collection[str]
                  ) -> dict[tuple[str, str], tuple[str, datetime]]:
        """What :meth:`pushed` says for every property of many objects: (object id, property)
        -> (value, written at); one query per 512 ids."""
        found: dict[tuple[str, str], tuple[str, datetime]] = {}
        ids = sorted({str(i) for i in object_ids})
        pv = pushed_values.c
        with self._engine.connect() as conn:
            for ids_in in one_of(conn, pv.object_id, ids):
                for object_id, name, value, written_at in conn.execute(sa.select(
                        pv.object_id, pv.property_name, pv.value, pv.written_at).where(
                        pv.tenant_id == tenant_id, pv.object_type == object_type, ids_in)):
                    found[(str(object_id), str(name))] = (str(value), written_at)
        return found

    def pushed_values_of(self, tenant_id: str, object_type: str,
                         object_ids: Collection[str]) -> dict[str, dict[str, str]]:
        """The last values we wrote to many objects: object id -> property -> value (one
        query per 512 ids; objects never written to are left out)."""
        found: dict[str, dict[str, str]] = {}
        ids = list(dict.fromkeys(str(i) for i in object_ids))
        with self._engine.connect() as conn:
            for ids_in in one_of(conn, pushed_values.c.object_id, ids):
                rows = conn.execute(sa.select(
                    pushed_values.c.object_id, pushed_values.c.property_name, pushed_values.c.value,
                ).where(pushed_values.c.tenant_id == tenant_id,
                        pushed_values.c.object_type == object_type, ids_in))
                for object_id, name, value in rows:
                    found.setdefault(str(object_id), {})[str(name)] = str(value)
        return found
