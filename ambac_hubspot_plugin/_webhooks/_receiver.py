"""Receiving a delivery: the signature is verified on the raw bytes, the batch validated and
stored whole in the tenant's inbox with a ``webhook.inbox`` job, in one transaction, and only
then is 200 answered. Refusals are counted, and logged under a flood limit.

:class:`WebhookReceiver` is framework-agnostic (:meth:`WebhookReceiver.handle`), a host route
(:meth:`WebhookReceiver.route`) and a WSGI app (:meth:`WebhookReceiver.wsgi_app`); the web
server that runs that app on its own is :mod:`.._wsgi_server`, not this module.

The route carries the tenant (``POST hubspot/webhooks/{tenant_id}``): the secret that proves a
delivery belongs to the tenant's app must be known before the body may be trusted, so the
tenant comes from the URL, and every event's ``portalId`` must then be the tenant's portal.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import attrs

from .._clock import Clock, utc_now
from .._http_body import BodyRefusal, announced_length, read_wsgi_body
from .._signatures import verify_signature
from ..errors import WebhookPayloadError, WebhookSignatureError
from ..store import Inbox  # the port only: no SQLAlchemy
from ._events import INBOX_JOB_KIND, check_batch

if TYPE_CHECKING:
    from ..host import HttpRequest, HttpResponse, HttpRoute
    from ..settings import Secret

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ROUTE_PATH",
    "Answer",
    "Resolver",
    "WebhookReceiver",
    "WebhookTarget",
    "public_uri",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
ROUTE_PATH = "hubspot/webhooks/{tenant_id}"

Answer = tuple[int, dict[str, str], bytes]


@attrs.frozen
class WebhookTarget:
    """Where a tenant's deliveries go and how they are checked.

    ``secret`` is the client secret of the tenant's app (None: not configured yet);
    ``public_base_url`` is the scheme and host HubSpot calls (None: trust the request URL).
    """

    tenant_id: str
    portal_id: str
    secret: Secret | None = attrs.field(repr=False)
    inbox: Inbox = attrs.field(eq=False, repr=False)
    public_base_url: str | None = None


Resolver = Callable[[str], WebhookTarget | None]


class _RefusalGate:
    """Lets at most ``per_window`` refusals per (tenant, reason) reach the log each window.

    Refusals over the budget are only counted in memory and written, as one number, with the
    next refusal that is logged: a hostile sender costs a dict update, not a disk write.
    """

    def __init__(self, per_window: int, window: timedelta, clock: Clock) -> None:
        self._per_window, self._window, self._clock = per_window, window, clock
        self._lock = threading.Lock()
        self._state: dict[tuple[str | None, str], list[Any]] = {}

    def admit(self, tenant_id: str | None, reason: str) -> int | None:
        """None: do not log this one. Else: log it, with this many held back before it."""
        now = self._clock()
        with self._lock:
            state = self._state.setdefault((tenant_id, reason), [now, 0, 0])
            if now - state[0] >= self._window:
                state[0], state[1] = now, 0
            if state[1] >= self._per_window:
                state[2] += 1
                return None
            state[1] += 1
            held, state[2] = state[2], 0
            return int(held)

    def drain(self) -> list[tuple[str | None, str, int]]:
        """Take every held-back count (for a periodic flush)."""
        with self._lock:
            held = [(t, r, s[2]) for (t, r), s in self._state.items() if s[2]]
            for state in self._state.values():
                state[2] = 0
            return held


def _json(status: int, payload: Mapping[str, Any]) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def public_uri(url: str, public_base_url: str | None) -> str:
    """The URI HubSpot signed: ``url``'s path and query on ``public_base_url`` (when set), for
    a tenant behind a proxy that rewrites the scheme and host."""
    if not public_base_url:
        return url
    parts = urlsplit(url)
    uri = public_base_url.rstrip("/") + (parts.path or "/")
    return f"{uri}?{parts.query}" if parts.query else uri


class WebhookReceiver:
    """Receives HubSpot deliveries for many tenants; never raises, never answers 500.

    :param resolve: the tenant key of the URL (``{tenant_id}``) -> the tenant's
        :class:`WebhookTarget`, or None when no enabled tenant has that key (404).
    :param clock: tz-aware UTC now, for v3 timestamps and refusal windows.
    :param max_body_bytes: larger bodies are refused with 413 (by Content-Length first).
    :param refusal_log_per_minute: refusal log lines per tenant and reason per minute.
    :param max_attempts: attempts of the queued ``webhook.inbox`` jobs (None: the store's);
        also :attr:`max_attempts`.
    """

    def __init__(self, resolve: Resolver, *, clock: Clock = utc_now,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, refusal_log_per_minute: int = 10,
                 max_attempts: int | None = None) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        self._resolve = resolve
        self._clock = clock
        self.max_body_bytes = max_body_bytes
        self.max_attempts = max_attempts
        self._gate = _RefusalGate(refusal_log_per_minute, timedelta(minutes=1), clock)

    # ---- entry points ------------------------------------------------------------------------

    def handle(self, method: str, url: str, headers: Mapping[str, str], body: bytes, *,
               tenant_key: str) -> Answer:
        """Handle one delivery; return ``(status, headers, body)``.

        :param url: the full URL the request named (only its path and query are used when
            the tenant has a ``public_base_url``).
        :param body: the raw body bytes.
        :param tenant_key: the ``{tenant_id}`` segment of the route.
        """
        target: WebhookTarget | None = None
        try:
            target = self._resolve(tenant_key)
            if target is None:
                return self._refuse(None, 404, "unknown_tenant",
                                    f"no enabled tenant {tenant_key[:40]!r} receives webhooks here")
            return self._handle(target, method, url, headers, body)
        except Exception as exc:  # any failure must become a retryable answer, never a 500
            log.error("webhook delivery failed internally (%s); answered 503 so HubSpot retries",
                      type(exc).__name__, exc_info=True)
            return _json(503, {"error": "unavailable",
                               "message": "the events could not be stored; retry later"})

    def handle_request(self, request: HttpRequest) -> HttpResponse:
        """The host route handler: :meth:`handle` on the contract's request/response."""
        from ..host import HttpResponse

        status, headers, body = self.handle(
            request.method, request.url, request.headers, request.body,
            tenant_key=str(request.path_params.get("tenant_id", "")))
        return HttpResponse(status, body, headers)

    def route(self, path: str = ROUTE_PATH) -> HttpRoute:
        """The unauthenticated route to list in ``ambac_http_routes`` (signatures protect it)."""
        from ..host import HttpRoute

        return HttpRoute("hubspot-webhooks", "POST", path, None, self.handle_request)

    def wsgi_app(self, prefix: str = "/hubspot/webhooks/") -> Callable[..., Iterable[bytes]]:
        """A WSGI app serving ``POST <prefix><tenant_id>`` on its own (no host needed).

        The body is read no further than the size limit: a Content-Length over it is
        refused with 413 before reading, and a body longer than announced is never read at
        all. A Content-Length that is not a number is a 400; a missing one or a chunked body
        a 411.
        """

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            status, headers, body = self._wsgi(environ, prefix)
            headers = {**headers, "Content-Length": str(len(body))}
            start_response(f"{status} {_PHRASES.get(status, 'Status')}", list(headers.items()))
            return [body]

        return app

    def flush_refusal_counts(self) -> None:
        """Write refusals held back by flood protection to the counters (call periodically)."""
        for tenant_id, reason, held in self._gate.drain():
            target = self._resolve(str(tenant_id)) if tenant_id is not None else None
            if target is not None:
                target.inbox.record_webhook_refusal(tenant_id, reason, refused=held,  # type: ignore[arg-type]  # not None here
                                                    suppressed=held)

    # ---- internals ---------------------------------------------------------------------------

    def _handle(self, target: WebhookTarget, method: str, url: str,
                headers: Mapping[str, str], body: bytes) -> Answer:
        if method.upper() != "POST":
            return self._refuse(target, 405, "method", f"{method[:10]!r} is not POST")
        announced = _content_length(headers)
        length = 0 if announced is None else announced_length(announced, self.max_body_bytes)
        if isinstance(length, BodyRefusal):
            return self._refuse(target, length.status, length.reason, length.message)
        size = max(length, len(body))
        if size > self.max_body_bytes:
            return self._refuse(target, 413, "too_large", f"body of {size} bytes is over the "
                                f"{self.max_body_bytes}-byte limit")
        if target.secret is None:
            # Misconfiguration, not a forgery: 503 makes HubSpot keep the events and retry
            # (for about a day) while an admin sets the secret.
            self._refuse(target, 503, "no_secret", "webhook_client_secret is not configured; "
                         "deliveries are refused with 503 until it is set")
            return _json(503, {"error": "not_configured",
                               "message": "webhook secret not configured; retry later"})
        uri = public_uri(url, target.public_base_url)
        try:
            verify_signature(secret=target.secret.reveal(), method=method, uri=uri,
                             headers=headers, body=body, now=self._clock())
        except WebhookSignatureError as exc:
            return self._refuse(target, 401, "signature", str(exc))
        try:
            events = check_batch(body)
        except WebhookPayloadError as exc:
            return self._refuse(target, 400, "malformed", str(exc))
        if not events:  # only kinds the plugin skips (association changes): nothing to keep
            return _json(200, {"received": 0})
        foreign = sorted({str(e.portal_id) for e in events} - {target.portal_id})
        if foreign:
            return self._refuse(target, 404, "unknown_portal",
                                f"events of portal(s) {', '.join(foreign[:5])} are not for this "
                                f"tenant's portal {target.portal_id}; nothing stored")
        # Stored whole: splitting it into deduplicated events and per-object jobs is queued
        # work (WebhookInboxSplitter), so the answer waits for one row, not for 100.
        target.inbox.receive_webhook_batch(
            target.tenant_id, target.portal_id, body, events=len(events),
            latest_occurred_ms=max(e.occurred_at for e in events), job_kind=INBOX_JOB_KIND,
            max_attempts=self.max_attempts)
        return _json(200, {"received": len(events)})

    def _refuse(self, target: WebhookTarget | None, status: int, reason: str,
                message: str) -> Answer:
        tenant_id = None if target is None else target.tenant_id
        held = self._gate.admit(tenant_id, reason)
        text = f"webhook refused ({status} {reason}): {message}"
        if held:
            text += f" [{held} similar refusals in the last minute were not logged]"
        try:
            if held is None:
                pass  # held back: counted in memory, written with the next logged refusal
            elif target is None:
                log.warning("%s", text)
            else:
                target.inbox.record_webhook_refusal(
                    target.tenant_id, reason, refused=1 + (held or 0), suppressed=held or 0,
                    message=text if held is not None else None)
        except Exception as exc:  # a refusal stays a refusal when the log cannot be written
            log.warning("could not record a webhook refusal (%s)", type(exc).__name__)
        return _json(status, {"error": reason, "message": message})

    def _wsgi(self, environ: dict[str, Any], prefix: str) -> Answer:
        try:
            # PEP 3333 gives PATH_INFO decoded as latin-1; re-quote it to get the raw path.
            raw = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
            path = quote(raw, safe="/:@!$&'()*+,;=-._~%")
            if not path.startswith(prefix) or "/" in path[len(prefix):] or path == prefix:
                return _json(404, {"error": "not_found", "message": f"POST {prefix}<tenant_id>"})
            tenant_key = path[len(prefix):]
            headers = {key[5:].replace("_", "-").title(): value
                       for key, value in environ.items() if key.startswith("HTTP_")}
            for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                if environ.get(key):
                    headers[key.replace("_", "-").title()] = environ[key]
            query = environ.get("QUERY_STRING", "")
            host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
            url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{path}"
            url += f"?{query}" if query else ""
            body = read_wsgi_body(environ, limit=self.max_body_bytes, length_required=True)
            if isinstance(body, BodyRefusal):
                if body.status == 413:  # counted and logged against the tenant, as any 413 is
                    body = b""
                else:
                    return _json(body.status, {"error": body.reason, "message": body.message})
        except Exception as exc:  # a broken connection or environ: retryable
            log.warning("reading a webhook request failed (%s)", type(exc).__name__)
            return _json(503, {"error": "unavailable", "message": "retry later"})
        return self.handle(environ.get("REQUEST_METHOD", "GET"), url, headers, body,
                           tenant_key=tenant_key)


_PHRASES = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
            413: "Payload Too Large", 503: "Service Unavailable"}


def _content_length(headers: Mapping[str, str]) -> str | None:
    """The ``Content-Length`` header's value, whatever its case; None when not announced."""
    for name, value in headers.items():
        if str(name).lower() == "content-length":
            return str(value)
    return None
