"""The admin pages' answer times with a busy store: every page of the navigation, by GET.

The store is seeded through its own APIs, in batches, as a tenant after a week of syncs every
five minutes would have it: 10,000 log lines (a fifth of them warnings, a tenth errors) and
2,000 sync runs spread over the 7 days, 1,000 conflicts (800 held open, 200 decided by a
strategy), 200 dead letters and 100 jobs waiting. The seeding opens a second store on the same
database with a clock that walks through the week, so every row has a time of its own.

Then the reference host is served on loopback (the plugin enabled against the sandbox, no
background worker) and an admin GETs every page of the pages' navigation (``NAV``: pages added
later are measured without editing this script), ``--requests`` times per page and run,
round-robin over the pages, after one warm-up request each. Each answer must be 200. Printed
per page: the median and p95 of all requests, and the range of the runs' p95s, with
``os.getloadavg()`` beside them. Target: p95 < 100 ms for every page.

Run: ``python benchmarks/bench_pages.py [--runs 3] [--requests 40] [--store-url URL ...]``.
Without ``--store-url``: a SQLite file in a temporary directory, and PostgreSQL at
127.0.0.1:5432 database ``test`` in a fresh schema, dropped afterwards (skipped when it does
not answer). ``--profile PAGE`` (a nav path, ``""`` for the status page) prints the top of a
cProfile of that page's handler instead of timing.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import io
import os
import pstats
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _pg import pg_schema  # benchmarks/ is on the path when a script in it runs

from ambac_hubspot_plugin import plugin as plugin_module  # after the path fix
from ambac_hubspot_plugin._pages import BASE_PATH  # after the path fix
from ambac_hubspot_plugin._pages._layout import NAV  # after the path fix
from ambac_hubspot_plugin._wsgi_server import served_on_loopback  # after the path fix
from ambac_hubspot_plugin.host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS  # after the path fix
from ambac_hubspot_plugin.reference_host import DEFAULT_MOUNT_PREFIX, ReferenceHost  # after the path fix
from ambac_hubspot_plugin.sandbox import Sandbox  # after the path fix
from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV  # after the path fix
from ambac_hubspot_plugin.store import ConflictDraft, LogLevel, RunStatus, open_store  # after the path fix

LOG_ROWS = 10_000
RUNS = 2_000
CONFLICTS = 1_000
OPEN_SHARE = 0.8
DEAD_LETTERS = 200
WAITING = 100
WEEK = timedelta(days=7)
TARGET_MS = 100.0


class WalkingClock:
    """A clock the seeding moves by hand, from a week ago up to now."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def seed(url: str, tenant: str, portal: str) -> dict[str, float]:
    """Fill the tenant's store at ``url``; return the seconds each part took."""
    end = datetime.now(UTC)
    clock = WalkingClock(end - WEEK)
    store = open_store(url, clock=clock)
    took: dict[str, float] = {}
    try:
        started = time.perf_counter()
        step = WEEK / RUNS
        lines_per_run = LOG_ROWS // RUNS
        for i in range(RUNS):
            clock.now = end - WEEK + step * i
            run = store.start_run(tenant, "incremental", owner="bench")
            failed = 1 if i % 10 == 0 else 0
            lines = [(LogLevel.ERROR if (i + n) % 10 == 0 else LogLevel.WARNING if (i + n) % 5 == 1
                      else LogLevel.INFO, "deal.sync", f"Deal {3_000_000 + i * lines_per_run + n}: seeded line",
                      f"deal:{3_000_000 + i * lines_per_run + n}") for n in range(lines_per_run)]
            store.log_many(tenant, lines)
            clock.now += timedelta(seconds=2)
            store.finish_run(run.id, RunStatus.SUCCEEDED, created=3, updated=5, skipped=40, failed=failed)
        took["runs and log"] = time.perf_counter() - started

        started = time.perf_counter()
        for i in range(CONFLICTS):
            clock.now = end - WEEK + WEEK * i / CONFLICTS
            store.record_conflict(ConflictDraft(
                tenant_id=tenant, portal_id=portal, object_type="order", host_id=f"order-{i}",
                hubspot_type="deal", hubspot_id=str(3_000_000 + i), field="name",
                hubspot_value=f"Deal {i} (HubSpot)", host_value=f"Deal {i} (Ambac)", last_synced=f"Deal {i}",
                hubspot_changed_at=clock.now, host_changed_at=clock.now, strategy="manual",
                decision="hold" if i < CONFLICTS * OPEN_SHARE else "hubspot"))
        took["conflicts"] = time.perf_counter() - started

        started = time.perf_counter()
        clock.now = end - timedelta(hours=1)
        items = [("outbound.order", {"order_id": f"order-{i}"}, None) for i in range(DEAD_LETTERS + WAITING)]
        store.enqueue_many(tenant, items[:DEAD_LETTERS], max_attempts=1)
        for job in store.claim("bench", limit=DEAD_LETTERS):
            store.fail(job.id, "bench", "HubSpot answered 404: the deal was archived")
        store.enqueue_many(tenant, items[DEAD_LETTERS:])
        took["jobs"] = time.perf_counter() - started
    finally:
        store.close()
    return took


