"""The connection test against the sandbox: every check, each failure case and what it tells the admin."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ambac_hubspot_plugin._checks import CHECK_NAMES, run_checks, webhook_url
from ambac_hubspot_plugin._ratelimit import RateLimiter
from ambac_hubspot_plugin.client import ClientSettings, RateBudget, build_client
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox
from ambac_hubspot_plugin.settings import parse_settings
from ambac_hubspot_plugin.store import utc_now

from .test_admin import PUBLIC, world, world_settings  # noqa: F401  # world is a fixture

DOCS = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"


@pytest.fixture(scope="module")
def hubspot() -> Iterator[Sandbox]:
    """One sandbox portal for this module's checks."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as hs:
        yield hs


def check(hubspot: Sandbox, **changes: Any):
    """Run every check with the sandbox settings plus ``changes``; return the report."""
    settings = parse_settings({**world_settings(hubspot), **changes})
    client = build_client(ClientSettings.from_plugin_settings(settings), sleep=lambda _s: None)
    try:
        return run_checks(settings, client, 7, clock=utc_now)
    finally:
        client.close()


def test_a_good_setup_passes_every_check_and_prints_the_webhook_url(hubspot):
    """Token, scopes, pipelines, properties, secret and URL all pass; the URL names the tenant."""
    report = check(hubspot)
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    assert report.ok and not report.warnings
    assert {c.status for c in report.checks} == {"ok"}
    assert "Closed won" in report.get("pipelines").summary
    assert f"{PUBLIC}/integrations/hubspot/webhooks/7" in report.get("webhook_url").summary
    assert "cannot be verified without writing" in report.get("scopes").summary


