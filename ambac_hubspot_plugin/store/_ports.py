"""The store's ports (Protocols the core depends on), its records and its errors.

Nothing here imports SQLAlchemy, so the core can type against the store without loading it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import attrs

from .._clock import utc_now
from ..errors import StoreError

__all__ = [
    "CLAIM_TTL", "CLAIM_WAIT", "INBOX_JOB_KEY", "Checkpoint", "ClaimTimeoutError", "ConflictDraft", "ConflictLog",
    "ConflictRecord", "Inbox", "InboxEvent", "InboxEventDraft", "InboxReceipt", "Job", "JobQueue",
    "JobState", "LeaseLostError", "Link", "LinkConflictError", "LogEntry", "LogLevel", "LogPage",
    "PushStore", "RunStatus", "StateStore", "SyncRun", "SyncStore", "WebhookBacklog",
    "WebhookExpansion", "WebhookPortalStats", "WebhookRefusalStats", "utc_now",
]


class LinkConflictError(StoreError):
    """The database refused a link because one of its two unique keys is already taken.

    Another worker most likely linked the same HubSpot object or host record first: re-read
    the link (by ``hubspot`` or ``host`` key, both given as attributes) and use the winner.
    """

    def __init__(self, message: str, *, hubspot_key: tuple[str, str, str, str],
                 host_key: tuple[str, str, str]) -> None:
        self.hubspot_key = hubspot_key
        self.host_key = host_key
        super().__init__(message)


class LeaseLostError(StoreError):
    """A worker acted on a job it no longer holds (its lease expired and another took it)."""

    def __init__(self, job_id: int, worker_id: str) -> None:
        self.job_id = job_id
        self.worker_id = worker_id
        super().__init__(
            f"Job {job_id} is no longer leased to worker {worker_id!r} (the lease expired "
            "and the job was claimed again or finished); drop the result, the new owner runs it."
        )


#: Far longer than the quick step a claim covers (a search and a create); a crashed holder
#: blocks the key this long at most. A holder that needs longer renews its claims.
CLAIM_TTL = timedelta(seconds=10)
#: How long a holder waits for another's claim before :class:`ClaimTimeoutError`. Longer than
#: the TTL, so a claim a killed process left behind expires while the next one waits: a backfill
#: resumed after a crash takes the claim over instead of failing on it.
CLAIM_WAIT = CLAIM_TTL + timedelta(seconds=5)


class ClaimTimeoutError(StoreError):
    """Another holder kept a store claim past the wait; retry later (it expires by itself)."""

    def __init__(self, tenant_id: str, key: str, wait: timedelta) -> None:
        self.tenant_id = tenant_id
        self.key = key
        super().__init__(f"Tenant {tenant_id}'s claim on {key!r} stayed held by another worker for "
                         f"{wait.total_seconds():g}s; retry later (a crashed holder's claim expires).")


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    def at_least(self) -> tuple[LogLevel, ...]:
        """This level and every more severe one, for "show warnings and worse" filters."""
        members = list(LogLevel)
        return tuple(members[members.index(self):])


class JobState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DEAD = "dead"


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _frozen_json(value: Mapping[str, Any]) -> dict[str, Any]:
    # A copy that never shares mutable state with the caller: a flat mapping of strings to
    # JSON scalars (most links' values) as it is, anything else through a JSON round trip.
    if all(type(k) is str and type(v) in _SCALARS for k, v in value.items()):
        return dict(value)
    return dict(json.loads(json.dumps(dict(value))))


@attrs.frozen
class Link:
    """A HubSpot object and the host record it is synced with, in one tenant."""

    id: int
    tenant_id: str
    portal_id: str
    object_type: str
    hubspot_id: str
    host_type: str
    host_id: str
    synced: dict[str, Any] = attrs.field(converter=_frozen_json)
    created_at: datetime
    updated_at: datetime


@attrs.frozen
class Checkpoint:
    """A named position of a sync (e.g. the last modification time read) for one portal."""

    tenant_id: str
    portal_id: str
    name: str
    value: str
    updated_at: datetime


@attrs.frozen
class SyncRun:
    """One sync run and its outcome; ``heartbeat_at`` shows whether its process is alive."""

    id: int
    tenant_id: str
    kind: str
    status: RunStatus = attrs.field(converter=RunStatus)
    started_at: datetime
    heartbeat_at: datetime
    ended_at: datetime | None
    owner: str | None
    created: int
    updated: int
    skipped: int
    failed: int
    error: str | None


@attrs.frozen
class LogEntry:
    """One line of the integration log a tenant admin reads."""

    id: int
    tenant_id: str
    level: LogLevel = attrs.field(converter=LogLevel)
    what: str
    record: str | None
    message: str
    created_at: datetime


@attrs.frozen
class LogPage:
    """Log entries newest first; pass ``next_before`` back as ``before`` for the next page."""

    entries: tuple[LogEntry, ...]
    next_before: int | None


@attrs.frozen
class Job:
    """A queued unit of work. ``attempts`` counts claims, including the one running now."""

    id: int
    tenant_id: str
    kind: str
    payload: dict[str, Any] = attrs.field(converter=_frozen_json)
    state: JobState = attrs.field(converter=JobState)
    attempts: int
    max_attempts: int
    dedupe_key: str | None
    run_after: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    created_at: datetime


@runtime_checkable
class StateStore(Protocol):
    """Links, checkpoints, sync history and the integration log, all scoped by tenant."""

    def get_link_by_hubspot(self, tenant_id: str, portal_id: str, object_type: str,
                            hubspot_id: str) -> Link | None: ...

    def get_links_by_hubspot(self, tenant_id: str, portal_id: str, object_type: str,
                             hubspot_ids: Collection[str]) -> dict[str, Link]: ...

    def get_link_by_host(self, tenant_id: str, host_type: str, host_id: str) -> Link | None: ...

    def create_link(self, tenant_id: str, portal_id: str, object_type: str, hubspot_id: str,
                    host_type: str, host_id: str, *,
                    synced: Mapping[str, Any] | None = None) -> Link: ...

    def create_links(self, tenant_id: str, portal_id: str,
                     rows: Sequence[tuple[str, str, str, str, Mapping[str, Any]]]) -> list[Link | None]: ...

    def update_link_synced(self, link_id: int, synced: Mapping[str, Any]) -> Link: ...

    def company_links_by_domain(self, tenant_id: str, portal_id: str, domain: str) -> list[Link]: ...

    def company_links_by_domains(self, tenant_id: str, portal_id: str,
                                 domains: Collection[str]) -> dict[str, list[Link]]: ...

    def move_link(self, link_id: int, new_hubspot_id: str) -> Link: ...

    def move_link_host(self, link_id: int, new_host_id: str) -> Link: ...

    def delete_link(self, link_id: int) -> bool: ...

    def get_checkpoint(self, tenant_id: str, portal_id: str, name: str) -> Checkpoint | None: ...

    def set_checkpoint(self, tenant_id: str, portal_id: str, name: str,
                       value: str) -> Checkpoint: ...

    def start_run(self, tenant_id: str, kind: str, *, owner: str | None = None) -> SyncRun: ...

    def heartbeat_run(self, run_id: int) -> None: ...

    def finish_run(self, run_id: int, status: RunStatus, *, created: int = 0, updated: int = 0,
                   skipped: int = 0, failed: int = 0, error: str | None = None) -> SyncRun: ...

    def get_run(self, run_id: int) -> SyncRun | None: ...

    def recent_runs(self, tenant_id: str, *, kind: str | None = None,
                    limit: int = 20, before: int | None = None) -> list[SyncRun]: ...

    def fail_stale_runs(self, older_than: timedelta) -> int: ...

    def log(self, tenant_id: str, level: LogLevel, what: str, message: str, *,
            record: str | None = None) -> LogEntry: ...

    def log_many(self, tenant_id: str,
                 lines: Sequence[tuple[LogLevel, str, str, str | None]]) -> int: ...

    def read_log(self, tenant_id: str, *, min_level: LogLevel | None = None,
                 record: str | None = None, what: str | None = None, limit: int = 50,
                 before: int | None = None) -> LogPage: ...

    def take_claim(self, tenant_id: str, key: str, holder: str, ttl: timedelta = ...) -> bool: ...

    def take_claims(self, tenant_id: str, keys: Collection[str], holder: str,
                    ttl: timedelta = ...) -> set[str]: ...

    def release_claim(self, tenant_id: str, key: str, holder: str) -> bool: ...

    def release_claims(self, tenant_id: str, keys: Collection[str], holder: str) -> int: ...

    def hold_claim(self, tenant_id: str, key: str, *, ttl: timedelta = ..., wait: timedelta = ...,
                   sleep: Callable[[float], None] = ...) -> AbstractContextManager[str]: ...

    def close(self) -> None: ...


@runtime_checkable
class JobQueue(Protocol):
    """A durable at-least-once job queue with leases, backoff and dead letters."""

    def enqueue(self, tenant_id: str, kind: str, payload: Mapping[str, Any], *,
                dedupe_key: str | None = None, run_after: datetime | None = None,
                max_attempts: int | None = None) -> int: ...

    def enqueue_many(self, tenant_id: str, items: Sequence[tuple[str, Mapping[str, Any], str | None]], *,
                     max_attempts: int | None = None, run_after: datetime | None = None) -> int: ...

    def claim(self, worker_id: str, *, kinds: Collection[str] | None = None, limit: int = 1,
              lease: timedelta = ...) -> list[Job]: ...

    def complete(self, job_id: int, worker_id: str) -> None: ...

    def complete_many(self, job_ids: Collection[int], worker_id: str) -> set[int]: ...

    def fail(self, job_id: int, worker_id: str, error: str) -> Job: ...

    def extend_lease(self, job_id: int, worker_id: str, lease: timedelta) -> datetime: ...

    def extend_leases(self, job_ids: Collection[int], worker_id: str,
                      lease: timedelta) -> set[int]: ...

    def get_job(self, job_id: int) -> Job | None: ...

    def queued(self, tenant_id: str, kinds: Collection[str], *,
               dedupe_keys: Collection[str] | None = None) -> list[Job]: ...

    def dead_letters(self, tenant_id: str, *, kind: str | None = None,
                     limit: int = 100) -> list[Job]: ...

    def replay(self, job_id: int) -> int | None: ...

    def replay_all(self, tenant_id: str, kind: str | None = None) -> int: ...

    def depths(self, tenant_id: str | None = None) -> dict[tuple[JobState, str], int]: ...



# -- the webhook inbox ------------------------------------------------------------------------


INBOX_JOB_KEY = "inbox"
"""The dedupe key of a tenant's job that splits stored webhook deliveries into events."""


