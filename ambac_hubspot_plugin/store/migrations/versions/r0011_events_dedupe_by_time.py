"""The webhook events' "stored once" index leads with the time of the change.

Why: the split stores each event once, by a unique index on (tenant, dedupe key); the key is
a sha256, so every new event went to a random page of that index. With a long history (a
million processed events) that index no longer fits the cache: each 100-event transaction
read and wrote about 100 scattered pages (on PostgreSQL, each first write after a checkpoint
logs the whole page), and the split slowed down as history grew. The key hashes the event's
``occurredAt`` among the rest, so (tenant, occurredAt, key) is unique exactly when (tenant,
key) is; and new events happened recently, so they all land at the end of this index, in the
few pages just written. A redelivery (same key, same time) still finds its first copy in one
index probe.

Upgrade creates the new unique index and drops the old constraint (on SQLite that rebuilds the
table, as dropping a constraint does there; its other indexes are created again as they were).
Downgrade restores the constraint on (tenant, key) and drops the new index.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None

TABLE = "hubspot_webhook_events"
OLD = "uq_hubspot_webhook_events_dedupe"
NEW = "uq_hubspot_webhook_events_occurred"


def _rebuild_sqlite(change: str) -> None:
    """Recreate the table with the unique constraint dropped or added (``change``), keeping its
    explicit indexes (partial ones included) exactly as they were written."""
    indexes = [(str(name), str(sql)) for name, sql in op.get_bind().execute(sa.text(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t "
        "AND sql IS NOT NULL AND name != :new ORDER BY name"), {"t": TABLE, "new": NEW})]
    for name, _sql in indexes:
        op.drop_index(name, table_name=TABLE)
    with op.batch_alter_table(TABLE, recreate="always") as batch:
        if change == "drop":
            batch.drop_constraint(OLD, type_="unique")
        else:
            batch.create_unique_constraint(OLD, ["tenant_id", "dedupe_key"])
    for _name, sql in indexes:
        op.execute(sql)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite("drop")
    else:
        op.drop_constraint(OLD, TABLE, type_="unique")
    op.create_index(NEW, TABLE, ["tenant_id", "occurred_at_ms", "dedupe_key"], unique=True)


def downgrade() -> None:
    op.drop_index(NEW, table_name=TABLE)
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite("add")
    else:
        op.create_unique_constraint(OLD, TABLE, ["tenant_id", "dedupe_key"])
