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
  changed: ``company_saved`` with the changed fields. Creating an order is no event;
- an order shipped: the host has no shipping fields, so no save tells it; the host's code that
  ships an order calls :func:`record_shipment` in its transaction (``order_shipped``).

The host's hot path, an order status saved alone (``update_fields=['order_status']``) inside a
transaction, costs one statement: an ``INSERT .. SELECT`` in ``pre_save`` that reads the stored
status and writes the row only when it differs (prebuilt per database vendor; PostgreSQL and
SQLite). Other saves read the old values in ``pre_save`` and write in ``post_save``.

Saves made by the bridge's own services (the plugin writing to the host) are not events:
they run inside :func:`suppress_host_events`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import connections, transaction
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from ...host import Shipment, as_host_id
from .models import HostEventOutbox

__all__ = [
    "COMPANY_SAVED",
    "EVENT_KINDS",
    "ORDER_SHIPPED",
    "ORDER_STATUS_CHANGED",
    "ORDER_UPDATED",
    "connect",
    "disconnect",
    "drain_trigger",
    "host_events_suppressed",
    "record_shipment",
    "set_drain_trigger",
    "suppress_host_events",
]

ORDER_STATUS_CHANGED = "order_status_changed"
ORDER_UPDATED = "order_updated"
COMPANY_SAVED = "company_saved"
ORDER_SHIPPED = "order_shipped"
EVENT_KINDS = (ORDER_STATUS_CHANGED, ORDER_UPDATED, COMPANY_SAVED, ORDER_SHIPPED)

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
_STATUS_ONLY = {"order_status"}
_CREATED_AT = HostEventOutbox._meta.get_field("created_at")
# The hot path's statement per vendor: its JSON constructor, and the timestamp parameter (typed
# for PostgreSQL, whose INSERT .. SELECT would otherwise take a bound parameter as text).
_JSON_OBJECT = {"postgresql": "jsonb_build_object", "sqlite": "json_object"}
_NOW = {"postgresql": "CAST(%s AS timestamp with time zone)", "sqlite": "%s"}
_status_sql: dict[tuple[str, Any], str | None] = {}  # prebuilt statements by vendor and model


