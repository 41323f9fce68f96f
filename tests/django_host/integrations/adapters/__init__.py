"""The double's adapters: the base class and the host's own HubSpot sync."""
