"""Unit-level pieces of the HubSpot client: retry policy, limiter, settings, search re-anchoring."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ambac_hubspot_plugin._ratelimit import RateBudget, RateLimiter, budget_for_tier, shared_limiter
from ambac_hubspot_plugin._retry import (
    Failure,
    FailureKind,
    RetryPolicy,
    parse_error_body,
    parse_rate_limit_window,
    parse_retry_after,
)
from ambac_hubspot_plugin._search_plan import SearchPlan
from ambac_hubspot_plugin.client import (
    ClientSettings,
    ClientStats,
    Deal,
    OAuthApp,
    Stage,
    StaticToken,
    parse_timestamp,
)
from ambac_hubspot_plugin.errors import ConfigError

UTC = UTC


# -- retry policy ---------------------------------------------------------------------------


def test_backoff_is_full_jitter_under_a_capped_exponential() -> None:
    """Each retry waits between 0 and min(cap, base * 2**(n-1)) seconds."""
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=4.0, max_elapsed=1000)
    rng = random.Random(7)
    for retry in range(1, 9):
        ceiling = min(4.0, 0.5 * 2 ** (retry - 1))
        waits = [policy.delay(retry, Failure(FailureKind.SERVER_ERROR), rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # jitter spans the range, not a constant


def test_retry_after_is_a_floor_for_the_wait() -> None:
    """A server's Retry-After is never shortened by the jitter."""
    policy = RetryPolicy(base_delay=0.1, max_delay=0.2)
    rng = random.Random(1)
    waits = {
        policy.delay(1, Failure(FailureKind.RATE_LIMITED, retry_after=3.0), rng) for _ in range(50)
    }
    assert waits == {3.0}


@pytest.mark.parametrize(
    ("failure", "floor"),
    [
        (Failure(FailureKind.RATE_LIMITED, policy_name="TEN_SECONDLY_ROLLING"), 10.0),
        (Failure(FailureKind.RATE_LIMITED, policy_name="SECONDLY"), 1.0),
        (Failure(FailureKind.RATE_LIMITED), 10.0),
        (Failure(FailureKind.RATE_LIMITED, policy_name="SECONDLY", window=2.5), 2.5),
        (Failure(FailureKind.RATE_LIMITED, retry_after=0.5, window=10.0), 0.5),
    ],
    ids=["ten-secondly", "secondly", "no-policy", "announced-window", "retry-after-wins"],
)
def test_a_429_without_retry_after_waits_out_the_window(failure: Failure, floor: float) -> None:
    """A 429 with no Retry-After waits the announced window, else its policy's, else 10 s."""
    policy = RetryPolicy(base_delay=0.1, max_delay=0.2)
    rng = random.Random(1)
    assert {policy.delay(1, failure, rng) for _ in range(20)} == {floor}


def test_a_server_error_without_retry_after_keeps_plain_backoff() -> None:
    """Only 429s get the rate-limit window as a floor; a 5xx without Retry-After is jittered."""
    policy = RetryPolicy(base_delay=0.1, max_delay=0.2)
    assert Failure(FailureKind.SERVER_ERROR, window=10.0).min_wait() is None
    assert policy.delay(1, Failure(FailureKind.SERVER_ERROR), random.Random(1)) <= 0.1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10000", 10.0), ("2500", 2.5), ("0", None), ("-5", None), ("abc", None), ("nan", None)],
)
def test_rate_limit_interval_header_is_read_as_seconds(value: str, seconds: float | None) -> None:
    """X-HubSpot-RateLimit-Interval-Milliseconds becomes seconds, in any case; junk is absent."""
    assert parse_rate_limit_window({"x-hubspot-ratelimit-interval-MILLISECONDS": value}) == seconds
    assert parse_rate_limit_window({}) is None and parse_rate_limit_window(None) is None


