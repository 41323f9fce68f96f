"""The durable job queue.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

_LIVE = sa.text("dedupe_key IS NOT NULL AND state IN ('pending', 'running')")


def upgrade() -> None:
    op.create_table(
        "hubspot_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("dedupe_key", sa.String(255)),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('pending', 'running', 'dead')",
                           name="ck_hubspot_jobs_state"),
    )
    # Dedupe is the database's job: a partial unique index over live jobs only, so a dead
    # or finished job never blocks enqueueing the same work again. Both backends support it.
    op.create_index("uq_hubspot_jobs_live_dedupe", "hubspot_jobs",
                    ["tenant_id", "kind", "dedupe_key"], unique=True,
                    sqlite_where=_LIVE, postgresql_where=_LIVE)
    # claim() scans due work by state and time.
    op.create_index("ix_hubspot_jobs_due", "hubspot_jobs", ["state", "run_after"])
    op.create_index("ix_hubspot_jobs_lease", "hubspot_jobs", ["state", "lease_expires_at"])
    op.create_index("ix_hubspot_jobs_tenant", "hubspot_jobs", ["tenant_id", "state", "kind"])


def downgrade() -> None:
    op.drop_table("hubspot_jobs")
