"""The HubSpot client through the real SDK against the sandbox emulator on loopback."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from ambac_hubspot_plugin._ratelimit import RateBudget, RateLimiter
from ambac_hubspot_plugin._retry import RetryPolicy
from ambac_hubspot_plugin.client import (
    ClientSettings,
    HubSpotClient,
    OAuthApp,
    PropertySpec,
    StaticToken,
    build_client,
)
from ambac_hubspot_plugin.errors import (
    HubSpotApiError,
    HubSpotAuthError,
    HubSpotUnavailableError,
    RateLimitedError,
)

from ._clock import ManualClock

sandbox_pkg = pytest.importorskip(
    "ambac_hubspot_plugin.sandbox", reason="the sandbox emulator package is missing"
)
Sandbox = sandbox_pkg.Sandbox
RateLimits = sandbox_pkg.RateLimits

UTC = UTC
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.1, max_elapsed=30)
SEARCH = "/crm/objects/2026-09/deals/search"


@pytest.fixture
def hs() -> Iterator[Any]:
    with Sandbox(rate_limits=RateLimits.unlimited()) as sandbox:
        yield sandbox


ClientFactory = Callable[..., HubSpotClient]


@pytest.fixture
def make_client(hs: Any) -> Iterator[ClientFactory]:
    clients: list[HubSpotClient] = []

    def make(
        auth: Any = None, *, search_per_second: int = 1000, burst: int = 100_000, **kw: Any
    ) -> HubSpotClient:
        clock = kw.pop("clock", _utc)
        sleep = kw.pop("sleep", time.sleep)
        settings = ClientSettings(
            auth=auth or StaticToken(hs.access_token),
            base_url=hs.base_url,
            portal_id=str(hs.portal_id),
            retry=kw.pop("retry", FAST_RETRY),
            connect_timeout=2,
            read_timeout=10,
            **kw,
        )
        limiter = RateLimiter(
            RateBudget(burst=burst, window_seconds=10, search_per_second=search_per_second)
        )
        client = build_client(
            settings, limiter=limiter, rng=random.Random(0), clock=clock, sleep=sleep
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _utc() -> datetime:
    return datetime.now(UTC)


def _log(hs: Any) -> list[Any]:
    """The sandbox request log once it settles: it logs a request just after answering it."""
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        now = len(hs.requests)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since > 0.05:
            break
        time.sleep(0.01)
    return list(hs.requests)


def _searches(hs: Any) -> list[Any]:
    return [r for r in _log(hs) if r.path.endswith("/search")]


# -- rate limits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "retry_after", [True, False], ids=["with-retry-after", "without-retry-after"]
)
def test_search_429_storm_completes_without_losing_records(
    hs: Any, make_client: ClientFactory, retry_after: bool
) -> None:
    """Searches answered 429 by HubSpot's per-second limit are retried until every deal is read."""
    hs.seed(companies=2, contacts=2, deals=1200, seed=3)
    hs.set_rate_limits(RateLimits(burst_per_10s=None, search_per_second=2, retry_after=retry_after))
    # Our own limiter allows far more searches than the sandbox: a storm of 429s.
    client = make_client(
        retry=RetryPolicy(max_attempts=12, base_delay=0.2, max_delay=1.0, max_elapsed=30)
    )
    deals = list(client.iter_modified_deals(EPOCH, ["dealname"]))
    assert len(deals) == 1200 and len({d.id for d in deals}) == 1200
    snap = client.stats.snapshot()
    assert snap.rate_limited > 0 and snap.retries >= snap.rate_limited
    assert sum(1 for r in _searches(hs) if r.status == 429) == snap.rate_limited


