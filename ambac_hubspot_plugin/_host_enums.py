"""The host's enumerated values: order statuses and user types, exactly as the host stores them.

Import them from :mod:`ambac_hubspot_plugin.host`. They live apart so the host-side records
(``_host_records``) can use them without importing the contract module, which re-exports
the records.
"""

from __future__ import annotations

import enum

__all__ = ["OrderStatus", "UserType"]


class OrderStatus(str, enum.Enum):  # noqa: UP042  # StrEnum would change str()/format() of members
    """The host's order status values, exactly as it stores them."""

    RFI = "RFI"
    PENDING = "Pending"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    ON_HOLD = "On hold"
    CANCELLED = "Cancelled"


class UserType(str, enum.Enum):  # noqa: UP042  # StrEnum would change str()/format() of members
    """What kind of user a host user row is; customers' contacts are ``PORTAL`` users."""

    PORTAL = "PORTAL"
    STAFF = "STAFF"
