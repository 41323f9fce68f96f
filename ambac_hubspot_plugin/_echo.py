"""Echo suppression: tell the webhook HubSpot sends back for our own write from a person's edit.

The outbound push remembers every value it writes, per object and property
(:meth:`~.store.ConflictLog.remember_pushed`); :func:`is_echo` compares a webhook's property
change with that value, by meaning (a date and its epoch milliseconds are the same value) and
by time (:data:`ECHO_WINDOW`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._tenants import Tenants
    from .store import ConflictLog

__all__ = ["ECHO_WINDOW", "Change", "WebhookEchoes", "echo_flags", "is_echo", "normal_form", "singular_type"]


def singular_type(name: str) -> str:
    """``deals``/``deal``/``0-3`` -> ``deal``; ``companies``/``company``/``0-2`` -> ``company``."""
    name = name.lower()
    return {"deals": "deal", "0-3": "deal", "companies": "company", "0-2": "company",
            "contacts": "contact", "0-1": "contact"}.get(name, name)


def normal_form(value: str | None) -> str:
    """One text per meaning: numbers, dates and instants compare by value, not spelling."""
    text = (value or "").strip()
    if not text:
        return ""
    if text.isdigit() and len(text) >= 12:  # epoch milliseconds, as webhooks send datetimes
        return f"ms:{int(text)}"
    try:
        if len(text) == 10 and text[4] == "-":
            moment = datetime.fromisoformat(text + "T00:00:00+00:00")
            return f"ms:{int(moment.timestamp() * 1000)}"
        if "T" in text and text[:4].isdigit():
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is not None:
                return f"ms:{int(moment.timestamp() * 1000)}"
    except ValueError:
        pass
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return f"n:{number.normalize()}" if number.is_finite() else text


ECHO_WINDOW = (timedelta(minutes=-2), timedelta(minutes=15))
"""An echo happens right after our write: a change at another time is a person's, even to the
same value (a user setting the field back to what we wrote is a real edit). The early side
allows for clock skew between HubSpot and this host."""


def is_echo(store: ConflictLog, tenant_id: str, object_type: str, object_id: str,
            property_name: str, property_value: str | None, occurred_at: datetime | None = None) -> bool:
    """Whether this property change is our own write coming back: the value we last wrote,
    changed (when ``occurred_at`` is known) within :data:`ECHO_WINDOW` of that write."""
    pushed = store.pushed(tenant_id, singular_type(object_type), str(object_id), property_name)
    return _echoes(pushed, property_value, occurred_at)


Change = tuple[str, str, str, str | None, datetime | None]
"""A property change as :func:`echo_flags` takes it: (object type, object id, property, new
value, when it happened or None)."""


def echo_flags(store: ConflictLog, tenant_id: str, changes: Sequence[Change]) -> list[bool]:
    """:func:`is_echo` of many changes, with one query per object type (and 500 objects)."""
    ids: dict[str, set[str]] = {}
    for object_type, object_id, *_rest in changes:
        ids.setdefault(singular_type(object_type), set()).add(str(object_id))
    pushed = {kind: store.pushed_of(tenant_id, kind, wanted) for kind, wanted in ids.items()}
    return [_echoes(pushed[singular_type(object_type)].get((str(object_id), name)), value, occurred_at)
            for object_type, object_id, name, value, occurred_at in changes]


def _echoes(pushed: tuple[str, datetime] | None, value: str | None, occurred_at: datetime | None) -> bool:
    if pushed is None or normal_form(pushed[0]) != normal_form(value):
        return False
    if occurred_at is None:
        return True
    early, late = ECHO_WINDOW
    return pushed[1] + early <= occurred_at <= pushed[1] + late


class PropertyChange(Protocol):
    """What the echo check reads of a webhook event (``_webhooks.WebhookEvent`` has it)."""

    @property
    def object_type(self) -> str: ...
    @property
    def object_id(self) -> str: ...
    @property
    def property_name(self) -> str | None: ...
    @property
    def property_value(self) -> str | None: ...
    @property
    def occurred_at(self) -> datetime: ...


class WebhookEchoes:
    """The webhook processor's echo check: of one event, or of a batch's events with one query
    per object type (:meth:`many`; one query per event was a fifth of a batch's time). A
    tenant not enabled in this process has no echoes."""

    def __init__(self, tenants: Tenants) -> None:
        self._tenants = tenants

    def __call__(self, tenant_id: str, event: PropertyChange) -> bool:
        return self.many(tenant_id, [event])[0]

    def many(self, tenant_id: str, events: Sequence[PropertyChange]) -> list[bool]:
        if not self._tenants.is_enabled(tenant_id):
            return [False] * len(events)
        return echo_flags(self._tenants.store_for(tenant_id), tenant_id, [
            (e.object_type, e.object_id, e.property_name or "", e.property_value, e.occurred_at)
            for e in events])
