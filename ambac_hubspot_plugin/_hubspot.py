"""The HubSpot client adapter: the only module that imports the ``hubspot`` SDK.

It sends every request through one SDK ``ApiClient.call_api`` (transport, auth header,
configuration, pool) to the path the ``api_version``'s table (``_api_paths``) names, asks
for raw responses (``_preload_content=False``) and parses the JSON itself: the SDK's model
deserialisation costs about 0.1 ms per record, more than the rest of a sync step. SDK types
and SDK exceptions never leave this module; callers get :mod:`ambac_hubspot_plugin.client`
records and :mod:`ambac_hubspot_plugin.errors` errors.

Retries are ours only (the SDK's urllib3 retry is switched off) and every request passes the
process-wide rate limiter first.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import urllib3.exceptions as u3
from hubspot import HubSpot
from urllib3.util.retry import Retry

from ._api_paths import API_PATHS
from ._ratelimit import RateLimiter
from ._retry import (
    Failure,
    FailureKind,
    parse_error_body,
    parse_rate_limit_window,
    parse_retry_after,
)
from ._secrets import scrub
from .client import (
    Association,
    AssociationInput,
    BatchResult,
    ClientSettings,
    ClientStats,
    Company,
    Contact,
    Deal,
    HubSpotObject,
    ItemError,
    Note,
    OAuthApp,
    Pipeline,
    PropertySpec,
    Stage,
    parse_timestamp,
)
from .errors import (
    HubSpotApiError,
    HubSpotAuthError,
    HubSpotUnavailableError,
    RateLimitedError,
)

__all__ = ["SdkHubSpotClient", "SearchPlan", "SearchRequest"]

log = logging.getLogger(__name__)

#: HubSpot's batch limits.
OBJECT_BATCH = 100
ASSOCIATION_BATCH = 1000
#: Links HubSpot returns per object in one association read.
ASSOCIATION_PAGE = 500
#: Search page size (HubSpot's maximum).
SEARCH_PAGE = 200

_RECORD_TYPES: dict[str, type[HubSpotObject]] = {
    "deals": Deal,
    "companies": Company,
    "contacts": Contact,
    "notes": Note,
}

#: Contacts carry their modification time under another name than every other object.
_MODIFIED_PROPERTY = {"contacts": "lastmodifieddate"}

NOTE_TO_DEAL = 214

#: Query parameters sent once per value (``?properties=a&properties=b``), as HubSpot reads them.
_MULTI_VALUED = {"properties": "multi"}

# urllib3 errors raised before a byte of the request left: re-sending cannot duplicate.
_NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (u3.NewConnectionError, u3.ConnectTimeoutError)
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    u3.ProtocolError,
    u3.ReadTimeoutError,
    u3.MaxRetryError,
    u3.TimeoutError,
    u3.HTTPError,
    ConnectionError,
)


def _next_after(answer: Mapping[str, Any]) -> str | None:
    """The ``paging.next.after`` cursor of an answer or result, or None on the last page."""
    after = ((answer.get("paging") or {}).get("next") or {}).get("after")
    return None if after in (None, "") else str(after)


def modified_property(object_type: str) -> str:
    """The property holding an object's last-modified time."""
    return _MODIFIED_PROPERTY.get(object_type, "hs_lastmodifieddate")


def _is_api_exception(exc: BaseException) -> bool:
    """Every SDK sub-package has its own ``ApiException``: recognise them by their attributes."""
    return hasattr(exc, "status") and hasattr(exc, "body") and hasattr(exc, "headers")


def _text(body: object) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return "" if body is None else str(body)


# Error detail HubSpot sends as identifiers (category, correlation id); anything else is dropped.
_WORD = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
#: The most characters of HubSpot's own error message an error of ours carries.
REMOTE_MESSAGE_LIMIT = 300


def _word(value: object) -> str | None:
    return str(value) if value is not None and _WORD.fullmatch(str(value)) else None


