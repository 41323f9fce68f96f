"""Receivers turning the host's order and company saves into ``ambac_*`` events, durably.

The host's ``Orders`` and ``Companies`` have no signals of their own, so the bridge listens to
Django's ``pre_save`` (reads the old values of the columns being saved: all of them, or only
``update_fields``) and ``post_save`` (compares). Each change becomes a
:class:`~ambac_hubspot_plugin.contrib.django.models.HostEventOutbox` row written on the same
database alias, inside the host's own transaction: a rolled-back save leaves no row, a
committed one always leaves one. Nothing here calls the plugin; ``outbox.drain_outbox`` does,
after the commit, and keeps a row until its hook took it.

- an order's ``order_status`` changed: ``order_status_changed`` with the previous status;
- other order fields changed (archiving is ``archived`` set true): ``order_updated`` with
  their contract names;
- a company created (a new version is a new row: compared with the version it replaces) or
  changed: ``company_saved`` with the changed fields. Creating an order is no event.

Saves made by the bridge's own services (the plugin writing to the host) are not events:
they run inside :func:`suppress_host_events`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import transaction
from django.db.models.signals import post_save, pre_save

from ...host import as_host_id
from .models import HostEventOutbox

__all__ = [
    "COMPANY_SAVED",
    "EVENT_KINDS",
    "ORDER_STATUS_CHANGED",
    "ORDER_UPDATED",
    "connect",
    "disconnect",
    "drain_trigger",
    "set_drain_trigger",
    "suppress_host_events",
]

ORDER_STATUS_CHANGED = "order_status_changed"
ORDER_UPDATED = "order_updated"
COMPANY_SAVED = "company_saved"
EVENT_KINDS = (ORDER_STATUS_CHANGED, ORDER_UPDATED, COMPANY_SAVED)

ORDER_COLUMNS = {
    "name": "name", "order_number": "order_number", "order_status": "order_status",
    "company_id": "company_id", "customer_id": "customer_id",
    "estimated_completion": "estimated_completion", "current_milestone": "current_milestone_id",
    "customer_note": "customer_note", "archived": "archived", "external_id": "external_id",
}
"""The contract's order fields and the ``Orders`` columns holding them."""
COMPANY_COLUMNS = {"name": "name", "description": "description", "external_id": "external_id"}
"""The contract's company fields and the ``Companies`` columns holding them."""

_OLD = "_ambac_hubspot_old_values"  # set on the instance by pre_save, taken by post_save
_suppressed: ContextVar[bool] = ContextVar("ambac_hubspot_suppress_host_events", default=False)
_drain_trigger: Callable[[str], object] | None = None


