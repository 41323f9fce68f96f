"""The conflict audit trail (open conflicts included) and the values the outbound push wrote.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

_OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_table(
        "hubspot_conflicts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("portal_id", sa.String(32), nullable=False),
        sa.Column("object_type", sa.String(16), nullable=False),
        sa.Column("host_id", sa.BigInteger, nullable=False),
        sa.Column("hubspot_type", sa.String(16), nullable=False),
        sa.Column("hubspot_id", sa.String(64), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("hubspot_value", sa.Text, nullable=False),
        sa.Column("host_value", sa.Text, nullable=False),
        sa.Column("last_synced", sa.Text, nullable=False),
        sa.Column("hubspot_changed_at", sa.DateTime(timezone=True)),
        sa.Column("host_changed_at", sa.DateTime(timezone=True)),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(16)),
        sa.Column("resolved_value", sa.Text),
        sa.Column("decided_by", sa.String(255)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_hubspot_conflicts_status"),
    )
    # At most one open conflict per field of a record: a sync that meets a held field again
    # refreshes that conflict instead of opening another (the database decides races).
    op.create_index("uq_hubspot_conflicts_open", "hubspot_conflicts",
                    ["tenant_id", "object_type", "host_id", "field"], unique=True,
                    sqlite_where=_OPEN, postgresql_where=_OPEN)
    op.create_index("ix_hubspot_conflicts_tenant", "hubspot_conflicts",
                    ["tenant_id", "status", "id"])
    op.create_table(
        "hubspot_pushed_values",
        sa.Column("tenant_id", sa.Integer, primary_key=True),
        sa.Column("object_type", sa.String(16), primary_key=True),
        sa.Column("object_id", sa.String(64), primary_key=True),
        sa.Column("property_name", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hubspot_pushed_values")
    op.drop_index("ix_hubspot_conflicts_tenant", table_name="hubspot_conflicts")
    op.drop_index("uq_hubspot_conflicts_open", table_name="hubspot_conflicts")
    op.drop_table("hubspot_conflicts")