@contextlib.contextmanager
def served(store_url: str | None) -> Iterator[tuple[str, str, Callable[[str], Any], dict[str, float]]]:
    """The seeded tenant's pages served on loopback: ``(pages URL, admin token, handler of a
    nav path, seeding seconds)``."""
    os.environ.setdefault(ALLOW_LOCAL_SANDBOX_ENV, "1")  # the bundled sandbox on loopback
    with tempfile.TemporaryDirectory() as tmp, Sandbox() as hs, ReferenceHost(Path(tmp) / "host") as host:
        tenant = host.create_tenant("Bench")
        settings: dict[str, object] = {
            "portal_id": str(hs.portal_id),
            "credentials": {"kind": "private_app", "access_token": hs.access_token},
            "api_base_url": hs.base_url, "local_sandbox": True, "run_background_worker": False}
        if store_url is not None:
            settings["store_url"] = store_url
        host.enable_plugin(tenant, "hubspot", settings)
        runtime = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime
        try:
            url = runtime.store_for(tenant).engine.url.render_as_string(hide_password=False)
            took = seed(url, tenant, str(hs.portal_id))
            user = host.create_user(tenant, "admin@bench.example")
            for permission in (VIEW_INTEGRATIONS, MANAGE_INTEGRATIONS):
                host.grant(user, permission)
            token = host.create_api_token(user)
            app = host.wsgi_app()
            pages = f"{DEFAULT_MOUNT_PREFIX}/{BASE_PATH}"

            def handle(path: str) -> Any:
                """Call the WSGI app for one page in this thread (for the profile)."""
                environ = {"REQUEST_METHOD": "GET", "PATH_INFO": pages + path, "QUERY_STRING": "",
                           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
                           "HTTP_AUTHORIZATION": f"Bearer {token}", "wsgi.input": io.BytesIO(),
                           "CONTENT_LENGTH": "0", "HTTP_ACCEPT": "text/html"}
                return b"".join(app(environ, lambda *_args: None))

            with served_on_loopback(app, name="bench-pages") as base:
                yield base + pages, token, handle, took
        finally:
            runtime.close()


def get(url: str, token: str) -> float:
    """One GET as a browser sends it; its seconds (the answer read whole)."""
    split = urlsplit(url)
    started = time.perf_counter()
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    try:
        conn.request("GET", split.path, headers={"Authorization": f"Bearer {token}",
                                                 "Accept": "text/html,application/xhtml+xml"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise SystemExit(f"{url} answered {response.status}")
    return time.perf_counter() - started


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def bench(name: str, store_url: str | None, runs: int, requests: int) -> None:
    with served(store_url) as (pages, token, _handle, took):
        print(f"{name}: seeded {LOG_ROWS} log lines, {RUNS} runs, {CONFLICTS} conflicts, {DEAD_LETTERS} dead "
              f"letters, {WAITING} waiting jobs in " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()))
        times: dict[str, list[list[float]]] = {path: [] for _label, path in NAV}
        for path in times:
            get(pages + path, token)  # warm-up: the first answer fills caches
        for _ in range(runs):
            run: dict[str, list[float]] = {path: [] for path in times}
            for _ in range(requests):
                for path in run:
                    run[path].append(get(pages + path, token) * 1000)
            for path, values in run.items():
                times[path].append(values)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"  {runs} runs x {requests} GETs per page (load average {load}); target p95 < {TARGET_MS:.0f} ms")
        for label, path in NAV:
            every = [t for run_times in times[path] for t in run_times]
            p95s = [_p95(r) for r in times[path]]
            verdict = "met" if _p95(every) < TARGET_MS else "NOT MET"
            print(f"  {label:<14} median {statistics.median(every):6.1f} ms, p95 {_p95(every):6.1f} ms "
                  f"(runs' p95 {min(p95s):.1f} to {max(p95s):.1f}) {verdict}")


def profile(name: str, store_url: str | None, path: str) -> None:
    with served(store_url) as (_pages, _token, handle, _took):
        handle(path)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(20):
            handle(path)
        profiler.disable()
        print(f"{name}: 20 GETs of {path or '(status)'}, cumulative time")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=40, help="GETs of each page per run")
    parser.add_argument("--store-url", action="append", default=[],
                        help="a store URL to run against (repeatable); default: SQLite and PostgreSQL")
    parser.add_argument("--profile", metavar="PAGE", help="profile one page (a nav path) instead")
    args = parser.parse_args()
    stores: list[tuple[str, str | None]] = [(u.split(":", 1)[0], u) for u in args.store_url]
    if not stores:
        stores.append(("sqlite", None))
        try:
            socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
            stores.append(("postgresql", "postgres"))
        except OSError:
            print("postgresql: skipped (127.0.0.1:5432 does not answer)")
    for name, url in stores:
        with (pg_schema("bench_pages") if url == "postgres" else contextlib.nullcontext(url)) as store_url:
            if args.profile is not None:
                profile(name, store_url, args.profile)
            else:
                bench(name, store_url, args.runs, args.requests)


if __name__ == "__main__":
    main()
