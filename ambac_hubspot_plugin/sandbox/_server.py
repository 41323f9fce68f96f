"""HTTP front of the sandbox: keep-alive server, routing, auth, limits and faults."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import _families
from ._auth import App, Auth
from ._controls import Faults, RateLimiter, RequestRecord, Stats
from ._state import Portal, Source
from ._util import SandboxHttpError, correlation_id

Answer = tuple[int, Any, dict[str, str]]

# Every operation the sandbox serves; {objectType} is deals|companies|contacts|notes or 0-3|0-2|0-1.
# The 2026-09 ones are served by the same handlers as their v3/v4 twins (see _families).
SERVED_OPERATIONS = (
    ("GET", "/crm/v3/objects/{objectType}"),
    ("POST", "/crm/v3/objects/{objectType}"),
    ("GET", "/crm/v3/objects/{objectType}/{objectId}"),
    ("PATCH", "/crm/v3/objects/{objectType}/{objectId}"),
    ("DELETE", "/crm/v3/objects/{objectType}/{objectId}"),
    ("POST", "/crm/v3/objects/{objectType}/batch/read"),
    ("POST", "/crm/v3/objects/{objectType}/batch/create"),
    ("POST", "/crm/v3/objects/{objectType}/batch/update"),
    ("POST", "/crm/v3/objects/{objectType}/batch/upsert"),
    ("POST", "/crm/v3/objects/{objectType}/batch/archive"),
    ("POST", "/crm/v3/objects/{objectType}/search"),
    ("POST", "/crm/v3/objects/{objectType}/merge"),
    ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read"),
    ("POST", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/create"),
    ("GET", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}"),
    (
        "PUT",
        "/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/{toObjectType}/{toObjectId}",
    ),
    ("GET", "/crm/v3/pipelines/{objectType}"),
    ("GET", "/crm/v3/pipelines/{objectType}/{pipelineId}"),
    ("GET", "/crm/v3/properties/{objectType}"),
    ("POST", "/crm/v3/properties/{objectType}"),
    ("GET", "/crm/v3/properties/{objectType}/{propertyName}"),
    ("GET", "/crm/v3/properties/{objectType}/groups"),
    ("POST", "/crm/v3/properties/{objectType}/groups"),
    ("GET", "/crm/v3/properties/{objectType}/groups/{groupName}"),
    ("POST", "/oauth/v1/token"),
    ("POST", "/oauth/2026-03/token"),
    *_families.DATED_OPERATIONS,
    *_families.ACCOUNT_OPERATIONS,
)
_TOKEN_PATHS = {"/oauth/v1/token": False, "/oauth/2026-03/token": True}  # path -> dated
_JSON = "application/json;charset=utf-8"
MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest request body the sandbox reads; a longer announced one is answered 413 unread."""


