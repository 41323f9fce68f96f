"""``ambac-hubspot companies list/show`` on a reference host directory: the values the plugin
keeps for each linked company (the real host's companies have no domain, phone or address)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.host import VIEW_INTEGRATIONS
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

VIEWER = "viewer@acme.example"
NOBODY = "nobody@acme.example"


@attrs.define
class Site:
    """A host dir whose tenant has one order with a company linked to a HubSpot company."""

    host_dir: Path
    tenant: str
    hubspot_company: str
    company_id: str

    def run(self, *args: str):
        sub, rest = args[0], args[1:]
        return CliRunner().invoke(main, ["companies", sub, "--host-dir", str(self.host_dir),
                                         "--tenant", self.tenant, *rest])


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A deal of a HubSpot company with a domain, phone and city, synced into the host."""
    host_dir = tmp_path / "host"
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot:
        with ReferenceHost(host_dir) as host:
            tenant = host.create_tenant("Acme Machining")
            host.enable_plugin(tenant, "hubspot", {
                "portal_id": str(hubspot.portal_id), "api_base_url": hubspot.base_url, "local_sandbox": True,
                "credentials": {"kind": "private_app", "access_token": hubspot.access_token},
                "run_background_worker": False})
            for email, permissions in ((VIEWER, [VIEW_INTEGRATIONS]), (NOBODY, [])):
                user = host.create_user(tenant, email)
                for permission in permissions:
                    host.grant(user, permission)
            company = hubspot.add_object("companies", {"name": "Acme Inc", "domain": "www.acme.example",
                                                       "phone": "+1 555 0100", "city": "Springfield"})
            deal = hubspot.add_object("deals", {"dealname": "Brackets", "pipeline": "default",
                                                "dealstage": "closedwon"}, {"companies": [company]})
            runtime = host.plugin_manager.get_plugin("hubspot.runtime").runtime
            runtime.run_sync(tenant)
            order = host.services(tenant).find_order_by_external_id(f"hubspot:{hubspot.portal_id}:deal:{deal}")
            runtime.close()
        yield Site(host_dir, str(tenant), company, order.company_id)


def test_list_and_show_print_the_kept_values(site):
    """list and show (JSON and tables) give the linked company with its kept domain and phone."""
    listed = site.run("list", "--json")
    assert listed.exit_code == 0, listed.output
    (company,) = json.loads(listed.stdout)["companies"]
    assert (company["id"], company["hubspot_id"], company["name"]) == (site.company_id, site.hubspot_company,
                                                                      "Acme Inc")
    assert (company["kept"]["website"], company["kept"]["phone"]) == ("acme.example", "+1 555 0100")
    shown = site.run("show", site.company_id, "--json", "--as-user", VIEWER)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == company
    table = site.run("list")
    assert table.exit_code == 0 and "acme.example" in table.output and "Springfield" in table.output


def test_a_user_without_view_permission_and_an_unknown_company_exit_2(site):
    """Reading needs view_integrations; an unknown company id is a usage error naming it."""
    blind = site.run("list", "--as-user", NOBODY)
    assert blind.exit_code == 2 and "view_integrations" in blind.output
    missing = site.run("show", "no-such-company")
    assert missing.exit_code == 2 and "no-such-company" in missing.output
