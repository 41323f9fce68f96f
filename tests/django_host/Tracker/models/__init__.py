"""The host double's models, importable from ``Tracker.models`` as in the host."""

from .core import (
    Companies,
    SecureManager,
    SecureModel,
    Tenant,
    TenantContextRequired,
    TenantGroup,
    User,
    UserRole,
)
from .mes_lite import Milestone, MilestoneTemplate, Orders, OrdersStatus
from .notification_outbox import NotificationOutbox

__all__ = [
    "Companies",
    "Milestone",
    "MilestoneTemplate",
    "NotificationOutbox",
    "Orders",
    "OrdersStatus",
    "SecureManager",
    "SecureModel",
    "Tenant",
    "TenantContextRequired",
    "TenantGroup",
    "User",
    "UserRole",
]
