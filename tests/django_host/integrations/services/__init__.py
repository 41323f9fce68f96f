"""The double's integration services."""
