"""Company links' ``match_domain`` holds an internationalised domain in its Unicode form.

Why: a domain such as bücher.example has two spellings, the Unicode one and the ASCII one a
browser or DNS tool shows (``xn--bcher-kva.example``). The store kept whichever the HubSpot
company's website used, so two HubSpot companies of one domain, one spelled each way, did not
match and became two host companies. Domains are now normalised to the Unicode form
(``mapping.normalize_domain``); this revision rewrites the ones stored before in ASCII.

Upgrade rewrites the company links whose ``match_domain`` has an ``xn--`` label (a plain ASCII
domain is its own Unicode form, so no other row changes). Downgrade leaves them: the Unicode form
is a valid domain for the earlier code too, which matched it against websites typed that way.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ambac_hubspot_plugin.mapping import normalize_domain

revision = "0012"
down_revision: str | None = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, match_domain FROM hubspot_links WHERE object_type = 'company' "
        "AND lower(match_domain) LIKE '%xn--%'")).all()
    for link_id, stored in rows:
        domain = normalize_domain(stored)[:255]
        if domain and domain != stored:
            bind.execute(sa.text("UPDATE hubspot_links SET match_domain = :d WHERE id = :i"),
                         {"d": domain, "i": link_id})


def downgrade() -> None:
    pass  # see the module's docstring: the Unicode forms stay valid domains
