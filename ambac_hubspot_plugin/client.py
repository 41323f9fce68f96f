"""The HubSpot client port: what the sync needs from HubSpot, in the project's own terms.

:class:`HubSpotClient` is the Protocol the core depends on. Its shape follows the sync (stream
modified deals, batch-read what they point at, write a few properties back), not the SDK. The
records it returns are frozen attrs classes; every failure is one of the errors in
:mod:`ambac_hubspot_plugin.errors`.

The real adapter lives in the private module ``_hubspot`` (the only module importing the
``hubspot`` SDK); :func:`build_client` imports it on first use, so importing this module, or
registering the plugin, never pays the SDK's import cost.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

import attrs
import cattrs

from ._api_paths import API_PATHS, DEFAULT_API_VERSION
from ._clock import utc_now
from ._ratelimit import TIER_BURST_PER_10S, RateBudget, RateLimiter, budget_for_tier
from ._retry import RetryPolicy
from .errors import ConfigError

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "Association",
    "AssociationInput",
    "BatchResult",
    "ClientSettings",
    "ClientStats",
    "Company",
    "Contact",
    "Deal",
    "HubSpotClient",
    "HubSpotObject",
    "ItemError",
    "Note",
    "OAuthApp",
    "Pipeline",
    "PropertyOption",
    "PropertySpec",
    "RateBudget",
    "RetryPolicy",
    "Stage",
    "StaticToken",
    "StatsSnapshot",
    "build_client",
    "parse_timestamp",
    "utc_now",
]

Properties = Mapping[str, Union[str, None]]  # noqa: UP007  # a runtime alias; | needs 3.10 objects


def parse_timestamp(value: object) -> datetime | None:
    """Parse a HubSpot timestamp (ISO 8601 or epoch milliseconds) into tz-aware UTC.

    Empty values give ``None``; a naive ISO value is taken as UTC (HubSpot's are always UTC).

    :raises ValueError: when the value is neither form.
    """
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def _not_blank(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value or not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


@attrs.frozen
class StaticToken:
    """An app's static access token or a service key, sent as ``Authorization: Bearer``."""

    access_token: str = attrs.field(repr=False, validator=_not_blank)


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
    if not value.startswith(("http://", "https://")) or value.endswith("/"):
        raise ValueError("base_url must be an http(s) URL without a trailing '/'")
    if "hapikey" in value.lower():
        raise ValueError(_RETIRED_MESSAGE)


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
    burst_per_window: int | None = None
    window_seconds: float = 10.0
    search_per_second: int | None = None
    connect_timeout: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    read_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    #: The longest a call waits for the local rate limiter before failing with RateLimitedError.
    rate_limit_wait_seconds: float = 60.0
    #: Refresh an OAuth access token this long before HubSpot says it expires.
    refresh_margin_seconds: float = 300.0
    #: Which HubSpot API paths to call: ``2026-09`` (date-based) or ``v3`` (legacy v3/v4).
    api_version: str = attrs.field(default=DEFAULT_API_VERSION, validator=_api_version)

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
        try:
            return _settings_converter.structure(dict(data), cls)
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            problems = [(str(path), str(why)) for path, why in _describe(exc)]
            raise ConfigError.from_problems(problems, "HubSpot client settings") from exc

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
            **{"burst_per_window": settings.burst_per_10s,
               "search_per_second": settings.search_per_second, **overrides},
        )


def _describe(exc: BaseException) -> list[tuple[str, str]]:
    if isinstance(exc, cattrs.BaseValidationError):
        out: list[tuple[str, str]] = []
        for line in cattrs.transform_error(exc):
            msg, _, path = line.rpartition(" @ $")
            out.append((path.lstrip(".") or "settings", msg or line))
        return out
    return [("settings", str(exc))]


def _make_settings_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

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


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


def _frozen_mapping(value: Mapping[str, str | None]) -> Mapping[str, str | None]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


# Tuple converters named per element type rather than ``converter=tuple``: mypy's attrs plugin
# cannot bind tuple's (or any generic converter's) type variable, so passing a list to these
# fields would not type-check; a plain named function gives the field an ``Iterable[X]`` input.


def _int_tuple(items: Iterable[int]) -> tuple[int, ...]:
    return tuple(items)


@attrs.frozen
class HubSpotObject:
    """A CRM object as HubSpot returned it: all property values are strings (or ``None``)."""

    id: str
    properties: Properties = attrs.field(converter=_frozen_mapping)
    updated_at: datetime
    archived: bool = False
    created_at: datetime | None = None

    #: HubSpot's object type name, as used in API paths.
    object_type: str = attrs.field(default="objects", init=False)


@attrs.frozen
class Deal(HubSpotObject):
    """A deal (``dealname``, ``amount``, ``dealstage``, ``pipeline``, ``closedate``, ...)."""

    object_type: str = attrs.field(default="deals", init=False)


