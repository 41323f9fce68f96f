"""Webhook deliveries are stored as received, and split into events by a queued job.

Storing a 100-event delivery as 100 event rows and up to 100 jobs, each with unique indexes,
cost most of the receiver's time per request. A delivery is now one row holding its verified
raw body; the ``webhook.inbox`` job splits it into ``hubspot_webhook_events`` (deduplicated as
before) and queues the per-object jobs, deleting the row in the same transaction. ``error``
holds why a stored delivery could not be split (it is kept, never dropped).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hubspot_webhook_batches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("portal_id", sa.String(32), nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_hubspot_webhook_batches_tenant", "hubspot_webhook_batches",
                    ["tenant_id", "id"])


def downgrade() -> None:
    # Deliveries not split yet would be lost with the table: refuse rather than drop them.
    bind = op.get_bind()
    waiting, unreadable = bind.execute(sa.text(
        "SELECT count(*) - count(error), count(error) FROM hubspot_webhook_batches")).one()
    if waiting or unreadable:
        raise RuntimeError(
            f"{waiting} webhook deliveries are not processed yet and {unreadable} could not be "
            "read (the integration log's webhook.unreadable entries say why); run the worker "
            "until the first number is 0, then replay or delete the unreadable rows of "
            "hubspot_webhook_batches, then downgrade")
    # Their kind means nothing to older versions, which would leave them queued forever.
    op.execute(sa.text("DELETE FROM hubspot_jobs WHERE kind = 'webhook.inbox'"))
    op.drop_index("ix_hubspot_webhook_batches_tenant", table_name="hubspot_webhook_batches")
    op.drop_table("hubspot_webhook_batches")
