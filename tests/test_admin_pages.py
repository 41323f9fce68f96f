"""The admin pages over HTTP: the reference host served on loopback, the plugin on the real SDK
against the sandbox; permissions, CSRF, escaping, resolving conflicts, the status page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from ambac_hubspot_plugin._clock import utc_now
from ambac_hubspot_plugin.host import HttpRequest
from ambac_hubspot_plugin.store import LogLevel

from ._pages_world import PAGE_PATHS, PAGES, PagesWorld, open_pages_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PagesWorld]:
    """The pages' world, served over loopback."""
    with open_pages_world(tmp_path) as world:
        yield world


def _text(page: str) -> str:
    """The page's visible words, one space apart."""
    page = re.sub(r"<(style|svg)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def _open_ids(world: PagesWorld) -> set[int]:
    return {c.id for c in world.runtime.list_conflicts(world.tenant)}


# ---- permissions -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_every_page_refuses_anonymous_and_users_without_view_permission_with_a_page(world, path):
    """Anonymous: 401; no view_integrations: 403; both as an HTML page a browser shows."""
    for who, status in ((None, 401), ("stranger", 403)):
        answer = world.get(path, who)
        assert answer.status == status
        assert answer.headers["content-type"].startswith("text/html")
        assert "Nothing was changed" in answer.text


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_viewers_and_admins_see_every_page(world, path):
    """view_integrations is enough to read each page."""
    for who in ("viewer", "admin"):
        answer = world.get(path, who)
        assert answer.status == 200, answer.text
        assert answer.text.startswith("<!DOCTYPE html>")


def test_a_page_checks_the_permission_itself_when_the_host_forgets(world):
    """Called directly, past the host's check, a page still refuses a user without the permission."""
    route = next(r for r in world.runtime.http_routes() if r.name == "hubspot-page-conflicts")
    request = HttpRequest("GET", f"https://tracker.example.com{PAGES}/conflicts", {},
                          user=world.users["stranger"])
    answer = route.handler(request)
    assert answer.status == 403 and b"view_integrations" in answer.body


def test_a_viewer_sees_conflicts_but_cannot_resolve_them(world):
    """A viewer's page has its buttons disabled and no token; a POST is refused; the conflict stays open."""
    _deal, conflict = world.held_conflict()
    page = world.get("/conflicts", "viewer")
    assert page.status == 200 and "needs the manage_integrations permission" in _text(page.text)
    assert re.search(r'<button type="submit" disabled>Use the HubSpot value</button>', page.text)
    assert 'name="csrf_token" value=""' in page.text
    token = world.csrf("admin")
    answer = world.post(f"/conflicts/{conflict.id}/resolve", "viewer", {"csrf_token": token, "choice": "hubspot"})
    assert answer.status == 403
    assert _open_ids(world) == {conflict.id}


def test_a_page_action_checks_manage_itself_when_the_host_forgets(world):
    """The resolve action called directly as a viewer is refused and changes nothing."""
    _deal, conflict = world.held_conflict()
    route = next(r for r in world.runtime.http_routes() if r.name == "hubspot-page-conflict-resolve")
    request = HttpRequest("POST", f"https://tracker.example.com{PAGES}/conflicts/{conflict.id}/resolve", {},
                          body=f"csrf_token={world.csrf('admin')}&choice=hubspot".encode(),
                          user=world.users["viewer"], path_params={"conflict_id": str(conflict.id)})
    assert route.handler(request).status == 403
    assert _open_ids(world) == {conflict.id}


# ---- CSRF ------------------------------------------------------------------------------------


def test_a_post_without_a_valid_csrf_token_is_refused_and_changes_nothing(world):
    """Missing, forged, another user's and an expired token are each refused; then a valid one works."""
    deal, conflict = world.held_conflict()
    path = f"/conflicts/{conflict.id}/resolve"
    valid = world.csrf("admin")
    window, _, mac = valid.partition(".")
    forged = f"{window}.{'0' * len(mac)}"
    for token in (None, "", forged, "not-a-token", world.csrf("other_admin")):
        form = {"choice": "hubspot"} if token is None else {"choice": "hubspot", "csrf_token": token}
        answer = world.post(path, "admin", form)
        assert answer.status == 403, token
        assert "Nothing was changed" in _text(answer.text)
    real_clock = world.runtime.clock
    world.runtime.clock = lambda: utc_now() + timedelta(hours=5)
    try:
        assert world.post(path, "admin", {"choice": "hubspot", "csrf_token": valid}).status == 403
    finally:
        world.runtime.clock = real_clock
    assert _open_ids(world) == {conflict.id}
    assert world.order_for(deal).name == "Host name"
    assert world.post(path, "admin", {"choice": "hubspot", "csrf_token": valid}).status == 303


def test_a_token_stays_valid_into_the_next_window(world):
    """A token issued two hours ago (the previous window) is still accepted."""
    _deal, conflict = world.held_conflict()
    real_clock = world.runtime.clock
    world.runtime.clock = lambda: utc_now() - timedelta(hours=2)
    try:
        old = world.csrf("admin")
    finally:
        world.runtime.clock = real_clock
    answer = world.post(f"/conflicts/{conflict.id}/resolve", "admin", {"choice": "ambac", "csrf_token": old})
    assert answer.status == 303


# ---- conflicts -------------------------------------------------------------------------------


def test_the_conflicts_page_shows_both_sides_and_when_each_changed(world):
    """Ambac Tracker's and HubSpot's values, their change times and the last synced value."""
    _deal, conflict = world.held_conflict()
    text = _text(world.get("/conflicts", "admin").text)
    assert "Ambac Tracker Host name Changed" in text
    assert "HubSpot HubSpot name Changed" in text
    assert "the last synced value was Brackets" in text
    assert f"Conflict {conflict.id}, opened" in text
    assert text.count("UTC") >= 3


@pytest.mark.parametrize(("choice", "value", "expected"), [
    ("hubspot", None, "HubSpot name"), ("ambac", None, "Host name"), ("value", "Agreed name", "Agreed name")])
def test_resolving_from_the_page_applies_both_sides_and_records_who_decided(world, choice, value, expected):
    """A POST resolves the conflict, redirects (303) to the page, which then says who decided what."""
    deal, conflict = world.held_conflict()
    form = {"choice": choice, "csrf_token": world.csrf("admin"), **({"value": value} if value else {})}
    answer = world.post(f"/conflicts/{conflict.id}/resolve", "admin", form)
    assert answer.status == 303
    assert answer.headers["location"] == f"{PAGES}/conflicts?resolved={conflict.id}#main"
    assert world.order_for(deal).name == expected
    assert world.hubspot.get_object("deals", deal)["dealname"] == expected
    record = world.store.get_conflict(world.tenant, conflict.id)
    assert (record.status, record.resolution, record.decided_by) == ("closed", choice, "admin@acme.example")
    text = _text(world.get(f"/conflicts?resolved={conflict.id}", "admin").text)
    assert f"Conflict {conflict.id} resolved: name is now {expected}" in text
    assert "decided by admin@acme.example" in text
    assert "Open conflicts (0)" in text


def test_a_refused_resolution_is_shown_beside_the_conflict_and_changes_nothing(world):
    """An empty typed value, an unknown choice, or a conflict already closed: 400, the reason on the page."""
    deal, conflict = world.held_conflict()
    path = f"/conflicts/{conflict.id}/resolve"
    token = world.csrf("admin")
    for form in ({"choice": "value", "value": ""}, {"choice": "mine"}):
        answer = world.post(path, "admin", {**form, "csrf_token": token})
        assert answer.status == 400
        assert f'id="error-{conflict.id}"' in answer.text
    assert _open_ids(world) == {conflict.id} and world.order_for(deal).name == "Host name"
    assert world.post(path, "admin", {"choice": "ambac", "csrf_token": token}).status == 303
    again = world.post(path, "admin", {"choice": "hubspot", "csrf_token": token})
    assert again.status == 400 and f"Conflict {conflict.id}:" in _text(again.text)
    assert world.order_for(deal).name == "Host name"


def test_values_are_escaped_a_script_in_a_deal_name_shows_as_text(world):
    """A HubSpot deal renamed to a <script> appears escaped on the conflicts page, never as markup."""
    script = "<script>alert('owned')</script>"
    world.held_conflict(hubspot_name=script)
    page = world.get("/conflicts", "admin").text
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in page


# ---- status ----------------------------------------------------------------------------------


def test_the_status_page_after_a_sync_with_failures(world):
    """Connection, last success, errors over 24 h, the failing record, the run's counts and the chart."""
    result = world.failing_sync()
    assert (result.created, result.failed) == (2, 1)
    errors = sum(e.level is LogLevel.ERROR for e in world.store.read_log(world.tenant, limit=500).entries)
    assert errors >= 1
    answer = world.get("", "admin")
    assert answer.status == 200
    text = _text(answer.text)
    assert "Credential: Private app token (legacy)" in text
    assert f"Errors, last 24 h {errors} " in text
    assert "Failing: 1" in text
    assert re.search(r"incremental succeeded 2 0 \d+ 1 [\d.]+ s", text), "the run's counts"
    assert "Last successful sync Never" not in text and "never" not in text.split("Last successful sync")[1][:12]
    assert re.search(r'<svg [^>]*role="img" aria-labelledby="chart-title chart-desc"', answer.text)
    assert len(re.findall(r'<rect fill="#b42318"|fill="#b42318"', answer.text)) >= 8, "a failed bar a day + legend"
    today = re.search(r"<tr><th scope=\"row\">\w{3} \d{4}-\d\d-\d\d</th>((?:<td[^>]*>\d+</td>){4})</tr></tbody>",
                      answer.text)
    assert today is not None
    assert re.findall(r">(\d+)<", today.group(1)) == ["1", "0", "2", "1"], "runs, failed runs, synced, failed"


def test_the_status_page_counts_open_conflicts_and_links_to_them(world):
    """An open conflict shows on the status page with a link to the conflicts page."""
    world.held_conflict()
    page = world.get("", "viewer").text
    assert "Conflicts 1 open" in _text(page)
    assert f'href="{PAGES}/conflicts"' in page


# ---- no secret, safe headers -----------------------------------------------------------------


def test_no_page_shows_a_secret(world):
    """The access token, the webhook client secret and the CSRF key appear on no page, for any user."""
    world.failing_sync()
    world.held_conflict()
    world.csrf("admin")
    key = world.store.get_checkpoint(world.tenant, str(world.hubspot.portal_id), "pages.csrf_key").value
    secrets = [world.hubspot.access_token, world.hubspot.client_secret, key]
    assert all(len(s) >= 16 for s in secrets)
    for who in ("admin", "viewer"):
        for path in PAGE_PATHS:
            page = world.get(path, who).text
            assert not [s for s in secrets if s in page], (who, path)


def test_pages_allow_no_script_and_fetch_nothing(world):
    """Every page forbids scripts and outside assets, and carries no <script> and no external URL."""
    for path in PAGE_PATHS:
        answer = world.get(path, "admin")
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "<script" not in answer.text
        assert not re.search(r'(src|href)="https?:', answer.text)
        assert '<a href="#main" class="skip">Skip to content</a>' in answer.text
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in answer.text


def test_a_tenant_without_the_plugin_gets_a_page_saying_so(world):
    """A signed-in user of a tenant that has not enabled HubSpot is told so (409), as a page."""
    other = world.host.create_tenant("Other Co")
    user = world.host.create_user(other, "someone@other.example")
    from ambac_hubspot_plugin.host import VIEW_INTEGRATIONS

    world.host.grant(user, VIEW_INTEGRATIONS)
    world.tokens["other"] = world.host.create_api_token(user)
    answer = world.get("", "other")
    assert answer.status == 409 and "not enabled" in _text(answer.text)


# ---- the HTML builder ------------------------------------------------------------------------


def test_the_builder_escapes_text_and_attributes_and_keeps_only_its_own_markup():
    """Text and attribute values are escaped; markup made by el() nests as is; bad names are refused."""
    from ambac_hubspot_plugin._pages._html import el, escape

    page = el("a", "<b>&", el("em", '"x"'), None, href='" onclick="evil()', data_n=3, hidden=True, title=None)
    assert page == ('<a href="&quot; onclick=&quot;evil()" data-n="3" hidden>&lt;b&gt;&amp;'
                    '<em>&quot;x&quot;</em></a>')
    assert escape(escape("<")) == "&lt;", "escaping markup again leaves it alone"
    for bad in ("script onload", "a>"):
        with pytest.raises(ValueError, match="not a tag name"):
            el(bad)
    with pytest.raises(ValueError, match="not an attribute name"):
        el("p", **{"on load": "x"})
