"""The admin pages through the Django bridge: a browser session reads them and resolves a
conflict with the page's own CSRF token (Django's is not needed, and not enough); a POST without
that token or from another origin changes nothing; the bridge's refusals of a page are pages,
of a JSON route JSON. Each with DRF's authentication and with the host's middleware alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

from django.test import Client

from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices
from ambac_hubspot_plugin.sandbox import Sandbox

from .._clock import ManualClock
from .test_routes import DB, PREFIX, Mounted, mount

PAGES = PREFIX + "hubspot/admin"
ORIGIN = "http://testserver"  # the test client's host: the pages' own origin


@pytest.fixture(params=["drf", "middleware"])
def world(request: pytest.FixtureRequest, tmp_path: Path, hs: Sandbox, settings: Any,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Mounted]:
    """The routes mounted, conflicts held for a person; authentication by DRF's authenticators,
    or (``middleware``) a host without DRF: ``request.user`` and Django's CSRF check."""
    if request.param == "middleware":
        from django.apps import apps

        installed = apps.is_installed
        monkeypatch.setattr(apps, "is_installed", lambda name: name != "rest_framework" and installed(name))
    with mount(tmp_path, hs, settings, conflicts={"default": "manual"}) as mounted:
        yield mounted


def _held_conflict(world: Mounted, clock: ManualClock) -> tuple[Any, str]:
    """A deal synced to an order, then renamed on both sides: the open conflict and the order id."""
    deal = world.hubspot.add_object("deals", {"dealname": "Brackets", "pipeline": "default",
                                              "dealstage": "closedwon"})
    world.runtime.run_sync(world.tenant)
    services = DjangoHostServices(world.tenant)
    order = services.find_order_by_external_id(f"hubspot:{world.hubspot.portal_id}:deal:{deal}")
    assert order is not None
    services.update_order(order.id, {"name": "Host name"})
    clock.tick()  # the sandbox's: a later change of the deal
    world.hubspot.update_object("deals", deal, {"dealname": "HubSpot name"})
    world.runtime.run_sync(world.tenant)
    (conflict,) = world.runtime.list_conflicts(world.tenant)
    return conflict, order.id


def _order_name(world: Mounted, order_id: str) -> str:
    order = DjangoHostServices(world.tenant).get_order(order_id)
    assert order is not None
    return str(order.name)


