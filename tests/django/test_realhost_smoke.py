"""Opt-in smoke test of the Django bridge inside a real Ambac Tracker checkout.

Set ``AMBAC_TRACKER_CHECKOUT`` to the host's ``PartsTracker`` directory (installed, wired and
migrated as ``docs/ambac-tracker.md`` says, its environment variables exported) and, unless it
is ``../venv/bin/python`` beside it, ``AMBAC_TRACKER_PYTHON`` to its interpreter. Without the
variable the test is skipped: CI has no host (its code is not ours to ship).

The sandbox HubSpot runs here on loopback; the host runs in its own processes: ``manage.py``
commands, and ``_realhost_driver.py`` inside ``manage.py shell``, which serves the host's own WSGI
application on loopback for the sandbox's signed webhooks and drains the plugin's work with the
Celery task called synchronously. Each run uses a new tenant (``setup_tenant``) and switches
its integration off at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

CHECKOUT = os.environ.get("AMBAC_TRACKER_CHECKOUT", "")
DRIVER = Path(__file__).with_name("_realhost_driver.py")
MIGRATIONS = Path(__file__).parents[2] / "ambac_hubspot_plugin" / "contrib" / "django" / "migrations"
MARK = "@@realhost "  # the driver's answer lines (the driver is not importable here)
TIMEOUT = 300  # seconds for one host command (a cold manage.py start takes a few)

pytestmark = pytest.mark.skipif(
    not CHECKOUT, reason="opt-in: set AMBAC_TRACKER_CHECKOUT to a real Ambac Tracker's PartsTracker "
                         "directory (docs/ambac-tracker.md, 'Smoke test') to run it")


def _python() -> str:
    return os.environ.get("AMBAC_TRACKER_PYTHON") or str(Path(CHECKOUT).resolve().parent / "venv" / "bin" / "python")


def _say(text: str) -> None:
    sys.stderr.write(f"[realhost] {text}\n")


class Host:
    """The host's ``manage.py`` and a running driver, with the sandbox's credentials in their
    environment."""

    def __init__(self, hubspot: Sandbox) -> None:
        # The host's own settings module and path, not this test run's (the double's).
        inherited = {name: value for name, value in os.environ.items()
                     if name not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
        self.env = {**inherited, "AMBAC_HUBSPOT_ALLOW_LOCAL_SANDBOX": "1",
                    "AMBAC_HUBSPOT_TOKEN": hubspot.access_token,
                    "AMBAC_HUBSPOT_WEBHOOK_SECRET": hubspot.client_secret,
                    "PYTHONUNBUFFERED": "1"}
        self._driver: subprocess.Popen[str] | None = None

    def manage(self, *args: str, expect: int = 0) -> str:
        """Run ``manage.py args``; fail unless it exits with ``expect``; return its stdout."""
        done = subprocess.run([_python(), "manage.py", *args], cwd=CHECKOUT, env=self.env, text=True,
                              capture_output=True, timeout=TIMEOUT, check=False)
        _say(f"manage.py {' '.join(args)} -> exit {done.returncode}")
        assert done.returncode == expect, (f"manage.py {' '.join(args)} exited {done.returncode}:\n"
                                           f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        return done.stdout

    def start_driver(self) -> None:
        code = f"import runpy; runpy.run_path({str(DRIVER)!r}, run_name='__main__')"
        self._driver = subprocess.Popen([_python(), "manage.py", "shell", "-c", code], cwd=CHECKOUT,
                                        env=self.env, text=True, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)

    def ask(self, cmd: str, **arguments: Any) -> dict[str, Any]:
        """Send the driver one command; return its answer (fail on the driver's error)."""
        assert self._driver is not None and self._driver.stdin is not None
        self._driver.stdin.write(json.dumps({"cmd": cmd, **arguments}) + "\n")
        self._driver.stdin.flush()
        answer = json.loads(_answer_line(self._driver.stdout))
        _say(f"driver {cmd} -> {json.dumps({k: v for k, v in answer.items() if k != 'traceback'})}")
        assert "error" not in answer, answer.get("traceback", answer["error"])
        return answer

    def stop_driver(self) -> int | None:
        if self._driver is None:
            return None
        assert self._driver.stdin is not None
        self._driver.stdin.close()
        try:
            return self._driver.wait(60)
        except subprocess.TimeoutExpired:
            self._driver.kill()
            return self._driver.wait()
        finally:
            if self._driver.stdout is not None:
                self._driver.stdout.close()
            self._driver = None


def _answer_line(stream: IO[str] | None) -> str:
    assert stream is not None
    for line in stream:
        if line.startswith(MARK):
            return line[len(MARK):]
    raise AssertionError("the driver exited without answering (its traceback is on stderr above)")


@pytest.fixture
def hubspot() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=RateLimits.unlimited()) as sandbox:
        yield sandbox


