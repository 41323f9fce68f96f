"""The host commits a sync's writes 100 deals at a time (``GroupsWrites``), and a group that
fails leaves nothing behind: neither its records nor links to them, and the rerun makes each
order exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ambac_hubspot_plugin._chunk_claims import ChunkClaims
from ambac_hubspot_plugin._linking import _domain_claim_key, _email_claim_key
from ambac_hubspot_plugin.host import CompanyDraft, GroupsWrites, OrderDraft
from ambac_hubspot_plugin.reference_host._optional_services import ReferenceServices

from ._world import PluginWorld, open_world

DEALS = 250


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PluginWorld]:
    with open_world(tmp_path) as world:
        yield world


def _won_deals(world: PluginWorld) -> list[str]:
    """250 won deals, every fifth with a company of its own and every third with a contact."""
    deals = []
    for i in range(DEALS):
        companies = [world.company(name=f"Co {i}", domain=f"co{i}.example")] if i % 5 == 0 else []
        contacts = [world.contact(email=f"buyer{i}@co.example")] if i % 3 == 0 else []
        deals.append(world.deal(dealname=f"Won {i:03d}", companies=companies, contacts=contacts))
    return deals


def _dangling_links(world: PluginWorld) -> list[Any]:
    """Links whose host record does not exist."""
    services, store, portal = world.services, world.store, str(world.hubspot.portal_id)
    exists = {"order": services.get_order, "company": services.get_company, "contact": services.get_contact}
    dangling = []
    for object_type in ("deal", "company", "contact"):
        after = 0
        while page := store.links_page(world.tenant, portal, object_type, after_id=after, limit=500):
            after = page[-1].id
            dangling += [link for link in page if exists[link.host_type](link.host_id) is None]
    return dangling


def _fail_at_order(monkeypatch: pytest.MonkeyPatch, name: str) -> Callable[[], None]:
    """Make the host fail (an outage, not a refusal) when it creates the order ``name``;
    return what makes it work again."""
    create_order = ReferenceServices.create_order

    def failing(self: ReferenceServices, draft: OrderDraft) -> Any:
        if draft.name == name:
            raise RuntimeError("the host's database went away")
        return create_order(self, draft)

    monkeypatch.setattr(ReferenceServices, "create_order", failing)
    return lambda: monkeypatch.setattr(ReferenceServices, "create_order", create_order)


def test_the_reference_hosts_services_group_writes():
    assert issubclass(ReferenceServices, GroupsWrites)


def test_a_sync_commits_the_hosts_writes_100_deals_at_a_time(world, mocker):
    """250 new deals, with companies and contacts: three groups, every order made once."""
    deals = _won_deals(world)
    groups = mocker.spy(ReferenceServices, "grouped_writes")

    result = world.sync()

    assert (result.created, result.failed) == (DEALS, 0)
    assert groups.call_count == 3
    assert len({world.order_for(deal).id for deal in deals}) == DEALS
    assert _dangling_links(world) == []


def test_a_dry_run_groups_nothing(world, mocker):
    """A dry run writes nothing, so it takes no host transaction."""
    _won_deals(world)
    groups = mocker.spy(ReferenceServices, "grouped_writes")
    assert world.sync(dry_run=True).created == DEALS
    assert groups.call_count == 0
    assert world.services.list_orders() == []


def test_a_group_that_fails_leaves_no_records_and_no_links_and_the_rerun_makes_each_once(
    world, monkeypatch
):
    """The host fails (not a refusal: an outage) at the 150th order. The run fails; the group it
    was in is rolled back whole, its companies and contacts with it, and the store links
    nothing to a record that is gone. The rerun makes each missing order once."""
    deals = _won_deals(world)
    restore = _fail_at_order(monkeypatch, "Won 149")
    with pytest.raises(RuntimeError, match="went away"):
        world.sync()

    made = world.services.list_orders()
    assert len(made) == 100, "the first group committed, the second was rolled back whole"
    assert world.order_for(deals[149]) is None
    assert {order.name for order in made} == {f"Won {i:03d}" for i in range(100)}
    names = {company.name for company in world.services.list_companies()}
    assert names == {f"Co {i}" for i in range(0, 100, 5)}, "the failed group's companies are gone too"
    assert _dangling_links(world) == []

    restore()
    rerun = world.sync()

    assert rerun.failed == 0
    orders = world.services.list_orders()
    assert len(orders) == DEALS
    assert len({order.external_id for order in orders}) == DEALS
    assert len(world.services.list_companies()) == DEALS // 5
    assert _dangling_links(world) == []


def test_a_group_holds_the_hosts_write_lock_only_once_it_writes(world):
    """Another thread writes to the host while a group is open but has not written yet, and
    waits (instead of failing) while it has."""
    services = world.services
    grouping = services.grouped_writes()
    other: list[Any] = []

    def write_elsewhere() -> None:
        other.append(world.host.services(world.tenant).create_company(CompanyDraft(name="Elsewhere")))

    with grouping:
        thread = threading.Thread(target=write_elsewhere)
        thread.start()
        thread.join(timeout=10)
        assert other, "a group that has not written holds no lock"
        services.create_company(CompanyDraft(name="Inside"))
        late = threading.Thread(target=write_elsewhere)
        late.start()
        late.join(timeout=0.3)
        assert late.is_alive(), "the other writer waits for the group's commit"
        assert {c.name for c in world.host.services(world.tenant).find_companies_by_name("Inside")} == {"Inside"}
    late.join(timeout=10)
    assert len(other) == 2


def test_an_engine_used_again_after_a_failed_group_links_nothing_that_is_gone(world, monkeypatch):
    """The same engine goes on after a group failed (as a worker's does with its next batch):
    the links, log lines and resolved records of the rolled-back group are forgotten, so its
    next flush writes no link to a record that is gone, and its deals' companies are made again."""
    deals = _won_deals(world)
    engine = world.runtime.inbound(world.tenant)
    restore = _fail_at_order(monkeypatch, "Won 149")
    with pytest.raises(RuntimeError, match="went away"):
        engine.process_ids(deals[:150], trigger="webhook")
    restore()

    again = engine.process_ids(deals[100:150], trigger="webhook")

    assert (again.created, again.failed) == (50, 0)
    assert _dangling_links(world) == []
    assert all(world.order_for(deal) is not None for deal in deals[:150])


def test_a_users_email_claim_taken_in_a_group_is_held_until_the_group_commits(world, monkeypatch):
    """A contact whose email claim another worker held when the chunk began is claimed on its
    own. Inside a group the new user is not visible to other workers until the commit, so the
    claim is kept until then: released earlier, another worker would make a second user."""
    from ambac_hubspot_plugin._linking import _email_claim_key

    email = "gina@globex.example"
    deal = world.deal(dealname="Won", contacts=[world.contact(email=email)])
    store, key = world.store, _email_claim_key(email)
    assert store.take_claim(world.tenant, key, "other-worker")
    threading.Timer(0.3, store.release_claim, (world.tenant, key, "other-worker")).start()
    seen: list[bool] = []
    create_order = ReferenceServices.create_order

    def probing(self: ReferenceServices, draft: OrderDraft) -> Any:
        taken = store.take_claim(world.tenant, key, "probe")  # the user exists, uncommitted
        if taken:
            store.release_claim(world.tenant, key, "probe")
        seen.append(taken)
        return create_order(self, draft)

    monkeypatch.setattr(ReferenceServices, "create_order", probing)
    assert world.sync().created == 1

    assert seen == [False], "the claim was held while the group was open"
    assert store.take_claim(world.tenant, key, "probe"), "and released once it committed"
    assert len(world.services.find_contacts_by_email(email)) == 1
    assert world.order_for(deal).customer_id is not None


def _free(world: PluginWorld, key: str) -> bool:
    """Whether another holder could take ``key`` now (the probe's claim is given back)."""
    taken = world.store.take_claim(world.tenant, key, "probe", timedelta(seconds=30))
    if taken:
        world.store.release_claim(world.tenant, key, "probe")
    return taken


def test_a_group_that_outlasts_a_claims_life_keeps_its_claims(world, monkeypatch):
    """A host slower than a claim's life (10 s; 0.3 s here) between making a user and a company
    and committing them: the chunk renews its claims meanwhile, so another worker still waits
    for the email and the domain rather than find neither and make a second user or company.
    Once the chunk's links are written they are free again."""
    monkeypatch.setattr(ChunkClaims, "TTL", timedelta(seconds=0.3))
    monkeypatch.setattr(ChunkClaims, "RENEW_EVERY", 0.1)
    email, domain = "slow@globex.example", "globex.example"
    world.deal(dealname="Won", contacts=[world.contact(email=email)],
               companies=[world.company(name="Globex", domain=domain)])
    keys = (_email_claim_key(email), _domain_claim_key(domain))
    seen: list[list[bool]] = []
    create_order = ReferenceServices.create_order

    def slow(self: ReferenceServices, draft: OrderDraft) -> Any:
        time.sleep(1.0)  # three lives of a claim
        seen.append([_free(world, key) for key in keys])
        return create_order(self, draft)

    monkeypatch.setattr(ReferenceServices, "create_order", slow)
    assert world.sync().created == 1
    assert seen == [[False, False]], "the claims were renewed while the group was open"
    assert [_free(world, key) for key in keys] == [True, True], "and released after the chunk"


def test_a_chunk_takes_its_claims_in_one_statement(world, monkeypatch):
    """The emails and domains of a chunk's new users and companies are claimed at once: one
    store call for the chunk, not one per domain (a slip once made it one per domain, each
    taking every key again, and a 5,000-deal backfill three times as long)."""
    deals = _won_deals(world)
    calls: list[int] = []
    take_claims = type(world.store).take_claims

    def counting(self: Any, tenant_id: str, keys: Any, *args: Any, **kwargs: Any) -> set[str]:
        calls.append(len(keys))
        return take_claims(self, tenant_id, keys, *args, **kwargs)

    monkeypatch.setattr(type(world.store), "take_claims", counting)
    assert world.sync(backfill=True).created == len(deals)
    assert calls == [50 + 84], calls  # 50 companies' domains and 84 contacts' emails, one call


def test_an_order_made_from_a_deal_gives_up_its_claims(world):
    """The review step's "Create" takes the claims of the company and user it makes like a
    sync chunk does, and gives them up once it has linked them: another worker never waits
    for them until they run out."""
    email, domain = "rev@initech.example", "initech.example"
    deal = world.deal(dealname="Won", contacts=[world.contact(email=email)],
                      companies=[world.company(name="Initech", domain=domain)])
    assert world.runtime.create_order_from_deal(world.tenant, deal).action == "created"
    assert [_free(world, key) for key in (_email_claim_key(email), _domain_claim_key(domain))] == [True, True]


def test_updates_commit_one_by_one_so_a_failed_group_of_new_orders_keeps_them(world, monkeypatch):
    """Updates of linked orders also write the store (synced values, conflicts, pushes), so
    they are not grouped: a group of new orders that fails in the same chunk keeps them."""
    old = world.deal(dealname="Old")
    assert world.sync().created == 1
    world.hubspot.update_object("deals", old, {"dealname": "Old, renamed"})
    new = world.deal(dealname="Won 149")
    _fail_at_order(monkeypatch, "Won 149")
    with pytest.raises(RuntimeError, match="went away"):
        world.sync()

    assert world.order_for(old).name == "Old, renamed"
    assert world.order_for(new) is None
    assert _dangling_links(world) == []