def _browser(row: Any) -> Client:
    """A signed-in browser session, held to CSRF checks as a real browser is."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(row)
    return client


def _page_token(client: Client) -> str:
    page = client.get(PAGES + "/conflicts")
    assert page.status_code == 200, page.content
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.content.decode())
    assert found, "the conflicts page has a form with a token"
    return found.group(1)


def _post(client: Client, url: str, form: dict[str, str], **extra: Any) -> Any:
    return client.post(url, urlencode(form), content_type="application/x-www-form-urlencoded", **extra)


@DB
def test_a_session_reads_the_pages_and_resolves_a_conflict_with_the_pages_token(
        world: Mounted, clock: ManualClock) -> None:
    """An admin's browser session gets both pages, posts the page's form (its own token, no
    Django token) from the same origin, is redirected (303), and the conflict is resolved."""
    conflict, order_id = _held_conflict(world, clock)
    client = _browser(world.admin)
    status = client.get(PAGES)
    assert status.status_code == 200 and status["Content-Type"].startswith("text/html")
    token = _page_token(client)

    answer = _post(client, f"{PAGES}/conflicts/{conflict.id}/resolve",
                   {"csrf_token": token, "choice": "hubspot"}, HTTP_ORIGIN=ORIGIN)
    assert answer.status_code == 303, answer.content
    assert answer["Location"] == f"{PAGES}/conflicts?resolved={conflict.id}#main"
    assert world.runtime.list_conflicts(world.tenant) == []
    assert _order_name(world, order_id) == "HubSpot name"
    shown = client.get(f"{PAGES}/conflicts?resolved={conflict.id}").content.decode()
    assert f"Conflict {conflict.id} resolved" in shown and world.admin.email in shown


@DB
def test_a_page_post_without_its_token_or_from_another_origin_changes_nothing(
        world: Mounted, clock: ManualClock) -> None:
    """Without the page's token (even with Django's CSRF cookie and header), with another
    site's or a ``null`` Origin, or over HTTPS with neither Origin nor Referer: a 403 page and
    the conflict stays open; then the same form from the same origin (by Referer) resolves it."""
    from django.conf import settings

    conflict, order_id = _held_conflict(world, clock)
    client = _browser(world.admin)
    token = _page_token(client)
    url = f"{PAGES}/conflicts/{conflict.id}/resolve"
    client.cookies[settings.CSRF_COOKIE_NAME] = "d" * 32
    refused = [
        _post(client, url, {"choice": "hubspot"}, HTTP_ORIGIN=ORIGIN, HTTP_X_CSRFTOKEN="d" * 32),
        _post(client, url, {"choice": "hubspot", "csrf_token": "1.forged"}, HTTP_ORIGIN=ORIGIN),
        _post(client, url, {"choice": "hubspot", "csrf_token": token}, HTTP_ORIGIN="https://evil.example"),
        _post(client, url, {"choice": "hubspot", "csrf_token": token}, HTTP_ORIGIN="null"),
        _post(client, url, {"choice": "hubspot", "csrf_token": token},
              HTTP_REFERER="http://testserver.evil.example/page"),
        _post(client, url, {"choice": "hubspot", "csrf_token": token}, secure=True),
    ]
    for answer in refused:
        assert answer.status_code == 403, answer.content
        assert answer["Content-Type"].startswith("text/html") and b"Nothing was changed" in answer.content
    assert [c.id for c in world.runtime.list_conflicts(world.tenant)] == [conflict.id]
    assert _order_name(world, order_id) == "Host name"

    answer = _post(client, url, {"choice": "ambac", "csrf_token": token}, HTTP_REFERER=f"{ORIGIN}/x")
    assert answer.status_code == 303, answer.content
    assert world.runtime.list_conflicts(world.tenant) == []


@DB
def test_the_bridges_refusals_of_a_page_are_pages_and_of_a_json_route_json(world: Mounted, clock: ManualClock) -> None:
    """Anonymous, without the permission, a user of no tenant, a method the page does not serve:
    an HTML page each (with ``WWW-Authenticate``, ``Allow``); the JSON routes answer the same in
    JSON, and still hold a session's POST to Django's CSRF check."""
    from Tracker.models import User

    conflict, _ = _held_conflict(world, clock)
    resolve = f"{PAGES}/conflicts/{conflict.id}/resolve"
    staff = User.objects.create_user(username="staff-pages", email="ops@host.example", is_staff=True)
    token = _page_token(_browser(world.admin))

    anonymous = Client(enforce_csrf_checks=True).get(PAGES)
    viewer_post = _post(_browser(world.viewer), resolve, {"csrf_token": token, "choice": "hubspot"},
                        HTTP_ORIGIN=ORIGIN)
    cases = [(anonymous, 401, "Sign in first"),
             (_browser(world.stranger).get(PAGES + "/conflicts"), 403, "view_integrations"),
             (viewer_post, 403, "manage_integrations"),
             (_browser(staff).get(PAGES), 403, "no tenant"),
             (_browser(world.admin).get(resolve), 405, "GET is not allowed here")]
    for answer, status, words in cases:
        assert answer.status_code == status, (words, answer.content)
        assert answer["Content-Type"].startswith("text/html"), words
        assert words.encode() in answer.content and b"<!DOCTYPE html>" in answer.content
    assert anonymous["WWW-Authenticate"] and cases[-1][0]["Allow"] == "POST"
    assert [c.id for c in world.runtime.list_conflicts(world.tenant)] == [conflict.id]

    assert Client().get(PREFIX + "hubspot/status").json()["error"] == "unauthenticated"
    assert _browser(world.stranger).get(PREFIX + "hubspot/status").json()["error"] == "forbidden"
    json_resolve = _browser(world.admin).post(f"{PREFIX}hubspot/conflicts/{conflict.id}/resolve",
                                              b'{"choice": "hubspot"}', content_type="application/json",
                                              HTTP_ORIGIN=ORIGIN)
    assert json_resolve.status_code == 403 and json_resolve["Content-Type"] == "application/json"
    assert [c.id for c in world.runtime.list_conflicts(world.tenant)] == [conflict.id]
