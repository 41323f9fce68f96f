"""Benchmark: three Celery workers pushing to one HubSpot portal share its budget (issue #15).

The host is the Django double (``tests/django_host``, its database a SQLite file) with the
bridge's Celery task; three real ``celery worker`` processes (``--concurrency 1``) run
``ambac_hubspot.drain`` from Redis (``--redis-db``, 10 by default), which is also the rate
limiter's ``rate_limit_backend`` (the bridge takes the host's Redis broker for it). The sandbox
HubSpot enforces a ``--burst`` per rolling 10 s and answers HubSpot's 429 beyond it.

Each run: ``--orders`` closed-won deals are synced into orders (set-up, not measured); then the
host saves a status change on every order, ``--rate`` per second, each in its own transaction
(the bridge's outbox row); the workers push them, with a note per change (about one HubSpot
call per change, plus a batch update per 100). The driver keeps one drain waiting on the broker
(what nudges after each commit do, with the host's shared cache) and waits until every note is
written. The changes come faster than the budget lets them out, so the workers queue behind the
shared limiter for the whole run.

Printed per run and as median and range: the 429s the sandbox answered (target 0) and the
requests it served per 10 s window from the first request, full windows only, against the
budget (target >= 85%); the busiest rolling 10 s (never above the budget); load averages.

Run (the Django environment; PostgreSQL is skipped when it does not answer)::

    PYTHONPATH=$PWD .venv-django/bin/python benchmarks/bench_workers_budget.py
    ... --store-url sqlite:////tmp/x.sqlite3 --runs 3 --burst 100 --orders 450 --rate 15
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORKERS = 3
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
WINDOW = 10.0


def _configure(redis_db: int, data_dir: Path) -> str:
    """Environment of the double for this process and the workers; return the broker URL."""
    from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV

    broker = f"redis://127.0.0.1:6379/{redis_db}"
    os.environ.update({
        "AMBAC_TEST_CELERY_BROKER": broker, "AMBAC_TEST_DJANGO_DB": str(data_dir / "host.sqlite3"),
        "AMBAC_PLUGIN_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "tests.django_host.settings",
        ALLOW_LOCAL_SANDBOX_ENV: "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    import tests.django_host.celery_app  # noqa: F401  # binds the bridge's task to the double's Celery app
    return broker


@contextmanager
def _stores(urls: list[str]) -> Iterator[list[tuple[str, str]]]:
    """(label, store URL) pairs: the ones given, or a SQLite file and a fresh PostgreSQL schema."""
    if urls:
        yield [(url.split(":", 1)[0], url) for url in urls]
        return
    with tempfile.TemporaryDirectory() as tmp:
        chosen = [("sqlite", f"sqlite:///{tmp}/store.sqlite3")]
        schema = None
        try:
            import psycopg

            schema = f"bench_workers_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2) as admin:
                admin.execute(f'CREATE SCHEMA "{schema}"')
            chosen.append(("postgresql", f"postgresql+psycopg://postgres@127.0.0.1:5432/test"
                                         f"?options=-csearch_path%3D{schema}"))
        except Exception as exc:  # no driver or no server: SQLite only, said so
            print(f"PostgreSQL skipped: {type(exc).__name__}: {exc}")
            schema = None
        try:
            yield chosen
        finally:
            if schema is not None:
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def _workers(log_dir: Path, label: str) -> Iterator[list[Path]]:
    """Three ``celery worker`` processes on the double's app, stopped (SIGTERM) at the end;
    yields their log files."""
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for n in range(WORKERS):
            log = log_dir / f"worker-{label}-{n}.log"
            with log.open("wb") as out:
                procs.append((subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "tests.django_host.celery_app", "worker",
                     "--concurrency", "1", "--prefetch-multiplier", "1", "-n", f"bench{n}-{label}@%h",
                     "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
                    cwd=ROOT, stdout=out, stderr=subprocess.STDOUT), log))
        deadline = time.monotonic() + 60
        while not all("ready." in log.read_text(errors="replace") for _, log in procs):
            if time.monotonic() > deadline or any(p.poll() is not None for p, _ in procs):
                raise RuntimeError("a worker did not start: see " + ", ".join(str(log) for _, log in procs))
            time.sleep(0.2)
        yield [log for _, log in procs]
    finally:
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _enable(hs: Any, store_url: str, burst: int) -> str:
    """A tenant of the double with the plugin enabled on the portal; its deals synced to orders."""
    from integrations.models import IntegrationConfig
    from Tracker.models import Tenant

    from ambac_hubspot_plugin import plugin as plugin_module
    from ambac_hubspot_plugin.contrib.django.apps import build_plugin_manager
    from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices
    from ambac_hubspot_plugin.contrib.django.tenant_settings import settings_for

    tenant = Tenant.objects.create(name="Bench", slug=f"t-{uuid.uuid4().hex}")
    row = IntegrationConfig.objects.create(
        tenant=tenant, provider="hubspot", is_enabled=True, api_key=hs.access_token,
        config={"portal_id": str(hs.portal_id), "api_base_url": hs.base_url, "local_sandbox": True,
                "run_background_worker": False, "burst_per_10s": burst, "store_url": store_url,
                "outbound": {"notes_on_status_change": True},
                # A SQLite store named on the command line may lie outside the double's data dir.
                **({"store_outside_data_dir": True} if store_url.startswith("sqlite") else {})})
    pm = build_plugin_manager()
    runtime = pm.get_plugin(plugin_module.RUNTIME_NAME).runtime
    try:
        (report,) = [r for r in pm.hook.ambac_plugin_enabled(
            host=DjangoHostServices(tenant.pk), tenant_id=str(tenant.pk), plugin_id=plugin_module.PLUGIN_ID,
            settings=settings_for(row)) if r is not None]
        assert report.ok, report
        runtime.run_sync(str(tenant.pk))
        runtime.drain()  # the new orders' first pushes
    finally:
        runtime.close()
    return str(tenant.pk)


def _change_statuses(tenant: str, rate: float, broker: Any, queue: str) -> None:
    """Save a status change on every order at ``rate`` per second, keeping a drain queued."""
    from django.db import transaction
    from Tracker.models import Orders
    from Tracker.utils.tenant_context import tenant_context

    from ambac_hubspot_plugin.contrib.django.tasks import drain

    ids = list(Orders.unscoped.filter(tenant_id=tenant).values_list("pk", flat=True))
    started = time.monotonic()
    for n, pk in enumerate(ids):
        with transaction.atomic(), tenant_context(tenant):
            order = Orders.objects.get(pk=pk)
            order.order_status = "IN_PROGRESS"
            order.save(update_fields=["order_status"])
        if broker.llen(queue) == 0:
            drain.apply_async()
        time.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))


def _notes(hs: Any) -> int:
    """Notes the sandbox holds (one per pushed status change), however they were created: the
    plugin writes them in batches (counting single ``POST .../notes`` calls found none)."""
    return len(hs.portal.objects["notes"])


def _wait_pushed(hs: Any, deals: list[str], broker: Any, queue: str, timeout: float) -> bool:
    """Wait until every deal shows the new status and has its note, keeping a drain queued;
    False on timeout."""
    from ambac_hubspot_plugin.contrib.django.tasks import drain

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _notes(hs) >= len(deals) and all(
                hs.get_object("deals", deal).get("ambac_order_status") == "IN_PROGRESS" for deal in deals):
            return True
        if broker.llen(queue) == 0:
            drain.apply_async()
        time.sleep(0.5)
    return False


def _busy_seconds(log: Path) -> float:
    """Seconds a worker spent in drains, from Celery's ``succeeded in 1.23s`` lines."""
    return sum(float(m) for m in re.findall(r"ambac_hubspot\.drain\[[^]]*\] succeeded in ([0-9.]+)s",
                                            log.read_text(errors="replace")))


