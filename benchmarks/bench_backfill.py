"""Benchmark the backfill end to end: HubSpot (sandbox, own process) -> plugin -> reference host.

Prints, for a backfill of N won deals with their companies and contacts, per store:
- deals per second end to end (targets: >= 2,500/s on SQLite, >= 2,000/s on PostgreSQL), with
  the sandbox not rate limiting: the median of ``--runs`` runs (default 3) and their range;
- HubSpot calls of the backfill (data calls: search, association, company and contact reads)
  against the lower bound 1 + N/200 + 2*ceil(N/1000) + ceil(companies/100) +
  ceil(contacts/100) (target: within 10%), and apart from them the setup calls (pipelines,
  properties, ...) the run made;
- peak memory (max RSS) of the sync process at 10,000 and at 50,000 deals (target: growth
  under 20 MB), medians;
- once, on the first store: the 10,000-deal backfill with the sandbox limited to 100 calls per
  10 s and the plugin set to the same budget: 429s seen (target 0) and wall time against
  calls/budget (target: within 15%).

The load average (``os.getloadavg()``) is printed beside every figure: the machine may be shared.
Companies have realistic domains: most distinct, about 5% shared with an earlier company (a
duplicate in HubSpot), in the spellings people type (``www.``, ``https://``, upper case).

Run: ``python benchmarks/bench_backfill.py [--quick] [--runs 3] [--store-url URL ...] [--sizes
10000,50000] [--no-limited] [--profile DIR] [--only sqlite|postgresql] [--compare-grouping
PAIRS] [--compare-read-ahead PAIRS]``. Without ``--store-url`` it runs on a SQLite file in a
temporary directory and on PostgreSQL at 127.0.0.1:5432, database ``test``, in a schema of its
own created and dropped (skipped when PostgreSQL does not answer); ``--only`` keeps one of the
two. Quick: 2,000 and 4,000 deals. ``--profile DIR`` writes a cProfile of each run's sync to
DIR. Each sync runs in a fresh process, so the RSS figures are that process's own. The CPU time
of the sync process and of the sandbox's (from the sync process's start to its end) are printed
as shares of the backfill's wall time: with two CPUs, whichever nears 100 % is the limit.
``--compare-grouping PAIRS`` prints, instead of the figures above, PAIRS alternating pairs of
backfills with the reference host's writes grouped (``GroupsWrites``, 100 new orders a commit)
and not (the services' ``grouped_writes`` removed in the sync process: a commit per record),
and the median ratio; ``--compare-read-ahead PAIRS`` likewise with the ``read_ahead``
setting on (the default, which every other figure uses: the next chunk's HubSpot reads during
this chunk's writes, in a thread) and off. ``--latency MS`` (with a comparison) makes the
sandbox answer every call MS milliseconds later: loopback has no round trip, HubSpot has one.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from _pg import pg_schema  # benchmarks/ is on the path when a script in it runs

RATIO_COMPANIES = 2_000 / 10_000
RATIO_CONTACTS = 5_000 / 10_000
DUPLICATE_DOMAINS = 0.05  # share of companies whose domain an earlier company has already
DATA_ENDPOINTS = ("search", "batch_read")  # the rest is setup (pipelines, ...)


def realistic_domains(portal: Any, seed: int) -> None:
    """Give the seeded companies distinct domains, but for a few duplicates, in varied spellings."""
    rng = random.Random(seed)  # reproducible bench data, not secrets
    slugs: list[str] = []
    for index, obj in enumerate(portal.objects["companies"].values()):
        if slugs and rng.random() < DUPLICATE_DOMAINS:
            slug = rng.choice(slugs)
        else:
            slug = "".join(ch for ch in obj.props["name"].lower() if ch.isalnum())[:30] + f"-{index}"
        slugs.append(slug)
        variant = rng.random()
        domain = f"{slug}.com"
        if variant < 0.1:
            domain = f"www.{domain}"
        elif variant < 0.18:
            domain = f"https://www.{domain}/"
        elif variant < 0.22:
            domain = domain.upper()
        obj.props["domain"] = domain
        obj.props["website"] = f"https://www.{slug}.com"


def serve(deals: int, burst: int | None, conn: Connection, latency: float = 0.0) -> None:
    """Run a sandbox whose every deal is closed won and associated; report its URL and stats.
    ``latency``: seconds added to every call (HubSpot's round trip, where loopback has none)."""
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
            realistic_domains(portal, seed=3)
        if latency:
            hs.faults.latency(latency)
        conn.send((hs.base_url, hs.access_token, hs.portal_id))
        before = resource.getrusage(resource.RUSAGE_SELF)
        conn.recv()
        after = resource.getrusage(resource.RUSAGE_SELF)
        stats = hs.stats
        conn.send({"requests": stats.requests, "rate_limited": stats.rate_limited + stats.rate_limited_search,
                   "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime})


def sync(base_url: str, token: str, portal_id: int, burst: int | None, store_url: str | None,
         profile: str | None, conn: Connection, grouped: bool = True, read_ahead: bool | None = None) -> None:
    """Enable the plugin on a fresh reference host and run one backfill; report figures.
    ``grouped=False``: the host's services without ``grouped_writes`` (a commit per record);
    ``read_ahead``: the setting of that name (None: the plugin's default, on)."""
    from ambac_hubspot_plugin.reference_host import ReferenceHost
    from ambac_hubspot_plugin.reference_host._optional_services import ReferenceServices
    from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV

    if not grouped:  # this process only: the plugin then sees services that cannot group
        del ReferenceServices.grouped_writes

    with tempfile.TemporaryDirectory() as tmp, ReferenceHost(Path(tmp) / "host") as host:
        tenant = host.create_tenant("Bench")
        os.environ.setdefault(ALLOW_LOCAL_SANDBOX_ENV, "1")  # the bundled sandbox on loopback
        settings: dict[str, Any] = {
            "portal_id": str(portal_id), "api_base_url": base_url, "local_sandbox": True,
            "run_background_worker": False,
            "credentials": {"kind": "private_app", "access_token": token},
        }
        if read_ahead is not None:
            settings["read_ahead"] = read_ahead
        if store_url is not None:
            settings.update(store_url=store_url, store_outside_data_dir=True)
        if burst is None:
            settings.update(burst_per_10s=1_000_000, search_per_second=1_000_000)
        else:
            settings.update(burst_per_10s=burst, search_per_second=5)
        host.enable_plugin(tenant, "hubspot", settings)
        runtime = host.plugin_manager.get_plugin("hubspot.runtime").runtime
        before = runtime.status(tenant)["hubspot_calls"]
        round_trips = count_round_trips(runtime.store_for(tenant).engine)
        profiler = None
        if profile is not None:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        result = runtime.run_sync(tenant, backfill=True)
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        calls = runtime.status(tenant)["hubspot_calls"]
        by_endpoint = {k: v - before["by_endpoint"].get(k, 0) for k, v in calls["by_endpoint"].items()}
        by_endpoint = {k: v for k, v in by_endpoint.items() if v}
        data = sum(v for k, v in by_endpoint.items() if any(d in k for d in DATA_ENDPOINTS))
        companies = len(host.services(tenant).list_companies())
        conn.send({
            "elapsed": elapsed, "created": result.created, "failed": result.failed,
            "skipped": result.skipped, "calls": data, "setup_calls": sum(by_endpoint.values()) - data,
            "enable_calls": before["total"], "by_endpoint": by_endpoint,
            "rate_limited_seen": calls["rate_limited"], "companies": companies,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cpu": cpu_after.ru_utime + cpu_after.ru_stime - cpu.ru_utime - cpu.ru_stime,
            "statements": round_trips["statements"], "transactions": round_trips["transactions"],
        })


def count_round_trips(engine: Any) -> dict[str, int]:
    """Count the statements and transactions the plugin's store runs from now on."""
    from sqlalchemy import event

    counts = {"statements": 0, "transactions": 0}

    def statement(*_args: Any) -> None:
        counts["statements"] += 1

    def transaction(*_args: Any) -> None:
        counts["transactions"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", transaction)
    return counts


def run(deals: int, burst: int | None, store_url: str | None, profile: str | None = None,
        grouped: bool = True, latency: float = 0.0, read_ahead: bool | None = None) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(deals, burst, child, latency), daemon=True)
    server.start()
    base_url, token, portal_id = parent.recv()
    here, there = ctx.Pipe()
    worker = ctx.Process(target=sync, args=(base_url, token, portal_id, burst, store_url, profile, there,
                                            grouped, read_ahead))
    started = time.perf_counter()
    worker.start()
    while not here.poll(1):
        if not worker.is_alive():  # it failed (its traceback is printed above): do not wait forever
            server.kill()
            raise SystemExit(f"the sync process ended with exit code {worker.exitcode} before reporting")
    figures = here.recv()
    worker.join()
    figures["wall_with_startup"] = time.perf_counter() - started
    figures["load"] = os.getloadavg()
    parent.send("stop")
    figures["sandbox"] = parent.recv()
    server.join(10)
    return figures


def bound(deals: int) -> int:
    companies, contacts = int(deals * RATIO_COMPANIES), int(deals * RATIO_CONTACTS)
    return (1 + math.ceil(deals / 200) + 2 * math.ceil(deals / 1000)
            + math.ceil(companies / 100) + math.ceil(contacts / 100))


@contextmanager
def stores(urls: list[str]) -> Iterator[list[tuple[str, str | None]]]:
    """The stores to run on: those given, else the plugin's default SQLite file (in the
    temporary host directory) and a fresh PostgreSQL schema, dropped afterwards."""
    if urls:
        yield [(url.split(":", 1)[0].split("+", 1)[0], url) for url in urls]
        return
    chosen: list[tuple[str, str | None]] = [("sqlite", None)]
    # Each run enables a fresh tenant of a fresh host: the schema keeps no state that matters
    # between runs (links are per tenant), but it grows; it is dropped at the end.
    with pg_schema("bench_backfill") as url:
        if url is None:
            print("postgresql: skipped (127.0.0.1:5432 does not answer)")
        else:
            chosen.append(("postgresql", url))
        yield chosen


def _load(load: tuple[float, float, float]) -> str:
    return f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def _median_range(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} (range {fmt.format(min(values))}-{fmt.format(max(values))})"


COMPARED = {
    "grouping": "host writes grouped (100 new orders a commit) vs a commit per record",
    "read-ahead": "the next chunk's HubSpot reads during this chunk's writes vs one after the other",
}


def compare(feature: str, name: str, url: str | None, deals: int, pairs: int, latency: float) -> None:
    """Alternating pairs (with ``feature`` first, then without first, ...): deals/s of each,
    each pair's with/without ratio with the load, and the median ratio."""
    ratios = []
    rates: dict[bool, list[float]] = {True: [], False: []}
    print(f"\n{name}: {deals:,} deals, {COMPARED[feature]}"
          + (f"; every HubSpot call {latency * 1000:.0f} ms longer" if latency else ""))
    for i in range(pairs):
        pair: dict[bool, float] = {}
        for on in (True, False) if i % 2 == 0 else (False, True):
            switch = {"read_ahead": on} if feature == "read-ahead" else {"grouped": on}
            r = run(deals, None, url, latency=latency, **switch)
            pair[on] = r["created"] / r["elapsed"]
            rates[on].append(pair[on])
        ratios.append(pair[True] / pair[False])
        print(f"  pair {i + 1}: with {pair[True]:,.0f}, without {pair[False]:,.0f} deals/s = "
              f"{ratios[-1]:.2f}x [{_load(os.getloadavg())}]", flush=True)
    print(f"  with {_median_range(rates[True], '{:,.0f}')}, without "
          f"{_median_range(rates[False], '{:,.0f}')} deals/s; ratio {_median_range(ratios, '{:.2f}')}x "
          f"(median of {pairs} pairs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 and 4,000 deals")
    parser.add_argument("--sizes", help="comma-separated deal counts (default 10000,50000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median and range)")
    parser.add_argument("--store-url", action="append", default=[], help="a store_url to run on (repeatable)")
    parser.add_argument("--no-limited", action="store_true", help="skip the rate-limited run")
    parser.add_argument("--profile", help="directory for a cProfile of each run's sync")
    parser.add_argument("--only", choices=["sqlite", "postgresql"],
                        help="run on the default store of this kind only")
    parser.add_argument("--compare-grouping", type=int, metavar="PAIRS",
                        help="instead: PAIRS alternating pairs, host writes grouped vs one commit each")
    parser.add_argument("--latency", type=float, default=0.0, metavar="MS",
                        help="with --compare-*: the sandbox answers every call MS milliseconds later")
    parser.add_argument("--compare-read-ahead", type=int, metavar="PAIRS",
                        help="instead: PAIRS alternating pairs, HubSpot reads one chunk ahead vs in turn")
    args = parser.parse_args()
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else [2_000, 4_000] if args.quick else [10_000, 50_000])
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    targets = {"sqlite": 2_500, "postgresql": 2_000}
    print("backfill of won deals; companies = deals/5 (about 5% sharing a domain), contacts = deals/2; "
          f"sandbox in its own process; {args.runs} runs per figure; {os.cpu_count()} CPUs")
    with stores(args.store_url) as chosen:
        chosen = [(name, url) for name, url in chosen if args.only in (None, name)]
        compared = [(feature, pairs) for feature, pairs in (("grouping", args.compare_grouping),
                                                            ("read-ahead", args.compare_read_ahead)) if pairs]
        for feature, pairs in compared:
            for name, url in chosen:
                for n in sizes:
                    compare(feature, name, url, n, pairs, args.latency / 1000)
        if compared:
            return
        for name, url in chosen:
            rss: dict[int, float] = {}
            for n in sizes:
                runs = []
                for i in range(args.runs):
                    profile = str(Path(args.profile) / f"{name}-{n}-{i}.prof") if args.profile else None
                    runs.append(run(n, None, url, profile))
                r = runs[0]
                rates = [x["created"] / x["elapsed"] for x in runs]
                print(f"\n{name}: {n:,} deals, no rate limit")
                print(f"  created {r['created']:,}, failed {r['failed']}, skipped {r['skipped']}, "
                      f"host companies {r['companies']:,}")
                print(f"  end to end: {_median_range(rates, '{:,.0f}')} deals/s "
                      f"(target >= {targets.get(name, 2_000):,}/s); per run: "
                      + ", ".join(f"{rate:,.0f} [{_load(x['load'])}]" for rate, x in zip(rates, runs, strict=True)))
                b = bound(n)
                print(f"  plugin store: {r['statements'] / n:.2f} statements and {r['transactions'] / n:.2f} "
                      f"transactions per deal; CPU of the sync process: "
                      f"{_median_range([x['cpu'] / x['elapsed'] for x in runs], '{:.0%}')} of the wall time; "
                      "of the sandbox (HubSpot): "
                      f"{_median_range([x['sandbox']['cpu'] / x['elapsed'] for x in runs], '{:.0%}')}")
                print(f"  HubSpot data calls: {r['calls']} against the lower bound {b} "
                      f"(+{(r['calls'] - b) / b:.1%}; target within 10%); setup calls: {r['setup_calls']} in "
                      f"the run, {r['enable_calls']} when enabling")
                print(f"    {json.dumps(r['by_endpoint'])}")
                rss[n] = statistics.median(x["max_rss_mb"] for x in runs)
                print(f"  peak memory of the sync process (max RSS): "
                      f"{_median_range([x['max_rss_mb'] for x in runs], '{:.1f}')} MB")
            small, large = min(sizes), max(sizes)
            if small != large:
                print(f"\n{name}: peak memory growth from {small:,} to {large:,} deals (medians): "
                      f"{rss[large] - rss[small]:+.1f} MB (target under 20 MB)")
        if not args.no_limited:
            name, url = chosen[0]
            small = min(sizes)
            r = run(small, 100, url)
            budget_seconds = (r["calls"] + r["setup_calls"]) / 10  # 100 calls per 10 s
            print(f"\n{name}: {small:,} deals, sandbox and plugin limited to 100 calls per 10 s [{_load(r['load'])}]")
            print(f"  created {r['created']:,}; 429s the sandbox answered: {r['sandbox']['rate_limited']}, "
                  f"the plugin saw: {r['rate_limited_seen']} (target 0)")
            print(f"  wall {r['elapsed']:.1f} s for {r['calls'] + r['setup_calls']} calls; calls/budget = "
                  f"{budget_seconds:.1f} s ({r['elapsed'] / budget_seconds - 1:+.1%}; target within 15%)")


if __name__ == "__main__":
    main()
