"""Alembic environment: runs on the connection ``store.migrate`` hands over, never on its own.

The caller has already taken the migration lock and opened the transaction, so this only
configures the context (our own version table, since the database may be the host's).
"""

from __future__ import annotations

from alembic import context

from ambac_hubspot_plugin.store._engine import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
