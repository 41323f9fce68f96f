"""The activity page: the integration log filtered by level, kind and record and paged by a
cursor; what to do about each known error (the texts of ``docs/troubleshooting.md``); the dead
letters, replayed one at a time or all at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .._checks import doc
from .._filters import filter_problems
from ..errors import ConfigError
from ..host import HttpResponse
from ..store import LogLevel
from . import _csrf
from ._fixes import FIXES, fix_for
from ._html import Markup, el
from ._layout import html_response, layout, when

if TYPE_CHECKING:
    from ._page import Page

__all__ = ["replay_all", "replay_one", "show_activity"]

_SHOWN = 50
_DEAD_SHOWN = 100
_LEVELS = {lv.value: f"{lv.value.capitalize()} and worse" if lv is not LogLevel.ERROR else "Error"
           for lv in LogLevel}

def _filters(page: Page) -> tuple[dict[str, Any], dict[str, str]]:
    """The level, kind, record and cursor asked for, and what is wrong with each."""
    query = page.request.query
    errors: dict[str, str] = {}
    level = query.get("level") or None
    if level is not None and level not in _LEVELS:
        errors["level"] = f"Choose one of: {', '.join(_LEVELS)} (or every level)."
        level = None
    texts: dict[str, str | None] = {"what": (query.get("what") or "").strip() or None,
                                    "record": (query.get("record") or "").strip() or None}
    for name, why in filter_problems(**texts):
        errors[name] = f"That {'kind' if name == 'what' else 'record'} cannot be searched for: {why}."
        texts[name] = None
    raw = query.get("before") or None
    before = None
    if raw is not None:
        if raw.isascii() and raw.isdigit() and len(raw) <= 18 and not filter_problems(before=int(raw)):
            before = int(raw)
        else:
            errors["before"] = "That link to older entries is broken: it needs an entry number."
    return {"level": level, **texts, "before": before}, errors


def _field(label: str, name: str, control: Markup, error: str | None) -> Markup:
    return el("div", el("label", label, for_=name), control,
              el("p", error, id=f"{name}-error", class_="bad") if error else None)


def _invalid(name: str, errors: dict[str, str]) -> dict[str, str | None]:
    bad = name in errors
    return {"aria_invalid": "true" if bad else None, "aria_describedby": f"{name}-error" if bad else None}


def _filter_form(page: Page, chosen: dict[str, Any], errors: dict[str, str]) -> Markup:
    sent = page.request.query
    options = [el("option", "Every level", value="", selected=chosen["level"] is None)]
    options += [el("option", label, value=value, selected=chosen["level"] == value) for value, label in _LEVELS.items()]
    return el("form",
              el("div",
                 _field("Level", "level", el("select", options, id="level", name="level", **_invalid("level", errors)),
                        errors.get("level")),
                 _field("Kind (such as inbound.deal)", "what",
                        el("input", type="text", id="what", name="what", value=sent.get("what", "")[:200],
                           **_invalid("what", errors)), errors.get("what")),
                 _field("Record (such as deal:123)", "record",
                        el("input", type="text", id="record", name="record", value=sent.get("record", "")[:200],
                           **_invalid("record", errors)), errors.get("record")),
                 class_="fields"),
              el("div", el("button", "Show", type="submit", class_="secondary"), class_="actions"),
              method="get", action=f"{page.base}/activity")


def _what_to_do(entry: dict[str, Any]) -> Markup | str:
    found = fix_for(entry)
    if found is None:
        return ""
    section, fix = found
    return el("span", fix, " ", el("span", f"(Troubleshooting: {section})", class_="muted"))


def _log_table(entries: list[dict[str, Any]], caption: str, empty: str) -> Markup:
    head = el("tr", [el("th", h, scope="col")
                     for h in ("Entry", "When", "Level", "Kind", "Record", "Message", "What to do")])
    rows = [el("tr", el("td", e["id"], class_="num"), el("td", when(e["at"])),
               el("td", e["level"], class_="bad" if e["level"] == "error" else
                  "warn" if e["level"] == "warning" else None),
               el("td", e["what"]), el("td", e["record"] or ""), el("td", e["message"]),
               el("td", _what_to_do(e))) for e in entries]
    if not rows:
        rows = [el("tr", el("td", empty, colspan="7"))]
    return el("div", el("table", el("caption", caption), el("thead", head), el("tbody", rows)), class_="table")


def _pager(page: Page, chosen: dict[str, Any], next_before: int | None) -> Markup | None:
    def href(**extra: object) -> str:
        query = {k: v for k, v in {**chosen, "before": None, **extra}.items() if v is not None}
        return f"{page.base}/activity" + (f"?{urlencode(query)}" if query else "")

    links = []
    if chosen["before"] is not None:
        links.append(el("a", "Newest entries", href=href()))
    if next_before is not None:
        links.append(el("a", "Older entries", href=href(before=next_before)))
    return el("nav", el("ul", [el("li", link) for link in links], class_="pager"), aria_label="Pages of the log") \
        if links else None


def _fixes() -> Markup:
    head = el("tr", [el("th", h, scope="col") for h in ("Error", "Meaning", "What to do")])
    rows = [el("tr", el("td", alert), el("td", meaning), el("td", fix)) for alert, meaning, fix in FIXES]
    return el("div", el("table", el("caption", f"Known errors and their fixes (from {doc('troubleshooting.md')})"),
                        el("thead", head), el("tbody", rows)), class_="table")


def _dead_letters(page: Page, jobs: list[dict[str, Any]], token: str | None) -> Markup:
    def replay_form(action: str, label: str, aria: str | None = None) -> Markup:
        return el("form", el("input", type="hidden", name=_csrf.FIELD, value=token or ""),
                  el("button", label, type="submit", disabled=token is None, aria_label=aria),
                  method="post", action=f"{page.base}/activity/{action}")

    head = el("tr", [el("th", h, scope="col") for h in ("Job", "Kind", "Record", "Attempts", "Last error", "Queued",
                                                         "Action")])
    rows = [el("tr", el("td", j["id"], class_="num"), el("td", j["kind"]), el("td", j["record"] or ""),
               el("td", f"{j['attempts']} of {j['max_attempts']}", class_="num"), el("td", j["last_error"] or ""),
               el("td", when(j["created_at"])),
               el("td", replay_form(f"dead-letters/{j['id']}/replay", "Replay", f"Replay job {j['id']}")))
            for j in jobs[:_DEAD_SHOWN]]
    if not rows:
        return el("p", "No dead letters: every job either ran or is still being retried.", class_="notice")
    return el("div",
              el("p", "These jobs failed every retry. Fix the cause (the log and the table above say how), then "
                      "replay them: they go back in the queue and the worker runs them again."),
              el("div", replay_form("dead-letters/replay", f"Replay all {len(jobs)}"
                                    f"{'+' if len(jobs) > _DEAD_SHOWN else ''} dead letters"), class_="actions"),
              el("div", el("table", el("caption", f"Dead letters ({len(jobs[:_DEAD_SHOWN])}"
                                                  f"{'+' if len(jobs) > _DEAD_SHOWN else ''}), newest first"),
                           el("thead", head), el("tbody", rows)), class_="table"))


def _notice(page: Page) -> Markup | None:
    query = page.request.query
    if (raw := query.get("replayed", "")) and raw.isascii() and raw.isdigit() and len(raw) <= 12:
        return el("div", el("p", f"Job {int(raw)} replayed: it is back in the queue."), class_="notice", role="status")
    if (raw := query.get("replayed_all", "")) and raw.isascii() and raw.isdigit() and len(raw) <= 12:
        more = query.get("deliveries", "")
        more = f" {int(more)} unreadable webhook deliveries will be read again." \
            if more.isascii() and more.isdigit() and 0 < len(more) <= 12 and int(more) else ""
        return el("div", el("p", f"{int(raw)} dead letter{'' if raw == '1' else 's'} replayed: back in the queue.",
                            more), class_="notice", role="status")
    return None


def _render(page: Page, status: int = 200, action_error: str | None = None) -> HttpResponse:
    chosen, errors = _filters(page)
    log = page.admin.log(page.user, limit=_SHOWN, **chosen)
    jobs = page.admin.dead_letters(page.user, limit=_DEAD_SHOWN + 1)
    token = page.csrf_token() if page.can_manage else None
    entries = log["entries"]
    caption = (f"Showing {len(entries)} {'older ' if chosen['before'] is not None else ''}log "
               f"entr{'y' if len(entries) == 1 else 'ies'}, newest first"
               + (f" (at most {_SHOWN} a page)" if log["next_before"] is not None else ""))
    body = [
        _notice(page),
        el("p", action_error, class_="error", role="alert") if action_error else None,
        None if token else el("p", "You can read the log; replaying dead letters needs the manage_integrations "
                                   "permission.", class_="notice"),
        el("h2", "Integration log"),
        _filter_form(page, chosen, errors),
        el("p", errors["before"], class_="error", role="alert") if errors.get("before") else None,
        _log_table(entries, caption, "No older entries." if chosen["before"] is not None else "No log entries match."),
        _pager(page, chosen, log["next_before"]),
        el("h2", "Errors and their fixes"),
        _fixes(),
        el("h2", "Dead letters"),
        _dead_letters(page, jobs, token),
    ]
    status = 400 if errors and status == 200 else status
    return html_response(status, layout("Activity and errors", body, base=page.base, current="/activity"))


def show_activity(page: Page) -> HttpResponse:
    """The activity page."""
    return _render(page)


def replay_one(page: Page) -> HttpResponse:
    """Replay one dead letter, then show the page saying so (303); a job that is not a dead
    letter of this tenant shows the page with the reason (400)."""
    raw = page.request.path_params.get("job_id", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise ConfigError(f"{raw[:20]!r} is not a job number.")
    try:
        result = page.admin.replay(page.user, int(raw))
    except LookupError:
        return _render(page, 400, f"Nothing was replayed: there is no job {int(raw)} here.")
    if not result["replayed"]:
        return _render(page, 400, f"Nothing was replayed: {result['reason']}.")
    return HttpResponse(303, b"", {"Location": f"{page.base}/activity?replayed={int(raw)}#main",
                                   "Cache-Control": "no-store"})


def replay_all(page: Page) -> HttpResponse:
    """Replay every dead letter, then show the page saying how many (303)."""
    result = page.admin.replay_all(page.user)
    query = urlencode({"replayed_all": int(result["replayed"]), "deliveries": int(result["webhook_deliveries"])})
    return HttpResponse(303, b"", {"Location": f"{page.base}/activity?{query}#main",
                                   "Cache-Control": "no-store"})
