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
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from ._client_records import (
    Association,
    AssociationInput,
    BatchResult,
    ClientStats,
    Company,
    Contact,
    Deal,
    DealNote,
    HubSpotObject,
    ItemError,
    Note,
    NoteBatch,
    Pipeline,
    Properties,
    PropertyOption,
    PropertySpec,
    Stage,
    StatsSnapshot,
    parse_timestamp,
)
from ._client_settings import ClientSettings, OAuthApp, StaticToken
from ._clock import utc_now
from ._ratelimit import RateBudget, RateLimiter
from ._retry import RetryPolicy

__all__ = [
    "Association",
    "AssociationInput",
    "BatchResult",
    "ClientSettings",
    "ClientStats",
    "Company",
    "Contact",
    "Deal",
    "DealNote",
    "HubSpotClient",
    "HubSpotObject",
    "ItemError",
    "Note",
    "NoteBatch",
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

    def account_portal_id(self) -> str:
        """The id of the HubSpot account (portal) the credentials belong to (account details,
        which any token may read: the basic ``oauth`` scope). One attempt, never retried: a
        probe that should not double the wait of an outage the caller's next calls retry."""

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

    def read_notes(self, ids: Sequence[str], properties: Sequence[str] = ()) -> Iterator[Note]:
        """Batch-read notes (100 per request); unknown ids are skipped."""

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

    def create_notes_on_deals(self, notes: Sequence[DealNote]) -> NoteBatch:
        """Batch-create notes, each associated with its deal in the same request (100 per
        request); never re-sent unless the failure proves it was not processed. Per-note
        refusals come back in the answer; a failed request raises."""

    def get_pipelines(self) -> list[Pipeline]:
        """Read the portal's deal pipelines and stages."""

    def ensure_property_group(self, object_type: str, name: str, label: str) -> bool:
        """Create a property group unless it exists; return whether it was created."""

    def ensure_properties(self, object_type: str, specs: Sequence[PropertySpec]) -> list[str]:
        """Create the properties that do not exist yet; return the names created."""

    def get_property(self, object_type: str, name: str) -> PropertySpec | None:
        """Read one property's definition (its options, for an enumeration), or None if absent."""

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
    :param limiter: the rate limiter; by default the process-wide one for this portal and app
        (shared through Redis when ``settings.rate_limit_backend`` names one).
    :param stats: counters to update; a fresh :class:`ClientStats` by default.
    """
    from . import _hubspot  # the SDK costs ~275 ms to import: pay it only when a client is built
    from ._ratelimit import shared_limiter

    if limiter is None:
        limiter = shared_limiter(settings.limiter_key(), settings.rate_budget(), settings.rate_limit_backend)
    return _hubspot.SdkHubSpotClient(
        settings,
        clock=clock,
        sleep=sleep,
        rng=rng or random.Random(),  # noqa: S311  # backoff jitter, not cryptography
        limiter=limiter,
        stats=stats or ClientStats(),
    )