@pytest.mark.parametrize(
    "retry_after", [0.05, None], ids=["with-retry-after", "without-retry-after"]
)
def test_batch_429_storm_completes_without_losing_records(
    hs: Any, make_client: ClientFactory, retry_after: float | None
) -> None:
    """Batch reads answered 429 (TEN_SECONDLY_ROLLING) are retried; every company comes back once."""
    ids = hs.seed(companies=450, contacts=1, deals=1, seed=4)["companies"]
    body = {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "policyName": "TEN_SECONDLY_ROLLING",
        "correlationId": "c-1",
    }
    hs.faults.fail_next(
        6,
        status=429,
        path_prefix="/crm/objects/2026-09/companies/batch",
        retry_after=retry_after,
        body=body,
    )
    # Without Retry-After each retry waits out the 10 s window: on a manual clock, not for real.
    clock = ManualClock()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    client = make_client(
        clock=clock,
        sleep=sleep,
        retry=RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.1, max_elapsed=120),
    )
    companies = list(client.read_companies(ids, ["name"]))
    assert sorted(c.id for c in companies) == sorted(ids)
    assert client.stats.snapshot().rate_limited == 6
    floor = retry_after if retry_after is not None else 10.0
    assert len(waits) == 6 and all(floor <= w <= max(floor, 0.1) for w in waits)


class _WindowClock(ManualClock):
    """One manual clock for the sandbox and the client; the client's sleeps move it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.advance(seconds)


def test_burst_429_without_retry_after_waits_out_the_window_and_succeeds() -> None:
    """A call refused by the sandbox's real 10 s burst limit waits the announced window once, then succeeds."""
    clock = _WindowClock()
    limits = RateLimits(burst_per_10s=3, search_per_second=None, retry_after=False)
    with Sandbox(rate_limits=limits, clock=clock) as hs:
        settings = ClientSettings(
            auth=StaticToken(hs.access_token),
            base_url=hs.base_url,
            portal_id=str(hs.portal_id),
            retry=RetryPolicy(),  # the defaults a tenant gets
            connect_timeout=2,
            read_timeout=10,
        )
        # Our limiter allows more than the sandbox, as when another app shares the portal.
        client = build_client(
            settings,
            limiter=RateLimiter(RateBudget(burst=1000)),
            rng=random.Random(0),
            clock=clock,
            sleep=clock.sleep,
        )
        try:
            pipelines = [client.get_pipelines() for _ in range(4)]
        finally:
            client.close()
        assert len(pipelines) == 4
        assert [r.status for r in _log(hs)] == [200, 200, 200, 429, 200]
    assert clock.waits == [10.0]


@pytest.mark.parametrize(
    ("interval_ms", "policy", "window"),
    [
        (2500, "TEN_SECONDLY_ROLLING", 2.5),
        (None, "TEN_SECONDLY_ROLLING", 10.0),
        (None, "SECONDLY", 1.0),
    ],
    ids=["interval-header", "no-header-ten-secondly", "no-header-secondly"],
)
def test_429_without_retry_after_waits_the_interval_header_else_the_policy_window(
    hs: Any, make_client: ClientFactory, interval_ms: int | None, policy: str, window: float
) -> None:
    """Without Retry-After the wait is X-HubSpot-RateLimit-Interval-Milliseconds, else the policy's window."""
    hs.faults.rate_limit_next(
        2, policy=policy, interval_ms=interval_ms, path_prefix="/crm/pipelines/2026-09"
    )
    clock = _WindowClock()
    client = make_client(clock=clock, sleep=clock.sleep, retry=RetryPolicy())
    assert client.get_pipelines() is not None
    assert clock.waits == [window, window]
    assert [r.status for r in _log(hs)] == [429, 429, 200]


def test_sandbox_burst_limit_is_never_hit_when_the_limiter_matches_it(
    hs: Any, make_client: ClientFactory
) -> None:
    """With our budget equal to the sandbox's, a burst of batch calls draws no 429."""
    ids = hs.seed(companies=10, contacts=1, deals=1, seed=5)["companies"]
    hs.set_rate_limits(RateLimits(burst_per_10s=30, search_per_second=None))
    client = make_client(burst=30)
    for _ in range(30):
        assert len(list(client.read_companies(ids[:1]))) == 1
    assert all(r.status == 200 for r in _log(hs))


