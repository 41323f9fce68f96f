"""Processing: the ``webhook.object`` job handler. It loads one object's unprocessed events,
orders them, drops echoes of our own writes and hands the rest to an :class:`EventApplier`;
events are marked processed only after the applier succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..store import Inbox  # the port only: no SQLAlchemy
from ._events import WebhookEvent

if TYPE_CHECKING:
    from ..store import Job

__all__ = ["EchoCheck", "EventApplier", "WebhookProcessor", "order_events"]

log = logging.getLogger(__name__)


@runtime_checkable
class EventApplier(Protocol):
    """Applies one object's events to the host (the inbound sync engine implements it).

    It should re-read the object's current state from HubSpot rather than trust one
    property value, and be idempotent: a crash after it returned but before the events were
    marked processed makes it see the same events again.
    """

    def apply(self, tenant_id: str, object_type: str, object_id: str,
              events: Sequence[WebhookEvent]) -> None:
        """Apply ``events`` (ordered, echoes removed); raise to have the job retried."""


EchoCheck = Callable[[str, WebhookEvent], bool]
"""``(tenant_id, event) -> True`` when the event reports a value we wrote ourselves."""

# Same occurredAt: the object must exist before it changes and change before it goes away.
_TIEBREAK = {"restore": 0, "merge": 2, "deletion": 3}


def _never_echo(_tenant_id: str, _event: WebhookEvent) -> bool:
    return False


def order_events(events: Iterable[WebhookEvent]) -> list[WebhookEvent]:
    """Events in a safe order: creations first, then by ``occurredAt``; at the same instant
    restore, then property and other changes, then merge, then deletion, then by ``eventId``
    (HubSpot's ids grow over time; a hint for ties only, never an identity)."""
    return sorted(events, key=lambda e: (e.change != "creation", e.occurred_at_ms,
                                         _TIEBREAK.get(e.change, 1), e.event_id or 0))


class WebhookProcessor:
    """The ``webhook.object`` job handler (register :meth:`handle_job` with the queue runner).

    :param inbox_for: tenant id -> that tenant's inbox (its store).
    :param applier: what applies events; see :class:`EventApplier`.
    :param is_echo: recognises our own writes coming back; those are marked processed
        without being applied, and counted.
    """

    def __init__(self, inbox_for: Callable[[str], Inbox], applier: EventApplier, *,
                 is_echo: EchoCheck | None = None) -> None:
        self._inbox_for = inbox_for
        self._applier = applier
        self._is_echo = is_echo or _never_echo

    def handle_job(self, job: Job) -> None:
        """Process one object's unprocessed events; raise (the job retries) on failure."""
        error = self.handle_jobs([job]).get(job.id)
        if error is not None:
            raise error

    def handle_jobs(self, jobs: Sequence[Job], *, lost: Collection[int] = ()) -> dict[int, Exception]:
        """Process the events of many objects together; return the error of each failed job.

        The objects of one tenant go to the applier in one call when it offers ``apply_many``,
        so it can read their current state from HubSpot in batches. ``lost`` (read as the work
        goes, e.g. a :class:`~..store.LeaseKeeper`'s live set) names jobs whose lease another
        worker took over: their object is that worker's now, so their events are left alone.
        """
        errors: dict[int, Exception] = {}
        by_tenant: dict[str, list[Job]] = {}
        for job in jobs:
            by_tenant.setdefault(job.tenant_id, []).append(job)
        for tenant_id, tenant_jobs in by_tenant.items():
            try:
                inbox = self._inbox_for(tenant_id)
            except Exception as exc:  # e.g. not enabled in this process: retry later
                errors.update(dict.fromkeys((job.id for job in tenant_jobs), exc))
                continue
            work: dict[tuple[str, str], tuple[WebhookEvent, ...]] = {}
            finish: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
            owners: dict[tuple[str, str], list[int]] = {}
            for job in tenant_jobs:
                if job.id in lost:
                    continue
                # The queue runs one job per object key at a time (claim holds the others back),
                # so this job is the object's only one running: its events are in order.
                key = (str(job.payload["object_type"]), str(job.payload["object_id"]))
                owners.setdefault(key, []).append(job.id)
            # One query for all the objects' events (one per object was most of a batch's time).
            pending = inbox.pending_webhook_events_of(tenant_id, list(owners))
            parsed = {key: [(row.id, WebhookEvent.from_payload(row.payload, f"inbox[{row.id}]"))
                            for row in pending[key]] for key in owners}
            echoes = self._echoes(tenant_id, [pair for pairs in parsed.values() for pair in pairs])
            for key in owners:
                ids = {id(event): row_id for row_id, event in parsed[key]}
                ordered = order_events(event for _, event in parsed[key])
                echo_ids = {ids[id(e)] for e in ordered if ids[id(e)] in echoes}
                fresh = tuple(e for e in ordered if ids[id(e)] not in echo_ids)
                finish[key] = ([ids[id(e)] for e in fresh], sorted(echo_ids))
                if fresh:
                    work[key] = fresh
            failed = self._apply(tenant_id, work)
            done_applied: list[int] = []
            done_echoes: list[int] = []
            for key, (applied, echoed) in finish.items():
                if key in failed:
                    for job_id in owners[key]:
                        errors[job_id] = failed[key]
                else:
                    done_applied += applied
                    done_echoes += echoed
            # One transaction for all the objects that succeeded. Should it fail, every job
            # retries and sees its events again: the applier is idempotent (see EventApplier).
            if done_applied or done_echoes:
                inbox.finish_webhook_events(tenant_id, applied=done_applied, echoes=done_echoes)
        return errors

    def _echoes(self, tenant_id: str, events: Sequence[tuple[int, WebhookEvent]]) -> set[int]:
        """The row ids of ``events`` that are echoes; in one call when the check offers
        ``many`` (``(tenant_id, events) -> list[bool]``)."""
        many = getattr(self._is_echo, "many", None)
        if many is not None and events:
            flags = many(tenant_id, [event for _, event in events])
            return {row_id for (row_id, _), echo in zip(events, flags, strict=True) if echo}
        return {row_id for row_id, event in events if self._is_echo(tenant_id, event)}

    def _apply(self, tenant_id: str, work: Mapping[tuple[str, str], tuple[WebhookEvent, ...]]
               ) -> dict[tuple[str, str], Exception]:
        if not work:
            return {}
        apply_many = getattr(self._applier, "apply_many", None)
        if apply_many is not None and len(work) > 1:
            try:
                return dict(apply_many(tenant_id, work))
            except Exception:  # one object's failure must not fail the others: apply one by one
                log.warning("batched webhook apply failed for tenant %s; applying object by object", tenant_id)
        failed: dict[tuple[str, str], Exception] = {}
        for (object_type, object_id), events in work.items():
            try:
                self._applier.apply(tenant_id, object_type, object_id, events)
            except Exception as exc:  # this object's jobs retry with backoff
                failed[(object_type, object_id)] = exc
        return failed
