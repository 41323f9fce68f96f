"""A small threaded web server for a WSGI app, from the standard library.

The plugin itself serves no HTTP: a host mounts its routes. This server is for running an app
on its own, without a host: the demo, ``ambac-hubspot host serve``, the tests and the
benchmarks.
"""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

__all__ = ["make_wsgi_server", "served_on_loopback"]


class _QuietHandler(WSGIRequestHandler):
    # Buffer the answer: unbuffered, wsgiref sends the status line, each header and the body
    # as separate small segments, five system calls and as many packets per answer.
    wbufsize = 64 * 1024
    #: Seconds a connection may stay silent (a body announced but not sent): then the read
    #: fails, the request gets its 408, and the thread is free again.
    timeout = 30.0

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



@contextlib.contextmanager
def served_on_loopback(app: Callable[..., Iterable[bytes]], name: str = "wsgi-server") -> Iterator[str]:
    """Serve ``app`` on a free loopback port from a daemon thread for the block; yield its base
    URL (the demo and the tests serve the reference host this way)."""
    server = make_wsgi_server(app)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
