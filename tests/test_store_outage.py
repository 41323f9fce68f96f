"""Host events during a store outage: the hook raises a clear error, and nothing is lost.

The store is made unreachable for real: PostgreSQL behind a loopback proxy the test cuts (the
server itself keeps running), or the SQLite file moved away. HubSpot is the sandbox, reached
through the real SDK.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from ambac_hubspot_plugin._reconcile import CHECKPOINT
from ambac_hubspot_plugin.errors import HostEventNotRecordedError, StoreError
from ambac_hubspot_plugin.host import OrderStatus, Shipment
from ambac_hubspot_plugin.sandbox import Sandbox

from ._proxy import TcpProxy
from ._store_support import PG_HOST, PG_PORT, pg_schema_url
from ._world import PluginWorld, open_world, plugin_settings

BATCH_UPDATE = "/crm/objects/2026-09/deals/batch/update"
NOTES = "/crm/objects/2026-09/notes/batch/create"  # status notes go out in batches of 100


class SqliteOutage:
    """Makes the SQLite store file unreachable: moved away, a directory in its place."""

    def __init__(self, path: Path, store: Callable[[], Any]) -> None:
        self.path, self.store = path, store

    def cut(self) -> None:
        # Open connections would keep the moved file: drop them so the next one reopens the path.
        self.store().engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                shutil.move(source, f"{source}.away")
        self.path.mkdir()

    def restore(self) -> None:
        self.path.rmdir()
        for suffix in ("", "-wal", "-shm"):
            aside = Path(f"{self.path}{suffix}.away")
            if aside.exists():
                shutil.move(aside, f"{self.path}{suffix}")


@attrs.define
class World(PluginWorld):
    outage: Any = None

    def linked_orders(self, count: int) -> list[tuple[str, Any]]:
        """Deals won, synced into orders and pushed: ``[(deal id, order)]``."""
        deals = [self.deal(dealname=f"Deal {i}") for i in range(count)]
        assert self.sync().created == count
        self.runtime.drain()
        return [(d, self.order_for(d)) for d in deals]

    def calls(self, path: str) -> int:
        return sum(1 for r in self.hubspot.requests if r.path == path and r.status < 300)

    def status_of(self, deal_id: str) -> str:
        return str(self.hubspot.get_object("deals", deal_id).get("ambac_order_status"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """Sandbox + reference host + plugin with notes on, its store on SQLite or on PostgreSQL
    reached through a proxy the test can cut."""
    extra: dict[str, Any] = {}
    proxy = None
    with contextlib.ExitStack() as cleanup:
        if request.param == "postgres":
            proxy = TcpProxy((PG_HOST, PG_PORT))
            cleanup.callback(proxy.close)
            extra["store_url"] = cleanup.enter_context(
                pg_schema_url("t_outage", port=proxy.port, query="&connect_timeout=2"))
        yield from _world(tmp_path, extra, proxy)


def _world(tmp_path: Path, extra: dict[str, Any], proxy: TcpProxy | None) -> Iterator[World]:
    def settings(hubspot: Sandbox) -> dict[str, Any]:
        return plugin_settings(hubspot, public_base_url="https://tracker.example.com",
                               outbound={"notes_on_status_change": True}, **extra)

    # close_runtime: the host does not own the plugin's store connections.
    with open_world(tmp_path, World, settings=settings, close_runtime=True) as world:
        if proxy is not None:
            world.outage = proxy
        else:
            world.outage = SqliteOutage(world.host.plugin_data_dir("hubspot") / "hubspot.sqlite3",
                                        lambda: world.store)
        yield world


def test_status_changes_during_a_store_outage_reach_hubspot_once_it_is_back(world):
    """Ten status changes committed while the store is unreachable: each hook raises
    HostEventNotRecordedError, the host keeps them, and the first tick after the store is back
    pushes all ten to their deals, with one note each and nothing pushed twice."""
    pairs = world.linked_orders(10)
    world.runtime.tick()  # the periodic reconciliation has just run: only the outage calls it now
    world.hubspot.clear_requests()
    world.outage.cut()
    for _deal, order in pairs:
        with pytest.raises(HostEventNotRecordedError) as info:
            world.host.set_order_status(world.tenant, order.id, OrderStatus.COMPLETED)
        assert isinstance(info.value, StoreError)
        assert (info.value.record_id, info.value.event, info.value.recovered) == (order.id, "status_changed", True)
        # No chained driver exception: a host's log.exception would print its unscrubbed text.
        assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(HostEventNotRecordedError) as info:
        world.host.ship_order(world.tenant, pairs[0][1].id, Shipment("UPS", "1Z", "", date(2026, 12, 1)))
    assert info.value.recovered is False, "a shipment is data the plugin cannot find by itself"
    assert {o.order_status for o in world.services.get_orders([o.id for _d, o in pairs])} == {
        OrderStatus.COMPLETED}, "the host kept every change"
    assert world.calls(BATCH_UPDATE) == 0

    world.outage.restore()
    world.runtime.tick()
    assert {world.status_of(deal) for deal, _o in pairs} == {"COMPLETED"}
    assert world.calls(BATCH_UPDATE) == 1
    assert world.calls(NOTES) == 1 and len(world.hubspot.portal.objects["notes"]) == 10
    bodies = [world.hubspot.get_object("notes", n)["hs_note_body"] for n in world.hubspot.portal.objects["notes"]]
    assert all("from Pending to Completed" in body for body in bodies)
    assert world.store.depths(world.tenant) == {}

    assert world.runtime.reconcile_outbound(world.tenant) == 0, "nothing is pushed twice"
    world.runtime.drain()
    assert (world.calls(BATCH_UPDATE), world.calls(NOTES)) == (1, 1)
    assert len(world.hubspot.portal.objects["notes"]) == 10


def test_a_change_no_hook_reported_is_pushed_by_the_periodic_reconciliation(world):
    """A status change the plugin never heard of (another process's hook failed) reaches the
    deal at the first reconciliation after sync_interval_seconds, not before."""
    ((deal, order),) = world.linked_orders(1)
    world.runtime.tick()
    world.services.update_order(order.id, {"order_status": OrderStatus.ON_HOLD})  # fires no hook
    world.runtime.tick()
    assert world.status_of(deal) == "PENDING", "the interval has not passed yet"
    past = datetime.now(UTC) - timedelta(seconds=world.runtime.settings_for(world.tenant).sync_interval_seconds + 1)
    world.store.set_checkpoint(world.tenant, str(world.hubspot.portal_id), CHECKPOINT, past.isoformat())
    world.runtime.tick()
    assert world.status_of(deal) == "ON_HOLD"
    assert world.calls(NOTES) == 1
    assert world.runtime.reconcile_outbound(world.tenant) == 0


def test_orders_with_a_queued_push_are_left_to_it(world):
    """Reconciliation queues nothing for an order whose push is waiting: that job pushes the
    current state, so the change goes out once."""
    ((_deal, order),) = world.linked_orders(1)
    world.host.set_order_status(world.tenant, order.id, OrderStatus.IN_PROGRESS)
    assert world.runtime.reconcile_outbound(world.tenant) == 0
    assert list(world.store.depths(world.tenant).values()) == [1]


def test_an_old_dead_letter_does_not_keep_a_lost_change_from_hubspot(world):
    """A status change lost in an outage reaches its deal even when the order has an old
    dead-lettered push; it goes out as the order's state, without a second note."""
    from ambac_hubspot_plugin._job_kinds import host_event_job

    ((deal, order),) = world.linked_orders(1)
    world.runtime.tick()
    kind, payload, _key = host_event_job("order", order.id, "updated", {"changed_fields": ["name"]})
    world.store.enqueue(world.tenant, kind, payload, max_attempts=1)
    [job] = world.store.claim("test", kinds=[kind])
    world.store.fail(job.id, "test", "HubSpot was down for good")
    world.outage.cut()
    with pytest.raises(HostEventNotRecordedError):
        world.host.set_order_status(world.tenant, order.id, OrderStatus.COMPLETED)
    world.outage.restore()
    world.hubspot.clear_requests()
    assert world.runtime.reconcile_outbound(world.tenant) == 1
    world.runtime.drain()
    assert world.status_of(deal) == "COMPLETED"
    assert world.calls(NOTES) == 0
    assert len(world.store.dead_letters(world.tenant)) == 1, "the dead letter waits for its replay"


def test_a_status_the_sync_took_from_the_deal_reaches_its_property_without_a_note(world):
    """An order status changed by the sync (the deal moved stage) is no host change: the
    reconciliation writes it to the deal's order status property, with neither note nor
    stage move."""
    world.configure(stage_status_map={"closedwon": "COMPLETED", "contractsent": "IN_PROGRESS"})
    ((deal, order),) = world.linked_orders(1)
    world.runtime.tick()
    assert world.status_of(deal) == "COMPLETED"
    world.hubspot.update_object("deals", deal, {"dealstage": "contractsent"})
    world.sync()
    assert world.services.get_order(order.id).order_status is OrderStatus.IN_PROGRESS
    world.hubspot.clear_requests()
    assert world.runtime.reconcile_outbound(world.tenant) == 1
    world.runtime.drain()
    assert world.status_of(deal) == "IN_PROGRESS"
    assert world.hubspot.get_object("deals", deal)["dealstage"] == "contractsent"
    assert (world.calls(BATCH_UPDATE), world.calls(NOTES)) == (1, 0)


@pytest.mark.parametrize(("url", "forms"), [
    ("postgresql+psycopg://alice:s3cretpw@127.0.0.1:1/test", ["s3cretpw"]),
    ("postgresql+psycopg://alice@127.0.0.1:1/test?password=s3cretpw", ["s3cretpw"]),
    ("postgresql+psycopg://alice:s3cret%40pw@127.0.0.1:1/test", ["s3cret@pw", "s3cret%40pw"]),
])
def test_a_store_failure_cause_never_quotes_the_password(url, forms):
    """The first line of a driver error, as an event hook's error carries it, hides the store
    password in whatever form the URL holds it, as written or decoded."""
    from ambac_hubspot_plugin._secrets import failure_cause

    said = failure_cause(RuntimeError(f"connection failed for {' and '.join(forms)}"), url)
    assert not any(form in said for form in forms), said
