"""Each link names, among its synced values, the fields whose conflict is held open.

Why: a conflict held for a person (strategy ``manual``) stayed open after both sides came to one
value, or one side went back to the last synced value: a person was asked to decide a dispute
that was over. The sync now closes such a conflict (resolution ``settled``) when it next applies
the record; it knows which fields were held from the link's synced values, key
``_held_fields``, which it writes with each hold. This revision writes that key for the
conflicts open before it, so that they too are closed when they end.

Upgrade adds, to the link of each open conflict (found by its HubSpot object, else by its host
record: a merge in HubSpot moves a link to the surviving record), the conflict's field under
``_held_fields``; a link whose synced values are not a JSON object is left alone.
Downgrade removes the key: the earlier code neither writes nor reads it.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels = None
depends_on = None

KEY = "_held_fields"  # as _field_sync.HELD_FIELDS, copied: a revision must not change with the code


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))  # as the store writes synced values


def _object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def upgrade() -> None:
    bind = op.get_bind()
    held: dict[tuple[Any, ...], set[str]] = {}
    for key in bind.execute(sa.text(
            "SELECT tenant_id, portal_id, hubspot_type, hubspot_id, object_type, host_id, field "
            "FROM hubspot_conflicts WHERE status = 'open'")):
        held.setdefault(tuple(key[:-1]), set()).add(key[-1])
    for (tenant_id, portal_id, hubspot_type, hubspot_id, host_type, host_id), fields in held.items():
        row = bind.execute(sa.text(
            "SELECT id, synced FROM hubspot_links WHERE tenant_id = :t AND portal_id = :p "
            "AND object_type = :o AND hubspot_id = :h"),
            {"t": tenant_id, "p": portal_id, "o": hubspot_type, "h": hubspot_id}).first()
        if row is None:  # the HubSpot record was merged into another since: its link moved there
            row = bind.execute(sa.text(
                "SELECT id, synced FROM hubspot_links WHERE tenant_id = :t AND host_type = :o AND host_id = :h"),
                {"t": tenant_id, "o": host_type, "h": host_id}).first()
        if row is None:
            continue
        synced = _object(row[1])
        if synced is None:
            continue
        before = synced.get(KEY)
        synced[KEY] = sorted(fields | set(before if isinstance(before, list) else ()))
        bind.execute(sa.text("UPDATE hubspot_links SET synced = :s WHERE id = :i"),
                     {"s": _dumps(synced), "i": row[0]})


def downgrade() -> None:
    bind = op.get_bind()
    for link_id, text in bind.execute(sa.text("SELECT id, synced FROM hubspot_links WHERE synced LIKE :k"),
                                      {"k": f"%{KEY}%"}).all():
        synced = _object(text)
        if synced is not None and KEY in synced:
            del synced[KEY]
            bind.execute(sa.text("UPDATE hubspot_links SET synced = :s WHERE id = :i"),
                         {"s": _dumps(synced), "i": link_id})
