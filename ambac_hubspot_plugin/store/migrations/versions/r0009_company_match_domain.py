"""Company links keep their HubSpot domain in an indexed column, ``match_domain``.

Why: the real host's companies have no website, so the host cannot find a company by domain.
The plugin keeps each linked HubSpot company's values the host has no field for (domain, phone,
address) in the link's ``synced`` JSON, and matches a new HubSpot company by domain among this
tenant and portal's company links. A JSON text cannot be searched with an index, so the domain
gets a column of its own and an index on (tenant, portal, object type, domain).

Upgrade adds the nullable column and index, then fills the column for existing company links
whose ``synced`` holds a ``website`` (normalised: ``https://www.Example.com/`` becomes
``example.com``). Downgrade drops both; the values stay in ``synced``.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from ambac_hubspot_plugin.mapping import normalize_domain

revision = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None

INDEX = "ix_hubspot_links_match_domain"


def upgrade() -> None:
    # ADD COLUMN of a nullable column needs no table copy on SQLite either.
    op.add_column("hubspot_links", sa.Column("match_domain", sa.String(255), nullable=True))
    op.create_index(INDEX, "hubspot_links", ["tenant_id", "portal_id", "object_type", "match_domain"])
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, synced FROM hubspot_links WHERE object_type = 'company'")).all()
    for link_id, synced in rows:
        try:
            website = json.loads(synced).get("website")
        except (ValueError, AttributeError):
            continue  # not a JSON object: nothing to take the domain from
        domain = normalize_domain(website if isinstance(website, str) else None)[:255]
        if domain:
            bind.execute(sa.text("UPDATE hubspot_links SET match_domain = :d WHERE id = :i"),
                         {"d": domain, "i": link_id})


def downgrade() -> None:
    op.drop_index(INDEX, table_name="hubspot_links")
    # Plain DROP COLUMN (SQLite has it since 3.35): no table copy, the other indexes stay.
    op.drop_column("hubspot_links", "match_domain")
