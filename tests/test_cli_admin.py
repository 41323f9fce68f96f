"""The admin CLI commands on a reference host directory: JSON output, exit codes, --help, shared options."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import click
import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin._cli._admin import ReferenceHostContext
from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.host import VIEW_INTEGRATIONS
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from .test_admin import world_settings


@attrs.define
class Site:
    """A sandbox and a reference host directory with the plugin set up for one tenant."""

    hubspot: Sandbox
    host_dir: Path
    tenant: int

    def run(self, *args: str, tenant: bool = True):
        base = ["--host-dir", str(self.host_dir)] + (["--tenant", str(self.tenant)] if tenant else [])
        return CliRunner().invoke(main, [args[0], *base, *args[1:]])

    def json(self, *args: str):
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


def factory(host_dir: Path | None) -> ReferenceHostContext:
    """A host factory as a real host would ship one (here: the reference host again)."""
    assert host_dir is not None
    return ReferenceHostContext(host_dir)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """Set up through the host (as an admin would), then closed: the CLI reopens it."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot:
        host_dir = tmp_path / "host"
        with ReferenceHost(host_dir) as host:
            tenant = host.create_tenant("Acme")
            host.enable_plugin(tenant, "hubspot", world_settings(hubspot))
            viewer = host.create_user(tenant, "viewer@acme.example")
            host.grant(viewer, VIEW_INTEGRATIONS)
            host.plugin_manager.get_plugin("hubspot.runtime").runtime.close()
        hubspot.add_object("deals", {"dealname": "Won", "pipeline": "default", "dealstage": "closedwon"})
        yield Site(hubspot, host_dir, tenant)


def test_check_prints_each_check_as_json_and_exits_0(site):
    """check --json lists every check with status and fix; all pass on a good setup."""
    data = site.json("check")
    assert data["ok"] is True
    assert [c["name"] for c in data["checks"]][:4] == ["token", "portal", "scopes", "pipelines"]
    assert all({"status", "summary", "fix"} <= set(c) for c in data["checks"])


def test_check_exits_1_when_a_check_fails_and_setup_exits_2_on_bad_settings(site):
    """A refused token: setup and check exit 1; a bad portal id: setup exits 2 naming the field."""
    result = site.run("setup", "--token", "pat-na1-revoked", "--json")
    assert result.exit_code == 1
    setup = json.loads(result.stdout)
    assert setup["ok"] is False and "pat-na1-revoked" not in result.output
    check = site.run("check", "--json")
    assert check.exit_code == 1
    assert json.loads(check.stdout)["checks"][0]["status"] == "failed"
    bad = site.run("setup", "--portal-id", "abc")
    assert bad.exit_code == 2 and "portal_id" in bad.output


def test_setup_saves_settings_and_reports_the_enable_steps(site):
    """setup --json enables with the given settings and prints steps and checks."""
    data = site.json("setup", "--public-base-url", "https://t.example.com")
    assert data["ok"] is True and [s["step"] for s in data["steps"]] == ["settings", "store", "hubspot"]
    url = next(c for c in data["checks"] if c["name"] == "webhook_url")["summary"]
    assert f"https://t.example.com/integrations/hubspot/webhooks/{site.tenant}" in url
    assert site.hubspot.access_token not in json.dumps(data)


def test_status_log_history_and_replay_answer_json(site):
    """After a sync through the API: status counts, log entries, the run in history, no dead letters."""
    from ambac_hubspot_plugin.admin import Admin

    context = ReferenceHostContext(site.host_dir)
    try:
        context.load_tenant(site.tenant)
        Admin(context.runtime, context.services(site.tenant)).run_sync(context.operator(site.tenant))
    finally:
        context.close()
    status = site.json("status")
    assert status["enabled"] is True and status["records"]["in_sync"] == 1
    log = site.json("log", "--level", "info", "--limit", "1")
    assert len(log["entries"]) == 1 and log["next_before"]
    assert log["entries"][0]["what"] == "sync.incremental", "the sync's outcome is logged"
    older = site.json("log", "--before", str(log["next_before"]))
    assert [e["what"] for e in older["entries"]] == ["plugin.enabled"]
    history = site.json("history")
    assert history["runs"][0]["created"] == 1 and history["runs"][0]["duration_seconds"] is not None
    assert site.json("replay", "--list") == {"dead_letters": []}
    assert site.json("replay", "--all") == {"replayed": 0, "webhook_deliveries": 0}