@pytest.fixture
def host(hubspot: Sandbox) -> Iterator[Host]:
    host = Host(hubspot)
    try:
        yield host
    finally:
        host.stop_driver()


def test_the_bridge_works_end_to_end_in_a_real_ambac_tracker(hubspot: Sandbox, host: Host, tmp_path: Path) -> None:
    """In the real host: our migrations are applied and the checks pass; a signed webhook for a
    closed-won deal, delivered to the mounted route and drained, becomes exactly one order; a
    committed status save reaches the deal and a rolled-back one pushes nothing; the admin
    route refuses a user without the permission; the admin pages work in a signed-in session
    with the page's own CSRF token and refuse another origin; ``manage.py hubspot status``
    exits 0."""
    # 1. Installed and migrated: no unapplied migration (ours included), and Django's checks.
    shown = host.manage("showmigrations", "ambac_hubspot")
    ours = sorted(path.stem for path in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert [line.strip() for line in shown.splitlines()[1:] if line.strip()] == [f"[X] {name}" for name in ours], shown
    host.manage("migrate", "--check")
    host.manage("check")

    # 2. A new tenant the host's way, its integration set up against the sandbox.
    slug = f"smoke-{uuid.uuid4().hex[:10]}"
    host.manage("setup_tenant", "--slug", slug, "--name", f"Smoke {slug[-4:]}", "--no-admin",
                "--admin-email", f"{slug}@smoke.example")
    host.start_driver()
    tenant = host.ask("tenant", slug=slug)
    tenant_id = tenant["tenant_id"]
    both = ["manage_integrations", "view_integrations"]
    assert tenant["admin_group_integration_permissions"] == both, tenant  # the host's seeding reset them
    host.manage("migrate")  # the host resets its preset groups at the end of every migrate
    assert host.ask("tenant", slug=slug)["admin_group_integration_permissions"] == both
    settings_file = tmp_path / "hubspot.json"
    settings_file.write_text(json.dumps({"run_background_worker": False}))
    enabled = json.loads(host.manage(
        "hubspot", "setup", "--tenant", tenant_id, "--portal-id", str(hubspot.portal_id),
        "--api-base-url", hubspot.base_url, "--local-sandbox", "--settings-file", str(settings_file), "--json"))
    assert enabled["ok"], enabled
    try:
        base = _webhook_status_and_routes(hubspot, host, tenant_id)
        _admin_pages(host, tenant_id, base)
        status = json.loads(host.manage("hubspot", "status", "--tenant", tenant_id, "--json"))
        assert status["enabled"] is True, status
        _say(f"status: records {json.dumps(status.get('records'))}, webhooks {json.dumps(status.get('webhooks'))}")
    finally:
        host.ask("disable", tenant_id=tenant_id)
    assert host.stop_driver() == 0


def _webhook_status_and_routes(hubspot: Sandbox, host: Host, tenant_id: str) -> str:
    """Steps 3 to 6; answers the base URL the host's WSGI application is served at."""
    # 3. A deal moved to closed won in HubSpot: its signed webhook reaches the host's route.
    deal = hubspot.add_object("deals", {"dealname": "Smoke deal", "pipeline": "default",
                                        "dealstage": "appointmentscheduled"})
    base = host.ask("serve")["url"]
    hubspot.webhooks.set_target(f"{base}/integrations/hubspot/webhooks/{tenant_id}")
    hubspot.webhooks.subscribe("deal.propertyChange", "dealstage")
    hubspot.update_object("deals", deal, {"dealstage": "closedwon"})
    assert hubspot.webhooks.flush(90), "the sandbox could not deliver its webhook"  # slow under load
    statuses = [attempt.status for attempt in hubspot.webhooks.deliveries]
    _say(f"webhook deliveries to the host answered {statuses}")
    assert statuses and all(status == 200 for status in statuses), statuses

    # 4. Drained (the Celery task, synchronously): exactly one order, also after another drain.
    external_id = f"hubspot:{hubspot.portal_id}:deal:{deal}"
    for _ in range(3):
        host.ask("drain")
        orders = host.ask("orders", tenant_id=tenant_id, external_id=external_id)["orders"]
        if orders:
            break
    host.ask("drain")
    orders = host.ask("orders", tenant_id=tenant_id, external_id=external_id)["orders"]
    assert len(orders) == 1, orders
    order_id = orders[0][0]
    assert hubspot.get_object("deals", deal).get("ambac_order_status") == orders[0][1]

    # 5. A committed status save reaches the deal; a rolled-back one leaves nothing to push.
    saved = host.ask("save_status", tenant_id=tenant_id, order_id=order_id, status="IN_PROGRESS", rollback=False)
    assert saved == {"order_status": "IN_PROGRESS", "outbox_rows": 1}, saved
    assert host.ask("drain")["outbox_rows_left"] == 0
    assert hubspot.get_object("deals", deal).get("ambac_order_status") == "IN_PROGRESS"
    saved = host.ask("save_status", tenant_id=tenant_id, order_id=order_id, status="CANCELLED", rollback=True)
    assert saved == {"order_status": "IN_PROGRESS", "outbox_rows": 0}, saved
    host.ask("drain")
    assert hubspot.get_object("deals", deal).get("ambac_order_status") == "IN_PROGRESS"

    # 5b. A shipment recorded by the host's code in its transaction reaches the deal.
    assert host.ask("ship", tenant_id=tenant_id, order_id=order_id, carrier="UPS",
                    tracking_number="1ZSMOKE") == {"outbox_rows": 1}
    assert host.ask("drain")["outbox_rows_left"] == 0
    shipped = hubspot.get_object("deals", deal)
    assert (shipped.get("ambac_carrier"), shipped.get("ambac_tracking_number")) == ("UPS", "1ZSMOKE"), shipped

    # 6. The admin route behind the host's authentication and tenant permissions.
    codes = host.ask("routes", tenant_id=tenant_id, path="/integrations/hubspot/status")["status_codes"]
    assert codes == {"anonymous": 401, "without_permission": 403, "with_permission": 200,
                     "with_permission_by_token": 200, "bad_token": 401}, codes
    return str(base)


def _admin_pages(host: Host, tenant_id: str, base: str) -> None:
    # 7. The admin pages over HTTP, in sessions signed in through the host's own login (its CSRF
    # middleware active): a tenant admin reads them and starts a dry run with the page's token
    # alone, then a sync; a sync from another origin is refused and changes nothing, and so is the
    # session's JSON sync without Django's token; a user without view_integrations gets a refusal page.
    html = "text/html"
    got = host.ask("pages", tenant_id=tenant_id, base=base)
    assert got["prefix"] == "/integrations/hubspot/admin", got
    assert got["login"] == [200, True] and got["stranger_login"] == [200, True], got
    for page in ("/", "/conflicts", "/history", "/deals", "/settings"):
        assert got[f"GET {page}"] == [200, html], (page, got)
    assert got["POST sync, foreign origin"] == [403, html, True], got
    assert got["runs_after_foreign"] == got["runs_before"], got  # refused: no sync ran
    history = "/integrations/hubspot/admin/history"
    assert got["POST dry_run"] == [303, history, True], got  # its result shown on the page
    assert got["runs_after_dry_run"] == got["runs_before"], got  # a dry run writes nothing
    assert got["POST sync"] == [303, history, True], got
    assert got["runs_after_sync"] == got["runs_before"] + 1, got
    assert got["POST JSON sync without Django's token"] == [403, "application/json"], got
    assert got["runs_after_json"] == got["runs_after_sync"], got
    assert got["GET / without view_integrations"] == [403, html, True], got