@contextmanager
def suppress_host_events() -> Iterator[None]:
    """Saves inside the block write no outbox rows (the bridge's services use it)."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def host_events_suppressed() -> bool:
    """Whether the running code is inside :func:`suppress_host_events` (the bridge's own write)."""
    return _suppressed.get()


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


def connect(wrap: Callable[[Callable[..., None]], Callable[..., None]] | None = None) -> None:
    """Connect the receivers to the host's ``Orders`` and ``Companies`` (once; the app's ready()).

    :param wrap: applied to each receiver before connecting it (a benchmark's timer).
    """
    from Tracker.models import Companies, Orders

    def as_is(receiver: Callable[..., None]) -> Callable[..., None]:
        return receiver

    wrapped = wrap or as_is
    for model, columns, saved in ((Orders, ORDER_COLUMNS, _order_saved),
                                  (Companies, COMPANY_COLUMNS, _company_saved)):
        pre_save.connect(wrapped(functools.partial(_remember, columns=columns)), sender=model, weak=False,
                         dispatch_uid=f"ambac_hubspot.remember.{model.__name__}")
        post_save.connect(wrapped(saved), sender=model, weak=False,
                          dispatch_uid=f"ambac_hubspot.saved.{model.__name__}")


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
    if not saved:
        return
    if saved.keys() == _STATUS_ONLY and columns is ORDER_COLUMNS and _write_status_change(sender, instance, using):
        return
    instance.__dict__[_OLD] = (saved, _values(sender, instance.pk, saved.values(), using))


def _write_status_change(model: Any, instance: Any, using: str) -> bool:
    """The host's hot path, an order status saved alone inside a transaction: one statement
    reads the stored status and, when the save changes it, writes the event's row; False when
    the save is not in a transaction or the database has no prebuilt statement (the general
    path then reads the old values here and writes in ``post_save``).

    Writing before the ``UPDATE`` is safe inside a transaction: a save that fails marks the
    transaction (or the host's savepoint) for rollback, which takes the row with it.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        return False  # autocommit: the row must not commit before the save does
    sql = _status_change_sql(model, connection)
    if sql is None:
        return False
    meta = model._meta
    params = (ORDER_STATUS_CHANGED, as_host_id(instance.tenant_id, "tenant_id"), as_host_id(instance.pk, "id"),
              _CREATED_AT.get_db_prep_value(timezone.now(), connection),
              meta.pk.get_db_prep_value(instance.pk, connection),
              meta.get_field(ORDER_COLUMNS["order_status"]).get_db_prep_save(instance.order_status, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        written = cursor.rowcount
    if written:
        _drain_after_commit(using)
    return True


def _status_change_sql(model: Any, connection: Any) -> str | None:
    """``INSERT .. SELECT`` of a status event from the order's stored row, when its stored status
    differs from the one saved; built once per database vendor (None: a vendor not covered)."""
    key = (connection.vendor, model)
    if key in _status_sql:
        return _status_sql[key]
    json_object = _JSON_OBJECT.get(connection.vendor)
    sql = None
    if json_object is not None:
        quote = connection.ops.quote_name
        outbox = HostEventOutbox._meta
        into = ", ".join(quote(outbox.get_field(name).column) for name in
                         ("kind", "tenant_id", "record_id", "details", "created_at", "attempts", "last_error"))
        status = quote(model._meta.get_field(ORDER_COLUMNS["order_status"]).column)
        # Only the models' own table and column names, quoted, are formatted in: values are parameters.
        sql = (f"INSERT INTO {quote(outbox.db_table)} ({into}) "  # noqa: S608  # see the line above
               f"SELECT %s, %s, %s, {json_object}('previous_status', {status}), {_NOW[connection.vendor]}, 0, '' "
               f"FROM {quote(model._meta.db_table)} WHERE {quote(model._meta.pk.column)} = %s AND {status} <> %s")
    _status_sql[key] = sql
    return sql


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
    rows = []
    if "order_status" in changed:
        rows.append((ORDER_STATUS_CHANGED, {"previous_status": old["order_status"]}))
    others = [field for field in changed if field != "order_status"]
    if others:
        rows.append((ORDER_UPDATED, {"changed_fields": others}))
    _write(using, instance, rows)


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
        _write(using, instance, [(COMPANY_SAVED, {"changed_fields": changed})])


def record_shipment(order: Any, shipment: Shipment, *, using: str | None = None) -> None:
    """Record that the host shipped ``order`` (an ``Orders`` row): ``ambac_order_shipped``.

    Call it inside the transaction that records the shipment on the host's side (a view, a
    task, another app's receiver): the event is written with it and pushed after the commit,
    or not at all if that transaction rolls back. Each call is one shipment (several parcels,
    several calls); the plugin writes its carrier, tracking number and URL, and ship date to
    the order's deal.

    :param order: the shipped ``Orders`` instance (saved).
    :param shipment: what the host knows of the shipment.
    :param using: the database alias of the host's transaction (default: the order's).
    """
    if not isinstance(shipment, Shipment):
        raise TypeError(f"record_shipment needs a host.Shipment, not {type(shipment).__name__}")
    if order.pk is None:
        raise ValueError("record_shipment needs a saved order (it has no id yet)")
    details = {"carrier": shipment.carrier, "tracking_number": shipment.tracking_number,
               "tracking_url": shipment.tracking_url,
               "ship_date": shipment.ship_date.isoformat() if shipment.ship_date else None}
    _write(using or order._state.db or "default", order, [(ORDER_SHIPPED, details)])


def _write(using: str, instance: Any, events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Add the events' rows (one ``INSERT``) on the host's connection ``using``: inside its
    transaction, if any."""
    if not events:
        return
    tenant_id, record_id = as_host_id(instance.tenant_id, "tenant_id"), as_host_id(instance.pk, "id")
    HostEventOutbox.objects.using(using).bulk_create(
        [HostEventOutbox(kind=kind, tenant_id=tenant_id, record_id=record_id, details=dict(details))
         for kind, details in events])
    _drain_after_commit(using)


def _drain_after_commit(using: str) -> None:
    trigger = _drain_trigger
    if trigger is not None:
        transaction.on_commit(functools.partial(trigger, using), using=using, robust=True)
