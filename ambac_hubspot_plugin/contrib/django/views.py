"""The plugin's routes (``ambac_http_routes``) as Django views: :func:`plugin_urlpatterns`.

Each view turns the Django request into the contract's framework-neutral
:class:`~ambac_hubspot_plugin.host.HttpRequest` (the full public URL, the raw body bytes, path
parameters, the query, the signed-in host user) and answers the route's
:class:`~ambac_hubspot_plugin.host.HttpResponse`.

- A route with a permission (the admin and status routes) uses the host's authentication
  (``request.user``, set by the host's authentication middleware) and checks the permission with
  the host's tenant permissions before the plugin runs: 401 for anonymous requests, 403 without
  the permission. The plugin then runs as that user, inside the user's tenant context.
- A route without one (webhooks, the CRM card) authenticates HubSpot's signature itself: its
  view is CSRF-exempt (HubSpot sends no token) and outside ``ATOMIC_REQUESTS``: the plugin
  answers 200 only once the delivery is committed in its own store, and a host transaction
  around it could only roll back work the plugin has already acknowledged.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pluggy
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest as DjangoRequest
from django.http import HttpResponse as DjangoResponse
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt
from Tracker.utils.tenant_context import tenant_context

from ...host import HttpRequest, HttpResponse, HttpRoute, User
from .services import DjangoHostServices, acting_as, user_record

__all__ = ["WEBHOOK_ROUTE", "plugin_urlpatterns", "route_view", "serve_signed"]

logger = logging.getLogger(__name__)

WEBHOOK_ROUTE = "hubspot-webhooks"
"""The plugin's webhook route: a delivery it answered 200 is stored, and nudges a drain."""

View = Callable[..., DjangoResponse]


def _json(status: int, error: str, message: str, headers: Mapping[str, str] | None = None) -> DjangoResponse:
    response = DjangoResponse(json.dumps({"error": error, "message": message}).encode(), status=status,
                              content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _answer(response: HttpResponse) -> DjangoResponse:
    answer = DjangoResponse(response.body, status=response.status)
    for name, value in response.headers.items():
        if name.lower() != "content-length":  # Django sets the true length itself
            answer[name] = value
    return answer


def _host_user(request: DjangoRequest) -> Any:
    """The signed-in host user row, or None (anonymous, or no authentication middleware)."""
    row = getattr(request, "user", None)
    if row is None or not getattr(row, "is_authenticated", False):
        return None
    return row


def _tenant_scope(tenant_id: str | None) -> AbstractContextManager[object]:
    """The host's tenant context for ``tenant_id``; none for a key that names no tenant (a
    webhook URL anyone can call: the plugin answers 404 for it)."""
    if not tenant_id:
        return nullcontext()
    try:
        uuid.UUID(tenant_id)
    except ValueError:
        return nullcontext()
    return tenant_context(tenant_id)


def _plugin_request(request: DjangoRequest, user: User | None, params: Mapping[str, str]) -> HttpRequest:
    return HttpRequest(
        method=request.method or "GET",
        url=request.build_absolute_uri(request.get_full_path()),  # with the host's script prefix
        headers=request.headers,  # Django's are looked up ignoring case, as HTTP requires
        body=request.body,  # the raw bytes as received: signatures are computed over them
        user=user,
        path_params=dict(params),
        query={name: request.GET[name] for name in request.GET},
    )


def _call(route: HttpRoute, request: HttpRequest) -> DjangoResponse:
    try:
        response = route.handler(request)
    except Exception:
        # 500 and a log line, as the host answers any failing view; a webhook sender retries.
        logger.exception("route %r failed on %s %s", route.name, request.method, request.url)
        return _json(500, "plugin_failed", "the plugin failed to handle this request")
    if not isinstance(response, HttpResponse):
        logger.error("route %r returned %r, not an HttpResponse", route.name, response)
        return _json(500, "plugin_failed", "the plugin returned an invalid response")
    return _answer(response)


def _serve_user(route: HttpRoute, request: DjangoRequest, params: Mapping[str, str]) -> DjangoResponse:
    """A route behind the host's authentication and ``route.permission``."""
    assert route.permission is not None
    row = _host_user(request)
    if row is None:
        return _json(401, "unauthenticated", "sign in first", {"WWW-Authenticate": "Bearer"})
    if getattr(row, "tenant_id", None) is None:
        return _json(403, "forbidden", "this user belongs to no tenant; the HubSpot integration "
                     "is configured per tenant")
    user = user_record(row)
    if not DjangoHostServices(user.tenant_id).has_permission(user, route.permission):
        return _json(403, "forbidden", f"this needs the {route.permission!r} permission")
    with tenant_context(user.tenant_id), acting_as(user):
        return _call(route, _plugin_request(request, user, params))


def serve_signed(route: HttpRoute, request: DjangoRequest, params: Mapping[str, str]) -> DjangoResponse:
    """A route that checks HubSpot's signature itself; the tenant is the URL's (also the host's
    own integration webhook view, through the adapter)."""
    with _tenant_scope(params.get("tenant_id")):
        response = _call(route, _plugin_request(request, None, params))
    if route.name == WEBHOOK_ROUTE and response.status_code == 200:
        from .tasks import nudge  # a stored delivery: drain it now, not at the next beat

        nudge()
    return response


def route_view(routes: Sequence[HttpRoute]) -> View:
    """One Django view serving ``routes``: the plugin's routes of one path, one per method."""
    by_method = {route.method.upper(): route for route in routes}
    allowed = ", ".join(sorted(by_method))

    def view(request: DjangoRequest, **params: str) -> DjangoResponse:
        route = by_method.get((request.method or "").upper())
        if route is None:
            return _json(405, "method_not_allowed", f"{request.method} is not allowed here", {"Allow": allowed})
        if route.permission is None:
            return serve_signed(route, request, params)
        return _serve_user(route, request, params)

    view.__name__ = view.__qualname__ = f"hubspot_{routes[0].name.replace('-', '_')}"
    if all(route.permission is None for route in routes):
        view = csrf_exempt(view)
        for alias in settings.DATABASES:
            view = transaction.non_atomic_requests(using=alias)(view)
    return view


def _django_path(route_path: str) -> str:
    """``hubspot/deals/{deal_id}/order`` as Django's ``hubspot/deals/<str:deal_id>/order``."""
    return "/".join(f"<str:{part[1:-1]}>" if part.startswith("{") and part.endswith("}") else part
                    for part in route_path.strip("/").split("/"))


def _grouped(pm: pluggy.PluginManager) -> Iterator[list[HttpRoute]]:
    by_path: dict[str, list[HttpRoute]] = {}
    for routes in pm.hook.ambac_http_routes():
        for route in routes:
            if not isinstance(route, HttpRoute):
                raise TypeError(f"ambac_http_routes returned {route!r}, not an HttpRoute")
            same = by_path.setdefault(_django_path(route.path), [])
            if any(other.method.upper() == route.method.upper() for other in same):
                raise ValueError(f"two routes claim {route.method} {route.path} ({route.name!r})")
            same.append(route)
    yield from by_path.values()


def plugin_urlpatterns(pm: pluggy.PluginManager) -> list[URLPattern]:
    """URL patterns of every route the plugins of ``pm`` offer, relative to where they are
    included (each named after its first route, e.g. ``hubspot-status``)."""
    return [path(_django_path(routes[0].path), route_view(routes), name=routes[0].name)
            for routes in _grouped(pm)]
