"""Soak: a steady 1,000 webhook events/s for half an hour leaves the plugin's tables bounded.

Run: ``python benchmarks/soak_tables.py [--minutes 30] [--rate 1000] [--speed 200]
[--store-url URL | --only sqlite|postgresql | --parallel]``. Without ``--store-url`` it runs on a SQLite file in a
temporary directory, then on PostgreSQL (127.0.0.1:5432, database ``test``, in a schema of its
own, dropped afterwards); ``--parallel`` runs both at once (each in its own process).

What runs, all on loopback: the sandbox HubSpot emulator; the reference host served by a
threaded WSGI server, with the plugin enabled for one tenant and its background worker on
(the worker splits the stored deliveries, processes the per-deal jobs against the sandbox, and
its tick schedules syncs and reconciliations, raises alerts and prunes); and one sender process
(HubSpot's senders are other machines) offering ``--rate`` events/s as v3-signed batches of 100
events, ten batches a second, on a fixed schedule. The mix: most events are property changes
(amount, dealname, closedate) of 2,000 deals that exist in the sandbox, 500 of them closed won
and so orders; two a second are a new closed-won deal the sender created in the sandbox through
its API just before, which the worker turns into an order. Every minute it prints the rows of
``hubspot_webhook_events``, the integration log, sync runs and jobs by state (dead ones apart),
the events not processed yet, and the store's size (the SQLite file with its WAL, or the
tables' ``pg_total_relation_size``). At the end: minute 10 against the last minute per table,
whether the last is at most 1.1 x minute 10, the achieved rate and the load average.

What is accelerated, and why this is a fair test. Retention cannot be shortened below a day
for processed webhook events (HubSpot retries a delivery for 24 hours, so the dedupe window
must last that long), so in real time a 30-minute run never prunes one. The plugin, the host
and the sandbox therefore all run on one injected clock (``HubSpotPlugin.use_clock``, the
reference host's and the sandbox's ``clock``) on which one real second is ``--speed`` simulated
seconds (default 200): a simulated day passes in 7.2 real minutes, and every retention is set
to that one day, so each table reaches its steady state before minute 10. Only "now" is
accelerated. The offered load is 1,000 events per *real* second, and the worker's splitting,
processing and pruning run at their real speed: per real second the store takes the same
inserts, and must delete the same number of rows, as a production store at a steady 1,000
events/s does. What is scaled down is the size of the steady state, by ``--speed``: a day of
events is 432,000 rows here instead of 86.4 million, so indexes are shallower (B-trees grow
with the logarithm of the rows) and VACUUM/checkpoint work per pruned row may differ. Time
budgets read from the same clock shrink in real terms (a tick's 10 s is 50 ms; a prune's
2 s budget per tick is 10 ms; the job lease is set to ``--speed`` x 15 s so it is 15 real
seconds, as in production); the per-tick budgets shrinking makes keeping up harder, not easier,
as the worker's ticks do not come more often for it. The v3 timestamps the sender signs are
read from the same clock, so the 5-minute replay window is 1.5 real seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _pg import pg_schema  # benchmarks/ is on the path when a script in it runs

BATCH = 100
SEEDED_DEALS = 2000
SEEDED_WON = 500
NEW_WON_PER_S = 2
TABLES = ("webhook_events", "integration_log", "sync_runs", "jobs", "dead_jobs")


class AcceleratedClock:
    """Tz-aware UTC "now" on which one real second is ``speed`` seconds, from ``start``;
    picklable, so the sender process reads the same time (``time.time`` is system-wide)."""

    def __init__(self, speed: float, start: datetime | None = None,
                 real_start: float | None = None) -> None:
        self.speed = speed
        self.start = start or datetime.now(UTC)
        self.real_start = time.time() if real_start is None else real_start

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.real_start) * self.speed)


def _send(url: str, port: int, secret: str, api: tuple[str, int, str], deals: list[str],
          portal: int, clock: AcceleratedClock, rate: float, seconds: float, go: Any,
          counters: Any) -> None:
    """Offer ``rate`` events/s in signed batches on a fixed schedule for ``seconds``; add to
    ``counters`` (acknowledged events, non-200 answers, late batches) as it goes."""
    from ambac_hubspot_plugin.sandbox import sign_v3

    rng = random.Random(16)
    interval = BATCH / rate
    new_every = max(1, round(rate / BATCH / NEW_WON_PER_S))
    event_id = 10**9
    api_host, api_port, token = api
    go.wait()
    t0 = time.perf_counter()
    n = 0
    path = url.split(str(port), 1)[1]
    while True:
        due = t0 + n * interval
        if due - t0 >= seconds:
            return
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1:
            with counters.get_lock():
                counters[2] += 1
        events = []
        now_ms = int(clock().timestamp() * 1000)
        if n % new_every == 0:
            # A new closed-won deal, created in HubSpot as a user would, then its webhook.
            conn = http.client.HTTPConnection(api_host, api_port, timeout=30)
            conn.request("POST", "/crm/v3/objects/deals", body=json.dumps({"properties": {
                "dealname": f"Soak {n}", "pipeline": "default", "dealstage": "closedwon",
                "amount": "1200"}}), headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
            created = json.loads(conn.getresponse().read())
            conn.close()
            event_id += 1
            events.append({"eventId": event_id, "subscriptionId": 1, "portalId": portal,
                           "appId": 1, "occurredAt": now_ms,
                           "subscriptionType": "deal.propertyChange", "attemptNumber": 0,
                           "objectId": int(created["id"]), "propertyName": "dealstage",
                           "propertyValue": "closedwon", "changeSource": "CRM_UI"})
        while len(events) < BATCH:
            event_id += 1
            name = rng.choice(("amount", "dealname", "closedate"))
            events.append({"eventId": event_id, "subscriptionId": 1, "portalId": portal,
                           "appId": 1, "occurredAt": now_ms,
                           "subscriptionType": "deal.propertyChange", "attemptNumber": 0,
                           "objectId": int(rng.choice(deals)), "propertyName": name,
                           "propertyValue": str(rng.randrange(10**6)), "changeSource": "CRM_UI"})
        body = json.dumps(events, separators=(",", ":")).encode()
        stamp = str(int(clock().timestamp() * 1000))
        headers = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
                   "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, stamp)}
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            ok = response.status == 200
        except OSError:
            ok = False
        with counters.get_lock():
            if ok:
                counters[0] += len(events)
            else:
                counters[1] += 1
        n += 1


def _sizes(store: Any, tenant: str, sqlite_file: Path | None) -> dict[str, Any]:
    import sqlalchemy as sa

    out: dict[str, Any] = {}
    with store.engine.connect() as conn:
        def one(sql: str) -> int:
            return int(conn.execute(sa.text(sql), {"t": tenant}).scalar_one())

        out["webhook_events"] = one("SELECT count(*) FROM hubspot_webhook_events WHERE tenant_id = :t")
        out["unprocessed"] = one("SELECT count(*) FROM hubspot_webhook_events WHERE tenant_id = :t "
                                 "AND processed_at IS NULL")
        out["split"] = one("SELECT coalesce(sum(accepted), 0) FROM hubspot_webhook_portals "
                           "WHERE tenant_id = :t")
        out["unsplit"] = one("SELECT count(*) FROM hubspot_webhook_batches WHERE tenant_id = :t")
        out["integration_log"] = one("SELECT count(*) FROM hubspot_integration_log WHERE tenant_id = :t")
        out["sync_runs"] = one("SELECT count(*) FROM hubspot_sync_runs WHERE tenant_id = :t")
        by_state = dict(conn.execute(sa.text(
            "SELECT state, count(*) FROM hubspot_jobs WHERE tenant_id = :t GROUP BY state"),
            {"t": tenant}).all())
        out["jobs"] = sum(int(v) for v in by_state.values())
        out["jobs_by_state"] = {str(k): int(v) for k, v in sorted(by_state.items())}
        out["dead_jobs"] = int(by_state.get("dead", 0))
        if sqlite_file is not None:
            out["bytes"] = sum(p.stat().st_size for p in sqlite_file.parent.glob(sqlite_file.name + "*"))
            out["bytes_detail"] = "file+wal"
        else:
            rel = dict(conn.execute(sa.text(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace "
                "AND c.relname LIKE 'hubspot_%'")).all())
            out["bytes"] = sum(int(v) for v in rel.values())
            out["bytes_detail"] = ", ".join(
                f"{k.removeprefix('hubspot_')} {int(v) / 2**20:.1f}"
                for k, v in sorted(rel.items(), key=lambda kv: -int(kv[1]))[:4]) + " MiB"
    return out


def _autovacuum_stand_in(store: Any, label: str, stop: threading.Event) -> threading.Thread | None:
    """On a PostgreSQL server with ``autovacuum = off`` (as on the development machine: a
    production server has it on), VACUUM the plugin's tables every minute, autovacuum's default
    naptime, so that pruned rows' space is reused as in production; None when not needed."""
    import sqlalchemy as sa

    if store.engine.dialect.name != "postgresql":
        return None
    with store.engine.connect() as conn:
        if conn.execute(sa.text("SHOW autovacuum")).scalar_one() == "on":
            return None
        tables = list(conn.execute(sa.text(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'hubspot_%' "
            "AND relnamespace = current_schema()::regnamespace")).scalars())
    print(f"[{label}] this server has autovacuum off: VACUUM of the plugin's tables every 60 s "
          "stands in for it", flush=True)

    def run() -> None:
        while not stop.wait(60):
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in tables:
                    conn.execute(sa.text(f'VACUUM "{table}"'))

    thread = threading.Thread(target=run, name="autovacuum-stand-in", daemon=True)
    thread.start()
    return thread


