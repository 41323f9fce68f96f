"""The status page's chart: sync activity and failures per day over the last seven days.

Server-rendered SVG (no script, no library), with a title and description for screen readers
and the same numbers as a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

import attrs

from ._html import Markup, el

if TYPE_CHECKING:
    from ..store import SqlStateStore

__all__ = ["DAYS", "DayCounts", "chart", "chart_table", "day_counts"]

DAYS = 7
_W, _H = 720, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 36, 40
_SYNCED, _FAILED = "#0b57b0", "#b42318"


@attrs.frozen
class DayCounts:
    """One day's runs: records created or updated, records failed, runs, failed runs."""

    day: date
    synced: int = 0
    failed: int = 0
    runs: int = 0
    failed_runs: int = 0


def day_counts(store: SqlStateStore, tenant_id: str, now: datetime) -> list[DayCounts]:
    """The tenant's sync runs summed into the seven days (UTC) ending with ``now``'s, by one
    aggregate query in the store."""
    first = now.astimezone(UTC).date() - timedelta(days=DAYS - 1)
    days = [first + timedelta(days=n) for n in range(DAYS)]
    edges = [datetime.combine(first + timedelta(days=n), time(), UTC) for n in range(DAYS + 1)]
    return [DayCounts(day, *totals) for day, totals in zip(days, store.run_totals(tenant_id, edges), strict=True)]


def _label(day: date) -> str:
    return f"{day:%a} {day.day}"


def chart(days: Sequence[DayCounts]) -> Markup:
    """The bar chart: records synced and records failed, one pair of bars a day."""
    top = max([1, *(d.synced for d in days), *(d.failed for d in days)])
    plot_h = _H - _TOP - _BOTTOM
    slot = (_W - _LEFT - _RIGHT) / max(len(days), 1)
    bar = min(28.0, slot / 3)

    def y(value: int) -> float:
        return _TOP + plot_h - plot_h * value / top

    parts: list[Markup] = []
    for tick in sorted({0, top // 2, top}):
        parts.append(el("line", x1=_LEFT, x2=_W - _RIGHT, y1=f"{y(tick):.1f}", y2=f"{y(tick):.1f}",
                        stroke="#d5d9de"))
        parts.append(el("text", tick, x=_LEFT - 6, y=f"{y(tick) + 4:.1f}", text_anchor="end", font_size="12"))
    for n, d in enumerate(days):
        x = _LEFT + slot * n + slot / 2
        for offset, value, colour, what in ((-bar, d.synced, _SYNCED, "synced"), (0, d.failed, _FAILED, "failed")):
            parts.append(el("rect", el("title", f"{_label(d.day)}: {value} {what}"), x=f"{x + offset:.1f}",
                            y=f"{y(value):.1f}", width=f"{bar:.1f}", height=f"{_TOP + plot_h - y(value):.1f}",
                            fill=colour))
        parts.append(el("text", _label(d.day), x=f"{x:.1f}", y=_H - _BOTTOM + 18, text_anchor="middle",
                        font_size="12"))
    legend = [el("rect", x=_LEFT, y=8, width=14, height=14, fill=_SYNCED),
              el("text", "records synced", x=_LEFT + 20, y=20, font_size="13"),
              el("rect", x=_LEFT + 150, y=8, width=14, height=14, fill=_FAILED),
              el("text", "records failed", x=_LEFT + 170, y=20, font_size="13")]
    total_synced, total_failed = sum(d.synced for d in days), sum(d.failed for d in days)
    return el("svg", el("title", "Sync activity, last 7 days", id="chart-title"),
              el("desc", f"{total_synced} records synced and {total_failed} failed over seven days; "
                         "the table below gives each day.", id="chart-desc"),
              legend, parts, xmlns="http://www.w3.org/2000/svg", viewBox=f"0 0 {_W} {_H}", role="img",
              aria_labelledby="chart-title chart-desc", font_family="system-ui, sans-serif", fill="#1b1f24")


def chart_table(days: Sequence[DayCounts]) -> Markup:
    """The chart's numbers, for anyone who cannot see it."""
    head = el("tr", [el("th", h, scope="col") for h in ("Day", "Runs", "Failed runs", "Records synced",
                                                         "Records failed")])
    rows = [el("tr", el("th", f"{d.day:%a %Y-%m-%d}", scope="row"),
               [el("td", v, class_="num") for v in (d.runs, d.failed_runs, d.synced, d.failed)]) for d in days]
    return el("div", el("table", el("caption", "Sync activity per day (UTC)"), el("thead", head), el("tbody", rows)),
              class_="table")