def test_daily_limit_raises_at_once_with_the_policy(hs: Any, make_client: ClientFactory) -> None:
    """A DAILY 429 is not retried: RateLimitedError names the policy after one request."""
    body = {
        "status": "error",
        "message": "You have reached your daily limit.",
        "errorType": "RATE_LIMIT",
        "policyName": "DAILY",
        "correlationId": "c-daily",
    }
    hs.faults.fail_next(1, status=429, path_prefix="/crm/pipelines/2026-09", body=body)
    client = make_client()
    with pytest.raises(RateLimitedError) as info:
        client.get_pipelines()
    assert info.value.policy_name == "DAILY" and info.value.correlation_id == "c-daily"
    assert len(_log(hs)) == 1


# -- the 10,000 cap -------------------------------------------------------------------------


class SteppingClock:
    """A sandbox clock that advances by ``step`` on every reading, inside one minute."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self.now, self.step, self.lock = start, step, threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            self.now += self.step
            return self.now


@pytest.mark.parametrize("step_us", [0, 500], ids=["same-millisecond", "same-minute"])
def test_25000_deals_modified_in_one_minute_are_all_read(
    make_client: ClientFactory, step_us: int
) -> None:
    """An incremental read finds all 25,000 deals touched in one minute, no request past 10,000 results."""
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    clock = SteppingClock(start, timedelta(microseconds=step_us))
    with Sandbox(rate_limits=RateLimits.unlimited(), clock=clock) as hs:
        for i in range(25_000):
            hs.add_object(
                "deals", {"dealname": f"d{i}", "pipeline": "default", "dealstage": "closedwon"}
            )
        assert clock.now - start < timedelta(minutes=1)
        settings = ClientSettings(
            auth=StaticToken(hs.access_token), base_url=hs.base_url, retry=FAST_RETRY
        )
        client = build_client(
            settings, limiter=RateLimiter(RateBudget(burst=100_000, search_per_second=1000))
        )
        ids = [d.id for d in client.iter_modified_deals(start, ["dealname"])]
        client.close()
        assert len(ids) == 25_000 and len(set(ids)) == 25_000
        searches = _searches(hs)
        # The sandbox answers 400 to any request with after + limit > 10,000 (as HubSpot does).
        assert searches and all(r.status == 200 for r in searches)
        assert len(searches) <= 25_000 / 200 + 4


# -- OAuth ----------------------------------------------------------------------------------


def test_oauth_token_expiring_mid_read_is_refreshed_once(
    hs: Any, make_client: ClientFactory
) -> None:
    """An access token revoked mid-read is refreshed once; the read completes and creates are not doubled."""
    hs.seed(companies=1, contacts=1, deals=700, seed=6)
    hs.add_oauth_app("client-a", "secret-a", "refresh-a")
    client = make_client(OAuthApp("client-a", "secret-a", "refresh-a"), search_per_second=1000)
    seen = []
    for n, deal in enumerate(client.iter_modified_deals(EPOCH, ["dealname"])):
        seen.append(deal.id)
        if n == 250:
            hs.expire_access_tokens()
    assert len(seen) == 700 == len(set(seen))
    hs.expire_access_tokens()
    note_ids = [
        client.create_note_on_deal(seen[0], f"note {i}", datetime.now(UTC)) for i in range(3)
    ]
    snap = client.stats.snapshot()
    assert snap.refreshes == 3  # the first token, then one per expiry
    assert len(set(note_ids)) == 3
    assert sum(1 for r in _log(hs) if r.path == "/crm/objects/2026-09/notes" and r.status == 201) == 3


def test_oauth_refresh_is_done_once_for_many_threads(hs: Any, make_client: ClientFactory) -> None:
    """Eight threads that all hit an expired token cause a single refresh."""
    hs.add_oauth_app("client-b", "secret-b", "refresh-b")
    client = make_client(OAuthApp("client-b", "secret-b", "refresh-b"))
    client.get_pipelines()
    hs.expire_access_tokens()
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            client.get_pipelines()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert client.stats.snapshot().refreshes == 2
    assert sum(1 for r in _log(hs) if r.path == "/oauth/2026-03/token") == 2


def test_oauth_token_is_refreshed_ahead_of_expiry(hs: Any, make_client: ClientFactory) -> None:
    """A token near its expires_in is replaced before use, so HubSpot never sees it expired."""
    hs.add_oauth_app("client-c", "secret-c", "refresh-c", access_token_ttl_seconds=1800)
    now = [datetime.now(UTC)]
    client = make_client(
        OAuthApp("client-c", "secret-c", "refresh-c"),
        clock=lambda: now[0],
        refresh_margin_seconds=300,
    )
    client.get_pipelines()
    now[0] += timedelta(seconds=1800 - 299)
    client.get_pipelines()
    assert client.stats.snapshot().refreshes == 2
    assert all(r.status != 401 for r in _log(hs))


def test_bad_oauth_credentials_fail_without_showing_secrets(
    hs: Any, make_client: ClientFactory
) -> None:
    """A refused refresh raises HubSpotAuthError whose text holds neither secret nor token."""
    hs.add_oauth_app("client-d", "secret-d", "refresh-d")
    client = make_client(OAuthApp("client-d", "wrong-secret-value", "refresh-d-secret"))
    with pytest.raises(HubSpotApiError) as info:
        client.get_pipelines()
    text = str(info.value) + repr(info.value) + repr(client)
    assert "wrong-secret-value" not in text and "refresh-d-secret" not in text
    assert info.value.status in (400, 401)


@pytest.mark.parametrize(
    ("api_version", "token_path", "other_path"),
    [(None, "/oauth/2026-03/token", "/oauth/v1/token"), ("v3", "/oauth/v1/token", "/oauth/2026-03/token")],
    ids=["default-2026-09", "v3"],
)
def test_oauth_refresh_uses_the_token_path_of_the_api_version(
    hs: Any, make_client: ClientFactory, api_version: str | None, token_path: str, other_path: str
) -> None:
    """By default the token is refreshed on /oauth/2026-03/token (ahead of expiry and after a
    401) and the client keeps working; api_version 'v3' still refreshes on /oauth/v1/token.
    """
    hs.add_oauth_app("client-e", "secret-e", "refresh-e", access_token_ttl_seconds=1800)
    now = [datetime.now(UTC)]
    chosen = {} if api_version is None else {"api_version": api_version}
    client = make_client(
        OAuthApp("client-e", "secret-e", "refresh-e"),
        clock=lambda: now[0],
        refresh_margin_seconds=300,
        **chosen,
    )
    assert client.get_pipelines()
    now[0] += timedelta(seconds=1800 - 299)  # inside the margin: refreshed before use
    assert client.get_pipelines()
    hs.expire_access_tokens()  # expired behind the client's back: the 401 makes it refresh
    assert client.get_pipelines()
    assert client.stats.snapshot().refreshes == 3
    tokens = [r for r in _log(hs) if r.path.startswith("/oauth/")]
    assert [(r.path, r.status) for r in tokens] == [(token_path, 200)] * 3
    assert not any(r.path == other_path for r in _log(hs))


def test_revoked_refresh_token_on_2026_03_is_an_auth_error_saying_reconnect(
    hs: Any, make_client: ClientFactory
) -> None:
    """When the app's refresh token is revoked, the 2026-03 endpoint's invalid_grant becomes a
    HubSpotAuthError (not retried) that says to reconnect and shows no secret.
    """
    app = hs.add_oauth_app("client-f", "secret-f-value", "refresh-f-value")
    client = make_client(OAuthApp("client-f", "secret-f-value", "refresh-f-value"))
    client.get_pipelines()
    hs.revoke_refresh_token(app)
    hs.expire_access_tokens()
    with pytest.raises(HubSpotAuthError) as info:
        client.get_pipelines()
    error = info.value
    assert (error.status, error.category, error.operation) == (400, "invalid_grant", "oauth.refresh")
    assert "reconnect the app" in str(error)
    text = str(error) + repr(error) + repr(client) + str(error.__cause__)
    assert "secret-f-value" not in text and "refresh-f-value" not in text
    refreshes = [r for r in _log(hs) if r.path == "/oauth/2026-03/token"]
    assert [r.status for r in refreshes] == [200, 400]


def test_a_refresh_error_echoing_the_form_shows_no_secret(
    hs: Any, make_client: ClientFactory
) -> None:
    """An answer to the refresh that echoes the form (secrets URL-encoded, as sent) reaches the
    error, and the chained SDK exception, with every secret scrubbed.
    """
    secret, refresh = "cs/with+plus=and space", "na1-rt/9+x=="
    hs.add_oauth_app("client-g", secret, refresh)
    client = make_client(OAuthApp("client-g", secret, refresh))
    hs.faults.fail_next(1, status=400, path_prefix="/oauth/2026-03/token", echo_request=True)
    with pytest.raises(HubSpotAuthError) as info:
        client.get_pipelines()
    error = info.value
    text = str(error) + repr(error) + str(error.__cause__) + repr(vars(error.__cause__))
    assert "client-g" in text  # the echo did arrive; only the secrets are masked
    for value in (secret, refresh):
        for form in (value, quote_plus(value), quote(value, safe="")):
            assert form not in text


# -- batches and malformed answers ----------------------------------------------------------


def test_partial_batch_failures_come_back_per_item(hs: Any, make_client: ClientFactory) -> None:
    """A 207 batch update returns the written deals and one ItemError per unknown id."""
    ids = hs.seed(companies=1, contacts=1, deals=150, seed=7)["deals"]
    client = make_client()
    updates = {i: {"dealname": f"renamed {i}"} for i in ids}
    updates.update({"999000001": {"dealname": "x"}, "999000002": {"dealname": "y"}})
    result = client.update_objects("deals", updates)
    assert sorted(o.id for o in result.succeeded) == sorted(ids)
    assert sorted(e.id or "" for e in result.failed) == ["999000001", "999000002"]
    assert all(e.category == "OBJECT_NOT_FOUND" for e in result.failed)
    assert hs.get_object("deals", ids[0])["dealname"] == f"renamed {ids[0]}"
    assert sum(1 for r in _log(hs) if r.path.endswith("/batch/update")) == 2  # chunks of 100


def test_upsert_by_unique_property_is_idempotent(hs: Any, make_client: ClientFactory) -> None:
    """Re-sending an upsert keyed by a unique property updates the same deal, never duplicates it."""
    client = make_client()
    client.ensure_property_group("deals", "ambac_tracker", "Ambac Tracker")
    client.ensure_properties(
        "deals", [PropertySpec("ambac_order_id", "Order id", has_unique_value=True)]
    )
    first = client.upsert_objects("deals", "ambac_order_id", {"ORD-1": {"dealname": "a"}})
    hs.faults.fail_next(2, status=502, path_prefix="/crm/objects/2026-09/deals/batch/upsert")
    second = client.upsert_objects("deals", "ambac_order_id", {"ORD-1": {"dealname": "b"}})
    assert first.succeeded[0].id == second.succeeded[0].id
    assert hs.get_object("deals", first.succeeded[0].id)["dealname"] == "b"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("<html>Bad gateway</html>", "not an object"),
        ({"unexpected": True}, "'results'"),
        ({"results": [{"nope": 1}]}, "could not be read"),
    ],
    ids=["string-body", "no-results", "bad-record"],
)
def test_malformed_answers_give_a_clear_error(
    hs: Any, make_client: ClientFactory, body: Any, fragment: str
) -> None:
    """A 200 whose body is not what HubSpot sends raises HubSpotApiError saying what was wrong."""
    hs.faults.fail_next(1, status=200, path_prefix="/crm/pipelines/2026-09", body=body)
    client = make_client()
    with pytest.raises(HubSpotApiError, match=r"malformed|not an object") as info:
        client.get_pipelines()
    assert fragment in str(info.value)


@pytest.mark.parametrize(("links", "cursors", "reads"), [
    ([], ["500"], 1),  # a page of no links that still pages on
    ([{"toObjectId": 1, "associationTypes": [{"typeId": 3}]}], ["500", "500"], 2),  # back to its cursor
    ([{"toObjectId": 1, "associationTypes": [{"typeId": 3}]}], ["500", "1000", "500"], 3),  # a cycle
], ids=["no-links", "same-cursor", "cycle"])
def test_an_association_cursor_that_does_not_move_on_is_malformed_not_a_loop(
    hs: Any, make_client: ClientFactory, links: list[Any], cursors: list[str], reads: int
) -> None:
    """An answer that pages an input back to a cursor it was read at, or pages on without
    links, raises at once, instead of resending the same inputs for ever."""
    path = "/crm/associations/2026-09/deals/contacts/batch/read"
    for cursor in cursors * 10:  # the answers would go on: the client must stop them
        hs.faults.fail_next(1, status=200, path_prefix=path, body={
            "status": "COMPLETE",
            "results": [{"from": {"id": "7"}, "to": links, "paging": {"next": {"after": cursor}}}],
            "startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:00Z"})
    client = make_client()
    with pytest.raises(HubSpotApiError, match="malformed"):
        client.read_associations("deals", "contacts", ["7"])
    assert sum(1 for r in _log(hs) if r.path == path) == reads


def test_a_malformed_property_answer_is_an_api_error_not_a_crash(
    hs: Any, make_client: ClientFactory
) -> None:
    """A property read back whose option order is not a number raises HubSpotApiError saying
    the answer is malformed, which the connection check reports, instead of a ValueError."""
    body = {"name": "ambac_order_status", "options": [{"label": "RFI", "value": "RFI",
                                                       "displayOrder": "first"}]}
    hs.faults.fail_next(1, status=200, path_prefix="/crm/properties/2026-09/deals/", body=body)
    with pytest.raises(HubSpotApiError, match="malformed"):
        make_client().get_property("deals", "ambac_order_status")


def test_null_labels_and_probabilities_of_2026_09_pipelines_are_read(
    hs: Any, make_client: ClientFactory
) -> None:
    """2026-09 answers null for nullable values: they read as an empty label and no probability."""
    body = {
        "results": [
            {
                "id": "p1",
                "label": None,
                "archived": None,
                "displayOrder": None,
                "stages": [
                    {
                        "id": "s1",
                        "label": None,
                        "displayOrder": None,
                        "metadata": {"isClosed": "true", "probability": None},
                    }
                ],
            }
        ]
    }
    hs.faults.fail_next(1, status=200, path_prefix="/crm/pipelines/2026-09", body=body)
    (pipeline,) = make_client().get_pipelines()
    assert (pipeline.label, pipeline.archived) == ("", False)
    (stage,) = pipeline.stages
    assert (stage.label, stage.probability, stage.is_closed, stage.display_order) == (
        "",
        None,
        True,
        0,
    )


def test_property_group_and_properties_are_ensured_idempotently(make_client: ClientFactory) -> None:
    """A second ensure finds everything there (409) and creates nothing."""
    client = make_client()
    specs = [
        PropertySpec("ambac_status", "Order status", group_name="ambac"),
        PropertySpec("ambac_tracking", "Tracking", group_name="ambac"),
    ]
    assert client.ensure_property_group("deals", "ambac", "Ambac Tracker") is True
    assert client.ensure_property_group("deals", "ambac", "Ambac Tracker") is False
    assert client.ensure_properties("deals", specs) == ["ambac_status", "ambac_tracking"]
    assert client.ensure_properties("deals", specs) == []


# -- error translation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, HubSpotAuthError),
        (403, HubSpotAuthError),
        (404, HubSpotApiError),
        (409, HubSpotApiError),
        (400, HubSpotApiError),
    ],
)
def test_error_statuses_become_project_errors(
    hs: Any, make_client: ClientFactory, status: int, error: type
) -> None:
    """Each refused status raises the matching project error with status and correlation id, chained."""
    hs.faults.fail_next(1, status=status, path_prefix="/crm/objects/2026-09/deals/batch")
    client = make_client()
    with pytest.raises(error) as info:
        client.update_objects("deals", {"1": {"dealname": "x"}})
    assert info.value.status == status and info.value.correlation_id
    assert info.value.__cause__ is not None and "hubspot" in type(info.value.__cause__).__module__
    assert len(_log(hs)) == 1


def test_server_errors_are_retried_then_reported_as_unavailable(
    hs: Any, make_client: ClientFactory
) -> None:
    """A 503 that persists is retried up to the attempt bound, then raises HubSpotUnavailableError."""
    hs.faults.fail_next(100, status=503, path_prefix="/crm/pipelines/2026-09")
    client = make_client(retry=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02))
    with pytest.raises(HubSpotUnavailableError):
        client.get_pipelines()
    assert len(_log(hs)) == 4


def test_a_create_is_not_resent_after_a_server_error(hs: Any, make_client: ClientFactory) -> None:
    """A 502 on create may have created the deal: the client raises instead of re-sending."""
    hs.faults.fail_next(1, status=502, path_prefix="/crm/objects/2026-09/deals", method="POST")
    client = make_client()
    with pytest.raises(HubSpotUnavailableError):
        client.create_object("deals", {"dealname": "once"})
    assert len(_log(hs)) == 1


def test_connection_reset_is_retried_for_reads_not_for_creates(
    hs: Any, make_client: ClientFactory
) -> None:
    """A reset connection is retried on a read and raised on a create (it may have been processed)."""
    client = make_client()
    hs.faults.reset_connection_next(2, path_prefix="/crm/pipelines/2026-09")
    assert client.get_pipelines()
    _log(hs)  # let the last logged request land before clearing
    hs.clear_requests()
    hs.faults.reset_connection_next(1, path_prefix="/crm/objects/2026-09/notes")
    with pytest.raises(HubSpotUnavailableError) as info:
        client.create_object("notes", {"hs_note_body": "x", "hs_timestamp": "2025-01-01T00:00:00Z"})
    assert info.value.__cause__ is not None
    assert len(_log(hs)) == 1


def test_connection_refused_is_retried_even_for_creates() -> None:
    """Nothing listens: the request never left, so even a create is retried, then raised as unavailable."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    waits: list[float] = []
    settings = ClientSettings(
        auth=StaticToken("pat-secret-token"),
        base_url=f"http://127.0.0.1:{port}",
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02),
    )
    client = build_client(settings, sleep=waits.append, limiter=RateLimiter(RateBudget(burst=100)))
    with pytest.raises(HubSpotUnavailableError) as info:
        client.create_object("deals", {"dealname": "x"})
    assert len(waits) == 2 and client.stats.snapshot().calls == {"deals.create": 3}
    assert "pat-secret-token" not in str(info.value)