@attrs.frozen
class InboxEventDraft:
    """One received webhook event as the receiver hands it to :meth:`Inbox.accept_webhook_batch`.

    ``dedupe_key`` identifies the event across redeliveries (the receiver derives it from the
    event's content, not from ``eventId`` alone); ``payload`` is the event object as JSON text.
    """

    portal_id: str
    dedupe_key: str
    event_id: int | None
    subscription_type: str
    object_type: str
    object_id: str
    property_name: str | None
    occurred_at_ms: int
    payload: str


@attrs.frozen
class InboxEvent:
    """A stored webhook event; ``processed_at`` and ``outcome`` stay None until it is handled."""

    id: int
    tenant_id: str
    portal_id: str
    dedupe_key: str
    event_id: int | None
    subscription_type: str
    object_type: str
    object_id: str
    property_name: str | None
    occurred_at_ms: int
    payload: dict[str, Any] = attrs.field(converter=_frozen_json)
    received_at: datetime
    processed_at: datetime | None
    outcome: str | None


@attrs.frozen
class InboxReceipt:
    """What storing one batch did: new events, ones already stored, jobs queued or joined."""

    accepted: int
    duplicates: int
    jobs: int


@attrs.frozen
class WebhookExpansion:
    """What one :meth:`Inbox.expand_webhook_batches` call did.

    ``receipts`` pairs each split delivery's id with its receipt; ``unreadable`` deliveries
    were kept with their error instead; ``more`` says deliveries are still waiting.
    """

    receipts: tuple[tuple[int, InboxReceipt], ...]
    unreadable: int
    more: bool

    @property
    def batches(self) -> int:
        """Deliveries split into events by this call."""
        return len(self.receipts)

    @property
    def accepted(self) -> int:
        """New events stored."""
        return sum(receipt.accepted for _id, receipt in self.receipts)

    @property
    def duplicates(self) -> int:
        """Events that were stored already (or twice in these deliveries)."""
        return sum(receipt.duplicates for _id, receipt in self.receipts)


