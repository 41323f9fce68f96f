"""The model of a tenant's settings: the attrs classes, and the checks of their values.

Import these from :mod:`ambac_hubspot_plugin.settings`, which structures raw settings into
them (:func:`~ambac_hubspot_plugin.settings.parse_settings`), and exports their JSON Schema.
"""

from __future__ import annotations

import re
import string
from typing import Any, Literal, Union
from urllib.parse import urlsplit

import attrs

from ._secrets import MASK, fits_a_header, url_passwords
from .host import OrderStatus

__all__ = [
    "ALLOW_LOCAL_SANDBOX_ENV",
    "CREDENTIAL_KINDS",
    "MAX_DAYS",
    "MAX_FAILED_RUNS",
    "MAX_MINUTES",
    "ORDER_URL_FIELDS",
    "AccountTier",
    "AlertSettings",
    "ApiVersion",
    "AtLeast",
    "ConflictSettings",
    "Credentials",
    "Direction",
    "Directions",
    "Invalid",
    "MappingSettings",
    "OAuthCredentials",
    "OutboundSettings",
    "PrivateAppCredentials",
    "ProjectAppCredentials",
    "RetentionSettings",
    "Secret",
    "ServiceKeyCredentials",
    "Settings",
    "local_sandbox_allowed",
]

AccountTier = Literal["free", "starter", "professional", "enterprise", "capacity_pack"]
#: HubSpot's date-based API (the default) or the legacy v3/v4 paths (see docs/client.md).
ApiVersion = Literal["2026-09", "v3"]
Direction = Literal["hubspot_to_ambac", "ambac_to_hubspot", "both", "off"]


@attrs.frozen(repr=False)
class Secret:
    """A secret string (token, client secret). ``repr`` and ``str`` never show it."""

    _value: str = attrs.field(alias="value")

    def reveal(self) -> str:
        """Return the secret itself, for the one place that sends it to HubSpot."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


ALLOW_LOCAL_SANDBOX_ENV = "AMBAC_HUBSPOT_ALLOW_LOCAL_SANDBOX"
"""The environment variable (``1``) with which the operator of a process lets tenants use
``local_sandbox``. A tenant setting alone must not open loopback: whoever may change a tenant's
settings could then send its access token to any service on the host's machine."""


def local_sandbox_allowed() -> bool:
    """Whether this process's operator allows ``local_sandbox`` (see ALLOW_LOCAL_SANDBOX_ENV)."""
    import os

    return os.environ.get(ALLOW_LOCAL_SANDBOX_ENV) == "1"


class Invalid(ValueError):
    """A setting's value is wrong; the message is the plugin's own words, shown as it is.

    Only these messages reach the user verbatim: what cattrs or Python raise is worded by
    them and may change with any release, so it is shown as "must be of type ...".
    """


def _non_empty(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, Secret):
        value = value.reveal()
    if isinstance(value, str) and not value.strip():
        raise Invalid(f"{attribute.name} must not be empty")


