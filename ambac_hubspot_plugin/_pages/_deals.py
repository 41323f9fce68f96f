"""The deal review page: look a deal up by its HubSpot id, see the order it would become (the
admin API's preview: the order's fields, company and contact linking, what to check first), and
create it.

The CRM card's "Create Order in Ambac Tracker" opens ``deals/{deal_id}`` in an iframe inside
HubSpot, so these routes, and only these, let HubSpot's app frame them (:data:`FRAME_ANCESTORS`).
A host's sign-in cookie may not reach a third-party iframe (browsers block or partition such
cookies), so the page and its sign-in page link to themselves in a new tab.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import ConfigError, DealChangedError, DealNotFoundError, HostRecordError, MappingError
from ..host import HttpRequest, HttpResponse, OrderStatus
from . import _csrf
from ._html import Child, Markup, el
from ._layout import HEADERS, html_response, layout, message_page

if TYPE_CHECKING:
    from ._page import Page

__all__ = ["FRAMED_ROUTES", "FRAME_ANCESTORS", "create_order", "framed_by_hubspot", "show_deal"]

#: Who may show the deal pages in a frame: this site and HubSpot's app in any of its data
#: centres (``app.hubspot.com``, ``app-eu1.hubspot.com``, ``app-na2.hubspot.com``...), where the
#: CRM card's IFRAME action opens them. Every other page keeps ``frame-ancestors 'self'``.
FRAME_ANCESTORS = "'self' https://*.hubspot.com"
#: The routes (by name) that answer with :data:`FRAME_ANCESTORS`.
FRAMED_ROUTES = frozenset({"hubspot-page-deals", "hubspot-page-deal", "hubspot-page-deal-create"})

_CSP = "Content-Security-Policy"
_FRAMED_CSP = re.sub(r"frame-ancestors [^;]*", f"frame-ancestors {FRAME_ANCESTORS}", HEADERS[_CSP])
_MAX_ID = 20  # HubSpot's record ids are 64-bit numbers
# A pasted deal address: .../record/0-3/123 (or the older .../deal/123).
_ADDRESS_ID = re.compile(r"/(?:record/0-3|deal)/(\d+)/?(?:[?#].*)?$")
_FIELDS = (("name", "Name"), ("order_number", "Order number"), ("order_status", "Status"),
           ("order_date", "Order date"), ("estimated_completion", "Estimated completion"),
           ("value", "Value"), ("currency", "Currency"), ("customer_note", "Customer note"),
           ("external_id", "External id"))


def _parse(raw: str) -> tuple[str, str | None]:
    """The deal id in what was typed (digits, or a HubSpot deal address), or why it is not one."""
    text = raw.strip()
    found = _ADDRESS_ID.search(text)
    if found:
        text = found.group(1)
    if not text:
        return "", "Type the deal's HubSpot id: the record ID at the end of its address in HubSpot."
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_ID:
        return "", (f"{text[:24]!r} is not a HubSpot deal id: a deal id is digits only (at most "
                    f"{_MAX_ID}), the record ID at the end of its address in HubSpot.")
    return text, None


def _new_tab(base: str, deal_id: str, lead: str) -> list[Child]:
    """A plain link to the page in a new tab, where the host's sign-in reaches it."""
    href = f"{base}/deals/{deal_id}" if deal_id else f"{base}/deals"
    return [lead, el("a", "open this page in a new tab", href=href, target="_blank", rel="noopener"), "."]


def _value(value: Any) -> Markup:
    if value is None or value == "":
        return el("span", "(empty)", class_="muted")
    return el("span", str(value), class_="value")


def _status(value: Any) -> str:
    try:
        return OrderStatus.parse(value).label
    except ValueError:
        return str(value)


def _lookup(page: Page, value: str, error: str | None) -> Markup:
    described = "deal-help deal-error" if error else "deal-help"
    return el("form",
              el("div",
                 el("label", "HubSpot deal id", for_="deal"),
                 el("p", "The record ID at the end of the deal's address in HubSpot; a pasted address works too.",
                    id="deal-help", class_="muted"),
                 el("p", error, id="deal-error", class_="error", role="alert") if error else None,
                 el("input", type="text", id="deal", name="deal", value=value, inputmode="numeric",
                    autocomplete="off", aria_describedby=described, aria_invalid="true" if error else None),
                 class_="field"),
              el("button", "Look up", type="submit", class_="secondary"),
              method="get", action=f"{page.base}/deals", class_="actions", role="search")


