"""The HubSpot CRM card on a deal: "Create Order in Ambac Tracker", or the linked order's state.

HubSpot fetches the card's data with a signed ``GET`` to the data fetch URL
(``<mount>/hubspot/crm-card/{tenant_id}?associatedObjectId=...&associatedObjectType=DEAL&portalId=...``).
The route needs no host permission: like the webhook receiver, it trusts only HubSpot's
request signature, checked with the tenant's webhook client secret against the public URL
HubSpot called. HubSpot signs card fetches with v2 (and v3 for apps that get it); both cover
the URL. v1 covers only the body, which a ``GET`` does not have: one v1 value would open every
card of the tenant, so v1 is refused with 401 saying which versions are expected.

The answer is HubSpot's CRM card JSON: ``results`` (one card with ``objectId``, ``title`` and
``properties``) and, for a deal without an order, a ``primaryAction`` that opens the
deal review page (``hubspot/admin/deals/{deal_id}``) in an iframe, and a title ``link`` to the
same page, which HubSpot opens in a new tab: see the admin pages' docs for framing and sign-in
inside HubSpot.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ._host_ids import is_host_id
from .errors import WebhookSignatureError
from .host import HttpRequest, HttpResponse, HttpRoute, OrderStatus

if TYPE_CHECKING:
    from ._tenants import Tenants
    from .host import Order

__all__ = ["ROUTE_PATH", "card_route", "order_card"]

ROUTE_PATH = "hubspot/crm-card/{tenant_id}"
ACTION_LABEL = "Create Order in Ambac Tracker"
CARD_SIGNATURE_VERSIONS = ("v3", "v2")
"""The signatures a card fetch may carry: those that cover the URL (never v1)."""
# HubSpot's STATUS data type shows a coloured dot chosen by optionType.
_STATUS_OPTION = {
    OrderStatus.COMPLETED: "SUCCESS", OrderStatus.CANCELLED: "DANGER",
    OrderStatus.ON_HOLD: "WARNING", OrderStatus.IN_PROGRESS: "INFO",
}


def _json(status: int, payload: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def order_card(order: Order, deal_id: str) -> dict[str, Any]:
    """The card of a deal that has an order."""
    return {"results": [{
        "objectId": order.id,
        "title": f"Order {order.order_number}",
        "properties": [
            {"label": "Order number", "dataType": "STRING", "value": order.order_number},
            {"label": "Status", "dataType": "STATUS", "value": order.order_status.label,
             "optionType": _STATUS_OPTION.get(order.order_status, "DEFAULT")},
            {"label": "HubSpot deal", "dataType": "STRING", "value": deal_id},
        ],
    }]}


def _unlinked_card(deal_id: str, review_uri: str) -> dict[str, Any]:
    return {
        "results": [{
            "objectId": int(deal_id),
            "title": "No order in Ambac Tracker yet",
            # The title links to the same page in a new tab: the host's sign-in cookie may not
            # reach the iframe, a third-party frame inside HubSpot.
            "link": review_uri,
            "properties": [{"label": "Status", "dataType": "STRING",
                            "value": "Not created: review the deal and create its order"}],
        }],
        "primaryAction": {"type": "IFRAME", "width": 890, "height": 748, "uri": review_uri,
                          "label": ACTION_LABEL},
    }


def _review_uri(request_url: str, public_base_url: str | None, tenant_key: str, deal_id: str) -> str:
    from ._webhooks import public_uri as _public_uri

    url = _public_uri(request_url, public_base_url).split("?", 1)[0]
    suffix = ROUTE_PATH.replace("{tenant_id}", tenant_key)
    base = url[: -len(suffix)] if url.endswith(suffix) else url.rsplit("/crm-card/", 1)[0] + "/"
    from ._pages import BASE_PATH

    return f"{base.rstrip('/')}/{BASE_PATH}/deals/{deal_id}"


def card_route(tenants: Tenants) -> HttpRoute:
    """The unauthenticated, signature-checked CRM card data route."""

    def handle(request: HttpRequest) -> HttpResponse:
        from ._inbound import order_external_id
        from ._signatures import SIGNATURE_HEADER, V3_HEADER, VERSION_HEADER, verify_signature
        from ._webhooks import public_uri as _public_uri
        from ._webhooks import webhook_secret

        key = str(request.path_params.get("tenant_id", ""))
        if not is_host_id(key) or not tenants.is_enabled(key):
            return _json(404, {"message": "no enabled tenant here"})
        tenant_id = key
        tenant = tenants.tenant(tenant_id)
        settings = tenant.settings
        secret = webhook_secret(settings)
        if secret is None:
            return _json(503, {"message": "webhook_client_secret is not configured; the card "
                                          "cannot verify HubSpot's requests"})
        headers = {str(k).lower(): str(v) for k, v in request.headers.items()}
        if V3_HEADER not in headers and SIGNATURE_HEADER in headers:
            headers.setdefault(VERSION_HEADER, "v2")  # card fetches are v2 when not v3
        try:
            verify_signature(secret=secret.reveal(), method=request.method,
                             uri=_public_uri(request.url, settings.public_base_url),
                             headers=headers, body=request.body, now=tenants.clock(),
                             versions=CARD_SIGNATURE_VERSIONS)
        except WebhookSignatureError as exc:
            return _json(401, {"message": str(exc)})
        deal_id = str(request.query.get("associatedObjectId", ""))
        object_type = str(request.query.get("associatedObjectType", "DEAL")).upper()
        if object_type != "DEAL" or not deal_id.isdigit() or len(deal_id) > 20:
            return _json(400, {"message": "the card serves deals: associatedObjectType=DEAL and a "
                                          "numeric associatedObjectId are required"})
        portal = str(request.query.get("portalId", settings.portal_id))
        if portal != settings.portal_id:
            return _json(403, {"message": f"portal {portal[:20]} is not connected to this tenant"})
        store = tenant.store
        link = store.get_link_by_hubspot(tenant_id, settings.portal_id, "deal", deal_id)
        order = tenant.host.get_order(link.host_id) if link is not None else None
        if order is None:
            order = tenant.host.find_order_by_external_id(order_external_id(settings.portal_id, deal_id))
        if order is not None:
            return _json(200, order_card(order, deal_id))
        return _json(200, _unlinked_card(
            deal_id, _review_uri(request.url, settings.public_base_url, key, deal_id)))

    return HttpRoute("hubspot-crm-card", "GET", ROUTE_PATH, None, handle)
