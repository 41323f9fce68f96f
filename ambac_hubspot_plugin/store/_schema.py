"""The tables as the running code sees them (the migrations own their creation).

Table names carry a ``hubspot_`` prefix because on PostgreSQL they may share the host's
database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["HOST_ID", "PENDING_DEDUPE", "checkpoints", "claims", "conflicts", "integration_log", "jobs", "links",
           "metadata", "pushed_values", "sync_runs", "webhook_batches", "webhook_events", "webhook_portals",
           "webhook_refusals"]


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Stores tz-aware datetimes as UTC and always returns tz-aware UTC.

    SQLite has no time zone type: its DATETIME strings would silently drop the offset, so we
    store naive UTC there (which also keeps its string comparisons chronological).
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; pass tz-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]  # driver gives datetime
        return value.astimezone(UTC)  # type: ignore[no-any-return]  # driver gives datetime


HOST_ID = sa.String(64)
"""The type of every column holding a host id (tenant, order, company, contact, user).

The host's ids are opaque strings: canonical UUIDs or integer-looking strings, at most 64
characters; never compared or ordered as numbers (migration 0008 turned the integer columns
into these).
"""

metadata = sa.MetaData()

links = sa.Table(
    "hubspot_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", HOST_ID, nullable=False),
    sa.Column("portal_id", sa.String(32), nullable=False),
    sa.Column("object_type", sa.String(16), nullable=False),
    sa.Column("hubspot_id", sa.String(64), nullable=False),
    sa.Column("host_type", sa.String(16), nullable=False),
    sa.Column("host_id", HOST_ID, nullable=False),
    sa.Column("synced", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # A company link's HubSpot domain (its synced ``website``, normalised), for domain matching
    # on a host whose companies have no website (migration 0009); NULL otherwise.
    sa.Column("match_domain", sa.String(255)),
)

checkpoints = sa.Table(
    "hubspot_checkpoints",
    metadata,
    sa.Column("tenant_id", HOST_ID, primary_key=True),
    sa.Column("portal_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

sync_runs = sa.Table(
    "hubspot_sync_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", HOST_ID, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(128)),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("heartbeat_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("updated", sa.Integer, nullable=False),
    sa.Column("skipped", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
)

integration_log = sa.Table(
    "hubspot_integration_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", HOST_ID, nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("what", sa.String(64), nullable=False),
    sa.Column("record", sa.String(128)),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

jobs = sa.Table(
    "hubspot_jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", HOST_ID, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("dedupe_key", sa.String(255)),
    sa.Column("run_after", UtcDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_expires_at", UtcDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

PENDING_DEDUPE = sa.text("dedupe_key IS NOT NULL AND state = 'pending'")
"""The predicate of the jobs' partial unique index on (tenant_id, kind, dedupe_key).

Must stay the text of migration 0005's index: an ``ON CONFLICT (tenant_id, kind, dedupe_key)
WHERE ...`` names the index by it, and SQLite only accepts the exact same expression.
"""

webhook_batches = sa.Table(
    "hubspot_webhook_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", HOST_ID, nullable=False),
    sa.Column("portal_id", sa.String(32), nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("error", sa.Text),
)

webhook_events = sa.Table(
    "hubspot_webhook_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", HOST_ID, nullable=False),
    sa.Column("portal_id", sa.String(32), nullable=False),
    sa.Column("dedupe_key", sa.String(64), nullable=False),
    sa.Column("event_id", sa.BigInteger),
    sa.Column("subscription_type", sa.String(64), nullable=False),
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("object_id", sa.String(64), nullable=False),
    sa.Column("property_name", sa.String(255)),
    sa.Column("occurred_at_ms", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("processed_at", UtcDateTime),
    sa.Column("outcome", sa.String(16)),
    # "Stored once": unique on the key, led by the time of the change (migration 0011).
    sa.Index("uq_hubspot_webhook_events_occurred", "tenant_id", "occurred_at_ms", "dedupe_key",
             unique=True),
)

webhook_portals = sa.Table(
    "hubspot_webhook_portals",
    metadata,
    sa.Column("tenant_id", HOST_ID, primary_key=True),
    sa.Column("portal_id", sa.String(32), primary_key=True),
    sa.Column("last_received_at", UtcDateTime),
    sa.Column("last_occurred_at_ms", sa.BigInteger),
    sa.Column("accepted", sa.BigInteger, nullable=False),
    sa.Column("duplicates", sa.BigInteger, nullable=False),
    sa.Column("echoes", sa.BigInteger, nullable=False),
)

webhook_refusals = sa.Table(
    "hubspot_webhook_refusals",
    metadata,
    sa.Column("tenant_id", HOST_ID, primary_key=True),
    sa.Column("reason", sa.String(32), primary_key=True),
    sa.Column("refused", sa.BigInteger, nullable=False),
    sa.Column("suppressed", sa.BigInteger, nullable=False),
    sa.Column("last_refused_at", UtcDateTime, nullable=False),
)

conflicts = sa.Table(
    "hubspot_conflicts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", HOST_ID, nullable=False),
    sa.Column("portal_id", sa.String(32), nullable=False),
    sa.Column("object_type", sa.String(16), nullable=False),
    sa.Column("host_id", HOST_ID, nullable=False),
    sa.Column("hubspot_type", sa.String(16), nullable=False),
    sa.Column("hubspot_id", sa.String(64), nullable=False),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("hubspot_value", sa.Text, nullable=False),
    sa.Column("host_value", sa.Text, nullable=False),
    sa.Column("last_synced", sa.Text, nullable=False),
    sa.Column("hubspot_changed_at", UtcDateTime),
    sa.Column("host_changed_at", UtcDateTime),
    sa.Column("strategy", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("resolution", sa.String(16)),
    sa.Column("resolved_value", sa.Text),
    sa.Column("decided_by", sa.String(255)),
    sa.Column("decided_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

pushed_values = sa.Table(
    "hubspot_pushed_values",
    metadata,
    sa.Column("tenant_id", HOST_ID, primary_key=True),
    sa.Column("object_type", sa.String(16), primary_key=True),
    sa.Column("object_id", sa.String(64), primary_key=True),
    sa.Column("property_name", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("written_at", UtcDateTime, nullable=False),
)

claims = sa.Table(
    "hubspot_claims",
    metadata,
    sa.Column("tenant_id", HOST_ID, primary_key=True),
    sa.Column("key", sa.String(320), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)
