"""The sandbox's HTTP behaviour: auth, OAuth, rate limits, faults, request log, keep-alive."""

from __future__ import annotations

import http.client
import json

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.deals import ApiException

from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from ._clock import ManualClock as FakeClock


def call(
    hs: Sandbox,
    method: str = "GET",
    path: str = "/crm/v3/objects/deals",
    token: str | None = None,
    **kwargs: object,
) -> requests.Response:
    token = hs.access_token if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, hs.base_url + path, headers=headers, timeout=5, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- auth
def test_missing_and_wrong_tokens_are_401(hs: Sandbox) -> None:
    """No token or an unknown token gets 401 INVALID_AUTHENTICATION with HubSpot's error body."""
    for token in ("", "pat-na1-wrong"):
        answer = call(hs, token=token)
        assert answer.status_code == 401
        body = answer.json()
        assert body["category"] == "INVALID_AUTHENTICATION"
        assert body["status"] == "error"
        assert body["correlationId"]


def test_hapikey_is_refused_with_a_clear_message(hs: Sandbox) -> None:
    """A ``hapikey`` query parameter is a 401 whose message says API keys are gone."""
    answer = call(hs, path="/crm/v3/objects/deals?hapikey=abc")
    assert answer.status_code == 401
    assert "sunset" in answer.json()["message"]


def test_sdk_sees_401_as_api_exception(hs: Sandbox) -> None:
    """The real SDK raises its ApiException with status 401 for a wrong token."""
    client = HubSpot(access_token="nope", host=hs.base_url)
    with pytest.raises(ApiException) as caught:
        client.crm.deals.basic_api.get_page()
    assert caught.value.status == 401


def test_oauth_refresh_issues_expiring_tokens(hs: Sandbox, clock: FakeClock) -> None:
    """A refresh grant returns a bearer token that works until ``expires_in`` passes, then 401
    EXPIRED.
    """
    hs.add_oauth_app("client-1", "secret-1", "refresh-1", access_token_ttl_seconds=1800)
    answer = requests.post(
        hs.base_url + "/oauth/v1/token",
        timeout=5,
        data={
            "grant_type": "refresh_token",
            "client_id": "client-1",
            "client_secret": "secret-1",
            "refresh_token": "refresh-1",
        },
    )
    assert answer.status_code == 200
    token = answer.json()
    assert token["expires_in"] == 1800
    assert token["refresh_token"] == "refresh-1"
    assert token["token_type"] == "bearer"
    assert call(hs, token=token["access_token"]).status_code == 200
    clock.advance(1800)
    expired = call(hs, token=token["access_token"])
    assert expired.status_code == 401
    assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"


def test_oauth_refresh_with_sdk_and_bad_credentials(hs: Sandbox) -> None:
    """The SDK's token API refreshes; a wrong secret or refresh token is a 400."""
    hs.add_oauth_app("client-1", "secret-1", "refresh-1")
    client = HubSpot(host=hs.base_url)
    tokens = client.oauth.tokens_api.create(
        grant_type="refresh_token",
        client_id="client-1",
        client_secret="secret-1",
        refresh_token="refresh-1",
    )
    assert call(hs, token=tokens.access_token).status_code == 200
    for secret, refresh in (("wrong", "refresh-1"), ("secret-1", "wrong")):
        answer = requests.post(
            hs.base_url + "/oauth/v1/token",
            timeout=5,
            data={
                "grant_type": "refresh_token",
                "client_id": "client-1",
                "client_secret": secret,
                "refresh_token": refresh,
            },
        )
        assert answer.status_code == 400


def test_dated_token_endpoint_refreshes_and_refuses_in_rfc6749_shape(
    hs: Sandbox, clock: FakeClock
) -> None:
    """POST /oauth/2026-03/token issues expiring tokens from the form; refusals (bad secret,
    revoked refresh token, credentials only in the query string) are 400 with ``error`` and
    ``error_description``.
    """
    app = hs.add_oauth_app("client-1", "secret-1", "refresh-1", access_token_ttl_seconds=600)
    form = {
        "grant_type": "refresh_token",
        "client_id": "client-1",
        "client_secret": "secret-1",
        "refresh_token": "refresh-1",
    }
    url = hs.base_url + "/oauth/2026-03/token"
    answer = requests.post(url, data=form, timeout=5)
    assert answer.status_code == 200
    token = answer.json()
    assert (token["expires_in"], token["token_use"]) == (600, "access_token")
    assert call(hs, token=token["access_token"]).status_code == 200
    clock.advance(600)
    assert call(hs, token=token["access_token"]).status_code == 401

    def refused(**kwargs: object) -> dict[str, str]:
        answer = requests.post(url, timeout=5, **kwargs)  # type: ignore[arg-type]
        assert answer.status_code == 400
        body: dict[str, str] = answer.json()
        assert body["error_description"] and body["correlationId"]
        return body

    assert refused(data={**form, "client_secret": "wrong"})["error"] == "invalid_client"
    assert refused(params=form)["error"] == "unsupported_grant_type"
    hs.revoke_refresh_token(app)
    assert refused(data=form)["error"] == "invalid_grant"
    v1 = requests.post(hs.base_url + "/oauth/v1/token", data=form, timeout=5).json()
    assert v1["status"] == "BAD_REFRESH_TOKEN" and "error" not in v1


