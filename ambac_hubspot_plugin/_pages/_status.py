"""The status page: is HubSpot connected and in sync, what failed lately, and the last 7 days."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..host import HttpResponse
from ._chart import chart, chart_table, day_counts
from ._html import Child, Markup, el
from ._layout import html_response, layout, when

if TYPE_CHECKING:
    from ..store import SqlStateStore
    from ._page import Page

__all__ = ["runs_table", "show_status"]

_CREDENTIALS = {"private_app": "Private app token (legacy)", "project_app": "Project-based app token",
                "service_key": "Service key", "oauth": "OAuth app"}


def _log_counts(store: SqlStateStore, tenant_id: str, since: datetime) -> tuple[int, int]:
    """Errors and warnings logged since ``since`` (one aggregate query)."""
    from ..store import LogLevel

    counts = store.log_counts(tenant_id, since=since)
    return counts.get(LogLevel.ERROR, 0), counts.get(LogLevel.WARNING, 0)


def _card(title: str, big: Child, *lines: Child, tone: str | None = None) -> Markup:
    return el("section", el("h2", title), el("p", big, class_=f"big {tone}" if tone else "big"),
              [el("p", line) for line in lines if line is not None], class_="card")


def _cards(page: Page, status: dict[str, Any], settings: dict[str, Any], counts: tuple[int, int]) -> Markup:
    connection = status["connection"]
    state = connection["state"]
    check = connection["last_check"]
    failed_checks = [c["name"] for c in (check or {}).get("checks", []) if c["status"] == "failed"]
    kind = str(settings.get("credentials", {}).get("kind", ""))
    sync, webhooks, records = status["sync"], status["webhooks"], status["records"]
    queue = {state_: sum(kinds.values()) for state_, kinds in status["queue"].items()}
    errors, warnings = counts
    return el("div", [
        _card("Connection", {"ok": "Connected", "failed": "Connection failed"}.get(state, "Never checked"),
              f"Credential: {_CREDENTIALS.get(kind, kind or 'unknown')}",
              f"Portal {status['portal_id']}",
              el("span", "Last check: ", when(check["checked_at"] if check else None)),
              f"Failed checks: {', '.join(failed_checks)}" if failed_checks else None,
              tone={"ok": "ok", "failed": "bad"}.get(state, "warn")),
        _card("Last successful sync", when(sync["last_success_at"]),
              "A sync is running now" if sync["running"] else "No sync running",
              f"Every {sync['interval_seconds'] // 60} min" if sync["interval_seconds"] >= 60
              else f"Every {sync['interval_seconds']} s"),
        _card("Errors, last 24 h", str(errors), f"Warnings: {warnings}",
              tone="bad" if errors else "ok"),
        _card("Webhooks", "Set up" if webhooks["configured"] else "Not set up",
              el("span", "Last delivery: ", when(webhooks["last_event_at"])),
              f"Waiting: {webhooks['waiting']['deliveries']} deliveries ({webhooks['waiting']['events']} events)",
              f"Unreadable: {webhooks['unreadable_deliveries']}",
              tone="bad" if webhooks["unreadable_deliveries"] else None),
        _card("Queue", f"{queue.get('pending', 0)} waiting", f"Running: {queue.get('running', 0)}",
              f"Failed for good (dead letters): {status['dead_letters']['count']}",
              tone="bad" if status["dead_letters"]["count"] else None),
        _card("Records", f"{records['in_sync']} in sync", f"Failing: {records['failing']}",
              f"Outside the trigger stages: {records['excluded']['count']}"
              if records["excluded"]["count"] is not None else None),
        _card("Conflicts", f"{status['conflicts']['open']} open",
              el("a", "Review conflicts", href=f"{page.base}/conflicts"),
              tone="warn" if status["conflicts"]["open"] else None),
    ], class_="cards")


def _alerts(status: dict[str, Any]) -> Markup | None:
    alerts = [a for a in status["alerts"] if a.get("open")]
    if not alerts:
        return None
    return el("div", el("h2", "Open alerts"),
              el("ul", [el("li", el("strong", a["kind"]), ": ", a.get("detail") or "", " (since ",
                           when(a.get("opened_at")), ")") for a in alerts]), class_="error", role="status")


def runs_table(runs: list[dict[str, Any]], caption: str, empty: str) -> Markup:
    """Sync runs (as :meth:`Admin.history` gives them) as a table: the status and history pages'."""
    head = el("tr", [el("th", h, scope="col") for h in ("Started", "Kind", "Outcome", "Created", "Updated",
                                                         "Skipped", "Failed", "Duration")])
    rows = []
    for run in runs:
        duration = run["duration_seconds"]
        rows.append(el("tr", el("td", when(run["started_at"])), el("td", run["kind"]),
                       el("td", run["status"], el("br") if run["error"] else None, run["error"],
                          class_="bad" if run["status"] == "failed" or run["failed"] else None),
                       [el("td", run[k], class_="num") for k in ("created", "updated", "skipped", "failed")],
                       el("td", "—" if duration is None else f"{duration:.1f} s", class_="num")))
    if not rows:
        rows = [el("tr", el("td", empty, colspan="8"))]
    return el("div", el("table", el("caption", caption), el("thead", head), el("tbody", rows)), class_="table")


def show_status(page: Page) -> HttpResponse:
    """The status page: cards for each part of the integration, alerts, the chart, recent runs."""
    status = page.admin.status(page.user)
    settings = page.admin.settings(page.user)
    tenant = page.runtime.tenant(page.admin.tenant_id)
    now = page.runtime.clock()
    days = day_counts(tenant.store, tenant.tenant_id, now)
    counts = _log_counts(tenant.store, tenant.tenant_id, now - timedelta(hours=24))
    body = [
        _alerts(status),
        _cards(page, status, settings, counts),
        el("h2", "Sync activity, last 7 days"),
        el("div", chart(days), class_="chart"),
        el("details", el("summary", "Show the numbers"), chart_table(days)),
        el("h2", "Recent runs"),
        runs_table(status["recent_runs"], "Recent sync runs", "No sync has run yet."),
        el("p", el("a", "All sync runs", href=f"{page.base}/history")),
    ]
    return html_response(200, layout("Status", body, base=page.base, current=""))
