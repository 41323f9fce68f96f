"""Secrets are write-only: after a full run with failures, no output anywhere shows one."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.errors import ConfigError, HubSpotIntegrationError
from ambac_hubspot_plugin.settings import parse_settings

from .test_admin import world  # noqa: F401  # a fixture


def test_no_secret_in_any_status_log_history_error_or_cli_output(world, tmp_path):  # noqa: F811
    """Sync, mapping failures, 401s, a refused token, dead letters: every output is free of secrets."""
    secrets = [world.hubspot.access_token, world.hubspot.client_secret, "pat-na1-revoked-0123"]
    shown: list[str] = []
    admin, user = world.admin, world.admin_user

    # A full run: orders, a deal that fails to map, an excluded deal.
    world.hubspot.add_property("deals", "budget_text")
    world.host.change_settings(world.tenant, "hubspot", {**world.settings, "mapping": {
        "strategy": "configurable",
        "options": {"order": {"value": {"property": "budget_text", "transforms": ["decimal"]}}}}})
    for i in range(3):
        world.deal(dealname=f"Won {i}", budget_text="5")
    world.deal(dealname="Bad", budget_text="abc")
    world.deal(stage="contractsent")
    shown.append(json.dumps(admin.run_sync(user)))
    # Failures: HubSpot refuses the token mid-sync; a check with a revoked token.
    world.hubspot.faults.fail_next(20, status=401, body={"status": "error", "message": "expired",
                                                         "category": "INVALID_AUTHENTICATION"})
    with pytest.raises(HubSpotIntegrationError) as info:
        admin.run_sync(user, backfill=True)
    shown += [str(info.value), repr(info.value)]
    world.hubspot.faults.clear()
    revoked = {**world.settings, "credentials": {"kind": "private_app", "access_token": secrets[2]}}
    report = admin.enable(user, revoked)
    shown += [repr(report), json.dumps([c.to_json() for c in report.checks])]
    shown.append(json.dumps(admin.test_connection(user).to_json()))
    with pytest.raises(HubSpotIntegrationError) as info:
        admin.preview_order(user, "1")
    shown.append(str(info.value))
    # A settings error that echoes values must not echo the secret either.
    with pytest.raises(ConfigError) as bad:
        parse_settings({**revoked, "portal_id": "x", "alerts": {"failed_runs": 0}})
    shown += [str(bad.value), repr(parse_settings(revoked))]
    # A dead letter.
    store = world.store
    store.enqueue(world.tenant, "inbound.deal", {"deal_id": "9"}, max_attempts=1)
    (job,) = store.claim("w", kinds=["inbound.deal"])
    store.fail(job.id, "w", "mapping failed")

    # Every view: Python API, routes, runtime, CLI.
    shown += [json.dumps(x) for x in (
        admin.status(user), admin.settings(user), admin.history(user, limit=500),
        admin.dead_letters(user), admin.conflicts(user, status=None),
        world.runtime.status(world.tenant))]
    page = admin.log(user, limit=500)
    shown.append(json.dumps(page))
    assert page["entries"] and page["next_before"] is None, "the whole log was read"
    for path in ("status", "settings", "log?limit=500", "history", "dead-letters", "conflicts"):
        status, body = world.http("GET", path, world.viewer)
        assert status == 200
        shown.append(json.dumps(body))
    world.runtime.close()
    host_dir = str(world.host.data_dir)
    for command in (["status"], ["log", "--limit", "500"], ["history"], ["replay", "--list"], ["check"]):
        result = CliRunner().invoke(main, [*command, "--host-dir", host_dir, "--tenant",
                                           str(world.tenant), "--json"])
        assert result.exit_code in (0, 1), result.output
        shown.append(result.output)

    text = "\n".join(shown)
    assert "refused the credentials" in text and "HubSpotAuthError" in text, "the failures are shown"
    for secret in secrets:
        assert secret not in text
