"""The HubSpot client adapter: the only module that imports the ``hubspot`` SDK.

It sends every request through one SDK ``ApiClient.call_api`` (transport, auth header,
configuration, pool) to the path the ``api_version``'s table (``_api_paths``) names, asks
for raw responses (``_preload_content=False``) and parses the JSON itself: the SDK's model
deserialisation costs about 0.1 ms per record, more than the rest of a sync step. SDK types
and SDK exceptions never leave this module; callers get :mod:`ambac_hubspot_plugin.client`
records and :mod:`ambac_hubspot_plugin.errors` errors.

Retries are ours only (the SDK's urllib3 retry is switched off) and every request passes the
process-wide rate limiter first. This module is the transport; the operations (searches,
reads, writes) are ``_hubspot_ops``'s, over its ``_call``. The pure parts, testable without
the SDK, live beside it: ``_hubspot_wire`` (bodies and answers), ``_hubspot_errors`` (what a
refusal means), ``_search_plan`` (paging past the search cap) and ``_oauth_tokens``.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import urllib3.exceptions as u3
from hubspot import HubSpot
from urllib3.util.retry import Retry

from . import _hubspot_wire as wire
from ._api_paths import API_PATHS
from ._client_records import ClientStats
from ._client_settings import ClientSettings, OAuthApp
from ._hubspot_errors import api_exception, classify, network_error, remote_text
from ._hubspot_ops import HubSpotOperations
from ._oauth_tokens import Tokens, read_token_answer, refresh_form
from ._ratelimit import RateLimiter
from ._retry import Failure, FailureKind, parse_error_body
from .errors import HubSpotApiError, RateLimitedError

__all__ = ["SdkHubSpotClient"]

log = logging.getLogger(__name__)

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


class SdkHubSpotClient(HubSpotOperations):
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
        self._tokens = Tokens(settings, clock, self._refresh_oauth, self._set_token, stats)

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
        form = refresh_form(app, refresh_token)
        data = self._call(
            "oauth.token", "oauth.refresh", {}, form=form, authenticated=False, limited=False
        )
        return read_token_answer(data)

    def _execute(
        self,
        operation: str,
        call: Callable[..., Any],
        *,
        search: bool = False,
        idempotent: bool = True,
        authenticated: bool = True,
        limited: bool = True,
        retry: bool = True,
        allow_status: Iterable[int] = (),
    ) -> Any:
        """Send one request with rate limiting, token refresh and retries (``retry`` False: one
        attempt, for a probe); return parsed JSON.

        ``allow_status`` lists error statuses the caller handles itself (a 409 on create
        means "already there"): they come back as ``StatusAnswer`` instead of an error.
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
                        f"the local rate limiter has no permit within {self._settings.rate_limit_wait_seconds:g} s; "
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
                failure, error = Failure(FailureKind.NOT_SENT), network_error(self._settings.base_url, operation, exc)
                cause: BaseException = exc
            except _NETWORK_ERRORS as exc:
                failure, error = Failure(FailureKind.NETWORK), network_error(self._settings.base_url, operation, exc)
                cause = exc
            except Exception as caught:
                refused = api_exception(caught)
                if refused is None:
                    raise
                status = int(getattr(refused, "status", 0) or 0)
                if status in allowed:
                    return wire.StatusAnswer(status, parse_error_body(getattr(refused, "body", None)))
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
                failure, error = classify(operation, refused, status, self._tokens.secrets)
                cause = refused
            else:
                return self._parse(operation, status, raw)

            if failure is None:
                self._stats.record_error()
                raise error from cause
            if failure.kind is FailureKind.RATE_LIMITED:
                self._stats.record_rate_limited()
            elapsed = (self._clock() - started).total_seconds()
            wait = policy.next_wait(attempt, failure, elapsed, self._rng, idempotent=idempotent) if retry else None
            if wait is None:
                self._stats.record_error()
                raise error from cause
            self._stats.record_retry()
            log.info("HubSpot %s failed (%s), retry %d in %.2f s", operation, failure.kind.value, attempt, wait)
            self._sleep(wait)

    def _remote(self, text: object) -> str:
        """Text from an answer, fit for our errors (see ``_hubspot_errors.remote_text``)."""
        return remote_text(text, self._tokens.secrets())

    def _parse(self, operation: str, status: int, raw: bytes) -> Any:
        try:
            return wire.json_object(operation, status, raw)
        except HubSpotApiError:
            self._stats.record_error()
            raise

    def close(self) -> None:
        with self._transport_lock:
            client, self._api_client = self._api_client, None
        pool = getattr(getattr(client, "rest_client", None), "pool_manager", None)
        if pool is not None:
            pool.clear()
