"""``ambac-hubspot conflicts list/show/resolve`` on a reference host directory: JSON, permissions, exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin._cli._admin import OPERATOR_EMAIL
from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from .test_conflicts import Clock

VIEWER = "viewer@acme.example"
MANAGER = "ops@acme.example"
NOBODY = "nobody@acme.example"


@attrs.define
class Site:
    """A sandbox and a host dir holding one open (held) conflict on an order's name."""

    hubspot: Sandbox
    host_dir: Path
    tenant: int
    deal: str
    order_id: int

    def run(self, *args: str):
        sub, rest = args[0], args[1:]
        base = ["--host-dir", str(self.host_dir), "--tenant", str(self.tenant)]
        return CliRunner().invoke(main, ["conflicts", sub, *base, *rest])

    def json(self, *args: str):
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def order_name(self) -> str:
        with ReferenceHost(self.host_dir, load_entrypoints=False) as host:
            order = host.services(self.tenant).get_order(self.order_id)
            assert order is not None
            return order.name


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """Manual strategy; the order's name edited in both places, synced: one open conflict."""
    clock = Clock()
    host_dir = tmp_path / "host"
    with Sandbox(rate_limits=RateLimits.unlimited(), clock=clock) as hubspot:
        with ReferenceHost(host_dir, clock=clock) as host:
            tenant = host.create_tenant("Acme Machining")
            host.enable_plugin(tenant, "hubspot", {
                "portal_id": str(hubspot.portal_id), "api_base_url": hubspot.base_url, "local_sandbox": True,
                "credentials": {"kind": "private_app", "access_token": hubspot.access_token},
                "run_background_worker": False, "conflicts": {"default": "manual"}})
            for email, permissions in ((VIEWER, [VIEW_INTEGRATIONS]),
                                       (MANAGER, [VIEW_INTEGRATIONS, MANAGE_INTEGRATIONS]),
                                       (NOBODY, [])):
                user = host.create_user(tenant, email)
                for permission in permissions:
                    host.grant(user, permission)
            runtime = host.plugin_manager.get_plugin("hubspot.runtime").runtime
            deal = hubspot.add_object("deals", {"dealname": "Brackets", "pipeline": "default",
                                                "dealstage": "closedwon"})
            runtime.run_sync(tenant)
            order = host.services(tenant).find_order_by_external_id(
                f"hubspot:{hubspot.portal_id}:deal:{deal}")
            clock.tick()
            host.services(tenant).update_order(order.id, {"name": "Host name"})
            clock.tick()
            hubspot.update_object("deals", deal, {"dealname": "HubSpot name"})
            clock.tick()
            runtime.run_sync(tenant)
            assert len(runtime.list_conflicts(tenant)) == 1
            runtime.close()
        yield Site(hubspot, host_dir, tenant, deal, order.id)


def test_list_and_show_print_the_open_conflict_as_json(site):
    """list --json wraps the open conflicts in {"conflicts": [...]}; show --json prints that one record."""
    listed = site.json("list")
    (conflict,) = listed["conflicts"]
    assert (conflict["field"], conflict["hubspot_value"], conflict["host_value"], conflict["status"]) == (
        "name", "HubSpot name", "Host name", "open")
    assert conflict["strategy"] == "manual" and conflict["decision"] == "hold"
    shown = site.json("show", str(conflict["id"]))
    assert shown == conflict
    assert site.json("list", "--all")["conflicts"] == [conflict]


def test_resolve_with_a_value_applies_it_on_both_sides_and_closes_the_conflict(site):
    """resolve ID value --value V --json sets V on the order and the deal and records the operator."""
    (conflict,) = site.json("list")["conflicts"]
    resolved = site.json("resolve", str(conflict["id"]), "value", "--value", "Agreed name")
    assert (resolved["status"], resolved["resolution"], resolved["resolved_value"]) == (
        "closed", "value", "Agreed name")
    assert resolved["decided_by"] == OPERATOR_EMAIL
    assert site.order_name() == "Agreed name"
    assert site.hubspot.get_object("deals", site.deal)["dealname"] == "Agreed name"
    assert site.json("list") == {"conflicts": []}
    assert [c["status"] for c in site.json("list", "--all")["conflicts"]] == ["closed"]


def test_resolve_as_a_user_records_that_user_as_the_decider(site):
    """--as-user with manage_integrations resolves, and the audit trail names that user."""
    (conflict,) = site.json("list")["conflicts"]
    resolved = site.json("resolve", str(conflict["id"]), "HubSpot", "--as-user", MANAGER)
    assert (resolved["resolution"], resolved["decided_by"]) == ("hubspot", MANAGER)
    assert site.order_name() == "HubSpot name"


