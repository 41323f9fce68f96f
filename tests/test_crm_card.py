"""The CRM card data endpoint: only HubSpot-signed fetches are served; linked deals show their order."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

from ambac_hubspot_plugin._signatures import expected_v1, expected_v2, expected_v3

from ._world import serving
from .test_admin import PUBLIC, world  # noqa: F401  # world is a fixture


def fetch(world, deal_id: str, *, sign: str | None = "v3", secret: str | None = None,  # noqa: F811
          portal: str | None = None, tenant: int | None = None, timestamp: int | None = None):
    """GET the card as HubSpot does, signed with v3 or v2 (or not at all); return (status, json)."""
    query = urlencode({"userId": "1", "userEmail": "rep@acme.example", "associatedObjectId": deal_id,
                       "associatedObjectType": "DEAL",
                       "portalId": portal or str(world.hubspot.portal_id)})
    path = f"/integrations/hubspot/crm-card/{tenant or world.tenant}?{query}"
    key = secret or world.hubspot.client_secret
    headers: dict[str, str] = {}
    if sign == "v3":
        stamp = str(timestamp or int(time.time() * 1000))
        headers = {"X-HubSpot-Signature-v3": expected_v3(key, "GET", PUBLIC + path, b"", stamp),
                   "X-HubSpot-Request-Timestamp": stamp}
    elif sign == "v2":
        headers = {"X-HubSpot-Signature": expected_v2(key, "GET", PUBLIC + path, b"")}
    response = world.host.handle_http("GET", path, headers=headers, public_base_url=PUBLIC)
    return response.status, json.loads(response.body)


def test_unlinked_deal_offers_the_create_order_action(world):  # noqa: F811
    """A signed fetch for a deal without an order answers a card whose primary action opens review."""
    deal = world.deal(stage="contractsent")
    status, card = fetch(world, deal)
    assert status == 200
    (result,) = card["results"]
    assert result["objectId"] == int(deal) and result["title"] == "No order in Ambac Tracker yet"
    assert {"label", "dataType", "value"} <= set(result["properties"][0])
    action = card["primaryAction"]
    assert action["type"] == "IFRAME" and action["label"] == "Create Order in Ambac Tracker"
    assert action["uri"] == f"{PUBLIC}/integrations/hubspot/admin/deals/{deal}"
    assert result["link"] == action["uri"], "the title opens the same page in a new tab"


def test_linked_deal_shows_its_order_number_and_status(world):  # noqa: F811
    """After the sync made the order, the card shows its number and status and no create action."""
    deal = world.deal()
    world.admin.run_sync(world.admin_user)
    order = world.host.services(world.tenant).find_order_by_external_id(
        f"hubspot:{world.hubspot.portal_id}:deal:{deal}")
    status, card = fetch(world, deal)
    assert status == 200 and "primaryAction" not in card
    (result,) = card["results"]
    assert result["objectId"] == order.id and result["title"] == f"Order {order.order_number}"
    values = {p["label"]: p["value"] for p in result["properties"]}
    assert values["Order number"] == order.order_number and values["Status"] == "Pending"
    (status_property,) = [p for p in result["properties"] if p["label"] == "Status"]
    assert status_property["dataType"] == "STATUS" and status_property["optionType"] == "DEFAULT"


def test_v2_signed_fetch_is_accepted(world):  # noqa: F811
    """Without a v3 header, an X-HubSpot-Signature v2 (no version header needed) is verified."""
    assert fetch(world, world.deal(), sign="v2")[0] == 200


def test_unsigned_and_wrongly_signed_fetches_are_refused(world):  # noqa: F811
    """No signature, a signature with another secret, or a stale v3 timestamp: 401, no card."""
    deal = world.deal()
    for kwargs in ({"sign": None}, {"secret": "not-the-secret"}, {"sign": "v2", "secret": "nope"},
                   {"timestamp": int(time.time() * 1000) - 3_600_000}):
        status, body = fetch(world, deal, **kwargs)
        assert status == 401 and "results" not in body, kwargs


def test_other_portal_unknown_tenant_and_bad_ids_are_refused(world):  # noqa: F811
    """A signed fetch for another portal is 403; an unknown tenant 404; a non-numeric deal id 400."""
    deal = world.deal()
    assert fetch(world, deal, portal="999")[0] == 403
    assert fetch(world, deal, tenant=4242)[0] == 404
    assert fetch(world, "abc")[0] == 400


def test_without_a_webhook_secret_the_card_cannot_verify_and_says_so(world):  # noqa: F811
    """No secret configured: 503 naming the setting, never an unverified card."""
    settings = {k: v for k, v in world.settings.items() if k != "webhook_client_secret"}
    world.host.change_settings(world.tenant, "hubspot", settings)
    status, body = fetch(world, world.deal())
    assert status == 503 and "webhook_client_secret" in body["message"]


# ---- real signed requests over loopback -------------------------------------------------------


def http_fetch(base: str, world, deal_id: str, sign: str) -> tuple[int, dict]:  # noqa: F811
    """GET the card over real HTTP, signed as HubSpot would for the public URL (v1, v2 or v3)."""
    query = urlencode({"userId": "1", "associatedObjectId": deal_id, "associatedObjectType": "DEAL",
                       "portalId": str(world.hubspot.portal_id)})
    path = f"/integrations/hubspot/crm-card/{world.tenant}?{query}"
    key = world.hubspot.client_secret
    stamp = str(int(time.time() * 1000))
    headers = {
        "v1": {"X-HubSpot-Signature": expected_v1(key, b""), "X-HubSpot-Signature-Version": "v1"},
        "v2": {"X-HubSpot-Signature": expected_v2(key, "GET", PUBLIC + path, b""),
               "X-HubSpot-Signature-Version": "v2"},
        "v3": {"X-HubSpot-Signature-v3": expected_v3(key, "GET", PUBLIC + path, b"", stamp),
               "X-HubSpot-Request-Timestamp": stamp},
    }[sign]
    request = urllib.request.Request(base + path, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, json.loads(refused.read())


def test_v3_and_v2_signed_fetches_over_loopback_get_the_card(world):  # noqa: F811
    """Real HTTP requests signed with v3, or v2 with its version header, are answered with the card."""
    deal = world.deal(stage="contractsent")
    with serving(world.host) as base:
        for sign in ("v3", "v2"):
            status, card = http_fetch(base, world, deal, sign)
            assert status == 200 and card["results"][0]["objectId"] == int(deal), sign


def test_a_correct_v1_signature_is_refused_naming_the_expected_versions(world):  # noqa: F811
    """A valid v1 signature covers no URL, so it would open every card: 401 saying v3 or v2."""
    deal = world.deal(stage="contractsent")
    with serving(world.host) as base:
        status, body = http_fetch(base, world, deal, "v1")
    assert status == 401 and "results" not in body
    assert "v3" in body["message"] and "v2" in body["message"] and "v1" in body["message"]
