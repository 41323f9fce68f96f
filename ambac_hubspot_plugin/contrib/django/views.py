"""The plugin's routes (``ambac_http_routes``) as Django views: :func:`plugin_urlpatterns`.

Each view turns the Django request into the contract's framework-neutral
:class:`~ambac_hubspot_plugin.host.HttpRequest` (the full public URL, the raw body bytes, path
parameters, the query, the signed-in host user) and answers the route's
:class:`~ambac_hubspot_plugin.host.HttpResponse`.

- A route with a permission (the admin and status routes) uses the host's authentication and
  checks the permission with the host's tenant permissions before the plugin runs: 401 for
  anonymous requests, 403 without the permission. The plugin then runs as that user, inside the
  user's tenant context, outside ``ATOMIC_REQUESTS``: the host services commit each write (or
  group of writes, ``grouped_writes``) in a transaction of their own, and the plugin records a
  link in its store, writes HubSpot and tells listeners only after that commit; inside the
  request's transaction the host could still roll back an order the plugin has linked.
  The host's authentication is its API's: the authenticators of DRF's
  ``DEFAULT_AUTHENTICATION_CLASSES`` when ``rest_framework`` is installed (Ambac Tracker: browser
  sessions and API tokens), so a script calls the routes with the same token as the host's API;
  a session is held to Django's CSRF check there, a token is not, as in the host's API. Without
  DRF it is ``request.user`` (the host's authentication middleware) and Django's CSRF check.
  A route that ``verifies_csrf`` (the admin pages: their forms carry the plugin's own token,
  bound to the user and tenant, and must come from the same origin) skips Django's check.
  A route with a ``refusal`` (the admin pages) gets its refusals (401, 403, 405, 500) in the
  route's own form, an HTML page; the others get JSON.
- A route without one (webhooks, the CRM card) authenticates HubSpot's signature itself: its
  view is CSRF-exempt (HubSpot sends no token) and outside ``ATOMIC_REQUESTS``: the plugin
  answers 200 only once the delivery is committed in its own store, and a host transaction
  around it could only roll back work the plugin has already acknowledged.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NamedTuple

import pluggy
from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest as DjangoRequest
from django.http import HttpResponse as DjangoResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt
from Tracker.utils.tenant_context import tenant_context

from ...host import HttpRequest, HttpResponse, HttpRoute, User
from .services import DjangoHostServices, acting_as, user_record
from .startup import not_started_here

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


class _Refused(NamedTuple):
    """The bridge's refusal of a request, before the route runs."""

    status: int
    error: str
    message: str
    headers: Mapping[str, str] = {}


def _refuse(route: HttpRoute, request: HttpRequest, refused: _Refused) -> DjangoResponse:
    """``refused`` as JSON, or as the route's own refusal (``HttpRoute.refusal``: a page)."""
    if route.refusal is not None:
        try:
            shown = route.refusal(request, refused.status, refused.message)
        except Exception:
            logger.exception("route %r failed to render its refusal", route.name)
        else:
            if isinstance(shown, HttpResponse):
                answer = _answer(shown)
                for name, value in refused.headers.items():
                    answer[name] = value
                return answer
    return _json(refused.status, refused.error, refused.message, refused.headers)


def _answer(response: HttpResponse) -> DjangoResponse:
    answer = DjangoResponse(response.body, status=response.status)
    for name, value in response.headers.items():
        if name.lower() != "content-length":  # Django sets the true length itself
            answer[name] = value
    return answer


def _host_user(request: DjangoRequest, route: HttpRoute) -> Any:
    """The signed-in host user row; None when anonymous; a :class:`_Refused` (401, or 403 for a
    failed CSRF check). See the module's docstring for which authentication applies."""
    if apps.is_installed("rest_framework"):
        return _drf_user(request, route.verifies_csrf)
    row = getattr(request, "user", None)
    if row is None or not getattr(row, "is_authenticated", False):
        return None
    reason = None if route.verifies_csrf else _csrf_failure(request)
    if reason is not None:
        return _Refused(403, "csrf_failed", f"CSRF verification failed: {reason}")
    return row


