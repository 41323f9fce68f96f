"""Secrets are write-only: after a full run with failures, no output anywhere shows one."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.client import ClientSettings, build_client
from ambac_hubspot_plugin.errors import ConfigError, HubSpotIntegrationError
from ambac_hubspot_plugin.host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox
from ambac_hubspot_plugin.settings import parse_settings

from ._store_support import pg_schema_url
from .test_admin import World, world, world_settings  # noqa: F401  # world is a fixture


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


def _everything_shown_after_a_failed_sync(world, caplog) -> list[str]:  # noqa: F811  # the fixture
    """Run a sync that fails through the Python API, the route and the CLI; collect every output."""
    shown: list[str] = []
    admin, user = world.admin, world.admin_user
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(HubSpotIntegrationError) as info:
            admin.run_sync(user, backfill=True)
        shown += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
        status, body = world.http("POST", "sync", user, {"backfill": True})
        assert status == 502, body
        shown.append(json.dumps(body))
        report = admin.test_connection(user)
        shown.append(json.dumps(report.to_json()))
        shown += [json.dumps(admin.log(user, limit=500)), json.dumps(admin.history(user)),
                  json.dumps(admin.status(user))]
    host_dir = str(world.host.data_dir)
    for command in (["sync", "--backfill"], ["check"], ["log", "--limit", "500"]):
        result = CliRunner().invoke(main, [*command, "--host-dir", host_dir, "--tenant",
                                           str(world.tenant), "--json"])
        shown += [result.output, repr(result.exception)]
    shown += [caplog.text, *(r.getMessage() for r in caplog.records)]
    return shown


def test_a_token_echoed_back_in_an_error_reaches_no_output(world, caplog):  # noqa: F811  # fixture
    """A proxy echoing the Authorization header in its 400s: errors, 502 body, log, CLI all scrubbed."""
    token = world.hubspot.access_token
    world.hubspot.faults.fail_next(1000, status=400, echo_request=True)
    text = "\n".join(_everything_shown_after_a_failed_sync(world, caplog))
    world.hubspot.faults.clear()
    assert "You sent Authorization: Bearer ***" in text, "the echo itself is kept, scrubbed"
    assert token not in text


def test_oauth_secrets_echoed_by_the_token_endpoint_are_scrubbed(world):  # noqa: F811  # fixture
    """An error echoing the refresh form (client secret, refresh token) leaves both out of the error."""
    world.hubspot.add_oauth_app("client-1", "cs-0123456789", "rt-0123456789")
    settings = parse_settings({**world.settings, "credentials": {
        "kind": "oauth", "client_id": "client-1", "client_secret": "cs-0123456789",
        "refresh_token": "rt-0123456789"}})
    client = build_client(ClientSettings.from_plugin_settings(settings), sleep=lambda _s: None)
    world.hubspot.faults.fail_next(5, status=400, path_prefix="/oauth/", echo_request=True)
    try:
        with pytest.raises(HubSpotIntegrationError) as info:
            client.test_connection()
    finally:
        client.close()
        world.hubspot.faults.clear()
    text = str(info.value) + "".join(traceback.format_exception(info.value))
    assert "refresh_token=***" in text
    assert "cs-0123456789" not in text and "rt-0123456789" not in text


def test_a_check_never_shows_what_the_remote_end_answered(world):  # noqa: F811  # fixture
    """Whatever answers (a proxy page, an error message) is not quoted to view-only users."""
    world.hubspot.faults.fail_next(1, status=200, body=b"<html>INTERNAL-PAGE-TEXT x</html>")
    admin = world.admin
    first = admin.test_connection(world.admin_user).get("token")
    world.hubspot.faults.fail_next(1, status=400, body={"message": "REMOTE-WORDS here",
                                                         "category": "VALIDATION_ERROR"})
    second = admin.test_connection(world.admin_user).get("token")
    _status, view = world.http("GET", "status", world.viewer)
    text = json.dumps([first.to_json(), second.to_json(), view])
    assert first.status == second.status == "failed"
    assert "HTTP 400, VALIDATION_ERROR" in second.summary
    assert "INTERNAL-PAGE-TEXT" not in text and "REMOTE-WORDS" not in text


def test_a_settings_round_trip_through_the_routes_keeps_the_token(world):  # noqa: F811  # fixture
    """GET hubspot/settings, then PUT what came back: the token stays the real one and syncs work."""
    status, shown = world.http("GET", "settings", world.admin_user)
    assert status == 200 and shown["credentials"]["access_token"] == "***"
    status, answer = world.http("PUT", "settings", world.admin_user, {**shown, "account_tier": "starter"})
    assert status == 200, answer
    settings = world.runtime.settings_for(world.tenant)
    assert settings.account_tier == "starter"
    assert settings.credentials.access_token.reveal() == world.hubspot.access_token
    assert settings.webhook_client_secret.reveal() == world.hubspot.client_secret
    assert world.admin.test_connection(world.admin_user).ok


@pytest.fixture
def pg_store_url_with_password() -> Iterator[str]:
    """A PostgreSQL store URL carrying a password (the server trusts the user, so any works)."""
    with pg_schema_url("t_secret", user="postgres:Pw-s3cret%40xyz") as url:
        yield url


@pytest.mark.postgres
def test_the_store_password_is_never_shown_and_survives_a_round_trip(tmp_path, pg_store_url_with_password):
    """GET settings, the PUT answer, Admin.settings and status hide the password; PUT keeps it."""
    url = pg_store_url_with_password
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot, ReferenceHost(tmp_path / "host") as host:
        tenant = host.create_tenant("Acme")
        host.enable_plugin(tenant, "hubspot", world_settings(hubspot, store_url=url))
        admin_user = host.create_user(tenant, "admin@acme.example")
        for permission in (MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS):
            host.grant(admin_user, permission)
        world = World(hubspot, host, tenant, {}, admin_user)
        try:
            status, shown = world.http("GET", "settings", admin_user)
            assert status == 200
            status, answer = world.http("PUT", "settings", admin_user, shown)
            assert status == 200, answer
            assert world.runtime.settings_for(tenant).store_url == url, "the PUT kept the stored URL"
            text = json.dumps([shown, answer, world.admin.settings(admin_user),
                               world.admin.status(admin_user)])
        finally:
            world.runtime.close()
        assert "postgres:***@" in shown["store_url"]
        assert "Pw-s3cret" not in text