@attrs.frozen
class WebhookBacklog:
    """Deliveries of a tenant acknowledged but not split into events yet."""

    tenant_id: str
    batches: int
    events: int
    oldest_received_at: datetime | None
    unreadable: int


@attrs.frozen
class WebhookPortalStats:
    """Webhook counters of one portal, and when its last event arrived (for silence alerts)."""

    tenant_id: str
    portal_id: str
    last_received_at: datetime | None
    last_occurred_at: datetime | None
    accepted: int
    duplicates: int
    echoes: int


@attrs.frozen
class WebhookRefusalStats:
    """How many webhook requests of a tenant were refused for one reason (and how many of
    those were not written to the integration log, by flood protection)."""

    tenant_id: str
    reason: str
    refused: int
    suppressed: int
    last_refused_at: datetime


@runtime_checkable
class Inbox(Protocol):
    """The durable webhook inbox: events stored once, processed per object through the queue.

    A delivery is received whole (:meth:`receive_webhook_batch`), split into deduplicated
    events by a queued job (:meth:`expand_webhook_batches`, which calls
    :meth:`accept_webhook_batch`'s logic), and its events processed per object.
    """

    def receive_webhook_batch(self, tenant_id: str, portal_id: str, body: bytes, *,
                              events: int, latest_occurred_ms: int, job_kind: str,
                              max_attempts: int | None = None) -> int: ...

    def expand_webhook_batches(self, tenant_id: str,
                               drafts_of: Callable[[bytes], Sequence[InboxEventDraft]], *,
                               job_kind: str, max_attempts: int | None = None,
                               limit: int = 50) -> WebhookExpansion: ...

    def webhook_backlog(self, tenant_id: str) -> WebhookBacklog: ...

    def retry_unreadable_webhook_batches(self, tenant_id: str, *, job_kind: str,
                                         max_attempts: int | None = None) -> int: ...

    def accept_webhook_batch(self, tenant_id: str, drafts: Sequence[InboxEventDraft], *,
                             job_kind: str, max_attempts: int | None = None) -> InboxReceipt: ...

    def pending_webhook_events(self, tenant_id: str, object_type: str,
                               object_id: str) -> list[InboxEvent]: ...

    def pending_webhook_events_of(self, tenant_id: str, objects: Collection[tuple[str, str]]
                                  ) -> dict[tuple[str, str], list[InboxEvent]]: ...

    def finish_webhook_events(self, tenant_id: str, applied: Collection[int],
                              echoes: Collection[int]) -> int: ...

    def record_webhook_refusal(self, tenant_id: str, reason: str, *, refused: int = 1,
                               suppressed: int = 0, message: str | None = None) -> None: ...

    def webhook_portal_stats(self, tenant_id: str) -> list[WebhookPortalStats]: ...

    def webhook_refusal_stats(self, tenant_id: str) -> list[WebhookRefusalStats]: ...


