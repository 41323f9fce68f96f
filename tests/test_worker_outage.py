"""The background worker through a store outage: one log line when it starts, one when it ends.

The store is a real PostgreSQL reached through a loopback TCP relay that the test cuts (every
connection dropped, new ones refused) and restores on the same port, as a network outage or
a database restart would.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from ._store_support import PG_ADMIN_DSN, PG_HOST, PG_PORT, postgres_answers
from ._world import plugin_settings

pytestmark = pytest.mark.postgres

POLL = 0.05
OUTAGE = 1.0  # about 20 worker rounds


class Relay:
    """A TCP relay to PostgreSQL that can be cut and restored on the same port."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0
        self.restore()

    def restore(self) -> None:
        """Listen (again) and relay every new connection to PostgreSQL."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((PG_HOST, self.port))
        listener.listen()
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        if self._listener is not None:
            _close(self._listener)  # shutdown wakes the accept() blocked in the relay thread
            self._listener = None
        for sock in sockets:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection((PG_HOST, PG_PORT))
            with self._lock:
                self._sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    _close(src)
    _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def relayed_store_url() -> Iterator[tuple[Relay, str]]:
    """A PostgreSQL schema of its own, reached through a relay the test can cut."""
    if not postgres_answers():
        pytest.skip(f"PostgreSQL does not answer at {PG_HOST}:{PG_PORT}")
    import psycopg

    schema = f"t_outage_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    relay = Relay()
    try:
        yield relay, (f"postgresql+psycopg://postgres@{PG_HOST}:{relay.port}/test"
                      f"?options=-csearch_path%3D{schema}&connect_timeout=2")
    finally:
        relay.cut()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


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