def test_custom_properties_are_created_once_then_found(hubspot):
    """The first check creates the plugin's deal properties; the next finds them."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as fresh:
        first = check(fresh).get("properties")
        second = check(fresh).get("properties")
    assert first.status == "ok" and first.summary.startswith("created ")
    assert second.summary == "the custom properties exist"


def test_bad_token_fails_with_401_and_skips_what_depends_on_it(hubspot):
    """A refused token fails the token check with what to do; HubSpot checks are skipped, not run."""
    report = check(hubspot, credentials={"kind": "private_app", "access_token": "pat-na1-wrong"})
    token = report.get("token")
    assert token.status == "failed" and "refused the credentials" in token.summary
    assert "HTTP 401" in token.summary and "Private Apps" in token.fix
    assert [report.get(n).status for n in ("scopes", "pipelines", "properties")] == ["skipped"] * 3
    assert not report.ok
    assert "pat-na1-wrong" not in repr(report.to_json())


def test_unreachable_hubspot_fails_the_token_check_saying_so():
    """Nothing listening at api_base_url: 'cannot reach HubSpot' and a network fix."""
    settings = parse_settings({"portal_id": "1", "api_base_url": "http://127.0.0.1:9", "local_sandbox": True,
                               "credentials": {"kind": "private_app", "access_token": "x-token"}})
    client = build_client(ClientSettings.from_plugin_settings(settings), sleep=lambda _s: None)
    try:
        report = run_checks(settings, client, 1, clock=utc_now)
    finally:
        client.close()
    token = report.get("token")
    assert token.status == "failed" and "could not talk to HubSpot" in token.summary
    assert "api_base_url" in token.fix


def test_missing_read_scope_fails_the_scopes_check_naming_the_scope(hubspot):
    """A 403 on the companies probe names crm.objects.companies.read as missing."""
    hubspot.faults.fail_next(1, status=403, path_prefix="/crm/objects/2026-09/companies/search",
                             body={"status": "error", "category": "MISSING_SCOPES",
                                   "message": "This app hasn't been granted all required scopes"})
    try:
        scopes = check(hubspot).get("scopes")
    finally:
        hubspot.faults.clear()
    assert scopes.status == "failed" and "crm.objects.companies.read" in scopes.summary
    assert "crm.objects.deals.read" not in scopes.summary


def test_unknown_trigger_stage_fails_the_pipelines_check_with_choices(hubspot):
    """A trigger stage the portal lacks fails, naming it and the valid stage ids."""
    pipelines = check(hubspot, trigger_stages={"default": ["closedwon", "signed"]}).get("pipelines")
    assert pipelines.status == "failed"
    assert "signed" in pipelines.summary and "closedlost" in pipelines.summary


def test_no_trigger_stage_at_all_fails_the_pipelines_check(hubspot):
    """An empty trigger list means no deal ever becomes an order: a failure, not a pass."""
    pipelines = check(hubspot, trigger_stages={"default": []}).get("pipelines")
    assert pipelines.status == "failed" and "no deal stage triggers" in pipelines.summary


def test_unknown_status_stage_target_fails_the_pipelines_check(hubspot):
    """status_stage_map pointing at a stage the pipeline lacks is a failure naming it."""
    pipelines = check(hubspot, status_stage_map={"default": {"COMPLETED": "shipped"}}).get("pipelines")
    assert pipelines.status == "failed" and "shipped" in pipelines.summary


def test_missing_webhook_secret_and_public_url_are_warnings_with_fixes(hubspot):
    """Without a secret or public URL the sync still works: warnings that say what to set."""
    raw = world_settings(hubspot)
    del raw["webhook_client_secret"], raw["public_base_url"]
    settings = parse_settings(raw)
    client = build_client(ClientSettings.from_plugin_settings(settings))
    try:
        report = run_checks(settings, client, 7, clock=utc_now)
    finally:
        client.close()
    assert report.ok
    assert [c.name for c in report.warnings] == ["webhook_secret", "webhook_url"]
    assert "webhook_client_secret" in report.get("webhook_secret").fix
    assert "public_base_url" in report.get("webhook_url").fix


def test_service_key_warns_that_no_webhooks_arrive(hubspot):
    """A service key passes the connection test with a warning: HubSpot sends it no webhooks."""
    report = check(hubspot, credentials={"kind": "service_key", "access_token": hubspot.access_token})
    assert report.ok
    assert report.get("token").status == "ok"
    assert [c.name for c in report.warnings] == ["webhook_secret"]
    secret = report.get("webhook_secret")
    assert "no webhooks to service keys" in secret.summary and "OAuth app" in secret.fix
    assert report.get("webhook_url").status == "skipped"


@pytest.mark.parametrize(("kind", "named", "limits"), [
    ("private_app", "a private app token", "legacy app: unsupported from September 2027"),
    ("project_app", "a project-based app's access token", None),
    ("service_key", "a service key", "no webhooks, no CRM card"),
    ("oauth", "an OAuth app", None),
])
def test_token_check_names_the_credential_kind_and_what_it_cannot_do(hubspot, kind, named, limits):
    """The token check's summary says which kind of credential HubSpot accepted and its limits."""
    if kind == "oauth":
        hubspot.add_oauth_app(f"cid-{kind}", "client-secret-xyz", f"refresh-{kind}")
        credentials = {"kind": "oauth", "client_id": f"cid-{kind}",
                       "client_secret": "client-secret-xyz", "refresh_token": f"refresh-{kind}"}
    else:
        credentials = {"kind": kind, "access_token": hubspot.access_token}
    token = check(hubspot, credentials=credentials).get("token")
    assert token.status == "ok" and token.summary.startswith("HubSpot accepted the credentials: ")
    assert named in token.summary
    if limits is None:
        assert "(" not in token.summary  # nothing it cannot do is claimed
    else:
        assert token.summary.endswith(f"({limits})")
    assert hubspot.access_token not in token.summary and "client-secret-xyz" not in token.summary


