"""Indexes for pruning: processed webhook events and log lines by tenant and age.

Why: the periodic prune deletes a tenant's events processed before a cutoff and its log lines
written before one, 1,000 rows at a time. Without an index each chunk scans the whole table
(millions of processed events at 1,000 events/s); with these each chunk reads its rows only,
and a prune with nothing to do costs one index probe per table. Sync runs and dead jobs are
found through the indexes of 0001 (tenant, started_at) and 0002 (tenant, state, kind).

Downgrade drops both indexes.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None

EVENTS_INDEX = "ix_hubspot_webhook_events_processed"
LOG_INDEX = "ix_hubspot_integration_log_created"


def upgrade() -> None:
    op.create_index(EVENTS_INDEX, "hubspot_webhook_events", ["tenant_id", "processed_at"])
    op.create_index(LOG_INDEX, "hubspot_integration_log", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index(LOG_INDEX, table_name="hubspot_integration_log")
    op.drop_index(EVENTS_INDEX, table_name="hubspot_webhook_events")
