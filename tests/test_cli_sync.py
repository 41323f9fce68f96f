"""``ambac-hubspot sync`` and ``demo``: exit codes, JSON output and permissions, on a real host directory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin._cli._admin import ReferenceHostContext
from ambac_hubspot_plugin.admin import Admin
from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.host import VIEW_INTEGRATIONS
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox


@pytest.fixture
def setup(tmp_path: Path):
    """A sandbox with two won deals and one open, and a host dir with the plugin enabled and a viewer."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as hs:
        for name, stage in (("A", "closedwon"), ("B", "closedwon"), ("C", "contractsent")):
            hs.add_object("deals", {"dealname": name, "pipeline": "default", "dealstage": stage})
        with ReferenceHost(tmp_path / "host") as host:
            tenant = host.create_tenant("Acme")
            host.enable_plugin(tenant, "hubspot", {
                "portal_id": str(hs.portal_id), "api_base_url": hs.base_url, "local_sandbox": True,
                "credentials": {"kind": "private_app", "access_token": hs.access_token},
                "run_background_worker": False})
            host.grant(host.create_user(tenant, VIEWER), VIEW_INTEGRATIONS)
            host.plugin_manager.get_plugin("hubspot.runtime").runtime.close()
        yield hs, tmp_path / "host", tenant


VIEWER = "viewer@acme.example"


def _run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)


def _orders(host_dir: Path, tenant: int) -> list:
    with ReferenceHost(host_dir, load_entrypoints=False) as host:
        return host.services(tenant).list_orders()


def test_sync_json_reports_counts_and_outcomes(setup):
    """sync --json prints counts and one outcome per deal, and exits 0."""
    _hs, host_dir, tenant = setup
    result = _run("sync", "--host-dir", str(host_dir), "--tenant", str(tenant), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["kind"], data["created"], data["skipped"], data["dry_run"]) == ("incremental", 2, 1, False)
    assert data["run_id"] is not None and data["failed"] == 0 and data["excluded"] == 1
    assert sorted(o["action"] for o in data["outcomes"]) == ["created", "created", "skipped"]
    assert {"deal_id", "action", "reason", "order_id", "fields"} <= set(data["outcomes"][0])
    assert len(_orders(host_dir, tenant)) == 2


