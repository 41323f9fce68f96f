"""The port features use to reach enabled tenants, and the record of one enabled tenant.

Features (the admin API and its routes, alerts, the CRM card, the job handlers) take a
:class:`Tenants`, not the runtime: they see which tenants this process has enabled and each
one's :class:`TenantContext`, and nothing of how the runtime keeps them (its lock, its store
and runner caches, its worker thread). The runtime implements the port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from .errors import ConfigError

if TYPE_CHECKING:
    from .client import HubSpotClient
    from .host import HostServices
    from .settings import Settings
    from .store import Job, SqlStateStore

__all__ = ["EnableReport", "Step", "TenantContext", "Tenants", "check_portal_free"]


@attrs.frozen
class TenantContext:
    """One enabled tenant as every feature and engine sees it.

    Frozen: new settings make a new context (the runtime swaps it whole), so a job that took
    a context runs to its end with one consistent set of settings, store and client.
    """

    tenant_id: str
    settings: Settings
    host: HostServices
    store_url: str
    store: SqlStateStore
    client: HubSpotClient

    @property
    def portal_id(self) -> str:
        return self.settings.portal_id


class Tenants(Protocol):
    """The enabled tenants of this process."""

    #: The time every feature reads (tests swap it for a manual clock).
    clock: Callable[[], datetime]
    #: This process's identity in the job queue's leases.
    worker_id: str
    #: The lease of every job this process claims.
    job_lease: timedelta

    def is_enabled(self, tenant_id: str) -> bool:
        """Whether this process has the tenant enabled."""
        ...

    def tenant(self, tenant_id: str) -> TenantContext:
        """The context of an enabled tenant; ``ConfigError`` naming it when it is not."""
        ...

    def enabled(self) -> list[TenantContext]:
        """Every enabled tenant, at the moment of the call."""
        ...

    def store_for(self, tenant_id: str) -> SqlStateStore:
        """The store of an enabled tenant."""
        ...

    def report_failed(self, job: Job) -> None:
        """Tell ``hubspot_sync_step_failed``'s listeners of a job the queue has just failed."""
        ...


@attrs.frozen
class Step:
    """One thing enabling did (or could not do yet), for the admin to read."""

    name: str
    ok: bool
    detail: str


@attrs.frozen
class EnableReport:
    """What ``ambac_plugin_enabled`` did for a tenant."""

    plugin_id: str
    tenant_id: str
    steps: tuple[Step, ...]
    checks: tuple[Any, ...] = ()  # the connection test's CheckResults, one per check

    @property
    def ok(self) -> bool:
        """Whether every step succeeded."""
        return all(step.ok for step in self.steps)


def check_portal_free(enabled: Iterable[TenantContext], tenant_id: str, portal_id: str) -> None:
    """Refuse ``portal_id`` for ``tenant_id`` when another tenant enabled in this process is
    connected to it: both would sync the same deals and write their own orders onto them.

    :raises ConfigError: naming ``portal_id`` and the other tenant.
    """
    for other in enabled:
        if other.tenant_id != tenant_id and other.portal_id == portal_id:
            raise ConfigError.from_problems([("portal_id", (
                f"HubSpot portal {portal_id} is already connected to tenant {other.tenant_id}: one "
                "portal serves one tenant (both would write their orders onto the same deals); "
                "connect this tenant's own portal, or disable the other tenant's HubSpot plugin first"))])
