"""The plugin's own state: links, checkpoints, sync history, integration log, job queue.

The core depends on the :class:`StateStore` and :class:`JobQueue` Protocols; the one
implementation, :class:`SqlStateStore`, runs the same SQLAlchemy Core code on a SQLite file
(the embedded default) and on PostgreSQL. Get one with :func:`open_store`, which migrates
the schema (Alembic, under a lock) before returning.

Importing this package is cheap: SQLAlchemy and Alembic load on first use of an
implementation name (``open_store``, ``SqlStateStore``, ``migrate``, ...), so modules that only
type against the ports never pull them in.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._ports import (
    CLAIM_TTL,
    CLAIM_WAIT,
    INBOX_JOB_KEY,
    Checkpoint,
    ClaimTimeoutError,
    ConflictDraft,
    ConflictLog,
    ConflictRecord,
    Inbox,
    InboxEvent,
    InboxEventDraft,
    InboxReceipt,
    Job,
    JobQueue,
    JobState,
    LeaseLostError,
    Link,
    LinkConflictError,
    LogEntry,
    LogLevel,
    LogPage,
    PushStore,
    RunStatus,
    StateStore,
    SyncRun,
    SyncStore,
    WebhookBacklog,
    WebhookExpansion,
    WebhookPortalStats,
    WebhookRefusalStats,
    utc_now,
)

if TYPE_CHECKING:
    from ._engine import HEAD, create_store_engine, current_revision, migrate, redact
    from ._health import sync_health
    from ._queue import DEFAULT_LEASE, Backoff
    from ._runner import DrainCounts, LeaseKeeper, QueueRunner, default_worker_id, keep_leases
    from ._store import SqlStateStore, open_store

__all__ = [
    "CLAIM_TTL",
    "CLAIM_WAIT",
    "DEFAULT_LEASE",
    "HEAD",
    "INBOX_JOB_KEY",
    "Backoff",
    "Checkpoint",
    "ClaimTimeoutError",
    "ConflictDraft",
    "ConflictLog",
    "ConflictRecord",
    "DrainCounts",
    "Inbox",
    "InboxEvent",
    "InboxEventDraft",
    "InboxReceipt",
    "Job",
    "JobQueue",
    "JobState",
    "LeaseKeeper",
    "LeaseLostError",
    "Link",
    "LinkConflictError",
    "LogEntry",
    "LogLevel",
    "LogPage",
    "PushStore",
    "QueueRunner",
    "RunStatus",
    "SqlStateStore",
    "StateStore",
    "SyncRun",
    "SyncStore",
    "WebhookBacklog",
    "WebhookExpansion",
    "WebhookPortalStats",
    "WebhookRefusalStats",
    "create_store_engine",
    "current_revision",
    "default_worker_id",
    "keep_leases",
    "migrate",
    "open_store",
    "redact",
    "sync_health",
    "utc_now",
]

_LAZY = {
    "HEAD": "_engine", "create_store_engine": "_engine", "current_revision": "_engine",
    "migrate": "_engine", "redact": "_engine",
    "DEFAULT_LEASE": "_queue", "Backoff": "_queue",
    "DrainCounts": "_runner", "QueueRunner": "_runner", "keep_leases": "_runner",
    "default_worker_id": "_runner", "LeaseKeeper": "_runner",
    "SqlStateStore": "_store", "open_store": "_store",
    "sync_health": "_health",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
