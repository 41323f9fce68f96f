"""The deal review page over HTTP: the reference host served on loopback, the plugin on the real
SDK against the sandbox; preview, create (once), permissions, CSRF, bad ids, HubSpot down, framing
inside HubSpot and the CRM card's link."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from ambac_hubspot_plugin._signatures import expected_v2
from ambac_hubspot_plugin.host import HttpRequest

from ._pages_world import PAGES, PUBLIC, PagesWorld, open_pages_world
from .test_admin_pages import _text


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PagesWorld]:
    """The pages' world, served over loopback."""
    with open_pages_world(tmp_path) as world:
        yield world


def _token(world: PagesWorld, deal: str, who: str = "admin") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', world.get(f"/deals/{deal}", who).text)
    assert found, "the deal's page has a create form with a CSRF token"
    return found.group(1)


def _orders(world: PagesWorld, deal: str) -> list[object]:
    """The host's orders made from ``deal``."""
    external = f"hubspot:{world.hubspot.portal_id}:deal:{deal}"
    return [o for o in world.services.list_orders() if o.external_id == external]


def _acme_deal(world: PagesWorld, **props: str) -> str:
    company = world.company(name="Acme Tools", domain="acme.example")
    contact = world.contact(firstname="Ada", lastname="Byron", email="ada@acme.example")
    return world.deal(stage="contractsent", companies=[company], contacts=[contact],
                      **{"dealname": "Brackets", **props})


def test_a_deal_is_previewed_then_created_once_even_when_posted_twice(world):
    """The preview shows the order, its company and contact; create answers 303 to the deal's page
    showing the order; the same form posted again creates nothing more."""
    deal = _acme_deal(world)
    page = world.get(f"/deals/{deal}", "admin")
    text = _text(page.text)
    assert page.status == 200, page.text
    assert "Brackets" in text and "Acme Tools" in text and "ada@acme.example" in text
    assert "not in a trigger stage" in text
    assert re.search(r'<button type="submit">Create the order in Ambac Tracker</button>', page.text)
    assert _orders(world, deal) == [], "a preview creates nothing"
    token = _token(world, deal)
    answer = world.post(f"/deals/{deal}/order", "admin", {"csrf_token": token})
    assert answer.status == 303
    assert answer.headers["location"] == f"{PAGES}/deals/{deal}?done=created#main"
    (order,) = _orders(world, deal)
    assert order.name == "Brackets"
    shown = _text(world.get(f"/deals/{deal}?done=created", "admin").text)
    assert f"Order {order.order_number} created from deal {deal}" in shown
    again = world.post(f"/deals/{deal}/order", "admin", {"csrf_token": token})
    assert again.status == 303 and again.headers["location"].endswith("?done=existing#main")
    assert len(_orders(world, deal)) == 1
    linked = world.get(f"/deals/{deal}", "admin").text
    assert "Create the order" not in linked and f"already has order {order.order_number}" in _text(linked)


@pytest.mark.parametrize("change", ["deal", "company", "contact"])
def test_a_deal_changed_since_its_review_is_not_created_and_is_shown_again(world, change):
    """The form carries what was reviewed: when the deal, its company or its contact changed in
    HubSpot before Create was pressed, nothing is created (409) and the page shows it as it is
    now; creating from that fresh review works."""
    deal = _acme_deal(world)
    page = world.get(f"/deals/{deal}", "admin").text
    token = _token(world, deal)
    reviewed = re.search(r'name="reviewed" value="([0-9a-f]+)"', page).group(1)
    world.clock.tick()
    if change == "deal":
        world.hubspot.update_object("deals", deal, {"dealname": "Cancelled - do not build", "dealstage": "closedlost"})
    else:
        kind = "companies" if change == "company" else "contacts"
        (other,) = world.hubspot.portal.objects[kind]
        world.hubspot.update_object(kind, other, {"name": "Acme Holdings"} if change == "company"
                                    else {"email": "someone.else@acme.example"})
    answer = world.post(f"/deals/{deal}/order", "admin", {"csrf_token": token, "reviewed": reviewed})
    assert answer.status == 409 and _orders(world, deal) == []
    assert world.services.list_companies() == [], "no company was made for it either"
    shown = _text(answer.text)
    assert "changed in HubSpot since you opened this review" in shown
    fresh = re.search(r'name="reviewed" value="([0-9a-f]+)"', answer.text).group(1)
    assert fresh != reviewed
    again = world.post(f"/deals/{deal}/order", "admin", {"csrf_token": token, "reviewed": fresh})
    assert again.status == 303 and len(_orders(world, deal)) == 1