def test_replay_exits_1_for_a_job_that_is_not_dead_and_2_for_an_unknown_one(site):
    """Replaying a live job fails (1) saying why; an id the tenant lacks is a usage error (2)."""
    from ambac_hubspot_plugin.store import open_store

    store = open_store(f"sqlite:///{site.host_dir}/plugins/hubspot/hubspot.sqlite3")
    try:
        job_id = store.enqueue(site.tenant, "inbound.deal", {"deal_id": "1"})
    finally:
        store.close()
    result = site.run("replay", str(job_id), "--json")
    assert result.exit_code == 1 and "not dead" in json.loads(result.stdout)["results"][0]["reason"]
    assert site.run("replay", "999999").exit_code == 2
    assert site.run("replay").exit_code == 2, "nothing to replay chosen is a usage error"


def test_replay_of_several_ids_reports_each_even_after_an_unknown_one(site):
    """`replay DEAD 999999 DEAD2`: both dead letters are replayed, the unknown id is a row saying
    so, and the command exits 2 with the whole table printed (not 'nothing was done')."""
    from ambac_hubspot_plugin.store import open_store

    store = open_store(f"sqlite:///{site.host_dir}/plugins/hubspot/hubspot.sqlite3")
    try:
        dead = []
        for n in range(2):
            job_id = store.enqueue(site.tenant, "inbound.deal", {"deal_id": str(n)}, max_attempts=1)
            (job,) = store.claim("test", kinds=["inbound.deal"])
            store.fail(job.id, "test", "boom")
            dead.append(job_id)
    finally:
        store.close()
    result = site.run("replay", str(dead[0]), "999999", str(dead[1]), "--json")
    assert result.exit_code == 2
    rows = {row["job"]: row for row in json.loads(result.stdout)["results"]}
    assert rows[dead[0]]["replayed"] and rows[dead[1]]["replayed"]
    assert not rows[999999]["replayed"] and "999999" in rows[999999]["reason"]


def test_as_user_applies_permissions(site):
    """A viewer may read the status but not run the check or replay (exit 2 naming the permission)."""
    assert site.run("status", "--as-user", "viewer@acme.example", "--json").exit_code == 0
    refused = site.run("check", "--as-user", "viewer@acme.example")
    assert refused.exit_code == 2 and "manage_integrations" in refused.output
    assert site.run("replay", "--all", "--as-user", "viewer@acme.example").exit_code == 2
    assert site.run("status", "--as-user", "ghost@acme.example").exit_code == 2


def test_unknown_tenant_missing_host_and_unset_tenant_are_usage_errors(site, tmp_path):
    """A tenant the host lacks, no --host-dir, or a dir without a host: exit 2."""
    assert site.run("status", "--tenant", "77", tenant=False).exit_code == 2
    assert site.run("status", "--tenant", "../x", tenant=False).exit_code == 2
    own = site.tenant
    assert CliRunner().invoke(main, ["status", "--tenant", own], env={"AMBAC_HUBSPOT_HOST_DIR": ""}).exit_code == 2
    assert CliRunner().invoke(main, ["status", "--tenant", own, "--host-dir", str(tmp_path / "x")]).exit_code == 2
    other = site.run("status", "--tenant", own, tenant=False)
    assert other.exit_code == 0  # the site's own tenant, by its UUID


