"""Retry decisions for HubSpot calls: which failures to retry, and how long to wait.

The adapter owns retries (the SDK's urllib3 retry is switched off), so this module is the one
place that says what a failure means. It is pure: the caller passes the clock readings and a
random source, which keeps the policy testable without sleeping.
"""

from __future__ import annotations

import enum
import json
import random
from collections.abc import Mapping

import attrs

__all__ = [
    "Failure",
    "FailureKind",
    "RetryPolicy",
    "parse_error_body",
    "parse_rate_limit_window",
    "parse_retry_after",
]

#: HubSpot's rolling window per 429 ``policyName``: without ``Retry-After``, waiting out the
#: whole window is the only wait that is sure to find budget again.
POLICY_WINDOW_SECONDS: dict[str, float] = {"SECONDLY": 1.0, "TEN_SECONDLY_ROLLING": 10.0}
#: The window for a 429 that names neither its window nor a policy we know: the longest one.
DEFAULT_WINDOW_SECONDS = 10.0


class FailureKind(enum.Enum):
    """What went wrong with one attempt, as far as retrying is concerned."""

    #: 429: HubSpot refused the request before processing it.
    RATE_LIMITED = "rate_limited"
    #: 5xx: HubSpot may or may not have processed the request.
    SERVER_ERROR = "server_error"
    #: The connection could not be opened: the request was certainly not sent.
    NOT_SENT = "not_sent"
    #: The connection broke or timed out after the request may have been sent.
    NETWORK = "network"


@attrs.frozen
class Failure:
    """One failed attempt: its kind, the server's ``Retry-After`` and ``policyName`` if any.

    ``window`` is the rate-limit window a 429 announced
    (``X-HubSpot-RateLimit-Interval-Milliseconds``), in seconds.
    """

    kind: FailureKind
    retry_after: float | None = None
    policy_name: str | None = None
    window: float | None = None

    def min_wait(self) -> float | None:
        """The shortest wait the server asks for, or ``None`` when it asks for none.

        ``Retry-After`` when given; else, for a 429, the whole rate-limit window (the
        announced one, else the policy's, else 10 s): a retry inside the window is refused
        again, and a few short jittered retries used to exhaust the attempts within it.
        """
        if self.retry_after is not None:
            return self.retry_after
        if self.kind is not FailureKind.RATE_LIMITED:
            return None
        if self.window is not None:
            return self.window
        return POLICY_WINDOW_SECONDS.get(self.policy_name or "", DEFAULT_WINDOW_SECONDS)


@attrs.frozen
class RetryPolicy:
    """Capped exponential backoff with full jitter, bounded in attempts and in total time.

    ``max_attempts`` counts every attempt (the first one included). ``max_elapsed`` bounds the
    time from the first attempt until a retry would start; a wait that would cross it is not
    taken, so a caller never blocks longer than that on one operation.
    """

    max_attempts: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    base_delay: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    max_delay: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    max_elapsed: float = attrs.field(default=120.0, validator=attrs.validators.ge(0))

    def should_retry(self, failure: Failure, *, idempotent: bool) -> bool:
        """Say whether this kind of failure may be retried at all.

        A non-idempotent request (a create) is re-sent only when the failure proves it was
        not processed: a 429 or a connection that never opened. A ``DAILY`` 429 is never
        retried: the budget comes back tomorrow, not in seconds.
        """
        if failure.kind is FailureKind.RATE_LIMITED:
            return failure.policy_name != "DAILY"
        if failure.kind is FailureKind.NOT_SENT:
            return True
        return idempotent

    def delay(self, retry_number: int, failure: Failure, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 for the first retry).

        Full jitter (uniform between 0 and the capped exponential) spreads threads that failed
        together; the server's wait (:meth:`Failure.min_wait`) is a floor, never shortened by
        the jitter.
        """
        # Clamped as the queue's Backoff.ceiling is: 2.0**1024 overflows a float, and any
        # exponent past 1000 is far beyond every max_delay anyway.
        exponent = min(max(retry_number - 1, 0), 1000)
        ceiling = min(self.max_delay, self.base_delay * 2.0**exponent)
        wait = rng.uniform(0.0, ceiling)
        floor = failure.min_wait()
        if floor is not None:
            wait = max(wait, floor)
        return wait

    def next_wait(
        self,
        attempt: int,
        failure: Failure,
        elapsed: float,
        rng: random.Random,
        *,
        idempotent: bool,
    ) -> float | None:
        """Return the wait before the next attempt, or ``None`` when retrying must stop.

        ``attempt`` is the number of attempts made so far, ``elapsed`` the seconds since the
        first one started.
        """
        if attempt >= self.max_attempts or not self.should_retry(failure, idempotent=idempotent):
            return None
        wait = self.delay(attempt, failure, rng)
        if elapsed + wait > self.max_elapsed:
            return None
        return wait


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Read a ``Retry-After`` header given in seconds; HTTP dates and junk count as absent."""
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative: not a usable instruction
        return None
    return seconds


def parse_rate_limit_window(headers: Mapping[str, str] | None) -> float | None:
    """Read ``X-HubSpot-RateLimit-Interval-Milliseconds`` as seconds; junk or absent gives ``None``."""
    raw = _header(headers, "x-hubspot-ratelimit-interval-milliseconds")
    if raw is None:
        return None
    try:
        millis = float(raw)
    except ValueError:
        return None
    # NaN, zero or negative is no window; a day or more is not a rolling burst window either.
    if not 0 < millis < 86_400_000:
        return None
    return millis / 1000.0


def parse_error_body(body: str | bytes | None) -> Mapping[str, object]:
    """Decode a HubSpot error body; anything that is not a JSON object gives ``{}``."""
    if not body:
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _header(headers: Mapping[str, str] | None, lowered_name: str) -> str | None:
    """The value of one header, matched without regard to case."""
    for name, value in (headers or {}).items():
        if name.lower() == lowered_name:
            return value
    return None
