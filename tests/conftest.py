"""Fixtures shared by the whole suite: a fresh plugin manager per test, loaded as a host would."""

from __future__ import annotations

from collections.abc import Iterator

import pluggy
import pytest

from ambac_hubspot_plugin import host as contract
from ambac_hubspot_plugin import plugin as plugin_module


def make_plugin_manager(*extra: object) -> pluggy.PluginManager:
    """Build a plugin manager the way the host contract says, with the HubSpot plugin in it."""
    pm = pluggy.PluginManager(contract.PROJECT_NAME)
    pm.add_hookspecs(contract)
    pm.hook.ambac_add_hookspecs.call_historic(kwargs={"plugin_manager": pm})
    pm.register(plugin_module, name=plugin_module.PLUGIN_ID)
    for obj in extra:
        pm.register(obj)
    pm.check_pending()
    return pm


@pytest.fixture
def plugin_manager() -> Iterator[pluggy.PluginManager]:
    """A fresh manager with the contract, the plugin and its runtime registered."""
    pm = make_plugin_manager()
    yield pm
    runtime = pm.get_plugin(plugin_module.RUNTIME_NAME)
    if runtime is not None and runtime._runtime is not None:
        runtime._runtime.close()