@functools.cache
def _drf_parsers() -> list[Any]:
    """Form data (where a session's CSRF token may be), and any other body left alone."""
    from rest_framework.parsers import BaseParser, FormParser

    class BodyLeftAlone(BaseParser):  # type: ignore[misc]  # DRF ships no type hints
        media_type = "*/*"

        def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
            return {}

    return [FormParser(), BodyLeftAlone()]


def _skip_csrf(request: Any) -> None:
    """DRF's ``SessionAuthentication.enforce_csrf``, for a route that checks its own."""


def _drf_user(request: DjangoRequest, own_csrf: bool) -> Any:
    from rest_framework.authentication import SessionAuthentication
    from rest_framework.exceptions import APIException
    from rest_framework.request import Request
    from rest_framework.settings import api_settings

    request.body  # noqa: B018  # cached now, so nothing DRF reads can consume the raw bytes
    authenticators = [authenticator() for authenticator in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    for authenticator in authenticators:
        if own_csrf and isinstance(authenticator, SessionAuthentication):
            # DRF's documented hook, on this request's own instance; the route checks its token.
            authenticator.enforce_csrf = _skip_csrf
    wrapped = Request(request, parsers=_drf_parsers(), authenticators=authenticators)
    try:  # each authenticator in the host's order; its session one enforces CSRF itself
        row = wrapped.user
    except APIException as exc:  # a bad token (401), a session without its CSRF token (403)
        if exc.status_code != 401:
            return _Refused(exc.status_code, "forbidden", str(exc.detail))
        challenge = next(filter(None, (a.authenticate_header(wrapped) for a in authenticators)), "Bearer")
        return _Refused(401, "unauthenticated", str(exc.detail), {"WWW-Authenticate": challenge})
    return row if row is not None and getattr(row, "is_authenticated", False) else None


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: DjangoRequest, reason: str) -> Any:
        return reason  # the reason, not the middleware's HTML page


def _csrf_failure(request: DjangoRequest) -> str | None:
    """Why Django's CSRF check refuses ``request`` (an unsafe method without the session's
    token), or None. The guarded views are CSRF-exempt so token clients pass; this puts the
    check back for sessions."""
    check = _CsrfCheck(lambda _request: DjangoResponse())
    check.process_request(request)
    reason: str | None = check.process_view(request, lambda _request: DjangoResponse(), (), {})
    return reason


def _tenant_key(tenant_id: str | None) -> str | None:
    """A URL's tenant key as the host spells tenant ids (a UUID's canonical text: lower case,
    hyphens), or None when it cannot name a host tenant; that is the plugin's to answer 404
    for (a webhook URL anyone can call). ``uuid.UUID`` also reads capitals, braces and a
    missing hyphen: passed on raw, such a key would miss the running tenant."""
    try:
        return str(uuid.UUID(tenant_id or ""))
    except ValueError:
        return None


def _tenant_scope(tenant_id: str | None) -> AbstractContextManager[object]:
    """The host's tenant context for ``tenant_id``; none for a key that names no tenant."""
    return tenant_context(tenant_id) if tenant_id is not None else nullcontext()


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
        return _refuse(route, request, _Refused(500, "plugin_failed", "the plugin failed to handle this request"))
    if not isinstance(response, HttpResponse):
        logger.error("route %r returned %r, not an HttpResponse", route.name, response)
        return _refuse(route, request, _Refused(500, "plugin_failed", "the plugin returned an invalid response"))
    return _answer(response)