def _line(label: str, minute: float, sizes: dict[str, Any], acked: int) -> str:
    return (f"[{label}] min {minute:4.1f}  events {sizes['webhook_events']:>8,} (unprocessed "
            f"{sizes['unprocessed']:,}, unsplit batches {sizes['unsplit']:,})  log "
            f"{sizes['integration_log']:>7,}  runs {sizes['sync_runs']:>5,}  jobs "
            f"{sizes['jobs_by_state']}  dead {sizes['dead_jobs']:,}  store "
            f"{sizes['bytes'] / 2**20:7.1f} MiB ({sizes['bytes_detail']})  acked {acked:,}  split "
            f"{sizes['split']:,}")


def soak(label: str, store_url: str | None, minutes: float, rate: float, speed: float) -> dict[str, Any]:
    """One soak on one store; prints as it goes and returns the figures."""
    from ambac_hubspot_plugin import plugin as plugin_module
    from ambac_hubspot_plugin._wsgi_server import make_wsgi_server
    from ambac_hubspot_plugin.reference_host import ReferenceHost
    from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox
    from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV

    os.environ.setdefault(ALLOW_LOCAL_SANDBOX_ENV, "1")  # the bundled sandbox on loopback
    clock = AcceleratedClock(speed)
    with tempfile.TemporaryDirectory() as tmp, \
            Sandbox(rate_limits=RateLimits.unlimited(), clock=clock) as hubspot, \
            ReferenceHost(Path(tmp) / "host", clock=clock) as host:
        plugin = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME)
        plugin.use_clock(clock)
        runtime = plugin.runtime
        # The lease bounds how long a crashed worker holds its jobs: a real-time quantity.
        runtime.job_lease = timedelta(seconds=15 * speed)
        server = make_wsgi_server(host.wsgi_app())
        port = server.server_address[1]
        base = f"http://127.0.0.1:{port}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        deals = [hubspot.add_object("deals", {
            "dealname": f"Deal {i}", "pipeline": "default", "amount": "100",
            "dealstage": "closedwon" if i < SEEDED_WON else "contractsent"})
            for i in range(SEEDED_DEALS)]
        tenant = host.create_tenant(f"Soak {label}")
        settings: dict[str, Any] = {
            "portal_id": str(hubspot.portal_id), "api_base_url": hubspot.base_url,
            "local_sandbox": True,
            "credentials": {"kind": "private_app", "access_token": hubspot.access_token},
            "webhook_client_secret": hubspot.client_secret, "public_base_url": base,
            "run_background_worker": True,
            "retention": {"webhook_events_days": 1, "log_days": 1, "sync_runs_days": 1,
                          "dead_jobs_days": 1},
        }
        if store_url is not None:
            settings["store_url"] = store_url
        (report,) = [r for r in host.enable_plugin(tenant, "hubspot", settings) if r is not None]
        store = runtime.store_for(tenant)
        sqlite_file = (Path(store.engine.url.database) if store.engine.dialect.name == "sqlite"
                       else None)
        url = f"{base}/integrations/hubspot/webhooks/{tenant}"
        api = ("127.0.0.1", int(hubspot.base_url.rsplit(":", 1)[1].split("/")[0]),
               hubspot.access_token)
        ctx = multiprocessing.get_context("fork")
        go = ctx.Event()
        counters = ctx.Array("q", 3)
        sender = ctx.Process(target=_send, args=(url, port, hubspot.client_secret, api, deals,
                                                 hubspot.portal_id, clock, rate, minutes * 60,
                                                 go, counters), daemon=True)
        sender.start()
        print(f"[{label}] store {store.engine.dialect.name}; enable ok={report.ok}; "
              f"{speed:g} simulated s per real s; offering {rate:,.0f} events/s for "
              f"{minutes:g} min", flush=True)
        stop_vacuum = threading.Event()
        vacuum = _autovacuum_stand_in(store, label, stop_vacuum)
        go.set()
        began = time.perf_counter()
        rows: list[dict[str, Any]] = []
        loads: list[tuple[float, float, float]] = []
        try:
            for minute in range(1, int(minutes) + 1):
                time.sleep(max(0.0, began + minute * 60 - time.perf_counter()))
                sizes = _sizes(store, tenant, sqlite_file)
                rows.append(sizes)
                loads.append(os.getloadavg())
                print(_line(label, minute, sizes, counters[0]) + f"  load {loads[-1][0]:.2f}",
                      flush=True)
            sender.join(timeout=60)
            wall = time.perf_counter() - began
        finally:
            if sender.is_alive():
                sender.kill()
            stop_vacuum.set()
            if vacuum is not None:
                vacuum.join(timeout=120)
            runtime.close()
            server.shutdown()
            server.server_close()
        return {"label": label, "rows": rows, "acked": counters[0], "failed": counters[1],
                "late": counters[2], "wall": wall, "loads": loads, "speed": speed}


