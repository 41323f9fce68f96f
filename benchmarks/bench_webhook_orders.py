"""Closed-won events to orders: throughput through the whole real-time path.

Run: ``python benchmarks/bench_webhook_orders.py [--deals 10000] [--runs 3]
[--store-url sqlite|postgresql|URL] [--duplicate]``.

``--deals`` deals are added to the sandbox in ``contractsent`` before the subscription exists,
then all are moved to closed won as fast as the sandbox takes the updates. The sandbox runs in
a process of its own, as HubSpot is another machine (in one process its HTTP server and
webhook sender took the interpreter's lock from the plugin's worker). The sandbox
delivers the signed webhooks (its sender: batches of up to 99 events, 10 at a time) to the
reference host served over loopback; the receiver stores them, the plugin's background worker
splits them into events and per-object jobs, reads the deals back from the sandbox in batches
and creates the orders in the reference host. The figure is orders per second from the first
move to the last order, and every deal must have exactly one order. ``--duplicate`` has the
sandbox send every delivery twice (as HubSpot's retries do): still one order per deal.
Target (issue #16): at least 1,000 orders/s on both stores.

The plugin's store is ``--store-url``: ``sqlite`` is a SQLite file in the run's temp dir;
``postgresql`` is db ``test`` on 127.0.0.1:5432, in a schema of its own
created and dropped per run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _webhook_bench import fresh_store_url, load, spread, store_name, store_url_option


def _wait_for_first_sync(store_url: str) -> None:
    import sqlalchemy as sa

    from ambac_hubspot_plugin.store import open_store

    store = open_store(store_url)
    try:
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            with store.engine.connect() as conn:
                if conn.execute(sa.text("SELECT count(*) FROM hubspot_sync_runs "
                                        "WHERE ended_at IS NOT NULL")).scalar():
                    return
            time.sleep(0.1)
        raise SystemExit("the first scheduled sync did not end within 120 s")
    finally:
        store.close()


class _Statements:
    """Counts the statements and commits of every SQLAlchemy engine in this process (the
    plugin's store; the reference host uses sqlite3 directly): a figure load does not move."""

    def __init__(self) -> None:
        import sqlalchemy as sa

        self.statements = self.commits = 0
        self.counting = False
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self._statement)
        sa.event.listen(sa.engine.Engine, "commit", self._commit)

    def _statement(self, *_args: Any) -> None:
        if self.counting:
            self.statements += 1

    def _commit(self, *_args: Any) -> None:
        if self.counting:
            self.commits += 1


_COUNTS: _Statements | None = None


def _hubspot(deals: int, duplicate: bool, conn: Connection) -> None:
    """The sandbox HubSpot in a process of its own (HubSpot is another machine): it adds the
    deals, points its webhooks at the host when told, then moves every deal to closed won."""
    from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot:
        ids = [hubspot.add_object("deals", {"dealname": f"Deal {i}", "pipeline": "default",
                                            "dealstage": "contractsent"}) for i in range(deals)]
        conn.send({"portal_id": hubspot.portal_id, "base_url": hubspot.base_url,
                   "access_token": hubspot.access_token, "client_secret": hubspot.client_secret})
        hubspot.webhooks.configure(duplicate=duplicate)
        hubspot.webhooks.set_target(conn.recv())
        hubspot.webhooks.subscribe("deal.propertyChange", "dealstage")
        conn.send("subscribed")
        conn.recv()  # go
        before = len(hubspot.requests)
        began = time.perf_counter()
        for deal in ids:
            hubspot.update_object("deals", deal, {"dealstage": "closedwon"})
        conn.send(time.perf_counter() - began)
        conn.recv()  # the orders are all there
        calls = Counter(f"{r.method} {re.sub(r'/[0-9]+(?=/|$)', '/{id}', r.path)}" for r in hubspot.requests[before:])
        conn.send(dict(calls))
        conn.recv()  # the run is over: close the sandbox