def test_a_host_factory_plugs_in_a_host(site):
    """--host-factory module:function builds the host context the commands use."""
    result = CliRunner().invoke(main, ["status", "--host-factory", "tests.test_cli_admin:factory",
                                       "--host-dir", str(site.host_dir), "--tenant", str(site.tenant),
                                       "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["tenant_id"] == site.tenant
    assert CliRunner().invoke(main, ["status", "--host-factory", "nope", "--tenant", "1"]).exit_code == 2


def test_status_reads_a_store_directly_without_a_host(site):
    """status --store-url works on the store alone (queue, runs, log)."""
    url = f"sqlite:///{site.host_dir}/plugins/hubspot/hubspot.sqlite3"
    result = CliRunner().invoke(main, ["status", "--store-url", url, "--tenant", str(site.tenant), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["log"][0]["what"] == "plugin.enabled"


def test_status_on_a_store_that_is_not_there_creates_nothing(site, tmp_path):
    """A mistyped path, or a file that is not a store: exit 2 saying so, and no store is made
    (the read-only command used to create and migrate one, and print an empty status)."""
    import sqlite3

    missing = tmp_path / "typo.sqlite3"
    other = tmp_path / "empty.sqlite3"
    sqlite3.connect(other).close()
    for path in (missing, other):
        result = CliRunner().invoke(main, ["status", "--store-url", f"sqlite:///{path}", "--tenant",
                                           str(site.tenant), "--json"])
        assert result.exit_code == 2 and "store_url" in result.output and "no" in result.output
    assert not missing.exists()
    with sqlite3.connect(other) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_tables_on_a_terminal(site):
    """Without --json the commands print rich tables (check lists each check name)."""
    result = site.run("check")
    assert result.exit_code == 0 and "token" in result.output and "webhook_url" in result.output


HOST_COMMANDS = ["check", "setup", "status", "log", "history", "replay", "sync",
                 "conflicts list", "conflicts show", "conflicts resolve"]


@pytest.mark.parametrize("command", HOST_COMMANDS)
def test_every_host_command_has_help(command):
    """--help works for each command that opens a host and documents --json and --tenant."""
    result = CliRunner().invoke(main, [*command.split(), "--help"])
    assert result.exit_code == 0 and "--json" in result.output and "--tenant" in result.output


def _command(path: str) -> click.Command:
    command: click.Command = main
    for name in path.split():
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@pytest.mark.parametrize("command", HOST_COMMANDS)
def test_every_host_command_shares_one_set_of_host_options(command):
    """Each host command has the same host options with AMBAC_HUBSPOT_* environment variables."""
    params = {p.name: p for p in _command(command).params}
    expected = {"host_dir": "AMBAC_HUBSPOT_HOST_DIR", "host_factory": "AMBAC_HUBSPOT_HOST_FACTORY",
                "tenant_id": None, "as_user": None, "as_json": None}
    assert {name: params[name].envvar for name in expected} == expected
    envvars = [p.envvar for p in params.values() if p.envvar]
    assert all(str(e).startswith("AMBAC_HUBSPOT_") for e in envvars), envvars


def test_the_cli_has_one_status_command_and_registers_every_group():
    """status is the admin one (with --store-url and --as-user); sync, conflicts, demo, sandbox exist."""
    assert {"check", "setup", "status", "log", "history", "replay", "sync", "conflicts", "demo",
            "sandbox"} <= set(main.commands)
    status_params = {p.name for p in main.commands["status"].params}
    assert {"store_url", "as_user", "host_dir"} <= status_params


def _all_commands(group: click.Group = main, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _all_commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_docs_cli_md_has_a_section_per_command_naming_each_option():
    """docs/cli.md has a '## name' section for every command and mentions each of its options."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    headings = set(re.findall(r"^## (.+?)\s*$", text, re.M))
    for path, command in _all_commands():
        assert path in headings, f"docs/cli.md has no section for {path}"
        options = [o for p in command.params for o in p.opts if o.startswith("--")]
        missing = [o for o in options if f"`{o}" not in text]
        assert not missing, f"docs/cli.md does not mention {missing} of {path}"