def _rows(caption: str, rows: list[tuple[str, Child]]) -> Markup:
    body = [el("tr", el("th", label, scope="row"), el("td", value)) for label, value in rows]
    return el("div", el("table", el("caption", caption), el("tbody", body)), class_="table")


def _order_table(draft: dict[str, Any]) -> Markup:
    rows: list[tuple[str, Child]] = []
    for key, label in _FIELDS:
        value = draft.get(key)
        if key == "order_number" and not value:
            rows.append((label, el("span", "given by Ambac Tracker when created", class_="muted")))
        elif key == "order_status":
            rows.append((label, _status(value)))
        else:
            rows.append((label, _value(value)))
    return _rows("The order it would create", rows)


def _kept(value: Any) -> Child:
    if isinstance(value, dict):
        return _value(", ".join(str(v) for v in value.values() if v not in (None, "")))
    return _value(value)


def _linking(preview: dict[str, Any]) -> Markup:
    draft = preview["draft"]
    rows: list[tuple[str, Child]] = [
        ("Company", [preview["company"] or el("span", "no company", class_="muted"),
                     f" (Ambac Tracker company {draft['company_id']})" if draft.get("company_id") else None]),
        ("Contacts", el("ul", [el("li", email) for email in preview["contacts"]])
         if preview["contacts"] else el("span", "none", class_="muted")),
        ("Customer", f"Ambac Tracker customer {draft['customer_id']}" if draft.get("customer_id")
         else el("span", "linked from the contacts above when created" if preview["contacts"] else "none",
                 class_="muted")),
    ]
    rows += [(f"Company {name} (kept by the plugin)", _kept(v)) for name, v in preview["company_kept"].items()]
    rows += [(f"Deal {name} (kept by the plugin)", _kept(v)) for name, v in preview["kept_by_plugin"].items()]
    return _rows("Company and contacts", rows)


def _notice(page: Page, preview: dict[str, Any]) -> Markup | None:
    existing = preview["existing_order"]
    if existing is None:
        return None
    done = page.request.query.get("done")
    lead = {"created": f"Order {existing['order_number']} created from deal {preview['deal_id']}.",
            "existing": f"Nothing new was created: deal {preview['deal_id']} already had order "
                        f"{existing['order_number']}."}.get(str(done), f"Deal {preview['deal_id']} already has "
                                                               f"order {existing['order_number']}.")
    return el("div", el("p", lead, " Its status: ", _status(existing["order_status"]), "."),
              class_="notice", role="status")


def _preview(page: Page, preview: dict[str, Any], create_error: str | None) -> list[Child]:
    deal_id = preview["deal_id"]
    existing = preview["existing_order"]
    token = page.csrf_token() if page.can_manage and existing is None else None
    warnings = [w for w in preview["warnings"] if existing is None or "already has order" not in w]
    action: Child
    if existing is not None:
        action = el("p", "The order exists: change it in Ambac Tracker.", class_="muted")
    else:
        action = [
            None if page.can_manage else el(
                "p", "You can review deals; creating the order needs the manage_integrations permission.",
                class_="notice"),
            el("form", el("input", type="hidden", name=_csrf.FIELD, value=token or ""),
               el("input", type="hidden", name="reviewed", value=preview.get("version") or ""),
               el("button", "Create the order in Ambac Tracker", type="submit", disabled=token is None,
                  aria_describedby="create-error" if create_error else None),
               method="post", action=f"{page.base}/deals/{deal_id}/order", class_="actions"),
        ]
    return [
        _notice(page, preview),
        el("h2", f"HubSpot deal {deal_id}", id="deal-title"),
        el("p", create_error, id="create-error", class_="error", role="alert") if create_error else None,
        el("div", el("h3", "Check before creating"), el("ul", [el("li", w) for w in warnings]),
           class_="notice") if warnings else None,
        _order_table(preview["draft"]),
        _linking(preview),
        action,
        el("p", _new_tab(page.base, deal_id, "Shown inside HubSpot and asked to sign in, or the button "
                                             "does nothing? Then "), class_="muted"),
    ]


