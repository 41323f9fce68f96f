"""The plugin's work on the host's Celery: the drain task, nudges after a stored webhook, the
beat entry, taking up tenants in workers, and one real worker process over Redis."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO or importlib.util.find_spec("celery") is None:
    pytest.skip(SKIP_REASON + " (and Celery, in the [django] extra)", allow_module_level=True)

import pluggy
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from integrations.models import IntegrationConfig
from Tracker.models import Orders, Tenant

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin._wsgi_server import make_wsgi_server
from ambac_hubspot_plugin.contrib.django import plugin_manager
from ambac_hubspot_plugin.contrib.django.apps import build_plugin_manager
from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices
from ambac_hubspot_plugin.contrib.django.tasks import (
    BEAT_SECONDS,
    DRAIN_TASK,
    NUDGE_KEY,
    drain,
    nudge,
    nudge_soon,
)
from ambac_hubspot_plugin.contrib.django.tenant_settings import settings_for
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from .._redis_support import redis_unavailable_reason, redis_url
from .._world import plugin_settings
from ..django_host.celery_app import app as celery_app

REDIS_URL = redis_url()


@contextlib.contextmanager
def _to_the_broker() -> Iterator[None]:
    """Tasks go to the broker inside the block, not eagerly. Both spellings of the setting:
    under the CELERY namespace, Celery 5.6 (Ambac Tracker's) reads the Django name first."""
    names = ("task_always_eager", "CELERY_TASK_ALWAYS_EAGER")
    before = {name: celery_app.conf.get(name) for name in names}
    celery_app.conf.update(dict.fromkeys(names, False))
    try:
        assert celery_app.conf.task_always_eager is False
        yield
    finally:
        celery_app.conf.update(before)


@pytest.fixture
def app_pm(settings: Any, tmp_path: Path) -> Iterator[pluggy.PluginManager]:
    """The app's plugin manager (the one the task uses), its runtime dropped after the test."""
    settings.AMBAC_PLUGIN_DATA_DIR = str(tmp_path)
    pm = plugin_manager()
    yield pm
    holder = pm.get_plugin(plugin_module.RUNTIME_NAME)
    if holder._runtime is not None:
        holder._runtime.close()
        holder._runtime = None  # the next test's tenants start in a fresh runtime


@pytest.fixture
def hubspot() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=RateLimits.unlimited()) as sandbox:
        yield sandbox


def _enable(pm: pluggy.PluginManager, raw: dict[str, Any]) -> str:
    """A tenant with the plugin enabled as an admin would: its config saved (the secrets in the
    encrypted fields), the hook called with the settings the bridge builds from it."""
    tenant = Tenant.objects.create(name="Acme", slug=f"t-{uuid.uuid4().hex}")
    row = IntegrationConfig.objects.create(
        tenant=tenant, provider="hubspot", is_enabled=True, api_key=raw["credentials"]["access_token"],
        webhook_secret=raw.get("webhook_client_secret") or "",
        config={k: v for k, v in raw.items() if k not in ("credentials", "webhook_client_secret")})
    settings = settings_for(row)
    (report,) = [r for r in pm.hook.ambac_plugin_enabled(
        host=DjangoHostServices(tenant.pk), tenant_id=str(tenant.pk), plugin_id=plugin_module.PLUGIN_ID,
        settings=settings) if r is not None]
    assert report.ok, report
    return str(tenant.pk)


def _enable_elsewhere(hubspot: Sandbox) -> str:
    """A tenant enabled by an admin in another (web) process, whose runtime is then gone."""
    admin = build_plugin_manager()
    try:
        return _enable(admin, plugin_settings(hubspot))
    finally:
        admin.get_plugin(plugin_module.RUNTIME_NAME).runtime.close()


def _deal(hubspot: Sandbox, stage: str = "closedwon", name: str = "Celery deal") -> str:
    return hubspot.add_object("deals", {"dealname": name, "pipeline": "default", "dealstage": stage})


