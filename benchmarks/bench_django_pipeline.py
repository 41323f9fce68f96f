"""The Django bridge end to end, on the host double: three figures of issue #15.

1. **Closed won -> order** (target p50 < 1 s, p99 < 3 s): a deal is moved to closed won in the
   sandbox HubSpot; the sandbox sends the signed webhook to the double's Django app served over
   loopback (the bridge's real view); the view stores it and nudges a drain on Celery; a real
   ``celery worker`` process over Redis runs the drain, which creates the order. The figure is
   the time from the move to the order row existing in the host's database, deals one after
   another.
2. **Order status saved -> deal property** (target p50 < 2 s): the host saves an order status in
   a transaction; the receivers write an outbox row; its commit nudges the drain; the worker
   hands the row to the plugin and pushes it. The figure ends when the sandbox's deal shows the
   new ``ambac_order_status``.
3. **Receivers' host save overhead** (target p99 < 2 ms): ``Order.save(update_fields=
   ['order_status'])`` in a transaction (commit and on-commit nudge included), timed with the
   receivers connected and disconnected in alternating pairs; the figure is the per-pair
   difference. That difference also carries the noise of two whole saves (a commit's fsync, the
   scheduler), so a second figure times the receivers themselves: the wall time spent inside
   them (their SQL round trip included) and in the on-commit trigger, per save.

Each configuration runs in a process of its own (Django is configured once per process): the
double's database (``--db``: a SQLite file, or a PostgreSQL database created on 127.0.0.1:5432
and dropped after) and the plugin's store (``--store-url``: ``sqlite`` for a file, ``postgres``
for a schema of its own in database ``test``, or a URL; default: the same kind as ``--db``). By
default both SQLite and PostgreSQL run. Each figure is measured ``--runs`` times (>= 3) and
printed as the median and range of the runs, with ``os.getloadavg()`` beside each run.

Run from the repository root with the Django environment::

    PYTHONPATH=$PWD .venv-django/bin/python benchmarks/bench_django_pipeline.py [--deals 200]

Needs Redis on 127.0.0.1:6379 (database ``--redis-db``, 9 by default) and, for the PostgreSQL
configuration, PostgreSQL on 127.0.0.1:5432 (trust auth, user ``postgres``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_MODULE = "benchmarks._django_pipeline_settings"
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
RESULT = "RESULT "  # a child's last line: its figures as JSON, for the parent's summary
TIMEOUT = 30.0  # seconds one deal or status may take before the run is declared broken
STATUSES = ("IN_PROGRESS", "ON_HOLD", "COMPLETED", "PENDING")


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((PG_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


# -- the parent: one child process per configuration, then a summary -------------------------

def _configs(args: argparse.Namespace) -> list[tuple[str, str]]:
    dbs = args.db or ["sqlite", "postgres"]
    configs = []
    for db in dbs:
        if db == "postgres" and not _answers(PG_PORT):
            print(f"PostgreSQL does not answer at {PG_HOST}:{PG_PORT}: the postgres configuration is skipped")
            continue
        configs.append((db, args.store_url or db))
    return configs


def _parent(args: argparse.Namespace) -> None:
    results = []
    shared = [f"--deals={args.deals}", f"--pairs={args.pairs}", f"--runs={args.runs}",
              f"--warmup={args.warmup}", f"--redis-db={args.redis_db}"]
    shared += ["--skip-pipeline"] if args.skip_pipeline else []
    for db, store in _configs(args):
        command = [sys.executable, __file__, *shared, "--child", db, "--store-url", store]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        print(f"== host database {db}, plugin store {_shown(store)}", flush=True)
        child = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=False)
        for line in child.stdout.splitlines():
            if line.startswith(RESULT):
                results.append(json.loads(line[len(RESULT):]))
            else:
                print(line)
        if child.returncode:
            print(f"   (the {db} configuration failed with exit code {child.returncode})")
    if results:
        print("\nSummary (median of the runs' figures, [range]):")
        for result in results:
            print(f"  host db {result['db']}, store {result['store']}:")
            for line in result["lines"]:
                print(f"    {line}")


def _shown(store: str) -> str:
    return store if store in ("sqlite", "postgres") else store.split("@")[-1]


# -- a child: one configuration -------------------------------------------------------------

@contextmanager
def _host_database(kind: str, tmp: Path) -> Iterator[dict[str, Any]]:
    """The double's ``default`` database: a SQLite file, or a PostgreSQL database dropped after."""
    if kind == "sqlite":
        yield {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp / "host.sqlite3"),
               "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30}}
        return
    import psycopg

    name = f"bench_ambac_dj_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"ENGINE": "django.db.backends.postgresql", "NAME": name, "USER": "postgres",
               "HOST": PG_HOST, "PORT": PG_PORT}
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _plugin_store(spec: str, tmp: Path) -> Iterator[str]:
    """The plugin's store URL: a SQLite file, a PostgreSQL schema of database ``test`` dropped
    after, or ``spec``."""
    if spec == "sqlite":
        place = tmp / "plugin-data" / "hubspot"  # the plugin keeps its SQLite files there
        place.mkdir(parents=True)
        yield f"sqlite:///{place / 'store.sqlite3'}"
        return
    if spec != "postgres":
        yield spec
        return
    from tests._store_support import pg_schema_url  # the test suite's fresh schema, dropped after

    with pg_schema_url("bench_ambac_store") as url:
        yield url


