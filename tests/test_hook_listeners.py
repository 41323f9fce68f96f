"""Listeners of ``hubspot_order_created`` and ``hubspot_sync_step_failed`` hear what
docs/hooks.md says they hear, as pluggy would call them, and a failing one is in the tenant's
integration log, not only in Python's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ambac_hubspot_plugin._facade import PluginHooks
from ambac_hubspot_plugin._job_kinds import RETRY_KIND
from ambac_hubspot_plugin._retry import RetryPolicy
from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.events import SyncStepFailed
from ambac_hubspot_plugin.host import OrderStatus, hookimpl
from ambac_hubspot_plugin.store._schema import jobs as jobs_table
from tests.conftest import make_plugin_manager

from ._world import PluginWorld, open_world


class Listener:
    """Records what it hears, with what the store held when it heard it."""

    def __init__(self) -> None:
        self.failed: list[tuple[SyncStepFailed, list[Any]]] = []
        self.world: PluginWorld | None = None

    @hookimpl
    def hubspot_sync_step_failed(self, event: SyncStepFailed) -> None:
        assert self.world is not None
        jobs = self.world.store.queued(self.world.tenant, (RETRY_KIND,))
        self.failed.append((event, jobs))


class Created:
    """Records each order it hears of, with the claims still held in the store then."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str, int]] = []
        self.world: PluginWorld | None = None

    @hookimpl
    def hubspot_order_created(self, event: Any) -> None:
        assert self.world is not None
        with self.world.store.engine.connect() as conn:
            held = conn.execute(sa.text("SELECT count(*) FROM hubspot_claims")).scalar_one()
        self.heard.append((event.deal_id, event.trigger, held))


class TakesNothing:
    """A valid pluggy implementation may take fewer arguments than the specification gives."""

    calls = 0

    @hookimpl
    def hubspot_order_created(self) -> None:
        TakesNothing.calls += 1


class Raising:
    @hookimpl
    def hubspot_order_created(self, event: object) -> None:
        raise RuntimeError("crm-mirror unreachable")


@pytest.fixture
def listened(tmp_path: Path) -> Iterator[tuple[PluginWorld, Listener]]:
    listener = Listener()
    with open_world(tmp_path, plugins=[listener, TakesNothing(), Raising()]) as world:
        listener.world = world
        yield world, listener


def test_a_deal_that_fails_is_told_after_its_log_line_and_retry_job_are_stored(listened):
    world, listener = listened
    deal = world.deal(dealname="")  # an empty name cannot become an order
    assert world.sync().failed == 1
    ((event, jobs),) = listener.failed
    assert (event.tenant_id, event.step, event.record, event.attempt, event.will_retry) == (
        world.tenant, RETRY_KIND, f"deal:{deal}", 1, True)
    assert "name" in event.error
    assert [job.payload for job in jobs] == [{"deal_id": deal}], "the retry job was stored first"


def test_a_job_the_queue_fails_is_told_with_its_attempt_and_whether_it_will_be_retried(listened):
    """A retried deal failing again, and an order's push failing until its dead letter: each
    failure the queue records reaches the listeners, the last with ``will_retry`` False."""
    world, listener = listened
    world.runtime.client_overrides = {"retry": RetryPolicy(max_attempts=1)}
    world.configure()
    deal = world.deal(dealname="")
    world.sync()
    world.runtime.drain()  # the deal's retry job fails again: the queue retries it later
    retried = [event for event, _jobs in listener.failed][1:]
    assert [(e.step, e.record, e.attempt, e.will_retry) for e in retried] == [
        (RETRY_KIND, f"deal:{deal}", 1, True)]
    linked = world.deal(dealname="Brackets")
    assert world.sync().created == 1
    order = world.order_for(linked)
    world.runtime.drain()
    listener.failed.clear()
    world.hubspot.faults.fail_next(10_000, status=503, path_prefix="/crm/objects/2026-09/deals/batch")
    world.host.set_order_status(world.tenant, order.id, OrderStatus.IN_PROGRESS)
    for _ in range(25):
        _make_due(world)
        world.runtime.drain()
    pushes = [event for event, _jobs in listener.failed if event.step == "outbound.push"]
    assert pushes and all(e.record == f"order:{order.id}" and "503" in e.error for e in pushes)
    assert [e.will_retry for e in pushes][-1] is False and all(e.will_retry for e in pushes[:-1])
    assert [e.attempt for e in pushes] == list(range(1, len(pushes) + 1))
    (dead,) = [job for job in world.store.dead_letters(world.tenant) if job.kind != RETRY_KIND]
    assert dead.attempts == pushes[-1].attempt


