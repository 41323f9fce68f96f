"""Benchmark the backfill end to end: HubSpot (sandbox, own process) -> plugin -> reference host.

Prints, for a backfill of N won deals with their companies and contacts:
- deals per second end to end (target >= 1,000/s), with the sandbox not rate limiting;
- HubSpot calls made against the lower bound
  1 + N/200 + 2*ceil(N/1000) + ceil(companies/100) + ceil(contacts/100) (target: within 10%);
- peak memory (max RSS) of the sync process at 10,000 and at 50,000 deals (target: growth
  under 20 MB);
- the same 10,000-deal backfill with the sandbox limited to 100 calls per 10 s and the plugin
  set to the same budget: 429s seen (target 0) and wall time against calls/budget (target:
  within 15%).

Run: ``.venv/bin/python benchmarks/bench_backfill.py [--quick]`` (quick: 2,000 and 4,000 deals).
Each sync runs in a fresh process, so the RSS figures are that process's own.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

RATIO_COMPANIES = 2_000 / 10_000
RATIO_CONTACTS = 5_000 / 10_000


def serve(deals: int, burst: int | None, conn: Connection) -> None:
    """Run a sandbox whose every deal is closed won and associated; report its URL and stats."""
    from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

    limits = RateLimits.unlimited() if burst is None else RateLimits(burst_per_10s=burst, search_per_second=5)
    with Sandbox(rate_limits=limits) as hs:
        hs.seed(companies=int(deals * RATIO_COMPANIES), contacts=int(deals * RATIO_CONTACTS),
                deals=deals, seed=3)
        portal = hs.portal
        with portal.lock:
            # Every deal won, keeping its own modification time (as an old portal's deals are).
            for obj in portal.objects["deals"].values():
                obj.props["pipeline"] = "default"
                obj.props["dealstage"] = "closedwon"
        conn.send((hs.base_url, hs.access_token, hs.portal_id))
        conn.recv()
        stats = hs.stats
        conn.send({"requests": stats.requests, "rate_limited": stats.rate_limited + stats.rate_limited_search})


def sync(base_url: str, token: str, portal_id: int, burst: int | None, conn: Connection) -> None:
    """Enable the plugin on a fresh reference host and run one backfill; report figures."""
    from ambac_hubspot_plugin.reference_host import ReferenceHost
    from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV

    with tempfile.TemporaryDirectory() as tmp, ReferenceHost(Path(tmp) / "host") as host:
        tenant = host.create_tenant("Bench")
        os.environ.setdefault(ALLOW_LOCAL_SANDBOX_ENV, "1")  # the bundled sandbox on loopback
        settings: dict[str, Any] = {
            "portal_id": str(portal_id), "api_base_url": base_url, "local_sandbox": True,
            "run_background_worker": False,
            "credentials": {"kind": "private_app", "access_token": token},
        }
        if burst is None:
            settings.update(burst_per_10s=1_000_000, search_per_second=1_000_000)
        else:
            settings.update(burst_per_10s=burst, search_per_second=5)
        host.enable_plugin(tenant, "hubspot", settings)
        runtime = host.plugin_manager.get_plugin("hubspot.runtime").runtime
        before = runtime.status(tenant)["hubspot_calls"]["total"]
        started = time.perf_counter()
        result = runtime.run_sync(tenant, backfill=True)
        elapsed = time.perf_counter() - started
        calls = runtime.status(tenant)["hubspot_calls"]
        companies = len(host.services(tenant).list_companies())
        conn.send({
            "elapsed": elapsed, "created": result.created, "failed": result.failed,
            "skipped": result.skipped, "calls": calls["total"] - before, "by_endpoint": calls["by_endpoint"],
            "rate_limited_seen": calls["rate_limited"], "companies": companies,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        })


def run(deals: int, burst: int | None) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(deals, burst, child), daemon=True)
    server.start()
    base_url, token, portal_id = parent.recv()
    here, there = ctx.Pipe()
    worker = ctx.Process(target=sync, args=(base_url, token, portal_id, burst, there))
    started = time.perf_counter()
    worker.start()
    figures = here.recv()
    worker.join()
    figures["wall_with_startup"] = time.perf_counter() - started
    parent.send("stop")
    figures["sandbox"] = parent.recv()
    server.join(10)
    return figures


def bound(deals: int) -> int:
    companies, contacts = int(deals * RATIO_COMPANIES), int(deals * RATIO_CONTACTS)
    return (1 + math.ceil(deals / 200) + 2 * math.ceil(deals / 1000)
            + math.ceil(companies / 100) + math.ceil(contacts / 100))


def main() -> None:
    quick = "--quick" in sys.argv
    small, large = (2_000, 4_000) if quick else (10_000, 50_000)
    print("backfill of won deals; companies = deals/5, contacts = deals/2; sandbox in its own process")
    results = {}
    for n in (small, large):
        r = results[n] = run(n, None)
        print(f"\n{n:,} deals, no rate limit")
        print(f"  created {r['created']:,}, failed {r['failed']}, skipped {r['skipped']}, "
              f"host companies {r['companies']:,}")
        print(f"  end to end: {r['elapsed']:.2f} s = {r['created'] / r['elapsed']:,.0f} deals/s (target >= 1,000/s)")
        b = bound(n)
        print(f"  HubSpot calls: {r['calls']} against the lower bound {b} "
              f"(+{(r['calls'] - b) / b:.1%}; target within 10%)")
        print(f"    {json.dumps(r['by_endpoint'])}")
        print(f"  peak memory of the sync process (max RSS): {r['max_rss_mb']:.1f} MB")
    growth = results[large]["max_rss_mb"] - results[small]["max_rss_mb"]
    print(f"\npeak memory growth from {small:,} to {large:,} deals: {growth:+.1f} MB (target under 20 MB)")
    r = run(small, 100)
    budget_seconds = r["calls"] / 10  # 100 calls per 10 s
    print(f"\n{small:,} deals, sandbox and plugin limited to 100 calls per 10 s")
    print(f"  created {r['created']:,}; 429s the sandbox answered: {r['sandbox']['rate_limited']}, "
          f"the plugin saw: {r['rate_limited_seen']} (target 0)")
    print(f"  wall {r['elapsed']:.1f} s for {r['calls']} calls; calls/budget = {budget_seconds:.1f} s "
          f"({r['elapsed'] / budget_seconds - 1:+.1%}; target within 15%)")


if __name__ == "__main__":
    main()
