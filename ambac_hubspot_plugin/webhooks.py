"""Real-time intake: the webhook receiver, its durable inbox and ordered per-object processing.

Receiving (:class:`WebhookReceiver`) verifies a delivery's signature on the raw bytes,
validates the batch, stores it whole in the tenant's inbox with a ``webhook.inbox`` job, in one
transaction, and only then answers 200. It is framework-agnostic
(:meth:`WebhookReceiver.handle`), a host route (:meth:`WebhookReceiver.route`) and a WSGI app
(:meth:`WebhookReceiver.wsgi_app`).

Splitting (:class:`WebhookInboxSplitter`) is the ``webhook.inbox`` job handler: it turns stored
deliveries into deduplicated events and queues one ``webhook.object`` job per object that got
new ones, in one transaction per round.

Processing (:class:`WebhookProcessor`) is the ``webhook.object`` job handler: it loads one
object's unprocessed events, orders them, drops echoes of our own writes and hands the rest to
an :class:`EventApplier`; events are marked processed only after the applier succeeded.

The route carries the tenant (``POST hubspot/webhooks/{tenant_id}``): the secret that proves a
delivery belongs to the tenant's app must be known before the body may be trusted, so the
tenant comes from the URL, and every event's ``portalId`` must then be the tenant's portal.
See ``docs/webhooks.md``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import quote, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import attrs

from ._clock import Clock, utc_now
from ._http_body import BodyRefusal, read_wsgi_body
from ._signatures import verify_signature
from .errors import WebhookPayloadError, WebhookSignatureError
from .store import Inbox, JobQueue  # the ports only: no SQLAlchemy

if TYPE_CHECKING:
    from ._runtime import Runtime
    from .host import HttpRequest, HttpResponse, HttpRoute
    from .settings import Secret, Settings
    from .store import InboxEventDraft, Job

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "INBOX_JOB_KIND",
    "JOB_KIND",
    "EchoCheck",
    "EventApplier",
    "InboxQueue",
    "WebhookEvent",
    "WebhookInboxSplitter",
    "WebhookPayloadError",
    "WebhookProcessor",
    "WebhookReceiver",
    "WebhookTarget",
    "check_batch",
    "dedupe_key",
    "install",
    "make_wsgi_server",
    "order_events",
    "parse_batch",
    "webhook_secret",
]

log = logging.getLogger(__name__)

JOB_KIND = "webhook.object"
"""The job kind of per-object webhook processing; its dedupe key is ``<type>:<id>``."""
INBOX_JOB_KIND = "webhook.inbox"
"""The job kind that splits a tenant's stored deliveries into events; its dedupe key is
``inbox``."""
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
ROUTE_PATH = "hubspot/webhooks/{tenant_id}"

Answer = tuple[int, dict[str, str], bytes]


# -- events -----------------------------------------------------------------------------------

@attrs.frozen
class WebhookEvent:
    """One HubSpot webhook event, validated (build it with :meth:`from_payload` or
    :func:`parse_batch`, which check it against the schema in ``_webhook_wire``).

    Ids are strings of digits (HubSpot sends numbers); ``property_value`` is the new value as
    text (None when absent). ``raw`` is the event object as received, for fields this record
    does not name.
    """

    portal_id: str
    subscription_type: str
    object_id: str
    occurred_at_ms: int
    event_id: int | None = None
    subscription_id: int | None = None
    app_id: int | None = None
    attempt_number: int = 0
    property_name: str | None = None
    property_value: str | None = None
    change_source: str | None = None
    source_id: str | None = None
    change_flag: str | None = None
    primary_object_id: str | None = None
    merged_object_ids: tuple[str, ...] = ()
    new_object_id: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def object_type(self) -> str:
        """``deal`` of ``deal.propertyChange``."""
        return self.subscription_type.partition(".")[0]

    @property
    def change(self) -> str:
        """``propertyChange`` of ``deal.propertyChange``."""
        return self.subscription_type.partition(".")[2]

    @property
    def occurred_at(self) -> datetime:
        """When the change happened in HubSpot (tz-aware UTC)."""
        return datetime.fromtimestamp(self.occurred_at_ms / 1000, UTC)

    @classmethod
    def from_payload(cls, item: object, path: str = "event") -> WebhookEvent:
        """Validate one event object as HubSpot sends it (e.g. one stored in the inbox).

        :raises WebhookPayloadError: naming the field that is missing or wrong.
        """
        from ._webhook_wire import read_event

        return _event(read_event(item, path), item)  # type: ignore[arg-type]  # a dict, as it was read


# -- the wire format (schema and parser in _webhook_wire) ---------------------------------------


def _text_id(value: int | str | None) -> str | None:
    return None if value is None else str(value)


def _event(wire: Any, raw: Mapping[str, Any]) -> WebhookEvent:
    value = wire.property_value
    return WebhookEvent(
        portal_id=str(wire.portal_id),
        subscription_type=wire.subscription_type or wire.event_type,
        object_id=str(wire.object_id),
        occurred_at_ms=wire.occurred_at,
        event_id=wire.event_id,
        subscription_id=wire.subscription_id,
        app_id=wire.app_id,
        attempt_number=wire.attempt_number or 0,
        property_name=wire.property_name,
        property_value=value if value is None or isinstance(value, str) else json.dumps(value),
        change_source=wire.change_source,
        source_id=wire.source_id,
        change_flag=wire.change_flag,
        primary_object_id=_text_id(wire.primary_object_id),
        merged_object_ids=tuple(str(m) for m in wire.merged_object_ids),
        new_object_id=_text_id(wire.new_object_id),
        raw=raw,
    )


def check_batch(body: bytes) -> list[Any]:
    """Validate a delivery body (a JSON array of 1 to 1,000 event objects) without building
    :class:`WebhookEvent` records: what the receiver needs before it answers.

    Returns msgspec structs with the wire's (camelCase-derived) field names. It reads the
    body exactly as the split does (:func:`._webhook_wire.read_batch`), so what it accepts
    the split can read.

    :raises WebhookPayloadError: saying what was wrong and where (``body[3]: lacks objectId``).
    """
    from ._webhook_wire import read_batch

    return read_batch(body)[1]


def parse_batch(body: bytes) -> tuple[WebhookEvent, ...]:
    """Parse a delivery body: a non-empty JSON array of event objects.

    :raises WebhookPayloadError: saying what was wrong and where (``body[3]: lacks objectId``).
    """
    from ._webhook_wire import read_batch

    raw, events = read_batch(body)
    return tuple(_event(event, item) for event, item in zip(events, raw, strict=True))


def dedupe_key(event: WebhookEvent) -> str:
    """The identity of an event across redeliveries: a hash of what it says, not its eventId.

    HubSpot does not promise ``eventId`` is unique, and retries change ``attemptNumber``; the
    portal, subscription type, object, property, value and time of the change identify it.
    """
    parts = [event.portal_id, event.subscription_type, event.object_id, event.property_name,
             event.property_value, event.occurred_at_ms, event.primary_object_id,
             list(event.merged_object_ids), event.new_object_id]
    return hashlib.sha256(_COMPACT.encode(parts).encode()).hexdigest()


# Built once: json.dumps with any non-default option builds a new encoder on every call, which
# was a tenth of the receiver's CPU time (three encodings per event). Same output as dumps.
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _drafts(events: Sequence[WebhookEvent]) -> list[InboxEventDraft]:
    # Imported here, once per batch: the store package is loaded lazily (its __getattr__),
    # and an import statement per event went through that every time.
    from .store import InboxEventDraft

    return [InboxEventDraft(
        portal_id=event.portal_id, dedupe_key=dedupe_key(event), event_id=event.event_id,
        subscription_type=event.subscription_type, object_type=event.object_type,
        object_id=event.object_id, property_name=event.property_name,
        occurred_at_ms=event.occurred_at_ms, payload=_CANONICAL.encode(dict(event.raw)),
    ) for event in events]


# -- receiving --------------------------------------------------------------------------------


@attrs.frozen
class WebhookTarget:
    """Where a tenant's deliveries go and how they are checked.

    ``secret`` is the client secret of the tenant's app (None: not configured yet);
    ``public_base_url`` is the scheme and host HubSpot calls (None: trust the request URL).
    """

    tenant_id: int
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
        self._state: dict[tuple[int | None, str], list[Any]] = {}

    def admit(self, tenant_id: int | None, reason: str) -> int | None:
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

    def drain(self) -> list[tuple[int | None, str, int]]:
        """Take every held-back count (for a periodic flush)."""
        with self._lock:
            held = [(t, r, s[2]) for (t, r), s in self._state.items() if s[2]]
            for state in self._state.values():
                state[2] = 0
            return held


def _json(status: int, payload: Mapping[str, Any]) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _public_uri(url: str, public_base_url: str | None) -> str:
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
        from .host import HttpResponse

        status, headers, body = self.handle(
            request.method, request.url, request.headers, request.body,
            tenant_key=str(request.path_params.get("tenant_id", "")))
        return HttpResponse(status, body, headers)

    def route(self, path: str = ROUTE_PATH) -> HttpRoute:
        """The unauthenticated route to list in ``ambac_http_routes`` (signatures protect it)."""
        from .host import HttpRoute

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
        size = max(_content_length(headers) or 0, len(body))
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
        uri = _public_uri(url, target.public_base_url)
        try:
            verify_signature(secret=target.secret.reveal(), method=method, uri=uri,
                             headers=headers, body=body, now=self._clock())
        except WebhookSignatureError as exc:
            return self._refuse(target, 401, "signature", str(exc))
        try:
            events = check_batch(body)
        except WebhookPayloadError as exc:
            return self._refuse(target, 400, "malformed", str(exc))
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


def _content_length(headers: Mapping[str, str]) -> int | None:
    for name, value in headers.items():
        if str(name).lower() == "content-length":
            text = str(value).strip()
            # An unreadable length is treated as over any limit: refused, never trusted.
            return int(text) if text.isascii() and text.isdigit() and len(text) < 16 else 2**62
    return None


class _QuietHandler(WSGIRequestHandler):
    # Buffer the answer: unbuffered, wsgiref sends the status line, each header and the body
    # as separate small segments, five system calls and as many packets per answer.
    wbufsize = 64 * 1024

    def log_message(self, format: str, *args: Any) -> None:  # the base's parameter name
        """Access logs stay off: a flood of refused requests must not fill a disk."""


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which stalls without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()


def make_wsgi_server(app: Callable[..., Iterable[bytes]], host: str = "127.0.0.1",
                     port: int = 0) -> WSGIServer:
    """A threaded stdlib WSGI server for ``app`` (one thread per request); call
    ``serve_forever()`` on it, ``shutdown()`` and ``server_close()`` to stop."""
    server = _ThreadingWSGIServer((host, port), _QuietHandler)
    server.set_app(app)
    return server


# -- processing -------------------------------------------------------------------------------


@runtime_checkable
class EventApplier(Protocol):
    """Applies one object's events to the host (the inbound sync engine implements it).

    It should re-read the object's current state from HubSpot rather than trust one
    property value, and be idempotent: a crash after it returned but before the events were
    marked processed makes it see the same events again.
    """

    def apply(self, tenant_id: int, object_type: str, object_id: str,
              events: Sequence[WebhookEvent]) -> None:
        """Apply ``events`` (ordered, echoes removed); raise to have the job retried."""


EchoCheck = Callable[[int, WebhookEvent], bool]
"""``(tenant_id, event) -> True`` when the event reports a value we wrote ourselves."""

# Same occurredAt: the object must exist before it changes and change before it goes away.
_TIEBREAK = {"restore": 0, "merge": 2, "deletion": 3}


def _never_echo(_tenant_id: int, _event: WebhookEvent) -> bool:
    return False


def order_events(events: Iterable[WebhookEvent]) -> list[WebhookEvent]:
    """Events in a safe order: creations first, then by ``occurredAt``; at the same instant
    restore, then property and other changes, then merge, then deletion, then by ``eventId``
    (HubSpot's ids grow over time; a hint for ties only, never an identity)."""
    return sorted(events, key=lambda e: (e.change != "creation", e.occurred_at_ms,
                                         _TIEBREAK.get(e.change, 1), e.event_id or 0))


class WebhookProcessor:
    """The ``webhook.object`` job handler (register :meth:`handle_job` with the queue runner).

    :param inbox_for: tenant id -> that tenant's inbox (its store).
    :param applier: what applies events; see :class:`EventApplier`.
    :param is_echo: recognises our own writes coming back; those are marked processed
        without being applied, and counted.
    """

    def __init__(self, inbox_for: Callable[[int], Inbox], applier: EventApplier, *,
                 is_echo: EchoCheck | None = None) -> None:
        self._inbox_for = inbox_for
        self._applier = applier
        self._is_echo = is_echo or _never_echo

    def handle_job(self, job: Job) -> None:
        """Process one object's unprocessed events; raise (the job retries) on failure."""
        error = self.handle_jobs([job]).get(job.id)
        if error is not None:
            raise error

    def handle_jobs(self, jobs: Sequence[Job]) -> dict[int, Exception]:
        """Process the events of many objects together; return the error of each failed job.

        The objects of one tenant go to the applier in one call when it offers ``apply_many``,
        so it can read their current state from HubSpot in batches.
        """
        errors: dict[int, Exception] = {}
        by_tenant: dict[int, list[Job]] = {}
        for job in jobs:
            by_tenant.setdefault(job.tenant_id, []).append(job)
        for tenant_id, tenant_jobs in by_tenant.items():
            try:
                inbox = self._inbox_for(tenant_id)
            except Exception as exc:  # e.g. not enabled in this process: retry later
                errors.update(dict.fromkeys((job.id for job in tenant_jobs), exc))
                continue
            work: dict[tuple[str, str], tuple[WebhookEvent, ...]] = {}
            finish: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
            owners: dict[tuple[str, str], list[int]] = {}
            for job in tenant_jobs:
                # The queue runs one job per object key at a time (claim holds the others back),
                # so this job is the object's only one running: its events are in order.
                key = (str(job.payload["object_type"]), str(job.payload["object_id"]))
                owners.setdefault(key, []).append(job.id)
                if key in finish:
                    continue
                stored = inbox.pending_webhook_events(tenant_id, *key)
                parsed = [(row.id, WebhookEvent.from_payload(row.payload, f"inbox[{row.id}]")) for row in stored]
                ids = {id(event): row_id for row_id, event in parsed}
                ordered = order_events(event for _, event in parsed)
                echo_ids = {ids[id(e)] for e in ordered if self._is_echo(tenant_id, e)}
                fresh = tuple(e for e in ordered if ids[id(e)] not in echo_ids)
                finish[key] = ([ids[id(e)] for e in fresh], sorted(echo_ids))
                if fresh:
                    work[key] = fresh
            failed = self._apply(tenant_id, work)
            for key, (applied, echoes) in finish.items():
                if key in failed:
                    for job_id in owners[key]:
                        errors[job_id] = failed[key]
                elif applied or echoes:
                    inbox.finish_webhook_events(tenant_id, applied=applied, echoes=echoes)
        return errors

    def _apply(self, tenant_id: int, work: Mapping[tuple[str, str], tuple[WebhookEvent, ...]]
               ) -> dict[tuple[str, str], Exception]:
        if not work:
            return {}
        apply_many = getattr(self._applier, "apply_many", None)
        if apply_many is not None and len(work) > 1:
            try:
                return dict(apply_many(tenant_id, work))
            except Exception:  # one object's failure must not fail the others: apply one by one
                log.warning("batched webhook apply failed for tenant %s; applying object by object", tenant_id)
        failed: dict[tuple[str, str], Exception] = {}
        for (object_type, object_id), events in work.items():
            try:
                self._applier.apply(tenant_id, object_type, object_id, events)
            except Exception as exc:  # this object's jobs retry with backoff
                failed[(object_type, object_id)] = exc
        return failed


class InboxQueue(Inbox, JobQueue, Protocol):
    """A store that is both the inbox and the job queue (as :class:`~.store.SqlStateStore`)."""


class WebhookInboxSplitter:
    """The ``webhook.inbox`` job handler: splits a tenant's stored deliveries into events.

    Each round takes the oldest deliveries (up to ``per_round`` of them and about 100 events)
    and in one transaction stores their events once (see :func:`dedupe_key`), queues a
    ``webhook.object`` job per object that got new events and deletes the deliveries. After
    ``rounds`` rounds with deliveries still waiting it queues its own follow-up and returns,
    so one tenant's flood cannot hold a worker (or outlive a lease) indefinitely.

    It also makes way for the receiver: when they share a process (the plugin's background
    worker), the interpreter passes from a busy thread to a waiting one only every 5 ms, and a
    request waits for it several times; so the splitter sleeps ``pause`` seconds after parsing
    a delivery, after hashing its events and between rounds. At 5,000 events/s that brought
    the receiver's p99 (``bench_webhooks.py --split thread``) from 32-153 ms to 29-90 ms, for
    about a fifth of the split's speed (6,200-6,500 instead of 7,900-8,600 events/s here).

    :param max_attempts: attempts of the jobs it queues, ``webhook.object`` and its own
        follow-up (None: the store's).
    """

    def __init__(self, inbox_for: Callable[[int], InboxQueue], *,
                 max_attempts: int | None = None, per_round: int = 50, rounds: int = 200,
                 pause: float = 0.0005) -> None:
        self._inbox_for = inbox_for
        self._max_attempts = max_attempts
        self._per_round, self._rounds = per_round, rounds
        self._pause = pause

    def handle_job(self, job: Job) -> None:
        """Split the job's tenant's deliveries; raise (the job retries) on failure."""
        inbox = self._inbox_for(job.tenant_id)
        drafts_of = functools.partial(_split_drafts, pause=self._pause)
        for _ in range(self._rounds):
            done = inbox.expand_webhook_batches(
                job.tenant_id, drafts_of, job_kind=JOB_KIND, max_attempts=self._max_attempts,
                limit=self._per_round)
            if not done.more:
                return
            time.sleep(2 * self._pause)
        from .store import INBOX_JOB_KEY

        inbox.enqueue(job.tenant_id, INBOX_JOB_KIND, {}, dedupe_key=INBOX_JOB_KEY,
                      max_attempts=self._max_attempts)

def _split_drafts(body: bytes, pause: float = 0.0) -> list[InboxEventDraft]:
    """A stored delivery's event drafts; ``pause`` seconds of sleep after each step."""
    events = parse_batch(body)
    if pause:
        time.sleep(pause)
    drafts = _drafts(events)
    if pause:
        time.sleep(pause)
    return drafts


# -- wiring -----------------------------------------------------------------------------------


def webhook_secret(settings: Settings) -> Secret | None:
    """The secret that signs a tenant's deliveries: ``webhook_client_secret``, else the OAuth
    app's client secret, else None (not configured)."""
    if settings.webhook_client_secret is not None:
        return settings.webhook_client_secret
    return getattr(settings.credentials, "client_secret", None)


def install(runtime: Runtime, applier: EventApplier, *, is_echo: EchoCheck | None = None,
            batch: int = 200, **receiver_options: Any) -> WebhookReceiver:
    """Register the ``webhook.inbox`` and ``webhook.object`` handlers on ``runtime`` and
    return the receiver.

    The ``webhook.object`` handler claims up to ``batch`` due jobs of its kind at once (with
    the runner's worker id, their leases kept fresh like the first's) and processes them
    together. Call it before any tenant
    is enabled, and list ``receiver.route()`` in the runtime's ``http_routes()``.
    """

    def resolve(key: str) -> WebhookTarget | None:
        if not key.isdigit() or len(key) > 12:
            return None
        tenant_id = int(key)
        if not runtime.is_enabled(tenant_id):
            return None
        settings = runtime.settings_for(tenant_id)
        return WebhookTarget(tenant_id, settings.portal_id, webhook_secret(settings),
                             runtime.store_for(tenant_id), settings.public_base_url)

    def handle(job: Job) -> None:
        from .store import LeaseLostError, keep_leases

        store = runtime.store_for(job.tenant_id)
        lease = runtime.job_lease
        jobs = [job, *store.claim(runtime.worker_id, kinds=[JOB_KIND], limit=batch - 1,
                                  lease=lease)]
        try:
            with keep_leases(store, jobs[1:], runtime.worker_id, lease):  # the runner keeps job's
                errors = processor.handle_jobs(jobs)
        except Exception as exc:  # e.g. the store failed: every claimed job retries, none waits for its lease
            errors = dict.fromkeys((j.id for j in jobs), exc)
        for other in jobs[1:]:
            try:
                if other.id in errors:
                    store.fail(other.id, runtime.worker_id, f"{type(errors[other.id]).__name__}: {errors[other.id]}")
                else:
                    store.complete(other.id, runtime.worker_id)
            except LeaseLostError:
                log.warning("webhook job %s: lease lost before reporting back", other.id)
        if job.id in errors:
            raise errors[job.id]

    receiver_options.setdefault("clock", runtime.clock)
    processor = WebhookProcessor(runtime.store_for, applier, is_echo=is_echo)
    splitter = WebhookInboxSplitter(runtime.store_for,
                                    max_attempts=receiver_options.get("max_attempts"))
    runtime.handlers[JOB_KIND] = handle
    runtime.handlers[INBOX_JOB_KIND] = splitter.handle_job
    return WebhookReceiver(resolve, **receiver_options)