def test_expire_access_tokens_keeps_private_app_token(hs: Sandbox) -> None:
    """``expire_access_tokens`` expires OAuth tokens only; the private-app token keeps working."""
    app = hs.add_oauth_app("c", "s", "r")
    token = hs.issue_access_token(app)
    hs.expire_access_tokens()
    assert call(hs, token=token).json()["category"] == "EXPIRED_AUTHENTICATION"
    assert call(hs).status_code == 200


def test_app_secrets_stay_out_of_repr(hs: Sandbox) -> None:
    """An app's repr never shows its client secret or refresh token."""
    app = hs.add_oauth_app("client-x", "very-secret", "very-refresh")
    assert "very-secret" not in repr(app)
    assert "very-refresh" not in repr(app)


# -------------------------------------------------------------------- rate limits
def test_burst_limit_429_without_retry_after(clock: FakeClock) -> None:
    """Over the ten-secondly budget: HubSpot's 429 body and headers, counted in stats."""
    with Sandbox(clock=clock, rate_limits=RateLimits(burst_per_10s=3, retry_after=False)) as hs:
        answers = [call(hs) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "3"
        assert answers[0].headers["X-HubSpot-RateLimit-Remaining"] == "2"
        assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        body = answers[3].json()
        assert body["errorType"] == "RATE_LIMIT"
        assert body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        assert "Retry-After" not in answers[3].headers
        assert hs.stats.rate_limited == 1
        clock.advance(10)
        assert call(hs).status_code == 200


def test_burst_limit_with_retry_after(clock: FakeClock) -> None:
    """With ``retry_after=True`` a 429 carries Retry-After in whole seconds."""
    with Sandbox(clock=clock, rate_limits=RateLimits(burst_per_10s=1, retry_after=True)) as hs:
        call(hs)
        clock.advance(4)
        answer = call(hs)
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "6"


def test_search_secondly_limit_is_separate(clock: FakeClock) -> None:
    """Search has its own per-second budget (SECONDLY) that plain calls do not consume."""
    limits = RateLimits(
        burst_per_10s=100, search_per_second=2, retry_after=False, search_retry_after=True
    )
    with Sandbox(clock=clock, rate_limits=limits) as hs:
        body = {"filterGroups": [], "limit": 1}
        codes = [
            call(hs, "POST", "/crm/v3/objects/deals/search", json=body).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        limited = call(hs, "POST", "/crm/v3/objects/deals/search", json=body)
        assert limited.json()["policyName"] == "SECONDLY"
        assert "Retry-After" in limited.headers
        assert call(hs).status_code == 200
        clock.advance(1)
        assert call(hs, "POST", "/crm/v3/objects/deals/search", json=body).status_code == 200
        assert hs.stats.rate_limited_search == 2


def test_limits_are_per_app(clock: FakeClock) -> None:
    """Each app (token owner) has its own budget."""
    with Sandbox(clock=clock, rate_limits=RateLimits(burst_per_10s=1)) as hs:
        other = hs.issue_access_token(hs.add_oauth_app("c", "s", "r"))
        assert call(hs).status_code == 200
        assert call(hs).status_code == 429
        assert call(hs, token=other).status_code == 200
        hs.set_rate_limits(RateLimits.unlimited())
        assert call(hs).status_code == 200


# ------------------------------------------------------------------------- faults
def test_fail_next_matches_prefix_and_method(hs: Sandbox) -> None:
    """``fail_next`` fails exactly N matching calls with the status, body and Retry-After given."""
    hs.faults.fail_next(
        2,
        status=502,
        path_prefix="/crm/v3/objects/deals",
        method="GET",
        retry_after=3,
        body={"message": "bad gateway"},
    )
    assert call(hs, path="/crm/v3/objects/companies").status_code == 200
    first = call(hs)
    assert first.status_code == 502
    assert first.json() == {"message": "bad gateway"}
    assert first.headers["Retry-After"] == "3"
    assert call(hs).status_code == 502
    assert call(hs).status_code == 200
    assert hs.stats.faults_injected == 2


def test_rate_limit_next_sends_hubspots_429_without_retry_after(hs: Sandbox) -> None:
    """``rate_limit_next`` answers HubSpot's 429 body with the interval header, or with no header at all."""
    hs.faults.rate_limit_next(1, interval_ms=2500, path_prefix="/crm/v3/objects/deals")
    hs.faults.rate_limit_next(1, policy="SECONDLY", interval_ms=None)
    first = call(hs)
    assert first.status_code == 429
    assert first.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert first.json()["errorType"] == "RATE_LIMIT"
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "2500"
    assert "Retry-After" not in first.headers
    second = call(hs, path="/crm/v3/objects/companies")
    assert second.status_code == 429
    assert second.json()["message"] == "You have reached your secondly limit."
    assert "X-HubSpot-RateLimit-Interval-Milliseconds" not in second.headers
    assert "Retry-After" not in second.headers
    assert call(hs).status_code == 200


def test_fail_next_default_is_503_with_error_body(hs: Sandbox) -> None:
    """Without a body the injected failure looks like a HubSpot error."""
    hs.faults.fail_next(1)
    answer = call(hs)
    assert answer.status_code == 503
    assert answer.json()["status"] == "error"


def test_reset_connection_next_drops_the_connection(hs: Sandbox) -> None:
    """``reset_connection_next`` closes the socket without any answer, once."""
    hs.faults.reset_connection_next(1, path_prefix="/crm")
    with pytest.raises(requests.ConnectionError):
        call(hs)
    assert call(hs).status_code == 200
    assert hs.stats.connections_reset == 1
    assert hs.requests[0].status == 0


def test_latency_slows_matching_calls(hs: Sandbox) -> None:
    """``latency`` adds its delay to matching calls until cleared."""
    hs.faults.latency(1.0, path_prefix="/crm/v3/objects/deals")  # far above a busy machine's delays
    slow = call(hs)
    fast = call(hs, path="/crm/v3/objects/companies")
    assert slow.elapsed.total_seconds() >= 1.0
    assert fast.elapsed.total_seconds() < 1.0
    hs.faults.clear()
    assert call(hs).elapsed.total_seconds() < 1.0


# -------------------------------------------------------------- log and transport
def test_request_log_records_each_call(hs: Sandbox) -> None:
    """Every request is logged with method, path, query and status; ``clear_requests`` empties the
    log.
    """
    call(hs, path="/crm/v3/objects/deals?limit=5")
    call(hs, token="bad")
    records = hs.requests
    assert [(r.method, r.path, r.query, r.status) for r in records] == [
        ("GET", "/crm/v3/objects/deals", "limit=5", 200),
        ("GET", "/crm/v3/objects/deals", "", 401),
    ]
    assert records[0].app_id == hs.app_id
    assert records[0].duration >= 0
    hs.clear_requests()
    assert hs.requests == []


def test_keep_alive_serves_many_requests_on_one_connection(hs: Sandbox) -> None:
    """HTTP/1.1 keep-alive: one connection carries several requests, each with Content-Length."""
    connection = http.client.HTTPConnection("127.0.0.1", hs.port, timeout=5)
    for _ in range(3):
        connection.request(
            "GET", "/crm/v3/objects/deals", headers={"Authorization": f"Bearer {hs.access_token}"}
        )
        response = connection.getresponse()
        assert response.getheader("Content-Length") is not None
        response.read()
        assert response.status == 200
    connection.close()


def test_unknown_route_is_404(hs: Sandbox) -> None:
    """A path the sandbox does not serve answers 404 with an error body."""
    answer = call(hs, path="/crm/v3/nothing/here")
    assert answer.status_code == 404
    assert answer.json()["status"] == "error"


def test_bad_json_is_400(hs: Sandbox) -> None:
    """A body that is not JSON is a 400 VALIDATION_ERROR."""
    answer = call(hs, "POST", data=b"{nope")
    assert answer.status_code == 400


def test_cli_serves_a_seeded_portal() -> None:
    """``ambac-hubspot sandbox`` prints base URL, token and portal id, then serves seeded deals."""
    import subprocess
    import sys

    code = (
        "from ambac_hubspot_plugin.sandbox._cli import sandbox_command;"
        "sandbox_command(['--port', '0', '--seed-deals', '7', '--no-rate-limits'])"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        lines = {}
        assert process.stdout is not None
        while len(lines) < 3:
            key, _, value = process.stdout.readline().partition(":")
            lines[key.strip()] = value.strip()
        answer = requests.get(
            lines["base URL"] + "/crm/v3/objects/deals?limit=100",
            headers={"Authorization": f"Bearer {lines['access token']}"},
            timeout=5,
        )
        assert len(answer.json()["results"]) == 7
        assert lines["portal id"] == "12345678"
    finally:
        process.terminate()
        process.wait(5)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize(("headers", "status"), [
    ("Content-Length: abc", 400),
    ("Content-Length: -5", 400),
    ("Content-Length: 5\nContent-Length: 6", 400),
    ("Content-Length: 1000000000000", 413),
    ("Transfer-Encoding: chunked", 411),
])
def test_bad_body_lengths_are_refused_unread_and_the_connection_closed(
    hs: Sandbox, headers: str, status: int
) -> None:
    """A Content-Length that is not one number is a 400, a huge one a 413 and a chunked body a
    411, answered at once in HubSpot's error shape; the connection, whose body was not read,
    is closed rather than kept alive."""
    from ._raw_http import exchange

    answer = exchange(hs.port, f"POST /crm/v3/objects/deals HTTP/1.1\nHost: 127.0.0.1\n"
                               f"Authorization: Bearer {hs.access_token}\n{headers}")
    assert answer.status == status
    assert json.loads(answer.body)["status"] == "error"
    assert answer.closed
    assert not hs.portal.objects["deals"]
