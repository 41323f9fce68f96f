"""The conflicts page: each open conflict side by side, settled with one click either way or with
a typed value; the decisions so far, with who made them (the audit trail)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..host import HttpResponse
from . import _csrf
from ._html import Markup, el
from ._layout import html_response, layout, when

if TYPE_CHECKING:
    from ._page import Page

__all__ = ["resolve", "show_conflicts"]

_SHOWN = 100
_DECIDED_SHOWN = 20
_SIDES = {"ambac": "Ambac Tracker", "hubspot": "HubSpot", "value": "a typed value",
          "settled": "no longer in dispute"}


def _value(value: Any) -> Markup:
    if value is None or value == "":
        return el("span", "(empty)", class_="muted")
    return el("span", str(value), class_="value")


def _where(c: dict[str, Any]) -> str:
    return f"{c['object_type'].capitalize()} {c['host_id']} · HubSpot {c['hubspot_type']} {c['hubspot_id']}"


def _button_form(page: Page, c: dict[str, Any], token: str | None, choice: str, label: str) -> Markup:
    return el("form", el("input", type="hidden", name=_csrf.FIELD, value=token or ""),
              el("input", type="hidden", name="choice", value=choice),
              el("button", label, type="submit", disabled=token is None),
              method="post", action=f"{page.base}/conflicts/{c['id']}/resolve")


def _conflict(page: Page, c: dict[str, Any], token: str | None, error: str | None) -> Markup:
    field_id = f"value-{c['id']}"
    typed = el("form", el("input", type="hidden", name=_csrf.FIELD, value=token or ""),
               el("input", type="hidden", name="choice", value="value"),
               el("div", el("label", f"Or type the value for {c['field']}", for_=field_id),
                  el("input", type="text", id=field_id, name="value", disabled=token is None,
                     aria_describedby=f"error-{c['id']}" if error else None)),
               el("button", "Use this value", type="submit", disabled=token is None, class_="secondary"),
               method="post", action=f"{page.base}/conflicts/{c['id']}/resolve", class_="actions")
    return el(
        "article",
        el("h3", f"{c['field']} — {_where(c)}", id=f"conflict-{c['id']}"),
        el("p", f"Conflict {c['id']}, opened ", when(c["created_at"]), "; the last synced value was ",
           _value(c["last_synced"]), "."),
        el("div",
           el("section", el("h4", "Ambac Tracker"), el("p", _value(c["host_value"])),
              el("p", "Changed ", when(c["host_changed_at"]), class_="muted"), class_="side"),
           el("section", el("h4", "HubSpot"), el("p", _value(c["hubspot_value"])),
              el("p", "Changed ", when(c["hubspot_changed_at"]), class_="muted"), class_="side"),
           class_="sides"),
        el("p", error, id=f"error-{c['id']}", class_="error", role="alert") if error else None,
        el("div", _button_form(page, c, token, "ambac", "Keep the Ambac Tracker value"),
           _button_form(page, c, token, "hubspot", "Use the HubSpot value"), class_="actions"),
        typed,
        class_="card", aria_labelledby=f"conflict-{c['id']}")


def _decided(decided: list[dict[str, Any]]) -> Markup:
    head = el("tr", [el("th", h, scope="col") for h in ("Conflict", "Field", "Decided", "Value", "By", "When")])
    rows = [el("tr", el("td", c["id"], class_="num"),
               el("td", c["field"], el("br"), el("span", _where(c), class_="muted")),
               el("td", _SIDES.get(c["resolution"] or "", c["resolution"] or f"{c['decision']} ({c['strategy']})")),
               el("td", _value(c["resolved_value"])), el("td", c["decided_by"] or "the sync (by its strategy)"),
               el("td", when(c["decided_at"] or c["updated_at"]))) for c in decided]
    if not rows:
        rows = [el("tr", el("td", "Nothing decided yet.", colspan="6"))]
    return el("div", el("table", el("caption", "Recent decisions (audit trail)"), el("thead", head),
                        el("tbody", rows)), class_="table")


def _resolved_notice(page: Page) -> Markup | None:
    raw = page.request.query.get("resolved", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        return None
    try:
        c = page.admin.conflict(page.user, int(raw))
    except ConfigError:
        return None
    if c["status"] != "closed" or not c["decided_by"]:
        return None
    return el("div", el("p", f"Conflict {c['id']} resolved: {c['field']} is now ", _value(c["resolved_value"]),
                        f" ({_SIDES.get(c['resolution'], c['resolution'])}, decided by {c['decided_by']})."),
              class_="notice", role="status")


def _render(page: Page, status: int = 200, errors: dict[int, str] | None = None) -> HttpResponse:
    errors = errors or {}
    open_ = page.admin.conflicts(page.user, status="open", limit=_SHOWN + 1)
    decided = page.admin.conflicts(page.user, status="closed", limit=_DECIDED_SHOWN)
    token = page.csrf_token() if page.can_manage else None
    body = [
        _resolved_notice(page),
        el("div", [el("p", f"Conflict {cid}: {message}") for cid, message in errors.items()], class_="error",
           role="alert") if errors else None,
        None if token else el("p", "You can read conflicts; resolving them needs the manage_integrations "
                                   "permission.", class_="notice"),
        el("h2", f"Open conflicts ({len(open_[:_SHOWN])}{'+' if len(open_) > _SHOWN else ''})"),
        el("p", "Both sides changed these fields since the last sync; the sync holds them until someone "
                "decides. The decision is written to Ambac Tracker and to HubSpot."),
        [_conflict(page, c, token, errors.get(c["id"])) for c in open_[:_SHOWN]]
        or el("p", "No open conflicts.", class_="notice"),
        el("p", f"Showing the newest {_SHOWN}; resolve these to see the rest.") if len(open_) > _SHOWN else None,
        el("h2", "Decided"),
        _decided(decided),
    ]
    return html_response(status, layout("Conflicts", body, base=page.base, current="/conflicts"))


def show_conflicts(page: Page) -> HttpResponse:
    """The conflicts page."""
    return _render(page)


def resolve(page: Page) -> HttpResponse:
    """Resolve one conflict from the page's form, then show the page again (303, so a reload
    does not post twice); a refused resolution shows the page with the reason beside it."""
    raw = page.request.path_params.get("conflict_id", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise ConfigError(f"{raw[:20]!r} is not a conflict number.")
    conflict_id = int(raw)
    choice = page.form.get("choice", "")
    value = page.form.get("value")
    if choice not in _SIDES:
        return _render(page, 400, {conflict_id: "choose Ambac Tracker, HubSpot or a typed value"})
    if choice == "value" and not value:
        return _render(page, 400, {conflict_id: "type the value to use, or pick one side"})
    try:
        page.admin.resolve_conflict(page.user, conflict_id, choice, value if choice == "value" else None)
    except ConfigError as exc:
        return _render(page, 400, {conflict_id: str(exc)})
    return HttpResponse(303, b"", {"Location": f"{page.base}/conflicts?resolved={conflict_id}#main",
                                   "Cache-Control": "no-store"})
