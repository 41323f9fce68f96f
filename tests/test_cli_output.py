"""What the CLI prints for a person: nothing cut at 80 or 100 columns, empty tables say so,
and a re-run reports what it really did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.host import OrderDraft
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from ._clock import ManualClock

# Long enough that a table cell of an 80-100 column terminal cannot hold the webhook URL.
PUBLIC = "https://tracker.example.com"
LONG_VALUE = "Precision machined aluminium brackets, anodised black, batch of four hundred"


@attrs.define
class Site:
    """A host dir with the plugin set up, a sync run, a log and one open conflict."""

    hubspot: Sandbox
    host_dir: Path
    tenant: int

    def run(self, *args: str, columns: int = 80):
        command = args[0].split()
        base = ["--host-dir", str(self.host_dir), "--tenant", str(self.tenant)]
        return CliRunner().invoke(main, [*command, *base, *args[1:]], env={"COLUMNS": str(columns)})


def _settings(hubspot: Sandbox, **extra: object) -> dict[str, object]:
    return {"portal_id": str(hubspot.portal_id), "api_base_url": hubspot.base_url, "local_sandbox": True,
            "credentials": {"kind": "private_app", "access_token": hubspot.access_token},
            "webhook_client_secret": hubspot.client_secret, "public_base_url": PUBLIC,
            "run_background_worker": False, **extra}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """Manual conflicts; a long deal name edited on both sides, so `conflicts list` has a row."""
    clock = ManualClock()
    with Sandbox(rate_limits=RateLimits.unlimited(), clock=clock) as hubspot:
        with ReferenceHost(tmp_path / "host", clock=clock) as host:
            tenant = host.create_tenant("Acme Machining")
            host.enable_plugin(tenant, "hubspot", _settings(hubspot, conflicts={"default": "manual"}))
            runtime = host.plugin_manager.get_plugin("hubspot.runtime").runtime
            deal = hubspot.add_object("deals", {"dealname": LONG_VALUE, "pipeline": "default",
                                                "dealstage": "closedwon"})
            runtime.run_sync(tenant)
            order = host.services(tenant).find_order_by_external_id(f"hubspot:{hubspot.portal_id}:deal:{deal}")
            clock.advance(60)
            host.services(tenant).update_order(order.id, {"name": f"{LONG_VALUE} (host)"})
            clock.advance(60)
            hubspot.update_object("deals", deal, {"dealname": f"{LONG_VALUE} (HubSpot)"})
            clock.advance(60)
            runtime.run_sync(tenant)
            assert len(runtime.list_conflicts(tenant)) == 1
            runtime.close()
        yield Site(hubspot, tmp_path / "host", tenant)


@pytest.mark.parametrize("columns", [80, 100])
def test_the_webhook_url_to_paste_is_printed_whole_on_a_line_of_its_own(site, columns):
    """check prints the webhook URL uncut, alone on a line, at 80 and 100 columns."""
    result = site.run("check", columns=columns)
    assert result.exit_code == 0, result.output
    url = f"{PUBLIC}/integrations/hubspot/webhooks/{site.tenant}"
    assert url in [line.strip() for line in result.output.splitlines()], result.output


@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize("command", ["check", "status", "history", "log", "conflicts list",
                                     "conflicts show 1", "replay --list", "sync --dry-run --backfill"])
def test_no_table_cuts_a_value_or_outgrows_the_terminal(site, command, columns):
    """Every table fits the width and wraps instead of cutting a header or value to '…'."""
    name, *rest = command.split(" ")
    if name == "conflicts":
        name, *rest = f"{name} {rest[0]}", *rest[1:]
    result = site.run(name, *rest, columns=columns)
    assert result.exit_code == 0, result.output
    assert "…" not in result.output, result.output
    # A URL to paste is printed whole on a line of its own (with a UUID tenant it can be longer
    # than 80 columns; the terminal folds it, and cutting it would break the paste).
    too_wide = [line for line in result.output.splitlines() if len(line) > columns
                and not (line.startswith("https://") and " " not in line)]
    assert not too_wide, result.output


def test_the_sync_history_shows_whole_headers_and_counts_at_80_columns(site):
    """history at 80 columns names each column in full and says what the runs did to the deals."""
    result = site.run("history")
    assert result.exit_code == 0, result.output
    assert all(h in result.output for h in ("status", "started (UTC)", "seconds", "deals", "error"))
    assert "1 created" in result.output and "1 skipped" in result.output


def test_empty_tables_say_so(tmp_path):
    """A tenant with no runs, conflicts, dead letters or matching log entries says 'No ...'."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot:
        with ReferenceHost(tmp_path / "host") as host:
            tenant = host.create_tenant("Acme")
            host.enable_plugin(tenant, "hubspot", _settings(hubspot))
            host.plugin_manager.get_plugin("hubspot.runtime").runtime.close()
        site = Site(hubspot, tmp_path / "host", tenant)
        expected = {("history",): "No sync runs yet.", ("conflicts list",): "No open conflicts.",
                    ("conflicts list", "--all"): "No conflicts recorded.",
                    ("replay", "--list"): "No dead letters.",
                    ("log", "--level", "error"): "No log entries match."}
        for args, message in expected.items():
            result = site.run(*args)
            assert result.exit_code == 0 and result.output.strip() == message, (args, result.output)


def test_a_rerun_reports_an_order_an_earlier_run_made_as_existing_not_created(tmp_path):
    """The order a crashed run created (no link recorded) is reported linked and unchanged, not created."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot:
        deal = hubspot.add_object("deals", {"dealname": "Brackets", "pipeline": "default",
                                            "dealstage": "closedwon"})
        with ReferenceHost(tmp_path / "host") as host:
            tenant = host.create_tenant("Acme")
            host.enable_plugin(tenant, "hubspot", _settings(hubspot))
            host.plugin_manager.get_plugin("hubspot.runtime").runtime.close()
            # What a run killed between creating the order and recording its link leaves behind.
            made = host.services(tenant).create_order(OrderDraft(
                external_id=f"hubspot:{hubspot.portal_id}:deal:{deal}", name="Brackets"))
        site = Site(hubspot, tmp_path / "host", tenant)
        dry = json.loads(site.run("sync", "--backfill", "--dry-run", "--json").stdout)
        result = site.run("sync", "--backfill", "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        again = json.loads(site.run("sync", "--backfill", "--json").stdout)
        with ReferenceHost(tmp_path / "host", load_entrypoints=False) as host:
            orders = host.services(tenant).list_orders()
    assert dry["created"] == 0 and dry["outcomes"][0]["action"] == "unchanged"
    assert (data["created"], data["unchanged"]) == (0, 1)
    (outcome,) = data["outcomes"]
    assert outcome["order_id"] == made.id and "already existed" in outcome["reason"]
    assert [o.id for o in orders] == [made.id], "no second order"
    assert again["outcomes"][0]["reason"] != outcome["reason"], "now linked: an ordinary update check"


def test_the_log_at_80_columns_keeps_each_entrys_kind_and_record_on_one_line(site):
    """log at 80 columns shows every entry's kind and record whole on its heading line, and
    every word of its message, instead of a table that breaks them mid-word."""
    entries = json.loads(site.run("log", "--json").output)["entries"]
    result = site.run("log", columns=80)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    for entry in entries:
        [heading] = [line for line in lines if line.startswith(f"#{entry['id']} ")]
        assert all(part in heading for part in (entry["what"], entry["record"] or "")), heading
    assert " ".join(result.output.split()).count(" ".join(entries[0]["message"].split())) == 1