def test_daily_limit_is_not_retried() -> None:
    """A 429 with policyName DAILY stops retrying at once; other 429s are retried."""
    policy = RetryPolicy()
    rng = random.Random(1)
    daily = Failure(FailureKind.RATE_LIMITED, policy_name="DAILY")
    rolling = Failure(FailureKind.RATE_LIMITED, policy_name="TEN_SECONDLY_ROLLING")
    assert policy.next_wait(1, daily, 0.0, rng, idempotent=True) is None
    assert policy.next_wait(1, rolling, 0.0, rng, idempotent=True) is not None


@pytest.mark.parametrize(
    ("kind", "retried"),
    [
        (FailureKind.RATE_LIMITED, True),
        (FailureKind.NOT_SENT, True),
        (FailureKind.SERVER_ERROR, False),
        (FailureKind.NETWORK, False),
    ],
)
def test_creates_are_retried_only_when_provably_unprocessed(
    kind: FailureKind, retried: bool
) -> None:
    """A non-idempotent request is re-sent only after a 429 or a connection that never opened."""
    policy = RetryPolicy()
    wait = policy.next_wait(1, Failure(kind), 0.0, random.Random(1), idempotent=False)
    assert (wait is not None) is retried


def test_retries_stop_at_the_attempt_and_time_bounds() -> None:
    """No wait is offered after max_attempts, nor one that would cross max_elapsed."""
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=1.0, max_elapsed=10.0)
    rng = random.Random(3)
    failure = Failure(FailureKind.SERVER_ERROR, retry_after=2.0)
    assert policy.next_wait(2, failure, 0.0, rng, idempotent=True) == 2.0
    assert policy.next_wait(3, failure, 0.0, rng, idempotent=True) is None
    assert policy.next_wait(1, failure, 8.5, rng, idempotent=True) is None


def test_retry_after_and_error_bodies_are_parsed_defensively() -> None:
    """Retry-After in seconds is read case-insensitively; dates, junk and non-JSON count as absent."""
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert parse_retry_after({"Retry-After": "-3"}) is None
    assert parse_retry_after(None) is None
    assert parse_error_body(b'{"policyName": "DAILY"}') == {"policyName": "DAILY"}
    assert parse_error_body("<html>502</html>") == {}
    assert parse_error_body("[1, 2]") == {}


# -- rate limiter ---------------------------------------------------------------------------


def test_tier_budgets_match_hubspot_limits() -> None:
    """Each tier maps to HubSpot's published 10-second burst; explicit numbers win."""
    assert {
        t: budget_for_tier(t).burst for t in ("free", "starter", "professional", "enterprise")
    } == {
        "free": 100,
        "starter": 100,
        "professional": 190,
        "enterprise": 190,
    }
    assert budget_for_tier("capacity_pack").burst == 250
    assert budget_for_tier("free", burst=42, search_per_second=2).search_per_second == 2
    assert (
        ClientSettings(auth=OAuthApp("id", "s", "r"), account_tier="enterprise").rate_budget().burst
        == 110
    )
    assert ClientSettings(auth=StaticToken("t"), burst_per_window=7).rate_budget().burst == 7
    with pytest.raises(ValueError, match="unknown HubSpot account tier"):
        budget_for_tier("platinum")


def test_limiter_never_exceeds_the_budget_in_any_window_across_threads() -> None:
    """Four threads share one limiter: no rolling window ever holds more than the burst.

    Each permit was granted at some time between the call and the return, both stamped: a
    window is over-full only when more than a burst of permits were both asked for and
    returned within it, so a thread the machine holds up after its permit cannot fail it."""
    budget = RateBudget(burst=5, window_seconds=0.4, search_per_second=50, margin_seconds=0.02)
    limiter = RateLimiter(budget)
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            asked = time.monotonic()
            assert limiter.acquire(search=False, timeout=10) is not None
            with lock:
                spans.append((asked, time.monotonic()))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(spans) == 20
    for start, _ in spans:
        inside = [span for span in spans if span[0] >= start and span[1] < start + budget.window_seconds]
        assert len(inside) <= budget.burst, sorted(spans)
    assert time.monotonic() - started >= 3 * budget.window_seconds