def run(deals: int, store_url: str | None, duplicate: bool) -> dict[str, Any]:
    from ambac_hubspot_plugin._wsgi_server import make_wsgi_server
    from ambac_hubspot_plugin.reference_host import ReferenceHost
    from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV

    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    sandbox = ctx.Process(target=_hubspot, args=(deals, duplicate, there), daemon=True)
    sandbox.start()
    hubspot = here.recv()
    with tempfile.TemporaryDirectory() as tmp, ReferenceHost(Path(tmp) / "host") as host:
        server = make_wsgi_server(host.wsgi_app())
        base = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            tenant = host.create_tenant("Bench")
            os.environ.setdefault(ALLOW_LOCAL_SANDBOX_ENV, "1")  # the bundled sandbox on loopback
            settings: dict[str, Any] = {
                "portal_id": str(hubspot["portal_id"]), "api_base_url": hubspot["base_url"],
                "local_sandbox": True,
                "credentials": {"kind": "private_app", "access_token": hubspot["access_token"]},
                "webhook_client_secret": hubspot["client_secret"], "public_base_url": base,
                "run_background_worker": True,
            }
            if store_url is None:  # the plugin's default store, but where this run can see it
                store_url = f"sqlite:///{Path(tmp) / 'plugin.sqlite3'}"
                settings["store_outside_data_dir"] = True
            settings["store_url"] = store_url
            host.enable_plugin(tenant, "hubspot", settings)
            # Enabling starts a scheduled sync, which would find the closed-won deals by search
            # and create their orders itself: wait until it is done (it finds nothing to do).
            _wait_for_first_sync(store_url)
            here.send(f"{base}/integrations/hubspot/webhooks/{tenant}")
            here.recv()  # subscribed
            global _COUNTS  # one listener per process, however many runs
            _COUNTS = _COUNTS or _Statements()
            counted = (_COUNTS.statements, _COUNTS.commits)
            _COUNTS.counting = True
            began = time.perf_counter()
            here.send("go")
            count, first, moved = 0, None, None
            # Counted with one COUNT on a connection of its own: listing the orders (up to
            # 10,000 records built every 50 ms) took the interpreter's lock from the worker,
            # which runs in this process, and slowed down what is measured.
            counter = sqlite3.connect(host.database_path, timeout=30)
            while count < deals:
                if time.perf_counter() - began > 600:
                    raise SystemExit(f"only {count} of {deals} orders after 600 s")
                time.sleep(0.05)
                if moved is None and here.poll():
                    moved = here.recv()
                count = counter.execute("SELECT count(*) FROM orders WHERE tenant_id = ?", (tenant,)).fetchone()[0]
                if count and first is None:
                    first = time.perf_counter() - began
            took = time.perf_counter() - began
            counter.close()
            _COUNTS.counting = False
            statements = (_COUNTS.statements - counted[0]) / deals
            commits = (_COUNTS.commits - counted[1]) / deals
            if moved is None:
                moved = here.recv()
            time.sleep(1.0)  # any second order for a deal would show up now
            here.send("counted")
            calls = here.recv()
            orders = host.services(tenant).list_orders()
            externals = {order.external_id for order in orders}
            assert len(orders) == deals == len(externals), (len(orders), len(externals), deals)
            # Disabling stops the plugin's worker thread: left running, it would keep working
            # on this run's store (and retrying the closed sandbox) through the next runs.
            host.disable_plugin(tenant, "hubspot")
        finally:
            server.shutdown()
            server.server_close()
            here.send("close")
            sandbox.join(30)
    return {"rate": deals / took, "took": took, "moved": moved, "first": first, "load": load(),
            "statements": statements, "commits": commits, "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duplicate", action="store_true", help="every delivery sent twice")
    parser.add_argument("--store-url", type=store_url_option, default="sqlite",
                        help="sqlite (a temp file), postgresql (db test on "
                             "127.0.0.1:5432) or a URL")
    args = parser.parse_args()
    print(f"{args.deals:,} closed-won events to orders on {store_name(args.store_url)}"
          f"{' (every delivery sent twice)' if args.duplicate else ''}:")
    results = []
    for n in range(1, args.runs + 1):
        if args.store_url.startswith("sqlite"):
            results.append(run(args.deals, None, args.duplicate))
        else:
            with fresh_store_url(args.store_url) as url:
                results.append(run(args.deals, url, args.duplicate))
        r = results[-1]
        print(f"  run {n}: {r['rate']:,.0f} orders/s ({r['took']:.1f} s; moves issued in "
              f"{r['moved']:.1f} s, first order after {r['first']:.2f} s); store statements "
              f"per order {r['statements']:.2f}, commits {r['commits']:.2f}; {r['load']}")
        print(f"    HubSpot calls the plugin made (until 1 s after the last order): "
              f"{sum(r['calls'].values()):,} {dict(sorted(r['calls'].items(), key=lambda kv: -kv[1]))}")
    print(f"  orders/s: {spread([r['rate'] for r in results])}; {load()}")


if __name__ == "__main__":
    main()
