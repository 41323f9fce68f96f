"""The current tenant: a ContextVar holding the tenant id as a string (HOST.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

current_tenant_var: ContextVar[str | None] = ContextVar("current_tenant", default=None)


def get_current_tenant_id() -> str | None:
    """The tenant id of the running code, or None outside any tenant context."""
    return current_tenant_var.get()


@contextmanager
def tenant_context(tenant_or_id: Any) -> Iterator[None]:
    """Run the block as ``tenant_or_id`` (a Tenant, a UUID or its text); the var holds a str."""
    value = getattr(tenant_or_id, "pk", tenant_or_id)
    token = current_tenant_var.set(None if value is None else str(uuid.UUID(str(value))))
    try:
        yield
    finally:
        current_tenant_var.reset(token)
