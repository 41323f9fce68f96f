"""What a refused HubSpot request means: the retry decision, and the error of ours to raise.

Pure logic, no SDK: every SDK sub-package has its own ``ApiException``, so one is recognised
by its attributes (``status``, ``body``, ``headers``). Whatever an answer says passes through
:func:`remote_text` (one line, bounded, known secrets scrubbed) before it reaches an error, a
log entry or the status view: HubSpot, or a proxy in between, may echo the request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from ._retry import (
    Failure,
    FailureKind,
    parse_error_body,
    parse_rate_limit_window,
    parse_retry_after,
)
from ._secrets import scrub
from .errors import (
    HubSpotApiError,
    HubSpotAuthError,
    HubSpotUnavailableError,
    RateLimitedError,
)

__all__ = [
    "REMOTE_MESSAGE_LIMIT",
    "classify",
    "disarm",
    "headers_of",
    "is_api_exception",
    "network_error",
    "remote_text",
    "word",
]

#: The most characters of HubSpot's own error message an error of ours carries.
REMOTE_MESSAGE_LIMIT = 300

# Error detail HubSpot sends as identifiers (category, correlation id); anything else is dropped.
_WORD = re.compile(r"[A-Za-z0-9_.:-]{1,80}")


def is_api_exception(exc: BaseException) -> bool:
    """Every SDK sub-package has its own ``ApiException``: recognise them by their attributes."""
    return hasattr(exc, "status") and hasattr(exc, "body") and hasattr(exc, "headers")


def api_exception(exc: BaseException) -> BaseException | None:
    """The SDK ``ApiException`` that ``exc`` is, or was being raised when ``exc`` happened: the
    SDK decodes an error page's body as UTF-8 on the way out, so a page in another encoding (a
    proxy's) comes as a ``UnicodeDecodeError`` over it. None for any other error."""
    if is_api_exception(exc):
        return exc
    context = exc.__context__
    if isinstance(exc, UnicodeDecodeError) and context is not None and is_api_exception(context):
        return context
    return None


def _text(body: object) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return "" if body is None else str(body)


def word(value: object) -> str | None:
    """``value`` as text when it is an identifier (category, status, id); else None."""
    return str(value) if value is not None and _WORD.fullmatch(str(value)) else None


def headers_of(raw: object) -> dict[str, str]:
    """An exception's headers (an ``HTTPHeaderDict``, a dict or None) as a plain dict."""
    if raw is None:
        return {}
    try:
        return {str(k): str(v) for k, v in dict(raw).items()}  # type: ignore[call-overload]  # HTTPHeaderDict or dict
    except (TypeError, ValueError):
        return {}


def remote_text(text: object, secrets: Sequence[str]) -> str:
    """Text from an answer, fit for our errors: one line, bounded, ``secrets`` scrubbed."""
    clean = scrub(" ".join(str(text).split()), secrets)
    if len(clean) > REMOTE_MESSAGE_LIMIT:
        clean = clean[:REMOTE_MESSAGE_LIMIT] + "..."
    return clean


def disarm(exc: BaseException, secrets: Sequence[str]) -> None:
    """Scrub the SDK exception we chain: a traceback prints its body and headers."""
    for name in ("body", "reason"):
        value = getattr(exc, name, None)
        if isinstance(value, str | bytes):
            setattr(exc, name, scrub(_text(value), secrets))
    headers = getattr(exc, "headers", None)
    if headers:
        exc.headers = {k: scrub(v, secrets) for k, v in headers_of(headers).items()}  # type: ignore[attr-defined]  # an SDK ApiException


def network_error(base_url: str, operation: str, exc: BaseException) -> HubSpotUnavailableError:
    """The error for a request that got no answer (refused, reset, timed out)."""
    return HubSpotUnavailableError(
        f"could not talk to HubSpot at {base_url}: {type(exc).__name__}; "
        "check the network or HubSpot's status page, the call may be retried later",
        operation=operation,
    )


def classify(
    operation: str, exc: BaseException, status: int, secrets: Callable[[], Sequence[str]]
) -> tuple[Failure | None, HubSpotApiError]:
    """Turn an SDK ``ApiException`` into a retry decision and the error to raise.

    ``secrets`` gives every credential the client has sent or may send; the exception is
    scrubbed of them too, since the error chains it.
    """
    body = parse_error_body(getattr(exc, "body", None))
    headers = headers_of(getattr(exc, "headers", None))
    # OAuth token endpoints answer with RFC 6749's error/error_description (2026-03) or
    # HubSpot's status/message (v1); the CRM APIs with category/message.
    category = word(body.get("error")) or word(body.get("category") or body.get("errorType"))
    correlation = word(body.get("correlationId") or headers.get("X-HubSpot-Correlation-Id"))
    message = remote_text(
        body.get("error_description")
        or body.get("message")
        or getattr(exc, "reason", None)
        or "no message",
        secrets(),
    )
    disarm(exc, secrets())
    common: dict[str, Any] = {
        "status": status or None,
        "category": category,
        "correlation_id": correlation,
        "operation": operation,
    }
    if status == 429:
        policy = word(body.get("policyName"))
        retry_after = parse_retry_after(headers)
        hint = (
            "the daily limit is used up; calls resume after midnight in the portal's time zone"
            if policy == "DAILY"
            else "HubSpot kept refusing after our retries; try again later"
        )
        err: HubSpotApiError = RateLimitedError(
            f"HubSpot rate limit reached: {message}; {hint}",
            retry_after=retry_after,
            policy_name=str(policy) if policy else None,
            **common,
        )
        return Failure(
            FailureKind.RATE_LIMITED,
            retry_after,
            str(policy) if policy else None,
            window=parse_rate_limit_window(headers),
        ), err
    if operation == "oauth.refresh" and 400 <= status < 500:
        # The refresh token was revoked (app uninstalled), or the app's id/secret are wrong:
        # no retry helps, only new credentials do.
        return None, HubSpotAuthError(
            f"HubSpot refused to refresh the OAuth access token: {message}; check the app's "
            "client id and secret, and reconnect the app (install it again in HubSpot) to "
            "get a new refresh token",
            **common,
        )
    if status in (401, 403):
        what = (
            "the access token is invalid or expired; reconnect the HubSpot account"
            if status == 401
            else "the token lacks a scope this call needs; grant it to the app"
        )
        return None, HubSpotAuthError(
            f"HubSpot refused the credentials: {message}; {what}", **common
        )
    if status >= 500 or status == 0:
        return Failure(
            FailureKind.SERVER_ERROR, parse_retry_after(headers)
        ), HubSpotUnavailableError(
            f"HubSpot failed to answer: {message}; it may be down, retry later", **common
        )
    return None, HubSpotApiError(f"HubSpot rejected the request: {message}", **common)
