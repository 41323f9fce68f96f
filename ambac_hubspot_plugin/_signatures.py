"""Verifying HubSpot webhook signatures (v3, v2, v1) on the raw request bytes.

Standard library only. The secret is used for hashing and nothing else: it never reaches an
error message, a log line or a repr.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from .errors import WebhookSignatureError

__all__ = [
    "ALL_VERSIONS",
    "MAX_TIMESTAMP_SKEW",
    "decode_v3_uri",
    "expected_v1",
    "expected_v2",
    "expected_v3",
    "verify_signature",
]

MAX_TIMESTAMP_SKEW = timedelta(minutes=5)
"""How far ``X-HubSpot-Request-Timestamp`` may be from our clock, either way."""

ALL_VERSIONS = ("v3", "v2", "v1")
"""Every signature version HubSpot sends; v1 covers the body only, v2 and v3 the URL too."""

V3_HEADER = "x-hubspot-signature-v3"
TIMESTAMP_HEADER = "x-hubspot-request-timestamp"
SIGNATURE_HEADER = "x-hubspot-signature"
VERSION_HEADER = "x-hubspot-signature-version"

# HubSpot decodes exactly these escapes (and no others) in the URI before hashing for v3.
_V3_ESCAPES = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)
_TIMESTAMP = re.compile(r"[0-9]{1,16}")
_MAX_SIGNATURE_CHARS = 512


def decode_v3_uri(uri: str) -> str:
    """The URI as HubSpot hashes it for v3: ``%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B``
    decoded, every other escape left alone."""
    return _V3_ESCAPES.sub(lambda m: chr(int(m.group(1), 16)), uri)


def expected_v1(secret: str, body: bytes) -> str:
    """hex(SHA-256(secret + body))."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


def expected_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    """hex(SHA-256(secret + method + URI + body))."""
    return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def expected_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(secret, method + decoded URI + body + timestamp))."""
    message = method.encode() + decode_v3_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _same(given: str, expected: str) -> bool:
    # Header values may hold any byte (WSGI decodes them as latin-1); compare bytes in
    # constant time so neither the content nor the length of a guess leaks through timing.
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode())


def verify_signature(
    *,
    secret: str,
    method: str,
    uri: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    max_skew: timedelta = MAX_TIMESTAMP_SKEW,
    versions: Collection[str] = ALL_VERSIONS,
) -> str:
    """Check a delivery's signature and return the version that proved it (``v3``/``v2``/``v1``).

    v3 is used whenever its header is present (a bad v3 is never rescued by a v1 header);
    otherwise ``X-HubSpot-Signature-Version`` picks v1 or v2. Header names are matched
    ignoring case.

    :param secret: the app's client secret.
    :param method: the HTTP method HubSpot used (``POST``).
    :param uri: the full public URL HubSpot called, query included.
    :param headers: the request headers.
    :param body: the raw body bytes, exactly as received.
    :param now: tz-aware UTC now, to judge the v3 timestamp.
    :param versions: the versions this endpoint accepts; a request signed with another one is
        refused whether or not its signature matches (the message names the expected ones).
    :raises WebhookSignatureError: missing, malformed, stale, future-dated, not matching or of
        a version not accepted; the message says which, and never contains the secret.
    """
    if not secret:
        raise WebhookSignatureError("no webhook client secret is configured for this tenant; "
                                    "set webhook_client_secret in the plugin settings")
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    method = method.upper()
    v3 = lowered.get(V3_HEADER)
    if v3 is not None and "v3" in versions:
        _check_length(v3, "X-HubSpot-Signature-v3")
        timestamp = lowered.get(TIMESTAMP_HEADER, "").strip()
        if not _TIMESTAMP.fullmatch(timestamp):
            raise WebhookSignatureError(
                "v3 signature without a valid X-HubSpot-Request-Timestamp (epoch milliseconds)")
        skew_ms = int(now.timestamp() * 1000) - int(timestamp)
        if abs(skew_ms) > max_skew.total_seconds() * 1000:
            direction = "old" if skew_ms > 0 else "in the future"
            raise WebhookSignatureError(
                f"v3 request timestamp is {abs(skew_ms) // 1000} s {direction} (more than "
                f"{int(max_skew.total_seconds())} s); check the server clock, or this is a replay")
        if not _same(v3, expected_v3(secret, method, uri, body, timestamp)):
            raise WebhookSignatureError(
                "v3 signature does not match: wrong client secret, a body changed on the way, "
                "or public_base_url differs from the URL HubSpot calls")
        return "v3"
    signature = lowered.get(SIGNATURE_HEADER)
    if signature is None:
        raise WebhookSignatureError("unsigned request: neither X-HubSpot-Signature-v3 nor "
                                    "X-HubSpot-Signature is present")
    _check_length(signature, "X-HubSpot-Signature")
    version = lowered.get(VERSION_HEADER, "").strip().lower()
    if version in ALL_VERSIONS and version not in versions:
        raise WebhookSignatureError(
            f"{version} signatures are not accepted here: {_expected(versions)} is expected "
            "(v1 covers only the body, not the URL, so it cannot tell one endpoint from another)")
    if version == "v1":
        expected = expected_v1(secret, body)
    elif version == "v2":
        expected = expected_v2(secret, method, uri, body)
    else:
        shown = version[:16] if version.isprintable() else "(unprintable)"
        raise WebhookSignatureError(
            f"X-HubSpot-Signature-Version {shown!r} is not v1 or v2 (and no v3 header is present)")
    if not _same(signature.lower(), expected):
        raise WebhookSignatureError(f"{version} signature does not match: wrong client secret or "
                                    "a body changed on the way")
    return version


def _expected(versions: Collection[str]) -> str:
    names = {"v3": "v3 (X-HubSpot-Signature-v3 with X-HubSpot-Request-Timestamp)",
             "v2": "v2 (X-HubSpot-Signature with X-HubSpot-Signature-Version: v2)",
             "v1": "v1 (X-HubSpot-Signature with X-HubSpot-Signature-Version: v1)"}
    return " or ".join(names[v] for v in ALL_VERSIONS if v in versions)


def _check_length(value: str, name: str) -> None:
    if len(value) > _MAX_SIGNATURE_CHARS:
        raise WebhookSignatureError(f"{name} is {len(value)} characters long; not a signature")