# -- conflicts and pushed values (migration 0004) ----------------------------------------------


@attrs.frozen
class _ConflictFacts:
    """What a conflict's draft and its audit-trail record share: where the conflict is, both
    sides' values and change times, and the strategy's decision."""

    tenant_id: str
    portal_id: str
    object_type: str
    host_id: str
    hubspot_type: str
    hubspot_id: str
    field: str
    hubspot_value: Any
    host_value: Any
    last_synced: Any
    hubspot_changed_at: datetime | None
    host_changed_at: datetime | None
    strategy: str
    decision: str


def _id_first(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """Put a record's ``id`` before the fields it inherits.

    attrs orders a subclass's fields after its base's; ``id`` came first before the fields were
    shared, and the order is what the constructor's positions, ``repr`` and ``attrs.asdict``
    (so the JSON of ``conflicts list``) follow. (mypy's view of the positions does not know
    this hook: build records by keyword.)
    """
    del cls
    return [f for f in fields if f.name == "id"] + [f for f in fields if f.name != "id"]


@attrs.frozen
class ConflictDraft(_ConflictFacts):
    """A conflict as the sync engine hands it to :meth:`ConflictLog.record_conflict`.

    Values are in their JSON form (:func:`~ambac_hubspot_plugin.conflicts.to_json`);
    ``decision`` is ``hubspot``, ``ambac`` or ``hold`` (``hold`` opens the conflict).
    """

    reason: str = ""
    decided_by: str | None = None


@attrs.frozen(field_transformer=_id_first)
class ConflictRecord(_ConflictFacts):
    """One audit-trail entry: a conflict, what decided it, and (when it was held) how a
    person resolved it. ``status`` is ``open`` while held, else ``closed``."""

    id: int
    reason: str
    status: str
    resolution: str | None
    resolved_value: Any
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        """Whether the conflict still waits for a person to decide."""
        return self.status == "open"


@runtime_checkable
class ConflictLog(Protocol):
    """The conflict audit trail, open conflicts, and the values the outbound push wrote."""

    def record_conflict(self, draft: ConflictDraft) -> ConflictRecord: ...

    def list_conflicts(self, tenant_id: str, *, status: str | None = "open",
                       object_type: str | None = None, host_id: str | None = None,
                       limit: int = 100) -> list[ConflictRecord]: ...

    def get_conflict(self, tenant_id: str, conflict_id: int) -> ConflictRecord | None: ...

    def close_conflict(self, tenant_id: str, conflict_id: int, *, resolution: str,
                       resolved_value: Any, decided_by: str | None) -> ConflictRecord: ...

    def settle_conflicts(self, tenant_id: str, object_type: str, host_id: str,
                         settled: Mapping[str, tuple[Any, str]]) -> list[ConflictRecord]: ...

    def remember_pushed(self, tenant_id: str, object_type: str,
                        values: Mapping[str, Mapping[str, str]]) -> None: ...

    def pushed_value(self, tenant_id: str, object_type: str, object_id: str,
                     property_name: str) -> str | None: ...

    def pushed(self, tenant_id: str, object_type: str, object_id: str,
               property_name: str) -> tuple[str, datetime] | None: ...

    def pushed_of(self, tenant_id: str, object_type: str, object_ids: Collection[str]
                  ) -> dict[tuple[str, str], tuple[str, datetime]]: ...

    def get_links_by_host(self, tenant_id: str, host_type: str,
                          host_ids: Collection[str]) -> dict[str, Link]: ...

    def pushed_values_of(self, tenant_id: str, object_type: str,
                         object_ids: Collection[str]) -> dict[str, dict[str, str]]: ...

    def links_page(self, tenant_id: str, portal_id: str, object_type: str, *,
                   after_id: int = 0, limit: int = 500) -> list[Link]: ...


# -- the ports the sync engines use together -----------------------------------------------------


@runtime_checkable
class PushStore(StateStore, ConflictLog, Protocol):
    """What the outbound push and a manual conflict resolution use: links, the integration log,
    the conflict audit trail and the values written to HubSpot."""


@runtime_checkable
class SyncStore(StateStore, JobQueue, ConflictLog, Protocol):
    """What the inbound sync and the outbound push use: :class:`PushStore`'s ports and the job
    queue (they queue retries and pushes)."""
