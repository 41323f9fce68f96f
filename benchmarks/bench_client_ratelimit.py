"""Benchmark: a sustained run against the sandbox's burst limit, with our limiter set to it.

The sandbox counts a rolling 10-second window (not configurable), so the run uses the real
window with a budget of ``BURST`` calls per 10 s. Four threads share one client (and so one
limiter). Prints the 429s seen (target 0) and the share of the budget used (target >= 90%):
the time an ideal client needs for the same calls, ``(calls / burst - 1) * window``,
divided by the time taken.  Run: ``.venv/bin/python benchmarks/bench_client_ratelimit.py [calls] [burst]``.
"""

from __future__ import annotations

import sys
import threading
import time

from ambac_hubspot_plugin._ratelimit import RateBudget, RateLimiter
from ambac_hubspot_plugin.client import ClientSettings, StaticToken, build_client
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

THREADS = 4


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    burst = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    window = 10.0
    with Sandbox(
        rate_limits=RateLimits(burst_per_10s=burst, search_per_second=None, retry_after=True)
    ) as hs:
        ids = hs.seed(companies=5, contacts=1, deals=1, seed=1)["companies"]
        settings = ClientSettings(
            auth=StaticToken(hs.access_token), base_url=hs.base_url, burst_per_window=burst
        )
        client = build_client(
            settings, limiter=RateLimiter(RateBudget(burst=burst, window_seconds=window))
        )
        per_thread = calls // THREADS
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(per_thread):
                    list(client.read_companies(ids[:1]))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        snap = client.stats.snapshot()
        served_429 = sum(1 for r in hs.requests if r.status == 429)
    made = per_thread * THREADS
    ideal = (made / burst - 1) * window
    print(
        f"calls: {made} in {elapsed:.1f} s with {THREADS} threads, budget {burst} per {window:g} s"
    )
    print(
        f"429s: {served_429} (client counted {snap.rate_limited}), retries {snap.retries}, errors {len(errors)}"
    )
    print(
        f"budget used: {ideal / elapsed:.1%} (ideal {ideal:.1f} s / actual {elapsed:.1f} s); "
        f"{made / elapsed * window:.0f} calls per {window:g} s on average, "
        f"limiter wait {snap.limiter_wait_seconds:.1f} s over all threads"
    )


if __name__ == "__main__":
    main()
