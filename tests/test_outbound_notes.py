"""Status-change notes and deal updates in batches: through the real SDK, the sandbox on
loopback and the real store, with refused inputs, lost answers and 429s."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa

from ambac_hubspot_plugin.host import OrderStatus
from ambac_hubspot_plugin.sandbox import Sandbox
from ambac_hubspot_plugin.store import JobState
from ambac_hubspot_plugin.store._schema import jobs as jobs_table

from ._world import PluginWorld, open_world, plugin_settings

BATCH_UPDATE = "/crm/objects/2026-09/deals/batch/update"
NOTES_BATCH = "/crm/objects/2026-09/notes/batch/create"
ONE_NOTE = "/crm/objects/2026-09/notes"
NOTE_TO_DEAL = 214


@attrs.define
class World(PluginWorld):
    """The plugin world, with helpers for reading the notes that reached HubSpot."""

    def linked_orders(self, count: int) -> list[tuple[str, object]]:
        """``count`` won deals synced into orders, the new orders pushed: ``[(deal id, order)]``."""
        deals = [self.deal(dealname=f"Deal {i}") for i in range(count)]
        assert self.runtime.run_sync(self.tenant).created == count
        self.runtime.drain()
        return [(d, self.order_for(d)) for d in deals]

    def notes_on(self, deal_id: str) -> list[str]:
        """The bodies of the notes associated with the deal (type 214), oldest first."""
        ids = sorted((i for i, types in self.hubspot.associations("deals", deal_id, "notes").items()),
                     key=int)
        for note_id in ids:
            assert NOTE_TO_DEAL in self.hubspot.associations("notes", note_id, "deals")[deal_id]
        return [self.hubspot.get_object("notes", i)["hs_note_body"] for i in ids]

    def all_notes(self) -> int:
        return len(self.hubspot.portal.objects["notes"])

    def calls(self, path: str) -> int:
        """Calls to ``path`` that got an answer (a lost one counts too: HubSpot did it)."""
        return sum(1 for r in self.hubspot.requests if r.path == path)

    def make_due(self) -> None:
        """Move every backed-off job's retry time to now (what waiting out the backoff does)."""
        with self.store.engine.begin() as conn:
            conn.execute(sa.update(jobs_table).values(run_after=datetime.now(UTC) - timedelta(seconds=1)))

    def errors(self) -> list[str]:
        """The last errors of the jobs still queued."""
        with self.store.engine.connect() as conn:
            return [row[0] for row in conn.execute(sa.select(jobs_table.c.last_error)) if row[0]]

    def set_statuses(self, pairs: list[tuple[str, object]], status: OrderStatus) -> None:
        for _deal, order in pairs:
            self.host.set_order_status(self.tenant, order.id, status)  # type: ignore[attr-defined]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Sandbox + reference host + enabled plugin with notes on status changes."""
    def settings(hubspot: Sandbox) -> dict:
        return plugin_settings(hubspot, outbound={"notes_on_status_change": True})

    with open_world(tmp_path, World, settings=settings) as world:
        yield world


def _order_number(order: object) -> str:
    return str(order.order_number)  # type: ignore[attr-defined]


def test_status_notes_for_many_deals_go_out_in_batch_creates_of_100(world):
    """250 status changes make ceil(250/100) = 3 batch creates and no single creates: one note
    per deal, associated with it, saying what changed."""
    pairs = world.linked_orders(250)
    world.hubspot.clear_requests()
    world.set_statuses(pairs, OrderStatus.COMPLETED)
    world.runtime.drain()
    assert world.calls(NOTES_BATCH) == math.ceil(250 / 100) and world.calls(ONE_NOTE) == 0
    assert world.calls(BATCH_UPDATE) == math.ceil(250 / 100)
    for deal, order in pairs:
        (body,) = world.notes_on(deal)
        assert body.startswith(f"Ambac Tracker: order {_order_number(order)} status changed "
                               "from Pending to Completed. (ref ")
    assert world.all_notes() == 250
    assert world.store.depths(world.tenant) == {}


def test_a_note_hubspot_refuses_fails_alone_and_the_others_are_written_once(world):
    """HubSpot refusing a whole batch for one bad note: the batch is split down to that note,
    the other notes are written once, its job retries and, once HubSpot takes it, lands once."""
    pairs = world.linked_orders(7)
    _bad_deal, bad_order = pairs[3]
    world.hubspot.faults.fail_next(1000, status=400, path_prefix=NOTES_BATCH,
                                   body_contains=f"order {_order_number(bad_order)} status")
    world.hubspot.clear_requests()
    world.set_statuses(pairs, OrderStatus.IN_PROGRESS)
    world.runtime.drain()
    assert [len(world.notes_on(d)) for d, _o in pairs] == [1, 1, 1, 0, 1, 1, 1]
    assert world.calls(NOTES_BATCH) <= 1 + 2 * math.ceil(math.log2(7)), "split, not one call per note"
    (error,) = world.errors()
    assert "400" in error
    world.hubspot.faults.clear()
    world.make_due()
    world.runtime.drain()
    assert [len(world.notes_on(d)) for d, _o in pairs] == [1] * 7
    assert world.store.depths(world.tenant) == {}


