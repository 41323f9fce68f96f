"""Client-side rate limiting ahead of HubSpot's own limits.

HubSpot counts a rolling 10-second burst per app and portal, and searches apart at 5 per
second. Staying under both on our side costs a short wait; hitting them costs a 429, a backoff
and a retry. The limiter is shared by every thread of the process that talks to the same
portal with the same app (:func:`shared_limiter`), because HubSpot's counters are shared too.

A sliding-window log matches HubSpot's rolling window. In the process's memory it is
pyrate-limiter's, whose leak we drive ourselves (no background thread per limiter). With a
``redis://`` backend (the ``rate_limit_backend`` setting) it is a sorted set in Redis, kept by
one script of ours (:class:`_RedisPermits`): then every process of every machine using that
Redis shares one budget per portal and app.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
from pyrate_limiter import AbstractBucket, InMemoryBucket, Limiter, Rate, SingleBucketFactory

from ._settings_model import RATE_LIMIT_BACKEND_SCHEMES as REDIS_SCHEMES
from .errors import ConfigError

__all__ = [
    "REDIS_SCHEMES",
    "TIER_BURST_PER_10S",
    "RateBudget",
    "RateLimiter",
    "budget_for_tier",
    "shared_limiter",
]

#: Requests per rolling 10 seconds, per HubSpot account tier (HubSpot's published limits).
TIER_BURST_PER_10S: dict[str, int] = {
    "free": 100,
    "starter": 100,
    "professional": 190,
    "enterprise": 190,
    "capacity_pack": 250,
    "oauth_app": 110,
}

#: Search requests per second, per account, on every tier.
SEARCH_PER_SECOND = 5

logger = logging.getLogger(__name__)

#: Prefix of the Redis keys holding the limiters' logs.
REDIS_KEY_PREFIX = "ambac-hubspot:ratelimit:"


@attrs.frozen
class RateBudget:
    """How many requests we allow ourselves: ``burst`` per ``window_seconds``, searches per second.

    ``margin_seconds`` widens both windows: a request leaves here a little before HubSpot counts
    it, and a late arrival must not push the server's window over the limit.

    ``headroom`` permits of each window are never given out (by default 5% of ``burst``,
    rounded down). The margin covers requests that reach HubSpot a little late; a request held
    up longer (its process descheduled on a busy machine, a slow network path) still counts in
    HubSpot's window after its permit left ours, and its slot is taken again at once when
    several processes wait. At most one request per caller is in flight, so a few permits held
    back keep HubSpot's window within the burst (three Celery workers on two busy cores met
    one 429 a run without it: ``benchmarks/bench_workers_budget.py``).
    """

    burst: int = attrs.field(validator=attrs.validators.ge(1))
    window_seconds: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    search_per_second: int = attrs.field(
        default=SEARCH_PER_SECOND, validator=attrs.validators.ge(1)
    )
    margin_seconds: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    headroom: int = attrs.field(
        default=attrs.Factory(lambda self: self.burst // 20, takes_self=True),
        validator=attrs.validators.ge(0),
    )

    @headroom.validator
    def _below_burst(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if value >= self.burst:
            raise ValueError(f"headroom ({value}) must leave at least one of the burst's {self.burst} permits")

    @property
    def permits(self) -> int:
        """Permits given out per window: the burst less the headroom."""
        return self.burst - self.headroom


def budget_for_tier(
    tier: str,
    *,
    burst: int | None = None,
    window_seconds: float = 10.0,
    search_per_second: int | None = None,
    margin_seconds: float = 0.1,
) -> RateBudget:
    """Build the budget for an account tier; explicit numbers override the tier's.

    :raises ValueError: for an unknown tier (settings validation names the field first).
    """
    if burst is None:
        try:
            burst = TIER_BURST_PER_10S[tier]
        except KeyError:
            known = ", ".join(sorted(TIER_BURST_PER_10S))
            raise ValueError(f"unknown HubSpot account tier {tier!r}; use one of {known}") from None
    return RateBudget(
        burst=burst,
        window_seconds=window_seconds,
        search_per_second=search_per_second or SEARCH_PER_SECOND,
        margin_seconds=margin_seconds,
    )


class _Permits:
    """A burst log and a search log in this process's memory, and the blocking limiters over them."""

    #: Forget expired log entries every this many permits, so the logs stay bounded.
    _LEAK_EVERY = 256

    def __init__(self, burst: AbstractBucket, search: AbstractBucket) -> None:
        self._buckets = (burst, search)
        self._burst = Limiter(SingleBucketFactory(burst, schedule_leak=False))
        self._search = Limiter(SingleBucketFactory(search, schedule_leak=False))
        self._count = 0
        self._count_lock = threading.Lock()

    def acquire(self, search: bool, timeout: float, monotonic: Callable[[], float]) -> float | None:
        started = monotonic()
        if search and not self._search.try_acquire("search", blocking=True, timeout=timeout):
            return None
        # A floor, so a search that used up the wait still gets a fair try at the lock.
        remaining = max(0.05, timeout - (monotonic() - started))
        if not self._burst.try_acquire("burst", blocking=True, timeout=remaining):
            return None
        self._maybe_leak()
        return monotonic() - started

    def _maybe_leak(self) -> None:
        with self._count_lock:
            self._count += 1
            due = self._count % self._LEAK_EVERY == 0
        if due:
            for bucket in self._buckets:
                # pyrate_limiter leaves now() unannotated; naming its type keeps the call checked.
                clock: Callable[[], object] = bucket.now
                now = clock()
                assert isinstance(now, int)  # both buckets used here have a synchronous clock
                bucket.leak(now)

    def close(self) -> None:
        self._burst.close()
        self._search.close()