def test_static_token_refused_says_what_to_do_without_the_token(
    hs: Any, make_client: ClientFactory
) -> None:
    """A wrong private-app token raises HubSpotAuthError without echoing the token."""
    client = make_client(StaticToken("pat-na1-not-the-right-one"))
    with pytest.raises(HubSpotAuthError) as info:
        client.test_connection()
    assert "pat-na1-not-the-right-one" not in str(info.value) + repr(info.value)
    assert info.value.status == 401


# -- reads ------------------------------------------------------------------------------------


def test_deals_with_associations_and_related_records_read_in_bounded_calls(
    hs: Any, make_client: ClientFactory
) -> None:
    """Deals, their company and contact links and the linked records come back in chunked calls."""
    hs.seed(companies=150, contacts=250, deals=1100, seed=8)
    client = make_client()
    deals = list(client.iter_modified_deals(EPOCH, ["dealname", "amount", "dealstage"]))
    ids = [d.id for d in deals]
    companies = client.read_associations("deals", "companies", ids)
    contacts = client.read_associations("deals", "contacts", ids)
    company_ids = {a.to_id for links in companies.values() for a in links}
    contact_ids = {a.to_id for links in contacts.values() for a in links}
    got_companies = list(client.read_companies(sorted(company_ids), ["name", "domain"]))
    got_contacts = list(client.read_contacts(sorted(contact_ids), ["email"]))
    assert (
        len(deals) == 1100
        and len(got_companies) == len(company_ids)
        and len(got_contacts) == len(contact_ids)
    )
    assert all(c.updated_at.tzinfo is not None for c in got_contacts)
    calls = client.stats.snapshot().calls
    assert calls["deals.search"] == 6
    assert calls["associations.deals.companies.batch_read"] == 2
    assert calls["companies.batch_read"] == -(-len(company_ids) // 100)


@pytest.mark.parametrize("api_version", ["2026-09", "v3"])
def test_a_deal_with_more_than_500_contacts_reads_every_link_once(
    hs: Any, make_client: ClientFactory, api_version: str
) -> None:
    """Past the 500 links one association result holds, 2026-09 resends the input to the batch
    read with its after and v3 continues with v4's per-object GET; every link is read once."""
    deal = hs.add_object("deals", {"dealname": "Crowded"})
    other = hs.add_object("deals", {"dealname": "Quiet"})
    contacts = [hs.add_object("contacts", {"email": f"c{n}@example.com"}) for n in range(1203)]
    for contact in contacts:
        hs.associate("deals", deal, "contacts", contact, 3)
    hs.associate("deals", other, "contacts", contacts[0], 3)
    hs.clear_requests()
    read = make_client(api_version=api_version).read_associations(
        "deals", "contacts", [deal, other]
    )
    assert sorted(a.to_id for a in read[deal]) == sorted(contacts)
    assert all(a.type_ids == (3,) for a in read[deal])
    assert [a.to_id for a in read[other]] == [contacts[0]]
    paths = [r.path for r in hs.requests]
    if api_version == "2026-09":
        assert paths == ["/crm/associations/2026-09/deals/contacts/batch/read"] * 3
    else:
        assert paths == ["/crm/v4/associations/deals/contacts/batch/read"] + [
            f"/crm/v4/objects/deals/{deal}/associations/contacts"
        ] * 2


def test_deals_in_stages_and_single_reads(hs: Any, make_client: ClientFactory) -> None:
    """Stage filtering returns only deals in those stages; a missing deal reads as None."""
    won = [
        hs.add_object(
            "deals", {"dealname": f"w{i}", "pipeline": "default", "dealstage": "closedwon"}
        )
        for i in range(5)
    ]
    hs.add_object(
        "deals", {"dealname": "open", "pipeline": "default", "dealstage": "qualifiedtobuy"}
    )
    client = make_client()
    assert sorted(d.id for d in client.iter_deals_in_stages(["closedwon"], ["dealname"])) == sorted(
        won
    )
    deal = client.get_deal(won[0], ["dealname"])
    assert deal is not None and deal.properties["dealname"] == "w0"
    assert client.get_deal("424242424") is None
    stages = {s.id: s for p in client.get_pipelines() for s in p.stages}
    assert stages["closedwon"].is_won and not stages["closedlost"].is_won