@contextmanager
def suppress_host_events() -> Iterator[None]:
    """Saves inside the block write no outbox rows (the bridge's services use it)."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def set_drain_trigger(trigger: Callable[[str], object] | None) -> None:
    """Call ``trigger(alias)`` after each commit that wrote outbox rows on database ``alias``.

    The trigger should only *schedule* a drain (e.g. send a Celery task); it runs after the
    commit, where an exception cannot undo anything: it is logged by Django and the rows wait
    for the next drain. None removes the trigger.
    """
    global _drain_trigger
    _drain_trigger = trigger


def drain_trigger() -> Callable[[str], object] | None:
    """The trigger :func:`set_drain_trigger` set (the app sets Celery's ``nudge``), or None."""
    return _drain_trigger


def connect() -> None:
    """Connect the receivers to the host's ``Orders`` and ``Companies`` (once; the app's ready())."""
    from Tracker.models import Companies, Orders

    for model, columns, saved in ((Orders, ORDER_COLUMNS, _order_saved),
                                  (Companies, COMPANY_COLUMNS, _company_saved)):
        pre_save.connect(functools.partial(_remember, columns=columns), sender=model, weak=False,
                         dispatch_uid=f"ambac_hubspot.remember.{model.__name__}")
        post_save.connect(saved, sender=model, dispatch_uid=f"ambac_hubspot.saved.{model.__name__}")


def disconnect() -> None:
    """Disconnect what :func:`connect` connected (a benchmark times saves without them)."""
    from Tracker.models import Companies, Orders

    for model in (Orders, Companies):
        pre_save.disconnect(sender=model, dispatch_uid=f"ambac_hubspot.remember.{model.__name__}")
        post_save.disconnect(sender=model, dispatch_uid=f"ambac_hubspot.saved.{model.__name__}")


def _columns_saved(columns: Mapping[str, str], update_fields: Collection[str] | None) -> dict[str, str]:
    """The fields (and their columns) a save with ``update_fields`` writes."""
    if update_fields is None:
        return dict(columns)
    saved = set(update_fields)
    return {field: column for field, column in columns.items()
            if column in saved or (column.endswith("_id") and column[:-3] in saved)}


def _values(model: Any, pk: object, columns: Collection[str], using: str) -> dict[str, Any] | None:
    # The base manager is not the host's tenant-scoped one: saves outside tenant_context work.
    row: dict[str, Any] | None = model._base_manager.using(using).filter(pk=pk).values(*columns).first()
    return row


def _remember(sender: Any, instance: Any, *, columns: Mapping[str, str], raw: bool = False,
              using: str = "default", update_fields: Collection[str] | None = None, **kwargs: Any) -> None:
    instance.__dict__.pop(_OLD, None)
    if raw or _suppressed.get() or instance._state.adding:
        return
    saved = _columns_saved(columns, update_fields)
    if saved:
        instance.__dict__[_OLD] = (saved, _values(sender, instance.pk, saved.values(), using))


def _changed(model: Any, instance: Any, saved: Mapping[str, str], old: Mapping[str, Any]) -> list[str]:
    """The contract fields whose column differs between ``old`` and ``instance``."""
    changed = []
    for field, column in saved.items():
        to_python = model._meta.get_field(column).to_python  # "3" and 3, a UUID and its text
        if to_python(old[column]) != to_python(getattr(instance, column)):
            changed.append(field)
    return changed


def _order_saved(sender: Any, instance: Any, created: bool, raw: bool = False, using: str = "default",
                 **kwargs: Any) -> None:
    remembered = instance.__dict__.pop(_OLD, None)
    if created or raw or _suppressed.get() or remembered is None or remembered[1] is None:
        return  # creating an order is no event in the contract
    saved, old = remembered
    changed = _changed(sender, instance, saved, old)
    if "order_status" in changed:
        _write(using, ORDER_STATUS_CHANGED, instance, {"previous_status": old["order_status"]})
    others = [field for field in changed if field != "order_status"]
    if others:
        _write(using, ORDER_UPDATED, instance, {"changed_fields": others})


def _company_saved(sender: Any, instance: Any, created: bool, raw: bool = False, using: str = "default",
                   **kwargs: Any) -> None:
    remembered = instance.__dict__.pop(_OLD, None)
    if raw or _suppressed.get():
        return
    if created:
        previous = getattr(instance, "previous_version_id", None)
        old = None if previous is None else _values(sender, previous, COMPANY_COLUMNS.values(), using)
        changed = (list(COMPANY_COLUMNS) if old is None
                   else _changed(sender, instance, COMPANY_COLUMNS, old))
    elif remembered is None or remembered[1] is None:
        return
    else:
        changed = _changed(sender, instance, *remembered)
    if changed:
        _write(using, COMPANY_SAVED, instance, {"changed_fields": changed})


def _write(using: str, kind: str, instance: Any, details: Mapping[str, Any]) -> None:
    """Add the event's row on the host's connection ``using``: inside its transaction, if any."""
    HostEventOutbox.objects.using(using).create(
        kind=kind, tenant_id=as_host_id(instance.tenant_id, "tenant_id"),
        record_id=as_host_id(instance.pk, "id"), details=dict(details))
    trigger = _drain_trigger
    if trigger is not None:
        transaction.on_commit(functools.partial(trigger, using), using=using, robust=True)