def _credential(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A credential goes into a header as it is: printable ASCII, no space or line break (a
    token read from a file often ends in one). The message never quotes the value."""
    _non_empty(inst, attribute, value)
    text = value.reveal() if isinstance(value, Secret) else value
    if isinstance(text, str) and not fits_a_header(text):
        raise Invalid(f"{attribute.name} holds a space, a line break or a character that is not "
                      "ASCII; paste it exactly as HubSpot shows it (a file it was read from may "
                      "end in a line break)")


@attrs.frozen
class PrivateAppCredentials:
    """A legacy private app's access token (sent as ``Authorization: Bearer``).

    HubSpot creates no new legacy private apps since 2026-10-26 and supports legacy apps until
    September 2027; :class:`ProjectAppCredentials` is their successor that receives webhooks.
    """

    access_token: Secret = attrs.field(validator=_credential)
    kind: Literal["private_app"] = "private_app"


@attrs.frozen
class ProjectAppCredentials:
    """A project-based app's static access token (sent as ``Authorization: Bearer``)."""

    access_token: Secret = attrs.field(validator=_credential)
    kind: Literal["project_app"] = "project_app"


@attrs.frozen
class ServiceKeyCredentials:
    """A service key: sent like a private-app token, but HubSpot sends it no webhooks."""

    access_token: Secret = attrs.field(validator=_credential)
    kind: Literal["service_key"] = "service_key"


@attrs.frozen
class OAuthCredentials:
    """An OAuth app's client id and secret and the portal's refresh token."""

    client_id: str = attrs.field(validator=_credential)
    client_secret: Secret = attrs.field(validator=_credential)
    refresh_token: Secret = attrs.field(validator=_credential)
    kind: Literal["oauth"] = "oauth"


# Kept as Union[...]: cattrs' configure_tagged_union needs a typing.Union; `A | B` is a types.UnionType.
Credentials = Union[PrivateAppCredentials, ProjectAppCredentials, ServiceKeyCredentials, OAuthCredentials]  # noqa: UP007  # see the comment above

#: ``credentials.kind`` -> its record: the one list the converter, errors and schema share.
CREDENTIAL_KINDS: dict[str, type] = {
    "private_app": PrivateAppCredentials,
    "project_app": ProjectAppCredentials,
    "service_key": ServiceKeyCredentials,
    "oauth": OAuthCredentials,
}


@attrs.frozen
class MappingSettings:
    """Which field-mapping strategy to use, and its options."""

    strategy: str = "default"
    options: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ConflictSettings:
    """The conflict strategy: a default, and overrides per ``object.field`` (``order.name``;
    the object is ``order``, ``company`` or ``contact``, the field one a mapping sets)."""

    default: str = "hubspot_wins"
    per_field: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Directions:
    """Which way each kind of record flows."""

    orders: Direction = "both"
    companies: Direction = "hubspot_to_ambac"
    contacts: Direction = "hubspot_to_ambac"


@attrs.frozen
class AtLeast:
    """A validator of a whole number's minimum, and optionally its maximum; the JSON Schema
    shows them as ``minimum`` and ``maximum``."""

    minimum: int
    maximum: int | None = None

    def __call__(self, _inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
        if value < self.minimum:
            raise Invalid(f"{attribute.name} must be at least {self.minimum} (it is {value})")
        if self.maximum is not None and value > self.maximum:
            raise Invalid(f"{attribute.name} must be at most {self.maximum} (it is {value})")


_at_least = AtLeast

#: The longest retention, cooldown or silence a setting may ask for: 100 years. A longer one
#: is "forever" in practice, and ``now - timedelta(days=...)`` past year 1 raises
#: OverflowError in every prune, alert check and status view.
MAX_DAYS = 36_500
MAX_MINUTES = MAX_DAYS * 24 * 60
#: ``alerts.failed_runs`` reads that many runs back: a bound keeps the query's LIMIT sane.
MAX_FAILED_RUNS = 1_000


ORDER_URL_FIELDS = ("base_url", "order_id", "order_number")
"""The fields an ``order_url_template`` may use (see :meth:`OutboundPush` order links)."""


def _order_url_template(_inst: object, _attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    allowed = ", ".join(f"{{{name}}}" for name in ORDER_URL_FIELDS)
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise Invalid(f"order_url_template is not a valid template ({exc}); write a literal "
                         "'{' or '}' as '{{' or '}}'") from exc
    for _text, field, spec, conversion in parts:
        if field is None:
            continue
        # Plain names only: `{base_url.__class__}`, `{order_id[0]}`, `{0}`, `!r` or a format
        # spec would read more than the value (or fail every push with an unknown field).
        if field not in ORDER_URL_FIELDS or conversion or spec:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise Invalid(f"order_url_template may use only {allowed}, each as written; "
                             f"{shown[:60]} is not one of them")
    if "{order_id}" not in value:
        raise Invalid("order_url_template must contain {order_id}, e.g. "
                         "'{base_url}/orders/{order_id}'")


@attrs.frozen
class OutboundSettings:
    """What the push to HubSpot adds beyond the order's deal properties."""

    notes_on_status_change: bool = False
    order_url_template: str | None = attrs.field(default="{base_url}/orders/{order_id}",
                                                 validator=_order_url_template)


@attrs.frozen
class AlertSettings:
    """When to alert the tenant's admins, and how often at most."""

    failed_runs: int = attrs.field(default=3, validator=_at_least(1, MAX_FAILED_RUNS))
    dead_letters: int = attrs.field(default=10, validator=_at_least(1))
    webhook_silence_minutes: int = attrs.field(default=120, validator=_at_least(5, MAX_MINUTES))
    cooldown_minutes: int = attrs.field(default=60, validator=_at_least(1, MAX_MINUTES))


@attrs.frozen
class RetentionSettings:
    """How long the plugin keeps old rows in its store before the periodic task prunes them.

    Processed webhook events are the dedupe window: HubSpot retries a delivery for up to 24
    hours, so they are kept at least a day. Unprocessed events, pending and running jobs,
    running sync runs, the newest run of each kind and conflicts are never pruned.
    """

    webhook_events_days: int = attrs.field(default=7, validator=_at_least(1, MAX_DAYS))
    log_days: int = attrs.field(default=30, validator=_at_least(1, MAX_DAYS))
    sync_runs_days: int = attrs.field(default=90, validator=_at_least(1, MAX_DAYS))
    dead_jobs_days: int = attrs.field(default=30, validator=_at_least(1, MAX_DAYS))
    prune_every_minutes: int = attrs.field(default=60, validator=_at_least(5, MAX_MINUTES))


def _portal_id(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    if not re.fullmatch(r"[0-9]{1,20}", value):
        raise Invalid("portal_id must be the HubSpot account (hub) id: digits only")


def _timezone(_inst: object, _attribute: attrs.Attribute[Any], value: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(
            f"portal_timezone {value!r} is not an IANA time zone such as 'America/Chicago'; "
            "use the time zone set in HubSpot under Account Defaults"
        ) from exc


# HubSpot's API hosts: api.hubapi.com and the regional ones (api-eu1.hubapi.com, api-na2...).
_HUBSPOT_API_HOST = re.compile(r"api(-[a-z]{2,3}[0-9]{1,2})?\.hubapi\.com")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _api_base_url(inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    """HubSpot's API only: the bearer token goes wherever this points (no SSRF by setting)."""
    hubspot = "https://api.hubapi.com (or a regional API host such as https://api-eu1.hubapi.com)"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise Invalid(f"api_base_url must be HubSpot's API, {hubspot}") from exc
    host = (parts.hostname or "").lower()
    if (parts.scheme not in ("http", "https") or parts.username is not None
            or parts.password is not None or parts.path or parts.query or parts.fragment):
        raise Invalid(f"api_base_url must be a scheme and host only (no path, query, user or "
                         f"trailing '/'), namely HubSpot's API, {hubspot}")
    if _HUBSPOT_API_HOST.fullmatch(host):
        if parts.scheme != "https" or port not in (None, 443):
            raise Invalid(f"api_base_url must use https on the default port: {hubspot}")
        return
    if host in _LOOPBACK_HOSTS:
        # Read from the instance, or (for the pass naming every problem) from the raw settings.
        if getattr(inst, "local_sandbox", False) is True:
            return
        raise Invalid("api_base_url points at this machine (loopback), which is allowed only "
                         "for the bundled HubSpot sandbox: set local_sandbox to true for that, or "
                         f"use {hubspot}")
    raise Invalid(f"api_base_url must be HubSpot's API, {hubspot}; the access token is sent "
                     "there, so no other host is accepted")


def _store_url(_inst: object, _attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and MASK in url_passwords(value):
        raise Invalid(f"store_url carries the masked password {MASK!r}; type the real password "
                         "(or send the URL back unchanged, which keeps the stored one)")


RATE_LIMIT_BACKEND_SCHEMES = ("redis://", "rediss://", "unix://")
"""The URL schemes ``rate_limit_backend`` accepts: Redis, as redis-py's ``Redis.from_url`` reads them."""


def _rate_limit_backend(_inst: object, _attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    if not value.startswith(RATE_LIMIT_BACKEND_SCHEMES):
        raise Invalid(f"rate_limit_backend must be a Redis URL ({', '.join(RATE_LIMIT_BACKEND_SCHEMES)}), such "
                      "as the host's Celery broker, or null for each process's own memory")
    if MASK in url_passwords(value):
        raise Invalid(f"rate_limit_backend carries the masked password {MASK!r}; type the real "
                      "password (or send the URL back unchanged, which keeps the stored one)")


def _http_url(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
        raise Invalid(f"{attribute.name} must be an http(s) URL such as https://tracker.example.com")
    if value is not None and value.endswith("/"):
        raise Invalid(f"{attribute.name} must not end with '/'")


@attrs.frozen
class Settings:
    """Everything one tenant configures for the integration."""

    portal_id: str = attrs.field(validator=_portal_id)
    credentials: Credentials
    webhook_client_secret: Secret | None = attrs.field(default=None, validator=attrs.validators.optional(_credential))
    account_tier: AccountTier = "professional"
    burst_per_10s: int | None = attrs.field(default=None, validator=attrs.validators.optional(_at_least(1)))
    search_per_second: int | None = attrs.field(default=None, validator=attrs.validators.optional(_at_least(1)))
    api_base_url: str = attrs.field(default="https://api.hubapi.com", validator=_api_base_url)
    #: Allow a loopback api_base_url: the bundled sandbox (tests, demos), never production.
    #: Honoured only in a process whose operator allows it (ALLOW_LOCAL_SANDBOX_ENV).
    local_sandbox: bool = False
    api_version: ApiVersion = "2026-09"
    public_base_url: str | None = attrs.field(default=None, validator=_http_url)
    portal_timezone: str = attrs.field(default="UTC", validator=_timezone)
    store_url: str | None = attrs.field(default=None, validator=_store_url)
    #: Allow a SQLite store_url outside the plugin's data directory (stated on purpose).
    store_outside_data_dir: bool = False
    #: Where the HubSpot rate limiter counts requests: null for each process's own memory, or
    #: a Redis URL that every process of the host shares (one budget per portal).
    rate_limit_backend: str | None = attrs.field(default=None, validator=_rate_limit_backend)
    trigger_stages: dict[str, list[str]] | None = None
    stage_status_map: dict[str, OrderStatus] = attrs.field(factory=dict)
    status_stage_map: dict[str, dict[OrderStatus, str]] = attrs.field(factory=dict)
    mapping: MappingSettings = attrs.field(factory=MappingSettings)
    conflicts: ConflictSettings = attrs.field(factory=ConflictSettings)
    directions: Directions = attrs.field(factory=Directions)
    outbound: OutboundSettings = attrs.field(factory=OutboundSettings)
    sync_interval_seconds: int = attrs.field(default=900, validator=_at_least(60, MAX_DAYS * 86_400))
    sync_overlap_seconds: int = attrs.field(default=300, validator=_at_least(0, MAX_DAYS * 86_400))
    alerts: AlertSettings = attrs.field(factory=AlertSettings)
    retention: RetentionSettings = attrs.field(factory=RetentionSettings)
    run_background_worker: bool = True
    #: Read the next chunk of deals (search page, associations) in a thread while this chunk is
    #: written: HubSpot's round trips overlap the host's writes (docs/performance.md, Backfill).
    read_ahead: bool = True
