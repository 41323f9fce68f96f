"""The host's enumerated values: order statuses and user types, exactly as the host stores them.

Import them from :mod:`ambac_hubspot_plugin.host`. They live apart so the host-side records
(``_host_records``) can use them without importing the contract module, which re-exports
the records.
"""

from __future__ import annotations

import enum

__all__ = ["OrderStatus", "UserType"]


class OrderStatus(str, enum.Enum):  # noqa: UP042  # StrEnum would change str()/format() of members
    """The host's order status values, exactly as it stores them; :attr:`label` is what people see.

    Store and compare the values (``IN_PROGRESS``); show the labels (``In progress``).
    """

    RFI = "RFI"
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    ON_HOLD = "ON_HOLD"
    CANCELLED = "CANCELLED"

    @property
    def label(self) -> str:
        """What people see for this status (``In progress``)."""
        return _LABELS[self]

    @classmethod
    def parse(cls, text: object) -> OrderStatus:
        """The status ``text`` names: a value, or (deprecated, for settings written before the
        values were used) a label, in any case. Raises ValueError naming the allowed values."""
        if isinstance(text, cls):
            return text
        found = _BY_NAME.get(str(text).strip().casefold()) if isinstance(text, str) else None
        if found is None:
            raise ValueError(f"{text!r} is not an order status; use one of {cls.allowed()}")
        return found

    @classmethod
    def allowed(cls) -> str:
        """The values, quoted and comma-separated, for messages."""
        return ", ".join(repr(status.value) for status in cls)


_LABELS = {OrderStatus.RFI: "RFI", OrderStatus.PENDING: "Pending",
           OrderStatus.IN_PROGRESS: "In progress", OrderStatus.COMPLETED: "Completed",
           OrderStatus.ON_HOLD: "On hold", OrderStatus.CANCELLED: "Cancelled"}
_BY_NAME = {**{label.casefold(): status for status, label in _LABELS.items()},
            **{status.value.casefold(): status for status in OrderStatus}}


class UserType(str, enum.Enum):  # noqa: UP042  # StrEnum would change str()/format() of members
    """What kind of user a host user row is; customers' contacts are ``PORTAL`` users, the
    host's own people ``INTERNAL`` ones."""

    INTERNAL = "INTERNAL"
    PORTAL = "PORTAL"
