"""A small but real multi-tenant host that speaks the plugin contract of :mod:`..host`.

The package re-exports its public names; see :mod:`._host` for the host itself.
"""

from ._host import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MOUNT_PREFIX,
    EMAIL_MAX,
    NOTIFICATION_LEVELS,
    PERSON_NAME_MAX,
    Notification,
    PluginStart,
    ReferenceHost,
    TaskRun,
    TenantServices,
    normalize_domain,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MOUNT_PREFIX",
    "EMAIL_MAX",
    "NOTIFICATION_LEVELS",
    "PERSON_NAME_MAX",
    "Notification",
    "PluginStart",
    "ReferenceHost",
    "TaskRun",
    "TenantServices",
    "normalize_domain",
]