#: One permit from a Redis log, atomically, on the Redis server's clock. KEYS[1]: the log (a
#: sorted set of permits scored by the microsecond they were given). ARGV: the permits a window
#: allows, the window in microseconds, and a member name unique to this permit. Returns 0 for a
#: permit, else the microseconds until the window frees one. The script reads the time itself,
#: so a caller held up between deciding to ask and asking (a descheduled process) is counted at
#: the moment it asks, against every permit given before, whichever machine gave it.
_TAKE_PERMIT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local given = redis.call('ZCARD', KEYS[1])
if given < limit then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1)
    return 0
end
local freeing = redis.call('ZRANGE', KEYS[1], given - limit, given - limit, 'WITHSCORES')
return math.max(1, tonumber(freeing[2]) + window - now)
"""


class _RedisPermits:
    """A burst log and a search log in Redis, shared by every process using that Redis.

    pyrate-limiter's Redis bucket (4.6) stamps a permit with the caller's clock before it reaches
    Redis, and counts the log only up to that stamp. A process held up between the two was given
    a permit on a stale view, past permits given meanwhile: two limiters on a busy machine gave
    five permits of a window of four. This log is counted on Redis's clock, whole, atomically.
    """

    def __init__(self, redis: Any, name: str, burst: list[Rate], search: list[Rate]) -> None:
        self._take = redis.register_script(_TAKE_PERMIT)
        # Each budget's rates are part of the name: a changed budget starts a log of its own.
        # ("log:" apart from the names of pyrate-limiter's logs, whose scores are milliseconds.)
        self._logs = {kind: (f"{name}:log:{kind}:{rate.limit}/{rate.interval}", rate.limit, rate.interval * 1000)
                      for kind, (rate,) in (("burst", burst), ("search", search))}

    def acquire(self, search: bool, timeout: float, monotonic: Callable[[], float]) -> float | None:
        started = monotonic()
        if search and not self._wait_for("search", started + timeout, monotonic):
            return None
        # A floor, so a search that used up the wait still gets a fair try at the burst.
        if not self._wait_for("burst", max(started + timeout, monotonic() + 0.05), monotonic):
            return None
        return monotonic() - started

    def _wait_for(self, kind: str, deadline: float, monotonic: Callable[[], float]) -> bool:
        key, limit, window = self._logs[kind]
        while True:
            # Random per permit, not a counter: a process forked after its first permit (Celery's
            # prefork pool) would repeat its parent's names, and a repeated name is one entry.
            member = os.urandom(12).hex()
            wait = int(self._take(keys=[key], args=[limit, window, member])) / 1_000_000
            if wait == 0:
                return True
            if monotonic() + wait > deadline:
                return False  # no permit frees in time: say so now instead of at the deadline
            time.sleep(wait)


class RateLimiter:
    """A blocking limiter for one portal: every call takes a burst permit, searches one more.

    Thread-safe; :meth:`acquire` waits at most ``timeout`` seconds and says whether it got
    the permits.

    :param backend: where the log lives: None for this process's memory, or a Redis URL
        (:data:`REDIS_SCHEMES`), shared by every limiter given the same URL and ``key``. While
        that Redis cannot be reached, the process counts in its own memory (logged), and tries
        Redis again every :attr:`REDIS_RETRY_SECONDS`: HubSpot's 429s, retried with backoff,
        cover the processes' combined excess meanwhile.
    :param key: whose budget this is (portal and app), naming the Redis keys; hashed there.
    """

    REDIS_RETRY_SECONDS = 5.0

    def __init__(self, budget: RateBudget, *, backend: str | None = None, key: str = "") -> None:
        self.budget = budget
        self._rates = (
            [Rate(budget.permits, int((budget.window_seconds + budget.margin_seconds) * 1000))],
            [Rate(budget.search_per_second, int((1.0 + budget.margin_seconds) * 1000))],
        )
        self._memory = _Permits(InMemoryBucket(self._rates[0]), InMemoryBucket(self._rates[1]))
        # Checked now (a setting's mistake fails at enable); connected at the first permit.
        self._redis = None if backend is None else _redis_client(backend)
        self._name = REDIS_KEY_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:32]
        self._shared: _RedisPermits | None = None
        self._shared_lock = threading.Lock()
        self._redis_down_until: float | None = None

    def acquire(
        self, *, search: bool, timeout: float, monotonic: Callable[[], float] = time.monotonic
    ) -> float | None:
        """Take the permits one request needs; return the seconds waited, or ``None`` on timeout.

        A search takes its search permit first: the tighter budget decides the pace, and a
        burst permit is not held idle while waiting for it.
        """
        if self._redis is not None and (self._redis_down_until is None or monotonic() >= self._redis_down_until):
            import redis

            try:
                waited = self._shared_permits().acquire(search, timeout, monotonic)
            except (redis.RedisError, OSError) as exc:
                if self._redis_down_until is None:
                    # A refusal (Redis older than 5, EVAL disabled, an ACL) says why in its text.
                    why = (f"refused the limiter's script: {str(exc)[:200]}" if isinstance(exc, redis.ResponseError)
                           else f"cannot be reached ({type(exc).__name__})")
                    logger.warning("the rate limiter's Redis %s; each process counts HubSpot requests on "
                                   "its own until it is back", why)
                self._redis_down_until = monotonic() + self.REDIS_RETRY_SECONDS
            else:
                if self._redis_down_until is not None:
                    logger.info("the rate limiter's Redis is back; the processes share one budget again")
                    self._redis_down_until = None
                return waited
        return self._memory.acquire(search, timeout, monotonic)

    def _shared_permits(self) -> _RedisPermits:
        with self._shared_lock:
            if self._shared is None:
                assert self._redis is not None  # only called with a Redis backend
                self._shared = _RedisPermits(self._redis, self._name, *self._rates)
            return self._shared

    def close(self) -> None:
        """Release the underlying limiters' resources."""
        self._memory.close()
        if self._redis is not None:
            self._redis.close()