@attrs.frozen
class Company(HubSpotObject):
    """A company (``name``, ``domain``, ``website``, ``phone``, address fields, ...)."""

    object_type: str = attrs.field(default="companies", init=False)


@attrs.frozen
class Contact(HubSpotObject):
    """A contact (``firstname``, ``lastname``, ``email``, ``phone``, ...)."""

    object_type: str = attrs.field(default="contacts", init=False)


@attrs.frozen
class Note(HubSpotObject):
    """A note (``hs_note_body``, ``hs_timestamp``)."""

    object_type: str = attrs.field(default="notes", init=False)


@attrs.frozen
class Association:
    """One associated object and every association type id linking it (5 = primary company)."""

    to_id: str
    type_ids: tuple[int, ...] = attrs.field(converter=_int_tuple)


@attrs.frozen
class AssociationInput:
    """An association to create with an object: target id and type id."""

    to_id: str
    type_id: int
    category: str = "HUBSPOT_DEFINED"


@attrs.frozen
class ItemError:
    """One input of a batch that HubSpot refused; ``id`` is the input's id when HubSpot says it."""

    id: str | None
    status: str
    category: str | None
    message: str


def _object_tuple(items: Iterable[HubSpotObject]) -> tuple[HubSpotObject, ...]:
    return tuple(items)


def _item_error_tuple(items: Iterable[ItemError]) -> tuple[ItemError, ...]:
    return tuple(items)


@attrs.frozen
class BatchResult:
    """Per-item outcome of a batch write: the objects written and the items refused."""

    succeeded: tuple[HubSpotObject, ...] = attrs.field(converter=_object_tuple)
    failed: tuple[ItemError, ...] = attrs.field(converter=_item_error_tuple)

    @property
    def ok(self) -> bool:
        """Whether every item was written."""
        return not self.failed


@attrs.frozen
class Stage:
    """A pipeline stage; ``is_won`` means closed with probability 1.0."""

    id: str
    label: str
    is_closed: bool
    probability: Decimal | None
    display_order: int = 0

    @property
    def is_won(self) -> bool:
        """Closed and certain: HubSpot's definition of a won stage."""
        return self.is_closed and self.probability == Decimal(1)


def _stage_tuple(items: Iterable[Stage]) -> tuple[Stage, ...]:
    return tuple(items)


@attrs.frozen
class Pipeline:
    """A deal pipeline and its stages in display order."""

    id: str
    label: str
    stages: tuple[Stage, ...] = attrs.field(converter=_stage_tuple)
    archived: bool = False


@attrs.frozen
class PropertyOption:
    """One choice of an enumeration property."""

    label: str
    value: str
    display_order: int = 0


def _option_tuple(items: Iterable[PropertyOption]) -> tuple[PropertyOption, ...]:
    return tuple(items)


@attrs.frozen
class PropertySpec:
    """A custom property to make sure exists (``type``/``field_type`` as HubSpot names them)."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    group_name: str = "ambac_tracker"
    description: str = ""
    options: tuple[PropertyOption, ...] = attrs.field(default=(), converter=_option_tuple)
    has_unique_value: bool = False


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


@attrs.frozen
class StatsSnapshot:
    """Counters at one moment: calls per endpoint, retries, 429s, token refreshes, errors."""

    calls: Mapping[str, int]
    retries: int
    rate_limited: int
    refreshes: int
    errors: int
    limiter_wait_seconds: float

    @property
    def total_calls(self) -> int:
        """Every HTTP request sent, retries included."""
        return sum(self.calls.values())


class ClientStats:
    """Thread-safe call counters for the status view and the benchmarks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._retries = 0
        self._rate_limited = 0
        self._refreshes = 0
        self._errors = 0
        self._wait = 0.0

    def record_call(self, endpoint: str) -> None:
        """Count one request sent to ``endpoint``."""
        with self._lock:
            self._calls[endpoint] = self._calls.get(endpoint, 0) + 1

    def record_retry(self) -> None:
        """Count one retry."""
        with self._lock:
            self._retries += 1

    def record_rate_limited(self) -> None:
        """Count one 429 answer."""
        with self._lock:
            self._rate_limited += 1

    def record_refresh(self) -> None:
        """Count one OAuth token refresh."""
        with self._lock:
            self._refreshes += 1

    def record_error(self) -> None:
        """Count one operation that failed for good."""
        with self._lock:
            self._errors += 1

    def record_wait(self, seconds: float) -> None:
        """Add time spent waiting for the local rate limiter."""
        with self._lock:
            self._wait += seconds

    def snapshot(self) -> StatsSnapshot:
        """Copy the counters."""
        with self._lock:
            return StatsSnapshot(
                calls=MappingProxyType(dict(self._calls)),
                retries=self._retries,
                rate_limited=self._rate_limited,
                refreshes=self._refreshes,
                errors=self._errors,
                limiter_wait_seconds=self._wait,
            )


