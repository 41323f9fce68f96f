"""The admin pages' same-origin check on POSTs, and the reference host answering its refusals of
a page route with the route's own page (``HttpRoute.refusal``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from ambac_hubspot_plugin._pages._csrf import same_origin

from ._pages_world import PagesWorld, open_pages_world

URL = "https://tracker.example.com/integrations/hubspot/admin/conflicts/1/resolve"


@pytest.mark.parametrize(("url", "headers", "expected"), [
    (URL, {"Origin": "https://tracker.example.com"}, True),
    (URL, {"Origin": "https://Tracker.Example.com:443"}, True),
    (URL, {"Referer": "https://tracker.example.com/integrations/hubspot/admin/conflicts"}, True),
    (URL, {"Origin": "https://evil.example", "Referer": "https://tracker.example.com/x"}, False),
    (URL, {"Origin": "http://tracker.example.com"}, False),
    (URL, {"Origin": "https://tracker.example.com:8443"}, False),
    (URL, {"Origin": "null"}, False),
    (URL, {"Referer": "https://tracker.example.com.evil.example/"}, False),
    (URL, {}, False),
    ("http://127.0.0.1:8000/p", {}, True),
    ("http://127.0.0.1:8000/p", {"Origin": "http://127.0.0.1:8000"}, True),
    ("http://[::1]:8000/p", {"Origin": "http://[::1]:8000"}, True),
    ("http://127.0.0.1:8000/p", {"Origin": "http://127.0.0.1:9000"}, False),
    ("http://127.0.0.1:8000/p", {"Origin": "http://127.0.0.1:notaport"}, False),
])
def test_same_origin_follows_origin_then_referer_and_needs_one_over_https(url, headers, expected):
    """Origin decides when sent (null is foreign), else Referer; with neither only plain HTTP passes."""
    assert same_origin(url, headers) is expected


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PagesWorld]:
    """The pages' world, served over loopback."""
    with open_pages_world(tmp_path) as world:
        yield world


def test_a_cross_origin_post_is_refused_and_a_wrong_method_gets_a_page(world):
    """A POST with the admin's valid token but another site's Origin is a 403 page and changes
    nothing (the same form from the page's own origin works); a GET of the action is a 405 page."""
    _deal, conflict = world.held_conflict()
    path = f"/conflicts/{conflict.id}/resolve"
    form = urlencode({"choice": "hubspot", "csrf_token": world.csrf("admin")}).encode()
    sent = {"Content-Type": "application/x-www-form-urlencoded"}

    refused = world.request("POST", path, "admin", form, {**sent, "Origin": "http://evil.example"})
    assert refused.status == 403 and "Nothing was changed" in refused.text
    assert [c.id for c in world.runtime.list_conflicts(world.tenant)] == [conflict.id]
    wrong = world.request("GET", path, "admin")
    assert (wrong.status, wrong.headers["allow"]) == (405, "POST")
    assert wrong.headers["content-type"].startswith("text/html") and "GET is not allowed here" in wrong.text

    origin = world.base_url.rstrip("/")
    assert world.request("POST", path, "admin", form, {**sent, "Origin": origin}).status == 303
    assert world.runtime.list_conflicts(world.tenant) == []
