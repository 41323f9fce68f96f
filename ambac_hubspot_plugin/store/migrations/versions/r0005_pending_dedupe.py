"""Dedupe jobs against pending jobs only; index running jobs by dedupe key.

A running job may already have read the state its work depends on, so an equal job queued
meanwhile must not be folded into it: it is queued as a new pending job instead, and claim()
holds it back until the running one is done.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

_COLUMNS = ["tenant_id", "kind", "dedupe_key"]
# Must stay the text of _schema.PENDING_DEDUPE (ON CONFLICT names the index by it).
_PENDING = sa.text("dedupe_key IS NOT NULL AND state = 'pending'")
_RUNNING = sa.text("dedupe_key IS NOT NULL AND state = 'running'")
_LIVE_0002 = sa.text("dedupe_key IS NOT NULL AND state IN ('pending', 'running')")


def upgrade() -> None:
    # Every row set the old index allowed is allowed by the new one (it covers fewer rows),
    # so this cannot fail on existing data, and no row is touched.
    op.drop_index("uq_hubspot_jobs_live_dedupe", table_name="hubspot_jobs")
    op.create_index("uq_hubspot_jobs_pending_dedupe", "hubspot_jobs", _COLUMNS, unique=True,
                    sqlite_where=_PENDING, postgresql_where=_PENDING)
    # claim() asks "does a job with this key run?" for every pending candidate.
    op.create_index("ix_hubspot_jobs_running_dedupe", "hubspot_jobs", _COLUMNS,
                    sqlite_where=_RUNNING, postgresql_where=_RUNNING)


def downgrade() -> None:
    # Under the old rule a pending job behind a running one of the same key is a duplicate;
    # drop it so the old unique index can be built (the running job keeps the work).
    op.execute(sa.text(
        "DELETE FROM hubspot_jobs WHERE state = 'pending' AND dedupe_key IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM hubspot_jobs AS r WHERE r.state = 'running' "
        "AND r.tenant_id = hubspot_jobs.tenant_id AND r.kind = hubspot_jobs.kind "
        "AND r.dedupe_key = hubspot_jobs.dedupe_key)"))
    op.drop_index("ix_hubspot_jobs_running_dedupe", table_name="hubspot_jobs")
    op.drop_index("uq_hubspot_jobs_pending_dedupe", table_name="hubspot_jobs")
    op.create_index("uq_hubspot_jobs_live_dedupe", "hubspot_jobs", _COLUMNS, unique=True,
                    sqlite_where=_LIVE_0002, postgresql_where=_LIVE_0002)