def test_limiter_search_budget_is_separate_and_tighter() -> None:
    """Searches wait for the per-second search budget even when the burst budget has room."""
    limiter = RateLimiter(
        RateBudget(burst=100, window_seconds=10, search_per_second=2, margin_seconds=0.0)
    )
    started = time.monotonic()
    for _ in range(5):
        assert limiter.acquire(search=True, timeout=10) is not None
    assert time.monotonic() - started >= 2.0


def test_limiter_wait_is_bounded() -> None:
    """A blocked acquire gives up after its timeout instead of waiting for the window."""
    limiter = RateLimiter(RateBudget(burst=1, window_seconds=30))
    assert limiter.acquire(search=False, timeout=1) is not None
    started = time.monotonic()
    assert limiter.acquire(search=False, timeout=0.3) is None
    assert time.monotonic() - started < 2


def test_shared_limiter_is_one_per_portal_and_app() -> None:
    """Clients of the same portal share a limiter; another portal gets its own."""
    budget = RateBudget(burst=10)
    a = ClientSettings(auth=StaticToken("t1"), portal_id="1", burst_per_window=10)
    b = ClientSettings(auth=StaticToken("t2"), portal_id="1", burst_per_window=10)
    c = ClientSettings(auth=StaticToken("t1"), portal_id="2", burst_per_window=10)
    assert shared_limiter(a.limiter_key(), budget) is shared_limiter(b.limiter_key(), budget)
    assert shared_limiter(a.limiter_key(), budget) is not shared_limiter(c.limiter_key(), budget)


# -- settings and records -------------------------------------------------------------------


@pytest.mark.parametrize("key", ["hapikey", "api_key", "apiKey"])
def test_api_keys_are_rejected_with_what_to_use_instead(key: str) -> None:
    """Settings carrying an API key fail naming the retirement date and the alternatives."""
    with pytest.raises(ConfigError) as info:
        ClientSettings.from_mapping({key: "abc-123", "auth": {"access_token": "pat-x"}})
    message = str(info.value)
    assert "2022-11-30" in message and "OAuth" in message and "access token" in message
    assert "abc-123" not in message


def test_settings_from_mapping_names_bad_fields() -> None:
    """Unknown keys and invalid values come back as one ConfigError."""
    with pytest.raises(ConfigError) as info:
        ClientSettings.from_mapping({"auth": {"access_token": "pat-x"}, "colour": "blue"})
    assert "colour" in str(info.value)
    good = ClientSettings.from_mapping(
        {
            "auth": {"client_id": "c", "client_secret": "s3cr3t", "refresh_token": "r3fr3sh"},
            "portal_id": "9",
        }
    )
    assert isinstance(good.auth, OAuthApp)


def test_api_version_is_one_the_path_table_knows() -> None:
    """ClientSettings takes exactly the api_versions the settings offer and the adapter's path
    table serves (default 2026-09); another is refused, naming it."""
    import typing

    from ambac_hubspot_plugin._api_paths import API_PATHS
    from ambac_hubspot_plugin.settings import ApiVersion

    assert set(API_PATHS) == set(typing.get_args(ApiVersion))
    assert ClientSettings(auth=StaticToken("pat-x")).api_version == "2026-09"
    for version in API_PATHS:
        assert ClientSettings(auth=StaticToken("pat-x"), api_version=version).api_version == version
    with pytest.raises(ValueError, match="api_version must be '2026-09' or 'v3', not 'v4'"):
        ClientSettings(auth=StaticToken("pat-x"), api_version="v4")


def test_secrets_never_appear_in_reprs() -> None:
    """Tokens and client secrets are left out of every settings repr."""
    settings = ClientSettings(
        auth=OAuthApp("client-1", "very-secret-value", "refresh-secret-value")
    )
    static = ClientSettings(auth=StaticToken("pat-na1-secret-token"))
    text = repr(settings) + str(settings) + repr(static) + repr(static.auth) + static.limiter_key()
    for secret in ("very-secret-value", "refresh-secret-value", "pat-na1-secret-token"):
        assert secret not in text
    assert "client-1" in repr(settings)