def test_a_deal_is_looked_up_by_id_or_by_its_pasted_hubspot_address(world):
    """The GET form's ?deal= takes the id, or a deal's address as copied from HubSpot."""
    deal = world.deal(dealname="Looked up")
    for typed in (deal, f" {deal} ", f"https://app.hubspot.com/contacts/123/record/0-3/{deal}/"):
        page = world.get("/deals?" + urlencode({"deal": typed}), "viewer")
        assert page.status == 200 and "Looked up" in _text(page.text), typed
    lookup = world.get("/deals", "viewer")
    assert lookup.status == 200 and '<label for="deal">HubSpot deal id</label>' in lookup.text


def test_a_viewer_sees_the_preview_but_cannot_create(world):
    """A viewer's button is disabled with a note and no token; a viewer's POST is refused; no order."""
    deal = _acme_deal(world)
    page = world.get(f"/deals/{deal}", "viewer")
    assert page.status == 200 and "Acme Tools" in _text(page.text)
    assert "needs the manage_integrations permission" in _text(page.text)
    assert re.search(r"<button [^>]*disabled>Create the order in Ambac Tracker</button>", page.text)
    assert 'name="csrf_token" value=""' in page.text
    answer = world.post(f"/deals/{deal}/order", "viewer", {"csrf_token": _token(world, deal)})
    assert answer.status == 403
    assert _orders(world, deal) == []


def test_a_forged_or_borrowed_csrf_token_is_refused(world):
    """No token, a made-up token or another admin's token: 403 and nothing created."""
    deal = _acme_deal(world)
    for form in ({}, {"csrf_token": "1.abc"}, {"csrf_token": _token(world, deal, "other_admin")}):
        answer = world.post(f"/deals/{deal}/order", "admin", form)
        assert answer.status == 403 and "Nothing was changed" in answer.text, form
    assert _orders(world, deal) == []


def test_strangers_and_anonymous_users_are_refused_and_nothing_is_created(world):
    """Without view_integrations: 403 for the page and the create; anonymous: 401; no order.
    the page checks again when called directly, past the host's check."""
    deal = _acme_deal(world)
    token = _token(world, deal)
    for who, status in (("stranger", 403), (None, 401)):
        assert world.get(f"/deals/{deal}", who).status == status
        assert world.post(f"/deals/{deal}/order", who, {"csrf_token": token}).status == status
    create = next(r for r in world.runtime.http_routes() if r.name == "hubspot-page-deal-create")
    for who in ("stranger", "viewer"):
        form = urlencode({"csrf_token": token}).encode()
        request = HttpRequest("POST", f"{PUBLIC}{PAGES}/deals/{deal}/order", {}, form, world.users[who],
                              {"deal_id": deal})
        answer = create.handler(request)
        assert answer.status == 403 and b"Nothing was changed" in answer.body, who
    assert _orders(world, deal) == []


@pytest.mark.parametrize(("path", "status", "said"), [
    ("/deals/abc", 400, "'abc' is not a HubSpot deal id"),
    ("/deals/" + "9" * 21, 400, "is not a HubSpot deal id"),
    ("/deals?deal=12%3Cb%3E", 400, "is not a HubSpot deal id"),
    ("/deals?deal=", 400, "Type the deal's HubSpot id"),
    ("/deals/99999999", 404, "HubSpot has no deal 99999999"),
])
def test_a_bad_or_unknown_deal_id_is_named_beside_the_field(world, path, status, said):
    """Non-numeric, too long, empty or unknown to HubSpot: the lookup form again with the reason
    beside the field, never a 500."""
    page = world.get(path, "admin")
    assert page.status == status
    error = re.search(r'<p id="deal-error" class="error" role="alert">(.*?)</p>', page.text)
    assert error and said in _text(error.group(1)).replace("&#x27;", "'")
    assert 'aria-invalid="true"' in page.text and "<b>" not in page.text


