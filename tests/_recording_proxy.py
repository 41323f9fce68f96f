"""A loopback HTTP proxy that records every request it forwards, body included.

The sandbox's request log keeps method, path and status but not bodies; tests that check what
the adapter really sends (through the real SDK) point the client at this proxy instead.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import urlsplit

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "host"})


class Recorded(NamedTuple):
    """One forwarded exchange: the request's method, path with query, headers and raw body, and
    the answer's status, headers and raw body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    answer_headers: dict[str, str]
    answer: bytes


@contextmanager
def recording_proxy(target: str) -> Iterator[tuple[str, list[Recorded]]]:
    """Serve a proxy to ``target`` (``http://host:port``); yield its base URL and the record."""
    parts = urlsplit(target)
    recorded: list[Recorded] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                recorded.append(
                    Recorded(
                        self.command,
                        self.path,
                        headers,
                        body,
                        answer.status,
                        dict(answer.getheaders()),
                        data,
                    )
                )
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            finally:
                upstream.close()

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:  # the stdlib's parameter name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
