"""A host with a clock of its own: the plugin takes every time it reads from it (use_clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox
from ambac_hubspot_plugin.store._schema import integration_log, webhook_events

from ._clock import ManualClock
from ._world import plugin_settings, serving

#: Years away from the system's time: a stamp taken from the system clock cannot pass for it.
FAR = datetime(2031, 7, 1, 12, 0, tzinfo=UTC)


def test_the_plugin_on_the_hosts_clock_stamps_checks_and_prunes_by_that_clock(tmp_path: Path):
    """With use_clock, a v3 delivery signed years from the system's time is accepted, its
    event and the log are stamped with the host's time, and pruning measures age by it."""
    clock = ManualClock(FAR)
    with Sandbox(rate_limits=RateLimits.unlimited(), clock=clock) as hubspot, \
            ReferenceHost(tmp_path / "host", clock=clock) as host, serving(host) as base:
        plugin = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME)
        plugin.use_clock(clock)
        tenant = host.create_tenant("Acme")
        host.enable_plugin(tenant, "hubspot", plugin_settings(
            hubspot, webhook_client_secret=hubspot.client_secret, public_base_url=base,
            retention={"webhook_events_days": 1, "log_days": 1}))
        hubspot.webhooks.set_target(f"{base}/integrations/hubspot/webhooks/{tenant}")
        hubspot.webhooks.subscribe("deal.propertyChange", "dealname")
        deal = hubspot.add_object("deals", {"dealname": "A", "pipeline": "default",
                                            "dealstage": "contractsent"})
        hubspot.update_object("deals", deal, {"dealname": "B"})
        assert hubspot.webhooks.flush(10)
        runtime = plugin.runtime
        runtime.drain()
        store = runtime.store_for(tenant)
        with store.engine.connect() as conn:
            events = conn.execute(sa.select(webhook_events.c.received_at,
                                            webhook_events.c.processed_at)).all()
            logged = conn.execute(sa.select(integration_log.c.created_at)).scalars().all()
        assert events, "the deliveries signed on the host's clock were accepted"
        assert {stamp for event in events for stamp in event} == {FAR}
        assert logged and set(logged) == {FAR}
        clock.advance(days=1, seconds=1)
        assert runtime.tick_counts() is not None  # the tick prunes by the host's time
        assert store.table_sizes(tenant)["webhook_events"] == 0
        assert store.table_sizes(tenant)["integration_log"] == 0


def test_use_clock_after_the_runtime_started_is_refused(tmp_path: Path):
    """A clock given once the runtime runs on another would split the plugin's time in two."""
    with ReferenceHost(tmp_path / "host") as host:
        plugin = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME)
        assert plugin.runtime.clock is not None
        with pytest.raises(RuntimeError, match="use_clock"):
            plugin.use_clock(ManualClock())
        clock = ManualClock(FAR - timedelta(days=1))
        fresh = ReferenceHost(tmp_path / "other")
        with fresh:
            other = fresh.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME)
            other.use_clock(clock)
            assert other.runtime.clock() == clock()