def _redis_client(url: str) -> Any:
    """A Redis client for ``url``, not yet connected (redis-py is imported here only)."""
    if not url.startswith(REDIS_SCHEMES):
        raise ConfigError.from_problems([("rate_limit_backend", (
            f"must be a Redis URL ({', '.join(REDIS_SCHEMES)}) or null for this process's memory"))])
    try:
        import redis
    except ImportError:
        raise ConfigError.from_problems([("rate_limit_backend", (
            "a Redis backend needs the redis package in this environment: pip install redis"))]) from None
    # Short timeouts: a Redis that hangs must not hold every HubSpot call for long.
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


_registry: dict[tuple[str, RateBudget, str | None], RateLimiter] = {}
_registry_lock = threading.Lock()


def shared_limiter(key: str, budget: RateBudget, backend: str | None = None) -> RateLimiter:
    """Return the process-wide limiter for ``key`` (portal and app), ``budget`` and ``backend``.

    Every client built for the same portal and app in this process gets the same limiter, so
    threads and tenants' clients together stay inside HubSpot's shared budget; with a Redis
    ``backend``, the processes sharing that Redis stay inside it together.
    """
    with _registry_lock:
        limiter = _registry.get((key, budget, backend))
        if limiter is None:
            limiter = _registry[(key, budget, backend)] = RateLimiter(budget, backend=backend, key=key)
        return limiter
