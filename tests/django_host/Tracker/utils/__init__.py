"""Helpers of the host double (the tenant context lives in ``Tracker.utils.tenant_context``)."""