@contextmanager
def _celery_worker(tmp: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``celery worker`` in its own process on the bench's queue, ready when yielded; stopped
    with SIGTERM (a warm shutdown) after."""
    log = tmp / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.django_host.celery_app", "worker",
             "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel", "INFO"], env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Celery worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield worker
    except BaseException:
        print("the Celery worker's log, last lines:\n" + "\n".join(log.read_text().splitlines()[-40:]))
        raise
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        if "Traceback" in log.read_text():
            print(f"  (the worker logged errors; its log: {log})")


def _enable(hubspot: Any, base: str, store_url: str) -> str:
    """A tenant with the plugin enabled as an admin would (the test suite's ``_enable``)."""
    from integrations.models import IntegrationConfig
    from Tracker.models import Tenant

    from ambac_hubspot_plugin import plugin as plugin_module
    from ambac_hubspot_plugin.contrib.django import plugin_manager
    from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices
    from ambac_hubspot_plugin.contrib.django.tenant_settings import settings_for

    tenant = Tenant.objects.create(name="Bench", slug=f"bench-{uuid.uuid4().hex}")
    row = IntegrationConfig.objects.create(
        tenant=tenant, provider="hubspot", is_enabled=True, api_key=hubspot.access_token,
        webhook_secret=hubspot.client_secret,
        config={"portal_id": str(hubspot.portal_id), "api_base_url": hubspot.base_url,
                "local_sandbox": True, "run_background_worker": False, "public_base_url": base,
                "store_url": store_url})
    reports = plugin_manager().hook.ambac_plugin_enabled(
        host=DjangoHostServices(tenant.pk), tenant_id=str(tenant.pk), plugin_id=plugin_module.PLUGIN_ID,
        settings=settings_for(row))
    (report,) = [r for r in reports if r is not None]
    if not report.ok:
        raise SystemExit(f"the plugin did not start: {report}")
    return str(tenant.pk)


def _wait(done: Callable[[], bool], what: str) -> float:
    """Seconds until ``done()``, polled every 2 ms."""
    started = time.perf_counter()
    while not done():
        if time.perf_counter() - started > TIMEOUT:
            raise SystemExit(f"{what}: not done after {TIMEOUT:.0f} s")
        time.sleep(0.002)
    return time.perf_counter() - started


def _closed_won_to_order(hubspot: Any, tenant: str, deals: list[str]) -> tuple[list[float], dict[str, Any]]:
    """Figure 1 for ``deals`` (in contractsent): latencies, and the orders made, by deal."""
    from Tracker.models import Orders

    latencies, orders = [], {}
    for deal in deals:
        external = f"hubspot:{hubspot.portal_id}:deal:{deal}"
        rows = Orders.unscoped.filter(tenant_id=tenant, external_id=external)
        started = time.perf_counter()
        hubspot.update_object("deals", deal, {"dealstage": "closedwon"})
        _wait(rows.exists, f"deal {deal} -> order (webhook deliveries: {hubspot.webhooks.deliveries[-3:]})")
        latencies.append(time.perf_counter() - started)
        orders[deal] = rows.get()
    return latencies, orders


def _status_to_deal(hubspot: Any, tenant: str, orders: dict[str, Any], status: str) -> list[float]:
    """Figure 2: each order saved with ``status``; latencies until its deal shows it."""
    from django.db import transaction
    from Tracker.utils.tenant_context import tenant_context

    latencies = []
    for deal, order in orders.items():
        started = time.perf_counter()
        with tenant_context(tenant), transaction.atomic():
            order.order_status = status
            order.save(update_fields=["order_status"])
        _wait(lambda deal=deal: (hubspot.get_object("deals", deal) or {}).get("ambac_order_status") == status,
              f"order of deal {deal} -> {status} on the deal")
        latencies.append(time.perf_counter() - started)
    return latencies


def _save_overhead(order: Any, pairs: int) -> tuple[list[float], list[float], list[float]]:
    """Figure 3: ``pairs`` saves with and without the receivers, alternating which goes first.

    :return: the saves with receivers, those without, and the per-pair differences (seconds).
    """
    from django.db import transaction

    from ambac_hubspot_plugin.contrib.django import events
    from ambac_hubspot_plugin.contrib.django.models import HostEventOutbox

    def save(status: str) -> float:
        started = time.perf_counter()
        with transaction.atomic():
            order.order_status = status
            order.save(update_fields=["order_status"])
        return time.perf_counter() - started

    on, off, overhead = [], [], []
    try:
        for n in range(pairs):
            timed = {}
            for connected in ((True, False) if n % 2 == 0 else (False, True)):
                (events.connect if connected else events.disconnect)()
                timed[connected] = save(STATUSES[(2 * n + connected) % len(STATUSES)])
            on.append(timed[True])
            off.append(timed[False])
            overhead.append(timed[True] - timed[False])
    finally:
        events.connect()
        HostEventOutbox.objects.all().delete()  # the events of the saves are not the point here
    return on, off, overhead


def _inside_receivers(order: Any, saves: int) -> list[float]:
    """Figure 3, second method: the wall time spent inside the receivers and the on-commit
    trigger during each of ``saves`` status saves (seconds)."""
    from django.db import transaction

    from ambac_hubspot_plugin.contrib.django import events
    from ambac_hubspot_plugin.contrib.django.models import HostEventOutbox

    spent = [0.0]

    def timer(receiver: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return receiver(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started
        return timed

    trigger = events.drain_trigger()
    inside = []
    try:
        events.disconnect()
        events.connect(wrap=timer)
        if trigger is not None:
            events.set_drain_trigger(timer(trigger))
        for n in range(saves):
            spent[0] = 0.0
            with transaction.atomic():
                order.order_status = STATUSES[n % len(STATUSES)]
                order.save(update_fields=["order_status"])
            inside.append(spent[0])
    finally:
        events.disconnect()
        events.connect()
        events.set_drain_trigger(trigger)
        HostEventOutbox.objects.all().delete()
    return inside


def _figure(name: str, runs: list[dict[str, float]], keys: tuple[str, ...], fmt: str) -> str:
    """One summary line: the median and range over runs of each of ``keys``, in ms."""
    parts = []
    for key in keys:
        values = [run[key] * 1000 for run in runs]
        parts.append(f"{key} {statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]")
    loads = ", ".join(f"{run['load']:.2f}" for run in runs)
    return f"{name}: {', '.join(parts)} ms over {len(runs)} runs (load 1-min at each run: {loads})"


def _run_line(label: str, values: list[float], unit: str, scale: float, fmt: str) -> dict[str, float]:
    figures = {"p50": statistics.median(values), "p99": _pct(values, 0.99), "max": max(values)}
    print(f"  {label}: n {len(values)}, p50 {figures['p50'] * scale:{fmt}}, p99 {figures['p99'] * scale:{fmt}}, "
          f"max {figures['max'] * scale:{fmt}} {unit}  ({_load()})", flush=True)
    return {**figures, "load": os.getloadavg()[0]}


def _child(args: argparse.Namespace) -> None:
    from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dj-")))
        database = stack.enter_context(_host_database(args.child, tmp))
        store_url = stack.enter_context(_plugin_store(args.store_url, tmp))
        queue = f"ambac-bench-{uuid.uuid4().hex[:12]}"
        redis = f"redis://127.0.0.1:6379/{args.redis_db}"
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE, "AMBAC_BENCH_DATABASE": json.dumps(database),
            "AMBAC_BENCH_REDIS": redis, "AMBAC_BENCH_QUEUE": queue,
            "AMBAC_PLUGIN_DATA_DIR": str(tmp / "plugin-data"), ALLOW_LOCAL_SANDBOX_ENV: "1"})
        import django

        django.setup()
        from django.core.cache import cache
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.management import call_command

        import tests.django_host.celery_app  # noqa: F401  # as a host's project package imports its Celery app
        from ambac_hubspot_plugin._wsgi_server import served_on_loopback
        from ambac_hubspot_plugin.contrib.django.tasks import NUDGE_KEY
        from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

        call_command("migrate", verbosity=0)
        stack.callback(_drop_queue, queue)
        cache.delete(NUDGE_KEY)
        hubspot = stack.enter_context(Sandbox(rate_limits=RateLimits.unlimited()))
        base = stack.enter_context(served_on_loopback(WSGIHandler(), name="bench-django"))
        tenant = _enable(hubspot, base, store_url)
        hubspot.webhooks.set_target(f"{base}/integrations/hubspot/webhooks/{tenant}")
        hubspot.webhooks.subscribe("deal.propertyChange", "dealstage")
        figures: dict[str, list[dict[str, float]]] = {"order": [], "push": [], "overhead": [], "inside": []}
        orders: dict[str, Any] = {}
        if not args.skip_pipeline:
            deals = [hubspot.add_object("deals", {"dealname": f"Bench deal {n}", "pipeline": "default",
                                                  "dealstage": "contractsent"})
                     for n in range(args.warmup + args.runs * args.deals)]
            with _celery_worker(tmp):
                # Warm-up, not counted: the worker's first drain starts the tenant and its sync.
                _closed_won_to_order(hubspot, tenant, deals[:args.warmup])
                print(f"figure 1, closed won -> order row ({args.deals} deals a run):", flush=True)
                for run in range(args.runs):
                    chunk = deals[args.warmup + run * args.deals:args.warmup + (run + 1) * args.deals]
                    latencies, made = _closed_won_to_order(hubspot, tenant, chunk)
                    orders.update(made)
                    figures["order"].append(_run_line(f"run {run + 1}", latencies, "ms", 1000, ".0f"))
                print(f"figure 2, order status saved -> deal property ({args.deals} orders a run):", flush=True)
                mine = dict(list(orders.items())[:args.deals])
                for run in range(args.runs):
                    latencies = _status_to_deal(hubspot, tenant, mine, STATUSES[run % len(STATUSES)])
                    figures["push"].append(_run_line(f"run {run + 1}", latencies, "ms", 1000, ".0f"))
        from Tracker.models import Orders

        order = next(iter(orders.values()), None) or Orders.unscoped.create(tenant_id=tenant, name="Bench")
        print(f"figure 3, receivers' overhead per Order.save(update_fields=['order_status']) in a "
              f"transaction ({args.pairs} alternating pairs a run, no worker running):", flush=True)
        _save_overhead(order, min(200, args.pairs))  # warm-up: caches, prepared statements
        for run in range(args.runs):
            on, off, overhead = _save_overhead(order, args.pairs)
            print(f"  run {run + 1}: with receivers p50 {statistics.median(on) * 1000:.3f} "
                  f"p99 {_pct(on, 0.99) * 1000:.3f} ms; without p50 {statistics.median(off) * 1000:.3f} "
                  f"p99 {_pct(off, 0.99) * 1000:.3f} ms", flush=True)
            figures["overhead"].append(_run_line("      overhead (pair difference)", overhead, "ms", 1000, ".3f"))
            inside = _inside_receivers(order, args.pairs)
            figures["inside"].append(_run_line("      time inside the receivers", inside, "ms", 1000, ".3f"))
    lines = []
    if figures["order"]:
        lines.append(_figure("closed won -> order (target p50 < 1000, p99 < 3000)", figures["order"],
                             ("p50", "p99", "max"), ".0f"))
        lines.append(_figure("status saved -> deal (target p50 < 2000)", figures["push"],
                             ("p50", "p99", "max"), ".0f"))
    lines.append(_figure("receivers' save overhead (target p99 < 2)", figures["overhead"],
                         ("p50", "p99"), ".3f"))
    lines.append(_figure("time inside the receivers per save (target p99 < 2)", figures["inside"],
                         ("p50", "p99"), ".3f"))
    print(RESULT + json.dumps({"db": args.child, "store": _shown(args.store_url), "lines": lines}))


def _drop_queue(queue: str) -> None:
    """Delete the run's Celery queue (a nudge may have left a drain message in it)."""
    from tests.django_host.celery_app import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", action="append", choices=["sqlite", "postgres"],
                        help="the double's database (repeatable; default: both)")
    parser.add_argument("--store-url", help="the plugin's store: sqlite, postgres or a URL "
                                            "(default: the same kind as --db)")
    parser.add_argument("--deals", type=int, default=200, help="deals (and orders) a run, figures 1 and 2")
    parser.add_argument("--pairs", type=int, default=2000, help="save pairs a run, figure 3")
    parser.add_argument("--runs", type=int, default=3, help="runs of each figure (>= 3)")
    parser.add_argument("--warmup", type=int, default=5, help="deals moved before the first run")
    parser.add_argument("--redis-db", type=int, default=9, help="the Redis database (cache and broker)")
    parser.add_argument("--skip-pipeline", action="store_true", help="figure 3 only (no worker, no webhooks)")
    parser.add_argument("--child", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be at least 3 (the figures are a median and a range of runs)")
    if args.child:
        _child(args)
    else:
        _parent(args)


if __name__ == "__main__":
    main()