def test_timestamps_parse_from_iso_and_epoch_millis_to_utc() -> None:
    """ISO 8601 (Z or offset) and epoch milliseconds give the same tz-aware UTC instant."""
    want = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert parse_timestamp("2024-05-01T12:00:00.123Z") == want
    assert parse_timestamp("2024-05-01T14:00:00.123+02:00") == want
    assert parse_timestamp(str(int(want.timestamp() * 1000))) == want
    assert parse_timestamp(int(want.timestamp() * 1000)) == want
    assert parse_timestamp("") is None
    with pytest.raises(ValueError, match="yesterday"):
        parse_timestamp("yesterday")


def test_won_stage_needs_closed_and_certain() -> None:
    """A stage is won only when closed with probability exactly 1.0."""
    assert Stage("s", "Won", is_closed=True, probability=Decimal("1.0")).is_won
    assert not Stage("l", "Lost", is_closed=True, probability=Decimal("0.0")).is_won
    assert not Stage("c", "Contract", is_closed=False, probability=Decimal("1.0")).is_won


def test_records_are_immutable() -> None:
    """A record's properties cannot be changed after it was read."""
    deal = Deal(id="1", properties={"amount": "10"}, updated_at=datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(TypeError):
        deal.properties["amount"] = "20"  # type: ignore[index]  # the point of the test
    assert deal.object_type == "deals"


def test_stats_count_across_threads() -> None:
    """Concurrent updates are all counted."""
    stats = ClientStats()

    def work() -> None:
        for _ in range(1000):
            stats.record_call("deals.search")
            stats.record_retry()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = stats.snapshot()
    assert (
        snap.calls == {"deals.search": 4000} and snap.retries == 4000 and snap.total_calls == 4000
    )


def test_importing_the_client_port_does_not_import_the_sdk() -> None:
    """The port module and the package stay free of the hubspot SDK until a client is built."""
    code = (
        "import sys, ambac_hubspot_plugin.client, ambac_hubspot_plugin.errors;"
        "print('hubspot' in sys.modules, 'urllib3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_search_plan_and_the_token_keeper_are_testable_without_the_sdk() -> None:
    """The adapter's pure parts import neither the hubspot SDK nor its transport."""
    code = (
        "import sys, ambac_hubspot_plugin._search_plan, ambac_hubspot_plugin._oauth_tokens,"
        " ambac_hubspot_plugin._hubspot_wire, ambac_hubspot_plugin._hubspot_errors;"
        "print('hubspot' in sys.modules, 'urllib3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- search re-anchoring, against a model of HubSpot's search semantics --------------------


class ModelSearch:
    """HubSpot search semantics in memory: filters, first-sort-only ordering, the 10,000 cap.

    Only the first sort is honoured and ties come back in *descending* id order: the worst
    case the plan must survive if HubSpot ignores the secondary sort.
    """

    def __init__(self, rows: Sequence[tuple[str, int]]) -> None:
        self.rows = list(rows)  # (id, modified ms)
        self.requests: list[dict[str, Any]] = []

    def _match(self, row: tuple[str, int], flt: Mapping[str, Any]) -> bool:
        value = int(row[0]) if flt["propertyName"] == "hs_object_id" else row[1]
        target = int(flt["value"])
        return {
            "EQ": value == target,
            "GT": value > target,
            "GTE": value >= target,
            "LTE": value <= target,
        }[flt["operator"]]

    def search(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.requests.append(dict(body))
        after = int(body.get("after", 0))
        limit = body["limit"]
        assert after + limit <= 10_000, "HubSpot answers 400 past 10,000 results"
        groups = body["filterGroups"]
        rows = [
            r
            for r in self.rows
            if not groups or any(all(self._match(r, f) for f in g["filters"]) for g in groups)
        ]
        first = body["sorts"][0]  # the specs' form: a property name, ascending
        if first == "hs_object_id":
            rows.sort(key=lambda r: int(r[0]))
        else:
            rows.sort(key=lambda r: (r[1], -int(r[0])))
        page = rows[after : after + limit]
        data: dict[str, Any] = {
            "total": len(rows),
            "results": [
                {"id": i, "properties": {"hs_lastmodifieddate": str(ms), "hs_object_id": i}}
                for i, ms in page
            ],
        }
        if after + limit < len(rows):
            data["paging"] = {"next": {"after": str(after + limit)}}
        return data


def run_plan(model: ModelSearch, **kwargs: Any) -> Iterator[str]:
    plan = SearchPlan(modified_property="hs_lastmodifieddate", properties=("dealname",), **kwargs)
    request = plan.first()
    while request is not None:
        data = model.search(request.body())
        records = [
            Deal(
                id=item["id"],
                properties=item["properties"],
                updated_at=parse_timestamp(item["properties"]["hs_lastmodifieddate"]),
            )  # type: ignore[arg-type]  # never None here
            for item in data["results"]
        ]
        yield from (r.id for r in plan.accept(records))
        request = plan.next(records, (data.get("paging") or {}).get("next", {}).get("after"))


BASE_MS = 1_714_564_800_000


@pytest.mark.parametrize(
    "spread_ms",
    [
        pytest.param(60_000, id="same-minute"),
        pytest.param(1, id="same-millisecond"),
        pytest.param(7, id="seven-distinct-timestamps"),
    ],
)
def test_search_reads_25000_records_past_the_cap_exactly_once(spread_ms: int) -> None:
    """25,000 records inside one minute (or one millisecond) are all read once, never paging past 10,000."""
    rng = random.Random(spread_ms)
    rows = [(str(i), BASE_MS + rng.randrange(spread_ms)) for i in range(1, 25_001)]
    model = ModelSearch(rows)
    since = datetime.fromtimestamp(BASE_MS / 1000, tz=UTC)
    got = list(run_plan(model, since=since, until=None))
    assert len(got) == 25_000 and set(got) == {r[0] for r in rows}
    assert all(int(r.get("after", 0)) + r["limit"] <= 10_000 for r in model.requests)
    # Each big tie costs at most a page and a tie query's last page on top of the 125 pages.
    assert len(model.requests) <= 25_000 / 200 + 2 * min(spread_ms, 10) + 2


def test_search_keyset_mode_reads_everything_with_small_windows() -> None:
    """Re-anchoring on every page (window = page size) still reads each record exactly once."""
    rng = random.Random(5)
    rows = [(str(i), BASE_MS + rng.randrange(50)) for i in range(1, 3001)]
    model = ModelSearch(rows)
    got = list(run_plan(model, since=None, until=None, page_size=100, window=100))
    assert sorted(got, key=int) == [r[0] for r in rows]
    assert all(r["after"] == "0" for r in model.requests)  # every query from its first page


def test_search_respects_since_and_until() -> None:
    """Only records modified inside [since, until] are read."""
    rows = [(str(i), BASE_MS + i * 1000) for i in range(1, 101)]
    since = datetime.fromtimestamp((BASE_MS + 10_000) / 1000, tz=UTC)
    until = since + timedelta(seconds=9)
    got = list(run_plan(ModelSearch(rows), since=since, until=until, page_size=3))
    assert got == [str(i) for i in range(10, 20)]


@pytest.mark.parametrize("token", ["pat-x\r\n", "pat x", "pat-\u00e9", ""])
def test_a_credential_that_cannot_go_into_a_header_is_refused_without_quoting_it(token: str) -> None:
    with pytest.raises(ValueError, match="access_token") as info:
        StaticToken(token)
    assert not token.strip() or token.strip() not in str(info.value)


def test_from_mapping_names_every_bad_field_with_its_own_reason() -> None:
    """Three wrong fields are three problems, each naming its field and what is allowed (one
    field's mistake does not hide the next, nor is any of them just "invalid value")."""
    with pytest.raises(ConfigError) as info:
        ClientSettings.from_mapping({"auth": {"access_token": "pat-x"}, "base_url": "ftp://x",
                                     "account_tier": "gold", "api_version": "v9"})
    problems = info.value.problems
    assert set(problems) == {"base_url", "account_tier", "api_version"}
    assert "http(s)" in problems["base_url"] and "v3" in problems["api_version"]
    assert "gold" in problems["account_tier"] and "Attribute(" not in problems["account_tier"]


@pytest.mark.parametrize(("bad", "field"), [
    ({"burst_per_window": -3}, "burst_per_window"), ({"window_seconds": -5}, "window_seconds"),
    ({"search_per_second": 0}, "search_per_second"), ({"rate_limit_wait_seconds": -1}, "rate_limit_wait_seconds"),
    ({"refresh_margin_seconds": -10}, "refresh_margin_seconds"), ({"connect_timeout": "inf"}, "connect_timeout"),
    ({"read_timeout": float("nan")}, "read_timeout"), ({"burst_per_window": 2.9}, "burst_per_window"),
    ({"burst_per_window": True}, "burst_per_window"), ({"retry": {"max_attempts": 2.9}}, "retry.max_attempts"),
    ({"portal_id": 5}, "portal_id"),
])
def test_from_mapping_refuses_numbers_out_of_range_or_of_the_wrong_type(bad: dict[str, Any], field: str) -> None:
    """Never coerced: "inf" is not a timeout of infinity, 2.9 attempts are not 2."""
    with pytest.raises(ConfigError) as info:
        ClientSettings.from_mapping({"auth": {"access_token": "pat-x"}, **bad})
    assert list(info.value.problems) == [field]


@pytest.mark.parametrize(("url", "ok"), [
    ("https://api.hubapi.com", True), ("http://127.0.0.1:8080", True), ("http://localhost:9", True),
    ("http://[::1]:9", True), ("http://api.hubapi.com", False), ("http://10.0.0.8", False),
    ("http://localhost.evil.example", False), ("http://127.0.0.1.nip.io", False),
    ("https://api.hubapi.com?x=1", False), ("https://api.hubapi.com#f", False), ("https://", False),
])
def test_base_url_is_https_but_on_this_machine(url: str, ok: bool) -> None:
    """Plain http would send the token in clear text across a network: only loopback may."""
    if ok:
        assert ClientSettings.from_mapping({"auth": {"access_token": "pat-x"}, "base_url": url}).base_url == url
    else:
        with pytest.raises(ConfigError) as info:
            ClientSettings.from_mapping({"auth": {"access_token": "pat-x"}, "base_url": url})
        assert list(info.value.problems) == ["base_url"]


@pytest.mark.parametrize("answer", [
    {"access_token": None, "expires_in": 1800}, {"access_token": "", "expires_in": 1800},
    {"access_token": "tok\r\n", "expires_in": 1800}, {"access_token": 5, "expires_in": 1800},
    {"access_token": "tok", "expires_in": -1}, {"access_token": "tok", "expires_in": "soon"},
    {"access_token": "tok", "expires_in": float("inf")}, {"access_token": "tok", "refresh_token": 7, "expires_in": 60},
    {"expires_in": 1800}, [],
], ids=["null", "empty", "line-break", "number", "negative", "text-ttl", "inf", "number-refresh", "missing", "list"])
def test_a_token_answer_hubspot_never_sends_is_an_auth_error_not_a_bearer_none(answer: Any) -> None:
    from ambac_hubspot_plugin._oauth_tokens import read_token_answer
    from ambac_hubspot_plugin.errors import HubSpotAuthError

    with pytest.raises(HubSpotAuthError):
        read_token_answer(answer)
    assert read_token_answer({"access_token": "tok", "refresh_token": "r", "expires_in": 1800}) == ("tok", "r", 1800.0)