# ---------------------------------------------------------------------------------------------
# The port
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class HubSpotClient(Protocol):
    """What the sync needs from one HubSpot portal.

    Iterators stream: they fetch a page at a time and hold constant memory. Every method
    raises only errors from :mod:`ambac_hubspot_plugin.errors`.
    """

    @property
    def stats(self) -> ClientStats:
        """Call counters of this client."""

    def test_connection(self) -> None:
        """Make one cheap authenticated call; raise the translated error if it fails."""

    def iter_modified_deals(
        self, since: datetime, properties: Sequence[str], *, until: datetime | None = None
    ) -> Iterator[Deal]:
        """Yield deals with ``hs_lastmodifieddate`` in ``[since, until]``, oldest first.

        Reads past search's 10,000-result cap by re-anchoring; nothing is lost or repeated
        within one run (a deal modified during the run may come again with its new version).
        """

    def iter_modified(
        self,
        object_type: str,
        since: datetime,
        properties: Sequence[str],
        *,
        until: datetime | None = None,
    ) -> Iterator[HubSpotObject]:
        """Like :meth:`iter_modified_deals` for ``deals``, ``companies`` or ``contacts``."""

    def iter_deals_in_stages(
        self, stage_ids: Sequence[str], properties: Sequence[str], since: datetime | None = None
    ) -> Iterator[Deal]:
        """Yield deals whose ``dealstage`` is one of ``stage_ids`` (modified since ``since``)."""

    def get_deal(self, deal_id: str, properties: Sequence[str] = ()) -> Deal | None:
        """Read one deal; ``None`` when HubSpot has no such deal."""

    def read_deals(self, ids: Sequence[str], properties: Sequence[str] = ()) -> Iterator[Deal]:
        """Batch-read deals (100 per request); ids HubSpot does not know are skipped."""

    def read_companies(
        self, ids: Sequence[str], properties: Sequence[str] = ()
    ) -> Iterator[Company]:
        """Batch-read companies (100 per request); unknown ids are skipped."""

    def read_contacts(
        self, ids: Sequence[str], properties: Sequence[str] = ()
    ) -> Iterator[Contact]:
        """Batch-read contacts (100 per request); unknown ids are skipped."""

    def read_associations(
        self, from_type: str, to_type: str, ids: Sequence[str]
    ) -> Mapping[str, list[Association]]:
        """Map each id to its associations (1,000 ids per request); ids without any are absent."""

    def create_object(
        self,
        object_type: str,
        properties: Properties,
        associations: Sequence[AssociationInput] = (),
    ) -> HubSpotObject:
        """Create one object; never re-sent unless the failure proves it was not processed."""

    def create_objects(self, object_type: str, inputs: Sequence[Properties]) -> BatchResult:
        """Batch-create objects (100 per request), with the same no-duplicate rule."""

    def update_objects(self, object_type: str, updates: Mapping[str, Properties]) -> BatchResult:
        """Batch-update objects by id (100 per request); per-item failures are returned."""

    def upsert_objects(
        self, object_type: str, id_property: str, inputs: Mapping[str, Properties]
    ) -> BatchResult:
        """Create-or-update by a unique property (``inputs`` keyed by its value): safe to retry."""

    def create_note_on_deal(self, deal_id: str, body: str, when: datetime) -> str:
        """Create a note associated with the deal; return the note's id."""

    def get_pipelines(self) -> list[Pipeline]:
        """Read the portal's deal pipelines and stages."""

    def ensure_property_group(self, object_type: str, name: str, label: str) -> bool:
        """Create a property group unless it exists; return whether it was created."""

    def ensure_properties(self, object_type: str, specs: Sequence[PropertySpec]) -> list[str]:
        """Create the properties that do not exist yet; return the names created."""

    def close(self) -> None:
        """Release connections."""


def build_client(
    settings: ClientSettings,
    *,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    limiter: RateLimiter | None = None,
    stats: ClientStats | None = None,
) -> HubSpotClient:
    """Build the SDK-backed client for one portal.

    :param clock: tz-aware UTC time, for token expiry and retry deadlines.
    :param sleep: how to wait between retries (tests pass a recorder).
    :param rng: jitter source; seeded in tests.
    :param limiter: the rate limiter; by default the process-wide one for this portal and app.
    :param stats: counters to update; a fresh :class:`ClientStats` by default.
    """
    from . import _hubspot  # the SDK costs ~275 ms to import: pay it only when a client is built
    from ._ratelimit import shared_limiter

    if limiter is None:
        limiter = shared_limiter(settings.limiter_key(), settings.rate_budget())
    return _hubspot.SdkHubSpotClient(
        settings,
        clock=clock,
        sleep=sleep,
        rng=rng or random.Random(),  # noqa: S311  # backoff jitter, not cryptography
        limiter=limiter,
        stats=stats or ClientStats(),
    )
