"""The records the plugin's ``hubspot_*`` notification hooks receive."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .host import Order

__all__ = ["OrderCreated", "SyncStepFailed"]


@attrs.frozen
class OrderCreated:
    """What ``hubspot_order_created`` tells listeners about a new order.

    ``trigger`` says how the deal arrived: ``incremental`` (a scheduled or ``ambac-hubspot sync``
    run), ``backfill``, ``webhook``, ``retry`` (a retry job of a deal that failed or was busy)
    or ``manual`` (the review step's "Create").
    """

    tenant_id: str
    portal_id: str
    deal_id: str
    order: Order
    trigger: str


@attrs.frozen
class SyncStepFailed:
    """What ``hubspot_sync_step_failed`` tells listeners about a failed step.

    ``step`` names the step (``inbound.deal``, ``outbound.push``, ``webhook.event``...),
    ``record`` the record it was about (``deal:123``), ``error`` the error's message (never a
    secret), ``attempt`` the attempt that failed (1-based) and ``will_retry`` whether the job
    queue will try again (False once it is dead-lettered).
    """

    tenant_id: str
    step: str
    record: str
    error: str
    attempt: int
    will_retry: bool
