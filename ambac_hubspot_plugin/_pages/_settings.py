"""The settings page: the form drawn from the settings' JSON Schema (the one the plugin's manifest
gives the host), saved through the admin API; and the connection test, check by check."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..host import HttpResponse
from . import _csrf
from ._html import Markup, el
from ._layout import html_response, layout, when
from ._schema_form import (
    Field,
    Group,
    Node,
    current_values,
    fields_of,
    form_nodes,
    owner,
    read_form,
    secret_is_set,
    typed_values,
)

if TYPE_CHECKING:
    from ._page import Page

__all__ = ["save_settings", "show_settings", "test_connection"]

_STATUS_WORDS = {"ok": ("Passed", "ok"), "warning": ("Warning", "warn"), "failed": ("Failed", "bad"),
                 "skipped": ("Skipped", "muted")}


@functools.cache
def _nodes() -> tuple[Node, ...]:
    from ..settings import settings_schema  # what ambac_plugin_manifest publishes

    return form_nodes(settings_schema())


def _id(path: str) -> str:
    return "field-" + path.replace(".", "-")


def _control(f: Field, value: str | bool, described: str | None, invalid: bool, disabled: bool) -> Markup:
    common: dict[str, Any] = {"id": _id(f.path), "name": f.path, "disabled": disabled,
                              "aria_describedby": described, "aria_invalid": "true" if invalid else None,
                              "aria_required": "true" if f.required else None}
    if f.kind == "boolean":
        return el("input", type="checkbox", value="true", checked=value is True, **common)
    if f.kind == "select":
        choices = ([""] if f.nullable else []) + list(f.choices)
        if value and value not in choices:
            choices.append(str(value))  # a value typed by hand: shown, and named by the validation
        return el("select", [el("option", c or "(none)", value=c, selected=c == value) for c in choices], **common)
    if f.kind == "secret":
        return el("input", type="password", value="", autocomplete="new-password", **common)
    if f.kind in ("lines", "pairs", "json"):
        return el("textarea", str(value), rows=6 if f.kind == "json" else 4, spellcheck="false", **common)
    return el("input", type="text", value=str(value), inputmode="numeric" if f.kind == "integer" else None,
              spellcheck="false", **common)


_FORMAT = {"lines": "One per line.", "pairs": "One per line, as key = value.",
           "json": "JSON (leave empty for none)."}


def _field(f: Field, value: str | bool, error: str | None, disabled: bool, secret_set: bool) -> Markup:
    hint = " ".join(p for p in (
        f.hint, _FORMAT.get(f.kind),
        ("Set: leave empty to keep the current secret, or type a new one." if secret_set else "Not set.")
        if f.kind == "secret" else "",
        "Pairs of key = a, b." if f.values == "list" and f.kind == "pairs" else "") if p)
    hint_id, error_id = _id(f.path) + "-hint", _id(f.path) + "-error"
    described = " ".join(i for i, on in ((error_id, error), (hint_id, hint)) if on) or None
    label = el("label", f.label, el("span", " (required)", class_="muted") if f.required else None,
               el("span", f" · {f.path}", class_="muted path"), for_=_id(f.path))
    control = _control(f, value, described, error is not None, disabled)
    return el("div",
              el("div", control, label, class_="check") if f.kind == "boolean" else [label, control],
              el("p", error, id=error_id, class_="field-error") if error else None,
              el("p", hint, id=hint_id, class_="hint") if hint else None,
              class_="field")


def _form_body(nodes: tuple[Node, ...], values: dict[str, str | bool], errors: dict[str, str],
               disabled: bool, secrets_set: set[str]) -> list[Markup]:
    out = []
    for node in nodes:
        if isinstance(node, Group):
            out.append(el("fieldset", el("legend", node.label),
                          el("p", node.hint, class_="hint") if node.hint else None,
                          _form_body(node.children, values, errors, disabled, secrets_set),
                          id=_id(node.path)))
        else:
            out.append(_field(node, values.get(node.path, ""), errors.get(node.path), disabled,
                              node.path in secrets_set))
    return out


def _problems(errors: dict[str, str], other: list[str]) -> Markup:
    items = [el("li", el("a", f"{path}: {why}", href="#" + _id(path))) for path, why in errors.items()]
    items += [el("li", why) for why in other]
    count = len(items)
    return el("div", el("h2", f"Nothing was saved: {count} problem{'s' if count != 1 else ''}", id="problems"),
              el("ul", items), class_="error", role="alert", tabindex="-1")


def _checks(page: Page) -> Markup:
    check = page.admin.status(page.user).get("connection", {}).get("last_check")
    if not check:
        return el("p", "Not tested yet.", class_="muted")
    head = el("tr", [el("th", h, scope="col") for h in ("Check", "Result", "What was found", "How to fix it")])
    rows = [el("tr", el("th", c["name"], scope="row"),
               el("td", _STATUS_WORDS.get(c["status"], (c["status"], ""))[0],
                  class_=_STATUS_WORDS.get(c["status"], ("", ""))[1]),
               el("td", c["summary"]), el("td", c["fix"] or "—")) for c in check["checks"]]
    outcome = "every check passed" if check["ok"] else "a check failed"
    return el("div", el("table", el("caption", "Last connection test, ", when(check["checked_at"]), f": {outcome}"),
                        el("thead", head), el("tbody", rows)), class_="table")


def _render(page: Page, status: int = 200, values: dict[str, str | bool] | None = None,
            problems: dict[str, str] | None = None) -> HttpResponse:
    nodes = _nodes()
    current = page.admin.settings(page.user)
    secrets_set = {f.path for f in fields_of(nodes) if f.kind == "secret" and secret_is_set(current, f.path)}
    token = page.csrf_token() if page.can_manage else None
    paths = {f.path for f in fields_of(nodes)}
    errors: dict[str, str] = {}
    other: list[str] = []
    for path, why in (problems or {}).items():
        field = owner(path, paths)
        if field is None:
            other.append(f"{path}: {why}")
        else:
            errors[field] = f"{errors[field]}; {why}" if field in errors else (
                why if field == path else f"{path}: {why}")
    notice = {"saved": "Settings saved; they apply now.", "tested": "Connection tested: see each check below."}
    done = next((text for key, text in notice.items() if page.request.query.get(key) == "1"), None)
    kept = page.admin.settings_saved_by_host
    body = [
        el("div", el("p", done), class_="notice", role="status") if done and not problems else None,
        _problems(errors, other) if problems else None,
        None if token else el("p", "You can read the settings; changing them or testing the connection needs "
                                   "the manage_integrations permission.", class_="notice"),
        el("p", "Secrets (access tokens, client secrets) are never shown: leave a secret empty to keep it."),
        el("form", el("input", type="hidden", name=_csrf.FIELD, value=token or ""),
           _form_body(nodes, values or current_values(nodes, current), errors, token is None, secrets_set),
           el("p", "This host does not keep settings changed here: they apply until the host restarts. "
                   "Change them on the host's own settings page to keep them.", class_="notice")
           if not kept else None,
           el("div", el("button", "Save settings", type="submit", disabled=token is None), class_="actions"),
           method="post", action=f"{page.base}/settings", novalidate=True, aria_label="Settings"),
        el("h2", "Connection test", id="connection"),
        el("p", "Checks the access token, its scopes, the pipelines and trigger stages, the custom properties "
                "and the webhook set-up against HubSpot, with the saved settings."),
        el("form", el("input", type="hidden", name=_csrf.FIELD, value=token or ""),
           el("button", "Test the connection", type="submit", disabled=token is None, class_="secondary"),
           method="post", action=f"{page.base}/settings/test", class_="actions"),
        _checks(page),
    ]
    return html_response(status, layout("Settings", body, base=page.base, current="/settings"))


def show_settings(page: Page) -> HttpResponse:
    """The settings page."""
    return _render(page)


def save_settings(page: Page) -> HttpResponse:
    """Save the posted settings through the admin API (303 to the page saying so); when any
    field is wrong, nothing is saved and the page comes back (400) with each problem beside its
    field and the values typed (never the secrets)."""
    nodes = _nodes()
    data, problems = read_form(nodes, page.form, page.admin.settings(page.user))
    try:
        if problems:
            page.admin.check_settings(page.user, data)
        else:
            page.admin.change_settings(page.user, data)
    except ConfigError as exc:
        problems = {**(exc.problems or {"settings": str(exc)}), **problems}
    if problems:
        return _render(page, 400, typed_values(nodes, page.form), problems)
    return HttpResponse(303, b"", {"Location": f"{page.base}/settings?saved=1#main", "Cache-Control": "no-store"})


def test_connection(page: Page) -> HttpResponse:
    """Run the connection test now (the result is kept, and shown on the page: 303 to it)."""
    page.admin.test_connection(page.user)
    return HttpResponse(303, b"", {"Location": f"{page.base}/settings?tested=1#connection",
                                   "Cache-Control": "no-store"})
