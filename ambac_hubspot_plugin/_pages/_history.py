"""The sync history page: every sync run newest first, filtered by kind and paged by a cursor;
a sync, a dry run or a backfill started from the page.

A sync started here runs at once, in the request, so the page can say what it did: the
JSON route and the CLI run it the same way, and a dry run or a backfill cannot be queued at all.
The request is bounded by :data:`BOUND_SECONDS`, under a proxy's usual 60 s: a run still going
then is stopped between two deals (what it did stays done; the checkpoint is kept per chunk),
and an incremental sync is handed to the worker, which goes on from the checkpoint. A second
start while a run is going (a double click, a scheduled sync) is refused and says so.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ..admin import PermissionDeniedError
from ..errors import ConfigError, HubSpotIntegrationError
from ..host import HttpResponse
from . import _csrf
from ._html import Markup, el
from ._layout import html_response, layout, when
from ._status import runs_table

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._inbound_records import Outcome
    from ._page import Page

__all__ = ["BOUND_SECONDS", "show_history", "start_sync"]

#: How long a sync started from the page may run in the request.
BOUND_SECONDS = 45.0
_SHOWN = 50
_KINDS = {"incremental": "Incremental", "backfill": "Backfill"}
_ACTIONS = ("created", "updated", "unchanged", "skipped", "failed")
#: Each user's last few results, so the page after the 303 (and a reload of it) can show them.
_RESULTS = "pages.sync_results."
_KEPT = 5

# Syncs started from the pages of this process, per runtime and tenant: a double click's
# second POST finds the first still running before its run is even recorded.
_STARTED: set[tuple[int, str]] = set()
_STARTED_LOCK = threading.Lock()


class PageTimeBound(Exception):
    """The page's time bound stopped a run between two deals (the run's error names this)."""


# ---- reading the page's query and form --------------------------------------------------------


def _filters(page: Page) -> tuple[str | None, int | None, dict[str, str]]:
    """The kind and cursor asked for, and what is wrong with each (shown beside its field)."""
    errors: dict[str, str] = {}
    kind = page.request.query.get("kind") or None
    if kind is not None and kind not in _KINDS:
        errors["kind"] = f"Choose one of: {', '.join(_KINDS)} (or all kinds)."
        kind = None
    raw = page.request.query.get("before") or None
    before = None
    if raw is not None:
        if raw.isascii() and raw.isdigit() and len(raw) <= 18:
            before = int(raw)
        else:
            errors["before"] = "That link to older runs is broken: it needs a run number."
    return kind, before, errors


def _since(form: dict[str, str], backfill: bool) -> tuple[datetime | None, str | None]:
    raw = form.get("since", "").strip()
    if not raw:
        return None, None
    if not backfill:
        return None, "A start date goes with a backfill: tick Backfill, or clear the date."
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None, "Give the date as YYYY-MM-DD, such as 2026-01-31."
    return datetime(day.year, day.month, day.day, tzinfo=UTC), None


# ---- results kept for the page after the redirect ---------------------------------------------


def _results(page: Page) -> list[dict[str, Any]]:
    tenant = page.runtime.tenant(page.admin.tenant_id)
    saved = tenant.store.get_checkpoint(tenant.tenant_id, tenant.portal_id, _RESULTS + str(page.user.id))
    try:
        results = json.loads(saved.value) if saved else []
    except ValueError:
        return []
    return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []


def _keep(page: Page, result: dict[str, Any]) -> HttpResponse:
    """Keep ``result`` for the user and answer 303 to the page that shows it."""
    tenant = page.runtime.tenant(page.admin.tenant_id)
    result["id"] = secrets.token_urlsafe(9)
    results = [result, *_results(page)][:_KEPT]
    tenant.store.set_checkpoint(tenant.tenant_id, tenant.portal_id, _RESULTS + str(page.user.id), json.dumps(results))
    return HttpResponse(303, b"", {"Location": f"{page.base}/history?result={result['id']}#main",
                                   "Cache-Control": "no-store"})


def _counts(result: dict[str, Any]) -> str:
    verb = "would be " if result["dry_run"] else ""
    return ", ".join(f"{result['counts'].get(a, 0)} {verb}{a}" for a in _ACTIONS)


def _notice(page: Page) -> Markup | None:
    wanted = page.request.query.get("result", "")
    result = next((r for r in _results(page) if wanted and r.get("id") == wanted), None)
    if result is None:
        return None
    what = ("Dry run" if result["dry_run"] else "Sync") + (" (backfill)" if result["backfill"] else "")
    tone = "notice"
    if result["outcome"] == "busy":
        tone, lines = "error", [f"{what} not started: a sync is already running",
                                f" (run {result['run_id']})" if result.get("run_id") else "",
                                ". Its counts show in the table when it ends; reload to see them."]
    elif result["outcome"] == "error":
        tone, lines = "error", [f"{what} stopped: {result['error']} Counts so far: {_counts(result)}."]
    elif result["outcome"] == "stopped":
        go_on = ("The worker goes on from there (queued)." if result.get("queued")
                 else "Start it again to go on from there." if result["backfill"] and not result["dry_run"]
                 else "The counts are for the deals it reached.")
        lines = [f"{what} stopped after {BOUND_SECONDS:.0f} s to keep this page responsive: "
                 f"{_counts(result)}. {go_on}"]
    else:
        run = f" (run {result['run_id']})" if result.get("run_id") else ""
        lines = [f"{what} finished{run}: {_counts(result)}.",
                 " Nothing was written." if result["dry_run"] else "",
                 " The failed deals are in the log." if result["counts"].get("failed") else ""]
    return el("div", el("p", lines, " (", when(result.get("at")), ")"), class_=tone, role="status")


# ---- the page -----------------------------------------------------------------------------


def _running(page: Page) -> dict[str, Any] | None:
    return next((r for r in page.admin.history(page.user, limit=10) if r["status"] == "running"), None)


def _start_form(page: Page, token: str | None, running: dict[str, Any] | None,
                errors: dict[str, str]) -> Markup:
    off = token is None
    since_error = errors.get("since")
    return el(
        "form",
        el("input", type="hidden", name=_csrf.FIELD, value=token or ""),
        el("p", "A dry run reads HubSpot and says what a sync would create, update and skip; it writes "
                "nothing. A sync runs now; one still going after ", f"{BOUND_SECONDS:.0f}",
           " s is handed to the worker (a backfill: started again, it goes on where it stopped)."),
        el("p", f"A sync is running now (run {running['id']}, {running['kind']}, started ", when(running["started_at"]),
           "): starting another waits until it ends.", class_="warn") if running else None,
        el("div",
           el("div", el("input", type="checkbox", id="backfill", name="backfill", value="on", disabled=off,
                       checked=page.form.get("backfill") == "on"),
              el("label", "Backfill: every deal in a trigger stage, not just recent changes", for_="backfill"),
              class_="check"),
           el("div", el("label", "Only deals modified since (backfill; optional)", for_="since"),
              el("input", type="date", id="since", name="since", value=page.form.get("since", ""), disabled=off,
                 aria_describedby="since-error" if since_error else None, aria_invalid="true" if since_error else None),
              el("p", since_error, id="since-error", class_="bad") if since_error else None),
           class_="fields"),
        el("p", errors["mode"], class_="bad", role="alert") if errors.get("mode") else None,
        # The dry run first: Enter in the date field presses it, and it changes nothing.
        el("div", el("button", "Dry run (changes nothing)", type="submit", name="mode", value="dry_run",
                     disabled=off, class_="secondary"),
           el("button", "Sync now", type="submit", name="mode", value="sync", disabled=off), class_="actions"),
        method="post", action=f"{page.base}/history/sync")


def _filter_form(page: Page, kind: str | None, errors: dict[str, str]) -> Markup:
    kind_error = errors.get("kind")
    options = [el("option", "All kinds", value="", selected=kind is None)]
    options += [el("option", label, value=value, selected=kind == value) for value, label in _KINDS.items()]
    return el("form",
              el("div", el("div", el("label", "Kind", for_="kind"),
                            el("select", options, id="kind", name="kind", aria_invalid="true" if kind_error else None,
                               aria_describedby="kind-error" if kind_error else None)),
                 el("button", "Show", type="submit", class_="secondary"), class_="actions"),
              el("p", kind_error, id="kind-error", class_="bad") if kind_error else None,
              method="get", action=f"{page.base}/history")


def _pager(page: Page, runs: list[dict[str, Any]], kind: str | None, before: int | None) -> Markup | None:
    def href(**query: object) -> str:
        query = {k: v for k, v in query.items() if v is not None}
        return f"{page.base}/history" + (f"?{urlencode(query)}" if query else "")

    links = []
    if before is not None:
        links.append(el("a", "Newest runs", href=href(kind=kind)))
    if len(runs) > _SHOWN:
        links.append(el("a", "Older runs", href=href(kind=kind, before=runs[_SHOWN - 1]["id"])))
    return el("nav", el("ul", [el("li", link) for link in links], class_="pager"), aria_label="Pages of runs") \
        if links else None


def _render(page: Page, status: int = 200, form_errors: dict[str, str] | None = None) -> HttpResponse:
    kind, before, errors = _filters(page)
    runs = page.admin.history(page.user, kind=kind, limit=_SHOWN + 1, before=before)
    running = _running(page)
    token = page.csrf_token() if page.can_manage else None
    where = "Older sync runs" if before is not None else "Sync runs, newest first"
    body = [
        _notice(page),
        None if token else el("p", "You can read the sync history; starting a sync needs the "
                                   "manage_integrations permission.", class_="notice"),
        el("h2", "Start a sync"),
        _start_form(page, token, running, form_errors or {}),
        el("h2", "Runs"),
        _filter_form(page, kind, errors),
        el("p", errors["before"], class_="error", role="alert") if errors.get("before") else None,
        runs_table(runs[:_SHOWN], where + (f" ({_KINDS[kind].lower()} only)" if kind else ""),
                   "No older runs." if before is not None else "No sync has run yet."),
        _pager(page, runs, kind, before),
    ]
    status = 400 if errors and status == 200 else status
    return html_response(status, layout("Sync history", body, base=page.base, current="/history"))


def show_history(page: Page) -> HttpResponse:
    """The sync history page."""
    return _render(page)


def _bound(counts: dict[str, int]) -> Callable[[Outcome], None]:
    deadline = time.monotonic() + BOUND_SECONDS

    def progress(outcome: Outcome) -> None:
        counts[outcome.action] = counts.get(outcome.action, 0) + 1
        if time.monotonic() >= deadline:
            raise PageTimeBound(f"stopped by the admin page after {BOUND_SECONDS:.0f} s; what it did is kept "
                                "and the next run goes on from its checkpoint")

    return progress


def start_sync(page: Page) -> HttpResponse:
    """Run a sync or a dry run from the page's form, then show the page with its counts (303,
    so a reload does not start another); bad form values show beside their field (400)."""
    mode = page.form.get("mode", "")
    backfill = page.form.get("backfill") == "on"
    since, since_error = _since(page.form, backfill)
    errors = {"since": since_error} if since_error else {}
    if mode not in ("sync", "dry_run"):
        errors["mode"] = "Choose Dry run or Sync now."
    if errors:
        return _render(page, 400, errors)
    dry_run = mode == "dry_run"
    result: dict[str, Any] = {"dry_run": dry_run, "backfill": backfill, "at": page.runtime.clock().isoformat(),
                              "counts": {}, "run_id": None, "outcome": "finished"}
    key = (id(page.runtime), page.admin.tenant_id)
    with _STARTED_LOCK:
        running = _running(page)
        busy = key in _STARTED or running is not None
        if not busy:
            _STARTED.add(key)
    if busy:
        return _keep(page, {**result, "outcome": "busy", "run_id": running["id"] if running else None})
    counts: dict[str, int] = {}
    try:
        data = page.admin.run_sync(page.user, backfill=backfill, since=since, dry_run=dry_run,
                                   progress=_bound(counts))
        result.update(counts={a: data[a] for a in _ACTIONS}, run_id=data["run_id"])
    except PageTimeBound:
        result.update(outcome="stopped", counts=counts)
        if not (dry_run or backfill):
            result["queued"] = page.admin.run_sync(page.user, wait=False)["job_id"]
    except (PermissionDeniedError, ConfigError):
        raise
    except HubSpotIntegrationError as exc:
        result.update(outcome="error", counts=counts, error=str(exc))
    finally:
        with _STARTED_LOCK:
            _STARTED.discard(key)
    return _keep(page, result)
