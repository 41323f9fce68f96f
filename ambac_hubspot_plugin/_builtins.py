"""The built-in strategies, registered through the same hooks third-party packages use.

The strategy modules are imported inside the hooks: registering the plugin must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .host import hookimpl

if TYPE_CHECKING:
    from .hookspecs import Register


@hookimpl(trylast=True)
def hubspot_register_mapping_strategies(register: Register) -> None:
    """Register ``default`` and ``configurable``."""
    from .mapping import ConfigurableMapping, DefaultMapping

    register("default", DefaultMapping)
    register("configurable", ConfigurableMapping)


@hookimpl(trylast=True)
def hubspot_register_conflict_strategies(register: Register) -> None:
    """Register ``hubspot_wins``, ``tracker_wins``, ``newest_wins`` and ``manual``."""
    from .conflicts import HubSpotWins, Manual, NewestWins, TrackerWins

    register("hubspot_wins", HubSpotWins)
    register("tracker_wins", TrackerWins)
    register("newest_wins", NewestWins)
    register("manual", Manual)
