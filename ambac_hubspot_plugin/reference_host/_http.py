"""The reference host's HTTP side: plugin routes mounted under a prefix, and a WSGI app.

:class:`Router` matches a request to a route of ``ambac_http_routes``, checks the route's
permission, and calls the plugin's handler as the signed-in user; it answers errors as JSON,
as the real host's API does, or as the route's ``refusal`` when it has one (the admin pages).
It authenticates only with bearer tokens, so it has no CSRF check of its own to skip for a
route that ``verifies_csrf``. :class:`~._host.ReferenceHost` delegates its HTTP methods here.
"""

from __future__ import annotations

import contextlib
import html
import http
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote

import attrs
import pluggy

from .._http_body import BodyRefusal, read_wsgi_body
from ..host import HostServices, HttpRequest, HttpResponse, HttpRoute, User

# The package's name, as every module of the reference host logs under (see _host.py).
logger = logging.getLogger(__package__)

DEFAULT_MOUNT_PREFIX = "/integrations"
"""Where plugin routes are mounted; route paths (e.g. ``hubspot/webhooks``) are relative to it."""
DEFAULT_MAX_BODY_BYTES = 2_621_440
"""The largest request body :meth:`ReferenceHost.wsgi_app` reads (Django's default, 2.5 MB)."""

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Headers(Mapping[str, str]):
    """Request headers, looked up ignoring case as HTTP requires; repeated ones joined by ``, ``."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                value = f"{self._items[key][1]}, {value}"
            self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"_Headers({dict(self.items())!r})"


@attrs.frozen
class _MountedRoute:
    route: HttpRoute
    segments: tuple[str, ...]

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        if len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for pattern, segment in zip(self.segments, segments, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                params[pattern[1:-1]] = segment
            elif pattern != segment:
                return None
        return params


def _split_path(path: str) -> list[str]:
    return [unquote(segment) for segment in path.split("/") if segment]


def _wsgi_headers(environ: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield the request headers of a WSGI environ under their HTTP names."""
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-").title(), value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            yield key.replace("_", "-").title(), value


def _json_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    body = json.dumps({"error": message}).encode()
    return HttpResponse(status, body, {"Content-Type": "application/json", **(headers or {})})


