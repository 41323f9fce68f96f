"""Echo suppression: tell the webhook HubSpot sends back for our own write from a person's edit.

The outbound push remembers every value it writes, per object and property
(:meth:`~.store.ConflictLog.remember_pushed`); :func:`is_echo` compares a webhook's property
change with that value, by meaning (a date and its epoch milliseconds are the same value) and
by time (:data:`ECHO_WINDOW`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import ConflictLog

__all__ = ["ECHO_WINDOW", "is_echo", "normal_form", "singular_type"]


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
    if pushed is None or normal_form(pushed[0]) != normal_form(property_value):
        return False
    if occurred_at is None:
        return True
    early, late = ECHO_WINDOW
    return pushed[1] + early <= occurred_at <= pushed[1] + late
