"""Field by field: what HubSpot's mapped values change on a linked host record.

The inbound engine (:mod:`._inbound`) calls :func:`reconcile_fields` for every update of a
linked order, company or contact; the conflict strategies it consults are in :mod:`.conflicts`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

import attrs

from .conflicts import Change, ConflictStrategy, Decision, FieldConflict, compare, strategy_name, to_json

__all__ = ["HELD_FIELDS", "Audited", "Reconciled", "field_values", "reconcile_fields", "without_held"]

Audited = tuple[FieldConflict, Decision, ConflictStrategy]
"""One conflict of a record, with the decision and the strategy that made it."""

HELD_FIELDS = "_held_fields"
"""Key in a link's synced values: the fields whose conflict is open (held for a person), so
that the sync that finds one no longer in dispute closes it (see :attr:`Reconciled.settled`)."""


@attrs.define
class Reconciled:
    """What HubSpot's mapped values do to one linked host record."""

    #: The host fields to change, with HubSpot's values.
    changes: dict[str, object]
    #: The link's new last-synced values.
    synced: dict[str, Any]
    #: Fields held for a person to decide (their conflict is open).
    held: list[str]
    #: Fields whose host value won: the outbound push carries them.
    host_wins: list[str]
    #: Every conflict met, with its decision, for the audit trail once the host took the changes.
    conflicts: list[Audited] = attrs.field(factory=list)
    #: Fields held before and no longer in dispute: the value the host now keeps, and why.
    settled: dict[str, tuple[object, str]] = attrs.field(factory=dict)


def without_held(synced: Mapping[str, Any], field: str) -> dict[str, Any]:
    """``synced`` with ``field`` no longer held (a person decided its conflict)."""
    held = [f for f in synced.get(HELD_FIELDS, ()) if f != field]
    rest = {k: v for k, v in synced.items() if k != HELD_FIELDS}
    return {**rest, HELD_FIELDS: held} if held else rest


def reconcile_fields(
    tenant_id: str, object_type: str, record: str, fields: Mapping[str, object], current: object,
    last: Mapping[str, Any], changed_at: tuple[datetime | None, datetime | None],
    strategy_for: Callable[[str, str], ConflictStrategy],
    host_fields: frozenset[str] | None = None, own: Collection[str] = (),
) -> Reconciled:
    """Decide, for each of HubSpot's mapped ``fields``, whether it changes ``current``.

    ``last`` holds the values last synced, ``changed_at`` HubSpot's and the host's modification
    times (for the strategies). Every conflict is in the result's ``conflicts``, whatever the
    strategy decides. A field outside ``host_fields`` (the host has no such field) is only
    remembered: no change, no conflict. A field in ``own`` shows in HubSpot the value the push
    last wrote there: when the host has moved on since (its push still queued), that is no
    HubSpot edit and no conflict; the host's value stands, and is pushed. A field held before
    (:data:`HELD_FIELDS`) that is no longer in dispute, or that a strategy now decides, is in
    ``settled``: its open conflict is to be closed.
    """
    result = Reconciled(changes={}, synced=dict(last), held=[], host_wins=[])
    changes, synced, held, host_wins = result.changes, result.synced, result.held, result.host_wins
    was_held = set(last.get(HELD_FIELDS, ()))
    compared: set[str] = set()
    for field, value in fields.items():
        if host_fields is not None and field not in host_fields:
            synced[field] = to_json(value)
            continue
        compared.add(field)
        host_value = getattr(current, field)
        change = compare(value, host_value, last, field)
        if field in own and change in (Change.HUBSPOT, Change.CONFLICT):
            # Our own older write read back: the host's value is the one both sides will hold
            # once its push lands (queued again here), so it is the last synced one: HubSpot's
            # next different value is a person's edit, compared with it.
            synced[field] = to_json(host_value)
            host_wins.append(field)
            _settle(result, was_held, field, host_value,
                    "HubSpot shows the plugin's own earlier write; the host's {kept} stands")
            continue
        if change is Change.HUBSPOT:
            changes[field] = value
            _settle(result, was_held, field, value,
                    "the host went back to the last synced value, so HubSpot's {kept} was applied")
        elif change is Change.CONVERGED:
            _settle(result, was_held, field, value, "both sides now hold {kept}")
        elif change is Change.NONE:
            _settle(result, was_held, field, host_value,
                    "HubSpot went back to the last synced value, so the host's {kept} stands")
        elif change is Change.CONFLICT:
            strategy = strategy_for(object_type, field)
            conflict = FieldConflict(
                tenant_id=tenant_id, object_type=object_type, record=record, field=field,
                hubspot_value=value, host_value=host_value, last_synced=last.get(field),
                hubspot_changed_at=changed_at[0], host_changed_at=changed_at[1])
            decision = strategy.decide(conflict)
            result.conflicts.append((conflict, decision, strategy))
            if decision.winner == "hold":
                held.append(field)
                continue
            kept = value if decision.winner == "hubspot" else host_value
            _settle(result, was_held, field, kept, f"decided by strategy {strategy_name(strategy)} (the "
                    "conflict settings changed since it was held)")
            if decision.winner == "hubspot":
                changes[field] = value
            else:
                # The host keeps its value and the outbound push carries it to HubSpot.
                # HubSpot's value becomes the last synced one, so until that push lands
                # the next sync sees no HubSpot change (and no second conflict).
                synced[field] = to_json(value)
                host_wins.append(field)
                continue
        if change is not Change.NONE or field not in synced:
            synced[field] = to_json(value)
    # A held field not compared now (the mapping no longer reads it, the host no longer keeps
    # it) stays held: nothing says it is settled.
    still = sorted({*held, *(was_held - compared)})
    synced.pop(HELD_FIELDS, None)
    if still:
        synced[HELD_FIELDS] = still
    return result


def _settle(result: Reconciled, was_held: set[str], field: str, kept: object, why: str) -> None:
    """A held field's dispute is over: say why, ``{kept}`` the value kept in its JSON form (a date
    as '2026-12-07'); only then worded, for this runs for every field of every update."""
    if field in was_held:
        shown = to_json(kept)
        result.settled[field] = (shown, why.replace("{kept}", repr(shown)))


def field_values(synced: Mapping[str, Any]) -> dict[str, Any]:
    """A link's synced values without the plugin's own bookkeeping (``_held_fields``, the
    applied version, ...): what it keeps of each field."""
    return {k: v for k, v in synced.items() if not k.startswith("_")}