def test_creating_from_a_bad_or_unknown_id_creates_nothing(world):
    """A POST for a non-numeric id is a 400, for a deal HubSpot lacks a 404; no order either way."""
    deal = _acme_deal(world)
    token = _token(world, deal)
    assert world.post("/deals/abc/order", "admin", {"csrf_token": token}).status == 400
    assert world.post("/deals/99999999/order", "admin", {"csrf_token": token}).status == 404
    assert world.services.list_orders() == []


def test_a_deal_the_order_cannot_take_shows_why_and_offers_no_create(world):
    """A deal name over the host's limit: the preview says what to fix in HubSpot and has no
    button; a create posted anyway answers 400 with the same reason; nothing is created."""
    deal = world.deal(dealname="x" * 300)
    page = world.get(f"/deals/{deal}", "admin")
    assert page.status == 200 and "Create the order" not in page.text
    problem = re.search(r'<div id="create-error" class="error" role="alert">(.*?)</div>', page.text)
    assert problem and "cannot become an order" in problem.group(1) and "shorten the deal name" in problem.group(1)
    answer = world.post(f"/deals/{deal}/order", "admin", {"csrf_token": _token(world, _acme_deal(world))})
    assert answer.status == 400 and "shorten the deal name" in answer.text
    assert _orders(world, deal) == []


def test_hubspot_down_gives_the_502_page(world):
    """HubSpot answering 503 to every call: the deal page is the 502 page, not a 500."""
    deal = world.deal()
    world.hubspot.faults.fail_next(1000, status=503)
    page = world.get(f"/deals/{deal}", "admin")
    assert page.status == 502 and "HubSpot did not answer as expected" in _text(page.text)


def test_only_the_deal_pages_may_be_framed_by_hubspot(world):
    """The deal pages, their errors and their refusals allow HubSpot's app as frame ancestor;
    the status page keeps 'self'."""
    deal = world.deal()
    answers = [world.get(f"/deals/{deal}", "admin"), world.get("/deals", "viewer"), world.get("/deals/x", "admin"),
               world.post(f"/deals/{deal}/order", "admin", {"csrf_token": "forged"})]
    assert [a.status for a in answers] == [200, 200, 400, 403]
    for answer in answers:
        assert "frame-ancestors 'self' https://*.hubspot.com;" in answer.headers["content-security-policy"]
    assert "frame-ancestors 'self';" in world.get("", "admin").headers["content-security-policy"]


def test_the_deal_pages_sign_in_page_opens_the_deal_in_a_new_tab(world):
    """A host that passes an anonymous request on (a frame without the host's cookie) gets a 401
    page linking to the deal in a new tab, framable by HubSpot; the deal page has the link too."""
    deal = world.deal()
    route = next(r for r in world.runtime.http_routes() if r.name == "hubspot-page-deal")
    answer = route.handler(HttpRequest("GET", f"{PUBLIC}{PAGES}/deals/{deal}", {}, path_params={"deal_id": deal}))
    text = answer.body.decode()
    assert answer.status == 401 and "Sign in first" in text
    link = f'<a href="{PAGES}/deals/{deal}" target="_blank" rel="noopener">open this page in a new tab</a>'
    assert link in text
    assert "https://*.hubspot.com" in answer.headers["Content-Security-Policy"]
    assert link in world.get(f"/deals/{deal}", "viewer").text


def test_the_crm_card_action_lands_on_the_deal_page(world):
    """The card's "Create Order in Ambac Tracker" URI is this page, and it shows the deal's review."""
    deal = _acme_deal(world)
    query = urlencode({"userId": "1", "associatedObjectId": deal, "associatedObjectType": "DEAL",
                       "portalId": str(world.hubspot.portal_id)})
    path = f"/integrations/hubspot/crm-card/{world.tenant}?{query}"
    signature = expected_v2(world.hubspot.client_secret, "GET", PUBLIC + path, b"")
    card = world.host.handle_http("GET", path, headers={"X-HubSpot-Signature": signature}, public_base_url=PUBLIC)
    uri = json.loads(card.body)["primaryAction"]["uri"]
    assert uri == f"{PUBLIC}{PAGES}/deals/{deal}"
    page = world.get(uri.removeprefix(PUBLIC + PAGES), "admin")
    assert page.status == 200 and "Brackets" in _text(page.text)
    assert "Create the order in Ambac Tracker" in page.text
