"""``ambac-hubspot sync`` and ``demo``: exit codes and JSON output, on a real host directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox


@pytest.fixture
def setup(tmp_path: Path):
    """A sandbox with two won deals and one open, and a host dir with the plugin enabled."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as hs:
        for name, stage in (("A", "closedwon"), ("B", "closedwon"), ("C", "contractsent")):
            hs.add_object("deals", {"dealname": name, "pipeline": "default", "dealstage": stage})
        with ReferenceHost(tmp_path / "host") as host:
            tenant = host.create_tenant("Acme")
            host.enable_plugin(tenant, "hubspot", {
                "portal_id": str(hs.portal_id), "api_base_url": hs.base_url,
                "credentials": {"kind": "private_app", "access_token": hs.access_token},
                "run_background_worker": False})
        yield hs, tmp_path / "host", tenant


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_sync_json_reports_counts_and_outcomes(setup):
    """sync --json prints counts and one outcome per deal, and exits 0."""
    _hs, host_dir, tenant = setup
    result = _run("sync", "--host-dir", str(host_dir), "--tenant", str(tenant), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["created"], data["skipped"], data["dry_run"]) == (2, 1, False)
    assert sorted(o["action"] for o in data["outcomes"]) == ["created", "created", "skipped"]
    with ReferenceHost(host_dir, load_entrypoints=False) as host:
        assert len(host.services(tenant).list_orders()) == 2


def test_sync_dry_run_writes_nothing(setup):
    """--dry-run reports what would happen and creates no order."""
    _hs, host_dir, tenant = setup
    result = _run("sync", "--host-dir", str(host_dir), "--tenant", str(tenant), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would be 2 created" in result.output
    with ReferenceHost(host_dir, load_entrypoints=False) as host:
        assert host.services(tenant).list_orders() == []


def test_sync_backfill_exits_1_when_a_deal_fails(setup):
    """A deal the host cannot take makes the exit code 1, and the others still land."""
    hs, host_dir, tenant = setup
    hs.add_object("deals", {"dealname": "x" * 300, "pipeline": "default", "dealstage": "closedwon"})
    result = _run("sync", "--host-dir", str(host_dir), "--tenant", str(tenant), "--backfill", "--json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert (data["created"], data["failed"]) == (2, 1)


def test_sync_usage_errors_exit_2(setup, tmp_path):
    """A missing host, an unknown tenant or --since without --backfill exit with 2."""
    _hs, host_dir, tenant = setup
    assert _run("sync", "--host-dir", str(tmp_path / "nope"), "--tenant", "1").exit_code == 2
    assert _run("sync", "--host-dir", str(host_dir), "--tenant", "999").exit_code == 2
    assert _run("sync", "--host-dir", str(host_dir), "--tenant", str(tenant), "--since", "2026-01-01").exit_code == 2


def test_demo_json_shows_the_moved_deal_becoming_an_order():
    """The demo creates orders, moves one deal to closed won, and that deal becomes an order."""
    result = _run("demo", "--deals", "30", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["order_from_moved_deal"] is not None
    assert [r["kind"] for r in data["sync_history"]] == ["incremental", "incremental"]
    assert data["sync_history"][1]["created"] >= 1
    assert all(step["ok"] for step in data["enable_report"])
    assert data["orders"] and data["companies"] and data["contacts"]