def _orders_in_context(tenant: str) -> list[str]:
    return list(Orders.unscoped.filter(tenant_id=tenant).values_list("name", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_stored_webhook_nudges_the_drain_that_creates_the_order(
    app_pm: pluggy.PluginManager, hubspot: Sandbox, settings: Any
) -> None:
    """Closed won in HubSpot -> signed webhook -> the bridge's Django view stores it -> nudge ->
    drain task (eager) -> one order, with no sync and no beat."""
    settings.ALLOWED_HOSTS = ["127.0.0.1", "testserver"]  # served on loopback
    server = make_wsgi_server(WSGIHandler())  # the double's URLconf: the bridge's views
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        tenant = _enable(app_pm, plugin_settings(hubspot, webhook_client_secret=hubspot.client_secret,
                                                 public_base_url=base))
        hubspot.webhooks.set_target(f"{base}/integrations/hubspot/webhooks/{tenant}")
        hubspot.webhooks.subscribe("deal.creation")
        hubspot.webhooks.subscribe("deal.propertyChange", "dealstage")
        deal = _deal(hubspot, stage="contractsent", name="Webhook deal")
        assert hubspot.webhooks.flush(10)
        assert _orders_in_context(tenant) == []
        hubspot.update_object("deals", deal, {"dealstage": "closedwon"})
        assert hubspot.webhooks.flush(10)
        assert _orders_in_context(tenant) == ["Webhook deal"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.django_db
def test_a_burst_of_nudges_enqueues_one_drain_until_it_starts() -> None:
    """Five nudges before the drain starts make one message on the broker; once a drain has
    started, the next nudge makes another."""
    with _to_the_broker(), celery_app.connection_for_write() as conn:
        try:
            queue = conn.SimpleQueue(celery_app.conf.task_default_queue)
            queue.clear()
            assert [nudge() for _ in range(5)] == [True, False, False, False, False]
            assert queue.qsize() == 1
            drain()  # what the worker runs: it clears the mark first
            assert nudge() is True
            assert queue.qsize() == 2
            queue.clear()
            queue.close()
        finally:
            from django.core.cache import cache

            cache.delete(NUDGE_KEY)


def test_a_nudge_asked_for_soon_is_sent_by_a_thread_of_its_own() -> None:
    """With a real broker, the commits' ``nudge_soon`` hands the nudge to the nudging thread,
    which enqueues one drain for a burst of requests."""
    from django.core.cache import cache

    with _to_the_broker(), celery_app.connection_for_write() as conn:
        try:
            queue = conn.SimpleQueue(celery_app.conf.task_default_queue)
            queue.clear()
            for _ in range(5):
                nudge_soon()
            deadline = time.monotonic() + 10
            while queue.qsize() == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)  # a second message, if any, would be sent by now
            assert queue.qsize() == 1
            assert any(thread.name == "ambac-hubspot-nudge" for thread in threading.enumerate())
            queue.clear()
            queue.close()
        finally:
            cache.delete(NUDGE_KEY)


@pytest.mark.django_db
def test_the_migration_schedules_the_drain_on_celery_beat() -> None:
    """The safety net: django-celery-beat runs the drain every few seconds."""
    from django_celery_beat.models import PeriodicTask

    (entry,) = PeriodicTask.objects.filter(task=DRAIN_TASK)
    assert entry.enabled and entry.interval is not None
    assert (entry.interval.every, entry.interval.period) == (BEAT_SECONDS, "seconds")


def test_the_hosts_redis_broker_is_the_rate_limit_backend_unless_the_tenant_names_one(settings: Any) -> None:
    def row(config: dict[str, Any]) -> IntegrationConfig:
        return IntegrationConfig(provider="hubspot", config=config, api_key="pat-na1-x")

    settings.CELERY_BROKER_URL = "redis://broker:6379/0"
    assert settings_for(row({"portal_id": "1"}))["rate_limit_backend"] == "redis://broker:6379/0"
    own = {"portal_id": "1", "rate_limit_backend": "redis://other:6379/3"}
    assert settings_for(row(own))["rate_limit_backend"] == "redis://other:6379/3"
    settings.CELERY_BROKER_URL = "amqp://guest@rabbit//"  # not a Redis: each process counts alone
    assert "rate_limit_backend" not in settings_for(row({"portal_id": "1"}))


@pytest.mark.django_db(transaction=True)
def test_the_drain_takes_up_tenants_enabled_elsewhere_and_runs_their_work(
    app_pm: pluggy.PluginManager, hubspot: Sandbox, settings: Any
) -> None:
    """A worker process that never saw the tenant enabled: the drain takes it up and runs its
    first sync, which makes the closed-won deal an order."""
    tenant = _enable_elsewhere(hubspot)
    _deal(hubspot, name="Synced deal")
    assert _orders_in_context(tenant) == []
    assert drain.delay().get(timeout=30) >= 1
    assert _orders_in_context(tenant) == ["Synced deal"]


@pytest.mark.django_db(transaction=True)
def test_one_tenant_with_invalid_saved_settings_does_not_stop_the_drain_for_the_others(
    app_pm: pluggy.PluginManager, hubspot: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A tenant enabled with settings the bridge cannot build (an API key and an OAuth refresh
    token both set) is logged without its secrets and left out; the drain still runs every
    other tenant's work."""
    good = _enable(app_pm, plugin_settings(hubspot))
    _deal(hubspot, name="Good tenant deal")
    bad = Tenant.objects.create(name="Broken", slug=f"t-{uuid.uuid4().hex}")
    IntegrationConfig.objects.create(tenant=bad, provider="hubspot", is_enabled=True,
                                     api_key="pat-na1-secret-key", oauth_refresh_token="rt-secret-token",
                                     config={"portal_id": "1"})

    drain.delay().get(timeout=60)  # the beat's drain (eager)

    assert _orders_in_context(good) == ["Good tenant deal"]
    assert f"tenant {bad.pk} could not start" in caplog.text
    assert "pat-na1-secret-key" not in caplog.text and "rt-secret-token" not in caplog.text


@pytest.mark.django_db
def test_a_worker_process_takes_up_enabled_tenants_as_it_starts(
    app_pm: pluggy.PluginManager, hubspot: Sandbox
) -> None:
    """Celery's ``worker_process_init`` (sent in each pool process) starts the tenants an admin
    enabled in another process, before any task runs."""
    from celery.signals import worker_process_init

    tenant = _enable_elsewhere(hubspot)
    runtime = app_pm.get_plugin(plugin_module.RUNTIME_NAME).runtime
    assert not runtime.is_enabled(tenant)
    worker_process_init.send(sender=None)
    assert runtime.is_enabled(tenant)


@pytest.mark.skipif(redis_unavailable_reason() is not None, reason=str(redis_unavailable_reason()))
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_over_redis_runs_the_drain(
    app_pm: pluggy.PluginManager, hubspot: Sandbox, tmp_path: Path
) -> None:
    """``celery worker`` in its own process, on the local Redis, takes up the tenant enabled in
    this process and runs the drain sent to it: the deal becomes an order in the shared
    database. The worker stops cleanly on SIGTERM."""
    from celery import Celery

    tenant = _enable(app_pm, plugin_settings(hubspot))
    _deal(hubspot, name="Worker deal")
    queue = f"ambac-test-{uuid.uuid4().hex}"
    env = {**os.environ, "AMBAC_TEST_CELERY_BROKER": REDIS_URL, "AMBAC_PLUGIN_DATA_DIR": str(tmp_path),
           "AMBAC_TEST_DJANGO_DB": str(connection.settings_dict["NAME"]),
           "DJANGO_SETTINGS_MODULE": "tests.django_host.settings",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")]))}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.django_host.celery_app", "worker", "-Q", queue,
             "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel", "INFO"], env=env, stdout=out, stderr=subprocess.STDOUT)
    sender = Celery(broker=REDIS_URL, set_as_current=False)  # the tests after keep the eager app
    try:
        sender.send_task(DRAIN_TASK, queue=queue)
        deadline = time.monotonic() + 15
        while _orders_in_context(tenant) == [] and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
        assert _orders_in_context(tenant) == ["Worker deal"], log.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)  # warm shutdown: finish the task at hand, then exit
        try:
            code = worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
            code = None
        with sender.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
        sender.close()
    assert code == 0, log.read_text()


@pytest.mark.django_db(transaction=True)
def test_a_committed_status_reaches_the_deal_through_the_nudged_drain(
    app_pm: pluggy.PluginManager, hubspot: Sandbox
) -> None:
    """An order status the host saves in a transaction -> outbox row -> commit nudges the drain
    (eager) -> the hook records it and the same drain pushes it: the deal shows the status with
    no beat and no explicit drain."""
    from django.db import transaction
    from Tracker.utils.tenant_context import tenant_context

    tenant = _enable(app_pm, plugin_settings(hubspot))
    deal = _deal(hubspot, name="Pushed deal")
    assert drain.delay().get(timeout=30) >= 1  # its first sync makes the order
    (order,) = Orders.unscoped.filter(tenant_id=tenant)
    with tenant_context(tenant), transaction.atomic():
        order.order_status = "IN_PROGRESS"
        order.save(update_fields=["order_status"])
    assert hubspot.get_object("deals", deal)["ambac_order_status"] == "IN_PROGRESS"
