"""Building a tenant's sync engines: a mixin of the runtime (the composition root).

Both engines are built from one tenant context (:class:`~._engine_parts.EngineParts`), with the
mapping and conflict strategies its settings choose and the portal's pipelines (cached a few
minutes). Before the first engine of a context is built, the runtime checks that its
credentials belong to the account named by ``portal_id``: every link, external id and checkpoint
is filed under that id, so a typo there would file a whole sync under a portal that is not the
one read, and correcting it later would make every order again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._checks import doc
from ._engine_parts import EngineParts, PushOptions
from .errors import HubSpotAuthError, HubSpotIntegrationError, PortalMismatchError

if TYPE_CHECKING:
    from ._facade import PluginHooks
    from ._inbound import InboundSync
    from ._inbound_records import Triggers
    from ._outbound import OutboundPush
    from ._strategies import Strategies
    from ._tenants import TenantContext
    from .client import HubSpotClient

__all__ = ["PIPELINES_TTL", "EngineBuilder"]

log = logging.getLogger(__name__)

PIPELINES_TTL = timedelta(minutes=5)


class EngineBuilder:
    """The runtime's engine factory; needs ``tenant()``, ``clock``, ``hooks``, ``strategies``,
    ``_lock``, ``_pipelines`` and ``_portal_checked``."""

    clock: Callable[[], datetime]
    hooks: PluginHooks
    strategies: Strategies
    _lock: threading.RLock
    _pipelines: dict[str, tuple[datetime, Any]]
    #: tenant id -> the client whose credentials were found to be portal_id's (or could not
    #: be checked): checked again when new settings bring a new client.
    _portal_checked: dict[str, HubSpotClient]

    def tenant(self, tenant_id: str) -> TenantContext:
        raise NotImplementedError

    def inbound(self, tenant_id: str) -> InboundSync:
        """Build the inbound engine of an enabled tenant (reads the portal's pipelines)."""
        from zoneinfo import ZoneInfo

        from ._inbound import InboundSync
        from ._inbound_records import Triggers

        tenant = self.tenant(tenant_id)
        settings, parts = tenant.settings, self._parts(tenant)

        def triggers_from(pipelines: Any) -> Triggers:
            return Triggers.from_settings(pipelines, settings.trigger_stages, settings.stage_status_map)

        def reload_triggers() -> Triggers:
            with self._lock:
                self._pipelines.pop(tenant_id, None)
            return triggers_from(self._pipelines_of(tenant))

        return InboundSync(
            parts, conflicts=self.strategies.conflicts(settings), triggers=triggers_from(self._pipelines_of(tenant)),
            timezone=ZoneInfo(settings.portal_timezone),
            overlap=timedelta(seconds=settings.sync_overlap_seconds), hooks=self.hooks,
            reload_triggers=reload_triggers, read_ahead=settings.read_ahead)

    def outbound(self, tenant_id: str) -> OutboundPush:
        """Build the outbound push engine of an enabled tenant."""
        from ._outbound import OutboundPush

        tenant = self.tenant(tenant_id)
        return OutboundPush(self._parts(tenant), PushOptions.of(tenant.settings))

    def _parts(self, tenant: TenantContext) -> EngineParts:
        """What both engines of ``tenant`` are built from, with the strategy its settings choose;
        :class:`~.errors.PortalMismatchError` when its credentials are another account's."""
        self._check_portal(tenant)
        return EngineParts(tenant.tenant_id, tenant.portal_id, tenant.host, tenant.store,
                           tenant.client, self.strategies.mapping(tenant.settings), self.clock)

    def _check_portal(self, tenant: TenantContext) -> None:
        """Once per client: are its credentials ``portal_id``'s? When they are another
        account's, a tenant that never synced (the typo of a new setup) is refused; one that has
        synced under this ``portal_id`` before (with a version that did not check) goes on, with
        a warning, as changing the id would make its orders again. A HubSpot that refuses to say
        (403) leaves the id unchecked; one that cannot answer now is asked again next time."""
        with self._lock:
            if self._portal_checked.get(tenant.tenant_id) is tenant.client:
                return
        try:
            actual = tenant.client.account_portal_id()
        except HubSpotAuthError as exc:
            log.warning("tenant %s: HubSpot did not say which account the credentials belong to "
                        "(%s); portal_id %s is not checked", tenant.tenant_id, type(exc).__name__,
                        tenant.portal_id)
        except HubSpotIntegrationError as exc:
            log.info("tenant %s: could not check portal_id now (%s)", tenant.tenant_id, type(exc).__name__)
            return
        else:
            if actual != tenant.portal_id:
                if not tenant.store.links_page(tenant.tenant_id, tenant.portal_id, "deal", limit=1):
                    raise PortalMismatchError(tenant.portal_id, actual)
                log.warning("tenant %s: the credentials belong to HubSpot account %s, not to portal_id %s, "
                            "under which it has synced before; it goes on under portal_id (see the "
                            "'portal' check in %s)", tenant.tenant_id, actual, tenant.portal_id,
                            doc("troubleshooting.md"))
        with self._lock:
            self._portal_checked[tenant.tenant_id] = tenant.client

    def _pipelines_of(self, tenant: TenantContext) -> Any:
        """The portal's pipelines, read at most every few minutes (webhook jobs need them too)."""
        now = self.clock()
        with self._lock:
            cached = self._pipelines.get(tenant.tenant_id)
        if cached is not None and now - cached[0] < PIPELINES_TTL:
            return cached[1]
        pipelines = tenant.client.get_pipelines()
        with self._lock:
            self._pipelines[tenant.tenant_id] = (now, pipelines)
        return pipelines
