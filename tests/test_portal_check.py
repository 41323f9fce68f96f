"""``portal_id`` against the account the credentials belong to: the client reads it (real SDK,
sandbox on loopback, both path families), the ``portal`` check reports it, and the engines of
a tenant that never synced refuse to run while the two differ."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ambac_hubspot_plugin._checks import run_checks
from ambac_hubspot_plugin._ratelimit import RateLimiter
from ambac_hubspot_plugin._retry import RetryPolicy
from ambac_hubspot_plugin.client import ClientSettings, RateBudget, StaticToken, build_client
from ambac_hubspot_plugin.errors import HubSpotApiError, HubSpotUnavailableError, PortalMismatchError
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox
from ambac_hubspot_plugin.settings import parse_settings
from ambac_hubspot_plugin.store import utc_now

from ._world import PluginWorld, open_world, plugin_settings

OTHER = "99999"  # an account id that is not the sandbox portal's


@pytest.fixture
def hs() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=RateLimits.unlimited()) as sandbox:
        yield sandbox


def _client(hs: Sandbox, **kw: Any) -> Any:
    settings = ClientSettings(auth=StaticToken(hs.access_token), base_url=hs.base_url, portal_id=str(hs.portal_id),
                              retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01), **kw)
    return build_client(settings, limiter=RateLimiter(RateBudget(burst=10_000)))


@pytest.mark.parametrize("api_version", ["2026-09", "v3"])
def test_the_client_reads_the_account_its_credentials_belong_to(hs: Sandbox, api_version: str) -> None:
    client = _client(hs, api_version=api_version)
    try:
        assert client.account_portal_id() == str(hs.portal_id)
    finally:
        client.close()
    assert [r.path for r in hs.requests][-1].startswith("/account-info/")


@pytest.mark.parametrize("body", [{"portalId": True}, {"portalId": 1.5}, {"portalId": "123"},
                                  {"portalId": 0}, {"portalId": None}, {"accountType": "STANDARD"}, []])
def test_an_account_id_that_is_not_a_positive_whole_number_is_a_malformed_answer(hs: Sandbox, body: Any) -> None:
    hs.faults.fail_next(1, status=200, path_prefix="/account-info/", body=body)
    client = _client(hs)
    try:
        with pytest.raises(HubSpotApiError) as info:
            client.account_portal_id()
    finally:
        client.close()
    assert info.value.operation == "account.details"


def test_the_account_probe_is_not_retried(hs: Sandbox) -> None:
    """One attempt: during an outage the caller's next calls retry; a retried probe before
    them would double the wait of every job (and hold the worker that long)."""
    hs.faults.fail_next(5, status=503, path_prefix="/account-info/")
    client = _client(hs)
    try:
        with pytest.raises(HubSpotUnavailableError):
            client.account_portal_id()
    finally:
        client.close()
    assert sum(r.path.startswith("/account-info/") for r in hs.requests) == 1


def _portal_check(hs: Sandbox, portal_id: str) -> Any:
    settings = parse_settings(plugin_settings(hs, portal_id=portal_id))
    client = build_client(ClientSettings.from_plugin_settings(settings),
                          limiter=RateLimiter(RateBudget(burst=10_000)))
    try:
        return run_checks(settings, client, 7, clock=utc_now, checks=("token", "portal")).get("portal")
    finally:
        client.close()


def test_the_portal_check_passes_for_the_tokens_account_and_names_it_otherwise(hs: Sandbox) -> None:
    assert _portal_check(hs, str(hs.portal_id)).status == "ok"
    failed = _portal_check(hs, OTHER)
    assert failed.status == "failed"
    assert f"account {hs.portal_id}" in failed.summary and OTHER in failed.summary
    assert f"Set portal_id to {hs.portal_id}" in failed.fix and "troubleshooting" in failed.fix
    assert hs.access_token not in failed.summary + failed.fix


def test_a_hubspot_that_will_not_say_whose_account_it_is_makes_a_warning(hs: Sandbox) -> None:
    hs.faults.fail_next(1, status=403, path_prefix="/account-info/")
    result = _portal_check(hs, str(hs.portal_id))
    assert result.status == "warning" and "not checked" in result.summary


def _mismatched(hs: Sandbox) -> dict[str, Any]:
    return plugin_settings(hs, portal_id=OTHER)


def test_a_new_tenant_whose_token_is_another_accounts_reads_and_writes_nothing(tmp_path: Path) -> None:
    """The typo of a new setup: enable reports the failed check, and syncs and pushes refuse to
    start (asking HubSpot nothing but whose account it is) until portal_id is corrected."""
    with open_world(tmp_path, settings=_mismatched, check_enabled=False) as world:
        (report,) = [r for r in world.host.enable_plugin(world.tenant, "hubspot", world.settings) if r]
        assert not report.ok and "portal" in str(report)
        deal = world.deal(dealname="Won")
        world.hubspot.clear_requests()
        with pytest.raises(PortalMismatchError) as info:
            world.sync()
        assert info.value.actual == str(world.hubspot.portal_id) and "portal_id" in info.value.problems
        with pytest.raises(PortalMismatchError):
            world.runtime.outbound(world.tenant)
        assert {r.path.split("/")[1] for r in world.hubspot.requests} == {"account-info"}
        assert world.services.find_order_by_external_id(f"hubspot:{OTHER}:deal:{deal}") is None

        world.configure(portal_id=str(world.hubspot.portal_id))
        assert world.sync().created == 1
        assert world.order_for(deal) is not None


def test_a_tenant_that_synced_under_a_mismatched_portal_id_goes_on_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Changing its portal_id would make its orders again: it keeps syncing under the id it has."""
    with open_world(tmp_path, settings=_mismatched, check_enabled=False) as world:
        world.store.create_links(world.tenant, OTHER, [("deal", "1", "order", "1", {})])
        deal = world.deal(dealname="Won")
        with caplog.at_level(logging.WARNING, logger="ambac_hubspot_plugin._engines"):
            assert world.sync().created == 1
        assert world.services.find_order_by_external_id(f"hubspot:{OTHER}:deal:{deal}") is not None
        assert any("has synced before" in r.getMessage() for r in caplog.records)


def _account_calls(world: PluginWorld) -> int:
    return sum(r.path.startswith("/account-info/") for r in world.hubspot.requests)


def test_the_account_is_asked_once_per_client_and_again_after_a_failed_answer(tmp_path: Path) -> None:
    """A check that passed (or a 403: HubSpot will not say) holds for the client's life; an
    answer that said nothing (an error) does not stop the sync and is asked again next time;
    new settings (a new client) are checked again."""
    with open_world(tmp_path) as world:
        world.hubspot.clear_requests()
        world.hubspot.faults.fail_next(1, status=400, path_prefix="/account-info/")
        world.deal(dealname="One")
        assert world.sync().created == 1
        world.deal(dealname="Two")
        assert world.sync().created == 1
        world.sync()
        assert _account_calls(world) == 2
        world.configure(sync_overlap_seconds=120)  # its connection check asks too
        world.hubspot.clear_requests()
        world.hubspot.faults.fail_next(1, status=403, path_prefix="/account-info/")
        world.sync()
        world.sync()
        assert _account_calls(world) == 1