def test_sync_dry_run_writes_nothing(setup):
    """--dry-run reports what would happen and creates no order."""
    _hs, host_dir, tenant = setup
    result = _run("sync", "--host-dir", str(host_dir), "--tenant", str(tenant), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Dry run: what the sync would do" in result.output, "the dry-run table is printed"
    assert "would be 2 created" in result.output
    assert _orders(host_dir, tenant) == []


def test_sync_backfill_exits_1_when_a_deal_fails(setup):
    """A deal the host cannot take makes the exit code 1, and the others still land."""
    hs, host_dir, tenant = setup
    hs.add_object("deals", {"dealname": "x" * 300, "pipeline": "default", "dealstage": "closedwon"})
    result = _run("sync", "--host-dir", str(host_dir), "--tenant", str(tenant), "--backfill", "--json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert (data["created"], data["failed"]) == (2, 1)


def test_sync_usage_errors_exit_2(setup, tmp_path):
    """A missing host, an unknown tenant or user, or --since without --backfill exit with 2."""
    _hs, host_dir, tenant = setup
    assert _run("sync", "--host-dir", str(tmp_path / "nope"), "--tenant", "1").exit_code == 2
    assert _run("sync", "--host-dir", str(host_dir), "--tenant", "999").exit_code == 2
    assert _run("sync", "--host-dir", str(host_dir), "--tenant", str(tenant), "--since", "2026-01-01").exit_code == 2
    assert _run("sync", "--host-dir", str(host_dir), "--tenant", str(tenant),
                "--as-user", "ghost@acme.example").exit_code == 2


def test_sync_needs_manage_integrations(setup):
    """A viewer is refused with exit 2 naming the permission, and no order is created."""
    _hs, host_dir, tenant = setup
    result = _run("sync", "--host-dir", str(host_dir), "--tenant", str(tenant), "--as-user", VIEWER)
    assert result.exit_code == 2 and "manage_integrations" in result.output
    assert _orders(host_dir, tenant) == []


def test_sync_opens_the_host_like_the_admin_commands(setup):
    """AMBAC_HUBSPOT_HOST_DIR and --host-factory module:function work; the old AMBAC_HOST_DIR does not."""
    _hs, host_dir, tenant = setup
    old = _run("sync", "--tenant", str(tenant), "--json",
               env={"AMBAC_HOST_DIR": str(host_dir), "AMBAC_HUBSPOT_HOST_DIR": ""})
    assert old.exit_code == 2, "the old variable name is not read"
    by_env = _run("sync", "--tenant", str(tenant), "--json", env={"AMBAC_HUBSPOT_HOST_DIR": str(host_dir)})
    assert by_env.exit_code == 0 and json.loads(by_env.output)["created"] == 2
    by_factory = _run("sync", "--host-factory", "tests.test_cli_admin:factory", "--host-dir", str(host_dir),
                      "--tenant", str(tenant), "--json")
    assert by_factory.exit_code == 0 and json.loads(by_factory.output)["unchanged"] == 2


def test_admin_run_sync_reports_each_outcome_to_the_progress_callback(setup):
    """Admin.run_sync calls progress once per deal with its outcome (what the progress bar counts)."""
    _hs, host_dir, tenant = setup
    seen = []
    context = ReferenceHostContext(host_dir)
    try:
        context.load_tenant(tenant)
        data = Admin(context.runtime, context.services(tenant)).run_sync(
            context.operator(tenant), progress=seen.append)
    finally:
        context.close()
    assert sorted(o.action for o in seen) == ["created", "created", "skipped"]
    assert data["created"] == 2


def test_demo_json_shows_the_moved_deal_becoming_an_order():
    """The demo's deals become orders by sync and, for the last one, by its webhook alone."""
    result = _run("demo", "--deals", "30", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["order_from_moved_deal"] is not None
    assert [r["kind"] for r in data["sync_history"]] == ["incremental", "incremental"]
    assert data["sync_history"][1]["created"] >= 1
    assert all(step["ok"] for step in data["enable_report"])
    assert data["orders"] and data["companies"] and data["contacts"]
    assert data["order_from_webhook"] is not None, "the webhook step created its order without a sync"
    assert {o["number"] for o in data["orders"]} >= {data["order_from_moved_deal"], data["order_from_webhook"]}


def _doc_example(doc: Path, section: str, fence: str) -> str:
    """The first ``fence`` code block under the ``## section`` heading of ``doc``."""
    text = doc.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return text.split(f"```{fence}\n", 1)[1].split("```", 1)[0]


def test_demo_tables_fit_80_columns_without_breaking_words():
    """The demo's printed tables fit 80 columns and show the sync history's kind and counts whole."""
    result = _run("demo", "--deals", "10", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    history = result.output.split("Sync history", 1)[1]
    assert "incremental" in history and " created" in history and "…" not in result.output


def test_cli_md_demo_example_shows_every_field_the_demo_prints():
    """docs/cli.md's demo JSON names every top-level field the demo prints, with the same kind of value."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    command = _doc_example(doc, "demo", "sh").strip()
    assert command.startswith("ambac-hubspot demo ")
    result = _run(*command.split()[1:])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    example = _doc_example(doc, "demo", "json")
    starts = {dict: "{", list: "[", str: '"', int: "0123456789", float: "0123456789",
              type(None): "n"}
    for key, value in data.items():
        shown = re.search(rf'"{key}": (\S)', example)
        assert shown is not None, f"docs/cli.md's demo example lacks {key!r}"
        assert shown.group(1) in starts[type(value)], f"{key!r} is a {type(value).__name__} in the demo"
