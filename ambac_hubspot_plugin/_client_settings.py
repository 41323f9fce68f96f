"""How the HubSpot client reaches one portal: credentials and :class:`ClientSettings`.

Import these from :mod:`ambac_hubspot_plugin.client`; this module exists so the adapter
(``_hubspot``) can read the settings without importing the port, which imports the adapter.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import urlsplit

import attrs
import cattrs

from ._api_paths import API_PATHS, DEFAULT_API_VERSION
from ._ratelimit import TIER_BURST_PER_10S, RateBudget, budget_for_tier
from ._retry import RetryPolicy
from ._secrets import fits_a_header
from .errors import ConfigError

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["Auth", "ClientSettings", "OAuthApp", "StaticToken"]


def _not_blank(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value or not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


def _header_value(inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    """A token sent in the Authorization header: what a header cannot hold is refused here, not
    by the HTTP library, whose error quotes the header (and so the token)."""
    _not_blank(inst, attribute, value)
    if not fits_a_header(value):
        raise ValueError(f"{attribute.name} holds a space, a line break or a character that is not ASCII")


@attrs.frozen
class StaticToken:
    """An app's static access token or a service key, sent as ``Authorization: Bearer``."""

    access_token: str = attrs.field(repr=False, validator=_header_value)


@attrs.frozen
class OAuthApp:
    """An OAuth app's credentials and the portal's refresh token; access tokens are fetched."""

    client_id: str = attrs.field(validator=_not_blank)
    client_secret: str = attrs.field(repr=False, validator=_not_blank)
    refresh_token: str = attrs.field(repr=False, validator=_not_blank)


Auth = Union[StaticToken, OAuthApp]  # noqa: UP007  # cattrs structures this Union object


