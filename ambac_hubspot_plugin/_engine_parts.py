"""What the sync engines of one tenant are built from, bundled once: the dependencies the
inbound and outbound engines (and their linker and conflict resolver) share, and the few
settings the outbound push reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .client import HubSpotClient
    from .host import HostServices, OrderStatus
    from .mapping import MappingStrategy
    from .settings import Directions, OutboundSettings, Settings
    from .store import SyncStore

__all__ = ["EngineParts", "PushOptions"]


@attrs.frozen
class EngineParts:
    """One tenant's host, store, HubSpot client, mapping strategy and clock."""

    tenant_id: str
    portal_id: str
    host: HostServices
    store: SyncStore
    client: HubSpotClient
    mapping: MappingStrategy
    clock: Callable[[], datetime]


@attrs.frozen
class PushOptions:
    """The settings the outbound push and the conflict resolver read, not the whole model."""

    directions: Directions
    outbound: OutboundSettings
    public_base_url: str | None
    portal_timezone: str
    stage_status_map: Mapping[str, OrderStatus]
    status_stage_map: Mapping[str, Mapping[OrderStatus, str]]

    @classmethod
    def of(cls, settings: Settings) -> PushOptions:
        return cls(directions=settings.directions, outbound=settings.outbound,
                   public_base_url=settings.public_base_url,
                   portal_timezone=settings.portal_timezone,
                   stage_status_map=settings.stage_status_map,
                   status_stage_map=settings.status_stage_map)
