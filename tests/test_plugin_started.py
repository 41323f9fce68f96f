"""A host process taking up tenants enabled elsewhere (``ambac_plugin_started``), and events
for tenants a process does not know: recorded, raised, or (enabled nowhere) nothing to record."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.errors import TenantNotStartedError
from ambac_hubspot_plugin.host import OrderDraft, OrderStatus
from ambac_hubspot_plugin.reference_host import ReferenceHost

from ._world import PluginWorld, open_world

PUSH_LIMIT = 20.0  # seconds for the second process's worker to push one event


def _runtime(host: ReferenceHost):
    return host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime


def _linked_order(world: PluginWorld):
    """A won deal synced into an order, its first push done, nothing left due: ``(deal, order)``."""
    deal = world.deal(dealname="Brackets")
    assert world.sync().created == 1
    world.runtime.tick()  # the new order's push and the first reconciliation
    assert world.store.depths(world.tenant) == {}
    return deal, world.order_for(deal)


def _enabled_entries(store, tenant: int) -> int:
    return sum(1 for e in store.read_log(tenant, limit=500).entries if e.what == "plugin.enabled")


def test_hook_ambac_plugin_started_takes_up_a_tenant_with_no_hubspot_call(tmp_path: Path):
    """A second host process on the same data dir and store takes the enabled tenant up with
    zero HubSpot calls and no log entry; its worker then pushes the events it records."""
    with open_world(tmp_path) as world:
        deal, order = _linked_order(world)
        world.runtime.close()  # the first process stops: only the second one can push
        # The admin's saved settings run the plugin's own worker (the world enabled it without).
        world.host.change_settings(world.tenant, "hubspot",
                                   {**world.settings, "run_background_worker": True})
        world.hubspot.clear_requests()
        with ReferenceHost(world.host.data_dir) as second:
            runtime = _runtime(second)
            try:
                starts = second.start()
                assert [(s.tenant_id, s.plugin_id, s.error) for s in starts] == [
                    (world.tenant, "hubspot", None)]
                assert world.hubspot.requests == [], "taking a tenant up must not call HubSpot"
                assert runtime.is_enabled(world.tenant)
                store = runtime.store_for(world.tenant)
                assert _enabled_entries(store, world.tenant) == 1, "only the admin's enable logs"

                second.set_order_status(world.tenant, order.id, OrderStatus.COMPLETED)
                runtime.wake()  # the worker pushes now rather than at its next poll
                deadline = time.monotonic() + PUSH_LIMIT
                while world.hubspot.get_object("deals", deal).get("ambac_order_status") != OrderStatus.COMPLETED.value:
                    assert time.monotonic() < deadline, "the second process's worker did not push"
                    time.sleep(0.05)
                while store.depths(world.tenant):  # the job completes just after its deal update
                    assert time.monotonic() < deadline, f"the job was not completed: {store.depths(world.tenant)}"
                    time.sleep(0.05)
            finally:
                runtime.close()


def test_hook_ambac_plugin_started_refuses_bad_settings_naming_fields(tmp_path: Path):
    """Settings that no longer validate raise ConfigError naming the field; the tenant stays
    unknown in that process."""
    from ambac_hubspot_plugin.errors import ConfigError

    with open_world(tmp_path) as world, ReferenceHost(world.host.data_dir) as second:
        runtime = _runtime(second)
        try:
            with pytest.raises(ConfigError) as info:
                second.plugin_manager.hook.ambac_plugin_started(
                    host=second.services(world.tenant), tenant_id=world.tenant,
                    plugin_id="hubspot", settings={**world.settings, "sync_interval_seconds": 1})
            assert "sync_interval_seconds" in info.value.problems
            assert not runtime.is_enabled(world.tenant)
        finally:
            runtime.close()


def test_an_event_for_a_tenant_enabled_elsewhere_but_not_started_here_raises(tmp_path: Path):
    """An event hook in a process that never took the enabled tenant up raises an error naming
    the tenant and the hook to call; nothing is dropped silently, nothing is queued."""
    with open_world(tmp_path) as world:
        order = world.services.create_order(OrderDraft(name="Brackets"))
        with ReferenceHost(world.host.data_dir) as second:
            runtime = _runtime(second)
            try:
                with pytest.raises(TenantNotStartedError) as info:
                    second.plugin_manager.hook.ambac_order_status_changed(
                        host=second.services(world.tenant), order=order,
                        previous_status=OrderStatus.PENDING)
                assert (info.value.tenant_id, info.value.record_type, info.value.record_id,
                        info.value.event) == (world.tenant, "order", order.id, "status_changed")
                assert f"tenant {world.tenant}" in str(info.value)
                assert "ambac_plugin_started" in str(info.value)
                assert not runtime.is_enabled(world.tenant)
            finally:
                runtime.close()
        assert world.store.depths(world.tenant) == {}


def test_the_reference_host_starts_a_tenant_before_its_first_event_in_a_new_process(tmp_path: Path):
    """A second reference host that was never started takes the tenant up on its first event
    (no HubSpot call) and records the event, as a host does when a process first needs it."""
    with open_world(tmp_path) as world:
        order = world.services.create_order(OrderDraft(name="Brackets"))
        world.hubspot.clear_requests()
        with ReferenceHost(world.host.data_dir) as second:
            runtime = _runtime(second)
            try:
                second.set_order_status(world.tenant, order.id, OrderStatus.IN_PROGRESS)
                assert runtime.is_enabled(world.tenant)
                assert world.hubspot.requests == []
            finally:
                runtime.close()
        assert world.store.depths(world.tenant) == {("pending", "host.order.status_changed"): 1}


def test_an_event_for_a_tenant_enabled_nowhere_records_nothing(tmp_path: Path):
    """For a tenant that never had the plugin enabled, or had it disabled, an event hook
    returns without recording: there is nothing to push."""
    with open_world(tmp_path) as world:
        never = world.host.create_tenant("Never enabled")
        order = world.host.services(never).create_order(OrderDraft(name="Brackets"))
        assert world.host.plugin_manager.hook.ambac_order_status_changed(
            host=world.host.services(never), order=order, previous_status=OrderStatus.PENDING) == []
        assert world.runtime.record_host_event(world.host.services(never), never, "order", order.id,
                                               "status_changed", {}) is None
        world.host.disable_plugin(world.tenant, "hubspot")
        mine = world.services.create_order(OrderDraft(name="Flanges"))
        with ReferenceHost(world.host.data_dir) as second:
            try:
                second.set_order_status(world.tenant, mine.id, OrderStatus.IN_PROGRESS)
                assert not _runtime(second).is_enabled(world.tenant)
            finally:
                _runtime(second).close()


def test_hook_ambac_plugin_stopped_forgets_the_tenant_in_this_process_only(tmp_path: Path):
    """A process told of a disable elsewhere (``ambac_plugin_stopped``) forgets the tenant: it
    no longer records the tenant's events as its own, writes no log entry, and leaves the store
    binding to the process that disables; the first process is untouched."""
    with open_world(tmp_path) as world:
        _deal, order = _linked_order(world)
        with ReferenceHost(world.host.data_dir) as second:
            runtime = _runtime(second)
            try:
                second.start()
                assert runtime.is_enabled(world.tenant)
                store = runtime.store_for(world.tenant)
                entries = len(store.read_log(world.tenant, limit=500).entries)
                services = second.services(world.tenant)
                for _ in range(2):  # a second call is harmless
                    second.plugin_manager.hook.ambac_plugin_stopped(
                        host=services, tenant_id=world.tenant, plugin_id="hubspot")
                assert not runtime.is_enabled(world.tenant)
                assert len(store.read_log(world.tenant, limit=500).entries) == entries, "no log entry"
                assert world.runtime.is_enabled(world.tenant), "the other process keeps it"
                # Still enabled in the host (bound): an event here is refused, never dropped.
                with pytest.raises(TenantNotStartedError):
                    second.plugin_manager.hook.ambac_order_status_changed(
                        host=services, order=order, previous_status=OrderStatus.PENDING)
                # Another plugin's id is not ours: nothing happens.
                second.start()
                second.plugin_manager.hook.ambac_plugin_stopped(
                    host=services, tenant_id=world.tenant, plugin_id="other")
                assert runtime.is_enabled(world.tenant)
            finally:
                runtime.close()
