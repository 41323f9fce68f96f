"""Alembic revisions; this file makes setuptools' ``packages = find:`` ship them."""