def _refusal(
    route: HttpRoute, request: HttpRequest, status: int, message: str, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """The host's refusal of a request to ``route``: the route's own when it has one
    (``HttpRoute.refusal``); else a small HTML page for a browser (it asks for ``text/html``),
    JSON for API clients, as a real host answers its pages and its API."""
    if route.refusal is not None:
        shown = route.refusal(request, status, message)
        return attrs.evolve(shown, headers={**shown.headers, **(headers or {})})
    if "text/html" not in request.headers.get("Accept", ""):
        return _json_response(status, message, headers)
    title = "Sign in first" if status == 401 else "Not allowed"
    page = (f"<!DOCTYPE html><html lang=en><meta charset=utf-8><title>{title}</title>"
            f"<main><h1>{title}</h1><p>{html.escape(message)}</p><p>Nothing was changed.</p></main>")
    return HttpResponse(status, page.encode(), {"Content-Type": "text/html; charset=utf-8", **(headers or {})})


def _failure(
    route: HttpRoute, request: HttpRequest, status: int, message: str, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """A 405 or 500 of the host: JSON, or the route's own refusal when it has one (a page).
    A refusal that fails too is logged and answered as JSON."""
    if route.refusal is None:
        return _json_response(status, message, headers)
    try:
        return _refusal(route, request, status, message, headers)
    except Exception:
        logger.exception("route %r failed to render its refusal", route.name)
        return _json_response(status, message, headers)


def _respond(response: HttpResponse, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Send ``response`` through WSGI's ``start_response`` with its true Content-Length."""
    try:
        phrase = http.HTTPStatus(response.status).phrase
    except ValueError:
        phrase = "Unknown"
    headers = [(name, value) for name, value in response.headers.items()
               if name.lower() != "content-length"]
    headers.append(("Content-Length", str(len(response.body))))
    start_response(f"{response.status} {phrase}", headers)
    return [response.body]


class RouterHost(Protocol):
    """What :class:`Router` needs of its host, :class:`~._host.ReferenceHost`.

    A Protocol rather than an import of the host, which owns the router: the two modules
    would otherwise import each other. The router goes through the host's public methods, so
    a subclass that overrides one of them is honoured here as before.
    """

    @property
    def plugin_manager(self) -> pluggy.PluginManager: ...

    @property
    def mount_prefix(self) -> str: ...

    def services(self, tenant_id: str) -> HostServices: ...

    def acting_as(self, user: User | None) -> contextlib.AbstractContextManager[User | None]: ...

    def user_for_token(self, token: str) -> User | None: ...

    def handle_http(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        user: User | None = None,
        public_base_url: str = "http://localhost",
    ) -> HttpResponse: ...


class Router:
    """The plugins' routes of one host, mounted under its prefix, and the requests they serve."""

    def __init__(self, host: RouterHost) -> None:
        self._host = host
        self._url_map: list[_MountedRoute] | None = None

    def routes(self) -> list[HttpRoute]:
        """The plugins' routes, asked for once and kept."""
        return [mounted.route for mounted in self._routes()]

    def _routes(self) -> list[_MountedRoute]:
        # Built on first use, not at host start: a host that never serves HTTP never asks.
        if self._url_map is None:
            url_map: list[_MountedRoute] = []
            seen: dict[tuple[str, tuple[str, ...]], str] = {}
            prefix = _split_path(self._host.mount_prefix)
            for routes in self._host.plugin_manager.hook.ambac_http_routes():
                for route in routes:
                    if not isinstance(route, HttpRoute):
                        raise TypeError(f"ambac_http_routes returned {route!r}, not an HttpRoute")
                    segments = tuple(prefix + _split_path(route.path))
                    key = (route.method.upper(), segments)
                    if key in seen:
                        raise ValueError(
                            f"routes {seen[key]!r} and {route.name!r} both claim {key}"
                        )
                    seen[key] = route.name
                    url_map.append(_MountedRoute(route, segments))
            self._url_map = url_map
        return self._url_map

    def handle_http(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        user: User | None = None,
        public_base_url: str = "http://localhost",
    ) -> HttpResponse:
        """Route one request; see :meth:`~._host.ReferenceHost.handle_http`."""
        path = path if path.startswith("/") else "/" + path
        raw_path, _, query = path.partition("?")
        segments = _split_path(raw_path)
        matches = [(mounted, mounted.match(segments)) for mounted in self._routes()]
        candidates = [(mounted, params) for mounted, params in matches if params is not None]
        if not candidates:
            return _json_response(404, f"no route for {raw_path}")
        chosen = [(m, p) for m, p in candidates if m.route.method.upper() == method.upper()]
        headers = headers if isinstance(headers, _Headers) else _Headers(
            headers.items() if isinstance(headers, Mapping) else headers)
        mounted, params = (chosen or candidates)[0]
        route = mounted.route
        request = HttpRequest(
            method=method.upper(),
            url=public_base_url.rstrip("/") + path,
            headers=headers,
            body=body,
            user=user,
            path_params=params,
            query=dict(parse_qsl(query, keep_blank_values=True)),
        )
        if not chosen:
            allowed = ", ".join(sorted({m.route.method.upper() for m, _ in candidates}))
            return _failure(route, request, 405, f"{method} is not allowed here", {"Allow": allowed})
        if route.permission is not None:
            if user is None:
                return _refusal(route, request, 401, "sign in first", {"WWW-Authenticate": "Bearer"})
            if not self._host.services(user.tenant_id).has_permission(user, route.permission):
                return _refusal(route, request, 403, f"this needs the {route.permission!r} permission")
        try:
            with self._host.acting_as(user):
                response = route.handler(request)
        except Exception:
            # A real host answers 500 and logs; for webhooks that makes the sender retry.
            logger.exception("route %r failed on %s %s", route.name, method, raw_path)
            return _failure(route, request, 500, "the plugin failed to handle this request")
        if not isinstance(response, HttpResponse):
            logger.error("route %r returned %r, not an HttpResponse", route.name, response)
            return _failure(route, request, 500, "the plugin returned an invalid response")
        return response

    def wsgi_app(
        self,
        *,
        public_base_url: str | None = None,
        authenticate: Callable[[Mapping[str, str]], User | None] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> WsgiApp:
        """A WSGI app over the host; see :meth:`~._host.ReferenceHost.wsgi_app`."""
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")

        def bearer_user(headers: Mapping[str, str]) -> User | None:
            scheme, _, token = headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return None
            return self._host.user_for_token(token.strip())

        resolve_user = authenticate or bearer_user

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            headers = _Headers(_wsgi_headers(environ))
            body = read_wsgi_body(environ, limit=max_body_bytes, length_required=False)
            if isinstance(body, BodyRefusal):
                return _respond(_json_response(body.status, body.message), start_response)
            # PEP 3333 hands PATH_INFO decoded as latin-1; re-quote it to get the raw path back.
            raw = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
            path = quote(raw, safe="/:@!$&'()*+,;=-._~")
            if environ.get("QUERY_STRING"):
                path += "?" + environ["QUERY_STRING"]
            base = public_base_url or "{}://{}".format(
                environ["wsgi.url_scheme"],
                environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}",
            )
            response = self._host.handle_http(
                environ["REQUEST_METHOD"], path, headers=headers, body=body,
                user=resolve_user(headers), public_base_url=base,
            )  # fmt: skip
            return _respond(response, start_response)

        return app
