"""The admin pages: server-rendered HTML for people who run the integration in a browser.

They are plugin routes like the JSON admin API (``ambac_http_routes``), mounted by any host
under ``hubspot/admin``: the status page at the base, the log and dead
letters at ``/activity``, the sync history at ``/history``, the conflicts at ``/conflicts``, the
deal review at ``/deals``, the settings at ``/settings``. Every
page needs ``view_integrations`` and every action (a POST) ``manage_integrations``, a valid
CSRF token and a same-origin ``Origin`` (:mod:`._csrf`); the host checks the route's permission
first and each page checks again, answering a refusal page and changing nothing. Each route
tells its host that it checks CSRF itself (``verifies_csrf``) and how the host's own refusals
should look (``refusal``: a page too). Data comes only through
:class:`~ambac_hubspot_plugin.admin.Admin`, which checks permissions and scrubs secrets; HTML
comes only from :mod:`._html`, which escapes every value. No JavaScript, no fetched asset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from ..admin import Admin, PermissionDeniedError
from ..errors import ConfigError, HubSpotIntegrationError
from ..host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS, HttpRequest, HttpResponse, HttpRoute
from . import _csrf
from ._layout import message_page
from ._page import Page

if TYPE_CHECKING:
    from ..admin import AdminRuntime

__all__ = ["BASE_PATH", "Page", "page_routes"]

#: Where the pages live below the host's mount point.
BASE_PATH = "hubspot/admin"
_MAX_FORM_BYTES = 64 * 1024


Handler = Callable[[Page], HttpResponse]


def _base(request: HttpRequest) -> str:
    """The pages' base path as the client sees it (whatever the host's mount prefix)."""
    path = urlsplit(request.url).path
    at = path.find("/" + BASE_PATH)
    return path[: at + len(BASE_PATH) + 1] if at >= 0 else "/integrations/" + BASE_PATH


def _form(request: HttpRequest) -> dict[str, str]:
    if request.method != "POST" or len(request.body) > _MAX_FORM_BYTES:
        return {}
    try:
        text = request.body.decode()
    except UnicodeDecodeError:
        return {}
    return dict(parse_qsl(text, keep_blank_values=True))


def _serve(runtime: AdminRuntime, name: str, permission: str,
           handler: Handler) -> Callable[[HttpRequest], HttpResponse]:
    def serve(request: HttpRequest) -> HttpResponse:
        base = _base(request)
        user = request.user
        if user is None:
            return message_page(401, "Sign in first", ["Sign in to the host to see the HubSpot integration."],
                                base=base)
        if not runtime.is_enabled(user.tenant_id):
            return message_page(409, "HubSpot is not enabled", [
                "The HubSpot integration is not enabled for this tenant.",
                "Enable it under Settings > Integrations > HubSpot."], base=base)
        admin = Admin(runtime, runtime.tenant(user.tenant_id).host)
        try:
            # Before reading the request: a refused user learns nothing from it.
            admin.require(user, VIEW_INTEGRATIONS, "The HubSpot admin pages")
            admin.require(user, permission, f"The {name} page")
            if request.method == "POST" and len(request.body) > _MAX_FORM_BYTES:
                return message_page(413, "That form is too large", [
                    f"Nothing was changed: a form may hold {_MAX_FORM_BYTES // 1024} KB, this one held "
                    f"{len(request.body) // 1024} KB.", "Shorten the longest field and try again."], base=base)
            page = Page(admin, runtime, request, user, base, _form(request))
            if request.method == "POST" and not (_csrf.same_origin(request.url, request.headers)
                                                 and page.csrf_valid()):
                return message_page(403, "This form has expired", [
                    "Nothing was changed: the form was older than a few hours, or did not come "
                    "from this site.", "Go back, reload the page and try again."], base=base)
            return handler(page)
        except PermissionDeniedError as exc:
            return message_page(403, "Not allowed", [str(exc), "Nothing was changed."], base=base)
        except ConfigError as exc:
            return message_page(400, "That did not work", [str(exc), "Nothing was changed."], base=base)
        except HubSpotIntegrationError as exc:
            return message_page(502, "HubSpot did not answer as expected", [str(exc)], base=base)

    return serve


_REFUSAL_TITLES = {401: "Sign in first", 403: "Not allowed", 404: "Not found", 405: "Not allowed here"}


def refusal(request: HttpRequest, status: int, message: str) -> HttpResponse:
    """The host's refusal of a page request (``HttpRoute.refusal``), as a page."""
    if status >= 500:
        return message_page(status, "Something went wrong", [
            "The HubSpot integration could not show this page; the error is logged.",
            "Try again in a moment."], base=_base(request))
    title = _REFUSAL_TITLES.get(status, "That did not work")
    sentence = message[:1].upper() + message[1:].rstrip(".") + "."
    return message_page(status, title, [sentence, "Nothing was changed."], base=_base(request))


