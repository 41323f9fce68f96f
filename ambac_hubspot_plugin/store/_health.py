"""How many of a tenant's deals are in sync and how many records are failing: one query over
links and jobs for the status view, kept here so no module outside the store reads its tables."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ._schema import jobs, links

if TYPE_CHECKING:
    from ._store import SqlStateStore

__all__ = ["sync_health"]


def sync_health(
    store: SqlStateStore,
    tenant_id: str,
    portal_id: str,
    *,
    record_kinds: Sequence[str],
    retry_kind: str,
) -> tuple[int, int]:
    """``(in_sync, failing)``: linked deals without a failing job, and the records whose job of
    one of ``record_kinds`` failed (a ``retry_kind`` job exists because its deal failed, unless
    its payload says ``why`` it was queued, another worker holding the deal or a conflict held
    for a person; other jobs count once they erred or died)."""
    with store.engine.connect() as conn:
        linked = conn.execute(sa.select(links.c.hubspot_id).where(
            links.c.tenant_id == tenant_id, links.c.portal_id == portal_id,
            links.c.object_type == "deal")).scalars().all()
        failing_keys = conn.execute(sa.select(jobs.c.dedupe_key, jobs.c.payload, jobs.c.kind, jobs.c.state,
                                              jobs.c.last_error).where(
            jobs.c.tenant_id == tenant_id, jobs.c.kind.in_(record_kinds),
            sa.or_(jobs.c.kind == retry_kind, jobs.c.state == "dead", jobs.c.last_error.is_not(None)),
        )).all()
    failing = {str(key or payload) for key, payload, kind, state, error in failing_keys
               if not (kind == retry_kind and error is None and state != "dead" and "why" in json.loads(payload))}
    failing_deals = {k.split(":", 1)[1] for k in failing if k.startswith(("deal:", "deals:"))}
    return sum(1 for deal_id in linked if deal_id not in failing_deals), len(failing)