def summary(result: dict[str, Any]) -> list[str]:
    rows, label = result["rows"], result["label"]
    out = [f"[{label}] acknowledged {result['acked']:,} events in {result['wall']:.0f} s = "
           f"{result['acked'] / result['wall']:,.0f} events/s; split into events "
           f"{rows[-1]['split']:,} = {rows[-1]['split'] / result['wall']:,.0f} events/s; failed batches "
           f"{result['failed']}, batches sent > 1 s late {result['late']}; load average "
           f"(1 min) median {statistics.median(lo[0] for lo in result['loads']):.2f}, max "
           f"{max(lo[0] for lo in result['loads']):.2f}"]
    if len(rows) < 10:
        out.append(f"[{label}] fewer than 10 minutes: comparing minute {len(rows) // 2 or 1} "
                   f"with minute {len(rows)} instead")
        ref_index = max(0, len(rows) // 2 - 1)
    else:
        ref_index = 9
    ref, last = rows[ref_index], rows[-1]
    for name in (*TABLES, "unprocessed", "unsplit", "bytes"):
        bound = 1.1 * ref[name]
        verdict = "ok" if last[name] <= bound else "GREW"
        out.append(f"[{label}]   {name:16} min {ref_index + 1}: {ref[name]:>12,}  min "
                   f"{len(rows)}: {last[name]:>12,}  ({last[name] / ref[name] if ref[name] else 0:.2f}x)"
                   f"  {verdict}")
    return out


def _run_one(label: str, url: str | None, args: argparse.Namespace, out: Any = None) -> dict[str, Any]:
    result = soak(label, url, args.minutes, args.rate, args.speed)
    if out is not None:
        out.put(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=1000, help="offered events per real second")
    parser.add_argument("--speed", type=float, default=200,
                        help="simulated seconds per real second")
    parser.add_argument("--store-url", help="run on this store only (default: SQLite, then "
                                            "PostgreSQL)")
    parser.add_argument("--only", choices=["sqlite", "postgresql"],
                        help="run on the default store of this kind only")
    parser.add_argument("--parallel", action="store_true",
                        help="run SQLite and PostgreSQL at once, each in its own process")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    if args.store_url:
        results.append(_run_one(args.store_url.split(":", 1)[0].split("+", 1)[0], args.store_url, args))
    else:
        with pg_schema("soak") as pg_url:
            if pg_url is None:
                print("postgresql: skipped (127.0.0.1:5432 does not answer)")
            if args.only == "sqlite":
                pg_url = None
            if args.parallel and pg_url is not None:
                ctx = multiprocessing.get_context("fork")
                out = ctx.Queue()
                procs = [ctx.Process(target=_run_one, args=(name, url, args, out))
                         for name, url in (("sqlite", None), ("postgresql", pg_url))]
                for proc in procs:
                    proc.start()
                results = [out.get() for _ in procs]
                for proc in procs:
                    proc.join()
            else:
                if args.only != "postgresql":
                    results.append(_run_one("sqlite", None, args))
                if pg_url is not None:
                    results.append(_run_one("postgresql", pg_url, args))
    print(f"\nsoak: {args.minutes:g} min at {args.rate:,.0f} events/s offered, "
          f"{args.speed:g} simulated s per real s; cores {os.cpu_count()}")
    for result in sorted(results, key=lambda r: r["label"]):
        print("\n".join(summary(result)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
