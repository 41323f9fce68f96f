"""Reconciliation: host order changes whose event the plugin never recorded still reach HubSpot.

An ``ambac_*`` event hook that cannot write to the store (an outage) raises, and the host keeps
its change, so nothing in the queue stands for it. Reconciliation finds such changes by
comparing every linked order's current state (read from the host in batches) with what the push
last wrote to its deal (``hubspot_pushed_values``), and queues a push for each order that differs:

- a status other than the one last pushed (and than the one the sync last took from the deal):
  ``host.order.status_changed``, with the last pushed status as the previous one, exactly the
  job the lost event would have made (the stage moves and a note is written as for any status
  change);
- any other difference, or a deal never pushed to: ``outbound.order``.

Both use the dedupe keys of the events they stand for, so a pending push of the same order
absorbs them. Orders with an outbound job pending or running are left to it: it pushes the
current state when it runs. An order with a dead push gets its current state pushed without a
note (replaying the dead letter may still write its own), so an old failure never keeps a later
change from HubSpot. Each
missed change is pushed once: after the push, the remembered values match the order.

It runs as job ``outbound.reconcile``, every ``sync_interval_seconds`` per tenant and at the
first tick after a hook of this process could not record an event. See ``docs/outbound.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ._clock import due_on_schedule
from ._deal_properties import DELETED_FLAG
from ._job_kinds import JOB_KINDS, PUSH_MAX_ATTEMPTS, host_event_job, job_host_id, order_state_job
from .host import OrderStatus

if TYPE_CHECKING:
    from ._outbound import OutboundPush
    from .host import HostServices, Order
    from .store import SqlStateStore

__all__ = ["CHECKPOINT", "RECONCILE_KIND", "reconcile_due", "reconcile_orders"]

RECONCILE_KIND = "outbound.reconcile"
CHECKPOINT = "outbound.reconciled_at"
_PAGE = 500


def reconcile_due(store: SqlStateStore, tenant_id: str, portal_id: str, *, now: datetime,
                  interval: timedelta) -> bool:
    """Whether the tenant's reconciliation is due: once per ``interval`` on the tenant's fixed
    schedule (see :func:`._clock.due_on_schedule`), and at once when it never ran."""
    last = store.get_checkpoint(tenant_id, portal_id, CHECKPOINT)
    return due_on_schedule(None if last is None else datetime.fromisoformat(last.value), now,
                           interval, tenant_id)


def reconcile_orders(*, tenant_id: str, portal_id: str, host: HostServices, store: SqlStateStore,
                     push: OutboundPush, clock: Callable[[], datetime]) -> int:
    """Queue a push for every linked order whose state never reached its deal; return how many.

    Records when it ran (checkpoint ``outbound.reconciled_at``) and logs what it found.
    """
    started = clock()
    queued = 0
    if push.options.directions.orders in ("ambac_to_hubspot", "both"):
        busy, parked = _orders_with_jobs(store, tenant_id)
        after = 0
        while page := store.links_page(tenant_id, portal_id, "deal", after_id=after, limit=_PAGE):
            after = page[-1].id
            links = {link.host_id: link for link in page  # a deleted deal takes no pushes
                     if link.host_type == "order" and link.host_id not in busy and not link.synced.get(DELETED_FLAG)}
            pushed = store.pushed_values_of(tenant_id, "deal", [link.hubspot_id for link in links.values()])
            for order in host.get_orders(list(links)):
                link = links.get(order.id)
                last = pushed.get(link.hubspot_id, {}) if link is not None else {}
                if link is not None and push.unpushed(order, last):
                    _queue_push(store, tenant_id, order, last.get("ambac_order_status"),
                                link.synced.get("order_status"), parked=order.id in parked)
                    queued += 1
    if queued:
        from .store import LogLevel

        store.log(tenant_id, LogLevel.WARNING, "outbound.reconcile",
                  f"{queued} order(s) had changes that never reached HubSpot (events the plugin "
                  "could not record, e.g. while its store was down); their pushes are queued")
    store.set_checkpoint(tenant_id, portal_id, CHECKPOINT, started.isoformat())
    return queued


def _orders_with_jobs(store: SqlStateStore, tenant_id: str) -> tuple[set[str], set[str]]:
    """Host ids of the orders with an outbound job waiting or running, and of those with a
    dead one (``outbound.*`` payloads name the order as ``host_id``, host events as
    ``record_id``)."""
    from .store import JobState

    busy: set[str] = set()
    parked: set[str] = set()
    for job in store.queued(tenant_id, JOB_KINDS):
        if job.kind == "host.company.saved" or job.payload.get("host_id", job.payload.get("record_id")) is None:
            continue
        with contextlib.suppress(ValueError):  # a malformed job fails in the push, not here
            (parked if job.state is JobState.DEAD else busy).add(job_host_id(job))
    return busy, parked - busy


def _queue_push(store: SqlStateStore, tenant_id: str, order: Order, pushed_status: str | None,
                synced_status: object, *, parked: bool) -> None:
    status = order.order_status.value
    # What an older version recorded is a label ("In progress"): the same status as its value.
    pushed_status, synced_status = _status_value(pushed_status), _status_value(synced_status)
    # A status the sync took from HubSpot is no host change: its deal gets the property, and
    # neither a note nor a stage move. An order with a dead push gets its state alone too:
    # replaying that dead letter may still write its note, and a second one would repeat it.
    if not parked and pushed_status is not None and status not in (pushed_status, synced_status):
        kind, payload, dedupe = host_event_job("order", order.id, "status_changed",
                                               {"previous_status": pushed_status, "reconciled": True})
    else:
        kind, payload, dedupe = order_state_job(order.id)
    store.enqueue(tenant_id, kind, payload, dedupe_key=dedupe, max_attempts=PUSH_MAX_ATTEMPTS)


def _status_value(recorded: object) -> str | None:
    """A recorded status as the host's value (a label recorded before becomes its value)."""
    if recorded is None:
        return None
    try:
        return OrderStatus.parse(recorded).value
    except ValueError:
        return str(recorded)