def test_rate_limited_check_is_a_warning_not_a_failure(hubspot):
    """429s that outlast the retries make the check a warning to run again, not a failed setup."""
    hubspot.faults.fail_next(50, status=429, path_prefix="/crm/pipelines/2026-09", retry_after=0)
    try:
        settings = parse_settings(world_settings(hubspot))
        # A limiter of its own: the process-wide one of this module's portal may be spent by
        # the checks before this one, and it is HubSpot's 429s that this test is about.
        client = build_client(ClientSettings.from_plugin_settings(settings, rate_limit_wait_seconds=0),
                              limiter=RateLimiter(RateBudget(burst=10_000)), sleep=lambda _s: None)
        try:
            token = run_checks(settings, client, 7, clock=utc_now, checks=("token",)).get("token")
        finally:
            client.close()
    finally:
        hubspot.faults.clear()
    assert token.status == "warning" and "rate-limited the check" in token.summary


def test_webhook_url_joins_base_mount_and_tenant():
    """The URL to paste is base + mount prefix + hubspot/webhooks/<tenant>, without double slashes."""
    assert webhook_url("https://t.example.com", 3) == "https://t.example.com/integrations/hubspot/webhooks/3"
    assert webhook_url("https://t.example.com/", 3, "/") == "https://t.example.com/hubspot/webhooks/3"


def test_every_check_has_a_troubleshooting_entry():
    """docs/troubleshooting.md has a heading per check name, so a failed check can be looked up."""
    headings = re.findall(r"^#+ .*?`([a-z_]+)`", DOCS.read_text(), re.MULTILINE)
    assert set(CHECK_NAMES) <= set(headings)


def test_admin_test_connection_saves_the_report_for_the_status_view(world):  # noqa: F811  # fixture
    """The Test button (Admin.test_connection) keeps its report: the status shows it as last check."""
    world.hubspot.faults.fail_next(1, status=401, path_prefix="/crm/pipelines/2026-09",
                                   body={"status": "error", "category": "INVALID_AUTHENTICATION",
                                         "message": "Authentication credentials not found."})
    report = world.admin.test_connection(world.admin_user)
    assert report.get("token").status == "failed"
    status = world.admin.status(world.viewer)
    assert status["connection"]["state"] == "failed"
    assert status["connection"]["last_check"]["checks"][0]["status"] == "failed"


def test_the_status_property_offers_each_status_value_with_its_label(hubspot):
    """The plugin's status deal property is an enumeration: value = what the host stores,
    label = what people see; that is what the portal gets."""
    from ambac_hubspot_plugin._deal_properties import DEAL_PROPERTIES

    (spec,) = [p for p in DEAL_PROPERTIES if p.name == "ambac_order_status"]
    assert spec.type == "enumeration"
    expected = [("RFI", "RFI"), ("PENDING", "Pending"), ("IN_PROGRESS", "In progress"),
                ("COMPLETED", "Completed"), ("ON_HOLD", "On hold"), ("CANCELLED", "Cancelled")]
    assert [(o.value, o.label) for o in spec.options] == expected
    with Sandbox(rate_limits=RateLimits.unlimited()) as fresh:
        assert check(fresh).get("properties").status == "ok"
        options = fresh.portal.get_property("deals", "ambac_order_status")["options"]
    assert [(o["value"], o["label"]) for o in options] == expected


def test_a_status_property_with_label_values_fails_the_properties_check_naming_the_fix():
    """A portal whose status property an earlier version made (the labels as option values)
    refuses the values the push writes: the check fails, names the values it lacks and the fix."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as old:
        old.add_property("deals", "ambac_order_status", label="Order status", type_="enumeration",
                         field_type="select", options=[
                             {"label": label, "value": label, "displayOrder": i} for i, label in
                             enumerate(("RFI", "Pending", "In progress", "Completed", "On hold", "Cancelled"))])
        result = check(old).get("properties")
    assert result.status == "failed"
    assert "ambac_order_status" in result.summary
    assert "PENDING, IN_PROGRESS, COMPLETED, ON_HOLD, CANCELLED" in result.summary
    assert "RFI," not in result.summary, "RFI's value is its label: that option is right"
    assert "delete the property ambac_order_status" in result.fix and "troubleshooting.md" in result.fix
