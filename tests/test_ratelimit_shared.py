"""One HubSpot budget per portal across processes: the rate limiter's log in Redis
(``rate_limit_backend``), its setting's checks, and its write-only password."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
import uuid
from typing import Any

import pytest

from ambac_hubspot_plugin._ratelimit import RateBudget, RateLimiter, budget_for_tier, shared_limiter
from ambac_hubspot_plugin.client import ClientSettings
from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.settings import parse_settings, restore_masked, unstructure_settings

from ._redis_support import redis_unavailable_reason, redis_url

BASE = {"portal_id": "123", "credentials": {"kind": "private_app", "access_token": "pat-na1-x"}}
REDIS_URL = redis_url()




needs_redis = pytest.mark.skipif(redis_unavailable_reason() is not None, reason=str(redis_unavailable_reason()))


@needs_redis
def test_two_limiters_on_one_redis_count_one_budget() -> None:
    """Two limiters (two processes' worth) of one portal on one Redis never exceed one burst in
    any rolling window together, while each alone would have allowed the whole burst.

    On a busy machine this caught pyrate-limiter 4.5.1 logging a permit taken after an overslept
    wait at its planned time, hence the floor of 4.6 in ``setup.cfg``."""
    budget = RateBudget(burst=4, window_seconds=0.5, search_per_second=50, margin_seconds=0.02)
    key = f"test|{uuid.uuid4()}|token"
    limiters = [RateLimiter(budget, backend=REDIS_URL, key=key) for _ in range(2)]
    stamps: list[float] = []
    lock = threading.Lock()

    def worker(limiter: RateLimiter) -> None:
        for _ in range(6):
            assert limiter.acquire(search=False, timeout=10) is not None
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    assert len(stamps) == 12
    for i, first in enumerate(stamps):
        # A little slack below the window: the test stamps each permit after the limiter gave it.
        assert sum(1 for s in stamps[i:] if s - first < budget.window_seconds - 0.05) <= budget.burst
    assert stamps[-1] - stamps[0] >= 2 * (budget.window_seconds - 0.05)  # 12 permits, 4 a window


@needs_redis
def test_a_process_held_up_before_its_permit_reaches_redis_is_counted_when_it_arrives() -> None:
    """One process decides to take a permit and is held up (descheduled) before its request
    reaches Redis; meanwhile another takes the whole burst. The late request is counted when it
    reaches Redis, against those permits: it waits. pyrate-limiter's Redis bucket counted it at
    the moment it was decided, against the permits before that only, and gave a fifth permit in
    a window of four (a flaky two-limiter test on a busy machine)."""
    budget = RateBudget(burst=4, window_seconds=30, search_per_second=50, margin_seconds=0.02)
    key = f"test|{uuid.uuid4()}|token"
    late, other = (RateLimiter(budget, backend=REDIS_URL, key=key) for _ in range(2))
    entered, go = threading.Event(), threading.Event()
    assert late._redis is not None  # a Redis backend: the fault is injected into its client
    send = late._redis.evalsha

    def held_up(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert go.wait(10)
        return send(*args, **kwargs)

    late._redis.evalsha = held_up
    got: list[float | None] = []
    thread = threading.Thread(target=lambda: got.append(late.acquire(search=False, timeout=0.5)))
    thread.start()
    try:
        assert entered.wait(10)
        assert all(other.acquire(search=False, timeout=1) is not None for _ in range(budget.burst))
    finally:
        go.set()
        thread.join(10)
    assert got == [None], "a fifth permit in a window of four"
    for limiter in (late, other):
        limiter.close()


def _take_permits(limiter: RateLimiter, wanted: int, got: Any) -> None:
    got.put(sum(1 for _ in range(wanted) if limiter.acquire(search=False, timeout=0.2) is not None))


@needs_redis
@pytest.mark.skipif(not hasattr(os, "fork"), reason="forking, as Celery's prefork pool does, needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # 3.12+ warns of fork beside threads
def test_processes_forked_after_a_permit_still_count_each_permit_once() -> None:
    """A limiter that gave a permit before its process forked (Celery's prefork pool) is copied
    into each child: the children's permits are each one entry of the log, never the same entry
    under a name both made, so together they get what is left of the burst and no more."""
    budget = RateBudget(burst=4, window_seconds=30, search_per_second=50, margin_seconds=0.02)
    limiter = RateLimiter(budget, backend=REDIS_URL, key=f"test|{uuid.uuid4()}|token")
    assert limiter.acquire(search=False, timeout=1) is not None
    fork = multiprocessing.get_context("fork")
    got = fork.Queue()
    for _ in range(2):  # one after the other: the second child meets the first one's entries
        child = fork.Process(target=_take_permits, args=(limiter, 2, got))
        child.start()
        child.join(30)
        assert child.exitcode == 0
    assert got.get(timeout=5) + got.get(timeout=5) == budget.burst - 1
    limiter.close()


def _busiest(arrivals: list[float], window: float) -> int:
    """The most arrivals in any rolling ``window`` (HubSpot's count)."""
    arrivals = sorted(arrivals)
    return max(sum(1 for a in arrivals[i:] if a - first < window) for i, first in enumerate(arrivals))


@needs_redis
@pytest.mark.parametrize("late", [0.2, 0.6])
def test_late_requests_of_one_process_keep_hubspots_window_within_the_burst(late: float) -> None:
    """One process's request reaches HubSpot well after the margin (a busy machine) while
    another process takes each permit as soon as it frees, that request's too: counted at
    arrival, as HubSpot counts, no rolling window holds more than the burst (without the
    headroom one holds burst + 1), and the budget is still used."""
    budget = RateBudget(burst=40, window_seconds=1.0, search_per_second=1000, margin_seconds=0.02)
    key = f"test|{uuid.uuid4()}|token"
    limiters = [RateLimiter(budget, backend=REDIS_URL, key=key) for _ in range(2)]
    arrivals: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + 3.5 * budget.window_seconds

    def caller(limiter: RateLimiter, delay: float, pause: float) -> None:
        while time.monotonic() < stop:
            assert limiter.acquire(search=False, timeout=10) is not None
            time.sleep(delay)  # between our permit and HubSpot counting the request
            with lock:
                arrivals.append(time.monotonic())
            time.sleep(pause)

    # The late process calls now and then, so the slot its permit frees goes to the other.
    threads = [threading.Thread(target=caller, args=(limiters[0], late, 1.3 * budget.window_seconds)),
               threading.Thread(target=caller, args=(limiters[1], 0.0, 0.0))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for limiter in limiters:
        limiter.close()
    busiest = _busiest(arrivals, budget.window_seconds)
    assert busiest <= budget.burst
    assert busiest >= budget.permits - 1  # saturated: the other caller filled every window


def test_each_window_holds_its_headroom_back() -> None:
    """5% of the burst (rounded down) is never given out: 38 of 40 permits, then a wait."""
    limiter = RateLimiter(RateBudget(burst=40, window_seconds=30))
    assert all(limiter.acquire(search=False, timeout=1) is not None for _ in range(38))
    assert limiter.acquire(search=False, timeout=0.2) is None
    limiter.close()


def test_headroom_defaults_to_a_twentieth_of_the_burst_and_leaves_one_permit() -> None:
    assert [budget_for_tier(t).headroom for t in ("free", "professional", "capacity_pack")] == [5, 9, 12]
    assert RateBudget(burst=19).permits == 19
    assert RateBudget(burst=100, headroom=0).permits == 100
    with pytest.raises(ValueError, match="headroom"):
        RateBudget(burst=3, headroom=3)


@needs_redis
def test_another_portal_on_the_same_redis_has_its_own_budget() -> None:
    """Keys name the portal: a full budget of one portal leaves another's untouched."""
    budget = RateBudget(burst=1, window_seconds=30)
    first = RateLimiter(budget, backend=REDIS_URL, key=f"test|{uuid.uuid4()}|token")
    other = RateLimiter(budget, backend=REDIS_URL, key=f"test|{uuid.uuid4()}|token")
    assert first.acquire(search=False, timeout=1) is not None
    assert first.acquire(search=False, timeout=0.2) is None
    assert other.acquire(search=False, timeout=1) is not None


@needs_redis
def test_clients_of_a_tenant_with_a_redis_backend_share_the_redis_budget() -> None:
    """The setting reaches the client's limiter: a permit its process-wide limiter takes is
    missing from another limiter of the portal on that Redis (another process's)."""
    settings = parse_settings({**BASE, "portal_id": str(uuid.uuid4().int % 10**9), "burst_per_10s": 1,
                               "rate_limit_backend": REDIS_URL})
    client_settings = ClientSettings.from_plugin_settings(settings)
    key, budget = client_settings.limiter_key(), client_settings.rate_budget()
    shared = shared_limiter(key, budget, client_settings.rate_limit_backend)
    assert shared is not shared_limiter(key, budget)
    assert shared.acquire(search=False, timeout=1) is not None
    assert RateLimiter(budget, backend=REDIS_URL, key=key).acquire(search=False, timeout=0.2) is None


@needs_redis
def test_an_unreachable_redis_leaves_each_process_its_own_budget() -> None:
    """Nothing listens on the URL: calls go on, limited in this process's memory."""
    limiter = RateLimiter(RateBudget(burst=1, window_seconds=30), backend="redis://127.0.0.1:1/0", key="k")
    assert limiter.acquire(search=False, timeout=1) is not None
    assert limiter.acquire(search=False, timeout=0.2) is None
    limiter.close()


@needs_redis
def test_a_redis_that_refuses_the_limiters_script_is_logged_as_a_refusal(caplog: pytest.LogCaptureFixture) -> None:
    """A Redis user that may not run scripts (an ACL; likewise EVAL disabled, or a Redis before 5)
    refuses every permit: the process counts on its own, and the log says Redis refused the
    script, with Redis's reason, not that it cannot be reached."""
    import redis

    admin = redis.Redis.from_url(REDIS_URL)
    user = f"ambac-test-{uuid.uuid4().hex[:12]}"
    admin.acl_setuser(user, enabled=True, nopass=True, keys=["*"], commands=["+@all", "-@scripting"])
    try:
        limiter = RateLimiter(RateBudget(burst=1, window_seconds=30),
                              backend=REDIS_URL.replace("redis://", f"redis://{user}:@", 1), key="k")
        with caplog.at_level("WARNING", logger="ambac_hubspot_plugin._ratelimit"):
            assert limiter.acquire(search=False, timeout=1) is not None
            assert limiter.acquire(search=False, timeout=0.2) is None, "counted in this process's memory"
        (line,) = [r.getMessage() for r in caplog.records]
        assert "refused the limiter's script" in line and "cannot be reached" not in line
        limiter.close()
    finally:
        admin.acl_deluser(user)
        admin.close()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://cache.example:6380/2",
                                 "unix:///run/redis.sock"])
def test_redis_urls_are_accepted_as_the_backend(url: str) -> None:
    assert parse_settings({**BASE, "rate_limit_backend": url}).rate_limit_backend == url


@pytest.mark.parametrize("url", ["postgresql://db/x", "memory", "amqp://guest@rabbit//"])
def test_other_backends_are_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({**BASE, "rate_limit_backend": url})
    assert set(info.value.problems) == {"rate_limit_backend"}


def test_the_backend_password_is_write_only() -> None:
    """Read back, the Redis password is ***; sent back unchanged, the stored one is kept."""
    stored = parse_settings({**BASE, "rate_limit_backend": "redis://:s3cret-pw@cache:6379/0"})
    shown = unstructure_settings(stored)
    assert "s3cret-pw" not in repr(shown)
    assert parse_settings(restore_masked(shown, stored)) == stored
    with pytest.raises(ConfigError) as info:
        parse_settings(shown)
    assert "masked password" in info.value.problems["rate_limit_backend"]


def test_a_redis_backend_without_the_redis_package_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what an environment without it imports
    with pytest.raises(ConfigError) as info:
        RateLimiter(RateBudget(burst=1), backend=REDIS_URL, key="k")
    assert set(info.value.problems) == {"rate_limit_backend"}
