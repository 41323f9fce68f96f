"""The background worker through a store outage: one log line when it starts, one when it ends.

The store is a real PostgreSQL reached through a loopback TCP relay that the test cuts (every
connection dropped, new ones refused) and restores on the same port, as a network outage or
a database restart would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from ._proxy import TcpProxy
from ._store_support import PG_HOST, PG_PORT, pg_schema_url
from ._world import plugin_settings

pytestmark = pytest.mark.postgres

POLL = 0.05
OUTAGE = 1.0  # about 20 worker rounds


@pytest.fixture
def relayed_store_url() -> Iterator[tuple[TcpProxy, str]]:
    """A PostgreSQL schema of its own, reached through a relay the test can cut."""
    relay = TcpProxy((PG_HOST, PG_PORT))
    try:
        with pg_schema_url("t_outage", port=relay.port, query="&connect_timeout=2") as url:
            yield relay, url
    finally:
        relay.cut()


def _worker_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ambac_hubspot_plugin._runtime"
            and r.levelno >= logging.INFO]


def test_a_store_outage_logs_one_line_when_it_starts_and_one_when_it_ends(relayed_store_url, tmp_path, caplog):
    """Twenty failed worker rounds log one ERROR line (no traceback), the recovery one INFO line."""
    relay, url = relayed_store_url
    caplog.set_level(logging.INFO, logger="ambac_hubspot_plugin")
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot, ReferenceHost(tmp_path / "host") as host:
        tenant = host.create_tenant("Acme")
        (report,) = [r for r in host.enable_plugin(tenant, "hubspot", plugin_settings(hubspot, store_url=url))
                     if r is not None]
        assert report.ok, report
        runtime = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime
        try:
            runtime.start_worker(poll_seconds=POLL)
            time.sleep(0.5)
            assert _worker_records(caplog) == [], "the worker runs cleanly before the outage"
            relay.cut()
            time.sleep(OUTAGE)
            relay.restore()
            deadline = time.monotonic() + 10
            while len(_worker_records(caplog)) < 2 and time.monotonic() < deadline:
                time.sleep(POLL)
            time.sleep(0.3)  # more good rounds: they must stay quiet
        finally:
            runtime.close()
    records = _worker_records(caplog)
    assert [r.levelno for r in records] == [logging.ERROR, logging.INFO], [r.getMessage() for r in records]
    down, up = records
    assert "failed" in down.getMessage() and "\n" not in down.getMessage() and down.exc_info is None
    assert "works again" in up.getMessage()


def test_a_queue_runner_thread_logs_an_outage_once_and_its_end_once(relayed_store_url, caplog):
    """QueueRunner.start()'s loop through an outage: one ERROR line, then one INFO line on recovery."""
    from datetime import timedelta

    from ambac_hubspot_plugin.store import QueueRunner, open_store

    relay, url = relayed_store_url
    caplog.set_level(logging.INFO, logger="ambac_hubspot_plugin")
    store = open_store(url)
    runner = QueueRunner(store, {}, poll_interval=timedelta(seconds=POLL))

    def records() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "ambac_hubspot_plugin.store._runner"]

    try:
        runner.start()
        time.sleep(0.3)
        relay.cut()
        time.sleep(OUTAGE)
        relay.restore()
        deadline = time.monotonic() + 10
        while len(records()) < 2 and time.monotonic() < deadline:
            time.sleep(POLL)
        time.sleep(0.3)
    finally:
        runner.stop()
        store.close()
    assert [r.levelno for r in records()] == [logging.ERROR, logging.INFO], [r.getMessage() for r in records()]
    assert records()[0].exc_info is None
