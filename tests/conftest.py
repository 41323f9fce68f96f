"""Fixtures shared by the whole suite: a fresh plugin manager per test, loaded as a host would;
a sandbox portal on a manual clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pluggy
import pytest

from ambac_hubspot_plugin import host as contract
from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox
from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV

from ._clock import ManualClock

# The suite runs the plugin against the bundled sandbox on loopback, as an operator allows it
# for tests; child processes inherit it. test_settings checks a process without it.
os.environ[ALLOW_LOCAL_SANDBOX_ENV] = "1"


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


@pytest.fixture
def clock() -> ManualClock:
    """The manual clock of the ``hs`` sandbox (modules with a clock of their own override it)."""
    return ManualClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))


@pytest.fixture
def hs(clock: ManualClock) -> Iterator[Sandbox]:
    """A sandbox portal without rate limits, on ``clock`` (modules override it where they need
    another: real time, a seeded portal, webhooks)."""
    with Sandbox(rate_limits=RateLimits.unlimited(), clock=clock) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test must stop every plugin worker it started: a leaked worker keeps running against
    stores later tests reuse or drop, and its errors land in other tests."""
    import threading
    import time

    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        leaked = [t.name for t in set(threading.enumerate()) - before
                  if t.name.startswith("hubspot-worker") and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"{request.node.nodeid} left the plugin's worker running: {leaked}"
