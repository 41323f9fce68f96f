"""Status-change notes at scale: 2,000 status changes with notes on, pushed to the sandbox.

2,000 won deals are synced into orders (their first pushes drained), then each order's status
changes once through the host (``ambac_order_status_changed``), and the worker drains the
queue. Prints the HubSpot calls of that drain by kind (from the sandbox's request log), its
seconds, and whether every deal got exactly one note. Target: the 2,000 notes in <= 25 calls.

Then the answer of one notes batch is lost after HubSpot made its notes (as a read timeout
would), and the retry's calls are counted: it reads the deals' notes to find the marks of
the notes already made, and must make none again.

The sandbox and the client run at HubSpot's default budget (190 calls per 10 s): the
version that sent one note per call needed about 103 s for this. Each store is run
``--runs`` times (median and range); ``os.getloadavg()`` is printed beside the figures.

Run: ``python benchmarks/bench_notes.py [--runs 3] [--store-url URL ...]``. Without
``--store-url``: a SQLite file in a temporary directory, and PostgreSQL at 127.0.0.1:5432
database ``test`` in a fresh schema, dropped afterwards (skipped when it does not answer).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _pg import pg_schema  # benchmarks/ is on the path when a script in it runs

from ambac_hubspot_plugin import plugin as plugin_module  # after the path fix
from ambac_hubspot_plugin.host import OrderStatus  # after the path fix
from ambac_hubspot_plugin.reference_host import ReferenceHost  # after the path fix
from ambac_hubspot_plugin.sandbox import Sandbox  # after the path fix
from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV  # after the path fix
from ambac_hubspot_plugin.store._schema import jobs as jobs_table  # after the path fix

ORDERS = 2_000
NOTES_BATCH = "notes/batch/create"


@contextlib.contextmanager
def _store(url: str | None, kind: str) -> Iterator[str | None]:
    """``url`` as given; else None for SQLite (the plugin's default file in the host's data
    dir, a temporary directory) or a fresh PostgreSQL schema, dropped afterwards."""
    if url is not None or kind == "sqlite":
        yield url
        return
    with pg_schema("bench_notes") as pg_url:
        yield pg_url


def _kind(path: str) -> str:
    """A request's kind: its path without the API version and object ids."""
    parts = [p for p in path.split("/") if p and p not in ("crm", "objects", "associations", "2026-09")]
    return "/".join(p for p in parts if not p.isdigit())


def one_run(store_url: str | None) -> dict[str, object]:
    """Set up 2,000 linked orders, change each status once, drain; return the figures."""
    os.environ.setdefault(ALLOW_LOCAL_SANDBOX_ENV, "1")  # the bundled sandbox on loopback
    with tempfile.TemporaryDirectory() as tmp, Sandbox() as hs, ReferenceHost(Path(tmp) / "host") as host:
        tenant = host.create_tenant("Bench")
        settings: dict[str, object] = {
            "portal_id": str(hs.portal_id),
            "credentials": {"kind": "private_app", "access_token": hs.access_token},
            "api_base_url": hs.base_url, "local_sandbox": True, "run_background_worker": False,
            "outbound": {"notes_on_status_change": True}}
        if store_url is not None:
            settings["store_url"] = store_url
        host.enable_plugin(tenant, "hubspot", settings)
        runtime = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime
        for i in range(ORDERS):
            hs.add_object("deals", {"dealname": f"D{i}", "pipeline": "default", "dealstage": "closedwon"})
        assert runtime.run_sync(tenant).created == ORDERS
        while runtime.drain():  # the new orders' first pushes (no notes: no status change)
            pass
        orders = host.services(tenant).list_orders()
        for order in orders:
            host.set_order_status(tenant, order.id, OrderStatus.IN_PROGRESS)
        hs.clear_requests()
        started = time.perf_counter()
        while runtime.drain():
            pass
        seconds = time.perf_counter() - started
        calls = Counter(_kind(r.path) for r in hs.requests)
        store = runtime.store_for(tenant)
        links = store.get_links_by_host(tenant, "order", [o.id for o in orders])
        per_deal = Counter(len(hs.associations("deals", links[o.id].hubspot_id, "notes")) for o in orders)
        left = store.depths(tenant)

        # A lost answer: HubSpot made a batch of notes, the worker never heard. Its retry.
        hs.faults.lose_answer_next(1, path_prefix=f"/crm/objects/2026-09/{NOTES_BATCH}")
        for order in orders[:100]:
            host.set_order_status(tenant, order.id, OrderStatus.COMPLETED)
        while runtime.drain():
            pass
        made = len(hs.portal.objects["notes"])
        with store.engine.begin() as conn:  # waiting out the backoff
            conn.execute(sa.update(jobs_table).values(run_after=datetime.now(UTC) - timedelta(seconds=1)))
        hs.clear_requests()
        while runtime.drain():
            pass
        retry_calls = Counter(_kind(r.path) for r in hs.requests)
        retry_left = store.depths(tenant)
        runtime.close()
        return {"seconds": seconds, "calls": calls, "notes_per_deal": per_deal, "left": left,
                "retry_calls": retry_calls, "duplicates": len(hs.portal.objects["notes"]) - made,
                "retry_left": retry_left}


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (range {min(values):.2f} to {max(values):.2f})"


def bench(name: str, url: str | None, runs: int) -> None:
    results = []
    for _ in range(runs):
        with _store(url, name) as store_url:
            results.append(one_run(store_url))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    note_calls = [float(r["calls"][NOTES_BATCH]) for r in results]  # type: ignore[index]
    all_calls = [float(sum(r["calls"].values())) for r in results]  # type: ignore[attr-defined]
    print(f"{name}: {ORDERS} status changes, notes on, {runs} runs (load average {load})")
    print(f"  notes batch creates: {_summary(note_calls)} (target <= 25)")
    print(f"  all HubSpot calls of the drain: {_summary(all_calls)}; by kind (last run): "
          f"{dict(sorted(results[-1]['calls'].items()))}")  # type: ignore[attr-defined]
    print(f"  drain seconds: {_summary([float(r['seconds']) for r in results])}")  # type: ignore[arg-type]
    print(f"  notes per deal (count of deals): {dict(results[-1]['notes_per_deal'])}; jobs left: "  # type: ignore[call-overload]
          f"{results[-1]['left'] or 'none'}")
    print(f"  retry after a lost answer of one notes batch: calls {dict(sorted(results[-1]['retry_calls'].items()))}, "  # type: ignore[attr-defined]
          f"notes made again {[r['duplicates'] for r in results]}, jobs left {results[-1]['retry_left'] or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store-url", action="append", default=[],
                        help="a store URL to run against (repeatable); default: SQLite and PostgreSQL")
    args = parser.parse_args()
    if args.store_url:
        for url in args.store_url:
            bench(url.split(":", 1)[0], url, args.runs)
        return
    bench("sqlite", None, args.runs)
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
    except OSError:
        print("postgresql: skipped (127.0.0.1:5432 does not answer)")
        return
    bench("postgresql", None, args.runs)


if __name__ == "__main__":
    main()