def page_routes(runtime: AdminRuntime) -> tuple[HttpRoute, ...]:
    """Every admin page and page action, bound to ``runtime``."""
    from ._activity import replay_all, replay_one, show_activity
    from ._conflicts import resolve, show_conflicts
    from ._deals import FRAMED_ROUTES, create_order, framed_by_hubspot, show_deal
    from ._history import show_history, start_sync
    from ._settings import save_settings, show_settings, test_connection
    from ._status import show_status

    table: tuple[tuple[str, str, str, str, Handler], ...] = (
        ("hubspot-page-status", "GET", BASE_PATH, VIEW_INTEGRATIONS, show_status),
        ("hubspot-page-activity", "GET", f"{BASE_PATH}/activity", VIEW_INTEGRATIONS, show_activity),
        ("hubspot-page-activity-replay", "POST", f"{BASE_PATH}/activity/dead-letters/{{job_id}}/replay",
         MANAGE_INTEGRATIONS, replay_one),
        ("hubspot-page-activity-replay-all", "POST", f"{BASE_PATH}/activity/dead-letters/replay",
         MANAGE_INTEGRATIONS, replay_all),
        ("hubspot-page-history", "GET", f"{BASE_PATH}/history", VIEW_INTEGRATIONS, show_history),
        ("hubspot-page-history-sync", "POST", f"{BASE_PATH}/history/sync", MANAGE_INTEGRATIONS, start_sync),
        ("hubspot-page-conflicts", "GET", f"{BASE_PATH}/conflicts", VIEW_INTEGRATIONS, show_conflicts),
        ("hubspot-page-conflict-resolve", "POST", f"{BASE_PATH}/conflicts/{{conflict_id}}/resolve",
         MANAGE_INTEGRATIONS, resolve),
        ("hubspot-page-deals", "GET", f"{BASE_PATH}/deals", VIEW_INTEGRATIONS, show_deal),
        ("hubspot-page-deal", "GET", f"{BASE_PATH}/deals/{{deal_id}}", VIEW_INTEGRATIONS, show_deal),
        ("hubspot-page-deal-create", "POST", f"{BASE_PATH}/deals/{{deal_id}}/order", MANAGE_INTEGRATIONS,
         create_order),
        ("hubspot-page-settings", "GET", f"{BASE_PATH}/settings", VIEW_INTEGRATIONS, show_settings),
        ("hubspot-page-settings-save", "POST", f"{BASE_PATH}/settings", MANAGE_INTEGRATIONS, save_settings),
        ("hubspot-page-settings-test", "POST", f"{BASE_PATH}/settings/test", MANAGE_INTEGRATIONS,
         test_connection),
    )
    routes = []
    for name, method, path, permission, handler in table:
        serve = _serve(runtime, name, permission, handler)
        # The CRM card opens the deal pages inside HubSpot: only they may be framed there.
        routes.append(HttpRoute(name, method, path, permission,
                                framed_by_hubspot(serve, _base) if name in FRAMED_ROUTES else serve,
                                verifies_csrf=True, refusal=refusal))
    return tuple(routes)