def _signed_in(route: HttpRoute, request: DjangoRequest) -> User | _Refused:
    """The signed-in user holding ``route.permission``, or why the request is refused."""
    assert route.permission is not None
    row = _host_user(request, route)
    if row is None:
        return _Refused(401, "unauthenticated", "sign in first", {"WWW-Authenticate": "Bearer"})
    if isinstance(row, _Refused):
        return row
    if getattr(row, "tenant_id", None) is None:
        return _Refused(403, "forbidden", "this user belongs to no tenant; the HubSpot integration "
                        "is configured per tenant")
    user = user_record(row)
    if not DjangoHostServices(user.tenant_id).has_permission(user, route.permission):
        return _Refused(403, "forbidden", f"this needs the {route.permission!r} permission")
    return user


def _serve_user(route: HttpRoute, request: DjangoRequest, params: Mapping[str, str]) -> DjangoResponse:
    """A route behind the host's authentication and ``route.permission``."""
    user = _signed_in(route, request)
    if isinstance(user, _Refused):
        return _refuse(route, _plugin_request(request, None, params), user)
    with tenant_context(user.tenant_id), acting_as(user):
        return _call(route, _plugin_request(request, user, params))


def serve_signed(route: HttpRoute, request: DjangoRequest, params: Mapping[str, str],
                 pm: pluggy.PluginManager | None = None) -> DjangoResponse:
    """A route that checks HubSpot's signature itself; the tenant is the URL's (also the host's
    own integration webhook view, through the adapter).

    A delivery for a tenant the host has enabled but this process could not start (invalid
    saved settings) is answered 503 with ``Retry-After``: HubSpot keeps retrying a 5xx for
    about a day, while the plugin's own 404 for an unknown tenant would make it drop the events.
    """
    tenant_id = _tenant_key(params.get("tenant_id"))
    if tenant_id is not None:  # the signed URL itself stays as sent: the signature covers it
        params = {**params, "tenant_id": tenant_id}
    if route.name == WEBHOOK_ROUTE and pm is not None and tenant_id is not None:
        why = not_started_here(pm, tenant_id)
        if why is not None:
            logger.error("HubSpot delivery for tenant %s answered 503: %s", tenant_id, why)
            return _json(503, "unavailable", f"{why}; fix them, HubSpot retries this delivery",
                         {"Retry-After": "60"})
    with _tenant_scope(tenant_id):
        response = _call(route, _plugin_request(request, None, params))
    if route.name == WEBHOOK_ROUTE and response.status_code == 200:
        from .tasks import nudge  # a stored delivery: drain it now, not at the next beat

        nudge()
    return response


def route_view(routes: Sequence[HttpRoute], pm: pluggy.PluginManager | None = None) -> View:
    """One Django view serving ``routes``: the plugin's routes of one path, one per method
    (``pm``: the plugin manager that offered them)."""
    by_method = {route.method.upper(): route for route in routes}
    allowed = ", ".join(sorted(by_method))

    def view(request: DjangoRequest, **params: str) -> DjangoResponse:
        route = by_method.get((request.method or "").upper())
        if route is None:
            shown_by = next((r for r in routes if r.refusal is not None), routes[0])
            return _refuse(shown_by, _plugin_request(request, None, params), _Refused(
                405, "method_not_allowed", f"{request.method} is not allowed here", {"Allow": allowed}))
        if route.permission is None:
            return serve_signed(route, request, params, pm)
        return _serve_user(route, request, params)

    view.__name__ = view.__qualname__ = f"hubspot_{routes[0].name.replace('-', '_')}"
    # Exempt from the middleware's check: signed routes need none, guarded ones do their own
    # (``_host_user``: sessions are checked, tokens are not).
    view = csrf_exempt(view)
    # Outside ATOMIC_REQUESTS, every route: a signed one answers 200 only once the delivery is in
    # the plugin's store; a guarded one writes the plugin's store and HubSpot, and tells
    # listeners, after the host's writes it makes in transactions of its own have committed.
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
    return [path(_django_path(routes[0].path), route_view(routes, pm), name=routes[0].name)
            for routes in _grouped(pm)]
