"""``host init``, ``host serve`` and ``worker``: the real CLI on a temp dir and the sandbox.

``serve`` and the long-running ``worker`` run as subprocesses on loopback and are stopped with
SIGTERM, as an operator's service manager would stop them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

REPO_ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> Any:
    """Run the CLI in this process; return click's result."""
    return CliRunner().invoke(main, list(args))


def spawn(*args: str) -> subprocess.Popen[str]:
    """Run the CLI in a child process, as a person would from a shell."""
    return subprocess.Popen(
        [sys.executable, "-c", "from ambac_hubspot_plugin.cli import main; main()", *args],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def stop(child: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM the child and return what it printed; it must exit 0 within 30 s."""
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    return out, err


@pytest.fixture
def hubspot() -> Iterator[Sandbox]:
    """A HubSpot sandbox on loopback."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as sandbox:
        yield sandbox


@pytest.fixture
def host_dir(tmp_path: Path, hubspot: Sandbox) -> tuple[Path, int]:
    """A host made with ``host init`` and set up with ``setup``, both through the CLI."""
    path = tmp_path / "host"
    made = cli("host", "init", "--host-dir", str(path), "--tenant-name", "Acme", "--json")
    assert made.exit_code == 0, made.output
    tenant = json.loads(made.stdout)["tenant_id"]
    setup = cli("setup", "--host-dir", str(path), "--tenant", str(tenant),
                "--portal-id", str(hubspot.portal_id), "--token", hubspot.access_token,
                "--webhook-secret", hubspot.client_secret, "--api-base-url", hubspot.base_url,
                "--local-sandbox", "--json")
    assert setup.exit_code == 0, setup.output
    return path, tenant


def serve(path: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start ``host serve --port 0 --json`` and return the child and its announcement."""
    child = spawn("host", "serve", "--host-dir", str(path), "--port", "0", "--json", *extra)
    line = child.stdout.readline() if child.stdout else ""
    if not line:
        child.kill()
        raise AssertionError(f"serve printed nothing: {child.communicate(timeout=10)}")
    return child, json.loads(line)


def close_a_deal_by_webhook(hubspot: Sandbox, webhook_url: str) -> str:
    """Have the sandbox send its signed webhook for a deal moved to closed won; return its id."""
    deal_id = hubspot.add_object("deals", {"dealname": "Gearbox", "pipeline": "default",
                                           "dealstage": "appointmentscheduled", "amount": "1200"})
    hubspot.webhooks.set_target(webhook_url)
    hubspot.webhooks.subscribe("deal.propertyChange", "dealstage")
    hubspot.update_object("deals", deal_id, {"dealstage": "closedwon"})
    return deal_id


def wait_for_order(path: Path, tenant: int, external_id: str, timeout: float) -> str | None:
    """Poll the host's database for the order the deal should become."""
    with ReferenceHost(path, load_entrypoints=False) as host:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            order = host.services(tenant).find_order_by_external_id(external_id)
            if order is not None:
                return order.order_number
            time.sleep(0.1)
    return None


# ---- host init ----------------------------------------------------------------------------------


def test_init_prints_the_path_and_tenant_and_is_idempotent(tmp_path: Path):
    """host init creates the host and tenant and prints both; run again it reuses them."""
    path = tmp_path / "new" / "host"
    first = cli("host", "init", "--host-dir", str(path), "--tenant-name", "Acme")
    assert first.exit_code == 0, first.output
    with ReferenceHost(path, load_entrypoints=False) as host:
        (acme,) = host.tenant_ids()
    assert str(path.resolve()) in first.output and f"Tenant: {acme} 'Acme' (created)" in first.output
    again = json.loads(cli("host", "init", "--host-dir", str(path), "--tenant-name", "Acme",
                           "--json").stdout)
    assert again == {"host_dir": str(path.resolve()), "database": str(path.resolve() / "host.sqlite3"),
                     "created_host": False, "tenant_id": acme, "tenant_name": "Acme",
                     "created_tenant": False}
    other = json.loads(cli("host", "init", "--host-dir", str(path), "--tenant-name", "Beta",
                           "--json").stdout)
    assert other["created_tenant"] and other["tenant_id"] != acme
    with ReferenceHost(path, load_entrypoints=False) as host:
        assert host.tenant_ids() == [acme, other["tenant_id"]]


def test_init_refuses_bad_input_with_exit_2_and_writes_nothing(tmp_path: Path):
    """A blank tenant name, a directory of other files and a file are refused with exit 2."""
    blank = cli("host", "init", "--host-dir", str(tmp_path / "a"), "--tenant-name", "  ")
    assert blank.exit_code == 2 and "tenant-name" in blank.output
    assert not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    busy = cli("host", "init", "--host-dir", str(tmp_path / "b"))
    assert busy.exit_code == 2 and "other files" in busy.output
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["notes.txt"]
    (tmp_path / "c").write_text("a file")
    assert cli("host", "init", "--host-dir", str(tmp_path / "c")).exit_code == 2


def test_token_is_for_a_user_of_the_tenant(tmp_path: Path):
    """host token prints a fresh token for the operator; an unknown user or tenant is exit 2."""
    path = tmp_path / "h"
    cli("host", "init", "--host-dir", str(path))
    with ReferenceHost(path, load_entrypoints=False) as host:
        (tenant,) = host.tenant_ids()
    first, second = (cli("host", "token", "--host-dir", str(path), "--tenant", tenant)
                     for _ in range(2))
    assert first.exit_code == second.exit_code == 0 and first.output != second.output
    with ReferenceHost(path, load_entrypoints=False) as host:
        user = host.user_for_token(first.output.strip())
        assert user is not None and user.email == "ambac-hubspot-cli@localhost"
    unknown = cli("host", "token", "--host-dir", str(path), "--tenant", tenant, "--user", "x@y.z")
    assert unknown.exit_code == 2 and "x@y.z" in unknown.output
    assert cli("host", "token", "--host-dir", str(path), "--tenant", "9").exit_code == 2


# ---- host serve ---------------------------------------------------------------------------------


def test_serve_turns_a_signed_webhook_into_an_order_and_stops_on_sigterm(
        host_dir: tuple[Path, int], hubspot: Sandbox):
    """host serve answers HubSpot's signed webhook and its worker makes the order; SIGTERM
    stops it with exit 0."""
    path, tenant = host_dir
    child, announced = serve(path)
    try:
        [started] = announced["tenants"]
        assert started["error"] is None and announced["worker"] is True
        assert started["webhook_url"] == (f"{announced['url']}/integrations/hubspot/webhooks/"
                                          f"{tenant}")
        deal_id = close_a_deal_by_webhook(hubspot, started["webhook_url"])
        order = wait_for_order(path, tenant, f"hubspot:{hubspot.portal_id}:deal:{deal_id}", 30)
        assert order is not None, "no order within 30 s of the webhook"
        status_url = f"{announced['url']}/integrations/hubspot/status"
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(status_url, timeout=10)
        assert anonymous.value.code == 401
        anonymous.value.close()
        issued = cli("host", "token", "--host-dir", str(path), "--tenant", str(tenant), "--json")
        assert issued.exit_code == 0, issued.output
        bearer = {"Authorization": f"Bearer {json.loads(issued.stdout)['token']}"}
        with urllib.request.urlopen(urllib.request.Request(status_url, headers=bearer),
                                    timeout=10) as answer:
            assert json.loads(answer.read())["enabled"] is True
    finally:
        if child.poll() is None:
            _out, err = stop(child)
            assert "Traceback" not in err


def test_serve_refuses_a_port_in_use_and_a_dir_without_a_host(tmp_path: Path,
                                                               host_dir: tuple[Path, int]):
    """A port another socket holds and a directory with no host are exit 2 with one line."""
    path, _tenant = host_dir
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = cli("host", "serve", "--host-dir", str(path), "--port", port)
    assert busy.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.output
    assert "Traceback" not in busy.output
    empty = cli("host", "serve", "--host-dir", str(tmp_path / "nothing"))
    assert empty.exit_code == 2 and "host.sqlite3" in empty.output


# ---- worker -------------------------------------------------------------------------------------


def test_worker_once_runs_what_a_server_without_worker_queued(host_dir: tuple[Path, int],
                                                              hubspot: Sandbox):
    """With serve --no-worker the webhook only queues work; worker --once runs it, makes the
    order and reports the counts."""
    path, tenant = host_dir
    child, announced = serve(path, "--no-worker")
    try:
        deal_id = close_a_deal_by_webhook(hubspot, announced["tenants"][0]["webhook_url"])
        external_id = f"hubspot:{hubspot.portal_id}:deal:{deal_id}"
        assert hubspot.webhooks.flush(15)
        assert [d.status for d in hubspot.webhooks.deliveries] == [200]
        assert wait_for_order(path, tenant, external_id, 1) is None
    finally:
        stop(child)
    result = cli("worker", "--host-dir", str(path), "--once", "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert counts["tenants"] == [tenant] and counts["ran"] >= 2  # the delivery, then the deal
    assert counts["succeeded"] == counts["ran"] and counts["dead"] == 0
    assert wait_for_order(path, tenant, external_id, 1) is not None
    text = cli("worker", "--host-dir", str(path), "--once")
    assert text.exit_code == 0 and "Ran 0 job(s)" in text.output


def test_worker_runs_until_sigterm(host_dir: tuple[Path, int]):
    """worker without --once keeps running until SIGTERM, then exits 0 saying it stopped."""
    path, _tenant = host_dir
    child = spawn("worker", "--host-dir", str(path), "--poll", "0.2")
    line = child.stdout.readline() if child.stdout else ""
    assert "Worker running" in line, child.stderr.read() if child.stderr else ""
    out, _err = stop(child)
    assert "Stopped." in out


def test_worker_without_an_enabled_tenant_is_a_usage_error(tmp_path: Path):
    """A host where no tenant has the plugin on gives exit 2 saying to run setup."""
    cli("host", "init", "--host-dir", str(tmp_path / "h"))
    result = cli("worker", "--host-dir", str(tmp_path / "h"), "--once")
    assert result.exit_code == 2 and "setup" in result.output


# ---- demo ---------------------------------------------------------------------------------------


def test_demo_with_a_data_dir_says_where_the_host_is_and_which_tenant(tmp_path: Path):
    """demo --data-dir reports the kept host directory and the tenant, in JSON and in text."""
    data = json.loads(cli("demo", "--deals", "20", "--data-dir", str(tmp_path), "--json").stdout)
    assert data["host_dir"] == str((tmp_path / "host").resolve())
    uuid.UUID(data["tenant_id"])  # the reference host keys tenants with UUIDv7s, like Ambac Tracker
    text = cli("demo", "--deals", "20", "--data-dir", str(tmp_path / "again"))
    assert text.exit_code == 0, text.output
    with ReferenceHost(tmp_path / "again" / "host", load_entrypoints=False) as host:
        (tenant,) = host.tenant_ids()
    assert f"--host-dir {(tmp_path / 'again' / 'host').resolve()} --tenant {tenant}" in text.output
