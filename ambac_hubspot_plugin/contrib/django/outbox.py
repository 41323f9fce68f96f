"""Handing the host's committed events (outbox rows) to the plugin: :func:`drain_outbox`.

The receivers (``events``) write a :class:`HostEventOutbox` row in the host's transaction; a
drain, run after the commit (a Celery task started by the trigger set with
:func:`set_drain_trigger`, the periodic safety net, or a test), calls the matching ``ambac_*``
hook through the app's plugin manager with :class:`DjangoHostServices` of the row's tenant.

A row is deleted once its hook returned. A hook that raises (the plugin's store unreachable,
the tenant not startable in this process) leaves the row, with ``attempts`` counted and the
error kept, for a later drain: a committed event is never lost. It is tried again after
:func:`retry_delay` (5 s doubling to 5 min), so a row that keeps failing costs a drain little. So does a row of a tenant
enabled in the host (its ``IntegrationConfig``) that the plugin could not start in this
process, whose hook would record nothing; only a tenant enabled nowhere has nothing to record. Several drains may run at
once (several workers): on PostgreSQL each row is locked while its hook runs and the others
skip it; SQLite serialises the writers.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pluggy
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q
from django.utils import timezone

from ...host import OrderStatus, Shipment
from .events import COMPANY_SAVED, ORDER_SHIPPED, ORDER_STATUS_CHANGED, ORDER_UPDATED, set_drain_trigger
from .models import HostEventOutbox
from .services import DjangoHostServices
from .startup import ensure_started, not_started_here

__all__ = ["DrainReport", "drain_outbox", "retry_delay", "set_drain_trigger"]

logger = logging.getLogger(__name__)

_ERROR_KEPT = 4000  # characters of the last error kept on a row
RETRY_FIRST_SECONDS = 5.0
RETRY_MAX_SECONDS = 300.0


def retry_delay(attempts: int) -> timedelta:
    """How long a row that has failed ``attempts`` times waits before its next try: 5 s after
    the first failure, doubling, at most 5 min (a store outage is usually short; a broken
    tenant should not cost every drain a try)."""
    exponent = min(max(attempts - 1, 0), 16)  # 2**16 * 5 s is far past the cap
    return timedelta(seconds=min(RETRY_FIRST_SECONDS * 2 ** exponent, RETRY_MAX_SECONDS))


@attrs.frozen
class DrainReport:
    """What one :func:`drain_outbox` did: rows handed over, rows left for the next drain
    (their hook raised), rows dropped (their record no longer exists in the host)."""

    pushed: int = 0
    failed: int = 0
    dropped: int = 0


def drain_outbox(pm: pluggy.PluginManager, limit: int = 100, *, using: str = DEFAULT_DB_ALIAS,
                 data_dir: Path | str | None = None, now: datetime | None = None) -> DrainReport:
    """Call the hooks of up to ``limit`` committed outbox rows that are due, oldest first.

    :param pm: the host's plugin manager (``contrib.django.plugin_manager()``).
    :param limit: the most rows this call looks at (each is tried once).
    :param using: the database alias the host's saves (and so the rows) are on.
    :param data_dir: the plugins' data root for the services (default: the setting).
    :param now: the time rows are due by and failures are stamped with (default: the clock).
    """
    try:
        ensure_started(pm, using=using, data_dir=data_dir)  # tenants enabled by another process
    except Exception:
        logger.exception("could not take up the enabled tenants before draining the outbox")
    pushed = failed = dropped = 0
    after = 0
    now = now or timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    for _ in range(limit):
        with transaction.atomic(using=using):
            row = (HostEventOutbox.objects.using(using).select_for_update(skip_locked=True)
                   .filter(due, pk__gt=after).order_by("pk").first())
            if row is None:
                break
            after = row.pk
            outcome = _hand_over(pm, row, using, data_dir)
            if outcome is None:
                row.delete()
                pushed += 1
            elif outcome == "dropped":
                row.delete()
                dropped += 1
            else:
                row.attempts += 1
                row.last_error = outcome[-_ERROR_KEPT:]
                row.last_attempt_at = now
                row.next_attempt_at = now + retry_delay(row.attempts)
                row.save(update_fields=["attempts", "last_error", "last_attempt_at", "next_attempt_at"])
                failed += 1
    return DrainReport(pushed=pushed, failed=failed, dropped=dropped)


def _hand_over(pm: pluggy.PluginManager, row: HostEventOutbox, using: str,
               data_dir: Path | str | None) -> str | None:
    """Call the row's hook: None when it returned, ``"dropped"`` when the record is gone,
    else the error's text."""
    services = DjangoHostServices(row.tenant_id, using=using, data_dir=data_dir)
    not_started = not_started_here(pm, row.tenant_id, using)
    if not_started is not None:
        logger.warning("outbox row %s (%s) is kept for a later drain: %s", row.pk, row, not_started)
        return f"{not_started}; the event is kept"
    try:
        with transaction.atomic(using=using):  # a savepoint: a failing hook leaves our row's lock
            call = _call_for(pm, row, services)
            if call is None:
                logger.warning("outbox row %s: %s no longer exists; the event is dropped", row.pk, row)
                return "dropped"
            call()
    except Exception as exc:
        logger.warning("outbox row %s (%s) could not be handed to the plugin (attempt %d); it is "
                       "kept for the next drain: %s", row.pk, row, row.attempts + 1, exc)
        return "".join(traceback.format_exception_only(exc)).strip()
    return None


def _call_for(pm: pluggy.PluginManager, row: HostEventOutbox,
              services: DjangoHostServices) -> Callable[[], Any] | None:
    """The hook call of ``row`` (reading the record's current state), None if it is gone."""
    details = row.details
    if row.kind in (ORDER_STATUS_CHANGED, ORDER_UPDATED):
        order = services.get_order(row.record_id)
        if order is None:
            return None
        if row.kind == ORDER_STATUS_CHANGED:
            previous = OrderStatus(details["previous_status"])
            return lambda: pm.hook.ambac_order_status_changed(host=services, order=order,
                                                              previous_status=previous)
        fields = list(details["changed_fields"])
        return lambda: pm.hook.ambac_order_updated(host=services, order=order, changed_fields=fields)
    if row.kind == ORDER_SHIPPED:
        order = services.get_order(row.record_id)
        if order is None:
            return None
        shipped = details.get("ship_date")
        shipment = Shipment(carrier=details.get("carrier") or "",
                            tracking_number=details.get("tracking_number") or "",
                            tracking_url=details.get("tracking_url") or "",
                            ship_date=date.fromisoformat(shipped) if shipped else None)
        return lambda: pm.hook.ambac_order_shipped(host=services, order=order, shipment=shipment)
    if row.kind == COMPANY_SAVED:
        company = services.get_company(row.record_id)
        if company is None:
            return None
        fields = list(details["changed_fields"])
        return lambda: pm.hook.ambac_company_saved(host=services, company=company, changed_fields=fields)
    raise ValueError(f"unknown outbox event kind {row.kind!r}")
