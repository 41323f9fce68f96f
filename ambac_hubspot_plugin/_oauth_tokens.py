"""The access token a client sends: a static one, or OAuth tokens refreshed ahead of expiry.

Pure bookkeeping, no SDK and no HTTP: the adapter (``_hubspot``) hands in the call that asks
HubSpot's token endpoint for a new token, and the callback that puts it on its transport.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ._client_records import ClientStats
from ._client_settings import ClientSettings, OAuthApp
from ._secrets import fits_a_header
from .errors import HubSpotAuthError

__all__ = ["Tokens", "read_token_answer", "refresh_form"]


class Tokens:
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
        return f"Tokens(oauth={self.is_oauth}, expires_at={self._expires_at!r})"

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


def refresh_form(app: OAuthApp, refresh_token: str) -> list[tuple[str, str]]:
    """The form asking HubSpot's token endpoint for a new access token."""
    return [
        ("grant_type", "refresh_token"),
        ("client_id", app.client_id),
        ("client_secret", app.client_secret),
        ("refresh_token", refresh_token),
    ]


def read_token_answer(data: Any) -> tuple[str, str | None, float]:
    """The access token, the (maybe rotated) refresh token and the seconds until expiry.

    :raises HubSpotAuthError: when the answer lacks the access token or its lifetime.
    """
    try:
        token, refresh, expires = data["access_token"], data.get("refresh_token"), float(data["expires_in"])
        if not (isinstance(token, str) and token and fits_a_header(token)):
            raise ValueError("the access token is not a token")  # null would be sent as "Bearer None"
        if refresh is not None and not (isinstance(refresh, str) and refresh):
            raise ValueError("the refresh token is not a token")
        if not 0 < expires < float("inf"):
            raise ValueError("expires_in is not a positive number of seconds")
        return token, refresh, expires
    except (KeyError, TypeError, ValueError) as exc:
        raise HubSpotAuthError(
            "HubSpot's token endpoint answered without access_token/expires_in; check the OAuth app",
            operation="oauth.refresh",
        ) from exc
