"""Field by field: what HubSpot's mapped values change on a linked host record.

The inbound engine (:mod:`._inbound`) calls :func:`reconcile_fields` for every update of a
linked order, company or contact; the conflict strategies it consults are in :mod:`.conflicts`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from .conflicts import Change, ConflictStrategy, Decision, FieldConflict, compare, to_json

__all__ = ["Audited", "reconcile_fields"]

Audited = tuple[FieldConflict, Decision, ConflictStrategy]
"""One conflict of a record, with the decision and the strategy that made it."""


def reconcile_fields(
    tenant_id: str, object_type: str, record: str, fields: Mapping[str, object], current: object,
    last: Mapping[str, Any], changed_at: tuple[datetime | None, datetime | None],
    strategy_for: Callable[[str, str], ConflictStrategy],
    audit: Callable[[FieldConflict, Decision, ConflictStrategy], None] | None,
    host_fields: frozenset[str] | None = None, own: Collection[str] = (),
) -> tuple[dict[str, object], dict[str, Any], list[str], list[str]]:
    """Decide, for each of HubSpot's mapped ``fields``, whether it changes ``current``.

    ``last`` holds the values last synced, ``changed_at`` HubSpot's and the host's modification
    times (for the strategies). Returns the changes to apply, the new last-synced values, the
    fields held for a person to decide and the fields the host won (for the outbound push).
    Every conflict goes to ``audit`` (None in a dry run), whatever the strategy decides. A
    field outside ``host_fields`` (the host has no such field) is only remembered: no change,
    no conflict. A field in ``own`` shows in HubSpot the value the push last wrote there: when
    the host has moved on since (its push still queued), that is no HubSpot edit and no
    conflict; the host's value stands, and is pushed.
    """
    changes: dict[str, object] = {}
    synced = dict(last)
    held: list[str] = []
    host_wins: list[str] = []
    for field, value in fields.items():
        if host_fields is not None and field not in host_fields:
            synced[field] = to_json(value)
            continue
        host_value = getattr(current, field)
        change = compare(value, host_value, last, field)
        if field in own and change in (Change.HUBSPOT, Change.CONFLICT):
            # Our own older write read back: the host's value is the one both sides will hold
            # once its push lands (queued again here), so it is the last synced one: HubSpot's
            # next different value is a person's edit, compared with it.
            synced[field] = to_json(host_value)
            host_wins.append(field)
            continue
        if change is Change.HUBSPOT:
            changes[field] = value
        elif change is Change.CONFLICT:
            strategy = strategy_for(object_type, field)
            conflict = FieldConflict(
                tenant_id=tenant_id, object_type=object_type, record=record, field=field,
                hubspot_value=value, host_value=host_value, last_synced=last.get(field),
                hubspot_changed_at=changed_at[0], host_changed_at=changed_at[1])
            decision = strategy.decide(conflict)
            if audit is not None:
                audit(conflict, decision, strategy)
            if decision.winner == "hubspot":
                changes[field] = value
            elif decision.winner == "hold":
                held.append(field)
                continue
            else:
                # The host keeps its value and the outbound push carries it to HubSpot.
                # HubSpot's value becomes the last synced one, so until that push lands
                # the next sync sees no HubSpot change (and no second conflict).
                synced[field] = to_json(value)
                host_wins.append(field)
                continue
        if change is not Change.NONE or field not in synced:
            synced[field] = to_json(value)
    return changes, synced, held, host_wins
