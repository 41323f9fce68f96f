"""Settings validation: every problem at once, masked secrets, HubSpot-only API hosts, templates."""

from __future__ import annotations

import pytest

from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.settings import parse_settings, restore_masked, unstructure_settings

BASE = {"portal_id": "123", "credentials": {"kind": "private_app", "access_token": "pat-na1-x"}}


def problems_of(**changes: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_settings({**BASE, **changes})
    assert "pat-na1-x" not in str(info.value)
    return info.value.problems


def test_a_retired_api_key_does_not_hide_the_other_problems():
    """hapikey plus three bad fields gives four named problems, not one."""
    problems = problems_of(hapikey="abc", portal_id="x", account_tier="gold", sync_interval_seconds=5)
    assert set(problems) == {"hapikey", "portal_id", "account_tier", "sync_interval_seconds"}
    assert "retired" in problems["hapikey"]


def test_a_retired_api_key_alone_is_still_refused():
    """Settings valid but for a nested api_key are refused naming that key."""
    problems = problems_of(credentials={**BASE["credentials"], "api_key": "abc"})
    assert set(problems) == {"credentials.api_key"}


def test_the_masked_placeholder_is_never_taken_as_a_secret():
    """'***' (what settings read back show) as a token or webhook secret is refused, naming each."""
    problems = problems_of(credentials={"kind": "private_app", "access_token": "***"},
                           webhook_client_secret="***")
    assert set(problems) == {"credentials.access_token", "webhook_client_secret"}
    assert "masked" in problems["credentials.access_token"]


def test_round_trip_of_the_rendered_settings_keeps_every_secret():
    """restore_masked turns the read-back form (secrets and store password as ***) into the stored one."""
    stored = parse_settings({
        "portal_id": "123", "webhook_client_secret": "whsec-123456",
        "credentials": {"kind": "oauth", "client_id": "c", "client_secret": "cs-123456",
                        "refresh_token": "rt-123456"},
        "store_url": "postgresql+psycopg://app:pw%40-123456@db.example:5432/hubspot"})
    shown = unstructure_settings(stored)
    assert "123456" not in repr(shown)
    assert parse_settings(restore_masked(shown, stored)) == stored
    changed = restore_masked({**shown, "credentials": {**shown["credentials"], "refresh_token": "rt-new1"}},
                             stored)
    assert parse_settings(changed).credentials.refresh_token.reveal() == "rt-new1"


def test_a_masked_store_password_is_refused_where_nothing_stands_behind_it():
    """A store_url whose password is *** (and no stored URL to restore) names store_url."""
    problems = problems_of(store_url="postgresql+psycopg://app:***@db.example/hubspot")
    assert "masked password" in problems["store_url"]


@pytest.mark.parametrize("url", ["https://api.hubapi.com", "https://api-eu1.hubapi.com",
                                 "https://API.hubapi.com", "https://api-na2.hubapi.com:443"])
def test_hubspot_api_hosts_are_accepted(url):
    """HubSpot's API host and its regional hosts pass, over https."""
    assert parse_settings({**BASE, "api_base_url": url}).api_base_url == url


@pytest.mark.parametrize("url", [
    "https://evil.example.com", "http://api.hubapi.com", "https://api.hubapi.com:8443",
    "https://api.hubapi.com.evil.example", "https://x@api.hubapi.com", "https://api.hubapi.com/crm",
    "https://api.hubapi.com?x=1", "http://169.254.169.254", "https://app.hubspot.com",
    "http://127.0.0.1:8765", "http://localhost:1", "http://[::1]:9", "ftp://api.hubapi.com",
])
def test_api_base_url_refuses_every_other_host(url):
    """Any host but HubSpot's API (loopback too, without the sandbox switch) names api_base_url."""
    problems = problems_of(api_base_url=url)
    assert set(problems) == {"api_base_url"}
    assert "api.hubapi.com" in problems["api_base_url"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost:1", "http://[::1]:9"])
def test_loopback_is_allowed_only_with_the_sandbox_switch(url):
    """local_sandbox=true lets api_base_url point at the bundled sandbox on loopback."""
    assert parse_settings({**BASE, "api_base_url": url, "local_sandbox": True}).local_sandbox
    assert "local_sandbox" in problems_of(api_base_url=url)["api_base_url"]


def test_the_sandbox_switch_does_not_open_other_hosts():
    """local_sandbox=true allows loopback only, never a remote host."""
    assert "api_base_url" in problems_of(api_base_url="http://10.0.0.8:80", local_sandbox=True)


@pytest.mark.parametrize("template", [
    "{base_url}/orders/{order_id}", "https://t.example.com/o/{order_number}?id={order_id}",
    "{base_url}/{{literal}}/{order_id}"])
def test_order_url_templates_with_the_documented_fields_pass(template):
    """Templates using base_url, order_id and order_number as plain names are accepted."""
    assert parse_settings({**BASE, "outbound": {"order_url_template": template}})


@pytest.mark.parametrize("template", [
    "{base_url.__class__}/{order_id}", "{base_url}/{order_id}/{tenant}", "{order_id[0]}",
    "{order_id!r}", "{base_url:>{order_id}}/{order_id}", "{}/{order_id}", "{0}/{order_id}",
    "{base_url}/{order_id", "{base_url}/orders"])
def test_order_url_template_refuses_other_fields_access_and_conversions(template):
    """Unknown fields, attribute/index access, conversions, specs and bad braces name the template."""
    problems = problems_of(outbound={"order_url_template": template})
    assert set(problems) == {"outbound.order_url_template"}


def test_only_the_plugins_own_words_reach_a_settings_error() -> None:
    """A value error worded by cattrs or Python is shown as the expected type, never as its
    text (which changes between releases); the plugin's own messages are shown as written."""
    from ambac_hubspot_plugin.settings import _format_exception, _Invalid

    assert _format_exception(ValueError("invalid literal for int() with base 10: 'x'"), int) \
        == "must be of type int"
    assert _format_exception(TypeError("some dependency's wording"), str) == "must be of type str"
    assert _format_exception(_Invalid("portal_id must be digits"), str) == "portal_id must be digits"


def test_api_version_defaults_to_2026_09_and_a_bad_one_is_named():
    """api_version is '2026-09' unless set to 'v3'; any other value is refused, naming the field,
    the value and both choices, and reaches the client settings as chosen."""
    from ambac_hubspot_plugin.client import ClientSettings

    assert parse_settings(BASE).api_version == "2026-09"
    legacy = parse_settings({**BASE, "api_version": "v3"})
    assert ClientSettings.from_plugin_settings(legacy).api_version == "v3"
    for bad in ("2026-03", "V3", 3):
        problems = problems_of(api_version=bad)
        assert set(problems) == {"api_version"}
        assert repr(bad) in problems["api_version"]
        assert "'2026-09'" in problems["api_version"] and "'v3'" in problems["api_version"]


@pytest.mark.parametrize(("field", "value", "path"), [
    ({"burst_per_10s": 0}, 0, "burst_per_10s"),
    ({"alerts": {"failed_runs": 0}}, 0, "alerts.failed_runs"),
    ({"sync_interval_seconds": 59}, 59, "sync_interval_seconds"),
])
def test_a_number_below_its_minimum_is_one_problem_in_the_plugins_words(field, value, path):
    """A number under its limit is named once, at its own path, saying the minimum."""
    with pytest.raises(ConfigError) as refused:
        parse_settings({"portal_id": "1", "credentials": {"kind": "private_app", "access_token": "t"},
                        **field})
    assert list(refused.value.problems) == [path]
    assert "must be at least" in refused.value.problems[path] and str(value) in refused.value.problems[path]


def test_local_sandbox_is_refused_in_a_process_whose_operator_did_not_allow_it(tmp_path, monkeypatch):
    """A tenant's local_sandbox setting alone does not open loopback: without the operator's
    environment switch enabling is refused, naming the setting and the switch, and nothing is
    sent to the loopback address."""
    from ambac_hubspot_plugin.reference_host import ReferenceHost
    from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox
    from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV

    from ._world import plugin_settings

    monkeypatch.delenv(ALLOW_LOCAL_SANDBOX_ENV)
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot, ReferenceHost(tmp_path / "host") as host:
        tenant = host.create_tenant("Acme")
        with pytest.raises(ConfigError) as refused:
            host.enable_plugin(tenant, "hubspot", plugin_settings(hubspot))
        assert ALLOW_LOCAL_SANDBOX_ENV in refused.value.problems["local_sandbox"]
        assert hubspot.requests == []
        monkeypatch.setenv(ALLOW_LOCAL_SANDBOX_ENV, "1")
        assert all(r is None or r.ok for r in host.enable_plugin(tenant, "hubspot", plugin_settings(hubspot)))
        host.plugin_manager.get_plugin("hubspot.runtime").runtime.close()


def test_statuses_in_settings_are_the_host_values_and_old_labels_become_them():
    """stage_status_map values and status_stage_map keys take the host's values; the labels
    earlier versions used (any case) are normalised to the values, and read back as values."""
    from ambac_hubspot_plugin.host import OrderStatus

    settings = parse_settings({**BASE,
                               "stage_status_map": {"a": "IN_PROGRESS", "b": "In progress", "c": "on hold"},
                               "status_stage_map": {"default": {"Cancelled": "closedlost",
                                                                "COMPLETED": "closedwon"}}})
    assert settings.stage_status_map == {"a": OrderStatus.IN_PROGRESS, "b": OrderStatus.IN_PROGRESS,
                                         "c": OrderStatus.ON_HOLD}
    assert settings.status_stage_map == {"default": {OrderStatus.CANCELLED: "closedlost",
                                                     OrderStatus.COMPLETED: "closedwon"}}
    data = unstructure_settings(settings)
    assert data["stage_status_map"] == {"a": "IN_PROGRESS", "b": "IN_PROGRESS", "c": "ON_HOLD"}
    assert data["status_stage_map"] == {"default": {"CANCELLED": "closedlost", "COMPLETED": "closedwon"}}


def test_an_unknown_status_in_settings_is_refused_naming_the_field_and_the_values():
    """A status that is neither a value nor a label is one problem per field, naming the
    value and every allowed value."""
    problems = problems_of(stage_status_map={"closedwon": "Shipped"},
                           status_stage_map={"default": {"Done": "closedwon"}})
    assert set(problems) == {"stage_status_map.closedwon", "status_stage_map.default.Done"}
    for message in problems.values():
        assert "is not an order status" in message
        assert all(repr(v) in message for v in ("RFI", "PENDING", "IN_PROGRESS", "COMPLETED",
                                                 "ON_HOLD", "CANCELLED"))
    assert "'Shipped'" in problems["stage_status_map.closedwon"]
    assert "'Done'" in problems["status_stage_map.default.Done"]


@pytest.mark.parametrize(("changes", "path"), [
    ({"mapping": {"strategy": None}}, "mapping.strategy"),
    ({"conflicts": {"default": True}}, "conflicts.default"),
    ({"portal_timezone": ["UTC"]}, "portal_timezone"),
    ({"trigger_stages": {"default": ["closedwon", None]}}, "trigger_stages"),
], ids=["null", "true", "list", "null-in-a-list"])
def test_a_text_setting_given_something_else_is_named_not_stored_as_its_repr(changes, path):
    """cattrs would store null as the text 'None' (a strategy nobody has, found only later)."""
    problems = problems_of(**changes)
    assert [p for p in problems if p.startswith(path)] and "must be text" in " ".join(problems.values())


def test_an_id_given_as_a_json_number_is_taken_as_its_digits():
    settings = parse_settings({**BASE, "portal_id": 62515, "trigger_stages": {"default": [1234567]}})
    assert (settings.portal_id, settings.trigger_stages) == ("62515", {"default": ["1234567"]})


@pytest.mark.parametrize("token", ["pat-na1-x\r", "pat-na1-x\n", "pat na1-x", "pat-na1-x\u00e9", "pat-\x00x"],
                         ids=["cr", "lf", "space", "not-ascii", "nul"])
@pytest.mark.parametrize("where", ["access_token", "webhook_client_secret", "oauth"])
def test_a_credential_with_a_space_line_break_or_non_ascii_character_is_named_never_quoted(token, where):
    """A token read from a CRLF file would reach the HTTP library, whose error quotes it."""
    if where == "access_token":
        problems = problems_of(credentials={"kind": "private_app", "access_token": token})
        path = "credentials.access_token"
    elif where == "webhook_client_secret":
        problems = problems_of(webhook_client_secret=token)
        path = "webhook_client_secret"
    else:
        problems = problems_of(credentials={"kind": "oauth", "client_id": "c-1", "client_secret": "s-1",
                                            "refresh_token": token})
        path = "credentials.refresh_token"
    assert list(problems) == [path] and "line break" in problems[path]
    assert token.strip() not in problems[path]


def test_sync_interval_and_overlap_have_a_maximum_the_scheduler_and_sync_can_take(tmp_path):
    """A century at most: beyond, every schedule and sync would raise OverflowError; at it,
    both still work."""
    from ._world import open_world

    with pytest.raises(ConfigError) as raised:
        parse_settings({**BASE, "sync_interval_seconds": 10**14, "sync_overlap_seconds": 10**11})
    assert set(raised.value.problems) == {"sync_interval_seconds", "sync_overlap_seconds"}
    longest = 36_500 * 86_400
    with open_world(tmp_path) as world:
        world.configure(sync_interval_seconds=longest, sync_overlap_seconds=longest)
        world.runtime.schedule_due_syncs()
        world.deal(dealname="One")
        assert world.sync().created == 1
        assert world.sync().created == 0