def _blocked(deal_id: str, problem: str) -> list[Child]:
    return [el("h2", f"HubSpot deal {deal_id}", id="deal-title"),
            el("div", el("p", "This deal cannot become an order until this is fixed in HubSpot:"),
               el("p", problem, class_="value"), id="create-error", class_="error", role="alert")]


def _render(page: Page, typed: str, status: int = 200, *, lookup_error: str | None = None,
            preview: dict[str, Any] | None = None, create_error: str | None = None,
            blocked: str | None = None) -> HttpResponse:
    body: list[Child] = [_lookup(page, typed, lookup_error)]
    if blocked is not None:
        body += _blocked(typed, blocked)
    elif preview is not None:
        body += _preview(page, preview, create_error)
    elif not lookup_error:
        body.append(el("p", "Type a deal's id to see the order it would become, then create it. "
                            "HubSpot's \"Create Order in Ambac Tracker\" on a deal opens its review here."))
    return html_response(status, layout("Deal review", body, base=page.base, current="/deals"))


def _show(page: Page, deal_id: str, status: int = 200, create_error: str | None = None) -> HttpResponse:
    try:
        preview = page.admin.preview_order(page.user, deal_id)
    except DealNotFoundError as exc:
        return _render(page, deal_id, 404, lookup_error=str(exc))
    except (MappingError, HostRecordError) as exc:  # a deal value the order cannot take
        return _render(page, deal_id, status, blocked=str(exc))
    return _render(page, deal_id, status, preview=preview, create_error=create_error)


def show_deal(page: Page) -> HttpResponse:
    """The lookup form; with a deal id (``deals/{deal_id}`` or ``?deal=``) its review as well."""
    raw = page.request.path_params.get("deal_id")
    if raw is None:
        raw = page.request.query.get("deal")
    if raw is None:
        return _render(page, "")
    deal_id, error = _parse(raw)
    if error:
        return _render(page, raw[:100], 400, lookup_error=error)
    return _show(page, deal_id)


def create_order(page: Page) -> HttpResponse:
    """Create the deal's order, then show the deal's page with it (303, so a reload does not post
    twice; a second post finds the order and creates nothing); a refusal re-renders with why."""
    deal_id, error = _parse(page.request.path_params.get("deal_id", ""))
    if error:
        return _render(page, page.request.path_params.get("deal_id", "")[:100], 400, lookup_error=error)
    try:
        outcome = page.admin.create_order_from_deal(page.user, deal_id, reviewed=page.form.get("reviewed") or None)
    except DealNotFoundError as exc:
        return _render(page, deal_id, 404, lookup_error=str(exc))
    except DealChangedError:  # shown as it is now, to be reviewed again
        return _show(page, deal_id, 409, create_error="The order was not created: the deal, its company or its "
                     "contacts changed in HubSpot since you opened this review. Here it is as it is now: "
                     "check it again, then create the order.")
    except (HostRecordError, MappingError, ConfigError) as exc:
        return _show(page, deal_id, 400, create_error=f"The order was not created: {exc}")
    done = "created" if outcome["action"] == "created" else "existing"
    return HttpResponse(303, b"", {"Location": f"{page.base}/deals/{deal_id}?done={done}#main",
                                   "Cache-Control": "no-store"})


def framed_by_hubspot(serve: Callable[[HttpRequest], HttpResponse],
                      base_of: Callable[[HttpRequest], str]) -> Callable[[HttpRequest], HttpResponse]:
    """``serve`` answering with :data:`FRAME_ANCESTORS`; its sign-in page (a 401) links to the
    page in a new tab, where the host's sign-in reaches it. ``base_of`` gives the pages' base
    path of a request."""

    def framed(request: HttpRequest) -> HttpResponse:
        response = serve(request)
        if response.status == 401:
            base = base_of(request)
            deal_id, _error = _parse(request.path_params.get("deal_id", ""))
            response = message_page(401, "Sign in first", [
                "Sign in to the host to see the HubSpot integration.",
                _new_tab(base, deal_id, "Inside HubSpot the host's sign-in may not reach this frame: "),
            ], base=base)
        if _CSP not in response.headers:
            return response
        return attrs.evolve(response, headers={**response.headers, _CSP: _FRAMED_CSP})

    return framed