def _api_version(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in API_PATHS:
        choices = " or ".join(repr(v) for v in API_PATHS)
        raise ValueError(f"api_version must be {choices}, not {str(value)[:40]!r}")


def _base_url(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if "hapikey" in value.lower():
        raise ValueError(_RETIRED_MESSAGE)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or value.endswith("/") \
            or parts.query or parts.fragment or "#" in value:
        raise ValueError("base_url must be an http(s) URL without a trailing '/', a query or a fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        # The token would cross the network in clear text.
        raise ValueError("base_url must be https:// (plain http:// only on this machine: 127.x, localhost, [::1])")


def _is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's hostname) is this machine: ``localhost`` or a loopback address
    (never a name that merely starts like one, such as ``127.0.0.1.example.com``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _optional_at_least(low: float) -> Any:
    return attrs.validators.optional(attrs.validators.ge(low))


_RETIRED_MESSAGE = (
    "HubSpot retired API keys (hapikey) on 2022-11-30; use an app's access token or a "
    "service key (StaticToken) or OAuth (OAuthApp: client id, client secret, refresh token)"
)


@attrs.frozen
class ClientSettings:
    """How to reach one portal: credentials, rate budget, timeouts and retry bounds.

    ``account_tier`` picks the burst budget (``free``/``starter`` 100, ``professional``/
    ``enterprise`` 190, ``capacity_pack`` 250 per 10 s; OAuth apps get 110); ``burst_per_window``,
    ``window_seconds`` and ``search_per_second`` override it.
    """

    auth: Auth
    base_url: str = attrs.field(default="https://api.hubapi.com", validator=_base_url)
    portal_id: str | None = None
    account_tier: str = attrs.field(
        default="professional", validator=attrs.validators.in_(TIER_BURST_PER_10S)
    )
    burst_per_window: int | None = attrs.field(default=None, validator=_optional_at_least(1))
    window_seconds: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    search_per_second: int | None = attrs.field(default=None, validator=_optional_at_least(1))
    connect_timeout: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    read_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    #: The longest a call waits for the local rate limiter before failing with RateLimitedError.
    rate_limit_wait_seconds: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    #: Refresh an OAuth access token this long before HubSpot says it expires.
    refresh_margin_seconds: float = attrs.field(default=300.0, validator=attrs.validators.ge(0))
    #: Which HubSpot API paths to call: ``2026-09`` (date-based) or ``v3`` (legacy v3/v4).
    api_version: str = attrs.field(default=DEFAULT_API_VERSION, validator=_api_version)
    #: Where the rate limiter keeps its log: None for this process, or a Redis URL shared by
    #: every process using it (``_ratelimit.RateLimiter``).
    rate_limit_backend: str | None = attrs.field(default=None, repr=False)

    def rate_budget(self) -> RateBudget:
        """The local rate budget these settings ask for."""
        burst = self.burst_per_window
        if burst is None and isinstance(self.auth, OAuthApp):
            burst = TIER_BURST_PER_10S["oauth_app"]  # OAuth apps get their own, per-install budget
        return budget_for_tier(
            self.account_tier,
            burst=burst,
            window_seconds=self.window_seconds,
            search_per_second=self.search_per_second,
        )

    def limiter_key(self) -> str:
        """Identify whose budget this is (portal and app) without exposing a secret."""
        import hashlib

        if isinstance(self.auth, OAuthApp):
            who = f"app:{self.auth.client_id}"
            secret = self.auth.refresh_token
        else:
            who = "token"
            secret = self.auth.access_token
        portal = self.portal_id or hashlib.sha256(secret.encode()).hexdigest()[:16]
        return f"{self.base_url}|{portal}|{who}"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ClientSettings:
        """Structure settings from JSON-like data; raise one ``ConfigError`` naming bad fields.

        Settings carrying an API key (``hapikey``) are refused: HubSpot retired them.
        """
        retired = [key for key in data if str(key).lower() in {"hapikey", "api_key", "apikey"}]
        auth = data.get("auth")
        if isinstance(auth, Mapping):
            retired += [
                f"auth.{key}"
                for key in auth
                if str(key).lower() in {"hapikey", "api_key", "apikey"}
            ]
        if retired:
            raise ConfigError.from_problems(
                [(key, _RETIRED_MESSAGE) for key in retired], "HubSpot client settings"
            )
        problems = _field_problems(data)
        if not problems:
            try:
                return _settings_converter.structure(dict(data), cls)
            except (cattrs.BaseValidationError, ValueError, TypeError) as exc:  # across fields
                problems = _describe(exc)
        raise ConfigError.from_problems(problems, "HubSpot client settings")

    @classmethod
    def from_plugin_settings(cls, settings: Settings, **overrides: Any) -> ClientSettings:
        """Derive client settings from a tenant's plugin settings (:mod:`.settings`)."""
        creds = settings.credentials
        auth: Auth
        if getattr(creds, "kind", None) == "oauth":
            auth = OAuthApp(
                client_id=creds.client_id,  # type: ignore[union-attr]  # narrowed by kind
                client_secret=creds.client_secret.reveal(),  # type: ignore[union-attr]  # narrowed by kind
                refresh_token=creds.refresh_token.reveal(),  # type: ignore[union-attr]  # narrowed by kind
            )
        else:
            auth = StaticToken(creds.access_token.reveal())  # type: ignore[union-attr]  # narrowed by kind
        return cls(
            auth=auth,
            base_url=settings.api_base_url,
            portal_id=settings.portal_id,
            account_tier=settings.account_tier,
            api_version=settings.api_version,
            rate_limit_backend=settings.rate_limit_backend,
            **{"burst_per_window": settings.burst_per_10s,
               "search_per_second": settings.search_per_second, **overrides},
        )


def _field_problems(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every field's problem, each field structured and checked on its own (one field's
    mistake must not hide another's): unknown, missing, of the wrong type or out of range."""
    fields = attrs.fields_dict(attrs.resolve_types(ClientSettings))
    problems = [("settings", f"unknown field {name!r}; known fields: {sorted(fields)}")
                for name in data if name not in fields]
    problems += [(name, "is required") for name, field in fields.items()
                 if field.default is attrs.NOTHING and name not in data]
    for name, value in data.items():
        field = fields.get(name)
        if field is None:
            continue
        try:
            structured = _settings_converter.structure(value, field.type)  # type: ignore[arg-type]  # resolved above
            if field.validator is not None:
                field.validator(None, field, structured)
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            problems += [(f"{name}.{path}" if path != "settings" else name, why) for path, why in _describe(exc)]
    return problems


def _describe(exc: BaseException) -> list[tuple[str, str]]:
    if isinstance(exc, cattrs.BaseValidationError):
        out: list[tuple[str, str]] = []
        for line in cattrs.transform_error(exc, format_exception=_message):
            msg, _, path = line.rpartition(" @ $")
            out.append((path.lstrip(".") or "settings", msg or line))
        return out
    return [("settings", _message(exc, None))]


def _message(exc: BaseException, type_: Any) -> str:
    """Our validators' and hooks' own words (attrs' validators put theirs first in ``args``);
    cattrs' for what it found itself (a missing key)."""
    if isinstance(exc, ValueError | TypeError) and not isinstance(exc, cattrs.BaseValidationError):
        return str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else str(exc)
    from cattrs.v import format_exception

    return format_exception(exc, type_)


def _make_settings_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    # cattrs coerces by default ("inf" becomes infinity, 2.9 becomes 2): settings must be the
    # type they claim to be.
    def structure_int(value: object, _type: type) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        return value

    def structure_float(value: object, _type: type) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError("must be a finite number")
        return float(value)

    def structure_str(value: object, _type: type) -> str:
        if not isinstance(value, str):
            raise ValueError("must be text")
        return value

    conv.register_structure_hook(int, structure_int)
    conv.register_structure_hook(float, structure_float)
    conv.register_structure_hook(str, structure_str)

    def structure_auth(value: Any, _type: Any) -> Auth:
        if not isinstance(value, Mapping):
            raise ValueError(
                "auth must be an object with access_token, or client_id/client_secret/refresh_token"
            )
        if "access_token" in value:
            return conv.structure(value, StaticToken)
        return conv.structure(value, OAuthApp)

    conv.register_structure_hook(Auth, structure_auth)
    return conv


_settings_converter = _make_settings_converter()
