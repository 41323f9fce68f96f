"""A sync reads the next chunk (its search page and associations) while it writes this one,
and a failure on either side stops both, with nothing lost: see ``_read_ahead``."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ambac_hubspot_plugin import _inbound
from ambac_hubspot_plugin._linking import Associations
from ambac_hubspot_plugin._read_ahead import STOP_WAIT, read_ahead
from ambac_hubspot_plugin.errors import HubSpotApiError
from ambac_hubspot_plugin.host import OrderDraft
from ambac_hubspot_plugin.reference_host._optional_services import ReferenceServices
from ambac_hubspot_plugin.settings import parse_settings

from ._world import PluginWorld, open_world

WAIT = 10.0  # seconds a test waits for the other thread before it calls the overlap missing


class Boom(Exception):
    pass


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("test-reader", "hubspot-read-ahead"))]


def _take_all(pairs: Iterator[tuple[int, int]], got: list[int]) -> None:
    for n, _ in pairs:
        got.append(n)


# ---- read_ahead itself --------------------------------------------------------------------------


def test_batches_come_in_order_with_what_was_prepared():
    assert list(read_ahead(iter(range(5)), lambda n: n * n, name="test-reader")) == [
        (0, 0), (1, 1), (2, 4), (3, 9), (4, 16)]
    assert list(read_ahead(iter(()), lambda n: n, name="test-reader")) == []


def test_the_next_batch_is_prepared_while_the_caller_holds_this_one():
    second_prepared = threading.Event()

    def prepare(n: int) -> int:
        if n == 1:
            second_prepared.set()
        return n

    for n, _ in read_ahead(iter(range(3)), prepare, name="test-reader"):
        if n == 0:  # one after the other, batch 1 would be prepared only after this returns
            assert second_prepared.wait(WAIT)


def test_an_error_in_the_batches_comes_after_every_batch_before_it():
    def batches() -> Iterator[int]:
        yield 0
        yield 1
        raise Boom("the search page failed")

    got: list[int] = []
    with pytest.raises(Boom):
        _take_all(read_ahead(batches(), lambda n: n, name="test-reader"), got)
    assert got == [0, 1]


def test_an_error_in_prepare_comes_where_its_batch_would():
    def prepare(n: int) -> int:
        if n == 2:
            raise Boom("the association read failed")
        return n

    got: list[int] = []
    with pytest.raises(Boom):
        _take_all(read_ahead(iter(range(5)), prepare, name="test-reader"), got)
    assert got == [0, 1]


def test_a_caller_that_stops_early_stops_the_reader():
    taken = itertools.count()

    def endless() -> Iterator[int]:
        while True:
            yield next(taken)

    def fail_at_the_first() -> None:
        for _ in read_ahead(endless(), lambda n: n, name="test-reader"):
            time.sleep(0.2)  # the reader fills the queue meanwhile
            raise Boom("the host went away")

    with pytest.raises(Boom):
        fail_at_the_first()
    assert _readers() == []  # joined before the error went on
    so_far = next(taken)
    time.sleep(0.3)
    assert next(taken) == so_far + 1  # nothing took a batch meanwhile
    assert so_far <= 2  # the one handed over and the one read ahead


# ---- in a sync ----------------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginWorld]:
    monkeypatch.setattr(_inbound, "CHUNK", 100)  # 250 deals make three chunks
    with open_world(tmp_path) as world:  # the default settings: read-ahead on
        assert "read_ahead" not in world.settings
        yield world


def _won_deals(world: PluginWorld, count: int = 250, tag: str = "b") -> list[str]:
    company = world.company(name=f"Shared Co {tag}", domain=f"{tag}.shared.example")
    return [world.deal(dealname=f"Won {tag}{i:03d}", companies=[company],
                       contacts=[world.contact(email=f"{tag}{i}@shared.example")] if i % 10 == 0 else [])
            for i in range(count)]


def _association_reads(world: PluginWorld) -> int:
    return sum(1 for r in world.hubspot.requests if "/associations/" in r.path and r.method == "POST")


def _on_first_order(monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    """Run ``action()`` when the host is asked for its first order, before making it."""
    create_order = ReferenceServices.create_order
    first = threading.Event()

    def create(self: ReferenceServices, draft: OrderDraft) -> Any:
        if not first.is_set():
            first.set()
            action()
        return create_order(self, draft)

    monkeypatch.setattr(ReferenceServices, "create_order", create)


def test_a_sync_reads_the_next_chunks_associations_while_it_writes_this_one(world, monkeypatch):
    deals = _won_deals(world)
    seen: list[int] = []

    def wait_for_the_next_chunk() -> None:  # chunk 1's 2 association reads, then chunk 2's
        deadline = time.monotonic() + WAIT
        while _association_reads(world) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(_association_reads(world))

    world.hubspot.clear_requests()
    _on_first_order(monkeypatch, wait_for_the_next_chunk)
    result = world.sync()

    assert seen[0] >= 4, "chunk 2's associations were not read while chunk 1 was written"
    assert (result.created, result.failed) == (len(deals), 0)
    assert len({world.order_for(deal).id for deal in deals}) == len(deals)
    assert _association_reads(world) == 6  # two per chunk: read ahead, never twice
    assert _readers() == []


def test_it_is_on_by_default_and_the_settings_turn_it_off(world, monkeypatch):
    assert parse_settings({"portal_id": "1", "credentials": {"kind": "private_app", "access_token": "x"}}
                          ).read_ahead is True
    seen: list[frozenset[str]] = []  # the readers alive at each order's creation
    create_order = ReferenceServices.create_order

    def create(self: ReferenceServices, draft: OrderDraft) -> Any:
        seen.append(frozenset(t.name for t in _readers()))
        return create_order(self, draft)

    monkeypatch.setattr(ReferenceServices, "create_order", create)
    deals = _won_deals(world, 150)
    assert world.sync().created == len(deals)
    assert frozenset({f"hubspot-read-ahead-{world.tenant}"}) in seen  # (gone once the last chunk is read)

    world.configure(read_ahead=False)
    seen.clear()
    more = _won_deals(world, 150, tag="c")
    assert world.sync().created == len(more)
    assert set(seen) == {frozenset()}


def test_a_search_page_that_fails_fails_the_run_after_the_chunks_before_it(world):
    deals = _won_deals(world)
    # The second search page is refused: it is anchored on the first page's last deal (keyset
    # paging), so its body holds that deal's modification time in milliseconds.
    last = world.hubspot.get_object("deals", deals[199])["hs_lastmodifieddate"]
    anchor = int(datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() * 1000)
    world.hubspot.faults.fail_next(10, status=400, method="POST", body_contains=f'"{anchor}"')

    with pytest.raises(HubSpotApiError):
        world.sync()

    assert _readers() == []
    made = [deal for deal in deals if world.order_for(deal) is not None]
    assert made == deals[:200]  # both chunks of the first page, in full
    (run,) = world.store.recent_runs(world.tenant, limit=1)
    assert run.status == "failed"
    world.hubspot.faults.clear()
    result = world.sync()  # the next run finishes the job, without a second order for anyone
    assert result.failed == 0
    assert len({world.order_for(deal).id for deal in deals}) == len(deals)


def test_a_host_outage_stops_the_reader_and_the_rerun_makes_each_order_once(world, monkeypatch):
    deals = _won_deals(world)

    def outage() -> None:
        raise RuntimeError("the host's database went away")

    world.hubspot.clear_requests()
    _on_first_order(monkeypatch, outage)
    with pytest.raises(RuntimeError):
        world.sync()

    assert _readers() == []
    searches = sum(1 for r in world.hubspot.requests if r.path.endswith("/search"))
    time.sleep(0.3)
    assert sum(1 for r in world.hubspot.requests if r.path.endswith("/search")) == searches <= 2
    monkeypatch.undo()
    result = world.sync()
    assert (result.created, result.failed) == (len(deals), 0)
    assert len({world.order_for(deal).id for deal in deals}) == len(deals)


def test_associations_read_ahead_are_used_only_for_the_deals_still_new(world):
    """A deal the prefetch did not cover (a stage added meanwhile, say) is read now; one it
    covered that is no longer in the batch (linked meanwhile) is left out."""
    company, other = (world.company(name=f"{n} Co", domain=f"{n}.example") for n in ("Ahead", "Other"))
    world.deal(companies=[company])
    world.sync()  # the company is linked now
    first, second = world.deal(companies=[company]), world.deal(companies=[company])
    engine = world.runtime.inbound(world.tenant)
    gone = world.deal(companies=[other])
    ahead = Associations(frozenset({first, gone}), company_of={first: company, gone: other})
    deals = {d.id: d for d in engine.client.read_deals([first, second])}
    world.hubspot.clear_requests()

    outcomes = engine.process([deals[first], deals[second]], trigger="incremental", ahead=ahead)

    assert [o.action for o in outcomes] == ["created", "created"]
    assert world.order_for(first).company_id == world.order_for(second).company_id is not None
    assert _association_reads(world) == 2  # for the second deal only: one per direction
    company_reads = [r for r in world.hubspot.requests if "companies" in r.path and "/associations/" not in r.path]
    assert company_reads == []  # not even of the other deal's company
    assert STOP_WAIT >= 1  # a reader in a HubSpot call gets time to finish it
