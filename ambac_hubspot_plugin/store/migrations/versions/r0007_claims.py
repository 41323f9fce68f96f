"""Short store-level claims that serialise work on one key across processes.

The host has no unique key on user emails, so two worker processes linking the same new
HubSpot contact could each create a host user for it. A claim on (tenant, key) held for the
"find by email, else create" step makes the second process wait, then find the first one's
user. A claim expires (``expires_at``) so a crashed holder never blocks a key for long.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hubspot_claims",
        sa.Column("tenant_id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(320), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    # Claims live for seconds; older versions do not use them.
    op.drop_table("hubspot_claims")
