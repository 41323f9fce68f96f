"""Notifications: ``emit`` records an event for the tenant's people to be told about."""