def test_a_lost_answer_after_hubspot_made_the_notes_does_not_make_them_twice(world):
    """The batch create is done but its answer never arrives (what a read timeout looks like):
    the jobs retry, find their notes by their marks, and write none again."""
    pairs = world.linked_orders(5)
    world.hubspot.faults.lose_answer_next(1, path_prefix=NOTES_BATCH)
    world.hubspot.clear_requests()
    world.set_statuses(pairs, OrderStatus.COMPLETED)
    world.runtime.drain()
    assert world.all_notes() == 5, "HubSpot made them"
    assert len(world.errors()) == 5 and all("may or may not" in e for e in world.errors())
    world.make_due()
    world.runtime.drain()
    assert world.store.depths(world.tenant) == {}
    assert world.calls(NOTES_BATCH) == 1, "the retry sent no second batch create"
    assert [len(world.notes_on(d)) for d, _o in pairs] == [1] * 5


def test_a_change_joining_a_job_after_a_lost_answer_gets_its_own_note(world):
    """After a lost answer, a further status change joins the waiting job: the retry keeps the
    note that was made and adds one from its status to the new one."""
    ((deal, order), (other, other_order)) = world.linked_orders(2)
    world.hubspot.faults.lose_answer_next(1, path_prefix=NOTES_BATCH)
    world.host.set_order_status(world.tenant, order.id, OrderStatus.COMPLETED)
    world.host.set_order_status(world.tenant, other_order.id, OrderStatus.COMPLETED)
    world.runtime.drain()
    world.host.set_order_status(world.tenant, order.id, OrderStatus.ON_HOLD)
    world.make_due()
    world.runtime.drain()
    assert world.store.depths(world.tenant) == {}
    first, second = world.notes_on(deal)
    assert "from Pending to Completed" in first and "from Completed to On hold" in second
    assert len(world.notes_on(other)) == 1
    marks = re.findall(r"([0-9a-f]{12}):([A-Z_]+)", second)
    assert marks and marks[0][0] in first, "the same job's mark, with the new status"


def test_a_429_on_the_notes_batch_is_retried_by_the_client_and_writes_each_note_once(world):
    """A 429 writes nothing, so the client sends the batch create again: every note once, no
    job left waiting."""
    pairs = world.linked_orders(3)
    world.hubspot.faults.rate_limit_next(1, retry_after=0.01, path_prefix=NOTES_BATCH)
    world.hubspot.clear_requests()
    world.set_statuses(pairs, OrderStatus.ON_HOLD)
    world.runtime.drain()
    assert world.store.depths(world.tenant) == {}
    assert world.calls(NOTES_BATCH) == 2 and world.hubspot.stats.rate_limited == 0
    assert [len(world.notes_on(d)) for d, _o in pairs] == [1] * 3


def test_a_deal_update_hubspot_refuses_fails_alone(world):
    """One deal whose update HubSpot refuses (the whole batch, as it does): the others are
    updated and noted, that one's job retries without a note, and lands later."""
    pairs = world.linked_orders(5)
    bad_deal, bad_order = pairs[1]
    world.hubspot.faults.fail_next(1000, status=400, path_prefix=BATCH_UPDATE,
                                   body_contains=f'"{_order_number(bad_order)}"')
    world.set_statuses(pairs, OrderStatus.COMPLETED)
    world.runtime.drain()
    statuses = [world.hubspot.get_object("deals", d)["ambac_order_status"] for d, _o in pairs]
    assert statuses == ["COMPLETED", "PENDING", "COMPLETED", "COMPLETED", "COMPLETED"]
    assert [len(world.notes_on(d)) for d, _o in pairs] == [1, 0, 1, 1, 1]
    depths = world.store.depths(world.tenant)
    assert depths == {(JobState.PENDING, "host.order.status_changed"): 1}
    world.hubspot.faults.clear()
    world.make_due()
    world.runtime.drain()
    assert world.hubspot.get_object("deals", bad_deal)["ambac_order_status"] == "COMPLETED"
    assert [len(world.notes_on(d)) for d, _o in pairs] == [1] * 5


def test_a_change_the_reconciliation_pushed_first_is_not_noted_again_by_its_late_event(world: World) -> None:
    """The host's event can reach the plugin after a reconciliation found the same change
    (the Django bridge's outbox is drained after the commit): one note, not two. A later real
    change is noted as usual."""
    ((deal, order),) = world.linked_orders(1)
    services = world.host.services(world.tenant)
    services.update_order(order.id, {"order_status": OrderStatus.IN_PROGRESS})  # no event yet
    assert world.runtime.reconcile_outbound(world.tenant) == 1
    world.runtime.drain()
    assert len(world.notes_on(deal)) == 1
    assert world.hubspot.get_object("deals", deal)["ambac_order_status"] == "IN_PROGRESS"

    world.host.plugin_manager.hook.ambac_order_status_changed(  # the event, arriving late
        host=services, order=services.get_order(order.id), previous_status=OrderStatus.PENDING)
    world.runtime.drain()
    assert len(world.notes_on(deal)) == 1, world.notes_on(deal)
    assert world.store.depths(world.tenant) == {}

    world.set_statuses([(deal, order)], OrderStatus.COMPLETED)
    world.runtime.drain()
    assert len(world.notes_on(deal)) == 2