def test_permissions_apply_to_each_subcommand(site):
    """A viewer may list and show but not resolve (exit 2 naming the permission); a user without
    rights may not even list; an unknown user is a usage error."""
    (conflict,) = site.json("list", "--as-user", VIEWER)["conflicts"]
    assert site.run("show", str(conflict["id"]), "--as-user", VIEWER).exit_code == 0
    refused = site.run("resolve", str(conflict["id"]), "ambac", "--as-user", VIEWER)
    assert refused.exit_code == 2 and "manage_integrations" in refused.output
    assert site.json("list")["conflicts"][0]["status"] == "open", "the refusal changed nothing"
    blind = site.run("list", "--as-user", NOBODY)
    assert blind.exit_code == 2 and "view_integrations" in blind.output
    assert site.run("list", "--as-user", "ghost@acme.example").exit_code == 2


def test_usage_errors_exit_2(site):
    """An unknown id, resolving twice, a bad --value pairing or an untyped value exit 2."""
    (conflict,) = site.json("list")["conflicts"]
    cid = str(conflict["id"])
    missing = site.run("show", "999")
    assert missing.exit_code == 2 and "999" in missing.output
    assert site.run("resolve", cid, "value").exit_code == 2, "value needs --value"
    assert site.run("resolve", cid, "ambac", "--value", "x").exit_code == 2, "--value only with value"
    assert site.run("resolve", cid, "nonsense").exit_code == 2
    assert site.run("list", "--limit", "0").exit_code == 2
    assert site.json("resolve", cid, "ambac")["status"] == "closed"
    again = site.run("resolve", cid, "ambac")
    assert again.exit_code == 2 and "was decided already" in again.output


def test_resolve_exits_1_when_hubspot_refuses_the_write_and_the_conflict_stays_open(site):
    """A HubSpot error while writing the decided value is a failed operation (1), not a usage error."""
    (conflict,) = site.json("list")["conflicts"]
    site.hubspot.faults.fail_next(10, status=400, path_prefix="/crm/objects/2026-09/deals")
    result = site.run("resolve", str(conflict["id"]), "value", "--value", "Agreed name")
    site.hubspot.faults.clear()
    assert result.exit_code == 1 and "stays open" in result.output
    assert site.json("list")["conflicts"][0]["status"] == "open"


def test_list_prints_a_table_without_json(site):
    """Without --json, list prints a table naming the field and both values."""
    result = site.run("list")
    assert result.exit_code == 0, result.output
    assert "Open conflicts" in result.output and "HubSpot name" in result.output
    assert "Host name" in result.output


@pytest.mark.parametrize("sub", ["list", "show", "resolve"])
def test_every_conflicts_subcommand_has_help(sub):
    """--help documents the shared host options and --json for each subcommand."""
    result = CliRunner().invoke(main, ["conflicts", sub, "--help"])
    assert result.exit_code == 0
    assert all(o in result.output for o in ("--host-dir", "--host-factory", "--tenant", "--as-user",
                                             "--json"))


def test_values_with_brackets_print_as_they_are_not_as_markup(site, monkeypatch):
    """Names come from HubSpot and the host: 'Brackets [rev a]' must not print as 'Brackets'
    (the person deciding would see two equal values), nor '[/]' crash the table."""
    monkeypatch.setenv("COLUMNS", "300")  # each value on one line of the table
    with ReferenceHost(site.host_dir, load_entrypoints=False) as host:
        host.services(site.tenant).update_order(site.order_id, {"name": "Brackets [rev a]"})
    site.hubspot.update_object("deals", site.deal, {"dealname": "Brackets [/] [rev b]"})
    synced = CliRunner().invoke(main, ["sync", "--host-dir", str(site.host_dir), "--tenant", str(site.tenant)])
    assert synced.exit_code == 0, synced.output
    (conflict,) = site.json("list")["conflicts"]
    for command in (["list"], ["show", str(conflict["id"])]):
        shown = site.run(*command)
        assert shown.exit_code == 0 and shown.exception is None, shown.output
        assert "[rev a]" in shown.output and "Brackets [/] [rev b]" in shown.output, shown.output


def test_a_decision_hubspot_refuses_changes_neither_side_and_the_conflict_stays_open(site):
    (conflict,) = site.json("list")["conflicts"]
    before = site.order_name()
    site.hubspot.faults.fail_next(10, status=400, path_prefix="/crm/objects/2026-09/deals")
    result = site.run("resolve", str(conflict["id"]), "value", "--value", "Agreed name")
    site.hubspot.faults.clear()
    assert result.exit_code == 1, result.output
    assert site.json("list")["conflicts"][0]["status"] == "open"
    assert site.order_name() == before
    assert site.run("resolve", str(conflict["id"]), "value", "--value", "Agreed name").exit_code == 0
    assert site.order_name() == "Agreed name"
