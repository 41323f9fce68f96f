"""How much of a WSGI request body to read: one decision for every server in this package.

A WSGI server hands the application the raw socket stream and the ``Content-Length`` header
as the client wrote it (PEP 3333 checks neither). Trusting that number is how a client makes
a server allocate a terabyte or crash on ``Content-Length: abc``; reading without it blocks
on a body that never ends. So the announced length is parsed strictly, compared with the
limit *before* a byte of the body is read, and the body is then read no further than it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["BodyRefusal", "read_wsgi_body"]

_MAX_DIGITS = 18  # longer is over any limit; never int() a 5000-digit string
_CHUNK = 64 * 1024


@attrs.frozen
class BodyRefusal:
    """Why a request body was not read: the HTTP status, a short reason and what to do."""

    status: int
    reason: str
    message: str


def announced_length(text: str, limit: int) -> int | BodyRefusal:
    """A ``Content-Length`` value (``text``, not empty) as a number of bytes, or why it is
    refused: 400 when it is not one whole number, 413 when it is over ``limit``."""
    text = text.strip(" \t")
    if not text.isascii() or not text.isdigit():  # RFC 9110 8.6: 1*DIGIT, nothing else
        return BodyRefusal(400, "malformed", "Content-Length must be a non-negative whole "
                                             "number of bytes")
    if len(text) > _MAX_DIGITS or int(text) > limit:
        return BodyRefusal(413, "too_large", f"the body announced is over the {limit}-byte "
                                             "limit; send a smaller one")
    return int(text)


def read_wsgi_body(environ: Mapping[str, Any], *, limit: int,
                   length_required: bool) -> bytes | BodyRefusal:
    """Read the request body of ``environ``, or say why not (400, 408, 411 or 413).

    :param limit: the largest body accepted, in bytes; a longer announced length is refused
        with 413 before anything is read.
    :param length_required: refuse a request without ``Content-Length`` with 411 (otherwise
        it has no body, as RFC 9112 6.3 says of a request with neither length nor encoding).
    """
    if environ.get("HTTP_TRANSFER_ENCODING"):
        # wsgiref and most WSGI servers hand chunked bodies over undecoded; both headers at
        # once is how requests are smuggled past proxies (RFC 9112 6.1).
        if environ.get("CONTENT_LENGTH"):
            return BodyRefusal(400, "malformed", "send Content-Length or Transfer-Encoding, "
                                                 "not both")
        return BodyRefusal(411, "length_required", "send the body with a Content-Length "
                                                   "header; chunked bodies are not accepted")
    text = str(environ.get("CONTENT_LENGTH") or "").strip(" \t")
    if not text:
        if length_required:
            return BodyRefusal(411, "length_required", "send a Content-Length header")
        return b""
    length = announced_length(text, limit)
    if isinstance(length, BodyRefusal):
        return length
    stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    left = length
    try:
        while left > 0:
            chunk = stream.read(min(left, _CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except TimeoutError:
        return BodyRefusal(408, "timeout", "the body did not arrive in time; send it again")
    if left > 0:
        return BodyRefusal(400, "malformed", f"the body ended after {length - left} of the "
                                             f"{length} bytes Content-Length announced")
    return b"".join(chunks)
