"""Alembic migrations of the plugin's store, run programmatically by ``store.migrate``."""
