"""The pages' shared layout: a skip link, the navigation, inline CSS, and the HTML response.

Everything a page needs comes in its one answer: the CSS is inline and no asset is fetched,
from the host or the internet. The Content-Security-Policy allows no script at all and only
inline styles, so even a value that escaped escaping could not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..host import HttpResponse
from ._html import Child, Markup, el, join, raw

__all__ = ["HEADERS", "NAV", "html_response", "layout", "message_page", "when"]

#: (label, path below the pages' base); the base itself is the status page.
NAV: tuple[tuple[str, str], ...] = (("Status", ""), ("Activity", "/activity"), ("Sync history", "/history"),
                                   ("Conflicts", "/conflicts"), ("Deal review", "/deals"), ("Settings", "/settings"))

HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_CSS = raw("""
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f6f7f9}
a{color:#0b57b0}
:focus-visible{outline:3px solid #0b57b0;outline-offset:2px}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.5rem 1rem;z-index:2}
.skip:focus{left:.5rem}
header{background:#1b2a3a;color:#fff;padding:.75rem 1rem}
header p{margin:0;font-weight:600}
nav ul{list-style:none;margin:.5rem 0 0;padding:0;display:flex;flex-wrap:wrap;gap:.25rem 1rem}
nav a{color:#fff;text-decoration:none;padding:.25rem 0;display:inline-block}
nav a[aria-current=page]{border-bottom:3px solid #7fb3ff}
nav a:focus-visible{outline-color:#7fb3ff}
main{padding:1rem;max-width:75rem;margin:0 auto}
h1{font-size:1.5rem;margin:.25rem 0 1rem}
h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:.75rem}
.card{background:#fff;border:1px solid #d5d9de;border-radius:6px;padding:.75rem 1rem}
.card h2,.card h3{margin:0 0 .25rem;font-size:1rem}
.card p{margin:.25rem 0}
.big{font-size:1.4rem;font-weight:600}
.ok{color:#1a7f37}.bad{color:#b42318}.warn{color:#8a5300}
.table{overflow-x:auto;background:#fff;border:1px solid #d5d9de;border-radius:6px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #e4e7eb;vertical-align:top}
caption{text-align:left;padding:.4rem .6rem;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}
.notice{background:#e8f1fc;border:1px solid #9cc2f0;border-radius:6px;padding:.75rem 1rem}
.error{background:#fdecea;border:1px solid #f0a49c;border-radius:6px;padding:.75rem 1rem}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:.75rem;margin:.5rem 0}
@media (max-width:40rem){.sides{grid-template-columns:1fr}}
.side{border:1px solid #e4e7eb;border-radius:6px;padding:.5rem .75rem}
.side h4{margin:0;font-size:.95rem}
.value{font-family:ui-monospace,monospace;overflow-wrap:anywhere;white-space:pre-wrap}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end}
.actions form{margin:0}
button{font:inherit;padding:.45rem .9rem;border-radius:6px;border:1px solid #0b57b0;background:#0b57b0;color:#fff;
 min-height:44px;cursor:pointer}
button.secondary{background:#fff;color:#0b57b0}
button[disabled]{background:#c9ced6;border-color:#c9ced6;color:#4a525c;cursor:not-allowed}
label{display:block;font-weight:600;margin-bottom:.2rem}
input[type=text]{font:inherit;padding:.4rem;border:1px solid #8a939e;border-radius:6px;min-height:44px;width:100%;
 max-width:20rem}
.chart svg{width:100%;height:auto;max-width:48rem;display:block}
.muted{color:#4a525c}
select,input[type=date]{font:inherit;padding:.4rem;border:1px solid #8a939e;border-radius:6px;min-height:44px;
 background:#fff;max-width:100%}
.fields{display:flex;flex-wrap:wrap;gap:.75rem 1.5rem;align-items:flex-start;margin:.5rem 0}
.check{display:flex;gap:.5rem;align-items:center;min-height:44px}
.check input{width:1.25rem;height:1.25rem;margin:0}
.check label{margin:0}
.pager{list-style:none;display:flex;gap:1rem;padding:0}
.pager a{display:inline-block;padding:.6rem 0}
select,textarea,input[type=password]{font:inherit;padding:.4rem;border:1px solid #8a939e;border-radius:6px;
 min-height:44px;width:100%;max-width:20rem;background:#fff}
textarea{max-width:40rem;font-family:ui-monospace,monospace}
fieldset{border:1px solid #d5d9de;border-radius:6px;margin:1rem 0;padding:.25rem 1rem;background:#fff;min-width:0}
legend{font-weight:600;padding:0 .25rem}
.field{margin:.75rem 0}.path{font-weight:400;font-size:.85rem;overflow-wrap:anywhere}
.hint{margin:.2rem 0;color:#4a525c;font-size:.9rem;max-width:40rem}
.field-error{margin:.2rem 0;color:#b42318;font-weight:600}
[aria-invalid=true]{border:2px solid #b42318}
""")


def when(iso_time: str | None) -> Markup:
    """An ISO time as a ``<time>`` element readable at a glance (UTC, to the minute)."""
    if not iso_time:
        return el("span", "never", class_="muted")
    try:
        moment = datetime.fromisoformat(iso_time)
    except ValueError:
        return el("span", iso_time)
    return el("time", moment.strftime("%Y-%m-%d %H:%M UTC"), datetime=iso_time)


def layout(title: str, body: Child, *, base: str, current: str | None) -> Markup:
    """A whole page: ``current`` is the NAV path of the page shown (None: no page of the nav)."""
    links = [el("li", el("a", label, href=base + path, aria_current="page" if path == current else None))
             for label, path in NAV]
    return join(raw("<!DOCTYPE html>"), el(
        "html",
        el("head", el("meta", charset="utf-8"),
           el("meta", name="viewport", content="width=device-width, initial-scale=1"),
           el("title", f"{title} · HubSpot integration"), el("style", _CSS)),
        el("body",
           el("a", "Skip to content", href="#main", class_="skip"),
           el("header", el("p", "HubSpot integration"),
              el("nav", el("ul", links), aria_label="HubSpot integration pages")),
           el("main", el("h1", title), body, id="main", tabindex="-1")),
        lang="en"))


def html_response(status: int, page: Markup, extra: dict[str, str] | None = None) -> HttpResponse:
    """``page`` as the route's answer, with the pages' security headers."""
    return HttpResponse(status, page.encode(), {**HEADERS, **(extra or {})})


def message_page(status: int, title: str, paragraphs: Sequence[Child], *, base: str) -> HttpResponse:
    """A page that only says something: a refusal, an expired form, a tenant not enabled."""
    body = el("div", [el("p", p) for p in paragraphs], class_="error" if status >= 400 else "notice")
    return html_response(status, layout(title, body, base=base, current=None))
