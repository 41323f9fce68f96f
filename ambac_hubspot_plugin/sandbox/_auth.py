"""Apps, tokens and the OAuth refresh grant; every API call is checked here first."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping

import attrs

from ._util import Clock, SandboxHttpError, to_ms

_NOT_FOUND = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


# HubSpot's v1 status -> the RFC 6749 error code its date-based token endpoint answers with.
_OAUTH_ERRORS = {
    "UNSUPPORTED_GRANT_TYPE": "unsupported_grant_type",
    "BAD_CLIENT_ID": "invalid_client",
    "BAD_CLIENT_SECRET": "invalid_client",
    "BAD_REFRESH_TOKEN": "invalid_grant",
}


def _refused(status: str, message: str, dated: bool) -> SandboxHttpError:
    """A 400 from the token endpoint: v1's ``status``, or 2026-03's ``error``/``error_description``
    (alongside the ``category``/``correlationId``/``message`` its spec's ``Error`` requires).
    """
    extra: dict[str, object] = (
        {"error": _OAUTH_ERRORS[status], "error_description": message}
        if dated
        else {"status": status}
    )
    return SandboxHttpError(400, message, status, extra=extra)


@attrs.define
class App:
    """A HubSpot app installed in the sandbox portal: the private app or an OAuth app.

    Secrets are kept out of the repr so a failing test never prints them.
    """

    app_id: int
    client_id: str
    client_secret: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(repr=False, default=None)
    access_token_ttl_seconds: int = 1800
    private: bool = False


class Auth:
    """The token registry of one portal."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.apps: dict[int, App] = {}
        # token -> (app id, expiry in epoch ms or None for static private-app tokens)
        self._tokens: dict[str, tuple[int, int | None]] = {}
        self._next_app_id = 3_000_001

    def _new_app_id(self) -> int:
        self._next_app_id += 1
        return self._next_app_id

    def add_private_app(self) -> tuple[App, str]:
        """The portal's private app and its static access token."""
        with self._lock:
            app = App(
                self._new_app_id(),
                f"private-{secrets.token_hex(4)}",
                secrets.token_hex(18),
                private=True,
            )
            self.apps[app.app_id] = app
            token = f"pat-na1-{secrets.token_hex(16)}"
            self._tokens[token] = (app.app_id, None)
            return app, token

    def add_oauth_app(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        access_token_ttl_seconds: int = 1800,
    ) -> App:
        with self._lock:
            app = App(
                self._new_app_id(),
                client_id,
                client_secret,
                refresh_token,
                access_token_ttl_seconds,
            )
            self.apps[app.app_id] = app
            return app

    def issue_access_token(self, app: App) -> tuple[str, int]:
        """A new OAuth access token for ``app`` and its lifetime in seconds."""
        token = "CN" + secrets.token_urlsafe(96)
        with self._lock:
            self._tokens[token] = (
                app.app_id,
                to_ms(self._clock()) + app.access_token_ttl_seconds * 1000,
            )
        return token, app.access_token_ttl_seconds

    def expire_access_tokens(self) -> None:
        """Make every OAuth access token expired now (static private-app tokens stay valid)."""
        now = to_ms(self._clock())
        with self._lock:
            for token, (app_id, expiry) in list(self._tokens.items()):
                if expiry is not None:
                    self._tokens[token] = (app_id, min(expiry, now - 1))

    def revoke_refresh_token(self, app: App) -> None:
        """Revoke ``app``'s refresh token, as uninstalling the app does; its refresh then fails."""
        with self._lock:
            app.refresh_token = None

    def refresh(self, form: Mapping[str, str], *, dated: bool = False) -> dict[str, object]:
        """The ``refresh_token`` grant of POST /oauth/v1/token, or of /oauth/2026-03/token
        when ``dated`` (whose errors carry RFC 6749's ``error`` and ``error_description``).
        """
        grant = form.get("grant_type")
        if grant != "refresh_token":
            raise _refused(
                "UNSUPPORTED_GRANT_TYPE",
                f"grant_type {grant!r} is not supported by the sandbox; use refresh_token.",
                dated,
            )
        app = next(
            (
                a
                for a in self.apps.values()
                if not a.private and a.client_id == form.get("client_id")
            ),
            None,
        )
        if app is None:
            raise _refused("BAD_CLIENT_ID", "missing or unknown client id", dated)
        if not secrets.compare_digest(app.client_secret, form.get("client_secret", "")):
            raise _refused("BAD_CLIENT_SECRET", "missing or invalid client secret", dated)
        if app.refresh_token is None or not secrets.compare_digest(
            app.refresh_token, form.get("refresh_token", "")
        ):
            raise _refused("BAD_REFRESH_TOKEN", "missing or unknown refresh token", dated)
        token, ttl = self.issue_access_token(app)
        return {
            "access_token": token,
            "refresh_token": app.refresh_token,
            "expires_in": ttl,
            "token_type": "bearer",
            "token_use": "access_token",
        }

    def authenticate(self, authorization: str | None, query: Mapping[str, list[str]]) -> App:
        """The app a call is made as; raises the 401 HubSpot would send."""
        if "hapikey" in query:
            raise SandboxHttpError(
                401,
                "The API key provided is invalid: API keys (hapikey) were sunset on 2022-11-30. "
                "Use a private app access token or OAuth in the Authorization: Bearer header.",
                "INVALID_AUTHENTICATION",
            )
        if not authorization or not authorization.startswith("Bearer "):
            raise SandboxHttpError(401, _NOT_FOUND, "INVALID_AUTHENTICATION")
        found = self._tokens.get(authorization[7:].strip())
        if found is None:
            raise SandboxHttpError(401, _NOT_FOUND, "INVALID_AUTHENTICATION")
        app_id, expiry = found
        if expiry is not None:
            now = to_ms(self._clock())
            if now >= expiry:
                ago = max(1, (now - expiry) // 1000)
                raise SandboxHttpError(
                    401,
                    f"The OAuth token used to make this call expired {ago} second(s) ago.",
                    "EXPIRED_AUTHENTICATION",
                    context={"expired": [str(ago)]},
                )
        return self.apps[app_id]
