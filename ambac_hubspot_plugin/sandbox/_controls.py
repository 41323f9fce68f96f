"""Knobs tests turn: rate limits, injected faults, the request log and counters."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import attrs

from ._util import SandboxHttpError, correlation_id


@attrs.frozen
class RateLimits:
    """HubSpot's API limits as the sandbox enforces them, per app (token owner).

    ``None`` switches a limit off. ``retry_after`` says whether 429 answers carry
    ``Retry-After``; HubSpot often leaves it out on the ten-secondly limit and always sends it
    on search, so ``search_retry_after=None`` means "same as ``retry_after``".
    """

    burst_per_10s: int | None = 190
    search_per_second: int | None = 5
    retry_after: bool = False
    search_retry_after: bool | None = None

    @classmethod
    def unlimited(cls) -> RateLimits:
        """No limits at all: for tests about something else."""
        return cls(burst_per_10s=None, search_per_second=None)


@attrs.define
class Stats:
    """Counters of what the sandbox answered."""

    requests: int = 0
    rate_limited: int = 0
    rate_limited_search: int = 0
    faults_injected: int = 0
    connections_reset: int = 0


@attrs.frozen
class RequestRecord:
    """One served request, as logged: cheap enough to keep for every call."""

    method: str
    path: str
    query: str
    status: int
    duration: float
    time: float
    app_id: int | None = None


class RateLimiter:
    """Rolling windows per app, timed by the sandbox clock (so tests can step through them)."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._burst: dict[object, deque[float]] = {}
        self._search: dict[object, deque[float]] = {}

    def set_limits(self, limits: RateLimits) -> None:
        with self._lock:
            self.limits = limits
            self._burst.clear()
            self._search.clear()

    def check(self, key: object, now: float, search: bool, stats: Stats) -> dict[str, str]:
        """Count one call; raise a 429 SandboxHttpError when over budget, else return headers."""
        limits = self.limits
        with self._lock:
            if search:
                if limits.search_per_second is None:
                    return {}
                window = self._search.setdefault(key, deque())
                self._slide(window, now - 1.0)
                if len(window) >= limits.search_per_second:
                    stats.rate_limited += 1
                    stats.rate_limited_search += 1
                    wants = (
                        limits.retry_after
                        if limits.search_retry_after is None
                        else limits.search_retry_after
                    )
                    retry = max(0.0, window[0] + 1.0 - now)
                    raise self._too_many("secondly", "SECONDLY", wants, retry, {})
                window.append(now)
                return {}
            if limits.burst_per_10s is None:
                return {}
            window = self._burst.setdefault(key, deque())
            self._slide(window, now - 10.0)
            headers = {
                "X-HubSpot-RateLimit-Max": str(limits.burst_per_10s),
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            }
            if len(window) >= limits.burst_per_10s:
                stats.rate_limited += 1
                headers["X-HubSpot-RateLimit-Remaining"] = "0"
                retry = max(0.0, window[0] + 10.0 - now)
                raise self._too_many(
                    "ten_secondly_rolling",
                    "TEN_SECONDLY_ROLLING",
                    limits.retry_after,
                    retry,
                    headers,
                )
            window.append(now)
            headers["X-HubSpot-RateLimit-Remaining"] = str(limits.burst_per_10s - len(window))
            return headers

    @staticmethod
    def _slide(window: deque[float], horizon: float) -> None:
        while window and window[0] <= horizon:
            window.popleft()

    @staticmethod
    def _too_many(
        label: str, policy: str, with_retry_after: bool, retry: float, headers: dict[str, str]
    ) -> SandboxHttpError:
        headers = dict(headers)
        if with_retry_after:
            headers["Retry-After"] = str(max(1, int(retry + 0.999)))
        body = _rate_limit_body(label, policy)
        return SandboxHttpError(429, body["message"], "RATE_LIMITS", headers=headers, raw_body=body)


def _rate_limit_body(label: str, policy: str) -> dict[str, str]:
    """HubSpot's body of a 429 for ``policy``."""
    return {
        "status": "error",
        "message": f"You have reached your {label} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
        "category": "RATE_LIMITS",
    }


@attrs.define
class _FailRule:
    remaining: int
    status: int
    path_prefix: str | None
    method: str | None
    retry_after: float | None
    body: Any
    headers: dict[str, str] = attrs.field(factory=dict)
    echo_request: bool = False
    body_contains: bytes | None = None


@attrs.define
class _ResetRule:
    remaining: int
    path_prefix: str | None
    after_work: bool = False
    method: str | None = None


