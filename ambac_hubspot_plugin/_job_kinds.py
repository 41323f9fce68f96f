"""The queue's job kinds the two sync directions hand each other, and how such jobs are built.

Both engines queue work for the other: the inbound sync queues ``outbound.fields`` when a host
value won a conflict and ``outbound.order`` for each order it creates; the host's event hooks
queue ``host.*`` jobs. Keeping the kinds here lets the inbound and outbound engines agree on
them without importing each other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._deal_properties import DELETED_FLAG
from ._field_sync import HELD_FIELDS
from ._host_ids import as_host_id

if TYPE_CHECKING:
    from ._facade import PluginHooks
    from .store import Job, Link, StateStore

log = logging.getLogger(__name__)

__all__ = [
    "FIELDS_KIND",
    "HOST_KINDS",
    "JOB_KINDS",
    "ORDER_KIND",
    "PUSH_MAX_ATTEMPTS",
    "RECHECK_KIND",
    "RETRY_KIND",
    "SYNC_KIND",
    "host_event_job",
    "job_host_id",
    "order_state_job",
    "recheck_held_jobs",
    "report_failed",
]

HOST_KINDS = ("host.order.status_changed", "host.order.updated", "host.order.shipped",
              "host.company.saved")
"""The host's domain events, as queued by the ``ambac_*`` event hooks."""
FIELDS_KIND = "outbound.fields"
"""Push host values that won a conflict (the inbound sync queues it, the push handles it)."""
ORDER_KIND = "outbound.order"
"""Push an order's current state, with no host event behind it (a new order, a missed event)."""
JOB_KINDS = (*HOST_KINDS, FIELDS_KIND, ORDER_KIND)
"""Every kind the outbound push handles."""
RETRY_KIND = "inbound.deal"
"""Process one deal again (a mapping or host error the inbound sync met)."""
RECHECK_KIND = "inbound.recheck"
"""Apply a linked company's HubSpot values again, with no HubSpot change behind it: a host edit
of a company with a conflict held for a person may have ended the dispute (payload
``object_type``, ``object_id``: the HubSpot id, ``why``)."""
SYNC_KIND = "sync.incremental"
"""Run the inbound sync over deals modified since its checkpoint (scheduled, or queued by an
admin); one at a time per tenant (dedupe key ``sync:incremental``)."""
PUSH_MAX_ATTEMPTS = 20
"""Attempts of a push of host state: with the queue's backoff (capped at an hour) pushes
outlast a HubSpot outage of many hours before they are dead-lettered."""


def host_event_job(record_type: str, record_id: str, event: str,
                   details: Mapping[str, Any]) -> tuple[str, dict[str, Any], str | None]:
    """The job kind, payload and dedupe key that stand for one host event.

    Events that change a record's state coalesce per record and event (the push reads the
    latest state); shipments carry data of their own and do not.
    """
    dedupe = None if event == "shipped" else f"{record_type}:{record_id}:{event}"
    payload = {"record_type": record_type, "record_id": record_id, "event": event, **details}
    return f"host.{record_type}.{event}", payload, dedupe


def job_host_id(job: Job) -> str:
    """The host id of the record a push job is about: ``host_id`` (``outbound.*``) or
    ``record_id`` (host events). A job queued by a version with integer ids holds a number,
    read as its text, so it coalesces and pushes like a new one.

    :raises ValueError: the payload names no usable record (a job no version writes).
    """
    value = job.payload.get("host_id", job.payload.get("record_id"))
    try:
        return as_host_id(value, f"job {job.id}'s record id")
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def order_state_job(order_id: str) -> tuple[str, dict[str, Any], str]:
    """The job kind, payload and dedupe key that push an order's current state (no event)."""
    return ORDER_KIND, {"object_type": "order", "host_id": order_id}, f"order:{order_id}:state"


def recheck_held_jobs(links: Iterable[Link]) -> list[tuple[str, dict[str, Any], str]]:
    """The jobs that reconcile these links' records again (kind, payload, dedupe key), for those
    with a conflict held for a person, unless deleted in HubSpot: a deal's retry, a company's
    recheck. A host edit may have ended the dispute; HubSpot would say nothing until the
    record's next change there."""
    held = sorted((link.object_type, link.hubspot_id) for link in links
                  if link.synced.get(HELD_FIELDS) and not link.synced.get(DELETED_FLAG))
    return [(RETRY_KIND, {"deal_id": hubspot_id, "why": "held"}, f"deal:{hubspot_id}") if object_type == "deal"
            else (RECHECK_KIND, {"object_type": object_type, "object_id": hubspot_id, "why": "held"},
                  f"{object_type}:{hubspot_id}")
            for object_type, hubspot_id in held if object_type in ("deal", "company")]


def report_failed(hooks: PluginHooks, store: StateStore | None, job: Job) -> None:
    """Tell ``hubspot_sync_step_failed``'s listeners of ``job``, which the queue has just
    failed (retried later, or dead); a listener that fails goes to the tenant's integration
    log in ``store`` (None: a tenant not enabled here, Python's log only). Never raises: the
    job's outcome is stored already, and the caller goes on."""
    from .events import SyncStepFailed
    from .store import JobState

    payload = job.payload
    if job.kind == RETRY_KIND:
        record = f"deal:{payload.get('deal_id')}"
    elif job.kind in JOB_KINDS:
        kind = payload.get("object_type", payload.get("record_type", "order"))
        record = f"{kind}:{payload.get('host_id', payload.get('record_id'))}"
    elif "object_id" in payload:
        record = f"{payload.get('object_type')}:{payload['object_id']}"
    else:
        record = f"job:{job.id}"
    step = "outbound.push" if job.kind in JOB_KINDS else job.kind
    event = SyncStepFailed(tenant_id=job.tenant_id, step=step, record=record, error=job.last_error or "",
                           attempt=job.attempts, will_retry=job.state is not JobState.DEAD)
    try:
        if store is None:
            hooks.sync_step_failed(event)
        else:
            hooks.tell(store, job.tenant_id, [event])
    except Exception:  # the store is down: the listeners' failures are in Python's log already
        log.exception("reporting job %s's failure to the integration log failed", job.id)
