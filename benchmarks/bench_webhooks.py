"""Webhook intake throughput and latency on loopback, with the split into events beside it.

Run: ``python benchmarks/bench_webhooks.py [--senders 10] [--batches 60] [--events 100]
[--rate 5000 --seconds 60] [--split after|thread|process] [--store-url sqlite|postgresql|URL]
[--runs 3]``.

``--senders`` processes (as HubSpot's senders are other machines, they do not share the
receiver's interpreter) each POST ``--batches`` v3-signed batches of ``--events`` property
changes (distinct deals, so every event also queues a job) to the receiver's WSGI app on a
threaded stdlib HTTP server. Prints events acknowledged per second and answer latency
p50/p99/max. Targets: at least 5,000 events/s; p99 under 50 ms.

The receiver stores each delivery whole; splitting deliveries into deduplicated events and
per-object jobs is the ``webhook.inbox`` job's work. With ``--split after`` (the default) the
benchmark runs that job over the whole backlog once the senders are done and prints its rate:
the rate the worker can sustain, which acknowledging faster than for a long time only turns
into a backlog. With ``--split thread``, a worker thread in the receiver's process (as the
plugin's background worker is) splits deliveries while they arrive, sharing the interpreter
(and on SQLite the writer) with the receiver; with ``--split process``, a worker process does
(as a host running the work in its own worker processes does). The figures then include that
contention, and the backlog (events acknowledged but not split yet) is sampled every second
and printed every 5 s: a split that keeps up holds it flat.

By default each sender posts its next batch as soon as the previous one is answered (closed
loop): the receiver is saturated, and by Little's law the latency is then ``senders /
batches per second``, whatever the code does per batch. ``--rate 5000`` instead offers a
fixed load (events/s over all senders, each sender on its own schedule); latency is then
measured from each batch's scheduled send time, so a receiver that falls behind is charged
for the queueing too. ``--seconds`` sets the batches per sender from the rate.

``--store-url``: ``sqlite`` (a temp file) or a PostgreSQL database (``postgresql`` is db
``test`` on 127.0.0.1:5432), in a schema of its own created and dropped per run.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _webhook_bench import fresh_store_url, load, spread, store_name, store_url_option

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

TENANT, PORTAL, SECRET = "1", "62515", "bench-client-secret"


def _batch(counter: Any, size: int) -> bytes:
    now = int(time.time() * 1000)
    events = []
    for _ in range(size):
        n = next(counter)
        events.append({"eventId": n, "subscriptionId": 1, "portalId": int(PORTAL), "appId": 1,
                       "occurredAt": now, "subscriptionType": "deal.propertyChange",
                       "attemptNumber": 0, "objectId": n, "propertyName": "dealstage",
                       "propertyValue": "closedwon", "changeSource": "CRM_UI"})
    return json.dumps(events, separators=(",", ":")).encode()


def _send(port: int, url: str, first: int, batches: int, size: int, start: Any, results: Any,
          interval: float, offset: float) -> None:
    # Bodies are built before the clock starts: the figure is the receiver's, not ours.
    counter = itertools.count(first)
    bodies = [_batch(counter, size) for _ in range(batches)]
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


def _sample_backlog(store: Any, began: float, stop: threading.Event,
                    samples: list[tuple[float, int]]) -> None:
    """Every second: the events acknowledged and not split yet."""
    while not stop.wait(1.0):
        samples.append((time.perf_counter() - began, store.webhook_backlog(TENANT).events))


def run(args: argparse.Namespace, store_url: str) -> dict[str, Any]:
    """One run on an empty store at ``store_url``; its figures."""
    # Per sender: one batch every `interval` s; senders are spread evenly within it.
    interval = args.senders * args.events / args.rate if args.rate else 0.0
    store = open_store(store_url)
    target = WebhookTarget(TENANT, PORTAL, Secret(SECRET), store)
    receiver = WebhookReceiver(lambda key: target if key == TENANT else None)
    server = make_wsgi_server(receiver.wsgi_app())
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}/hubspot/webhooks/{TENANT}"
    # Warm up before the clock starts, as a running service is: the first delivery loads
    # the batch schema (msgspec) and the store's first pages; that one-off cost is not
    # what the figures are about. Its events are counted apart below.
    warm = _batch(itertools.count(1), args.events)
    stamp = str(int(datetime.now(UTC).timestamp() * 1000))
    status = receiver.handle("POST", url, {"X-HubSpot-Request-Timestamp": stamp,
                                           "X-HubSpot-Signature-v3": sign_v3(
                                               SECRET, "POST", url, warm, stamp)},
                             warm, tenant_key=TENANT)[0]
    assert status == 200, status
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(args.senders + 1)
    results = ctx.Queue()
    per_sender = args.batches * args.events
    senders = [ctx.Process(target=_send, args=(port, url, 1 + args.events + n * per_sender,
                                               args.batches, args.events, start, results,
                                               interval, interval * n / args.senders))
               for n in range(args.senders)]
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
    samples: list[tuple[float, int]] = []
    stop_sampling = threading.Event()
    sampler = threading.Thread(target=_sample_backlog, args=(store, began, stop_sampling, samples),
                               daemon=True)
    if args.split != "after":
        sampler.start()
    latencies: list[float] = []
    failures: list[int] = []
    for _ in senders:
        mine, bad = results.get()
        latencies += mine
        failures += bad
    wall = time.perf_counter() - began
    stop_sampling.set()
    for sender in senders:
        sender.join()
    server.shutdown()
    server.server_close()
    if sampler.is_alive():
        sampler.join()
    backlog_at_end = store.webhook_backlog(TENANT).events
    total = args.senders * per_sender
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
    assert stored == split_events, (stored, split_events)
    ms = sorted(latency * 1000 for latency in latencies)
    return {"total": total, "wall": wall, "ms": ms, "failures": len(failures), "split": split,
            "split_events": split_events, "stored": stored, "jobs": jobs, "samples": samples,
            "backlog_at_end": backlog_at_end, "load": load()}


def _p99(ms: list[float]) -> float:
    return ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def _report(args: argparse.Namespace, n: int, r: dict[str, Any]) -> None:
    ms = r["ms"]
    print(f"  run {n}: {r['total'] / r['wall']:,.0f} events/s acknowledged in {r['wall']:.1f} s, "
          f"non-200: {r['failures']}; latency p50 {statistics.median(ms):.1f} ms, "
          f"p99 {_p99(ms):.1f} ms, max {ms[-1]:.1f} ms; {r['load']}")
    if args.split == "after":
        print(f"    split afterwards: {r['split_events'] / r['split']:,.0f} events/s "
              f"({r['split']:.2f} s)")
    else:
        line = ", ".join(f"{t:.0f}s {events:,}" for t, events in r["samples"] if round(t) % 5 == 0)
        print(f"    backlog (events not split yet) over time: {line}")
        print(f"    backlog when the intake ended: {r['backlog_at_end']:,} events; the rest took "
              f"{r['split']:.2f} s")
    print(f"    stored events: {r['stored']} (with {args.events} of the warm-up), jobs: {r['jobs']}")


def _growth(samples: list[tuple[float, int]]) -> float:
    """Events/s the backlog grew by over the second half of the intake (least squares)."""
    half = [(t, e) for t, e in samples if t >= samples[-1][0] / 2] if samples else []
    if len(half) < 2:
        return 0.0
    mt = statistics.fmean(t for t, _ in half)
    me = statistics.fmean(e for _, e in half)
    den = sum((t - mt) ** 2 for t, _ in half)
    return sum((t - mt) * (e - me) for t, e in half) / den if den else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--batches", type=int, default=60, help="per sender")
    parser.add_argument("--events", type=int, default=100, help="per batch")
    parser.add_argument("--rate", type=float, default=0,
                        help="offered events/s over all senders (0: closed loop)")
    parser.add_argument("--seconds", type=float, default=0,
                        help="with --rate: offer it this long (sets --batches)")
    parser.add_argument("--split", choices=["after", "thread", "process"], default="after",
                        help="when the webhook.inbox split runs: after the intake (default), or "
                             "during it in a worker thread or a worker process")
    parser.add_argument("--store-url", type=store_url_option, default="sqlite",
                        help="sqlite (temp file), postgresql (db test on 127.0.0.1:5432) or a URL")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    if args.seconds and args.rate:
        args.batches = max(1, round(args.seconds * args.rate / (args.senders * args.events)))
    offered = f"offered {args.rate:,.0f} events/s" if args.rate else "closed loop"
    print(f"webhooks on {store_name(args.store_url)} ({offered}, split {args.split}): "
          f"{args.senders} senders x {args.batches} batches x {args.events} events")
    results = []
    for n in range(1, args.runs + 1):
        with fresh_store_url(args.store_url) as url:
            results.append(run(args, url))
        _report(args, n, results[-1])
    print("  over the runs:")
    print(f"    acknowledged: {spread([r['total'] / r['wall'] for r in results], unit=' events/s')}")
    print(f"    p99 latency: {spread([_p99(r['ms']) for r in results], '.1f', ' ms')}")
    if args.split == "after":
        print(f"    split afterwards: "
              f"{spread([r['split_events'] / r['split'] for r in results], unit=' events/s')}")
    else:
        print(f"    backlog growth over the second half: "
              f"{spread([_growth(r['samples']) for r in results], unit=' events/s')}")
        print(f"    backlog when the intake ended: "
              f"{spread([r['backlog_at_end'] for r in results], unit=' events')}")
    print(f"    {load()}")


if __name__ == "__main__":
    main()
