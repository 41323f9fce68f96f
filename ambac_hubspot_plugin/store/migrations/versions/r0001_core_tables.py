"""Links, checkpoints, sync runs and the integration log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "hubspot_links",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("portal_id", sa.String(32), nullable=False),
        sa.Column("object_type", sa.String(16), nullable=False),
        sa.Column("hubspot_id", sa.String(64), nullable=False),
        sa.Column("host_type", sa.String(16), nullable=False),
        sa.Column("host_id", sa.BigInteger, nullable=False),
        sa.Column("synced", sa.Text, nullable=False, server_default="{}"),
        _when("created_at"),
        _when("updated_at"),
        sa.UniqueConstraint("tenant_id", "portal_id", "object_type", "hubspot_id",
                            name="uq_hubspot_links_hubspot"),
        sa.UniqueConstraint("tenant_id", "host_type", "host_id", name="uq_hubspot_links_host"),
    )
    op.create_table(
        "hubspot_checkpoints",
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("portal_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "portal_id", "name",
                                name="pk_hubspot_checkpoints"),
    )
    op.create_table(
        "hubspot_sync_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(128)),
        _when("started_at"),
        _when("heartbeat_at"),
        _when("ended_at", nullable=True),
        sa.Column("created", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
        sa.Column("skipped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')",
                           name="ck_hubspot_sync_runs_status"),
    )
    op.create_index("ix_hubspot_sync_runs_tenant", "hubspot_sync_runs",
                    ["tenant_id", "started_at"])
    op.create_index("ix_hubspot_sync_runs_status", "hubspot_sync_runs",
                    ["status", "heartbeat_at"])
    op.create_table(
        "hubspot_integration_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("what", sa.String(64), nullable=False),
        sa.Column("record", sa.String(128)),
        sa.Column("message", sa.Text, nullable=False),
        _when("created_at"),
        sa.CheckConstraint("level IN ('debug', 'info', 'warning', 'error')",
                           name="ck_hubspot_integration_log_level"),
    )
    # Reads page newest-first per tenant, optionally per record.
    op.create_index("ix_hubspot_integration_log_tenant", "hubspot_integration_log",
                    ["tenant_id", "id"])
    op.create_index("ix_hubspot_integration_log_record", "hubspot_integration_log",
                    ["tenant_id", "record", "id"])


def downgrade() -> None:
    op.drop_table("hubspot_integration_log")
    op.drop_table("hubspot_sync_runs")
    op.drop_table("hubspot_checkpoints")
    op.drop_table("hubspot_links")