def _make_due(world: PluginWorld) -> None:
    """Move every backed-off job's retry time to now (what hours of waiting would do)."""
    with world.store.engine.begin() as conn:
        conn.execute(sa.update(jobs_table).values(run_after=datetime.now(UTC) - timedelta(seconds=1)))


def test_listeners_are_called_as_pluggy_calls_them_and_failures_reach_the_integration_log(listened):
    world, _listener = listened
    before = TakesNothing.calls
    deal = world.deal(dealname="Brackets")
    assert world.sync().created == 1
    assert TakesNothing.calls == before + 1
    lines = [e.message for e in world.store.read_log(world.tenant, record=f"deal:{deal}").entries if e.what == "hooks"]
    assert len(lines) == 1, "one line, on the deal's record"
    assert "hubspot_order_created" in lines[0] and "crm-mirror unreachable" in lines[0]
    assert f"{Raising.__module__}.Raising" in lines[0], "names the listener's package, not its id()"


class BrokenPackage:
    """Its registration hook fails (an import inside it is missing)."""

    @hookimpl
    def hubspot_register_mapping_strategies(self, register: object) -> None:
        raise ImportError("No module named 'acme_sdk'")


def test_a_failing_registration_hook_is_a_config_error_naming_the_package():
    pm = make_plugin_manager()
    pm.register(BrokenPackage(), name="acme-broken")
    with pytest.raises(ConfigError) as raised:
        PluginHooks(pm).mapping_strategies()
    assert "acme-broken" in str(raised.value) and "acme_sdk" in str(raised.value)


@pytest.mark.parametrize("how", ["manual", "incremental"])
def test_an_order_is_told_whichever_path_made_it_once_its_claims_are_given_up(tmp_path, how):
    """The review step's "Create" (trigger ``manual``) tells listeners as a sync does, and both
    only once the claims on its new company and contact are given up (a listener calling back
    into the plugin would wait for them)."""
    created = Created()
    with open_world(tmp_path, plugins=[created]) as world:
        created.world = world
        company = world.company(name="Told Co", domain="told.example")
        contact = world.contact(email="buyer@told.example")
        deal = world.deal(companies=[company], contacts=[contact])
        if how == "manual":
            world.runtime.create_order_from_deal(world.tenant, deal)
        else:
            assert world.sync().created == 1
    assert created.heard == [(deal, how, 0)]


class StoreOut(OSError):
    """The store went away (the database's connection is lost)."""


def test_listeners_hear_of_the_orders_made_even_when_giving_up_the_claims_fails(tmp_path, monkeypatch):
    """The store fails as the chunk gives up its claims (they expire on their own): the orders
    and links are stored, and are never made again to tell of them, so listeners hear now."""
    created = Created()
    with open_world(tmp_path, plugins=[created]) as world:
        created.world = world
        deal = world.deal(companies=[world.company(name="Gone Co", domain="gone.example")])
        store = world.store

        def store_out(*args: Any, **kwargs: Any) -> int:
            raise StoreOut

        monkeypatch.setattr(store, "release_claims", store_out)
        with pytest.raises(StoreOut):
            world.sync()
        assert world.order_for(deal) is not None
    assert [(deal_id, trigger) for deal_id, trigger, _held in created.heard] == [(deal, "incremental")]