class Service:
    """Turns one HTTP request into one answer; shared by every handler thread."""

    def __init__(
        self,
        portal: Portal,
        auth: Auth,
        limiter: RateLimiter,
        faults: Faults,
        stats: Stats,
        log: Callable[[RequestRecord], None],
    ) -> None:
        self.portal = portal
        self.auth = auth
        self.limiter = limiter
        self.faults = faults
        self.stats = stats
        self.log = log

    def answer(
        self, method: str, target: str, authorization: str | None, raw: bytes
    ) -> tuple[Answer | None, str, str, App | None]:
        """(answer or None to reset the connection, path, query, app)."""
        split = urlsplit(target)
        path, query_text = split.path, split.query
        self.stats.requests += 1
        if self.faults.active:
            delay, reset, rule = self.faults.take(method, path, raw)
            if delay:
                time.sleep(delay)
            if reset:
                self.stats.connections_reset += 1
                return None, path, query_text, None
            if rule is not None:
                self.stats.faults_injected += 1
                headers = dict(rule.headers)
                if rule.retry_after is not None:
                    headers["Retry-After"] = f"{rule.retry_after:g}"
                echoed = (
                    f" You sent Authorization: {authorization}; body: "
                    f"{raw.decode('utf-8', 'replace')}" if rule.echo_request else ""
                )
                fault_body = (
                    rule.body
                    if rule.body is not None
                    else {
                        "status": "error",
                        "message": f"Injected fault: HTTP {rule.status}.{echoed}",
                        "correlationId": correlation_id(),
                        "category": "INTERNAL_ERROR",
                    }
                )
                return (rule.status, fault_body, headers), path, query_text, None
        query = parse_qs(query_text, keep_blank_values=True)
        app: App | None = None
        try:
            if path in _TOKEN_PATHS:
                dated = _TOKEN_PATHS[path]
                if method != "POST":
                    raise SandboxHttpError(405, f"Use POST for {path}.", "METHOD_NOT_ALLOWED")
                form = {
                    k: v[-1]
                    for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()
                }
                if not dated:  # v1 also reads the query string; 2026-03 takes the form only
                    form.update({k: v[-1] for k, v in query.items()})
                return (200, self.auth.refresh(form, dated=dated), {}), path, query_text, None
            app = self.auth.authenticate(authorization, query)
            now = self.portal.clock().timestamp()
            headers = self.limiter.check(app.app_id, now, path.endswith("/search"), self.stats)
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise SandboxHttpError(400, f"Invalid input JSON on line 1: {exc}") from exc
            status, payload = self.route(
                method, path, query, body, Source("API", str(app.app_id), app.app_id)
            )
            if self.faults.active and self.faults.take_after_work(method, path):
                self.stats.connections_reset += 1
                return None, path, query_text, app
            return (status, payload, headers), path, query_text, app
        except SandboxHttpError as error:
            return (error.status, error.body(), error.headers), path, query_text, app

    # ---------------------------------------------------------------- routing
    def route(
        self, method: str, path: str, query: Mapping[str, list[str]], body: Any, source: Source
    ) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        legacy = _families.legacy_parts(parts)
        if legacy is None:
            return self._route(method, path, parts, query, body, source, dated=False)
        if not _families.serves_dated(method, path):
            raise SandboxHttpError(
                404, f"No sandbox route for {method} {path}.", "OBJECT_NOT_FOUND"
            )
        return _families.dated_answer(
            *self._route(method, path, legacy, query, body, source, dated=True)
        )

    def _route(
        self,
        method: str,
        path: str,
        parts: list[str],
        query: Mapping[str, list[str]],
        body: Any,
        source: Source,
        *,
        dated: bool,
    ) -> tuple[int, Any]:
        """Serve a request given in legacy path segments; ``dated`` selects the 2026-09 shape."""
        if len(parts) >= 4 and parts[0] == "crm":
            version, family = parts[1], parts[2]
            if version == "v3" and family == "objects":
                return self._objects(method, parts[3:], query, body, source, dated)
            if (
                version == "v4"
                and family == "associations"
                and len(parts) == 7
                and parts[5] == "batch"
            ):
                self._expect(method, "POST")
                if parts[6] == "read":
                    return self.portal.read_associations(
                        parts[3], parts[4], self._body(body), _families.ASSOCIATION_PAGE_SIZE
                    )
                if parts[6] == "create":
                    return self.portal.create_associations(parts[3], parts[4], self._body(body))
            if (
                version == "v4"
                and family == "objects"
                and len(parts) == 7
                and parts[5] == "associations"
            ):
                self._expect(method, "GET")
                return 200, self.portal.association_page(
                    parts[3],
                    parts[4],
                    parts[6],
                    after=self._last(query, "after"),
                    limit=self._association_limit(query),
                )
            if (
                version == "v4"
                and family == "objects"
                and len(parts) == 9
                and parts[5] == "associations"
                and parts[6] == "default"
            ):
                self._expect(method, "PUT")
                return 200, self.portal.associate_default(parts[3], parts[4], parts[7], parts[8])
            if version == "v3" and family == "pipelines":
                self._expect(method, "GET")
                if len(parts) == 4:
                    return 200, self.portal.list_pipelines(parts[3])
                if len(parts) == 5:
                    return 200, self.portal.get_pipeline(parts[3], parts[4])
            if version == "v3" and family == "properties":
                return self._properties(method, parts[3:], body)
        if (method, path.rstrip("/")) in _families.ACCOUNT_OPERATIONS:
            return 200, self.portal.account_details()
        raise SandboxHttpError(404, f"No sandbox route for {method} {path}.", "OBJECT_NOT_FOUND")

    @staticmethod
    def _expect(method: str, wanted: str) -> None:
        if method != wanted:
            raise SandboxHttpError(
                405, f"Method {method} is not allowed here; use {wanted}.", "METHOD_NOT_ALLOWED"
            )

    @staticmethod
    def _association_limit(query: Mapping[str, list[str]]) -> int:
        """The per-object association GET's ``limit``: 1 to 500, 500 when not given."""
        most = _families.ASSOCIATION_PAGE_SIZE
        text = (query.get("limit") or [str(most)])[-1]
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= most):
            raise SandboxHttpError(
                400, f"limit must be a whole number from 1 to {most}; got {text!r}."
            )
        return int(text)

    @staticmethod
    def _body(body: Any) -> Mapping[str, Any]:
        if not isinstance(body, Mapping):
            raise SandboxHttpError(400, "Invalid input JSON: expected an object.")
        return body

    @staticmethod
    def _names(query: Mapping[str, list[str]], key: str) -> list[str] | None:
        values = [
            name.strip() for raw in query.get(key, []) for name in raw.split(",") if name.strip()
        ]
        return values or None

    @staticmethod
    def _last(query: Mapping[str, list[str]], key: str) -> str | None:
        values = query.get(key)
        return values[-1] if values else None

    @staticmethod
    def _flag(query: Mapping[str, list[str]], key: str) -> bool:
        return (query.get(key) or ["false"])[-1].lower() == "true"

    def _objects(
        self,
        method: str,
        rest: list[str],
        query: Mapping[str, list[str]],
        body: Any,
        source: Source,
        dated: bool,
    ) -> tuple[int, Any]:
        portal = self.portal
        object_type = portal.require_type(rest[0])
        written = _families.write_shape(dated)
        if len(rest) == 1:
            if method == "GET":
                limit_text = (query.get("limit") or ["10"])[-1]
                if not limit_text.isdigit():
                    raise SandboxHttpError(400, f"limit must be a number; got {limit_text!r}.")
                return 200, portal.list_page(
                    object_type,
                    limit=int(limit_text),
                    after=self._last(query, "after"),
                    wanted=self._names(query, "properties"),
                    archived=self._flag(query, "archived"),
                    association_types=self._names(query, "associations") or (),
                )
            self._expect(method, "POST")
            data = self._body(body)
            if not isinstance(data.get("properties"), Mapping):
                raise SandboxHttpError(400, "Invalid input JSON: 'properties' must be an object.")
            obj = portal.create(
                object_type, data["properties"], source, data.get("associations") or ()
            )
            return written(201, portal.render(obj, list(data["properties"]) or None))
        if len(rest) == 2 and rest[1] == "search" and method == "POST":
            return 200, portal.search(object_type, self._body(body))
        if len(rest) == 2 and rest[1] == "merge" and method == "POST":
            data = self._body(body)
            if "primaryObjectId" not in data or "objectIdToMerge" not in data:
                raise SandboxHttpError(400, "Merging needs primaryObjectId and objectIdToMerge.")
            merged = portal.merge(
                object_type, str(data["primaryObjectId"]), str(data["objectIdToMerge"]), source
            )
            return written(200, portal.render(merged, None))
        if len(rest) == 2:
            object_id = rest[1]
            id_property = self._last(query, "idProperty")
            if method == "GET":
                with portal.lock:
                    found = portal.find(
                        object_type, object_id, id_property, archived=self._flag(query, "archived")
                    )
                    if found is None:
                        raise SandboxHttpError(
                            404,
                            "Object not found.  objectId are usually numeric.",
                            "OBJECT_NOT_FOUND",
                            context={"id": [object_id]},
                        )
                    rendered = portal.render(found, self._names(query, "properties"))
                    names = self._names(query, "associations")
                    if names:
                        rendered["associations"] = portal.legacy_associations(found, names)
                    return 200, rendered
            if method == "PATCH":
                data = self._body(body)
                properties = data.get("properties")
                if not isinstance(properties, Mapping):
                    raise SandboxHttpError(
                        400, "Invalid input JSON: 'properties' must be an object."
                    )
                obj = portal.update(
                    object_type, object_id, properties, source, id_property=id_property
                )
                return written(200, portal.render(obj, list(properties) or None))
            if method == "DELETE":
                portal.archive(object_type, object_id, source)
                return 204, None
        if len(rest) == 3 and rest[1] == "batch" and method == "POST":
            data = self._body(body)
            operation = rest[2]
            if operation == "read":
                return portal.batch_read(object_type, data, self._flag(query, "archived"))
            if operation == "create":
                return written(*portal.batch_create(object_type, data, source))
            if operation == "update":
                return written(*portal.batch_update(object_type, data, source))
            if operation == "upsert":
                return written(*portal.batch_upsert(object_type, data, source))
            if operation == "archive":
                portal.batch_archive(object_type, data, source)
                return 204, None
        raise SandboxHttpError(
            404,
            f"No sandbox route for {method} objects/{'/'.join(rest)}.",
            "OBJECT_NOT_FOUND",
        )

    def _properties(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        portal = self.portal
        object_type = rest[0]
        if len(rest) == 1:
            if method == "GET":
                return 200, portal.list_properties(object_type)
            self._expect(method, "POST")
            return 201, portal.create_property(object_type, self._body(body))
        if rest[1] == "groups":
            if len(rest) == 2:
                if method == "GET":
                    return 200, portal.list_groups(object_type)
                self._expect(method, "POST")
                return 201, portal.create_group(object_type, self._body(body))
            if len(rest) == 3:
                self._expect(method, "GET")
                return 200, portal.get_group(object_type, rest[2])
        if len(rest) == 2:
            self._expect(method, "GET")
            return 200, portal.get_property(object_type, rest[1])
        raise SandboxHttpError(404, "No such properties route.", "OBJECT_NOT_FOUND")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in separate writes; without this, Nagle + delayed ACK add ~40 ms
    disable_nagle_algorithm = True
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        """Stay quiet: requests are logged as records, not on stderr."""

    def _handle(self) -> None:
        started = time.perf_counter()
        method = self.command
        service = self.server.service
        length = self._body_length()
        answer: Answer | None
        if isinstance(length, SandboxHttpError):
            # The body stays unread, so this connection cannot carry another request.
            answer = (length.status, length.body(), {"Connection": "close"})
            split = urlsplit(self.path)
            path, query, app = split.path, split.query, None
        else:
            raw = self.rfile.read(length) if length else b""
            answer, path, query, app = service.answer(
                method, self.path, self.headers.get("Authorization"), raw
            )
        status = 0 if answer is None else answer[0]
        data = b""
        content_type = _JSON
        if answer is not None and isinstance(answer[1], bytes):
            data, content_type = answer[1], "text/html; charset=utf-8"  # an injected proxy page
        elif answer is not None and status != 204 and answer[1] is not None:
            data = json.dumps(answer[1]).encode()
        # Logged before the answer leaves: a client holding its answer finds its request logged.
        service.log(
            RequestRecord(
                method,
                path,
                query,
                status,
                time.perf_counter() - started,
                time.time(),
                None if app is None else app.app_id,
            )
        )
        if answer is None:
            # an RST instead of an answer: what a dropped connection looks like to clients
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        _status, _payload, headers = answer
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _body_length(self) -> int | SandboxHttpError:
        """The announced body length, checked before a byte of the body is read."""
        if self.headers.get("Transfer-Encoding"):
            return SandboxHttpError(
                411, "Send the body with a Content-Length header; chunked bodies are not accepted."
            )
        values = {value.strip() for value in self.headers.get_all("Content-Length") or ()}
        if not values:
            return 0
        text = values.pop()
        if values or not (text.isascii() and text.isdigit()):
            return SandboxHttpError(400, "Content-Length must be one non-negative whole number.")
        if len(text) > 18 or int(text) > MAX_BODY_BYTES:
            return SandboxHttpError(413, f"The request body is over the {MAX_BODY_BYTES}-byte limit.")
        return int(text)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading server whose handler threads die with the process."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        self.service = service
        super().__init__(address, _Handler)
