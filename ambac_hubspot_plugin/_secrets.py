"""Masking and scrubbing secrets: the rules every output of the plugin shares.

Two places use them. Settings are rendered with every secret as :data:`MASK` (and a database
URL without its password). Text that came from outside (an error body from HubSpot or a proxy
in between) is scrubbed of the secrets the sender knew before it becomes part of an error, a
log entry or a status view. No regex here knows a token's format: a secret is scrubbed because
it is known, plus anything sent as ``Bearer ...``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote

__all__ = ["MASK", "failure_cause", "fits_a_header", "redact_url", "scrub", "url_passwords"]

MASK = "***"
"""What a secret is shown as; sent back as a setting's value it means "keep the stored one"."""

# Greedy to the last "@": an unencoded "@" or "/" in a password must not leak its tail.
_USERINFO = re.compile(r"(://[^:/@]*:)(.*)@")
_QUERY_PASSWORD = re.compile(r"(password=)([^&]*)", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)[^\s\"',;]+", re.IGNORECASE)
# Shorter strings would scrub ordinary words; no real token or password is this short.
_MIN_SECRET = 4


def fits_a_header(credential: str) -> bool:
    """Whether a credential can go into an HTTP header as it is: printable ASCII, no space. A
    line break (a token read from a file) would make the HTTP library's error quote it."""
    return credential.isascii() and credential.isprintable() and " " not in credential


def redact_url(url: str) -> str:
    """The database URL with its password (userinfo or ``?password=``) shown as ``***``."""
    return _QUERY_PASSWORD.sub(rf"\1{MASK}", _USERINFO.sub(rf"\1{MASK}@", url))


def url_passwords(url: str) -> list[str]:
    """The password(s) a database URL carries, as written and percent-decoded."""
    found = [m.group(2) for m in (_USERINFO.search(url),) if m is not None]
    found += [m.group(2) for m in _QUERY_PASSWORD.finditer(url)]
    return sorted({p for raw in found for p in (raw, unquote(raw)) if p})


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each known secret, and any ``Bearer`` credential, replaced by ``***``.

    A secret is also found URL-encoded: an OAuth refresh sends its secrets as a form, and an
    answer that echoes the request echoes them encoded.
    """
    known = {s for s in secrets if len(s) >= _MIN_SECRET}
    known |= {encoded for s in known for encoded in (quote_plus(s), quote(s, safe=""))}
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _BEARER.sub(rf"\1{MASK}", text)


def failure_cause(exc: BaseException, store_url: str) -> str:
    """The first line of a store failure, for an error message, never with the password."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    cause = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return scrub(cause, url_passwords(store_url))  # drivers do not print it; make sure anyway
