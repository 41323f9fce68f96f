"""The plugin's guarded routes run outside ``ATOMIC_REQUESTS``: an order the plugin links, and
announces, is committed in the host; ``grouped_writes`` refuses to be only a savepoint."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from django.db import connections, transaction
from django.db.transaction import TransactionManagementError
from django.test import Client
from Tracker.models import Orders, Tenant

from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices
from ambac_hubspot_plugin.events import OrderCreated
from ambac_hubspot_plugin.host import OrderDraft, hookimpl
from ambac_hubspot_plugin.sandbox import Sandbox

from .test_routes import PREFIX, Mounted, mount

DB = pytest.mark.django_db(transaction=True, databases="__all__")


class Listener:
    """A package listening to ``hubspot_order_created`` ("called after the order and its link
    are stored"), looking the order up from another connection, as a Celery task would."""

    def __init__(self, *, die: bool) -> None:
        self.visible_elsewhere: list[bool] = []
        self.die = die

    @hookimpl
    def hubspot_order_created(self, event: OrderCreated) -> None:
        def look() -> None:
            try:
                self.visible_elsewhere.append(Orders.unscoped.filter(pk=event.order.id).exists())
            finally:
                connections.close_all()

        thread = threading.Thread(target=look)
        thread.start()
        thread.join()
        if self.die and transaction.get_connection().in_atomic_block:
            # What a worker killed on timeout, or a lost connection, does to the request:
            # its transaction, if it has one, never commits.
            transaction.set_rollback(True)


def _create_order(world: Mounted, deal: str) -> Any:
    client = Client()
    client.force_login(world.admin)
    return client.post(PREFIX + f"hubspot/deals/{deal}/order", b"{}", content_type="application/json")


def _closed_won(hs: Sandbox) -> str:
    return hs.add_object("deals", {"dealname": "Route deal", "pipeline": "default", "dealstage": "closedwon"})


@DB
def test_an_order_made_through_the_route_is_committed_when_listeners_hear_of_it(
        tmp_path: Path, hs: Sandbox, settings: Any) -> None:
    """``POST hubspot/deals/<id>/order``: when ``hubspot_order_created`` fires, another
    connection already sees the order (the host's transaction has committed)."""
    with mount(tmp_path, hs, settings) as world:
        listener = Listener(die=False)
        world.pm.register(listener)
        answer = _create_order(world, _closed_won(hs))
        assert answer.status_code == 200, answer.content
        assert listener.visible_elsewhere == [True]


@DB
def test_a_request_that_dies_after_the_order_is_made_leaves_no_link_to_a_missing_order(
        tmp_path: Path, hs: Sandbox, settings: Any) -> None:
    """A request whose transaction is rolled back after the plugin made and linked the order
    loses nothing the plugin recorded: the retry answers the existing order, and there is one."""
    with mount(tmp_path, hs, settings) as world:
        listener = Listener(die=True)
        world.pm.register(listener)
        deal = _closed_won(hs)
        _create_order(world, deal)
        listener.die = False
        again = _create_order(world, deal).json()
        orders = [str(pk) for pk in Orders.unscoped.filter(tenant_id=world.tenant).values_list("pk", flat=True)]
        assert again["order"] is not None, f"the deal is linked to order {again['order_id']}, which does not exist"
        assert orders == [again["order"]["id"]]


@pytest.mark.django_db(transaction=True)
def test_grouped_writes_refuse_to_run_inside_the_callers_transaction(tmp_path: Path) -> None:
    """Inside another ``atomic`` block the group could not commit when it ends: it refuses,
    naming the cause, and writes nothing; outside one, the group's order is committed."""
    tenant = str(Tenant.objects.create(name="Acme", slug=f"t-{uuid.uuid4().hex}").pk)
    services = DjangoHostServices(tenant, data_dir=tmp_path)
    with (transaction.atomic(), pytest.raises(TransactionManagementError, match="inside another transaction"),
          services.grouped_writes()):
        services.create_order(OrderDraft(name="Inside"))
    with services.grouped_writes():
        services.create_order(OrderDraft(name="Grouped"))
    assert list(Orders.unscoped.filter(tenant_id=tenant).values_list("name", flat=True)) == ["Grouped"]
