"""Webhook intake throughput and latency on loopback, on the SQLite store.

Run: ``python benchmarks/bench_webhooks.py [--senders 10] [--batches 60] [--events 100]``.
``--senders`` processes (as HubSpot's senders are other machines, they do not share the
receiver's interpreter) each POST ``--batches`` v3-signed batches of ``--events`` property
changes (distinct deals, so every event also queues a job) to the receiver's WSGI app on a
threaded stdlib HTTP server. Prints events acknowledged per second and answer latency
p50/p99/max. Targets: at least 5,000 events/s; p99 under 50 ms.

The receiver stores each delivery whole; splitting deliveries into deduplicated events and
per-object jobs is the ``webhook.inbox`` job's work. After the senders are done, the benchmark
runs that job over the whole backlog and prints its rate too: the rate the worker can sustain,
which acknowledging faster than for a long time only turns into a backlog. With
``--split thread``, a worker thread in the receiver's process (as the plugin's background
worker is) splits deliveries while they arrive, sharing the interpreter and the SQLite writer
with the receiver; with ``--split process``, a worker process does (as a host running the
work in its own worker processes does), sharing only the SQLite file. The figures then include
that contention.

By default each sender posts its next batch as soon as the previous one is answered (closed
loop): the receiver is saturated, and by Little's law the latency is then ``senders /
batches per second``, whatever the code does per batch. ``--rate 5000`` instead offers a
fixed load (events/s over all senders, each sender on its own schedule); latency is then
measured from each batch's scheduled send time, so a receiver that falls behind is charged
for the queueing too.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ambac_hubspot_plugin._webhooks import (
    INBOX_JOB_KIND,
    WebhookInboxSplitter,
    WebhookReceiver,
    WebhookTarget,
)
from ambac_hubspot_plugin._wsgi_server import make_wsgi_server
from ambac_hubspot_plugin.sandbox import sign_v3
from ambac_hubspot_plugin.settings import Secret
from ambac_hubspot_plugin.store import open_store

TENANT, PORTAL, SECRET = 1, "62515", "bench-client-secret"


def _batch(counter: itertools.count[int], size: int) -> bytes:
    now = int(time.time() * 1000)
    events = []
    for _ in range(size):
        n = next(counter)
        events.append({"eventId": n, "subscriptionId": 1, "portalId": int(PORTAL), "appId": 1,
                       "occurredAt": now, "subscriptionType": "deal.propertyChange",
                       "attemptNumber": 0, "objectId": n, "propertyName": "dealstage",
                       "propertyValue": "closedwon", "changeSource": "CRM_UI"})
    return json.dumps(events, separators=(",", ":")).encode()


def _send(port: int, url: str, bodies: list[bytes], start: Any, results: Any,
          interval: float, offset: float) -> None:
    latencies: list[float] = []
    failures: list[int] = []
    start.wait()
    t0 = time.perf_counter() + offset
    for n, body in enumerate(bodies):
        due = t0 + n * interval
        if interval:
            time.sleep(max(0.0, due - time.perf_counter()))
        stamp = str(int(datetime.now(UTC).timestamp() * 1000))
        headers = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
                   "X-HubSpot-Signature-v3": sign_v3(SECRET, "POST", url, body, stamp)}
        began = due if interval else time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", f"/hubspot/webhooks/{TENANT}", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        latencies.append(time.perf_counter() - began)
        if response.status != 200:
            failures.append(response.status)
    results.put((latencies, failures))


def _split_all(store: Any, intake_done: Any) -> None:
    """Run the webhook.inbox jobs until the intake is done and none is left; ``store`` is a
    store, or the URL of one to open (in a worker process)."""
    own = isinstance(store, str)
    if own:
        store = open_store(store)
    splitter = WebhookInboxSplitter(lambda _tenant: store, rounds=10**9)
    try:
        while True:
            done = intake_done.is_set()  # read first: a last pass after the intake ended
            for job in store.claim("bench", kinds=[INBOX_JOB_KIND]):
                splitter.handle_job(job)
                store.complete(job.id, "bench")
            if done:
                return
            time.sleep(0.005)
    finally:
        if own:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--batches", type=int, default=60, help="per sender")
    parser.add_argument("--events", type=int, default=100, help="per batch")
    parser.add_argument("--rate", type=float, default=0,
                        help="offered events/s over all senders (0: closed loop)")
    parser.add_argument("--split", choices=["after", "thread", "process"], default="after",
                        help="when the webhook.inbox split runs: after the intake (default), or "
                             "during it in a worker thread or a worker process")
    args = parser.parse_args()
    # Per sender: one batch every `interval` s; senders are spread evenly within it.
    interval = args.senders * args.events / args.rate if args.rate else 0.0
    with tempfile.TemporaryDirectory() as tmp:
        store_url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        store = open_store(store_url)
        target = WebhookTarget(TENANT, PORTAL, Secret(SECRET), store)
        receiver = WebhookReceiver(lambda key: target if key == str(TENANT) else None)
        server = make_wsgi_server(receiver.wsgi_app())
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{port}/hubspot/webhooks/{TENANT}"
        counter = itertools.count(1)
        # Warm up before the clock starts, as a running service is: the first delivery loads
        # the batch schema (msgspec) and the store's first pages; that one-off cost is not
        # what the figures are about. Its events are counted apart below.
        warm = _batch(counter, args.events)
        stamp = str(int(datetime.now(UTC).timestamp() * 1000))
        status = receiver.handle("POST", url, {"X-HubSpot-Request-Timestamp": stamp,
                                               "X-HubSpot-Signature-v3": sign_v3(
                                                   SECRET, "POST", url, warm, stamp)},
                                 warm, tenant_key=str(TENANT))[0]
        assert status == 200, status
        # Bodies are built before the clock starts: the figure is the receiver's, not ours.
        bodies = [[_batch(counter, args.events) for _ in range(args.batches)]
                  for _ in range(args.senders)]
        ctx = multiprocessing.get_context("fork")
        start = ctx.Barrier(args.senders + 1)
        results = ctx.Queue()
        senders = [ctx.Process(target=_send, args=(port, url, mine, start, results, interval,
                                                   interval * n / args.senders))
                   for n, mine in enumerate(bodies)]
        ctx_events = ctx if args.split == "process" else threading
        intake_done = ctx_events.Event()
        runs_as = ctx.Process if args.split == "process" else threading.Thread
        worker = runs_as(target=_split_all, args=(store_url if args.split == "process" else store,
                                                  intake_done), daemon=True)
        for sender in senders:
            sender.start()
        if args.split != "after":
            worker.start()
        start.wait()
        began = time.perf_counter()
        latencies: list[float] = []
        failures: list[int] = []
        for _ in senders:
            mine, bad = results.get()
            latencies += mine
            failures += bad
        wall = time.perf_counter() - began
        for sender in senders:
            sender.join()
        server.shutdown()
        server.server_close()
        total = args.senders * args.batches * args.events
        intake_done.set()
        split_began = time.perf_counter()
        if args.split == "after":
            worker.start()
        worker.join()
        split = time.perf_counter() - split_began
        split_events = total + args.events  # and the warm-up's
        with store.engine.connect() as conn:
            import sqlalchemy as sa

            stored = conn.execute(sa.text("SELECT count(*) FROM hubspot_webhook_events")).scalar()
            jobs = conn.execute(sa.text("SELECT count(*) FROM hubspot_jobs")).scalar()
        store.close()
    ms = sorted(latency * 1000 for latency in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    load = f"offered {args.rate:,.0f} events/s" if args.rate else "closed loop"
    print(f"webhooks on SQLite ({load}): {args.senders} senders x {args.batches} batches x "
          f"{args.events} events = {total} events in {wall:.2f} s")
    print(f"  acknowledged: {total / wall:,.0f} events/s ({len(ms) / wall:,.1f} batches/s); "
          f"non-200 answers: {len(failures)}")
    print(f"  answer latency: p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, "
          f"max {ms[-1]:.1f} ms")
    if args.split != "after":
        print(f"  split during the intake in a worker {args.split}; what was left took "
              f"{split:.2f} s afterwards")
    else:
        print(f"  split into events afterwards: {split_events / split:,.0f} events/s "
              f"({split:.2f} s)")
    print(f"  stored events: {stored} (with {args.events} of the warm-up), queued object "
          f"jobs: {jobs}")


if __name__ == "__main__":
    main()
