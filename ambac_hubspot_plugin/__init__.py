"""HubSpot CRM integration for Ambac Tracker, as a pluggy plugin.

The host contract lives in :mod:`ambac_hubspot_plugin.host`; the plugin's own extension hooks
in :mod:`ambac_hubspot_plugin.hookspecs` and their records in :mod:`ambac_hubspot_plugin.events`;
settings in :mod:`ambac_hubspot_plugin.settings`. Importing this package costs next to nothing:
the names below load on first use, and neither the HubSpot SDK nor the store is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from .errors import ConfigError, HubSpotError, HubSpotIntegrationError, StoreError
    from .events import OrderCreated, SyncStepFailed

__all__ = [
    "ConfigError",
    "HubSpotError",
    "HubSpotIntegrationError",
    "OrderCreated",
    "StoreError",
    "SyncStepFailed",
    "__version__",
]

_LAZY = {
    "ConfigError": "errors",
    "HubSpotError": "errors",
    "HubSpotIntegrationError": "errors",
    "StoreError": "errors",
    "OrderCreated": "events",
    "SyncStepFailed": "events",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
