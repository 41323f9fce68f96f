"""The webhook inbox, per-portal webhook counters and refusal counters.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

_UNPROCESSED = sa.text("processed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "hubspot_webhook_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("portal_id", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("event_id", sa.BigInteger),
        sa.Column("subscription_type", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("property_name", sa.String(255)),
        sa.Column("occurred_at_ms", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        sa.Column("outcome", sa.String(16)),
        # The database decides "stored once": concurrent deliveries of one event race on it.
        sa.UniqueConstraint("tenant_id", "dedupe_key", name="uq_hubspot_webhook_events_dedupe"),
    )
    # The job handler reads one object's unprocessed events; keep that index small.
    op.create_index("ix_hubspot_webhook_events_pending", "hubspot_webhook_events",
                    ["tenant_id", "object_type", "object_id"],
                    sqlite_where=_UNPROCESSED, postgresql_where=_UNPROCESSED)
    op.create_index("ix_hubspot_webhook_events_received", "hubspot_webhook_events",
                    ["received_at"])
    op.create_table(
        "hubspot_webhook_portals",
        sa.Column("tenant_id", sa.Integer, primary_key=True),
        sa.Column("portal_id", sa.String(32), primary_key=True),
        sa.Column("last_received_at", sa.DateTime(timezone=True)),
        sa.Column("last_occurred_at_ms", sa.BigInteger),
        sa.Column("accepted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("duplicates", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("echoes", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "hubspot_webhook_refusals",
        sa.Column("tenant_id", sa.Integer, primary_key=True),
        sa.Column("reason", sa.String(32), primary_key=True),
        sa.Column("refused", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("suppressed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_refused_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hubspot_webhook_refusals")
    op.drop_table("hubspot_webhook_portals")
    op.drop_table("hubspot_webhook_events")