def _figures(records: list[Any], burst: int) -> dict[str, float]:
    """429s, the served requests per full 10 s window and the busiest rolling 10 s."""
    arrivals = sorted(r.time - r.duration for r in records if r.status != 429)
    refused = sum(1 for r in records if r.status == 429)
    first, last = arrivals[0], arrivals[-1]
    full = int((last - first) // WINDOW)
    per_window = [sum(1 for t in arrivals if first + i * WINDOW <= t < first + (i + 1) * WINDOW)
                  for i in range(full)]
    busiest, j = 0, 0
    for i, t in enumerate(arrivals):
        while arrivals[j] <= t - WINDOW:
            j += 1
        busiest = max(busiest, i - j + 1)
    served = sum(per_window)
    return {"429": refused, "requests": len(arrivals), "seconds": last - first, "windows": full,
            "per_s": served / (full * WINDOW) if full else float("nan"),
            "share": served / (full * burst) if full else float("nan"), "busiest": busiest}


def _one_run(store_url: str, label: str, args: argparse.Namespace, broker: Any,
             log_dir: Path) -> tuple[dict[str, float], list[float]]:
    from integrations.models import IntegrationConfig

    from ambac_hubspot_plugin._ratelimit import REDIS_KEY_PREFIX
    from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

    with Sandbox(rate_limits=RateLimits.unlimited()) as hs:
        deals = [hs.add_object("deals", {"dealname": f"Bench {i}", "pipeline": "default", "dealstage": "closedwon"})
                 for i in range(args.orders)]
        tenant = _enable(hs, store_url, args.burst)
        # The measured part starts clean: HubSpot's window and the shared limiter's log empty.
        for key in broker.scan_iter(f"{REDIS_KEY_PREFIX}*"):
            broker.delete(key)
        hs.set_rate_limits(RateLimits(burst_per_10s=args.burst, search_per_second=5))
        hs.clear_requests()
        load_before = os.getloadavg()
        try:
            with _workers(log_dir, label) as logs:
                _change_statuses(tenant, args.rate, broker, "celery")
                done = _wait_pushed(hs, deals, broker, "celery", timeout=args.orders / args.burst * WINDOW * 3)
                records = hs.requests
        finally:
            # The next run's tenant connects the same portal id, which one tenant at a time may.
            IntegrationConfig.objects.filter(tenant_id=tenant, provider="hubspot").update(is_enabled=False)
        load_after = os.getloadavg()
        busy = [_busy_seconds(log) for log in logs]
        notes = _notes(hs)
    figures = _figures(records, args.burst)
    figures.update(load_before=load_before[0], load_after=load_after[0], notes=notes, done=float(done))
    return figures, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-url", action="append", default=[],
                        help="the plugin's store (repeat for several); default: SQLite and PostgreSQL")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burst", type=int, default=100, help="HubSpot's budget per rolling 10 s")
    parser.add_argument("--orders", type=int, default=450, help="status changes pushed per run")
    parser.add_argument("--rate", type=float, default=15.0, help="status changes saved per second")
    parser.add_argument("--redis-db", type=int, default=10)
    args = parser.parse_args()
    import redis

    with tempfile.TemporaryDirectory() as tmp:
        broker_url = _configure(args.redis_db, Path(tmp))
        broker = redis.Redis.from_url(broker_url)
        broker.delete("celery")
        print(f"{WORKERS} Celery workers, budget {args.burst} per {WINDOW:g} s, {args.orders} status "
              f"changes at {args.rate:g}/s per run, Redis {broker_url}")
        with _stores(args.store_url) as stores:
            for label, url in stores:
                results = []
                for run in range(args.runs):
                    f, busy = _one_run(url, f"{label}{run}", args, broker, Path(tmp))
                    results.append(f)
                    print(f"  {label} run {run + 1}: 429s {f['429']:.0f}, {f['requests']:.0f} requests in "
                          f"{f['seconds']:.1f} s, {f['per_s']:.2f}/s over {f['windows']:.0f} full windows = "
                          f"{f['share']:.1%} of the budget, busiest 10 s {f['busiest']:.0f}, notes "
                          f"{f['notes']:.0f}/{args.orders}{'' if f['done'] else ' (TIMED OUT)'}; workers busy "
                          f"{'/'.join(f'{b:.0f}' for b in busy)} s; load "
                          f"{f['load_before']:.2f} -> {f['load_after']:.2f}")
                _summary(label, results, args.burst)
        # What this run left on the broker's database: the queue, kombu's bindings, limiter logs.
        from ambac_hubspot_plugin._ratelimit import REDIS_KEY_PREFIX

        for key in [*broker.scan_iter("_kombu.*"), *broker.scan_iter(f"{REDIS_KEY_PREFIX}*")]:
            broker.delete(key)
        broker.delete("celery")


def _stop(_signum: int, _frame: object) -> None:
    raise SystemExit(1)  # a SIGTERM runs the clean-up: workers stopped, the schema dropped


def _summary(label: str, results: list[dict[str, float]], burst: int) -> None:
    def spread(key: str, fmt: str) -> str:
        values = [r[key] for r in results]
        return (f"{format(statistics.median(values), fmt)} "
                f"({format(min(values), fmt)}-{format(max(values), fmt)})")

    print(f"{label}: 429s {spread('429', '.0f')}; requests/s {spread('per_s', '.2f')} vs budget "
          f"{burst / WINDOW:g}/s = {spread('share', '.1%')}; busiest 10 s {spread('busiest', '.0f')} "
          f"of {burst}; load (1 min) {spread('load_after', '.2f')}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    with suppress(KeyboardInterrupt):
        main()