class Faults:
    """Injected failures: the next N matching calls fail, slow down or lose their connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail: list[_FailRule] = []
        self._reset: list[_ResetRule] = []
        self._latency: list[tuple[float, str | None]] = []

    def fail_next(
        self,
        count: int,
        status: int = 503,
        path_prefix: str | None = None,
        method: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
        echo_request: bool = False,
        body_contains: str | None = None,
    ) -> None:
        """Make the next ``count`` matching calls answer ``status`` (with ``body`` if given).

        ``body`` as ``bytes`` is sent as it is (``text/html``), like a proxy's error page.
        ``echo_request=True`` puts the request's ``Authorization`` header and body into the
        error message, as a careless proxy or debugging gateway does. ``body_contains``
        matches only requests whose body holds that text: with ``status=400``, how HubSpot
        refuses a whole batch for one bad input.
        """
        with self._lock:
            self._fail.append(
                _FailRule(
                    count,
                    status,
                    path_prefix,
                    method.upper() if method else None,
                    retry_after,
                    body,
                    echo_request=echo_request,
                    body_contains=None if body_contains is None else body_contains.encode(),
                )
            )

    def rate_limit_next(
        self,
        count: int,
        *,
        policy: str = "TEN_SECONDLY_ROLLING",
        interval_ms: int | None = 10_000,
        retry_after: float | None = None,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> None:
        """Make the next ``count`` matching calls answer HubSpot's 429 for ``policy``.

        By default like HubSpot's ten-secondly 429: no ``Retry-After``, only the
        ``X-HubSpot-RateLimit-*`` headers with the window in ``interval_ms``; ``interval_ms=None``
        leaves those headers out too, so a client learns the window from nothing but the body.
        """
        body = _rate_limit_body(policy.lower(), policy)
        headers = (
            {}
            if interval_ms is None
            else {
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(interval_ms),
                "X-HubSpot-RateLimit-Remaining": "0",
            }
        )
        with self._lock:
            self._fail.append(
                _FailRule(
                    count,
                    429,
                    path_prefix,
                    method.upper() if method else None,
                    retry_after,
                    body,
                    headers,
                )
            )

    def latency(self, seconds: float, path_prefix: str | None = None) -> None:
        """Delay every matching call by ``seconds`` until :meth:`clear`."""
        with self._lock:
            self._latency.append((seconds, path_prefix))

    def reset_connection_next(self, count: int, path_prefix: str | None = None) -> None:
        """Close the connection of the next ``count`` matching calls without answering."""
        with self._lock:
            self._reset.append(_ResetRule(count, path_prefix))

    def lose_answer_next(
        self, count: int, path_prefix: str | None = None, method: str | None = None
    ) -> None:
        """Do the next ``count`` matching calls, then close their connection without answering:
        what a client sees when its read times out after HubSpot did the work."""
        with self._lock:
            self._reset.append(
                _ResetRule(count, path_prefix, after_work=True,
                           method=method.upper() if method else None)
            )

    def clear(self) -> None:
        """Forget every injected fault."""
        with self._lock:
            self._fail.clear()
            self._reset.clear()
            self._latency.clear()

    @property
    def active(self) -> bool:
        return bool(self._fail or self._reset or self._latency)

    def take(
        self, method: str, path: str, raw: bytes = b""
    ) -> tuple[float, bool, _FailRule | None]:
        """(delay, reset?, fail rule) for one call, consuming one use of each matching rule."""
        with self._lock:
            delay = sum(
                s for s, prefix in self._latency if prefix is None or path.startswith(prefix)
            )
            for reset in self._reset:
                if not reset.after_work and self._resets(reset, method, path):
                    reset.remaining -= 1
                    return delay, True, None
            for rule in self._fail:
                if (
                    rule.remaining > 0
                    and (rule.path_prefix is None or path.startswith(rule.path_prefix))
                    and (rule.method is None or rule.method == method)
                    and (rule.body_contains is None or rule.body_contains in raw)
                ):
                    rule.remaining -= 1
                    return delay, False, rule
            return delay, False, None

    def take_after_work(self, method: str, path: str) -> bool:
        """Whether to lose the answer of a call that was done (see :meth:`lose_answer_next`)."""
        with self._lock:
            for reset in self._reset:
                if reset.after_work and self._resets(reset, method, path):
                    reset.remaining -= 1
                    return True
            return False

    @staticmethod
    def _resets(rule: _ResetRule, method: str, path: str) -> bool:
        return (
            rule.remaining > 0
            and (rule.path_prefix is None or path.startswith(rule.path_prefix))
            and (rule.method is None or rule.method == method)
        )
