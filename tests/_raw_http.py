"""Raw HTTP over a loopback socket, for requests no well-behaved client library would send."""

from __future__ import annotations

import socket

import attrs


@attrs.frozen
class RawAnswer:
    """One HTTP answer as read off the socket."""

    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool
    """Whether the server closed the connection right after the answer."""


def exchange(port: int, head: str, body: bytes = b"", *, timeout: float = 10.0) -> RawAnswer:
    """Send ``head`` (request line and headers, ``\\n`` separated) then ``body`` as they are,
    and read one answer; the write side stays open, so a server waiting for a body the
    request announced but never sent runs into ``timeout`` instead of reading EOF."""
    request = head.strip("\n").replace("\n", "\r\n").encode("latin-1") + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"the server closed the connection without an answer: {data!r}")
            data += chunk
        raw_head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *lines = raw_head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        try:
            sock.settimeout(2.0)
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        except ConnectionResetError:
            closed = True
    return RawAnswer(int(status_line.split()[1]), headers, rest[:length], closed)