def _headers(raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    try:
        return {str(k): str(v) for k, v in dict(raw).items()}  # type: ignore[call-overload]  # HTTPHeaderDict or dict
    except (TypeError, ValueError):
        return {}


class _Tokens:
    """The current access token: static, or OAuth refreshed ahead of expiry and once on a 401.

    Refresh is serialised by a lock; a thread that waited for another's refresh sees the new
    token and does not refresh again.
    """

    def __init__(
        self,
        settings: ClientSettings,
        clock: Callable[[], datetime],
        refresh: Callable[[OAuthApp, str], tuple[str, str | None, float]],
        on_new_token: Callable[[str], None],
        stats: ClientStats,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._refresh_call = refresh
        self._on_new_token = on_new_token
        self._stats = stats
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at: datetime | None = None
        auth = settings.auth
        if isinstance(auth, OAuthApp):
            self._oauth: OAuthApp | None = auth
            self._refresh_token = auth.refresh_token
        else:
            self._oauth = None
            self._token = auth.access_token
            self._refresh_token = ""
        # Tokens fetched lately: an answer about a request may echo one that was just replaced.
        self._issued: deque[str] = deque(maxlen=8)

    def secrets(self) -> list[str]:
        """Every credential this client has sent or may send (to scrub answers of)."""
        found = [*self._issued, self._refresh_token, self._token or ""]
        if self._oauth is not None:
            found += [self._oauth.client_secret, self._oauth.refresh_token]
        return [s for s in found if s]

    @property
    def is_oauth(self) -> bool:
        return self._oauth is not None

    def __repr__(self) -> str:
        return f"_Tokens(oauth={self.is_oauth}, expires_at={self._expires_at!r})"

    def current(self) -> str:
        """The token to send now, refreshing first when it is missing or about to expire."""
        token = self._token
        if token is not None and not self._due():
            return token
        with self._lock:
            if self._token is None or self._due():
                self._refresh_locked()
            assert self._token is not None
            return self._token

    def refresh_after_401(self, rejected: str) -> str:
        """Refresh because HubSpot refused ``rejected``, unless another thread already did."""
        with self._lock:
            if self._token == rejected:
                self._refresh_locked()
            assert self._token is not None
            return self._token

    def _due(self) -> bool:
        if self._oauth is None or self._expires_at is None:
            return False
        margin = timedelta(seconds=self._settings.refresh_margin_seconds)
        return self._clock() >= self._expires_at - margin

    def _refresh_locked(self) -> None:
        assert self._oauth is not None
        token, new_refresh, expires_in = self._refresh_call(self._oauth, self._refresh_token)
        # HubSpot may rotate the refresh token; keep using the newest.
        if new_refresh:
            self._refresh_token = new_refresh
            self._issued.append(new_refresh)
        self._token = token
        self._issued.append(token)
        self._expires_at = self._clock() + timedelta(seconds=expires_in)
        self._stats.record_refresh()
        self._on_new_token(token)


class SdkHubSpotClient:
    """:class:`~ambac_hubspot_plugin.client.HubSpotClient` over ``hubspot-api-client``."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None],
        rng: random.Random,
        limiter: RateLimiter,
        stats: ClientStats,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._limiter = limiter
        self._stats = stats
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        initial = settings.auth.access_token if not isinstance(settings.auth, OAuthApp) else None
        # retry=Retry(total=False): urllib3 raises the original error at once and never
        # re-sends on its own, so every retry is a decision of ours (and counted).
        self._sdk = HubSpot(
            access_token=initial,
            host=settings.base_url,
            base_url=settings.base_url,
            retry=Retry(total=False, redirect=False, respect_retry_after_header=False),
        )
        self._paths = API_PATHS[settings.api_version]
        self._api_client: Any = None
        self._transport_lock = threading.Lock()
        self._tokens = _Tokens(settings, clock, self._refresh_oauth, self._set_token, stats)

    def __repr__(self) -> str:
        return f"SdkHubSpotClient(base_url={self._settings.base_url!r}, portal_id={self._settings.portal_id!r})"

    @property
    def stats(self) -> ClientStats:
        return self._stats

    # -- transport -------------------------------------------------------------------------

    def _transport(self) -> Any:
        """The SDK ``ApiClient`` every request goes through: one configuration, auth and pool.

        The SDK's generated APIs know only the v3/v4 paths; their ``ApiClient.call_api`` sends
        any resource path, so the paths come from the ``api_version``'s table instead.
        """
        client = self._api_client
        if client is None:
            with self._transport_lock:
                if self._api_client is None:
                    self._api_client = self._sdk.crm.objects.basic_api.api_client
                client = self._api_client
        return client

    def _set_token(self, token: str) -> None:
        with self._transport_lock:
            self._sdk.access_token = token  # a transport built later starts with it
            if self._api_client is not None:
                self._api_client.configuration.access_token = token

    def _call(
        self,
        route_name: str,
        operation: str,
        path_params: Mapping[str, str],
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        form: Sequence[tuple[str, str]] | None = None,
        authenticated: bool = True,
        **policy: Any,
    ) -> Any:
        """Send one request to the route ``route_name`` of the ``api_version``; see ``_execute``."""
        method, path = self._paths[route_name]
        content_type = "application/json" if form is None else "application/x-www-form-urlencoded"

        def send(**kw: Any) -> Any:
            return self._transport().call_api(
                path,
                method,
                path_params=dict(path_params),
                query_params=None if query is None else dict(query),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                post_params=None if form is None else list(form),
                auth_settings=["oauth2"] if authenticated else [],
                collection_formats=_MULTI_VALUED,
                **kw,
            )

        return self._execute(operation, send, authenticated=authenticated, **policy)

    def _refresh_oauth(self, app: OAuthApp, refresh_token: str) -> tuple[str, str | None, float]:
        form = [
            ("grant_type", "refresh_token"),
            ("client_id", app.client_id),
            ("client_secret", app.client_secret),
            ("refresh_token", refresh_token),
        ]
        data = self._call(
            "oauth.token", "oauth.refresh", {}, form=form, authenticated=False, limited=False
        )
        try:
            return str(data["access_token"]), data.get("refresh_token"), float(data["expires_in"])
        except (KeyError, TypeError, ValueError) as exc:
            raise HubSpotAuthError(
                "HubSpot's token endpoint answered without access_token/expires_in; check the OAuth app",
                operation="oauth.refresh",
            ) from exc

    def _execute(
        self,
        operation: str,
        call: Callable[..., Any],
        *,
        search: bool = False,
        idempotent: bool = True,
        authenticated: bool = True,
        limited: bool = True,
        allow_status: Iterable[int] = (),
    ) -> Any:
        """Send one request with rate limiting, token refresh and retries; return parsed JSON.

        ``allow_status`` lists error statuses the caller handles itself (a 409 on create
        means "already there"): they come back as ``_StatusAnswer`` instead of an error.
        """
        allowed = frozenset(allow_status)
        policy = self._settings.retry
        started = self._clock()
        attempt = 0
        refreshed_on_401 = False
        while True:
            attempt += 1
            if limited:
                waited = self._limiter.acquire(
                    search=search, timeout=self._settings.rate_limit_wait_seconds
                )
                if waited is None:
                    self._stats.record_error()
                    raise RateLimitedError(
                        f"the local rate limiter gave no permit within {self._settings.rate_limit_wait_seconds:g} s; "
                        "the portal's budget is used up by other work: retry later or raise the budget",
                        operation=operation,
                    )
                self._stats.record_wait(waited)
            token = self._tokens.current() if authenticated else None
            self._stats.record_call(operation)
            failure: Failure | None
            error: HubSpotApiError
            try:
                response = call(_preload_content=False, _request_timeout=self._timeout)
                try:
                    raw = response.data
                finally:
                    response.release_conn()
                status = int(response.status)
            except _NOT_SENT_ERRORS as exc:
                failure, error = Failure(FailureKind.NOT_SENT), self._network_error(operation, exc)
                cause: BaseException = exc
            except _NETWORK_ERRORS as exc:
                failure, error = Failure(FailureKind.NETWORK), self._network_error(operation, exc)
                cause = exc
            except Exception as exc:
                if not _is_api_exception(exc):
                    raise
                status = int(getattr(exc, "status", 0) or 0)
                if status in allowed:
                    return _StatusAnswer(status, parse_error_body(getattr(exc, "body", None)))
                if (
                    status == 401
                    and token is not None
                    and self._tokens.is_oauth
                    and not refreshed_on_401
                ):
                    # An access token can be revoked before its expiry; one refresh tells
                    # a stale token from bad credentials.
                    refreshed_on_401 = True
                    attempt -= 1
                    self._tokens.refresh_after_401(token)
                    continue
                failure, error = self._classify(operation, exc, status)
                cause = exc
            else:
                return self._parse(operation, status, raw)

            if failure is None:
                self._stats.record_error()
                raise error from cause
            if failure.kind is FailureKind.RATE_LIMITED:
                self._stats.record_rate_limited()
            elapsed = (self._clock() - started).total_seconds()
            wait = policy.next_wait(attempt, failure, elapsed, self._rng, idempotent=idempotent)
            if wait is None:
                self._stats.record_error()
                raise error from cause
            self._stats.record_retry()
            log.info(
                "HubSpot %s failed (%s), retry %d in %.2f s",
                operation,
                failure.kind.value,
                attempt,
                wait,
            )
            self._sleep(wait)

    def _remote(self, text: object) -> str:
        """Text from an answer, fit for our errors: one line, bounded, known secrets scrubbed.

        HubSpot, or a proxy in between, may echo the request (its token, the OAuth form) in an
        error; every error, log entry and status view built from an answer passes through here.
        """
        clean = scrub(" ".join(str(text).split()), self._tokens.secrets())
        if len(clean) > REMOTE_MESSAGE_LIMIT:
            clean = clean[:REMOTE_MESSAGE_LIMIT] + "..."
        return clean

    def _disarm(self, exc: BaseException) -> None:
        """Scrub the SDK exception we chain: a traceback prints its body and headers."""
        secrets = self._tokens.secrets()
        for name in ("body", "reason"):
            value = getattr(exc, name, None)
            if isinstance(value, str | bytes):
                setattr(exc, name, scrub(_text(value), secrets))
        headers = getattr(exc, "headers", None)
        if headers:
            exc.headers = {k: scrub(v, secrets) for k, v in _headers(headers).items()}  # type: ignore[attr-defined]  # an SDK ApiException

    def _network_error(self, operation: str, exc: BaseException) -> HubSpotUnavailableError:
        return HubSpotUnavailableError(
            f"could not talk to HubSpot at {self._settings.base_url}: {type(exc).__name__}; "
            "check the network or HubSpot's status page, the call may be retried later",
            operation=operation,
        )

    def _classify(
        self, operation: str, exc: BaseException, status: int
    ) -> tuple[Failure | None, HubSpotApiError]:
        """Turn an SDK ``ApiException`` into a retry decision and the error to raise."""
        body = parse_error_body(getattr(exc, "body", None))
        headers = _headers(getattr(exc, "headers", None))
        # OAuth token endpoints answer with RFC 6749's error/error_description (2026-03) or
        # HubSpot's status/message (v1); the CRM APIs with category/message.
        category = _word(body.get("error")) or _word(body.get("category") or body.get("errorType"))
        correlation = _word(body.get("correlationId") or headers.get("X-HubSpot-Correlation-Id"))
        message = self._remote(
            body.get("error_description")
            or body.get("message")
            or getattr(exc, "reason", None)
            or "no message"
        )
        self._disarm(exc)
        common: dict[str, Any] = {
            "status": status or None,
            "category": category,
            "correlation_id": correlation,
            "operation": operation,
        }
        if status == 429:
            policy = _word(body.get("policyName"))
            retry_after = parse_retry_after(headers)
            hint = (
                "the daily limit is used up; calls resume after midnight in the portal's time zone"
                if policy == "DAILY"
                else "HubSpot kept refusing after our retries; try again later"
            )
            err: HubSpotApiError = RateLimitedError(
                f"HubSpot rate limit reached: {message}; {hint}",
                retry_after=retry_after,
                policy_name=str(policy) if policy else None,
                **common,
            )
            return Failure(
                FailureKind.RATE_LIMITED,
                retry_after,
                str(policy) if policy else None,
                window=parse_rate_limit_window(headers),
            ), err
        if operation == "oauth.refresh" and 400 <= status < 500:
            # The refresh token was revoked (app uninstalled), or the app's id/secret are wrong:
            # no retry helps, only new credentials do.
            return None, HubSpotAuthError(
                f"HubSpot refused to refresh the OAuth access token: {message}; check the app's "
                "client id and secret, and reconnect the app (install it again in HubSpot) to "
                "get a new refresh token",
                **common,
            )
        if status in (401, 403):
            what = (
                "the access token is invalid or expired; reconnect the HubSpot account"
                if status == 401
                else "the token lacks a scope this call needs; grant it to the app"
            )
            return None, HubSpotAuthError(
                f"HubSpot refused the credentials: {message}; {what}", **common
            )
        if status >= 500 or status == 0:
            return Failure(
                FailureKind.SERVER_ERROR, parse_retry_after(headers)
            ), HubSpotUnavailableError(
                f"HubSpot failed to answer: {message}; it may be down, retry later", **common
            )
        return None, HubSpotApiError(f"HubSpot rejected the request: {message}", **common)

    def _parse(self, operation: str, status: int, raw: bytes) -> Any:
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self._stats.record_error()
            # Not quoted: whatever answered is not HubSpot, and its page is nobody's business.
            raise HubSpotApiError(
                f"HubSpot answered {status} with a body that is not JSON ({len(raw)} bytes); "
                "a proxy or outage page may be in the way",
                status=status,
                operation=operation,
            ) from exc
        if not isinstance(data, dict):
            self._stats.record_error()
            raise HubSpotApiError(
                f"HubSpot answered {status} with JSON that is not an object ({type(data).__name__})",
                status=status,
                operation=operation,
            )
        return data

    def _malformed(
        self, operation: str, what: str, exc: BaseException | None = None
    ) -> HubSpotApiError:
        self._stats.record_error()
        err = HubSpotApiError(f"HubSpot's answer is malformed: {what}", operation=operation)
        if exc is not None:
            err.__cause__ = exc
        return err

    # -- records ---------------------------------------------------------------------------

    def _record(self, object_type: str, item: Any, operation: str) -> HubSpotObject:
        cls = _RECORD_TYPES.get(object_type, HubSpotObject)
        try:
            props = item.get("properties") or {}
            modified = props.get(modified_property(object_type)) or item.get("updatedAt")
            updated = parse_timestamp(modified)
            if updated is None:
                raise ValueError("no modification time")
            created = item.get("createdAt")
            return cls(
                id=str(item["id"]),
                properties=props,
                updated_at=updated,
                archived=bool(item.get("archived", False)),
                created_at=parse_timestamp(created) if created else None,
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise self._malformed(
                operation, f"a {object_type} record could not be read ({exc})", exc
            ) from exc

    def _results(self, data: Mapping[str, Any], operation: str) -> list[Any]:
        results = data.get("results")
        if not isinstance(results, list):
            raise self._malformed(operation, "'results' is missing or not a list")
        return results

    # -- reads -----------------------------------------------------------------------------

    def test_connection(self) -> None:
        self.get_pipelines()

    def _search_page(self, object_type: str, request: SearchRequest) -> Mapping[str, Any]:
        operation = f"{object_type}.search"
        body = request.body()
        data: Mapping[str, Any] = self._call(
            "objects.search", operation, {"objectType": object_type}, body=body, search=True
        )
        return data

    def _iter_search(self, object_type: str, plan: SearchPlan) -> Iterator[HubSpotObject]:
        operation = f"{object_type}.search"
        request: SearchRequest | None = plan.first()
        while request is not None:
            data = self._search_page(object_type, request)
            records = [
                self._record(object_type, item, operation)
                for item in self._results(data, operation)
            ]
            yield from plan.accept(records)
            request = plan.next(records, _next_after(data))

    def iter_modified(
        self,
        object_type: str,
        since: datetime,
        properties: Sequence[str],
        *,
        until: datetime | None = None,
    ) -> Iterator[HubSpotObject]:
        plan = SearchPlan(
            modified_property=modified_property(object_type),
            properties=tuple(properties),
            since=since,
            until=until,
            page_size=SEARCH_PAGE,
        )
        return self._iter_search(object_type, plan)

    def iter_modified_deals(
        self, since: datetime, properties: Sequence[str], *, until: datetime | None = None
    ) -> Iterator[Deal]:
        return self.iter_modified("deals", since, properties, until=until)  # type: ignore[return-value]  # deals give Deal

    def iter_deals_in_stages(
        self, stage_ids: Sequence[str], properties: Sequence[str], since: datetime | None = None
    ) -> Iterator[Deal]:
        if not stage_ids:
            return iter(())
        plan = SearchPlan(
            modified_property="hs_lastmodifieddate",
            properties=tuple(properties),
            since=since,
            until=None,
            page_size=SEARCH_PAGE,
            base_filters=(
                {"propertyName": "dealstage", "operator": "IN", "values": list(stage_ids)},
            ),
        )
        return self._iter_search("deals", plan)  # type: ignore[return-value]  # deals give Deal

    def get_deal(self, deal_id: str, properties: Sequence[str] = ()) -> Deal | None:
        operation = "deals.get"
        data = self._call(
            "objects.get",
            operation,
            {"objectType": "deals", "objectId": str(deal_id)},
            query={"properties": list(properties)} if properties else None,
            allow_status=(404,),
        )
        if isinstance(data, _StatusAnswer):
            return None
        return self._record("deals", data, operation)  # type: ignore[return-value]  # deals give Deal

    def read_objects(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str] = ()
    ) -> Iterator[HubSpotObject]:
        """Batch-read any object type, 100 ids per request, streaming the records."""
        operation = f"{object_type}.batch_read"
        unique = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(unique), OBJECT_BATCH):
            chunk = unique[start : start + OBJECT_BATCH]
            body: dict[str, Any] = {
                "inputs": [{"id": i} for i in chunk],
                "properties": list(properties),
                "propertiesWithHistory": [],  # required by the specs; no history is read
            }
            data = self._call(
                "objects.batch_read", operation, {"objectType": object_type}, body=body
            )
            for item in self._results(data, operation):
                yield self._record(object_type, item, operation)

    def read_deals(self, ids: Sequence[str], properties: Sequence[str] = ()) -> Iterator[Deal]:
        return self.read_objects("deals", ids, properties)  # type: ignore[return-value]  # deals give Deal

    def read_companies(
        self, ids: Sequence[str], properties: Sequence[str] = ()
    ) -> Iterator[Company]:
        return self.read_objects("companies", ids, properties)  # type: ignore[return-value]  # companies give Company

    def read_contacts(
        self, ids: Sequence[str], properties: Sequence[str] = ()
    ) -> Iterator[Contact]:
        return self.read_objects("contacts", ids, properties)  # type: ignore[return-value]  # contacts give Contact

    def read_associations(
        self, from_type: str, to_type: str, ids: Sequence[str]
    ) -> Mapping[str, list[Association]]:
        """Every link of each id, 1,000 ids per batch read.

        An input with more links than one result holds (500) carries a cursor: on 2026-09 it
        is resent to the batch read with its ``after``, together with the other inputs still
        to continue; on v3 its links are paged with v4's per-object GET.
        """
        operation = f"associations.{from_type}.{to_type}.batch_read"
        pager = self._paths.get("associations.page")
        out: dict[str, list[Association]] = {}
        pending: list[tuple[str, str | None]] = [
            (i, None) for i in dict.fromkeys(str(i) for i in ids)
        ]
        while pending:
            batch, pending = pending[:ASSOCIATION_BATCH], pending[ASSOCIATION_BATCH:]
            sent = dict(batch)
            body = {
                "inputs": [
                    {"id": i} if after is None else {"id": i, "after": after} for i, after in batch
                ]
            }
            data = self._call(
                "associations.batch_read",
                operation,
                {"fromObjectType": from_type, "toObjectType": to_type},
                body=body,
            )
            for result in self._results(data, operation):
                try:
                    from_id = str(result["from"]["id"])
                    links = out.setdefault(from_id, [])
                    links.extend(self._associations(result.get("to") or ()))
                    after = _next_after(result)
                except (KeyError, TypeError, AttributeError, ValueError) as exc:
                    raise self._malformed(
                        operation, f"an association result could not be read ({exc})", exc
                    ) from exc
                if after is None:
                    continue
                if after == sent.get(from_id):
                    raise self._malformed(
                        operation, f"the links of {from_id} page to the cursor they were read at"
                    )
                if pager is None:
                    pending.append((from_id, after))
                else:
                    links.extend(self._more_associations(from_type, to_type, from_id, after))
        return out

    @staticmethod
    def _associations(items: Iterable[Mapping[str, Any]]) -> Iterator[Association]:
        for item in items:
            types = tuple(int(t["typeId"]) for t in item.get("associationTypes") or ())
            yield Association(to_id=str(item["toObjectId"]), type_ids=types)

    def _more_associations(
        self, from_type: str, to_type: str, from_id: str, after: str
    ) -> Iterator[Association]:
        """Page the links of one object past a v4 batch result with v4's per-object GET."""
        operation = f"associations.{from_type}.{to_type}.page"
        cursor: str | None = after
        while cursor:
            data = self._call(
                "associations.page",
                operation,
                {"objectType": from_type, "objectId": from_id, "toObjectType": to_type},
                query={"after": cursor, "limit": ASSOCIATION_PAGE},
            )
            try:
                yield from self._associations(self._results(data, operation))
                following = _next_after(data)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                raise self._malformed(
                    operation, f"an association page could not be read ({exc})", exc
                ) from exc
            if following == cursor:
                raise self._malformed(
                    operation, f"the links of {from_id} page to the cursor they were read at"
                )
            cursor = following

    def get_pipelines(self) -> list[Pipeline]:
        operation = "pipelines.get_all"
        data = self._call("pipelines.list", operation, {"objectType": "deals"})
        try:
            return [self._pipeline(p) for p in self._results(data, operation)]
        except (KeyError, TypeError, AttributeError, InvalidOperation) as exc:
            raise self._malformed(operation, f"a pipeline could not be read ({exc})", exc) from exc

    @staticmethod
    def _pipeline(item: Mapping[str, Any]) -> Pipeline:
        stages = []
        for stage in item.get("stages") or ():
            meta = stage.get("metadata") or {}
            # Metadata values are strings: "true", "1.0".
            probability = meta.get("probability")
            stages.append(
                Stage(
                    id=str(stage["id"]),
                    label=str(stage.get("label") or ""),
                    is_closed=str(meta.get("isClosed", "false")).lower() == "true",
                    probability=Decimal(str(probability))
                    if probability not in (None, "")
                    else None,
                    display_order=int(stage.get("displayOrder") or 0),
                )
            )
        stages.sort(key=lambda s: s.display_order)
        return Pipeline(
            id=str(item["id"]),
            label=str(item.get("label") or ""),
            stages=tuple(stages),
            archived=bool(item.get("archived", False)),
        )

    # -- writes ----------------------------------------------------------------------------

    def create_object(
        self,
        object_type: str,
        properties: Mapping[str, str | None],
        associations: Sequence[AssociationInput] = (),
    ) -> HubSpotObject:
        operation = f"{object_type}.create"
        body = {
            "properties": dict(properties),
            "associations": [
                {
                    "to": {"id": a.to_id},
                    "types": [{"associationCategory": a.category, "associationTypeId": a.type_id}],
                }
                for a in associations
            ],
        }
        data = self._call(
            "objects.create", operation, {"objectType": object_type}, body=body, idempotent=False
        )
        return self._record(object_type, data, operation)

    def _batch_write(
        self, object_type: str, kind: str, inputs: list[dict[str, Any]], *, idempotent: bool
    ) -> BatchResult:
        operation = f"{object_type}.batch_{kind}"
        succeeded: list[HubSpotObject] = []
        failed: list[ItemError] = []
        for start in range(0, len(inputs), OBJECT_BATCH):
            body = {"inputs": inputs[start : start + OBJECT_BATCH]}
            data = self._call(
                f"objects.batch_{kind}",
                operation,
                {"objectType": object_type},
                body=body,
                idempotent=idempotent,
            )
            succeeded.extend(
                self._record(object_type, item, operation)
                for item in self._results(data, operation)
            )
            failed.extend(self._item_errors(data.get("errors") or ()))
        return BatchResult(succeeded=succeeded, failed=failed)

    def _item_errors(self, errors: Iterable[Mapping[str, Any]]) -> Iterator[ItemError]:
        for err in errors:
            context = err.get("context") or {}
            ids = (
                context.get("ids")
                or context.get("id")
                or ([err["id"]] if err.get("id") else [None])
            )
            for item_id in ids:
                yield ItemError(
                    id=None if item_id is None else str(item_id),
                    status=_word(err.get("status")) or "error",
                    category=_word(err.get("category")),
                    message=self._remote(err.get("message") or ""),
                )

    def create_objects(
        self, object_type: str, inputs: Sequence[Mapping[str, str | None]]
    ) -> BatchResult:
        return self._batch_write(
            object_type,
            "create",
            [{"properties": dict(p), "associations": []} for p in inputs],
            idempotent=False,
        )

    def update_objects(
        self, object_type: str, updates: Mapping[str, Mapping[str, str | None]]
    ) -> BatchResult:
        # Setting the same values twice leaves the same record: safe to retry.
        return self._batch_write(
            object_type,
            "update",
            [{"id": str(i), "properties": dict(p)} for i, p in updates.items()],
            idempotent=True,
        )

    def upsert_objects(
        self, object_type: str, id_property: str, inputs: Mapping[str, Mapping[str, str | None]]
    ) -> BatchResult:
        # Keyed by a unique property, a re-sent upsert finds the record the first one made.
        return self._batch_write(
            object_type,
            "upsert",
            [
                {"id": str(v), "idProperty": id_property, "properties": dict(p)}
                for v, p in inputs.items()
            ],
            idempotent=True,
        )

    def create_note_on_deal(self, deal_id: str, body: str, when: datetime) -> str:
        if when.tzinfo is None:
            raise ValueError("when must be tz-aware")
        stamp = when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        note = self.create_object(
            "notes",
            {"hs_note_body": body, "hs_timestamp": stamp},
            [AssociationInput(to_id=str(deal_id), type_id=NOTE_TO_DEAL)],
        )
        return note.id

    def ensure_property_group(self, object_type: str, name: str, label: str) -> bool:
        body = {"name": name, "label": label}
        data = self._call(
            "property_groups.create",
            f"{object_type}.property_group.create",
            {"objectType": object_type},
            body=body,
            allow_status=(409,),  # 409: already there, which is what we want
        )
        return not isinstance(data, _StatusAnswer)

    def ensure_properties(self, object_type: str, specs: Sequence[PropertySpec]) -> list[str]:
        created: list[str] = []
        for spec in specs:
            body: dict[str, Any] = {
                "name": spec.name,
                "label": spec.label,
                "type": spec.type,
                "fieldType": spec.field_type,
                "groupName": spec.group_name,
                "description": spec.description,
                "hasUniqueValue": spec.has_unique_value,
                "options": [
                    {
                        "label": o.label,
                        "value": o.value,
                        "displayOrder": o.display_order,
                        "hidden": False,
                    }
                    for o in spec.options
                ],
            }
            # A re-sent create of a property that the first attempt made answers 409,
            # which we read as "exists": retrying is safe.
            data = self._call(
                "properties.create",
                f"{object_type}.property.create",
                {"objectType": object_type},
                body=body,
                allow_status=(409,),
            )
            if not isinstance(data, _StatusAnswer):
                created.append(spec.name)
        return created

    def close(self) -> None:
        with self._transport_lock:
            client, self._api_client = self._api_client, None
        pool = getattr(getattr(client, "rest_client", None), "pool_manager", None)
        if pool is not None:
            pool.clear()


class _StatusAnswer:
    """An error status the caller asked to handle itself, with its parsed body."""

    __slots__ = ("body", "status")

    def __init__(self, status: int, body: Mapping[str, object]) -> None:
        self.status = status
        self.body = body


# ---------------------------------------------------------------------------------------------
# Search past the 10,000-result cap
# ---------------------------------------------------------------------------------------------

#: HubSpot answers 400 when ``after + limit`` passes this.
SEARCH_CAP = 10_000
#: The cursor of a first search page: the specs require ``after``, and search cursors are offsets.
FIRST_PAGE = "0"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@attrs.frozen
class SearchRequest:
    """One search request: filter groups (OR of ANDs), sorts, the page cursor and size.

    ``sorts`` are property names, ascending, as the specs' ``PublicObjectSearchRequest`` has them
    (strings; a leading ``-`` would mean descending, which no request needs).
    """

    filter_groups: tuple[tuple[Mapping[str, Any], ...], ...]
    sorts: tuple[str, ...]
    properties: tuple[str, ...]
    after: str | None
    limit: int

    def body(self) -> dict[str, Any]:
        """The JSON body the specs require: every required field, the first page at ``"0"``."""
        return {
            "filterGroups": [{"filters": [dict(f) for f in group]} for group in self.filter_groups],
            "sorts": list(self.sorts),
            "properties": list(self.properties),
            "limit": self.limit,
            "after": FIRST_PAGE if self.after is None else self.after,
        }


class SearchPlan:
    """Which search request comes next, so a read never pages past HubSpot's 10,000 cap.

    Results are sorted by modification time (then id). Before a request would page past
    ``window`` results, the plan starts a new query anchored at the last timestamp seen
    (``GTE``) and skips the ids already yielded at exactly that timestamp. When a whole query
    window shares one timestamp (25,000 deals touched in the same millisecond), it switches to
    a tie query: that timestamp only, sorted by ``hs_object_id``, re-anchored with
    ``hs_object_id GT last id``; then it resumes with ``GT`` that timestamp. Memory is bounded
    by the ids yielded at one timestamp.

    Offset paging can skip a record when another record of the result set is modified
    mid-read (every later record shifts one place). ``window=page_size`` re-anchors on every
    page instead (keyset paging): immune to that, at the cost of re-reading the records at
    each page's last timestamp.
    """

    def __init__(
        self,
        *,
        modified_property: str,
        properties: Sequence[str],
        since: datetime | None,
        until: datetime | None,
        page_size: int = SEARCH_PAGE,
        base_filters: Sequence[Mapping[str, Any]] = (),
        window: int = SEARCH_CAP,
    ) -> None:
        if not 1 <= page_size <= window <= SEARCH_CAP:
            raise ValueError("need 1 <= page_size <= window <= 10000")
        self._ts = modified_property
        wanted = dict.fromkeys(properties)
        wanted.update({modified_property: None, "hs_object_id": None})
        self._properties = tuple(wanted)
        self._until = None if until is None else _ms(until)
        self._page = page_size
        self._base = tuple(base_filters)
        self._window = window
        self._tie = False
        self._strict = False
        self._anchor: int | None = None if since is None else _ms(since)
        self._query_first_ts: int | None = None
        self._last_ts: int | None = None
        self._seen: set[str] = set()
        self._tie_last_id: int | None = None
        self._tie_floor: int | None = None  # fixed for one tie query; the cursor's offsets need it
        self._offset = 0

    def first(self) -> SearchRequest:
        """The first request."""
        return self._request(None, self._page)

    def _request(self, after: str | None, limit: int) -> SearchRequest:
        filters = list(self._base)
        if self._tie:
            assert self._anchor is not None
            filters.append({"propertyName": self._ts, "operator": "EQ", "value": str(self._anchor)})
            if self._tie_floor is not None:
                filters.append(
                    {
                        "propertyName": "hs_object_id",
                        "operator": "GT",
                        "value": str(self._tie_floor),
                    }
                )
            sorts: tuple[str, ...] = ("hs_object_id",)
        else:
            if self._anchor is not None:
                op = "GT" if self._strict else "GTE"
                filters.append(
                    {"propertyName": self._ts, "operator": op, "value": str(self._anchor)}
                )
            if self._until is not None:
                filters.append(
                    {"propertyName": self._ts, "operator": "LTE", "value": str(self._until)}
                )
            sorts = (self._ts, "hs_object_id")
        groups = (tuple(filters),) if filters else ()
        return SearchRequest(groups, sorts, self._properties, after, limit)

    def accept(self, records: Sequence[HubSpotObject]) -> Iterator[HubSpotObject]:
        """Yield the records of a page that were not yielded before; remember what was."""
        for record in records:
            ts = _ms(record.updated_at)
            if self._tie:
                try:
                    numeric = int(record.id)
                except ValueError:
                    numeric = None
                if numeric is not None and (
                    self._tie_last_id is None or numeric > self._tie_last_id
                ):
                    self._tie_last_id = numeric
                if record.id in self._seen:
                    continue
                yield record
                continue
            if self._query_first_ts is None:
                self._query_first_ts = ts
            if self._last_ts is None or ts > self._last_ts:
                self._last_ts = ts
                self._seen = {record.id}
            elif ts == self._last_ts:
                if record.id in self._seen:
                    continue
                self._seen.add(record.id)
            yield record

    def next(self, records: Sequence[HubSpotObject], after: str | None) -> SearchRequest | None:
        """The request after a page of ``records`` whose ``paging.next.after`` was ``after``."""
        if after is None:
            if not self._tie:
                return None
            # Every record at the tie timestamp is read: carry on after it.
            self._tie = False
            self._strict = True
            self._seen = set()
            self._tie_last_id = self._tie_floor = None
            self._query_first_ts = None
            self._offset = 0
            return self._request(None, self._page)
        if (
            not self._tie
            and len(records) >= self._page
            and _ms(records[0].updated_at) == _ms(records[-1].updated_at) == self._last_ts
        ):
            # A full page at one timestamp: a big tie, whose order HubSpot need not keep
            # between queries. Read it by id now rather than after a wasted window.
            self._enter_tie()
            return self._request(None, self._page)
        offset = int(after) if after.isdigit() else self._offset + len(records)
        if offset + self._page <= self._window:
            self._offset = offset
            return self._request(after, self._page)
        self._offset = 0
        if self._tie:
            self._tie_floor = self._tie_last_id
            return self._request(None, self._page)
        if self._last_ts is None:
            raise RuntimeError("search paged a full window without records")
        if self._query_first_ts == self._last_ts:
            self._enter_tie()  # a whole window at one timestamp: anchoring on it again would loop
        else:
            self._anchor = self._last_ts
            self._query_first_ts = None
            self._strict = False
        return self._request(None, self._page)

    def _enter_tie(self) -> None:
        self._tie = True
        self._tie_last_id = self._tie_floor = None
        self._anchor = self._last_ts
        self._query_first_ts = None
        self._offset = 0
